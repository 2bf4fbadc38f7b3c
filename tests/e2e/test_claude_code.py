"""The real Claude Code CLI, end to end: ``claude -p`` → anygate → an OpenAI-compatible model.

Each scenario checks two things: the effect Claude Code had (files in its working directory, its final
answer) and what the upstream model received (Chat Completions messages, tool results with the right
``tool_call_id``, no Anthropic-only fields, no attribution block). The upstream is a scripted fake that
decides each turn from the request, like a model would.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.conftest import MASTER_KEY, UPSTREAM_KEY
from tests.e2e.claude_cli import ClaudeCode, claude_code_env_exports
from tests.e2e.conftest import BIG_MODEL, REASONING_MODEL, SMALL_MODEL
from tests.e2e.fake_openai import ChatRequest, Failure, FakeOpenAIModels, Reply, ToolCall
from tests.fakes.gateway_server import GatewayServer

pytestmark = pytest.mark.e2e

EDIT_FLAGS = ("--permission-mode", "acceptEdits")
ANTHROPIC_ONLY_FIELDS = ("context_management", "thinking", "output_config", "metadata", "system")


def assert_translated_for_openai(request: ChatRequest, workdir: Path, allowed: tuple[str, ...] = ()) -> None:
    """What every upstream request must look like: Chat Completions, nothing Anthropic-only (but the
    ``allowed`` fields a preset sends on purpose), the gateway's upstream key (never the client's), the
    attribution block gone, the context kept."""
    body = request.body
    headers = request.received.headers
    assert headers.get("authorization") == f"Bearer {UPSTREAM_KEY}"
    assert MASTER_KEY not in json.dumps(headers)
    assert body["stream"] is True
    for field in ANTHROPIC_ONLY_FIELDS:
        assert field in allowed or field not in body, f"{field} was forwarded to an OpenAI upstream"
    assert "x-anthropic-billing-header" not in request.received.body.decode()
    assert "defer_loading" not in request.received.body.decode()
    roles = {m["role"] for m in request.messages}
    assert roles <= {"system", "developer", "user", "assistant", "tool"}, roles
    # Claude Code's system prompt and its role:"system" environment message both reach the model.
    everything = request.system_text() + request.user_text()
    assert "Claude" in request.system_text()
    assert f"Primary working directory: {workdir}" in everything or str(workdir) in everything
    for tool in body.get("tools") or []:
        assert tool["type"] == "function" and tool["function"]["name"]


def assert_tool_results_follow(request: ChatRequest, calls: list[ToolCall]) -> None:
    """The assistant message that made ``calls`` is echoed back, followed by one ``role: "tool"``
    message per call, in order, each with the call's id."""
    messages = request.messages
    position = next(
        i
        for i, m in enumerate(messages)
        if m["role"] == "assistant" and any(c["id"] == calls[0].id for c in m.get("tool_calls") or [])
    )
    sent = messages[position]["tool_calls"]
    assert [c["id"] for c in sent] == [c.id for c in calls]
    for echoed, call in zip(sent, calls, strict=True):
        assert echoed["type"] == "function"
        assert echoed["function"]["name"] == call.name
        # Claude Code may add a tool's defaults (Edit's replace_all) to the input it echoes back.
        assert call.arguments.items() <= json.loads(echoed["function"]["arguments"]).items()
    following = messages[position + 1 : position + 1 + len(calls)]
    assert [m["role"] for m in following] == ["tool"] * len(calls)
    assert [m["tool_call_id"] for m in following] == [c.id for c in calls]


# --- 1. Write ------------------------------------------------------------------------------------


def test_write_tool_creates_the_file_and_the_answer_comes_after_the_result(
    claude: ClaudeCode, models: FakeOpenAIModels, workdir: Path
) -> None:
    target = workdir / "hello.txt"
    write = ToolCall("Write", {"file_path": str(target), "content": "Hello from anygate\n"})
    models.script(
        BIG_MODEL,
        Reply(text="I'll create the file.", tool_calls=[write]),
        lambda request: Reply(text=f"Done. The tool said: {request.tool_result(write)}"),
    )

    run = claude.run("Create hello.txt saying hello", *EDIT_FLAGS)

    run.assert_succeeded()
    assert target.read_text() == "Hello from anygate\n"
    first, second = models.requests(BIG_MODEL)
    assert "Write" in first.tool_names
    for request in (first, second):
        assert_translated_for_openai(request, workdir)
    assert_tool_results_follow(second, [write])
    assert str(target) in second.tool_result(write)
    assert run.result.startswith("Done. The tool said:")
    assert str(target) in run.result


# --- 2. Read, Edit, Bash -------------------------------------------------------------------------


def test_read_edit_bash_in_three_streamed_tool_turns(
    claude: ClaudeCode, models: FakeOpenAIModels, workdir: Path
) -> None:
    notes = workdir / "notes.txt"
    notes.write_text("status: draft\nowner: nobody\n")
    read = ToolCall("Read", {"file_path": str(notes)})
    edit = ToolCall("Edit", {"file_path": str(notes), "old_string": "draft", "new_string": "final"})
    bash = ToolCall("Bash", {"command": "ls", "description": "List the working directory"})

    def after_read(request: ChatRequest) -> Reply:
        assert "status: draft" in request.tool_result(read)
        return Reply(text="Now I'll edit it.", tool_calls=[edit])

    models.script(
        BIG_MODEL,
        Reply(text="Let me read the notes first.", tool_calls=[read]),
        after_read,
        Reply(text="Let me check the directory.", tool_calls=[bash]),
        lambda request: Reply(text=f"Edited. Directory listing: {request.tool_result(bash).strip()}"),
    )

    run = claude.run("Mark the notes final, then list the directory", *EDIT_FLAGS, "--allowedTools=Bash")

    run.assert_succeeded()
    assert notes.read_text() == "status: final\nowner: nobody\n"
    requests = models.requests(BIG_MODEL)
    assert len(requests) == 4
    for request in requests:
        assert_translated_for_openai(request, workdir)
    assert_tool_results_follow(requests[1], [read])
    assert_tool_results_follow(requests[2], [edit])
    assert_tool_results_follow(requests[3], [bash])
    assert "notes.txt" in requests[3].tool_result(bash)
    assert run.result == "Edited. Directory listing: notes.txt"


# --- 3. Reasoning --------------------------------------------------------------------------------


REASONING = "The user wants a plan file. Writing it directly with the Write tool is simplest."


@pytest.mark.parametrize(
    ("model_flag", "upstream_model"),
    [
        pytest.param("opus", BIG_MODEL, id="openai-drops-reasoning"),
        pytest.param("sonnet", REASONING_MODEL, id="deepseek-gets-reasoning-back"),
    ],
)
def test_upstream_reasoning_becomes_thinking_and_goes_back_next_turn(
    claude: ClaudeCode, models: FakeOpenAIModels, workdir: Path, model_flag: str, upstream_model: str
) -> None:
    """Reasoning streamed by the upstream reaches Claude Code as a signed thinking block. When Claude
    Code sends the conversation back, the thinking goes back the way the upstream wants it: as
    ``reasoning_content`` of the assistant message to DeepSeek (which requires it after tool calls), and
    not at all to OpenAI (which takes no reasoning in requests) — and never leaks into the text."""
    plan = workdir / "plan.txt"
    write = ToolCall("Write", {"file_path": str(plan), "content": "1. test\n2. ship\n"})
    models.script(
        upstream_model,
        Reply(reasoning=REASONING, text="Writing the plan.", tool_calls=[write]),
        Reply(reasoning="The file exists now; report back.", text="The plan is in plan.txt."),
    )

    run = claude.run("Write a two-step plan to plan.txt", "--model", model_flag, *EDIT_FLAGS)

    run.assert_succeeded()
    assert plan.read_text() == "1. test\n2. ship\n"
    assert run.result == "The plan is in plan.txt."
    thinking = [
        block
        for entry in run.transcript()
        if entry.get("type") == "assistant"
        for block in entry["message"]["content"]
        if block.get("type") == "thinking"
    ]
    assert [block["thinking"] for block in thinking] == [REASONING, "The file exists now; report back."]
    assert all(block["signature"] for block in thinking), "a thinking block must carry a signature"
    _first, second = models.requests(upstream_model)
    assert_translated_for_openai(
        second, workdir, allowed=("thinking",) if upstream_model == REASONING_MODEL else ()
    )
    assert_tool_results_follow(second, [write])
    echoed = next(m for m in second.messages if m["role"] == "assistant")
    assert echoed["content"] == "Writing the plan."
    if upstream_model == REASONING_MODEL:
        assert echoed["reasoning_content"] == REASONING
    else:
        assert "reasoning_content" not in echoed and REASONING not in second.received.body.decode()


# --- 4. Parallel tool calls ----------------------------------------------------------------------


def test_parallel_tool_calls_in_one_turn(claude: ClaudeCode, models: FakeOpenAIModels, workdir: Path) -> None:
    calls = [
        ToolCall("Write", {"file_path": str(workdir / "a.txt"), "content": "A\n"}),
        ToolCall("Write", {"file_path": str(workdir / "b.txt"), "content": "B\n"}),
        ToolCall("Write", {"file_path": str(workdir / "c.txt"), "content": "C\n"}),
    ]
    models.script(
        BIG_MODEL,
        Reply(text="Writing all three at once.", tool_calls=calls),
        Reply(text="All three files are written."),
    )

    run = claude.run("Create a.txt, b.txt and c.txt", *EDIT_FLAGS)

    run.assert_succeeded()
    assert {p.name: p.read_text() for p in workdir.iterdir()} == {
        "a.txt": "A\n",
        "b.txt": "B\n",
        "c.txt": "C\n",
    }
    _first, second = models.requests(BIG_MODEL)
    assert_tool_results_follow(second, calls)
    for call in calls:
        assert call.arguments["file_path"] in second.tool_result(call)
    assert run.result == "All three files are written."


# --- 5. The small model --------------------------------------------------------------------------


def test_haiku_class_sub_agent_is_routed_to_the_small_model(
    claude: ClaudeCode, models: FakeOpenAIModels, workdir: Path
) -> None:
    """The main model delegates to an Explore sub-agent on ``model: "haiku"`` (the Agent tool's own
    override), so Claude Code itself sends a request for ``claude-haiku-5-5``, which the config's
    ``claude-*haiku*`` pattern routes to the small backend."""
    agent = ToolCall(
        "Agent",
        {
            "description": "Count the files",
            "prompt": "How many files are in the working directory?",
            "subagent_type": "Explore",
            "model": "haiku",
            "run_in_background": False,
        },
    )
    models.script(
        BIG_MODEL,
        Reply(text="I'll delegate this.", tool_calls=[agent]),
        lambda request: Reply(text=f"The explorer reports: {request.tool_result(agent).strip()}"),
    )
    models.script(SMALL_MODEL, Reply(text="There are no files yet."))

    run = claude.run("How many files are here? Use an agent.")

    run.assert_succeeded()
    small = models.requests(SMALL_MODEL)
    assert len(small) == 1
    assert "How many files are in the working directory?" in small[0].user_text()
    assert_translated_for_openai(small[0], workdir)
    big = models.requests(BIG_MODEL)
    assert len(big) == 2
    assert_tool_results_follow(big[1], [agent])
    assert "There are no files yet." in big[1].tool_result(agent)
    assert run.result.startswith("The explorer reports:")
    assert "claude-haiku-5-5" in run.output["modelUsage"]


# --- 6. count_tokens -----------------------------------------------------------------------------


def _tokens(figure: str) -> float:
    """``"12.6k"`` → 12600, ``"1m"`` → 1000000, ``"950"`` → 950."""
    scale = {"k": 1e3, "m": 1e6}.get(figure[-1].lower(), 1.0)
    return float(figure.rstrip("kKmM")) * scale


def test_context_command_counts_tokens_through_the_gateway(
    claude: ClaudeCode, models: FakeOpenAIModels, config_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``/context`` makes Claude Code count its context with count_tokens, which the gateway answers
    (locally: an OpenAI upstream has no such endpoint). Claude Code runs with the environment
    ``anygate claude-code-env`` prints, so it also knows the backend's real context window."""
    port = int(claude.base_url.rsplit(":", 1)[1])
    environment = claude_code_env_exports(config_file, port, MASTER_KEY)
    assert environment["ANTHROPIC_BASE_URL"] == claude.base_url
    assert environment["ANTHROPIC_AUTH_TOKEN"] == MASTER_KEY

    with caplog.at_level(logging.INFO, logger="anygate.server"):
        run = claude.run("/context", env=environment)

    run.assert_succeeded()
    served = [r.getMessage() for r in caplog.records if "/v1/messages/count_tokens" in r.getMessage()]
    assert served, "Claude Code sent no count_tokens request"
    assert all(" 200 " in line for line in served), served
    match = re.search(r"\*\*Tokens:\*\* ([\d.]+[km]?) / ([\d.]+[km]?)", run.result)
    assert match is not None, run.result
    used, window = _tokens(match[1]), _tokens(match[2])
    # The system prompt and a dozen tool definitions: thousands of tokens, never a fake 0.
    assert 3_000 < used < 60_000, run.result
    # claude-opus-5-5 is served by the "claude-*" entry, whose model_info says 200000.
    assert window == 200_000
    system_tools = re.search(r"\| System tools \| ([\d.]+k?) \|", run.result)
    assert system_tools is not None and _tokens(system_tools[1]) > 1_000, run.result
    assert models.requests() == [], "counting must not call the model"


def test_claude_code_env_limits_reach_the_upstream(
    claude: ClaudeCode, models: FakeOpenAIModels, config_file: Path
) -> None:
    """Without the exports Claude Code asks for 128k output tokens, which the gateway caps at the serving
    deployment's ``max_output_tokens``; with them it asks for no more than the smallest of the config's."""
    port = int(claude.base_url.rsplit(":", 1)[1])
    models.script(BIG_MODEL, Reply(text="ok"))

    claude.run("hi").assert_succeeded()
    claude.run("hi", env=claude_code_env_exports(config_file, port, MASTER_KEY)).assert_succeeded()

    without, with_exports = models.requests(BIG_MODEL)
    assert without.body["max_completion_tokens"] == 16384
    assert with_exports.body["max_completion_tokens"] == 4096


# --- 7. 429 then success -------------------------------------------------------------------------


def test_rate_limit_is_retried_by_the_gateway(
    claude_binary_ready: None,
    start_gateway: Callable[..., GatewayServer],
    models: FakeOpenAIModels,
    workdir: Path,
    tmp_path: Path,
) -> None:
    gateway = start_gateway(num_retries=2)
    models.script(
        BIG_MODEL, Reply(text="Answered after a rate limit."), fail_first=[Failure(429, retry_after="0")]
    )

    run = ClaudeCode(gateway.url, MASTER_KEY, workdir, tmp_path / "home").run("hi")

    run.assert_succeeded()
    assert run.result == "Answered after a rate limit."
    assert len(models.requests(BIG_MODEL)) == 2


def test_rate_limit_reaches_claude_code_which_retries(
    claude: ClaudeCode, models: FakeOpenAIModels, caplog: pytest.LogCaptureFixture
) -> None:
    models.script(BIG_MODEL, Reply(text="Answered on Claude Code's retry."), fail_first=[Failure(429)])

    with caplog.at_level(logging.INFO, logger="anygate.server"):
        run = claude.run("hi", env={"CLAUDE_CODE_MAX_RETRIES": "2"})

    run.assert_succeeded()
    assert run.result == "Answered on Claude Code's retry."
    statuses = [r.getMessage().split()[3] for r in caplog.records if "POST /v1/messages " in r.getMessage()]
    assert statuses == ["429", "200"]
    assert len(models.requests(BIG_MODEL)) == 2


# --- gateway contract details --------------------------------------------------------------------


def test_pings_during_a_slow_stream_do_not_disturb_claude_code(
    claude_binary_ready: None,
    start_gateway: Callable[..., GatewayServer],
    models: FakeOpenAIModels,
    workdir: Path,
    tmp_path: Path,
) -> None:
    """A slow model leaves silences longer than the ping interval between its chunks, so the gateway
    puts ``ping`` events between content events; Claude Code takes them in stride."""
    gateway = start_gateway(ping_interval=0.05)
    write = ToolCall("Write", {"file_path": str(workdir / "slow.txt"), "content": "slow\n"})
    models.script(
        BIG_MODEL,
        Reply(text="Thinking slowly.", tool_calls=[write], pause=0.12),
        Reply(text="Written, slowly.", pause=0.12),
    )

    run = ClaudeCode(gateway.url, MASTER_KEY, workdir, tmp_path / "home").run("write slow.txt", *EDIT_FLAGS)

    run.assert_succeeded()
    assert (workdir / "slow.txt").read_text() == "slow\n"
    assert run.result == "Written, slowly."


def test_x_api_key_authentication_and_a_plain_text_turn(claude: ClaudeCode, models: FakeOpenAIModels) -> None:
    models.script(BIG_MODEL, Reply(text="Hi there."))

    run = claude.run("say hi", api_key_header=True)

    run.assert_succeeded()
    assert run.result == "Hi there."


def test_a_wrong_key_is_an_authentication_error(claude: ClaudeCode, models: FakeOpenAIModels) -> None:
    claude.auth_token = "sk-wrong"

    run = claude.run("say hi")

    assert run.returncode == 1 and run.output["is_error"] is True
    assert run.output["api_error_status"] == 401
    assert models.requests() == []


def test_model_discovery_lists_the_configured_models(
    claude: ClaudeCode, models: FakeOpenAIModels, caplog: pytest.LogCaptureFixture
) -> None:
    """With discovery on, Claude Code fetches ``GET /v1/models?limit=1000`` at start-up and keeps the
    ``claude``/``anthropic`` names with their display names for its /model picker."""
    models.script(BIG_MODEL, Reply(text="ok"))

    with caplog.at_level(logging.INFO, logger="anygate.server"):
        run = claude.run("say hi", env={"CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY": "1"})

    run.assert_succeeded()
    served = [r.getMessage() for r in caplog.records if " GET /v1/models " in r.getMessage()]
    assert len(served) == 1 and " 200 " in served[0], served
    cache = json.loads((claude.home / ".claude" / "cache" / "gateway-models.json").read_text())
    assert cache["baseUrl"] == claude.base_url
    assert cache["models"] == [{"id": "claude-big", "display_name": "Big model (listed)"}]


def test_models_list_answers_the_discovery_request_with_limits(
    start_gateway: Callable[..., GatewayServer],
) -> None:
    """The request exactly as Claude Code 2.1.328 sends it, and the answer in Anthropic's list format
    with the context window and output limit from ``model_info``."""
    gateway = start_gateway()
    request = urllib.request.Request(
        gateway.url + "/v1/models?limit=1000",
        headers={
            "authorization": f"Bearer {MASTER_KEY}",
            "anthropic-version": "2023-06-01",
            "user-agent": "claude-code/2.1.328",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        listing = json.loads(response.read())

    assert listing["has_more"] is False
    assert listing["first_id"] == listing["last_id"] == "claude-big"
    (entry,) = listing["data"]
    assert entry["type"] == "model"
    assert entry["id"] == "claude-big"
    assert entry["display_name"] == "Big model (listed)"
    assert entry["created_at"].endswith("Z")
    assert entry["max_input_tokens"] == 200_000
    assert entry["max_tokens"] == 16_384
