#!/usr/bin/env bash
# Slow clients and connection floods against the daemon: a body trickled at
# one byte a second and a request head trickled the same way are cut off
# after --idle-timeout (the minimum-progress rule); a flood of idle and
# half-sent connections far over --max-connections does not keep status
# requests out, nor grow threads without bound; when every connection is
# busy a new one gets 503 at once. Bounded: about 30 s.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

POOL="$WORK/pool"
MAXCONN=16
start_daemon slow --directory "$POOL" --idle-timeout 2s --max-connections "$MAXCONN" \
  --max-uploads 2
HOSTPORT=${URL#http://}

# A body trickled at one byte a second: each read gets a byte, so the
# socket's receive timeout never fires; the minimum-progress rule (less
# than 1 KiB in an idle-timeout window) must. The client gives up after 20 s.
r=$(python3 - "$HOSTPORT" <<'PY'
import socket, sys, time
host, port = sys.argv[1].split(":")
s = socket.create_connection((host, int(port)), timeout=20)
head = (b"POST /upload?X-Progress-ID=trickle HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: multipart/form-data; boundary=XX\r\nContent-Length: 100000\r\n\r\n"
        b"--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"t\"\r\n\r\n")
s.sendall(head)
start = time.monotonic()
s.settimeout(1)
reply = b""
while time.monotonic() - start < 20:
    try:
        s.send(b"y")
    except OSError:
        pass
    try:
        chunk = s.recv(4096)
        if not chunk:
            break
        reply += chunk
        if b"\r\n\r\n" in reply:
            break
    except socket.timeout:
        pass
print(reply.split(b"\r\n")[0].decode() or "no reply")
PY
)
check "trickled body cut off" "HTTP/1.1 408 Request Timeout" "$r"
s=$(curl -s "$URL/upload/status?X-Progress-ID=trickle")
check "trickled upload state" error "$(json "$s" 'j["state"]')"
check "trickled upload status" 408 "$(json "$s" 'j["status"]')"
check_contains "trickled upload message" "idle timeout" "$(json "$s" 'j["error"]')"
check "trickled upload left no file" "lock status.json" "$(ls "$POOL/trickle" | tr '\n' ' ' | sed 's/ $//')"

# A request head trickled at one byte a second (slowloris): the head must
# arrive whole within one idle timeout of its first byte. The bytes are the
# line "X-Slow: a\r\n" over and over, from its first byte: header lines
# that never make the empty line ending the head, so the head stays
# incomplete for the whole trickle.
r=$(python3 - "$HOSTPORT" <<'PY'
import socket, sys, time
host, port = sys.argv[1].split(":")
s = socket.create_connection((host, int(port)), timeout=20)
s.sendall(b"GET /upload/status?X-Progress-ID=a HTTP/1.1\r\nHost: x\r\n")
start = time.monotonic()
s.settimeout(1)
out = "still open after 20 s"
line = b"X-Slow: a\r\n"
sent = 0
while time.monotonic() - start < 20:
    try:
        s.send(line[sent % len(line):][:1])
        sent += 1
    except OSError:
        out = "closed"
        break
    try:
        chunk = s.recv(4096)
        out = chunk.split(b"\r\n")[0].decode() if chunk else "closed"
        break
    except socket.timeout:
        pass
    except OSError:
        out = "closed"
        break
print(out)
PY
)
case "$r" in
  "HTTP/1.1 408 Request Timeout" | closed) ok ;;
  *) fail "trickled head: $r" ;;
esac

# A flood: 10 times --max-connections, half silent, half sending a head
# byte by byte, on a daemon whose idle timeout (30 s) outlasts the test, so
# only the connection bound can keep them out. Meanwhile 20 status
# requests, each on a new connection, must all be answered; then, with the
# flood still held, open sockets and threads must come down to the bound
# (threads of evicted connections linger 5 s in tiny_http's pool).
kill "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null || true
start_daemon flood --directory "$POOL" --idle-timeout 30s --max-connections "$MAXCONN" \
  --max-uploads 2
HOSTPORT=${URL#http://}
r=$(python_tools - "$HOSTPORT" "$MAXCONN" "$DAEMON_PID" <<'PY'
import os, socket, sys, time
import net
host, port = sys.argv[1].split(":")
maxconn, pid = int(sys.argv[2]), sys.argv[3]
flood = []
def more(n):
    for i in range(n):
        try:
            s = socket.create_connection((host, int(port)), timeout=5)
            if i % 2:
                s.sendall(b"GET /upload/status?X-Progress-ID=flood HTTP/1.1\r\n")
            flood.append(s)
        except OSError:
            pass
def status():
    s = socket.create_connection((host, int(port)), timeout=5)
    s.sendall(b"GET /upload/status?X-Progress-ID=during-flood HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    reply = net.recv_all(s)
    s.close()
    return reply
def threads():
    with open(f"/proc/{pid}/status") as f:
        return int(next(l for l in f if l.startswith("Threads:")).split()[1])
def sockets():
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return n
more(10 * maxconn)
answered = 0
for n in range(20):
    for s in flood[1::2]:
        try:
            s.send(b"X")
        except OSError:
            pass
    try:
        reply = status()
        if reply.startswith(b"HTTP/1.1 200") and reply.endswith(b'{"state":"starting"}'):
            answered += 1
        else:
            print("unexpected reply", reply[:80], file=sys.stderr)
    except OSError as e:
        print("status failed:", e, file=sys.stderr)
    more(maxconn // 2)
# Each connection holds three descriptors (tiny_http's read and write
# halves, and the handle the bound shuts it down with).
deadline = time.monotonic() + 15
while time.monotonic() < deadline:
    t, k = threads(), sockets()
    if t <= maxconn + 16 and k <= 3 * maxconn + 4:
        break
    time.sleep(0.5)
print(answered, len(flood), t, k)
for s in flood:
    s.close()
PY
)
read -r answered opened threads sockets <<<"$r"
check "status answered during a flood" 20 "$answered"
[ "$opened" -ge $((10 * MAXCONN)) ] && ok || fail "the flood opened only $opened connections"
[ "$threads" -le $((MAXCONN + 16)) ] && ok || fail "$threads threads under a flood (max connections $MAXCONN)"
[ "$sockets" -le $((3 * MAXCONN + 4)) ] && ok || fail "$sockets sockets open under a flood (max connections $MAXCONN)"
kill -0 "$DAEMON_PID" 2>/dev/null && ok || fail "daemon died in the flood"
check "serving after the flood" '{"state":"starting"}' "$(curl -s -m 5 "$URL/upload/status?X-Progress-ID=after")"

# A client that pipelines requests and never reads the answers: once the
# socket's buffers are full, the thread writing to it waits (up to the idle
# timeout). Only one of its requests may be handled at a time, so the
# other connections go on being answered.
kill "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null || true
start_daemon pipeline --directory "$POOL" --idle-timeout 20s --max-uploads 1
HOSTPORT=${URL#http://}
# An upload whose status is large (64 KiB of form fields).
python3 -c '
import sys
part = b"--XX\r\nContent-Disposition: form-data; name=\"k\"\r\n\r\n" + b"v" * 600 + b"\r\n"
sys.stdout.buffer.write(part * 100 + b"--XX--\r\n")' > "$WORK/fields.body"
c=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: multipart/form-data; boundary=XX' \
  --data-binary @"$WORK/fields.body" "$URL/upload?X-Progress-ID=big-status")
check "upload with a large status" 201 "$c"
python3 - "$HOSTPORT" <<'PY' &
import socket, sys, time
host, port = sys.argv[1].split(":")
s = socket.create_connection((host, int(port)))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.sendall(b"GET /upload/status?X-Progress-ID=big-status HTTP/1.1\r\nHost: x\r\n\r\n" * 500)
time.sleep(15)
PY
PIDS+=("$!")
sleep 2
answered=0
for _ in $(seq 1 5); do
  c=$(curl -s -o /dev/null -m 5 -w "%{http_code}" "$URL/upload/status?X-Progress-ID=other" || true)
  [ "$c" == 200 ] && answered=$((answered + 1))
done
check "status answered while a client pipelines without reading" 5 "$answered"

# Every connection busy with a request: a new one is refused at once with
# 503 and Retry-After, never left hanging. Two uploads held open, with
# --max-connections 2.
kill "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null || true
start_daemon busy --directory "$POOL" --idle-timeout 5s --max-connections 2 --max-uploads 2
head -c $((4 << 20)) /dev/urandom > "$WORK/m.bin"
for n in 1 2; do
  curl -s -o /dev/null --limit-rate 1M -F "f=@$WORK/m.bin" "$URL/upload?X-Progress-ID=held-$n" &
  PIDS+=("$!")
done
for _ in $(seq 1 100); do
  [ "$("$BIN" --directory "$POOL" status held-1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')" == uploading ] &&
  [ "$("$BIN" --directory "$POOL" status held-2 | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')" == uploading ] && break
  sleep 0.05
done
c=$(curl -s -D "$WORK/h" -o /dev/null -m 5 -w '%{http_code}' "$URL/upload/status?X-Progress-ID=held-1" || true)
check "every connection busy" 503 "$c"
check_contains "busy Retry-After" "Retry-After: 5" "$(cat "$WORK/h")"
wait "${PIDS[-1]}" "${PIDS[-2]}" || true
check "busy uploads finished" done "$(json "$(curl -s -m 5 "$URL/upload/status?X-Progress-ID=held-2")" 'j["state"]')"

finish
