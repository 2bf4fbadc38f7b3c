"""The contract between the gateway and each upstream API.

A provider is pure translation: it turns an Anthropic request into an :class:`UpstreamRequest` and the
upstream's bytes back into Anthropic bytes. It never opens a socket; the gateway owns I/O, timeouts and
retries, which is what lets every translator be tested on recorded streams alone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

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
    """What a translator needs to know about the call it is translating.

    Attributes:
        request_id: the gateway's id of the client request (``req_…``), for errors and logs.
        requested_model: the model name the client asked for; responses report it.
        request: the validated Anthropic request body.
        client_headers: the client's request headers (lower-case names); passthrough forwards a few.
        signer: signs and recognises thinking blocks that the gateway made from upstream reasoning.
        state: scratch space a provider fills in ``build_request`` and reads back when translating
            the answer (for example the map from shortened tool names back to the client's names).
    """

    request_id: str
    requested_model: str
    request: dict[str, Any]
    client_headers: Mapping[str, str]
    signer: ThinkingSigner
    state: dict[str, Any] = field(default_factory=dict)


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
    def usage(self) -> dict[str, int]:
        """Token usage seen so far, for accounting and logs."""
        ...


class Provider(Protocol):
    """One upstream API. Implementations are stateless and shared by all requests."""

    name: str

    def build_request(
        self, deployment: Deployment, request: dict[str, Any], ctx: CallContext, *, stream: bool
    ) -> UpstreamRequest:
        """The upstream request for an Anthropic Messages request."""
        ...

    def parse_response(self, body: bytes, ctx: CallContext) -> bytes:
        """An upstream non-streaming 2xx body → the Anthropic Message as JSON bytes."""
        ...

    def stream_translator(self, ctx: CallContext) -> StreamTranslator:
        """A fresh translator for one upstream stream."""
        ...

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> GatewayError:
        """An upstream non-2xx answer → the error the client receives."""
        ...

    def build_count_tokens_request(
        self, deployment: Deployment, request: dict[str, Any], ctx: CallContext
    ) -> UpstreamRequest | None:
        """The upstream token-counting request, or None when tokens are counted locally."""
        ...

    def parse_count_tokens(self, body: bytes, ctx: CallContext) -> int:
        """The upstream count_tokens 2xx body → ``input_tokens``."""
        ...

    def count_tokens_locally(self, deployment: Deployment, request: dict[str, Any]) -> int:
        """An honest local count (or estimate) of the request's input tokens."""
        ...


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
