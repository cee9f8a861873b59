#!/usr/bin/env bash
# The main job on embedded defaults: set up (system + Python packages), start the embedded
# S3-compatible server on 127.0.0.1, generate sample submissions, ingest them through the Prefect
# flow, and print a summary table. Safe to run again (samples are recognised as duplicates).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PREFECT_SERVER_ANALYTICS_ENABLED=false PREFECT_HOME="${PREFECT_HOME:-$PWD/var/prefect}"
mkdir -p "$PREFECT_HOME"
exec .venv/bin/preserve demo "$@"
