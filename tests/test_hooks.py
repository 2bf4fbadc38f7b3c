"""The request lifecycle as hooks see it: authenticate → admit → each attempt → completed, through the
proxy (the official SDK against a real server and a fake upstream on loopback) and in-process."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator, Mapping

import anthropic
import orjson
import pytest

import anygate
from anygate.auth import presented_keys
from anygate.hooks import MAX_TOKENS, AttemptRecord, Hook, Hooks, Principal, RequestRecord, Usage, token_count
from anygate.protocol.errors import GatewayError
from tests.conftest import MASTER_KEY, UPSTREAM_KEY, sdk_client
from tests.fakes.anthropic_answers import error, message, stream_frames
from tests.fakes.gateway_server import GatewayServer
from tests.fakes.upstream import FakeUpstream, Json, Sse
from tests.rawhttp import send

HELLO = [{"role": "user", "content": "hello"}]
TEAM_KEY = "sk-team-key-0123456789"


class Recorder(Hook):
    """Records every stage; knows one extra key; refuses requests for the model named ``refused``."""

    def __init__(self) -> None:
        self.stages: list[str] = []
        self.attempts: list[AttemptRecord] = []
        self.completed_records: list[RequestRecord] = []

    async def authenticate(self, headers: Mapping[str, str]) -> Principal | None:
        self.stages.append("authenticate")
        if TEAM_KEY in presented_keys(headers):
            return Principal("virtual_key", key_id="team-key", team_id="t1")
        return None

    async def admit(self, record: RequestRecord) -> None:
        self.stages.append("admit")
        if record.model == "refused":
            raise GatewayError(429, "budget exceeded", headers={"retry-after": "60"})

    def attempt_ended(self, record: RequestRecord, attempt: AttemptRecord) -> None:
        self.stages.append("attempt")
        self.attempts.append(attempt)

    def completed(self, record: RequestRecord) -> None:
        self.stages.append("completed")
        self.completed_records.append(record)

    def wait_completed(self, count: int = 1) -> list[RequestRecord]:
        """Completion of a stream happens after the client read its last byte: wait for it briefly."""
        deadline = time.monotonic() + 5
        while len(self.completed_records) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.completed_records


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream().start()
    yield fake
    fake.stop()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def server(upstream: FakeUpstream, recorder: Recorder) -> Iterator[GatewayServer]:
    config = f"""
model_list:
  - model_name: claude
    litellm_params: {{model: anthropic/claude-up, api_base: "{upstream.url}", api_key: {UPSTREAM_KEY}}}
  - model_name: refused
    litellm_params: {{model: anthropic/claude-up, api_base: "{upstream.url}", api_key: {UPSTREAM_KEY}}}
general_settings:
  master_key: {MASTER_KEY}
router_settings:
  num_retries: 1
"""
    gateway = GatewayServer(config, hooks=[recorder]).start()
    yield gateway
    gateway.stop()


def test_a_json_answer_passes_every_stage_once_with_its_usage(
    server: GatewayServer, upstream: FakeUpstream, recorder: Recorder
) -> None:
    upstream.script("/v1/messages", Json(message("hi")))
    sdk_client(server).messages.create(model="claude", max_tokens=10, messages=HELLO)  # type: ignore[arg-type]
    assert recorder.stages == ["admit", "attempt", "completed"]  # the master key's hook knew the key
    [record] = recorder.completed_records
    assert record.principal.kind == "master" and record.route == "messages" and record.model == "claude"
    assert record.outcome == "ok" and record.status == 200
    assert record.usage == Usage(input_tokens=10, output_tokens=5)
    assert record.stop_reason == "end_turn"
    assert record.deployment_id == "claude#0" and record.provider == "anthropic"
    assert [a.deployment_id for a in record.attempts] == ["claude#0"]
    assert record.latency is not None and record.time_to_first_token is not None


def test_absurd_usage_figures_are_cut_to_a_figure_every_store_can_hold(
    server: GatewayServer, upstream: FakeUpstream, recorder: Recorder
) -> None:
    """A broken upstream's 2**64 - 1 tokens become MAX_TOKENS: such a figure in a spend record would
    fail the database write of every request buffered with it."""
    answer = message("hi")
    answer["usage"] = {"input_tokens": 2**63 - 1, "output_tokens": -5, "cache_read_input_tokens": 7}
    body = orjson.dumps(answer).replace(b"9223372036854775807", b"18446744073709551615")
    upstream.script("/v1/messages", Json(body))
    sdk_client(server).messages.create(model="claude", max_tokens=10, messages=HELLO)  # type: ignore[arg-type]
    [record] = recorder.completed_records
    assert record.usage == Usage(input_tokens=MAX_TOKENS, output_tokens=0, cache_read_input_tokens=7)
    assert token_count(2**53) == MAX_TOKENS == 2**53 - 1 and token_count(True) == 0
    frames = [
        f.replace(b'"output_tokens":5}', b'"output_tokens":18446744073709551615}')
        for f in stream_frames("hi")
    ]
    upstream.script("/v1/messages", Sse(frames))
    with sdk_client(server).messages.stream(model="claude", max_tokens=10, messages=HELLO) as stream:  # type: ignore[arg-type]
        stream.get_final_text()
    streamed = recorder.wait_completed()[-1]
    assert streamed.stream and streamed.usage is not None and streamed.usage.output_tokens == MAX_TOKENS


def test_a_stream_completes_at_its_end_with_usage_and_time_to_first_token(
    server: GatewayServer, upstream: FakeUpstream, recorder: Recorder
) -> None:
    upstream.script("/v1/messages", Sse(stream_frames("hello there"), pause=0.05))
    with sdk_client(server).messages.stream(model="claude", max_tokens=10, messages=HELLO) as stream:  # type: ignore[arg-type]
        assert stream.get_final_text() == "hello there"
    [record] = recorder.wait_completed()
    assert record.outcome == "ok" and record.stream
    assert record.usage == Usage(input_tokens=10, output_tokens=5)
    assert record.stop_reason == "end_turn"  # the passthrough read it from the relayed message_delta
    assert record.first_byte is not None and record.ended is not None
    assert record.time_to_first_token is not None and record.latency is not None
    assert record.time_to_first_token < record.latency


def test_a_client_that_leaves_mid_stream_is_recorded_once_as_gone(
    server: GatewayServer, upstream: FakeUpstream, recorder: Recorder
) -> None:
    upstream.script("/v1/messages", Sse(stream_frames("x" * 40, pieces=20), pause=0.2))
    body = orjson.dumps({"model": "claude", "max_tokens": 10, "messages": HELLO, "stream": True})
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(
            b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            + f"x-api-key: {MASTER_KEY}\r\ncontent-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        received = b""
        while b"message_start" not in received:
            chunk = sock.recv(65536)
            assert chunk, "the gateway closed the stream"
            received += chunk
    [record] = recorder.wait_completed()
    assert record.outcome == "client_gone" and record.status == 499
    assert record.stop_reason is None  # no complete answer
    assert record.usage is not None and record.usage.input_tokens == 10  # what was seen before leaving
    assert len(recorder.attempts) == 1 and recorder.attempts[0].abandoned


def test_admit_refuses_before_any_upstream_call(
    server: GatewayServer, upstream: FakeUpstream, recorder: Recorder
) -> None:
    upstream.script("/v1/messages", Json(message("hi")))
    with pytest.raises(anthropic.RateLimitError) as caught:
        sdk_client(server).messages.create(model="refused", max_tokens=10, messages=HELLO)  # type: ignore[arg-type]
    assert caught.value.response.headers["retry-after"] == "60"
    assert caught.value.body["error"]["message"] == "budget exceeded"  # type: ignore[index]
    assert upstream.received == []
    assert recorder.stages == ["admit", "completed"]
    assert recorder.completed_records[0].outcome == "error"


def test_an_authenticating_hook_adds_keys_beside_the_master_key(
    server: GatewayServer, upstream: FakeUpstream, recorder: Recorder
) -> None:
    upstream.script("/v1/messages", Json(message("hi")))
    sdk_client(server, api_key=TEAM_KEY).messages.create(model="claude", max_tokens=10, messages=HELLO)  # type: ignore[arg-type]
    assert recorder.completed_records[0].principal == Principal(
        "virtual_key", key_id="team-key", team_id="t1"
    )
    assert upstream.received[0].headers["x-api-key"] == UPSTREAM_KEY  # the client's key stays behind
    with pytest.raises(anthropic.AuthenticationError):
        sdk_client(server, api_key="sk-unknown").messages.create(
            model="claude", max_tokens=10, messages=HELLO
        )  # type: ignore[arg-type]


def test_every_attempt_is_reported_and_failures_complete_the_request(
    server: GatewayServer, upstream: FakeUpstream, recorder: Recorder
) -> None:
    upstream.script("/v1/messages", Json(error("api_error", "boom"), status=500))
    with pytest.raises(anthropic.InternalServerError):
        sdk_client(server).messages.create(model="claude", max_tokens=10, messages=HELLO)  # type: ignore[arg-type]
    assert recorder.stages == ["admit", "attempt", "attempt", "completed"]
    [record] = recorder.completed_records
    assert record.outcome == "error" and record.status == 500 and len(record.attempts) == 2
    assert all(a.error is not None and a.error.status == 500 for a in record.attempts)
    assert record.stop_reason is None


def test_a_stream_cut_after_its_message_delta_has_no_stop_reason(
    server: GatewayServer, upstream: FakeUpstream, recorder: Recorder
) -> None:
    """The upstream said why it stopped, then broke off before ``message_stop``: the client got an error
    event, not an answer, so the record reports no stop reason."""
    upstream.script("/v1/messages", Sse(stream_frames("hello there")[:-1]))
    body = {"model": "claude", "max_tokens": 10, "messages": HELLO, "stream": True}
    answer = send(server.url, "POST", "/v1/messages", body, {"x-api-key": MASTER_KEY})
    assert b"event: error" in answer.body and b'"stop_reason":"end_turn"' in answer.body
    [record] = recorder.wait_completed()
    assert record.outcome == "error" and record.stop_reason is None


def test_a_failing_hook_is_logged_and_never_reaches_the_client(
    server: GatewayServer, upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(Hook):
        def completed(self, record: RequestRecord) -> None:
            raise RuntimeError("spend store is down")

    server.gateway.hooks.add(Broken())
    upstream.script("/v1/messages", Json(message("hi")))
    with caplog.at_level(logging.ERROR, logger="anygate.hooks"):
        answer = sdk_client(server).messages.create(model="claude", max_tokens=10, messages=HELLO)  # type: ignore[arg-type]
    assert answer.content[0].text == "hi"  # type: ignore[union-attr]
    assert "Broken failed in completed" in caplog.text


async def test_in_process_calls_pass_the_same_lifecycle(upstream: FakeUpstream) -> None:
    recorder = Recorder()
    upstream.script("/v1/messages", Json(message("hi")))
    gateway = anygate.Gateway(hooks=[recorder])
    message_ = await gateway.messages.acreate(
        model="anthropic/claude-up", api_base=upstream.url, api_key="k", max_tokens=10, messages=HELLO
    )
    assert message_.content[0].text == "hi"
    assert recorder.stages == ["admit", "attempt", "completed"]  # the caller is its own process
    assert recorder.completed_records[0].principal.kind == "in_process"
    await gateway.aclose()


def test_hooks_register_only_for_the_stages_they_override() -> None:
    class OnlyCompletion(Hook):
        def completed(self, record: RequestRecord) -> None:
            pass

    hooks = Hooks([OnlyCompletion()])
    assert not hooks.authenticators and not hooks.admitting and not hooks.attempt_listeners
    assert len(hooks.completion_listeners) == 1
    assert not Hooks([Hook()]).completion_listeners
