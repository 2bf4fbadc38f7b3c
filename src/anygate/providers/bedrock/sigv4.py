"""AWS Signature Version 4 for Bedrock requests, written for the request path.

Only what AWS needs is signed: ``host``, ``x-amz-date`` and, with temporary credentials,
``x-amz-security-token``. The canonical path is the URL's path encoded once more (AWS's rule for every
service but S3), so model ids with ``:`` and ARNs with ``/`` — encoded once in the URL — appear
double-encoded in the canonical request, exactly as AWS recomputes them. The signing key depends only on
the secret, the day, the region and the service, so it is derived once per day and reused: a request
costs one SHA-256 of the body and two HMACs (about 10 µs for a small body, see the README).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote, urlsplit

ALGORITHM: Final = "AWS4-HMAC-SHA256"
SERVICE: Final = "bedrock"
_DEFAULT_PORTS: Final = {"https": ":443", "http": ":80"}


@dataclass(frozen=True, slots=True)
class AwsCredentials:
    """An access key pair, with the session token of temporary credentials."""

    access_key: str
    secret_key: str
    token: str | None = None

    def __repr__(self) -> str:  # never show the secret in logs or tracebacks
        return f"AwsCredentials(access_key={self.access_key[:4]}…)"


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def canonical_path(url_path: str) -> str:
    """The canonical URI of a (percent-encoded) URL path: each character outside the unreserved set,
    ``%`` included, encoded once more."""
    return quote(url_path or "/", safe="/~")


class SigV4Signer:
    """Signs requests for one region and service; keeps the day's signing key per secret.

    Args:
        region: the AWS region (``us-east-1``).
        service: the signing name (``bedrock`` for bedrock-runtime).
        clock: wall-clock seconds (tests pass their own).
    """

    __slots__ = ("_clock", "_keys", "region", "scope_tail", "service")

    def __init__(
        self, region: str, service: str = SERVICE, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.region = region
        self.service = service
        self.scope_tail = f"/{region}/{service}/aws4_request"
        self._clock = clock
        self._keys: dict[tuple[str, str], bytes] = {}

    def _signing_key(self, secret: str, day: str) -> bytes:
        key = self._keys.get((secret, day))
        if key is None:
            k = _hmac(("AWS4" + secret).encode(), day)
            k = _hmac(k, self.region)
            k = _hmac(k, self.service)
            key = _hmac(k, "aws4_request")
            if len(self._keys) > 8:  # yesterday's keys and rotated secrets
                self._keys.clear()
            self._keys[(secret, day)] = key
        return key

    def sign(
        self, method: str, url: str, headers: dict[str, str], body: bytes, credentials: AwsCredentials
    ) -> None:
        """Add ``x-amz-date``, ``x-amz-security-token`` and ``authorization`` to ``headers``."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._clock()))
        day = stamp[:8]
        parts = urlsplit(url)
        host = parts.netloc
        default_port = _DEFAULT_PORTS.get(parts.scheme)
        if default_port and host.endswith(default_port):
            host = host[: -len(default_port)]
        headers["x-amz-date"] = stamp
        if credentials.token:
            headers["x-amz-security-token"] = credentials.token
            signed = "host;x-amz-date;x-amz-security-token"
            canonical_headers = f"host:{host}\nx-amz-date:{stamp}\nx-amz-security-token:{credentials.token}\n"
        else:
            signed = "host;x-amz-date"
            canonical_headers = f"host:{host}\nx-amz-date:{stamp}\n"
        query = "&".join(sorted(parts.query.split("&"))) if parts.query else ""
        canonical = (
            f"{method}\n{canonical_path(parts.path)}\n{query}\n{canonical_headers}\n{signed}\n"
            f"{hashlib.sha256(body).hexdigest()}"
        )
        scope = day + self.scope_tail
        to_sign = f"{ALGORITHM}\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(
            self._signing_key(credentials.secret_key, day), to_sign.encode(), hashlib.sha256
        ).hexdigest()
        headers["authorization"] = (
            f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
            f"SignedHeaders={signed}, Signature={signature}"
        )
