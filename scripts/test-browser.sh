#!/usr/bin/env bash
# The browser tests (tests/browser/, node's test runner driving Debian's
# Chromium through playwright-core) and the compatibility test of the status
# endpoint, against daemons started here on free loopback ports.
# Arguments, when given, are the test files to run instead of all.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TESTS="$ROOT/tests/browser"

if [ ! -x /usr/bin/chromium ]; then
  echo "FAIL: /usr/bin/chromium is missing (apt-get install chromium; scripts/setup does)" >&2
  exit 1
fi
if [ ! -d "$TESTS/node_modules/playwright-core" ]; then
  # scripts/setup installs them; a run of this suite alone does it here.
  (cd "$TESTS" && npm ci --no-audit --no-fund)
fi

start_daemon main --directory "$WORK/pool"
MAIN_URL=$URL
start_daemon small --directory "$WORK/pool-small" --max-size 1M
SMALL_URL=$URL
# Killed by a test on purpose, mid-upload.
start_daemon doomed --directory "$WORK/pool-doomed"
DOOMED_URL=$URL

if [ $# -gt 0 ]; then tests=("$@"); else tests=("$TESTS"/*.test.mjs); fi
status=0
FILEUPLOAD_URL=$MAIN_URL FILEUPLOAD_SMALL_URL=$SMALL_URL \
  FILEUPLOAD_DOOMED_URL=$DOOMED_URL FILEUPLOAD_DOOMED_PID=$DAEMON_PID \
  FILEUPLOAD_POOL="$WORK/pool" FILEUPLOAD_DOOMED_POOL="$WORK/pool-doomed" \
  FILEUPLOAD_BIN="$BIN" \
  node --test --test-concurrency=1 --test-timeout=900000 "${tests[@]}" || status=$?
if [ "$status" -ne 0 ]; then
  for log in "$WORK"/*.log; do
    echo "--- $(basename "$log") (last lines)" >&2
    tail -n 20 "$log" >&2
  done
fi
exit "$status"
