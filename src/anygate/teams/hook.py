"""The teams hook: virtual keys authenticate, limits and budgets admit, spend is recorded at the end.

Per request it does no database I/O: the key is a dict lookup of its sha256 in :class:`Directory`,
limits are counted in-process or on what Redis last said (a request waits for Redis only near a
limit), and the spend row goes into the ledger's buffer. Background tasks keep the cache current and
write the ledger.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final

import orjson

from anygate.auth import presented_keys
from anygate.config import Config
from anygate.hooks import Hook, Principal, RequestRecord
from anygate.protocol.errors import GatewayError
from anygate.teams.cache import Directory
from anygate.teams.ledger import Ledger
from anygate.teams.limits import LocalLimiter, RedisLimiter
from anygate.teams.pricing import PriceBook
from anygate.teams.records import VIRTUAL_KEY, Entity, hash_key
from anygate.teams.store import SpendRow, Store

log = logging.getLogger("anygate.teams")

SESSION_HEADER: Final = "x-claude-code-session-id"
CALL_TYPE: Final = "anthropic_messages"
RESET_CHECK_INTERVAL: Final = 5.0
_TEXT_LIMIT: Final = 255
SPEND_STATUS: Final = {"ok": "success", "client_gone": "client_gone"}
"""A request's outcome → the spend row's ``status`` (LiteLLM's values); anything else is a failure."""


class TeamsHook(Hook):
    """Virtual keys, budgets, limits and spend for one gateway process."""

    def __init__(self, config: Config, database_url: str) -> None:
        self.config = config
        self.database_url = database_url
        self.redis_url = config.general.redis_url
        self.redis_prefix = config.general.redis_key_prefix
        self.master_hash = hash_key(config.general.master_key or "")
        self.prices = PriceBook(config.deployments)
        self.directory = Directory()
        self.limiter: LocalLimiter | RedisLimiter = LocalLimiter()
        self._store: Store | None = None
        self._ledger: Ledger | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self._start_lock = asyncio.Lock()
        self._last_reset_check = 0.0

    # --- lifecycle ---------------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        assert self._store is not None, "TeamsHook.start() was not awaited"
        return self._store

    @property
    def ledger(self) -> Ledger:
        assert self._ledger is not None, "TeamsHook.start() was not awaited"
        return self._ledger

    async def start(self) -> None:
        """Open the database (migrating it), load every key, team and user, start the background tasks.
        Idempotent; the server calls it at start-up."""
        async with self._start_lock:
            if self._store is not None:
                return
            store = await Store.open(self.database_url)
            general = self.config.general
            self._ledger = Ledger(
                store,
                interval=general.proxy_batch_write_at,
                keep_rows=not general.disable_spend_logs,
                on_written=self.directory.own_spend_written,
            )
            if self.redis_url:
                from redis import asyncio as redis_asyncio

                client = redis_asyncio.from_url(self.redis_url)
                await client.ping()
                self.limiter = RedisLimiter(client, self.redis_prefix)
            self._store = store
            await self.sync()
            self._ledger.start()
            self._sync_task = asyncio.create_task(self._sync_loop(), name="anygate-teams-sync")

    async def aclose(self) -> None:
        if self._sync_task is not None:
            self._sync_task.cancel()
            self._sync_task = None
        if self._ledger is not None:
            await self._ledger.aclose()
        await self.limiter.aclose()
        if self._store is not None:
            await self._store.close()
            self._store = None

    async def sync(self) -> None:
        """Take the changes other instances (and the admin API) made: keys, teams, users, spend."""
        store, ledger, directory = self.store, self.ledger, self.directory
        counters = await store.counters()
        if counters.get("revision", 0) != directory.revision:
            directory.apply(await store.changes(directory.revision), ledger.pending)
        if counters.get("spend", 0) != directory.spend_counter:
            counter, rows = await store.spend_since(directory.spend_counter)
            directory.apply_spend(counter, rows, ledger.pending)

    async def _sync_loop(self) -> None:
        interval = max(self.config.general.key_sync_interval, 0.05)
        while True:
            await asyncio.sleep(interval)
            try:
                now = time.time()
                if now - self._last_reset_check >= RESET_CHECK_INTERVAL:
                    self._last_reset_check = now
                    await self.store.reset_budgets(now)
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("could not refresh keys from the database (serving from the cache): %r", exc)

    # --- the request path --------------------------------------------------------------------------

    async def authenticate(self, headers: Mapping[str, str]) -> Principal | None:
        if self._store is None:
            await self.start()
        keys = self.directory.keys
        for presented in presented_keys(headers):
            key = keys.get(hash_key(presented))
            if key is None:
                continue
            if key.blocked:
                raise GatewayError(
                    401, f"this key is blocked{_named(key)}; ask an administrator to unblock it"
                )
            if key.expires is not None and key.expires <= time.time():
                expired = datetime.fromtimestamp(key.expires, UTC).isoformat(timespec="seconds")
                raise GatewayError(401, f"this key expired at {expired}{_named(key)}")
            return key.principal
        return None

    async def admit(self, record: RequestRecord) -> None:
        principal = record.principal
        if principal.kind != VIRTUAL_KEY or principal.key_id is None:
            return
        key = self.directory.keys.get(principal.key_id)
        if key is None:
            raise GatewayError(401, "this key was deleted")
        model = record.model
        for entity in key.owners:
            if entity.blocked and entity.kind != "key":
                raise GatewayError(403, f"the {entity.kind} {entity.id!r} of this key is blocked")
            if not entity.models.allows(model):
                raise GatewayError(403, f"{_label(entity)} is not allowed to use model {model!r}")
        if record.route != "messages":
            return
        limited = key.limited_owners
        ticket = await self.limiter.admit(limited, time.time()) if limited else None
        record.context["teams"] = (key, limited, ticket)

    def completed(self, record: RequestRecord) -> None:
        if record.route != "messages":
            return
        admitted: tuple[Entity, tuple[Entity, ...], object] | None = record.context.pop("teams", None)
        if record.deployment_id is None and admitted is None:
            return  # refused before routing: nothing was spent
        usage = record.usage
        cost = self.prices.cost(record.deployment_id, record.provider, record.model, usage)
        key: Entity | None
        if admitted is not None:
            key, limited, ticket = admitted
            if limited:
                tokens = usage.tokens if usage is not None else 0
                self.limiter.release(ticket, limited, tokens, cost, time.time())
        elif record.principal.kind == VIRTUAL_KEY and record.principal.key_id:
            key = self.directory.keys.get(record.principal.key_id)
        else:
            key = None
        if key is not None:
            for entity in key.owners:
                entity.spend += cost
        self.ledger.add(self._row(record, cost), cost, key.owner_ids if key is not None else ())

    def _row(self, record: RequestRecord, cost: float) -> SpendRow:
        principal = record.principal
        usage = record.usage
        started = record.started_at
        latency = record.latency or 0.0
        ttft = record.time_to_first_token
        api_key = principal.key_id or (self.master_hash if principal.kind == "master" else "")
        end_user = None
        if record.request is not None:
            metadata = record.request.get("metadata")
            if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
                end_user = _text(metadata["user_id"])
        session = record.headers.get(SESSION_HEADER)
        input_tokens = usage.input_tokens if usage else 0
        output_tokens = usage.output_tokens if usage else 0
        alias = principal.metadata.get("key_alias")
        details = orjson.dumps(
            {
                "latency_ms": round(latency * 1e6) / 1000,  # µs precision; round(x, 3) is 3x slower
                "time_to_first_token_ms": None if ttft is None else round(ttft * 1e6) / 1000,
                "attempts": len(record.attempts),
                "stream": record.stream,
                "error": record.error.message if record.error is not None else None,
                "user_api_key_alias": alias,
            }
        ).decode()
        return SpendRow._make(  # in the table's column order (keywords cost 3x the time)
            (
                record.request_id,
                CALL_TYPE,
                api_key,
                alias,
                principal.team_id,
                principal.user_id,
                end_user,
                _text(session) if session else None,
                _text(record.model),
                _text(record.deployment_id) if record.deployment_id else None,
                _text(record.provider) if record.provider else None,
                input_tokens,
                output_tokens,
                input_tokens + output_tokens,
                cost,
                started,
                started + latency,
                None if ttft is None else started + ttft,
                SPEND_STATUS.get(record.outcome or "", "failure"),
                record.status,
                _utc_day(started),
                details,
                usage.cache_read_input_tokens if usage else 0,
                usage.cache_creation_input_tokens if usage else 0,
            )
        )


def _text(value: str) -> str:
    """A text the client chose (or a deployment named after it: a pattern's), as a spend row's column
    holds it: at most 255 characters, without NUL characters (Postgres text cannot hold them: one
    would fail the whole batch's write)."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    return value[:_TEXT_LIMIT]


_day_cache: list[tuple[int, str]] = [(-1, "")]


def _utc_day(at: float) -> str:
    """``YYYY-MM-DD`` of an epoch time in UTC, formatted once per day (every spend row needs it)."""
    number = int(at // 86400)
    cached = _day_cache[0]
    if cached[0] != number:
        cached = _day_cache[0] = (number, datetime.fromtimestamp(number * 86400, UTC).date().isoformat())
    return cached[1]


def _named(key: Entity) -> str:
    return f" (key_alias {key.alias!r})" if key.alias else ""


def _label(entity: Entity) -> str:
    if entity.kind == "key":
        return "this key" + _named(entity)
    return f"the {entity.kind} {entity.id!r} of this key"
