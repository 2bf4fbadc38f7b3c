"""Web fetch against fake sites on loopback, through a fake DNS and a fake internet: what is refused
(private, loopback, link-local, metadata and IPv6-wrapped addresses, before and after DNS, on redirects,
under DNS rebinding), what is bounded (redirects, bytes, time), what a page becomes (text, title, PDF),
the result blocks against the spec and the SDK, the URLs a conversation makes fetchable, and the settings.

Every test runs on :class:`~tests.tools.web_support.FakeInternet`: a connection to anything but loopback
or a routed "public" address is refused, and every connection attempt is recorded.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import pytest
from aiohttp import web

from anygate.config import ConfigError, parse_config
from anygate.tools.web import (
    WEB_FETCH_FUNCTION,
    FetchedPage,
    WebClient,
    WebToolError,
    conversation_allows,
    error_text,
    fetch_result_block,
    render_fetch_block,
    urls_in_conversation,
)
from anygate.web_settings import WebFetchSettings
from tests.providers.openai_support import anthropic_validator
from tests.tools.web_support import (
    FakeInternet,
    FakeResolver,
    Handler,
    Recorder,
    fake_internet,
    redirect_to,
    text_answer,
)

PUBLIC = "93.184.216.34"
"""A public address the fake internet routes to the test site."""
OTHER_PUBLIC = "8.8.4.4"
PRIVATE = WebFetchSettings(allow_private_networks=True, timeout=2.0)
GUARDED = WebFetchSettings(timeout=2.0)
HTML = """<!doctype html><html><head><meta charset="utf-8"><title>The  Example Page</title>
<script>steal()</script><style>body{}</style></head><body><nav><a href="/docs">Docs</a></nav>
<h1>Welcome</h1><p>Hello <b>world</b>, see <a href="https://other.example/page">the other page</a>.</p>
</body></html>"""
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


async def trickle(request: web.Request) -> web.StreamResponse:
    """A body that never ends, a few bytes at a time."""
    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    await response.prepare(request)
    while True:
        await response.write(b"slow ")
        await asyncio.sleep(0.02)


def raw(body: bytes, content_type: str | None) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, headers={"Content-Type": content_type or "application/octet-stream"})

    return handler


def site_routes(port: int) -> dict[str, Handler]:
    return {
        "/page": text_answer(HTML, "text/html"),
        "/latin": raw(
            "<title>caf\u00e9</title><p>cr\u00e8me</p>".encode("latin-1"), "text/html; charset=iso-8859-1"
        ),
        "/text": text_answer("plain words", "text/plain"),
        "/readme.md": text_answer("# Title\n\nSome *markdown*.", "text/markdown"),
        "/data.json": text_answer('{"a": [1, 2]}', "application/json"),
        "/paper.pdf": raw(PDF, "application/pdf"),
        "/untyped.pdf": raw(PDF, None),
        "/image.png": raw(b"\x89PNG\r\n\x1a\n" + bytes(64), "image/png"),
        "/big": text_answer("x" * 5000, "text/plain"),
        "/slow": trickle,
        "/missing": text_answer("gone", "text/plain", status=404),
        "/broken": text_answer("oops", "text/plain", status=500),
        "/limited": text_answer("later", "text/plain", status=429),
        "/hop1": redirect_to("/hop2", 301),
        "/hop2": redirect_to("/page", 307),
        "/loop": redirect_to("/loop"),
        "/to-loopback": redirect_to(f"http://127.0.0.1:{port}/page"),
        "/to-metadata": redirect_to("http://169.254.169.254/latest/meta-data/"),
        "/to-internal-name": redirect_to("http://internal.test/admin"),
        "/to-self": redirect_to("http://rebind.test/page"),
        "/to-ftp": redirect_to("ftp://files.example/x"),
        "/to-blocked": redirect_to("http://blocked.test/page"),
    }


class Site:
    """The fake site, reachable as 127.0.0.1 (loopback) and as a public address through DNS names."""

    def __init__(self, recorder: Recorder, internet: FakeInternet, resolver: FakeResolver) -> None:
        self.recorder = recorder
        self.internet = internet
        self.resolver = resolver

    def url(self, path: str) -> str:
        return self.recorder.url(path)

    def public(self, path: str, host: str = "public.test") -> str:
        return f"http://{host}:{self.recorder.port}{path}"

    @property
    def paths(self) -> list[str]:
        return [r.path for r in self.recorder.received]


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    internet = FakeInternet()
    routes: dict[str, Handler] = {}
    async with Recorder(routes) as recorder:
        routes.update(site_routes(recorder.port))
        internet.route((PUBLIC, recorder.port), recorder.port)
        resolver = FakeResolver(
            {
                "public.test": [[PUBLIC]],
                "blocked.test": [[PUBLIC]],
                "localhost": [["127.0.0.1", "::1"]],
                "internal.test": [["10.0.0.7"]],
                "metadata.test": [["169.254.169.254"]],
                "mixed.test": [[PUBLIC, "192.168.1.20"]],
                "v6private.test": [["fd00:ec2::254"]],
                "mapped.test": [["::ffff:127.0.0.1"]],
                "rebind.test": [[PUBLIC], ["127.0.0.1"]],
                "unroutable.test": [[OTHER_PUBLIC]],
            }
        )
        gen = fake_internet(asyncio.get_running_loop(), internet)
        await anext(gen)
        try:
            yield Site(recorder, internet, resolver)
        finally:
            await gen.aclose()


@pytest.fixture
async def client(site: Site) -> AsyncIterator[WebClient]:
    web_client = WebClient(resolver_factory=lambda: site.resolver)
    yield web_client
    await web_client.aclose()


async def refused(client: WebClient, settings: WebFetchSettings, url: str, **kwargs: Any) -> str:
    with pytest.raises(WebToolError) as caught:
        await client.fetch(settings, url, **kwargs)
    return caught.value.error_code


# --- content -------------------------------------------------------------------------------------------


async def test_allow_private_networks_fetches_loopback_as_readable_text(
    client: WebClient, site: Site
) -> None:
    page = await client.fetch(PRIVATE, site.url("/page"))
    assert page.title == "The Example Page"
    assert page.media_type == "text/plain"
    assert page.data == (
        f"[Docs]({site.url('/docs')})\n\n# Welcome\n\nHello world, see [the other page](https://other.example/page)."
    )
    assert "steal" not in page.data and "body{}" not in page.data
    assert page.url == site.url("/page") and page.content_type == "text/html" and not page.truncated
    assert page.retrieved_at.endswith("Z")
    assert site.recorder.received[0].headers["User-Agent"].startswith("anygate")


@pytest.mark.parametrize(
    ("path", "data", "title"),
    [
        ("/text", "plain words", None),
        ("/readme.md", "# Title\n\nSome *markdown*.", None),
        ("/data.json", '{"a": [1, 2]}', None),
        ("/latin", "cr\u00e8me", "caf\u00e9"),
    ],
)
async def test_text_types(client: WebClient, site: Site, path: str, data: str, title: str | None) -> None:
    page = await client.fetch(PRIVATE, site.url(path))
    assert (page.data, page.title, page.media_type) == (data, title, "text/plain")


@pytest.mark.parametrize("path", ["/paper.pdf", "/untyped.pdf"])
async def test_pdf_is_kept_as_base64(client: WebClient, site: Site, path: str) -> None:
    page = await client.fetch(PRIVATE, site.url(path))
    assert page.media_type == "application/pdf"
    assert base64.b64decode(page.data) == PDF
    assert page.title == path.removeprefix("/")


async def test_other_content_types_are_unsupported(client: WebClient, site: Site) -> None:
    assert await refused(client, PRIVATE, site.url("/image.png")) == "unsupported_content_type"


async def test_max_content_tokens_cuts_the_text(client: WebClient, site: Site) -> None:
    page = await client.fetch(PRIVATE, site.url("/big"), max_content_tokens=100)
    assert page.truncated
    assert page.data.startswith("x" * 400) and "x" * 401 not in page.data
    assert "max_content_tokens" in page.data


async def test_max_bytes_stops_reading(client: WebClient, site: Site) -> None:
    settings = WebFetchSettings(allow_private_networks=True, max_bytes=1000, timeout=2.0)
    page = await client.fetch(settings, site.url("/big"))
    assert page.truncated and page.data.startswith("x" * 1000) and "x" * 1001 not in page.data
    small = WebFetchSettings(allow_private_networks=True, max_bytes=10, timeout=2.0)
    assert await refused(client, small, site.url("/paper.pdf")) == "url_not_accessible"  # half a PDF is none


async def test_an_endless_body_is_cut_at_max_bytes(client: WebClient, site: Site) -> None:
    settings = WebFetchSettings(allow_private_networks=True, max_bytes=50, timeout=2.0)
    page = await client.fetch(settings, site.url("/slow"))
    assert page.truncated and page.data.startswith("slow slow")


async def test_a_slow_body_is_bounded_by_the_timeout(client: WebClient, site: Site) -> None:
    settings = WebFetchSettings(allow_private_networks=True, timeout=0.15)
    started = time.monotonic()
    assert await refused(client, settings, site.url("/slow")) == "url_not_accessible"
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("path", ["/missing", "/broken", "/limited", "/nowhere"])
async def test_error_statuses_are_not_accessible(client: WebClient, site: Site, path: str) -> None:
    assert await refused(client, PRIVATE, site.url(path)) == "url_not_accessible"


async def test_unreachable_host(client: WebClient, site: Site) -> None:
    assert await refused(client, GUARDED, "http://unroutable.test/") == "url_not_accessible"
    assert await refused(client, GUARDED, "http://no-such-host.test/") == "url_not_accessible"


# --- URLs -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("", "invalid_tool_input"),
        (None, "invalid_tool_input"),
        ("example.com/page", "invalid_tool_input"),
        ("file:///etc/passwd", "invalid_tool_input"),
        ("gopher://public.test/", "invalid_tool_input"),
        ("http://user:pw@public.test/", "invalid_tool_input"),
        ("https://public.test/" + "a" * 240, "url_too_long"),
    ],
)
async def test_bad_urls(client: WebClient, site: Site, url: object, code: str) -> None:
    assert await refused(client, GUARDED, url) == code  # type: ignore[arg-type]
    assert site.internet.attempts == []


async def test_domain_rules(client: WebClient, site: Site) -> None:
    url = site.public("/page")
    assert await refused(client, GUARDED, url, allowed_domains=["example.com"]) == "url_not_allowed"
    assert await refused(client, GUARDED, url, blocked_domains=["test"]) == "url_not_allowed"
    page = await client.fetch(GUARDED, url, allowed_domains=["public.test"])
    assert page.title == "The Example Page"


# --- SSRF --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.8.9.10",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "[::1]",
        "[::]",
        "[fd00:ec2::254]",
        "[fe80::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:169.254.169.254]",
        "[::ffff:a9fe:a9fe]",
        "[2002:7f00:1::]",
        "[64:ff9b::a9fe:a9fe]",
    ],
)
async def test_private_literals_are_refused_before_any_connection(
    client: WebClient, site: Site, host: str
) -> None:
    assert await refused(client, GUARDED, f"http://{host}:{site.recorder.port}/page") == "url_not_allowed"
    assert site.internet.attempts == []
    assert site.paths == []


@pytest.mark.parametrize(
    "host", ["localhost", "internal.test", "metadata.test", "mixed.test", "v6private.test", "mapped.test"]
)
async def test_names_resolving_to_private_addresses_are_refused(
    client: WebClient, site: Site, host: str
) -> None:
    assert await refused(client, GUARDED, f"http://{host}:{site.recorder.port}/page") == "url_not_accessible"
    assert site.resolver.lookups == [host]
    assert site.internet.attempts == []  # refused at resolution: no connection to any of its addresses
    assert site.paths == []


async def test_numeric_host_forms_never_reach_loopback(client: WebClient, site: Site) -> None:
    for host in ("2130706433", "0x7f000001", "127.1", "017700000001"):
        assert await refused(client, GUARDED, f"http://{host}:{site.recorder.port}/page") in (
            "url_not_accessible",
            "url_not_allowed",
        )
    assert all(address == PUBLIC for address, _ in site.internet.attempts)
    assert site.paths == []


async def test_the_system_resolver_is_guarded_too(site: Site) -> None:
    """Without an injected resolver (getaddrinfo in a thread; these names resolve without a network)."""
    system = WebClient()
    try:
        for host in ("localhost", "0x7f000001", "0177.0.0.1", "127.0.0.1."):
            assert await refused(system, GUARDED, f"http://{host}:{site.recorder.port}/page") in (
                "url_not_accessible",
                "url_not_allowed",
            )
    finally:
        await system.aclose()
    assert site.internet.attempts == []
    assert site.paths == []


async def test_a_public_name_is_fetched_through_the_checked_address(client: WebClient, site: Site) -> None:
    page = await client.fetch(GUARDED, site.public("/page"))
    assert page.title == "The Example Page"
    assert site.internet.attempts == [(PUBLIC, site.recorder.port)]


async def test_dns_rebinding_cannot_reach_loopback(client: WebClient, site: Site) -> None:
    """rebind.test answers a public address first and 127.0.0.1 afterwards. The address the guard checked
    is the one connected to (one lookup, no second one to rebind); a later lookup, here a redirect to the
    same name, is checked again and refused."""
    page = await client.fetch(GUARDED, site.public("/page", host="rebind.test"))
    assert page.title == "The Example Page"
    assert site.resolver.lookups == ["rebind.test"]
    assert site.internet.attempts == [(PUBLIC, site.recorder.port)]

    assert await refused(client, GUARDED, site.public("/to-self", host="rebind.test")) == "url_not_accessible"
    assert site.resolver.lookups == ["rebind.test", "rebind.test"]
    assert [address for address, _ in site.internet.attempts] == [PUBLIC]
    assert site.paths == ["/page"]


@pytest.mark.parametrize("path", ["/to-loopback", "/to-metadata", "/to-internal-name", "/to-ftp"])
async def test_redirects_to_private_or_odd_targets_are_refused(
    client: WebClient, site: Site, path: str
) -> None:
    assert await refused(client, GUARDED, site.public(path)) == "url_not_accessible"
    assert site.paths == [path]
    assert [address for address, _ in site.internet.attempts] == [PUBLIC]


async def test_redirects_are_checked_against_the_domain_rules(client: WebClient, site: Site) -> None:
    url = site.public("/to-blocked")
    assert await refused(client, GUARDED, url, blocked_domains=["blocked.test"]) == "url_not_accessible"
    assert site.paths == ["/to-blocked"]


async def test_redirects_are_followed_and_bounded(client: WebClient, site: Site) -> None:
    page = await client.fetch(GUARDED, site.public("/hop1"))
    assert page.url == site.public("/page") and page.title == "The Example Page"
    assert site.paths == ["/hop1", "/hop2", "/page"]

    bounded = WebFetchSettings(max_redirects=3, timeout=2.0)
    assert await refused(client, bounded, site.public("/loop")) == "url_not_accessible"
    assert site.paths[3:] == ["/loop"] * 4  # the first request and three redirects, then it stops
    none = WebFetchSettings(max_redirects=0, timeout=2.0)
    assert await refused(client, none, site.public("/hop1")) == "url_not_accessible"


# --- blocks ---------------------------------------------------------------------------------------------


def message_with(block: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "gpt-4o",
        "content": [
            {
                "type": "server_tool_use",
                "id": "srvtoolu_02",
                "name": "web_fetch",
                "input": {"url": "https://x.test/"},
            },
            block,
        ],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5},
    }


TEXT_PAGE = FetchedPage("https://x.test/a", "A page", "text/plain", "Body text.", "2026-01-02T03:04:05Z")
PDF_PAGE = FetchedPage(
    "https://x.test/p.pdf", "p.pdf", "application/pdf", base64.b64encode(PDF).decode(), "2026-01-02T03:04:05Z"
)
UNTITLED = FetchedPage("https://x.test/b", None, "text/plain", "", "2026-01-02T03:04:05Z")


@pytest.mark.parametrize(
    "result", [TEXT_PAGE, PDF_PAGE, UNTITLED, WebToolError("url_not_allowed", "not in the conversation")]
)
@pytest.mark.parametrize("citations", [True, False])
def test_fetch_block_validates_against_the_spec_and_the_sdk(result: Any, citations: bool) -> None:
    block = fetch_result_block("srvtoolu_02", result, citations=citations)
    anthropic_validator("ResponseWebFetchToolResultBlock").validate(block)
    anthropic_validator("RequestWebFetchToolResultBlock").validate(block)  # the client sends it back
    message = anthropic.types.Message.model_validate(message_with(block))
    assert isinstance(message.content[1], anthropic.types.WebFetchToolResultBlock)
    anthropic.types.beta.BetaMessage.model_validate(message_with(block))


def test_the_model_reads_a_fetch_block() -> None:
    text = render_fetch_block(fetch_result_block("srvtoolu_02", TEXT_PAGE))
    assert text == "Content of https://x.test/a (A page), retrieved 2026-01-02T03:04:05Z:\n\nBody text."
    pdf = render_fetch_block(fetch_result_block("srvtoolu_02", PDF_PAGE))
    assert "is a PDF document" in pdf and "cannot extract text" in pdf
    assert PDF_PAGE.data not in pdf
    error = fetch_result_block("srvtoolu_02", WebToolError("url_not_accessible", "HTTP 404"))
    assert render_fetch_block(error) == error_text(error)
    assert "could not be fetched" in error_text(error)


def test_the_fetch_function_definition() -> None:
    assert WEB_FETCH_FUNCTION["name"] == "web_fetch"
    assert WEB_FETCH_FUNCTION["input_schema"]["required"] == ["url"]
    anthropic_validator("Tool").validate({**WEB_FETCH_FUNCTION})


# --- URLs the conversation makes fetchable ---------------------------------------------------------------


def conversation(tools: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "model": "m",
        "tools": tools or [{"type": "web_fetch_20250910", "name": "web_fetch"}],
        "messages": [
            {"role": "user", "content": "Summarize https://Example.COM/Article#intro (and compare)."},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "I will look at https://made-up.example/ too."},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "Read",
                        "input": {"url": "https://input.example/"},
                    },
                    {
                        "type": "server_tool_use",
                        "id": "srvtoolu_1",
                        "name": "web_search",
                        "input": {"query": "q"},
                    },
                    {
                        "type": "web_search_tool_result",
                        "tool_use_id": "srvtoolu_1",
                        "content": [
                            {
                                "type": "web_search_result",
                                "url": "https://found.example/a",
                                "title": "A",
                                "encrypted_content": "e",
                            }
                        ],
                    },
                    {
                        "type": "server_tool_use",
                        "id": "srvtoolu_2",
                        "name": "web_fetch",
                        "input": {"url": "https://found.example/a"},
                    },
                    fetch_result_block(
                        "srvtoolu_2",
                        FetchedPage(
                            "https://found.example/a",
                            "A",
                            "text/plain",
                            "See [b](https://linked.example/b).",
                            "t",
                        ),
                    ),
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": "file mentions https://tool.example/x",
                    },
                    {
                        "type": "text",
                        "text": "Also <https://angle.example/path>, and https://wiki.example/A_(b).",
                    },
                    {"type": "document", "source": {"type": "url", "url": "https://doc.example/file.pdf"}},
                ],
            },
        ],
    }


def test_urls_in_conversation_follow_anthropics_rule() -> None:
    urls = urls_in_conversation(conversation())
    for url in (
        "https://example.com/Article",  # the user's, normalized (host case, fragment)
        "https://Example.COM/Article#intro",
        "https://found.example/a",  # a search result
        "https://linked.example/b",  # a link in a fetched page
        "https://angle.example/path",
        "https://wiki.example/A_(b)",
        "https://doc.example/file.pdf",
    ):
        assert conversation_allows(url, urls), url
    for url in (
        "https://made-up.example/",
        "https://input.example/",
        "https://tool.example/x",
        "https://example.com/other",
    ):
        assert not conversation_allows(url, urls), url


def reference(name: str) -> dict[str, str]:
    return {"type": "tool_reference", "name": name}


def test_url_sources_change_what_counts() -> None:
    tools = [
        {
            "type": "web_fetch_20260318",
            "name": "web_fetch",
            "url_sources": {
                "user_input": {"type": "none"},
                "server_tool_results": {"type": "except", "tools": [reference("web_fetch")]},
                "client_tool_results": {"type": "only", "tools": [reference("Read")]},
            },
        },
    ]
    urls = urls_in_conversation(conversation(tools))
    assert conversation_allows("https://found.example/a", urls)
    assert conversation_allows("https://tool.example/x", urls)
    assert not conversation_allows("https://example.com/Article", urls)
    assert not conversation_allows("https://linked.example/b", urls)


# --- settings ------------------------------------------------------------------------------------------


def test_fetch_settings() -> None:
    assert parse_config("", env={}).general.web_fetch == WebFetchSettings(False, 10 * 1024 * 1024, 30.0, 5)
    config = parse_config(
        "general_settings:\n  web_fetch:\n    allow_private_networks: true\n    max_bytes: 1000\n"
        "    timeout: 5\n    max_redirects: 0\n",
        env={},
    )
    assert config.general.web_fetch == WebFetchSettings(True, 1000, 5.0, 0)


@pytest.mark.parametrize(
    ("section", "mentions"),
    [
        ("{allow_private: true}", r"web_fetch\.allow_private .*unknown key 'allow_private'"),
        ("{allow_private_networks: yes please}", r"allow_private_networks.*true or false"),
        ("{max_bytes: 0}", r"max_bytes.*at least 1"),
        ("{max_redirects: -1}", r"max_redirects.*at least 0"),
        ("{timeout: soon}", r"timeout.*positive"),
    ],
)
def test_fetch_settings_errors_name_the_key(section: str, mentions: str) -> None:
    with pytest.raises(ConfigError, match=mentions):
        parse_config(f"general_settings:\n  web_fetch: {section}\n", env={})
