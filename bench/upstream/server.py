"""Render the nginx config of the fake upstream into a run directory and start nginx on loopback.

Paths served (one fake upstream for both gateways):
    POST /v1/chat/completions        OpenAI Chat Completions: JSON, or a fast SSE stream if "stream": true
    POST /slow/v1/chat/completions   the same, streams send a content chunk every 100 ms for 10 s
    POST /v1/responses               OpenAI Responses API: JSON, or a fast SSE stream (reasoning, then text)
    POST /v1/messages                Anthropic Messages: JSON, or a fast SSE stream
    POST /slow/v1/messages           the same, slow
"""

from __future__ import annotations

import shutil
from pathlib import Path
from string import Template

from bench.procs import Server, free_port, start_server
from bench.upstream import responses

_HERE = Path(__file__).resolve().parent
NGINX = "/usr/sbin/nginx"


def start_upstream(run_dir: Path, port: int | None = None) -> Server:
    """Start the fake upstream; its files (config, answers, error log) live under run_dir/upstream."""
    if shutil.which(NGINX) is None and not Path(NGINX).exists():
        raise RuntimeError("nginx is not installed: run `bash bench/setup.sh` first")
    if not Path("/usr/lib/nginx/modules/ngx_http_lua_module.so").exists():
        raise RuntimeError("nginx's Lua module is missing: run `bash bench/setup.sh` (libnginx-mod-http-lua)")
    port = port or free_port()
    base = run_dir / "upstream"
    answers = base / "responses"
    responses.write_all(answers)
    conf = Template((_HERE / "nginx.conf.template").read_text()).substitute(
        RUN_DIR=str(base),
        LUA_DIR=str(_HERE),
        RESPONSES_DIR=str(answers),
        SLOW_INTERVAL_S=repr(responses.SLOW_INTERVAL_S),
        PORT=str(port),
    )
    conf_path = base / "nginx.conf"
    conf_path.write_text(conf)
    argv = [NGINX, "-p", str(base), "-e", str(base / "nginx-error.log"), "-c", str(conf_path)]
    return start_server("fake-upstream", argv, port, base / "nginx.out", ready_timeout_s=15)
