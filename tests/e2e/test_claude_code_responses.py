"""Claude Code end to end on a Responses API upstream: a tool loop whose reasoning must survive each turn.

The upstream (:class:`FakeResponsesModel`) behaves as OpenAI does with ``store: false``: it refuses
reasoning items whose encrypted content it did not issue, or that are not followed by the call they
produced. Claude Code sends back the thinking blocks it received; the gateway must turn them back into
the same reasoning items, intact and in place, on every later turn.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.conftest import MASTER_KEY, UPSTREAM_KEY
from tests.e2e.claude_cli import ClaudeCode
from tests.fakes.gateway_server import GatewayServer
from tests.fakes.responses_model import RESPONSES_PATH, Call, FakeResponsesModel, ResponsesRequest, Turn
from tests.fakes.upstream import Answer, FakeUpstream, Received
from tests.providers.responses_support import assert_valid_responses_request

pytestmark = pytest.mark.e2e

BIG = "gpt-5-big"
SMALL = "gpt-5-small"


def responses_config(api_base: str) -> str:
    return f"""
model_list:
  - model_name: "claude-*haiku*"
    litellm_params: {{model: openai/responses/{SMALL}, api_base: {api_base}, api_key: {UPSTREAM_KEY}}}
  - model_name: "claude-*"
    litellm_params: {{model: openai/responses/{BIG}, api_base: {api_base}, api_key: {UPSTREAM_KEY}}}
    model_info: {{max_output_tokens: 16384}}
general_settings:
  master_key: {MASTER_KEY}
"""


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    server = FakeUpstream().start()
    yield server
    server.stop()


def test_reasoning_round_trips_through_a_claude_code_tool_loop(
    claude_binary_ready: None,
    fake: FakeUpstream,
    serve: Callable[[str], GatewayServer],
    workdir: Path,
    tmp_path: Path,
) -> None:
    notes = workdir / "notes.txt"
    notes.write_text("status: draft\n")
    read = Call("Read", {"file_path": str(notes)})
    edit = Call("Edit", {"file_path": str(notes), "old_string": "draft", "new_string": "final"})

    def after_read(request: ResponsesRequest) -> Turn:
        assert "status: draft" in request.output_of(read)
        return Turn("", calls=[edit])  # reasoning without a summary: a redacted_thinking block

    big = FakeResponsesModel([Turn("Plan: read the notes first.", calls=[read]), after_read,
                              Turn("All done.", text="The notes are final.")])  # fmt: skip
    small = FakeResponsesModel([Turn("", text="Notes")])

    def route(received: Received) -> Answer:
        return (small if received.json().get("model") == SMALL else big)(received)

    fake.handle(RESPONSES_PATH, route)
    gateway = serve(responses_config(fake.url + "/v1"))
    claude = ClaudeCode(gateway.url, MASTER_KEY, workdir, tmp_path / "home")

    run = claude.run("Mark the notes final", "--permission-mode", "acceptEdits")

    run.assert_succeeded()
    assert notes.read_text() == "status: final\n"
    assert big.refusals == [] and small.refusals == []
    assert "The notes are final." in run.result
    last = big.requests[-1]
    assert_valid_responses_request(last.body)
    assert last.body["store"] is False and last.body["include"] == ["reasoning.encrypted_content"]
    items = [item for item in last.input if item.get("type") in ("reasoning", "function_call")]
    assert [(item["type"], item.get("name")) for item in items] == [
        ("reasoning", None), ("function_call", "Read"), ("reasoning", None), ("function_call", "Edit"),
    ]  # fmt: skip
    for item in items[0::2]:
        assert item["encrypted_content"] == big.issued[item["id"]]
    assert items[0]["summary"][0]["text"] == "Plan: read the notes first." and items[2]["summary"] == []
    assert [item["call_id"] for item in items[1::2]] == [read.call_id, edit.call_id]
    assert "x-anthropic-billing-header" not in last.received.body.decode()
