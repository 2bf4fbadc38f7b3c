"""The tables (SQLAlchemy Core, the same for SQLite and Postgres) and their versioned migrations.

Why this shape: SQLAlchemy Core writes each dialect's SQL (types, upserts, ``RETURNING``) so no SQL is
written per database; the schema is small and changes rarely, so a version row in ``anygate_meta`` and a
list of migration steps is all the machinery needed (alembic would add a script directory and Mako for
the same two ``CREATE``/``ALTER`` statements). A step is plain SQLAlchemy DDL; start-up runs the steps a
database has not seen, in one transaction, under a lock held to its commit (Postgres: an advisory
lock; SQLite: the database's write lock), so instances starting at once migrate it once.

Times are epoch seconds (``Double``): identical on both databases and cheap to compare; the admin API
renders them as ISO 8601. ``revision`` columns take the value of the ``revision`` counter of the change
that wrote the row, which is how other instances find what changed (see :mod:`.cache`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from anygate.teams.records import EntityKind

metadata: Final = sa.MetaData()

meta: Final = sa.Table(
    "anygate_meta",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)
"""Counters: ``schema`` (migration version), ``revision`` (key/team/user changes), ``spend`` (spend
writes)."""


def _budget_columns(*, with_spend: bool = False) -> list[sa.Column[Any]]:
    """A key's, team's or user's budget and limits. ``with_spend``: also its spend and the counter of
    the write that moved it, as schema versions 1 to 3 kept them (version 4 keeps them in a table of
    their own: :data:`spend_tables`)."""
    spend = [sa.Column("spend", sa.Double, nullable=False, default=0.0)] if with_spend else []
    spend_revision = (
        [sa.Column("spend_revision", sa.BigInteger, nullable=False, default=0, index=True)]
        if with_spend
        else []
    )
    return [
        sa.Column("models", sa.JSON, nullable=False, default=list),
        sa.Column("max_budget", sa.Double, nullable=True),
        sa.Column("budget_duration", sa.String(32), nullable=True),
        sa.Column("budget_reset_at", sa.Double, nullable=True, index=True),
        *spend,
        sa.Column("rpm_limit", sa.BigInteger, nullable=True),
        sa.Column("tpm_limit", sa.BigInteger, nullable=True),
        sa.Column("max_parallel_requests", sa.BigInteger, nullable=True),
        sa.Column("blocked", sa.Boolean, nullable=False, default=False),
        sa.Column("metadata", sa.JSON, nullable=False, default=dict),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=True),
        sa.Column("updated_by", sa.String(255), nullable=True),
        sa.Column("revision", sa.BigInteger, nullable=False, default=0, index=True),
        *spend_revision,
    ]


def _key_table(metadata: sa.MetaData, *, with_spend: bool = False) -> sa.Table:
    return sa.Table(
        "anygate_keys",
        metadata,
        sa.Column("token", sa.String(64), primary_key=True),
        sa.Column("key_name", sa.String(64), nullable=False),
        sa.Column("key_alias", sa.String(255), nullable=True, unique=True),
        sa.Column("user_id", sa.String(255), nullable=True, index=True),
        sa.Column("team_id", sa.String(255), nullable=True, index=True),
        sa.Column("expires", sa.Double, nullable=True),
        sa.Column("duration", sa.String(32), nullable=True),
        *_budget_columns(with_spend=with_spend),
    )


def _team_table(metadata: sa.MetaData, *, with_spend: bool = False) -> sa.Table:
    return sa.Table(
        "anygate_teams",
        metadata,
        sa.Column("team_id", sa.String(255), primary_key=True),
        sa.Column("team_alias", sa.String(255), nullable=True, unique=True),
        sa.Column("members_with_roles", sa.JSON, nullable=False, default=list),
        *_budget_columns(with_spend=with_spend),
    )


def _user_table(metadata: sa.MetaData, *, with_spend: bool = False) -> sa.Table:
    return sa.Table(
        "anygate_users",
        metadata,
        sa.Column("user_id", sa.String(255), primary_key=True),
        sa.Column("user_email", sa.String(255), nullable=True, index=True),
        sa.Column("user_alias", sa.String(255), nullable=True),
        sa.Column("user_role", sa.String(64), nullable=True),
        sa.Column("teams", sa.JSON, nullable=False, default=list),
        *_budget_columns(with_spend=with_spend),
    )


keys: Final = _key_table(metadata)
teams: Final = _team_table(metadata)
users: Final = _user_table(metadata)


def _spend_table(name: str, primary: sa.Column[Any], metadata: sa.MetaData) -> sa.Table:
    """A spend table whose rows are keyed by ``primary``, the id column of their key, team or user."""
    return sa.Table(
        name,
        metadata,
        sa.Column(primary.name, primary.type, primary_key=True),
        sa.Column("spend", sa.Double, nullable=False, default=0.0),
        sa.Column("spend_revision", sa.BigInteger, nullable=False, default=0, index=True),
        sqlite_with_rowid=False,
    )


spend_tables: Final[dict[EntityKind, sa.Table]] = {
    "key": _spend_table("anygate_key_spend", keys.c.token, metadata),
    "team": _spend_table("anygate_team_spend", teams.c.team_id, metadata),
    "user": _spend_table("anygate_user_spend", users.c.user_id, metadata),
}
"""Each key's, team's and user's spend (in its budget window), by its id: one narrow row apiece, apart
from the wide row of its settings. Why: every spend write adds to the spend of every key, team and
user that spent since the last one (thousands of keys a second on a busy gateway), and a database
rewrites a whole row to change one value of it: a key's row with its models, metadata and texts is
three times as wide as this one, and it cost SQLite three times as much (10 µs against 3.6 a key
in a write of 3,000 out of 10,000). ``spend_revision`` is the ``spend`` counter of the write that
moved it, which is how other instances find what moved (see :mod:`.cache`). Every key, team and user
has its row, written with it."""


deletions: Final = sa.Table(
    "anygate_deletions",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("entity_id", sa.String(255), nullable=False),
    sa.Column("revision", sa.BigInteger, nullable=False, index=True),
)
"""Tombstones, so other instances drop deleted keys, teams and users from their caches."""


def _spend_columns() -> list[sa.Column[Any]]:
    """The spend row columns of schema version 1 (fresh objects: a column belongs to one table)."""
    return [
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("call_type", sa.String(32), nullable=False),
        sa.Column("api_key", sa.String(64), nullable=False, index=True),
        sa.Column("key_alias", sa.String(255), nullable=True),
        sa.Column("team_id", sa.String(255), nullable=True, index=True),
        sa.Column("user", sa.String(255), nullable=True, index=True),
        sa.Column("end_user", sa.String(255), nullable=True),
        sa.Column("session_id", sa.String(255), nullable=True, index=True),
        sa.Column("model", sa.String(255), nullable=False, index=True),
        sa.Column("model_id", sa.String(255), nullable=True),
        sa.Column("custom_llm_provider", sa.String(64), nullable=True),
        sa.Column("prompt_tokens", sa.BigInteger, nullable=False, default=0),
        sa.Column("completion_tokens", sa.BigInteger, nullable=False, default=0),
        sa.Column("total_tokens", sa.BigInteger, nullable=False, default=0),
        sa.Column("spend", sa.Double, nullable=False, default=0.0),
        sa.Column("start_time", sa.Double, nullable=False, index=True),
        sa.Column("end_time", sa.Double, nullable=False),
        sa.Column("completion_start_time", sa.Double, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("day", sa.String(10), nullable=False, index=True),
        sa.Column("metadata", sa.JSON, nullable=False, default=dict),
    ]


def _cache_token_columns() -> list[sa.Column[Any]]:
    """Added by migration 2."""
    return [
        sa.Column("cache_read_input_tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("cache_creation_input_tokens", sa.BigInteger, nullable=False, server_default="0"),
    ]


SPEND_LOGS: Final = "anygate_spend_logs"
SPEND_LOG_INDEXES_V1: Final = ("api_key", "team_id", "user", "session_id", "model", "day")
"""Columns migration 1 indexed one by one and migration 3 no longer indexes (but the key's on
Postgres; see :func:`_v3`)."""


def _unindexed(columns: list[sa.Column[Any]]) -> list[sa.Column[Any]]:
    for column in columns:
        if column.name in SPEND_LOG_INDEXES_V1:
            column.index = None
    return columns


spend_logs: Final = sa.Table(SPEND_LOGS, metadata, *_unindexed(_spend_columns()), *_cache_token_columns())
"""One row per request (LiteLLM's ``LiteLLM_SpendLogs`` fields, plus cache tokens), indexed by request id
and start time; on Postgres also by key (:func:`_v3`)."""


# --- migrations --------------------------------------------------------------------------------------


def _v1(conn: Connection) -> None:
    """The first schema: keys, teams and users with their spend, tombstones, and spend rows without
    cache tokens."""
    first = sa.MetaData()
    for make in (_key_table, _team_table, _user_table):
        make(first, with_spend=True).create(conn, checkfirst=True)
    for table in (meta, deletions):
        table.create(conn, checkfirst=True)
    sa.Table(SPEND_LOGS, first, *_spend_columns()).create(conn, checkfirst=True)


def _v2(conn: Connection) -> None:
    """Cache read and cache write tokens on spend rows (priced separately from input tokens)."""
    for column in _cache_token_columns():
        add_column(conn, SPEND_LOGS, column)


def add_column(conn: Connection, table: str, column: sa.Column[Any]) -> None:
    """``ALTER TABLE … ADD COLUMN`` with the column rendered by the connection's dialect."""
    rendered = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
    conn.execute(
        sa.text(f"ALTER TABLE {conn.dialect.identifier_preparer.quote(table)} ADD COLUMN {rendered}")
    )


def _v3(conn: Connection) -> None:
    """Spend rows keep two indexes: the request id (the primary key) and the start time, which every
    report's date range uses; on Postgres also the key's, for ``/spend/logs?api_key=``. Only drops:
    building an index on a large Postgres table would hold every spend write for the time it takes.

    Why: every index takes an insert per spend row, and one keyed by a value that changes from row to
    row (the key, the user, a random request id) dirties a page of its own per row, which SQLite then
    writes to its log. Inside the gateway's process, with 200,000 rows stored, a row cost SQLite 50-93
    µs with the eight indexes of version 1 and random request ids, and 8 µs with these two and request
    ids that start with the time (:func:`anygate.protocol.ids.new_request_id`; ``bench/spend_rows.py``);
    the cost grows with the table. Reports and ``/spend/logs`` with a date range read the rows of that
    range; a filter without a date range reads the whole table on SQLite."""
    kept = {"api_key"} if conn.dialect.name == "postgresql" else set()
    v1 = sa.Table(SPEND_LOGS, sa.MetaData(), *_spend_columns())
    for index in v1.indexes:
        columns = {column.name for column in index.columns}
        if columns <= set(SPEND_LOG_INDEXES_V1) and not columns <= kept:
            index.drop(conn, checkfirst=True)


def _v4(conn: Connection) -> None:
    """Spend moves out of the keys', teams' and users' rows into narrow tables of its own
    (:data:`spend_tables`, which says why): each row's spend and ``spend_revision`` are copied, then
    the two columns (and the index of ``spend_revision``) are dropped. Dropping a column needs SQLite
    3.35 (2021) or newer."""
    old = sa.MetaData()
    for make, spend in zip((_key_table, _team_table, _user_table), spend_tables.values(), strict=True):
        before = make(old, with_spend=True)
        spend.create(conn, checkfirst=True)
        primary = before.primary_key.columns[0].name
        conn.execute(
            sa.insert(spend).from_select(
                [primary, "spend", "spend_revision"],
                sa.select(before.c[primary], before.c.spend, before.c.spend_revision),
            )
        )
        for index in before.indexes:
            if {column.name for column in index.columns} == {"spend_revision"}:
                index.drop(conn)
        quote = conn.dialect.identifier_preparer.quote
        for column in ("spend", "spend_revision"):
            conn.execute(sa.text(f"ALTER TABLE {quote(before.name)} DROP COLUMN {quote(column)}"))


MIGRATIONS: Final[tuple[Callable[[Connection], None], ...]] = (_v1, _v2, _v3, _v4)
"""Step ``i`` brings a database from version ``i`` to ``i + 1``; append, never edit. A step builds
from the definitions above, so changing one that an old step uses changes that step:
``tests/teams/test_schema_versions.py`` holds every version to the tables recorded for it, and such a
change then needs the step to keep a copy of the definition as it was."""
SCHEMA_VERSION: Final = len(MIGRATIONS)


def migrate(conn: Connection, target: int = SCHEMA_VERSION) -> int:
    """Run the migrations the database has not had, up to ``target``; returns the version before."""
    meta.create(conn, checkfirst=True)
    row = conn.execute(
        sa.select(meta.c.value).where(meta.c.name == "schema").with_for_update()
    ).scalar_one_or_none()
    if row is None:
        conn.execute(sa.insert(meta), [{"name": "schema", "value": 0}])
        conn.execute(sa.insert(meta), [{"name": "revision", "value": 0}, {"name": "spend", "value": 0}])
        # Another instance may be migrating concurrently: take the row lock it holds, then re-read.
        row = conn.execute(
            sa.select(meta.c.value).where(meta.c.name == "schema").with_for_update()
        ).scalar_one()
    version = int(row)
    if version > SCHEMA_VERSION:
        raise RuntimeError(
            f"the database schema is version {version}, newer than this anygate's {SCHEMA_VERSION}: "
            "upgrade anygate"
        )
    for step in range(version, target):
        MIGRATIONS[step](conn)
    if target > version:
        conn.execute(sa.update(meta).where(meta.c.name == "schema").values(value=target))
    return version
