"""The web tools' HTTP side: one client that owns its sessions and runs searches and fetches.

Two kinds of session, one of each per event loop, created on first use (a session belongs to a loop;
the proxy has one, SDK users may run several):

- search: talks to the operator's configured backend, which is trusted config, so it is an ordinary
  pooled session without an address guard (a SearXNG on the private network is the usual set-up);
- fetch: talks to URLs a model chose, through a connector whose resolver is wrapped in
  :class:`~anygate.tools.web.guard.GuardedResolver`, with its DNS cache off (every hop is resolved and
  checked afresh), no connection reuse (a connection is never carried from one policy decision to the
  next), no cookies kept between fetches, and no proxy from the environment. There is one fetch session
  per ``allow_private_networks`` value, since the guard holds the policy.

``resolver_factory`` makes the resolver the guard wraps (aiohttp's threaded ``getaddrinfo`` resolver by
default); tests pass a resolver that answers what they need, DNS rebinding included. Sessions close with
their loop when nobody calls :meth:`WebClient.aclose`.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver

from anygate.tools.web.common import WebToolError
from anygate.tools.web.fetch import FetchedPage, fetch_page
from anygate.tools.web.guard import GuardedResolver
from anygate.tools.web.search import SearchHit, SearchQuery, check_query, run_search
from anygate.web_settings import WebFetchSettings, WebSearchSettings

log = logging.getLogger("anygate.tools")

ResolverFactory = Callable[[], AbstractResolver]


class WebClient:
    """Runs web searches and fetches for the gateway's server-tool loop."""

    def __init__(self, *, resolver_factory: ResolverFactory | None = None) -> None:
        self._resolver_factory: ResolverFactory = resolver_factory or aiohttp.ThreadedResolver
        self._search_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = (
            weakref.WeakKeyDictionary()
        )
        self._fetch_sessions: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[bool, aiohttp.ClientSession]
        ] = weakref.WeakKeyDictionary()
        self._closers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[AsyncIterator[None]]] = (
            weakref.WeakKeyDictionary()
        )

    async def search(
        self,
        settings: WebSearchSettings | None,
        query: object,
        *,
        allowed_domains: Sequence[str] | None = None,
        blocked_domains: Sequence[str] | None = None,
        user_location: Mapping[str, Any] | None = None,
    ) -> list[SearchHit]:
        """Search the web through the configured backend. Raises :class:`WebToolError` (``unavailable``
        when no backend is configured)."""
        if settings is None:
            raise WebToolError(
                "unavailable", "no web search backend is configured (general_settings.web_search)"
            )
        q = SearchQuery(
            query=check_query(query),
            max_results=settings.max_results,
            allowed_domains=tuple(allowed_domains or ()),
            blocked_domains=tuple(blocked_domains or ()),
            user_location=user_location,
        )
        session = await self._search_session()
        try:
            return await run_search(session, settings, q)
        except WebToolError as exc:
            log.warning("web search failed (%s): %s", exc.error_code, exc.message)
            raise

    async def fetch(
        self,
        settings: WebFetchSettings,
        url: object,
        *,
        allowed_domains: Sequence[str] | None = None,
        blocked_domains: Sequence[str] | None = None,
        max_content_tokens: int | None = None,
    ) -> FetchedPage:
        """Fetch one URL under the fetch rules (:mod:`~anygate.tools.web.fetch`). Raises
        :class:`WebToolError`."""
        session = await self._fetch_session(settings.allow_private_networks)
        try:
            return await fetch_page(
                session,
                settings,
                url,
                allowed_domains=allowed_domains,
                blocked_domains=blocked_domains,
                max_content_tokens=max_content_tokens,
            )
        except WebToolError as exc:
            log.info("web fetch refused or failed (%s): %s", exc.error_code, exc.message)
            raise

    async def aclose(self) -> None:
        """Close the running loop's sessions (those of other loops close with their loops)."""
        loop = asyncio.get_running_loop()
        sessions = [*self._fetch_sessions.pop(loop, {}).values()]
        search = self._search_sessions.pop(loop, None)
        if search is not None:
            sessions.append(search)
        self._closers.pop(loop, None)
        for session in sessions:
            await session.close()

    async def _search_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._search_sessions.get(loop)
        if session is None or session.closed:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30.0),
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=None),
            )
            self._search_sessions[loop] = session
            await self._close_with_loop(loop, session)
        return session

    async def _fetch_session(self, allow_private_networks: bool) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        sessions = self._fetch_sessions.setdefault(loop, {})
        session = sessions.get(allow_private_networks)
        if session is None or session.closed:
            resolver = GuardedResolver(
                self._resolver_factory(), allow_private_networks=allow_private_networks
            )
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    resolver=resolver, use_dns_cache=False, force_close=True, limit=0
                ),
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=None),
                trust_env=False,
            )
            sessions[allow_private_networks] = session
            await self._close_with_loop(loop, session)
        return session

    async def _close_with_loop(self, loop: asyncio.AbstractEventLoop, session: aiohttp.ClientSession) -> None:
        closer = _close_at_loop_shutdown(session)
        await anext(closer)  # suspended now; the loop's shutdown_asyncgens() resumes it to close
        self._closers.setdefault(loop, []).append(closer)


async def _close_at_loop_shutdown(session: aiohttp.ClientSession) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await session.close()
