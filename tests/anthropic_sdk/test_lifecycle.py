"""Every way of using the synchronous in-process API leaves nothing behind: no warning at exit (run with
``-W error``), no thread, no open connection, whether or not the client was closed."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import UPSTREAM_KEY
from tests.fakes.upstream import FakeUpstream, Json, Sse, sse_data
from tests.providers.openai_support import chunk

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys, threading
    import anygate

    api_base = sys.argv[1]
    kw = dict(model="openai/gpt-4o", max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
    upstream = dict(api_base=api_base, api_key=sys.argv[2])

    # The module-level API, and a client never closed.
    anygate.anthropic.messages.create(**kw, **upstream)
    forgotten = anygate.Anthropic(**upstream)
    forgotten.messages.create(**kw)

    # A closed client leaves no thread.
    with anygate.Anthropic(**upstream) as client:
        with client.messages.stream(**kw) as stream:
            assert "".join(stream.text_stream) == "Hi!"
    assert not [t for t in threading.enumerate() if t.name == "anygate-sync"] or forgotten

    # Inside a running event loop, and in a thread.
    async def inside_a_loop():
        anygate.anthropic.messages.create(**kw, **upstream)
        forgotten.messages.create(**kw)
    asyncio.run(inside_a_loop())
    thread = threading.Thread(target=lambda: anygate.anthropic.messages.create(**kw, **upstream))
    thread.start()
    thread.join()

    # The async client, not closed, in its own asyncio.run.
    async def async_client():
        client = anygate.AsyncAnthropic(**upstream)
        await client.messages.create(**kw)
    asyncio.run(async_client())

    # A half-read stream, abandoned.
    stream = forgotten.messages.create(**kw, stream=True)
    next(iter(stream))
    print("ok")
    """
)


def _script_answers(upstream: FakeUpstream) -> None:
    upstream.handle(
        "/v1/chat/completions",
        lambda received: (
            Sse(sse_data(chunk({"content": "Hi!"}), chunk(finish_reason="stop")))
            if received.json().get("stream")
            else Json(
                {
                    "id": "c",
                    "object": "chat.completion",
                    "model": "gpt-4o",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "Hi!"},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
                }
            )
        ),
    )


def test_sync_and_async_use_leaves_nothing_behind_at_exit(upstream: FakeUpstream) -> None:
    _script_answers(upstream)
    done = subprocess.run(
        [sys.executable, "-W", "error", "-X", "dev", "-c", SCRIPT, f"{upstream.url}/v1", UPSTREAM_KEY],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok\n"
    assert done.stderr == ""
    assert len(upstream.requests_to("/v1/chat/completions")) == 8


def test_close_ends_the_clients_thread(upstream: FakeUpstream) -> None:
    import threading

    import anygate

    _script_answers(upstream)
    before = set(threading.enumerate())
    client = anygate.Anthropic(api_key=UPSTREAM_KEY, api_base=f"{upstream.url}/v1")
    client.messages.create(model="openai/gpt-4o", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert any(t.name == "anygate-sync" for t in set(threading.enumerate()) - before)
    client.close()
    assert set(threading.enumerate()) - before == set()
