"""``GET /v1/models`` paging and ``GET /v1/models/{model_id}`` through the proxy, as the official SDK and
raw clients call them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import MASTER_KEY, sdk_client
from tests.fakes.gateway_server import GatewayServer
from tests.rawhttp import assert_error, send

NAMES = ["alpha", "beta", "gamma", "delta", "mock/epsilon"]
CONFIG = (
    "model_list:\n"
    + "".join(f"  - model_name: {name}\n    litellm_params: {{model: mock/x}}\n" for name in NAMES)
    + "  - model_name: big\n    litellm_params: {model: mock/big}\n"
    + "    model_info: {display_name: Big one, max_input_tokens: 1000, max_output_tokens: 100}\n"
    + f"general_settings:\n  master_key: {MASTER_KEY}\n"
)
AUTH = {"x-api-key": MASTER_KEY}


@pytest.fixture(scope="module")
def gateway() -> Iterator[GatewayServer]:
    server = GatewayServer(CONFIG).start()
    yield server
    server.stop()


def _page(gateway: GatewayServer, query: str) -> dict[str, object]:
    response = send(gateway.url, "GET", f"/v1/models{query}", None, AUTH)
    assert response.status == 200, response.body
    page: dict[str, object] = response.json()
    return page


def _ids(page: dict[str, object]) -> list[str]:
    return [entry["id"] for entry in page["data"]]  # type: ignore[attr-defined, index]


def test_paging_follows_anthropics_semantics(gateway: GatewayServer) -> None:
    everything = _page(gateway, "")
    assert _ids(everything) == [*NAMES, "big"] and everything["has_more"] is False
    first = _page(gateway, "?limit=2")
    assert _ids(first) == ["alpha", "beta"] and first["has_more"] is True
    assert (first["first_id"], first["last_id"]) == ("alpha", "beta")
    after = _page(gateway, "?limit=2&after_id=beta")
    assert _ids(after) == ["gamma", "delta"] and after["has_more"] is True
    last = _page(gateway, "?limit=10&after_id=delta")
    assert _ids(last) == ["mock/epsilon", "big"] and last["has_more"] is False
    before = _page(gateway, "?limit=2&before_id=delta")
    assert _ids(before) == ["beta", "gamma"] and before["has_more"] is True
    assert _page(gateway, "?before_id=alpha") == {
        "data": [],
        "has_more": False,
        "first_id": None,
        "last_id": None,
    }


@pytest.mark.parametrize(
    "query", ["?limit=0", "?limit=1001", "?limit=ten", "?after_id=nope", "?after_id=a&before_id=b"]
)
def test_bad_paging_is_a_400(gateway: GatewayServer, query: str) -> None:
    assert_error(send(gateway.url, "GET", f"/v1/models{query}", None, AUTH), 400, "invalid_request_error")


def test_the_sdk_pages_through_models_and_retrieves_one(gateway: GatewayServer) -> None:
    client = sdk_client(gateway)
    assert [model.id for model in client.models.list(limit=2)] == [*NAMES, "big"]
    big = client.models.retrieve("big")
    assert (big.id, big.display_name, big.type) == ("big", "Big one", "model")
    assert (big.max_input_tokens, big.max_tokens) == (1000, 100)
    assert client.models.retrieve("mock/epsilon").id == "mock/epsilon"


def test_retrieving_an_unknown_model_is_anthropics_404(gateway: GatewayServer) -> None:
    response = send(gateway.url, "GET", "/v1/models/unknown-model", None, AUTH)
    assert "unknown-model" in assert_error(response, 404, "not_found_error")


def test_models_routes_need_the_key(gateway: GatewayServer) -> None:
    assert_error(send(gateway.url, "GET", "/v1/models/alpha", None, {}), 401, "authentication_error")
    assert_error(
        send(gateway.url, "GET", "/v1/models?limit=1", None, {"x-api-key": "wrong"}),
        401,
        "authentication_error",
    )
