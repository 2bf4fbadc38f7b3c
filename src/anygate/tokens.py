"""Counting the input tokens of an Anthropic request without calling any upstream.

:func:`request_text` flattens everything a model reads (system, messages, tool definitions) into text;
the counters then either use a real tokenizer (tiktoken, for OpenAI models) or a fast estimate. An
estimate is honest enough for context-window decisions; a fake 0 is not. tiktoken needs its encoding
files (downloaded once, or found in ``TIKTOKEN_CACHE_DIR``); without them counting falls back to the
estimate and says so once in the log.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterator
from typing import Any, Final

import orjson

log = logging.getLogger("anygate.tokens")

_WORD_OR_SYMBOL: Final = re.compile(r"\w{1,4}|[^\w\s]")
"""Pieces of at most four word characters or one symbol: close to what BPE tokenizers produce."""

IMAGE_TOKENS: Final = 1600
"""What an image of unknown size costs (Anthropic's figure for a ~1.15 megapixel image)."""
MESSAGE_OVERHEAD_TOKENS: Final = 4
TOOL_OVERHEAD_TOKENS: Final = 8


ESTIMATE_CHUNK: Final = 65_536
"""Characters estimated per regex call: one call over 30 MB held the interpreter lock for seconds, so even
a counting thread stalled the event loop; between chunks other threads run."""


def estimate_text_tokens(text: str) -> int:
    """A tokenizer-free estimate of the tokens in ``text`` (a word cut at a chunk boundary counts twice,
    one token in 65,536 characters at most)."""
    if len(text) <= ESTIMATE_CHUNK:
        return len(_WORD_OR_SYMBOL.findall(text))
    return sum(
        len(_WORD_OR_SYMBOL.findall(text, start, start + ESTIMATE_CHUNK))
        for start in range(0, len(text), ESTIMATE_CHUNK)
    )


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


# --- tiktoken counting for OpenAI models ------------------------------------------------------------

_O200K_MODELS: Final = re.compile(r"^(gpt-4o|chatgpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|gpt-oss|o\d|codex)")
_CL100K_MODELS: Final = re.compile(r"^(gpt-4|gpt-3\.5|gpt-35|text-embedding)")
DEFAULT_ENCODING: Final = "o200k_base"
"""The encoding used as an estimate for models whose tokenizer is unknown (non-OpenAI models)."""
CHAT_MESSAGE_OVERHEAD_TOKENS: Final = 3
"""OpenAI's per-message framing (role and separators), plus the same once to prime the reply."""
FUNCTION_OVERHEAD_TOKENS: Final = 8

_unavailable_logged = False


def encoding_name_for_model(model: str) -> str:
    """The tiktoken encoding of an OpenAI model: ``o200k_base`` for gpt-4o, 4.1, 5 and the o-series,
    ``cl100k_base`` for older ones; ``o200k_base`` as the estimate for anything else."""
    name = model.rsplit("/", 1)[-1].lower()
    if _O200K_MODELS.match(name):
        return "o200k_base"
    if _CL100K_MODELS.match(name):
        return "cl100k_base"
    return DEFAULT_ENCODING


@functools.cache
def _encoding(name: str) -> Any | None:
    """The tiktoken encoding, or None (logged once) when its files cannot be had (no internet, no
    ``TIKTOKEN_CACHE_DIR``): counts then fall back to the estimate."""
    global _unavailable_logged
    try:
        import tiktoken

        return tiktoken.get_encoding(name)
    except Exception as exc:  # tiktoken raises whatever its download raised
        if not _unavailable_logged:
            _unavailable_logged = True
            log.warning(
                "tiktoken encoding %s is unavailable (%s); token counts are estimates. Set "
                "TIKTOKEN_CACHE_DIR to a directory holding tiktoken's cache files.",
                name,
                type(exc).__name__,
            )
        return None


def count_text_tokens(text: str, model: str) -> int:
    """Tokens of ``text`` for ``model``: tiktoken when available, else the estimate."""
    encoding = _encoding(encoding_name_for_model(model))
    if encoding is None:
        return estimate_text_tokens(text)
    return len(encoding.encode_ordinary(text))


def count_request_tokens(request: dict[str, Any], model: str) -> int:
    """An Anthropic request's input tokens as a Chat Completions model sees them: system, messages and
    tool definitions counted with the model's tokenizer, plus OpenAI's per-message framing."""
    texts, images, message_count = request_text(request)
    encoding = _encoding(encoding_name_for_model(model))
    if encoding is None:
        return estimate_request_tokens(request)
    total = sum(len(encoding.encode_ordinary(text)) for text in texts if text)
    framed = message_count + (1 if request.get("system") else 0) + 1
    tools = len(request.get("tools") or [])
    total += framed * CHAT_MESSAGE_OVERHEAD_TOKENS + tools * FUNCTION_OVERHEAD_TOKENS + images * IMAGE_TOKENS
    return max(total, 1)
