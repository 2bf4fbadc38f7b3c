"""Context overflow through the proxy: what the official SDK sees when a prompt does not fit.

Whatever the OpenAI-compatible upstream says, the client gets Anthropic's ``400 invalid_request_error``
``prompt is too long: N tokens > M maximum`` (streaming or not), ``context_window_fallbacks`` are tried
first, a deployment with ``max_input_tokens`` refuses a prompt it knows is too long without calling the
upstream, and an Anthropic upstream's own errors pass through untouched.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import anthropic
import pytest

from tests.conftest import MASTER_KEY, UPSTREAM_KEY, sdk_client
from tests.fakes.gateway_server import GatewayServer
from tests.fakes.upstream import FakeUpstream, Json, Sse, sse_data
from tests.providers.openai_support import chunk

CHAT = "/v1/chat/completions"
PROMPT_TOO_LONG = re.compile(r"^prompt is too long: (\d+) tokens > (\d+) maximum$")
OPENAI_OVERFLOW = {
    "error": {
        "message": "This model's maximum context length is 128000 tokens. However, your messages resulted in "
        "130021 tokens. Please reduce the length of the messages.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
}
LONG_TEXT = "The quick brown fox jumps over the lazy dog. " * 400  # ~4,000 tokens


def entry(name: str, upstream: FakeUpstream, *, provider: str = "openai", info: str = "") -> str:
    return f"""
  - model_name: {name}
    litellm_params:
      model: {provider}/{name}-upstream
      api_base: {upstream.url}{"/v1" if provider != "anthropic" else ""}
      api_key: {UPSTREAM_KEY}
{info}"""


def config(*entries: str, router: str = "") -> str:
    return f"""
model_list:{"".join(entries)}
router_settings:
  num_retries: 0
{router}
general_settings:
  master_key: {MASTER_KEY}
"""


def window(tokens: int) -> str:
    return f"    model_info:\n      max_input_tokens: {tokens}\n"


def ok_stream(text: str) -> Sse:
    return Sse(sse_data(chunk({"role": "assistant", "content": text}), chunk({}, "stop")))


def ask(
    server: GatewayServer, model: str, text: str = "hi", *, stream: bool = False
) -> anthropic.types.Message:
    client = sdk_client(server)
    messages: list[anthropic.types.MessageParam] = [{"role": "user", "content": text}]
    if stream:
        with client.messages.stream(model=model, max_tokens=50, messages=messages) as events:
            return events.get_final_message()
    return client.messages.create(model=model, max_tokens=50, messages=messages)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("status", [400, 413])
def test_openai_context_length_exceeded_becomes_anthropics_prompt_too_long(
    serve: Callable[[str], GatewayServer], upstream: FakeUpstream, stream: bool, status: int
) -> None:
    upstream.script(CHAT, Json(OPENAI_OVERFLOW, status=status))
    server = serve(config(entry("gpt", upstream)))
    with pytest.raises(anthropic.BadRequestError) as caught:
        ask(server, "gpt", stream=stream)
    error = caught.value
    assert error.status_code == 400
    assert error.body == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "prompt is too long: 130021 tokens > 128000 maximum",
        },
        "request_id": error.request_id,
    }
    assert len(upstream.requests_to(CHAT)) == 1


def test_without_figures_the_local_count_and_the_configured_window_are_reported(
    serve: Callable[[str], GatewayServer], upstream: FakeUpstream
) -> None:
    """The upstream words it without numbers; the gateway counts the prompt and reports the window it
    was configured with (the prompt is under the window by the gateway's count, so it was sent)."""
    upstream.script(
        CHAT, Json({"error": {"message": "Your input exceeds the context window of this model."}}, status=400)
    )
    server = serve(config(entry("gpt", upstream, info=window(5000))))
    with pytest.raises(anthropic.BadRequestError) as caught:
        ask(server, "gpt", LONG_TEXT)
    assert caught.value.body["error"]["message"] == (  # type: ignore[index]
        "prompt is too long: Your input exceeds the context window of this model."
    )
    server = serve(config(entry("gpt", upstream, info=window(3000))))
    with pytest.raises(anthropic.BadRequestError) as refused:
        ask(server, "gpt", LONG_TEXT)
    match = PROMPT_TOO_LONG.match(refused.value.body["error"]["message"])  # type: ignore[index]
    assert match is not None and int(match[1]) > 3000 and match[2] == "3000"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_prompt_over_max_input_tokens_is_refused_before_the_upstream_is_called(
    serve: Callable[[str], GatewayServer], upstream: FakeUpstream, stream: bool
) -> None:
    upstream.script(CHAT, ok_stream("fits"), Json({"choices": []}))
    server = serve(config(entry("gpt", upstream, info=window(1000))))
    with pytest.raises(anthropic.BadRequestError) as caught:
        ask(server, "gpt", LONG_TEXT, stream=stream)
    match = PROMPT_TOO_LONG.match(caught.value.body["error"]["message"])  # type: ignore[index]
    assert match is not None, caught.value.body
    assert 3500 < int(match[1]) < 5000 and match[2] == "1000"
    assert upstream.requests_to(CHAT) == []
    assert ask(server, "gpt", "short", stream=True).content[0].text == "fits"  # type: ignore[union-attr]


@pytest.mark.parametrize("known_in_advance", [True, False], ids=["max_input_tokens", "upstream-says"])
def test_context_window_fallbacks_come_first(
    serve: Callable[[str], GatewayServer], upstream: FakeUpstream, known_in_advance: bool
) -> None:
    large = FakeUpstream().start()
    try:
        upstream.script(CHAT, Json(OPENAI_OVERFLOW, status=400))
        large.script(CHAT, ok_stream("from the large model"))
        small = entry("small", upstream, info=window(1000) if known_in_advance else "")
        router = "  context_window_fallbacks: [{small: [large]}]"
        server = serve(config(small, entry("large", large), router=router))
        answer = ask(server, "small", LONG_TEXT, stream=True)
        assert answer.content[0].text == "from the large model"  # type: ignore[union-attr]
        assert len(upstream.requests_to(CHAT)) == (0 if known_in_advance else 1)
    finally:
        large.stop()


def test_an_anthropic_upstream_answers_for_itself(
    serve: Callable[[str], GatewayServer], upstream: FakeUpstream
) -> None:
    """Passthrough is left alone: no local refusal (even with ``max_input_tokens``), the upstream's own
    error as it sent it."""
    said = "prompt is too long: 210000 tokens > 200000 maximum"
    upstream.script(
        "/v1/messages",
        Json({"type": "error", "error": {"type": "invalid_request_error", "message": said}}, status=400),
    )
    server = serve(config(entry("claude", upstream, provider="anthropic", info=window(10))))
    with pytest.raises(anthropic.BadRequestError) as caught:
        ask(server, "claude", LONG_TEXT)
    assert caught.value.body["error"]["message"] == said  # type: ignore[index]
    assert len(upstream.requests_to("/v1/messages")) == 1


def test_other_upstream_400s_are_not_touched(
    serve: Callable[[str], GatewayServer], upstream: FakeUpstream
) -> None:
    upstream.script(CHAT, Json({"error": {"message": "temperature: out of range"}}, status=400))
    server = serve(config(entry("gpt", upstream)))
    with pytest.raises(anthropic.BadRequestError) as caught:
        ask(server, "gpt")
    assert caught.value.body["error"]["message"] == "temperature: out of range"  # type: ignore[index]
