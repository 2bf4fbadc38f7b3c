#!/usr/bin/env bash
# Set up (a virtual environment in .venv with anygate) and start the proxy on http://127.0.0.1:4000.
# Without arguments it serves the built-in mock model ("anthropic-claude", master key sk-1234);
# arguments go to the anygate command, e.g. ./run.sh --config config.yaml
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
exec .venv/bin/anygate "$@"
