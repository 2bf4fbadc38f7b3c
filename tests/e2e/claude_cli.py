"""Running the real Claude Code CLI non-interactively, isolated from the machine it runs on.

Each run gets an empty ``HOME`` and its own working directory, a minimal environment (nothing from the
developer's shell leaks in: no real keys, no settings), stdin closed, and nonessential traffic off, so
the gateway under test is the only thing it talks to. ``tests/e2e/install_claude_code.sh`` puts the
pinned binary where :data:`CLAUDE_BINARY` points.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

REPO: Final = Path(__file__).resolve().parents[2]
CLAUDE_BINARY: Final = Path(
    os.environ.get("ANYGATE_CLAUDE_BINARY") or REPO / ".cache" / "claude-code" / "claude"
)
CLAUDE_VERSION: Final = "2.1.328"
RUN_TIMEOUT: Final = 60.0

BASE_ENVIRONMENT: Final = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "TERM": "dumb",
    "LANG": "C.UTF-8",
    # Only the gateway: no telemetry, update checks or connectivity probes.
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    # A failed request fails the run at once unless a test asks for retries.
    "CLAUDE_CODE_MAX_RETRIES": "0",
}


def unavailable_reason() -> str | None:
    """Why the CLI cannot be run here, or None when it can."""
    if not CLAUDE_BINARY.exists():
        return f"Claude Code is not installed at {CLAUDE_BINARY}: run tests/e2e/install_claude_code.sh"
    try:
        done = subprocess.run(
            [str(CLAUDE_BINARY), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError as exc:
        return f"Claude Code at {CLAUDE_BINARY} cannot be executed: {exc}"
    if done.returncode != 0 or not done.stdout.startswith(CLAUDE_VERSION):
        return f"Claude Code at {CLAUDE_BINARY} does not run as {CLAUDE_VERSION}: {done.stdout}{done.stderr}"
    return None


@dataclass
class ClaudeRun:
    """The outcome of one ``claude -p`` run."""

    returncode: int
    stdout: str
    stderr: str
    home: Path
    workdir: Path

    @property
    def output(self) -> dict[str, Any]:
        """The ``--output-format json`` result object (``result``, ``is_error``, ``num_turns``, ...)."""
        try:
            parsed: dict[str, Any] = json.loads(self.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            raise AssertionError(f"claude printed no JSON result:\n{self}") from None
        return parsed

    @property
    def result(self) -> str:
        return str(self.output["result"])

    def transcript(self) -> list[dict[str, Any]]:
        """The session's conversation as Claude Code stored it (``~/.claude/projects/*/*.jsonl``)."""
        entries: list[dict[str, Any]] = []
        for file in sorted((self.home / ".claude" / "projects").glob("*/*.jsonl")):
            entries.extend(json.loads(line) for line in file.read_text().splitlines() if line.strip())
        return entries

    def assert_succeeded(self) -> dict[str, Any]:
        """The result object, after checking the run ended well and nothing was denied."""
        output = self.output
        assert self.returncode == 0 and output["is_error"] is False, str(self)
        assert output["permission_denials"] == [], str(self)
        return output

    def __str__(self) -> str:
        return f"claude exited {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


class ClaudeCode:
    """Runs ``claude -p`` against one gateway, in ``workdir``, with ``home`` as its home directory."""

    def __init__(self, base_url: str, auth_token: str, workdir: Path, home: Path) -> None:
        self.base_url = base_url
        self.auth_token = auth_token
        self.workdir = workdir
        self.home = home
        workdir.mkdir(parents=True, exist_ok=True)
        home.mkdir(parents=True, exist_ok=True)

    def run(
        self,
        prompt: str,
        *args: str,
        env: dict[str, str] | None = None,
        api_key_header: bool = False,
        timeout: float = RUN_TIMEOUT,
    ) -> ClaudeRun:
        """``claude -p PROMPT --output-format json ARGS...``; ``env`` adds or overrides variables.

        The key goes in ``ANTHROPIC_AUTH_TOKEN`` (sent as ``Authorization: Bearer``), or with
        ``api_key_header`` in ``ANTHROPIC_API_KEY`` (sent as ``x-api-key``).
        """
        key_variable = "ANTHROPIC_API_KEY" if api_key_header else "ANTHROPIC_AUTH_TOKEN"
        environment = {
            **BASE_ENVIRONMENT,
            "HOME": str(self.home),
            "ANTHROPIC_BASE_URL": self.base_url,
            key_variable: self.auth_token,
            **(env or {}),
        }
        command = [str(CLAUDE_BINARY), "-p", prompt, "--output-format", "json", *args]
        done = subprocess.run(
            command,
            cwd=self.workdir,
            env=environment,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return ClaudeRun(done.returncode, done.stdout, done.stderr, self.home, self.workdir)


def claude_code_env_exports(config: Path, port: int, master_key: str) -> dict[str, str]:
    """The variables ``eval "$(anygate claude-code-env --config CONFIG --port PORT)"`` sets in a shell
    where ``ANYGATE_MASTER_KEY`` holds the master key, as the docs tell users to run it."""
    printed = subprocess.run(
        [sys.executable, "-m", "anygate", "claude-code-env", "--config", str(config), "--port", str(port)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "ANYGATE_MASTER_KEY": master_key},
    ).stdout
    shell = subprocess.run(
        ["bash", "-c", 'eval "$EXPORTS" && env -0'],
        env={"PATH": "/usr/bin:/bin", "EXPORTS": printed, "ANYGATE_MASTER_KEY": master_key},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    variables = dict(item.split("=", 1) for item in shell.split("\0") if "=" in item)
    return {
        name: value for name, value in variables.items() if name.startswith(("ANTHROPIC_", "CLAUDE_CODE_"))
    }
