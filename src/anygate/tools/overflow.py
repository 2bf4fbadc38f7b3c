"""A prompt that does not fit the model's window, answered the way Anthropic's API answers it.

Claude Code recovers from a too-long prompt by compacting the conversation, but only when it recognises
the error: Claude Code 2.1 looks for ``prompt is too long`` in the message of a 400 (or 413) error and
reads ``N tokens > M maximum`` for how much to cut; for ``input length and `max_tokens` exceed context
limit: N + K > M`` it lowers ``max_tokens`` and retries. Every other upstream words the same failure its
own way (OpenAI's ``context_length_exceeded``, vLLM's ``maximum context length``, llama.cpp's
``available context size``…), which Claude Code either misses or cannot size, and then retries or gives
up instead of compacting.

So an upstream's context-window error becomes Anthropic's exact error, with the token figures the
upstream gave or, failing that, a local count and the deployment's ``model_info.max_input_tokens``. A
deployment with ``max_input_tokens`` configured refuses a request that is known to exceed it before it
is sent (:func:`input_bound` keeps that check cheap). Both errors still say "prompt is too long", so
``context_window_fallbacks`` (:func:`anygate.routing.retry.fallbacks_for`) are tried first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from anygate.protocol.errors import GatewayError, UpstreamError
from anygate.routing.retry import CONTEXT_WINDOW_MARKERS
from anygate.tokens import IMAGE_TOKENS

MEDIA_BLOCKS: Final = frozenset({"image", "document"})
"""Blocks a counter prices at a flat rate rather than by their bytes."""
OVERFLOW_STATUSES: Final = frozenset({400, 413})
"""Statuses (as mapped for the client) under which an upstream reports a context overflow."""

OVERFLOW_MARKERS: Final = (
    *CONTEXT_WINDOW_MARKERS,
    "context_length_exceeded", "available context size", "maximum model length", "input is too long",
    "exceeds the maximum number of tokens", "maximum prompt length", "prompt exceeds max length",
    "too large for model", "model only supports up to", "`inputs` tokens + `max_new_tokens`",
)  # fmt: skip
"""Phrases (lower case) by which upstreams say a request exceeds the model's window."""

_LIMIT_PATTERNS: Final = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        r"maximum context length is (\d+)",
        r"(\d+) maximum context length",
        r"available context size \((\d+) tokens?\)",
        r"maximum number of tokens allowed \((\d+)\)",
        r"must be <= (\d+)",
        r"context (?:window|length) of (\d+)",
        r"model only supports up to (\d+)",
        r"tokens > (\d+) maximum",
    )
)
"""Where upstream messages state the model's window (OpenAI, vLLM, Mistral, llama.cpp, TGI, Gemini)."""
_INPUT_PATTERNS: Final = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        r"(\d+) in the messages",
        r"messages resulted in (\d+) tokens",
        r"request has (\d+) input tokens",
        r"prompt contains (\d+) tokens",
        r"request \((\d+) tokens?\) exceeds",
        r"input token count \((\d+)\)",
        r"given: (\d+) `inputs` tokens",
        r"prompt is too long: (\d+) tokens",
        r"keep the first (\d+) tokens",
    )
)
"""Where upstream messages state the prompt's size."""
_OUTPUT_PATTERNS: Final = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (r"(\d+) in the completion", r"and (\d+) `max_new_tokens`", r"is too large: (\d+)")
)
"""Where upstream messages state the output tokens asked for (the window holds both)."""


@dataclass(frozen=True, slots=True)
class Figures:
    """What an upstream said about the overflow: prompt tokens, output tokens asked, the window."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    limit: int | None = None


def _first(patterns: tuple[re.Pattern[str], ...], message: str) -> int | None:
    for pattern in patterns:
        match = pattern.search(message)
        if match is not None:
            return int(match[1])
    return None


def figures_in(message: str) -> Figures:
    """The token figures an upstream's context-window message states (each None when absent)."""
    return Figures(
        _first(_INPUT_PATTERNS, message), _first(_OUTPUT_PATTERNS, message), _first(_LIMIT_PATTERNS, message)
    )


def is_overflow(error: GatewayError) -> bool:
    """Whether ``error`` is an upstream saying the request does not fit the model's context window."""
    if not isinstance(error, UpstreamError) or error.status not in OVERFLOW_STATUSES:
        return False
    message = error.message.lower()
    return any(marker in message for marker in OVERFLOW_MARKERS)


def max_input_tokens(model_info: Mapping[str, Any]) -> int | None:
    """A deployment's configured input window (``model_info.max_input_tokens``), if any."""
    limit = model_info.get("max_input_tokens") if model_info else None
    return limit if isinstance(limit, int) and limit > 0 else None


def prompt_too_long(input_tokens: int, limit: int) -> GatewayError:
    """Anthropic's error for a prompt over the window, exactly as its API words it."""
    return UpstreamError(400, f"prompt is too long: {input_tokens} tokens > {limit} maximum")


def output_does_not_fit(input_tokens: int, max_tokens: int, limit: int) -> GatewayError:
    """Anthropic's error for a prompt that fits but leaves no room for ``max_tokens``."""
    return UpstreamError(
        400,
        f"input length and `max_tokens` exceed context limit: {input_tokens} + {max_tokens} > {limit}, "
        "decrease input length or `max_tokens` and try again",
    )


def as_prompt_too_long(
    error: GatewayError, counted: int | None, configured_limit: int | None
) -> GatewayError:
    """The Anthropic error for an upstream's context-window error.

    Figures come from the upstream's message first (it knows its tokenizer), then from ``counted`` (a
    local count of the request) and ``configured_limit`` (``max_input_tokens``). When the figures show
    the prompt itself fits and only the output asked for does not, the answer is Anthropic's
    ``max_tokens`` error, which Claude Code fixes by asking for less. When no figures say the prompt is
    over (the local count disagrees with the upstream), the message keeps the upstream's reason after
    ``prompt is too long:``, which Claude Code still compacts on.
    """
    said = figures_in(error.message)
    tokens = said.input_tokens if said.input_tokens is not None else counted
    limit = said.limit if said.limit is not None else configured_limit
    if tokens is not None and limit is not None:
        if tokens > limit:
            return prompt_too_long(tokens, limit)
        if said.output_tokens is not None and tokens + said.output_tokens > limit:
            return output_does_not_fit(tokens, said.output_tokens, limit)
    return UpstreamError(400, f"prompt is too long: {error.message}")


def input_bound(request: dict[str, Any], body_size: int | None = None) -> int:
    """An upper bound on the request's input tokens for any byte-level BPE tokenizer, cheaply.

    A token is at least one byte of the text it encodes, and the JSON of a request holds every text a
    counter reads plus more bytes of framing than the counters add per message and tool (any JSON
    encoding of a text, escaped or not, is at least as long as its UTF-8). Images and binary documents
    are added at the counters' flat rate. ``body_size`` is the client's JSON body length when known (its
    ``content-length``; the gateway's changes only shrink a request), which saves serialising it again.
    A request whose bound is within the window needs no count at all.
    """
    size = body_size if body_size is not None else len(orjson.dumps(request))
    return size + IMAGE_TOKENS * _media_blocks(request)


def _media_blocks(request: dict[str, Any]) -> int:
    """Images and documents in user turns (where a request can carry them), tool results included."""
    count = 0
    for message in request.get("messages") or ():
        content = message.get("content")
        if message.get("role") != "user" or not isinstance(content, list):
            continue
        for block in content:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind in MEDIA_BLOCKS:
                count += 1
            elif kind == "tool_result" and isinstance(inner := block.get("content"), list):
                count += sum(
                    1 for part in inner if isinstance(part, dict) and part.get("type") in MEDIA_BLOCKS
                )
    return count


def client_body_size(headers: Mapping[str, str]) -> int | None:
    """The client's body length from its headers, when it is the uncompressed JSON's length."""
    length = headers.get("content-length")
    if length is None or headers.get("content-encoding") or not length.isdigit():
        return None
    return int(length)
