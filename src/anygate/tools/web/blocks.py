"""The web tools as the model sees them and as the client sees them (pure functions, no I/O).

For a non-Anthropic upstream, ``web_search_*`` / ``web_fetch_*`` server tools become the ordinary
function tools :data:`WEB_SEARCH_FUNCTION` / :data:`WEB_FETCH_FUNCTION`. What the gateway ran becomes
Anthropic's result blocks for the client (:func:`search_result_block`, :func:`fetch_result_block`; their
shapes are the spec's ``ResponseWebSearchToolResultBlock`` / ``ResponseWebFetchToolResultBlock``), and
the model reads each result block as tool-result text rendered from the block alone, since the block is
all a later request brings back (:func:`render_search_block`, :func:`render_fetch_block`,
:func:`error_text`).

A search result's page text travels in ``encrypted_content`` sealed by the gateway's signer (tag
``web_search``, bound to the result's URL), so a later turn can show the model the text again; an
envelope that does not unseal (another gateway's, an edited one, Anthropic's own) leaves the model the
title and URL. Sources are numbered across a turn (``first_number``) so the model can cite them as
``[n]``; :class:`Source` is what a citation to such a number is built from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from anygate.protocol.tools import DIRECT_CALLER
from anygate.signing import ThinkingSigner
from anygate.tools.web.common import WebToolError
from anygate.tools.web.fetch import PDF_TYPE, FetchedPage
from anygate.tools.web.search import SearchHit

SEAL_TAG: Final = "web_search"
CITED_TEXT_CHARS: Final = 150
"""Anthropic's ``cited_text`` holds up to 150 characters of the cited content."""
MAX_TITLE_CHARS: Final = 500
"""A document title sent back by the client may have at most 500 characters (the spec's request type)."""

WEB_SEARCH_FUNCTION: Final[Mapping[str, Any]] = {
    "name": "web_search",
    "description": (
        "Search the web for current information: news, recent releases, documentation, facts after your "
        "training data, or anything you are unsure of. Returns numbered results with a title, URL, age "
        "and an excerpt of each page. Write the query as a search engine query (a few precise keywords, "
        "not a question to a person). Cite the results you use as [n] right after the statement they "
        "support. You can fetch a result's full page with web_fetch when it is available."
    ),
    "input_schema": {
        "type": "object",
        "properties": {"query": {"type": "string", "description": "The search query."}},
        "required": ["query"],
        "additionalProperties": False,
    },
}
WEB_FETCH_FUNCTION: Final[Mapping[str, Any]] = {
    "name": "web_fetch",
    "description": (
        "Fetch the full content of a web page or PDF and read it as text. Only URLs that already "
        "appeared in this conversation can be fetched: ones the user gave, and ones from earlier "
        "web_search or web_fetch results (links in a fetched page included). Never make up or modify "
        "URLs. Use it to read a page in full after a search, or a page the user pointed to."
    ),
    "input_schema": {
        "type": "object",
        "properties": {"url": {"type": "string", "description": "The URL to fetch, exactly as it appeared."}},
        "required": ["url"],
        "additionalProperties": False,
    },
}

SEARCH_ERROR_TEXT: Final[Mapping[str, str]] = {
    "invalid_tool_input": "The web search was not run: the query was empty or malformed.",
    "query_too_long": "The web search was not run: the query is too long; search with fewer words.",
    "max_uses_exceeded": "The web search was not run: this request has used all the searches it may.",
    "too_many_requests": "The web search failed: the search service is rate-limiting; try again later.",
    "unavailable": "The web search failed: the search service is unavailable right now.",
}
"""Web search error code → the line the model reads (it should carry on without the search)."""
FETCH_ERROR_TEXT: Final[Mapping[str, str]] = {
    "invalid_tool_input": "The page was not fetched: the URL is not a valid http or https URL.",
    "url_too_long": "The page was not fetched: the URL is too long.",
    "url_not_allowed": (
        "The page was not fetched: the URL is not allowed (only URLs from the user or from earlier search "
        "and fetch results, within the allowed domains, and only public addresses can be fetched)."
    ),
    "url_not_accessible": (
        "The page could not be fetched: the site could not be reached or answered with an error."
    ),
    "unsupported_content_type": "The page was not fetched: its content type is not text, HTML or PDF.",
    "too_many_requests": "The page was not fetched: too many fetches; try again later.",
    "max_uses_exceeded": "The page was not fetched: this request has used all the fetches it may.",
    "unavailable": "The page could not be fetched: web fetch is unavailable right now.",
}
"""Web fetch error code → the line the model reads."""


@dataclass(frozen=True, slots=True)
class Source:
    """A numbered search result the model may cite as ``[number]``."""

    number: int
    url: str
    title: str
    cited_text: str


def search_result_block(
    tool_use_id: str, result: Sequence[SearchHit] | WebToolError, signer: ThinkingSigner
) -> dict[str, Any]:
    """The client's ``web_search_tool_result`` block for a search's hits or its failure."""
    content: Any
    if isinstance(result, WebToolError):
        content = {"type": "web_search_tool_result_error", "error_code": result.error_code}
    else:
        content = [
            {
                "type": "web_search_result",
                "url": hit.url,
                "title": hit.title,
                "page_age": hit.page_age,
                "encrypted_content": signer.seal(SEAL_TAG, {"url": hit.url, "text": hit.text}),
            }
            for hit in result
        ]
    return {
        "type": "web_search_tool_result",
        "tool_use_id": tool_use_id,
        "caller": DIRECT_CALLER,
        "content": content,
    }


def render_search_block(
    block: Mapping[str, Any], signer: ThinkingSigner, first_number: int = 1
) -> tuple[str, list[Source]]:
    """The tool-result text the model reads for a ``web_search_tool_result`` block, and its sources
    numbered from ``first_number``."""
    content = block.get("content")
    if not isinstance(content, list):
        return error_text(block), []
    sources: list[Source] = []
    entries: list[str] = []
    for result in content:
        if not isinstance(result, Mapping) or not isinstance(result.get("url"), str):
            continue
        url = result["url"]
        title = str(result.get("title") or url)
        sealed = signer.unseal(SEAL_TAG, result.get("encrypted_content"))
        text = str(sealed.get("text") or "") if sealed and sealed.get("url") == url else ""
        number = first_number + len(sources)
        sources.append(Source(number, url, title, _cited(text or title)))
        lines = [f"[{number}] {title} — {url}"]
        if result.get("page_age"):
            lines.append(f"Page age: {result['page_age']}")
        if text:
            lines.append(text)
        entries.append("\n".join(lines))
    if not entries:
        return "The web search found no results.", []
    header = (
        "Web search results. Cite a result you rely on by its number in brackets, such as "
        f"[{first_number}], right after the statement it supports."
    )
    return "\n\n".join([header, *entries]), sources


def fetch_result_block(
    tool_use_id: str, result: FetchedPage | WebToolError, *, citations: bool = False
) -> dict[str, Any]:
    """The client's ``web_fetch_tool_result`` block for a fetched page or the fetch's failure."""
    content: dict[str, Any]
    if isinstance(result, WebToolError):
        content = {"type": "web_fetch_tool_result_error", "error_code": result.error_code}
    else:
        source = (
            {"type": "base64", "media_type": PDF_TYPE, "data": result.data}
            if result.media_type == PDF_TYPE
            else {"type": "text", "media_type": "text/plain", "data": result.data}
        )
        content = {
            "type": "web_fetch_result",
            "url": result.url,
            "retrieved_at": result.retrieved_at,
            "content": {
                "type": "document",
                "source": source,
                "title": (result.title or "")[:MAX_TITLE_CHARS] or None,
                "citations": {"enabled": citations},
            },
        }
    return {
        "type": "web_fetch_tool_result",
        "tool_use_id": tool_use_id,
        "caller": DIRECT_CALLER,
        "content": content,
    }


def render_fetch_block(block: Mapping[str, Any]) -> str:
    """The tool-result text the model reads for a ``web_fetch_tool_result`` block."""
    content = block.get("content")
    if not isinstance(content, Mapping) or content.get("type") != "web_fetch_result":
        return error_text(block)
    url = str(content.get("url") or "")
    document = _mapping(content.get("content"))
    source = _mapping(document.get("source"))
    title = document.get("title")
    named = f" ({title})" if title else ""
    if source.get("media_type") == PDF_TYPE:
        return (
            f"The page at {url}{named} is a PDF document. The gateway cannot extract text from PDFs, so "
            "its content is not available to you; say so if the answer depends on it."
        )
    retrieved = f", retrieved {content['retrieved_at']}" if content.get("retrieved_at") else ""
    heading = f"Content of {url}{named}{retrieved}:"
    return f"{heading}\n\n{source.get('data') or '(the page has no text)'}"


def error_text(block: Mapping[str, Any]) -> str:
    """The line the model reads for a web search or web fetch error block."""
    content = block.get("content")
    code = content.get("error_code") if isinstance(content, Mapping) else None
    table = SEARCH_ERROR_TEXT if block.get("type") == "web_search_tool_result" else FETCH_ERROR_TEXT
    return table.get(str(code), f"The tool failed ({code}).")


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _cited(text: str) -> str:
    if len(text) <= CITED_TEXT_CHARS:
        return text
    return text[: CITED_TEXT_CHARS - 1].rsplit(" ", 1)[0] + "…"
