"""Where a Bedrock deployment's credentials come from, and how they reach a request.

In order (the first that applies wins):

1. ``aws_role_name`` (+ ``aws_session_name``, ``aws_external_id``): STS AssumeRole with the source
   credentials below (or botocore's chain), refreshed in the background before they expire.
2. ``aws_access_key_id`` + ``aws_secret_access_key`` (+ ``aws_session_token``): used as given.
3. ``aws_profile_name``: that profile of the AWS config files (SSO, ``credential_process``, roles…),
   through botocore, refreshed when botocore says they expire.
4. A Bedrock API key (``api_key``, else ``AWS_BEARER_TOKEN_BEDROCK``): ``Authorization: Bearer``, no
   signature.
5. ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN`` in the environment.
6. botocore's default chain (config files, container and instance roles, web identity…).

Static keys (2, 5) and API keys (4) never import botocore. botocore (the ``anygate[bedrock]`` extra) is
imported only for 1, 3 and 6, in a worker thread, and only its credential calls run, never per request.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from anygate.protocol.errors import GatewayError
from anygate.providers.bedrock.sigv4 import AwsCredentials
from anygate.providers.credentials import Expiring, RefreshingCredential

DEFAULT_REGION: Final = "us-east-1"
DEFAULT_SESSION_NAME: Final = "anygate"
ROLE_SESSION_SECONDS: Final = 3600

Fetch = Callable[[], Expiring[AwsCredentials]]


@dataclass(slots=True)
class DeploymentAuth:
    """How one deployment authenticates: a bearer key, fixed keys, or a refreshing credential."""

    region: str
    bearer: str | None = None
    static: AwsCredentials | None = None
    refreshing: RefreshingCredential[AwsCredentials] | None = None


def region_for(params: Mapping[str, Any], model: str, env: Mapping[str, str]) -> str:
    """``aws_region_name``, the region of an ARN model id, ``AWS_REGION``, ``AWS_DEFAULT_REGION``, or
    us-east-1."""
    configured = params.get("aws_region_name")
    if configured:
        return str(configured)
    if model.startswith("arn:"):
        parts = model.split(":")
        if len(parts) > 3 and parts[3]:
            return parts[3]
    return env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def _botocore_missing() -> GatewayError:
    return GatewayError(
        500,
        "this Bedrock deployment needs botocore for its AWS credentials (a role, a profile or the default "
        "chain); install anygate[bedrock], or configure aws_access_key_id/aws_secret_access_key or an "
        "API key",
        error_type="api_error",
    )


def _frozen(credentials: Any) -> Expiring[AwsCredentials]:
    """botocore credentials → an expiring value (refreshable ones say when they expire)."""
    if credentials is None:
        raise GatewayError(500, "no AWS credentials found for the Bedrock deployment", error_type="api_error")
    frozen = credentials.get_frozen_credentials()
    expiry = getattr(credentials, "_expiry_time", None)
    expires_at = expiry.timestamp() if expiry is not None else None
    return Expiring(AwsCredentials(frozen.access_key, frozen.secret_key, frozen.token), expires_at)


def botocore_session(profile: str | None) -> Any:
    try:
        import botocore.session
    except ImportError:
        raise _botocore_missing() from None
    return botocore.session.Session(profile=profile)


def chain_fetch(profile: str | None) -> Fetch:
    """Credentials from botocore's chain (a named profile, or the default chain)."""

    def fetch() -> Expiring[AwsCredentials]:
        return _frozen(botocore_session(profile).get_credentials())

    return fetch


def assume_role_fetch(
    params: Mapping[str, Any],
    region: str,
    source: AwsCredentials | None,
    make_client: Callable[..., Any] | None = None,
) -> Fetch:
    """STS AssumeRole of ``aws_role_name``, with ``source`` credentials (else botocore's chain)."""
    role = str(params["aws_role_name"])
    session_name = str(params.get("aws_session_name") or DEFAULT_SESSION_NAME)
    external_id = params.get("aws_external_id")
    endpoint = params.get("aws_sts_endpoint")
    profile = params.get("aws_profile_name")

    def fetch() -> Expiring[AwsCredentials]:
        if make_client is not None:
            client = make_client()
        else:
            session = botocore_session(str(profile) if profile else None)
            keys: dict[str, Any] = {}
            if source is not None:
                keys = {
                    "aws_access_key_id": source.access_key,
                    "aws_secret_access_key": source.secret_key,
                    "aws_session_token": source.token,
                }
            client = session.create_client("sts", region_name=region, endpoint_url=endpoint or None, **keys)
        arguments: dict[str, Any] = {
            "RoleArn": role,
            "RoleSessionName": session_name,
            "DurationSeconds": ROLE_SESSION_SECONDS,
        }
        if external_id:
            arguments["ExternalId"] = str(external_id)
        answer = client.assume_role(**arguments)["Credentials"]
        return Expiring(
            AwsCredentials(answer["AccessKeyId"], answer["SecretAccessKey"], answer["SessionToken"]),
            answer["Expiration"].timestamp(),
        )

    return fetch


def resolve_auth(
    params: Mapping[str, Any],
    api_key: str | None,
    model: str,
    env: Mapping[str, str] | None = None,
) -> DeploymentAuth:
    """The authentication of a deployment (see the module docstring for the order)."""
    env = os.environ if env is None else env
    region = region_for(params, model, env)
    explicit: AwsCredentials | None = None
    if params.get("aws_access_key_id") and params.get("aws_secret_access_key"):
        explicit = AwsCredentials(
            str(params["aws_access_key_id"]),
            str(params["aws_secret_access_key"]),
            str(params["aws_session_token"]) if params.get("aws_session_token") else None,
        )
    if params.get("aws_role_name"):
        return DeploymentAuth(
            region, refreshing=RefreshingCredential(assume_role_fetch(params, region, explicit))
        )
    if explicit is not None:
        return DeploymentAuth(region, static=explicit)
    if params.get("aws_profile_name"):
        return DeploymentAuth(
            region, refreshing=RefreshingCredential(chain_fetch(str(params["aws_profile_name"])))
        )
    if api_key:
        return DeploymentAuth(region, bearer=api_key)
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        return DeploymentAuth(
            region,
            static=AwsCredentials(
                env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env.get("AWS_SESSION_TOKEN") or None
            ),
        )
    return DeploymentAuth(region, refreshing=RefreshingCredential(chain_fetch(None)))
