"""Server-tool blocks in a conversation, rewritten as the client-tool calls and results other APIs read."""

from __future__ import annotations

from typing import Any

from anygate.tools.history import NO_RESULT, upstream_messages


def render(block: dict[str, Any]) -> tuple[str, bool]:
    content = block["content"]
    error = isinstance(content, dict) and content["type"].endswith("_error")
    return f"rendered {block['type']} for {block['tool_use_id']}", error


def use(call_id: str, name: str = "web_search") -> dict[str, Any]:
    return {"type": "server_tool_use", "id": call_id, "name": name, "input": {"query": "q"}}


def result(call_id: str, error: bool = False) -> dict[str, Any]:
    content = {"type": "web_search_tool_result_error", "error_code": "unavailable"} if error else []
    return {"type": "web_search_tool_result", "tool_use_id": call_id, "content": content}


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def test_a_call_and_its_result_become_a_tool_use_and_a_user_tool_result() -> None:
    messages = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": [text("Searching."), use("s1"), result("s1"), text("Sunny.")]},
        {"role": "user", "content": "Thanks"},
    ]
    assert upstream_messages(messages, render) == [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": [
                text("Searching."),
                {"type": "tool_use", "id": "s1", "name": "web_search", "input": {"query": "q"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "s1",
                    "content": "rendered web_search_tool_result for s1",
                }
            ],
        },
        {"role": "assistant", "content": [text("Sunny.")]},
        {"role": "user", "content": "Thanks"},
    ]


def test_parallel_calls_share_one_assistant_turn_and_one_result_turn() -> None:
    messages = [{"role": "assistant", "content": [use("a"), use("b"), result("a"), result("b", error=True)]}]
    out = upstream_messages(messages, render)
    assert [m["role"] for m in out] == ["assistant", "user"]
    assert [b["id"] for b in out[0]["content"]] == ["a", "b"]
    assert [(b["tool_use_id"], b.get("is_error", False)) for b in out[1]["content"]] == [
        ("a", False),
        ("b", True),
    ]


def test_results_go_first_in_the_clients_next_user_turn() -> None:
    """A server call next to a client call: the client's tool_result follows in its own user message,
    merged after the server result so the turn alternates as every API requires."""
    client_call = {"type": "tool_use", "id": "t1", "name": "Read", "input": {}}
    messages = [
        {"role": "assistant", "content": [use("a"), client_call, result("a")]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "file"}]},
    ]
    out = upstream_messages(messages, render)
    assert [m["role"] for m in out] == ["assistant", "user"]
    assert [b["type"] for b in out[0]["content"]] == ["tool_use", "tool_use"]
    assert [b["tool_use_id"] for b in out[1]["content"]] == ["a", "t1"]


def test_a_call_without_a_result_gets_one_saying_so() -> None:
    out = upstream_messages([{"role": "assistant", "content": [use("a"), text("then")]}], render)
    assert out[1]["content"] == [
        {"type": "tool_result", "tool_use_id": "a", "content": NO_RESULT, "is_error": True}
    ]
    assert out[2] == {"role": "assistant", "content": [text("then")]}


def test_messages_without_server_blocks_are_the_same_objects() -> None:
    messages = [{"role": "user", "content": [text("a")]}, {"role": "assistant", "content": [text("b")]}]
    out = upstream_messages(messages, render)
    assert all(x is y for x, y in zip(out, messages, strict=True))


def test_tool_references_in_a_clients_tool_result_become_text() -> None:
    found = {
        "type": "tool_result",
        "tool_use_id": "t1",
        "content": [{"type": "tool_reference", "tool_name": "jira_create"}],
    }
    out = upstream_messages([{"role": "user", "content": [found]}], render)
    assert out[0]["content"][0]["content"] == [{"type": "text", "text": "Tool loaded: jira_create"}]
