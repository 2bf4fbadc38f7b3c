"""The admin routes: LiteLLM's paths, request fields and answer fields, so its curl examples and
scripts work unchanged against anygate.

Every route needs the master key or the key of a user whose ``user_role`` is ``proxy_admin`` (a key
may read its own ``/key/info``). Every body is validated (:mod:`.requests`); every failure is an
Anthropic-shaped error with a 4xx status (503 while the database is unreachable), never a 500.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final
from urllib.parse import parse_qs

import orjson
import sqlalchemy.exc
from pydantic import BaseModel, ValidationError

from anygate.hooks import Principal
from anygate.protocol.errors import GatewayError
from anygate.teams.admin import requests as req
from anygate.teams.admin.render import key_object, team_object, user_object
from anygate.teams.admin.spend import global_spend_report, spend_logs
from anygate.teams.hook import TeamsHook
from anygate.teams.records import VIRTUAL_KEY, EntityKind, abbreviate, duration_seconds, hash_key, new_key

log = logging.getLogger("anygate.teams")

Handler = Callable[["AdminApi", "Call"], Awaitable[Any]]
REGENERATE_PATH: Final = re.compile(r"^/key/(.+)/regenerate$")


class Call:
    """One admin request: who, the query parameters and the body reader."""

    def __init__(
        self, principal: Principal, query: dict[str, list[str]], read_body: Callable[[], Awaitable[object]]
    ) -> None:
        self.principal = principal
        self.query = query
        self._read_body = read_body
        self.path_key: str | None = None

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    async def body(self, model: type[Model]) -> Model:
        raw = await self._read_body()
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise GatewayError(400, "the request body must be a JSON object")
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            raise GatewayError(400, f"invalid request: {_describe(exc)}") from None

    @property
    def actor(self) -> str:
        principal = self.principal
        return principal.user_id or principal.key_id or principal.kind


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


from typing import TypeVar  # noqa: E402

Model = TypeVar("Model", bound=BaseModel)


class AdminApi:
    """Routes admin requests to their handlers; the app asks :meth:`handles` only for paths that are
    not the model API's."""

    def __init__(
        self, authenticate: Callable[[Mapping[str, str]], Awaitable[Principal]], hook: TeamsHook
    ) -> None:
        self.authenticate = authenticate
        self.hook = hook

    def handles(self, path: str) -> bool:
        return path in ROUTES or REGENERATE_PATH.match(path) is not None

    @property
    def paths(self) -> list[str]:
        """The admin API's paths (the dashboard shows the panels they serve)."""
        return list(ROUTES)

    async def handle(
        self,
        method: str,
        path: str,
        query_string: bytes,
        headers: Mapping[str, str],
        read_body: Callable[[], Awaitable[object]],
    ) -> bytes:
        """The JSON answer; failures raise :class:`GatewayError`."""
        route = ROUTES.get(path)
        path_key = None
        if route is None:
            match = REGENERATE_PATH.match(path)
            assert match is not None
            route, path_key = ROUTES["/key/regenerate"], match.group(1)
        expected, handler = route
        if method != expected:
            raise GatewayError(405, f"method {method} is not allowed on {path}; use {expected}")
        principal = await self.authenticate(headers)
        await self.hook.start()
        if not _is_admin(principal) and not (path == "/key/info" and principal.kind == VIRTUAL_KEY):
            raise GatewayError(
                403, "admin routes need the master key or the key of a user with user_role proxy_admin"
            )
        call = Call(principal, parse_qs(query_string.decode("latin-1")), read_body)
        call.path_key = path_key
        try:
            answer = await handler(self, call)
        except sqlalchemy.exc.IntegrityError as exc:
            raise GatewayError(400, f"conflicts with an existing record: {_integrity(exc)}") from None
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, OSError) as exc:
            log.warning("admin %s failed: database unavailable: %r", path, exc)
            raise GatewayError(
                503, "the database is unavailable; retry shortly", error_type="api_error"
            ) from None
        return orjson.dumps(answer)

    # --- helpers -------------------------------------------------------------------------------------

    async def changed(self) -> None:
        """See our own change at once (other instances see it within ``key_sync_interval``)."""
        await self.hook.sync()

    async def find_key(self, key: str) -> dict[str, Any]:
        token = key if re.fullmatch(r"[0-9a-f]{64}", key) else hash_key(key)
        row = await self.hook.store.get("key", token)
        if row is None:
            raise GatewayError(404, "key not found")
        return row

    async def key_by_alias(self, alias: str) -> dict[str, Any]:
        rows, _ = await self.hook.store.find("key", {"key_alias": alias})
        if not rows:
            raise GatewayError(404, f"no key with key_alias {alias!r}")
        return rows[0]

    async def require(self, kind: EntityKind, entity_id: str) -> dict[str, Any]:
        row = await self.hook.store.get(kind, entity_id)
        if row is None:
            raise GatewayError(404, f"{kind} {entity_id!r} not found")
        return row


def _is_admin(principal: Principal) -> bool:
    return principal.kind in ("master", "open") or bool(principal.metadata.get("admin"))


def _integrity(exc: sqlalchemy.exc.IntegrityError) -> str:
    text = str(exc.orig)
    for field in ("key_alias", "team_alias", "token", "team_id", "user_id"):
        if field in text:
            return f"{field} already exists"
    return "a unique field already exists"


def limit_values(body: req._Limits, now: float, *, creating: bool) -> dict[str, Any]:
    """The budget and limit columns a create or update sets (an update sets only what was sent)."""
    sent = body.model_fields_set
    values: dict[str, Any] = {}
    for name in (
        "models",
        "max_budget",
        "budget_duration",
        "tpm_limit",
        "rpm_limit",
        "max_parallel_requests",
    ):
        if creating or name in sent:
            values[name] = getattr(body, name)
    if creating or "metadata" in sent:
        values["metadata"] = body.metadata or {}
    if creating or "blocked" in sent:
        values["blocked"] = bool(body.blocked)
    if creating:
        values["models"] = body.models or []
        values["spend"] = body.spend or 0.0
    elif "spend" in sent and body.spend is not None:
        values["spend"] = body.spend
    if "budget_duration" in values:
        duration = values["budget_duration"]
        values["budget_reset_at"] = None if duration is None else now + duration_seconds(duration)
    return values


# --- keys ------------------------------------------------------------------------------------------


async def key_generate(api: AdminApi, call: Call) -> dict[str, Any]:
    body = await call.body(req.KeyGenerate)
    return await create_key(api, call, body)


async def create_key(api: AdminApi, call: Call, body: req.KeyGenerate) -> dict[str, Any]:
    if body.team_id is not None:
        await api.require("team", body.team_id)
    now = time.time()
    key = body.key or new_key()
    row = {
        "token": hash_key(key),
        "key_name": abbreviate(key),
        "key_alias": body.key_alias,
        "user_id": body.user_id,
        "team_id": body.team_id,
        "duration": body.duration,
        "expires": None if body.duration is None else now + duration_seconds(body.duration),
        **limit_values(body, now, creating=True),
        "created_at": now,
        "updated_at": now,
        "created_by": call.actor,
        "updated_by": call.actor,
    }
    await api.hook.store.insert("key", row)
    await api.changed()
    return {"key": key, "token_id": row["token"], **key_object(row, now, with_token=False)}


async def key_info(api: AdminApi, call: Call) -> dict[str, Any]:
    key = call.param("key")
    principal = call.principal
    if key is None:
        if principal.kind != VIRTUAL_KEY or principal.key_id is None:
            raise GatewayError(400, "pass the key to look up: /key/info?key=sk-...")
        row = await api.require("key", principal.key_id)
    else:
        row = await api.find_key(key)
        if not _is_admin(principal) and row["token"] != principal.key_id:
            raise GatewayError(403, "a key may only read its own info")
    info = key_object(row, time.time(), with_token=False)
    return {"key": key or row["token"], "info": info}


async def key_list(api: AdminApi, call: Call) -> dict[str, Any]:
    try:
        page = int(call.param("page") or 1)
        size = int(call.param("size") or 10)
    except ValueError:
        raise GatewayError(400, "page and size must be integers") from None
    if page < 1 or not 1 <= size <= 100:
        raise GatewayError(400, "page must be at least 1 and size between 1 and 100")
    where = {name: value for name in ("user_id", "team_id", "key_alias") if (value := call.param(name))}
    if key_hash := call.param("key_hash"):
        where["token"] = key_hash
    rows, total = await api.hook.store.find("key", where, offset=(page - 1) * size, limit=size)
    full = (call.param("return_full_object") or "false").lower() == "true"
    now = time.time()
    return {
        "keys": [key_object(r, now) for r in rows] if full else [r["token"] for r in rows],
        "total_count": total,
        "current_page": page,
        "total_pages": -(-total // size),
    }


async def key_update(api: AdminApi, call: Call) -> dict[str, Any]:
    body = await call.body(req.KeyUpdate)
    row = await (api.find_key(body.key) if body.key else api.key_by_alias(body.key_alias or ""))
    if "team_id" in body.model_fields_set and body.team_id is not None:
        await api.require("team", body.team_id)
    now = time.time()
    values = limit_values(body, now, creating=False)
    sent = body.model_fields_set
    for name in ("user_id", "team_id"):
        if name in sent:
            values[name] = getattr(body, name)
    if "key_alias" in sent and body.key is not None:
        values["key_alias"] = body.key_alias
    if "duration" in sent:
        values["duration"] = body.duration
        values["expires"] = None if body.duration is None else now + duration_seconds(body.duration)
    values.update(updated_at=now, updated_by=call.actor)
    await api.hook.store.update("key", row["token"], values)
    await api.changed()
    updated = {**row, **values}
    return {"key": body.key or row["token"], **key_object(updated, now)}


async def key_delete(api: AdminApi, call: Call) -> dict[str, Any]:
    body = await call.body(req.KeyDelete)
    by_token: dict[str, str] = {}
    for key in body.keys or []:
        by_token[(await api.find_key(key))["token"]] = key
    for alias in body.key_aliases or []:
        by_token[(await api.key_by_alias(alias))["token"]] = alias
    deleted = await api.hook.store.delete("key", list(by_token))
    await api.changed()
    return {"deleted_keys": [by_token[t] for t in deleted]}


async def _set_blocked(api: AdminApi, call: Call, blocked: bool) -> dict[str, Any]:
    body = await call.body(req.KeyBlock)
    row = await api.find_key(body.key)
    now = time.time()
    values = {"blocked": blocked, "updated_at": now, "updated_by": call.actor}
    await api.hook.store.update("key", row["token"], values)
    await api.changed()
    return key_object({**row, **values}, now)


async def key_block(api: AdminApi, call: Call) -> dict[str, Any]:
    return await _set_blocked(api, call, True)


async def key_unblock(api: AdminApi, call: Call) -> dict[str, Any]:
    return await _set_blocked(api, call, False)


async def key_regenerate(api: AdminApi, call: Call) -> dict[str, Any]:
    body = await call.body(req.KeyRegenerate)
    old = call.path_key or body.key
    if not old:
        raise GatewayError(400, 'pass the key to regenerate: /key/{key}/regenerate or {"key": ...}')
    row = await api.find_key(old)
    now = time.time()
    key = body.new_key or new_key()
    values = limit_values(body, now, creating=False)
    if "duration" in body.model_fields_set:
        values["duration"] = body.duration
        values["expires"] = None if body.duration is None else now + duration_seconds(body.duration)
    fresh = {**row, **values, "token": hash_key(key), "key_name": abbreviate(key), "updated_at": now,
             "updated_by": call.actor}  # fmt: skip
    spend = await api.hook.store.rekey(row["token"], fresh, spend=values.get("spend"))
    if spend is None:
        raise GatewayError(404, "key not found")
    fresh["spend"] = spend
    await api.changed()
    return {"key": key, "token_id": fresh["token"], **key_object(fresh, now, with_token=False)}


# --- teams -------------------------------------------------------------------------------------------


async def team_new(api: AdminApi, call: Call) -> dict[str, Any]:
    body = await call.body(req.TeamNew)
    now = time.time()
    members = [m.model_dump(exclude_none=True) for m in body.members_with_roles or []]
    row = {
        "team_id": body.team_id or str(uuid.uuid4()),
        "team_alias": body.team_alias,
        "members_with_roles": members,
        **limit_values(body, now, creating=True),
        "created_at": now,
        "updated_at": now,
        "created_by": call.actor,
        "updated_by": call.actor,
    }
    await api.hook.store.insert("team", row)
    await _join(api, row["team_id"], members, now)
    await api.changed()
    return team_object(row)


async def _join(
    api: AdminApi, team_id: str, members: list[dict[str, Any]], now: float
) -> list[dict[str, Any]]:
    """Add the team to each member's ``teams``, creating users that do not exist (as LiteLLM does)."""
    store = api.hook.store
    users = []
    for member in members:
        user_id = member.get("user_id")
        if user_id is None:
            rows, _ = await store.find("user", {"user_email": member["user_email"]})
            if rows:
                user_id = member["user_id"] = rows[0]["user_id"]
            else:
                user_id = member["user_id"] = str(uuid.uuid4())
        user = await store.get("user", user_id)
        if user is None:
            user = {
                "user_id": user_id, "user_email": member.get("user_email"), "teams": [team_id],
                "user_role": "internal_user", "models": [], "metadata": {}, "spend": 0.0, "blocked": False,
                "created_at": now, "updated_at": now,
            }  # fmt: skip
            await store.insert("user", user)
        elif team_id not in (user.get("teams") or []):
            teams = [*(user.get("teams") or []), team_id]
            await store.update("user", user_id, {"teams": teams, "updated_at": now})
            user = {**user, "teams": teams}
        users.append(user)
    return users


async def team_info(api: AdminApi, call: Call) -> dict[str, Any]:
    team_id = call.param("team_id")
    if not team_id:
        raise GatewayError(400, "pass the team: /team/info?team_id=...")
    row = await api.require("team", team_id)
    keys, _ = await api.hook.store.find("key", {"team_id": team_id})
    now = time.time()
    return {
        "team_id": team_id,
        "team_info": team_object(row),
        "keys": [key_object(k, now) for k in keys],
        "team_memberships": [],
    }


async def team_update(api: AdminApi, call: Call) -> dict[str, Any]:
    body = await call.body(req.TeamUpdate)
    row = await api.require("team", body.team_id)
    now = time.time()
    values = limit_values(body, now, creating=False)
    if "team_alias" in body.model_fields_set:
        values["team_alias"] = body.team_alias
    if "members_with_roles" in body.model_fields_set:
        values["members_with_roles"] = [
            m.model_dump(exclude_none=True) for m in body.members_with_roles or []
        ]
        await _join(api, body.team_id, values["members_with_roles"], now)
    values.update(updated_at=now, updated_by=call.actor)
    await api.hook.store.update("team", body.team_id, values)
    await api.changed()
    return {"team_id": body.team_id, "data": team_object({**row, **values})}


async def team_delete(api: AdminApi, call: Call) -> list[dict[str, Any]]:
    body = await call.body(req.TeamDelete)
    store = api.hook.store
    rows = [await api.require("team", team_id) for team_id in body.team_ids]
    for team_id in body.team_ids:
        keys, _ = await store.find("key", {"team_id": team_id})
        await store.delete("key", [k["token"] for k in keys])
    await store.delete("team", body.team_ids)
    await api.changed()
    return [team_object(r) for r in rows]


async def team_member_add(api: AdminApi, call: Call) -> dict[str, Any]:
    body = await call.body(req.TeamMemberAdd)
    row = await api.require("team", body.team_id)
    now = time.time()
    new = body.member if isinstance(body.member, list) else [body.member]
    members = list(row.get("members_with_roles") or [])
    added = [m.model_dump(exclude_none=True) for m in new]
    users = await _join(api, body.team_id, added, now)
    known = {m.get("user_id") for m in members}
    members += [m for m in added if m.get("user_id") not in known]
    await api.hook.store.update("team", body.team_id, {"members_with_roles": members, "updated_at": now})
    await api.changed()
    return {
        **team_object({**row, "members_with_roles": members}),
        "updated_users": [user_object(u) for u in users],
        "updated_team_memberships": [],
    }


# --- users -------------------------------------------------------------------------------------------


async def user_new(api: AdminApi, call: Call) -> dict[str, Any]:
    body = await call.body(req.UserNew)
    now = time.time()
    for team_id in body.teams or []:
        await api.require("team", team_id)
    row = {
        "user_id": body.user_id or str(uuid.uuid4()),
        "user_email": body.user_email,
        "user_alias": body.user_alias,
        "user_role": body.user_role or "internal_user",
        "teams": list(body.teams or []),
        **limit_values(body, now, creating=True),
        "created_at": now,
        "updated_at": now,
        "created_by": call.actor,
        "updated_by": call.actor,
    }
    await api.hook.store.insert("user", row)
    answer = user_object(row)
    if body.auto_create_key:
        key = req.KeyGenerate(user_id=row["user_id"], key_alias=body.key_alias, duration=body.duration,
                              team_id=body.team_id, models=body.models or [])  # fmt: skip
        created = await create_key(api, call, key)
        answer = {**answer, "key": created["key"], "token_id": created["token_id"],
                  "key_name": created["key_name"], "expires": created["expires"]}  # fmt: skip
    else:
        await api.changed()
        answer["key"] = ""
    return answer


async def user_info(api: AdminApi, call: Call) -> dict[str, Any]:
    user_id = call.param("user_id")
    if not user_id:
        raise GatewayError(400, "pass the user: /user/info?user_id=...")
    row = await api.require("user", user_id)
    keys, _ = await api.hook.store.find("key", {"user_id": user_id})
    teams = [t for team_id in row.get("teams") or [] if (t := await api.hook.store.get("team", team_id))]
    now = time.time()
    return {
        "user_id": user_id,
        "user_info": user_object(row),
        "keys": [key_object(k, now) for k in keys],
        "teams": [team_object(t) for t in teams],
    }


async def user_update(api: AdminApi, call: Call) -> dict[str, Any]:
    body = await call.body(req.UserUpdate)
    if body.user_id is not None:
        row = await api.require("user", body.user_id)
    else:
        rows, _ = await api.hook.store.find("user", {"user_email": body.user_email})
        if not rows:
            raise GatewayError(404, f"no user with user_email {body.user_email!r}")
        row = rows[0]
    now = time.time()
    values = limit_values(body, now, creating=False)
    for name in ("user_email", "user_alias", "user_role", "teams"):
        if name in body.model_fields_set and not (name == "user_email" and body.user_id is None):
            values[name] = getattr(body, name)
    values.update(updated_at=now, updated_by=call.actor)
    await api.hook.store.update("user", row["user_id"], values)
    await api.changed()
    return {"user_id": row["user_id"], "data": user_object({**row, **values})}


async def user_delete(api: AdminApi, call: Call) -> dict[str, Any]:
    body = await call.body(req.UserDelete)
    store = api.hook.store
    for user_id in body.user_ids:
        await api.require("user", user_id)
    for user_id in body.user_ids:
        keys, _ = await store.find("key", {"user_id": user_id})
        await store.delete("key", [k["token"] for k in keys])
    deleted = await store.delete("user", body.user_ids)
    await api.changed()
    return {"deleted_users": deleted}


async def _spend_logs(api: AdminApi, call: Call) -> Any:
    return await spend_logs(api.hook.store, call.param)


async def _spend_report(api: AdminApi, call: Call) -> Any:
    return await global_spend_report(api.hook.store, call.param)


ROUTES: Final[dict[str, tuple[str, Handler]]] = {
    "/key/generate": ("POST", key_generate),
    "/key/info": ("GET", key_info),
    "/key/list": ("GET", key_list),
    "/key/update": ("POST", key_update),
    "/key/delete": ("POST", key_delete),
    "/key/block": ("POST", key_block),
    "/key/unblock": ("POST", key_unblock),
    "/key/regenerate": ("POST", key_regenerate),
    "/team/new": ("POST", team_new),
    "/team/info": ("GET", team_info),
    "/team/update": ("POST", team_update),
    "/team/delete": ("POST", team_delete),
    "/team/member_add": ("POST", team_member_add),
    "/user/new": ("POST", user_new),
    "/user/info": ("GET", user_info),
    "/user/update": ("POST", user_update),
    "/user/delete": ("POST", user_delete),
    "/spend/logs": ("GET", _spend_logs),
    "/global/spend/report": ("GET", _spend_report),
}
