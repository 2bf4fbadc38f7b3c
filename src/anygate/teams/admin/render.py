"""Rows as LiteLLM's admin API answers them (``LiteLLM_VerificationToken``, ``LiteLLM_TeamTable``,
``LiteLLM_UserTable``, ``LiteLLM_SpendLogs``): same field names, times in ISO 8601."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

_LITELLM_EMPTY: dict[str, Any] = {
    "aliases": {},
    "config": {},
    "permissions": {},
    "model_spend": {},
    "model_max_budget": {},
    "allowed_cache_controls": [],
}


def iso(value: float | None) -> str | None:
    return None if value is None else datetime.fromtimestamp(value, UTC).isoformat()


def _common(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "models": list(row.get("models") or []),
        "spend": float(row.get("spend") or 0.0),
        "max_budget": row.get("max_budget"),
        "budget_duration": row.get("budget_duration"),
        "budget_reset_at": iso(row.get("budget_reset_at")),
        "tpm_limit": row.get("tpm_limit"),
        "rpm_limit": row.get("rpm_limit"),
        "max_parallel_requests": row.get("max_parallel_requests"),
        "blocked": bool(row.get("blocked")),
        "metadata": dict(row.get("metadata") or {}),
        "created_at": iso(row.get("created_at")),
        "updated_at": iso(row.get("updated_at")),
        "created_by": row.get("created_by"),
        "updated_by": row.get("updated_by"),
    }


def key_object(row: dict[str, Any], at: float, *, with_token: bool = True) -> dict[str, Any]:
    expires = row.get("expires")
    status = (
        "revoked" if row.get("blocked") else "expired" if expires is not None and expires <= at else "active"
    )
    answer: dict[str, Any] = {
        "key_name": row["key_name"],
        "key_alias": row.get("key_alias"),
        "expires": iso(expires),
        "user_id": row.get("user_id"),
        "team_id": row.get("team_id"),
        **_common(row),
        **_LITELLM_EMPTY,
        "status": status,
    }
    if with_token:
        answer = {"token": row["token"], **answer}
    return answer


def team_object(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "team_id": row["team_id"],
        "team_alias": row.get("team_alias"),
        "members_with_roles": list(row.get("members_with_roles") or []),
        "admins": [m["user_id"] for m in row.get("members_with_roles") or [] if m.get("role") == "admin"],
        "members": [m["user_id"] for m in row.get("members_with_roles") or [] if m.get("user_id")],
        **_common(row),
        "model_spend": {},
        "model_max_budget": {},
    }


def user_object(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "user_id": row["user_id"],
        "user_email": row.get("user_email"),
        "user_alias": row.get("user_alias"),
        "user_role": row.get("user_role"),
        "teams": list(row.get("teams") or []),
        **_common(row),
        "model_spend": {},
        "model_max_budget": {},
    }


def spend_log_object(row: dict[str, Any]) -> dict[str, Any]:
    metadata = dict(row.get("metadata") or {})
    metadata.setdefault("cache_read_input_tokens", row.get("cache_read_input_tokens", 0))
    metadata.setdefault("cache_creation_input_tokens", row.get("cache_creation_input_tokens", 0))
    return {
        "request_id": row["request_id"],
        "call_type": row["call_type"],
        "api_key": row["api_key"],
        "spend": row["spend"],
        "total_tokens": row["total_tokens"],
        "prompt_tokens": row["prompt_tokens"],
        "completion_tokens": row["completion_tokens"],
        "cache_read_input_tokens": row.get("cache_read_input_tokens", 0),
        "cache_creation_input_tokens": row.get("cache_creation_input_tokens", 0),
        "startTime": iso(row["start_time"]),
        "endTime": iso(row["end_time"]),
        "completionStartTime": iso(row.get("completion_start_time")),
        "model": row["model"],
        "model_id": row.get("model_id"),
        "model_group": row["model"],
        "custom_llm_provider": row.get("custom_llm_provider"),
        "api_base": "",
        "user": row.get("user") or "",
        "team_id": row.get("team_id"),
        "end_user": row.get("end_user") or "",
        "session_id": row.get("session_id"),
        "status": row.get("status"),
        "metadata": {
            **metadata,
            "status_code": row.get("status_code"),
            "user_api_key_alias": row.get("key_alias"),
        },
        "cache_hit": "False",
        "request_tags": [],
    }
