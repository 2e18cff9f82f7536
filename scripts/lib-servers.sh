# Helpers of the tests under real web servers (Apache, nginx, lighttpd);
# sourced after lib.sh, not run. Servers run as normal foreground
# processes on free loopback ports, with configs in $WORK, each in a
# session of its own; stop_servers, the EXIT trap set here in place of
# lib.sh's, stops each server's process group, then runs lib.sh's cleanup.

# WEB_USER, WEB_GROUP, APACHE_MODULES and apache_conf_head.
source "$(dirname "${BASH_SOURCE[0]}")/lib-apache.sh"
chmod 755 "$WORK"

for tool in apache2 nginx lighttpd fcgiwrap spawn-fcgi curl python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool (scripts/setup installs it)" >&2; exit 1; }
done

# The upload every server gets, made once per script by the first suite.
BIG="$WORK/big.bin"
BIG_SHA=
# Larger than FILEUPLOAD_MAX_SIZE; sparse, so it costs no disk.
HUGE="$WORK/huge.bin"
truncate -s 300M "$HUGE"
MAX_SIZE=250M
# The origin of a browser page on another site that every configuration
# lists (FILEUPLOAD_CORS_ORIGIN, --cors-origin); tus_suite checks CORS with it.
CORS_ORIGIN=http://page.test:8000
printf 'hello from the app test\n' >"$WORK/small.txt"
chmod 644 "$HUGE" "$WORK/small.txt"

make_big() {
  [ -n "$BIG_SHA" ] && return 0
  head -c $((200 * 1024 * 1024)) /dev/urandom >"$BIG"
  chmod 644 "$BIG"
  BIG_SHA=$(sha256sum <"$BIG" | cut -d' ' -f1)
}

# Servers run in sessions of their own (see start); stopping one stops its
# process group, the workers it forked with it.
SERVER_PIDS=()
stop_servers() {
  local pid
  for pid in "${SERVER_PIDS[@]}"; do
    kill -- "-$pid" 2>/dev/null || true
  done
  cleanup
}
trap stop_servers EXIT

# jget TEXT EXPRESSION: like json, but a reply that is not JSON gives
# "<not JSON: …>" (and a failed check) instead of stopping the script.
jget() {
  json "$1" "$2" 2>/dev/null || echo "<not JSON: ${1:0:80}>"
}

free_port() { python3 "$TOOLS/net.py" free-port; }

# start NAME COMMAND...: runs COMMAND in the background, its output in
# $WORK/NAME.log; sets LAST_PID.
start() {
  local name=$1; shift
  # Its own session: Apache stops its workers with killpg(2), which
  # would stop this script too.
  setsid "$@" >"$WORK/$name.log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
  SERVER_PIDS+=("$LAST_PID")
}

# wait_url URL: until something answers HTTP there (5 s at most).
wait_url() {
  local i
  for i in $(seq 1 100); do
    curl -s -o /dev/null "$1" && return 0
    sleep 0.05
  done
  echo "nothing answers at $1; the logs:" >&2
  tail -n 20 "$WORK"/*.log "$WORK"/*/error.log >&2 2>/dev/null || true
  return 1
}

# nginx_conf_head: the top of an nginx.conf for a test nginx in $WORK/nginx,
# up to and inside `http {`; the caller adds its servers and the closing brace.
nginx_conf_head() {
  cat <<EOF
daemon off;
user $WEB_USER $WEB_GROUP;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    proxy_temp_path $WORK/nginx/proxy;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
EOF
}

# nginx_fastcgi_params [SCRIPT_NAME PATH_INFO]: the fastcgi_param lines of
# the request variables the program reads, for a location of an nginx.conf.
# SCRIPT_NAME and PATH_INFO default to the parts fastcgi_split_path_info
# made; give nginx expressions (with their $) for others.
nginx_fastcgi_params() {
  cat <<EOF
            fastcgi_param SCRIPT_NAME ${1:-\$fastcgi_script_name};
            fastcgi_param PATH_INFO ${2:-\$fastcgi_path_info};
            fastcgi_param REQUEST_METHOD \$request_method;
            fastcgi_param QUERY_STRING \$query_string;
            fastcgi_param CONTENT_TYPE \$content_type;
            fastcgi_param CONTENT_LENGTH \$content_length;
            fastcgi_param SERVER_PROTOCOL \$server_protocol;
            fastcgi_param REMOTE_ADDR \$remote_addr;
EOF
}

# lighttpd_conf_head PORT MODULE...: the top of a lighttpd.conf for a test
# lighttpd in $WORK/lighttpd listening on 127.0.0.1:PORT with MODULEs,
# its request bodies in $WORK/lighttpd/tmp (the caller makes it, for the
# web user); the caller adds its own settings after it.
lighttpd_conf_head() {
  local port=$1 modules
  shift
  modules=$(printf '"%s", ' "$@")
  cat <<EOF
server.modules = (${modules%, })
server.document-root = "$WORK/lighttpd"
server.bind = "127.0.0.1"
server.port = $port
server.username = "$WEB_USER"
server.groupname = "$WEB_GROUP"
server.upload-dirs = ("$WORK/lighttpd/tmp")
# Pass the body on as it arrives, so progress shows while it does.
server.stream-request-body = 2
EOF
}

# new_pool NAME: an empty pool directory the web user owns.
new_pool() {
  local dir="$WORK/$1-pool"
  mkdir -p "$dir"
  chown "$WEB_USER:$WEB_GROUP" "$dir"
  chmod 700 "$dir"
  echo "$dir"
}

# The tiny CGI application of the --exec tests: for a description (JSON
# on stdin) it proves it can read the file at the path it was given;
# anything else it echoes.
APP="$WORK/app.sh"
cat >"$APP" <<'EOF'
#!/bin/sh
if [ "$CONTENT_TYPE" = application/json ]; then
  desc=$(cat)
  path=$(printf '%s' "$desc" | python3 -c 'import json, sys; print(json.load(sys.stdin)["files"][0]["path"])')
  sha=$(sha256sum <"$path" | cut -d' ' -f1)
  printf 'Status: 200 OK\r\nContent-Type: application/json\r\nX-App-Sha256: %s\r\nX-App-Length: %s\r\n\r\n' "$sha" "$CONTENT_LENGTH"
  printf '%s' "$desc"
else
  printf 'Status: 202 Accepted\r\nContent-Type: text/plain\r\n\r\n'
  printf 'passthrough %s %s\n' "$REQUEST_METHOD" "$QUERY_STRING"
  cat
fi
EOF
chmod 755 "$APP"

# only_status_files DIR: the bucket holds its lock and status, nothing else.
only_status_files() {
  [ -z "$(ls -A "$1" | grep -v -e '^lock$' -e '^status.json$')" ]
}

# suite NAME URL POOL: the checks every front end passes behind a real
# server. URL is the base that ends before /upload.
suite() {
  local name=$1 url=$2 pool=$3
  local id="big-$name" code body s state received last=-1 rising=0 polls=0
  make_big
  local started=$SECONDS

  # A 200 MiB upload, with status polled by another client while it runs.
  curl -s -o "$WORK/$name.body" -w '%{http_code}' --limit-rate 40M \
    -F "f=@$BIG;type=application/octet-stream" "$url/upload?X-Progress-ID=$id" >"$WORK/$name.code" &
  local upload=$!
  while kill -0 "$upload" 2>/dev/null; do
    s=$(curl -s "$url/upload/status?X-Progress-ID=$id")
    polls=$((polls + 1))
    # One interpreter start per poll: a loaded machine still polls often.
    read -r state received <<<"$(jget "$s" 'j["state"] + " " + str(j.get("received", -1))')"
    if [ "$state" == uploading ]; then
      [[ "$received" =~ ^[0-9]+$ ]] || received=$last
      if [ "$received" -gt "$last" ] && [ "$last" -ge 0 ]; then rising=$((rising + 1)); fi
      if [ "$received" -lt "$last" ]; then fail "$name: received went backwards ($last → $received)"; fi
      last=$received
    fi
    sleep 0.2
  done
  wait "$upload" || true
  local upload_s=$((SECONDS - started))
  code=$(cat "$WORK/$name.code"); body=$(cat "$WORK/$name.body")
  check "$name: upload status" 201 "$code"
  check "$name: upload state" done "$(jget "$body" 'j["state"]')"
  check "$name: sha256 in the description" "$BIG_SHA" "$(jget "$body" 'j["files"][0]["sha256"]')"
  check "$name: length" $((200 * 1024 * 1024)) "$(jget "$body" 'j["files"][0]["length"]')"
  check "$name: no path to the browser" False "$(jget "$body" 'str("path" in j["files"][0])')"
  cmp -s "$BIG" "$pool/$id/0" && ok || fail "$name: stored file differs from the upload"
  # Two polls that saw it uploading, the second more than the first.
  [ "$rising" -ge 1 ] && ok || fail "$name: received rose $rising times in $polls polls before done"
  s=$(curl -s "$url/upload/status?X-Progress-ID=$id")
  check "$name: status after" done "$(jget "$s" 'j["state"]')"

  # Clear.
  check "$name: clear" '{"success":true}' "$(curl -s "$url/upload?X-Progress-ID=$id&clear")"
  [ ! -e "$pool/$id" ] && ok || fail "$name: bucket left after clear"
  check "$name: cleared status" '{"state":"starting"}' "$(curl -s "$url/upload/status?X-Progress-ID=$id")"

  # The health check, translated like every other route; no probe left.
  check "$name: healthz" '{"healthy":true}' "$(curl -s "$url/healthz")"
  check "$name: no probe left" "" "$(find "$pool" -maxdepth 1 -name '.probe-*')"

  # Over the size limit: 413, recorded for a polling client.
  local t=$SECONDS
  code=$(curl -s -o "$WORK/$name.body" -w '%{http_code}' -F "f=@$HUGE" "$url/upload?X-Progress-ID=huge-$name" || true)
  check "$name: oversize" 413 "$code"
  s=$(curl -s "$url/upload/status?X-Progress-ID=huge-$name")
  check "$name: oversize recorded" 413 "$(jget "$s" 'j.get("status")')"

  local oversize_s=$((SECONDS - t))
  # A client that goes away mid-upload: state error, no stray file.
  t=$SECONDS
  curl -s -o /dev/null --limit-rate 10M --max-time 2 -F "f=@$BIG" "$url/upload?X-Progress-ID=gone-$name" || true
  local i
  state=none
  for i in $(seq 1 100); do
    state=$(jget "$(curl -s "$url/upload/status?X-Progress-ID=gone-$name")" 'j["state"]')
    [ "$state" == error ] && break
    sleep 0.1
  done
  local gone_s=$((SECONDS - t))
  check "$name: disconnect ends in error" error "$state"
  if [ -d "$pool/gone-$name" ] && only_status_files "$pool/gone-$name"; then ok; else
    fail "$name: stray files after a disconnect: $(ls -A "$pool/gone-$name" 2>&1 | tr '\n' ' ')"
  fi

  # Routing, wherever the program is mounted.
  code=$(curl -s -o /dev/null -w '%{http_code}' "$url/nowhere")
  check "$name: other path" 404 "$code"
  code=$(curl -s -o "$WORK/$name.body" -w '%{http_code}' "$url/upload/status?X-Progress-ID=../x")
  check "$name: invalid identifier" 400 "$code"
  tus_suite "$name" "$url" "$pool"
  echo "$name: $((SECONDS - started)) s (upload $upload_s s, $polls polls, oversize $oversize_s s, disconnect $gone_s s)"
}

# field FILE NAME: the value of header NAME in the answer head saved in FILE.
field() {
  tr -d '\r' <"$1" | sed -n "s/^$2: //Ip" | head -n 1
}

# located FILE: the upload ID at the end of the Location in the answer head
# saved in FILE.
located() {
  local location
  location=$(field "$1" Location)
  echo "${location##*/}"
}

# tus_curl NAME ARGS…: curl with Tus-Resumable, the answer's head saved in
# $WORK/NAME.tus.h; prints the status code.
tus_curl() {
  local name=$1
  shift
  curl -s -o /dev/null -D "$WORK/$name.tus.h" -w '%{http_code}' -H 'Tus-Resumable: 1.0.0' "$@"
}

# tus_suite NAME URL POOL: the tus protocol through this front end (tests/tus.rs
# has every row against the daemon): OPTIONS, a creation with metadata, the
# bytes in two PATCHes (the second a POST with X-HTTP-Method-Override), HEAD
# between them (with Upload-Expires), the status and the stored bytes, then
# termination; then concatenation: the two pieces as partial uploads, a
# final upload naming one by its absolute URL and one by its path, its
# sha256 and bytes, and a PATCH on it refused; and CORS for a page on
# $CORS_ORIGIN (tests/cors.rs has every row): a preflight and an actual
# request with Origin, which reaches the core as HTTP_ORIGIN.
tus_suite() {
  local name=$1 url=$2 pool=$3 code id size first=$((1024 * 1024)) s p1 p2 final rest upath sha
  local file="$WORK/tus.bin" h="$WORK/$name.tus.h"
  local stream=(-H 'Content-Type: application/offset+octet-stream')
  if [ ! -f "$file" ]; then
    head -c $((3 * 1024 * 1024 + 5)) /dev/urandom >"$file"
    head -c "$first" "$file" >"$WORK/tus.1"
    tail -c +$((first + 1)) "$file" >"$WORK/tus.2"
  fi
  size=$(stat -c %s "$file")
  code=$(curl -s -o /dev/null -D "$h" -w '%{http_code}' -X OPTIONS "$url/files")
  check "$name: tus OPTIONS" 204 "$code"
  check "$name: tus Tus-Version" 1.0.0 "$(field "$h" Tus-Version)"
  # With its length 0 stated, as browsers send a POST without a body:
  # lighttpd answers 411 to a POST without Content-Length.
  code=$(tus_curl "$name" -X POST -H 'Content-Length: 0' -H "Upload-Length: $size" -H 'Upload-Metadata: filename dHVzLmJpbg==' "$url/files")
  check "$name: tus creation" 201 "$code"
  id=$(located "$h")
  code=$(tus_curl "$name" -X PATCH -H 'Upload-Offset: 0' "${stream[@]}" --data-binary "@$WORK/tus.1" "$url/files/$id")
  check "$name: tus first PATCH" "204 $first" "$code $(field "$h" Upload-Offset)"
  code=$(tus_curl "$name" -I "$url/files/$id")
  check "$name: tus HEAD" "200 $first $size" "$code $(field "$h" Upload-Offset) $(field "$h" Upload-Length)"
  date -d "$(field "$h" Upload-Expires)" +%s >/dev/null 2>&1 && ok || fail "$name: tus HEAD without an Upload-Expires date"
  code=$(curl -s -o /dev/null -D "$h" -w '%{http_code}' -X OPTIONS -H "Origin: $CORS_ORIGIN" \
    -H 'Access-Control-Request-Method: PATCH' -H 'Access-Control-Request-Headers: tus-resumable,upload-offset' \
    "$url/files/$id")
  check "$name: CORS preflight" "204 $CORS_ORIGIN Origin 86400" \
    "$code $(field "$h" Access-Control-Allow-Origin) $(field "$h" Vary) $(field "$h" Access-Control-Max-Age)"
  check "$name: CORS preflight methods" "POST, GET, HEAD, PATCH, DELETE, OPTIONS" \
    "$(field "$h" Access-Control-Allow-Methods)"
  check_contains "$name: CORS preflight headers" 'Upload-Offset, Tus-Resumable' \
    "$(field "$h" Access-Control-Allow-Headers)"
  code=$(tus_curl "$name" -I -H "Origin: $CORS_ORIGIN" "$url/files/$id")
  check "$name: CORS HEAD" "200 $first $CORS_ORIGIN" "$code $(field "$h" Upload-Offset) $(field "$h" Access-Control-Allow-Origin)"
  check_contains "$name: CORS exposed headers" 'Upload-Offset, Location, Upload-Length, Tus-Version' \
    "$(field "$h" Access-Control-Expose-Headers)"
  code=$(curl -s -o /dev/null -D "$h" -w '%{http_code}' -X OPTIONS -H 'Origin: http://other.test' \
    -H 'Access-Control-Request-Method: PATCH' "$url/files/$id")
  check "$name: CORS preflight, origin not listed" "204 1.0.0" "$code $(field "$h" Tus-Version)"
  if grep -qi '^access-control-' "$h"; then fail "$name: CORS headers for an origin not listed"; else ok; fi
  s=$(curl -s "$url/upload/status?X-Progress-ID=$id")
  check "$name: tus status between PATCHes" "uploading $first" "$(jget "$s" 'j["state"] + " " + str(j["received"])')"
  code=$(tus_curl "$name" -X POST -H 'X-HTTP-Method-Override: PATCH' -H "Upload-Offset: $first" "${stream[@]}" \
    --data-binary "@$WORK/tus.2" "$url/files/$id")
  check "$name: tus second PATCH, overridden" "204 $size" "$code $(field "$h" Upload-Offset)"
  s=$(curl -s "$url/upload/status?X-Progress-ID=$id")
  check "$name: tus done" "done tus.bin $(sha256sum <"$file" | cut -d' ' -f1)" \
    "$(jget "$s" 'j["state"] + " " + j["filename"] + " " + j["files"][0]["sha256"]')"
  cmp -s "$file" "$pool/$id/0" && ok || fail "$name: tus stored file differs"
  code=$(tus_curl "$name" -X DELETE "$url/files/$id")
  check "$name: tus termination" 204 "$code"
  code=$(tus_curl "$name" -I "$url/files/$id")
  check "$name: tus HEAD after termination" 404 "$code"
  [ ! -e "$pool/$id" ] && ok || fail "$name: tus bucket left after termination"

  code=$(tus_curl "$name" -X POST -H 'Upload-Concat: partial' -H "Upload-Length: $first" "${stream[@]}" \
    --data-binary "@$WORK/tus.1" "$url/files")
  check "$name: tus partial upload" "201 $first" "$code $(field "$h" Upload-Offset)"
  p1=$(located "$h")
  code=$(tus_curl "$name" -X POST -H 'Content-Length: 0' -H 'Upload-Concat: partial' \
    -H "Upload-Length: $((size - first))" "$url/files")
  check "$name: tus second partial upload" 201 "$code"
  p2=$(located "$h")
  code=$(tus_curl "$name" -X PATCH -H 'Upload-Offset: 0' "${stream[@]}" --data-binary "@$WORK/tus.2" "$url/files/$p2")
  check "$name: tus partial upload's PATCH" "204 $((size - first))" "$code $(field "$h" Upload-Offset)"
  code=$(tus_curl "$name" -I "$url/files/$p2")
  check "$name: tus HEAD of a partial upload" "200 partial" "$code $(field "$h" Upload-Concat)"
  # The second by its path, as a client given a relative Location sends it.
  rest=${url#*://}
  upath=""
  [[ $rest == */* ]] && upath="/${rest#*/}"
  code=$(tus_curl "$name" -X POST -H 'Content-Length: 0' -H 'Upload-Metadata: filename am9pbmVkLmJpbg==' \
    -H "Upload-Concat: final;$url/files/$p1 $upath/files/$p2" "$url/files")
  check "$name: tus final upload" "201 $size" "$code $(field "$h" Upload-Offset)"
  final=$(located "$h")
  sha=$(sha256sum <"$file" | cut -d' ' -f1)
  s=$(curl -s "$url/upload/status?X-Progress-ID=$final")
  check "$name: tus final upload done" "done joined.bin $sha" \
    "$(jget "$s" 'j["state"] + " " + j["filename"] + " " + j["files"][0]["sha256"]')"
  cmp -s "$file" "$pool/$final/0" && ok || fail "$name: tus final upload's file differs"
  code=$(tus_curl "$name" -I "$url/files/$final")
  check "$name: tus HEAD of the final upload" "200 $size final;$url/files/$p1 $upath/files/$p2" \
    "$code $(field "$h" Upload-Length) $(field "$h" Upload-Concat)"
  code=$(tus_curl "$name" -X PATCH -H "Upload-Offset: $size" "${stream[@]}" --data-binary x "$url/files/$final")
  check "$name: tus PATCH on the final upload" 403 "$code"
}

# takeover_suite NAME URL: a PATCH whose client goes silent mid-body (curl
# streaming from a FIFO that is held open; its length declared, so neither
# chunked nor Expect), then a resume from a new
# connection: the writer is woken and saves what it has, and the resume is
# answered 409 (its offset is the old one) within 5 s; HEAD gives the saved
# offset and a resume from it completes the upload. For a front end whose
# reads can be woken (the FastCGI responder behind a web server that
# streams the body); tests/tus.rs has the daemon's.
takeover_suite() {
  local name=$1 url=$2 id code started s held fifo="$WORK/$1.fifo" h="$WORK/$1.tus.h"
  local file="$WORK/$name.takeover.bin"
  local stream=(-H 'Content-Type: application/offset+octet-stream')
  head -c 100 /dev/urandom >"$file"
  code=$(tus_curl "$name" -X POST -H 'Content-Length: 0' -H 'Upload-Length: 100' "$url/files")
  check "$name: takeover creation" 201 "$code"
  id=$(field "$h" Location)
  id=${id##*/}
  mkfifo "$fifo"
  curl -s -o /dev/null -w '%{http_code}' -X PATCH -H 'Tus-Resumable: 1.0.0' -H 'Upload-Offset: 0' \
    "${stream[@]}" -H 'Content-Length: 100' -H 'Transfer-Encoding:' -H 'Expect:' -T "$fifo" "$url/files/$id" >"$WORK/$name.held" &
  held=$!
  PIDS+=("$held")
  exec 7>"$fifo"
  head -c 40 "$file" >&7
  # Progress is published once 250 ms have passed, at the next bytes.
  sleep 0.3
  head -c 41 "$file" | tail -c 1 >&7
  for _ in $(seq 1 100); do
    s=$(curl -s "$url/upload/status?X-Progress-ID=$id")
    [ "$(jget "$s" 'j.get("received")')" = 41 ] && break
    sleep 0.05
  done
  check "$name: takeover, the held PATCH's progress" 41 "$(jget "$s" 'j.get("received")')"
  started=$(date +%s%N)
  code=$(tus_curl "$name" -X PATCH -H 'Upload-Offset: 0' "${stream[@]}" --data-binary 'x' "$url/files/$id")
  check "$name: takeover, a resume at the old offset" 409 "$code"
  [ $((($(date +%s%N) - started) / 1000000)) -lt 5000 ] && ok || fail "$name: takeover took 5 s or more"
  code=$(tus_curl "$name" -I "$url/files/$id")
  check "$name: takeover, HEAD gives the saved offset" "200 41" "$code $(field "$h" Upload-Offset)"
  exec 7>&-
  kill "$held" 2>/dev/null || true
  wait "$held" 2>/dev/null || true
  tail -c +42 "$file" >"$WORK/$name.rest"
  code=$(tus_curl "$name" -X PATCH -H 'Upload-Offset: 41' "${stream[@]}" --data-binary "@$WORK/$name.rest" "$url/files/$id")
  check "$name: takeover, the resume from the saved offset" "204 100" "$code $(field "$h" Upload-Offset)"
  s=$(curl -s "$url/upload/status?X-Progress-ID=$id")
  check "$name: takeover, done" "done $(sha256sum <"$file" | cut -d' ' -f1)" \
    "$(jget "$s" 'j["state"] + " " + j["files"][0]["sha256"]')"
}

# exec_suite NAME URL POOL: URL runs the program with --exec $APP.
exec_suite() {
  local name=$1 url=$2 pool=$3 body
  body=$(curl -s -D "$WORK/$name.h" -F "f=@$WORK/small.txt" "$url/upload?X-Progress-ID=exec-$name")
  check "$name: the app answered" "200" "$(head -n 1 "$WORK/$name.h" | cut -d' ' -f2)"
  local path
  path=$(jget "$body" 'j["files"][0]["path"]')
  check "$name: path in the description" "$pool/exec-$name/0" "$path"
  check "$name: the app read the file at the path" "$(sha256sum <"$WORK/small.txt" | cut -d' ' -f1)" \
    "$(tr -d '\r' <"$WORK/$name.h" | sed -n 's/^X-App-Sha256: //Ip')"
  check "$name: CONTENT_LENGTH of the description" "${#body}" "$(tr -d '\r' <"$WORK/$name.h" | sed -n 's/^X-App-Length: //Ip')"
  check "$name: description state" done "$(jget "$body" 'j["state"]')"
  # Status is still ours; other requests are the app's, body and all.
  check "$name: status not passed" done "$(jget "$(curl -s "$url/upload/status?X-Progress-ID=exec-$name")" 'j["state"]')"
  body=$(curl -s -w '%{http_code}' -d 'a=1&b=2' "$url/other?q=1")
  check "$name: passthrough" "passthrough POST q=1
a=1&b=2202" "$body"
}

# The tiny HTTP application of the --backend tests: for a description it
# reads the file at the path it was given and answers what it received;
# anything else it describes (length and sha256 of the body). /redirect
# answers 303, which must reach the client, not be followed.
BACKEND_APP="$WORK/backend.py"
cat >"$BACKEND_APP" <<'EOF'
import hashlib, json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class App(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Type") == "application/json":
            d = json.loads(body)
            with open(d["files"][0]["path"], "rb") as f:
                sha = hashlib.sha256(f.read()).hexdigest()
            reply = {"description": d, "file_sha256": sha,
                     "progress_id": self.headers.get("X-Progress-ID"),
                     "cookie": self.headers.get("Cookie"),
                     "authorization": self.headers.get("Authorization"),
                     "forwarded_for": self.headers.get("X-Forwarded-For"),
                     "other": self.headers.get("X-Other")}
        else:
            reply = {"unchanged": True, "content_type": self.headers.get("Content-Type"),
                     "length": len(body), "sha256": hashlib.sha256(body).hexdigest()}
        out = json.dumps(reply).encode()
        self.send_response(303 if self.path.endswith("/redirect") else 200)
        if self.path.endswith("/redirect"):
            self.send_header("Location", "/thanks")
        self.send_header("Content-Type", "application/json")
        self.send_header("Set-Cookie", "seen=1")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), App).serve_forever()
EOF

# start_backend_app: sets BACKEND_URL to a running app.
start_backend_app() {
  local port
  port=$(free_port)
  start backend-app python3 "$BACKEND_APP" "$port"
  wait_url "http://127.0.0.1:$port/"
  BACKEND_URL="http://127.0.0.1:$port/app"
}

# backend_suite NAME URL POOL: URL's program runs with --backend $BACKEND_URL.
backend_suite() {
  local name=$1 url=$2 pool=$3 body
  local id="backend-$name"
  body=$(curl -s -D "$WORK/$name.h" -H 'Cookie: a=b' -H 'X-Forwarded-For: 10.9.8.7' -H 'Authorization: Bearer t0k' -H 'X-Other: o' \
    -F "f=@$WORK/small.txt" "$url/upload?X-Progress-ID=$id")
  check "$name: the app's status" 200 "$(head -n 1 "$WORK/$name.h" | cut -d' ' -f2)"
  # Header names arrive in lower case through the HTTP client.
  check_contains "$name: the app's headers" "set-cookie: seen=1" "$(tr A-Z a-z <"$WORK/$name.h")"
  check "$name: path in the description" "$pool/$id/0" "$(jget "$body" 'j["description"]["files"][0]["path"]')"
  check "$name: the app read the file" "$(sha256sum <"$WORK/small.txt" | cut -d' ' -f1)" "$(jget "$body" 'j["file_sha256"]')"
  check "$name: X-Progress-ID" "$id" "$(jget "$body" 'j["progress_id"]')"
  check "$name: Cookie passed on" "a=b" "$(jget "$body" 'j["cookie"]')"
  check "$name: X-Forwarded-For passed on" "10.9.8.7" "$(jget "$body" 'j["forwarded_for"]')"
  check "$name: Authorization passed on" "Bearer t0k" "$(jget "$body" 'j["authorization"]')"
  check "$name: nothing else passed on" null "$(jget "$body" 'j["other"]')"
  check "$name: status is still ours" done "$(jget "$(curl -s "$url/upload/status?X-Progress-ID=$id")" 'j["state"]')"
}
