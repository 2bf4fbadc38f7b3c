"""Provider names (the ``<provider>/`` prefix of a model) → provider objects, and well-known models.

Adding an upstream API means adding a module and one entry here.
"""

from __future__ import annotations

import re
from typing import Final

from anygate.providers.anthropic import AnthropicProvider
from anygate.providers.base import LocalProvider, Provider
from anygate.providers.mock import MockProvider
from anygate.providers.openai_chat import OPENAI_COMPATIBLE_PROVIDERS

AnyProvider = Provider | LocalProvider

PROVIDERS: Final[dict[str, AnyProvider]] = {
    "anthropic": AnthropicProvider(),
    "mock": MockProvider(),
    **OPENAI_COMPATIBLE_PROVIDERS,
}

PLANNED_PROVIDERS: Final = frozenset({"gemini", "vertex_ai", "bedrock"})
"""Providers whose model names are recognised in configs but which this version cannot call yet."""

_WELL_KNOWN_MODELS: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    (re.compile(r"^claude-"), "anthropic"),
    (re.compile(r"^(gpt-|chatgpt-|o1|o3|o4|codex-)"), "openai"),
    (re.compile(r"^gemini-"), "gemini"),
)
"""How a ``model`` without a provider prefix is resolved, as LiteLLM resolves well-known names."""


def split_model(model: str) -> tuple[str, str] | None:
    """``"openai/gpt-4o"`` → ``("openai", "gpt-4o")``; a bare well-known name gets its provider;
    None when the provider cannot be told."""
    prefix, slash, rest = model.partition("/")
    if slash and (prefix in PROVIDERS or prefix in PLANNED_PROVIDERS):
        return prefix, rest
    for pattern, provider in _WELL_KNOWN_MODELS:
        if pattern.match(model):
            return provider, model
    return None


def default_api_key_env(provider: str) -> tuple[str, ...]:
    """The environment variables a provider's key is read from when none is configured."""
    impl = PROVIDERS.get(provider)
    return getattr(impl, "api_key_env", ())
