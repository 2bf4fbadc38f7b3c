"""Starting and stopping the processes of a run (fake upstream, gateways) by their own ids.

Why their own session: each server is started as the leader of a new session, so stopping it signals
exactly that process group (its workers included) and nothing else on the machine.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

# 1,000 client streams + 1,000 upstream streams per gateway, with room to spare.
NOFILE_WANTED = 16_384


def raise_nofile_limit() -> None:
    """Lift RLIMIT_NOFILE towards NOFILE_WANTED; children inherit it (scenario (e) needs ~2,000 fds)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(NOFILE_WANTED, hard) if hard != resource.RLIM_INFINITY else NOFILE_WANTED
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Wait until something accepts connections on 127.0.0.1:port, or fail if the process died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with code {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s:.0f}s")


@dataclass
class Server:
    """A started server process, its port and its log file."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, max_chars: int = 3000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return text[-max_chars:]

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM the server's own process group, then SIGKILL it if it lingers."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=5)
        else:
            # The leader is gone; make sure no worker of its group survives it.
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def start_server(
    name: str,
    argv: list[str],
    port: int,
    log_path: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    ready_timeout_s: float = 120.0,
) -> Server:
    """Start argv in its own session with output to log_path, and wait until it listens on port."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    server = Server(name=name, proc=proc, port=port, log_path=log_path)
    try:
        wait_for_port(port, proc, ready_timeout_s)
    except Exception:
        server.stop()
        raise RuntimeError(f"{name} did not start: see {log_path}\n{server.log_tail()}") from None
    return server
