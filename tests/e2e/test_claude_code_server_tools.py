"""Claude Code's server-side features on an OpenAI-shaped model, end to end: tool search, web search,
context editing.

What Claude Code 2.1.328 sends to a gateway (``ANTHROPIC_BASE_URL`` set), read from its bundled code and
captured from its requests:

- **Tool search** is on by default, also behind a gateway (``ENABLE_TOOL_SEARCH=false`` turns it off,
  ``auto`` / ``auto:N`` turn it on only when the tools would take more than N % of the context, 10 by
  default). Claude Code runs the search itself: it sends its own ``ToolSearch`` tool (an ordinary
  function: ``{query, max_results}``), lists the deferred tools (MCP tools, WebSearch, WebFetch, …) by
  name in a system message, and adds a ``DeferredToolPlaceholder`` tool with ``defer_loading: true``.
  It never sends ``tool_search_tool_regex`` / ``bm25``. When the model calls ``ToolSearch``, Claude Code
  answers with a ``tool_result`` holding ``tool_reference`` blocks, and from then on sends each found tool
  with ``defer_loading: true``; Anthropic's API loads a deferred tool that a ``tool_reference`` names.
  For another upstream the gateway must do that loading: send the model only the tools that are not
  deferred plus the deferred ones a ``tool_reference`` loaded, and tell the model what the search found.
- **WebSearch** makes its own ``/v1/messages`` request, to the main model, without thinking: system
  prompt "You run a web search for another Claude model, …", one user message "Perform a web search
  for the query: …", ``tools: [{"type": "web_search_20250305", "name": "web_search", "max_uses": 8}]``
  (plus ``allowed_domains`` / ``blocked_domains`` when the model gave them), ``tool_choice: auto``. From
  the answer it keeps the text blocks and, of each ``web_search_tool_result``, the results' titles and
  URLs (citations are not read), and hands the main model ``Web search results for query: "…"`` with
  the text and a ``Links: [{"title", "url"}]`` line. Its ``usage.server_tool_use.web_search_requests`` is
  counted in the run's ``modelUsage``.
- **WebFetch** fetches the page itself (upgrading ``http`` to ``https``, after asking api.anthropic.com
  whether the domain may be fetched unless ``skipWebFetchPreflight`` is set) and has a model summarise
  it in an ordinary request: it never sends the ``web_fetch`` server tool, so the gateway's web
  fetch is not involved.
- **Context editing**: every request carries ``context_management: {"edits": [{"type":
  "clear_thinking_20251015", "keep": "all"}]}`` and the ``context-management-2025-06-27`` beta.
  ``clear_tool_uses_20250919`` is sent only by an experimental mode (clearing old tool results when the
  user comes back after more than an hour, so the prompt cache has expired anyway) that a server-side
  feature flag controls; no setting or environment variable turns it on (``USE_API_CONTEXT_MANAGEMENT``
  is read but has no effect). So the long-session test drives the gateway with the official
  ``anthropic`` SDK as the agent loop, as an Agent SDK application that configures
  ``context_management`` would, and Claude Code's own long sessions rely on compaction (see
  test_claude_code_server_side.py).
"""

from __future__ import annotations

import json
import sys
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import anthropic
import pytest
from tests.conftest import MASTER_KEY, sdk_client
from tests.e2e import mcp_stdio_server
from tests.e2e.claude_cli import ClaudeCode
from tests.e2e.conftest import BIG_MODEL, SMALL_MODEL
from tests.e2e.fake_openai import ChatRequest, FakeOpenAIModels, Reply, ToolCall, text_of
from tests.e2e.recording_proxy import RecordingProxy
from tests.fakes.gateway_server import GatewayServer
from tests.fakes.upstream import FakeUpstream, Json, Received

from anygate.tokens import count_text_tokens
from anygate.tools.context_editing import CLEARED_TOOL_RESULT

pytestmark = pytest.mark.e2e

# --- (b) tool search -----------------------------------------------------------------------------

MCP_SERVER: Final = Path(mcp_stdio_server.__file__)
FOUND_TOOL: Final = f"mcp__{mcp_stdio_server.SERVER_NAME}__{mcp_stdio_server.FOUND_TOOL}"
PLACEHOLDER: Final = "DeferredToolPlaceholder"


def mcp_config(path: Path, calls_file: Path) -> Path:
    """An ``--mcp-config`` file that starts :mod:`tests.e2e.mcp_stdio_server` over stdio."""
    server = {
        "type": "stdio",
        "command": sys.executable,
        "args": [str(MCP_SERVER)],
        "env": {"MCP_CALLS_FILE": str(calls_file)},
    }
    path.write_text(json.dumps({"mcpServers": {mcp_stdio_server.SERVER_NAME: server}}))
    return path


def test_claude_code_finds_a_deferred_mcp_tool_by_searching_and_calls_it(
    claude: ClaudeCode, models: FakeOpenAIModels, tmp_path: Path
) -> None:
    """51 MCP tools are deferred; the model sees none of them until it searches with Claude Code's
    ``ToolSearch``. Claude Code answers the search with a ``tool_reference``; the gateway then loads
    that one tool for the upstream (its full definition, nothing else deferred), the model calls it, and
    the MCP server really runs it."""
    calls_file = tmp_path / "mcp-calls.jsonl"
    config = mcp_config(tmp_path / "mcp.json", calls_file)
    search = ToolCall("ToolSearch", {"query": "weather forecast", "max_results": 3})
    lookup = ToolCall(FOUND_TOOL, {"city": "Lisbon"})

    def after_search(request: ChatRequest) -> Reply:
        if lookup.name not in request.tool_names:
            return Reply(text="The search loaded no weather tool.")
        return Reply(text="Found it.", tool_calls=[lookup])

    models.script(
        BIG_MODEL,
        Reply(text="Let me look for a weather tool.", tool_calls=[search]),
        after_search,
        lambda request: Reply(text=f"Lisbon tomorrow: {request.tool_result(lookup)}"),
    )

    run = claude.run(
        "What is the weather in Lisbon tomorrow?",
        "--mcp-config",
        str(config),
        "--strict-mcp-config",
        "--allowedTools",
        FOUND_TOOL,
        env={"ENABLE_TOOL_SEARCH": "true"},
    )

    run.assert_succeeded()
    forecast = mcp_stdio_server.FORECAST.format(city="Lisbon")
    assert run.result == f"Lisbon tomorrow: {forecast}"
    assert [json.loads(line) for line in calls_file.read_text().splitlines()] == [{"city": "Lisbon"}]

    first, second, third = models.requests(BIG_MODEL)
    for request in (first, second, third):
        assert "defer_loading" not in request.received.body.decode()
        assert PLACEHOLDER not in request.tool_names
    # Before the search: Claude Code's own tools and ToolSearch; the MCP tools only as names.
    assert "ToolSearch" in first.tool_names and "Read" in first.tool_names
    assert not [name for name in first.tool_names if name.startswith("mcp__")]
    listed = first.system_text() + first.user_text()
    for tool in mcp_stdio_server.TOOLS:
        assert f"mcp__{mcp_stdio_server.SERVER_NAME}__{tool['name']}" in listed
    # After it: the found tool, with its whole definition, and the model told what was loaded.
    assert sorted(second.tool_names) == sorted([*first.tool_names, lookup.name])
    loaded = next(t["function"] for t in second.body["tools"] if t["function"]["name"] == lookup.name)
    assert "weather forecast" in loaded["description"]
    assert loaded["parameters"]["required"] == ["city"]
    assert lookup.name in second.tool_result(search)
    assert third.tool_result(lookup) == forecast
    assert sorted(third.tool_names) == sorted(second.tool_names)


# --- (c) web search ------------------------------------------------------------------------------

QUERY: Final = "anygate 1.0 release date"
RESULT_URL: Final = "https://anygate.example/blog/anygate-1-0"
RESULT_TITLE: Final = "Anygate 1.0 is out"
RESULT_SNIPPET: Final = "Anygate 1.0 was released on 1 November 2026 with tool search and web search."
OTHER_URL: Final = "https://news.example/gateways"
SEARCH_ANSWER: Final = "Anygate 1.0 was released on 1 November 2026 [1]."
FINAL_ANSWER: Final = f"Anygate 1.0 came out on 1 November 2026 ([source]({RESULT_URL}))."
SEARCH_AGENT_PROMPT: Final = "You run a web search for another Claude model"


def searxng_results(received: Received) -> Json:
    """SearXNG's JSON API (``/search?q=…&format=json``): two results for any query."""
    query = urllib.parse.parse_qs(received.query).get("q", [""])[0]
    results = [
        {
            "url": RESULT_URL,
            "title": RESULT_TITLE,
            "content": RESULT_SNIPPET,
            "engine": "duckduckgo",
            "engines": ["duckduckgo"],
            "score": 1.0,
            "category": "general",
            "publishedDate": "2026-11-01T09:00:00",
        },
        {
            "url": OTHER_URL,
            "title": "Gateways compared",
            "content": "A comparison of LLM gateways.",
            "engine": "bing",
            "engines": ["bing"],
            "score": 0.5,
            "category": "general",
            "publishedDate": None,
        },
    ]
    body = {"query": query, "number_of_results": len(results), "results": results, "answers": []}
    return Json({**body, "corrections": [], "infoboxes": [], "suggestions": [], "unresponsive_engines": []})


@pytest.fixture
def searxng() -> Iterator[FakeUpstream]:
    fake = FakeUpstream().start()
    fake.handle("/search", searxng_results)
    yield fake
    fake.stop()


@pytest.fixture
def proxy(start_gateway: Callable[..., GatewayServer], searxng: FakeUpstream) -> Iterator[RecordingProxy]:
    """A gateway with ``general_settings.web_search`` on the fake SearXNG, behind a recording proxy."""
    gateway = start_gateway(
        general_settings=f"  web_search:\n    provider: searxng\n    api_base: {searxng.url}\n"
    )
    recording = RecordingProxy(gateway.url).start()
    yield recording
    recording.stop()


def test_web_search_is_answered_with_citations_from_the_search_backend(
    claude_binary_ready: None,
    proxy: RecordingProxy,
    searxng: FakeUpstream,
    models: FakeOpenAIModels,
    workdir: Path,
    tmp_path: Path,
) -> None:
    """Claude Code's WebSearch side request carries the ``web_search_20250305`` server tool; the gateway
    gives the model a ``web_search`` function, runs the query on SearXNG, streams ``server_tool_use`` +
    ``web_search_tool_result`` + the model's cited answer back, and Claude Code hands the links and the
    answer to the main loop, which cites the source."""
    claude = ClaudeCode(proxy.url, MASTER_KEY, workdir, tmp_path / "home")
    web_search = ToolCall("web_search", {"query": QUERY})
    search_tool = ToolCall("WebSearch", {"query": QUERY})

    def turn(request: ChatRequest) -> Reply:
        if SEARCH_AGENT_PROMPT in request.system_text():
            if request.turn == 0:
                return Reply(tool_calls=[web_search])
            return Reply(text=SEARCH_ANSWER)
        if request.turn == 0:
            return Reply(text="Let me search the web.", tool_calls=[search_tool])
        return Reply(text=FINAL_ANSWER)

    models.script(BIG_MODEL, turn)

    run = claude.run("When was anygate 1.0 released?", "--allowedTools", "WebSearch")

    output = run.assert_succeeded()
    assert run.result == FINAL_ANSWER
    # The search backend got the model's query.
    searches = searxng.requests_to("/search")
    assert len(searches) == 1
    params = urllib.parse.parse_qs(searches[0].query)
    assert params["q"] == [QUERY] and params["format"] == ["json"]

    # What the gateway streamed back to Claude Code for the side request.
    (exchange,) = [e for e in proxy.messages() if _has_server_tool(e.request_json(), "web_search_20250305")]
    assert exchange.status == 200
    blocks = exchange.content_blocks()
    kinds = [b["type"] for b in blocks]
    assert kinds[:2] == ["server_tool_use", "web_search_tool_result"], kinds
    use, result = blocks[0], blocks[1]
    assert (
        use["id"].startswith("srvtoolu_") and use["name"] == "web_search" and use["input"] == {"query": QUERY}
    )
    assert result["tool_use_id"] == use["id"]
    assert [r["url"] for r in result["content"]] == [RESULT_URL, OTHER_URL]
    assert result["content"][0]["title"] == RESULT_TITLE
    assert all(r["type"] == "web_search_result" and r["encrypted_content"] for r in result["content"])
    answer = [b for b in blocks[2:] if b["type"] == "text"]
    assert (
        "".join(b["text"] for b in answer).strip().startswith("Anygate 1.0 was released on 1 November 2026")
    )
    citations = [c for b in answer for c in b.get("citations") or []]
    assert citations, f"the answer carries no citation: {answer}"
    assert {c["type"] for c in citations} == {"web_search_result_location"}
    assert citations[0]["url"] == RESULT_URL and citations[0]["title"] == RESULT_TITLE
    delta = next(e for e in exchange.events() if e["type"] == "message_delta")
    assert delta["usage"]["server_tool_use"]["web_search_requests"] == 1

    # The side request upstream: the server tool was a function; the model read the results it found.
    side = [r for r in models.requests(BIG_MODEL) if SEARCH_AGENT_PROMPT in r.system_text()]
    main = [r for r in models.requests(BIG_MODEL) if SEARCH_AGENT_PROMPT not in r.system_text()]
    assert len(side) == 2 and len(main) == 2
    assert side[0].tool_names == ["web_search"]
    assert "web_search_20250305" not in side[0].received.body.decode()
    results_read = side[1].tool_result_for(use["id"], "web_search")
    for expected in (RESULT_TITLE, RESULT_URL, RESULT_SNIPPET):
        assert expected in results_read

    # Claude Code turned that into the WebSearch tool result of the main loop, and counted the search.
    handed = main[1].tool_result(search_tool)
    assert f'Web search results for query: "{QUERY}"' in handed
    assert RESULT_URL in handed and RESULT_TITLE in handed
    assert "released on 1 November 2026" in handed
    assert sum(usage["webSearchRequests"] for usage in output["modelUsage"].values()) == 1


def test_web_search_without_a_backend_is_declined_in_words_the_model_reads(
    claude: ClaudeCode, models: FakeOpenAIModels
) -> None:
    """No ``general_settings.web_search``: the search is not a failure of the request but an
    ``unavailable`` result that the search model reads and explains, and that Claude Code passes on."""
    web_search = ToolCall("web_search", {"query": QUERY})
    search_tool = ToolCall("WebSearch", {"query": QUERY})
    explained = "I could not search: the web search service is unavailable."

    def turn(request: ChatRequest) -> Reply:
        if SEARCH_AGENT_PROMPT in request.system_text():
            if request.turn == 0:
                return Reply(tool_calls=[web_search])
            (reason,) = [text_of(m["content"]) for m in request.messages if m["role"] == "tool"]
            assert "unavailable" in reason, reason
            return Reply(text=explained)
        if request.turn == 0:
            return Reply(tool_calls=[search_tool])
        return Reply(text="Web search is not available here, so I cannot tell.")

    models.script(BIG_MODEL, turn)

    run = claude.run("When was anygate 1.0 released?", "--allowedTools", "WebSearch")

    run.assert_succeeded()
    assert run.result == "Web search is not available here, so I cannot tell."
    main = [r for r in models.requests(BIG_MODEL) if SEARCH_AGENT_PROMPT not in r.system_text()]
    handed = main[1].tool_result(search_tool)
    assert "Web search error: unavailable" in handed and explained in handed


def _has_server_tool(body: dict[str, Any], kind: str) -> bool:
    return any(tool.get("type") == kind for tool in body.get("tools") or [])


# --- (d) context editing in a long session -------------------------------------------------------

WINDOW: Final = 32768
"""``model_info.max_input_tokens`` of the haiku-class deployment in :func:`claude_code_config`."""
HAIKU: Final = "claude-haiku-4-5"
STEPS: Final = 8
CHUNK_LINES: Final = 330
CLEAR_OLD_TOOL_RESULTS: Final = {
    "edits": [
        {
            "type": "clear_tool_uses_20250919",
            "trigger": {"type": "input_tokens", "value": 16000},
            "keep": {"type": "tool_uses", "value": 2},
        }
    ]
}
READ_PART: Final = {
    "name": "read_part",
    "description": "Read one part of the audit log.",
    "input_schema": {"type": "object", "properties": {"part": {"type": "integer"}}, "required": ["part"]},
}


def log_part(part: int) -> str:
    """One part of the log: about 6,000 tokens, so the eight parts together need half as much again as the
    window."""
    return "\n".join(
        f"part {part} entry {line}: user u{line * 7 % 97} changed setting s{line % 13} to {line * part}"
        for line in range(CHUNK_LINES)
    )


def upstream_tokens(request: ChatRequest) -> int:
    """What the model reads of a Chat Completions request, counted with the o200k tokenizer: every
    message's text and tool calls, and the tool definitions."""
    texts = [json.dumps(request.body.get("tools") or [])]
    for message in request.messages:
        texts.append(text_of(message.get("content")))
        texts.extend(json.dumps(call) for call in message.get("tool_calls") or [])
    return count_text_tokens("\n".join(texts), SMALL_MODEL)


def script_audit(models: FakeOpenAIModels) -> None:
    """The model reads the parts one by one, checking each time that the newest part is intact, then
    reports."""

    def turn(request: ChatRequest) -> Reply:
        if request.turn > 0:
            newest = next(m for m in reversed(request.messages) if m.get("role") == "tool")
            assert text_of(newest.get("content")) == log_part(request.turn), "the newest result was cut"
        if request.turn < STEPS:
            return Reply(tool_calls=[ToolCall("read_part", {"part": request.turn + 1})])
        return Reply(text=f"Audited all {STEPS} parts.")

    models.script(SMALL_MODEL, turn)


def run_agent_loop(gateway: GatewayServer, context_management: dict[str, Any] | None) -> list[Any]:
    """An agent loop on the official SDK, as an Agent SDK application runs one: the client keeps the
    whole history and sends it every turn, streaming; it returns the final Message of every turn."""
    client = sdk_client(gateway)
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Audit every part of the log."}]
    extra: dict[str, Any] = {}
    if context_management is not None:
        extra = {"context_management": context_management, "betas": ["context-management-2025-06-27"]}
    finals = []
    for _ in range(STEPS + 1):
        with client.beta.messages.stream(
            model=HAIKU, max_tokens=1024, tools=[READ_PART], messages=messages, **extra
        ) as stream:
            message = stream.get_final_message()
        finals.append(message)
        if message.stop_reason != "tool_use":
            break
        messages.append(
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in message.content]}
        )
        results = [
            {"type": "tool_result", "tool_use_id": b.id, "content": log_part(int(b.input["part"]))}
            for b in message.content
            if b.type == "tool_use"
        ]
        messages.append({"role": "user", "content": results})
    return finals


def test_long_session_with_context_editing_stays_under_the_window(
    start_gateway: Callable[..., GatewayServer], models: FakeOpenAIModels
) -> None:
    """Eight large tool results, twice the model's window together; ``clear_tool_uses`` (trigger 16,000
    input tokens, keep 2) makes the gateway replace old results before each upstream call, so every
    request fits and the task finishes, and each answer reports what was cleared."""
    script_audit(models)
    gateway = start_gateway()

    finals = run_agent_loop(gateway, CLEAR_OLD_TOOL_RESULTS)

    assert finals[-1].stop_reason == "end_turn"
    assert finals[-1].content[0].text == f"Audited all {STEPS} parts."
    requests = models.requests(SMALL_MODEL)
    assert len(requests) == STEPS + 1
    sizes = [upstream_tokens(r) for r in requests]
    assert max(sizes) < WINDOW, sizes
    all_parts = sum(count_text_tokens(log_part(part), SMALL_MODEL) for part in range(1, STEPS + 1))
    assert all_parts > WINDOW, "the test must need context editing to fit"
    cleared = [
        edit.cleared_tool_uses
        for message in finals
        if message.context_management is not None
        for edit in message.context_management.applied_edits
    ]
    assert cleared and all(n > 0 for n in cleared)
    first_result = next(m for m in requests[-1].messages if m["role"] == "tool")
    assert text_of(first_result.get("content")) == CLEARED_TOOL_RESULT


def test_the_same_session_without_context_editing_outgrows_the_window(
    start_gateway: Callable[..., GatewayServer], models: FakeOpenAIModels
) -> None:
    """The control: without ``context_management`` the history outgrows the window part-way, and the
    gateway answers Anthropic's ``prompt is too long`` instead of sending the upstream a request that
    does not fit."""
    script_audit(models)
    gateway = start_gateway()

    with pytest.raises(anthropic.BadRequestError, match="prompt is too long"):
        run_agent_loop(gateway, None)

    requests = models.requests(SMALL_MODEL)
    assert 1 < len(requests) < STEPS + 1
    assert max(upstream_tokens(r) for r in requests) < WINDOW
