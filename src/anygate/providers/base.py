"""The contract between the gateway and each upstream API.

A provider is pure translation: it turns an Anthropic request into an :class:`UpstreamRequest` and the
upstream's bytes back into Anthropic bytes. It never opens a socket; the gateway owns I/O, timeouts and
retries, which is what lets every translator be tested on recorded streams alone.

For each attempt the gateway asks the provider to :meth:`~Provider.prepare` a :class:`ProviderCall`: the
upstream request plus everything translating its answer needs (a tool-name map, the model sent, sizes),
as typed fields of the provider's own call class. A call belongs to one attempt; a retry or a fallback
prepares a new one, so nothing leaks from one attempt into the next.

Credentials that must be fetched or computed (OAuth tokens, AWS signatures) are added by
:meth:`~Provider.authorize` just before the request is sent; providers whose key is static set it in
``prepare`` and declare ``dynamic_credentials = False``, so the gateway skips the step.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from anygate.hooks import Usage
from anygate.protocol.errors import GatewayError

if TYPE_CHECKING:
    from anygate.deployment import Deployment
    from anygate.signing import ThinkingSigner


@dataclass(slots=True)
class UpstreamRequest:
    """One HTTP request to an upstream, fully built."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class CallContext:
    """What a translator needs to know about the client request it is translating.

    Attributes:
        request_id: the gateway's id of the client request (``req_…``), for errors and logs.
        requested_model: the model name the client asked for; responses report it.
        request: the validated Anthropic request body.
        client_headers: the client's request headers (lower-case names); passthrough forwards a few.
        signer: signs and recognises thinking blocks that the gateway made from upstream reasoning.
    """

    request_id: str
    requested_model: str
    request: dict[str, Any]
    client_headers: Mapping[str, str]
    signer: ThinkingSigner

    @property
    def message_id(self) -> str:
        """The ``msg_…`` id of the answer, derived from the request id."""
        return "msg_" + self.request_id.removeprefix("req_")


@dataclass(slots=True)
class Answer:
    """A translated non-streaming answer: the Message as JSON bytes, its usage and its stop reason, read
    from the one parsed or built Message (build it with :meth:`of`), so nobody parses the body again."""

    body: bytes
    usage: Usage
    stop_reason: str | None = None

    @classmethod
    def of(cls, message: Mapping[str, Any], usage: Usage | None = None, body: bytes | None = None) -> Answer:
        """The answer that is ``message``: ``body`` when those bytes already are its JSON (a relayed
        Message), else serialized here; ``usage`` when the translator has it, else the Message's own."""
        stop_reason = message.get("stop_reason")
        return cls(
            orjson.dumps(message) if body is None else body,
            Usage.from_anthropic(message.get("usage")) if usage is None else usage,
            stop_reason if isinstance(stop_reason, str) else None,
        )


class StreamTranslator(Protocol):
    """Turns an upstream stream, chunk by chunk, into Anthropic SSE bytes for the client."""

    def feed(self, chunk: bytes) -> bytes:
        """Consume one network chunk; return the bytes to send to the client now (maybe empty).

        The bytes are always whole SSE frames, so the gateway may put a ``ping`` or an ``event: error``
        frame after them at any time.
        """
        ...

    def finish(self) -> bytes:
        """The upstream closed the stream: return the last bytes, or raise :class:`GatewayError`
        when the stream was incomplete (the gateway then sends ``event: error``)."""
        ...

    @property
    def usage(self) -> Usage:
        """Token usage seen so far, for accounting and hooks."""
        ...

    @property
    def stop_reason(self) -> str | None:
        """The answer's ``stop_reason`` once its ``message_delta`` was translated (None until then, and
        for a stream that ended without one); read once, at the stream's end."""
        ...


class ProviderCall(Protocol):
    """One attempt's translation: the request to send and how to read what comes back."""

    @property
    def request(self) -> UpstreamRequest:
        """The upstream request (``authorize`` may still add credentials to it)."""
        ...

    def parse_response(self, body: bytes) -> Answer:
        """An upstream non-streaming 2xx body → the Anthropic Message.

        Raises ValueError (or a GatewayError) when the body is malformed; any other exception is a bug.
        """
        ...

    def stream_translator(self) -> StreamTranslator:
        """A fresh translator for the upstream stream of this call."""
        ...


class AmendableCall(ProviderCall, Protocol):
    """A call that can repair some refusals itself (optional: the gateway looks for ``amend``).

    When the upstream answers an attempt with a non-2xx status, the gateway asks ``amend(status, body)``
    for a replacement call and sends it once, within the same attempt (same deployment, same deadline,
    nothing sent to the client yet). The Responses provider uses this to drop replayed reasoning that the
    upstream could not decrypt. Return None to let the failure be mapped and routed as usual.
    """

    def amend(self, status: int, body: bytes) -> ProviderCall | None: ...


class CountCall(Protocol):
    """One upstream token-counting request and how to read its answer."""

    @property
    def request(self) -> UpstreamRequest: ...

    def parse(self, body: bytes) -> int:
        """The 2xx body → ``input_tokens`` (ValueError or GatewayError when malformed)."""
        ...


class Provider(Protocol):
    """One upstream API. Implementations are stateless and shared by all requests."""

    name: str
    dynamic_credentials: bool
    """Whether :meth:`authorize` has work to do (tokens to fetch, requests to sign)."""

    def prepare(
        self, deployment: Deployment, request: dict[str, Any], ctx: CallContext, *, stream: bool
    ) -> ProviderCall:
        """The call for one attempt of an Anthropic Messages request."""
        ...

    async def authorize(self, deployment: Deployment, request: UpstreamRequest) -> None:
        """Add fetched or computed credentials to a built request (cached tokens, a signature)."""
        ...

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> GatewayError:
        """An upstream non-2xx answer → the error the client receives."""
        ...

    def prepare_count_tokens(
        self, deployment: Deployment, request: dict[str, Any], ctx: CallContext
    ) -> CountCall | None:
        """The upstream token-counting call, or None when tokens are counted locally."""
        ...

    def count_tokens_locally(self, deployment: Deployment, request: dict[str, Any]) -> int:
        """An honest local count (or estimate) of the request's input tokens."""
        ...


class StaticCredentials:
    """Mixin for providers whose credentials are a configured key set by ``prepare``."""

    dynamic_credentials = False

    async def authorize(self, deployment: Deployment, request: UpstreamRequest) -> None:
        return None


class LocalProvider(ABC):
    """A provider that answers in-process (the built-in mock): no upstream request at all."""

    name: str

    @abstractmethod
    def answer(
        self, deployment: Deployment, request: dict[str, Any], ctx: CallContext
    ) -> list[dict[str, Any]]:
        """The complete list of Anthropic stream events answering the request."""

    @abstractmethod
    def count_tokens_locally(self, deployment: Deployment, request: dict[str, Any]) -> int:
        """The request's input tokens, consistent with the usage :meth:`answer` reports."""
