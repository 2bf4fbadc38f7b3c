"""OpenAI Chat Completions and the OpenAI-compatible services, as presets of one translator.

- ``presets.py``: the services (base URL, key variable, quirks) as one table;
- ``request.py``: Anthropic request → Chat Completions body (``reasoning.py``: thinking → effort;
  ``names.py``: tool names and ids both sides accept);
- ``stream.py``: Chat Completions chunks → Anthropic events, via the shared block state machine;
- ``response.py``: a whole completion → the Message, through the same assembler;
- ``errors.py``: upstream failures → Anthropic errors;
- ``provider.py``: the provider object the gateway calls.
"""

from __future__ import annotations

from typing import Final

from anygate.providers.openai_chat.presets import PRESETS, Preset
from anygate.providers.openai_chat.provider import OpenAIChatProvider

OPENAI_COMPATIBLE_PROVIDERS: Final[dict[str, OpenAIChatProvider]] = {
    preset.name: OpenAIChatProvider(preset) for preset in PRESETS
}
"""``<provider>/`` prefix → provider, merged into the registry."""

__all__ = ["OPENAI_COMPATIBLE_PROVIDERS", "PRESETS", "OpenAIChatProvider", "Preset"]
