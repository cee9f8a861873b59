#!/usr/bin/env bash
# Set up everything and run the test suite. The tests start their own servers: SeaweedFS on free
# loopback ports via `preserve.services.up` (the code behind `preserve services up`), PostgreSQL in
# a temporary directory where a test needs it, and one shared Prefect test harness for flow tests.
set -euo pipefail
cd "$(dirname "$0")/.."
# the tests also need a PostgreSQL server (catalog on PostgreSQL) and Chromium (dashboard screenshot)
PRESERVE_WITH_POSTGRES=1 PRESERVE_WITH_CHROMIUM=1 bash scripts/setup.sh
export PREFECT_SERVER_ANALYTICS_ENABLED=false
# the real-media corpus tier runs when ../shared/corpus can be gathered (CI has it); skipped otherwise
if [ -z "${PRESERVE_CORPUS:-}" ] && [ -f ../shared/corpus/get_corpus.sh ]; then
  corpus="$PWD/var/corpus"; mkdir -p var
  if [ ! -f "$corpus/MANIFEST.tsv" ]; then
    echo "[test] gathering the real-media corpus into $corpus (about 2 minutes)"
    bash ../shared/corpus/get_corpus.sh "$corpus" >var/corpus.log 2>&1 || echo "[test] corpus incomplete; see var/corpus.log"
  fi
  [ -f "$corpus/MANIFEST.tsv" ] && export PRESERVE_CORPUS="$corpus"
fi
# the architecture's checks first (issue 11): lint, format, strict types on the library, import contracts
echo "[test] ruff check, ruff format --check, mypy --strict (src/preserve), lint-imports"
.venv/bin/ruff check src flows tests bench scripts
.venv/bin/ruff format --check src flows tests bench scripts
.venv/bin/mypy
.venv/bin/lint-imports --no-cache
exec .venv/bin/python -m pytest "$@"
