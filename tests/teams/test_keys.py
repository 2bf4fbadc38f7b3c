"""Virtual keys through the admin API and on the request path, on SQLite."""

from __future__ import annotations

import anthropic
import pytest

from anygate.teams.records import hash_key
from tests.conftest import MASTER_KEY
from tests.fakes.gateway_server import GatewayServer
from tests.rawhttp import assert_error
from tests.teams.support import Admin, ask


def test_generated_key_is_shown_once_and_stored_as_its_hash(server: GatewayServer, admin: Admin) -> None:
    made = admin.post("/key/generate", {"key_alias": "alice-laptop", "models": ["claude-test"]})
    key = made["key"]
    assert key.startswith("sk-") and made["token_id"] == hash_key(key)
    assert made["key_name"] == f"sk-...{key[-4:]}"
    assert ask(server, key).content[0].type == "text"
    info = admin.get(f"/key/info?key={key}")
    assert info["key"] == key and info["info"]["key_alias"] == "alice-laptop"
    assert "token" not in info["info"] and key not in str(info["info"])
    listed = admin.get("/key/list?return_full_object=true")
    assert listed["total_count"] == 1 and listed["keys"][0]["token"] == hash_key(key)
    assert key not in str(listed)


def test_master_key_keeps_working(server: GatewayServer) -> None:
    assert ask(server, MASTER_KEY).content


def test_wrong_blocked_and_expired_keys_are_401(server: GatewayServer, admin: Admin) -> None:
    with pytest.raises(anthropic.AuthenticationError):
        ask(server, "sk-not-a-key-at-all")
    key = admin.post("/key/generate", {})["key"]
    admin.post("/key/block", {"key": key})
    with pytest.raises(anthropic.AuthenticationError, match="blocked"):
        ask(server, key)
    admin.post("/key/unblock", {"key": key})
    assert ask(server, key).content
    expiring = admin.post("/key/generate", {"duration": "1s"})["key"]
    import time

    time.sleep(1.1)
    with pytest.raises(anthropic.AuthenticationError, match="expired"):
        ask(server, expiring)


def test_model_not_allowed_is_403(server: GatewayServer, admin: Admin) -> None:
    key = admin.post("/key/generate", {"models": ["claude-test", "team-*"]})["key"]
    assert ask(server, key, "team-alpha").content
    with pytest.raises(anthropic.PermissionDeniedError, match="other-model"):
        ask(server, key, "other-model")


def test_update_delete_regenerate(server: GatewayServer, admin: Admin) -> None:
    key = admin.post("/key/generate", {"key_alias": "ci"})["key"]
    updated = admin.post("/key/update", {"key": key, "models": ["other-model"], "metadata": {"team": "x"}})
    assert updated["models"] == ["other-model"] and updated["metadata"] == {"team": "x"}
    with pytest.raises(anthropic.PermissionDeniedError):
        ask(server, key)
    fresh = admin.post(f"/key/{key}/regenerate", {})["key"]
    assert fresh != key
    with pytest.raises(anthropic.AuthenticationError):
        ask(server, key)
    assert ask(server, fresh, "other-model").content
    assert admin.post("/key/delete", {"key_aliases": ["ci"]}) == {"deleted_keys": ["ci"]}
    with pytest.raises(anthropic.AuthenticationError):
        ask(server, fresh, "other-model")


def test_a_regenerated_key_keeps_its_spend_unless_given_one(server: GatewayServer, admin: Admin) -> None:
    key = admin.post("/key/generate", {"spend": 1.25})["key"]
    kept = admin.post(f"/key/{key}/regenerate", {})
    assert kept["spend"] == 1.25
    assert admin.get(f"/key/info?key={kept['key']}")["info"]["spend"] == 1.25
    reset = admin.post(f"/key/{kept['key']}/regenerate", {"spend": 0.5})
    assert reset["spend"] == 0.5
    assert admin.get(f"/key/info?key={reset['key']}")["info"]["spend"] == 0.5


def test_admin_routes_need_an_admin(server: GatewayServer, admin: Admin) -> None:
    key = admin.post("/key/generate", {})["key"]
    assert_error(Admin(server, key).call("POST", "/key/generate", {}), 403, "permission_error")
    assert_error(Admin(server, "sk-nope").call("GET", "/key/list"), 401, "authentication_error")
    assert Admin(server, key).get("/key/info")["info"]["key_name"] == f"sk-...{key[-4:]}"
    boss = admin.post("/user/new", {"user_id": "boss", "user_role": "proxy_admin"})["key"]
    assert Admin(server, boss).post("/key/generate", {})["key"].startswith("sk-")


@pytest.mark.parametrize(
    ("path", "body", "mentions"),
    [
        ("/key/generate", {"max_budget": "lots"}, "max_budget"),
        ("/key/generate", {"duration": "forever"}, "invalid duration"),
        ("/key/generate", {"rpm_limit": -1}, "rpm_limit"),
        ("/key/generate", {"budget_duraton": "1d"}, "unknown field(s): budget_duraton"),
        ("/key/generate", {"team_id": "no-such-team"}, "not found"),
        ("/key/generate", [1, 2], "JSON object"),
        ("/key/update", {"models": []}, "either key or key_alias"),
        ("/key/delete", {}, "at least one"),
        ("/team/delete", {"team_ids": []}, "team_ids"),
        ("/user/update", {"max_budget": 3}, "user_id or user_email"),
    ],
)
def test_invalid_changes_are_clear_400s(
    server: GatewayServer, admin: Admin, path: str, body: object, mentions: str
) -> None:
    response = admin.call("POST", path, body)
    status = 404 if "not found" in mentions else 400
    error_type = "not_found_error" if status == 404 else "invalid_request_error"
    assert_error(response, status, error_type, mentions=mentions)


def test_duplicate_alias_and_unknown_key_are_not_500(server: GatewayServer, admin: Admin) -> None:
    admin.post("/key/generate", {"key_alias": "dup"})
    assert_error(admin.call("POST", "/key/generate", {"key_alias": "dup"}), 400, "invalid_request_error",
                 mentions="key_alias already exists")  # fmt: skip
    assert_error(admin.call("POST", "/key/block", {"key": "sk-missing-key-123"}), 404, "not_found_error")
    assert_error(admin.call("GET", "/key/generate"), 405, "invalid_request_error")
