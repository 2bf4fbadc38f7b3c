"""A scripted model behind ``POST /v1/responses`` that enforces what OpenAI enforces with ``store: false``.

Each reply carries a reasoning item whose ``encrypted_content`` is an HMAC of its id under the fake's
organisation key (as OpenAI's is readable only by the organisation that made it). A request is refused
like the real API refuses it:

- a reasoning item whose ``encrypted_content`` does not verify (altered, or made under another key):
  400 ``invalid_encrypted_content``;
- a reasoning item not immediately followed by a function call or an assistant message: 400
  ``Item 'rs_…' of type 'reasoning' was provided without its required following item.``

The turn to play is read from the conversation (how many assistant runs it holds), so a retried request
gets the same answer. Streams are sent as the API sends them: ``event:`` + ``data:`` frames, the
``encrypted_content`` in ``output_item.added`` a placeholder and the final one only in ``output_item.done``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from tests.fakes.upstream import Answer, Json, Received, Sse

RESPONSES_PATH = "/v1/responses"
_ids = itertools.count(1)


@dataclass
class Call:
    """A function call the model makes."""

    name: str
    arguments: dict[str, Any]
    call_id: str = field(default_factory=lambda: f"call_{next(_ids):04d}")


@dataclass
class Turn:
    """One reply: a reasoning item (summary text optional), then text and/or function calls."""

    summary: str = ""
    text: str = ""
    calls: list[Call] = field(default_factory=list)


Script = list[Turn | Callable[["ResponsesRequest"], Turn]]


class ResponsesRequest:
    """A received Responses request and the questions a scripted model asks about it."""

    def __init__(self, received: Received) -> None:
        self.received = received
        self.body: dict[str, Any] = received.json()
        self.input: list[dict[str, Any]] = self.body.get("input") or []

    @property
    def turn(self) -> int:
        """How many assistant runs (reasoning, calls, messages in a row) the conversation holds."""
        runs, inside = 0, False
        for item in self.input:
            assistant = item.get("type") in ("reasoning", "function_call") or item.get("role") == "assistant"
            if assistant and not inside:
                runs += 1
            inside = assistant
        return runs

    def reasoning_items(self) -> list[dict[str, Any]]:
        return [item for item in self.input if item.get("type") == "reasoning"]

    def output_of(self, call: Call) -> str:
        for item in self.input:
            if item.get("type") == "function_call_output" and item.get("call_id") == call.call_id:
                output = item.get("output")
                return output if isinstance(output, str) else orjson.dumps(output).decode()
        raise AssertionError(f"no function_call_output for {call.call_id}")


class FakeResponsesModel:
    """One scripted reasoning model; ``organisation`` keys its encrypted reasoning."""

    def __init__(self, script: Script, *, organisation: str = "org-a") -> None:
        self.script = script
        self.organisation = organisation
        self.requests: list[ResponsesRequest] = []
        self.refusals: list[str] = []
        self.issued: dict[str, str] = {}
        """Reasoning item id → the encrypted content this model issued for it."""

    def encrypted(self, item_id: str) -> str:
        mac = hmac.new(self.organisation.encode(), item_id.encode(), hashlib.sha256).digest()
        return "gAAAA" + base64.urlsafe_b64encode(mac).decode()

    def __call__(self, received: Received) -> Answer:
        request = ResponsesRequest(received)
        self.requests.append(request)
        refusal = self._check(request)
        if refusal is not None:
            self.refusals.append(refusal[1])
            error = {
                "message": refusal[1],
                "type": "invalid_request_error",
                "param": "input",
                "code": refusal[0],
            }
            return Json({"error": error}, status=400)
        step = self.script[min(request.turn, len(self.script) - 1)]
        turn = step(request) if callable(step) else step
        response = self._response(request, turn)
        if request.body.get("stream"):
            return Sse(self._events(response))
        return Json(response)

    def _check(self, request: ResponsesRequest) -> tuple[str | None, str] | None:
        items = request.input
        for i, item in enumerate(items):
            if item.get("type") != "reasoning":
                continue
            content = item.get("encrypted_content")
            if not isinstance(content, str) or not hmac.compare_digest(
                content, self.encrypted(str(item.get("id")))
            ):
                return (
                    "invalid_encrypted_content",
                    f"The encrypted content {str(content)[:8]}... could not be verified.",
                )
            following = items[i + 1] if i + 1 < len(items) else {}
            if following.get("type") != "function_call" and following.get("role") != "assistant":
                item_id = item.get("id")
                return (
                    None,
                    f"Item '{item_id}' of type 'reasoning' was provided without its required following item.",
                )
        return None

    def _response(self, request: ResponsesRequest, turn: Turn) -> dict[str, Any]:
        rid = next(_ids)
        reasoning_id = f"rs_{rid:06d}"
        self.issued[reasoning_id] = self.encrypted(reasoning_id)
        output: list[dict[str, Any]] = [
            {
                "id": reasoning_id,
                "type": "reasoning",
                "encrypted_content": self.issued[reasoning_id],
                "summary": [{"type": "summary_text", "text": turn.summary}] if turn.summary else [],
            }
        ]
        if turn.text:
            output.append(
                {
                    "id": f"msg_{rid:06d}",
                    "type": "message",
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": turn.text, "annotations": []}],
                }
            )
        for call in turn.calls:
            output.append(
                {
                    "id": f"fc_{next(_ids):06d}",
                    "type": "function_call",
                    "status": "completed",
                    "call_id": call.call_id,
                    "name": call.name,
                    "arguments": orjson.dumps(call.arguments).decode(),
                }
            )
        prompt = max(1, len(request.received.body) // 4)
        return {
            "id": f"resp_{rid:06d}",
            "object": "response",
            "status": "completed",
            "model": request.body.get("model"),
            "output": output,
            "usage": {
                "input_tokens": prompt,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": 20,
                "output_tokens_details": {"reasoning_tokens": 12},
                "total_tokens": prompt + 20,
            },
        }

    def _events(self, response: dict[str, Any]) -> list[bytes]:
        shell = {**response, "status": "in_progress", "output": [], "usage": None}
        events: list[dict[str, Any]] = [
            {"type": "response.created", "response": shell},
            {"type": "response.in_progress", "response": shell},
        ]
        for index, item in enumerate(response["output"]):
            base = {"output_index": index, "item_id": item["id"]}
            if item["type"] == "reasoning":
                added = {**item, "encrypted_content": "gAAAA-incomplete", "summary": []}
                events.append({"type": "response.output_item.added", "output_index": index, "item": added})
                for i, part in enumerate(item["summary"]):
                    events.append(
                        {"type": "response.reasoning_summary_part.added", **base, "summary_index": i}
                    )
                    for piece in _pieces(part["text"]):
                        events.append(
                            {
                                "type": "response.reasoning_summary_text.delta",
                                **base,
                                "summary_index": i,
                                "delta": piece,
                            }
                        )
            elif item["type"] == "message":
                events.append(
                    {
                        "type": "response.output_item.added",
                        "output_index": index,
                        "item": {**item, "content": []},
                    }
                )
                for piece in _pieces(item["content"][0]["text"]):
                    events.append(
                        {"type": "response.output_text.delta", **base, "content_index": 0, "delta": piece}
                    )
            else:
                events.append(
                    {
                        "type": "response.output_item.added",
                        "output_index": index,
                        "item": {**item, "arguments": ""},
                    }
                )
                for piece in _pieces(item["arguments"]):
                    events.append({"type": "response.function_call_arguments.delta", **base, "delta": piece})
                events.append(
                    {"type": "response.function_call_arguments.done", **base, "arguments": item["arguments"]}
                )
            events.append({"type": "response.output_item.done", "output_index": index, "item": item})
        events.append({"type": "response.completed", "response": response})
        return [b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events]


def _pieces(text: str, parts: int = 3) -> list[str]:
    size = max(1, -(-len(text) // parts))
    return [text[i : i + size] for i in range(0, len(text), size)]
