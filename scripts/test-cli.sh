#!/usr/bin/env bash
# The command-line API and configuration: identifiers with and without a
# key, status/path/clear/list/gc, and start-up errors.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

POOL="$WORK/pool"
fu() { "$BIN" --directory "$POOL" "$@"; }

# Identifiers without a key.
id=$(fu id new)
[[ "$id" =~ ^[0-9a-f]{32}$ ]] && ok || fail "id new printed [$id]"
[ "$(fu id new)" != "$id" ] && ok || fail "two identical identifiers"
fu id check "$id" && ok || fail "id check of a new identifier"
for bad in '../x' '' 'a.b' "$id:00" "$(printf 'a%.0s' $(seq 1 65))"; do
  if err=$(fu id check "$bad" 2>&1); then fail "id check accepted [$bad]"; else
    check "id check [$bad] exit" 1 "$?"
    check_contains "id check [$bad] says why" "invalid identifier" "$err"
  fi
done
set +e; fu status '../etc' >/dev/null 2>&1; c=$?; set -e
check "status of an invalid identifier" 1 "$c"

# With a key: ID:MAC, checked; the key never on the command line.
export FILEUPLOAD_KEY=s3cret
sid=$(fu id new)
[[ "$sid" =~ ^[0-9a-f]{32}:[0-9a-f]{64}$ ]] && ok || fail "signed id new printed [$sid]"
want=$(python3 -c 'import hmac,hashlib,sys; i=sys.argv[1]; print(i+":"+hmac.new(b"s3cret", i.encode(), hashlib.sha256).hexdigest())' "${sid%%:*}")
check "MAC is HMAC-SHA256 of the ID" "$want" "$sid"
fu id check "$sid" && ok || fail "signed identifier refused"
fu id check "${sid%%:*}" 2>/dev/null && fail "missing MAC accepted" || ok
fu id check "${sid%%:*}:$(printf '0%.0s' $(seq 1 64))" 2>/dev/null && fail "forged MAC accepted" || ok
fu id check "${sid:0:96}" 2>/dev/null && fail "truncated MAC accepted" || ok
other=$(fu id new)
fu id check "${sid%%:*}:${other#*:}" 2>/dev/null && fail "swapped MAC accepted" || ok
FILEUPLOAD_KEY=other fu id check "$sid" 2>/dev/null && fail "another key's MAC accepted" || ok
# A key file wins over the variable, and is refused when others can read it.
printf 's3cret\n' > "$WORK/key"; chmod 600 "$WORK/key"
FILEUPLOAD_KEY=ignored fu --key-file "$WORK/key" id check "$sid" && ok || fail "key file not used"
FILEUPLOAD_KEY_FILE="$WORK/key" FILEUPLOAD_KEY=ignored fu id check "$sid" && ok || fail "key file from the environment not used"
chmod 604 "$WORK/key"
set +e; err=$(fu --key-file "$WORK/key" id new 2>&1); c=$?; set -e
check "world-readable key file exit" 2 "$c"
check_contains "world-readable key file message" "accessible by other users" "$err"

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

# Without a key, a MAC is refused.
fu id check "$sid" 2>/dev/null && fail "MAC accepted without a key" || ok

# status, path, clear, list, gc.
FILEUPLOAD_KEY=s3cret fu status "$sid" > "$WORK/s.json"
check "status of the signed upload" done "$(json "$(cat "$WORK/s.json")" 'j["state"]')"
p=$(FILEUPLOAD_KEY=s3cret fu path "$sid")
check "path is absolute and holds the file" data "$(cat "$p")"
[[ "$p" == /* ]] && ok || fail "path not absolute: $p"
set +e
FILEUPLOAD_KEY=s3cret fu path "$sid" 1 >/dev/null 2>&1; check "path of a missing file" 1 "$?"
fu path never-uploaded >/dev/null 2>&1; check "path of an unknown upload" 1 "$?"
set -e
check "status of an unknown upload" '{"state":"starting"}' "$(fu status never-uploaded)"
n=$(fu list | wc -l)
check "list: one line per upload" 2 "$n"
fu list | while read -r line; do json "$line" 'j["state"]' >/dev/null; done && ok || fail "list printed invalid JSON"
check "gc keeps recent uploads" "" "$(fu gc --older-than 1h)"
sleep 1.1
gone=$(fu gc --older-than 1s | sort | tr '\n' ' ')
check "gc removes old uploads" "$(printf '%s\n' "${sid%%:*}" "${minted%%:*}" | sort | tr '\n' ' ')" "$gone"
check "pool empty after gc" "" "$(ls -A "$POOL" | grep -v '^\.' || true)"
fu clear never-uploaded && ok || fail "clear of an unknown upload"

# Start-up errors: one line on stderr, exit 2, no backtrace.
bad_start() {
  local what=$1; shift
  set +e; err=$("$@" 2>&1 >/dev/null); c=$?; set -e
  check "$what: exit status" 2 "$c"
  check "$what: one line" 1 "$(printf '%s\n' "$err" | wc -l)"
  [[ "$err" != *panicked* && "$err" != *backtrace* ]] && ok || fail "$what: $err"
}
bad_start "bad size" "$BIN" --directory "$POOL" --max-size 12X list
bad_start "bad size from env" env FILEUPLOAD_MAX_SIZE=lots "$BIN" --directory "$POOL" list
bad_start "unreadable key file" "$BIN" --directory "$POOL" --key-file "$WORK/nope" list
bad_start "pool that cannot be created" "$BIN" --directory /proc/self/nope list
touch "$WORK/file"
bad_start "pool that is a file" "$BIN" --directory "$WORK/file" list
mkdir "$WORK/ro"
if mount -t tmpfs -o ro,size=1m tmpfs "$WORK/ro" 2>/dev/null; then
  bad_start "pool on a read-only mount" "$BIN" --directory "$WORK/ro" list
  umount "$WORK/ro"
else
  echo "skipped: the read-only pool check needs to mount a tmpfs (not permitted here)"
fi
bad_start "bad duration" "$BIN" --directory "$POOL" gc --older-than soon
bad_start "bad listen address" "$BIN" --directory "$POOL" serve --listen nowhere
# The flag wins over the variable.
FILEUPLOAD_MAX_SIZE=lots "$BIN" --directory "$POOL" --max-size 1M list >/dev/null && ok || fail "flag did not win"
# The pool directory is created 0700.
"$BIN" --directory "$WORK/newpool" list >/dev/null
check "pool mode" 700 "$(stat -c %a "$WORK/newpool")"

finish
