"""The deployment of an in-process call without a config: ``model="openai/gpt-4o"`` and the caller's key.

Both in-process surfaces (the client classes and ``anygate.anthropic.messages``) build it here, so they
resolve names, keys and endpoints the same way, and fail the same way when a key is missing: before any
request is sent, naming where the key was looked for (never its value).
"""

from __future__ import annotations

from collections.abc import Mapping

from anygate.config import deployment_for_model
from anygate.deployment import Deployment
from anygate.protocol.errors import GatewayError
from anygate.providers.registry import SPECS, default_api_key_env


def in_process_deployment(
    model: str,
    *,
    api_key: str | None = None,
    api_base: str | None = None,
    timeout: float | None = None,
    extra_headers: Mapping[str, str] | None = None,
    api_version: str | None = None,
    organization: str | None = None,
) -> Deployment:
    """The one-off deployment serving ``model`` (``<provider>/<model>``) for an in-process call.

    Raises:
        GatewayError: 404 when the provider cannot be told; 401 ``authentication_error`` when the
            provider's hosted service needs a key and neither ``api_key`` nor its variable gives one
            (with an ``api_base`` of its own the endpoint may be a server that takes no key).
    """
    deployment = deployment_for_model(
        model,
        api_key=api_key,
        api_base=api_base,
        timeout=timeout,
        extra_headers=extra_headers,
        api_version=api_version,
        organization=organization,
    )
    spec = SPECS.get(deployment.provider)
    if deployment.api_key is None and api_base is None and spec is not None and spec.hosted:
        variables = " or ".join(default_api_key_env(deployment.provider))
        raise GatewayError(
            401,
            f"no API key for {model!r}: pass api_key=... or set {variables}",
            error_type="authentication_error",
        )
    return deployment
