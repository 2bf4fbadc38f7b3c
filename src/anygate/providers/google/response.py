"""A non-streaming Gemini answer → the Anthropic Message.

The answer goes through the same :class:`CandidateAssembler` as a stream (a whole answer has the shape
of one stream chunk), and the Message is the accumulation of the events it produces; so a non-streaming
answer is, by construction, what the client would have assembled from the stream of the same answer.
A whole answer without a ``finishReason`` is complete all the same (a stream without one is not).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from anygate.protocol.accumulate import accumulate
from anygate.providers.base import Answer
from anygate.providers.google.errors import in_band_error
from anygate.providers.google.stream import CandidateAssembler

if TYPE_CHECKING:
    from anygate.providers.google.call import GeminiCall


def parse_answer(body: bytes, call: GeminiCall) -> Answer:
    """An upstream 2xx ``GenerateContentResponse`` → the Anthropic Message as JSON bytes."""
    payload = orjson.loads(body)
    if isinstance(payload, list) and len(payload) == 1:
        payload = payload[0]
    if not isinstance(payload, dict):
        raise ValueError("the answer is not a JSON object")
    if payload.get("error") is not None:
        raise in_band_error(payload)
    assembler = CandidateAssembler(call)
    assembler.start(payload)
    assembler.chunk(payload)
    if not assembler.finished and not payload.get("candidates"):
        raise ValueError("the answer has no candidates and no blocked prompt")
    assembler.finish()
    return Answer.of(accumulate(assembler.blocks.drain()), assembler.usage())
