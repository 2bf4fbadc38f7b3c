"""One request as a flat record with the fields of LiteLLM's spend log (``SpendLogs``): what the JSON
request log writes and what a spend ledger stores, so the two can be joined on ``request_id``.

Keys never appear: ``api_key`` is the principal's non-secret ``key_id`` (a hash or an id). Prompts appear
only when asked for (``general_settings.log_prompts``), and then only the request's messages and system.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from anygate.deployment import Deployment
from anygate.hooks import RequestRecord, Usage

CALL_TYPES: Final = {"messages": "anthropic_messages", "count_tokens": "count_tokens"}
"""Route → LiteLLM's ``call_type``."""


def spend_record(
    record: RequestRecord, deployment: Deployment | None, cost: float | None, *, include_prompt: bool = False
) -> dict[str, Any]:
    """The spend-log fields of a completed request (times as ISO 8601 UTC)."""
    usage = record.usage or Usage()
    started_at = record.started_at
    latency = record.latency or 0.0
    ttft = record.time_to_first_token
    principal = record.principal
    error = record.error
    prompt_tokens = usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens
    request = record.request or {}
    metadata = request.get("metadata")
    end_user = metadata.get("user_id") if isinstance(metadata, dict) else None
    entry: dict[str, Any] = {
        "request_id": record.request_id,
        "call_type": CALL_TYPES.get(record.route, record.route),
        "api_key": principal.key_id or "",
        "spend": cost or 0.0,
        "total_tokens": prompt_tokens + usage.output_tokens,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": usage.output_tokens,
        "startTime": _iso(started_at),
        "endTime": _iso(started_at + latency),
        "completionStartTime": None if ttft is None else _iso(started_at + ttft),
        "model": deployment.upstream_model if deployment is not None else record.model,
        "model_id": record.deployment_id,
        "model_group": record.model,
        "api_base": (deployment.api_base or "") if deployment is not None else "",
        "user": principal.user_id or "",
        "team_id": principal.team_id,
        "end_user": end_user if isinstance(end_user, str) else None,
        "custom_llm_provider": record.provider,
        "request_duration_ms": round(latency * 1000, 3),
        "status": "success" if record.outcome == "ok" else "failure",
        "metadata": {
            "status_code": record.status,
            "outcome": record.outcome,
            "error_type": None if error is None else error.error_type,
            "error_message": None if error is None else error.message,
            "stream": record.stream,
            "stop_reason": record.stop_reason,
            "attempts": len(record.attempts),
            "time_to_first_token_ms": None if ttft is None else round(ttft * 1000, 3),
            "principal": principal.kind,
            "usage": {
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "cache_read_input_tokens": usage.cache_read_input_tokens,
                "cache_creation_input_tokens": usage.cache_creation_input_tokens,
            },
        },
    }
    if include_prompt:
        entry["messages"] = {"system": request.get("system"), "messages": request.get("messages")}
    return entry


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
