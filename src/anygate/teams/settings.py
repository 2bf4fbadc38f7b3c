"""Whether the teams feature is on, decided from the config without importing its database drivers."""

from __future__ import annotations

from pathlib import Path

from anygate.config import Config, ConfigError


def default_sqlite_url(config_source: str) -> str:
    """``sqlite:///<config dir>/anygate.db``: the database beside the config file."""
    return f"sqlite:///{Path(config_source).resolve().parent / 'anygate.db'}"


def teams_database_url(config: Config) -> str | None:
    """The database the teams feature uses, or None when it is off.

    Teams are on when the config asks for them: ``general_settings.teams: true`` (keys in SQLite beside
    the config file unless ``database_url`` says otherwise) or a ``database_url`` (or ``DATABASE_URL``).
    A config without either runs as before, with no database and no per-request teams work.
    """
    general = config.general
    if general.teams is False or (general.teams is None and not general.database_url):
        return None
    if not general.master_key:
        raise ConfigError("teams (virtual keys) need general_settings.master_key to administer keys")
    if general.database_url:
        return general.database_url
    source = config.source
    if source.startswith("<") or source.endswith("default_config.yaml"):
        raise ConfigError("general_settings.teams needs a database_url when the config is not a file")
    return default_sqlite_url(source)
