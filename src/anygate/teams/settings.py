"""Whether the teams feature is on, decided from the config without importing its database drivers."""

from __future__ import annotations

from pathlib import Path

from anygate.config import Config, ConfigError


def default_sqlite_url(config_source: str) -> str:
    """``sqlite:///<config dir>/anygate.db``: the database beside the config file."""
    return f"sqlite:///{Path(config_source).resolve().parent / 'anygate.db'}"


def teams_database_url(config: Config) -> str | None:
    """The database the teams feature uses, or None when it is off (see ``general_settings.teams``)."""
    general = config.general
    if general.teams is False or not general.master_key:
        if general.teams and not general.master_key:
            raise ConfigError("general_settings.teams needs a master_key to administer keys")
        return None
    if general.database_url:
        return general.database_url
    source = config.source
    if source.startswith("<") or source.endswith("default_config.yaml"):
        if general.teams:
            raise ConfigError("general_settings.teams needs a database_url when the config is not a file")
        return None
    return default_sqlite_url(source)
