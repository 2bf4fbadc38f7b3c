"""Fixtures for driving the real Claude Code CLI through anygate to scripted OpenAI-compatible models.

The chain under test is the one users run: ``claude`` → anygate (the real server, on a loopback port)
→ an OpenAI-compatible upstream (here :class:`FakeOpenAIModels`). The gateway config maps Claude Code's
model names with patterns, as ``examples/claude-code.yaml`` does: haiku-class names go to a small model,
sonnet-class names to a reasoning model behind the DeepSeek preset (which wants its reasoning sent back),
everything else named ``claude-*`` to a big one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.conftest import MASTER_KEY, UPSTREAM_KEY
from tests.e2e.claude_cli import ClaudeCode, unavailable_reason
from tests.e2e.fake_openai import FakeOpenAIModels
from tests.fakes.gateway_server import GatewayServer

BIG_MODEL = "big-model"
SMALL_MODEL = "small-model"
REASONING_MODEL = "reasoning-model"


def claude_code_config(
    api_base: str, *, num_retries: int = 0, ping_interval: float = 10.0, general_settings: str = ""
) -> str:
    """The gateway config of the e2e tests: Claude Code's names → three OpenAI-compatible models.

    ``general_settings`` is more YAML for that section, indented by two spaces (``web_search: ...``).
    """
    return f"""
model_list:
  - model_name: "claude-*haiku*"
    litellm_params:
      model: openai/{SMALL_MODEL}
      api_base: {api_base}
      api_key: {UPSTREAM_KEY}
    model_info:
      display_name: Small model (haiku class)
      max_input_tokens: 32768
      max_output_tokens: 4096
  - model_name: "claude-*sonnet*"
    litellm_params:
      model: deepseek/{REASONING_MODEL}
      api_base: {api_base}
      api_key: {UPSTREAM_KEY}
    model_info:
      display_name: Reasoning model (sonnet class)
      max_input_tokens: 128000
      max_output_tokens: 8192
  - model_name: "claude-*"
    litellm_params:
      model: openai/{BIG_MODEL}
      api_base: {api_base}
      api_key: {UPSTREAM_KEY}
    model_info:
      display_name: Big model
      max_input_tokens: 200000
      max_output_tokens: 16384
  - model_name: claude-big
    litellm_params:
      model: openai/{BIG_MODEL}
      api_base: {api_base}
      api_key: {UPSTREAM_KEY}
    model_info:
      display_name: Big model (listed)
      max_input_tokens: 200000
      max_output_tokens: 16384
router_settings:
  num_retries: {num_retries}
general_settings:
  master_key: {MASTER_KEY}
  stream_ping_interval: {ping_interval}
{general_settings}"""


@pytest.fixture(scope="session")
def claude_binary_ready() -> None:
    """Skip on a laptop without npm or the registry; in CI (``CI`` set) a missing CLI is a failure."""
    reason = unavailable_reason()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Claude Code end-to-end tests: {reason}")
        pytest.skip(reason)


@pytest.fixture
def models() -> Iterator[FakeOpenAIModels]:
    fake = FakeOpenAIModels().start()
    yield fake
    fake.stop()
    assert fake.errors == [], f"the scripted model failed: {fake.errors}"


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """Where :func:`start_gateway` writes the config it serves (for ``anygate claude-code-env``)."""
    return tmp_path / "anygate.yaml"


@pytest.fixture
def start_gateway(
    serve: Callable[[str], GatewayServer], models: FakeOpenAIModels, config_file: Path
) -> Callable[..., GatewayServer]:
    """``start_gateway(num_retries=0, ping_interval=10, general_settings="")`` serves
    :func:`claude_code_config` over the fake models."""

    def start(num_retries: int = 0, ping_interval: float = 10.0, general_settings: str = "") -> GatewayServer:
        text = claude_code_config(
            models.api_base,
            num_retries=num_retries,
            ping_interval=ping_interval,
            general_settings=general_settings,
        )
        config_file.write_text(text)
        return serve(text)

    return start


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def claude(
    claude_binary_ready: None, start_gateway: Callable[..., GatewayServer], workdir: Path, tmp_path: Path
) -> ClaudeCode:
    """Claude Code pointed at a fresh gateway (no gateway retries), with its own HOME."""
    gateway = start_gateway()
    return ClaudeCode(gateway.url, MASTER_KEY, workdir, tmp_path / "home")
