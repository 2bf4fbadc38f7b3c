"""The dashboard at ``/ui``: static files shipped in the package, and the JSON they read under ``/ui/api``.

The page is plain HTML, CSS and JavaScript with one vendored charting library (uPlot, MIT, in
``vendor/`` with its licence): nothing is built at install time. It signs in with the master key (or an
admin key of a key-management hook), keeps it in the tab's ``sessionStorage`` and sends it as a bearer
token. Its data comes from :class:`~anygate.observability.recent.RecentRequests` (this process's recent
requests), the router's health, and, when a key-management hook serves them, LiteLLM's admin endpoints
(``/key/*``, ``/team/*``); when those answer 404 their panels stay hidden.

Static files need no key (they hold no data); every ``/ui/api`` answer needs an admin.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import resources
from typing import TYPE_CHECKING, Final
from urllib.parse import parse_qsl

import orjson

from anygate.hooks import Principal
from anygate.protocol.errors import GatewayError

if TYPE_CHECKING:
    from anygate.gateway import Gateway, GatewayResponse
    from anygate.observability import Observability

CONTENT_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    "": "text/plain; charset=utf-8",
}
STATIC_HEADERS: Final = {
    "cache-control": "no-cache",
    "x-content-type-options": "nosniff",
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'"
    ),
}
ADMIN_KINDS: Final = frozenset({"master", "open"})
"""Principals that may read the dashboard's data: the master key, and anyone on a keyless loopback
gateway. A key-management hook marks its admin keys with ``metadata["user_role"] == "proxy_admin"``
(LiteLLM's role name)."""
ADMIN_PREFIXES: Final = ("/key/", "/team/", "/user/", "/spend/")
"""LiteLLM's admin API paths the page uses when the server has them (``/key/list``, ``/team/list``…)."""
WINDOWS: Final = {"900": 900.0, "3600": 3600.0, "21600": 21600.0, "86400": 86400.0}
"""Time windows the summary offers, in seconds (anything else is refused)."""


def is_admin(principal: Principal) -> bool:
    """May this caller see the whole gateway's traffic and manage keys?"""
    return principal.kind in ADMIN_KINDS or principal.metadata.get("user_role") == "proxy_admin"


def _static_files() -> dict[str, tuple[bytes, str]]:
    """Path under ``/ui`` → (bytes, content type), read once."""
    files: dict[str, tuple[bytes, str]] = {}
    root = resources.files("anygate.ui")
    for folder, prefix in (("static", ""), ("vendor", "vendor/")):
        for item in root.joinpath(folder).iterdir():
            name = item.name
            if item.is_file() and not name.startswith("."):
                suffix = name[name.rfind(".") :] if "." in name else ""
                content_type = CONTENT_TYPES.get(suffix, CONTENT_TYPES[""])
                files[prefix + name] = (item.read_bytes(), content_type)
    files[""] = files["index.html"]
    return files


class Dashboard:
    """Answers ``/ui`` and ``/ui/…`` for the server."""

    def __init__(
        self, gateway: Gateway, observability: Observability, routes: Callable[[], list[str]] = list
    ) -> None:
        self.gateway = gateway
        self.observability = observability
        self._routes = routes
        self._files = _static_files()

    async def handle(
        self, method: str, path: str, query: bytes, headers: Mapping[str, str]
    ) -> GatewayResponse:
        from anygate.gateway import GatewayResponse

        if method not in ("GET", "HEAD"):
            raise GatewayError(405, f"method {method} is not allowed on {path}; use GET")
        name = path.removeprefix("/ui").removeprefix("/")
        if not name.startswith("api/"):
            found = self._files.get(name)
            if found is None:
                raise GatewayError(404, f"no route for {method} {path}")
            body, content_type = found
            return GatewayResponse(body=body, headers={"content-type": content_type, **STATIC_HEADERS})
        principal = await self.gateway.authenticate(headers)
        if not is_admin(principal):
            raise GatewayError(403, "the dashboard needs the master key or an admin key")
        params = dict(parse_qsl(query.decode("latin-1")))
        answer = self._api(name.removeprefix("api/"), params)
        return GatewayResponse(body=orjson.dumps(answer), headers={"cache-control": "no-store"})

    def _api(self, name: str, params: Mapping[str, str]) -> object:
        recent = self.observability.recent
        if name == "whoami":
            return {
                "admin": True,
                "metrics": self.observability.metrics is not None,
                "tracing": self.observability.tracing,
                "per_process": True,
                "admin_routes": [path for path in self._routes() if path.startswith(ADMIN_PREFIXES)],
            }
        if name == "health":
            gateway = self.gateway
            return {"deployments": gateway.router.report(gateway.config.deployments)}
        if recent is None:
            raise GatewayError(404, "the dashboard's request records are off (general_settings.ui)")
        if name == "summary":
            window = WINDOWS.get(params.get("window", "3600"))
            if window is None:
                raise GatewayError(400, f"window must be one of {', '.join(WINDOWS)} (seconds)")
            return recent.summary(window)
        if name == "requests":
            limit = params.get("limit", "200")
            if not limit.isdigit() or not 0 < int(limit) <= 1000:
                raise GatewayError(400, "limit must be a number from 1 to 1000")
            return {"requests": recent.requests(params, int(limit))}
        raise GatewayError(404, f"no route for GET /ui/api/{name}")
