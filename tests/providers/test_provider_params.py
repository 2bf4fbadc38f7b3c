"""Provider-owned ``litellm_params``: declared by the provider's spec, checked at load, handed over."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

import pytest

from anygate.config import ConfigError, parse_config
from anygate.providers import registry
from anygate.providers.registry import ParamError


def _check(params: Mapping[str, Any]) -> None:
    region = params.get("region_name")
    if region is not None and not isinstance(region, str):
        raise ParamError("region_name", "must be a string such as 'eu-west-1'")


@pytest.fixture
def owning_params(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    spec = replace(registry.SPECS["openai"], param_keys=frozenset({"region_name"}), check_params=_check)
    monkeypatch.setitem(registry.SPECS, "openai", spec)
    yield


def config(params: str) -> str:
    return f"model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/gpt-4o\n{params}"


def test_owned_params_reach_the_deployment(owning_params: None) -> None:
    loaded = parse_config(config("      region_name: eu-west-1\n      api_key: k\n"), env={})
    assert loaded.deployments[0].params == {"region_name": "eu-west-1"}


def test_owned_params_are_checked_with_their_position(owning_params: None) -> None:
    with pytest.raises(ConfigError, match=r"region_name \(<config>:5:\d+\): must be a string"):
        parse_config(config("      region_name: 7\n"), env={})


def test_params_of_another_provider_are_unknown_keys() -> None:
    with pytest.raises(ConfigError, match="unknown key 'vertex_hologram'"):
        parse_config(config("      vertex_hologram: x\n"), env={})
