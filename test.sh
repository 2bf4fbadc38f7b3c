#!/usr/bin/env bash
# Set up (a virtual environment in .venv with anygate and its test tools) and run every check:
# ruff, the strict type check of src/, and the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
.venv/bin/mypy
tests/e2e/install_claude_code.sh
tests/observability/install_chromium.sh
.venv/bin/pytest "$@"
