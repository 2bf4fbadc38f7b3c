"""One Responses API attempt: the request sent and what reading its answer needs."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import orjson

from anygate.providers.base import Answer, CallContext, UpstreamRequest
from anygate.providers.openai_responses.errors import rejects_reasoning
from anygate.providers.openai_responses.request import without_reasoning
from anygate.providers.openai_responses.response import parse_response
from anygate.providers.openai_responses.stream import ResponsesStreamTranslator
from anygate.tokens import count_request_tokens


@dataclass(slots=True)
class ResponsesCall:
    """A prepared Responses call.

    Attributes:
        ctx: the client request being answered.
        request: the upstream request.
        body: the JSON body sent (kept to amend it without the replayed reasoning).
        upstream_model: the model name sent upstream (it picks the tokenizer for local counts).
        tool_names: function names as sent upstream → the client's tool names.
        body_bytes: the size of the JSON body sent, for the early input-token estimate.
    """

    ctx: CallContext
    request: UpstreamRequest
    body: dict[str, Any]
    upstream_model: str
    tool_names: dict[str, str]
    body_bytes: int
    _local_input_tokens: int | None = None

    def parse_response(self, body: bytes) -> Answer:
        return parse_response(body, self)

    def stream_translator(self) -> ResponsesStreamTranslator:
        return ResponsesStreamTranslator(self)

    def amend(self, status: int, body: bytes) -> ResponsesCall | None:
        """The same call without the replayed reasoning items, when the upstream refused them (reasoning
        made under another key or organisation, or no longer valid); None otherwise. The amended call
        has no reasoning left, so it is never amended again: one retry at most."""
        if not rejects_reasoning(status, body):
            return None
        stripped = without_reasoning(self.body)
        if stripped is None:
            return None
        payload = orjson.dumps(stripped)
        request = UpstreamRequest(self.request.method, self.request.url, dict(self.request.headers), payload)
        return replace(self, request=request, body=stripped, body_bytes=len(payload))

    def local_input_tokens(self) -> int:
        """The request's input tokens counted locally (once), for answers that report no usage."""
        if self._local_input_tokens is None:
            self._local_input_tokens = count_request_tokens(self.ctx.request, self.upstream_model)
        return self._local_input_tokens
