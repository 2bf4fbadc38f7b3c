"""``/spend/logs`` and ``/global/spend/report``: spend rows, and spend by team, customer (end user),
key, user or model per day over a date range, in LiteLLM's answer shapes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from anygate.protocol.errors import GatewayError
from anygate.teams.admin.render import spend_log_object
from anygate.teams.records import hash_key
from anygate.teams.store import Store

MAX_ROWS: Final = 10_000
GROUPS: Final = {
    # group_by: (column, list field, name field)
    "team": ("team_id", "teams", "team_name"),
    "customer": ("end_user", "customers", "customer"),
    "api_key": ("api_key", "api_keys", "api_key"),
    "user": ("user", "users", "user"),
    "model": ("model", "models", "model"),
}

Param = Callable[[str], str | None]


def _day(value: str, name: str) -> float:
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise GatewayError(400, f"{name} must be a date written YYYY-MM-DD, not {value!r}") from None


def _range(param: Param, *, required: bool) -> tuple[float | None, float | None]:
    start, end = param("start_date"), param("end_date")
    if required and (start is None or end is None):
        raise GatewayError(400, "Please provide start_date and end_date (YYYY-MM-DD)")
    if (start is None) != (end is None):
        raise GatewayError(400, "start_date and end_date go together")
    if start is None or end is None:
        return None, None
    low, high = _day(start, "start_date"), _day(end, "end_date") + timedelta(days=1).total_seconds()
    if high <= low:
        raise GatewayError(400, "end_date is before start_date")
    return low, high


def _key_filter(value: str) -> str:
    return hash_key(value) if value.startswith("sk-") else value


async def spend_logs(store: Store, param: Param) -> list[dict[str, Any]]:
    filters: dict[str, Any] = {}
    if api_key := param("api_key"):
        filters["api_key"] = _key_filter(api_key)
    if user_id := param("user_id"):
        filters["user"] = user_id
    if request_id := param("request_id"):
        filters["request_id"] = request_id
    start, end = _range(param, required=False)
    summarize = (param("summarize") or "true").lower() != "false"
    if start is not None and summarize:
        totals = await store.spend_totals(("day", "model", "user"), filters, start, end)
        days: dict[str, dict[str, Any]] = {}
        for row in totals:
            day = days.setdefault(
                row["day"], {"startTime": row["day"], "spend": 0.0, "models": {}, "users": {}}
            )
            day["spend"] += row["spend"] or 0.0
            day["models"][row["model"]] = day["models"].get(row["model"], 0.0) + (row["spend"] or 0.0)
            user = row["user"] or ""
            day["users"][user] = day["users"].get(user, 0.0) + (row["spend"] or 0.0)
        return list(days.values())
    rows = await store.spend_logs(filters, start, end, MAX_ROWS)
    return [spend_log_object(r) for r in rows]


async def global_spend_report(store: Store, param: Param) -> list[dict[str, Any]]:
    start, end = _range(param, required=True)
    group_by = param("group_by") or "team"
    if group_by not in GROUPS:
        raise GatewayError(400, f"group_by must be one of: {', '.join(GROUPS)}")
    column, list_field, name_field = GROUPS[group_by]
    filters: dict[str, Any] = {}
    for name, target in (("api_key", "api_key"), ("internal_user_id", "user"), ("team_id", "team_id"),
                         ("customer_id", "end_user"), ("model", "model")):  # fmt: skip
        if value := param(name):
            filters[target] = _key_filter(value) if name == "api_key" else value
    detail = "api_key" if group_by == "model" else "model"
    totals = await store.spend_totals(("day", column, detail), filters, start, end)
    days: dict[str, dict[str, dict[str, Any]]] = {}
    for row in totals:
        groups = days.setdefault(row["day"], {})
        name = row[column] if row[column] is not None else ""
        group = groups.setdefault(
            name, {name_field: name, "total_spend": 0.0, "total_tokens": 0, "metadata": []}
        )
        tokens = int(row["input_tokens"] or 0) + int(row["output_tokens"] or 0)
        group["total_spend"] += row["spend"] or 0.0
        group["total_tokens"] += tokens
        group["metadata"].append(
            {
                detail: row[detail],
                "spend": row["spend"] or 0.0,
                "total_tokens": tokens,
                "input_tokens": int(row["input_tokens"] or 0),
                "output_tokens": int(row["output_tokens"] or 0),
                "cache_read_input_tokens": int(row["cache_read_input_tokens"] or 0),
                "cache_creation_input_tokens": int(row["cache_creation_input_tokens"] or 0),
                "requests": int(row["requests"] or 0),
            }
        )
    return [{"group_by_day": day, list_field: list(groups.values())} for day, groups in sorted(days.items())]
