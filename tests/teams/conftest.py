"""Fixtures: a gateway with teams on, over SQLite (a temporary file) and over Postgres (a database of
its own per test), and the Postgres and Redis servers of :mod:`tests.teams.services`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.gateway_server import GatewayServer
from tests.teams.services import (  # noqa: F401 (fixtures)
    fresh_postgres_url,
    postgres_server,
    postgres_url,
    redis_prefix,
    redis_server,
)
from tests.teams.support import Admin, teams_config


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'anygate.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'anygate.db'}"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


@pytest.fixture
def server(database_url: str) -> Iterator[GatewayServer]:
    gateway = GatewayServer(teams_config(database_url)).start()
    yield gateway
    gateway.stop()


@pytest.fixture
def admin(server: GatewayServer) -> Admin:
    return Admin(server)
