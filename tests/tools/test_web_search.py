"""Web search through fake SearXNG, Brave, Tavily and Exa backends on loopback: what each backend was
sent (query, key, domain and location parameters), how its answer maps to results, every failure as the
right Anthropic error code, the result blocks against the spec and the SDK, and the settings."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import orjson
import pytest

from anygate.config import ConfigError, parse_config
from anygate.protocol.redact import mask_secrets, register_config_secrets
from anygate.signing import ThinkingSigner
from anygate.tools.web import (
    WEB_SEARCH_FUNCTION,
    SearchHit,
    WebClient,
    WebToolError,
    domain_allowed,
    error_text,
    render_search_block,
    search_result_block,
)
from anygate.web_settings import WebSearchSettings
from tests.providers.openai_support import anthropic_validator
from tests.tools.web_support import Recorder, json_answer, stalls, text_answer

KEY = "search-backend-secret-key-4242"
SIGNER = ThinkingSigner("sk-test-master-key")
LOCATION = {
    "type": "approximate",
    "city": "Berlin",
    "region": "Berlin",
    "country": "DE",
    "timezone": "Europe/Berlin",
}

SEARXNG_ANSWER = {
    "query": "rust async",
    "results": [
        {
            "url": "https://docs.rs/tokio/latest/tokio/",
            "title": "tokio - Rust",
            "content": "A runtime for writing <b>reliable</b> asynchronous applications &amp; more.",
            "publishedDate": "2025-03-01T00:00:00",
            "engine": "duckduckgo",
        },
        {"url": "https://blog.rust-lang.org/async.html", "title": "Async Rust", "content": "The async book."},
        {"url": "https://spam.example/rust", "title": "Cheap", "content": "buy"},
        {"url": "https://docs.rs/tokio/latest/tokio/", "title": "dup", "content": "dup"},
        {"url": "ftp://files.example/x", "title": "not http", "content": ""},
    ],
}
BRAVE_ANSWER = {
    "query": {"original": "rust async"},
    "web": {
        "results": [
            {
                "title": "Tokio",
                "url": "https://tokio.rs/",
                "description": "Build reliable network applications.",
                "extra_snippets": ["Tokio is an asynchronous runtime."],
                "page_age": "2025-01-15T10:00:00",
                "age": "January 15, 2025",
            },
            {"title": "Blocked", "url": "https://www.pinterest.com/pin/1", "description": "pin"},
        ]
    },
}
TAVILY_ANSWER = {
    "query": "rust async",
    "results": [
        {
            "title": "Tokio tutorial",
            "url": "https://tokio.rs/tokio/tutorial",
            "content": "Learn Tokio.",
            "score": 0.9,
        },
        {
            "title": "Other",
            "url": "https://other.example/",
            "content": "x",
            "published_date": "Mon, 01 Jan 2024",
        },
    ],
    "response_time": 0.5,
}
EXA_ANSWER = {
    "results": [
        {
            "title": "Async in depth",
            "url": "https://tokio.rs/tokio/tutorial/async",
            "publishedDate": "2024-05-02T00:00:00.000Z",
            "text": "Futures are polled.",
        },
        {"title": "Highlights", "url": "https://tokio.rs/blog", "highlights": ["one", "two"]},
    ]
}


@pytest.fixture
async def client() -> AsyncIterator[WebClient]:
    web = WebClient()
    yield web
    await web.aclose()


def settings(provider: str, backend: Recorder, **overrides: Any) -> WebSearchSettings:
    values: dict[str, Any] = {"provider": provider, "api_base": backend.url(), "api_key": KEY, "timeout": 2.0}
    return WebSearchSettings(**{**values, **overrides})


# --- the four backends --------------------------------------------------------------------------------


async def test_searxng_query_and_answer(client: WebClient) -> None:
    async with Recorder({"/search": json_answer(SEARXNG_ANSWER)}) as backend:
        hits = await client.search(
            settings("searxng", backend, api_key=None),
            "  rust async ",
            allowed_domains=["docs.rs", "rust-lang.org"],
        )
    (sent,) = backend.received
    assert (sent.method, sent.query) == ("GET", {"q": "rust async", "format": "json"})
    assert "Authorization" not in sent.headers
    # Subdomains are included (blog.rust-lang.org), other domains and repeated URLs are dropped.
    assert hits == [
        SearchHit(
            url="https://docs.rs/tokio/latest/tokio/",
            title="tokio - Rust",
            page_age="2025-03-01T00:00:00",
            text="A runtime for writing reliable asynchronous applications & more.",
        ),
        SearchHit(
            url="https://blog.rust-lang.org/async.html",
            title="Async Rust",
            page_age=None,
            text="The async book.",
        ),
    ]


async def test_searxng_key_is_a_bearer_token_and_results_are_capped(client: WebClient) -> None:
    async with Recorder({"/search": json_answer(SEARXNG_ANSWER)}) as backend:
        hits = await client.search(settings("searxng", backend, max_results=2), "rust async")
    assert backend.received[0].headers["Authorization"] == f"Bearer {KEY}"
    assert [hit.url for hit in hits] == [
        "https://docs.rs/tokio/latest/tokio/",
        "https://blog.rust-lang.org/async.html",
    ]


async def test_brave_request_and_answer(client: WebClient) -> None:
    async with Recorder({"/res/v1/web/search": json_answer(BRAVE_ANSWER)}) as backend:
        hits = await client.search(
            settings("brave", backend, max_results=7),
            "rust async",
            blocked_domains=["pinterest.com", "example.org/private"],
            user_location=LOCATION,
        )
    (sent,) = backend.received
    assert sent.headers["X-Subscription-Token"] == KEY
    assert sent.query == {
        "q": "rust async -site:pinterest.com",
        "count": "7",
        "text_decorations": "false",
        "country": "DE",
    }
    assert (sent.headers["X-Loc-City"], sent.headers["X-Loc-Country"], sent.headers["X-Loc-Timezone"]) == (
        "Berlin",
        "DE",
        "Europe/Berlin",
    )
    # Brave ignored the operator here; the local filter still drops the blocked subdomain's result.
    assert hits == [
        SearchHit(
            url="https://tokio.rs/",
            title="Tokio",
            page_age="2025-01-15T10:00:00",
            text="Build reliable network applications. … Tokio is an asynchronous runtime.",
        )
    ]


async def test_brave_single_allowed_domain_becomes_a_site_operator(client: WebClient) -> None:
    async with Recorder({"/res/v1/web/search": json_answer(BRAVE_ANSWER)}) as backend:
        hits = await client.search(
            settings("brave", backend),
            "rust async",
            allowed_domains=["tokio.rs"],
            user_location={"type": "approximate", "country": "KE", "city": "São Paulo"},
        )
    (sent,) = backend.received
    assert sent.query["q"] == "rust async site:tokio.rs"
    assert "country" not in sent.query  # not one of Brave's countries: only the location header
    assert sent.headers["X-Loc-Country"] == "KE"
    assert "X-Loc-City" not in sent.headers  # not ASCII: no header rather than a mangled one
    assert [hit.url for hit in hits] == ["https://tokio.rs/"]


async def test_tavily_request_and_answer(client: WebClient) -> None:
    async with Recorder({"/search": json_answer(TAVILY_ANSWER)}) as backend:
        hits = await client.search(
            settings("tavily", backend, max_results=3),
            "rust async",
            allowed_domains=["tokio.rs", "https://other.example/"],
            user_location={"type": "approximate", "country": "gb"},
        )
    (sent,) = backend.received
    assert (sent.method, sent.headers["Authorization"]) == ("POST", f"Bearer {KEY}")
    assert orjson.loads(sent.body) == {
        "query": "rust async",
        "max_results": 3,
        "search_depth": "basic",
        "topic": "general",
        "include_domains": ["other.example", "tokio.rs"],
        "country": "united kingdom",
    }
    assert hits == [
        SearchHit(
            url="https://tokio.rs/tokio/tutorial", title="Tokio tutorial", page_age=None, text="Learn Tokio."
        ),
        SearchHit(url="https://other.example/", title="Other", page_age="Mon, 01 Jan 2024", text="x"),
    ]


async def test_exa_request_and_answer(client: WebClient) -> None:
    async with Recorder({"/search": json_answer(EXA_ANSWER)}) as backend:
        hits = await client.search(
            settings("exa", backend),
            "rust async",
            blocked_domains=["medium.com"],
            user_location={"type": "approximate", "country": "US"},
        )
    (sent,) = backend.received
    assert sent.headers["x-api-key"] == KEY
    body = orjson.loads(sent.body)
    assert (body["query"], body["numResults"], body["excludeDomains"], body["userLocation"]) == (
        "rust async",
        5,
        ["medium.com"],
        "US",
    )
    assert body["contents"] == {"text": {"maxCharacters": 1000}}
    assert [(hit.url, hit.text, hit.page_age) for hit in hits] == [
        ("https://tokio.rs/tokio/tutorial/async", "Futures are polled.", "2024-05-02T00:00:00.000Z"),
        ("https://tokio.rs/blog", "one … two", None),
    ]


async def test_a_large_answer_is_read_whole(client: WebClient) -> None:
    """An answer that arrives in many chunks (hundreds of kilobytes) is read to its end."""
    results = [
        {"url": f"https://site{n}.example/", "title": "t" * 600, "content": "word " * 800} for n in range(100)
    ]
    async with Recorder({"/search": json_answer({"results": results})}) as backend:
        hits = await client.search(settings("searxng", backend, max_results=20), "rust")
    assert [hit.url for hit in hits] == [f"https://site{n}.example/" for n in range(20)]
    assert {len(hit.title) for hit in hits} == {512}  # a citation title holds at most 512 characters
    assert {len(hit.text) for hit in hits} == {2000}


async def test_an_api_base_that_already_names_the_endpoint_is_used_as_it_is(client: WebClient) -> None:
    async with Recorder({"/search": json_answer(TAVILY_ANSWER)}) as backend:
        await client.search(settings("tavily", backend, api_base=backend.url("/search")), "q")
    assert backend.received[0].path == "/search"


# --- failures -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"),
    [(429, "too_many_requests"), (500, "unavailable"), (503, "unavailable"), (401, "unavailable")],
)
async def test_backend_statuses(client: WebClient, status: int, code: str) -> None:
    async with Recorder({"/search": json_answer({"error": "nope"}, status=status)}) as backend:
        with pytest.raises(WebToolError) as caught:
            await client.search(settings("tavily", backend), "rust")
    assert caught.value.error_code == code


async def test_backend_down_is_unavailable(client: WebClient) -> None:
    async with Recorder({}) as backend:
        gone = settings("searxng", backend)
    with pytest.raises(WebToolError) as caught:
        await client.search(gone, "rust")
    assert caught.value.error_code == "unavailable"


async def test_slow_backend_is_bounded_by_the_timeout(client: WebClient) -> None:
    async with Recorder({"/search": stalls()}) as backend:
        started = time.monotonic()
        with pytest.raises(WebToolError) as caught:
            await client.search(settings("searxng", backend, timeout=0.1), "rust")
        elapsed = time.monotonic() - started
    assert caught.value.error_code == "unavailable"
    assert elapsed < 1.0


@pytest.mark.parametrize("body", ["<html>SearXNG</html>", '{"results": {"not": "a list"}}'])
async def test_an_unreadable_answer_is_unavailable(client: WebClient, body: str) -> None:
    async with Recorder({"/search": text_answer(body, "text/html")}) as backend:
        with pytest.raises(WebToolError) as caught:
            await client.search(settings("searxng", backend), "rust")
    assert caught.value.error_code == "unavailable"


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("", "invalid_tool_input"),
        ("   ", "invalid_tool_input"),
        (None, "invalid_tool_input"),
        ("x" * 401, "query_too_long"),
    ],
)
async def test_bad_queries_never_reach_the_backend(client: WebClient, query: object, code: str) -> None:
    async with Recorder({"/search": json_answer(SEARXNG_ANSWER)}) as backend:
        with pytest.raises(WebToolError) as caught:
            await client.search(settings("searxng", backend), query)
    assert caught.value.error_code == code
    assert backend.received == []


async def test_no_backend_configured_is_unavailable(client: WebClient) -> None:
    with pytest.raises(WebToolError) as caught:
        await client.search(None, "rust")
    assert caught.value.error_code == "unavailable"


async def test_the_key_is_never_in_errors_or_logs(
    client: WebClient, caplog: pytest.LogCaptureFixture
) -> None:
    echo = json_answer({"error": f"invalid key {KEY}"}, status=500)
    caplog.set_level(logging.DEBUG)
    for provider in ("brave", "tavily", "exa", "searxng"):
        async with Recorder({"/search": echo, "/res/v1/web/search": echo}) as backend:
            with pytest.raises(WebToolError) as caught:
                await client.search(settings(provider, backend), "rust")
        assert KEY not in str(caught.value) and KEY not in caught.value.message
    assert caplog.records  # the failures were logged
    assert all(KEY not in record.getMessage() for record in caplog.records)
    assert KEY not in repr(settings("brave", backend))


# --- domain rules ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "allowed", "blocked", "passes"),
    [
        ("https://docs.example.com/a", ["example.com"], None, True),
        ("https://example.com/a", ["docs.example.com"], None, False),
        ("https://api.example.com/a", ["docs.example.com"], None, False),
        ("https://a.docs.example.com/", ["docs.example.com"], None, True),
        ("https://notexample.com/", ["example.com"], None, False),
        ("https://example.com/blog/post", ["example.com/blog"], None, True),
        ("https://example.com/blogroll", ["example.com/blog"], None, False),
        ("https://EXAMPLE.com/", ["https://example.com/"], None, True),
        ("https://www.example.com/", ["*.example.com"], None, True),
        ("https://example.com/", None, ["example.com"], False),
        ("https://sub.example.com/", [], ["example.com"], False),
        ("https://example.com/private/x", None, ["example.com/private"], False),
        ("https://example.com/public", None, ["example.com/private"], True),
        ("https://bücher.example/", ["bücher.example"], None, True),
        ("not a url", None, None, False),
    ],
)
def test_domain_rules(url: str, allowed: list[str] | None, blocked: list[str] | None, passes: bool) -> None:
    assert domain_allowed(url, allowed, blocked) is passes


# --- blocks ---------------------------------------------------------------------------------------


HITS = [
    SearchHit("https://tokio.rs/", "Tokio", "January 15, 2025", "Build reliable network applications. " * 8),
    SearchHit("https://docs.rs/tokio", "tokio - Rust", None, "A runtime."),
]


def message_with(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "gpt-4o",
        "content": [
            {
                "type": "server_tool_use",
                "id": "srvtoolu_01",
                "name": "web_search",
                "input": {"query": "tokio"},
            },
            *blocks,
            {"type": "text", "text": "Tokio is a runtime [1]."},
        ],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5},
    }


@pytest.mark.parametrize("result", [HITS, [], WebToolError("too_many_requests", "slow down")])
def test_search_block_validates_against_the_spec_and_the_sdk(result: Any) -> None:
    block = search_result_block("srvtoolu_01", result, SIGNER)
    anthropic_validator("ResponseWebSearchToolResultBlock").validate(block)
    anthropic_validator("RequestWebSearchToolResultBlock").validate(block)  # the client sends it back
    message = anthropic.types.Message.model_validate(message_with(block))
    parsed = message.content[1]
    assert isinstance(parsed, anthropic.types.WebSearchToolResultBlock)
    anthropic.types.beta.BetaMessage.model_validate(message_with(block))


def test_the_model_reads_numbered_sources_with_their_sealed_text() -> None:
    block = search_result_block("srvtoolu_01", HITS, SIGNER)
    assert "Build reliable" not in orjson.dumps(block).decode()  # the text travels sealed only
    text, sources = render_search_block(block, SIGNER, first_number=3)
    assert (
        "[3] Tokio — https://tokio.rs/\nPage age: January 15, 2025\nBuild reliable network applications."
        in text
    )
    assert "[4] tokio - Rust — https://docs.rs/tokio\nA runtime." in text
    assert "such as [3]" in text
    assert [(s.number, s.url, s.title) for s in sources] == [
        (3, "https://tokio.rs/", "Tokio"),
        (4, "https://docs.rs/tokio", "tokio - Rust"),
    ]
    assert len(sources[0].cited_text) <= 150 and sources[0].cited_text.startswith("Build reliable")
    assert sources[1].cited_text == "A runtime."


def test_forged_or_moved_envelopes_leave_title_and_url_only() -> None:
    block = search_result_block("srvtoolu_01", HITS, SIGNER)
    first, second = block["content"]
    second["encrypted_content"] = first["encrypted_content"]  # a genuine envelope moved to another result
    other_gateway = search_result_block("srvtoolu_01", HITS, ThinkingSigner("another-master-key"))
    for rendered in (render_search_block(block, SIGNER), render_search_block(other_gateway, SIGNER)):
        text, _ = rendered
        assert "A runtime." not in text
        assert "[2] tokio - Rust — https://docs.rs/tokio" in text
    text, _ = render_search_block(other_gateway, SIGNER)
    assert "Build reliable" not in text


def test_error_blocks_and_empty_results_read_as_one_line() -> None:
    block = search_result_block("srvtoolu_01", WebToolError("too_many_requests", "429"), SIGNER)
    assert render_search_block(block, SIGNER) == (error_text(block), [])
    assert "rate-limiting" in error_text(block)
    assert (
        render_search_block(search_result_block("srvtoolu_01", [], SIGNER), SIGNER)[0]
        == "The web search found no results."
    )


def test_the_search_function_definition() -> None:
    assert WEB_SEARCH_FUNCTION["name"] == "web_search"
    assert WEB_SEARCH_FUNCTION["input_schema"]["required"] == ["query"]
    anthropic_validator("Tool").validate({**WEB_SEARCH_FUNCTION})


# --- settings --------------------------------------------------------------------------------------


def test_settings_per_provider() -> None:
    config = parse_config(
        "general_settings:\n  web_search:\n    provider: searxng\n    api_base: http://searxng:8080/\n",
        env={},
    )
    assert config.general.web_search == WebSearchSettings("searxng", "http://searxng:8080", None, 10.0, 5)
    config = parse_config(
        "general_settings:\n  web_search:\n    provider: brave\n    api_key: os.environ/MY_BRAVE\n"
        "    timeout: 4\n    max_results: 8\n",
        env={"MY_BRAVE": KEY},
    )
    assert config.general.web_search == WebSearchSettings(
        "brave", "https://api.search.brave.com", KEY, 4.0, 8
    )
    tavily = parse_config(
        "general_settings:\n  web_search: {provider: tavily}\n", env={"TAVILY_API_KEY": KEY}
    )
    assert tavily.general.web_search is not None
    assert (tavily.general.web_search.api_base, tavily.general.web_search.api_key) == (
        "https://api.tavily.com",
        KEY,
    )
    exa = parse_config("general_settings:\n  web_search: {provider: exa, api_key: k-123456}\n", env={})
    assert exa.general.web_search is not None and exa.general.web_search.api_base == "https://api.exa.ai"
    assert parse_config("", env={}).general.web_search is None


def test_the_search_key_is_masked_once_the_config_is_loaded() -> None:
    config = parse_config(
        "general_settings:\n  web_search: {provider: brave, api_key: os.environ/B}\n",
        env={"B": "brv-0123456789"},
    )
    register_config_secrets(config)
    assert mask_secrets("the key brv-0123456789 leaked") == "the key [redacted] leaked"


@pytest.mark.parametrize(
    ("section", "mentions"),
    [
        (
            "{provider: searxng, api_bse: http://x}",
            r"web_search\.api_bse \(<config>:2:35\): unknown key 'api_bse'",
        ),
        ("{provider: google}", r"web_search\.provider.*unknown web search provider 'google'"),
        ("{provider: searxng}", r"web_search\.api_base.*required for searxng"),
        ("{provider: searxng, api_base: searxng:8080}", r"api_base.*http"),
        ("{provider: brave}", r"web_search\.api_key.*required for brave.*BRAVE_API_KEY"),
        ("{provider: exa, api_key: k, max_results: 50}", r"max_results.*from 1 to 20"),
        ("{provider: exa, api_key: k, timeout: 0}", r"timeout.*positive"),
        ("[searxng]", r"web_search.*mapping"),
    ],
)
def test_settings_errors_name_the_key(section: str, mentions: str) -> None:
    with pytest.raises(ConfigError, match=mentions):
        parse_config(f"general_settings:\n  web_search: {section}\n", env={})


def test_the_documented_examples_load() -> None:
    """Every ``web_search`` example in docs/claude-code.md is a valid config."""
    docs = (Path(__file__).resolve().parents[2] / "docs" / "claude-code.md").read_text()
    examples = [block for block in re.findall(r"```yaml\n(.*?)```", docs, re.S) if "web_search:" in block]
    assert len(examples) == 2
    env = {"BRAVE_API_KEY": "brave-key-123456"}
    providers = [parse_config(example, env=env).general.web_search for example in examples]
    assert [p.provider for p in providers if p is not None] == ["searxng", "brave"]
