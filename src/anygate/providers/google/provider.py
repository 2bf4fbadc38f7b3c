"""The ``gemini`` (Gemini API) and ``vertex_ai`` (Gemini and Claude on Vertex AI) providers.

Endpoints follow LiteLLM's meaning of ``api_base`` so configs carry over: for the Gemini API it includes
the version path (``https://host/v1beta``) and ``/models/<model>:<method>`` is appended; for Vertex it is
the bare host (``https://host``), to which the usual ``/v1/projects/…`` path is appended. A Vertex
``api_base`` that ends in ``/v1`` or ``/v1beta1`` gets the path after the version; one with any other
path is the full model URL, to which ``:<method>`` is appended.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote, urlsplit

import orjson

from anygate.deployment import Deployment
from anygate.protocol.errors import GatewayError, upstream_error
from anygate.providers.anthropic import CountTokensCall as AnthropicCountCall
from anygate.providers.anthropic import PassthroughCall
from anygate.providers.base import CallContext, StaticCredentials, UpstreamRequest
from anygate.providers.credentials import RefreshingCredential
from anygate.providers.google import vertex_claude
from anygate.providers.google.call import CountTokensCall, GeminiCall
from anygate.providers.google.errors import map_status, mask
from anygate.providers.google.request import Target, gemini_body
from anygate.providers.upstream_errors import credentials_rejected, retry_headers
from anygate.tokens import estimate_request_tokens

log = logging.getLogger("anygate.gemini")

GEMINI_API_BASE: Final = "https://generativelanguage.googleapis.com/v1beta"
VERTEX_API_VERSION: Final = "v1"
DEFAULT_VERTEX_LOCATION: Final = "us-central1"
DEFAULT_COUNT_TOKENS_LOCATION: Final = "us-east5"
"""Where Claude's count-tokens endpoint is served when no location is configured (it is regional)."""
PROJECT_PLACEHOLDER: Final = "{anygate-vertex-project}"
"""Stands for the project in a URL until ``authorize`` learns it from the credentials."""


def _model_path(model: str) -> str:
    return quote(model.removeprefix("models/"), safe="@.-_")


class GeminiProvider(StaticCredentials):
    """The Gemini API (``generativelanguage.googleapis.com``), key in ``x-goog-api-key``."""

    name = "gemini"
    api_key_env: Final = ("GEMINI_API_KEY",)

    def url(self, deployment: Deployment, method: str, *, stream: bool = False) -> str:
        base = (deployment.api_base or GEMINI_API_BASE).rstrip("/")
        url = f"{base}/models/{_model_path(deployment.upstream_model)}:{method}"
        return url + "?alt=sse" if stream else url

    def headers(self, deployment: Deployment) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if deployment.api_key:
            headers["x-goog-api-key"] = deployment.api_key
        headers.update(deployment.extra_headers)
        return headers

    def prepare(
        self, deployment: Deployment, request: dict[str, Any], ctx: CallContext, *, stream: bool
    ) -> GeminiCall:
        method = "streamGenerateContent" if stream else "generateContent"
        return _gemini_call(
            "gemini", self.url(deployment, method, stream=stream), self.headers(deployment), deployment,
            request, ctx,
        )  # fmt: skip

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> GatewayError:
        return map_status(status, headers, body)

    def prepare_count_tokens(
        self, deployment: Deployment, request: dict[str, Any], ctx: CallContext
    ) -> CountTokensCall:
        translated = gemini_body(request, Target("gemini", deployment.upstream_model, ctx.signer))
        inner = {k: v for k, v in translated.body.items() if k != "generationConfig"}
        inner["model"] = "models/" + deployment.upstream_model.removeprefix("models/")
        body = orjson.dumps({"generateContentRequest": inner})
        url = self.url(deployment, "countTokens")
        return CountTokensCall(UpstreamRequest("POST", url, self.headers(deployment), body))

    def count_tokens_locally(self, deployment: Deployment, request: dict[str, Any]) -> int:
        return estimate_request_tokens(request)


def _gemini_call(
    backend: str,
    url: str,
    headers: dict[str, str],
    deployment: Deployment,
    request: dict[str, Any],
    ctx: CallContext,
) -> GeminiCall:
    translated = gemini_body(request, Target(backend, deployment.upstream_model, ctx.signer))
    payload = orjson.dumps(translated.body)
    return GeminiCall(
        ctx,
        UpstreamRequest("POST", url, headers, payload),
        backend,
        len(payload),
        translated.tool_names,
        translated.single_call,
    )


# --- Vertex AI --------------------------------------------------------------------------------------


def vertex_host(location: str) -> str:
    """The Vertex AI host of a location (``global`` and the multi-regions have their own)."""
    if location == "global":
        return "https://aiplatform.googleapis.com"
    if "-" not in location:
        return f"https://aiplatform.{location}.rep.googleapis.com"
    return f"https://{location}-aiplatform.googleapis.com"


def vertex_url(api_base: str | None, project: str, location: str, resource: str, method: str) -> str:
    """``…/v1/projects/<project>/locations/<location>/<resource>:<method>`` under the host or
    ``api_base`` (see the module docstring for what ``api_base`` means)."""
    tail = f"projects/{project}/locations/{location}/{resource}:{method}"
    if not api_base:
        return f"{vertex_host(location)}/{VERTEX_API_VERSION}/{tail}"
    base = api_base.rstrip("/")
    path = urlsplit(base).path
    if path == "":
        return f"{base}/{VERTEX_API_VERSION}/{tail}"
    if path in ("/v1", "/v1beta1"):
        return f"{base}/{tail}"
    return f"{base}:{method}"


def is_claude(model: str) -> bool:
    return model.lower().removeprefix("anthropic/").startswith("claude")


class VertexProvider:
    """Gemini and Anthropic models on Vertex AI, with OAuth tokens from google-auth."""

    name = "vertex_ai"
    api_key_env: Final[tuple[str, ...]] = ()
    dynamic_credentials = True

    def __init__(self) -> None:
        self._credentials: dict[tuple[str, str], RefreshingCredential[Any]] = {}

    def warm_up(self) -> None:
        """Import google-auth now (start-up, or a worker thread), not on the first request."""
        try:
            import google.auth
            import google.oauth2.service_account  # noqa: F401
        except ImportError:
            log.warning("vertex_ai deployments need google-auth: pip install 'anygate[vertex]'")

    # --- where -------------------------------------------------------------------------------------

    @staticmethod
    def _project(deployment: Deployment) -> str:
        project = deployment.params.get("vertex_project")
        return quote(project, safe="") if isinstance(project, str) and project else PROJECT_PLACEHOLDER

    @staticmethod
    def _location(deployment: Deployment) -> str:
        location = deployment.params.get("vertex_location")
        return location if isinstance(location, str) and location else DEFAULT_VERTEX_LOCATION

    def _headers(self, deployment: Deployment) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        headers.update(deployment.extra_headers)
        return headers

    # --- the Provider protocol ---------------------------------------------------------------------

    def prepare(
        self, deployment: Deployment, request: dict[str, Any], ctx: CallContext, *, stream: bool
    ) -> GeminiCall | PassthroughCall:
        model = deployment.upstream_model
        project, location = self._project(deployment), self._location(deployment)
        headers = self._headers(deployment)
        if is_claude(model):
            method = "streamRawPredict" if stream else "rawPredict"
            resource = f"publishers/anthropic/models/{_model_path(model.removeprefix('anthropic/'))}"
            betas = vertex_claude.filtered_betas(
                ctx.client_headers.get("anthropic-beta"), vertex_claude.VERTEX_MESSAGES_BETAS
            )
            if betas:
                headers["anthropic-beta"] = betas
            url = vertex_url(deployment.api_base, project, location, resource, method)
            body = vertex_claude.messages_body(request, stream=stream)
            return PassthroughCall(UpstreamRequest("POST", url, headers, body), ctx.requested_model)
        method = "streamGenerateContent" if stream else "generateContent"
        resource = f"publishers/google/models/{_model_path(model)}"
        url = vertex_url(deployment.api_base, project, location, resource, method)
        if stream:
            url += "&alt=sse" if "?" in url else "?alt=sse"
        return _gemini_call("vertex", url, headers, deployment, request, ctx)

    async def authorize(self, deployment: Deployment, request: UpstreamRequest) -> None:
        token = await self._credential(deployment).get()
        request.headers["authorization"] = f"Bearer {token.access_token}"
        if PROJECT_PLACEHOLDER in request.url:
            if not token.project:
                raise GatewayError(
                    500,
                    f"the vertex_ai deployment {deployment.deployment_id!r} names no vertex_project and its "
                    "credentials name no project",
                    error_type="api_error",
                )
            request.url = request.url.replace(PROJECT_PLACEHOLDER, quote(token.project, safe=""))

    def _credential(self, deployment: Deployment) -> RefreshingCredential[Any]:
        source = deployment.params.get("vertex_credentials")
        key = (deployment.deployment_id, orjson.dumps(source, option=orjson.OPT_SORT_KEYS).decode())
        credential = self._credentials.get(key)
        if credential is None:
            from anygate.providers.google.auth import fetch_token

            credential = RefreshingCredential(lambda: fetch_token(source))
            self._credentials[key] = credential
        return credential

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> GatewayError:
        """Google's error bodies, or Anthropic's (Claude models answer in their own format)."""
        try:
            parsed = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            parsed = None
        error = parsed.get("error") if isinstance(parsed, dict) else None
        if isinstance(error, dict) and isinstance(error.get("type"), str):
            if status in (401, 403):
                return credentials_rejected(status)
            message = mask(str(error.get("message") or f"upstream returned HTTP {status}"))
            return upstream_error(status, message, error_type=error["type"], headers=retry_headers(headers))
        return map_status(status, headers, body)

    def prepare_count_tokens(
        self, deployment: Deployment, request: dict[str, Any], ctx: CallContext
    ) -> CountTokensCall | AnthropicCountCall:
        model = deployment.upstream_model
        project = self._project(deployment)
        headers = self._headers(deployment)
        if is_claude(model):
            location = deployment.params.get("vertex_count_tokens_location") or deployment.params.get(
                "vertex_location"
            )
            location = location if isinstance(location, str) and location else DEFAULT_COUNT_TOKENS_LOCATION
            betas = vertex_claude.filtered_betas(
                ctx.client_headers.get("anthropic-beta"), vertex_claude.VERTEX_COUNT_TOKENS_BETAS
            )
            if betas:
                headers["anthropic-beta"] = betas
            base = deployment.api_base
            if base and urlsplit(base).path.rstrip("/") not in ("", "/v1", "/v1beta1"):
                parts = urlsplit(base)
                base = f"{parts.scheme}://{parts.netloc}"
            resource = "publishers/anthropic/models/count-tokens"
            url = vertex_url(base, project, location, resource, "rawPredict")
            body = vertex_claude.count_tokens_body(request, model.removeprefix("anthropic/"))
            return AnthropicCountCall(UpstreamRequest("POST", url, headers, body))
        translated = gemini_body(request, Target("vertex", model, ctx.signer))
        inner = {k: v for k, v in translated.body.items() if k in ("contents", "systemInstruction", "tools")}
        url = vertex_url(deployment.api_base, project, self._location(deployment),
                         f"publishers/google/models/{_model_path(model)}", "countTokens")  # fmt: skip
        return CountTokensCall(UpstreamRequest("POST", url, headers, orjson.dumps(inner)))

    def count_tokens_locally(self, deployment: Deployment, request: dict[str, Any]) -> int:
        return estimate_request_tokens(request)
