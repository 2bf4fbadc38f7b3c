"""A non-streaming Chat Completion → the Anthropic Message.

The completion's message goes through the same :class:`ChoiceAssembler` as a stream, and the Message is
the accumulation of the events it produces; so a non-streaming answer is, by construction, what the
client would have assembled from the stream of the same answer.
"""

from __future__ import annotations

from typing import Any

import orjson

from anygate.protocol.accumulate import accumulate
from anygate.providers.base import CallContext
from anygate.providers.openai_chat.errors import in_band_error
from anygate.providers.openai_chat.stream import ChoiceAssembler


def completion_to_message(completion: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    """The Anthropic Message for a parsed Chat Completion."""
    if completion.get("error") is not None:
        raise in_band_error(completion)
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ValueError("the completion has no choices")
    assembler = ChoiceAssembler(ctx)
    assembler.start()
    assembler.chunk(completion)
    assembler.finish()
    return accumulate(assembler.blocks.drain())


def parse_completion(body: bytes, ctx: CallContext) -> bytes:
    """An upstream 2xx body → the Anthropic Message as JSON bytes."""
    completion = orjson.loads(body)
    if not isinstance(completion, dict):
        raise ValueError("the completion is not a JSON object")
    return orjson.dumps(completion_to_message(completion, ctx))
