"""The real Claude Code CLI on anygate's built-in mock model: the demo backend behaves like a model that
uses tools, with no upstream at all."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from tests.conftest import MASTER_KEY
from tests.e2e.claude_cli import ClaudeCode
from tests.fakes.gateway_server import GatewayServer

pytestmark = pytest.mark.e2e

MOCK_CONFIG = f"""
model_list:
  - model_name: "claude-*"
    litellm_params:
      model: mock/claude
general_settings:
  master_key: {MASTER_KEY}
"""


def test_a_prompt_naming_the_read_tool_makes_the_mock_call_it(
    claude_binary_ready: None, serve: Callable[[str], GatewayServer], tmp_path: Path
) -> None:
    gateway = serve(MOCK_CONFIG)
    claude = ClaudeCode(gateway.url, MASTER_KEY, tmp_path / "work", tmp_path / "home")

    run = claude.run("Use the Read tool to look at notes.txt")

    assert run.returncode == 0, str(run)
    tool_uses = [
        block
        for entry in run.transcript()
        if entry.get("type") == "assistant"
        for block in entry.get("message", {}).get("content", [])
        if isinstance(block, dict) and block.get("type") == "tool_use"
    ]
    assert [block["name"] for block in tool_uses] == ["Read"], str(run)
    assert "file_path" in tool_uses[0]["input"]
    assert "Read" in run.result, "the mock's next turn reports the tool's result"
