#!/usr/bin/env bash
# Same identifier, two writers at the same moment (a daemon and a CGI
# process, then two daemons), 100 rounds each: exactly one wins, the other
# gets 409, and the stored file is the winner's.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

python3 "$(dirname "$0")/tools/writers.py" "$BIN" "$WORK" "${WRITER_ROUNDS:-100}" && ok || fail "writer races"
finish
