"""Loading LiteLLM-format configs: what is accepted, and errors that name the key, the entry and the line."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import anthropic
import pytest

from anygate.config import ConfigError, load_config, parse_config
from tests.conftest import sdk_client
from tests.fakes.gateway_server import GatewayServer

Write = Callable[[str], Path]


@pytest.fixture
def write(tmp_path: Path) -> Write:
    def write_config(text: str) -> Path:
        path = tmp_path / "config.yaml"
        path.write_text(text)
        return path

    return write_config


def test_the_readme_config_loads() -> None:
    config = parse_config(
        """
model_list:
  - model_name: claude-sonnet
    litellm_params:
      model: anthropic/claude-sonnet-4-5
      api_key: os.environ/ANTHROPIC_API_KEY
  - model_name: gpt
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: https://api.openai.com/v1
      timeout: 60
    model_info:
      display_name: GPT-4o mini
general_settings:
  master_key: os.environ/ANYGATE_MASTER_KEY
""",
        env={"ANTHROPIC_API_KEY": "sk-ant", "ANYGATE_MASTER_KEY": "sk-master", "OPENAI_API_KEY": "sk-oai"},
    )
    sonnet, gpt = config.deployments
    assert (sonnet.provider, sonnet.upstream_model, sonnet.api_key) == (
        "anthropic",
        "claude-sonnet-4-5",
        "sk-ant",
    )
    assert (gpt.provider, gpt.upstream_model, gpt.timeout) == ("openai", "gpt-4o-mini", 60.0)
    assert gpt.api_key == "sk-oai"  # the provider's usual variable when no api_key is given
    assert gpt.model_info == {"display_name": "GPT-4o mini"}
    assert config.general.master_key == "sk-master"


@pytest.mark.parametrize(
    ("yaml_text", "key", "line"),
    [
        ("model_lst: []\n", "model_lst", 1),
        ("model_list:\n  - model_name: a\n    litellm_param: {model: mock/a}\n", "litellm_param", 3),
        (
            "model_list:\n  - model_name: a\n    litellm_params:\n      model: mock/a\n      api_bse: http://x\n",
            "api_bse",
            5,
        ),
        ("general_settings:\n  master_kee: x\n", "master_kee", 2),
        ("router_settings:\n  num_retry: 2\n", "num_retry", 2),
        ("litellm_settings:\n  drop_param: true\n", "drop_param", 2),
    ],
)
def test_unknown_key_names_the_key_file_and_line(write: Write, yaml_text: str, key: str, line: int) -> None:
    path = write(yaml_text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert repr(key) in message
    assert f"{path}:{line}:" in message


def test_missing_environment_variable_names_it_and_the_entry(write: Write) -> None:
    path = write(
        """
model_list:
  - model_name: ok
    litellm_params: {model: mock/ok}
  - model_name: needs-key
    litellm_params:
      model: anthropic/claude-x
      api_key: os.environ/ANYGATE_TEST_SURELY_UNSET
"""
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    message = str(caught.value)
    assert "ANYGATE_TEST_SURELY_UNSET" in message
    assert "needs-key" in message
    assert f"{path}:8:" in message


def test_missing_variable_in_general_settings(write: Write) -> None:
    with pytest.raises(ConfigError, match=r"MY_MASTER.*general_settings"):
        load_config(write("general_settings:\n  master_key: os.environ/MY_MASTER\n"), env={})


def test_environment_variables_section_feeds_references() -> None:
    config = parse_config(
        """
environment_variables:
  MY_KEY: sk-from-section
model_list:
  - model_name: c
    litellm_params: {model: anthropic/claude-x, api_key: os.environ/MY_KEY}
""",
        env={},
    )
    assert config.deployments[0].api_key == "sk-from-section"


def test_litellm_only_keys_are_accepted_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="anygate.config"):
        config = parse_config(
            """
model_list:
  - model_name: c
    litellm_params:
      model: mock/c
      tags: [fast]
general_settings:
  alerting: [slack]
router_settings:
  redis_host: localhost
litellm_settings:
  success_callback: [langfuse]
"""
        )
    assert config.deployments[0].provider == "mock"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    for key in ("tags", "alerting", "redis_host", "success_callback"):
        assert key in warnings[0]


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("claude-3-7-sonnet-latest", "anthropic"),
        ("claude-sonnet-4-5", "anthropic"),
        ("gpt-4o-mini", "openai"),
        ("o1-mini", "openai"),
        ("o3", "openai"),
        ("o4-mini", "openai"),
        ("gemini-2.0-flash", "gemini"),
        ("anthropic/claude-x", "anthropic"),
        ("mock/anything", "mock"),
    ],
)
def test_bare_well_known_model_names_resolve(model: str, provider: str) -> None:
    config = parse_config(f"model_list:\n  - model_name: m\n    litellm_params: {{model: {model}}}\n", env={})
    deployment = config.deployments[0]
    assert deployment.provider == provider
    assert deployment.upstream_model == model.split("/", 1)[-1]


@pytest.mark.parametrize("model", ["llama3", "my-local-model", "unknownprovider/x"])
def test_unresolvable_model_names_the_entry(write: Write, model: str) -> None:
    path = write(f"model_list:\n  - model_name: mine\n    litellm_params:\n      model: {model}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    message = str(caught.value)
    assert "'mine'" in message and model in message
    assert f"{path}:4:" in message


@pytest.mark.parametrize(
    ("provider_model", "variable"),
    [("anthropic/claude-x", "ANTHROPIC_API_KEY"), ("openai/gpt-4o", "OPENAI_API_KEY")],
)
def test_api_key_falls_back_to_the_provider_variable(provider_model: str, variable: str) -> None:
    text = f"model_list:\n  - model_name: m\n    litellm_params: {{model: {provider_model}}}\n"
    assert parse_config(text, env={variable: "sk-env"}).deployments[0].api_key == "sk-env"
    assert parse_config(text, env={}).deployments[0].api_key is None
    explicit = text.replace("}", ", api_key: sk-explicit}")
    assert parse_config(explicit, env={variable: "sk-env"}).deployments[0].api_key == "sk-explicit"


def test_several_entries_may_share_a_model_name() -> None:
    config = parse_config(
        """
model_list:
  - model_name: shared
    litellm_params: {model: mock/one}
  - model_name: shared
    litellm_params: {model: mock/two}
"""
    )
    assert [d.upstream_model for d in config.deployments] == ["one", "two"]
    assert len({d.deployment_id for d in config.deployments}) == 2


@pytest.mark.parametrize(
    ("yaml_text", "mentions"),
    [
        ("model_list: {a: 1}\n", "model_list"),
        ("model_list:\n  - litellm_params: {model: mock/a}\n", "model_name"),
        ("model_list:\n  - model_name: a\n", "litellm_params"),
        ("model_list:\n  - model_name: a\n    litellm_params: {api_key: x}\n", "model"),
        ("model_list:\n  - model_name: a\n    litellm_params: {model: mock/a, timeout: soon}\n", "timeout"),
        ("model_list:\n  - model_name: a\n    litellm_params: {model: mock/a, rpm: -1}\n", "rpm"),
        (
            "model_list:\n  - model_name: a\n    litellm_params: {model: mock/a, extra_headers: [x]}\n",
            "extra_headers",
        ),
        ("general_settings:\n  max_request_size_mb: big\n", "max_request_size_mb"),
        ("general_settings:\n  master_key: 12345\n", "master_key"),
        ("router_settings:\n  routing_strategy: cleverest\n", "routing_strategy"),
        ("router_settings:\n  num_retries: -1\n", "num_retries"),
        ("- just\n- a list\n", "mapping"),
        ("model_list: [\n", "YAML"),
    ],
)
def test_wrong_values_are_config_errors(yaml_text: str, mentions: str) -> None:
    with pytest.raises(ConfigError, match=mentions):
        parse_config(yaml_text, env={})


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")


def test_empty_config_is_valid() -> None:
    assert parse_config("", env={}).deployments == ()


def test_anygate_master_key_overrides_the_config(
    serve: Callable[[str], GatewayServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANYGATE_MASTER_KEY", "sk-from-env")
    server = serve(
        "model_list:\n  - model_name: m\n    litellm_params: {model: mock/m}\n"
        "general_settings:\n  master_key: sk-from-file\n"
    )
    hello = [{"role": "user", "content": "hi"}]
    assert sdk_client(server, api_key="sk-from-env").messages.create(model="m", max_tokens=20, messages=hello)
    with pytest.raises(anthropic.AuthenticationError):
        sdk_client(server, api_key="sk-from-file").messages.create(model="m", max_tokens=20, messages=hello)


def test_anygate_master_key_protects_a_config_without_one(
    serve: Callable[[str], GatewayServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANYGATE_MASTER_KEY", "sk-from-env")
    server = serve("model_list:\n  - model_name: m\n    litellm_params: {model: mock/m}\n")
    with pytest.raises(anthropic.AuthenticationError):
        sdk_client(server, api_key="anything").models.list()
    assert sdk_client(server, api_key="sk-from-env").models.list().data[0].id == "m"


def test_teams_settings_and_prices_are_implemented() -> None:
    config = parse_config(
        """
model_list:
  - model_name: c
    litellm_params:
      model: mock/c
      input_cost_per_token: 0.000001
    model_info:
      output_cost_per_token: "0.000002"
general_settings:
  database_url: postgres://x
  redis_url: os.environ/REDIS
  proxy_batch_write_at: 2
  disable_spend_logs: true
""",
        env={"REDIS": "redis://r:6379/0"},
    )
    assert config.deployments[0].costs == {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}
    general = config.general
    assert (general.database_url, general.redis_url) == ("postgres://x", "redis://r:6379/0")
    assert general.proxy_batch_write_at == 2.0 and general.disable_spend_logs is True
    from_env = parse_config(
        "model_list: []", env={"DATABASE_URL": "sqlite:///a.db", "REDIS_URL": "redis://h"}
    )
    assert (from_env.general.database_url, from_env.general.redis_url) == ("sqlite:///a.db", "redis://h")
    for bad in ("-1", ".nan", ".inf", '"nan"', '"inf"'):  # a NaN or infinite cost fails every spend write
        with pytest.raises(ConfigError, match="input_cost_per_token"):
            params = f"{{model: mock/c, input_cost_per_token: {bad}}}"
            parse_config(f"model_list: [{{model_name: c, litellm_params: {params}}}]")
