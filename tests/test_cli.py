"""The ``anygate`` command as users run it: a real process, real port, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest

from anygate import __version__
from tests.conftest import RECORDINGS, UPSTREAM_KEY
from tests.fakes.gateway_server import free_port
from tests.fakes.upstream import FakeUpstream, Hang, Sse
from tests.rawhttp import RawResponse, assert_error, send

ANYGATE = str(Path(sys.executable).parent / "anygate")
README_KEY = "sk-1234"


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ANYGATE_MASTER_KEY"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ANYGATE, *args], capture_output=True, text=True, timeout=30, env=env or _environment(), check=False
    )


class RunningGateway:
    """``anygate`` started on a free port; stopped with SIGTERM (then killed if it hangs)."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [ANYGATE, "--port", str(self.port), "--log-level", "warning", *args],
            env={**_environment(), **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                if send(self.url, "GET", "/health", timeout=1).status == 200:
                    return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                _, stderr = self.process.communicate(timeout=5)
                raise RuntimeError(f"anygate did not start: {stderr}")
            time.sleep(0.05)

    def terminate(self, timeout: float = 15) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.assert_clean_exit(timeout)

    def assert_clean_exit(self, timeout: float) -> None:
        """Exited by itself after its graceful shutdown: uvicorn re-raises the SIGTERM it handled, so
        the status is "terminated by SIGTERM" (or 0), never a crash or a hang."""
        returncode = self.process.wait(timeout)
        _, stderr = self.process.communicate(timeout=5)
        assert returncode in (0, -signal.SIGTERM), (returncode, stderr)
        assert "Traceback" not in stderr, stderr

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate(timeout=5)


@pytest.fixture
def started() -> Iterator[list[RunningGateway]]:
    gateways: list[RunningGateway] = []
    yield gateways
    for gateway in gateways:
        gateway.kill()


def test_help_explains_the_options() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for option in ("--config", "--host", "--port", "--workers", "--version", "master key", "mock"):
        assert option in result.stdout


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert __version__ in result.stdout


def test_public_bind_without_master_key_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "open.yaml"
    config.write_text("model_list:\n  - model_name: m\n    litellm_params: {model: mock/m}\n")
    result = run_cli("--config", str(config), "--host", "0.0.0.0", "--port", str(free_port()))
    assert result.returncode != 0
    assert "0.0.0.0" in result.stderr and "master key" in result.stderr
    assert "ANYGATE_MASTER_KEY" in result.stderr


@pytest.mark.parametrize("key", ["a", "sk-1234", "aaaaaaaaaaaaaaaaaaaa"])
def test_public_bind_with_a_weak_master_key_is_refused(tmp_path: Path, key: str) -> None:
    config = tmp_path / "weak.yaml"
    config.write_text(f"model_list: []\ngeneral_settings:\n  master_key: {key}\n")
    result = run_cli("--config", str(config), "--host", "0.0.0.0", "--port", str(free_port()))
    assert result.returncode == 2
    assert "weak master key" in result.stderr and "openssl rand" in result.stderr


def test_config_error_stops_start_up_with_the_message(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("model_list:\n  - model_name: m\n    litellm_params: {model: mock/m, colour: blue}\n")
    result = run_cli("--config", str(config), "--port", str(free_port()))
    assert result.returncode != 0
    assert "'colour'" in result.stderr and f"{config}:3:" in result.stderr


def test_missing_config_file_is_reported(tmp_path: Path) -> None:
    result = run_cli("--config", str(tmp_path / "nope.yaml"), "--port", str(free_port()))
    assert result.returncode != 0 and "nope.yaml" in result.stderr


def test_built_in_config_answers_the_readme_example(started: list[RunningGateway]) -> None:
    gateway = RunningGateway()
    started.append(gateway)
    client = anthropic.Anthropic(base_url=f"http://0.0.0.0:{gateway.port}", api_key=README_KEY, max_retries=0)
    with client:
        message = client.messages.create(
            model="anthropic-claude",
            max_tokens=100,
            messages=[{"role": "user", "content": "Hello, can you tell me a short joke?"}],
        )
        assert message.content[0].text.startswith("Why")  # type: ignore[union-attr]
        with client.messages.stream(
            model="anthropic-claude", max_tokens=100, messages=[{"role": "user", "content": "Hello!"}]
        ) as stream:
            assert "".join(stream.text_stream)
        curl_like = send(
            f"http://0.0.0.0:{gateway.port}",
            "POST",
            "/v1/messages",
            {"model": "anthropic-claude", "max_tokens": 100, "messages": [{"role": "user", "content": "Hi"}]},
            {"x-api-key": README_KEY, "anthropic-version": "2023-06-01"},
        )
        assert curl_like.status == 200 and curl_like.json()["type"] == "message"
    gateway.terminate()


GRACEFUL_SIGNALS = pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["TERM", "HUP"])
"""SIGHUP (the terminal went away) shuts down as gracefully as SIGTERM: it used to kill the process."""


@GRACEFUL_SIGNALS
def test_sigterm_ends_an_open_stream_with_an_error_event_and_exits(
    started: list[RunningGateway], upstream: FakeUpstream, tmp_path: Path, signum: signal.Signals
) -> None:
    recorded = (RECORDINGS / "anthropic/tool_use_response.sse").read_bytes()
    frames = [frame + b"\n\n" for frame in recorded.split(b"\n\n") if frame]
    upstream.script("/v1/messages", Sse(frames, pause=0.5))  # ~7 s: far longer than the grace period
    config = tmp_path / "slow.yaml"
    config.write_text(
        f"model_list:\n  - model_name: slow\n    litellm_params:\n      model: anthropic/claude-x\n"
        f"      api_base: {upstream.url}\n      api_key: {UPSTREAM_KEY}\n"
        f"general_settings:\n  master_key: {README_KEY}\n"
    )
    gateway = RunningGateway("--config", str(config), "--graceful-timeout", "1")
    started.append(gateway)
    client = anthropic.Anthropic(base_url=gateway.url, api_key=README_KEY, max_retries=0)
    seen: list[str] = []
    began = time.monotonic()
    with client, pytest.raises(anthropic.APIStatusError) as caught:
        with client.messages.stream(
            model="slow", max_tokens=100, messages=[{"role": "user", "content": "x"}]
        ) as s:
            for event in s:
                seen.append(event.type)
                if len(seen) == 2:
                    gateway.process.send_signal(signum)
    assert "message_stop" not in seen
    assert caught.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    gateway.assert_clean_exit(10)
    assert time.monotonic() - began < 6


@GRACEFUL_SIGNALS
def test_sigterm_answers_a_request_still_waiting_with_529_and_exits(
    started: list[RunningGateway], upstream: FakeUpstream, tmp_path: Path, signum: signal.Signals
) -> None:
    upstream.script("/v1/messages", Hang(seconds=20))
    config = tmp_path / "hanging.yaml"
    config.write_text(
        f"model_list:\n  - model_name: hangs\n    litellm_params:\n      model: anthropic/claude-x\n"
        f"      api_base: {upstream.url}\n      api_key: {UPSTREAM_KEY}\n"
        f"general_settings:\n  master_key: {README_KEY}\n"
    )
    gateway = RunningGateway("--config", str(config), "--graceful-timeout", "1")
    started.append(gateway)
    outcome: list[RawResponse] = []
    body = {"model": "hangs", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    waiting = threading.Thread(
        target=lambda: outcome.append(
            send(gateway.url, "POST", "/v1/messages", body, {"x-api-key": README_KEY})
        )
    )
    waiting.start()
    deadline = time.monotonic() + 5
    while not upstream.received and time.monotonic() < deadline:
        time.sleep(0.02)
    gateway.process.send_signal(signum)
    waiting.join(10)
    assert_error(outcome[0], 529, "overloaded_error", mentions="shutting down")
    gateway.assert_clean_exit(10)
