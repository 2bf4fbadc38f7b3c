"""Token counting is exact with the encoding files the package ships, offline and on a fresh machine."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest
from tiktoken_ext import openai_public

import anygate.tokens as tokens
from anygate.config import deployment_for_model
from anygate.gateway import Gateway
from anygate.testing import MockResponse, MockTransport

TEXT = (
    "anygate serves the Anthropic Messages API over any LLM provider: naïve café, 日本語のテキスト, "
    "12345 tokens!\n\tdef f(x): return x**2"
)
EXACT_COUNTS = {"o200k_base": 38, "cl100k_base": 40}
"""What tiktoken's own ``get_encoding`` counts for TEXT (checked once against OpenAI's cached files)."""
MODELS = {"o200k_base": "gpt-4o", "cl100k_base": "gpt-4-turbo"}


@pytest.mark.parametrize("name", sorted(EXACT_COUNTS))
def test_the_shipped_encodings_count_exactly(name: str) -> None:
    assert tokens.count_text_tokens(TEXT, MODELS[name]) == EXACT_COUNTS[name]
    assert len(tokens.load_encoding(name).encode_ordinary(TEXT)) == EXACT_COUNTS[name]


@pytest.mark.parametrize("name", sorted(tokens.ENCODINGS))
def test_encoding_specs_match_the_installed_tiktoken(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pattern, special tokens and file hash are tiktoken's own (its constructors, minus the download)."""
    loaded: list[tuple[str, str | None]] = []

    def record(blobpath: str, expected_hash: str | None = None) -> dict[bytes, int]:
        loaded.append((blobpath, expected_hash))
        return {}

    monkeypatch.setattr(openai_public, "load_tiktoken_bpe", record)
    reference: dict[str, Any] = openai_public.ENCODING_CONSTRUCTORS[name]()
    spec = tokens.ENCODINGS[name]
    assert reference["pat_str"] == spec.pat_str
    assert reference["special_tokens"] == dict(spec.special_tokens)
    [(url, expected_hash)] = loaded
    assert url.endswith(f"/{name}.tiktoken") and expected_hash == spec.sha256
    assert (tokens.TOKENIZERS / f"{name}.tiktoken").is_file()


def test_a_damaged_encoding_file_is_refused(tmp_path: Path) -> None:
    original = (tokens.TOKENIZERS / "cl100k_base.tiktoken").read_bytes()
    (tmp_path / "cl100k_base.tiktoken").write_bytes(original[:-100])
    with pytest.raises(ValueError, match="SHA-256"):
        tokens.load_encoding("cl100k_base", tmp_path)


OFFLINE_SCRIPT = textwrap.dedent(
    """
    import socket

    def refuse(self, address):
        raise OSError("network disabled for this test")

    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.create_connection = refuse

    from anygate import tokens

    tokens.preload_encodings()
    print(tokens.count_text_tokens(TEXT, "gpt-4o"), tokens.count_text_tokens(TEXT, "gpt-4-turbo"))
    """
)


def test_counting_is_exact_without_network_or_tiktoken_cache(tmp_path: Path) -> None:
    """A fresh machine: an empty tiktoken cache and no network, in a new process."""
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    env = {**os.environ, "TIKTOKEN_CACHE_DIR": str(cache)}
    env.pop("DATA_GYM_CACHE_DIR", None)
    script = f"TEXT = {TEXT!r}\n{OFFLINE_SCRIPT}"
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "unavailable" not in result.stderr
    assert result.stdout.split() == [str(EXACT_COUNTS["o200k_base"]), str(EXACT_COUNTS["cl100k_base"])]
    assert list(cache.iterdir()) == []


async def test_counting_never_loads_an_encoding_on_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the loop a count uses the estimate until an encoding is loaded; count_tokens runs in a worker
    thread, which loads the encoding and counts exactly, and later counts on the loop are exact too."""
    threads: list[int] = []
    real_load = tokens.load_encoding

    def recording_load(name: str, directory: Path = tokens.TOKENIZERS) -> object:
        threads.append(threading.get_ident())
        return real_load(name, directory)

    monkeypatch.setattr(tokens, "_LOADED", {})
    monkeypatch.setattr(tokens, "load_encoding", recording_load)
    text = "Counting on the loop never blocks it."
    assert tokens.count_text_tokens(text, "gpt-4") == tokens.estimate_text_tokens(text)
    assert threads == []
    gateway = Gateway(transport=MockTransport(lambda request: MockResponse.json(COMPLETION)))
    explicit = [deployment_for_model("openai/gpt-4", api_key="k")]  # cl100k_base
    body = {"model": "openai/gpt-4", "messages": [{"role": "user", "content": text}]}
    counted = orjson.loads((await gateway.count_tokens(body, deployments=explicit)).body or b"{}")
    assert threads and threading.get_ident() not in threads
    assert counted["input_tokens"] == tokens.count_request_tokens(body, "gpt-4")
    exact = len(tokens._LOADED["cl100k_base"].encode_ordinary(text))
    assert tokens.count_text_tokens(text, "gpt-4") == exact


COMPLETION = {
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1},
}
