"""The real Claude Code CLI on AWS Bedrock: ``claude -p`` → anygate → a fake Bedrock Runtime that checks
every SigV4 signature with botocore and refuses what Bedrock refuses.

Two runs of a multi-step tool task with thinking (read a file, edit it, run a command and re-read, answer):
Claude through InvokeModelWithResponseStream (Anthropic events inside event-stream ``chunk`` messages)
and a model behind ConverseStream (``reasoningContent`` with a signature, once redacted). Every step's
request carries the whole conversation as Claude Code sends it back, so each signature the fake issued
must come back on its reasoning, unchanged, through Claude Code's own storage of the thinking blocks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.conftest import MASTER_KEY
from tests.e2e.claude_cli import ClaudeCode
from tests.e2e.fake_bedrock import BedrockModels, BedrockRequest, Call, Turn, sign
from tests.fakes.gateway_server import GatewayServer
from tests.providers.bedrock_support import ACCESS_KEY, BEDROCK_ACCEPTED_BETAS, SECRET_KEY

pytestmark = pytest.mark.e2e

CLAUDE_MAIN = "us.anthropic.claude-opus-4-5-20251101-v1:0"
CLAUDE_SMALL = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
CONVERSE_MAIN = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
CONVERSE_SMALL = "us.amazon.nova-micro-v1:0"
EDIT_FLAGS = ("--permission-mode", "acceptEdits")
THINKING = {"MAX_THINKING_TOKENS": "4096"}
OPUS_BETAS = BEDROCK_ACCEPTED_BETAS | {"effort-2025-11-24"}
"""Claude Code asks for effort; Bedrock's Opus 4.5 accepts the beta (the fake's default list does not)."""


def config(models: BedrockModels, main: str, small: str) -> str:
    def entry(name: str, model: str) -> str:
        return f"""
  - model_name: "{name}"
    litellm_params:
      model: bedrock/{model}
      aws_region_name: us-east-1
      aws_bedrock_runtime_endpoint: {models.endpoint}
      aws_access_key_id: {ACCESS_KEY}
      aws_secret_access_key: {SECRET_KEY}
    model_info:
      max_input_tokens: 200000
      max_output_tokens: 16384"""

    return f"""
model_list:{entry("claude-*haiku*", small)}{entry("claude-*", main)}
router_settings:
  num_retries: 0
general_settings:
  master_key: {MASTER_KEY}
"""


@pytest.fixture
def bedrock() -> Iterator[BedrockModels]:
    fake = BedrockModels(OPUS_BETAS).start()
    yield fake
    fake.stop()
    assert fake.errors == [], fake.errors


@pytest.fixture
def start_claude(
    claude_binary_ready: None,
    serve: Callable[[str], GatewayServer],
    bedrock: BedrockModels,
    workdir: Path,
    tmp_path: Path,
) -> Callable[[str, str], ClaudeCode]:
    def start(main: str, small: str) -> ClaudeCode:
        gateway = serve(config(bedrock, main, small))
        return ClaudeCode(gateway.url, MASTER_KEY, workdir, tmp_path / "home")

    return start


def notes_task(notes: Path, *, redact_step: int | None = None) -> Callable[[BedrockRequest], Turn]:
    """The main model's script: read, edit, list + re-read in parallel, answer; checking each result."""
    read = Call("Read", {"file_path": str(notes)})
    edit = Call("Edit", {"file_path": str(notes), "old_string": "draft", "new_string": "final"})
    ls = Call("Bash", {"command": "ls", "description": "List files"})
    reread = Call("Read", {"file_path": str(notes)})

    def main(request: BedrockRequest) -> Turn:
        step, results = request.step, request.tool_results()
        redacted = step == redact_step
        if step == 0:
            return Turn("I should read the notes first.", calls=[read], redacted=redacted)
        if step == 1:
            assert [i for i, _ in results] == [read.id] and "status: draft" in results[0][1]
            return Turn("The status is draft; make it final.", "Updating the status.", [edit], redacted)
        if step == 2:
            assert [i for i, _ in results] == [edit.id]
            return Turn("Check the directory and re-read the file.", calls=[ls, reread], redacted=redacted)
        # both results, each on its own call (Claude Code sends them in the order the tools finished)
        by_id = dict(results)
        assert len(results) == 2 and set(by_id) == {ls.id, reread.id}
        assert "notes.txt" in by_id[ls.id] and "status: final" in by_id[reread.id]
        return Turn("All done.", "The notes are final now.", redacted=redacted)

    return main


def test_claude_on_bedrock_invoke_model_runs_a_tool_loop_with_thinking(
    start_claude: Callable[[str, str], ClaudeCode], bedrock: BedrockModels, workdir: Path
) -> None:
    notes = workdir / "notes.txt"
    notes.write_text("status: draft\n")
    bedrock.model(CLAUDE_MAIN, notes_task(notes))
    bedrock.model(CLAUDE_SMALL, lambda request: Turn(text="Notes update"))
    claude = start_claude(CLAUDE_MAIN, CLAUDE_SMALL)

    run = claude.run("Mark the notes as final", *EDIT_FLAGS, env=THINKING)

    run.assert_succeeded()
    assert notes.read_text() == "status: final\n"
    assert run.result.endswith("The notes are final now.")
    assert bedrock.signature_rejections == [] and bedrock.rejections == []
    steps = bedrock.requests(CLAUDE_MAIN)
    assert len(steps) == 4
    assert {s.action for s in steps} == {"invoke-with-response-stream"}
    last = steps[-1]
    body = last.body
    # Bedrock's body: its anthropic_version, no model or stream, only betas Bedrock accepts
    assert body["anthropic_version"] == "bedrock-2023-05-31"
    assert "model" not in body and "stream" not in body
    assert set(body["anthropic_beta"]) <= OPUS_BETAS
    assert "interleaved-thinking-2025-05-14" in body["anthropic_beta"]
    assert "anthropic-beta" not in last.received.headers and "anthropic-version" not in last.received.headers
    assert body["thinking"]["type"] in ("enabled", "adaptive")
    assert {"Read", "Edit", "Bash"} <= set(last.tool_names())
    # each thinking block came back first in its turn, with the signature issued for its text
    assistant = [m for m in body["messages"] if m["role"] == "assistant"]
    assert len(assistant) == 3
    for message in assistant:
        first = message["content"][0]
        assert first["type"] == "thinking" and first["signature"] == sign(first["thinking"])
    tool_results = [b for m in body["messages"] if m["role"] == "user" for b in m["content"]
                    if isinstance(b, dict) and b.get("type") == "tool_result"]  # fmt: skip
    assert len(tool_results) == 4 and not any(b.get("is_error") for b in tool_results)
    assert "x-amz-security-token" not in last.received.headers


def test_converse_stream_runs_a_tool_loop_and_returns_reasoning_signatures_exactly(
    start_claude: Callable[[str, str], ClaudeCode], bedrock: BedrockModels, workdir: Path
) -> None:
    notes = workdir / "notes.txt"
    notes.write_text("status: draft\n")
    bedrock.model(CONVERSE_MAIN, notes_task(notes, redact_step=1))
    bedrock.model(CONVERSE_SMALL, lambda request: Turn(text="Notes update"))
    claude = start_claude("converse/" + CONVERSE_MAIN, CONVERSE_SMALL)

    run = claude.run("Mark the notes as final", *EDIT_FLAGS, env=THINKING)

    run.assert_succeeded()
    assert notes.read_text() == "status: final\n"
    assert run.result.endswith("The notes are final now.")
    assert bedrock.signature_rejections == [] and bedrock.rejections == []
    steps = bedrock.requests(CONVERSE_MAIN)
    assert len(steps) == 4
    assert {s.action for s in steps} == {"converse-stream"}
    last = steps[-1]
    body = last.body
    assert "anthropic_version" not in body and "anthropic_beta" not in str(body)
    assert body["additionalModelRequestFields"]["thinking"]["type"] in ("enabled", "adaptive")
    assert "Claude" in body["system"][0]["text"]
    assert "x-anthropic-billing-header" not in last.received.body.decode()
    assert {"Read", "Edit", "Bash"} <= set(last.tool_names())
    assistant = [m for m in body["messages"] if m["role"] == "assistant"]
    assert len(assistant) == 3
    reasoning = [m["content"][0]["reasoningContent"] for m in assistant]
    # the signature and the text each came back exactly as the fake streamed them; the redacted one too
    assert reasoning[0]["reasoningText"] == {
        "text": "I should read the notes first.",
        "signature": sign("I should read the notes first."),
    }
    assert reasoning[1] == {"redactedContent": next(iter(bedrock.redacted_issued))}
    assert reasoning[2]["reasoningText"]["signature"] == sign("Check the directory and re-read the file.")
    tool_results = [b["toolResult"] for m in body["messages"] if m["role"] == "user" for b in m["content"]
                    if "toolResult" in b]  # fmt: skip
    assert len(tool_results) == 4 and all(r.get("status") != "error" for r in tool_results)
