#!/usr/bin/env bash
# The daemon's own behaviour: idle clients cut off, the upload limit (503),
# status answered while uploads run, clearing an upload in progress,
# disconnects, a unix socket, and a clean stop on SIGTERM.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

POOL="$WORK/pool"
start_daemon d1 --directory "$POOL" --idle-timeout 1s --max-uploads 2
HOSTPORT=${URL#http://}
head -c $((16 << 20)) /dev/urandom > "$WORK/m.bin"

# raw ID SECONDS: sends the headers and half of a multipart body for ID,
# then stays silent for SECONDS (or closes at once with 0); prints the reply.
raw() {
  python3 - "$HOSTPORT" "$1" "$2" <<'PY'
import socket, sys, time
host, port = sys.argv[1].split(":")
ident, quiet = sys.argv[2], float(sys.argv[3])
body = b"--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\n" + b"y" * 100000
s = socket.create_connection((host, int(port)), timeout=30)
s.sendall(b"POST /upload?X-Progress-ID=" + ident.encode() + b" HTTP/1.1\r\nHost: x\r\n"
          b"Content-Type: multipart/form-data; boundary=XX\r\nContent-Length: 200000\r\n\r\n" + body)
if quiet == 0:
    s.close()
    sys.exit(0)
time.sleep(quiet)
try:
    print(s.recv(4096).split(b"\r\n")[0].decode())
except OSError as e:
    print("closed", e)
PY
}

# A client that stops sending is cut off after --idle-timeout.
r=$(raw idle 4)
check "idle client answered" "HTTP/1.1 408 Request Timeout" "$r"
s=$(curl -s "$URL/upload/status?X-Progress-ID=idle")
check "idle upload state" error "$(json "$s" 'j["state"]')"
check_contains "idle upload message" "idle timeout" "$(json "$s" 'j["error"]')"
check "idle upload files" "lock status.json" "$(ls "$POOL/idle" | tr '\n' ' ' | sed 's/ $//')"

# (The listener has now been idle longer than --idle-timeout: the daemon
# must still accept, as every request below shows.)

# A client that disconnects mid-body.
raw gone 0
for _ in $(seq 1 40); do
  [ "$(json "$(curl -s "$URL/upload/status?X-Progress-ID=gone")" 'j["state"]')" == error ] && break
  sleep 0.05
done
check "disconnected upload state" error "$(json "$(curl -s "$URL/upload/status?X-Progress-ID=gone")" 'j["state"]')"
check "disconnected upload files" "lock status.json" "$(ls "$POOL/gone" | tr '\n' ' ' | sed 's/ $//')"

# Two uploads in progress fill --max-uploads 2: a third gets 503 with
# Retry-After, and status is still answered at once.
for n in 1 2; do
  curl -s -o /dev/null --limit-rate 2M -F "f=@$WORK/m.bin" "$URL/upload?X-Progress-ID=busy-$n" &
  PIDS+=("$!")
done
wait_for_state "$URL" busy-1 uploading && wait_for_state "$URL" busy-2 uploading && ok || fail "busy uploads did not start"
c=$(curl -s -D "$WORK/h" -o "$WORK/out" -w '%{http_code}' -F "f=@$WORK/m.bin" "$URL/upload?X-Progress-ID=busy-3")
check "over --max-uploads" 503 "$c"
check_contains "Retry-After" "Retry-After: 5" "$(cat "$WORK/h")"
for _ in $(seq 1 20); do
  c=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$URL/upload/status?X-Progress-ID=busy-1")
  [ "$c" == 200 ] || break
done
check "status while uploads fill every slot" 200 "$c"
# Uploads run on workers of lower priority, and with their hashing and
# writing threads; the threads that answer status keep normal priority.
check "upload workers at nice 10" 10 "$(thread_nices "$DAEMON_PID" upload-)"
check "threads answering status at nice 0" 0 "$(thread_nices "$DAEMON_PID" fileupload)"

# Clearing an upload in progress stops it and removes it.
check "clear in progress" '{"success":true}' "$(curl -s "$URL/upload?X-Progress-ID=busy-1&clear")"
for _ in $(seq 1 60); do [ -e "$POOL/busy-1" ] || break; sleep 0.05; done
[ ! -e "$POOL/busy-1" ] && ok || fail "cleared upload still on disk: $(ls "$POOL/busy-1")"
check "cleared upload status" '{"state":"starting"}' "$(curl -s "$URL/upload/status?X-Progress-ID=busy-1")"

# SIGTERM: stops accepting, lets the upload in progress finish, exits 0.
kill -TERM "$DAEMON_PID"
sleep 0.5
c=$(curl -s -o /dev/null -w '%{http_code}' -m 2 "$URL/upload/status?X-Progress-ID=busy-2" || true)
check "no new connections after SIGTERM" 000 "$c"
set +e; wait "$DAEMON_PID"; rc=$?; set -e
check "exit status after SIGTERM" 0 "$rc"
check "upload finished during the grace period" done "$("$BIN" --directory "$POOL" status busy-2 | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')"
grep -q 'fileupload: stopped' "$WORK/d1.log" && ok || fail "no stop line in the log"

# A unix socket.
"$BIN" serve --directory "$POOL" --listen "unix:$WORK/sock" 2>"$WORK/unix.log" &
UNIXD=$!; PIDS+=("$UNIXD")
for _ in $(seq 1 100); do [ -S "$WORK/sock" ] && break; sleep 0.05; done
printf 'over a unix socket' > "$WORK/u.txt"
body=$(curl -s --unix-socket "$WORK/sock" -F "f=@$WORK/u.txt" "http://localhost/upload?X-Progress-ID=unix")
check "upload over a unix socket" done "$(json "$body" 'j["state"]')"
check "unix upload stored" "over a unix socket" "$(cat "$POOL/unix/0")"

finish
