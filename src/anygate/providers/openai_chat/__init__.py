"""OpenAI Chat Completions and the OpenAI-compatible services, as presets of one translator."""

from __future__ import annotations

from typing import Any

OPENAI_COMPATIBLE_PROVIDERS: dict[str, Any] = {}
