"""Anthropic's thinking settings → Gemini's ``thinkingConfig``, by model family.

Gemini 2.5 takes a token budget (``thinkingBudget``; -1 lets the model decide, 0 turns thinking off where
the model allows it); Gemini 3 takes a level (``thinkingLevel``) and cannot turn thinking off. Older
models take no thinking settings at all. ``includeThoughts`` asks for the thought text, shown as thinking
blocks; it is set when the client asked for thinking (and did not ask for it to be omitted).

=====================================  =====================  =========================================
Anthropic                              Gemini 2.5             Gemini 3
=====================================  =====================  =========================================
``enabled``, ``budget_tokens: N``      ``thinkingBudget: N``  level from the effort of N (below)
``adaptive``                           ``thinkingBudget: -1`` model default
``disabled``                           ``thinkingBudget: 0``  ``minimal`` (Flash) or the model default
                                       (Flash models)
``output_config.effort``               budget of the effort   level of the effort
=====================================  =====================  =========================================

Efforts of a budget follow the OpenAI translator's thresholds (below 4,096 ``low``, below 16,384
``medium``, else ``high``). Gemini 3 Pro takes ``low`` and ``high`` only; Flash also ``minimal`` and
``medium``.
"""

from __future__ import annotations

import re
from typing import Any, Final

from anygate.providers.openai_chat.reasoning import budget_to_effort

EFFORT_TO_BUDGET: Final[dict[str, int]] = {"minimal": 512, "low": 1024, "medium": 8192, "high": 24576}
"""Gemini 2.5 budgets for an explicit effort (``max`` and ``xhigh`` let the model decide: -1)."""
PRO_LEVELS: Final[dict[str, str]] = {"minimal": "low", "low": "low", "medium": "high", "high": "high"}
FLASH_LEVELS: Final[dict[str, str]] = {
    "minimal": "minimal",
    "low": "low",
    "medium": "medium",
    "high": "high",
}
"""Effort → ``thinkingLevel`` for Gemini 3 Pro and Flash; ``max`` and ``xhigh`` are ``high``."""
DYNAMIC_BUDGET: Final = -1

_VERSION: Final = re.compile(r"gemini-(\d+)(?:\.(\d+))?")


def family(model: str) -> str:
    """``"levels"`` (Gemini 3 and later), ``"budget"`` (2.5) or ``"none"`` (older or unknown models)."""
    match = _VERSION.search(model)
    if match is None:
        return "none"
    major, minor = int(match.group(1)), int(match.group(2) or 0)
    if major >= 3:
        return "levels"
    if major == 2 and minor >= 5:
        return "budget"
    return "none"


def _effort(request: dict[str, Any]) -> str | None:
    output_config = request.get("output_config")
    effort = output_config.get("effort") if isinstance(output_config, dict) else None
    if isinstance(effort, str) and effort:
        return "high" if effort in ("max", "xhigh") else effort
    thinking = request.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        return budget_to_effort(budget) if isinstance(budget, int) else "medium"
    return None


def thinking_config(request: dict[str, Any], model: str) -> dict[str, Any] | None:
    """The ``thinkingConfig`` for the request and model, or None to leave the model's default."""
    if request.get("thinking") is None and request.get("output_config") is None:
        return None
    kind = family(model)
    if kind == "none":
        return None
    thinking = request.get("thinking")
    mode = thinking.get("type") if isinstance(thinking, dict) else None
    config: dict[str, Any] = {}
    flash = "flash" in model
    effort = _effort(request)
    if mode == "disabled":
        if kind == "budget" and flash:
            config["thinkingBudget"] = 0
        elif kind == "levels" and flash:
            config["thinkingLevel"] = "minimal"
        return config or None
    if kind == "budget":
        budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
        if mode == "enabled" and isinstance(budget, int):
            config["thinkingBudget"] = budget
        elif effort is not None:
            config["thinkingBudget"] = EFFORT_TO_BUDGET.get(effort, DYNAMIC_BUDGET)
        elif mode == "adaptive":
            config["thinkingBudget"] = DYNAMIC_BUDGET
    elif effort is not None:
        levels = FLASH_LEVELS if flash else PRO_LEVELS
        config["thinkingLevel"] = levels.get(effort, "high")
    omitted = isinstance(thinking, dict) and thinking.get("display") == "omitted"
    if mode in ("enabled", "adaptive") and not omitted:
        config["includeThoughts"] = True
    return config or None
