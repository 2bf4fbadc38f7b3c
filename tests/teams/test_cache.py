"""The key cache links each key to its team, its user and its principal, and relinks on changes."""

from __future__ import annotations

from typing import Any

from anygate.teams.cache import Directory
from anygate.teams.records import VIRTUAL_KEY
from anygate.teams.store import Changes


def _changes(revision: int, deleted: list[Any] | None = None, **rows: list[dict[str, Any]]) -> Changes:
    return Changes(revision, {"key": [], "team": [], "user": [], **rows}, deleted or [])


def _nothing_pending(kind: str, entity_id: str) -> float:
    return 0.0


KEY = {"token": "k1", "key_alias": "laptop", "team_id": "t1", "user_id": "u1", "max_budget": 5.0}


def test_a_key_is_linked_to_its_team_user_and_principal() -> None:
    cache = Directory()
    cache.apply(
        _changes(1, key=[KEY], team=[{"team_id": "t1", "rpm_limit": 3}], user=[{"user_id": "u1"}]),
        _nothing_pending,
    )
    key, team, user = cache.keys["k1"], cache.teams["t1"], cache.users["u1"]
    assert key.owners == (key, team, user)
    assert key.limited_owners == (key, team)  # the user has no budget or limit
    assert key.owner_ids == (("key", "k1"), ("team", "t1"), ("user", "u1"))
    principal = key.principal
    assert principal is not None and principal.kind == VIRTUAL_KEY
    assert (principal.key_id, principal.team_id, principal.user_id) == ("k1", "t1", "u1")
    assert principal.metadata == {"key_alias": "laptop", "admin": False}


def test_changes_to_a_team_or_user_relink_their_keys() -> None:
    cache = Directory()
    cache.apply(
        _changes(1, key=[KEY, {"token": "k2"}], team=[{"team_id": "t1"}], user=[{"user_id": "u1"}]),
        _nothing_pending,
    )
    other = cache.keys["k2"]
    other_links = (other.owners, other.principal)
    cache.apply(
        _changes(2, team=[{"team_id": "t1", "max_budget": 1.0}],
                 user=[{"user_id": "u1", "user_role": "proxy_admin"}]),
        _nothing_pending,
    )  # fmt: skip
    key = cache.keys["k1"]
    assert key.owners[1] is cache.teams["t1"] and key.owners[2] is cache.users["u1"]
    assert key.limited_owners == (key, cache.teams["t1"])  # the team has a budget now
    assert key.principal is not None and key.principal.metadata["admin"] is True
    assert (other.owners, other.principal) == other_links  # unrelated keys keep their links
    cache.apply(_changes(3, deleted=[("team", "t1")]), _nothing_pending)
    assert key.owners == (key, cache.users["u1"])
    assert key.owner_ids == (("key", "k1"), ("user", "u1"))
