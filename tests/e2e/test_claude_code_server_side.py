"""Claude Code's server-side features on an OpenAI-shaped model, end to end through anygate.

On Anthropic's API a too-long prompt is answered ``400 prompt is too long: N tokens > M maximum``, and
Claude Code compacts the conversation and carries on. These tests run the real CLI against a scripted
upstream that words the failure its own way (LM Studio's message, which Claude Code 2.1.328 does not
recognise by itself), and check that the session still finishes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from tests.e2e.claude_cli import ClaudeCode
from tests.e2e.conftest import BIG_MODEL
from tests.e2e.fake_openai import ChatRequest, Failure, FakeOpenAIModels, Reply, ToolCall

import anygate.gateway

pytestmark = pytest.mark.e2e

EDIT_FLAGS = ("--permission-mode", "acceptEdits")
LM_STUDIO_OVERFLOW = (
    "Trying to keep the first 201234 tokens when context the overflows. However, the model is loaded with "
    "context length of 200000 tokens, which is not enough. Try to load the model with a larger context "
    "length, or provide a shorter input"
)
SUMMARY_REQUEST = "Your task is to create a detailed summary"
SUMMARY = "The user asked for report.txt; the Write tool created it."


def overflowing_model(models: FakeOpenAIModels, target: Path) -> ToolCall:
    """A model whose window the conversation outgrows once the first tool result is in it: every
    request holding the whole history is refused until Claude Code sends a summary instead."""
    write = ToolCall("Write", {"file_path": str(target), "content": "first draft\n"})

    def turn(request: ChatRequest) -> Reply | Failure:
        if SUMMARY_REQUEST in request.user_text():
            return Reply(text=f"<summary>{SUMMARY}</summary>")
        if SUMMARY in request.user_text():
            return Reply(text="The report is written.")
        if request.turn == 0:
            return Reply(text="Writing the report.", tool_calls=[write])
        return Failure(400, LM_STUDIO_OVERFLOW)

    models.script(BIG_MODEL, turn)
    return write


def test_context_overflow_makes_claude_code_compact_and_finish(
    claude: ClaudeCode, models: FakeOpenAIModels, workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The upstream refuses the task's second request; the gateway answers Claude Code with Anthropic's
    error and figures, Claude Code summarises the conversation and goes on from the summary."""
    target = workdir / "report.txt"
    overflowing_model(models, target)

    with caplog.at_level(logging.INFO, logger="anygate.server"):
        run = claude.run("Write report.txt", *EDIT_FLAGS)

    run.assert_succeeded()
    assert target.read_text() == "first draft\n"
    assert run.result == "The report is written."
    requests = models.requests(BIG_MODEL)
    assert [SUMMARY_REQUEST in r.user_text() for r in requests] == [False, False, True, False]
    statuses = [r.getMessage().split()[3] for r in caplog.records if "POST /v1/messages " in r.getMessage()]
    assert statuses == ["200", "400", "200", "200"]


def test_without_the_translation_claude_code_does_not_compact(
    claude: ClaudeCode, models: FakeOpenAIModels, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: the upstream's own words reach Claude Code unchanged, and it gives up instead of
    compacting (so the test above proves the gateway's translation, not the CLI's own matching)."""
    monkeypatch.setattr(anygate.gateway, "is_overflow", lambda error: False)
    overflowing_model(models, workdir / "report.txt")

    run = claude.run("Write report.txt", *EDIT_FLAGS)

    assert run.output["is_error"] is True, str(run)
    assert not any(SUMMARY_REQUEST in r.user_text() for r in models.requests(BIG_MODEL))
