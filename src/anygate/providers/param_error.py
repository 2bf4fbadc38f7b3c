"""The error of a wrong provider-owned ``litellm_params`` value (a module of its own so that providers'
parameter checks, which the registry imports, need not import the registry)."""

from __future__ import annotations


class ParamError(ValueError):
    """A provider-owned ``litellm_params`` value is wrong; ``key`` names it (the config adds its place)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
