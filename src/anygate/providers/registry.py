"""Provider names (the ``<provider>/`` prefix of a model) → what the config and the gateway need of them.

A :class:`ProviderSpec` is data: the environment variables a key is read from, the ``litellm_params``
keys the provider owns and how to check them, and how to load the provider. The translator modules are
imported on first use (:func:`load_provider`), so loading a config, or running a gateway that uses one
provider, never imports the others.

Adding an upstream API means adding a package under ``providers/`` and one entry in :data:`SPECS`.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import orjson

from anygate.protocol.errors import GatewayError
from anygate.providers.bedrock import params as bedrock_params
from anygate.providers.openai_chat.presets import PRESETS
from anygate.providers.param_error import ParamError

if TYPE_CHECKING:
    from anygate.providers.base import LocalProvider, Provider

    AnyProvider: TypeAlias = Provider | LocalProvider


__all__ = ["PLANNED_PROVIDERS", "SPECS", "ParamError", "ProviderSpec", "load_provider", "split_model"]

ParamsCheck = Callable[[Mapping[str, Any]], None]
"""Checks a deployment's provider-owned params; raises :class:`ParamError`."""


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """What is known about a provider without importing its translator.

    Attributes:
        name: the ``<provider>/`` prefix.
        loader: ``"module:attribute"`` of a zero-argument factory (or class) that builds the provider.
        argument: passed to the factory (an OpenAI-compatible preset's name), when not None.
        api_key_env: environment variables the key is read from when the config gives none.
        param_keys: ``litellm_params`` keys this provider owns beyond the common ones; they reach it
            in ``Deployment.params``.
        check_params: validates those params at config load time.
        hosted: its default endpoint is a hosted service, which needs a key (an SDK call with no key
            for it fails before sending anything); local servers (Ollama, vLLM…) may need none.
    """

    name: str
    loader: str
    argument: str | None = None
    api_key_env: tuple[str, ...] = ()
    param_keys: frozenset[str] = field(default_factory=frozenset)
    check_params: ParamsCheck | None = None
    hosted: bool = False


RESPONSES_SUFFIX: Final = "/responses"
"""The provider-name suffix of the Responses API variant of an OpenAI-compatible service."""
RESPONSES_PREFIX: Final = "responses/"
"""LiteLLM's model spelling for the Responses API: ``openai/responses/gpt-5``, ``azure/responses/<dep>``."""
USE_RESPONSES_API: Final = "use_responses_api"
"""The ``litellm_params`` switch that sends an OpenAI-compatible deployment to its Responses API."""
RESPONSES_PARAMS: Final = frozenset({USE_RESPONSES_API})


def _check_responses_params(params: Mapping[str, Any]) -> None:
    value = params.get(USE_RESPONSES_API)
    if value is not None and not isinstance(value, bool):
        raise ParamError(USE_RESPONSES_API, f"must be true or false, not {value!r}")


SPECS: Final[dict[str, ProviderSpec]] = {
    "anthropic": ProviderSpec(
        "anthropic",
        "anygate.providers.anthropic:AnthropicProvider",
        api_key_env=("ANTHROPIC_API_KEY",),
        hosted=True,
    ),
    "mock": ProviderSpec("mock", "anygate.providers.mock:MockProvider"),
    "bedrock": ProviderSpec(
        "bedrock",
        "anygate.providers.bedrock.provider:BedrockProvider",
        api_key_env=("AWS_BEARER_TOKEN_BEDROCK",),
        param_keys=bedrock_params.PARAM_KEYS,
        check_params=bedrock_params.check_params,
    ),
    "gemini": ProviderSpec(
        "gemini", "anygate.providers.google.provider:GeminiProvider", api_key_env=("GEMINI_API_KEY",)
    ),
    "vertex_ai": ProviderSpec(
        "vertex_ai",
        "anygate.providers.google.provider:VertexProvider",
        param_keys=frozenset(
            {"vertex_project", "vertex_location", "vertex_credentials", "vertex_count_tokens_location"}
        ),
        check_params=lambda params: _check_vertex_params(params),
    ),
    **{
        preset.name: ProviderSpec(
            preset.name,
            "anygate.providers.openai_chat.provider:provider_for_preset",
            argument=preset.name,
            api_key_env=preset.api_key_env,
            param_keys=RESPONSES_PARAMS,
            check_params=_check_responses_params,
            hosted=(preset.default_api_base or "").startswith("https://"),
        )
        for preset in PRESETS
    },
    **{
        preset.name + RESPONSES_SUFFIX: ProviderSpec(
            preset.name + RESPONSES_SUFFIX,
            "anygate.providers.openai_responses.provider:provider_for_preset",
            argument=preset.name,
            api_key_env=preset.api_key_env,
            param_keys=RESPONSES_PARAMS,
            check_params=_check_responses_params,
            hosted=(preset.default_api_base or "").startswith("https://"),
        )
        for preset in PRESETS
    },
}
"""Every provider this version can call. ``<preset>/responses`` is the Responses API of an
OpenAI-compatible service; configs reach it as ``<preset>/responses/<model>`` or with the switch."""

PLANNED_PROVIDERS: Final = frozenset[str]()
"""Providers whose model names are recognised in configs but which this version cannot call yet."""

_WELL_KNOWN_MODELS: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    (re.compile(r"^claude-"), "anthropic"),
    (re.compile(r"^(gpt-|chatgpt-|o1|o3|o4|codex-)"), "openai"),
    (re.compile(r"^gemini-"), "gemini"),
)
"""How a ``model`` without a provider prefix is resolved, as LiteLLM resolves well-known names."""

_LOADED: dict[str, AnyProvider] = {}
_VERTEX_LOCATION: Final = re.compile(r"^[a-z][a-z0-9-]*$")


def _check_vertex_params(params: Mapping[str, Any]) -> None:
    """Config-time checks of the Vertex keys (a credentials file is read only when a token is fetched)."""
    for key in ("vertex_project", "vertex_location", "vertex_count_tokens_location"):
        value = params.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise ParamError(key, "must be a non-empty string")
    for key in ("vertex_location", "vertex_count_tokens_location"):
        value = params.get(key)
        if isinstance(value, str) and not _VERTEX_LOCATION.match(value):
            raise ParamError(key, "must be a location such as 'us-central1', 'europe-west4' or 'global'")
    credentials = params.get("vertex_credentials")
    if credentials is not None and not isinstance(credentials, str | Mapping):
        raise ParamError(
            "vertex_credentials", "must be a service-account JSON file path, JSON text or mapping"
        )
    if isinstance(credentials, str) and credentials.strip().startswith("{"):
        try:
            parsed = orjson.loads(credentials)
        except orjson.JSONDecodeError:
            raise ParamError("vertex_credentials", "is not valid JSON") from None
        if not isinstance(parsed, dict) or "type" not in parsed:
            raise ParamError("vertex_credentials", "must be a credentials JSON object with a 'type'")


def load_provider(name: str) -> AnyProvider:
    """The provider object for ``name``, built (and its module imported) on first use."""
    provider = _LOADED.get(name)
    if provider is not None:
        return provider
    spec = SPECS.get(name)
    if spec is None:
        if name in PLANNED_PROVIDERS:
            raise GatewayError(400, f"provider {name!r} is not supported by this anygate version")
        raise GatewayError(500, f"unknown provider {name!r}", error_type="api_error")
    module_name, _, attribute = spec.loader.partition(":")
    factory = getattr(importlib.import_module(module_name), attribute)
    built: AnyProvider = factory() if spec.argument is None else factory(spec.argument)
    _LOADED[name] = built
    return built


def split_model(model: str) -> tuple[str, str] | None:
    """``"openai/gpt-4o"`` → ``("openai", "gpt-4o")``; a bare well-known name gets its provider;
    None when the provider cannot be told."""
    prefix, slash, rest = model.partition("/")
    if slash and (prefix in SPECS or prefix in PLANNED_PROVIDERS):
        return api_variant(prefix, rest)
    for pattern, provider in _WELL_KNOWN_MODELS:
        if pattern.match(model):
            return provider, model
    return None


def api_variant(provider: str, upstream_model: str, *, responses: bool = False) -> tuple[str, str]:
    """The provider that serves ``upstream_model``: the Responses API variant when the model is spelled
    ``responses/<model>`` or ``responses`` says so (a deployment's switch), else ``provider`` itself."""
    variant = provider + RESPONSES_SUFFIX
    if variant not in SPECS:
        return provider, upstream_model
    if upstream_model.startswith(RESPONSES_PREFIX):
        return variant, upstream_model.removeprefix(RESPONSES_PREFIX)
    return (variant if responses else provider), upstream_model


def default_api_key_env(provider: str) -> tuple[str, ...]:
    """The environment variables a provider's key is read from when none is configured."""
    spec = SPECS.get(provider)
    return spec.api_key_env if spec is not None else ()
