"""A deployment: one upstream endpoint serving a model group (one ``model_list`` entry)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Deployment:
    """One upstream deployment of a model group (one ``model_list`` entry).

    Attributes:
        model_name: the name clients ask for (may be a glob pattern such as ``openai/*``).
        provider: the provider key (``openai``, ``anthropic``, ``mock``, …).
        upstream_model: the model name sent upstream (``*`` for a pattern entry: the matched part).
        deployment_id: a stable id for logs, headers and health (``model_info.id`` when given).
    """

    model_name: str
    provider: str
    upstream_model: str
    deployment_id: str
    api_base: str | None = None
    api_key: str | None = None
    api_version: str | None = None
    organization: str | None = None
    timeout: float | None = None
    stream_timeout: float | None = None
    max_retries: int | None = None
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    rpm: int | None = None
    tpm: int | None = None
    weight: float | None = None
    model_info: Mapping[str, Any] = field(default_factory=dict)

    def with_upstream_model(self, upstream_model: str) -> Deployment:
        """A copy that sends ``upstream_model`` (a pattern deployment serving one concrete name)."""
        return Deployment(
            self.model_name,
            self.provider,
            upstream_model,
            self.deployment_id,
            self.api_base,
            self.api_key,
            self.api_version,
            self.organization,
            self.timeout,
            self.stream_timeout,
            self.max_retries,
            self.extra_headers,
            self.rpm,
            self.tpm,
            self.weight,
            self.model_info,
        )
