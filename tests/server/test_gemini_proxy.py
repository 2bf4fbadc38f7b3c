"""Gemini and Vertex AI behind the proxy, driven by the official anthropic SDK against a fake Google
upstream that enforces what the real one does (signatures on their parts, schemas, Vertex tokens)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import orjson
import pytest

from tests.conftest import MASTER_KEY, sdk_client
from tests.fakes.anthropic_answers import message as anthropic_message
from tests.fakes.anthropic_answers import stream_frames
from tests.fakes.gateway_server import GatewayServer
from tests.fakes.google import CORRUPTED_SIGNATURE, Call, FakeGoogle, GeminiRequest, Turn
from tests.fakes.upstream import Json, Sse

WEATHER = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"city": {"$ref": "#/$defs/city"}},
        "required": ["city"],
        "$defs": {"city": {"type": "string"}},
    },
}
GEMINI_MODEL = "gemini-3-pro-preview"
VERTEX_MODEL = "gemini-3-flash-preview"


@pytest.fixture
def google() -> Iterator[FakeGoogle]:
    fake = FakeGoogle().start()
    yield fake
    fake.stop()
    assert fake.errors == [], fake.errors


def config(google: FakeGoogle, credentials: Path, *, vertex_project: bool = True) -> str:
    project = "      vertex_project: fake-project\n" if vertex_project else ""
    return f"""
model_list:
  - model_name: gem
    litellm_params:
      model: gemini/{GEMINI_MODEL}
      api_base: {google.gemini_api_base}
      api_key: gemini-test-key
  - model_name: vtx
    litellm_params:
      model: vertex_ai/{VERTEX_MODEL}
      api_base: {google.server.url}
{project}      vertex_location: us-central1
      vertex_credentials: {credentials}
  - model_name: vclaude
    litellm_params:
      model: vertex_ai/claude-sonnet-4-5@20250929
      api_base: {google.server.url}
      vertex_project: fake-project
      vertex_location: us-central1
      vertex_credentials: {credentials}
router_settings:
  num_retries: 0
general_settings:
  master_key: {MASTER_KEY}
"""


@pytest.fixture
def credentials(google: FakeGoogle, tmp_path: Path) -> Path:
    assert google.account is not None
    path = tmp_path / "service-account.json"
    path.write_text(json.dumps(google.account.info()))
    return path


@pytest.fixture
def gateway(serve: Callable[[str], GatewayServer], google: FakeGoogle, credentials: Path) -> GatewayServer:
    return serve(config(google, credentials))


def weather_model(request: GeminiRequest) -> Turn:
    """A new question: think and call the tool for two cities (parallel); tool results: answer."""
    results = request.function_responses()
    if not results:
        assert request.tool_names() == ["get_weather"]
        calls = [Call("get_weather", {"city": "Paris"}), Call("get_weather", {"city": "Oslo"})]
        return Turn(thought="I should look both up.", calls=calls)
    assert [r["response"]["output"] for r in results] == ["sunny in Paris", "snow in Oslo"]
    return Turn(text=f"Paris: sunny; Oslo: snow (turn {request.turn}).")


def lenient_model(request: GeminiRequest) -> Turn:
    """Calls the tool for a new question, says "ok" to any tool results."""
    return Turn(text="ok") if request.function_responses() else weather_model(request)


def converse(client: anthropic.Anthropic, model: str, *, stream: bool, turns: int = 4) -> list[Any]:
    """A stateless client's tool loop: send what it received back, every turn."""
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris and Oslo?"}]
    answers = []
    for _ in range(turns):
        kwargs: dict[str, Any] = {
            "model": model,
            "max_tokens": 1000,
            "messages": messages,
            "tools": [WEATHER],
            "thinking": {"type": "enabled", "budget_tokens": 2048},
        }
        if stream:
            with client.messages.stream(**kwargs) as events:
                answer = events.get_final_message()
        else:
            answer = client.messages.create(**kwargs)
        answers.append(answer)
        messages.append(
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in answer.content]}
        )
        calls = [b for b in answer.content if b.type == "tool_use"]
        if calls:
            results = [
                {
                    "type": "tool_result",
                    "tool_use_id": c.id,
                    "content": f"{'sunny' if c.input['city'] == 'Paris' else 'snow'} in {c.input['city']}",
                }
                for c in calls
            ]  # type: ignore[index]
            messages.append({"role": "user", "content": results})
        else:
            messages.append({"role": "user", "content": "And tomorrow?"})
    return answers


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize(("model", "upstream"), [("gem", GEMINI_MODEL), ("vtx", VERTEX_MODEL)])
def test_multi_turn_tool_use_keeps_every_signature(
    gateway: GatewayServer, google: FakeGoogle, model: str, upstream: str, stream: bool
) -> None:
    google.model(upstream, weather_model)
    answers = converse(sdk_client(gateway), model, stream=stream)
    first = answers[0]
    assert first.stop_reason == "tool_use"
    assert [b.type for b in first.content] == ["thinking", "thinking", "tool_use", "tool_use"]
    assert first.content[0].thinking == "I should look both up."  # type: ignore[union-attr]
    assert [a.stop_reason for a in answers] == ["tool_use", "end_turn", "tool_use", "end_turn"]
    assert [b.text for b in answers[3].content if b.type == "text"] == ["Paris: sunny; Oslo: snow (turn 3)."]
    assert google.rejections == []
    requests = google.requests()
    assert len(requests) == 4
    # the parallel calls went back with the first one signed, exactly as issued
    model_parts = requests[1].contents[1]["parts"]
    assert [("functionCall" in p, "thoughtSignature" in p) for p in model_parts] == [
        (False, True),
        (True, True),
        (True, False),
    ]
    if model == "vtx":
        assert google.token_requests == 1  # one token, cached across requests
        for received in google.server.received:
            assert MASTER_KEY not in str(received.headers)


def test_the_fake_rejects_a_missing_signature_as_gemini_does(google: FakeGoogle) -> None:
    google.model(GEMINI_MODEL, lenient_model)
    body = {
        "contents": [
            {"role": "user", "parts": [{"text": "Weather?"}]},
            {
                "role": "model",
                "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}],
            },
            {
                "role": "user",
                "parts": [{"functionResponse": {"name": "get_weather", "response": {"output": "x"}}}],
            },
        ]
    }
    request = urllib.request.Request(
        f"{google.gemini_api_base}/models/{GEMINI_MODEL}:generateContent",
        data=orjson.dumps(body),
        headers={"x-goog-api-key": "gemini-test-key", "content-type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    error = orjson.loads(caught.value.read())["error"]
    assert (caught.value.code, error["status"]) == (400, "INVALID_ARGUMENT")
    assert "missing a thought_signature" in error["message"]


def test_a_carrier_moved_away_from_its_call_is_not_applied_elsewhere(
    gateway: GatewayServer, google: FakeGoogle
) -> None:
    google.model(GEMINI_MODEL, lenient_model)
    client = sdk_client(gateway)
    first = client.messages.create(
        model="gem",
        max_tokens=100,
        messages=[{"role": "user", "content": "Weather?"}],
        tools=[WEATHER],  # type: ignore[list-item]
    )
    blocks = [b.model_dump(exclude_none=True) for b in first.content]
    carrier = next(i for i, b in enumerate(blocks) if b["type"] == "thinking" and b["thinking"] == "")
    moved = [*blocks[:carrier], *blocks[carrier + 1 :], blocks[carrier]]  # behind the calls
    results = [
        {"type": "tool_result", "tool_use_id": b["id"], "content": "x"}
        for b in blocks
        if b["type"] == "tool_use"
    ]
    answer = client.messages.create(
        model="gem", max_tokens=100, tools=[WEATHER],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "Weather?"}, {"role": "assistant", "content": moved},
                  {"role": "user", "content": results}],  # type: ignore[typeddict-item]
    )  # fmt: skip
    assert [b.text for b in answer.content if b.type == "text"] == ["ok"]
    sent = google.requests()[-1].contents[1]["parts"]
    # the signature went nowhere else; the first call got Google's documented stand-in
    assert [p.get("thoughtSignature") for p in sent if "functionCall" in p] == [
        "skip_thought_signature_validator",
        None,
    ]


def test_signatures_from_elsewhere_are_replaced_by_the_documented_dummy(
    gateway: GatewayServer, google: FakeGoogle
) -> None:
    google.model(GEMINI_MODEL, lambda request: Turn(text="ok"))
    client = sdk_client(gateway)
    answer = client.messages.create(
        model="gem", max_tokens=100, tools=[WEATHER],  # type: ignore[list-item]
        messages=[
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "from claude", "signature": "EqQBCkgIARABGAIiQL"},
                {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Rome"}},
            ]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "w"}]},
        ],
    )  # fmt: skip
    assert [b.text for b in answer.content if b.type == "text"] == ["ok"]
    sent = google.requests()[0].contents[1]["parts"]
    assert sent == [{"functionCall": {"name": "get_weather", "args": {"city": "Rome"}, "id": "toolu_01"},
                     "thoughtSignature": "skip_thought_signature_validator"}]  # fmt: skip
    forged = google.requests()[0].body
    assert "from claude" not in orjson.dumps(forged).decode()


def test_corrupted_signature_is_a_client_error(gateway: GatewayServer, google: FakeGoogle) -> None:
    google.model(GEMINI_MODEL, lenient_model)
    client = sdk_client(gateway)
    first = client.messages.create(
        model="gem",
        max_tokens=100,
        messages=[{"role": "user", "content": "Weather?"}],
        tools=[WEATHER],  # type: ignore[list-item]
    )
    blocks = [b.model_dump(exclude_none=True) for b in first.content]
    calls = [b for b in blocks if b["type"] == "tool_use"]
    calls[0]["name"] = "get_forecast"  # the client rewrote the call the signature belongs to
    results = [{"type": "tool_result", "tool_use_id": c["id"], "content": "x"} for c in calls]
    with pytest.raises(anthropic.BadRequestError, match=CORRUPTED_SIGNATURE):
        client.messages.create(
            model="gem", max_tokens=100, tools=[WEATHER, {**WEATHER, "name": "get_forecast"}],  # type: ignore[list-item]
            messages=[{"role": "user", "content": "Weather?"}, {"role": "assistant", "content": blocks},
                      {"role": "user", "content": results}],  # type: ignore[typeddict-item]
        )  # fmt: skip


def test_the_project_comes_from_the_service_account(
    serve: Callable[[str], GatewayServer], google: FakeGoogle, credentials: Path
) -> None:
    gateway = serve(config(google, credentials, vertex_project=False))
    google.model(VERTEX_MODEL, lambda request: Turn(text="hello"))
    answer = sdk_client(gateway).messages.create(
        model="vtx", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    )
    assert [b.type for b in answer.content] == ["thinking", "text"]  # the signed text's carrier, the text
    assert answer.content[1].text == "hello"  # type: ignore[union-attr]
    assert "/projects/fake-project/" in google.requests()[0].received.path


def test_google_errors_become_anthropic_errors(gateway: GatewayServer, google: FakeGoogle) -> None:
    quota = json.loads(
        (Path(__file__).parents[1] / "fixtures/recordings/gemini/google-429-retry-info.json").read_text()
    )
    google.server.script(f"/v1beta/models/{GEMINI_MODEL}:generateContent", Json(quota, status=429))
    client = sdk_client(gateway)
    with pytest.raises(anthropic.RateLimitError) as limited:
        client.messages.create(model="gem", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert limited.value.response.headers["retry-after"] == "35"
    assert "exceeded your current quota" in limited.value.message
    google.server.script(
        f"/v1beta/models/{GEMINI_MODEL}:generateContent",
        Json(
            [{"error": {"code": 503, "status": "UNAVAILABLE", "message": "The model is overloaded."}}],
            status=503,
        ),
    )
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        client.messages.create(model="gem", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert overloaded.value.status_code == 529


def test_a_bad_key_is_the_gateways_fault_and_never_echoed(
    serve: Callable[[str], GatewayServer], google: FakeGoogle, credentials: Path
) -> None:
    gateway = serve(
        config(google, credentials).replace(
            "api_key: gemini-test-key", "api_key: AIzaSyWRONG-KEY-0123456789abcdef"
        )
    )
    google.model(GEMINI_MODEL, lambda request: Turn(text="never"))
    with pytest.raises(anthropic.InternalServerError) as caught:
        sdk_client(gateway).messages.create(
            model="gem", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert "credentials" in caught.value.message and "AIza" not in str(caught.value.body)


@pytest.mark.parametrize("model", ["gem", "vtx"])
def test_count_tokens_asks_count_tokens(gateway: GatewayServer, google: FakeGoogle, model: str) -> None:
    google.model(GEMINI_MODEL, weather_model)
    google.model(VERTEX_MODEL, weather_model)
    count = sdk_client(gateway).messages.count_tokens(
        model=model,
        messages=[{"role": "user", "content": "hello " * 50}],
        tools=[WEATHER],  # type: ignore[list-item]
    )
    assert count.input_tokens > 50
    counted = [r for r in google.server.received if r.path.endswith(":countTokens")]
    body = counted[-1].json()
    inner = body["generateContentRequest"] if model == "gem" else body
    assert inner["contents"][0]["parts"][0]["text"].startswith("hello")


def test_claude_on_vertex_passes_through(gateway: GatewayServer, google: FakeGoogle) -> None:
    publisher = "/v1/projects/fake-project/locations/us-central1/publishers/anthropic/models"
    base = f"{publisher}/claude-sonnet-4-5@20250929"
    google.server.script(base + ":rawPredict", Json(anthropic_message("from claude")))
    google.server.script(base + ":streamRawPredict", Sse(stream_frames("streamed claude")))
    google.server.script(
        "/v1/projects/fake-project/locations/us-central1/publishers/anthropic/models/count-tokens:rawPredict",
        Json({"input_tokens": 42}),
    )
    client = sdk_client(
        gateway,
        default_headers={
            "anthropic-beta": ",".join(
                ["files-api-2025-04-14", "interleaved-thinking-2025-05-14", "context-management-2025-06-27"]
            )
        },
    )
    answer = client.messages.create(
        model="vclaude", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.content[0].text == "from claude"  # type: ignore[union-attr]
    with client.messages.stream(
        model="vclaude", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    ) as s:
        assert s.get_final_text() == "streamed claude"
    count = client.messages.count_tokens(model="vclaude", messages=[{"role": "user", "content": "hi"}])
    assert count.input_tokens == 42
    raw, streamed, counted = google.server.received[-3:]
    body = raw.json()
    assert "model" not in body and body["anthropic_version"] == "vertex-2023-10-16"
    assert raw.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14,context-management-2025-06-27"
    assert raw.headers["authorization"].startswith("Bearer ya29.fake-")
    assert streamed.json()["stream"] is True
    assert counted.json()["model"] == "claude-sonnet-4-5"
    assert counted.headers["anthropic-beta"] == "context-management-2025-06-27"
