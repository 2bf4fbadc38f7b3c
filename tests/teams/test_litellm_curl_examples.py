# ruff: noqa: E501  (LiteLLM's examples are kept as documented)
"""LiteLLM's documented admin curl examples, run unchanged (but for the address) with the real ``curl``
against anygate: the docs page "Virtual Keys" and the examples in the docstrings of LiteLLM 1.110.2's
management endpoints. Objects the examples name (a key, a team) are created first, as in a live proxy."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from typing import Any

import pytest

from tests.conftest import MASTER_KEY
from tests.fakes.gateway_server import GatewayServer
from tests.teams.support import Admin

EXAMPLES: list[tuple[str, str]] = [
    ("docs: generate a key", """curl 'http://0.0.0.0:4000/key/generate' \\
--header 'Authorization: Bearer <your-master-key>' \\
--header 'Content-Type: application/json' \\
--data-raw '{"models": ["gpt-3.5-turbo", "gpt-4"], "metadata": {"user": "ishaan@berri.ai"}}'"""),
    ("key/generate docstring", """curl --location 'http://0.0.0.0:4000/key/generate' \\
    --header "Authorization: Bearer $LITELLM_MASTER_KEY" \\
    --header 'Content-Type: application/json' \\
    --data '{
        "permissions": {"allow_pii_controls": true}
}'"""),
    ("key/block docstring", """curl --location 'http://0.0.0.0:4000/key/block' \\
    --header "Authorization: Bearer $LITELLM_MASTER_KEY" \\
    --header 'Content-Type: application/json' \\
    --data '{
        "key": "sk-Fn8Ej39NxjAXrvpUGKghGw"
    }'"""),
    ("key/unblock docstring", """curl --location 'http://0.0.0.0:4000/key/unblock' \\
    --header "Authorization: Bearer $LITELLM_MASTER_KEY" \\
    --header 'Content-Type: application/json' \\
    --data '{
        "key": "sk-Fn8Ej39NxjAXrvpUGKghGw"
    }'"""),
    ("key/info", """curl -X GET "http://0.0.0.0:4000/key/info?key=sk-Fn8Ej39NxjAXrvpUGKghGw" \\
-H "Authorization: Bearer sk-1234\""""),
    ("team/new docstring", """curl --location 'http://0.0.0.0:4000/team/new' \\
    --header "Authorization: Bearer $LITELLM_MASTER_KEY" \\
    --header 'Content-Type: application/json' \\
    --data '{
      "team_alias": "my-new-team_2",
      "members_with_roles": [{"role": "admin", "user_id": "user-1234"},
        {"role": "user", "user_id": "user-2434"}]
    }'"""),
    ("team/new with a budget", """curl --location 'http://0.0.0.0:4000/team/new' \\
    --header "Authorization: Bearer $LITELLM_MASTER_KEY" \\
    --header 'Content-Type: application/json' \\
    --data '{
                "team_alias": "QA Prod Bot",
                "max_budget": 0.000000001,
                "budget_duration": "1d"
            }'"""),
    ("team/update tpm", """curl --location 'http://0.0.0.0:4000/team/update' \\
    --header "Authorization: Bearer $LITELLM_MASTER_KEY" \\
    --header 'Content-Type: application/json' \\
    --data-raw '{
        "team_id": "8d916b1c-510d-4894-a334-1c16a93344f5",
        "tpm_limit": 100
    }'"""),
    ("team/update budget", """curl --location 'http://0.0.0.0:4000/team/update' \\
    --header "Authorization: Bearer $LITELLM_MASTER_KEY" \\
    --header 'Content-Type: application/json' \\
    --data-raw '{
        "team_id": "8d916b1c-510d-4894-a334-1c16a93344f5",
        "max_budget": 10
    }'"""),
    ("team/member_add", """curl -X POST 'http://0.0.0.0:4000/team/member_add' \\
    -H "Authorization: Bearer $LITELLM_MASTER_KEY" \\
    -H 'Content-Type: application/json' \\
    -d '{"team_id": "45e3e396-ee08-4a61-a88e-16b3ce7e0849", "member": {"role": "user", "user_id": "krrish247652@berri.ai"}}'"""),
    ("team/info", """curl --location 'http://localhost:4000/team/info?team_id=45e3e396-ee08-4a61-a88e-16b3ce7e0849' \\
    --header 'Authorization: Bearer sk-1234'"""),
    ("user/new", """curl -X POST "http://localhost:4000/user/new" \\
     -H "Content-Type: application/json" \\
     -H "Authorization: Bearer $LITELLM_MASTER_KEY" \\
     -d '{
         "username": "new_user",
         "email": "new_user@example.com"
     }'"""),
    ("user/info", """curl -X GET 'http://localhost:4000/user/info?user_id=krrish247652%40berri.ai' \\
    --header "Authorization: Bearer $LITELLM_MASTER_KEY\""""),
    ("user/update", """curl --location 'http://0.0.0.0:4000/user/update' \\
    --header "Authorization: Bearer $LITELLM_MASTER_KEY" \\
    --header 'Content-Type: application/json' \\
    --data '{
        "user_id": "krrish247652@berri.ai",
        "user_role": "proxy_admin_viewer"
    }'"""),
    ("spend/logs", """curl -X GET "http://0.0.0.0:8000/spend/logs" \\
-H "Authorization: Bearer $LITELLM_MASTER_KEY\""""),
    ("key/delete", """curl --location 'http://0.0.0.0:4000/key/delete' \\
    --header 'Authorization: Bearer sk-1234' \\
    --header 'Content-Type: application/json' \\
    --data '{
        "keys": ["sk-Fn8Ej39NxjAXrvpUGKghGw"]
    }'"""),
    ("team/delete", """curl --location 'http://0.0.0.0:4000/team/delete' \\
    --header "Authorization: Bearer $LITELLM_MASTER_KEY" \\
    --header 'Content-Type: application/json' \\
    --data-raw '{
        "team_ids": ["8d916b1c-510d-4894-a334-1c16a93344f5"]
    }'"""),
    ("user/delete", """curl --location 'http://0.0.0.0:4000/user/delete' \\
    --header "Authorization: Bearer $LITELLM_MASTER_KEY" \\
    --header 'Content-Type: application/json' \\
    --data-raw '{
        "user_ids": ["krrish247652@berri.ai"]
    }'"""),
]  # fmt: skip


def _run(example: str, server: GatewayServer) -> Any:
    command = re.sub(r"http://(0\.0\.0\.0|localhost):(4000|8000)", server.url, example)
    command = command.replace("<your-master-key>", MASTER_KEY).replace(
        "Bearer sk-1234", f"Bearer {MASTER_KEY}"
    )
    done = subprocess.run(
        ["bash", "-c", command + " --silent --show-error --write-out '\\n%{http_code}'"],
        env={**os.environ, "LITELLM_MASTER_KEY": MASTER_KEY},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    body, _, status = done.stdout.rpartition("\n")
    assert status == "200", (example, status, body)
    return json.loads(body)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_litellm_curl_examples_work_unchanged(server: GatewayServer) -> None:
    admin = Admin(server)
    admin.post("/key/generate", {"key": "sk-Fn8Ej39NxjAXrvpUGKghGw"})
    admin.post("/team/new", {"team_id": "8d916b1c-510d-4894-a334-1c16a93344f5"})
    admin.post("/team/new", {"team_id": "45e3e396-ee08-4a61-a88e-16b3ce7e0849"})
    answers = {name: _run(example, server) for name, example in EXAMPLES}
    assert answers["docs: generate a key"]["models"] == ["gpt-3.5-turbo", "gpt-4"]
    assert answers["docs: generate a key"]["metadata"] == {"user": "ishaan@berri.ai"}
    assert answers["key/block docstring"]["blocked"] is True
    assert answers["key/unblock docstring"]["blocked"] is False
    assert answers["key/info"]["info"]["key_name"] == "sk-...ghGw"
    assert answers["team/new docstring"]["members"] == ["user-1234", "user-2434"]
    assert answers["team/new with a budget"]["budget_reset_at"] is not None
    assert answers["team/update budget"]["data"]["max_budget"] == 10
    assert answers["team/update budget"]["data"]["tpm_limit"] == 100
    assert "krrish247652@berri.ai" in answers["team/member_add"]["members"]
    assert answers["team/info"]["team_info"]["members_with_roles"][0]["role"] == "user"
    assert answers["user/new"]["key"].startswith("sk-")
    assert answers["user/info"]["user_info"]["teams"] == ["45e3e396-ee08-4a61-a88e-16b3ce7e0849"]
    assert answers["user/update"]["data"]["user_role"] == "proxy_admin_viewer"
    assert isinstance(answers["spend/logs"], list)
    assert answers["key/delete"] == {"deleted_keys": ["sk-Fn8Ej39NxjAXrvpUGKghGw"]}
    assert answers["team/delete"][0]["team_id"] == "8d916b1c-510d-4894-a334-1c16a93344f5"
    assert answers["user/delete"] == {"deleted_users": ["krrish247652@berri.ai"]}
