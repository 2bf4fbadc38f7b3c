#!/usr/bin/env bash
# Debian's chromium for the dashboard's browser tests (Playwright drives the system browser: browser
# builds cannot be downloaded). Installed only in CI (CI set), as root, when missing; elsewhere the
# dashboard tests skip and say what to install. Never fails the build itself: in CI a browser still
# missing afterwards fails the dashboard tests instead, which names the cause.
set -uo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ -z "${CI:-}" ] || [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  exit 0
fi
echo "install_chromium.sh: installing chromium for the dashboard tests" >&2
apt-get update -qq >/dev/null 2>&1 || true
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 \
  || echo "install_chromium.sh: apt-get install chromium failed" >&2
exit 0
