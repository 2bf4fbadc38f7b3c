"""The Responses API provider: one class, configured by the same :class:`Preset` as Chat Completions.

``openai/responses/<model>`` and ``azure/responses/<deployment>`` (LiteLLM's spelling) use it, and so does
any OpenAI-compatible deployment switched to the Responses API (``use_responses_api: true``, or LiteLLM's
``model_info: {mode: responses}``); the registry resolves those to the ``<preset>/responses`` provider.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, urlsplit

import orjson

from anygate.deployment import Deployment
from anygate.protocol.errors import GatewayError
from anygate.providers.base import CallContext, StaticCredentials, UpstreamRequest
from anygate.providers.openai_chat.errors import map_status
from anygate.providers.openai_chat.presets import PRESETS, Preset
from anygate.providers.openai_chat.provider import OpenAIChatProvider
from anygate.providers.openai_responses.call import ResponsesCall
from anygate.providers.openai_responses.request import responses_body
from anygate.tokens import count_request_tokens

RESPONSES_PATH: Final = "/responses"
INPUT_TOKENS_PATH: Final = "/responses/input_tokens"
AZURE_V1_VERSIONS: Final = frozenset({"v1", "latest", "preview"})
"""Azure api-versions served by the v1 surface (``/openai/v1/responses``); dated versions use
``/openai/responses?api-version=…``."""
INPUT_TOKENS_HOSTS: Final = frozenset({"api.openai.com"})
"""Hosts known to serve ``POST /v1/responses/input_tokens``; elsewhere tokens are counted locally."""
COUNT_FIELDS: Final = ("model", "instructions", "input", "tools", "tool_choice", "parallel_tool_calls",
                       "reasoning", "text")  # fmt: skip
"""The request fields the input-token counting endpoint takes."""


class OpenAIResponsesProvider(StaticCredentials):
    """A service that speaks the Responses API."""

    __slots__ = ("_chat", "api_key_env", "name", "preset")

    def __init__(self, preset: Preset) -> None:
        self.preset = preset
        self.name = f"{preset.name}/responses"
        self.api_key_env = preset.api_key_env
        self._chat = OpenAIChatProvider(preset)  # the same key headers and organization

    def _api_base(self, deployment: Deployment) -> str:
        base = deployment.api_base or self.preset.default_api_base
        if not base:
            raise GatewayError(
                500,
                f"the {self.name} deployment {deployment.deployment_id!r} has no api_base; "
                f"{self.preset.name}/ models need api_base set to the server's URL",
                error_type="api_error",
            )
        return base.rstrip("/").removesuffix(RESPONSES_PATH)

    def url(self, deployment: Deployment, path: str = RESPONSES_PATH) -> str:
        """The Responses endpoint (or a path under it) of a deployment."""
        base = self._api_base(deployment)
        if not self.preset.azure_urls:
            return base + path
        base = base.removesuffix("/openai/v1").removesuffix("/openai")
        version = deployment.api_version or "v1"
        if version in AZURE_V1_VERSIONS:
            query = "?api-version=preview" if version == "preview" else ""
            return f"{base}/openai/v1{path}{query}"
        return f"{base}/openai{path}?api-version={quote(version, safe='')}"

    def prepare(
        self, deployment: Deployment, request: dict[str, Any], ctx: CallContext, *, stream: bool
    ) -> ResponsesCall:
        body, tool_names = responses_body(
            request, model=deployment.upstream_model, preset=self.preset, signer=ctx.signer, stream=stream
        )
        payload = orjson.dumps(body)
        upstream = UpstreamRequest("POST", self.url(deployment), self._chat.headers(deployment), payload)
        return ResponsesCall(ctx, upstream, body, deployment.upstream_model, tool_names, len(payload))

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> GatewayError:
        return map_status(status, headers, body)

    def prepare_count_tokens(
        self, deployment: Deployment, request: dict[str, Any], ctx: CallContext
    ) -> InputTokensCall | None:
        """OpenAI's ``POST /v1/responses/input_tokens`` counts the request as the model sees it (images,
        files and tools included); other servers are counted locally."""
        url = self.url(deployment, INPUT_TOKENS_PATH)
        if self.preset.azure_urls or urlsplit(url).hostname not in INPUT_TOKENS_HOSTS:
            return None
        full = {**request, "max_tokens": request.get("max_tokens") or 1}
        body, _ = responses_body(
            full, model=deployment.upstream_model, preset=self.preset, signer=ctx.signer, stream=False
        )
        counted = {key: body[key] for key in COUNT_FIELDS if key in body}
        upstream = UpstreamRequest("POST", url, self._chat.headers(deployment), orjson.dumps(counted))
        return InputTokensCall(upstream)

    def count_tokens_locally(self, deployment: Deployment, request: dict[str, Any]) -> int:
        return count_request_tokens(request, deployment.upstream_model)


@dataclass(slots=True)
class InputTokensCall:
    """The input-token counting request and its answer's ``input_tokens``."""

    request: UpstreamRequest

    def parse(self, body: bytes) -> int:
        parsed = orjson.loads(body)
        count = parsed.get("input_tokens") if isinstance(parsed, dict) else None
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError("the input_tokens answer has no count")
        return count


_BY_NAME: dict[str, Preset] = {preset.name: preset for preset in PRESETS}


def provider_for_preset(name: str) -> OpenAIResponsesProvider:
    """The Responses provider for the OpenAI-compatible service ``name`` (see :data:`PRESETS`)."""
    return OpenAIResponsesProvider(_BY_NAME[name])
