"""Request bodies of the benchmark, generated deterministically (same bytes on every run).

(Named payloads.py, not requests.py, so that running a file of bench/ directly cannot shadow the
`requests` library for whatever imports it.)

Why a Claude-Code-shaped request: Claude Code is the heaviest everyday client of a Messages gateway. Its
requests are ~90 KB: 12 tools with long descriptions and nested JSON schemas, a system prompt in three
blocks (a per-request billing line, the identity line, the long instructions, the last two with
cache_control), thinking, metadata.user_id, context_management, and a history of tool_use/tool_result
turns carrying file contents. A gateway that parses or copies such a body more than once shows it here
and not with the 100-byte seed request. The text is synthetic (a seeded generator), not Claude Code's
prompt; only the shape and sizes follow it.

Run `python -m bench.payloads` to print the sizes and SHA-256 of every body.
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

JSON = dict[str, Any]

OPENAI_MODEL = "bench-openai"
OPENAI_SLOW_MODEL = "bench-openai-slow"
ANTHROPIC_MODEL = "bench-anthropic"
ANTHROPIC_SLOW_MODEL = "bench-anthropic-slow"
RESPONSES_MODEL = "bench-responses"
GEMINI_MODEL = "bench-gemini"
BEDROCK_CONVERSE_MODEL = "bench-bedrock-converse"
BEDROCK_CLAUDE_MODEL = "bench-bedrock-claude"
SEED_PROMPT = "Hello, can you tell me a short joke?"

CLAUDE_CODE_TARGET_BYTES = 90_000
_SEED = 20_251_125

_WORDS = (
    "the a config gateway request stream token model upstream worker handler route retry timeout cache "
    "schema field value error response client server message block tool result file path line test "
    "module function class method return check parse encode decode buffer event delta index usage "
    "when before after only never always each every first last next previous valid invalid unknown "
    "read write edit run search list find open close keep drop pass map raise handle accept reject "
    "must should may can will does uses makes takes gives shows tells finds builds runs prints"
).split()


def seed_request(model: str = OPENAI_MODEL, stream: bool = False) -> JSON:
    """The seed's small request (scenarios a, b, d; e with the slow model)."""
    body: JSON = {
        "model": model,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": SEED_PROMPT}],
    }
    if stream:
        body["stream"] = True
    return body


def gemini_direct_request() -> JSON:
    """What a gateway sends the Gemini API for the seed request."""
    return {
        "contents": [{"role": "user", "parts": [{"text": "Hello, can you tell me a short joke?"}]}],
        "generationConfig": {"maxOutputTokens": 100},
    }


def bedrock_converse_direct_request() -> JSON:
    """What a gateway sends ConverseStream for the seed request."""
    return {
        "messages": [{"role": "user", "content": [{"text": SEED_PROMPT}]}],
        "inferenceConfig": {"maxTokens": 100},
    }


def bedrock_invoke_direct_request() -> JSON:
    """What a gateway sends InvokeModelWithResponseStream for the seed request (Claude's body)."""
    return {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": SEED_PROMPT}],
    }


def openai_direct_request(stream: bool = False) -> JSON:
    """What a gateway would send upstream for the seed request: the direct-upstream baseline."""
    body: JSON = {
        "model": "gpt-4o-mini",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": SEED_PROMPT}],
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def responses_request(stream: bool = False) -> JSON:
    """The seed's question to a reasoning model with thinking shown (scenarios f, g): the gateway asks
    the Responses API for a reasoning summary and the encrypted reasoning to replay on the next turn."""
    body = seed_request(RESPONSES_MODEL, stream)
    body["max_tokens"] = 2048
    body["thinking"] = {"type": "enabled", "budget_tokens": 1024}
    return body


def responses_direct_request(stream: bool = False) -> JSON:
    """What the gateway sends upstream for :func:`responses_request`: the direct-upstream baseline."""
    body: JSON = {
        "model": "gpt-5-mini",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": SEED_PROMPT}]}],
        "max_output_tokens": 2048,
        "store": False,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "include": ["reasoning.encrypted_content"],
    }
    if stream:
        body["stream"] = True
    return body


class _Text:
    """Deterministic filler prose and code from a seeded generator."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def sentence(self, min_words: int = 8, max_words: int = 18) -> str:
        n = self._rng.randint(min_words, max_words)
        words = [self._rng.choice(_WORDS) for _ in range(n)]
        return words[0].capitalize() + " " + " ".join(words[1:]) + "."

    def paragraph(self, target_chars: int) -> str:
        parts: list[str] = []
        size = 0
        while size < target_chars and len(parts) < 10_000:
            s = self.sentence()
            parts.append(s)
            size += len(s) + 1
        return " ".join(parts)

    def bullets(self, count: int) -> str:
        return "\n".join(f"- {self.sentence()}" for _ in range(count))

    def ident(self, prefix: str, length: int = 24) -> str:
        alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz0123456789"
        return prefix + "".join(self._rng.choice(alphabet) for _ in range(length))

    def hex(self, length: int) -> str:
        return "".join(self._rng.choice("0123456789abcdef") for _ in range(length))

    def python_file(self, lines: int) -> str:
        """Numbered source lines, formatted like Claude Code's Read tool output."""
        out: list[str] = []
        n = 0
        cls = 0
        while len(out) < lines:
            cls += 1
            block = [
                f"class Handler{cls}:",
                f'    """{self.sentence()}"""',
                "",
                f"    def __init__(self, config: dict[str, object], limit: int = {cls * 8}) -> None:",
                "        self.config = config",
                "        self.limit = limit",
                "",
                f"    def handle_{self._rng.choice(_WORDS)}(self, value: str) -> str | None:",
                f"        # {self.sentence(5, 10)}",
                "        if not value or len(value) > self.limit:",
                "            return None",
                f"        return value.strip().{self._rng.choice(['lower', 'upper', 'title'])}()",
                "",
            ]
            for line in block:
                n += 1
                out.append(f"{n:6d}\t{line}")
        return "\n".join(out[:lines])


def _prop(type_: str, description: str, **extra: Any) -> JSON:
    return {"type": type_, "description": description, **extra}


def _tool(name: str, description: str, properties: JSON, required: list[str]) -> JSON:
    return {
        "name": name,
        "description": description,
        "input_schema": {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": False,
            "$schema": "http://json-schema.org/draft-07/schema#",
        },
    }


def _tools(t: _Text) -> list[JSON]:
    """Twelve tools with Claude-Code-like names, schemas and description lengths."""

    def doc(summary: str, chars: int, bullets: int) -> str:
        return f"{summary}\n\n{t.paragraph(chars)}\n\nUsage notes:\n{t.bullets(bullets)}"

    todo_item = {
        "type": "object",
        "properties": {
            "content": {"type": "string", "minLength": 1},
            "status": {"type": "string", "enum": ["pending", "in_progress", "completed"]},
            "activeForm": {"type": "string", "minLength": 1},
        },
        "required": ["content", "status", "activeForm"],
        "additionalProperties": False,
    }
    return [
        _tool(
            "Task",
            doc("Launch a new agent to handle complex, multi-step tasks autonomously.", 3000, 12),
            {
                "description": _prop("string", "A short (3-5 word) description of the task"),
                "prompt": _prop("string", "The task for the agent to perform"),
                "subagent_type": _prop("string", "The type of specialized agent to use for this task"),
            },
            ["description", "prompt", "subagent_type"],
        ),
        _tool(
            "Bash",
            doc(
                "Executes a given bash command in a persistent shell session with optional timeout.", 6500, 20
            ),
            {
                "command": _prop("string", "The command to execute"),
                "timeout": _prop("number", "Optional timeout in milliseconds (max 600000)"),
                "description": _prop(
                    "string", "Clear, concise description of what this command does in 5-10 words"
                ),
                "run_in_background": _prop("boolean", "Set to true to run this command in the background."),
            },
            ["command"],
        ),
        _tool(
            "Glob",
            doc("Fast file pattern matching tool that works with any codebase size.", 600, 4),
            {
                "pattern": _prop("string", "The glob pattern to match files against"),
                "path": _prop(
                    "string", "The directory to search in. Defaults to the current working directory."
                ),
            },
            ["pattern"],
        ),
        _tool(
            "Grep",
            doc("A powerful search tool built on ripgrep.", 1200, 8),
            {
                "pattern": _prop("string", "The regular expression pattern to search for in file contents"),
                "path": _prop(
                    "string", "File or directory to search in. Defaults to current working directory."
                ),
                "glob": _prop("string", 'Glob pattern to filter files (e.g. "*.js", "*.{ts,tsx}")'),
                "output_mode": _prop(
                    "string",
                    "Output mode: content shows matching lines, files_with_matches shows file paths, "
                    "count shows counts",
                    enum=["content", "files_with_matches", "count"],
                ),
                "-B": _prop("number", "Number of lines to show before each match"),
                "-A": _prop("number", "Number of lines to show after each match"),
                "-C": _prop("number", "Number of lines to show before and after each match"),
                "-n": _prop("boolean", "Show line numbers in output"),
                "-i": _prop("boolean", "Case insensitive search"),
                "type": _prop("string", "File type to search (rg --type)"),
                "head_limit": _prop("number", "Limit output to first N lines/entries"),
                "multiline": _prop("boolean", "Enable multiline mode where . matches newlines"),
            },
            ["pattern"],
        ),
        _tool(
            "ExitPlanMode",
            doc("Use this tool when you are in plan mode and have finished presenting your plan.", 900, 4),
            {
                "plan": _prop(
                    "string", "The plan you came up with, that you want to run by the user for approval."
                )
            },
            ["plan"],
        ),
        _tool(
            "Read",
            doc("Reads a file from the local filesystem.", 1500, 9),
            {
                "file_path": _prop("string", "The absolute path to the file to read"),
                "offset": _prop("number", "The line number to start reading from"),
                "limit": _prop("number", "The number of lines to read"),
            },
            ["file_path"],
        ),
        _tool(
            "Edit",
            doc("Performs exact string replacements in files.", 1100, 6),
            {
                "file_path": _prop("string", "The absolute path to the file to modify"),
                "old_string": _prop("string", "The text to replace"),
                "new_string": _prop(
                    "string", "The text to replace it with (must be different from old_string)"
                ),
                "replace_all": _prop(
                    "boolean", "Replace all occurences of old_string (default false)", default=False
                ),
            },
            ["file_path", "old_string", "new_string"],
        ),
        _tool(
            "Write",
            doc("Writes a file to the local filesystem.", 700, 5),
            {
                "file_path": _prop("string", "The absolute path to the file to write (must be absolute)"),
                "content": _prop("string", "The content to write to the file"),
            },
            ["file_path", "content"],
        ),
        _tool(
            "NotebookEdit",
            doc("Completely replaces the contents of a specific cell in a Jupyter notebook.", 600, 3),
            {
                "notebook_path": _prop("string", "The absolute path to the Jupyter notebook file to edit"),
                "cell_id": _prop("string", "The ID of the cell to edit"),
                "new_source": _prop("string", "The new source for the cell"),
                "cell_type": _prop(
                    "string", "The type of the cell (code or markdown)", enum=["code", "markdown"]
                ),
                "edit_mode": _prop(
                    "string", "The type of edit to make", enum=["replace", "insert", "delete"]
                ),
            },
            ["notebook_path", "new_source"],
        ),
        _tool(
            "WebFetch",
            doc("Fetches content from a specified URL and processes it using an AI model.", 1300, 7),
            {
                "url": _prop("string", "The URL to fetch content from", format="uri"),
                "prompt": _prop("string", "The prompt to run on the fetched content"),
            },
            ["url", "prompt"],
        ),
        _tool(
            "TodoWrite",
            doc(
                "Use this tool to create and manage a structured task list for your current session.",
                5500,
                16,
            ),
            {"todos": {"type": "array", "items": todo_item, "description": "The updated todo list"}},
            ["todos"],
        ),
        _tool(
            "WebSearch",
            doc("Allows Claude to search the web and use the results to inform responses.", 800, 5),
            {
                "query": _prop("string", "The search query to use", minLength=2),
                "allowed_domains": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Only include search results from these domains",
                },
                "blocked_domains": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Never include search results from these domains",
                },
            },
            ["query"],
        ),
    ]


def _system(t: _Text) -> list[JSON]:
    """Three blocks, ~7 KB: billing line (changes per request in real life), identity, instructions."""
    instructions = "\n\n".join(
        f"# {title}\n{t.paragraph(900)}\n{t.bullets(3)}"
        for title in (
            "Tone and style",
            "Proactiveness",
            "Doing tasks",
            "Tool usage policy",
            "Code references",
            "Environment",
        )
    )
    return [
        {
            "type": "text",
            "text": f"x-anthropic-billing-header: cc_version=2.0.50.{t.hex(3)}; cc_entrypoint=cli;",
        },
        {
            "type": "text",
            "text": "You are Claude Code, Anthropic's official CLI for Claude.",
            "cache_control": {"type": "ephemeral"},
        },
        {"type": "text", "text": instructions, "cache_control": {"type": "ephemeral"}},
    ]


def _tool_turn(t: _Text, name: str, tool_input: JSON, result: str, say: str | None) -> list[JSON]:
    """An assistant tool_use turn and the user's tool_result turn that answers it."""
    tool_id = t.ident("toolu_01")
    assistant: list[JSON] = []
    if say is not None:
        assistant.append({"type": "text", "text": say})
    assistant.append({"type": "tool_use", "id": tool_id, "name": name, "input": tool_input})
    user = [{"type": "tool_result", "tool_use_id": tool_id, "content": result}]
    return [{"role": "assistant", "content": assistant}, {"role": "user", "content": user}]


def claude_code_request(model: str = OPENAI_MODEL, target_bytes: int = CLAUDE_CODE_TARGET_BYTES) -> JSON:
    """The Claude-Code-shaped streaming request of scenario (c), ~target_bytes of JSON."""
    t = _Text(_SEED)
    user_id = f"user_{t.hex(64)}_account__session_{t.hex(8)}-{t.hex(4)}-{t.hex(4)}-{t.hex(4)}-{t.hex(12)}"
    first_user: JSON = {
        "role": "user",
        "content": [
            {
                "type": "text",
                "text": "<system-reminder>\nAs you answer the user's questions, you can use the following "
                f"context:\n# claudeMd\n{t.paragraph(2500)}\n</system-reminder>",
            },
            {
                "type": "text",
                "text": "The config loader accepts unknown keys silently. Make it reject them with the "
                "key's name and line, and add tests.",
            },
        ],
    }
    messages: list[JSON] = [first_user]
    thinking_turn: JSON = {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": t.paragraph(600), "signature": t.ident("Eu", 340)},
            {"type": "text", "text": "I'll start by finding the config loader and its tests."},
            {
                "type": "tool_use",
                "id": t.ident("toolu_01"),
                "name": "Glob",
                "input": {"pattern": "src/**/config*.py"},
            },
        ],
    }
    messages.append(thinking_turn)
    messages.append(
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": thinking_turn["content"][2]["id"],
                    "content": "/repo/src/app/config.py\n/repo/src/app/config_schema.py\n"
                    "/repo/tests/test_config.py",
                }
            ],
        }
    )
    messages += _tool_turn(t, "Read", {"file_path": "/repo/src/app/config.py"}, t.python_file(90), None)
    messages += _tool_turn(
        t,
        "Grep",
        {"pattern": "def load_config", "path": "/repo/src", "output_mode": "content", "-n": True},
        "\n".join(
            f"/repo/src/app/module_{i}.py:{10 + i}:def load_config(path: str) -> Config:" for i in range(12)
        ),
        "Let me see where the loader is called.",
    )
    messages += _tool_turn(
        t,
        "Read",
        {"file_path": "/repo/src/app/config_schema.py"},
        t.python_file(70),
        "Now the schema module.",
    )
    messages += _tool_turn(
        t,
        "Edit",
        {
            "file_path": "/repo/src/app/config.py",
            "old_string": "        for key, value in raw.items():\n            setattr(cfg, key, value)",
            "new_string": "        for key, value in raw.items():\n            if key not in cfg.FIELDS:\n"
            "                raise ConfigError(f'unknown key {key!r}', line=raw.line_of(key))\n"
            "            setattr(cfg, key, value)",
        },
        "The file /repo/src/app/config.py has been updated. Here's the result of running `cat -n` "
        "on a snippet "
        "of the edited file:\n" + t.python_file(20),
        "I'll make unknown keys an error that names the key and its line.",
    )
    # A session goes on with many small tool turns (searches, reads, edits, test runs), as Claude Code's
    # long conversations do; add them in a fixed rotation until the body reaches the target size.
    for turn in range(400):
        if len(encode(_assemble(model, user_id, messages))) >= target_bytes - 600:
            break
        kind = turn % 4
        if kind == 0:
            messages += _tool_turn(
                t,
                "Bash",
                {
                    "command": "python -m pytest -q tests/test_config.py",
                    "description": "Run the config tests",
                },
                "\n".join(f"tests/test_config.py::test_case_{turn}_{i} PASSED" for i in range(8))
                + "\n8 passed",
                "Running the tests.",
            )
        elif kind == 1:
            messages += _tool_turn(
                t,
                "Grep",
                {
                    "pattern": f"ConfigError|field_{turn}",
                    "path": "/repo/src",
                    "output_mode": "files_with_matches",
                },
                "\n".join(f"/repo/src/app/module_{turn}_{i}.py" for i in range(4)),
                None,
            )
        elif kind == 2:
            messages += _tool_turn(
                t,
                "Read",
                {"file_path": f"/repo/src/app/module_{turn}.py", "offset": 1, "limit": 14},
                t.python_file(14),
                f"Checking module_{turn}.py.",
            )
        else:
            messages += _tool_turn(
                t,
                "Edit",
                {
                    "file_path": f"/repo/src/app/module_{turn}.py",
                    "old_string": f"    return load(path)  # {turn}",
                    "new_string": f"    return load(path, strict=True)  # {turn}",
                },
                f"The file /repo/src/app/module_{turn}.py has been updated.",
                t.sentence(),
            )
    last = messages[-1]["content"][-1]
    last["cache_control"] = {"type": "ephemeral"}
    messages[-1]["content"].append({"type": "text", "text": "Good. Now add a test for a nested unknown key."})
    return _assemble(model, user_id, messages)


def _assemble(model: str, user_id: str, messages: list[JSON]) -> JSON:
    # A fresh generator so the tools and system prompt are the same however many turns were added.
    fixed = _Text(_SEED + 1)
    return {
        "model": model,
        "max_tokens": 32000,
        "messages": messages,
        "system": _system(fixed),
        "tools": _tools(fixed),
        "metadata": {"user_id": user_id},
        "thinking": {"type": "enabled", "budget_tokens": 31999},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "stream": True,
    }


CLAUDE_CODE_HEADERS = {
    "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14,"
    "context-management-2025-06-27,fine-grained-tool-streaming-2025-05-14",
    "user-agent": "claude-cli/2.0.50 (external, cli)",
    "x-app": "cli",
}


def encode(body: JSON) -> bytes:
    """The bytes sent on the wire (compact JSON, like the SDKs send)."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _describe() -> None:
    bodies = {
        "seed (a, d)": seed_request(),
        "seed stream (b)": seed_request(stream=True),
        "gemini (f)": seed_request(GEMINI_MODEL),
        "gemini stream (g)": seed_request(GEMINI_MODEL, stream=True),
        "responses (h)": responses_request(),
        "responses stream (i)": responses_request(stream=True),
        "bedrock converse stream (j)": seed_request(BEDROCK_CONVERSE_MODEL, stream=True),
        "bedrock claude stream (k)": seed_request(BEDROCK_CLAUDE_MODEL, stream=True),
        "claude-code (c)": claude_code_request(),
    }
    for name, body in bodies.items():
        raw = encode(body)
        print(f"{name:18} {len(raw):7d} bytes  sha256 {hashlib.sha256(raw).hexdigest()[:16]}")
    cc = claude_code_request()
    print(
        f"claude-code: {len(cc['tools'])} tools ({len(encode({'t': cc['tools']}))} B), "
        f"system {sum(len(b['text']) for b in cc['system'])} chars in {len(cc['system'])} blocks, "
        f"{len(cc['messages'])} messages"
    )


if __name__ == "__main__":
    _describe()
