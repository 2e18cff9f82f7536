#!/usr/bin/env bash
# kill -9 of the writer (daemon, FastCGI responder, CGI process) at random
# points of an upload, 50 trials each: nothing that was done is lost, the
# interrupted upload says so, and the next start serves.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

python3 "$(dirname "$0")/tools/crash.py" "$BIN" "$WORK" "${CRASH_TRIALS:-50}" "${CRASH_SEED:-7}" && ok || fail "crash trials"
finish
