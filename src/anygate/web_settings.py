"""``general_settings.web_search`` and ``general_settings.web_fetch``: the web tools' configuration.

The gateway runs Anthropic's ``web_search_*`` and ``web_fetch_*`` server tools itself for non-Anthropic
upstreams (:mod:`anygate.tools.web`). Search goes to a backend the operator configures; fetch goes to the
open web, so its limits are the operator's too. Both sections are checked here the way the rest of the
config is: an unknown key or a wrong value is an error naming the key.

``web_search`` (no section: the tool is declined, the model is told search is unavailable):

- ``provider``: ``searxng`` (a self-hosted SearXNG, its JSON API), ``brave`` (Brave Search API),
  ``tavily`` (Tavily Search API) or ``exa`` (Exa Search API).
- ``api_base``: the backend's base URL; the hosted APIs' own by default, required for ``searxng``.
- ``api_key``: the backend's key (``os.environ/NAME`` works, as everywhere in the config); required for
  the hosted APIs, read from their usual variable (``BRAVE_API_KEY``, ``TAVILY_API_KEY``,
  ``EXA_API_KEY``) when not given; optional for SearXNG (sent as a Bearer token to an instance behind an
  authenticating proxy). The key is registered for masking in logs and errors.
- ``timeout``: seconds one search may take, connection included (default 10).
- ``max_results``: results asked for per search (default 5, at most 20).

``web_fetch`` (defaults apply without the section):

- ``allow_private_networks``: fetch loopback, private, link-local and other non-public addresses
  (default false: the gateway refuses them, after DNS resolution and on every redirect).
- ``max_bytes``: the most of a page's (decompressed) body read (default 10 MiB); a longer text page is
  cut there, a longer PDF is refused.
- ``timeout``: seconds one fetch may take in all, redirects and body included (default 30).
- ``max_redirects``: redirects followed per fetch (default 5).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

WEB_SEARCH_DEFAULT_API_BASE: Final[Mapping[str, str | None]] = {
    "searxng": None,
    "brave": "https://api.search.brave.com",
    "tavily": "https://api.tavily.com",
    "exa": "https://api.exa.ai",
}
"""Search provider → the hosted API's base URL (None: there is no hosted one, ``api_base`` is required)."""
WEB_SEARCH_KEY_ENV: Final[Mapping[str, tuple[str, ...]]] = {
    "searxng": (),
    "brave": ("BRAVE_API_KEY", "BRAVE_SEARCH_API_KEY"),
    "tavily": ("TAVILY_API_KEY",),
    "exa": ("EXA_API_KEY",),
}
"""Search provider → the environment variables its key is read from when ``api_key`` is not given."""
KEYLESS_PROVIDERS: Final = frozenset({"searxng"})

WEB_SEARCH_KEYS: Final = frozenset({"provider", "api_base", "api_key", "timeout", "max_results"})
WEB_FETCH_KEYS: Final = frozenset({"allow_private_networks", "max_bytes", "timeout", "max_redirects"})

DEFAULT_SEARCH_TIMEOUT: Final = 10.0
DEFAULT_MAX_RESULTS: Final = 5
MAX_RESULTS_LIMIT: Final = 20
"""Brave and Tavily return at most 20 results per request; more would only cost the model tokens."""
DEFAULT_FETCH_MAX_BYTES: Final = 10 * 1024 * 1024
DEFAULT_FETCH_TIMEOUT: Final = 30.0
DEFAULT_MAX_REDIRECTS: Final = 5


@dataclass(frozen=True, slots=True)
class WebSearchSettings:
    """Where and how the gateway searches the web."""

    provider: str
    api_base: str
    api_key: str | None = field(default=None, repr=False)
    """Never shown in a repr (settings end up in debug output)."""
    timeout: float = DEFAULT_SEARCH_TIMEOUT
    max_results: int = DEFAULT_MAX_RESULTS


@dataclass(frozen=True, slots=True)
class WebFetchSettings:
    """What the gateway's web fetch may reach and how much of it."""

    allow_private_networks: bool = False
    max_bytes: int = DEFAULT_FETCH_MAX_BYTES
    timeout: float = DEFAULT_FETCH_TIMEOUT
    max_redirects: int = DEFAULT_MAX_REDIRECTS


Fail = Callable[[str | None, str], Exception]
"""Builds the config error for a key of the section (None: the section itself) and a message."""


def parse_web_search(value: object, fail: Fail, env: Mapping[str, str]) -> WebSearchSettings | None:
    """The ``web_search`` section (its ``os.environ/`` references already resolved), or None without one."""
    if value is None:
        return None
    section = _mapping(value, WEB_SEARCH_KEYS, fail)
    provider = section.get("provider")
    if not isinstance(provider, str) or provider not in WEB_SEARCH_DEFAULT_API_BASE:
        raise fail(
            "provider",
            f"unknown web search provider {provider!r} "
            f"(expected one of: {', '.join(sorted(WEB_SEARCH_DEFAULT_API_BASE))})",
        )
    api_base = section.get("api_base") or WEB_SEARCH_DEFAULT_API_BASE[provider]
    if api_base is None:
        raise fail("api_base", f"required for {provider}: the URL of your instance")
    if not isinstance(api_base, str) or not api_base.startswith(("http://", "https://")):
        raise fail("api_base", "must be an http:// or https:// URL")
    api_key = section.get("api_key")
    if api_key is None:
        api_key = next((env[name] for name in WEB_SEARCH_KEY_ENV[provider] if env.get(name)), None)
    if api_key is not None and not isinstance(api_key, str):
        raise fail("api_key", "must be a string")
    if not api_key and provider not in KEYLESS_PROVIDERS:
        names = " or ".join(WEB_SEARCH_KEY_ENV[provider])
        raise fail("api_key", f"required for {provider} (or set {names})")
    return WebSearchSettings(
        provider=provider,
        api_base=api_base.rstrip("/"),
        api_key=api_key or None,
        timeout=_positive(section, "timeout", DEFAULT_SEARCH_TIMEOUT, fail),
        max_results=_count(section, "max_results", DEFAULT_MAX_RESULTS, fail, low=1, high=MAX_RESULTS_LIMIT),
    )


def parse_web_fetch(value: object, fail: Fail) -> WebFetchSettings:
    """The ``web_fetch`` section, defaults filled in."""
    section = _mapping(value if value is not None else {}, WEB_FETCH_KEYS, fail)
    allow = section.get("allow_private_networks", False)
    if not isinstance(allow, bool):
        raise fail("allow_private_networks", "must be true or false")
    return WebFetchSettings(
        allow_private_networks=allow,
        max_bytes=_count(section, "max_bytes", DEFAULT_FETCH_MAX_BYTES, fail, low=1),
        timeout=_positive(section, "timeout", DEFAULT_FETCH_TIMEOUT, fail),
        max_redirects=_count(section, "max_redirects", DEFAULT_MAX_REDIRECTS, fail, low=0),
    )


def _mapping(value: object, allowed: frozenset[str], fail: Fail) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise fail(None, "must be a mapping")
    for key in value:
        if key not in allowed:
            raise fail(str(key), f"unknown key {key!r} (expected one of: {', '.join(sorted(allowed))})")
    return value


def _positive(section: Mapping[str, Any], key: str, default: float, fail: Fail) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise fail(key, "must be a positive number of seconds")
    return float(value)


def _count(
    section: Mapping[str, Any], key: str, default: int, fail: Fail, *, low: int, high: int | None = None
) -> int:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high and value > high):
        bounds = f"from {low} to {high}" if high else f"at least {low}"
        raise fail(key, f"must be a whole number {bounds}")
    return value
