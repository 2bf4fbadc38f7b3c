"""Presets: where each service lives, how the key is sent, and how tokens are counted."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
import pytest

import anygate.tokens as tokens
from anygate.protocol.errors import GatewayError
from anygate.providers.openai_chat.presets import PRESETS
from anygate.providers.openai_chat.provider import OpenAIChatProvider
from anygate.providers.registry import default_api_key_env, load_provider, split_model
from tests.providers.openai_support import build, context, deployment, provider

REQUEST: dict[str, Any] = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
DEFAULT_URLS = {
    "openai": "https://api.openai.com/v1/chat/completions",
    "ollama": "http://localhost:11434/v1/chat/completions",
    "ollama_chat": "http://localhost:11434/v1/chat/completions",
    "openrouter": "https://openrouter.ai/api/v1/chat/completions",
    "groq": "https://api.groq.com/openai/v1/chat/completions",
    "deepseek": "https://api.deepseek.com/v1/chat/completions",
    "together_ai": "https://api.together.xyz/v1/chat/completions",
    "fireworks_ai": "https://api.fireworks.ai/inference/v1/chat/completions",
    "xai": "https://api.x.ai/v1/chat/completions",
    "mistral": "https://api.mistral.ai/v1/chat/completions",
    "lm_studio": "http://localhost:1234/v1/chat/completions",
}
NEEDS_API_BASE = {"azure", "hosted_vllm", "vllm", "openai_compatible"}


def test_every_preset_is_registered_with_its_key_variable() -> None:
    names = {preset.name for preset in PRESETS}
    assert names == set(DEFAULT_URLS) | NEEDS_API_BASE
    for name in names:
        loaded = load_provider(name)
        assert isinstance(loaded, OpenAIChatProvider) and loaded.preset.name == name
        assert split_model(f"{name}/some-model") == (name, "some-model")
    assert default_api_key_env("openai") == ("OPENAI_API_KEY",)
    assert default_api_key_env("azure")[0] == "AZURE_API_KEY"
    assert default_api_key_env("together_ai")[0] == "TOGETHERAI_API_KEY"
    assert default_api_key_env("fireworks_ai")[0] == "FIREWORKS_AI_API_KEY"


@pytest.mark.parametrize("provider", sorted(DEFAULT_URLS))
def test_default_base_urls_and_bearer_key(provider: str) -> None:
    _, upstream, _ = build(REQUEST, provider=provider, model="m", api_key="sk-secret-1")
    assert upstream.url == DEFAULT_URLS[provider]
    assert upstream.headers["authorization"] == "Bearer sk-secret-1"


@pytest.mark.parametrize("provider", sorted(NEEDS_API_BASE))
def test_api_base_is_required_where_there_is_no_default(provider: str) -> None:
    with pytest.raises(GatewayError) as caught:
        build(REQUEST, provider=provider, model="m")
    assert caught.value.status == 500 and "api_base" in caught.value.message


def test_configured_api_base_and_headers() -> None:
    _, upstream, _ = build(
        REQUEST,
        provider="hosted_vllm",
        model="Qwen/Qwen3-8B",
        api_base="http://gpu-box:8000/v1/",
        organization="org-1",
        extra_headers={"x-team": "a"},
    )
    assert upstream.url == "http://gpu-box:8000/v1/chat/completions"
    assert upstream.headers == {
        "content-type": "application/json",
        "openai-organization": "org-1",
        "x-team": "a",
    }


def test_azure_deployment_url_and_api_key_header() -> None:
    body, upstream, _ = build(
        REQUEST, provider="azure", model="my-gpt4o", api_base="https://res.openai.azure.com/", api_key="azkey"
    )
    assert (
        upstream.url
        == "https://res.openai.azure.com/openai/deployments/my-gpt4o/chat/completions?api-version=2024-10-21"
    )
    assert upstream.headers["api-key"] == "azkey" and "authorization" not in upstream.headers
    _, versioned, _ = build(
        REQUEST,
        provider="azure",
        model="d",
        api_base="https://r.openai.azure.com",
        api_version="2025-01-01-preview",
    )
    assert versioned.url.endswith("/openai/deployments/d/chat/completions?api-version=2025-01-01-preview")
    assert body["max_completion_tokens"] == 10


def test_count_tokens_with_tiktoken_for_openai_models() -> None:
    openai = provider("openai")
    assert openai.prepare_count_tokens(deployment(), REQUEST, context(REQUEST)) is None
    assert tokens.encoding_name_for_model("gpt-4o-mini") == "o200k_base"
    assert tokens.encoding_name_for_model("o3") == "o200k_base"
    assert tokens.encoding_name_for_model("gpt-5-nano") == "o200k_base"
    assert tokens.encoding_name_for_model("gpt-4-turbo") == "cl100k_base"
    assert tokens.encoding_name_for_model("gpt-3.5-turbo") == "cl100k_base"
    assert tokens.count_text_tokens("hello world", "gpt-4o") == 2
    request = {
        **REQUEST,
        "system": "Be brief.",
        "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}}],
    }
    count = openai.count_tokens_locally(deployment(), request)
    assert (
        count
        == tokens.count_request_tokens(request, "gpt-4o")
        > tokens.count_request_tokens(REQUEST, "gpt-4o")
        > 1
    )


def test_vllm_counts_with_its_tokenize_endpoint() -> None:
    vllm = provider("hosted_vllm")
    request = {**REQUEST, "system": "sys", "tools": [{"name": "f", "input_schema": {"type": "object"}}]}
    call = vllm.prepare_count_tokens(
        deployment("hosted_vllm", "Qwen/Qwen3-8B", api_base="http://gpu:8000/v1", api_key="k"),
        request,
        context(request),
    )
    assert call is not None
    upstream = call.request
    assert upstream.url == "http://gpu:8000/tokenize"
    assert upstream.headers["authorization"] == "Bearer k"
    body = orjson.loads(upstream.body)
    assert body["model"] == "Qwen/Qwen3-8B" and body["add_generation_prompt"] is True
    assert body["messages"] == [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}]
    assert body["tools"][0]["function"]["name"] == "f"
    assert call.parse(b'{"count": 17, "max_model_len": 32768, "tokens": []}') == 17
    with pytest.raises(ValueError):
        call.parse(b'{"tokens": []}')


def test_without_encoding_files_counting_falls_back_to_the_estimate_and_says_so_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    monkeypatch.setattr(tokens, "TOKENIZERS", tmp_path)  # an install that lost its encoding files
    monkeypatch.setattr(tokens, "_LOADED", {})
    with caplog.at_level(logging.WARNING, logger="anygate.tokens"):
        first = tokens.count_request_tokens(REQUEST, "gpt-4o")
        tokens.count_text_tokens("more text", "gpt-4")
    assert first == tokens.estimate_request_tokens(REQUEST) > 0
    assert tokens.count_text_tokens("hello world", "gpt-4o") == tokens.estimate_text_tokens("hello world")
    warnings = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(warnings) == 1 and "anygate/tokenizers" in warnings[0].getMessage()
