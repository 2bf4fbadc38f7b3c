"""Anthropic passthrough through the proxy: what the client gets and what the upstream received.

The upstream is a fake Anthropic API on 127.0.0.1; one gateway and one fake serve the whole module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import orjson
import pytest

from tests.conftest import MASTER_KEY, RECORDINGS, UPSTREAM_KEY, sdk_client
from tests.fakes.gateway_server import GatewayServer
from tests.fakes.upstream import FakeUpstream, Json, Sse
from tests.rawhttp import assert_error, send

UPSTREAM_MODEL = "claude-upstream-1"
MESSAGE = {
    "id": "msg_01upstream",
    "type": "message",
    "role": "assistant",
    "model": UPSTREAM_MODEL,
    "content": [{"type": "text", "text": "Hi from upstream"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 12, "output_tokens": 4},
}
MESSAGE_BYTES = orjson.dumps(MESSAGE)
ANSWERED_BYTES = orjson.dumps({**MESSAGE, "model": "claude-up"})
"""The answer as the client gets it: ``model`` is the name it asked for, not the upstream's id."""
RECORDED_STREAMS = sorted(RECORDINGS.glob("anthropic/*.sse"))
HELLO = [{"role": "user", "content": "Hello"}]
CLIENT_HEADERS = {
    "x-api-key": MASTER_KEY,
    "anthropic-version": "2023-06-01",
    "anthropic-beta": "context-management-2025-06-27, interleaved-thinking-2025-05-14",
    "x-custom-client-header": "private",
    "cookie": "session=private",
    "user-agent": "private-client/1.0",
    "x-stainless-retry-count": "0",
}


@pytest.fixture(scope="module")
def gateway(shared_upstream: FakeUpstream) -> Iterator[GatewayServer]:
    server = GatewayServer(
        f"""
model_list:
  - model_name: claude-up
    litellm_params:
      model: anthropic/{UPSTREAM_MODEL}
      api_base: {shared_upstream.url}
      api_key: {UPSTREAM_KEY}
general_settings:
  master_key: {MASTER_KEY}
router_settings:
  num_retries: 0
"""
    ).start()
    yield server
    server.stop()


@pytest.fixture
def upstream(shared_upstream: FakeUpstream) -> FakeUpstream:
    shared_upstream.reset()
    return shared_upstream


@pytest.fixture
def client(gateway: GatewayServer) -> anthropic.Anthropic:
    return sdk_client(gateway)


def _only_request(upstream: FakeUpstream, path: str = "/v1/messages") -> dict[str, str]:
    assert [r.path for r in upstream.received] == [path]
    return upstream.received[0].headers


def _assert_forwarded_headers_only(headers: dict[str, str]) -> None:
    assert headers["x-api-key"] == UPSTREAM_KEY
    assert headers["anthropic-version"] == CLIENT_HEADERS["anthropic-version"]
    assert headers["anthropic-beta"] == CLIENT_HEADERS["anthropic-beta"]
    for dropped in ("authorization", "x-custom-client-header", "cookie", "x-stainless-retry-count"):
        assert dropped not in headers
    assert headers.get("user-agent") != CLIENT_HEADERS["user-agent"]
    assert MASTER_KEY not in orjson.dumps(headers).decode()


# --- requests as forwarded --------------------------------------------------------------------------


def test_body_is_forwarded_with_only_the_model_rewritten(
    gateway: GatewayServer, upstream: FakeUpstream
) -> None:
    upstream.script("/v1/messages", Json(MESSAGE))
    body = {
        "model": "claude-up",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "future_block"}]}],
        "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]},
        "some_future_field": {"nested": [1, 2, 3]},
        "metadata": {"user_id": "u-1"},
    }
    response = send(gateway.url, "POST", "/v1/messages", body, CLIENT_HEADERS)
    assert response.status == 200
    assert response.body == ANSWERED_BYTES
    assert response.headers["request-id"].startswith("req_")
    _assert_forwarded_headers_only(_only_request(upstream))
    assert upstream.received[0].json() == {**body, "model": UPSTREAM_MODEL}


def test_bearer_client_key_is_not_forwarded(gateway: GatewayServer, upstream: FakeUpstream) -> None:
    upstream.script("/v1/messages", Json(MESSAGE))
    headers = {"authorization": f"Bearer {MASTER_KEY}", "anthropic-version": "2023-06-01"}
    body = {"model": "claude-up", "max_tokens": 5, "messages": HELLO}
    assert send(gateway.url, "POST", "/v1/messages", body, headers).status == 200
    received = _only_request(upstream)
    assert "authorization" not in received
    assert received["x-api-key"] == UPSTREAM_KEY
    assert "anthropic-beta" not in received


def test_sdk_client_with_betas(client: anthropic.Anthropic, upstream: FakeUpstream) -> None:
    upstream.script("/v1/messages", Json(MESSAGE))
    message = client.beta.messages.create(
        model="claude-up",
        max_tokens=5,
        messages=HELLO,
        betas=["files-api-2025-04-14", "token-efficient-tools"],
    )  # the official client sends ?beta=true and the anthropic-beta header
    assert message.content[0].text == "Hi from upstream"  # type: ignore[union-attr]
    received = _only_request(upstream)
    assert received["anthropic-beta"] == "files-api-2025-04-14,token-efficient-tools"
    assert received["x-api-key"] == UPSTREAM_KEY
    assert not any(name.startswith("x-stainless") for name in received)


def test_count_tokens_is_forwarded(client: anthropic.Anthropic, upstream: FakeUpstream) -> None:
    upstream.script("/v1/messages/count_tokens", Json({"input_tokens": 4242}))
    counted = client.messages.count_tokens(model="claude-up", messages=HELLO, extra_body={"new_field": True})
    assert counted.input_tokens == 4242
    headers = _only_request(upstream, "/v1/messages/count_tokens")
    assert headers["x-api-key"] == UPSTREAM_KEY
    assert upstream.received[0].json() == {"model": UPSTREAM_MODEL, "messages": HELLO, "new_field": True}


def test_count_tokens_upstream_error_keeps_its_status(gateway: GatewayServer, upstream: FakeUpstream) -> None:
    upstream.script(
        "/v1/messages/count_tokens",
        Json(
            {"type": "error", "error": {"type": "invalid_request_error", "message": "bad tool"}}, status=400
        ),
    )
    body = {"model": "claude-up", "messages": HELLO}
    response = send(gateway.url, "POST", "/v1/messages/count_tokens?beta=true", body, CLIENT_HEADERS)
    assert_error(response, 400, "invalid_request_error", mentions="bad tool")


def test_gateway_signed_thinking_is_dropped_and_genuine_kept(
    client: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    upstream.script("/v1/messages", Json(MESSAGE))
    genuine = {"type": "thinking", "thinking": "real thought", "signature": "EqQBCkgIARABGAIiQGenuineSig=="}
    ours = {"type": "thinking", "thinking": "translated thought", "signature": "anygate.v1.abcDEF123"}
    redacted = {"type": "redacted_thinking", "data": "opaque"}
    messages = [
        {"role": "user", "content": "First"},
        {"role": "assistant", "content": [ours, {"type": "text", "text": "One"}]},
        {"role": "user", "content": "Second"},
        {"role": "assistant", "content": [genuine, redacted, {"type": "text", "text": "Two"}]},
        {"role": "user", "content": "Third"},
        {"role": "assistant", "content": [ours]},
        {"role": "user", "content": "Fourth"},
    ]
    client.messages.create(model="claude-up", max_tokens=5, messages=messages)  # type: ignore[arg-type]
    sent = upstream.received[0].json()["messages"]
    assert sent[1]["content"] == [{"type": "text", "text": "One"}]
    assert sent[3]["content"] == [genuine, redacted, {"type": "text", "text": "Two"}]
    assert sent[0] == messages[0] and sent[2] == messages[2] and sent[4] == messages[4]
    # An assistant turn that held only our thinking is dropped (Anthropic joins the user turns around it).
    assert sent[5:] == [messages[6]]


# --- streams ------------------------------------------------------------------------------------------


def _splits(data: bytes, how: str) -> list[bytes]:
    if how == "whole":
        return [data]
    if how == "lines":
        return data.splitlines(keepends=True)
    size = {"7-bytes": 7, "1-byte-then-big": 0}[how]
    if size:
        return [data[i : i + size] for i in range(0, len(data), size)]
    return [data[:1], data[1:2], data[2:]]


def with_requested_model(stream: bytes, model: str = "claude-up") -> bytes:
    """A recorded stream as the client gets it: the ``message_start`` frame names the requested model;
    every other byte is the upstream's."""
    begin = stream.index(b"event: message_start")
    end = stream.index(b"\n\n", begin) + 2
    data = orjson.loads(stream[begin:end].split(b"data: ", 1)[1])
    data["message"]["model"] = model
    return stream[:begin] + b"event: message_start\ndata: " + orjson.dumps(data) + b"\n\n" + stream[end:]


@pytest.mark.parametrize("how", ["whole", "lines", "7-bytes", "1-byte-then-big"])
@pytest.mark.parametrize("recording", RECORDED_STREAMS, ids=lambda p: p.stem)
def test_stream_is_relayed_byte_for_byte(
    gateway: GatewayServer, upstream: FakeUpstream, recording: Path, how: str
) -> None:
    recorded = recording.read_bytes()
    upstream.script("/v1/messages", Sse(_splits(recorded, how)))
    body = {"model": "claude-up", "max_tokens": 50, "messages": HELLO, "stream": True}
    response = send(gateway.url, "POST", "/v1/messages?beta=true", body, CLIENT_HEADERS)
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["request-id"].startswith("req_")
    assert response.body == with_requested_model(recorded)
    _assert_forwarded_headers_only(_only_request(upstream))
    assert upstream.received[0].json() == {**body, "model": UPSTREAM_MODEL}


def test_sdk_streams_a_recording(client: anthropic.Anthropic, upstream: FakeUpstream) -> None:
    upstream.script("/v1/messages", Sse([(RECORDINGS / "anthropic/basic_response.sse").read_bytes()]))
    with client.messages.stream(model="claude-up", max_tokens=50, messages=HELLO) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(texts) == "Hello there!"
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 6


def _frames_before_message_stop() -> list[bytes]:
    recorded = (RECORDINGS / "anthropic/tool_use_response.sse").read_bytes()
    return recorded[: recorded.index(b"event: message_delta")].split(b"\n\n")[:-1]


@pytest.mark.parametrize("cut", [True, False], ids=["connection-cut", "clean-end"])
def test_stream_ending_before_message_stop_ends_with_an_error_event(
    gateway: GatewayServer, upstream: FakeUpstream, cut: bool
) -> None:
    frames = [frame + b"\n\n" for frame in _frames_before_message_stop()]
    upstream.script("/v1/messages", Sse(frames, cut=cut))
    body = {"model": "claude-up", "max_tokens": 50, "messages": HELLO, "stream": True}
    response = send(gateway.url, "POST", "/v1/messages", body, CLIENT_HEADERS)
    assert response.status == 200
    relayed, _, last = response.body.rpartition(b"event: error\n")
    assert relayed == with_requested_model(b"".join(frames))
    assert last.startswith(b"data: ") and last.endswith(b"\n\n")
    error = orjson.loads(last[len(b"data: ") :])
    assert error["type"] == "error" and error["error"]["type"] == "api_error"
    assert error["request_id"] == response.headers["request-id"]


def test_sdk_raises_on_a_cut_stream(client: anthropic.Anthropic, upstream: FakeUpstream) -> None:
    upstream.script(
        "/v1/messages", Sse([frame + b"\n\n" for frame in _frames_before_message_stop()], cut=True)
    )
    with (
        pytest.raises(anthropic.APIStatusError),
        client.messages.stream(model="claude-up", max_tokens=50, messages=HELLO) as stream,
    ):
        for _ in stream:
            pass


# --- upstream errors ------------------------------------------------------------------------------


def _anthropic_error(error_type: str, message: str) -> dict[str, object]:
    return {"type": "error", "error": {"type": error_type, "message": message}, "request_id": "req_upstream"}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("status", "error_type", "headers"),
    [
        (429, "rate_limit_error", {"retry-after": "7"}),
        (529, "overloaded_error", {}),
        (400, "invalid_request_error", {}),
        (404, "not_found_error", {}),
        (413, "request_too_large", {}),
        (500, "api_error", {}),
    ],
)
def test_upstream_errors_keep_status_and_body(
    gateway: GatewayServer,
    upstream: FakeUpstream,
    status: int,
    error_type: str,
    headers: dict[str, str],
    stream: bool,
) -> None:
    upstream.script(
        "/v1/messages", Json(_anthropic_error(error_type, "upstream says no"), status=status, headers=headers)
    )
    body = {"model": "claude-up", "max_tokens": 5, "messages": HELLO, "stream": stream}
    response = send(gateway.url, "POST", "/v1/messages", body, CLIENT_HEADERS)
    assert_error(response, status, error_type, mentions="upstream says no")
    if "retry-after" in headers:
        assert response.headers["retry-after"] == "7"


def test_rate_limit_reaches_the_sdk_as_its_exception(
    client: anthropic.Anthropic, upstream: FakeUpstream
) -> None:
    upstream.script(
        "/v1/messages",
        Json(_anthropic_error("rate_limit_error", "slow down"), status=429, headers={"retry-after": "3"}),
    )
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(model="claude-up", max_tokens=5, messages=HELLO)
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "3"
    assert caught.value.body["error"] == {"type": "rate_limit_error", "message": "slow down"}  # type: ignore[index]
    with pytest.raises(anthropic.OverloadedError):
        upstream.script("/v1/messages", Json(_anthropic_error("overloaded_error", "busy"), status=529))
        client.messages.create(model="claude-up", max_tokens=5, messages=HELLO)


@pytest.mark.parametrize("status", [401, 403])
def test_upstream_rejecting_the_gateway_key_is_a_500_without_the_key(
    gateway: GatewayServer, upstream: FakeUpstream, status: int
) -> None:
    upstream.script(
        "/v1/messages",
        Json(_anthropic_error("authentication_error", f"invalid x-api-key {UPSTREAM_KEY}"), status=status),
    )
    body = {"model": "claude-up", "max_tokens": 5, "messages": HELLO}
    response = send(gateway.url, "POST", "/v1/messages", body, CLIENT_HEADERS)
    message = assert_error(response, 500, "api_error")
    assert "api_key" in message
    assert UPSTREAM_KEY.encode() not in response.body
    assert UPSTREAM_KEY not in str(response.headers)


def test_non_json_upstream_error_still_gets_the_envelope(
    gateway: GatewayServer, upstream: FakeUpstream
) -> None:
    upstream.script("/v1/messages", Json(b"<html>Bad Gateway</html>", status=502))
    body = {"model": "claude-up", "max_tokens": 5, "messages": HELLO}
    response = send(gateway.url, "POST", "/v1/messages", body, CLIENT_HEADERS)
    assert_error(response, 502, "api_error")
