"""Per-deployment health: failures, cooldowns, in-flight requests, latency and rate-limit windows.

All state lives in one process (each worker keeps its own), which is what LiteLLM does without Redis.
Time comes from an injectable clock so that tests can move it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

FAILURE_WINDOW_SECONDS: Final = 60.0
LATENCY_DECAY: Final = 0.3
"""Weight of the newest latency sample in the exponentially decayed average."""
RATE_WINDOW_SECONDS: Final = 60.0


@dataclass(slots=True)
class DeploymentHealth:
    """What is known about one deployment right now."""

    deployment_id: str
    failures: deque[float] = field(default_factory=deque)
    cooldown_until: float = 0.0
    last_failure: float = 0.0
    last_error: str | None = None
    in_flight: int = 0
    latency: float | None = None
    window_start: float = 0.0
    window_requests: int = 0
    window_tokens: int = 0
    successes: int = 0

    def recent_failures(self, now: float) -> int:
        while self.failures and self.failures[0] <= now - FAILURE_WINDOW_SECONDS:
            self.failures.popleft()
        return len(self.failures)

    def roll_window(self, now: float) -> None:
        if now - self.window_start >= RATE_WINDOW_SECONDS:
            self.window_start = now
            self.window_requests = 0
            self.window_tokens = 0


class HealthBook:
    """Health of every deployment, keyed by deployment id."""

    def __init__(
        self, *, allowed_fails: int, cooldown_time: float, clock: Callable[[], float] = time.monotonic
    ):
        self.allowed_fails = allowed_fails
        self.cooldown_time = cooldown_time
        self.clock = clock
        self._by_id: dict[str, DeploymentHealth] = {}

    def get(self, deployment_id: str) -> DeploymentHealth:
        health = self._by_id.get(deployment_id)
        if health is None:
            health = self._by_id[deployment_id] = DeploymentHealth(deployment_id)
        return health

    def cooling(self, deployment_id: str) -> bool:
        return self.get(deployment_id).cooldown_until > self.clock()

    def started(self, deployment_id: str) -> None:
        health = self.get(deployment_id)
        health.in_flight += 1
        now = self.clock()
        health.roll_window(now)
        health.window_requests += 1

    def ended(self, deployment_id: str) -> None:
        health = self.get(deployment_id)
        health.in_flight = max(0, health.in_flight - 1)

    def succeeded(self, deployment_id: str, latency: float, tokens: int = 0) -> None:
        health = self.get(deployment_id)
        health.successes += 1
        health.latency = (
            latency
            if health.latency is None
            else (LATENCY_DECAY * latency + (1 - LATENCY_DECAY) * health.latency)
        )
        if tokens:
            health.roll_window(self.clock())
            health.window_tokens += tokens

    def failed(self, deployment_id: str, reason: str, *, cool_down_now: bool = False) -> None:
        """Record a failure; more than ``allowed_fails`` within a minute (or ``cool_down_now``, for a
        refused connection) puts the deployment in cooldown for ``cooldown_time`` seconds."""
        now = self.clock()
        health = self.get(deployment_id)
        health.failures.append(now)
        health.last_failure = now
        health.last_error = reason
        if cool_down_now or health.recent_failures(now) > self.allowed_fails:
            health.cooldown_until = now + self.cooldown_time
            health.failures.clear()

    def rate_limited_for(self, deployment_id: str, rpm: int | None, tpm: int | None) -> float:
        """Seconds until the deployment's rpm/tpm window frees up; 0 when it can take a request now."""
        if rpm is None and tpm is None:
            return 0.0
        now = self.clock()
        health = self.get(deployment_id)
        health.roll_window(now)
        full = (rpm is not None and health.window_requests >= rpm) or (
            tpm is not None and health.window_tokens >= tpm
        )
        return max(health.window_start + RATE_WINDOW_SECONDS - now, 0.001) if full else 0.0

    def snapshot(self, deployment_id: str) -> dict[str, Any]:
        """The health report of one deployment (for ``/health/deployments``)."""
        now = self.clock()
        health = self.get(deployment_id)
        cooling = health.cooldown_until > now
        return {
            "state": "cooling_down" if cooling else "healthy",
            "cooldown_remaining_seconds": round(health.cooldown_until - now, 3) if cooling else 0,
            "recent_failures": health.recent_failures(now),
            "last_error": health.last_error,
            "seconds_since_last_failure": round(now - health.last_failure, 3)
            if health.last_failure
            else None,
            "in_flight": health.in_flight,
            "latency_ms": None if health.latency is None else round(health.latency * 1000, 2),
            "successes": health.successes,
            "requests_this_minute": health.window_requests,
            "tokens_this_minute": health.window_tokens,
        }
