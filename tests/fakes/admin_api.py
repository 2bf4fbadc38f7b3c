"""A tiny stand-in for a key-management feature: LiteLLM's admin endpoints with LiteLLM's request and
answer fields (``/key/generate``, ``/key/list``, ``/key/block``, ``/key/unblock``, ``/key/delete``,
``/team/new``, ``/team/list``, ``/team/delete``), kept in memory, plus the hook that authenticates the keys
it made, so the dashboard can be tested before (or without) the real one."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from typing import Any

import orjson

from anygate.gateway import GatewayResponse
from anygate.hooks import Hook, Principal
from anygate.protocol.errors import GatewayError
from anygate.server.app import Route, RouteRequest
from anygate.ui import is_admin


class FakeAdminApi(Hook):
    """Keys and teams in dictionaries; every route needs an admin (the master key)."""

    def __init__(self) -> None:
        self.keys: dict[str, dict[str, Any]] = {}
        """Hashed token → LiteLLM's key object."""
        self.teams: dict[str, dict[str, Any]] = {}

    @property
    def routes(self) -> Mapping[str, Route]:
        return {
            "/key/generate": self._generate,
            "/key/list": self._list,
            "/key/block": self._block,
            "/key/unblock": self._unblock,
            "/key/delete": self._delete,
            "/team/new": self._new_team,
            "/team/list": self._list_teams,
            "/team/delete": self._delete_teams,
        }

    async def authenticate(self, headers: Mapping[str, str]) -> Principal | None:
        presented = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")
        key = self.keys.get(_hash(presented))
        if key is None:
            return None
        if key["blocked"]:
            raise GatewayError(401, "this key is blocked")
        return Principal(
            "virtual_key", key_id=key["token"][:12], user_id=key["user_id"], team_id=key["team_id"]
        )

    @staticmethod
    def _admin(request: RouteRequest, method: str) -> dict[str, Any]:
        if not is_admin(request.principal):
            raise GatewayError(403, "admin only")
        if request.method != method:
            raise GatewayError(405, f"use {method}")
        return request.body if isinstance(request.body, dict) else {}

    async def _generate(self, request: RouteRequest) -> GatewayResponse:
        body = self._admin(request, "POST")
        key = "sk-" + secrets.token_urlsafe(24)
        token = _hash(key)
        record = {
            "token": token,
            "key_name": f"sk-...{key[-4:]}",
            "key_alias": body.get("key_alias"),
            "team_id": body.get("team_id"),
            "user_id": body.get("user_id"),
            "models": body.get("models") or [],
            "max_budget": body.get("max_budget"),
            "spend": 0.0,
            "blocked": False,
            "expires": None,
        }
        self.keys[token] = record
        return _json({**record, "key": key})

    async def _list(self, request: RouteRequest) -> GatewayResponse:
        self._admin(request, "GET")
        keys = list(self.keys.values())
        return _json({"keys": keys, "total_count": len(keys), "current_page": 1, "total_pages": 1})

    async def _set_blocked(self, request: RouteRequest, blocked: bool) -> GatewayResponse:
        body = self._admin(request, "POST")
        key = self.keys.get(str(body.get("key"))) or self.keys.get(_hash(str(body.get("key"))))
        if key is None:
            raise GatewayError(404, "no such key")
        key["blocked"] = blocked
        return _json(key)

    async def _block(self, request: RouteRequest) -> GatewayResponse:
        return await self._set_blocked(request, True)

    async def _unblock(self, request: RouteRequest) -> GatewayResponse:
        return await self._set_blocked(request, False)

    async def _delete(self, request: RouteRequest) -> GatewayResponse:
        body = self._admin(request, "POST")
        deleted = [token for token in body.get("keys") or [] if self.keys.pop(token, None) is not None]
        return _json({"deleted_keys": deleted})

    async def _new_team(self, request: RouteRequest) -> GatewayResponse:
        body = self._admin(request, "POST")
        team_id = body.get("team_id") or "team-" + secrets.token_hex(4)
        team = {
            "team_id": team_id,
            "team_alias": body.get("team_alias"),
            "max_budget": body.get("max_budget"),
            "spend": 0.0,
            "models": body.get("models") or [],
            "blocked": False,
            "members_with_roles": [],
        }
        self.teams[team_id] = team
        return _json(team)

    async def _list_teams(self, request: RouteRequest) -> GatewayResponse:
        self._admin(request, "GET")
        return _json(list(self.teams.values()))

    async def _delete_teams(self, request: RouteRequest) -> GatewayResponse:
        body = self._admin(request, "POST")
        for team_id in body.get("team_ids") or []:
            self.teams.pop(team_id, None)
        return _json({"deleted_teams": body.get("team_ids") or []})


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _json(value: object) -> GatewayResponse:
    return GatewayResponse(body=orjson.dumps(value))
