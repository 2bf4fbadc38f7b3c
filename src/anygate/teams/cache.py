"""Every key, team and user in memory: the request path's only view of them (no database per request).

Loaded whole at start-up (10,000 keys take a few megabytes), then kept current by a background task that
reads the database's change counters every ``key_sync_interval`` (0.5 s): rows stamped with a newer
``revision`` replace their cached copies, tombstones remove deleted ones, and rows whose spend moved
(any instance's spend writes, budget resets) update spend. A change made on any instance therefore
reaches every instance within one interval, with or without Redis.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from anygate.hooks import Principal
from anygate.teams.records import ADMIN_ROLE, VIRTUAL_KEY, Entity, EntityKind, ModelRule
from anygate.teams.store import PRIMARY, Changes


def entity_from_row(kind: EntityKind, row: Mapping[str, Any]) -> Entity:
    """The cached form of a key, team or user row."""
    alias = row.get("key_alias") if kind == "key" else row.get("team_alias") if kind == "team" else None
    return Entity(
        kind=kind,
        id=str(row[PRIMARY[kind]]),
        models=ModelRule(list(row.get("models") or [])),
        max_budget=row.get("max_budget"),
        budget_duration=row.get("budget_duration"),
        budget_reset_at=row.get("budget_reset_at"),
        spend=float(row.get("spend") or 0.0),
        rpm_limit=row.get("rpm_limit"),
        tpm_limit=row.get("tpm_limit"),
        max_parallel_requests=row.get("max_parallel_requests"),
        blocked=bool(row.get("blocked")),
        expires=row.get("expires"),
        alias=alias,
        user_id=row.get("user_id") if kind != "team" else None,
        team_id=row.get("team_id") if kind == "key" else None,
        admin=kind == "user" and row.get("user_role") == ADMIN_ROLE,
        metadata=dict(row.get("metadata") or {}),
    )


class Directory:
    """The cached keys (by hash), teams and users, and the counters they are current to."""

    __slots__ = ("entities", "keys", "revision", "spend_counter", "teams", "users")

    def __init__(self) -> None:
        self.keys: dict[str, Entity] = {}
        self.teams: dict[str, Entity] = {}
        self.users: dict[str, Entity] = {}
        self.entities: dict[EntityKind, dict[str, Entity]] = {
            "key": self.keys,
            "team": self.teams,
            "user": self.users,
        }
        self.revision = -1
        self.spend_counter = -1

    def apply(self, changes: Changes, pending: Callable[[EntityKind, str], float]) -> None:
        """Take changed rows and deletions; ``pending`` is this process's spend not yet written."""
        changed_keys: list[Entity] = []
        changed_owners: set[tuple[EntityKind, str]] = set()
        for kind, rows in changes.rows.items():
            table = self.entities[kind]
            for row in rows:
                entity = entity_from_row(kind, row)
                entity.spend += pending(kind, entity.id)
                table[entity.id] = entity
                if kind == "key":
                    changed_keys.append(entity)
                else:
                    changed_owners.add((kind, entity.id))
        for kind, entity_id in changes.deleted:
            self.entities[kind].pop(entity_id, None)
            if kind != "key":
                changed_owners.add((kind, entity_id))
        if changed_owners:
            changed_keys.extend(
                key
                for key in self.keys.values()
                if ("team", key.team_id) in changed_owners or ("user", key.user_id) in changed_owners
            )
        for key in changed_keys:
            self.link(key)
        self.revision = max(self.revision, changes.revision)

    def link(self, key: Entity) -> None:
        """Set a key's owners and its principal from the cached team and user (every change to the
        key, a team or a user relinks, so requests read them ready-made)."""
        found = [key]
        team = self.teams.get(key.team_id) if key.team_id is not None else None
        if team is not None:
            found.append(team)
        user = self.users.get(key.user_id) if key.user_id is not None else None
        if user is not None:
            found.append(user)
        key.owners = tuple(found)
        key.limited_owners = tuple(entity for entity in found if entity.limited)
        key.owner_ids = tuple((entity.kind, entity.id) for entity in found)
        key.principal = Principal(
            VIRTUAL_KEY,
            key_id=key.id,
            user_id=key.user_id,
            team_id=key.team_id,
            metadata={"key_alias": key.alias, "admin": bool(user and user.admin)},
        )

    def apply_spend(
        self,
        counter: int,
        rows: list[tuple[EntityKind, str, float, float | None]],
        pending: Callable[[EntityKind, str], float],
    ) -> None:
        for kind, entity_id, spend, reset_at in rows:
            entity = self.entities[kind].get(entity_id)
            if entity is not None:
                entity.spend = spend + pending(kind, entity_id)
                entity.budget_reset_at = reset_at
        self.spend_counter = max(self.spend_counter, counter)

    def own_spend_written(self, counter: int) -> None:
        """This process's spend write was stamped ``counter``. When that directly follows the last
        counter the cache has seen, no other spend change came between, and the cache already holds
        this one (each request's cost was added to its owners as it ended): the next sync need not
        read back thousands of rows this process wrote itself."""
        if counter == self.spend_counter + 1:
            self.spend_counter = counter
