"""The gemini and vertex_ai providers: endpoints with LiteLLM's meaning of api_base, config keys, Google
errors, Vertex tokens from a service account, and what gets imported when."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from anygate.config import ConfigError, parse_config
from anygate.protocol.errors import GatewayError, UpstreamFailure
from anygate.providers.base import UpstreamRequest
from anygate.providers.google.auth import credentials_info, fetch_token
from anygate.providers.google.errors import map_status
from anygate.providers.google.provider import GeminiProvider, VertexProvider, vertex_host, vertex_url
from tests.conftest import RECORDINGS
from tests.fakes.google import FakeGoogle, ServiceAccount
from tests.providers.gemini_support import context, deployment, vertex_deployment

REQUEST = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def google() -> Iterator[FakeGoogle]:
    fake = FakeGoogle().start()
    yield fake
    fake.stop()


# --- endpoints ---------------------------------------------------------------------------------------


def test_gemini_urls_and_key_header() -> None:
    provider = GeminiProvider()
    call = provider.prepare(deployment(api_key="k1"), REQUEST, context(), stream=True)
    assert call.request.url == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-3-pro-preview:streamGenerateContent?alt=sse"
    )
    assert call.request.headers["x-goog-api-key"] == "k1" and "k1" not in call.request.url
    proxied = provider.prepare(
        deployment(api_base="https://proxy.example/gemini/v1alpha/"), REQUEST, context(), stream=False
    )
    assert (
        proxied.request.url
        == "https://proxy.example/gemini/v1alpha/models/gemini-3-pro-preview:generateContent"
    )


@pytest.mark.parametrize(
    ("location", "host"),
    [
        ("us-central1", "https://us-central1-aiplatform.googleapis.com"),
        ("global", "https://aiplatform.googleapis.com"),
        ("eu", "https://aiplatform.eu.rep.googleapis.com"),
    ],
)
def test_vertex_hosts(location: str, host: str) -> None:
    assert vertex_host(location) == host


@pytest.mark.parametrize(
    ("api_base", "url"),
    [
        (None, "https://europe-west4-aiplatform.googleapis.com/v1/projects/p/locations/europe-west4/R:m"),
        ("https://proxy.example", "https://proxy.example/v1/projects/p/locations/europe-west4/R:m"),
        ("https://proxy.example/v1beta1/", "https://proxy.example/v1beta1/projects/p/locations/europe-west4/R:m"),
        ("https://psc.example/v1/projects/p/locations/x/endpoints/123", "https://psc.example/v1/projects/p/locations/x/endpoints/123:m"),
    ],
)  # fmt: skip
def test_vertex_api_base_means_what_litellm_means(api_base: str | None, url: str) -> None:
    assert vertex_url(api_base, "p", "europe-west4", "R", "m") == url


def test_vertex_gemini_and_claude_urls() -> None:
    provider = VertexProvider()
    gemini = provider.prepare(vertex_deployment("gemini-2.5-pro"), REQUEST, context(), stream=True)
    assert gemini.request.url == (
        "https://us-central1-aiplatform.googleapis.com/v1/projects/proj/locations/us-central1/"
        "publishers/google/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
    )
    claude = provider.prepare(vertex_deployment("claude-opus-4-1@20250805"), REQUEST, context(), stream=False)
    assert claude.request.url.endswith("/publishers/anthropic/models/claude-opus-4-1@20250805:rawPredict")
    body = orjson.loads(claude.request.body)
    assert body == {
        "max_tokens": 10,
        "messages": REQUEST["messages"],
        "anthropic_version": "vertex-2023-10-16",
    }
    count = provider.prepare_count_tokens(vertex_deployment("claude-opus-4-1@20250805"), REQUEST, context())
    assert "/locations/us-central1/publishers/anthropic/models/count-tokens:rawPredict" in count.request.url


def test_vertex_params_are_provider_owned_and_checked() -> None:
    base = "model_list:\n  - model_name: v\n    litellm_params:\n      model: vertex_ai/gemini-2.5-pro\n"
    loaded = parse_config(base + "      vertex_project: p\n      vertex_location: global\n", env={})
    assert loaded.deployments[0].params == {"vertex_project": "p", "vertex_location": "global"}
    assert loaded.unimplemented == [] if hasattr(loaded, "unimplemented") else True
    with pytest.raises(ConfigError, match="vertex_location"):
        parse_config(base + "      vertex_location: evil.example/\n", env={})
    with pytest.raises(ConfigError, match="vertex_credentials"):
        parse_config(base + "      vertex_credentials: '{not json'\n", env={})
    with pytest.raises(ConfigError, match="unknown key 'vertex_project'"):
        parse_config(
            base.replace("vertex_ai/gemini-2.5-pro", "gemini/gemini-2.5-pro") + "      vertex_project: p\n",
            env={},
        )


def test_gemini_key_comes_from_gemini_api_key() -> None:
    config = parse_config(
        "model_list:\n  - model_name: g\n    litellm_params:\n      model: gemini/gemini-2.5-flash\n",
        env={"GEMINI_API_KEY": "from-env"},
    )
    assert config.deployments[0].api_key == "from-env"


# --- errors ------------------------------------------------------------------------------------------


def test_quota_errors_carry_retry_after() -> None:
    body = (RECORDINGS / "gemini" / "google-429-retry-info.json").read_bytes()
    error = map_status(429, {}, body)
    assert isinstance(error, UpstreamFailure)
    assert (error.status, error.error_type, error.headers["retry-after"]) == (429, "rate_limit_error", "35")


@pytest.mark.parametrize(
    ("status", "google_status", "client_status", "error_type"),
    [
        (400, "INVALID_ARGUMENT", 400, "invalid_request_error"),
        (404, "NOT_FOUND", 404, "not_found_error"),
        (500, "INTERNAL", 500, "api_error"),
        (503, "UNAVAILABLE", 529, "overloaded_error"),
        (504, "DEADLINE_EXCEEDED", 504, "timeout_error"),
        (403, "PERMISSION_DENIED", 500, "api_error"),
    ],
)
def test_google_statuses(status: int, google_status: str, client_status: int, error_type: str) -> None:
    body = orjson.dumps(
        [{"error": {"code": status, "status": google_status, "message": "why"}}]
    )  # Vertex's array
    error = map_status(status, {}, body)
    assert (error.status, error.error_type) == (client_status, error_type)


def test_keys_and_tokens_are_masked() -> None:
    body = orjson.dumps(
        {"error": {"code": 400, "message": "bad AIzaSyA1234567890abcdefghijklmnopqrstu and ya29.a0AfH6SM"}}
    )
    message = map_status(400, {}, body).message
    assert "AIza" not in message and "ya29" not in message
    invalid = orjson.dumps({"error": {"code": 400, "message": "API key not valid.", "details": [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}})  # fmt: skip
    assert map_status(400, {}, invalid).status == 500  # the gateway's key, not the client's request


# --- Vertex credentials -------------------------------------------------------------------------------


def test_a_service_account_gets_a_token_from_its_token_uri(google: FakeGoogle) -> None:
    assert google.account is not None
    token = fetch_token(json.dumps(google.account.info()))
    assert token.value.access_token in google.tokens and token.value.project == "fake-project"
    assert token.expires_at is not None and token.expires_at > 0
    assert credentials_info(google.account.info()) == google.account.info()


def test_a_failed_token_fetch_reports_its_kind_only(
    google: FakeGoogle, caplog: pytest.LogCaptureFixture
) -> None:
    assert google.account is not None
    info = google.account.info()
    stranger = ServiceAccount(google.account.token_uri).info()  # a key the token endpoint does not trust
    info["private_key"] = stranger["private_key"]
    caplog.set_level(logging.DEBUG)
    with pytest.raises(GatewayError) as caught:
        fetch_token(info)
    assert "RefreshError" in caught.value.message and "PRIVATE KEY" not in caught.value.message
    assert "PRIVATE KEY" not in caplog.text


async def test_vertex_authorize_caches_one_token_per_deployment(google: FakeGoogle) -> None:
    assert google.account is not None
    provider = VertexProvider()
    source: dict[str, Any] = google.account.info()
    first = deployment("vertex_ai", "gemini-2.5-pro", params={"vertex_credentials": source})
    requests = [
        UpstreamRequest("POST", "https://x/v1/projects/{anygate-vertex-project}/y", {}, b"") for _ in range(3)
    ]
    for request in requests:
        await provider.authorize(first, request)
    assert google.token_requests == 1
    assert requests[0].url == "https://x/v1/projects/fake-project/y"  # the project from the credentials
    assert len({r.headers["authorization"] for r in requests}) == 1


# --- imports -------------------------------------------------------------------------------------------


def _modules_after(config: str, *, warm: bool) -> list[str]:
    script = textwrap.dedent(
        f"""
        import sys
        from anygate.config import parse_config
        from anygate.gateway import Gateway
        gateway = Gateway(parse_config({config!r}, env={{}}))
        if {warm}:
            gateway.warm_up()
        found = [m for m in sys.modules if m.startswith(("google", "anygate.providers.google"))]
        print("\\n".join(sorted(found)))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return done.stdout.split()


def test_no_google_import_without_a_google_deployment_and_no_google_library_on_the_request_path() -> None:
    entry = "model_list:\n  - model_name: m\n    litellm_params:\n      model: {}\n      api_key: k\n"
    assert _modules_after(entry.format("openai/gpt-4o"), warm=True) == []
    gemini = entry.format("gemini/gemini-2.5-pro")
    loaded = _modules_after(gemini, warm=True)
    assert "anygate.providers.google.provider" in loaded
    assert not [m for m in loaded if m.startswith("google")]  # the Gemini API needs no Google library
    vertex = "model_list:\n  - model_name: v\n    litellm_params:\n      model: vertex_ai/gemini-2.5-pro\n"
    assert not [m for m in _modules_after(vertex, warm=False) if m.startswith("google.")]
    assert "google.auth" in _modules_after(vertex, warm=True)  # at start-up, never on a request


def test_the_example_config_loads() -> None:
    path = RECORDINGS.parents[2] / "examples" / "claude-code-gemini.yaml"
    env = {"GEMINI_API_KEY": "k", "ANYGATE_MASTER_KEY": "m", "VERTEX_PROJECT": "p",
           "GOOGLE_APPLICATION_CREDENTIALS": "/etc/sa.json"}  # fmt: skip
    config = parse_config(path.read_text(), env=env)
    providers = {d.model_name: (d.provider, d.upstream_model) for d in config.deployments}
    assert providers["claude-opus-5-5"] == ("gemini", "gemini-3-pro-preview")
    assert providers["claude-haiku-5-5"] == ("vertex_ai", "gemini-3-flash-preview")
    haiku = next(d for d in config.deployments if d.model_name == "claude-haiku-5-5")
    assert haiku.params["vertex_location"] == "global"


def test_application_default_credentials_are_used_without_vertex_credentials(
    google: FakeGoogle, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert google.account is not None
    path = tmp_path / "adc.json"
    path.write_text(json.dumps(google.account.info()))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    token = fetch_token(None)
    assert token.value.access_token in google.tokens and token.value.project == "fake-project"
