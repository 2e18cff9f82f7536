#!/usr/bin/env bash
# --backend: the description POSTed to an HTTP application whose answer
# reaches the client, from the daemon and from the CGI program; 502 with
# the upload kept when the application is down; --upload-url handing the
# upload itself over unchanged (to --backend and to --exec).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-servers.sh"

start_backend_app
pool="$WORK/pool"
closed_port=$(free_port) # nothing listens there

# The daemon in front of the application.
export FILEUPLOAD_BACKEND="$BACKEND_URL"
start_daemon backend --directory "$pool"
backend_suite daemon "$URL" "$pool"
grep -q 'POST /upload 200 .* backend-daemon$' "$WORK/backend.log" && ok || fail "no log line with the app's status"

# A redirect from the application is the client's to follow.
export FILEUPLOAD_BACKEND="${BACKEND_URL%/app}/redirect"
start_daemon redirect --directory "$pool"
code=$(curl -s -D "$WORK/h" -o /dev/null -w '%{http_code}' -F "f=@$WORK/small.txt" "$URL/upload?X-Progress-ID=redirected")
check "redirect relayed" 303 "$code"
check_contains "redirect location" "location: /thanks" "$(tr A-Z a-z <"$WORK/h")"

# The application is down: 502, and the upload stays done for a retry.
export FILEUPLOAD_BACKEND="http://127.0.0.1:$closed_port/app"
start_daemon down --directory "$pool"
code=$(curl -s -o "$WORK/out" -w '%{http_code}' -F "f=@$WORK/small.txt" "$URL/upload?X-Progress-ID=app-down")
check "application down" 502 "$code"
check "502 body" 502 "$(jget "$(cat "$WORK/out")" 'j["status"]')"
[[ "$(cat "$WORK/out")" != *"$closed_port"* ]] && ok || fail "the 502 names the application's address: $(cat "$WORK/out")"
check_contains "why, in the log" "the application at http://127.0.0.1:$closed_port/app failed" "$(cat "$WORK/down.log")"
check "upload kept" done "$(jget "$("$BIN" --directory "$pool" status app-down)" 'j["state"]')"
cmp -s "$WORK/small.txt" "$("$BIN" --directory "$pool" path app-down)" && ok || fail "file of app-down"
unset FILEUPLOAD_BACKEND

# --upload-url: this instance takes no uploads; they go to the
# application as they came.
printf -- '--XX\r\nContent-Disposition: form-data; name="f"; filename="a.txt"\r\n\r\nhello\r\n--XX--\r\n' >"$WORK/form"
form_sha=$(sha256sum <"$WORK/form" | cut -d' ' -f1)
export FILEUPLOAD_BACKEND="$BACKEND_URL"
start_daemon elsewhere --directory "$pool" --upload-url http://uploads.invalid/
body=$(curl -s -H 'Content-Type: multipart/form-data; boundary=XX' --data-binary @"$WORK/form" "$URL/upload?X-Progress-ID=not-here")
check "upload passed on unchanged" true "$(jget "$body" 'j["unchanged"]')"
check "body passed on unchanged" "$form_sha" "$(jget "$body" 'j["sha256"]')"
check "content type passed on" "multipart/form-data; boundary=XX" "$(jget "$body" 'j["content_type"]')"
[ ! -e "$pool/not-here" ] && ok || fail "an upload was taken despite --upload-url"
unset FILEUPLOAD_BACKEND
start_daemon elsewhere-alone --directory "$pool" --upload-url http://uploads.invalid/
code=$(curl -s -o /dev/null -w '%{http_code}' -F "f=@$WORK/small.txt" "$URL/upload")
check "--upload-url without an application" 404 "$code"

# The CGI program, started as a web server starts it.
cgi() {
  env -i PATH="$PATH" GATEWAY_INTERFACE=CGI/1.1 SERVER_PROTOCOL=HTTP/1.1 SCRIPT_NAME=/cgi-bin/fileupload \
    FILEUPLOAD_DIRECTORY="$pool" "$@"
}
len=$(stat -c %s "$WORK/form")
# HTTP_PROXY is the client's Proxy: header under CGI (httpoxy): ignored.
out=$(cgi REQUEST_METHOD=POST PATH_INFO=/upload QUERY_STRING=X-Progress-ID=cgi-backend \
  CONTENT_TYPE='multipart/form-data; boundary=XX' CONTENT_LENGTH="$len" HTTP_COOKIE=c=d \
  HTTP_PROXY="http://127.0.0.1:$closed_port" FILEUPLOAD_BACKEND="$BACKEND_URL" "$BIN" <"$WORK/form")
check_contains "cgi --backend status" "Status: 200 OK" "$out"
body=${out#*$'\r\n\r\n'}
check "cgi --backend path" "$pool/cgi-backend/0" "$(jget "$body" 'j["description"]["files"][0]["path"]')"
check "cgi --backend cookie" "c=d" "$(jget "$body" 'j["cookie"]')"
# --exec with --upload-url: the upload goes to the program, body and all.
out=$(cgi REQUEST_METHOD=POST PATH_INFO=/upload CONTENT_TYPE='multipart/form-data; boundary=XX' \
  CONTENT_LENGTH="$len" FILEUPLOAD_UPLOAD_URL=http://uploads.invalid/ "$BIN" cgi --exec "$APP" <"$WORK/form")
check_contains "cgi --exec gets the upload unchanged" "Status: 202 Accepted" "$out"
check_contains "cgi --exec body" "$(cat "$WORK/form")" "$out"
# An application that fails answers 502.
out=$(cgi REQUEST_METHOD=POST PATH_INFO=/upload QUERY_STRING=X-Progress-ID=cgi-exec-fails \
  CONTENT_TYPE='multipart/form-data; boundary=XX' CONTENT_LENGTH="$len" "$BIN" cgi --exec /bin/false <"$WORK/form")
check_contains "cgi --exec failing" "Status: 502 Bad Gateway" "$out"
check "failed hand-over keeps the upload" done "$(jget "$("$BIN" --directory "$pool" status cgi-exec-fails)" 'j["state"]')"

finish
