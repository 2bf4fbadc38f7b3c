"""One Bedrock attempt: the request sent and what reading its answer needs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from anygate.protocol.accumulate import accumulate
from anygate.providers.base import Answer, CallContext, UpstreamRequest
from anygate.providers.bedrock.converse_stream import (
    ConverseAssembler,
    ConverseStreamTranslator,
    converse_events,
)
from anygate.providers.bedrock.invoke import InvokeStreamTranslator, parse_invoke_response


@dataclass(slots=True)
class InvokeCall:
    """Claude through InvokeModel(WithResponseStream): Anthropic in, Anthropic out."""

    request: UpstreamRequest

    def parse_response(self, body: bytes) -> Answer:
        return parse_invoke_response(body)

    def stream_translator(self) -> InvokeStreamTranslator:
        return InvokeStreamTranslator()


@dataclass(slots=True)
class ConverseCall:
    """A Converse(Stream) call.

    Attributes:
        ctx: the client request being answered.
        request: the upstream request.
        body_bytes: the size of the body sent, for the early input-token estimate.
    """

    ctx: CallContext
    request: UpstreamRequest
    body_bytes: int

    def parse_response(self, body: bytes) -> Answer:
        """A Converse answer, replayed as the stream events of the same answer (see converse_stream)."""
        answer: Any = orjson.loads(body)
        if not isinstance(answer, dict):
            raise ValueError("the Converse answer is not a JSON object")
        assembler = ConverseAssembler(self)
        for kind, payload in converse_events(answer):
            assembler.event(kind, payload)
        if not assembler.blocks.finished:
            assembler.finish()
        return Answer.of(accumulate(assembler.blocks.drain()), assembler.usage())

    def stream_translator(self) -> ConverseStreamTranslator:
        return ConverseStreamTranslator(self)


@dataclass(slots=True)
class CountTokensCall:
    """Bedrock's CountTokens: ``{"inputTokens": N}``."""

    request: UpstreamRequest

    def parse(self, body: bytes) -> int:
        parsed = orjson.loads(body)
        tokens = parsed.get("inputTokens") if isinstance(parsed, dict) else None
        if not isinstance(tokens, int) or isinstance(tokens, bool):
            raise ValueError("the Bedrock CountTokens answer has no inputTokens")
        return tokens
