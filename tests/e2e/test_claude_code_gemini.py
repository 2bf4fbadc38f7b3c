"""The real Claude Code CLI on Gemini: ``claude -p`` → anygate → a Gemini-shaped upstream that rejects a
missing or moved thought signature with Gemini's own 400, as Gemini 3 does.

A multi-step tool task with thinking: read a file, edit it, run a command, answer. Each step's request
carries the whole conversation as Claude Code sends it back, so every signature the fake issued (on the
thoughts, on the first function call of each step, on the closing text) must come back on its part
through Claude Code's own storage of the thinking blocks the gateway made.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.conftest import MASTER_KEY
from tests.e2e.claude_cli import ClaudeCode
from tests.fakes.gateway_server import GatewayServer
from tests.fakes.google import DUMMY_SIGNATURES, Call, FakeGoogle, GeminiRequest, Turn

pytestmark = pytest.mark.e2e

MAIN_MODEL = "gemini-3-pro-preview"
SMALL_MODEL = "gemini-3-flash-preview"
EDIT_FLAGS = ("--permission-mode", "acceptEdits")


def config(google: FakeGoogle) -> str:
    return f"""
model_list:
  - model_name: "claude-*haiku*"
    litellm_params:
      model: gemini/{SMALL_MODEL}
      api_base: {google.gemini_api_base}
      api_key: gemini-test-key
    model_info:
      max_input_tokens: 1000000
      max_output_tokens: 8192
  - model_name: "claude-*"
    litellm_params:
      model: gemini/{MAIN_MODEL}
      api_base: {google.gemini_api_base}
      api_key: gemini-test-key
    model_info:
      max_input_tokens: 1000000
      max_output_tokens: 16384
router_settings:
  num_retries: 0
general_settings:
  master_key: {MASTER_KEY}
"""


@pytest.fixture
def google() -> Iterator[FakeGoogle]:
    fake = FakeGoogle().start()
    yield fake
    fake.stop()
    assert fake.errors == [], fake.errors


@pytest.fixture
def claude(
    claude_binary_ready: None,
    serve: Callable[[str], GatewayServer],
    google: FakeGoogle,
    workdir: Path,
    tmp_path: Path,
) -> ClaudeCode:
    gateway = serve(config(google))
    return ClaudeCode(gateway.url, MASTER_KEY, workdir, tmp_path / "home")


def test_a_multi_step_tool_task_with_thinking_keeps_every_signature(
    claude: ClaudeCode, google: FakeGoogle, workdir: Path
) -> None:
    notes = workdir / "notes.txt"
    notes.write_text("status: draft\n")

    def main(request: GeminiRequest) -> Turn:
        results = request.function_responses()
        step = sum(1 for c in request.contents if c["role"] == "model")
        if step == 0:
            return Turn(
                thought="I should read the notes first.", calls=[Call("Read", {"file_path": str(notes)})]
            )
        if step == 1:
            assert "status: draft" in str(results[0]["response"])
            return Turn(
                thought="The status is draft; make it final.",
                text="Updating the status.",
                calls=[Call("Edit", {"file_path": str(notes), "old_string": "draft", "new_string": "final"})],
            )
        if step == 2:
            return Turn(
                thought="Check the directory and re-read the file, both at once.",
                calls=[
                    Call("Bash", {"command": "ls", "description": "List files"}),
                    Call("Read", {"file_path": str(notes)}),
                ],
            )
        # the results come back in the order of the calls, whatever order the tools finished in
        assert [r["name"] for r in results] == ["Bash", "Read"]
        assert "notes.txt" in str(results[0]["response"]) and "final" in str(results[1]["response"])
        return Turn(thought="All done.", text="The notes are final now.")

    google.model(MAIN_MODEL, main)
    google.model(SMALL_MODEL, lambda request: Turn(text="Notes update"))

    run = claude.run("Mark the notes as final", *EDIT_FLAGS, env={"MAX_THINKING_TOKENS": "4096"})

    run.assert_succeeded()
    assert notes.read_text() == "status: final\n"
    assert run.result.endswith("The notes are final now.")
    assert google.rejections == [], google.rejections
    steps = [r for r in google.requests() if r.model == MAIN_MODEL]
    assert len(steps) >= 4
    last = steps[-1]
    model_turns = [c for c in last.contents if c["role"] == "model"]
    assert len(model_turns) == 3
    for content in model_turns:
        calls = [p for p in content["parts"] if "functionCall" in p]
        signature = calls[0].get("thoughtSignature")
        assert signature is not None and signature not in DUMMY_SIGNATURES, "a real signature came back"
        assert all("thoughtSignature" not in p for p in calls[1:])
        thoughts = [p for p in content["parts"] if p.get("thought")]
        assert thoughts and all(p["thoughtSignature"] in google.issued for p in thoughts)
    # thinking was asked for (Claude Code asks for it with the text omitted, so no includeThoughts), the
    # system prompt and tools arrived in Gemini's shape
    assert last.body["generationConfig"]["thinkingConfig"]["thinkingLevel"] == "high"
    assert "Claude" in last.body["systemInstruction"]["parts"][0]["text"]
    assert "x-anthropic-billing-header" not in last.received.body.decode()
    assert {"Read", "Edit", "Bash"} <= set(last.tool_names())
