"""OAuth access tokens for Vertex AI, from a service account or Application Default Credentials.

google-auth (the ``anygate[vertex]`` extra) does the OAuth work: it signs the service account's JWT
assertion and exchanges it at the account's ``token_uri``, or loads whatever Application Default
Credentials the machine has (``GOOGLE_APPLICATION_CREDENTIALS``, gcloud, the metadata server). It is
imported here, on the first token fetch, and never at gateway start: configs without Vertex deployments
never load it. Fetches are blocking and run in a worker thread (:class:`RefreshingCredential`); the HTTP
they need goes through a small urllib adapter, so no HTTP library beyond the standard one is required.
Tokens and keys are never logged: failures are reported by their kind only.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any, Final

from anygate.protocol.errors import GatewayError
from anygate.providers.credentials import Expiring

SCOPES: Final = ("https://www.googleapis.com/auth/cloud-platform",)
TOKEN_FETCH_TIMEOUT: Final = 30.0


@dataclass(frozen=True, slots=True)
class Token:
    """An access token and the project it belongs to (from the credentials, when they name one)."""

    access_token: str
    project: str | None


def credentials_info(source: object) -> dict[str, Any] | None:
    """``vertex_credentials`` as a parsed JSON object: a mapping, a JSON string, or a file path; None
    when not configured (Application Default Credentials are used)."""
    if source is None or source == "":
        return None
    if isinstance(source, Mapping):
        return dict(source)
    text = str(source).strip()
    if not text.startswith("{"):
        try:
            text = Path(text).expanduser().read_text()
        except OSError as exc:
            raise _unusable(f"cannot read the vertex_credentials file ({type(exc).__name__})") from None
    try:
        parsed = json.loads(text)
    except ValueError:
        raise _unusable("vertex_credentials is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise _unusable("vertex_credentials is not a JSON object")
    return parsed


def _unusable(message: str) -> GatewayError:
    return GatewayError(500, f"the Vertex AI credentials are unusable: {message}", error_type="api_error")


def fetch_token(source: object) -> Expiring[Token]:
    """A fresh access token (blocking: run it in a worker thread)."""
    try:
        import google.auth
        from google.oauth2 import service_account
    except ImportError:
        raise GatewayError(
            500,
            "vertex_ai deployments need google-auth: pip install 'anygate[vertex]'",
            error_type="api_error",
        ) from None
    info = credentials_info(source)
    project: str | None
    try:
        if info is None:
            credentials, project = google.auth.default(scopes=list(SCOPES))
        elif info.get("type") == "service_account":
            credentials = service_account.Credentials.from_service_account_info(info, scopes=list(SCOPES))  # type: ignore[no-untyped-call]
            project = info.get("project_id")
        else:
            credentials, project = google.auth.load_credentials_from_dict(info, scopes=list(SCOPES))  # type: ignore[no-untyped-call]
        credentials.refresh(UrllibRequest())  # type: ignore[no-untyped-call]
    except GatewayError:
        raise
    except Exception as exc:  # google-auth's errors can quote the assertion: report the kind only
        raise _unusable(f"fetching an access token failed ({type(exc).__name__})") from None
    expiry = credentials.expiry
    expires_at = expiry.replace(tzinfo=UTC).timestamp() if expiry is not None else None
    token = credentials.token
    if not isinstance(token, str) or not token:
        raise _unusable("the token endpoint returned no access token")
    return Expiring(Token(token, project or getattr(credentials, "project_id", None)), expires_at)


class _Response:
    """google-auth's transport response, from urllib's."""

    def __init__(self, status: int, headers: Mapping[str, str], data: bytes) -> None:
        self.status = status
        self.headers = headers
        self.data = data


class UrllibRequest:
    """google-auth's ``transport.Request`` over urllib (blocking; used in a worker thread only)."""

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> _Response:
        from google.auth import exceptions

        request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
        try:
            with urllib.request.urlopen(request, timeout=timeout or TOKEN_FETCH_TIMEOUT) as answer:
                return _Response(answer.status, dict(answer.headers), answer.read())
        except urllib.error.HTTPError as exc:
            return _Response(exc.code, dict(exc.headers or {}), exc.read())
        except OSError as exc:
            raise exceptions.TransportError(type(exc).__name__) from None  # type: ignore[no-untyped-call]
