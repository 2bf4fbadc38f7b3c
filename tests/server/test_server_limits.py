"""Server limits driven the way the attacks drive them: raw sockets against the running server.

Each test configures short limits (0.5 s timeouts, tiny caps) so that it proves the limit holds without
waiting long.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import orjson
import pytest

from tests.conftest import MASTER_KEY
from tests.fakes.gateway_server import GatewayServer
from tests.fakes.upstream import FakeUpstream, Hang
from tests.rawhttp import assert_error, send

LIMITED = f"""
model_list:
  - model_name: mock
    litellm_params: {{model: mock/demo}}
general_settings:
  master_key: {MASTER_KEY}
  header_timeout: 0.5
  body_timeout: 0.5
  keep_alive_timeout: 0.5
"""


@pytest.fixture
def limited(serve: Callable[[str], GatewayServer]) -> GatewayServer:
    return serve(LIMITED)


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


def connect(server: GatewayServer, opened: list[socket.socket]) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    opened.append(sock)
    return sock


def read_until_closed(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes the connection (fails if it never does)."""
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def parse_response(raw: bytes) -> tuple[int, dict[str, str], object]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, orjson.loads(body) if body else None


def assert_anthropic_error(raw: bytes, status: int, error_type: str) -> None:
    got, headers, body = parse_response(raw)
    assert got == status, raw[:300]
    assert isinstance(body, dict) and body["type"] == "error", body
    assert body["error"]["type"] == error_type
    assert headers["request-id"] == body["request_id"]


def test_huge_header_is_refused_before_it_is_buffered(
    limited: GatewayServer, sockets: list[socket.socket]
) -> None:
    """The 64 MB-header attack on /health: refused with 431 after the first 64 KB, while other clients are
    served without delay."""
    attacker = connect(limited, sockets)
    attacker.sendall(b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\nx-big: ")
    sent = 0
    piece = b"a" * (1024 * 1024)
    started = time.perf_counter()
    try:
        while sent < 64 * len(piece):
            attacker.sendall(piece)
            sent += len(piece)
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert sent < 64 * len(piece), "the server read all 64 MB of header"
    assert_anthropic_error(read_until_closed(attacker), 431, "request_too_large")
    assert time.perf_counter() - started < 3
    assert send(limited.url, "GET", "/health").status == 200


def test_head_and_body_arriving_together_are_not_mistaken_for_a_huge_head(limited: GatewayServer) -> None:
    """A body sent in the same packets as its head is not head: a 1 MB request passes the 64 KB limit."""
    body = {
        "model": "mock",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "x" * 1_000_000}],
    }
    response = send(limited.url, "POST", "/v1/messages/count_tokens", body, {"x-api-key": MASTER_KEY})
    assert response.status == 200, response.body


def test_idle_connection_is_closed(limited: GatewayServer, sockets: list[socket.socket]) -> None:
    sock = connect(limited, sockets)
    started = time.perf_counter()
    assert read_until_closed(sock) == b""
    assert time.perf_counter() - started < 3


def test_slowloris_headers_get_408_and_the_connection_closes(
    limited: GatewayServer, sockets: list[socket.socket]
) -> None:
    sock = connect(limited, sockets)
    sock.sendall(b"GET /health HTTP/1.1\r\n")
    started = time.perf_counter()
    received = b""
    sock.settimeout(0.1)
    while time.perf_counter() - started < 4:
        try:
            sock.sendall(b"x-slow-%d: 1\r\n" % int(time.perf_counter() * 1000))
        except (BrokenPipeError, ConnectionResetError):
            break
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        received += chunk
    received += read_until_closed(sock) if received else b""
    assert time.perf_counter() - started < 3
    assert_anthropic_error(received, 408, "timeout_error")


def test_slow_body_is_closed(limited: GatewayServer, sockets: list[socket.socket]) -> None:
    sock = connect(limited, sockets)
    sock.sendall(
        b"POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b"x-api-key: " + MASTER_KEY.encode() + b'\r\ncontent-length: 1000\r\n\r\n{"model"'
    )
    started = time.perf_counter()
    raw = read_until_closed(sock)
    assert time.perf_counter() - started < 3
    assert_anthropic_error(raw, 408, "timeout_error")


def test_idle_keep_alive_connection_is_closed(limited: GatewayServer, sockets: list[socket.socket]) -> None:
    sock = connect(limited, sockets)
    sock.sendall(b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
    raw = read_until_closed(sock)
    assert raw.startswith(b"HTTP/1.1 200")


def test_malformed_http_gets_an_anthropic_error(limited: GatewayServer, sockets: list[socket.socket]) -> None:
    sock = connect(limited, sockets)
    sock.sendall(b"GET /health HTTP/1.1\r\nbad header line\r\n\r\n")
    assert_anthropic_error(read_until_closed(sock), 400, "invalid_request_error")


def test_connections_beyond_the_limit_get_529(
    serve: Callable[[str], GatewayServer], sockets: list[socket.socket]
) -> None:
    server = serve(LIMITED.replace("header_timeout: 0.5", "header_timeout: 30") + "  max_connections: 2\n")
    connect(server, sockets)
    connect(server, sockets)
    time.sleep(0.1)
    third = connect(server, sockets)
    raw = read_until_closed(third)
    assert_anthropic_error(raw, 529, "overloaded_error")
    assert parse_response(raw)[1]["retry-after"] == "1"


def test_requests_beyond_the_concurrency_limit_get_529(
    serve: Callable[[str], GatewayServer], upstream: FakeUpstream
) -> None:
    upstream.script("/v1/messages", Hang(5))
    server = serve(
        f"""
model_list:
  - model_name: slow
    litellm_params: {{model: anthropic/claude, api_base: "{upstream.url}", api_key: k}}
general_settings:
  master_key: {MASTER_KEY}
  max_concurrent_requests: 1
"""
    )
    body = {"model": "slow", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"x-api-key": MASTER_KEY}
    first = threading.Thread(
        target=lambda: send(server.url, "POST", "/v1/messages", body, headers, timeout=10), daemon=True
    )
    first.start()
    deadline = time.monotonic() + 5
    while not upstream.received and time.monotonic() < deadline:
        time.sleep(0.01)
    response = send(server.url, "POST", "/v1/messages", body, headers)
    assert_error(response, 529, "overloaded_error")
