"""Anthropic models on Vertex AI: the Messages API behind ``rawPredict`` / ``streamRawPredict``.

The body is the client's Anthropic request without ``model`` (the URL names it) and with
``anthropic_version: "vertex-2023-10-16"``; answers are Anthropic Messages and streams, relayed by the
Anthropic passthrough's own relay (usage read on the way, a stream without ``message_stop`` fails).
Vertex rejects ``anthropic-beta`` values it does not serve, so the client's betas are filtered to what
each endpoint accepts (the token counter accepts fewer). Thinking blocks that another provider's state
rode in (``anygate.`` signatures) are dropped, as for Anthropic itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson

from anygate.providers.anthropic import strip_gateway_thinking

VERTEX_ANTHROPIC_VERSION: Final = "vertex-2023-10-16"

VERTEX_MESSAGES_BETAS: Final = frozenset(
    {
        "claude-code-20250219",
        "compact-2026-01-12",
        "computer-use-2025-01-24",
        "computer-use-2025-11-24",
        "context-1m-2025-08-07",
        "context-management-2025-06-27",
        "effort-2025-11-24",
        "fine-grained-tool-streaming-2025-05-14",
        "interleaved-thinking-2025-05-14",
        "mid-conversation-tool-changes-2026-07-01",
        "model-context-window-exceeded-2025-08-26",
        "output-128k-2025-02-19",
        "pdfs-2024-09-25",
        "prompt-caching-2024-07-31",
        "redact-thinking-2026-02-12",
        "structured-outputs-2025-11-13",
        "token-efficient-tools-2025-02-19",
        "tool-search-tool-2025-10-19",
        "web-search-2025-03-05",
        "extended-cache-ttl-2025-04-11",
    }
)
"""``anthropic-beta`` values the Vertex ``rawPredict`` endpoints accept (LiteLLM's table of Vertex betas,
which tracks Google's documentation); others (files, MCP, code execution, skills…) are not offered."""

VERTEX_COUNT_TOKENS_BETAS: Final = frozenset(
    {"context-management-2025-06-27", "compact-2026-01-12", "mid-conversation-tool-changes-2026-07-01"}
)
"""The betas the Vertex count-tokens endpoint accepts; every other value makes it fail."""

BETA_ALIASES: Final[Mapping[str, str]] = {"advanced-tool-use-2025-11-20": "tool-search-tool-2025-10-19"}
"""Betas Vertex knows under another name."""


def filtered_betas(header: str | None, accepted: frozenset[str]) -> str | None:
    """The client's ``anthropic-beta`` header with only the values ``accepted``, or None."""
    if not header:
        return None
    kept: list[str] = []
    for value in header.split(","):
        name = BETA_ALIASES.get(value.strip(), value.strip())
        if name in accepted and name not in kept:
            kept.append(name)
    return ",".join(kept) or None


def messages_body(request: dict[str, Any], *, stream: bool) -> bytes:
    """The ``rawPredict`` body for an Anthropic Messages request."""
    body = {key: value for key, value in strip_gateway_thinking(request).items() if key != "model"}
    body["anthropic_version"] = VERTEX_ANTHROPIC_VERSION
    if stream:
        body["stream"] = True
    else:
        body.pop("stream", None)
    return orjson.dumps(body)


def count_tokens_body(request: dict[str, Any], model: str) -> bytes:
    """The count-tokens body: the request with the model named without its ``@version`` (the endpoint
    rejects versioned names)."""
    body = dict(strip_gateway_thinking(request))
    body["model"] = model.split("@", 1)[0]
    return orjson.dumps(body)
