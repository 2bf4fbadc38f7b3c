"""Choosing a deployment for each attempt, by ``router_settings.routing_strategy`` and health.

``order`` ranks a group's deployments for one attempt: healthy ones by the strategy, then (only when all
are cooling down) the least recently failed one, so that a request is never refused without trying.
Deployments at their ``rpm``/``tpm`` limit are skipped; when all are, the request gets 429.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from anygate.config import RouterSettings
from anygate.deployment import Deployment
from anygate.protocol.errors import CapacityError, GatewayError
from anygate.routing.health import HealthBook

UNKNOWN_LATENCY: Final = 0.0
"""Latency assumed for a deployment never measured: it gets tried, and so measured."""


class Router:
    """Ranks deployments and keeps their health."""

    def __init__(
        self,
        settings: RouterSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.health = HealthBook(
            allowed_fails=settings.allowed_fails, cooldown_time=settings.cooldown_time, clock=clock
        )
        self._rng = rng or random.Random()

    def order(self, deployments: Sequence[Deployment], avoid: set[str]) -> list[Deployment]:
        """Deployments to try, best first; ``avoid`` (already tried in this request) go last."""
        if len(deployments) == 1:
            only = deployments[0]
            wait = self.health.rate_limited_for(only.deployment_id, only.rpm, only.tpm)
            if wait:
                raise _rate_limited(wait)
            return [only]
        open_: list[Deployment] = []
        waits: list[float] = []
        for deployment in deployments:
            wait = self.health.rate_limited_for(deployment.deployment_id, deployment.rpm, deployment.tpm)
            if wait:
                waits.append(wait)
            else:
                open_.append(deployment)
        if not open_:
            raise _rate_limited(min(waits))
        healthy = [d for d in open_ if not self.health.cooling(d.deployment_id)]
        if not healthy:
            least_recent = min(open_, key=lambda d: self.health.get(d.deployment_id).last_failure)
            return [least_recent]
        fresh = [d for d in healthy if d.deployment_id not in avoid] or healthy
        ranked = self._rank(fresh)
        return ranked + [d for d in healthy if d not in ranked]

    def _rank(self, deployments: list[Deployment]) -> list[Deployment]:
        strategy = self.settings.routing_strategy
        if strategy == "least-busy":
            return sorted(deployments, key=lambda d: self.health.get(d.deployment_id).in_flight)
        if strategy == "latency-based-routing":
            return sorted(deployments, key=self._latency)
        return self._shuffle(deployments)

    def _latency(self, deployment: Deployment) -> float:
        latency = self.health.get(deployment.deployment_id).latency
        return UNKNOWN_LATENCY if latency is None else latency

    def _shuffle(self, deployments: list[Deployment]) -> list[Deployment]:
        """Weighted shuffle: by ``weight``, else by ``rpm``, else uniform."""
        weights = [
            float(d.weight if d.weight is not None else d.rpm if d.rpm is not None else 1)
            for d in deployments
        ]
        remaining = list(zip(deployments, weights, strict=True))
        ranked: list[Deployment] = []
        while remaining:
            total = sum(w for _, w in remaining)
            if total <= 0:
                ranked.extend(d for d, _ in remaining)
                break
            pick = self._rng.uniform(0, total)
            for i, (deployment, weight) in enumerate(remaining):
                pick -= weight
                if pick <= 0 or i == len(remaining) - 1:
                    ranked.append(deployment)
                    remaining.pop(i)
                    break
        return ranked

    def report(self, deployments: Sequence[Deployment]) -> list[dict[str, Any]]:
        """Health of each deployment, for ``/health/deployments``."""
        return [
            {
                "model_name": d.model_name,
                "deployment_id": d.deployment_id,
                "provider": d.provider,
                **self.health.snapshot(d.deployment_id),
            }
            for d in deployments
        ]


def _rate_limited(wait: float) -> GatewayError:
    seconds = max(1, round(wait + 0.5))
    return CapacityError(
        429,
        "every deployment of this model is at its configured rate limit (rpm/tpm)",
        headers={"retry-after": str(seconds)},
    )
