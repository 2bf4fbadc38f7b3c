"""Keys, teams and users as the request path sees them, and LiteLLM's durations.

The cache keeps one :class:`Entity` per key, team and user; the limiter and the budget checks read only
these, so admitting a request touches no database.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

from anygate.hooks import Principal

EntityKind = Literal["key", "team", "user"]

KEY_PREFIX: Final = "sk-"
VIRTUAL_KEY: Final = "virtual_key"
"""The :class:`Principal` kind of a request authenticated by a virtual key."""
ALL_MODELS: Final = frozenset({"*", "all-proxy-models", "all-team-models"})
"""``models`` entries that allow every model (LiteLLM's special names)."""
ADMIN_ROLE: Final = "proxy_admin"
"""A user with this ``user_role`` administers the gateway with their keys (LiteLLM's role name)."""

_DURATION: Final = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w|mo)\s*$")
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "mo": 30 * 86400}
"""LiteLLM's duration units (``30s``, ``5m``, ``1h``, ``7d``, ``2w``, ``1mo`` = 30 days)."""


def duration_seconds(text: str) -> int:
    """Seconds of a LiteLLM duration such as ``30d``; ValueError names the accepted forms."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(
            f"invalid duration {text!r}: write a number and a unit (s, m, h, d, w, mo), e.g. 30d"
        )
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"invalid duration {text!r}: it must be longer than 0")
    return seconds


def hash_key(key: str) -> str:
    """The stored form of a key: sha256 hex, as LiteLLM stores its ``token``."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A fresh virtual key: ``sk-`` and 22 random url-safe characters (128 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(16)


def abbreviate(key: str) -> str:
    """LiteLLM's ``key_name``: the key with all but its last four characters hidden."""
    return f"sk-...{key[-4:]}"


def now() -> datetime:
    return datetime.now(UTC)


def epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


class ModelRule:
    """Which model groups an entity may call: names, glob patterns (``openai/*``); empty = all."""

    __slots__ = ("_exact", "_open", "_patterns")

    def __init__(self, models: list[str] | tuple[str, ...]) -> None:
        names = [m for m in models if isinstance(m, str) and m]
        self._open = not names or any(m in ALL_MODELS for m in names)
        self._exact = frozenset(m for m in names if not _is_pattern(m))
        self._patterns = tuple(m for m in names if _is_pattern(m))

    def allows(self, model: str) -> bool:
        if self._open or model in self._exact:
            return True
        return any(fnmatch.fnmatchcase(model, pattern) for pattern in self._patterns)


def _is_pattern(name: str) -> bool:
    return any(c in name for c in "*?[")


@dataclass(slots=True)
class Entity:
    """A key, team or user: its limits, budget window and spend (mutable: spend moves as requests end).

    ``spend`` is what the database said at the last sync plus what this process added since;
    ``budget_reset_at`` is an epoch time (None: the budget never resets).
    """

    kind: EntityKind
    id: str
    models: ModelRule
    max_budget: float | None = None
    budget_duration: str | None = None
    budget_reset_at: float | None = None
    spend: float = 0.0
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    max_parallel_requests: int | None = None
    blocked: bool = False
    expires: float | None = None
    alias: str | None = None
    user_id: str | None = None
    team_id: str | None = None
    admin: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    # A key's links, set by the cache whenever the key, its team or its user changes, so a request
    # reads them instead of looking them up and building them (see ``Directory.link``).
    owners: tuple[Entity, ...] = field(default=(), repr=False, compare=False)
    """The key, then its team and its user when they exist: every budget and limit that applies."""
    limited_owners: tuple[Entity, ...] = field(default=(), repr=False, compare=False)
    """The owners with a budget or a limit (the only ones the limiter needs to see)."""
    owner_ids: tuple[tuple[EntityKind, str], ...] = field(default=(), repr=False, compare=False)
    principal: Principal | None = field(default=None, repr=False, compare=False)
    """Who a request with this key is (its alias, and whether its user administers the gateway)."""
    redis_tag: str = field(default="", repr=False, compare=False)
    """The Redis limiter's name for this entity's counters, made on first use (a process has one)."""
    budget_window: tuple[float, str] | None = field(default=None, repr=False, compare=False)
    """The Redis limiter's name of the budget window ending at ``budget_reset_at``, made on first use."""

    @property
    def limited(self) -> bool:
        """Whether any rate, parallel or budget limit applies (unlimited entities skip the limiter)."""
        return (
            self.max_budget is not None
            or self.rpm_limit is not None
            or self.tpm_limit is not None
            or self.max_parallel_requests is not None
        )

    def window_spend(self, at: float) -> float:
        """Spend in the current budget window (0 once the reset time passed, before the database
        caught up)."""
        if self.budget_reset_at is not None and at >= self.budget_reset_at:
            return 0.0
        return self.spend

    def next_reset(self, at: float) -> float | None:
        """When the budget resets next, as seen at ``at``."""
        if self.budget_reset_at is None or self.budget_duration is None:
            return self.budget_reset_at
        reset = self.budget_reset_at
        if at >= reset:
            step = duration_seconds(self.budget_duration)
            reset += ((at - reset) // step + 1) * step
        return reset
