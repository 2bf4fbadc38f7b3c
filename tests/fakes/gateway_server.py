"""The real anygate ASGI app under uvicorn on a free 127.0.0.1 port, in a background thread."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from anygate.config import Config, parse_config
from anygate.server.app import create_app
from anygate.server.runtime import server_options


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class GatewayServer:
    """Serves a config the way ``anygate --config`` does (uvloop, httptools), for the tests' clients."""

    def __init__(self, config: Config | str) -> None:
        self.config = parse_config(config) if isinstance(config, str) else config
        self.app = create_app(self.config)
        self.port = free_port()
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                **server_options(),
            )
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def gateway(self):  # type: ignore[no-untyped-def]
        return self.app.gateway

    def start(self) -> GatewayServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the gateway server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
