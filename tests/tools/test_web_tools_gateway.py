"""Web search and web fetch through the whole gateway: the official SDK as the client, an OpenAI-shaped
upstream scripted per call, and a SearXNG backend and web pages served on loopback.

Each test checks what the client got (blocks, citations, usage), what the upstream was sent (the
results as the model reads them) and what the search backend or site received.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import pytest
from aiohttp import web

from tests.tools.loop_support import Script, client, completion
from tests.tools.web_support import Recorder, json_answer

WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search"}
WEB_FETCH = {"type": "web_fetch_20250910", "name": "web_fetch"}
QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]
SEARXNG_ANSWER = {
    "query": "paris weather",
    "results": [
        {
            "url": "https://weather.example/paris",
            "title": "Paris forecast",
            "content": "Sunny, 24 °C all day.",
        },
        {"url": "https://news.example/heat", "title": "Heat in France", "content": "A warm week ahead."},
    ],
}


@pytest.fixture
async def searxng() -> AsyncIterator[Recorder]:
    async with Recorder({"/search": json_answer(SEARXNG_ANSWER)}) as server:
        yield server


def searxng_settings(server: Recorder, **extra: Any) -> dict[str, Any]:
    return {"web_search": {"provider": "searxng", "api_base": server.url(), **extra}}


def search_and_answer(answer: str = "It is sunny [1].") -> Script:
    return Script(
        completion(calls=[("call_w1", "web_search", {"query": "paris weather"})]),
        completion(text=answer),
    )


async def ask(
    script: Script,
    general: dict[str, Any],
    *,
    tools: list[dict[str, Any]],
    stream: bool = False,
    **params: Any,
) -> anthropic.types.Message:
    async with client(script, **general) as sdk:
        request: dict[str, Any] = {
            "model": "up",
            "max_tokens": 200,
            "messages": QUESTION,
            "tools": tools,
            **params,
        }
        if not stream:
            return await sdk.messages.create(**request)
        async with sdk.messages.stream(**request) as events:
            return await events.get_final_message()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_a_web_search_answer_cites_the_backends_results(searxng: Recorder, stream: bool) -> None:
    script = search_and_answer()
    message = await ask(script, searxng_settings(searxng), tools=[WEB_SEARCH], stream=stream)

    assert [b.type for b in message.content] == ["server_tool_use", "web_search_tool_result", "text"]
    use, result, answer = message.content
    assert isinstance(use, anthropic.types.ServerToolUseBlock)
    assert (use.name, use.input) == ("web_search", {"query": "paris weather"})
    assert isinstance(result, anthropic.types.WebSearchToolResultBlock)
    assert isinstance(result.content, list)
    assert [(r.url, r.title) for r in result.content] == [
        ("https://weather.example/paris", "Paris forecast"),
        ("https://news.example/heat", "Heat in France"),
    ]
    assert isinstance(answer, anthropic.types.TextBlock)
    assert answer.text == "It is sunny [1]."
    assert answer.citations is not None
    (citation,) = answer.citations
    assert isinstance(citation, anthropic.types.CitationsWebSearchResultLocation)
    assert (citation.url, citation.title) == ("https://weather.example/paris", "Paris forecast")
    assert "Sunny" in citation.cited_text
    assert message.usage.server_tool_use is not None
    assert message.usage.server_tool_use.web_search_requests == 1

    (searched,) = searxng.received
    assert (searched.path, searched.query["q"], searched.query["format"]) == (
        "/search",
        "paris weather",
        "json",
    )
    assert [t["function"]["name"] for t in script.bodies[0]["tools"]] == ["web_search"]
    result_for_model = script.bodies[1]["messages"][-1]
    assert result_for_model["role"] == "tool"
    assert "[1] Paris forecast — https://weather.example/paris" in result_for_model["content"]
    assert "Sunny, 24 °C all day." in result_for_model["content"]


async def test_results_sent_back_on_the_next_turn_are_readable_again(searxng: Recorder) -> None:
    first = await ask(search_and_answer(), searxng_settings(searxng), tools=[WEB_SEARCH])
    later = Script(completion(text="Yes, sunny [1]."))
    history = [
        *QUESTION,
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": "Are you sure?"},
    ]
    message = await ask(later, searxng_settings(searxng), tools=[WEB_SEARCH], messages=history)

    sent = later.bodies[0]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "assistant", "user"]
    assert "Sunny, 24 °C all day." in sent[2]["content"]  # unsealed from encrypted_content
    answer = message.content[0]
    assert isinstance(answer, anthropic.types.TextBlock)
    assert answer.citations and answer.citations[0].url == "https://weather.example/paris"  # type: ignore[union-attr]
    assert len(searxng.received) == 1


async def test_without_a_backend_the_model_is_told_search_is_unavailable() -> None:
    script = search_and_answer("I cannot search the web here.")
    message = await ask(script, {}, tools=[WEB_SEARCH])

    result = message.content[1]
    assert isinstance(result, anthropic.types.WebSearchToolResultBlock)
    assert isinstance(result.content, anthropic.types.WebSearchToolResultError)
    assert result.content.error_code == "unavailable"
    told = script.bodies[1]["messages"][-1]
    assert told["role"] == "tool" and "unavailable" in told["content"]
    assert message.stop_reason == "end_turn"


async def test_a_slow_backend_is_bounded_by_its_timeout() -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(5)
        return web.json_response(SEARXNG_ANSWER)

    async with Recorder({"/search": slow}) as backend:
        script = search_and_answer("No results.")
        started = asyncio.get_running_loop().time()
        message = await ask(script, searxng_settings(backend, timeout=0.3), tools=[WEB_SEARCH])
        took = asyncio.get_running_loop().time() - started
    result = message.content[1]
    assert isinstance(result, anthropic.types.WebSearchToolResultBlock)
    assert isinstance(result.content, anthropic.types.WebSearchToolResultError)
    assert result.content.error_code == "unavailable"
    assert took < 3


async def test_searches_beyond_max_uses_are_refused(searxng: Recorder) -> None:
    script = Script(
        completion(calls=[("c1", "web_search", {"query": "a"}), ("c2", "web_search", {"query": "b"})]),
        completion(text="Done."),
    )
    message = await ask(script, searxng_settings(searxng), tools=[{**WEB_SEARCH, "max_uses": 1}])

    results = [b for b in message.content if isinstance(b, anthropic.types.WebSearchToolResultBlock)]
    assert isinstance(results[0].content, list)
    assert isinstance(results[1].content, anthropic.types.WebSearchToolResultError)
    assert results[1].content.error_code == "max_uses_exceeded"
    assert len(searxng.received) == 1
    assert message.usage.server_tool_use is not None
    assert message.usage.server_tool_use.web_search_requests == 1


async def test_allowed_domains_filter_the_results(searxng: Recorder) -> None:
    script = search_and_answer("Sunny [1].")
    message = await ask(
        script, searxng_settings(searxng), tools=[{**WEB_SEARCH, "allowed_domains": ["news.example"]}]
    )
    result = message.content[1]
    assert isinstance(result, anthropic.types.WebSearchToolResultBlock) and isinstance(result.content, list)
    assert [r.url for r in result.content] == ["https://news.example/heat"]


# --- web fetch ----------------------------------------------------------------------------------------


async def page(request: web.Request) -> web.StreamResponse:
    html = (
        "<html><head><title>Menu</title><script>x()</script></head>"
        "<body><p>Soup of the day: leek.</p></body></html>"
    )
    return web.Response(text=html, content_type="text/html")


async def test_web_fetch_reads_a_page_the_user_named() -> None:
    async with Recorder({"/menu": page}) as site:
        url = site.url("/menu")
        script = Script(completion(calls=[("f1", "web_fetch", {"url": url})]), completion(text="Leek soup."))
        message = await ask(
            script,
            {"web_fetch": {"allow_private_networks": True}},
            tools=[WEB_FETCH],
            messages=[{"role": "user", "content": f"What is on {url} today?"}],
        )
    result = message.content[1]
    assert isinstance(result, anthropic.types.WebFetchToolResultBlock)
    assert isinstance(result.content, anthropic.types.WebFetchBlock)
    assert result.content.url == url
    assert result.content.content.title == "Menu"
    assert "Soup of the day: leek." in result.content.content.source.data  # type: ignore[union-attr]
    assert "x()" not in result.content.content.source.data  # type: ignore[union-attr]
    told = script.bodies[1]["messages"][-1]["content"]
    assert "Soup of the day: leek." in told
    assert message.usage.server_tool_use is not None
    assert message.usage.server_tool_use.web_fetch_requests == 1
    assert [r.path for r in site.received] == ["/menu"]


async def test_web_fetch_refuses_a_url_the_conversation_never_named() -> None:
    async with Recorder({"/menu": page}) as site:
        script = Script(
            completion(calls=[("f1", "web_fetch", {"url": site.url("/menu")})]), completion(text="No.")
        )
        message = await ask(script, {"web_fetch": {"allow_private_networks": True}}, tools=[WEB_FETCH])
        assert site.received == []
    result = message.content[1]
    assert isinstance(result, anthropic.types.WebFetchToolResultBlock)
    assert isinstance(result.content, anthropic.types.WebFetchToolResultErrorBlock)
    assert result.content.error_code == "url_not_allowed"


async def test_web_fetch_refuses_loopback_unless_allowed() -> None:
    async with Recorder({"/menu": page}) as site:
        url = site.url("/menu")
        script = Script(completion(calls=[("f1", "web_fetch", {"url": url})]), completion(text="No."))
        message = await ask(
            script, {}, tools=[WEB_FETCH], messages=[{"role": "user", "content": f"Read {url}"}]
        )
        assert site.received == []
    result = message.content[1]
    assert isinstance(result, anthropic.types.WebFetchToolResultBlock)
    assert isinstance(result.content, anthropic.types.WebFetchToolResultErrorBlock)
    assert result.content.error_code in ("url_not_accessible", "url_not_allowed")


async def test_a_client_that_leaves_mid_loop_cancels_the_search_and_the_turn() -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def slow(request: web.Request) -> web.StreamResponse:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return web.json_response(SEARXNG_ANSWER)

    async with Recorder({"/search": slow}) as backend:
        script = search_and_answer()
        async with client(script, **searxng_settings(backend, timeout=60)) as sdk:
            request: dict[str, Any] = {"model": "up", "max_tokens": 200, "messages": QUESTION}
            stream = await sdk.messages.create(**request, tools=[WEB_SEARCH], stream=True)  # type: ignore[call-overload]
            seen: list[str] = []

            async def read() -> None:
                async for event in stream:
                    seen.append(event.type)

            reader = asyncio.create_task(read())  # a client that stops reading and goes away
            await asyncio.wait_for(started.wait(), 5)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await stream.close()
            await asyncio.wait_for(cancelled.wait(), 5)
    assert seen == ["message_start", "content_block_start", "content_block_delta", "content_block_stop"]
    assert len(script.bodies) == 1
    assert script.transport.open_responses == 0
