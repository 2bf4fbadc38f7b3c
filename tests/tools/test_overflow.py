"""Upstream context-window errors → Anthropic's too-long-prompt errors, message by message."""

from __future__ import annotations

import json
import re

import pytest

from anygate.protocol.errors import GatewayError, UpstreamError, UpstreamFailure
from anygate.tokens import count_request_tokens, estimate_request_tokens
from anygate.tools.overflow import as_prompt_too_long, figures_in, input_bound, is_overflow

ANTHROPIC_PROMPT_TOO_LONG = re.compile(r"^prompt is too long: \d+ tokens > \d+ maximum$")
"""The message Claude Code 2.1.328 lists as Anthropic's (and reads N and M from)."""

# (upstream, message, expected figures: input, output, limit)
MESSAGES = [
    (
        "openai",
        "This model's maximum context length is 128000 tokens. However, your messages resulted in 130021 "
        "tokens (including 52 in the functions). Please reduce the length of the messages or functions.",
        (130021, None, 128000),
    ),
    (
        "openai (older) / deepseek",
        "This model's maximum context length is 65536 tokens. However, you requested 70000 tokens (69000 in "
        "the messages, 1000 in the completion). Please reduce the length of the messages or completion.",
        (69000, 1000, 65536),
    ),
    (
        "vllm",
        "This model's maximum context length is 4096 tokens. However, your request has 5000 input tokens. "
        "Please reduce the length of the input messages.",
        (5000, None, 4096),
    ),
    (
        "vllm max_tokens",
        "'max_tokens' or 'max_completion_tokens' is too large: 2000. This model's maximum context length "
        "is 4096 tokens and your request has 3000 input tokens (2000 > 4096 - 3000).",
        (3000, 2000, 4096),
    ),
    (
        "mistral",
        "Prompt contains 40000 tokens and 0 draft tokens, too large for model with 32768 maximum context "
        "length",
        (40000, None, 32768),
    ),
    (
        "llama.cpp",
        "request (5000 tokens) exceeds the available context size (4096 tokens), try increasing it",
        (5000, None, 4096),
    ),
    (
        "tgi / together",
        "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 8192. Given: 8000 `inputs` "
        "tokens and 1000 `max_new_tokens`",
        (8000, 1000, 8192),
    ),
    (
        "gemini (openai-compatible)",
        "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
        (1200000, None, 1048576),
    ),
    (
        "lm studio",
        "Trying to keep the first 5000 tokens when context the overflows. However, the model is loaded "
        "with context length of 4096 tokens, which is not enough.",
        (5000, None, 4096),
    ),
    ("openai responses", "Your input exceeds the context window of this model.", (None, None, None)),
]


@pytest.mark.parametrize(("message", "figures"), [m[1:] for m in MESSAGES], ids=[m[0] for m in MESSAGES])
def test_every_upstream_wording_is_an_overflow_with_its_figures(
    message: str, figures: tuple[int | None, int | None, int | None]
) -> None:
    error = UpstreamError(400, message)
    assert is_overflow(error)
    said = figures_in(message)
    assert (said.input_tokens, said.output_tokens, said.limit) == figures


def test_the_anthropic_error_carries_the_upstream_figures() -> None:
    error = as_prompt_too_long(UpstreamError(400, MESSAGES[0][1]), counted=120000, configured_limit=None)
    assert (error.status, error.error_type) == (400, "invalid_request_error")
    assert error.message == "prompt is too long: 130021 tokens > 128000 maximum"
    assert ANTHROPIC_PROMPT_TOO_LONG.match(error.message)


def test_a_prompt_that_fits_but_leaves_no_room_for_max_tokens_gets_anthropics_max_tokens_error() -> None:
    error = as_prompt_too_long(UpstreamError(400, MESSAGES[3][1]), counted=2900, configured_limit=None)
    assert error.message == (
        "input length and `max_tokens` exceed context limit: 3000 + 2000 > 4096, decrease input length "
        "or `max_tokens` and try again"
    )


def test_without_figures_the_local_count_and_configured_window_are_used() -> None:
    error = as_prompt_too_long(UpstreamError(400, MESSAGES[-1][1]), counted=9000, configured_limit=8000)
    assert error.message == "prompt is too long: 9000 tokens > 8000 maximum"


def test_when_the_local_count_disagrees_the_upstream_reason_is_kept() -> None:
    error = as_prompt_too_long(UpstreamError(400, MESSAGES[-1][1]), counted=7000, configured_limit=8000)
    assert error.message == f"prompt is too long: {MESSAGES[-1][1]}"
    no_window = as_prompt_too_long(UpstreamError(413, MESSAGES[-1][1]), counted=7000, configured_limit=None)
    assert no_window.status == 400 and no_window.message.startswith("prompt is too long: ")


@pytest.mark.parametrize(
    "error",
    [
        UpstreamFailure(429, "Rate limit reached: too many tokens per minute"),
        UpstreamError(400, "messages.0.content: field required"),
        GatewayError(400, "maximum context length is 10 tokens"),  # the gateway's own, not an upstream's
        UpstreamFailure(500, "context length exceeded while loading"),
    ],
)
def test_other_failures_are_not_overflows(error: GatewayError) -> None:
    assert not is_overflow(error)


@pytest.mark.parametrize(
    "text",
    [
        "plain ascii words and more words",
        "ünïcödé — “quotes” ✓ 漢字かな交じり文 🙂🙃",
        "x" * 5000,
        '{}[]"\\\n\t' * 50,
    ],
)
def test_the_cheap_bound_is_never_below_the_tokenizer_count(text: str) -> None:
    request = {
        "model": "m",
        "max_tokens": 10,
        "system": text,
        "messages": [
            {"role": "user", "content": text},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"q": text}}],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": text}]},
            {
                "role": "user",
                "content": [{"type": "image", "source": {"type": "url", "url": "http://x/a.png"}}],
            },
        ],
        "tools": [{"name": "f", "description": text, "input_schema": {"type": "object"}}],
    }
    bound = min(input_bound(request), input_bound(request, len(json.dumps(request))))  # as a client sends it
    assert bound >= count_request_tokens(request, "gpt-4o")
    assert bound >= count_request_tokens(request, "gpt-4")
    assert bound >= estimate_request_tokens(request)
