"""The server tools of a request, run by the gateway for a non-Anthropic upstream.

A request asks for them by their Anthropic tool types: ``web_search_*``, ``web_fetch_*``,
``tool_search_tool_regex*`` and ``tool_search_tool_bm25*``. :func:`tool_work` is the one test
on the request path (a look at each tool's ``type``); everything else runs only for such a request.

:class:`ServerTools` belongs to the gateway (the settings and one web connection pool);
:class:`RequestTools` is one request's :class:`~anygate.tools.loop.ToolBox`: what the upstream is sent
(:mod:`~anygate.tools.history` for the conversation, the leaf modules' function definitions for the
tools) and how each call runs. The leaf modules do the work: :mod:`~anygate.tools.tool_search`,
:mod:`~anygate.tools.web`.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Mapping
from enum import Enum
from typing import Any, Final, Literal

from anygate.config import GeneralSettings
from anygate.signing import ThinkingSigner
from anygate.tools import tool_search, web
from anygate.tools.history import SERVER_RESULT_TYPES, upstream_messages

Kind = Literal["web_search", "web_fetch", "tool_search"]

SERVER_TOOL_PREFIXES: Final[tuple[tuple[str, Kind], ...]] = (
    ("web_search_", "web_search"),
    ("web_fetch_", "web_fetch"),
    ("tool_search_tool_regex", "tool_search"),
    ("tool_search_tool_bm25", "tool_search"),
)
"""Tool type prefixes of the server tools the gateway runs, and what they are."""
_PREFIXES: Final = tuple(prefix for prefix, _ in SERVER_TOOL_PREFIXES)
COUNTED_KINDS: Final[Mapping[Kind, str]] = {
    "web_search": "web_search_requests",
    "web_fetch": "web_fetch_requests",
}
"""Tools whose runs ``usage.server_tool_use`` reports (Anthropic bills these)."""
MAX_USES_ERRORS: Final[Mapping[Kind, str]] = {
    "web_search": "max_uses_exceeded",
    "web_fetch": "max_uses_exceeded",
    "tool_search": "too_many_requests",
}
LARGE_SEARCH: Final = 256
"""Deferred tools beyond which a tool search runs in a worker thread (it is CPU work)."""
CITATION_TAG: Final = "web_search_citation"
"""Envelope tag of a citation's ``encrypted_index`` (opaque to clients, as Anthropic's is)."""
_CITATION_MARK: Final = re.compile(r"\[(\d{1,4})\]")


def server_tool_kind(tool: object) -> Kind | None:
    """What a tool definition is, when it is a server tool the gateway runs."""
    if not isinstance(tool, dict):
        return None
    kind = tool.get("type")
    if not isinstance(kind, str) or not kind.startswith(_PREFIXES):
        return None
    for prefix, found in SERVER_TOOL_PREFIXES:
        if kind.startswith(prefix):
            if found == "tool_search" and tool_search.tool_search_kind(tool) is None:
                return None  # a name that only looks like one (tool_search_tool_regexp…)
            return found
    return None


class ToolWork(Enum):
    """What a request's tools ask of the gateway (:func:`tool_work`)."""

    RUN_TOOLS = "run"
    """Server tools to run: the turn goes through the loop."""
    REWRITE = "rewrite"
    """Nothing to run, but what the upstream is sent changes: deferred tools the client searches
    itself, loading them with ``tool_reference`` blocks (Claude Code's ToolSearch, its default even
    behind a gateway). The upstream gets the tools loaded so far, reads the references as text, and
    server blocks of earlier turns as tool calls and results."""


RUN_TOOLS: Final = ToolWork.RUN_TOOLS
REWRITE: Final = ToolWork.REWRITE


def tool_work(request: dict[str, Any]) -> ToolWork | None:
    """What the gateway does for a request's tools, if anything: one look at each tool's ``type`` and
    ``defer_loading`` (the only cost on the request path).

    The conversation is not scanned: server blocks from earlier turns are rewritten for requests that
    offer a server tool or deferred tools; a request that offers neither gets them dropped like other
    Anthropic-only blocks (a scan would cost about 17 µs on every 90 KB Claude Code request, for a
    client that stopped offering a tool it used).
    """
    tools = request.get("tools")
    if not tools:
        return None
    deferred = False
    for tool in tools:
        kind = tool.get("type")
        if kind is not None and kind != "custom" and isinstance(kind, str) and kind.startswith(_PREFIXES):
            return RUN_TOOLS
        if tool.get("defer_loading") is True:
            deferred = True
    return REWRITE if deferred else None


class ServerTools:
    """The gateway's server tools: their settings and the web client, shared by every request."""

    def __init__(self, general: GeneralSettings, signer: ThinkingSigner) -> None:
        self.general = general
        self.signer = signer
        self._web: web.WebClient | None = None

    def toolbox(self, request: dict[str, Any]) -> RequestTools:
        """The server tools of one request (checked as Anthropic checks them: a 400 when invalid)."""
        loaded = tool_search.check_request(request)
        return RequestTools(self, request, loaded)

    @property
    def web_client(self) -> web.WebClient:
        """The web client, created on first use (most gateways never search the web)."""
        if self._web is None:
            self._web = web.WebClient()
        return self._web

    async def aclose(self) -> None:
        if self._web is not None:
            await self._web.aclose()


class RequestTools:
    """One request's server tools (a :class:`~anygate.tools.loop.ToolBox`)."""

    def __init__(self, owner: ServerTools, request: dict[str, Any], loaded: set[str] | None = None) -> None:
        self._owner = owner
        self._loaded = (request["messages"], loaded) if loaded is not None else None
        """The tools the request's own conversation loaded (found by the check): a turn's later calls
        add messages, and are looked at again."""
        self._tools: dict[str, tuple[Kind, dict[str, Any]]] = {}
        for tool in request.get("tools") or ():
            kind = server_tool_kind(tool)
            if kind is not None:
                self._tools[str(tool.get("name") or "")] = (kind, tool)
        self.names = frozenset(self._tools)
        self._deferred = tool_search.deferred_tools(request.get("tools") or [])
        self._uses: Counter[str] = Counter()
        self._counted: Counter[str] = Counter()
        self._sources: dict[int, web.Source] = {}

    # --- what the upstream is sent ---------------------------------------------------------------

    def upstream_request(self, request: dict[str, Any]) -> dict[str, Any]:
        self._sources = {}
        messages = upstream_messages(request["messages"], self._render)
        known = self._loaded
        if known is not None and known[0] is request["messages"]:
            loaded = known[1]
        else:
            loaded = tool_search.loaded_tool_names(request["messages"])
        tools: list[dict[str, Any]] = []
        for tool in tool_search.upstream_tools(request.get("tools") or [], loaded):
            kind = server_tool_kind(tool)
            if kind is None:
                tools.append(tool)
            else:
                tools.append(self._function(kind, tool, len(loaded)))
        if "tools" not in request:
            return {**request, "messages": messages}
        return {**request, "messages": messages, "tools": tools}

    def _function(self, kind: Kind, tool: dict[str, Any], loaded: int) -> dict[str, Any]:
        name = str(tool.get("name"))
        if kind == "tool_search":
            search = tool_search.tool_search_kind(tool)
            assert search is not None
            return tool_search.model_function(search, name=name, deferred_count=len(self._deferred) - loaded)
        function = web.WEB_SEARCH_FUNCTION if kind == "web_search" else web.WEB_FETCH_FUNCTION
        return {**function, "name": name}

    def _render(self, block: dict[str, Any]) -> tuple[str, bool]:
        """A result block as the model reads it; web search sources are numbered across the whole
        conversation, so a ``[n]`` the model writes names one source."""
        kind = block.get("type")
        content = block.get("content")
        is_error = isinstance(content, dict) and str(content.get("type", "")).endswith("_error")
        if kind == "tool_search_tool_result":
            return tool_search.render_result_block(block), is_error
        if is_error:
            return web.error_text(block), True
        if kind == "web_search_tool_result":
            text, sources = web.render_search_block(block, self._owner.signer, len(self._sources) + 1)
            self._sources.update((source.number, source) for source in sources)
            return text, False
        assert kind in SERVER_RESULT_TYPES
        return web.render_fetch_block(block), False

    # --- running the tools ------------------------------------------------------------------------

    async def run(self, calls: list[dict[str, Any]], request: dict[str, Any]) -> list[dict[str, Any]]:
        jobs = []
        for call in calls:  # uses are counted in call order, before anything runs
            name = str(call.get("name"))
            kind, definition = self._tools[name]
            self._uses[name] += 1
            max_uses = definition.get("max_uses")
            if isinstance(max_uses, int) and self._uses[name] > max_uses:
                jobs.append(self._refused(kind, call, MAX_USES_ERRORS[kind]))
            else:
                jobs.append(self._run_one(kind, definition, call, request))
        return list(await asyncio.gather(*jobs))

    async def _refused(self, kind: Kind, call: dict[str, Any], code: str) -> dict[str, Any]:
        call_id = str(call["id"])
        if kind == "tool_search":
            error = tool_search.ToolSearchError("too_many_requests", "The tool search was used too often.")
            return tool_search.result_block(call_id, error)
        refusal = web.WebToolError(code, "the tool was used as often as its max_uses allows")
        if kind == "web_search":
            return web.search_result_block(call_id, refusal, self._owner.signer)
        return web.fetch_result_block(call_id, refusal)

    async def _run_one(
        self, kind: Kind, definition: dict[str, Any], call: dict[str, Any], request: dict[str, Any]
    ) -> dict[str, Any]:
        call_id = str(call["id"])
        tool_input = call.get("input") or {}
        if kind == "tool_search":
            search = tool_search.tool_search_kind(definition)
            assert search is not None
            if len(self._deferred) > LARGE_SEARCH:
                found = await asyncio.to_thread(tool_search.search_tools, search, tool_input, self._deferred)
            else:
                found = tool_search.search_tools(search, tool_input, self._deferred)
            return tool_search.result_block(call_id, found)
        if kind == "web_search":
            return await self._web_search(call_id, tool_input, definition)
        return await self._web_fetch(call_id, tool_input, definition, request)

    async def _web_search(
        self, call_id: str, tool_input: dict[str, Any], definition: dict[str, Any]
    ) -> dict[str, Any]:
        signer = self._owner.signer
        try:
            hits = await self._owner.web_client.search(
                self._owner.general.web_search,
                tool_input.get("query"),
                allowed_domains=definition.get("allowed_domains"),
                blocked_domains=definition.get("blocked_domains"),
                user_location=definition.get("user_location"),
            )
        except web.WebToolError as exc:
            return web.search_result_block(call_id, exc, signer)
        self._counted["web_search_requests"] += 1  # billed when it ran: Anthropic bills no failed search
        return web.search_result_block(call_id, hits, signer)

    async def _web_fetch(
        self, call_id: str, tool_input: dict[str, Any], definition: dict[str, Any], request: dict[str, Any]
    ) -> dict[str, Any]:
        """Fetch a URL the conversation holds (Anthropic's rule: a model cannot make up URLs to send
        data to), under the fetch settings' address guard."""
        url = tool_input.get("url")
        citations = definition.get("citations")
        cite = isinstance(citations, dict) and citations.get("enabled") is True
        if isinstance(url, str) and not web.conversation_allows(url, web.urls_in_conversation(request)):
            refusal = web.WebToolError("url_not_allowed", "the URL does not appear in the conversation")
            return web.fetch_result_block(call_id, refusal)
        try:
            page = await self._owner.web_client.fetch(
                self._owner.general.web_fetch,
                url,
                allowed_domains=definition.get("allowed_domains"),
                blocked_domains=definition.get("blocked_domains"),
                max_content_tokens=definition.get("max_content_tokens"),
            )
        except web.WebToolError as exc:
            return web.fetch_result_block(call_id, exc)
        self._counted["web_fetch_requests"] += 1
        return web.fetch_result_block(call_id, page, citations=cite)

    # --- what the client is told ------------------------------------------------------------------

    def citations(self, text: str) -> list[dict[str, Any]]:
        if not self._sources:
            return []

        cited: list[dict[str, Any]] = []
        for number in dict.fromkeys(int(mark) for mark in _CITATION_MARK.findall(text)):
            source = self._sources.get(number)
            if source is not None:
                cited.append(
                    {
                        "type": "web_search_result_location",
                        "url": source.url,
                        "title": source.title,
                        "cited_text": source.cited_text,
                        "encrypted_index": self._owner.signer.seal(CITATION_TAG, {"url": source.url}),
                    }
                )
        return cited

    def server_tool_usage(self) -> dict[str, int] | None:
        if not self._counted and not any(kind in COUNTED_KINDS for kind, _ in self._tools.values()):
            return None
        return {name: self._counted[name] for name in COUNTED_KINDS.values()}
