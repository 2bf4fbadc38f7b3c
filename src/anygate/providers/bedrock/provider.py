"""The Bedrock provider: which API a model goes to, where, and with which credentials.

``bedrock/<model>`` goes to InvokeModel with the native Anthropic body when the model is Claude (its id
or inference profile names ``anthropic.``/``claude``), otherwise to Converse; ``bedrock/converse/<model>``
and ``bedrock/invoke/<model>`` choose explicitly (an application inference profile ARN does not say which
model it serves).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote

import orjson

from anygate.deployment import Deployment
from anygate.protocol.errors import GatewayError
from anygate.providers.base import CallContext, UpstreamRequest
from anygate.providers.bedrock.auth import DeploymentAuth, resolve_auth
from anygate.providers.bedrock.call import ConverseCall, CountTokensCall, InvokeCall
from anygate.providers.bedrock.converse_request import converse_body
from anygate.providers.bedrock.errors import map_http_error
from anygate.providers.bedrock.invoke import client_betas, count_tokens_body, invoke_body
from anygate.providers.bedrock.sigv4 import SigV4Signer
from anygate.tokens import estimate_request_tokens

CONVERSE_PREFIX: Final = "converse/"
INVOKE_PREFIX: Final = "invoke/"
CLAUDE_MARKERS: Final = ("anthropic.", "claude")
INFERENCE_PROFILE_PREFIXES: Final = ("global.", "us.", "eu.", "apac.", "jp.", "au.", "ca.", "us-gov.")
"""Cross-region inference profile prefixes; CountTokens takes the base model id only."""


def route(upstream_model: str) -> tuple[str, str]:
    """``(api, model id)``: ``invoke`` for Claude, ``converse`` for the rest (or as the prefix says)."""
    if upstream_model.startswith(CONVERSE_PREFIX):
        return "converse", upstream_model[len(CONVERSE_PREFIX) :]
    if upstream_model.startswith(INVOKE_PREFIX):
        return "invoke", upstream_model[len(INVOKE_PREFIX) :]
    lowered = upstream_model.lower()
    if any(marker in lowered for marker in CLAUDE_MARKERS):
        return "invoke", upstream_model
    return "converse", upstream_model


def base_model_id(model: str) -> str:
    """``us.anthropic.claude-…`` → ``anthropic.claude-…`` (ARNs and base ids unchanged)."""
    for prefix in INFERENCE_PROFILE_PREFIXES:
        if model.startswith(prefix):
            return model[len(prefix) :]
    return model


class BedrockProvider:
    """AWS Bedrock Runtime (see the module docstring)."""

    name = "bedrock"
    dynamic_credentials = True

    def __init__(self) -> None:
        self._auth: dict[tuple[Any, ...], DeploymentAuth] = {}
        self._signers: dict[str, SigV4Signer] = {}

    def auth(self, deployment: Deployment) -> DeploymentAuth:
        """The deployment's credentials (resolved once per deployment and configuration, so a reloaded
        config with other keys gets new ones; refreshing credentials refresh themselves)."""
        key = (deployment.deployment_id, deployment.api_key, *sorted(deployment.params.items()))
        auth = self._auth.get(key)
        if auth is None:
            auth = resolve_auth(deployment.params, deployment.api_key, route(deployment.upstream_model)[1])
            self._auth[key] = auth
        return auth

    def endpoint(self, deployment: Deployment, region: str) -> str:
        base = deployment.params.get("aws_bedrock_runtime_endpoint") or deployment.api_base
        if not base:
            return f"https://bedrock-runtime.{region}.amazonaws.com"
        return str(base).rstrip("/")

    def _request(self, deployment: Deployment, model: str, action: str, body: bytes) -> UpstreamRequest:
        auth = self.auth(deployment)
        url = f"{self.endpoint(deployment, auth.region)}/model/{quote(model, safe='')}/{action}"
        headers = {"content-type": "application/json", "accept": "application/json"}
        if auth.bearer is not None:
            headers["authorization"] = f"Bearer {auth.bearer}"
        headers.update(deployment.extra_headers)
        return UpstreamRequest("POST", url, headers, body)

    # --- the Provider protocol ---------------------------------------------------------------------------

    def prepare(
        self, deployment: Deployment, request: dict[str, Any], ctx: CallContext, *, stream: bool
    ) -> InvokeCall | ConverseCall:
        api, model = route(deployment.upstream_model)
        if api == "invoke":
            body = orjson.dumps(invoke_body(request, client_betas(ctx.client_headers)))
            action = "invoke-with-response-stream" if stream else "invoke"
            return InvokeCall(self._request(deployment, model, action, body))
        body = orjson.dumps(converse_body(request, model, ctx.signer))
        action = "converse-stream" if stream else "converse"
        return ConverseCall(ctx, self._request(deployment, model, action, body), len(body))

    async def authorize(self, deployment: Deployment, request: UpstreamRequest) -> None:
        """Sign the request (SigV4); a Bedrock API key was already set by ``prepare``."""
        auth = self.auth(deployment)
        if auth.bearer is not None:
            return
        if auth.static is not None:
            credentials = auth.static
        elif auth.refreshing is not None:
            credentials = await auth.refreshing.get()
        else:  # resolve_auth always gives one of the three
            raise GatewayError(500, "the Bedrock deployment has no credentials", error_type="api_error")
        signer = self._signers.get(auth.region)
        if signer is None:
            signer = self._signers[auth.region] = SigV4Signer(auth.region)
        signer.sign(request.method, request.url, request.headers, request.body, credentials)

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> GatewayError:
        return map_http_error(status, headers, body)

    def prepare_count_tokens(
        self, deployment: Deployment, request: dict[str, Any], ctx: CallContext
    ) -> CountTokensCall | None:
        """Claude models are counted by Bedrock's CountTokens; other models locally (an estimate)."""
        api, model = route(deployment.upstream_model)
        if api != "invoke":
            return None
        body = count_tokens_body(request, client_betas(ctx.client_headers))
        return CountTokensCall(self._request(deployment, base_model_id(model), "count-tokens", body))

    def count_tokens_locally(self, deployment: Deployment, request: dict[str, Any]) -> int:
        return estimate_request_tokens(request)
