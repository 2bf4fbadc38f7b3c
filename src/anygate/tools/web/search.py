"""Web search through the configured backend: one request, its answer mapped to :class:`SearchHit`.

The backends' formats, as their documentation gives them (checked against the docs in 2026):

- **SearXNG** (self-hosted metasearch): ``GET {api_base}/search?q=…&format=json`` (the instance must have
  the ``json`` format enabled in ``settings.yml``, or it answers 403). Answer: ``{"results": [{"url",
  "title", "content", "publishedDate", …}]}``. It has no domain or country parameters: ``site:`` in the
  query reaches only the engines that understand it (SearXNG's docs warn about exactly that), so domain
  rules are applied to the results here and nothing is added to the query. No result-count parameter
  either: the results are cut to ``max_results``.
- **Brave Search API**: ``GET https://api.search.brave.com/res/v1/web/search`` with the key in the
  ``X-Subscription-Token`` header; ``q`` (at most 400 characters and 50 words), ``count`` (≤ 20),
  ``country`` (one of Brave's supported two-letter codes, :data:`BRAVE_COUNTRIES`), ``text_decorations``.
  Location hints go in the ``X-Loc-City``, ``X-Loc-Country`` and ``X-Loc-Timezone`` headers. Brave's
  query language supports ``site:`` and ``-site:``, which carry the domain rules. Answer: ``{"web":
  {"results": [{"url", "title", "description", "extra_snippets", "page_age", "age"}]}}``.
- **Tavily Search API**: ``POST https://api.tavily.com/search`` with ``Authorization: Bearer <key>`` and
  a JSON body ``{"query", "max_results" (0 to 20), "search_depth", "topic", "include_domains",
  "exclude_domains", "country"}``; ``country`` takes a lower-case English country name
  (:data:`TAVILY_COUNTRIES`) and works with ``topic: "general"``. Answer: ``{"results": [{"url", "title",
  "content", "score", "published_date"}]}``.
- **Exa Search API**: ``POST https://api.exa.ai/search`` with the key in ``x-api-key`` and a JSON body
  ``{"query", "numResults", "includeDomains", "excludeDomains", "userLocation" (two-letter country
  code), "contents": {"text": {"maxCharacters": …}}}``. Answer: ``{"results": [{"url", "title",
  "publishedDate", "text", "highlights"}]}``.

Domain rules are also applied to every answer here (subdomains and paths as Anthropic documents them,
:mod:`~anygate.tools.web.common`), whatever the backend did with them. Failures become
:class:`~anygate.tools.web.common.WebToolError` with Anthropic's web search codes: a 429 is
``too_many_requests``; being down, slow past ``timeout``, any other status or an unreadable answer is
``unavailable``; an empty query is ``invalid_tool_input`` and one over :data:`MAX_QUERY_CHARS` is
``query_too_long``. The backend's key travels only in a header and is never part of a message or log.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import orjson

from anygate.tools.web.common import WebToolError, domain_allowed, parse_rules, read_body
from anygate.web_settings import WebSearchSettings

log = logging.getLogger("anygate.tools")

MAX_QUERY_CHARS: Final = 400
"""Longest query searched: Brave's documented limit, and Tavily's advice for its own API."""
MAX_SNIPPET_CHARS: Final = 2000
"""Longest page text kept per result (the model reads every snippet of every search)."""
MAX_ANSWER_BYTES: Final = 4 * 1024 * 1024
"""Largest backend answer read; a search answer is tens of kilobytes."""
MAX_TITLE_CHARS: Final = 512
"""Longest result title kept (a citation's title may have at most 512 characters)."""
EXA_TEXT_CHARS: Final = 1000
_TAGS: Final = re.compile(r"<[^>]{0,200}>")
_SPACES: Final = re.compile(r"\s+")

STATUS_TO_ERROR: Final[Mapping[int, str]] = {429: "too_many_requests"}
"""Backend HTTP status → web search error code; every other failing status is ``unavailable``."""

BRAVE_PATH: Final = "/res/v1/web/search"
SEARXNG_PATH: Final = "/search"
TAVILY_PATH: Final = "/search"
EXA_PATH: Final = "/search"
BRAVE_COUNTRIES: Final = frozenset(
    "AR AU AT BE BR CA CL DK FI FR DE HK IN ID IT JP KR MY MX NL NZ NO CN PL PT PH RU SA ZA ES SE CH TW "
    "TR GB US".split()
)
"""Country codes Brave's ``country`` parameter accepts; another country goes only in ``X-Loc-Country``."""
TAVILY_COUNTRIES: Final[Mapping[str, str]] = {
    code: name.replace("_", " ")
    for code, name in (
        entry.split("=")
        for entry in (
            "AR=argentina AU=australia AT=austria BD=bangladesh BE=belgium BR=brazil BG=bulgaria "
            "CA=canada CL=chile CN=china CO=colombia HR=croatia CZ=czech_republic DK=denmark EG=egypt "
            "EE=estonia FI=finland FR=france DE=germany GR=greece HU=hungary IS=iceland IN=india "
            "ID=indonesia IE=ireland IL=israel IT=italy JP=japan KE=kenya KR=south_korea LV=latvia "
            "LT=lithuania LU=luxembourg MY=malaysia MX=mexico MA=morocco NL=netherlands "
            "NZ=new_zealand NG=nigeria NO=norway PK=pakistan PE=peru PH=philippines PL=poland "
            "PT=portugal RO=romania RU=russia SA=saudi_arabia RS=serbia SG=singapore SK=slovakia "
            "SI=slovenia ZA=south_africa ES=spain SE=sweden CH=switzerland TW=taiwan TH=thailand "
            "TR=turkey UA=ukraine AE=united_arab_emirates GB=united_kingdom US=united_states VN=vietnam"
        ).split()
    )
}
"""ISO country code → Tavily's ``country`` value; a country not listed is not sent (results are then not
localized, nothing fails)."""


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One search result as the gateway keeps it: the page, its age as the backend wrote it, and the
    text the backend gave about it (sealed into ``encrypted_content`` for the client)."""

    url: str
    title: str
    page_age: str | None
    text: str


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """What one search asks the backend for."""

    query: str
    max_results: int
    allowed_domains: tuple[str, ...] = ()
    blocked_domains: tuple[str, ...] = ()
    user_location: Mapping[str, Any] | None = None

    @property
    def country(self) -> str | None:
        country = (self.user_location or {}).get("country")
        return country.upper() if isinstance(country, str) and len(country) == 2 else None

    def backend_domains(self) -> tuple[list[str], list[str]]:
        """The hosts to hand a backend's own domain filter: allowed hosts (a path rule widens to its
        host; the local filter narrows again) and blocked hosts (a path rule is not sent: blocking its
        whole host would hide more than asked)."""
        allowed = sorted({rule.host for rule in parse_rules(self.allowed_domains)})
        blocked = sorted({rule.host for rule in parse_rules(self.blocked_domains) if not rule.path})
        return allowed, blocked


@dataclass(frozen=True, slots=True)
class BackendRequest:
    method: str
    url: str
    headers: dict[str, str]
    params: dict[str, str] | None = None
    body: dict[str, Any] | None = None


def check_query(query: object) -> str:
    """The model's query, trimmed; ``invalid_tool_input`` or ``query_too_long`` otherwise."""
    if not isinstance(query, str) or not query.strip():
        raise WebToolError("invalid_tool_input", "the search query is empty")
    query = query.strip()
    if len(query) > MAX_QUERY_CHARS:
        raise WebToolError(
            "query_too_long", f"the query has {len(query)} characters (at most {MAX_QUERY_CHARS})"
        )
    return query


def endpoint(api_base: str, path: str) -> str:
    """``api_base`` with the API's path added, unless the configured URL already ends with it."""
    base = api_base.rstrip("/")
    return base if base.endswith(path) else base + path


def _bearer(settings: WebSearchSettings) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}


def _searxng_request(settings: WebSearchSettings, q: SearchQuery) -> BackendRequest:
    return BackendRequest(
        "GET",
        endpoint(settings.api_base, SEARXNG_PATH),
        {"Accept": "application/json", **_bearer(settings)},
        params={"q": q.query, "format": "json"},
    )


def _brave_request(settings: WebSearchSettings, q: SearchQuery) -> BackendRequest:
    allowed, blocked = q.backend_domains()
    operators = ([f"site:{allowed[0]}"] if len(allowed) == 1 else []) + [f"-site:{host}" for host in blocked]
    query = " ".join([q.query, *operators])
    if len(query) > MAX_QUERY_CHARS or len(query.split()) > 50:
        query = q.query  # Brave's limits: the rules are then applied to the results only
    params = {"q": query, "count": str(q.max_results), "text_decorations": "false"}
    headers = {"Accept": "application/json", "X-Subscription-Token": settings.api_key or ""}
    if q.country in BRAVE_COUNTRIES:
        params["country"] = q.country
    location = q.user_location or {}
    for header, value in (
        ("X-Loc-Country", q.country),
        ("X-Loc-City", location.get("city")),
        ("X-Loc-Timezone", location.get("timezone")),
    ):
        if isinstance(value, str) and value.isascii() and value.isprintable():
            headers[header] = value
    return BackendRequest("GET", endpoint(settings.api_base, BRAVE_PATH), headers, params=params)


def _tavily_request(settings: WebSearchSettings, q: SearchQuery) -> BackendRequest:
    allowed, blocked = q.backend_domains()
    body: dict[str, Any] = {
        "query": q.query,
        "max_results": q.max_results,
        "search_depth": "basic",
        "topic": "general",
    }
    if allowed:
        body["include_domains"] = allowed
    if blocked:
        body["exclude_domains"] = blocked
    country = TAVILY_COUNTRIES.get(q.country or "")
    if country:
        body["country"] = country
    headers = {"Accept": "application/json", **_bearer(settings)}
    return BackendRequest("POST", endpoint(settings.api_base, TAVILY_PATH), headers, body=body)


def _exa_request(settings: WebSearchSettings, q: SearchQuery) -> BackendRequest:
    allowed, blocked = q.backend_domains()
    body: dict[str, Any] = {
        "query": q.query,
        "numResults": q.max_results,
        "type": "auto",
        "contents": {"text": {"maxCharacters": EXA_TEXT_CHARS}},
    }
    if allowed:
        body["includeDomains"] = allowed
    if blocked:
        body["excludeDomains"] = blocked
    if q.country:
        body["userLocation"] = q.country
    headers = {"Accept": "application/json", "x-api-key": settings.api_key or ""}
    return BackendRequest("POST", endpoint(settings.api_base, EXA_PATH), headers, body=body)


def _clean(text: object) -> str:
    """Backend text as plain text: entities decoded, highlighting tags removed, spaces collapsed."""
    if not isinstance(text, str):
        return ""
    return _SPACES.sub(" ", _TAGS.sub("", html.unescape(text))).strip()[:MAX_SNIPPET_CHARS]


def _hit(item: object, text: object, age: object) -> SearchHit | None:
    if not isinstance(item, Mapping) or not isinstance(item.get("url"), str):
        return None
    url = item["url"].strip()
    if not url.startswith(("http://", "https://")):
        return None
    return SearchHit(
        url=url,
        title=(_clean(item.get("title")) or url)[:MAX_TITLE_CHARS],
        page_age=age.strip() if isinstance(age, str) and age.strip() else None,
        text=_clean(text),
    )


def _results(answer: object, *keys: str) -> Sequence[Any]:
    for key in keys:
        answer = answer.get(key) if isinstance(answer, Mapping) else None
    if answer is None:
        return []
    if not isinstance(answer, list):
        raise ValueError("the results are not a list")
    return answer


def _searxng_hits(answer: object) -> list[SearchHit | None]:
    return [
        _hit(r, r.get("content"), r.get("publishedDate"))
        for r in _results(answer, "results")
        if isinstance(r, Mapping)
    ]


def _brave_hits(answer: object) -> list[SearchHit | None]:
    hits: list[SearchHit | None] = []
    for r in _results(answer, "web", "results"):
        if isinstance(r, Mapping):
            extra = r.get("extra_snippets")
            snippets = [r.get("description"), *(extra if isinstance(extra, list) else [])]
            text = " … ".join(s for s in snippets if isinstance(s, str) and s)
            hits.append(_hit(r, text, r.get("page_age") or r.get("age")))
    return hits


def _tavily_hits(answer: object) -> list[SearchHit | None]:
    return [
        _hit(r, r.get("content"), r.get("published_date"))
        for r in _results(answer, "results")
        if isinstance(r, Mapping)
    ]


def _exa_hits(answer: object) -> list[SearchHit | None]:
    hits: list[SearchHit | None] = []
    for r in _results(answer, "results"):
        if isinstance(r, Mapping):
            highlights = r.get("highlights")
            text = r.get("text") or (
                " … ".join(highlights) if isinstance(highlights, list) else r.get("summary")
            )
            hits.append(_hit(r, text, r.get("publishedDate")))
    return hits


RequestBuilder = Callable[[WebSearchSettings, SearchQuery], BackendRequest]
AnswerParser = Callable[[object], list[SearchHit | None]]
BACKENDS: Final[Mapping[str, tuple[RequestBuilder, AnswerParser]]] = {
    "searxng": (_searxng_request, _searxng_hits),
    "brave": (_brave_request, _brave_hits),
    "tavily": (_tavily_request, _tavily_hits),
    "exa": (_exa_request, _exa_hits),
}
"""Provider → (request builder, answer parser)."""


async def run_search(
    session: aiohttp.ClientSession, settings: WebSearchSettings, q: SearchQuery
) -> list[SearchHit]:
    """Search once, bounded by ``settings.timeout``; the hits that pass the domain rules, at most
    ``q.max_results``, without repeated URLs."""
    build, parse = BACKENDS[settings.provider]
    request = build(settings, q)
    try:
        async with asyncio.timeout(settings.timeout):
            async with session.request(
                request.method,
                request.url,
                headers=request.headers,
                params=request.params,
                data=None if request.body is None else orjson.dumps(request.body),
                allow_redirects=False,
            ) as response:
                if response.status != 200:
                    code = STATUS_TO_ERROR.get(response.status, "unavailable")
                    raise WebToolError(
                        code, f"the {settings.provider} backend answered HTTP {response.status}"
                    )
                body, too_large = await read_body(response, MAX_ANSWER_BYTES)
    except TimeoutError:
        raise WebToolError(
            "unavailable", f"the {settings.provider} backend did not answer in {settings.timeout:g} s"
        ) from None
    except aiohttp.ClientError as exc:
        raise WebToolError(
            "unavailable", f"cannot reach the {settings.provider} backend ({type(exc).__name__})"
        ) from None
    if too_large:
        raise WebToolError("unavailable", f"the {settings.provider} backend's answer is too large")
    try:
        hits = parse(orjson.loads(body))
    except (ValueError, TypeError, AttributeError):
        raise WebToolError(
            "unavailable", f"the {settings.provider} backend's answer is not the JSON expected"
        ) from None
    kept: list[SearchHit] = []
    seen: set[str] = set()
    for hit in hits:
        if (
            hit is None
            or hit.url in seen
            or not domain_allowed(hit.url, q.allowed_domains, q.blocked_domains)
        ):
            continue
        seen.add(hit.url)
        kept.append(hit)
    return kept[: q.max_results]
