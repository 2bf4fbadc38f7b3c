"""Edge cases of server-tool turns: what the upstream is counted for, later calls that fail, the
summary call's output limit, forced tool choices, tool name clashes, malformed server blocks sent back,
and server blocks in a conversation that no longer offers the tool."""

from __future__ import annotations

from typing import Any

import anthropic
import orjson
import pytest

from anygate.providers.base import UpstreamRequest
from anygate.testing import MockResponse
from tests.tools.loop_support import (
    QUESTION,
    READ,
    WEB_SEARCH,
    RawScript,
    Script,
    completion,
    openai_error,
    raw_stream,
    sdk_over,
)
from tests.tools.loop_support import scripted_gateway as gateway

CLIENT_SEARCH = {
    "name": "ToolSearch",
    "description": "Load deferred tools by keyword.",
    "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}},
}
REGEX_SEARCH = {"type": "tool_search_tool_regex_20251119", "name": "tool_search_tool_regex"}
# 60 MCP-style deferred tools, about 500 tokens each: ~30k tokens that never reach the upstream.
DEFERRED = [
    {
        "name": f"mcp__srv__tool_{i}",
        "description": "Does a thing with many words. " * 60,
        "input_schema": {
            "type": "object",
            "properties": {"x": {"type": "string", "description": "an argument " * 20}},
        },
        "defer_loading": True,
    }
    for i in range(60)
]


@pytest.mark.parametrize("search", [CLIENT_SEARCH, REGEX_SEARCH], ids=["claude_code_toolsearch", "server"])
async def test_deferred_tools_do_not_count_toward_max_input_tokens(search: dict[str, Any]) -> None:
    """Deferred tools never reach the upstream, so they do not count toward ``max_input_tokens``:
    Claude Code with many MCP tools on a small window is answered, not told its prompt is too long
    (compaction cannot shrink tool definitions)."""
    script = Script(completion(text="hello"))
    async with sdk_over(gateway(script, model_info={"max_input_tokens": 8000})) as sdk:
        message = await sdk.messages.create(
            model="up",
            max_tokens=100,
            messages=[{"role": "user", "content": "hi"}],
            tools=[READ, search, *DEFERRED],  # type: ignore[list-item]
        )
    assert message.content[0].type == "text"
    assert len(script.bodies) == 1


SEARCH_CALL = completion(calls=[("call_1", "web_search", {"query": "python news"})])
OVERFLOW = openai_error(
    400,
    "This model's maximum context length is 128000 tokens. However, your messages resulted in "
    "130000 tokens. Please reduce the length of the messages.",
    "context_length_exceeded",
)


async def test_overflow_on_a_later_call_of_a_streamed_turn_is_prompt_too_long() -> None:
    """A search result that pushes a later call past the window ends the stream with Anthropic's
    ``prompt is too long`` error, which Claude Code compacts on, not the upstream's own wording."""
    script = RawScript(SEARCH_CALL, OVERFLOW)
    events = await raw_stream(
        gateway(script), {"model": "up", "max_tokens": 50, "messages": QUESTION, "tools": [WEB_SEARCH]}
    )
    error = events[-1]
    assert error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert error["error"]["message"].startswith("prompt is too long")


async def test_a_transient_failure_of_a_later_call_is_retried() -> None:
    """Nothing of a later call reached the client before it failed, so a 500 there is retried on the
    same deployment (``num_retries``) and the turn completes without running its searches again."""
    script = RawScript(
        SEARCH_CALL,
        openai_error(500, "The server had an error while processing your request."),
        completion(text="Python 3.14 is out."),
    )
    events = await raw_stream(
        gateway(script, retries=2),
        {"model": "up", "max_tokens": 50, "messages": QUESTION, "tools": [WEB_SEARCH]},
    )
    assert [e["type"] for e in events if e["type"] == "error"] == []
    assert events[-1]["type"] == "message_stop"


LONG_HISTORY = [
    {"role": "user", "content": "word " * 60_000},
    {"role": "assistant", "content": "Noted."},
    {"role": "user", "content": "Now write the report."},
]
COMPACT = {"edits": [{"type": "compact_20260112", "trigger": {"type": "input_tokens", "value": 50_000}}]}


class LimitedModel(Script):
    """An upstream whose model writes at most 4096 tokens and refuses more, as OpenAI does."""

    def answer(self, request: UpstreamRequest) -> MockResponse:
        body = orjson.loads(request.body)
        asked = body.get("max_completion_tokens") or body.get("max_tokens") or 0
        if asked > 4096:
            self.bodies.append(body)
            self.replies.insert(len(self.bodies) - 1, {})
            return openai_error(
                400, f"max_tokens is too large: {asked}. This model supports at most 4096 completion tokens"
            )
        return super().answer(request)


async def test_the_summary_call_respects_the_deployments_max_output_tokens() -> None:
    """The summarising call is capped at the deployment's ``model_info.max_output_tokens``, like
    every request, so compaction works on models with a small output limit."""
    script = LimitedModel(completion(text="<summary>S</summary>"), completion(text="Report."))
    params: dict[str, Any] = {
        "model": "up",
        "max_tokens": 1000,
        "messages": LONG_HISTORY,
        "context_management": COMPACT,
        "betas": ["compact-2026-01-12"],
    }
    async with sdk_over(gateway(script, model_info={"max_output_tokens": 4096})) as sdk:
        message = await sdk.beta.messages.create(**params)
    assert [b.type for b in message.content] == ["compaction", "text"]
    assert all((b.get("max_completion_tokens") or b.get("max_tokens")) <= 4096 for b in script.bodies)


async def test_a_newer_tool_search_version_runs_the_same_search() -> None:
    """A dated type Anthropic may add later (``tool_search_tool_regex_2026…``) takes the same input,
    so it runs the same search instead of failing the request."""
    script = Script(
        completion(calls=[("call_s", "tool_search_tool_regex", {"pattern": "read"})]), completion(text="x")
    )
    tool = {"type": "tool_search_tool_regex_20260101", "name": "tool_search_tool_regex"}
    deferred = {**READ, "name": "read_notes", "defer_loading": True}
    async with sdk_over(gateway(script)) as sdk:
        message = await sdk.messages.create(  # type: ignore[call-overload]
            model="up", max_tokens=10, messages=QUESTION, tools=[READ, tool, deferred]
        )
    assert [b.type for b in message.content] == ["server_tool_use", "tool_search_tool_result", "text"]
    assert [t["function"]["name"] for t in script.bodies[1]["tools"]][-1] == "read_notes"


async def test_a_client_tool_named_like_a_server_tool_is_refused() -> None:
    """Tool names are unique, as Anthropic requires (a 400): a client tool named like a server tool
    would otherwise be run as the server tool."""
    script = Script(completion(text="x"))
    own = {"name": "web_search", "description": "Search our wiki.", "input_schema": {"type": "object"}}
    async with sdk_over(gateway(script)) as sdk:
        with pytest.raises(anthropic.BadRequestError):
            await sdk.messages.create(model="up", max_tokens=10, messages=QUESTION, tools=[own, WEB_SEARCH])  # type: ignore[list-item]
    assert script.bodies == []


@pytest.mark.parametrize(
    "use",
    [
        {"type": "server_tool_use", "name": "web_search", "input": {"query": "q"}},  # no id
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": "q"},  # not an object
    ],
    ids=["missing_id", "string_input"],
)
async def test_a_malformed_server_tool_use_sent_back_is_refused(use: dict[str, Any]) -> None:
    """A ``server_tool_use`` sent back without an id or with an input that is not an object is
    Anthropic's 400, never a malformed call sent upstream."""
    history = [
        *QUESTION,
        {
            "role": "assistant",
            "content": [
                use,
                {"type": "web_search_tool_result", "tool_use_id": use.get("id", ""), "content": []},
                {"type": "text", "text": "Nothing found."},
            ],
        },
        {"role": "user", "content": "Try again."},
    ]
    script = Script(completion(text="x"))
    async with sdk_over(gateway(script)) as sdk:
        with pytest.raises(anthropic.BadRequestError):
            await sdk.messages.create(model="up", max_tokens=10, messages=history, tools=[WEB_SEARCH])  # type: ignore[arg-type]
    assert script.bodies == []


async def test_a_forced_tool_choice_is_not_forced_again_after_the_server_tool_ran() -> None:
    """A ``tool_choice`` that forces the server tool applies to the turn's first call; later calls get
    ``auto``, so the model can answer instead of searching until the turn pauses."""
    script = Script(
        completion(calls=[("call_1", "web_search", {"query": "python"})]),
        completion(text="Python 3.14 is out."),
    )
    async with sdk_over(gateway(script)) as sdk:
        await sdk.messages.create(
            model="up",
            max_tokens=50,
            messages=QUESTION,
            tools=[WEB_SEARCH],  # type: ignore[list-item]
            tool_choice={"type": "tool", "name": "web_search"},
        )
    assert script.bodies[0]["tool_choice"] == {"type": "function", "function": {"name": "web_search"}}
    assert script.bodies[1].get("tool_choice") in (None, "auto")
