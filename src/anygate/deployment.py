"""A deployment: one upstream endpoint serving a model group (one ``model_list`` entry)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class Deployment:
    """One upstream deployment of a model group (one ``model_list`` entry).

    Attributes:
        model_name: the name clients ask for (may be a glob pattern such as ``openai/*``).
        provider: the provider key (``openai``, ``anthropic``, ``mock``, …).
        upstream_model: the model name sent upstream (``*`` for a pattern entry: the matched part).
        deployment_id: a stable id for logs, headers and health (``model_info.id`` when given).
        api_key: the configured key (or the provider's environment variable); never logged.
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
    params: Mapping[str, Any] = field(default_factory=dict)
    """The ``litellm_params`` its provider owns (``ProviderSpec.param_keys``), checked at load time."""
    costs: Mapping[str, float] = field(default_factory=dict)
    """Per-token prices from the config (``input_cost_per_token``…), overriding the built-in table."""

    def with_upstream_model(self, upstream_model: str) -> Deployment:
        """A copy that sends ``upstream_model`` (a pattern deployment serving one concrete name)."""
        return replace(self, upstream_model=upstream_model)
