#!/usr/bin/env bash
# Install the pinned Claude Code CLI into .cache/claude-code (git-ignored) for the end-to-end tests, and
# link its native binary as .cache/claude-code/claude, where the tests look for it.
# Idempotent: when the pinned version is already linked it only checks that it runs (a few ms).
# Never fails the build: when npm or the registry is unavailable the e2e tests skip and say why.
set -uo pipefail
VERSION="${CLAUDE_CODE_VERSION:-2.1.328}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PREFIX="$ROOT/.cache/claude-code"
LINK="$PREFIX/claude"

runs() { [ -x "$1" ] && "$1" --version 2>/dev/null | grep -q "^$VERSION "; }

if runs "$LINK"; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "install_claude_code.sh: npm not found; the Claude Code end-to-end tests will be skipped" >&2
  exit 0
fi
mkdir -p "$PREFIX"
[ -f "$PREFIX/package.json" ] || echo '{"private": true}' > "$PREFIX/package.json"
[ -f "$PREFIX/.gitignore" ] || echo '*' > "$PREFIX/.gitignore"
# The postinstall script only copies the platform package's binary into bin/; the binary is used
# straight from the platform package instead, so no install script has to run.
if ! npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error --ignore-scripts \
  "@anthropic-ai/claude-code@$VERSION" >&2; then
  echo "install_claude_code.sh: npm install failed; the Claude Code end-to-end tests will be skipped" >&2
  exit 0
fi
for candidate in "$PREFIX"/node_modules/@anthropic-ai/claude-code-*/claude \
  "$PREFIX/node_modules/@anthropic-ai/claude-code/bin/claude.exe"; do
  if runs "$candidate"; then
    ln -sfn "$candidate" "$LINK"
    exit 0
  fi
done
echo "install_claude_code.sh: no runnable Claude Code $VERSION binary for this platform" >&2
exit 0
