"""The Chat Completions provider: one class, configured by a :class:`Preset` per service."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson

from anygate.deployment import Deployment
from anygate.protocol.errors import GatewayError
from anygate.providers.base import CallContext, StaticCredentials, UpstreamRequest
from anygate.providers.openai_chat.call import ChatCall
from anygate.providers.openai_chat.errors import map_status
from anygate.providers.openai_chat.presets import DEFAULT_AZURE_API_VERSION, PRESETS, Preset
from anygate.providers.openai_chat.request import chat_body, chat_messages, chat_tools
from anygate.tokens import count_request_tokens

_CHAT_PATH = "/chat/completions"


class OpenAIChatProvider(StaticCredentials):
    """An OpenAI-compatible Chat Completions service."""

    __slots__ = ("api_key_env", "name", "preset")

    def __init__(self, preset: Preset) -> None:
        self.preset = preset
        self.name = preset.name
        self.api_key_env = preset.api_key_env

    # --- where and how ---------------------------------------------------------------------------------

    def _api_base(self, deployment: Deployment) -> str:
        base = deployment.api_base or self.preset.default_api_base
        if not base:
            raise GatewayError(
                500,
                f"the {self.name} deployment {deployment.deployment_id!r} has no api_base; "
                f"{self.name}/ models need api_base set to the server's URL",
                error_type="api_error",
            )
        base = base.rstrip("/")
        return base.removesuffix(_CHAT_PATH)

    def chat_url(self, deployment: Deployment) -> str:
        """The Chat Completions endpoint of a deployment."""
        base = self._api_base(deployment)
        if self.preset.azure_urls:
            base = base.removesuffix("/openai")
            version = quote(deployment.api_version or DEFAULT_AZURE_API_VERSION, safe="")
            name = quote(deployment.upstream_model, safe="")
            return f"{base}/openai/deployments/{name}{_CHAT_PATH}?api-version={version}"
        return base + _CHAT_PATH

    def headers(self, deployment: Deployment) -> dict[str, str]:
        """Content type, the key in the service's header, organization, and configured extras."""
        headers = {"content-type": "application/json"}
        if deployment.api_key:
            if self.preset.auth == "api-key":
                headers["api-key"] = deployment.api_key
            else:
                headers["authorization"] = f"Bearer {deployment.api_key}"
        if deployment.organization:
            headers["openai-organization"] = deployment.organization
        headers.update(deployment.extra_headers)
        return headers

    # --- the Provider protocol ---------------------------------------------------------------------------

    def prepare(
        self, deployment: Deployment, request: dict[str, Any], ctx: CallContext, *, stream: bool
    ) -> ChatCall:
        url = self.chat_url(deployment)
        body, tool_names = chat_body(
            request, model=deployment.upstream_model, preset=self.preset, stream=stream
        )
        payload = orjson.dumps(body)
        upstream = UpstreamRequest("POST", url, self.headers(deployment), payload)
        return ChatCall(ctx, upstream, deployment.upstream_model, tool_names, len(payload))

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> GatewayError:
        return map_status(status, headers, body)

    def prepare_count_tokens(
        self, deployment: Deployment, request: dict[str, Any], ctx: CallContext
    ) -> TokenizeCall | None:
        """vLLM's ``POST /tokenize`` (beside ``/v1``) counts the chat request as the model sees it;
        other services have no such endpoint and are counted locally."""
        if not self.preset.tokenize_endpoint:
            return None
        root = self._api_base(deployment).removesuffix("/v1")
        names: dict[str, str] = {}
        body: dict[str, Any] = {
            "model": deployment.upstream_model,
            "messages": chat_messages(request, self.preset, names),
            "add_generation_prompt": True,
        }
        tools = chat_tools(request.get("tools"), names)
        if tools:
            body["tools"] = tools
        upstream = UpstreamRequest("POST", root + "/tokenize", self.headers(deployment), orjson.dumps(body))
        return TokenizeCall(upstream)

    def count_tokens_locally(self, deployment: Deployment, request: dict[str, Any]) -> int:
        return count_request_tokens(request, deployment.upstream_model)


@dataclass(slots=True)
class TokenizeCall:
    """vLLM's ``/tokenize`` request and its answer's ``count``."""

    request: UpstreamRequest

    def parse(self, body: bytes) -> int:
        parsed = orjson.loads(body)
        count = parsed.get("count") if isinstance(parsed, dict) else None
        if not isinstance(count, int) or count < 1:
            raise ValueError("the upstream /tokenize answer has no count")
        return count


_BY_NAME: dict[str, Preset] = {preset.name: preset for preset in PRESETS}


def provider_for_preset(name: str) -> OpenAIChatProvider:
    """The provider for the OpenAI-compatible service ``name`` (see :data:`PRESETS`)."""
    return OpenAIChatProvider(_BY_NAME[name])
