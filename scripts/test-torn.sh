#!/usr/bin/env bash
# Torn reads across processes: a daemon receives a throttled upload,
# publishing its progress, while 4 other processes read its status 100,000
# times in all: two read status.json straight from the pool directory (as an
# application in another language would), two ask the daemon's status
# endpoint. Every read must be whole JSON, `received` must never go back,
# the state never go back, and `done` must never be seen before the file is
# in place, complete. Bounded: the readers stop after 60 s whatever happens.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

POOL="$WORK/pool"
start_daemon torn --directory "$POOL"
head -c $((24 << 20)) /dev/urandom > "$WORK/m.bin"
want=$(sha256sum < "$WORK/m.bin" | cut -d' ' -f1)

cat > "$WORK/reader.py" <<'PY'
import hashlib, http.client, json, os, sys, time
mode, target, quota, pool, want = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
ident = "torn"
order = {"starting": 0, "uploading": 1, "done": 2}
reads, errors, seen = 0, [], set()
last_received, last_state, between = -1, 0, 0
conn = None
if mode == "http":
    host, port = target.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
deadline = time.monotonic() + 60
while (reads < quota or "done" not in seen) and time.monotonic() < deadline and len(errors) < 10:
    if mode == "file":
        try:
            with open(os.path.join(pool, ident, "status.json"), "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            raw = b'{"state":"starting"}'
    else:
        conn.request("GET", "/upload/status?X-Progress-ID=" + ident)
        resp = conn.getresponse()
        raw = resp.read()
        if resp.status != 200:
            errors.append("status %d: %r" % (resp.status, raw[:100]))
            continue
    reads += 1
    try:
        s = json.loads(raw)
    except ValueError as e:
        errors.append("torn read %r: %s" % (raw[:200], e))
        continue
    state = s.get("state")
    if state not in order:
        errors.append("unexpected state %r" % raw[:200])
        continue
    seen.add(state)
    if order[state] < last_state:
        errors.append("state went back to %s" % state)
    last_state = max(last_state, order[state])
    received = s.get("received", -1)
    if state != "starting":
        if received < last_received:
            errors.append("received went back from %d to %d" % (last_received, received))
        last_received = max(last_received, received)
        if state == "uploading" and 0 < received < (s.get("size") or 0):
            between += 1
    # Any file the status calls complete must be there, whole.
    for n, f in enumerate(s.get("files") or []):
        if "length" in f:
            try:
                size = os.stat(os.path.join(pool, ident, str(n))).st_size
            except FileNotFoundError:
                size = None
            if size != f["length"]:
                errors.append("%s: file %d is %r bytes, status says %d" % (state, n, size, f["length"]))
    if state == "done" and not s.get("files"):
        errors.append("done without files: %r" % raw[:200])
if "done" in seen:
    h = hashlib.sha256()
    with open(os.path.join(pool, ident, "0"), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if h.hexdigest() != want:
        errors.append("stored file differs")
print(reads, len(errors), between, ",".join(sorted(seen)))
for e in errors:
    print(e, file=sys.stderr)
PY

readers=()
for n in 1 2 3 4; do
  mode=file; [ $((n % 2)) -eq 0 ] && mode=http
  python3 "$WORK/reader.py" "$mode" "${URL#http://}" 25000 "$POOL" "$want" > "$WORK/reader-$n.out" 2> "$WORK/reader-$n.err" &
  readers+=("$!"); PIDS+=("$!")
done
sleep 0.2
c=$(curl -s -o "$WORK/up.out" -w '%{http_code}' --limit-rate 6M -F "f=@$WORK/m.bin" "$URL/upload?X-Progress-ID=torn")
check "throttled upload" 201 "$c"
for p in "${readers[@]}"; do wait "$p" || fail "reader $p failed"; done

total=0
for n in 1 2 3 4; do
  read -r reads errors between seen < "$WORK/reader-$n.out" || true
  total=$((total + ${reads:-0}))
  check "reader $n errors" 0 "${errors:-missing}"
  [ -s "$WORK/reader-$n.err" ] && fail "reader $n: $(head -n 5 "$WORK/reader-$n.err")"
  check "reader $n saw the upload through to done" "done" "$(tr ',' '\n' <<<"${seen:-}" | grep -x done || true)"
  [ "${between:-0}" -gt 0 ] && ok || fail "reader $n never saw progress between 0 and the size"
done
[ "$total" -ge 100000 ] && ok || fail "only $total status reads in all"
echo "test-torn.sh: $total status reads by 4 processes"

finish
