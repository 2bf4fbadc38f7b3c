"""Scripted models behind a fake Bedrock Runtime, for driving Claude Code through anygate to Bedrock.

The HTTP side is :class:`~tests.providers.bedrock_support.FakeBedrock` on a
:class:`~tests.fakes.upstream.FakeUpstream`: every request's SigV4 signature is recomputed with
botocore's signer, Converse bodies are validated against botocore's service model and Claude bodies the
way Bedrock refuses them (``anthropic_version``, unknown fields, unknown betas). Behind it, each model id
has a handler that reads the conversation and decides the next :class:`Turn`, like a model would.

The reasoning a turn carries is signed by the fake (an HMAC of the text under its own key), as Claude's
thinking signatures are: a later request whose assistant history holds reasoning with a signature the
fake did not issue for that text, or reasoning missing from the front of an assistant turn that called a
tool, is refused with Bedrock's ``ValidationException``, as Bedrock refuses it. Answers stream as Bedrock
streams them: Anthropic events inside event-stream ``chunk`` messages for InvokeModel, ConverseStream
events for Converse.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import orjson
from tests.fakes.upstream import FakeUpstream, Json, Received, Sse
from tests.providers.bedrock_support import (
    FakeBedrock,
    aws_error,
    eventstream_answer,
    frame_events,
    invoke_stream,
)

from anygate.protocol.accumulate import accumulate

_ids = itertools.count(1)
SIGNING_KEY = b"fake-bedrock-reasoning-key"


@dataclass
class Call:
    """A tool call the model makes."""

    name: str
    input: dict[str, Any]
    id: str = field(default_factory=lambda: f"tooluse_{next(_ids):04d}")


@dataclass
class Turn:
    """One reply: reasoning (optional; ``redacted`` sends it as redacted content), text, tool calls."""

    reasoning: str = ""
    text: str = ""
    calls: list[Call] = field(default_factory=list)
    redacted: bool = False


class BedrockRequest:
    """A received InvokeModel or Converse request and the questions a scripted model asks about it."""

    def __init__(self, received: Received) -> None:
        self.received = received
        parts = received.raw_path.split("/")
        self.model = unquote(parts[2])
        self.action = parts[3]
        self.body: dict[str, Any] = received.json()
        self.messages: list[dict[str, Any]] = self.body.get("messages") or []

    @property
    def converse(self) -> bool:
        return self.action.startswith("converse")

    @property
    def step(self) -> int:
        """How many assistant turns the conversation holds."""
        return sum(1 for m in self.messages if m["role"] == "assistant")

    def tool_results(self) -> list[tuple[str, str]]:
        """(tool call id, result text) of the last user message's tool results, in order."""
        out: list[tuple[str, str]] = []
        for block in self.messages[-1]["content"] if self.messages else ():
            if self.converse and "toolResult" in block:
                result = block["toolResult"]
                text = "".join(str(part.get("text", part.get("json", ""))) for part in result["content"])
                out.append((result["toolUseId"], text))
            elif not self.converse and block.get("type") == "tool_result":
                content = block.get("content")
                text = content if isinstance(content, str) else "".join(p.get("text", "") for p in content)
                out.append((block["tool_use_id"], text))
        return out

    def tool_names(self) -> list[str]:
        if self.converse:
            return [t["toolSpec"]["name"] for t in self.body.get("toolConfig", {}).get("tools", ())]
        return [t["name"] for t in self.body.get("tools") or ()]


Handler = Callable[[BedrockRequest], Turn]


def sign(text: str) -> str:
    return base64.b64encode(hmac.new(SIGNING_KEY, text.encode(), hashlib.sha256).digest()).decode()


class BedrockModels:
    """Scripted models on a fake Bedrock Runtime; ``endpoint`` is its ``aws_bedrock_runtime_endpoint``."""

    def __init__(self, betas: frozenset[str] | None = None) -> None:
        self.betas = betas
        self.upstream = FakeUpstream()
        self.handlers: dict[str, Handler] = {}
        self.received: list[BedrockRequest] = []
        self.rejections: list[str] = []
        self.errors: list[str] = []
        self.redacted_issued: set[str] = set()
        self.fake: FakeBedrock | None = None

    def start(self) -> BedrockModels:
        self.upstream.start()
        self.fake = FakeBedrock(f"127.0.0.1:{self.upstream.port}", self._answer, betas=self.betas)
        self.upstream.handle_all(self.fake)
        return self

    def stop(self) -> None:
        self.upstream.stop()

    @property
    def endpoint(self) -> str:
        return self.upstream.url

    @property
    def signature_rejections(self) -> list[str]:
        """Requests FakeBedrock refused (bad signature, invalid body)."""
        assert self.fake is not None
        return self.fake.rejected

    def model(self, model_id: str, handler: Handler) -> None:
        self.handlers[model_id] = handler

    def requests(self, model_id: str) -> list[BedrockRequest]:
        return [r for r in self.received if r.model == model_id and r.action != "count-tokens"]

    def _answer(self, action: str, received: Received) -> Json | Sse:
        request = BedrockRequest(received)
        self.received.append(request)
        if action == "count-tokens":
            return Json({"inputTokens": max(1, len(received.body) // 4)})
        handler = self.handlers.get(request.model)
        if handler is None:
            self.errors.append(f"no model {request.model}")
            return aws_error("ResourceNotFoundException", "Model not found.", 404)
        problem = self._history_problem(request)
        if problem is not None:
            self.rejections.append(problem)
            return aws_error("ValidationException", problem, 400)
        try:
            turn = handler(request)
        except AssertionError as exc:  # the scripted model's expectations: fail the test, not only the run
            self.errors.append(f"{request.model} step {request.step}: {exc}")
            return aws_error("ValidationException", f"scripted model: {exc}", 400)
        if turn.reasoning and turn.redacted:
            self.redacted_issued.add(redacted_data(turn))
        if request.converse:
            events = converse_events(turn)
            if action == "converse-stream":
                return eventstream_answer(frame_events(events))
            return Json(converse_message(turn))
        events = claude_events(turn, request.model)
        if action == "invoke-with-response-stream":
            return eventstream_answer(invoke_stream(events))
        return Json(accumulate(events))

    def _history_problem(self, request: BedrockRequest) -> str | None:
        """Reasoning in the history the fake did not issue, or missing before a tool call: Bedrock's 400."""
        for index, message in enumerate(request.messages):
            if message["role"] != "assistant":
                continue
            content = message["content"]
            reasoning = [self._reasoning_problem(b, request.converse) for b in content]
            if any(r not in (None, "") for r in reasoning):
                return f"messages.{index}: {next(r for r in reasoning if r)}"
            kinds = [r is None for r in reasoning]  # True: not reasoning
            calls = any(
                ("toolUse" in b) if request.converse else b.get("type") == "tool_use" for b in content
            )
            if calls and (not kinds or kinds[0]):
                return (
                    f"messages.{index}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
                    "another block. When `thinking` is enabled, a final `assistant` message must start with "
                    "a thinking block"
                )
        return None

    def _reasoning_problem(self, block: dict[str, Any], converse: bool) -> str | None:
        """None when ``block`` is not reasoning, "" when it is intact reasoning, else what is wrong."""
        if converse:
            reasoning = block.get("reasoningContent")
            if reasoning is None:
                return None
            if "redactedContent" in reasoning:
                ok = reasoning["redactedContent"] in self.redacted_issued
                return "" if ok else "Invalid redactedContent in reasoningContent block"
            text = reasoning["reasoningText"]
            ok = text.get("signature") == sign(text["text"])
            return "" if ok else "Invalid `signature` in `reasoningText` block"
        kind = block.get("type")
        if kind == "thinking":
            return (
                ""
                if block.get("signature") == sign(block["thinking"])
                else "Invalid `signature` in `thinking` block"
            )
        if kind == "redacted_thinking":
            return (
                ""
                if block.get("data") in self.redacted_issued
                else "Invalid `data` in `redacted_thinking` block"
            )
        return None


def redacted_data(turn: Turn) -> str:
    """The redacted content standing for ``turn``'s reasoning (opaque to the gateway)."""
    return base64.b64encode(b"redacted:" + turn.reasoning.encode()).decode()


def converse_events(turn: Turn) -> list[tuple[str, dict[str, Any]]]:
    """The ConverseStream events of ``turn``: reasoning in two text pieces then its signature, text, tools."""
    events: list[tuple[str, dict[str, Any]]] = [("messageStart", {"role": "assistant"})]
    index = 0
    if turn.reasoning and turn.redacted:
        events.append(_delta(index, {"reasoningContent": {"redactedContent": redacted_data(turn)}}))
        events.append(("contentBlockStop", {"contentBlockIndex": index}))
        index += 1
    elif turn.reasoning:
        half = len(turn.reasoning) // 2
        for piece in (turn.reasoning[:half], turn.reasoning[half:]):
            events.append(_delta(index, {"reasoningContent": {"text": piece}}))
        events.append(_delta(index, {"reasoningContent": {"signature": sign(turn.reasoning)}}))
        events.append(("contentBlockStop", {"contentBlockIndex": index}))
        index += 1
    if turn.text:
        events.append(_delta(index, {"text": turn.text}))
        events.append(("contentBlockStop", {"contentBlockIndex": index}))
        index += 1
    for call in turn.calls:
        start = {"toolUse": {"toolUseId": call.id, "name": call.name}}
        events.append(("contentBlockStart", {"contentBlockIndex": index, "start": start}))
        arguments = orjson.dumps(call.input).decode()
        for piece in (arguments[:5], arguments[5:]):
            events.append(_delta(index, {"toolUse": {"input": piece}}))
        events.append(("contentBlockStop", {"contentBlockIndex": index}))
        index += 1
    events.append(("messageStop", {"stopReason": "tool_use" if turn.calls else "end_turn"}))
    usage = {"inputTokens": 120, "outputTokens": 30, "totalTokens": 150}
    events.append(("metadata", {"usage": usage, "metrics": {"latencyMs": 12}}))
    return events


def converse_message(turn: Turn) -> dict[str, Any]:
    """The whole Converse answer of ``turn``."""
    content: list[dict[str, Any]] = []
    if turn.reasoning and turn.redacted:
        content.append({"reasoningContent": {"redactedContent": redacted_data(turn)}})
    elif turn.reasoning:
        text = {"text": turn.reasoning, "signature": sign(turn.reasoning)}
        content.append({"reasoningContent": {"reasoningText": text}})
    if turn.text:
        content.append({"text": turn.text})
    content.extend({"toolUse": {"toolUseId": c.id, "name": c.name, "input": c.input}} for c in turn.calls)
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": "tool_use" if turn.calls else "end_turn",
        "usage": {"inputTokens": 120, "outputTokens": 30, "totalTokens": 150},
        "metrics": {"latencyMs": 12},
    }


def _delta(index: int, delta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return ("contentBlockDelta", {"contentBlockIndex": index, "delta": delta})


def claude_events(turn: Turn, model: str) -> list[dict[str, Any]]:
    """The Anthropic events of ``turn`` as Claude on Bedrock streams them."""
    message = {
        "id": f"msg_bdrk_{next(_ids):04d}", "type": "message", "role": "assistant", "model": model,
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 120, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0,
                  "output_tokens": 1},
    }  # fmt: skip
    events: list[dict[str, Any]] = [{"type": "message_start", "message": message}]
    blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    if turn.reasoning:
        half = len(turn.reasoning) // 2
        blocks.append(
            (
                {"type": "thinking", "thinking": "", "signature": ""},
                [
                    {"type": "thinking_delta", "thinking": turn.reasoning[:half]},
                    {"type": "thinking_delta", "thinking": turn.reasoning[half:]},
                    {"type": "signature_delta", "signature": sign(turn.reasoning)},
                ],
            )
        )
    if turn.text:
        blocks.append(({"type": "text", "text": ""}, [{"type": "text_delta", "text": turn.text}]))
    for call in turn.calls:
        arguments = orjson.dumps(call.input).decode()
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in (arguments[:5], arguments[5:])]
        blocks.append(({"type": "tool_use", "id": call.id, "name": call.name, "input": {}}, deltas))
    for index, (start, deltas) in enumerate(blocks):
        events.append({"type": "content_block_start", "index": index, "content_block": start})
        events.extend({"type": "content_block_delta", "index": index, "delta": d} for d in deltas)
        events.append({"type": "content_block_stop", "index": index})
    stop = "tool_use" if turn.calls else "end_turn"
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": 30},
        }
    )
    events.append({"type": "message_stop"})
    return events
