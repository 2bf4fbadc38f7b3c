"""One Chat Completions attempt: the request sent and what reading its answer needs."""

from __future__ import annotations

from dataclasses import dataclass

from anygate.providers.base import Answer, CallContext, UpstreamRequest
from anygate.providers.openai_chat.response import parse_completion
from anygate.providers.openai_chat.stream import ChatStreamTranslator
from anygate.tokens import count_request_tokens


@dataclass(slots=True)
class ChatCall:
    """A prepared Chat Completions call.

    Attributes:
        ctx: the client request being answered.
        request: the upstream request.
        upstream_model: the model name sent upstream (it picks the tokenizer for local counts).
        tool_names: tool names as sent upstream → the client's names (long names are shortened).
        body_bytes: the size of the JSON body sent, for the early input-token estimate.
    """

    ctx: CallContext
    request: UpstreamRequest
    upstream_model: str
    tool_names: dict[str, str]
    body_bytes: int
    _local_input_tokens: int | None = None

    def parse_response(self, body: bytes) -> Answer:
        return parse_completion(body, self)

    def stream_translator(self) -> ChatStreamTranslator:
        return ChatStreamTranslator(self)

    def local_input_tokens(self) -> int:
        """The request's input tokens counted locally (once), for answers that report no usage."""
        if self._local_input_tokens is None:
            self._local_input_tokens = count_request_tokens(self.ctx.request, self.upstream_model)
        return self._local_input_tokens
