#!/usr/bin/env bash
# Clients that go away mid-headers, mid-body and between two parts, under
# the daemon, the FastCGI responder and CGI: state error, no stray file, and
# every worker free again (--max-uploads uploads at once all succeed).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

python3 "$(dirname "$0")/tools/disconnect.py" "$BIN" "$WORK" && ok || fail "disconnects"
finish
