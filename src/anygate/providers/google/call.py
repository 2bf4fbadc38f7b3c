"""One Gemini attempt: the request sent and what reading its answer needs."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from anygate.providers.base import Answer, CallContext, UpstreamRequest
from anygate.providers.google.response import parse_answer
from anygate.providers.google.stream import GeminiStreamTranslator


@dataclass(slots=True)
class GeminiCall:
    """A prepared ``generateContent`` / ``streamGenerateContent`` call.

    Attributes:
        ctx: the client request being answered.
        request: the upstream request.
        backend: ``"gemini"`` or ``"vertex"`` (signatures are sealed for it).
        body_bytes: the size of the JSON body sent, for the early input-token estimate.
        tool_names: Gemini's function names → the client's (long names are shortened).
        single_call: only the first function call reaches the client (``disable_parallel_tool_use``).
    """

    ctx: CallContext
    request: UpstreamRequest
    backend: str
    body_bytes: int
    tool_names: dict[str, str] = field(default_factory=dict)
    single_call: bool = False

    def parse_response(self, body: bytes) -> Answer:
        return parse_answer(body, self)

    def stream_translator(self) -> GeminiStreamTranslator:
        return GeminiStreamTranslator(self)


@dataclass(slots=True)
class CountTokensCall:
    """``countTokens`` upstream; the answer's ``totalTokens``."""

    request: UpstreamRequest

    def parse(self, body: bytes) -> int:
        parsed = orjson.loads(body)
        tokens = parsed.get("totalTokens") if isinstance(parsed, dict) else None
        if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 0:
            raise ValueError("the countTokens answer has no totalTokens")
        return tokens
