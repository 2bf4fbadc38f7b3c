"""Web fetch: one URL, fetched under the gateway's rules and turned into what a model can read.

Rules, in the order they apply:

1. The URL is checked first: a string (``invalid_tool_input``), at most :data:`MAX_URL_CHARS` characters
   (``url_too_long``: Anthropic's documented bound for this error), ``http`` or ``https`` with a host and
   without credentials (``invalid_tool_input``), inside the tool's ``allowed_domains`` and outside its
   ``blocked_domains`` (``url_not_allowed``). A host written as an IP literal that is not public is
   ``url_not_allowed`` too: the URL itself says where it points.
2. The connection goes only to public addresses (:mod:`~anygate.tools.web.guard`), checked after DNS
   resolution and pinned to the checked addresses. A host that resolves to a private address gets
   ``url_not_accessible``, the same answer as a host that does not resolve or refuses the connection,
   so the tool is no oracle for which internal names exist.
3. Redirects are followed by hand, at most ``max_redirects``, each hop checked again (scheme, domain
   rules, address); any refusal after the first hop is ``url_not_accessible`` (the model's URL was fine,
   where it led was not). The whole fetch, every hop and the body included, is bounded by ``timeout``.
4. A status other than 2xx is ``url_not_accessible``, the target's 429 included (Anthropic's
   ``too_many_requests`` is about the tool's own rate, not the site's).
5. At most ``max_bytes`` of the body are read (decompressed bytes, so a compression bomb stops there
   too); a longer text page is cut, a longer PDF is ``url_not_accessible`` (half a PDF is unreadable).
6. Content: HTML becomes readable text (:mod:`~anygate.tools.web.html_text`) with the ``<title>`` as
   the title; any other ``text/*``, JSON and XML is kept as text; a PDF is kept as base64 (the client gets
   it as a ``document`` block of ``application/pdf``; the model is told it is a PDF the gateway cannot
   read); anything else is ``unsupported_content_type``. Text is cut to ``max_content_tokens`` by the
   estimate of :data:`~anygate.tools.web.common.CHARS_PER_TOKEN` characters per token.
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import aiohttp
import yarl

from anygate.tools.web.common import CHARS_PER_TOKEN, WebToolError, domain_allowed, read_body
from anygate.tools.web.guard import AddressRefused, forbidden_address, parse_address
from anygate.tools.web.html_text import html_to_text
from anygate.web_settings import WebFetchSettings

MAX_URL_CHARS: Final = 250
"""Longest URL fetched (Anthropic's web fetch answers ``url_too_long`` beyond 250 characters)."""
MAX_REDIRECT_URL_CHARS: Final = 2048
"""Longest redirect target followed (the site chose it, not the model)."""
REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
HTML_TYPES: Final = frozenset({"text/html", "application/xhtml+xml"})
TEXT_TYPES: Final = frozenset(
    {
        "application/json",
        "application/xml",
        "application/javascript",
        "application/x-ndjson",
        "application/yaml",
    }
)
"""Non-``text/*`` media types kept as text (``+json`` and ``+xml`` types are too)."""
PDF_TYPE: Final = "application/pdf"
TRUNCATED_NOTE: Final = (
    "\n\n[The content was cut here: the page is longer than the fetch's max_content_tokens.]"
)
CUT_NOTE: Final = "\n\n[The content was cut here: the page is larger than the gateway reads.]"
REQUEST_HEADERS: Final = {
    "User-Agent": "anygate-web-fetch/1.0",
    "Accept": (
        "text/html,application/xhtml+xml,text/markdown;q=0.9,text/plain;q=0.9,application/json;q=0.8,"
        "application/pdf;q=0.8,*/*;q=0.5"
    ),
}
_META_CHARSET: Final = re.compile(
    rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]{1,40})""", re.I
)


@dataclass(frozen=True, slots=True)
class FetchedPage:
    """A fetched page as the result block carries it."""

    url: str
    """Where the content came from (after redirects)."""
    title: str | None
    media_type: str
    """``text/plain`` (``data`` is text) or ``application/pdf`` (``data`` is base64)."""
    data: str
    retrieved_at: str
    """ISO 8601, UTC."""
    content_type: str = ""
    """The media type the site declared."""
    truncated: bool = False


def check_url(url: object, allowed: Sequence[str] | None, blocked: Sequence[str] | None) -> yarl.URL:
    """The model's URL, parsed, or the error for what is wrong with it (rule 1)."""
    if not isinstance(url, str) or not url.strip():
        raise WebToolError("invalid_tool_input", "the URL is empty")
    url = url.strip()
    if len(url) > MAX_URL_CHARS:
        raise WebToolError("url_too_long", f"the URL has {len(url)} characters (at most {MAX_URL_CHARS})")
    parsed = _parse(url)
    if parsed is None:
        raise WebToolError("invalid_tool_input", "the URL is not an http or https URL with a host")
    if not domain_allowed(url, allowed, blocked):
        raise WebToolError("url_not_allowed", "the URL's domain is not allowed by the tool's domain rules")
    return parsed


def literal_refused(url: yarl.URL, settings: WebFetchSettings) -> bool:
    """True when the URL's host is an IP literal web fetch may not connect to."""
    address = parse_address(url.raw_host or "")
    return address is not None and not settings.allow_private_networks and forbidden_address(address)


async def fetch_page(
    session: aiohttp.ClientSession,
    settings: WebFetchSettings,
    url: object,
    *,
    allowed_domains: Sequence[str] | None = None,
    blocked_domains: Sequence[str] | None = None,
    max_content_tokens: int | None = None,
) -> FetchedPage:
    """Fetch ``url`` by the module's rules; :class:`WebToolError` when it cannot be done."""
    target = check_url(url, allowed_domains, blocked_domains)
    if literal_refused(target, settings):
        raise WebToolError("url_not_allowed", "the URL points at an address that is not public")
    try:
        async with asyncio.timeout(settings.timeout):
            final, body, cut, content_type, charset = await _download(
                session, settings, target, allowed_domains, blocked_domains
            )
    except TimeoutError:
        raise WebToolError(
            "url_not_accessible", f"the fetch took longer than {settings.timeout:g} s"
        ) from None
    return await _page(final, body, cut, content_type, charset, max_content_tokens)


async def _download(
    session: aiohttp.ClientSession,
    settings: WebFetchSettings,
    url: yarl.URL,
    allowed: Sequence[str] | None,
    blocked: Sequence[str] | None,
) -> tuple[yarl.URL, bytes, bool, str, str | None]:
    """The final URL, the body (at most ``max_bytes``), whether it was cut, its type and charset."""
    redirects = 0
    while True:
        try:
            async with session.get(url, headers=REQUEST_HEADERS, allow_redirects=False) as response:
                location = response.headers.get("Location")
                if response.status in REDIRECT_STATUSES and location:
                    redirects += 1
                    if redirects > settings.max_redirects:
                        raise WebToolError(
                            "url_not_accessible", f"more than {settings.max_redirects} redirects"
                        )
                    url = _next_hop(url, location, settings, allowed, blocked)
                    continue
                if not 200 <= response.status < 300:
                    raise WebToolError("url_not_accessible", f"the site answered HTTP {response.status}")
                declared = response.content_length
                content_type = response.headers.get("Content-Type", "")
                if (
                    declared is not None
                    and declared > settings.max_bytes
                    and _media(content_type) == PDF_TYPE
                ):
                    raise WebToolError("url_not_accessible", "the PDF is larger than web_fetch.max_bytes")
                body, cut = await read_body(response, settings.max_bytes)
                return url, body, cut, content_type, response.charset
        except aiohttp.ClientError as exc:
            raise _connection_error(exc) from None
        except ValueError:
            raise WebToolError("url_not_accessible", "the site's answer could not be read") from None


def _next_hop(
    url: yarl.URL,
    location: str,
    settings: WebFetchSettings,
    allowed: Sequence[str] | None,
    blocked: Sequence[str] | None,
) -> yarl.URL:
    """The redirect target, checked like the model's URL; every refusal is ``url_not_accessible``."""
    try:
        target = url.join(yarl.URL(location.strip()))
    except (ValueError, TypeError):
        raise WebToolError("url_not_accessible", "the site redirected to a malformed URL") from None
    text = str(target)
    checked = _parse(text) if len(text) <= MAX_REDIRECT_URL_CHARS else None
    if checked is None:
        raise WebToolError("url_not_accessible", "the site redirected to a URL that is not fetched")
    if not domain_allowed(text, allowed, blocked):
        raise WebToolError("url_not_accessible", "the site redirected to a domain the tool does not allow")
    if literal_refused(checked, settings):
        raise WebToolError("url_not_accessible", "the site redirected to an address that is not public")
    return checked


def _connection_error(exc: BaseException) -> WebToolError:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, AddressRefused):
            return WebToolError("url_not_accessible", "the host resolves to an address that is not public")
        cause = getattr(cause, "os_error", None) or cause.__cause__
    return WebToolError("url_not_accessible", f"the site could not be reached ({type(exc).__name__})")


async def _page(
    url: yarl.URL, body: bytes, cut: bool, content_type: str, charset: str | None, max_tokens: int | None
) -> FetchedPage:
    media = _media(content_type) or _sniff(body)
    retrieved_at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    if media == PDF_TYPE or (media == "application/octet-stream" and body.startswith(b"%PDF-")):
        if cut:
            raise WebToolError("url_not_accessible", "the PDF is larger than web_fetch.max_bytes")
        name = url.name or None
        data = base64.b64encode(body).decode("ascii")
        return FetchedPage(str(url), name, PDF_TYPE, data, retrieved_at, content_type=PDF_TYPE)
    if media in HTML_TYPES:
        text, title = await asyncio.to_thread(html_to_text, _decode(body, charset, html=True), str(url))
    elif media.startswith("text/") or media in TEXT_TYPES or media.endswith(("+json", "+xml")):
        text, title = _decode(body, charset, html=False), None
    else:
        raise WebToolError("unsupported_content_type", f"the page is {media or 'of no declared type'}")
    truncated = False
    if cut:
        text, truncated = text + CUT_NOTE, True
    if max_tokens is not None and len(text) > max_tokens * CHARS_PER_TOKEN:
        text, truncated = text[: max_tokens * CHARS_PER_TOKEN].rstrip() + TRUNCATED_NOTE, True
    return FetchedPage(
        str(url), title, "text/plain", text, retrieved_at, content_type=media, truncated=truncated
    )


def _parse(url: str) -> yarl.URL | None:
    try:
        parsed = yarl.URL(url)
    except (ValueError, TypeError):
        return None
    if (
        parsed.scheme.lower() not in ("http", "https")
        or not parsed.raw_host
        or parsed.user
        or parsed.password
    ):
        return None
    return parsed


def _media(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _sniff(body: bytes) -> str:
    """The media type of a body the site sent without one."""
    head = body[:1024].lstrip().lower()
    if head.startswith(b"%pdf-"):
        return PDF_TYPE
    if head.startswith((b"<!doctype html", b"<html")) or b"<body" in head:
        return "text/html"
    try:
        body[:4096].decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < 4090:
            return "application/octet-stream"
    return "text/plain"


def _decode(body: bytes, charset: str | None, *, html: bool) -> str:
    """``body`` as text: the declared charset, else a ``<meta charset>`` (HTML), else UTF-8."""
    if charset is None and html:
        match = _META_CHARSET.search(body[:4096])
        charset = match.group(1).decode("ascii") if match else None
    try:
        codec = codecs.lookup(charset or "utf-8").name
    except LookupError:
        codec = "utf-8"
    return body.decode(codec, errors="replace")
