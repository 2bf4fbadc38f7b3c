"""A whole Responses API response object → the Anthropic Message.

The response's output items are turned into the events a stream of the same answer carries (item added,
its deltas, item done, then the terminal event) and fed to the same :class:`ResponseAssembler`; the
Message is the accumulation of what it produced. A non-streaming answer is so, by construction, what the
client would have assembled from the stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

import orjson

from anygate.hooks import Usage
from anygate.protocol.accumulate import accumulate
from anygate.providers.base import Answer
from anygate.providers.openai_responses.errors import stream_failure
from anygate.providers.openai_responses.stream import ResponseAssembler

if TYPE_CHECKING:
    from anygate.providers.openai_responses.call import ResponsesCall

STATUS_TO_TERMINAL_EVENT: Final[dict[str, str]] = {
    "completed": "response.completed",
    "incomplete": "response.incomplete",
    "failed": "response.failed",
}
"""A response's ``status`` → the event that would have ended its stream. Other statuses (``queued``,
``in_progress``, ``cancelled``) are no answer."""


def response_events(response: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The stream events that carry ``response``."""
    status = response.get("status")
    terminal = STATUS_TO_TERMINAL_EVENT.get(status) if isinstance(status, str) else None
    if terminal is None:
        raise ValueError(f"the response has status {status!r}, not a finished answer")
    if terminal == "response.failed":
        yield {"type": terminal, "response": response}
        return
    for index, item in enumerate(response.get("output") or ()):
        if not isinstance(item, dict):
            raise ValueError("an output item is not an object")
        yield {"type": "response.output_item.added", "output_index": index, "item": item}
        kind = item.get("type")
        if kind == "reasoning":
            for i, part in enumerate(item.get("summary") or ()):
                yield {
                    "type": "response.reasoning_summary_part.added",
                    "output_index": index,
                    "summary_index": i,
                }
                text = part.get("text") if isinstance(part, dict) else None
                yield {"type": "response.reasoning_summary_text.delta", "output_index": index, "delta": text}
        elif kind == "message":
            for part in item.get("content") or ():
                if not isinstance(part, dict):
                    continue
                if part.get("type") == "output_text":
                    yield {
                        "type": "response.output_text.delta",
                        "output_index": index,
                        "delta": part.get("text"),
                    }
                elif part.get("type") == "refusal":
                    yield {
                        "type": "response.refusal.delta",
                        "output_index": index,
                        "delta": part.get("refusal"),
                    }
        elif kind == "function_call":
            yield {
                "type": "response.function_call_arguments.delta",
                "output_index": index,
                "delta": item.get("arguments"),
            }
        yield {"type": "response.output_item.done", "output_index": index, "item": item}
    yield {"type": terminal, "response": response}


def response_to_message(response: dict[str, Any], call: ResponsesCall) -> tuple[dict[str, Any], Usage]:
    """The Anthropic Message for a parsed response object, and its usage."""
    if response.get("error") is not None and response.get("status") != "completed":
        raise stream_failure({"type": "response.failed", "response": response})
    assembler = ResponseAssembler(call)
    assembler.start()
    for event in response_events(response):
        assembler.event(event)
    return accumulate(assembler.blocks.drain()), assembler.usage()


def parse_response(body: bytes, call: ResponsesCall) -> Answer:
    """An upstream 2xx body → the Anthropic Message as JSON bytes."""
    response = orjson.loads(body)
    if not isinstance(response, dict):
        raise ValueError("the response is not a JSON object")
    message, usage = response_to_message(response, call)
    return Answer.of(message, usage)
