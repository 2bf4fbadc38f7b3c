"""Which URLs the model may fetch: those the conversation brought, never ones it made up.

Anthropic's web fetch documentation: "Claude is not allowed to dynamically construct URLs. Claude can
only fetch URLs that have been explicitly provided by the user or that come from previous web search or
web fetch results" (an exfiltration guard: a model that read a hostile page must not be able to send the
conversation's secrets to ``https://attacker.example/?q=<secret>``). Newer tool versions make the sources
configurable with ``url_sources`` (SDK type ``WebFetchURLSources``): ``user_input`` (``all`` | ``none``),
``server_tool_results`` and ``client_tool_results`` (``all`` | ``none`` | ``only`` / ``except`` a list of
``tool_reference`` names). Without ``url_sources`` the documented rule applies: user input and server tool
results count, client tool results do not.

What counts, by source:

- user input: URLs written in user messages' text, and the ``url`` of document and search result
  sources in them;
- server tool results: every result URL of a ``web_search_tool_result``, and the URL of a
  ``web_fetch_tool_result`` together with the links in its text (a fetched page's links may be followed);
- client tool results: the URLs in the text of ``tool_result`` blocks, filtered by the tool's name.

The model's own text and tool inputs never count. URLs are compared in :func:`normalize_url` form
(scheme and host case, default port, fragment); :func:`conversation_allows` does that comparison.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from anygate.tools.web.common import normalize_url

URL_PATTERN: Final = re.compile(r"""https?://[^\s<>"'`{}|\\^\[\]]+""", re.IGNORECASE)
_TRAILING: Final = ".,;:!?'\"*_~"
SERVER_RESULT_TOOLS: Final = {"web_search_tool_result": "web_search", "web_fetch_tool_result": "web_fetch"}
"""Result block type → the server tool that produced it (only these contribute fetchable URLs)."""
DEFAULT_SOURCES: Final = {"user_input": {"type": "all"}, "server_tool_results": {"type": "all"}}
"""``url_sources`` when the tool sets none: Anthropic's documented rule."""


def urls_in_text(text: str) -> set[str]:
    """The http(s) URLs written in ``text``, without the punctuation that ends a sentence or a link."""
    found: set[str] = set()
    for match in URL_PATTERN.finditer(text):
        url = match.group(0)
        while url:
            if url[-1] in _TRAILING:
                url = url[:-1]
            elif url[-1] == ")" and url.count(")") > url.count("("):
                url = url[:-1]
            else:
                break
        if len(url) > len("https://"):
            found.add(url)
    return found


def urls_in_result_block(block: Mapping[str, Any]) -> set[str]:
    """The URLs a web search or web fetch result block makes fetchable."""
    content = block.get("content")
    found: set[str] = set()
    if block.get("type") == "web_search_tool_result" and isinstance(content, list):
        found.update(r["url"] for r in content if isinstance(r, Mapping) and isinstance(r.get("url"), str))
    elif block.get("type") == "web_fetch_tool_result" and isinstance(content, Mapping):
        if isinstance(content.get("url"), str):
            found.add(content["url"])
        document = content.get("content")
        source = document.get("source") if isinstance(document, Mapping) else None
        if (
            isinstance(source, Mapping)
            and source.get("type") == "text"
            and isinstance(source.get("data"), str)
        ):
            found.update(urls_in_text(source["data"]))
    return found


def urls_in_conversation(request: Mapping[str, Any]) -> set[str]:
    """Every URL the request's conversation makes fetchable (see the module), in :func:`normalize_url`
    form and as written, under the ``url_sources`` of the request's web fetch tool."""
    sources = _url_sources(request.get("tools"))
    tool_names = _tool_use_names(request.get("messages"))
    found: set[str] = set()
    for message in request.get("messages") or ():
        if not isinstance(message, Mapping):
            continue
        content = message.get("content")
        user = message.get("role") == "user"
        if isinstance(content, str):
            if user and _admits(sources.get("user_input"), None):
                found.update(urls_in_text(content))
            continue
        for block in content if isinstance(content, list) else ():
            if isinstance(block, Mapping):
                found.update(_block_urls(block, user, sources, tool_names))
    return found | {normalize_url(url) for url in found}


def conversation_allows(url: str, urls: Iterable[str]) -> bool:
    """Whether ``url`` is one of ``urls`` (as returned by :func:`urls_in_conversation`)."""
    known = urls if isinstance(urls, set | frozenset) else set(urls)
    return url in known or normalize_url(url) in known


def _block_urls(
    block: Mapping[str, Any], user: bool, sources: Mapping[str, Any], tool_names: Mapping[str, str]
) -> set[str]:
    kind = block.get("type")
    if kind in SERVER_RESULT_TOOLS:
        admitted = _admits(sources.get("server_tool_results"), SERVER_RESULT_TOOLS[kind])
        return urls_in_result_block(block) if admitted else set()
    if not user:
        return set()
    if kind == "tool_result":
        name = tool_names.get(str(block.get("tool_use_id")), "")
        return (
            _content_urls(block.get("content"))
            if _admits(sources.get("client_tool_results"), name)
            else set()
        )
    if not _admits(sources.get("user_input"), None):
        return set()
    if kind == "text" and isinstance(block.get("text"), str):
        return urls_in_text(block["text"])
    if kind in ("document", "search_result"):
        return _source_urls(block)
    return set()


def _content_urls(content: object) -> set[str]:
    if isinstance(content, str):
        return urls_in_text(content)
    found: set[str] = set()
    for item in content if isinstance(content, list) else ():
        if isinstance(item, Mapping):
            if item.get("type") == "text" and isinstance(item.get("text"), str):
                found.update(urls_in_text(item["text"]))
            elif item.get("type") in ("document", "search_result"):
                found.update(_source_urls(item))
    return found


def _source_urls(block: Mapping[str, Any]) -> set[str]:
    source = block.get("source")
    found: set[str] = set()
    if isinstance(source, str) and source.startswith(("http://", "https://")):  # search_result.source
        found.add(source)
    elif isinstance(source, Mapping):
        if source.get("type") == "url" and isinstance(source.get("url"), str):
            found.add(source["url"])
        elif source.get("type") == "text" and isinstance(source.get("data"), str):
            found.update(urls_in_text(source["data"]))
    return found | _content_urls(block.get("content"))


def _url_sources(tools: object) -> Mapping[str, Any]:
    for tool in tools if isinstance(tools, list) else ():
        if isinstance(tool, Mapping) and str(tool.get("type", "")).startswith("web_fetch_"):
            configured = tool.get("url_sources")
            if isinstance(configured, Mapping):
                return {**DEFAULT_SOURCES, **configured}
    return DEFAULT_SOURCES


def _admits(source: object, tool_name: str | None) -> bool:
    """Whether a ``url_sources`` entry lets a result of ``tool_name`` (None: user input) contribute."""
    if not isinstance(source, Mapping):
        return False
    kind: object = source.get("type")
    if kind == "all":
        return True
    if kind in ("only", "except") and tool_name is not None:
        named = {t.get("name") for t in source.get("tools") or () if isinstance(t, Mapping)}
        return bool((tool_name in named) == (kind == "only"))
    return False


def _tool_use_names(messages: object) -> dict[str, str]:
    """``tool_use`` id → tool name, for telling which client tool a ``tool_result`` answers."""
    names: dict[str, str] = {}
    for message in messages if isinstance(messages, list) else ():
        content = message.get("content") if isinstance(message, Mapping) else None
        for block in content if isinstance(content, list) else ():
            if isinstance(block, Mapping) and block.get("type") in ("tool_use", "server_tool_use"):
                names[str(block.get("id"))] = str(block.get("name", ""))
    return names
