#!/usr/bin/env bash
# Large and concurrent uploads against a running daemon: a 1 GiB file byte
# for byte, progress seen rising from another process, 409 for a second
# writer from another process, and kill -9 of the daemon mid-upload.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

POOL="$WORK/pool"
start_daemon up1 --directory "$POOL"

# Progress, seen by another process while a throttled upload runs, and a
# second writer with the same identifier turned away.
head -c $((48 << 20)) /dev/urandom > "$WORK/m.bin"
curl -s --limit-rate 12M -o "$WORK/slow.out" -w '%{http_code}' -F "f=@$WORK/m.bin" \
  "$URL/upload?X-Progress-ID=slow" > "$WORK/slow.code" &
UPLOAD=$!; PIDS+=("$UPLOAD")
(
  for _ in $(seq 1 400); do
    curl -s "$URL/upload/status?X-Progress-ID=slow"; echo
    sleep 0.05
  done
) > "$WORK/polls" &
POLLER=$!; PIDS+=("$POLLER")
wait_for_state "$URL" slow uploading || fail "upload never seen uploading"
c=$(curl -s -o "$WORK/second.out" -w "%{http_code}" -F "f=@$WORK/m.bin" "$URL/upload?X-Progress-ID=slow" 2>/dev/null || true)
check "second writer" 409 "$c"
check "second writer message" 409 "$(json "$(cat "$WORK/second.out")" 'j["status"]')"
s=$("$BIN" --directory "$POOL" status slow)
check "CLI sees the upload" uploading "$(json "$s" 'j["state"]')"
wait "$UPLOAD" || true
check "throttled upload" 201 "$(cat "$WORK/slow.code")"
wait_for_state "$URL" slow done 10 || fail "throttled upload not done"
sleep 0.2; kill "$POLLER" 2>/dev/null || true; wait "$POLLER" 2>/dev/null || true
size=$(json "$(cat "$WORK/slow.out")" 'j["size"]')
python3 - "$WORK/polls" "$size" <<'PY' && ok || fail "progress did not rise while uploading"
import json, sys
seen = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
size = int(sys.argv[2])
received = [s["received"] for s in seen if s["state"] in ("uploading", "done")]
assert all(a <= b for a, b in zip(received, received[1:])), "received went backwards"
between = sorted({r for s in seen if s["state"] == "uploading" for r in [s["received"]] if 0 < r < size})
assert len(between) >= 3, f"only {len(between)} progress values: {between}"
states = [s["state"] for s in seen]
assert "done" in states and states.index("done") > states.index("uploading")
assert all(s["size"] == size for s in seen if s["state"] != "starting")
PY
check "throttled sha256" "$(sha256sum < "$WORK/m.bin" | cut -d' ' -f1)" "$(json "$(cat "$WORK/slow.out")" 'j["files"][0]["sha256"]')"
cmp -s "$WORK/m.bin" "$POOL/slow/0" && ok || fail "throttled upload differs on disk"

# 1 GiB at full speed, checked byte for byte.
head -c $((1 << 30)) /dev/urandom > "$WORK/g.bin"
want=$(sha256sum < "$WORK/g.bin" | cut -d' ' -f1)
c=$(curl -s -o "$WORK/g.out" -w '%{http_code}' -F "f=@$WORK/g.bin" "$URL/upload?X-Progress-ID=giga")
check "1 GiB upload" 201 "$c"
check "1 GiB length" $((1 << 30)) "$(json "$(cat "$WORK/g.out")" 'j["files"][0]["length"]')"
check "1 GiB sha256 in the description" "$want" "$(json "$(cat "$WORK/g.out")" 'j["files"][0]["sha256"]')"
cmp -s "$WORK/g.bin" "$("$BIN" --directory "$POOL" path giga)" && ok || fail "1 GiB file differs on disk"
rm -f "$WORK/g.bin"
"$BIN" --directory "$POOL" clear giga
[ ! -e "$POOL/giga" ] && ok || fail "clear by CLI left the bucket"

# kill -9 of the daemon mid-upload: the status says interrupted, no
# finished-looking file is left, and a new daemon serves at once.
curl -s --limit-rate 4M -o /dev/null -F "f=@$WORK/m.bin" "$URL/upload?X-Progress-ID=crash" &
CRASHER=$!; PIDS+=("$CRASHER")
for _ in $(seq 1 100); do
  r=$(json "$(curl -s "$URL/upload/status?X-Progress-ID=crash")" 'j.get("received", 0)')
  [ "$r" -gt 1000000 ] && break
  sleep 0.05
done
[ "$r" -gt 1000000 ] && ok || fail "crash upload did not start"
kill -9 "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null || true
wait "$CRASHER" 2>/dev/null || true
[ -e "$POOL/crash/0.part" ] && ok || fail "no partial file before the status read"
s=$("$BIN" --directory "$POOL" status crash)
check "interrupted state" error "$(json "$s" 'j["state"]')"
check "interrupted message" "upload interrupted" "$(json "$s" 'j["error"]')"
[ ! -e "$POOL/crash/0" ] && [ ! -e "$POOL/crash/0.part" ] && ok || fail "file left after the interrupted upload: $(ls "$POOL/crash")"
"$BIN" --directory "$POOL" path crash >/dev/null 2>&1 && fail "path of an interrupted upload" || ok
check "earlier upload intact" "$(sha256sum < "$WORK/m.bin")" "$(sha256sum < "$POOL/slow/0")"
start_daemon up2 --directory "$POOL"
check "interrupted over HTTP" "upload interrupted" "$(json "$(curl -s "$URL/upload/status?X-Progress-ID=crash")" 'j["error"]')"
c=$(curl -s -o /dev/null -w '%{http_code}' -F "f=@$WORK/m.bin" "$URL/upload?X-Progress-ID=crash")
check "upload again after the crash" 201 "$c"

finish
