"""The ``litellm_params`` keys a Bedrock deployment owns (LiteLLM's names, so configs carry over).

The registry imports this module when it builds :data:`~anygate.providers.registry.SPECS`; it imports
nothing heavier than the standard library.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from anygate.providers.param_error import ParamError

PARAM_KEYS: Final = frozenset(
    {
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "aws_region_name",
        "aws_profile_name",
        "aws_role_name",
        "aws_session_name",
        "aws_external_id",
        "aws_sts_endpoint",
        "aws_bedrock_runtime_endpoint",
    }
)


def check_params(params: Mapping[str, Any]) -> None:
    """Every key is a string; keys that only make sense together come together."""
    for key, value in params.items():
        if value is not None and not isinstance(value, str):
            raise ParamError(key, f"{key} must be a string")
    if bool(params.get("aws_access_key_id")) != bool(params.get("aws_secret_access_key")):
        missing = "aws_secret_access_key" if params.get("aws_access_key_id") else "aws_access_key_id"
        raise ParamError(missing, "aws_access_key_id and aws_secret_access_key go together")
    if params.get("aws_session_token") and not params.get("aws_access_key_id"):
        raise ParamError(
            "aws_session_token", "aws_session_token needs aws_access_key_id and aws_secret_access_key"
        )
    for key in ("aws_session_name", "aws_external_id"):
        if params.get(key) and not params.get("aws_role_name"):
            raise ParamError(key, f"{key} is used only with aws_role_name (STS assume-role)")
    endpoint = params.get("aws_bedrock_runtime_endpoint")
    if endpoint and not endpoint.startswith(("http://", "https://")):
        raise ParamError("aws_bedrock_runtime_endpoint", "must be a URL (https://…)")
