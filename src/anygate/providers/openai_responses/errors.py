"""Responses API failures → Anthropic errors.

HTTP failures have the Chat Completions shape and go through the same table
(:func:`anygate.providers.openai_chat.errors.map_status`). What is new here: failures inside a stream
(an ``error`` event, ``response.failed``) name a ``code`` instead of a status, and one 400 means the
replayed reasoning was refused rather than the request being wrong.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from anygate.protocol.errors import GatewayError
from anygate.providers.openai_chat.errors import map_status

ERROR_CODE_TO_STATUS: Final[dict[str, int]] = {
    "rate_limit_exceeded": 429,
    "insufficient_quota": 429,
    "server_error": 500,
    "server_is_overloaded": 503,
    "slow_down": 503,
    "vector_store_timeout": 504,
    "context_length_exceeded": 400,
    "invalid_prompt": 400,
    "invalid_request_error": 400,
    "invalid_image": 400,
    "invalid_image_format": 400,
    "invalid_base64_image": 400,
    "invalid_image_url": 400,
    "image_too_large": 400,
    "image_too_small": 400,
    "image_parse_error": 400,
    "image_content_policy_violation": 400,
    "invalid_image_mode": 400,
    "image_file_too_large": 400,
    "unsupported_image_media_type": 400,
    "empty_image_file": 400,
    "failed_to_download_image": 400,
    "image_file_not_found": 400,
    "invalid_encrypted_content": 400,
}
"""A stream failure's ``code`` → the HTTP status it stands for (then mapped as HTTP failures are).
Unknown codes are upstream failures (500)."""

REJECTED_REASONING_CODES: Final = frozenset({"invalid_encrypted_content"})
"""Error codes meaning the replayed reasoning cannot be used (it was made under another key or
organisation, or has expired)."""
_UNPAIRED_REASONING: Final = "of type 'reasoning' was provided without its required following item"
"""The message of the 400 for a reasoning item the upstream will not take where it stands."""


def stream_failure(payload: dict[str, Any]) -> GatewayError:
    """The error of an ``error`` event (flat or with an ``error`` object) or of ``response.failed``."""
    error: Any = payload.get("error")
    if payload.get("type") == "response.failed":
        response = payload.get("response")
        error = response.get("error") if isinstance(response, dict) else None
    if not isinstance(error, dict):
        error = payload
    code = error.get("code")
    message = error.get("message")
    status = ERROR_CODE_TO_STATUS.get(code, 500) if isinstance(code, str) else 500
    text = message if isinstance(message, str) and message else f"the upstream failed ({code or 'no code'})"
    return map_status(status, {}, orjson.dumps({"error": {"message": text, "code": code}}))


def rejects_reasoning(status: int, body: bytes) -> bool:
    """Whether an upstream 400 refused the replayed reasoning items (and a retry without them may pass)."""
    if status != 400:
        return False
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return False
    message = error.get("message")
    return error.get("code") in REJECTED_REASONING_CODES or (
        isinstance(message, str) and _UNPAIRED_REASONING in message
    )
