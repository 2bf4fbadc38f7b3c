"""What web search and web fetch share: the tool error, domain rules, URL normalisation.

Domain rules follow Anthropic's documentation of ``allowed_domains`` / ``blocked_domains`` (the web
search tool's "Domain filtering" section; web fetch takes the same lists):

- a rule is a domain without a scheme (``example.com``; a scheme written anyway is ignored);
- subdomains are included: ``example.com`` covers ``docs.example.com``, while ``docs.example.com``
  covers only that host (and its own subdomains), not ``example.com`` or ``api.example.com``;
- a rule may carry a path (``example.com/blog``): then only URLs under that path match (whole path
  segments: ``/blog`` and ``/blog/post``, not ``/blogroll``);
- a request uses either allowed or blocked domains, never both (Anthropic rejects the request; the
  gateway's request validation owns that check, these functions just apply what they are given).

Hosts compare case-insensitively in their ASCII (IDNA) form; a leading ``*.`` on a rule means the same
as the bare domain, since subdomains are included anyway.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import aiohttp
import yarl

SEARCH_ERROR_CODES: Final = frozenset(
    {"invalid_tool_input", "unavailable", "max_uses_exceeded", "too_many_requests", "query_too_long"}
)
"""Anthropic's ``WebSearchToolResultErrorCode`` values the gateway produces."""
FETCH_ERROR_CODES: Final = frozenset(
    {
        "invalid_tool_input",
        "url_too_long",
        "url_not_allowed",
        "url_not_accessible",
        "unsupported_content_type",
        "too_many_requests",
        "max_uses_exceeded",
        "unavailable",
    }
)
"""Anthropic's ``WebFetchToolResultErrorCode`` values."""

READ_CHUNK: Final = 64 * 1024
CHARS_PER_TOKEN: Final = 4
"""Token estimate for ``max_content_tokens``: about four characters of English text per token. A page's
tokens are never counted exactly (that would mean a tokenizer pass over a large page for a bound that
Anthropic itself calls approximate)."""


class WebToolError(Exception):
    """A web tool could not do what the model asked. ``error_code`` is the Anthropic error code of the
    result block; ``message`` says why, for logs (it never holds a backend key: messages are written by
    this package, never copied from a backend's answer)."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(f"{error_code}: {message}")
        self.error_code = error_code
        self.message = message


@dataclass(frozen=True, slots=True)
class DomainRule:
    """One ``allowed_domains`` / ``blocked_domains`` entry: a host and an optional path prefix."""

    host: str
    path: str = ""

    def matches(self, host: str, path: str) -> bool:
        if host != self.host and not host.endswith("." + self.host):
            return False
        if not self.path:
            return True
        return path == self.path or path.startswith(self.path.rstrip("/") + "/")


def parse_rule(rule: str) -> DomainRule | None:
    """The rule a domain list entry stands for; None for an entry that names no host."""
    text = rule.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    host, slash, path = text.partition("/")
    host = host.rsplit("@", 1)[-1].split(":", 1)[0].strip(".").lower()
    host = host.removeprefix("*.")
    if not host:
        return None
    return DomainRule(_ascii_host(host), ("/" + path).rstrip("/") if slash and path else "")


def parse_rules(rules: Iterable[str] | None) -> tuple[DomainRule, ...]:
    return tuple(rule for entry in rules or () if isinstance(entry, str) and (rule := parse_rule(entry)))


def domain_allowed(url: str, allowed: Iterable[str] | None, blocked: Iterable[str] | None) -> bool:
    """Whether ``url`` passes the domain lists (an empty or missing allowed list allows every domain)."""
    try:
        parsed = yarl.URL(url)
    except (ValueError, TypeError):
        return False
    host = _ascii_host((parsed.raw_host or "").strip(".").lower())
    if not host:
        return False
    path = parsed.path or "/"
    allow = parse_rules(allowed)
    if allow and not any(rule.matches(host, path) for rule in allow):
        return False
    return not any(rule.matches(host, path) for rule in parse_rules(blocked))


async def read_body(response: aiohttp.ClientResponse, max_bytes: int) -> tuple[bytes, bool]:
    """At most ``max_bytes`` of the body, and whether there was more (reading stops there)."""
    chunks: list[bytes] = []
    size = 0
    while size <= max_bytes:
        chunk = await response.content.read(min(READ_CHUNK, max_bytes + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    body = b"".join(chunks)
    return body[:max_bytes], size > max_bytes


def normalize_url(url: str) -> str:
    """``url`` in the form URLs are compared in: scheme and host lower-cased, default port and fragment
    dropped, an empty path written ``/``. Text that is no URL is returned stripped."""
    text = url.strip()
    try:
        parsed = yarl.URL(text)
    except (ValueError, TypeError):
        return text
    if not parsed.absolute or parsed.scheme.lower() not in ("http", "https"):
        return text
    host = (parsed.raw_host or "").lower()
    default = 443 if parsed.scheme.lower() == "https" else 80
    port = "" if parsed.explicit_port in (None, default) else f":{parsed.explicit_port}"
    if ":" in host:
        host = f"[{host}]"
    path = parsed.raw_path or "/"
    query = f"?{parsed.raw_query_string}" if parsed.raw_query_string else ""
    return f"{parsed.scheme.lower()}://{host}{port}{path}{query}"


def _ascii_host(host: str) -> str:
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host
