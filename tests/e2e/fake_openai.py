"""A scripted OpenAI-compatible model server for driving Claude Code through anygate.

It is :class:`tests.fakes.upstream.FakeUpstream` (a real HTTP server on 127.0.0.1 that records every
request) answering ``POST /v1/chat/completions`` like a model would: each upstream model name has a
script of turns, and the turn to play is read from the conversation itself (how many assistant messages
it already holds), so a retried request gets the same answer and a sub-agent's fresh conversation starts
at its own first turn. A turn sees the whole request, so it can look at the tool results it was sent
before deciding what to say. Answers stream as ``chat.completion.chunk`` frames with the tool-call
arguments split across chunks, a usage chunk and ``data: [DONE]``, as OpenAI and vLLM send them.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from tests.fakes.upstream import Answer, FakeUpstream, Json, Received, Sse, sse_data

CHAT_PATH = "/v1/chat/completions"
_ids = itertools.count(1)


@dataclass
class ToolCall:
    """A function call the model makes; ``id`` is what the tool result must come back with."""

    name: str
    arguments: dict[str, Any]
    id: str = field(default_factory=lambda: f"call_{next(_ids):04d}")


@dataclass
class Reply:
    """One assistant turn: optional reasoning, optional text, optional tool calls (in parallel)."""

    text: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    pause: float = 0.0
    """Seconds of silence between streamed chunks (a slow model)."""


@dataclass
class Failure:
    """An HTTP error answer instead of a turn (a rate limit, an overload)."""

    status: int = 429
    message: str = "Rate limit reached for requests"
    retry_after: str | None = None


class ChatRequest:
    """A received Chat Completions request, with the questions a scripted model asks about it."""

    def __init__(self, received: Received) -> None:
        self.received = received
        self.body: dict[str, Any] = received.json()
        self.model: str = self.body["model"]
        self.messages: list[dict[str, Any]] = self.body["messages"]

    @property
    def turn(self) -> int:
        """How many assistant turns the conversation already holds (0 for a fresh one)."""
        return sum(1 for m in self.messages if m.get("role") == "assistant")

    @property
    def tool_names(self) -> list[str]:
        return [t["function"]["name"] for t in self.body.get("tools") or []]

    def tool_result(self, call: ToolCall) -> str:
        """The text of the ``role: "tool"`` message answering ``call``; fails if there is none."""
        return self.tool_result_for(call.id, call.name)

    def tool_result_for(self, call_id: str, name: str = "a") -> str:
        """The text of the ``role: "tool"`` message with ``tool_call_id`` ``call_id`` (a call the gateway
        echoes under another id, such as a server tool's ``srvtoolu_…``); fails if there is none."""
        for message in self.messages:
            if message.get("role") == "tool" and message.get("tool_call_id") == call_id:
                return text_of(message.get("content"))
        raise AssertionError(f"no tool message for {name} call {call_id} in the request")

    def system_text(self) -> str:
        """All system and developer text of the request, joined."""
        return "\n".join(
            text_of(m.get("content")) for m in self.messages if m.get("role") in ("system", "developer")
        )

    def user_text(self) -> str:
        return "\n".join(text_of(m.get("content")) for m in self.messages if m.get("role") == "user")


def text_of(content: object) -> str:
    """The text of an OpenAI message ``content`` (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


Turn = Reply | Failure | Callable[[ChatRequest], "Reply | Failure"]


@dataclass
class _Script:
    turns: list[Turn]
    failures: list[Failure] = field(default_factory=list)


class FakeOpenAIModels:
    """Fake OpenAI-compatible models behind one base URL (``url`` + ``/v1`` is the api_base)."""

    def __init__(self) -> None:
        self.server = FakeUpstream()
        self.errors: list[str] = []
        """Failures of the scripts themselves (a turn that raised); a test should find none."""
        self._scripts: dict[str, _Script] = {}

    def start(self) -> FakeOpenAIModels:
        self.server.start()
        self.server.handle(CHAT_PATH, self._answer)
        return self

    def stop(self) -> None:
        self.server.stop()

    @property
    def api_base(self) -> str:
        return self.server.url + "/v1"

    def script(self, model: str, *turns: Turn, fail_first: list[Failure] | None = None) -> None:
        """Answer requests for ``model``: turn N of a conversation plays ``turns[N]`` (the last repeats);
        the first requests get ``fail_first`` errors, one each, before any turn is played."""
        self._scripts[model] = _Script(list(turns), list(fail_first or []))

    def requests(self, model: str | None = None) -> list[ChatRequest]:
        """The chat requests received, in order (only those for ``model`` when given)."""
        found = [ChatRequest(r) for r in self.server.requests_to(CHAT_PATH)]
        return [r for r in found if model is None or r.model == model]

    def _answer(self, received: Received) -> Answer:
        try:
            return self._play(ChatRequest(received))
        except Exception as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")
            return _error(Failure(500, f"the scripted model failed: {exc}"))

    def _play(self, request: ChatRequest) -> Answer:
        script = self._scripts.get(request.model)
        if script is None:
            return _error(Failure(404, f"The model `{request.model}` does not exist"))
        if script.failures:
            return _error(script.failures.pop(0))
        turn = script.turns[min(request.turn, len(script.turns) - 1)]
        reply = turn(request) if callable(turn) else turn
        if isinstance(reply, Failure):
            return _error(reply)
        usage = _usage(request.received.body, reply)
        if request.body.get("stream"):
            return Sse(sse_data(*stream_chunks(request.model, reply, usage)), pause=reply.pause)
        return Json(completion(request.model, reply, usage))


def _usage(body: bytes, reply: Reply) -> dict[str, int]:
    prompt = max(1, len(body) // 4)
    completion_tokens = max(1, (len(reply.text) + len(reply.reasoning) + len(str(reply.tool_calls))) // 4)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
    }


def _error(failure: Failure) -> Json:
    headers = {} if failure.retry_after is None else {"retry-after": failure.retry_after}
    kind = "requests" if failure.status == 429 else "server_error"
    body = {"error": {"message": failure.message, "type": kind, "param": None, "code": None}}
    return Json(body, status=failure.status, headers=headers)


def _pieces(text: str, parts: int = 3) -> Iterator[str]:
    """``text`` cut into a few fragments, as a model streams it."""
    size = max(1, -(-len(text) // parts))
    for start in range(0, len(text), size):
        yield text[start : start + size]


def stream_chunks(model: str, reply: Reply, usage: dict[str, int]) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` payloads of a streamed reply, usage chunk last."""
    base = {"id": f"chatcmpl-{next(_ids)}", "object": "chat.completion.chunk", "created": int(time.time())}
    base["model"] = model

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks.extend(chunk({"reasoning_content": piece}) for piece in _pieces(reply.reasoning))
    chunks.extend(chunk({"content": piece}) for piece in _pieces(reply.text))
    for index, call in enumerate(reply.tool_calls):
        opening = {"index": index, "id": call.id, "type": "function"}
        opening["function"] = {"name": call.name, "arguments": ""}
        chunks.append(chunk({"tool_calls": [opening]}))
        for piece in _pieces(orjson.dumps(call.arguments).decode()):
            chunks.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
    chunks.append(chunk({}, "tool_calls" if reply.tool_calls else "stop"))
    chunks.append({**base, "choices": [], "usage": usage})
    return chunks


def completion(model: str, reply: Reply, usage: dict[str, int]) -> dict[str, Any]:
    """The non-streamed ``chat.completion`` for a reply."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
    if reply.reasoning:
        message["reasoning_content"] = reply.reasoning
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": orjson.dumps(call.arguments).decode()},
            }
            for call in reply.tool_calls
        ]
    return {
        "id": f"chatcmpl-{next(_ids)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if reply.tool_calls else "stop",
            }
        ],
        "usage": usage,
    }
