"""Anthropic's thinking settings → a Chat Completions reasoning effort.

Anthropic asks for thinking with a token budget (``thinking: {"type": "enabled", "budget_tokens": N}``),
with ``adaptive`` (the model decides), or with ``output_config.effort``; Chat Completions upstreams take
a coarse ``reasoning_effort``. The thresholds on the budget:

====================  ==================
``budget_tokens``     ``reasoning_effort``
====================  ==================
below 4,096           ``low``
4,096 to 16,383       ``medium``
16,384 and above      ``high``
====================  ==================

``adaptive`` → ``medium``; ``disabled`` → ``none``. An explicit ``output_config.effort`` wins over the
budget (it states the effort directly); thinking ``disabled`` wins over both. Without any of these no
effort is sent and the upstream uses its default.
"""

from __future__ import annotations

from typing import Any, Final

LOW_BUDGET_LIMIT: Final = 4096
"""Budgets below this are ``low``."""
HIGH_BUDGET_FROM: Final = 16384
"""Budgets from this on are ``high``; those in between are ``medium``."""

_OUTPUT_EFFORT_TO_REASONING_EFFORT: Final[dict[str, str]] = {
    "none": "none",
    "minimal": "minimal",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "xhigh",
    "max": "xhigh",
}
"""Anthropic ``output_config.effort`` → ``reasoning_effort`` (``max`` is OpenAI's ``xhigh``)."""


def budget_to_effort(budget_tokens: int) -> str:
    """The reasoning effort for a thinking budget (see the module's table)."""
    if budget_tokens < LOW_BUDGET_LIMIT:
        return "low"
    if budget_tokens < HIGH_BUDGET_FROM:
        return "medium"
    return "high"


def requested_effort(request: dict[str, Any]) -> str | None:
    """The reasoning effort the Anthropic request asks for, or None when it says nothing."""
    thinking = request.get("thinking")
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind == "disabled":
        return "none"
    output_config = request.get("output_config")
    if isinstance(output_config, dict):
        effort = _OUTPUT_EFFORT_TO_REASONING_EFFORT.get(str(output_config.get("effort")))
        if effort is not None:
            return effort
    if kind == "adaptive":
        return "medium"
    if kind == "enabled" and isinstance(thinking, dict):
        budget = thinking.get("budget_tokens")
        if isinstance(budget, int):
            return budget_to_effort(budget)
        return "medium"
    return None
