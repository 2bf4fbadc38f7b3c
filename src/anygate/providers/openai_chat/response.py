"""A non-streaming Chat Completion → the Anthropic Message.

The completion's message goes through the same :class:`ChoiceAssembler` as a stream, and the Message is
the accumulation of the events it produces; so a non-streaming answer is, by construction, what the
client would have assembled from the stream of the same answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from anygate.hooks import Usage
from anygate.protocol.accumulate import accumulate
from anygate.providers.base import Answer
from anygate.providers.openai_chat.errors import in_band_error
from anygate.providers.openai_chat.stream import ChoiceAssembler

if TYPE_CHECKING:
    from anygate.providers.openai_chat.call import ChatCall


def completion_to_message(completion: dict[str, Any], call: ChatCall) -> tuple[dict[str, Any], Usage]:
    """The Anthropic Message for a parsed Chat Completion, and its usage."""
    if completion.get("error") is not None:
        raise in_band_error(completion)
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ValueError("the completion has no choices")
    assembler = ChoiceAssembler(call)
    assembler.start()
    assembler.chunk(completion)
    assembler.finish()
    return accumulate(assembler.blocks.drain()), assembler.usage()


def parse_completion(body: bytes, call: ChatCall) -> Answer:
    """An upstream 2xx body → the Anthropic Message as JSON bytes."""
    completion = orjson.loads(body)
    if not isinstance(completion, dict):
        raise ValueError("the completion is not a JSON object")
    message, usage = completion_to_message(completion, call)
    return Answer.of(message, usage)
