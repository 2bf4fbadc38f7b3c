"""Server tools through the whole gateway: the official SDK as the client, an OpenAI-shaped upstream.

The upstream is scripted per call (``Script``) and records what it was sent, so each test checks both
faces: the Message (or stream) the SDK gets, and the Chat Completions requests the loop made.
"""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from anygate.protocol.accumulate import accumulate
from tests.tools.loop_support import Script, client, completion

DEFERRED = [
    {
        "name": f"{service}_{verb}",
        "description": f"{verb.title()} a {service} item.",
        "input_schema": {"type": "object", "properties": {"id": {"type": "string"}}},
        "defer_loading": True,
    }
    for service in ("jira", "github", "slack")
    for verb in ("create", "delete", "list")
]
READ = {"name": "Read", "description": "Read a file.", "input_schema": {"type": "object", "properties": {}}}
SEARCH_TOOL = {"type": "tool_search_tool_regex_20251119", "name": "tool_search_tool_regex"}
TOOLS = [READ, SEARCH_TOOL, *DEFERRED]
QUESTION = [{"role": "user", "content": "Open a jira ticket."}]


def search_then_call() -> Script:
    return Script(
        completion(
            text="Let me find the tool.", calls=[("call_s1", "tool_search_tool_regex", {"pattern": "jira"})]
        ),
        completion(calls=[("call_j1", "jira_create", {"id": "T-1"})]),
    )


async def ask(
    script: Script, *, stream: bool, messages: list[dict[str, Any]] = QUESTION
) -> anthropic.types.Message:
    async with client(script) as sdk:
        if not stream:
            return await sdk.messages.create(model="up", max_tokens=200, messages=messages, tools=TOOLS)  # type: ignore[arg-type]
        async with sdk.messages.stream(model="up", max_tokens=200, messages=messages, tools=TOOLS) as events:  # type: ignore[arg-type]
            return await events.get_final_message()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_tool_search_finds_a_deferred_tool_and_the_model_calls_it(stream: bool) -> None:
    script = search_then_call()
    message = await ask(script, stream=stream)

    assert [b.type for b in message.content] == [
        "text",
        "server_tool_use",
        "tool_search_tool_result",
        "tool_use",
    ]
    use, result, call = message.content[1], message.content[2], message.content[3]
    assert isinstance(use, anthropic.types.ServerToolUseBlock)
    assert (use.name, use.input, use.id) == ("tool_search_tool_regex", {"pattern": "jira"}, "srvtoolu_s1")
    assert isinstance(result, anthropic.types.ToolSearchToolResultBlock)
    assert result.tool_use_id == use.id
    assert isinstance(result.content, anthropic.types.ToolSearchToolSearchResultBlock)
    assert [r.tool_name for r in result.content.tool_references] == [
        "jira_create",
        "jira_delete",
        "jira_list",
    ]
    assert isinstance(call, anthropic.types.ToolUseBlock)
    assert (call.name, call.input) == ("jira_create", {"id": "T-1"})
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (200, 20)

    # the upstream saw the search function but no deferred tool, then the three it found
    assert script.tool_names(0) == ["Read", "tool_search_tool_regex"]
    assert script.tool_names(1) == [
        "Read",
        "tool_search_tool_regex",
        "jira_create",
        "jira_delete",
        "jira_list",
    ]
    second = script.bodies[1]["messages"]
    assert second[-2]["tool_calls"][0]["function"]["name"] == "tool_search_tool_regex"
    assert second[-1]["role"] == "tool"
    assert second[-1]["tool_call_id"] == "srvtoolu_s1"
    assert "jira_create" in second[-1]["content"]


async def test_found_tools_stay_loaded_on_the_next_turn() -> None:
    first = search_then_call()
    message = await ask(first, stream=False)
    later = Script(completion(text="Ticket T-1 is open."))
    history = [
        *QUESTION,
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in message.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "call_j1", "content": "created T-1"}],
        },
    ]
    answer = await ask(later, stream=False, messages=history)

    assert [b.type for b in answer.content] == ["text"]
    assert later.tool_names(0) == [
        "Read",
        "tool_search_tool_regex",
        "jira_create",
        "jira_delete",
        "jira_list",
    ]
    roles = [m["role"] for m in later.bodies[0]["messages"]]
    assert roles == ["user", "assistant", "tool", "assistant", "tool"]


async def test_a_streamed_turn_accumulates_to_the_json_answer() -> None:
    as_json = await ask(search_then_call(), stream=False)
    script = search_then_call()
    async with client(script) as sdk:
        stream = await sdk.messages.create(
            model="up",
            max_tokens=200,
            messages=QUESTION,
            tools=TOOLS,
            stream=True,  # type: ignore[arg-type]
        )
        events = [event.model_dump(exclude_none=True) async for event in stream]
    streamed_message = accumulate(events)
    expected = {**as_json.model_dump(exclude_none=True), "id": streamed_message["id"], "stop_sequence": None}
    assert streamed_message == expected
    kinds = [e["type"] for e in events]
    assert kinds.count("message_start") == 1 and kinds[-1] == "message_stop"
    starts = [e["index"] for e in events if e["type"] == "content_block_start"]
    assert starts == [0, 1, 2, 3]


async def test_an_invalid_pattern_is_a_result_the_model_reads_not_a_failure() -> None:
    script = Script(
        completion(calls=[("call_s1", "tool_search_tool_regex", {"pattern": "(unclosed"})]),
        completion(text="I could not search."),
    )
    message = await ask(script, stream=False)
    result = message.content[1]
    assert isinstance(result, anthropic.types.ToolSearchToolResultBlock)
    assert isinstance(result.content, anthropic.types.ToolSearchToolResultError)
    assert result.content.error_code == "invalid_tool_input"
    assert script.bodies[1]["messages"][-1]["role"] == "tool"
    assert message.stop_reason == "end_turn"


async def test_a_deferred_search_tool_is_refused_like_anthropic_does() -> None:
    script = Script()
    async with client(script) as sdk:
        with pytest.raises(anthropic.BadRequestError) as caught:
            await sdk.messages.create(
                model="up",
                max_tokens=50,
                messages=QUESTION,
                tools=[READ, {**SEARCH_TOOL, "defer_loading": True}, *DEFERRED],
            )  # type: ignore[arg-type]
    assert "defer_loading" in str(caught.value)
    assert script.bodies == []


CLIENT_SEARCH = {
    "name": "ToolSearch",
    "description": "Load deferred tools by name or keyword.",
    "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}},
}
PLACEHOLDER = {
    "name": "DeferredToolPlaceholder",
    "description": "Keeps deferred loading on; never call it.",
    "input_schema": {"type": "object", "properties": {}},
    "defer_loading": True,
}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_a_client_side_search_loads_the_tools_its_references_name(stream: bool) -> None:
    """Claude Code's own ToolSearch: no server tool in the request, deferred tools (and a deferred
    placeholder), and the client's ``tool_result`` naming the found tool in a ``tool_reference``. The
    upstream gets the tools not deferred, then the referenced one too, and reads the reference as text."""
    tools = [READ, CLIENT_SEARCH, PLACEHOLDER, *[{**tool, "defer_loading": True} for tool in DEFERRED]]
    search = {"type": "tool_use", "id": "toolu_s1", "name": "ToolSearch", "input": {"query": "jira create"}}
    found = {"type": "tool_reference", "tool_name": "jira_create"}
    history = [
        *QUESTION,
        {"role": "assistant", "content": [search]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_s1", "content": [found]},
                {"type": "text", "text": "Tool loaded."},
            ],
        },
    ]
    first = Script(completion(calls=[("call_s1", "ToolSearch", {"query": "jira create"})]))
    second = Script(completion(calls=[("call_j1", "jira_create", {"id": "T-1"})]))
    answers = []
    for script, messages in ((first, QUESTION), (second, history)):
        async with client(script) as sdk:
            params: dict[str, Any] = {"model": "up", "max_tokens": 200, "messages": messages, "tools": tools}
            if stream:
                async with sdk.messages.stream(**params) as events:
                    answers.append(await events.get_final_message())
            else:
                answers.append(await sdk.messages.create(**params))

    assert [(b.type, getattr(b, "name", None)) for b in answers[0].content] == [("tool_use", "ToolSearch")]
    assert [(b.type, getattr(b, "name", None)) for b in answers[1].content] == [("tool_use", "jira_create")]
    assert first.tool_names(0) == ["Read", "ToolSearch"]
    assert second.tool_names(0) == ["Read", "ToolSearch", "jira_create"]
    sent = second.bodies[0]["messages"]
    assert sent[2] == {"role": "tool", "tool_call_id": "toolu_s1", "content": "Tool loaded: jira_create"}
    assert all("defer_loading" not in str(body) for body in (*first.bodies, *second.bodies))


async def test_a_client_side_reference_to_an_undefined_tool_is_refused_like_anthropic_does() -> None:
    script = Script()
    history = [
        *QUESTION,
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_s1", "name": "ToolSearch", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_s1",
                    "content": [{"type": "tool_reference", "tool_name": "no_such_tool"}],
                }
            ],
        },
    ]
    async with client(script) as sdk:
        with pytest.raises(anthropic.BadRequestError) as caught:
            await sdk.messages.create(
                model="up", max_tokens=50, messages=history, tools=[READ, CLIENT_SEARCH, PLACEHOLDER]
            )  # type: ignore[arg-type]
    assert "no_such_tool" in str(caught.value)
    assert script.bodies == []


# --- compaction -------------------------------------------------------------------------------------

LONG_HISTORY = [
    {"role": "user", "content": "word " * 60_000},
    {"role": "assistant", "content": "Noted."},
    {"role": "user", "content": "Now write the report."},
]
COMPACT = {"edits": [{"type": "compact_20260112", "trigger": {"type": "input_tokens", "value": 50_000}}]}


async def compact(script: Script, *, stream: bool, pause: bool = False) -> anthropic.types.beta.BetaMessage:
    management = (
        COMPACT if not pause else {"edits": [{**COMPACT["edits"][0], "pause_after_compaction": True}]}
    )
    params: dict[str, Any] = {
        "model": "up",
        "max_tokens": 200,
        "messages": LONG_HISTORY,
        "context_management": management,
        "betas": ["compact-2026-01-12"],
    }
    async with client(script) as sdk:
        if not stream:
            return await sdk.beta.messages.create(**params)
        async with sdk.beta.messages.stream(**params) as events:
            return await events.get_final_message()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_a_conversation_past_its_trigger_is_summarised_then_answered(stream: bool) -> None:
    script = Script(
        completion(text="<summary>The user wants a report.</summary>"), completion(text="Report.")
    )
    message = await compact(script, stream=stream)

    assert [b.type for b in message.content] == ["compaction", "text"]
    assert message.content[0].content == "The user wants a report."  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    iterations = [(i.type, i.input_tokens) for i in message.usage.iterations or []]  # type: ignore[union-attr]
    assert iterations == [("compaction", 100), ("message", 100)]
    assert (message.usage.input_tokens, message.usage.output_tokens) == (100, 10)
    # the summariser saw the whole conversation and no tools; the answer only the summary
    summarising, answering = script.bodies
    assert "word word" in summarising["messages"][0]["content"]
    assert "tools" not in summarising
    assert all("word word" not in str(m) for m in answering["messages"])
    assert "The user wants a report." in str(answering["messages"])


async def test_pause_after_compaction_stops_with_the_summary_alone() -> None:
    script = Script(completion(text="<summary>S</summary>"))
    message = await compact(script, stream=True, pause=True)
    assert [b.type for b in message.content] == ["compaction"]
    assert message.stop_reason == "compaction"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (0, 0)
    assert len(script.bodies) == 1


async def test_below_the_trigger_nothing_is_summarised() -> None:
    script = Script(completion(text="Short."))
    params: dict[str, Any] = {
        "model": "up",
        "max_tokens": 200,
        "messages": QUESTION,
        "context_management": COMPACT,
        "betas": ["compact-2026-01-12"],
    }
    async with client(script) as sdk:
        message = await sdk.beta.messages.create(**params)
    assert [b.type for b in message.content] == ["text"]
    assert len(script.bodies) == 1
