"""``anygate claude-code-env``: the export lines for Claude Code, as a user runs them (through the CLI and
a real shell), and never a secret unless asked for."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from anygate.config import load_config
from anygate.routing.names import ModelNames
from anygate.server import cli

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "claude-code.yaml"


def exports(
    capsys: pytest.CaptureFixture[str], *args: str, expect_status: int = 0
) -> tuple[str, dict[str, str]]:
    """Run ``anygate claude-code-env ARGS``; its output, and the variables a shell ``eval`` of it sets."""
    status = cli.main(["claude-code-env", *args])
    out = capsys.readouterr().out
    assert status == expect_status
    script = 'eval "$ANYGATE_EXPORTS" && env -0'
    done = subprocess.run(
        ["bash", "-c", script],
        env={"PATH": "/usr/bin:/bin", "ANYGATE_EXPORTS": out, "ANTHROPIC_API_KEY": "sk-ant-other"},
        capture_output=True,
        text=True,
        check=True,
    )
    variables = dict(item.split("=", 1) for item in done.stdout.split("\0") if "=" in item)
    return out, variables


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return str(path)


def test_the_example_config_loads_and_maps_every_claude_code_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-upstream")
    monkeypatch.setenv("ANYGATE_MASTER_KEY", "sk-master")
    config = load_config(EXAMPLE)
    names = ModelNames(config.deployments, dict(config.router.model_group_alias))
    expected = {
        "claude-opus-5-5": "gpt-4.1",
        "claude-sonnet-5-5": "gpt-4.1",
        "claude-fable-5-2": "gpt-4.1",
        "claude-haiku-5-5": "gpt-4.1-mini",
        "claude-sonnet-4-5-20250929": "gpt-4.1",
        "claude-opus-4-1-20250805": "gpt-4.1",
        "claude-haiku-4-5-20251001": "gpt-4.1-mini",
        "claude-3-5-haiku-20241022": "gpt-4.1-mini",
        "claude-3-7-sonnet-latest": "gpt-4.1",
    }
    for requested, upstream in expected.items():
        deployment = names.deployments(requested)[0]
        assert (deployment.provider, deployment.upstream_model) == ("openai", upstream), requested
        assert deployment.api_key == "sk-upstream"
        assert deployment.model_info["max_input_tokens"] > 0
        assert deployment.model_info["max_output_tokens"] > 0
    assert config.general.master_key == "sk-master"
    listed = names.listed_names()
    assert listed == ["claude-opus-5-5", "claude-sonnet-5-5", "claude-haiku-5-5", "gpt-5-responses"]
    responses = names.deployments("gpt-5-responses")[0]
    assert (responses.provider, responses.upstream_model) == ("openai/responses", "gpt-5")
    for name in listed:
        assert names.deployments(name)[0].model_info["display_name"]


def test_example_exports_refer_to_the_master_key_without_printing_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # the user's shell need not hold upstream keys
    monkeypatch.setenv("ANYGATE_MASTER_KEY", "sk-master-secret")

    out, variables = exports(capsys, "--config", str(EXAMPLE), "--host", "0.0.0.0", "--port", "8080")

    assert "sk-master-secret" not in out
    assert 'export ANTHROPIC_AUTH_TOKEN="$ANYGATE_MASTER_KEY"' in out
    assert variables["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:8080"
    assert "ANTHROPIC_API_KEY" not in variables
    assert variables["ANTHROPIC_MODEL"] == "claude-opus-5-5"
    assert variables["ANTHROPIC_DEFAULT_OPUS_MODEL"] == "claude-opus-5-5"
    assert variables["ANTHROPIC_DEFAULT_SONNET_MODEL"] == "claude-sonnet-5-5"
    assert variables["ANTHROPIC_DEFAULT_HAIKU_MODEL"] == "claude-haiku-5-5"
    assert variables["CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY"] == "1"
    assert variables["CLAUDE_CODE_AUTO_COMPACT_WINDOW"] == "1047576"
    assert variables["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] == "32768"
    assert variables["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"


def test_show_key_prints_the_key(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANYGATE_MASTER_KEY", "sk-master 'quoted'")

    _, variables = exports(capsys, "--config", str(EXAMPLE), "--show-key")

    assert variables["ANTHROPIC_AUTH_TOKEN"] == "sk-master 'quoted'"


LITERAL_KEY_CONFIG = """
model_list:
  - model_name: gpt-4o
    litellm_params: {model: openai/gpt-4o, api_key: os.environ/SOME_UPSTREAM_KEY}
    model_info: {max_input_tokens: 128000, max_output_tokens: 16384}
  - model_name: qwen-haiku-class
    litellm_params: {model: hosted_vllm/Qwen/Qwen3-8B, api_base: "http://localhost:8000/v1"}
    model_info: {max_input_tokens: 32768, max_output_tokens: 8192}
general_settings:
  master_key: sk-literal-secret
"""


def test_a_literal_master_key_is_only_referred_to(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ANYGATE_MASTER_KEY", raising=False)
    monkeypatch.delenv("SOME_UPSTREAM_KEY", raising=False)
    path = write(tmp_path, LITERAL_KEY_CONFIG)

    assert cli.main(["claude-code-env", "--config", path]) == 0
    out = capsys.readouterr().out

    assert "sk-literal-secret" not in out
    done = subprocess.run(
        ["bash", "-c", 'eval "$ANYGATE_EXPORTS"'],
        env={"PATH": "/usr/bin:/bin", "ANYGATE_EXPORTS": out},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "set ANYGATE_MASTER_KEY to general_settings.master_key of" in done.stderr


def test_non_claude_names_are_chosen_by_family_and_limits_come_from_model_info(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ANYGATE_MASTER_KEY", raising=False)
    path = write(tmp_path, LITERAL_KEY_CONFIG)

    _, variables = exports(capsys, "--config", path, "--show-key", "--port", "4100")

    assert variables["ANTHROPIC_AUTH_TOKEN"] == "sk-literal-secret"
    assert variables["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:4100"
    assert variables["ANTHROPIC_MODEL"] == "gpt-4o"
    assert variables["ANTHROPIC_DEFAULT_OPUS_MODEL"] == "gpt-4o"
    assert variables["ANTHROPIC_DEFAULT_SONNET_MODEL"] == "gpt-4o"
    assert variables["ANTHROPIC_DEFAULT_HAIKU_MODEL"] == "qwen-haiku-class"
    assert variables["CLAUDE_CODE_AUTO_COMPACT_WINDOW"] == "128000"
    assert variables["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] == "8192"


def test_a_gateway_without_master_key_gets_a_placeholder_token(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ANYGATE_MASTER_KEY", raising=False)
    path = write(tmp_path, "model_list:\n  - model_name: claude-*\n    litellm_params: {model: mock/*}\n")

    _, variables = exports(capsys, "--config", path, "--host", "::1")

    assert variables["ANTHROPIC_AUTH_TOKEN"] == "anygate-no-master-key"
    assert variables["ANTHROPIC_BASE_URL"] == "http://[::1]:4000"
    assert variables["ANTHROPIC_MODEL"] == "claude-opus-5-5"
    assert variables["ANTHROPIC_DEFAULT_HAIKU_MODEL"] == "claude-haiku-5-5"
    assert "CLAUDE_CODE_AUTO_COMPACT_WINDOW" not in variables


def test_a_broken_config_is_reported(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write(
        tmp_path, "model_list:\n  - model_name: x\n    litellm_params: {model: openai/x, colour: red}\n"
    )

    assert cli.main(["claude-code-env", "--config", path]) == 2

    assert "unknown key 'colour'" in capsys.readouterr().err


def test_the_server_command_line_is_unchanged() -> None:
    args = cli.build_parser().parse_args(["--config", "x.yaml", "--port", "4001"])
    assert (args.config, args.port, args.host) == ("x.yaml", 4001, "127.0.0.1")
