"""Tool search run by the gateway: the searches over a ~200-tool MCP catalogue, Anthropic's limits and
error codes, the blocks (checked with the official SDK's types), and what the upstream is sent."""

from __future__ import annotations

import copy
import math
import time
from typing import Any

import anthropic.types as sdk
import anthropic.types.beta as beta
import pytest
from pydantic import TypeAdapter

from anygate.protocol.errors import GatewayError
from anygate.tools.tool_search import (
    ALL_DEFERRED,
    MAX_DEFERRED_TOOLS,
    MAX_RESULTS,
    ToolSearchError,
    bm25_scores,
    check_request,
    deferred_tools,
    describe_loaded,
    loaded_tool_names,
    model_function,
    render_result_block,
    result_block,
    search_tools,
    tokenize,
    tool_search_kind,
    upstream_tools,
)
from tests.tools.mcp_catalog import catalog

CATALOG = catalog()
REGEX_TOOL = {"type": "tool_search_tool_regex_20251119", "name": "tool_search_tool_regex"}
BM25_TOOL = {"type": "tool_search_tool_bm25_20251119", "name": "tool_search_tool_bm25"}
INVALID = "Invalid regular expression pattern: "
READ = {"name": "Read", "description": "Read a file", "input_schema": {"type": "object", "properties": {}}}


def test_the_catalogue_is_realistic() -> None:
    assert len(CATALOG) == len({tool["name"] for tool in CATALOG}) == 199
    assert deferred_tools([READ, *CATALOG]) == CATALOG


# --- regex -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("weather", ["get_weather"]),
        # Name matches first, in catalogue order; then a description match (github_add_issue_comment's
        # name has no "github…issue" order problem: it matches in its name too, later in the catalogue).
        (
            "github.*issue",
            ["github_create_issue", "github_get_issue", "github_list_issues", "github_update_issue",
             "github_add_issue_comment"],
        ),
        # Only an argument's description says "IANA … zone".
        ("time.?zone|IANA", ["calendar_create_event"]),
        # A name match (merge) ranks before argument matches ("Branch to merge into").
        ("merge|squash",
         ["github_merge_pull_request", "github_create_pull_request", "github_update_pull_request"]),
        ("^jira_.*sprint",
         ["jira_create_sprint", "jira_get_sprint", "jira_list_sprints", "jira_update_sprint",
          "jira_delete_sprint"]),
        # Case-insensitive, as Anthropic documents.
        ("PROMQL", ["grafana_query_prometheus"]),
        ("story points", ["linear_create_issue", "linear_update_issue"]),
        ("get_.*_issue$", []),
        ("(?i)^slack_send", ["slack_send_message"]),
    ],
)  # fmt: skip
def test_regex_search(pattern: str, expected: list[str]) -> None:
    assert search_tools("regex", {"pattern": pattern}, CATALOG) == expected


def test_regex_returns_at_most_five_best_first() -> None:
    found = search_tools("regex", {"pattern": "slack"}, CATALOG)
    assert isinstance(found, list) and len(found) == MAX_RESULTS
    assert all(name.startswith("slack_") for name in found)


def test_regex_searches_argument_names() -> None:
    # "pull_number" is an argument name of one tool only.
    assert search_tools("regex", {"pattern": "^pull_number$"}, CATALOG) == ["github_merge_pull_request"]


def test_regex_reads_nested_schemas() -> None:
    tool = {
        "name": "deploy",
        "description": "Deploy a service.",
        "input_schema": {
            "type": "object",
            "properties": {
                "target": {"type": "array", "items": {"$ref": "#/$defs/T"}},
                "mode": {
                    "anyOf": [{"type": "object", "properties": {"canary_percent": {"type": "integer"}}}]
                },
            },
            "$defs": {"T": {"type": "object", "properties": {"region": {"description": "AWS region code"}}}},
        },
    }
    assert search_tools("regex", {"pattern": "canary"}, [tool]) == ["deploy"]
    assert search_tools("regex", {"pattern": "aws region"}, [tool]) == ["deploy"]


@pytest.mark.parametrize(
    ("tool_input", "message"),
    [
        ({"pattern": "("}, f"{INVALID}missing ), unterminated subpattern at position 0"),
        ({"pattern": "a{2,1}"}, f"{INVALID}min repeat greater than max repeat at position 2"),
        ({"pattern": "x" * 201}, "The pattern is 201 characters long; the maximum is 200."),
        ({"pattern": ""}, "The input needs a non-empty 'pattern' string."),
        ({"query": "weather"}, "The input needs a non-empty 'pattern' string."),
        ({"pattern": 3}, "The input needs a non-empty 'pattern' string."),
        ("weather", "The input needs a non-empty 'pattern' string."),
    ],
)  # fmt: skip
def test_invalid_regex_input(tool_input: object, message: str) -> None:
    assert search_tools("regex", tool_input, CATALOG) == ToolSearchError("invalid_tool_input", message)


def test_pattern_of_200_characters_is_accepted() -> None:
    assert search_tools("regex", {"pattern": "weather|" + "x" * 192}, CATALOG) == ["get_weather"]


def test_a_catastrophic_pattern_stops_at_its_deadline() -> None:
    """``(a|aa)+$`` backtracks exponentially on a long run of a's; Python's ``re`` would not return
    within the lifetime of the test. The search answers execution_time_exceeded at its deadline."""
    victim = {"name": "victim", "description": "a" * 60 + "!", "input_schema": {"type": "object"}}
    started = time.monotonic()
    outcome = search_tools("regex", {"pattern": "(a|aa)+$"}, [victim], deadline=0.05)
    assert time.monotonic() - started < 0.5
    assert outcome == ToolSearchError("execution_time_exceeded", "The search ran past its time limit.")


def test_oversized_texts_are_read_up_to_their_cap() -> None:
    tool = {"name": "big", "description": "x" * 20_000 + "needle", "input_schema": {"type": "object"}}
    assert search_tools("regex", {"pattern": "needle"}, [tool]) == []
    assert search_tools("regex", {"pattern": "^x+$"}, [tool]) == ["big"]


# --- BM25 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("send a message to a slack channel",
         ["slack_send_message", "slack_get_channel_history", "slack_search_messages", "slack_add_reaction",
          "gmail_send_email"]),
        ("merge pull request",
         ["github_merge_pull_request", "github_update_pull_request", "github_create_pull_request",
          "github_get_pull_request", "github_list_pull_requests"]),
        ("schedule a meeting with attendees", ["calendar_find_free_time", "calendar_create_event"]),
        ("error stack trace", ["sentry_get_event", "sentry_list_issues"]),
        ("forecast for Paris", ["get_weather", "calendar_create_event"]),
        ("createIssue linear",
         ["linear_create_issue", "linear_get_issue", "linear_delete_issue", "linear_update_issue",
          "linear_list_issues"]),
        ("run SQL query on the database",
         ["postgres_run_query", "postgres_explain_query", "notion_query_database", "postgres_create_view",
          "grafana_query_loki"]),
        ("the", []),
        ("kubernetes", []),
    ],
)  # fmt: skip
def test_bm25_search(query: str, expected: list[str]) -> None:
    assert search_tools("bm25", {"query": query}, CATALOG) == expected


def test_bm25_puts_the_named_tool_first() -> None:
    for query, first in [
        ("create a github issue", "github_create_issue"),
        ("move jira ticket to done", "jira_transition_issue"),
        ("log time spent on a ticket", "jira_create_worklog"),
        ("upload a file", "slack_upload_file"),
        ("what is the air quality in Lyon", "get_air_quality"),
    ]:
        found = search_tools("bm25", {"query": query}, CATALOG)
        assert isinstance(found, list) and found[0] == first, query


def test_bm25_scores_follow_the_formula() -> None:
    """Worked by hand: N = 3, average length 10/3, query "slack" with df = 2, k1 = 1.2, b = 0.75."""
    documents = [
        ["slack", "send", "message"],
        ["github", "create", "issue"],
        ["slack", "list", "channel", "slack"],
    ]
    idf = math.log(1 + 1.5 / 2.5)
    expected = [idf * 2.2 / (1 + 1.2 * 0.925), 0.0, idf * 2 * 2.2 / (2 + 1.2 * 1.15)]
    assert bm25_scores(["slack"], documents) == pytest.approx(expected)
    assert bm25_scores(["slack", "slack"], documents) == pytest.approx(expected)  # a word counts once
    assert bm25_scores(["slack"], []) == []


def test_tokenize() -> None:
    assert tokenize("github_createPullRequests for the Issues") == [
        "github",
        "create",
        "pull",
        "request",
        "issue",
    ]
    assert tokenize("branches boxes status address") == ["branch", "box", "status", "address"]


@pytest.mark.parametrize(
    ("tool_input", "message"),
    [
        ({"query": "x" * 501}, "The query is 501 characters long; the maximum is 500."),
        ({"query": "   "}, "The input needs a non-empty 'query' string."),
        ({"pattern": "weather"}, "The input needs a non-empty 'query' string."),
    ],
)
def test_invalid_bm25_input(tool_input: object, message: str) -> None:
    assert search_tools("bm25", tool_input, CATALOG) == ToolSearchError("invalid_tool_input", message)


def test_bm25_query_of_500_characters_is_accepted() -> None:
    assert search_tools("bm25", {"query": "weather " + "z" * 492}, CATALOG) == ["get_weather"]


def test_searches_skip_tools_without_a_name() -> None:
    assert search_tools("bm25", {"query": "weather"}, [{"description": "weather"}, "x", *CATALOG]) == [
        "get_weather"
    ]


# --- the function the model sees -----------------------------------------------------------------


@pytest.mark.parametrize(("kind", "field"), [("regex", "pattern"), ("bm25", "query")])
def test_model_function(kind: Any, field: str) -> None:
    function = model_function(kind, deferred_count=199)
    TypeAdapter(sdk.ToolParam).validate_python(function)
    assert function["name"] == f"tool_search_tool_{kind}"
    assert function["input_schema"]["required"] == [field]
    assert list(function["input_schema"]["properties"]) == [field]
    assert "199 more tools can be loaded on demand" in function["description"]
    assert "github_create_issue" not in str(function)  # the tools themselves are not listed
    assert model_function(kind, name="finder")["name"] == "finder"
    assert "1 more tool can be loaded on demand" in model_function(kind, deferred_count=1)["description"]


def test_tool_search_kind() -> None:
    assert tool_search_kind(REGEX_TOOL) == "regex"
    assert tool_search_kind({"type": "tool_search_tool_regex", "name": "tool_search_tool_regex"}) == "regex"
    assert tool_search_kind(BM25_TOOL) == "bm25"
    assert tool_search_kind({"type": "tool_search_tool_bm25"}) == "bm25"
    assert tool_search_kind(READ) is None
    assert tool_search_kind({"type": "web_search_20250305"}) is None
    assert tool_search_kind("tool_search_tool_bm25") is None


# --- blocks ----------------------------------------------------------------------------------------


def message_with(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": list(blocks),
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }


USE = {
    "type": "server_tool_use",
    "id": "srvtoolu_01",
    "name": "tool_search_tool_regex",
    "input": {"pattern": "x"},
}


def test_result_block_validates_with_the_sdk() -> None:
    found = search_tools("regex", {"pattern": "github.*issue"}, CATALOG)
    assert isinstance(found, list)
    block = result_block("srvtoolu_01", found)
    assert block == {
        "type": "tool_search_tool_result",
        "tool_use_id": "srvtoolu_01",
        "content": {
            "type": "tool_search_tool_search_result",
            "tool_references": [{"type": "tool_reference", "tool_name": name} for name in found],
        },
    }
    message = sdk.Message.model_validate(message_with(USE, block))
    result = message.content[1]
    assert isinstance(result, sdk.ToolSearchToolResultBlock)
    assert isinstance(result.content, sdk.ToolSearchToolSearchResultBlock)
    assert [ref.tool_name for ref in result.content.tool_references] == found
    beta_result = beta.BetaMessage.model_validate(message_with(USE, block)).content[1]
    assert isinstance(beta_result, beta.BetaToolSearchToolResultBlock)
    TypeAdapter(sdk.ToolSearchToolResultBlockParam).validate_python(block)  # sent back by the client


def test_error_block_validates_with_the_sdk() -> None:
    outcome = search_tools("regex", {"pattern": "("}, CATALOG)
    assert isinstance(outcome, ToolSearchError)
    block = result_block("srvtoolu_01", outcome)
    assert block["content"] == {
        "type": "tool_search_tool_result_error",
        "error_code": "invalid_tool_input",
        "error_message": f"{INVALID}missing ), unterminated subpattern at position 0",
    }
    result = sdk.Message.model_validate(message_with(USE, block)).content[1]
    assert isinstance(result, sdk.ToolSearchToolResultBlock)
    assert isinstance(result.content, sdk.ToolSearchToolResultErrorObject)
    assert result.content.error_code == "invalid_tool_input"
    for code in ("unavailable", "too_many_requests", "execution_time_exceeded"):
        other = result_block("srvtoolu_01", ToolSearchError(code))  # type: ignore[arg-type]
        beta.BetaMessage.model_validate(message_with(USE, other))


def test_render_result_block() -> None:
    two = result_block("srvtoolu_1", ["github_create_issue", "github_get_issue"])
    assert (
        render_result_block(two)
        == "Loaded 2 tools: github_create_issue, github_get_issue. You can call them now."
    )
    assert render_result_block(result_block("srvtoolu_1", ["get_weather"])) == (
        "Loaded 1 tool: get_weather. You can call it now."
    )
    assert render_result_block(result_block("srvtoolu_1", [])) == (
        "No tools matched this search. Try a broader pattern or other words."
    )
    error = result_block(
        "srvtoolu_1", ToolSearchError("invalid_tool_input", "Invalid regular expression pattern: x")
    )
    assert render_result_block(error) == (
        "Tool search error invalid_tool_input: the search input was invalid; correct it and search again "
        "(Invalid regular expression pattern: x)."
    )
    slow = result_block("srvtoolu_1", ToolSearchError("execution_time_exceeded"))
    assert render_result_block(slow) == (
        "Tool search error execution_time_exceeded: the search took too long and was stopped; "
        "use a simpler search."
    )
    for broken in ({}, {"content": "x"}, {"content": {"type": "other"}}):
        assert render_result_block(broken) == "The tool search returned no readable result."
    assert describe_loaded(["a"]) == "Loaded 1 tool: a. You can call it now."


# --- what the upstream gets ------------------------------------------------------------------------


def conversation() -> list[dict[str, Any]]:
    """A server-side search in one assistant turn, then a client-side search (Claude Code's own)
    returning tool_reference blocks in a tool_result."""
    return [
        {"role": "user", "content": "File an issue, then tell #eng."},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Searching."},
                USE,
                result_block("srvtoolu_01", ["github_create_issue", "github_get_issue"]),
                {"type": "tool_use", "id": "toolu_1", "name": "ToolSearch", "input": {"query": "slack"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": [
                        {"type": "tool_reference", "tool_name": "slack_send_message"},
                        {"type": "text", "text": "found"},
                    ],
                },
                {"type": "tool_result", "tool_use_id": "toolu_x", "content": "plain text"},
            ],
        },
        {"role": "assistant", "content": [result_block("srvtoolu_02", ToolSearchError("unavailable"))]},
    ]


def test_loaded_tool_names_from_both_places() -> None:
    assert loaded_tool_names(conversation()) == {
        "github_create_issue",
        "github_get_issue",
        "slack_send_message",
    }
    assert loaded_tool_names([{"role": "user", "content": "hi"}, "junk", {"content": [3]}]) == set()


def test_upstream_tools() -> None:
    tools = [READ, REGEX_TOOL, *CATALOG, {**READ, "name": "Write", "defer_loading": False}]
    before = copy.deepcopy(tools)
    sent = upstream_tools(tools, loaded_tool_names(conversation()))
    assert [tool["name"] for tool in sent] == [
        "Read", "tool_search_tool_regex", "Write",
        "github_create_issue", "github_get_issue", "slack_send_message",
    ]  # fmt: skip
    assert all("defer_loading" not in tool for tool in sent)
    assert sent[1] == REGEX_TOOL  # server tools are left for the caller to replace
    assert sent[3] == {key: value for key, value in CATALOG[0].items() if key != "defer_loading"}
    assert tools == before
    assert upstream_tools(tools, set()) == [READ, REGEX_TOOL, {**READ, "name": "Write"}]


# --- invalid setups ----------------------------------------------------------------------------------


def refused(request: dict[str, Any]) -> str:
    with pytest.raises(GatewayError) as caught:
        check_request(request)
    assert (caught.value.status, caught.value.error_type) == (400, "invalid_request_error")
    return caught.value.message


def request(tools: list[Any], messages: list[Any] | None = None) -> dict[str, Any]:
    return {
        "model": "m",
        "max_tokens": 10,
        "tools": tools,
        "messages": messages or [{"role": "user", "content": "x"}],
    }


def test_valid_setups_pass() -> None:
    check_request(request([REGEX_TOOL, *CATALOG], conversation()[:2]))
    check_request(request([READ, *CATALOG]))  # no search tool: a client may search itself
    check_request(request([READ, {"name": "ToolSearch", "input_schema": {}}, *CATALOG], conversation()))
    check_request({"model": "m", "messages": []})
    check_request(request([READ]))


def test_every_tool_deferred_is_refused() -> None:
    assert refused(request([{**REGEX_TOOL, "defer_loading": True}, *CATALOG])) == ALL_DEFERRED
    assert refused(request(CATALOG)) == ALL_DEFERRED


def test_a_deferred_search_tool_is_refused() -> None:
    assert refused(request([READ, {**BM25_TOOL, "defer_loading": True}, *CATALOG])) == (
        "Tool 'tool_search_tool_bm25' is a tool search tool and cannot have defer_loading=true."
    )


def test_a_deferred_tool_with_cache_control_is_refused() -> None:
    cached = {**CATALOG[0], "cache_control": {"type": "ephemeral"}}
    assert refused(request([REGEX_TOOL, cached])) == (
        "Tool 'github_create_issue' cannot both defer_loading=true cache_control set. "
        "Tools defer_loading cannot use prompt caching."
    )


def test_too_many_deferred_tools_are_refused() -> None:
    many = [{**CATALOG[0], "name": f"t{n}"} for n in range(MAX_DEFERRED_TOOLS + 1)]
    assert (
        refused(request([REGEX_TOOL, *many]))
        == "Too many tools with defer_loading=true: 10001 (the maximum is 10000)."
    )
    check_request(request([REGEX_TOOL, *many[:MAX_DEFERRED_TOOLS]]))


def test_a_reference_to_an_undefined_tool_is_refused() -> None:
    tools = [READ, REGEX_TOOL, *[tool for tool in CATALOG if tool["name"] != "slack_send_message"]]
    assert (
        refused(request(tools, conversation()))
        == "Tool reference 'slack_send_message' not found in available tools"
    )
    assert refused(request([READ], conversation()[:2])) == (
        "Tool reference 'github_create_issue' not found in available tools"
    )
