"""Where Bedrock credentials come from: configured keys, API keys, the environment, STS roles."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from botocore.session import Session
from botocore.stub import Stubber

from anygate.config import ConfigError, parse_config
from anygate.providers.bedrock.auth import assume_role_fetch, region_for, resolve_auth
from anygate.providers.bedrock.sigv4 import AwsCredentials


def test_configured_keys_win_over_an_api_key_in_the_environment() -> None:
    auth = resolve_auth(
        {"aws_access_key_id": "AK", "aws_secret_access_key": "SK"}, "ABSK-from-env", "m", env={}
    )
    assert auth.static == AwsCredentials("AK", "SK") and auth.bearer is None


def test_an_api_key_is_a_bearer_token() -> None:
    assert resolve_auth({}, "ABSKkey", "m", env={}).bearer == "ABSKkey"


def test_environment_keys_need_no_botocore() -> None:
    env = {
        "AWS_ACCESS_KEY_ID": "AK",
        "AWS_SECRET_ACCESS_KEY": "SK",
        "AWS_SESSION_TOKEN": "T",
        "AWS_REGION": "eu-west-3",
    }
    auth = resolve_auth({}, None, "m", env=env)
    assert auth.static == AwsCredentials("AK", "SK", "T") and auth.region == "eu-west-3"


def test_without_anything_the_aws_chain_is_asked_lazily() -> None:
    auth = resolve_auth({}, None, "m", env={})
    assert auth.refreshing is not None and auth.static is None and auth.bearer is None


@pytest.mark.parametrize(
    ("params", "model", "env", "region"),
    [
        ({"aws_region_name": "ap-south-1"}, "m", {"AWS_REGION": "x"}, "ap-south-1"),
        ({}, "arn:aws:bedrock:eu-central-1:1:application-inference-profile/a", {}, "eu-central-1"),
        ({}, "m", {"AWS_DEFAULT_REGION": "us-west-2"}, "us-west-2"),
        ({}, "m", {}, "us-east-1"),
    ],
)
def test_region(params: dict[str, Any], model: str, env: dict[str, str], region: str) -> None:
    assert region_for(params, model, env) == region


def test_assume_role_asks_sts_and_knows_when_the_credentials_expire() -> None:
    client = Session().create_client(
        "sts", region_name="us-east-1", aws_access_key_id="AK", aws_secret_access_key="SK"
    )
    expiry = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    with Stubber(client) as stub:
        stub.add_response(
            "assume_role",
            {
                "Credentials": {
                    "AccessKeyId": "ASIAEXAMPLEROLE01",
                    "SecretAccessKey": "S1",
                    "SessionToken": "T1",
                    "Expiration": expiry,
                }
            },
            {
                "RoleArn": "arn:aws:iam::1:role/r",
                "RoleSessionName": "gw",
                "DurationSeconds": 3600,
                "ExternalId": "ext",
            },
        )
        params = {
            "aws_role_name": "arn:aws:iam::1:role/r",
            "aws_session_name": "gw",
            "aws_external_id": "ext",
        }
        fetched = assume_role_fetch(params, "us-east-1", None, make_client=lambda: client)()
    assert fetched.value == AwsCredentials("ASIAEXAMPLEROLE01", "S1", "T1")
    assert fetched.expires_at == expiry.timestamp()


async def test_role_credentials_are_refreshed_before_they_expire() -> None:
    from anygate.providers.credentials import Expiring, RefreshingCredential

    now = [1000.0]
    fetched: list[int] = []

    def fetch() -> Expiring[AwsCredentials]:
        fetched.append(1)
        return Expiring(AwsCredentials(f"ASIA{len(fetched)}", "S"), now[0] + 3600)

    credential = RefreshingCredential(fetch, clock=lambda: now[0])
    assert (await credential.get()).access_key == "ASIA1"
    now[0] += 3600 - 60  # within the refresh window: the valid one is used, a refresh starts
    assert (await credential.get()).access_key == "ASIA1"
    await credential._refreshing  # type: ignore[misc]
    assert (await credential.get()).access_key == "ASIA2"


HEAD = "model_list:\n  - model_name: m\n    litellm_params:\n      model: "


def test_aws_params_are_bedrock_params() -> None:
    loaded = parse_config(
        f"{HEAD}bedrock/amazon.nova-pro-v1:0\n"
        "      aws_region_name: eu-west-1\n      aws_role_name: arn:aws:iam::1:role/r\n"
        "      aws_session_name: s\n",
        env={},
    )
    assert loaded.deployments[0].params == {
        "aws_region_name": "eu-west-1", "aws_role_name": "arn:aws:iam::1:role/r", "aws_session_name": "s",
    }  # fmt: skip
    with pytest.raises(ConfigError, match="aws_secret_access_key"):
        parse_config(
            f"{HEAD}bedrock/x\n      aws_access_key_id: AK\n",
            env={},
        )
    with pytest.raises(ConfigError, match="unknown key 'aws_region_name'"):
        parse_config(
            f"{HEAD}openai/gpt-4o\n      aws_region_name: x\n",
            env={},
        )
