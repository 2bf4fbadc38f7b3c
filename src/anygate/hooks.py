"""The lifecycle every request passes through, and the hooks that features attach to it.

::

    authenticate(headers) -> Principal        who is calling (the proxy; the SDK is its own caller)
    admit(record)                             may this caller make this request now (quota, budget)
    attempt_ended(record, attempt)            each upstream attempt: deployment, outcome, latency
    completed(record)                         once per request, when its answer is over: usage, time to
                                              first token, outcome; for streams at their end, including
                                              when the client leaves

Keys and budgets, spend logging, metrics and tracing are hooks; the request path only knows
:class:`Hooks`. A stage with no hook registered costs an attribute test: :class:`Hooks` keeps, per
stage, only the hooks that override it, so the path skips the stage entirely when the list is empty.

Hooks run on the event loop, in the request's task: ``authenticate`` and ``admit`` may await (a cache
lookup, at most one Redis round trip), ``attempt_ended`` and ``completed`` must not block (hand work to a
background task or queue). An exception from ``authenticate`` or ``admit`` that is a
:class:`~anygate.protocol.errors.GatewayError` is the client's answer (401, 403, 429…); an exception from
a notification hook is logged and never reaches the client.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from anygate.protocol.errors import GatewayError

log = logging.getLogger("anygate.hooks")

Outcome = Literal["ok", "error", "client_gone"]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling.

    Attributes:
        kind: ``master`` (the master key), ``open`` (no key configured), ``in_process`` (the SDK),
            or what an authenticating hook says (``virtual_key``…).
        key_id: a stable, non-secret id of the key used (a hash or a key's id), when there is one.
        user_id, team_id: the owners the key belongs to, when known.
        metadata: whatever the authenticating hook wants later hooks to see (limits, aliases…).
    """

    kind: str
    key_id: str | None = None
    user_id: str | None = None
    team_id: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


MASTER: Final = Principal("master")
OPEN: Final = Principal("open")
IN_PROCESS: Final = Principal("in_process")


@dataclass(slots=True)
class Usage:
    """Tokens of one answer, as Anthropic counts them (``input_tokens`` excludes cache reads and writes)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0

    @classmethod
    def from_anthropic(cls, usage: object) -> Usage:
        """From an Anthropic ``usage`` object (missing or malformed figures count as 0)."""
        if not isinstance(usage, dict):
            return cls()
        return cls(
            token_count(usage.get("input_tokens")),
            token_count(usage.get("output_tokens")),
            token_count(usage.get("cache_read_input_tokens")),
            token_count(usage.get("cache_creation_input_tokens")),
        )

    def update(self, usage: object) -> None:
        """Take the figures present in an Anthropic ``usage`` object (a stream's later events carry
        cumulative figures, sometimes only some of them)."""
        if not isinstance(usage, dict):
            return
        for name in _USAGE_FIELDS:
            value = usage.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                setattr(self, name, token_count(value))

    def plus(self, other: Usage) -> Usage:
        """The sum of two answers' usage (several upstream calls made one answer)."""
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_input_tokens + other.cache_read_input_tokens,
            self.cache_creation_input_tokens + other.cache_creation_input_tokens,
        )

    @property
    def tokens(self) -> int:
        """Input and output tokens: what ``tpm`` rate limits count."""
        return self.input_tokens + self.output_tokens


_USAGE_FIELDS: Final = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)


MAX_TOKENS: Final = 2**53 - 1
"""The largest token figure kept from an upstream (larger ones are cut to it): far beyond any real
answer, exact as a JSON number everywhere, and its sums fit the spend records' 64-bit columns (a
figure beyond them would fail the write of every request buffered with it)."""


def token_count(value: object) -> int:
    """A token figure from an upstream's usage: a positive integer (at most :data:`MAX_TOKENS`), else
    0 (missing, null, malformed)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value if value <= MAX_TOKENS else MAX_TOKENS
    return 0


@dataclass(slots=True)
class AttemptRecord:
    """One upstream attempt of a request."""

    deployment_id: str
    provider: str
    started: float
    ended: float = 0.0
    error: GatewayError | None = None
    abandoned: bool = False

    @property
    def latency(self) -> float:
        return self.ended - self.started


@dataclass(slots=True)
class RequestRecord:
    """What the gateway knows about one request, filled in as it goes; hooks read it.

    Times are ``time.monotonic()`` seconds (``started_at`` is wall-clock, for records that are stored).
    """

    request_id: str
    route: str
    principal: Principal
    headers: Mapping[str, str]
    model: str = ""
    stream: bool = False
    request: dict[str, Any] | None = None
    started: float = field(default_factory=time.monotonic)
    started_at: float = field(default_factory=time.time)
    attempts: list[AttemptRecord] = field(default_factory=list)
    deployment_id: str | None = None
    provider: str | None = None
    first_byte: float | None = None
    ended: float | None = None
    usage: Usage | None = None
    stop_reason: str | None = None
    """The answer's ``stop_reason`` (``end_turn``, ``tool_use``, ``max_tokens``…), set when an answer was
    complete, before its attempt ends; None for failures, a client that left, and token counting."""
    status: int = 0
    error: GatewayError | None = None
    outcome: Outcome | None = None
    context: dict[str, Any] = field(default_factory=dict)
    """Scratch space for hooks (a span, a reservation id…), keyed by the hook's own name."""
    upstream_headers: dict[str, str] = field(default_factory=dict)
    """Headers hooks want on every upstream request of this request (trace context, set in ``admit``);
    the gateway adds them after the provider prepared the request, so no provider knows of them."""

    @property
    def latency(self) -> float | None:
        return None if self.ended is None else self.ended - self.started

    @property
    def time_to_first_token(self) -> float | None:
        return None if self.first_byte is None else self.first_byte - self.started


class Hook:
    """Base class of lifecycle hooks: override the stages you need; the others cost nothing."""

    async def authenticate(self, headers: Mapping[str, str]) -> Principal | None:
        """The caller, or None to let the next hook decide; raise a GatewayError to refuse."""
        return None

    async def admit(self, record: RequestRecord) -> None:
        """Raise a GatewayError (403, 429…) to refuse the request before any upstream is called."""

    def attempt_ended(self, record: RequestRecord, attempt: AttemptRecord) -> None:
        """An upstream attempt ended (streams: when the stream ended)."""

    def completed(self, record: RequestRecord) -> None:
        """The request is over (answered, failed, or abandoned by the client); called exactly once."""

    async def aclose(self) -> None:
        """The gateway is shutting down: flush what is buffered."""


_STAGES: Final = ("authenticate", "admit", "attempt_ended", "completed", "aclose")


class Hooks:
    """The registered hooks, by stage; the request path asks it, never a hook directly."""

    __slots__ = ("_all", "admitting", "attempt_listeners", "authenticators", "completion_listeners")

    def __init__(self, hooks: Sequence[Hook] = ()) -> None:
        self._all: list[Hook] = []
        self.authenticators: list[Hook] = []
        self.admitting: list[Hook] = []
        self.attempt_listeners: list[Hook] = []
        self.completion_listeners: list[Hook] = []
        for hook in hooks:
            self.add(hook)

    def add(self, hook: Hook) -> None:
        """Register ``hook`` for the stages it overrides, after the ones already registered."""
        self._all.append(hook)
        cls = type(hook)
        for stage, listeners in zip(
            _STAGES[:4],
            (self.authenticators, self.admitting, self.attempt_listeners, self.completion_listeners),
            strict=True,
        ):
            if getattr(cls, stage) is not getattr(Hook, stage):
                listeners.append(hook)

    async def authenticate(self, headers: Mapping[str, str]) -> Principal | None:
        for hook in self.authenticators:
            principal = await hook.authenticate(headers)
            if principal is not None:
                return principal
        return None

    async def admit(self, record: RequestRecord) -> None:
        for hook in self.admitting:
            await hook.admit(record)

    def attempt_ended(self, record: RequestRecord, attempt: AttemptRecord) -> None:
        for hook in self.attempt_listeners:
            try:
                hook.attempt_ended(record, attempt)
            except Exception:
                log.exception("hook %s failed in attempt_ended", type(hook).__name__)

    def completed(self, record: RequestRecord) -> None:
        for hook in self.completion_listeners:
            try:
                hook.completed(record)
            except Exception:
                log.exception("hook %s failed in completed", type(hook).__name__)

    async def aclose(self) -> None:
        for hook in self._all:
            try:
                await hook.aclose()
            except Exception:
                log.exception("hook %s failed to close", type(hook).__name__)
