"""SigV4 signatures equal botocore's for the same request and time, for ids with ``:`` and ARNs."""

from __future__ import annotations

import datetime
import time
from unittest import mock
from urllib.parse import quote

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from anygate.providers.bedrock.sigv4 import AwsCredentials, SigV4Signer, canonical_path

NOW = 1_764_000_000.0
MODELS = [
    "anthropic.claude-3-haiku-20240307-v1:0",
    "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "arn:aws:bedrock:eu-west-1:123456789012:application-inference-profile/a1b2c3d4e5",
    "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.meta.llama3-3-70b-instruct-v1:0",
    "amazon.nova-pro-v1:0",
    "mistral.mistral-large-2402-v1:0",
]


def botocore_authorization(url: str, body: bytes, credentials: AwsCredentials, region: str) -> str:
    request = AWSRequest(method="POST", url=url, data=body, headers={})
    when = datetime.datetime.fromtimestamp(NOW, datetime.UTC).replace(tzinfo=None)
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        SigV4Auth(
            Credentials(credentials.access_key, credentials.secret_key, credentials.token), "bedrock", region
        ).add_auth(request)
    return str(request.headers["Authorization"])


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("token", [None, "IQoJb3JpZ2luX2VjEPT//////////wEaCXVzLWVhc3QtMSJHMEUCIQ=="])
@pytest.mark.parametrize("action", ["invoke", "converse-stream", "count-tokens"])
def test_signature_equals_botocores(model: str, token: str | None, action: str) -> None:
    credentials = AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    url = f"https://bedrock-runtime.eu-west-1.amazonaws.com/model/{quote(model, safe='')}/{action}"
    body = b'{"messages":[{"role":"user","content":[{"text":"h\xc3\xa9"}]}]}'
    headers: dict[str, str] = {}
    SigV4Signer("eu-west-1", clock=lambda: NOW).sign("POST", url, headers, body, credentials)
    assert headers["authorization"] == botocore_authorization(url, body, credentials, "eu-west-1")
    assert ("x-amz-security-token" in headers) == (token is not None)
    assert headers["x-amz-date"] == "20251124T160000Z"


def test_a_non_default_port_is_part_of_the_signed_host() -> None:
    credentials = AwsCredentials("AK", "SK")
    url = "http://127.0.0.1:8123/model/a%3Ab/converse"
    headers: dict[str, str] = {}
    SigV4Signer("us-east-1", clock=lambda: NOW).sign("POST", url, headers, b"{}", credentials)
    assert headers["authorization"] == botocore_authorization(url, b"{}", credentials, "us-east-1")


def test_the_canonical_path_encodes_the_url_encoding_again() -> None:
    assert canonical_path("/model/a%3Ab%2Fc/invoke") == "/model/a%253Ab%252Fc/invoke"


def test_the_signing_key_is_derived_once_a_day() -> None:
    now = [NOW]
    signer = SigV4Signer("us-east-1", clock=lambda: now[0])
    credentials = AwsCredentials("AK", "SK")
    with mock.patch(
        "anygate.providers.bedrock.sigv4._hmac",
        wraps=__import__("anygate.providers.bedrock.sigv4", fromlist=["_hmac"])._hmac,
    ) as derive:
        for _ in range(5):
            signer.sign("POST", "https://h/model/m/invoke", {}, b"{}", credentials)
        assert derive.call_count == 4  # the four HMACs of one key derivation
        now[0] += 86_400
        signer.sign("POST", "https://h/model/m/invoke", {}, b"{}", credentials)
        assert derive.call_count == 8


def test_signing_costs_microseconds() -> None:
    """The per-request cost stated in the README: one hash of the body and two HMACs."""
    signer = SigV4Signer("us-east-1")
    credentials = AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "token" * 60)
    url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke"
    small, large = b"x" * 500, b"x" * 90_000
    for body in (small, large):
        start = time.perf_counter()
        for _ in range(200):
            signer.sign("POST", url, {}, body, credentials)
        per_request = (time.perf_counter() - start) / 200
        assert per_request < 0.002, per_request  # generous: the machine is shared
