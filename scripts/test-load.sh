#!/usr/bin/env bash
# Load: 64 concurrent uploads of random sizes (1 KiB to 64 MiB) and 8
# clients polling status, for LOAD_SECONDS (60) each against the daemon and
# against nginx + the FastCGI responder. Zero failed requests, and every
# stored file matches what was sent. Prints the figures as table rows.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-servers.sh"

seconds=${LOAD_SECONDS:-60}
load() { python3 "$(dirname "$0")/tools/load.py" "$@" "$seconds" 64 8 11; }
echo "| front end | uploads + pollers | time | uploads | uploads/s | MB/s | status requests | status p50 | status p99 | failed |"
echo "|---|---|---|---|---|---|---|---|---|---|"

start_daemon load --directory "$WORK/daemon-pool" --max-uploads 64
load daemon "$URL" "$WORK/daemon-pool" && ok || fail "load on the daemon"

pool=$(new_pool fcgi)
fcgi_port=$(free_port)
nginx_port=$(free_port)
mkdir -p "$WORK/nginx"
start fcgi setpriv --reuid="$WEB_USER" --regid="$WEB_GROUP" --clear-groups -- \
  "$BIN" --directory "$pool" fastcgi --listen "127.0.0.1:$fcgi_port" --max-uploads 64
cat >"$WORK/nginx/nginx.conf" <<CONF
$(nginx_conf_head)
    client_max_body_size 0;
    server {
        listen 127.0.0.1:$nginx_port;
        location / {
            fastcgi_request_buffering off;
            fastcgi_pass 127.0.0.1:$fcgi_port;
            fastcgi_read_timeout 300s;
$(nginx_fastcgi_params '""' '$uri')
        }
    }
}
CONF
start nginx nginx -c "$WORK/nginx/nginx.conf"
wait_url "http://127.0.0.1:$nginx_port/upload/status?X-Progress-ID=up"
load "nginx + FastCGI" "http://127.0.0.1:$nginx_port" "$pool" && ok || fail "load on nginx + FastCGI"

finish
