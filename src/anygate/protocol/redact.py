"""The one place that keeps secrets and forged lines out of what the gateway says and logs.

Upstreams echo credentials in their error messages ("Incorrect API key provided: sk-proj-…"), and those
messages travel to clients and into logs. :func:`mask_secrets` replaces every key format of the
supported providers, generic ``key=value`` credentials, Bearer tokens, and the exact keys the config
holds (:func:`register_secret`), wherever they appear. :class:`GatewayError` masks its message with it,
which covers every error a client receives, before or inside a stream.

Log lines also carry values from clients and upstreams (a path, a model name, an upstream message): a
newline there would forge a log line. :class:`RedactingFilter`, installed on every logger of the package,
masks secrets and escapes control characters in each record once, before any handler formats it.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from anygate.config import Config

REDACTED: Final = "[redacted]"

KEY_PATTERNS: Final[tuple[str, ...]] = (
    # Anthropic (sk-ant-api03-…), OpenAI (sk-…, sk-proj-…, sk-svcacct-…), OpenRouter (sk-or-v1-…),
    # DeepSeek and most OpenAI-compatible services (sk-…).
    r"\bsk-[A-Za-z0-9_\-]{8,}",
    # Groq (gsk_), xAI (xai-), Fireworks (fw_), generic "key-…" keys.
    r"\b(?:gsk|xai|fw|key)[-_][A-Za-z0-9_\-]{8,}",
    # Google API keys (Gemini, Vertex express mode).
    r"\bAIza[0-9A-Za-z_\-]{30,}",
    # AWS access key ids (long-term AKIA, temporary ASIA).
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    # Azure OpenAI / Cognitive Services keys: 32 hex digits (older) or 84 base62 characters (newer),
    # and any other long run of letters and digits that mixes both (tokens, secrets, AWS secret keys).
    r"\b[0-9a-fA-F]{32}\b",
    # Starts only where a run of these characters starts, so that the look-aheads scan each run once.
    r"(?<![A-Za-z0-9+/])(?=[A-Za-z+/]*[0-9])(?=[0-9+/]*[A-Za-z])[A-Za-z0-9+/]{40,}={0,2}",
)
"""Credential formats recognised by their shape alone."""

_KEYED_VALUE: Final = (
    r"(?P<name>\b(?:(?:aws_)?secret_access_key|(?:aws_)?access_key_id|x-api-key|api[_-]?key|secret"
    r"|access[_-]?token|token|password|passwd|credentials?|key))"
    r"(?P<sep>[\"']?\s*[:=]\s*[\"']?)(?P<value>[^\s\"'&,;}]{8,})"
)
"""A value labelled as a credential (``api_key=…``, ``"token": "…"``), whatever its shape."""
_BEARER: Final = r"(?P<scheme>\b(?:Bearer|Basic)\s+)(?P<token>[A-Za-z0-9._~+/=\-]{6,})"

MIN_REGISTERED_LENGTH: Final = 6
"""Configured secrets shorter than this are not masked by value (masking "a" would mangle every text);
their shape rules still apply."""

_CONTROL_ESCAPES: Final = {
    **{code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))},
    0x0A: "\\n",
    0x0D: "\\r",
    0x09: "\\t",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}
"""Characters a log line must not contain raw: they would end the line or rewrite the terminal."""


class _Masker:
    """The compiled patterns, recompiled when a configured secret is registered."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._registered: set[str] = set()
        self._pattern = self._compile()

    def _compile(self) -> re.Pattern[str]:
        literal = sorted(self._registered, key=len, reverse=True)
        alternatives = [re.escape(value) for value in literal]
        alternatives += [_KEYED_VALUE, _BEARER, *KEY_PATTERNS]
        return re.compile("|".join(f"(?:{a})" for a in alternatives), re.IGNORECASE)

    def register(self, values: Iterable[str | None]) -> None:
        with self._lock:
            before = len(self._registered)
            self._registered.update(
                v for v in values if isinstance(v, str) and len(v) >= MIN_REGISTERED_LENGTH
            )
            if len(self._registered) != before:
                self._pattern = self._compile()

    def mask(self, text: str) -> str:
        return self._pattern.sub(_replacement, text)


def _replacement(match: re.Match[str]) -> str:
    groups = match.groupdict()
    if groups.get("value") is not None:
        return f"{groups['name']}{groups['sep']}{REDACTED}"
    if groups.get("token") is not None:
        return f"{groups['scheme']}{REDACTED}"
    return REDACTED


_MASKER: Final = _Masker()


def mask_secrets(text: str) -> str:
    """``text`` with every credential replaced by ``[redacted]``: the one masking function."""
    return _MASKER.mask(text)


def mask_secrets_bytes(data: bytes) -> bytes:
    """:func:`mask_secrets` over UTF-8 bytes (an upstream frame relayed as it came)."""
    text = data.decode("utf-8", "surrogateescape")
    masked = _MASKER.mask(text)
    return data if masked == text else masked.encode("utf-8", "surrogateescape")


def register_secret(*values: str | None) -> None:
    """Mask these exact values wherever they appear (configured upstream keys, the master key)."""
    _MASKER.register(values)


CREDENTIAL_HEADER_WORDS: Final = ("key", "auth", "token", "secret")
CREDENTIAL_PARAM_WORDS: Final = ("secret", "token", "key_id", "credentials")
"""Provider-owned ``litellm_params`` whose values are credentials (region or project names are not)."""
"""``extra_headers`` whose name contains one of these carry a credential whose value is masked."""


def register_config_secrets(config: Config) -> None:
    """Register every credential a config holds: upstream keys, credential headers, provider-owned
    credential params (``aws_secret_access_key``, ``aws_session_token``…), the master key, the web
    search backend's key."""
    values: list[str | None] = [config.general.master_key]
    if config.general.web_search is not None:
        values.append(config.general.web_search.api_key)
    for deployment in config.deployments:
        values.append(deployment.api_key)
        for name, value in deployment.extra_headers.items():
            if any(word in name.lower() for word in CREDENTIAL_HEADER_WORDS):
                values.append(value.partition(" ")[2] if value.lower().startswith("bearer ") else value)
        for name, value in deployment.params.items():
            if isinstance(value, str) and any(word in name.lower() for word in CREDENTIAL_PARAM_WORDS):
                values.append(value)
    register_secret(*values)


def escape_controls(text: str) -> str:
    """``text`` with line breaks and other control characters written as escapes (``\\n``, ``\\x1b``)."""
    if text.isprintable():
        return text
    return text.translate(_CONTROL_ESCAPES)


def clean_log_text(text: str) -> str:
    """What a log line may contain of ``text``: secrets masked, control characters escaped."""
    return escape_controls(_MASKER.mask(text))


class RedactingFilter(logging.Filter):
    """Masks secrets and escapes control characters in a record's message and traceback, once."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_anygate_clean", False):
            return True
        record._anygate_clean = True
        message = record.getMessage()
        record.msg = clean_log_text(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = mask_secrets(logging.Formatter().formatException(record.exc_info))
        return True


REDACTED_LOGGERS: Final = (
    "anygate",
    "anygate.server",
    "anygate.config",
    "anygate.routing",
    "anygate.openai",
    "anygate.tokens",
    "anygate.tools",
    "uvicorn.error",
)
"""Every logger the package writes to (a test checks the source for others), and uvicorn's error log,
which records application tracebacks."""

_FILTER: Final = RedactingFilter()


def install_log_redaction() -> None:
    """Put the filter on every logger in :data:`REDACTED_LOGGERS` (idempotent)."""
    for name in REDACTED_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


install_log_redaction()
