#!/usr/bin/env bash
# The command-line API where it meets a daemon or a mount: a keyed daemon
# takes only ID:MAC and mints signed identifiers, the CLI reads what it
# stored, and a read-only pool fails at start-up.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

POOL="$WORK/pool"
fu() { "$BIN" --directory "$POOL" "$@"; }

# The identifiers, `status`, `path`, `clear`, `list`, `gc` and the start-up
# errors are tested with the built binary in tests/cli.rs; here, what needs
# a daemon or a mount.

# Identifiers under a key, for the daemon below.
export FILEUPLOAD_KEY=s3cret
sid=$(fu id new)
other=$(fu id new)

# The daemon with a key: only ID:MAC gets in.
start_daemon keyed --directory "$POOL"
printf 'data' > "$WORK/d.txt"
c=$(curl -s -o /dev/null -w '%{http_code}' "$URL/upload/status?X-Progress-ID=${sid%%:*}")
check "status without MAC" 400 "$c"
c=$(curl -s -o /dev/null -w '%{http_code}' "$URL/upload/status?X-Progress-ID=${sid%%:*}:${other#*:}")
check "status with another's MAC" 400 "$c"
c=$(curl -s -o /dev/null -w '%{http_code}' -F "f=@$WORK/d.txt" "$URL/upload?X-Progress-ID=${sid%%:*}")
check "upload without MAC" 400 "$c"
body=$(curl -s -F "f=@$WORK/d.txt" "$URL/upload?X-Progress-ID=$sid")
check "upload with MAC" done "$(json "$body" 'j["state"]')"
check "identifier with MAC in the description" "$sid" "$(json "$body" 'j["identifier"]')"
minted=$(json "$(curl -s -F "f=@$WORK/d.txt" "$URL/upload")" 'j["identifier"]')
fu id check "$minted" && ok || fail "minted identifier [$minted] not signed"
kill "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null || true
unset FILEUPLOAD_KEY

# What the daemon stored under a signed identifier, as the CLI reads it.
FILEUPLOAD_KEY=s3cret fu status "$sid" > "$WORK/s.json"
check "status of the signed upload" done "$(json "$(cat "$WORK/s.json")" 'j["state"]')"
p=$(FILEUPLOAD_KEY=s3cret fu path "$sid")
check "path holds the file" data "$(cat "$p")"

# A start-up error on a read-only mount: one line on stderr, exit 2, no
# backtrace (the other start-up errors are in tests/cli.rs).
bad_start() {
  local what=$1; shift
  set +e; err=$("$@" 2>&1 >/dev/null); c=$?; set -e
  check "$what: exit status" 2 "$c"
  check "$what: one line" 1 "$(printf '%s\n' "$err" | wc -l)"
  [[ "$err" != *panicked* && "$err" != *backtrace* ]] && ok || fail "$what: $err"
}
mkdir "$WORK/ro"
if mount -t tmpfs -o ro,size=1m tmpfs "$WORK/ro" 2>/dev/null; then
  bad_start "pool on a read-only mount" "$BIN" --directory "$WORK/ro" list
  umount "$WORK/ro"
else
  echo "skipped: the read-only pool check needs to mount a tmpfs (not permitted here)"
fi

finish
