"""The OpenAI-compatible services as data: one :class:`Preset` per ``<provider>/`` prefix.

Every service here speaks Chat Completions; they differ only in where they live, how the key is sent and
a handful of quirks. Supporting another service is one line in :data:`PRESETS`.

Facts behind the quirks (from each service's documentation):

- ``max_completion_tokens``: OpenAI's o-series reject ``max_tokens``; OpenAI, Azure OpenAI and Groq
  document ``max_completion_tokens`` as the current name. Everyone else takes ``max_tokens``.
- ``top_k``: accepted by vLLM, OpenRouter, Together, Fireworks and LM Studio; OpenAI, Azure, Groq,
  DeepSeek, xAI and Mistral have no such parameter (Mistral rejects unknown fields).
- Reasoning output arrives as ``reasoning_content`` (DeepSeek, vLLM before 0.10, xAI, Fireworks, LM
  Studio) or ``reasoning`` (OpenRouter, Groq, Ollama, newer vLLM); the translator reads both.
- DeepSeek's thinking mode requires the ``reasoning_content`` of assistant turns that made tool calls to be
  sent back in later requests, or it answers 400.
- Reasoning effort: OpenAI and Azure accept ``reasoning_effort`` only on reasoning models (o-series,
  gpt-5), and ``"none"`` only from gpt-5.1 on; xAI accepts it on grok-3-mini only; OpenRouter takes a
  ``reasoning: {"effort": …}`` object; DeepSeek toggles thinking with ``thinking: {"type": …}``.
- Mistral rejects tool call ids that are not exactly nine letters or digits, and fields it does not know
  (``stream_options``, ``user``); it reports usage in its last chunk unasked.
- vLLM serves ``POST /tokenize`` beside ``/v1``, which counts a chat request exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

AuthStyle = Literal["bearer", "api-key"]
MaxTokensField = Literal["max_tokens", "max_completion_tokens"]
ReasoningParam = Literal["reasoning_effort", "reasoning_object"]
ToolIdStyle = Literal["any", "alnum9"]


@dataclass(frozen=True, slots=True)
class Preset:
    """One OpenAI-compatible service.

    Attributes:
        name: the ``<provider>/`` prefix of model names.
        api_key_env: environment variables the key is read from when the config gives none.
        default_api_base: the service's base URL (ending in ``/v1``); None when ``api_base`` is required.
        auth: ``bearer`` (``Authorization: Bearer``) or ``api-key`` (Azure's header).
        max_tokens_field: the request field that carries ``max_tokens``.
        accepts_top_k: whether ``top_k`` is forwarded.
        reasoning_param: how a reasoning effort is sent; None: never sent.
        reasoning_models: a regex on the upstream model; effort is sent only to matching models (None: all).
        effort_none_models: a regex of models that accept effort ``"none"`` (None: all that take effort).
        thinking_toggle: send ``thinking: {"type": "enabled"|"disabled"}`` as DeepSeek wants.
        reasoning_back_field: the assistant-message field that carries earlier reasoning back upstream
            (None: thinking blocks are dropped from requests).
        stream_usage: whether ``stream_options.include_usage`` may be sent.
        accepts_user: whether ``metadata.user_id`` may be sent as ``user``.
        tool_id_style: ``alnum9`` rewrites tool call ids to nine letters and digits (Mistral).
        tokenize_endpoint: whether ``{root}/tokenize`` counts tokens (vLLM).
        azure_urls: the deployment URL shape and ``api-version`` query of Azure OpenAI.
    """

    name: str
    api_key_env: tuple[str, ...]
    default_api_base: str | None
    auth: AuthStyle = "bearer"
    max_tokens_field: MaxTokensField = "max_tokens"
    accepts_top_k: bool = False
    reasoning_param: ReasoningParam | None = "reasoning_effort"
    reasoning_models: str | None = None
    effort_none_models: str | None = None
    thinking_toggle: bool = False
    reasoning_back_field: str | None = None
    stream_usage: bool = True
    accepts_user: bool = True
    tool_id_style: ToolIdStyle = "any"
    tokenize_endpoint: bool = False
    azure_urls: bool = False

    def takes_effort(self, model: str) -> bool:
        """Whether a reasoning effort may be sent for ``model``."""
        if self.reasoning_param is None:
            return False
        return self.reasoning_models is None or re.search(self.reasoning_models, model) is not None

    def takes_effort_none(self, model: str) -> bool:
        """Whether effort ``"none"`` (thinking disabled) may be sent for ``model``."""
        if not self.takes_effort(model):
            return False
        return self.effort_none_models is None or re.search(self.effort_none_models, model) is not None


DEFAULT_AZURE_API_VERSION: Final = "2024-10-21"
"""The Azure OpenAI GA api-version used when a deployment configures none."""

_OPENAI_REASONING_MODELS: Final = r"^(o\d|gpt-5|codex)"
_OPENAI_EFFORT_NONE_MODELS: Final = r"^gpt-5\.\d"

PRESETS: Final[tuple[Preset, ...]] = (
    Preset("openai", ("OPENAI_API_KEY",), "https://api.openai.com/v1",
           max_tokens_field="max_completion_tokens", reasoning_models=_OPENAI_REASONING_MODELS,
           effort_none_models=_OPENAI_EFFORT_NONE_MODELS),
    Preset("azure", ("AZURE_API_KEY", "AZURE_OPENAI_API_KEY"), None, auth="api-key",
           max_tokens_field="max_completion_tokens", reasoning_models=_OPENAI_REASONING_MODELS,
           effort_none_models=_OPENAI_EFFORT_NONE_MODELS, azure_urls=True),
    Preset("hosted_vllm", ("HOSTED_VLLM_API_KEY",), None, accepts_top_k=True, tokenize_endpoint=True),
    Preset("vllm", ("VLLM_API_KEY", "HOSTED_VLLM_API_KEY"), None, accepts_top_k=True, tokenize_endpoint=True),
    Preset("ollama", ("OLLAMA_API_KEY",), "http://localhost:11434/v1"),
    Preset("ollama_chat", ("OLLAMA_API_KEY",), "http://localhost:11434/v1"),
    Preset("openrouter", ("OPENROUTER_API_KEY",), "https://openrouter.ai/api/v1", accepts_top_k=True,
           reasoning_param="reasoning_object"),
    Preset("groq", ("GROQ_API_KEY",), "https://api.groq.com/openai/v1",
           max_tokens_field="max_completion_tokens"),
    Preset("deepseek", ("DEEPSEEK_API_KEY",), "https://api.deepseek.com/v1", thinking_toggle=True,
           reasoning_back_field="reasoning_content"),
    Preset("together_ai", ("TOGETHERAI_API_KEY", "TOGETHER_API_KEY"), "https://api.together.xyz/v1",
           accepts_top_k=True),
    Preset("fireworks_ai", ("FIREWORKS_AI_API_KEY", "FIREWORKS_API_KEY"), "https://api.fireworks.ai/inference/v1",
           accepts_top_k=True),
    Preset("xai", ("XAI_API_KEY",), "https://api.x.ai/v1", reasoning_models=r"^grok-3-mini"),
    Preset("mistral", ("MISTRAL_API_KEY",), "https://api.mistral.ai/v1", stream_usage=False,
           accepts_user=False, tool_id_style="alnum9"),
    Preset("lm_studio", ("LM_STUDIO_API_KEY",), "http://localhost:1234/v1", accepts_top_k=True),
    Preset("openai_compatible", ("OPENAI_COMPATIBLE_API_KEY",), None),
)  # fmt: skip
"""Every OpenAI-compatible provider anygate knows; add a service with one line."""
