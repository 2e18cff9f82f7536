#!/usr/bin/env bash
# The tus server proven with clients nobody here wrote (tests/tus-clients/):
# tus-js-client under Node (an upload interrupted mid-PATCH and resumed by
# findPreviousUploads, alone and as four parallel partial uploads;
# uploadDataDuringCreation; uploadLengthDeferred),
# tuspy (checksums, stop_at and a resume, a wrong checksum refused with
# 460), and tus-js-client's browser build in Chromium (throttled, offline
# mid-upload, resumed) on the demo's resumable page. Each on three front ends: the daemon; the FastCGI
# responder under nginx; the CGI program under Apache (one process per
# request).
#
# How an upload is interrupted: the daemon and the FastCGI responder are
# killed with SIGKILL mid-PATCH and restarted on the same pool and port by
# the test (which starts them itself, from TUS_SERVER); under CGI the
# client aborts its PATCH, and Apache ends that request's CGI process.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-servers.sh"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TESTS="$ROOT/tests/tus-clients"
PYTHON="$TESTS/.venv/bin/python"


# scripts/setup installs the clients; a run of this suite alone does it here.
if [ ! -x "$PYTHON" ] || [ ! -d "$TESTS/node_modules/tus-js-client" ] ||
  [ ! -d "$ROOT/tests/browser/node_modules/playwright-core" ] || [ ! -x /usr/bin/chromium ]; then
  "$ROOT/scripts/setup"
fi

# The demo's resumable page, which the daemon serves at /resumable: for
# the other front ends the web server serves the same files (the page's
# URLs are relative: demo/… beside it). The tus-js-client build the demo
# serves is the one the lock file installs.
check "the demo's tus-js-client is npm's build" \
  "$(sha256sum < "$TESTS/node_modules/tus-js-client/dist/tus.min.js")" \
  "$(sha256sum < "$ROOT/assets/demo/vendor/tus.min.js")"
mkdir -p "$WORK/page/demo" "$WORK/nginx"
cp "$ROOT/assets/demo/resumable.html" "$WORK/page/"
cp "$ROOT/assets/demo/"{demo.css,icon.svg,common.js,resumable.js} "$ROOT/assets/demo/vendor/tus.min.js" "$WORK/page/demo/"
chmod 755 "$WORK/page" "$WORK/page/demo"
chmod 644 "$WORK/page/resumable.html" "$WORK/page/demo"/*

as_web_user=(setpriv --reuid="$WEB_USER" --regid="$WEB_GROUP" --clear-groups --)
daemon_pool=$(new_pool daemon)
fcgi_pool=$(new_pool fcgi)
cgi_pool=$(new_pool cgi)
daemon_port=$(free_port)
fcgi_port=$(free_port)
nginx_port=$(free_port)
apache_port=$(free_port)
daemon=("${as_web_user[@]}" "$BIN" --directory "$daemon_pool" serve --listen "127.0.0.1:$daemon_port")
responder=("${as_web_user[@]}" "$BIN" --directory "$fcgi_pool" fastcgi --listen "127.0.0.1:$fcgi_port")

# nginx: the page, and in front of the daemon (/daemon/) and the FastCGI
# responder (/fcgi), bodies passed on as they arrive.
cat >"$WORK/nginx/nginx.conf" <<EOF
$(nginx_conf_head)
    client_max_body_size 0;
    server {
        listen 127.0.0.1:$nginx_port;
        location /tus-page/ {
            alias $WORK/page/;
        }
        location /daemon/ {
            proxy_pass http://127.0.0.1:$daemon_port/;
            proxy_request_buffering off;
            proxy_http_version 1.1;
        }
        location ~ ^/fcgi(/|\$) {
            fastcgi_request_buffering off;
            fastcgi_split_path_info ^(/fcgi)(/.*)?\$;
            fastcgi_pass 127.0.0.1:$fcgi_port;
$(nginx_fastcgi_params)
        }
    }
}
EOF
start nginx nginx -c "$WORK/nginx/nginx.conf"

# Apache: the CGI program, and the page.
mkdir -p "$WORK/apache"
cat >"$WORK/apache/httpd.conf" <<EOF
$(apache_conf_head "$apache_port" prefork alias env cgi mime)
TypesConfig /etc/mime.types
ScriptAlias /cgi-bin/fileupload "$BIN"
<Location /cgi-bin/fileupload>
    SetEnv FILEUPLOAD_DIRECTORY "$cgi_pool"
</Location>
Alias /tus-page "$WORK/page"
# The CGI program writes no request log (the web server's is the log):
# Apache's, in the daemon's format, with the bytes it received (%I, mod_logio:
# the request's head included) in place of the body bytes.
LogFormat "%{%Y-%m-%dT%H:%M:%SZ}t apache %m %U %>s %I %Ts -" tus
CustomLog "$WORK/apache/access.log" tus
EOF
start apache apache2 -f "$WORK/apache/httpd.conf" -DFOREGROUND
wait_url "http://127.0.0.1:$nginx_port/tus-page/resumable.html"
wait_url "http://127.0.0.1:$apache_port/tus-page/resumable.html"

# node_tests FRONT ENDPOINT POOL INTERRUPT SERVER_JSON FILE...: tus-js-client
# tests under node's test runner; one check each run.
node_tests() {
  local name=$1 endpoint=$2 pool=$3 interrupt=$4 server=$5
  shift 5
  local files=() f node_pid status=0
  for f in "$@"; do files+=("$TESTS/$f"); done
  # In a session of its own, whose process group is stopped once node has
  # ended (and by the trap): a server a test restarted is node's child, and
  # a test cut off by its timeout does not stop it.
  TUS_FRONT=$name TUS_ENDPOINT=$endpoint TUS_POOL=$pool TUS_INTERRUPT=$interrupt TUS_SERVER=$server \
    TUS_PAGE="${PAGE:-}" TUS_SERVER_LOG="${SERVER_LOG:-}" FILEUPLOAD_BIN="$BIN" \
    setsid node --test --test-concurrency=1 --test-timeout=300000 "${files[@]}" &
  node_pid=$!
  SERVER_PIDS+=("$node_pid")
  wait "$node_pid" || status=$?
  kill -- "-$node_pid" 2>/dev/null || true
  if [ "$status" -eq 0 ]; then
    ok
  else
    fail "$name: tus-js-client tests $* (exit $status)"
  fi
}

# tuspy_tests FRONT ENDPOINT POOL: tuspy's tests (unittest); one check.
tuspy_tests() {
  # tuspy leaves files open (ResourceWarning): its matter, not ours.
  if TUS_FRONT=$1 TUS_ENDPOINT=$2 TUS_POOL=$3 FILEUPLOAD_BIN="$BIN" \
    "$PYTHON" -W ignore::ResourceWarning "$TESTS/tuspy_test.py"; then
    ok
  else
    fail "$1: tuspy tests"
  fi
}

# json_array WORD...: the words as a JSON array (a command for the tests).
json_array() { python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@"; }

# wait_listening NAME: until the server started as NAME says it listens.
wait_listening() {
  local i
  for i in $(seq 1 100); do
    grep -q 'listening on' "$WORK/$1.log" && return 0
    sleep 0.05
  done
  echo "$1 did not start:" >&2
  cat "$WORK/$1.log" >&2
  return 1
}

# --- the daemon ----------------------------------------------------------------
started=$SECONDS
node_tests daemon "http://127.0.0.1:$daemon_port" "$daemon_pool" kill "$(json_array "${daemon[@]}")" \
  resume.test.mjs creation.test.mjs parallel.test.mjs
start daemon "${daemon[@]}"
daemon_pid=$LAST_PID
wait_listening daemon
tuspy_tests daemon "http://127.0.0.1:$daemon_port" "$daemon_pool"
# The page as the daemon's demo serves it, through nginx.
PAGE="http://127.0.0.1:$nginx_port/daemon/resumable?endpoint=files" \
  SERVER_LOG="$WORK/daemon.log" node_tests daemon "http://127.0.0.1:$daemon_port" "$daemon_pool" none '' browser.test.mjs
kill "$daemon_pid"
echo "daemon: $((SECONDS - started)) s"

# --- the FastCGI responder under nginx ---------------------------------------------
started=$SECONDS
node_tests nginx-fastcgi "http://127.0.0.1:$nginx_port/fcgi" "$fcgi_pool" kill "$(json_array "${responder[@]}")" \
  resume.test.mjs creation.test.mjs parallel.test.mjs
start fcgi "${responder[@]}"
fcgi_pid=$LAST_PID
wait_listening fcgi
tuspy_tests nginx-fastcgi "http://127.0.0.1:$nginx_port/fcgi" "$fcgi_pool"
PAGE="http://127.0.0.1:$nginx_port/tus-page/resumable.html?endpoint=/fcgi/files&status=/fcgi/upload/status" \
  SERVER_LOG="$WORK/fcgi.log" node_tests nginx-fastcgi "http://127.0.0.1:$nginx_port/fcgi" "$fcgi_pool" none '' browser.test.mjs
kill "$fcgi_pid"
echo "nginx-fastcgi: $((SECONDS - started)) s"

# --- the CGI program under Apache ----------------------------------------------------
started=$SECONDS
cgi="http://127.0.0.1:$apache_port/cgi-bin/fileupload"
node_tests apache-cgi "$cgi" "$cgi_pool" abort '' resume.test.mjs creation.test.mjs parallel.test.mjs
tuspy_tests apache-cgi "$cgi" "$cgi_pool"
PAGE="http://127.0.0.1:$apache_port/tus-page/resumable.html?endpoint=/cgi-bin/fileupload/files&status=/cgi-bin/fileupload/upload/status" \
  SERVER_LOG="$WORK/apache/access.log" node_tests apache-cgi "$cgi" "$cgi_pool" none '' browser.test.mjs
echo "apache-cgi: $((SECONDS - started)) s"

finish
