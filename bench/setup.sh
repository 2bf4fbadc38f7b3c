#!/usr/bin/env bash
# Install what the benchmark needs (run once per machine, as root, from anywhere):
#   - nginx with its Lua module (the fake upstream), wrk (the load generator) and valgrind (callgrind, for
#     bench.teams_instructions) from Debian's packages;
#   - bench/.venv: the harness's own venv (aiohttp for scenario e, matplotlib for the chart);
#   - bench/.venv-litellm: LiteLLM 1.110.2 and its proxy's dependencies, by name (see
#     requirements-litellm.txt for why not `litellm[proxy]`).
# The anygate side is the project's own venv: `.venv/bin/pip install -e .` at the repository root.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null || python=python3

need_apt=()
[ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
[ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ] || need_apt+=(libnginx-mod-http-lua)
command -v wrk >/dev/null || need_apt+=(wrk)
command -v callgrind_control >/dev/null || need_apt+=(valgrind)
if [ "${#need_apt[@]}" -gt 0 ]; then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_apt[@]}"
fi
# Debian starts nothing here without systemd; the harness runs its own nginx with its own config.

if [ ! -x "$here/.venv/bin/python" ]; then
  "$python" -m venv "$here/.venv"
fi
"$here/.venv/bin/pip" install -q aiohttp matplotlib

if [ ! -x "$here/.venv-litellm/bin/python" ]; then
  "$python" -m venv "$here/.venv-litellm"
fi
"$here/.venv-litellm/bin/pip" install -q -r "$here/requirements-litellm.txt"

echo "bench setup done: nginx $(/usr/sbin/nginx -v 2>&1 | sed 's/.*nginx\///'), $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)," \
     "litellm $("$here/.venv-litellm/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm"))')"
