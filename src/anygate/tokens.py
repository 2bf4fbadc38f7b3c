"""Counting the input tokens of an Anthropic request without calling any upstream.

:func:`request_text` flattens everything a model reads (system, messages, tool definitions) into text;
the counters then either use a real tokenizer (tiktoken, for OpenAI models) or a fast estimate. An
estimate is honest enough for context-window decisions; a fake 0 is not.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Final

import orjson

_WORD_OR_SYMBOL: Final = re.compile(r"\w{1,4}|[^\w\s]")
"""Pieces of at most four word characters or one symbol: close to what BPE tokenizers produce."""

IMAGE_TOKENS: Final = 1600
"""What an image of unknown size costs (Anthropic's figure for a ~1.15 megapixel image)."""
MESSAGE_OVERHEAD_TOKENS: Final = 4
TOOL_OVERHEAD_TOKENS: Final = 8


def estimate_text_tokens(text: str) -> int:
    """A tokenizer-free estimate of the tokens in ``text``."""
    return len(_WORD_OR_SYMBOL.findall(text))


def _block_texts(block: Any) -> Iterator[str]:
    if isinstance(block, str):
        yield block
        return
    if not isinstance(block, dict):
        return
    kind = block.get("type")
    if kind == "text":
        yield str(block.get("text", ""))
    elif kind == "thinking":
        yield str(block.get("thinking", ""))
    elif kind == "tool_use":
        yield str(block.get("name", ""))
        yield orjson.dumps(block.get("input", {})).decode()
    elif kind == "tool_result":
        content = block.get("content")
        if isinstance(content, list):
            for inner in content:
                yield from _block_texts(inner)
        elif content is not None:
            yield str(content)
    elif kind == "document":
        source = block.get("source") or {}
        if source.get("type") == "text":
            yield str(source.get("data", ""))


def _count_images(block: Any) -> int:
    if not isinstance(block, dict):
        return 0
    kind = block.get("type")
    if kind == "image" or (kind == "document" and (block.get("source") or {}).get("type") != "text"):
        return 1
    if kind == "tool_result" and isinstance(block.get("content"), list):
        return sum(_count_images(inner) for inner in block["content"])
    return 0


def request_text(request: dict[str, Any]) -> tuple[list[str], int, int]:
    """The texts a model reads, the number of images/binary documents, and the number of messages."""
    texts: list[str] = []
    images = 0
    system = request.get("system")
    if isinstance(system, str):
        texts.append(system)
    elif isinstance(system, list):
        texts.extend(str(block.get("text", "")) for block in system if isinstance(block, dict))
    messages = request.get("messages") or []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            for block in content:
                texts.extend(_block_texts(block))
                images += _count_images(block)
        elif content is not None:
            texts.append(str(content))
    for tool in request.get("tools") or []:
        if isinstance(tool, dict):
            texts.append(str(tool.get("name", "")))
            texts.append(str(tool.get("description", "")))
            if "input_schema" in tool:
                texts.append(orjson.dumps(tool["input_schema"]).decode())
    return texts, images, len(messages)


def estimate_request_tokens(request: dict[str, Any]) -> int:
    """A tokenizer-free estimate of a request's input tokens (always at least 1)."""
    texts, images, message_count = request_text(request)
    tools = len(request.get("tools") or [])
    total = sum(estimate_text_tokens(text) for text in texts)
    total += images * IMAGE_TOKENS + message_count * MESSAGE_OVERHEAD_TOKENS + tools * TOOL_OVERHEAD_TOKENS
    return max(total, 1)
