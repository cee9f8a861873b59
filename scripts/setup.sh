#!/usr/bin/env bash
# Set up everything preserve needs on a fresh Debian/Ubuntu machine; safe to run again.
#   - system packages (ffmpeg, mediainfo, mediaconch, PostgreSQL server for tests, docker-compose
#     for validating the compose file) via apt-get, only if something is missing;
#   - a virtual environment in .venv with the pinned Python packages (pip install -e .[test]).
# Run as root or with sudo (apt-get). Set PRESERVE_SKIP_APT=1 to skip the system step.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || need_apt+=(ffmpeg)
command -v mediainfo >/dev/null || need_apt+=(mediainfo)
command -v mediaconch >/dev/null || need_apt+=(mediaconch)
command -v exiftool >/dev/null || need_apt+=(libimage-exiftool-perl)  # the privacy post-check
command -v docker-compose >/dev/null || need_apt+=(docker-compose)
command -v age >/dev/null && command -v age-keygen >/dev/null || need_apt+=(age)  # stock age: interop tests, the operator's way back
if [ "${PRESERVE_WITH_POSTGRES:-0}" = 1 ] && ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need_apt+=(postgresql)
fi
# headless Chromium for the dashboard screenshot test (big: only when asked, as scripts/test.sh does)
if [ "${PRESERVE_WITH_CHROMIUM:-0}" = 1 ] && ! command -v chromium >/dev/null; then
  need_apt+=(chromium)
fi
# a CJK font, so that the access page's screenshot shows Chinese titles and subtitles, not boxes
if [ "${PRESERVE_WITH_CHROMIUM:-0}" = 1 ] && ! fc-list 2>/dev/null | grep -qi "wenquanyi\|noto sans cjk"; then
  need_apt+=(fonts-wqy-microhei)
fi
if [ "${#need_apt[@]}" -gt 0 ] && [ "${PRESERVE_SKIP_APT:-0}" != 1 ]; then
  echo "[setup] installing system packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

PY="${PYTHON:-python3}"
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || {
  echo "[setup] Python 3.11 or newer is required (found $("$PY" --version))" >&2; exit 2; }
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv 2>/dev/null || {
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get install -y -qq python3-venv >/dev/null; "$PY" -m venv .venv; }
fi
stamp=.venv/.preserve-installed
want=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[setup] installing Python packages into .venv"
  .venv/bin/pip install -q --disable-pip-version-check --upgrade pip >/dev/null
  .venv/bin/pip install -q --disable-pip-version-check -e ".[test]"
  echo "$want" > "$stamp"
fi
echo "[setup] ready: $(.venv/bin/preserve --version 2>/dev/null || echo preserve)"
