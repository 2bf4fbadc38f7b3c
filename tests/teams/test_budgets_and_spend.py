"""Budgets, rate limits and the spend ledger, on SQLite."""

from __future__ import annotations

import anthropic
import pytest

from anygate.teams.records import hash_key
from tests.fakes.gateway_server import GatewayServer
from tests.rawhttp import assert_error, send
from tests.teams.support import PRICE_IN, PRICE_OUT, Admin, ask, client, wait_for

BODY = {"model": "claude-test", "max_tokens": 64, "messages": [{"role": "user", "content": "hello"}]}


def _spend_rows(admin: Admin, **query: str) -> list[dict]:
    params = "&".join(f"{k}={v}" for k, v in query.items())
    rows: list[dict] = admin.get(f"/spend/logs?{params}")
    return rows


def test_spend_is_priced_and_recorded_per_request(server: GatewayServer, admin: Admin) -> None:
    admin.post("/team/new", {"team_id": "core", "team_alias": "Core"})
    admin.post("/user/new", {"user_id": "alice", "auto_create_key": False})
    key = admin.post("/key/generate", {"team_id": "core", "user_id": "alice", "key_alias": "alice"})["key"]
    answer = client(server, key).messages.create(
        model="claude-test", max_tokens=64, messages=[{"role": "user", "content": "hello"}],
        metadata={"user_id": "end-user-7"}, extra_headers={"x-claude-code-session-id": "session-42"},
    )  # fmt: skip
    expected = answer.usage.input_tokens * PRICE_IN + answer.usage.output_tokens * PRICE_OUT
    rows = wait_for(lambda: _spend_rows(admin, api_key=key))
    row = rows[0]
    assert row["api_key"] == hash_key(key)
    assert row["spend"] == pytest.approx(expected)
    assert (row["team_id"], row["user"], row["end_user"], row["session_id"]) == (
        "core", "alice", "end-user-7", "session-42",
    )  # fmt: skip
    assert row["model"] == "claude-test" and row["model_id"] and row["status"] == "success"
    assert row["prompt_tokens"] == answer.usage.input_tokens
    assert row["completionStartTime"] is not None and row["metadata"]["latency_ms"] >= 0
    assert row["metadata"]["user_api_key_alias"] == "alice"
    for path, field in (("/key/info?key=" + key, "info"), ("/team/info?team_id=core", "team_info"),
                        ("/user/info?user_id=alice", "user_info")):  # fmt: skip
        assert wait_for(lambda p=path, f=field: admin.get(p)[f]["spend"]) == pytest.approx(expected)


def test_streams_are_priced_too(server: GatewayServer, admin: Admin) -> None:
    key = admin.post("/key/generate", {})["key"]
    with client(server, key).messages.stream(**BODY) as stream:  # type: ignore[arg-type]
        final = stream.get_final_message()
    rows = wait_for(lambda: _spend_rows(admin, api_key=hash_key(key)))
    assert rows[0]["completion_tokens"] == final.usage.output_tokens > 0
    assert rows[0]["spend"] > 0


def test_key_budget_stops_with_a_non_retryable_error(server: GatewayServer, admin: Admin) -> None:
    key = admin.post(
        "/key/generate", {"max_budget": 0.000001, "budget_duration": "1d", "key_alias": "tight"}
    )["key"]
    ask(server, key)  # within budget when it started; it spends more than the budget
    wait_for(lambda: admin.get(f"/key/info?key={key}")["info"]["spend"] > 0)
    response = send(server.url, "POST", "/v1/messages", BODY, {"x-api-key": key})
    message = assert_error(response, 402, "billing_error", mentions="budget exceeded")
    assert "'tight'" in message and "resets at" in message
    assert response.headers["x-should-retry"] == "false"
    with pytest.raises(anthropic.APIStatusError) as caught:
        client(server, key, max_retries=3).messages.create(**BODY)  # type: ignore[arg-type]
    assert caught.value.status_code == 402


def test_team_and_user_budgets_apply_to_their_keys(server: GatewayServer, admin: Admin) -> None:
    admin.post("/team/new", {"team_id": "poor", "max_budget": 0.0})
    key = admin.post("/key/generate", {"team_id": "poor", "max_budget": 100})["key"]
    assert_error(send(server.url, "POST", "/v1/messages", BODY, {"x-api-key": key}), 402, "billing_error",
                 mentions="team 'poor'")  # fmt: skip
    made = admin.post("/user/new", {"user_id": "bob", "max_budget": 0})
    assert_error(send(server.url, "POST", "/v1/messages", BODY, {"x-api-key": made["key"]}), 402,
                 "billing_error", mentions="user 'bob'")  # fmt: skip
    admin.post("/user/update", {"user_id": "bob", "max_budget": 10})
    assert ask(server, made["key"]).content


def test_rpm_limit_is_429_with_retry_after(server: GatewayServer, admin: Admin) -> None:
    key = admin.post("/key/generate", {"rpm_limit": 2})["key"]
    ask(server, key)
    ask(server, key)
    response = send(server.url, "POST", "/v1/messages", BODY, {"x-api-key": key})
    assert_error(response, 429, "rate_limit_error", mentions="2 requests per minute")
    assert 1 <= int(response.headers["retry-after"]) <= 60


def test_the_tightest_rpm_applies(server: GatewayServer, admin: Admin) -> None:
    admin.post("/team/new", {"team_id": "slow", "rpm_limit": 1})
    key = admin.post("/key/generate", {"team_id": "slow", "rpm_limit": 100})["key"]
    ask(server, key)
    assert_error(send(server.url, "POST", "/v1/messages", BODY, {"x-api-key": key}), 429, "rate_limit_error",
                 mentions="team 'slow'")  # fmt: skip


def test_blocked_team_is_403(server: GatewayServer, admin: Admin) -> None:
    admin.post("/team/new", {"team_id": "frozen"})
    key = admin.post("/key/generate", {"team_id": "frozen"})["key"]
    admin.post("/team/update", {"team_id": "frozen", "blocked": True})
    assert_error(send(server.url, "POST", "/v1/messages", BODY, {"x-api-key": key}), 403, "permission_error")


def test_spend_report_by_team_key_user_and_model(server: GatewayServer, admin: Admin) -> None:
    admin.post("/team/new", {"team_id": "t1"})
    made = admin.post("/user/new", {"user_id": "u1", "team_id": "t1"})
    ask(server, made["key"])
    ask(server, made["key"], "other-model")
    wait_for(lambda: len(_spend_rows(admin, user_id="u1")) == 2)
    from datetime import UTC, datetime

    today = datetime.now(UTC).date().isoformat()
    for group, field, name in (("team", "teams", "team_name"), ("user", "users", "user"),
                               ("model", "models", "model"), ("api_key", "api_keys", "api_key")):  # fmt: skip
        report = admin.get(f"/global/spend/report?start_date={today}&end_date={today}&group_by={group}")
        assert report[0]["group_by_day"] == today
        entries = report[0][field]
        assert {e[name] for e in entries}, report
        assert sum(e["total_spend"] for e in entries) > 0
    assert_error(
        admin.call("GET", "/global/spend/report"), 400, "invalid_request_error", mentions="start_date"
    )
    summary = admin.get(f"/spend/logs?start_date={today}&end_date={today}")
    assert summary[0]["startTime"] == today and set(summary[0]["models"]) == {"claude-test", "other-model"}


def test_spend_rows_keep_whatever_text_and_figures_the_client_sent(
    server: GatewayServer, admin: Admin
) -> None:
    """Client-chosen texts (an end user id with a NUL, quotes, backslashes and emoji; a model name
    no deployment serves) and every figure land in the spend rows on both databases: one odd
    request never stops the batch it is written with."""
    key = admin.post("/key/generate", {"key_alias": 'odd "alias" \\ 🚀'})["key"]
    end_user = 'end\x00user "quoted" \\ back 🚀 ' + "é" * 300
    answer = client(server, key).messages.create(
        model="claude-test", max_tokens=64, messages=[{"role": "user", "content": "hello"}],
        metadata={"user_id": end_user}, extra_headers={"x-claude-code-session-id": 'sess "1" \\'},
    )  # fmt: skip
    missing = send(
        server.url, "POST", "/v1/messages", {**BODY, "model": "no\x00such-model"}, {"x-api-key": key}
    )
    assert missing.status == 404
    rows = wait_for(lambda: (found := _spend_rows(admin, api_key=key)) and len(found) == 2 and found)
    by_status = {row["status"]: row for row in rows}
    served, refused = by_status["success"], by_status["failure"]
    assert served["end_user"] == end_user.replace("\x00", "")[:255]
    assert served["session_id"] == 'sess "1" \\'
    assert served["metadata"]["user_api_key_alias"] == 'odd "alias" \\ 🚀'
    assert served["prompt_tokens"] == answer.usage.input_tokens
    assert served["spend"] == pytest.approx(
        answer.usage.input_tokens * PRICE_IN + answer.usage.output_tokens * PRICE_OUT, rel=1e-12
    )
    assert refused["model"] == "nosuch-model" and refused["spend"] == 0
