"""Counting the input tokens of an Anthropic request without calling any upstream.

:func:`request_text` flattens everything a model reads (system, messages, tool definitions) into text;
the counters then either use a real tokenizer (tiktoken, for OpenAI models) or a fast estimate. An
estimate is honest enough for context-window decisions; a fake 0 is not.

The two BPE encodings OpenAI models use (``o200k_base``, ``cl100k_base``) ship inside the package, in
``anygate/tokenizers/`` (OpenAI's files, MIT, licence beside them), and each :class:`tiktoken.Encoding` is
built directly from its file. ``tiktoken.get_encoding`` is never called: on a machine without its cache
it downloads the files with a blocking request that has no timeout, which hangs an offline host and
freezes the event loop it runs on. Shipping the files (about 5 MB) gives exact counts offline, on a fresh
machine, with no extra dependency; a tokenizer-free estimate would not match what OpenAI bills. The files
are read directly rather than through ``tiktoken.load.load_tiktoken_bpe``, which copies every file it
reads into a cache directory and fails when a configured ``TIKTOKEN_CACHE_DIR`` is read-only; each file's
SHA-256 is checked against the hash tiktoken itself expects. If a file is missing or damaged, counting
falls back to the estimate and says so once in the log.

Loading an encoding takes a few tenths of a second and 40-70 MB, so it happens once per process, only
when something counts with it, and never on the event loop: local ``count_tokens`` runs in a worker
thread, which loads it; a count on the loop (an answer that reported no usage) uses it once loaded and
the estimate before. Most answers carry the upstream's usage, so a gateway in front of
OpenAI-compatible servers usually loads a tokenizer only when a client asks to count tokens.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
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


def encoding_name_for_model(model: str) -> str:
    """The tiktoken encoding of an OpenAI model: ``o200k_base`` for gpt-4o, 4.1, 5 and the o-series,
    ``cl100k_base`` for older ones; ``o200k_base`` as the estimate for anything else."""
    name = model.rsplit("/", 1)[-1].lower()
    if _O200K_MODELS.match(name):
        return "o200k_base"
    if _CL100K_MODELS.match(name):
        return "cl100k_base"
    return DEFAULT_ENCODING


TOKENIZERS: Final = Path(__file__).resolve().parent / "tokenizers"
"""Where the shipped encoding files are: ``<encoding name>.tiktoken``."""


@dataclass(frozen=True, slots=True)
class EncodingSpec:
    """What builds one tiktoken encoding besides its file: the values of ``tiktoken_ext.openai_public``
    (a test checks they still match the installed tiktoken)."""

    sha256: str
    pat_str: str
    special_tokens: Mapping[str, int]


_ENDOFTEXT: Final = "<|endoftext|>"
_ENDOFPROMPT: Final = "<|endofprompt|>"
ENCODINGS: Final[Mapping[str, EncodingSpec]] = {
    "o200k_base": EncodingSpec(
        sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        pat_str="|".join(
            [
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"""
                r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"""
                r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""\p{N}{1,3}""",
                r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
                r"""\s*[\r\n]+""",
                r"""\s+(?!\S)""",
                r"""\s+""",
            ]
        ),
        special_tokens={_ENDOFTEXT: 199999, _ENDOFPROMPT: 200018},
    ),
    "cl100k_base": EncodingSpec(
        sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        pat_str=(
            r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
            r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
        ),
        special_tokens={
            _ENDOFTEXT: 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            _ENDOFPROMPT: 100276,
        },
    ),
}
"""The encodings anygate counts with: :func:`encoding_name_for_model` maps every model to one of them."""

_LOADED: dict[str, Any | None] = {}
"""Encoding name → its tiktoken encoding, or None when its file could not be loaded (estimate instead)."""
_LOADING: Final = threading.Lock()
"""Held while loading, so a start-up thread and a late caller never load the same file twice."""


def read_ranks(path: Path, sha256: str) -> dict[bytes, int]:
    """The mergeable ranks of a ``.tiktoken`` file (one ``base64(token) rank`` per line), after checking
    its SHA-256: a truncated or altered file would count wrongly without complaint."""
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise ValueError(f"{path} has SHA-256 {actual}, expected {sha256}")
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def load_encoding(name: str, directory: Path = TOKENIZERS) -> Any:
    """A tiktoken encoding built from its shipped file; raises when the file is missing or damaged."""
    import tiktoken

    spec = ENCODINGS[name]
    return tiktoken.Encoding(
        name=name,
        pat_str=spec.pat_str,
        mergeable_ranks=read_ranks(directory / f"{name}.tiktoken", spec.sha256),
        special_tokens=dict(spec.special_tokens),
    )


def _load_or_none(name: str) -> Any | None:
    try:
        return load_encoding(name, TOKENIZERS)
    except Exception as exc:  # missing file, bad hash, tiktoken not importable: count with the estimate
        if None not in _LOADED.values():  # say it once, for the first encoding that fails
            log.warning(
                "tiktoken encoding %s is unavailable (%s: %s); token counts are estimates. Reinstall "
                "anygate: its package carries the encoding files in anygate/tokenizers/.",
                name,
                type(exc).__name__,
                exc,
            )
        return None


def _encoding(name: str) -> Any | None:
    """The tiktoken encoding, or None when it cannot be had now: counts then fall back to the estimate.

    Off the event loop (a worker thread, a script) the first use loads it, blocking. On the event loop it
    never loads: a count there (an answer that reported no usage) uses the encoding if some worker thread
    has loaded it, else the estimate. Loading on the loop would stall it for tenths of a second, and a
    background load would still starve it of the interpreter lock for as long.
    """
    try:
        return _LOADED[name]
    except KeyError:
        pass
    if _on_event_loop():
        return None
    with _LOADING:
        if name not in _LOADED:
            _LOADED[name] = _load_or_none(name)
    return _LOADED[name]


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def preload_encodings() -> None:
    """Load every encoding now (about half a second), so that no request pays for it later."""
    for name in ENCODINGS:
        _encoding(name)


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
