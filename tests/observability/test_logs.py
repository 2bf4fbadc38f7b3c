"""JSON logs: one record per request with the spend record's fields, never a key, never a prompt unless
``log_prompts`` asks; and the real CLI with ``--log-format json``."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from anygate.config import parse_config
from anygate.observability.logs import REQUEST_LOGGER, JsonFormatter, RequestLogHook
from tests.conftest import MASTER_KEY, UPSTREAM_KEY
from tests.fakes.gateway_server import GatewayServer
from tests.fakes.upstream import FakeUpstream, Json
from tests.observability.support import BODY, CHAT, HEADERS, completion, config, post
from tests.rawhttp import send
from tests.test_cli import RunningGateway

SPEND_LOG_FIELDS = {
    "request_id", "call_type", "api_key", "spend", "total_tokens", "prompt_tokens", "completion_tokens",
    "startTime", "endTime", "completionStartTime", "model", "model_id", "model_group", "api_base", "user",
    "team_id", "end_user", "custom_llm_provider", "request_duration_ms", "status", "metadata",
}  # fmt: skip


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(REQUEST_LOGGER)
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(level)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.parametrize("include_prompt", [False, True])
def test_one_json_record_per_request_with_the_spend_fields(
    upstream: FakeUpstream, captured: io.StringIO, include_prompt: bool
) -> None:
    parsed = parse_config(config(upstream))
    hook = RequestLogHook(parsed.deployments, include_prompt=include_prompt)
    server = GatewayServer(parsed, hooks=[hook]).start()
    try:
        upstream.script(CHAT, Json(completion(10, 5, cached=4)))
        body = {**BODY, "metadata": {"user_id": "end-user-7"}}
        assert post(server.url, body).status == 200
        assert send(server.url, "POST", "/v1/messages", {"model": "gpt"}, HEADERS).status == 400
    finally:
        server.stop()
    ok, refused = _lines(captured)
    assert SPEND_LOG_FIELDS <= set(ok)
    assert ok["logger"] == REQUEST_LOGGER and ok["level"] == "info"
    assert ok["status"] == "success" and ok["model_group"] == "gpt" and ok["model_id"] == "gpt-a"
    assert ok["model"] == "gpt-4o" and ok["custom_llm_provider"] == "openai"
    assert (ok["prompt_tokens"], ok["completion_tokens"], ok["total_tokens"]) == (10, 5, 15)
    assert ok["spend"] == pytest.approx(6 * 0.001 + 4 * 0.0001 + 5 * 0.002)
    assert ok["end_user"] == "end-user-7"
    metadata = ok["metadata"]
    assert isinstance(metadata, dict)
    assert metadata["usage"] == {
        "input_tokens": 6, "output_tokens": 5, "cache_read_input_tokens": 4, "cache_creation_input_tokens": 0,
    }  # fmt: skip
    assert metadata["status_code"] == 200 and metadata["attempts"] == 1
    assert metadata["stop_reason"] == "end_turn"
    assert refused["status"] == "failure"
    assert isinstance(refused["metadata"], dict) and refused["metadata"]["status_code"] == 400
    assert refused["metadata"]["stop_reason"] is None
    text = captured.getvalue()
    assert MASTER_KEY not in text and UPSTREAM_KEY not in text
    assert ("hello" in text) is include_prompt
    if include_prompt:
        assert ok["messages"] == {"system": None, "messages": BODY["messages"]}


def test_the_cli_writes_json_lines_with_one_record_per_request(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    config_file = tmp_path / "config.yaml"
    config_file.write_text(config(upstream))
    gateway = RunningGateway("--config", str(config_file), "--log-format", "json", "--log-level", "info")
    try:
        upstream.script(CHAT, Json(completion(10, 5)))
        for _ in range(3):
            assert post(gateway.url, BODY).status == 200
    finally:
        gateway.process.terminate()
        _, stderr = gateway.process.communicate(timeout=20)
    lines = [orjson.loads(line) for line in stderr.splitlines() if line.strip()]  # every line is JSON
    requests = [line for line in lines if line.get("logger") == REQUEST_LOGGER]
    assert len(requests) == 3
    assert all(line["status"] == "success" and line["completion_tokens"] == 5 for line in requests)
    assert MASTER_KEY not in stderr and UPSTREAM_KEY not in stderr
