"""Retries, fallbacks and cooldown bookkeeping around single upstream attempts.

:func:`run_routed` is the loop: pick a deployment (:class:`~anygate.routing.router.Router`), attempt,
and on a retryable failure try again (another deployment when the group has a healthy one, else the same
one after an exponential, jittered backoff that never undercuts the upstream's ``retry-after``); when the
group is exhausted, move on to its fallback groups. An attempt reports its outcome through the
:data:`Done` callback, at once for a JSON answer and at the end of the stream for a streamed one, so
failures in mid-stream count against the deployment too.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol, TypeVar

from anygate.config import RouterSettings
from anygate.deployment import Deployment
from anygate.hooks import AttemptRecord
from anygate.protocol.errors import GatewayError
from anygate.routing.health import HealthBook
from anygate.routing.names import ModelNames
from anygate.routing.router import Router

log = logging.getLogger("anygate.routing")

BACKOFF_BASE: Final = 0.25
BACKOFF_MAX: Final = 8.0
MAX_RETRY_WAIT: Final = 30.0
"""An upstream ``retry-after`` longer than this is passed on to the client instead of waited out."""

CONTEXT_WINDOW_MARKERS: Final = (
    "context length", "context window", "context_length", "maximum context", "prompt is too long",
    "too many tokens", "reduce the length",
)  # fmt: skip
"""Phrases by which upstreams say a request exceeds the model's context (→ context_window_fallbacks)."""
CONTENT_POLICY_MARKERS: Final = (
    "content policy",
    "content_policy",
    "content management policy",
    "safety system",
)
"""Phrases by which upstreams say a request was refused by policy (→ content_policy_fallbacks)."""


class AttemptOutcome(Protocol):
    """Called exactly once per attempt with its outcome."""

    def __call__(self, failure: GatewayError | None, *, tokens: int = 0, abandoned: bool = False) -> None: ...


class Routed(Protocol):
    """What an attempt returns: the routing loop adds the headers that say who served it."""

    headers: dict[str, str]

    @property
    def tokens(self) -> int: ...

    @property
    def streaming(self) -> bool: ...


R = TypeVar("R", bound=Routed)
R_co = TypeVar("R_co", bound=Routed, covariant=True)


class Attempt(Protocol[R_co]):
    """One try on one deployment; streams call ``done`` when they end."""

    def __call__(self, deployment: Deployment, done: AttemptOutcome) -> Awaitable[R_co]: ...


class _Outcome:
    """Records one attempt, once, whenever it ends: in the deployment's health, and for the listener.

    Only failures that say so (:attr:`GatewayError.counts_as_failure`) count against the deployment: a
    refused request or a bug in the gateway leaves it healthy.
    """

    __slots__ = ("_attempt", "_clock", "_health", "_listener", "_reported")

    def __init__(
        self,
        health: HealthBook,
        deployment: Deployment,
        clock: Callable[[], float],
        listener: Callable[[AttemptRecord], None] | None,
    ) -> None:
        self._health = health
        self._clock = clock
        self._listener = listener
        self._attempt = AttemptRecord(deployment.deployment_id, deployment.provider, clock())
        self._reported = False
        health.started(deployment.deployment_id)

    def __call__(self, failure: GatewayError | None, *, tokens: int = 0, abandoned: bool = False) -> None:
        if self._reported:
            return
        self._reported = True
        attempt = self._attempt
        attempt.ended = self._clock()
        attempt.error = failure
        attempt.abandoned = abandoned
        health = self._health
        deployment_id = attempt.deployment_id
        health.ended(deployment_id)
        if not abandoned:
            if failure is None:
                health.succeeded(deployment_id, attempt.latency, tokens)
            elif failure.counts_as_failure:
                health.failed(deployment_id, failure.message, cool_down_now=failure.cools_down_at_once)
        if self._listener is not None:
            self._listener(attempt)


@dataclass(slots=True)
class _Tries:
    count: int = 0
    tried: set[str] = field(default_factory=set)


async def run_routed(
    model: str,
    *,
    names: ModelNames,
    router: Router,
    settings: RouterSettings,
    attempt: Attempt[R],
    explicit: list[Deployment] | None = None,
    clock: Callable[[], float] = time.monotonic,
    on_attempt: Callable[[AttemptRecord], None] | None = None,
) -> R:
    """Serve ``model`` through its group, retries and fallbacks; raise the last error when all fail.

    ``on_attempt`` hears of every attempt when it ends (a stream's at the stream's end).
    """
    group = model if explicit is not None else names.group_name(model)
    if group is None:
        raise GatewayError(404, f"model {model!r} is not configured on this gateway")
    tries = _Tries()
    pending = [group]
    error: GatewayError | None = None
    while pending:
        current = pending.pop(0)
        if current == group:
            deployments = explicit if explicit is not None else names.deployments(model)
        else:
            deployments = names.deployments(current)
        if not deployments:
            continue
        outcome = await _try_group(deployments, attempt, tries, router, settings, clock, on_attempt)
        if not isinstance(outcome, GatewayError):
            return outcome
        error = outcome
        pending.extend(
            g for g in fallbacks_for(settings, current, error) if g not in pending and g != current
        )
    assert error is not None
    raise error


async def _try_group(
    deployments: list[Deployment],
    attempt: Attempt[R],
    tries: _Tries,
    router: Router,
    settings: RouterSettings,
    clock: Callable[[], float],
    on_attempt: Callable[[AttemptRecord], None] | None,
) -> R | GatewayError:
    error: GatewayError | None = None
    health = router.health
    for retry in range(settings.num_retries + 1):
        try:
            deployment = router.order(deployments, tries.tried)[0]
        except GatewayError as exc:  # every deployment is at its rate limit
            return exc
        deployment_id = deployment.deployment_id
        if error is not None and deployment_id in tries.tried:
            wait = backoff_seconds(retry, error, minimum=settings.retry_after)
            if wait is None:
                return error
            await asyncio.sleep(wait)
        tries.count += 1
        tries.tried.add(deployment_id)
        done = _Outcome(health, deployment, clock, on_attempt)
        try:
            response = await attempt(deployment, done)
        except GatewayError as exc:
            done(exc)
            error = exc
            log.info("attempt %d on %s failed: %d %s", tries.count, deployment_id, exc.status, exc.message)
            if not exc.retryable:
                return exc
            continue
        except BaseException:
            done(None, abandoned=True)
            raise
        response.headers["x-anygate-model-id"] = deployment_id
        response.headers["x-anygate-attempts"] = str(tries.count)
        if not response.streaming:
            done(None, tokens=response.tokens)
        return response
    assert error is not None
    return error


def fallbacks_for(settings: RouterSettings, group: str, error: GatewayError) -> tuple[str, ...]:
    """The fallback groups for a failure of ``group``, by the kind of failure."""
    message = error.message.lower()
    if error.status == 400 and any(marker in message for marker in CONTEXT_WINDOW_MARKERS):
        return settings.context_window_fallbacks.get(group, ())
    if error.status == 400 and any(marker in message for marker in CONTENT_POLICY_MARKERS):
        return settings.content_policy_fallbacks.get(group, ())
    if error.retryable:
        return settings.fallbacks.get(group, ()) or settings.fallbacks.get("*", ())
    return ()


def backoff_seconds(retry: int, error: GatewayError, *, minimum: float = 0.0) -> float | None:
    """Seconds to wait before retrying the same deployment: exponential with jitter, never sooner than
    the upstream's ``retry-after`` nor ``router_settings.retry_after``; None when the upstream asks for
    longer than is worth waiting out."""
    hinted = retry_after_seconds(error.headers)
    if hinted is not None and hinted > MAX_RETRY_WAIT:
        return None
    delay = min(BACKOFF_MAX, BACKOFF_BASE * 2.0 ** (retry - 1)) * random.uniform(0.5, 1.0)
    return max(delay, hinted or 0.0, minimum)


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The upstream's retry hint in seconds (``retry-after-ms`` or ``retry-after``), if any."""
    milliseconds: str | None = headers.get("retry-after-ms")
    seconds: str | None = headers.get("retry-after")
    try:
        if milliseconds is not None:
            return float(milliseconds) / 1000
        if seconds is not None:
            return float(seconds)
    except ValueError:
        return None
    return None
