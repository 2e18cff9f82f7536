#!/usr/bin/env bash
# The FastCGI responder under real web servers: nginx fastcgi_pass over
# TCP and over a unix socket, lighttpd mod_fastcgi spawning the binary
# itself (socket on fd 0), Apache mod_proxy_fcgi to a responder started by
# spawn-fcgi. Each gets the checks of suite (lib-servers.sh); one responder
# runs with --backend in front of a small HTTP application.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-servers.sh"

# A responder runs as the web server's user, as it would in production.
as_web_user=(setpriv --reuid="$WEB_USER" --regid="$WEB_GROUP" --clear-groups --)

# wait_log NAME TEXT: until the log of NAME says TEXT (5 s at most).
wait_log() {
  local i
  for i in $(seq 1 100); do
    grep -q "$2" "$WORK/$1.log" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "$1 did not start:" >&2
  cat "$WORK/$1.log" >&2
  return 1
}

start_backend_app

# --- nginx fastcgi_pass -----------------------------------------------------
nginx_pool=$(new_pool nginx)
tcp_port=$(free_port)
app_port=$(free_port)
nginx_port=$(free_port)
mkdir -p "$WORK/nginx" "$WORK/sock"
chown "$WEB_USER" "$WORK/sock"
common=(--directory "$nginx_pool" --max-size "$MAX_SIZE")
start fcgi-tcp "${as_web_user[@]}" "$BIN" "${common[@]}" fastcgi --cors-origin "$CORS_ORIGIN" --listen "127.0.0.1:$tcp_port" --max-connections 8 --max-uploads 4 --metrics
tcp_pid=$LAST_PID
start fcgi-unix "${as_web_user[@]}" "$BIN" "${common[@]}" fastcgi --cors-origin "$CORS_ORIGIN" --listen "unix:$WORK/sock/fileupload.sock"
start fcgi-app "${as_web_user[@]}" "$BIN" "${common[@]}" fastcgi --cors-origin "$CORS_ORIGIN" --listen "127.0.0.1:$app_port" --backend "$BACKEND_URL"
limited_port=$(free_port)
start fcgi-limited "${as_web_user[@]}" "$BIN" "${common[@]}" fastcgi --cors-origin "$CORS_ORIGIN" --listen "127.0.0.1:$limited_port" \
  --max-uploads 1 --idle-timeout 2s
wait_log fcgi-tcp "listening on 127.0.0.1:$tcp_port"
wait_log fcgi-unix "listening on unix:"
wait_log fcgi-app "listening on"
wait_log fcgi-limited "listening on"

nginx_location() { # PREFIX UPSTREAM [MORE]
  cat <<EOF
        location ~ ^$1(/|\$) {
            ${3:-}
            # Without this nginx holds the whole body before passing it on,
            # and progress jumps from 0 to done.
            fastcgi_request_buffering off;
            fastcgi_split_path_info ^($1)(/.*)?\$;
            fastcgi_pass $2;
$(nginx_fastcgi_params)
        }
EOF
}
cat >"$WORK/nginx/nginx.conf" <<EOF
$(nginx_conf_head)
    client_max_body_size 0;
    # Connections kept open between requests (FCGI_KEEP_CONN).
    upstream kept {
        server 127.0.0.1:$tcp_port;
        keepalive 4;
    }
    server {
        listen 127.0.0.1:$nginx_port;
$(nginx_location /tcp "127.0.0.1:$tcp_port")
$(nginx_location /kept kept "fastcgi_keep_conn on;")
$(nginx_location /unix "unix:$WORK/sock/fileupload.sock")
$(nginx_location /app "127.0.0.1:$app_port")
$(nginx_location /limited "127.0.0.1:$limited_port")
    }
}
EOF
start nginx nginx -c "$WORK/nginx/nginx.conf"
wait_url "http://127.0.0.1:$nginx_port/"
suite nginx-fastcgi-tcp "http://127.0.0.1:$nginx_port/tcp" "$nginx_pool"
suite nginx-fastcgi-unix "http://127.0.0.1:$nginx_port/unix" "$nginx_pool"
suite nginx-fastcgi-kept "http://127.0.0.1:$nginx_port/kept" "$nginx_pool"
takeover_suite nginx-fastcgi-tcp "http://127.0.0.1:$nginx_port/tcp"
takeover_suite nginx-fastcgi-kept "http://127.0.0.1:$nginx_port/kept"
backend_suite nginx-fastcgi-backend "http://127.0.0.1:$nginx_port/app" "$nginx_pool"
grep -q 'POST /tcp/upload 201 ' "$WORK/fcgi-tcp.log" && ok || fail "no request log line in the responder's log"
# --metrics on the TCP responder alone: its counters through nginx (the
# uploads of the tcp and kept suites); the unix responder's is off.
metrics=$(curl -s "http://127.0.0.1:$nginx_port/tcp/metrics")
uploads_done=$(printf '%s\n' "$metrics" | awk '$1 == "fileupload_uploads_done_total" { print $2 }')
[ "${uploads_done:-0}" -ge 2 ] && ok || fail "FastCGI metrics: uploads done [$uploads_done]: $metrics"
check_contains "FastCGI metrics: the pool's gauges" 'fileupload_pool_buckets{state="done"}' "$metrics"
check "FastCGI metrics off without --metrics" 404 \
  "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$nginx_port/unix/metrics")"
# Uploads ran on the 4 upload workers at nice 10, lent the connection for
# the time of the upload; the threads of the connections themselves,
# which answer status, are never lowered.
check "FastCGI upload workers at nice 10" "10" "$(thread_nices "$tcp_pid" upload-)"
check "FastCGI upload workers" 4 "$(ps -L -o comm= -p "$tcp_pid" | grep -c '^upload-')"
case "$(thread_nices "$tcp_pid" connection)" in
  "" | 0) ok ;;
  *) fail "a FastCGI connection thread was lowered: $(thread_nices "$tcp_pid" connection)" ;;
esac

# With its one upload slot taken, the responder refuses another upload
# with 503 and still answers status at once.
make_big
limited="http://127.0.0.1:$nginx_port/limited"
curl -s -o /dev/null --limit-rate 2M -F "f=@$BIG" "$limited/upload?X-Progress-ID=slow" &
slow=$!
wait_for_state "$limited" slow uploading 100 || fail "the held upload did not start"
code=$(curl -s -D "$WORK/h" -o /dev/null -w '%{http_code}' -F "f=@$WORK/small.txt" "$limited/upload?X-Progress-ID=second")
check "second upload over --max-uploads" 503 "$code"
check_contains "503 Retry-After" "Retry-After: 5" "$(cat "$WORK/h")"
took=$(curl -s -o "$WORK/out" -w '%{time_total}' "$limited/upload/status?X-Progress-ID=slow")
check "status during the upload" uploading "$(jget "$(cat "$WORK/out")" 'j["state"]')"
python3 -c 'import sys; sys.exit(float(sys.argv[1]) > 1.0)' "$took" && ok || fail "status took $took s during an upload"
kill "$slow"
wait "$slow" || true

# The records no web server here sends, over a real socket to the real
# responder: GET_VALUES, an unknown management type, another role,
# ABORT_REQUEST mid-upload, and a web server that stops sending.
fcgi_client() { python3 "$TOOLS/fcgi_client.py" "$@"; }
check "GET_VALUES and UNKNOWN_TYPE" "FCGI_MAX_CONNS=8
FCGI_MAX_REQS=8
FCGI_MPXS_CONNS=0
type 11: 42" "$(fcgi_client "$tcp_port" values)"
check "another role" "type 3 id 1 protocol status 3" "$(fcgi_client "$tcp_port" role)"
check "ABORT_REQUEST answered" "type 3 id 1" "$(fcgi_client "$tcp_port" abort aborted)"
s=$(curl -s "http://127.0.0.1:$nginx_port/tcp/upload/status?X-Progress-ID=aborted")
check "aborted upload state" error "$(jget "$s" 'j["state"]')"
only_status_files "$nginx_pool/aborted" && ok || fail "stray files after ABORT_REQUEST"
# --idle-timeout 2s: the responder gives up on a silent web server.
check "stalled upload closed" "" "$(fcgi_client "$limited_port" stall stalled)"
s=$(curl -s "http://127.0.0.1:$nginx_port/limited/upload/status?X-Progress-ID=stalled")
check "stalled upload state" error "$(jget "$s" 'j["state"]')"
check "stalled upload status" 408 "$(jget "$s" 'j["status"]')"
only_status_files "$nginx_pool/stalled" && ok || fail "stray files after an idle timeout"

# A malformed record closes its connection with a log line; the responder
# serves on.
python3 - "$tcp_port" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"\x09" + b"\x00" * 15)
s.settimeout(5)
assert s.recv(100) == b"", "connection not closed"
EOF
grep -q 'FastCGI connection closed: malformed record: unsupported FastCGI version 9' "$WORK/fcgi-tcp.log" && ok ||
  fail "no log line for a malformed record"
check "responder alive after a malformed record" '{"state":"starting"}' \
  "$(curl -s "http://127.0.0.1:$nginx_port/tcp/upload/status?X-Progress-ID=after-bad")"

# --- lighttpd mod_fastcgi, spawning the binary ------------------------------
lighttpd_pool=$(new_pool lighttpd)
lighttpd_port=$(free_port)
mkdir -p "$WORK/lighttpd/tmp"
chown -R "$WEB_USER" "$WORK/lighttpd"
cat >"$WORK/lighttpd/lighttpd.conf" <<EOF
$(lighttpd_conf_head "$lighttpd_port" mod_fastcgi)
fastcgi.server = (
    "/fileupload" => ((
        # Started with no arguments and its socket on fd 0, the binary
        # acts as "fileupload fastcgi".
        "bin-path" => "$BIN",
        "socket" => "$WORK/lighttpd/fileupload.sock",
        "bin-environment" => (
            "FILEUPLOAD_DIRECTORY" => "$lighttpd_pool",
            "FILEUPLOAD_MAX_SIZE" => "$MAX_SIZE",
            "FILEUPLOAD_CORS_ORIGIN" => "$CORS_ORIGIN",
        ),
        "max-procs" => 1,
        "check-local" => "disable",
    )),
)
EOF
start lighttpd lighttpd -D -f "$WORK/lighttpd/lighttpd.conf"
wait_url "http://127.0.0.1:$lighttpd_port/"
suite lighttpd-fastcgi "http://127.0.0.1:$lighttpd_port/fileupload" "$lighttpd_pool"

# --- Apache mod_proxy_fcgi to a responder started by spawn-fcgi -------------
apache_pool=$(new_pool apache)
apache_port=$(free_port)
spawn_port=$(free_port)
start spawn-fcgi spawn-fcgi -n -a 127.0.0.1 -p "$spawn_port" -u "$WEB_USER" -g "$WEB_GROUP" -- \
  /usr/bin/env FILEUPLOAD_DIRECTORY="$apache_pool" FILEUPLOAD_MAX_SIZE="$MAX_SIZE" \
  FILEUPLOAD_CORS_ORIGIN="$CORS_ORIGIN" "$BIN" fastcgi
wait_log spawn-fcgi "listening on 127.0.0.1:$spawn_port"
mkdir -p "$WORK/apache"
cat >"$WORK/apache/httpd.conf" <<EOF
$(apache_conf_head "$apache_port" event proxy proxy_fcgi)
ProxyPass /fileupload/ fcgi://127.0.0.1:$spawn_port/
EOF
start apache apache2 -f "$WORK/apache/httpd.conf" -DFOREGROUND
wait_url "http://127.0.0.1:$apache_port/"
suite apache-proxy-fcgi "http://127.0.0.1:$apache_port/fileupload" "$apache_pool"

finish
