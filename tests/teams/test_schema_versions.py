"""Every schema version stays what it was: a database migrated step by step matches, at each version,
the tables, columns and indexes recorded for it in ``schema_versions.json``.

Why: migrations build their tables from the module's definitions, so a change to a definition an old
migration uses would change what that migration makes, and databases made before and after the change
would differ at the same version (a fresh database would get a column a later step then fails to add,
or an upgraded one would lack it). Recording each version once, and never again, turns such a change
into a failing test instead of a broken upgrade.

A new migration records its version on the first run with ``ANYGATE_RECORD_SCHEMA=1`` (on SQLite and
Postgres); versions already recorded are never rewritten.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from anygate.teams import schema
from anygate.teams.store import async_url

RECORDED = Path(__file__).with_name("schema_versions.json")


def describe(conn: sa.Connection) -> dict[str, Any]:
    """Tables, their columns in order (name, the generic form of the type the database reports, and
    nullability), primary key, indexes and unique constraints, as the database reports them."""
    inspector = sa.inspect(conn)
    tables: dict[str, Any] = {}
    for table in sorted(inspector.get_table_names()):
        tables[table] = {
            "columns": [
                [column["name"], repr(column["type"].as_generic()), column["nullable"]]
                for column in inspector.get_columns(table)
            ],
            "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
            "indexes": sorted(
                [sorted(name or "" for name in index["column_names"]), bool(index["unique"])]
                for index in inspector.get_indexes(table)
            ),
            "unique": sorted(
                sorted(unique["column_names"]) for unique in inspector.get_unique_constraints(table)
            ),
        }
    return tables


async def test_each_schema_version_is_what_it_was_recorded_as(database_url: str) -> None:
    recorded: dict[str, dict[str, Any]] = json.loads(RECORDED.read_text()) if RECORDED.exists() else {}
    engine = create_async_engine(async_url(database_url))
    dialect = engine.dialect.name
    found: dict[str, Any] = {}
    try:
        for version in range(1, schema.SCHEMA_VERSION + 1):
            async with engine.begin() as conn:
                await conn.run_sync(schema.migrate, version)
                found[str(version)] = await conn.run_sync(describe)
    finally:
        await engine.dispose()
    mine = recorded.setdefault(dialect, {})
    missing = [version for version in found if version not in mine]
    if missing and os.environ.get("ANYGATE_RECORD_SCHEMA") == "1":
        for version in missing:
            mine[version] = found[version]
        RECORDED.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
        missing = []
    assert not missing, (
        f"schema versions {missing} on {dialect} are not recorded: run this test once with "
        "ANYGATE_RECORD_SCHEMA=1 and commit tests/teams/schema_versions.json"
    )
    for version, tables in found.items():
        assert tables == mine[version], (
            f"schema version {version} on {dialect} is not what it was: a definition an old migration "
            "builds from changed; give that migration a copy of the definition as it was instead"
        )


async def test_the_migrations_build_the_tables_the_code_uses(sqlite_url: str) -> None:
    """The live table definitions (what queries use) and the migrated database agree column for column."""
    engine = create_async_engine(async_url(sqlite_url))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(schema.migrate)
            tables = await conn.run_sync(describe)
    finally:
        await engine.dispose()
    declared = {
        table.name: [column.name for column in table.columns] for table in schema.metadata.sorted_tables
    }
    assert {name: [column[0] for column in table["columns"]] for name, table in tables.items()} == declared
