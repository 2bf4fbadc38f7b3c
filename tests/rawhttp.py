"""Raw HTTP against the gateway (``http.client``), for what the SDK cannot send or does not show.

The official SDK validates and shapes requests; malformed bodies, odd methods, chunked uploads and exact
response bytes need a plain HTTP client.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson


@dataclass
class RawResponse:
    """A whole response: status, lower-cased headers and the body bytes."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def send(
    base_url: str,
    method: str,
    path: str,
    body: bytes | Any = None,
    headers: Mapping[str, str] | None = None,
    *,
    chunks: Iterable[bytes] | None = None,
    timeout: float = 10.0,
) -> RawResponse:
    """One request on a fresh connection. ``body`` that is not bytes is sent as JSON (by the standard
    library, which writes anything: integers beyond 64 bits, ``Infinity``); ``chunks`` are sent with chunked
    transfer encoding and no content-length."""
    url = urlsplit(base_url)
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=timeout)
    try:
        all_headers = dict(headers or {})
        if chunks is not None:
            connection.request(method, path, body=iter(chunks), headers=all_headers, encode_chunked=True)
        else:
            payload = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
            if payload is not None:
                all_headers.setdefault("content-type", "application/json")
            connection.request(method, path, body=payload, headers=all_headers)
        response = connection.getresponse()
        data = response.read()
        return RawResponse(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        connection.close()


def assert_error(response: RawResponse, status: int, error_type: str, *, mentions: str = "") -> str:
    """Check Anthropic's error envelope and the request-id header; return the message."""
    assert response.status == status, (response.status, response.body)
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == error_type, body
    assert body["request_id"].startswith("req_")
    assert response.headers["request-id"] == body["request_id"]
    message: str = body["error"]["message"]
    assert mentions in message, (mentions, message)
    return message
