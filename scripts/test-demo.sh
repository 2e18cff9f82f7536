#!/usr/bin/env bash
# The demo pages as HTTP resources: served at /, /iframe and /resumable with their
# style, scripts and policy; not served with --no-demo or
# FILEUPLOAD_NO_DEMO; never in the way of the protocol.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

start_daemon demo --directory "$WORK/pool"

h=$(curl -s -D - -o "$WORK/index.html" "$URL/")
check_contains "index served" "200 OK" "$h"
check_contains "index type" "Content-Type: text/html; charset=utf-8" "$h"
check_contains "index policy" "Content-Security-Policy: default-src 'none'; script-src 'self'" "$h"
check_contains "index nosniff" "X-Content-Type-Options: nosniff" "$h"
check_contains "index has the file input" '<input type="file" id="files" name="file" multiple' "$(cat "$WORK/index.html")"
check_contains "index labels the input" '<label for="files"' "$(cat "$WORK/index.html")"

h=$(curl -s -D - -o "$WORK/iframe.html" "$URL/iframe")
check_contains "iframe page served" "200 OK" "$h"
check_contains "iframe page form" 'target="transport"' "$(cat "$WORK/iframe.html")"
check_contains "iframe page iframe" '<iframe name="transport"' "$(cat "$WORK/iframe.html")"

h=$(curl -s -D - -o "$WORK/resumable.html" "$URL/resumable")
check_contains "resumable page served" "200 OK" "$h"
check_contains "resumable page loads tus-js-client" '<script src="demo/tus.min.js"' "$(cat "$WORK/resumable.html")"
# The build served is the file under assets/, whole (scripts/test-tus-clients.sh
# checks that file against the one the tests' lock file installs).
check "tus-js-client's build served whole" \
  "$(sha256sum < "$(dirname "$0")/../assets/demo/vendor/tus.min.js")" \
  "$(curl -s "$URL/demo/tus.min.js" | sha256sum)"

# Every file the pages refer to is served, with its type.
for page in index iframe resumable; do
  refs=$(grep -o -E '(src|href)="demo/[^"]+"' "$WORK/$page.html" | sed -E 's/.*"(demo\/[^"]+)"/\1/')
  # A page that refers to nothing would pass the loop without a check.
  [ -n "$refs" ] && ok || fail "$page refers to no demo/ file"
  for ref in $refs; do
    c=$(curl -s -o /dev/null -w '%{http_code} %{content_type}' "$URL/$ref")
    case "$ref" in
      *.css) want="200 text/css; charset=utf-8" ;;
      *.js) want="200 text/javascript; charset=utf-8" ;;
      *.svg) want="200 image/svg+xml" ;;
      *) want="200 ?" ;;
    esac
    check "$page refers to $ref" "$want" "$c"
  done
done
# HEAD answers too; other methods on the pages are not the demo's.
check "HEAD /" 200 "$(curl -s -I -o /dev/null -w '%{http_code}' "$URL/")"
check "POST /" 404 "$(curl -s -o /dev/null -w '%{http_code}' -d x=1 "$URL/")"
check "unknown demo file" 404 "$(curl -s -o /dev/null -w '%{http_code}' "$URL/demo/missing.js")"
# The protocol is untouched beside the pages.
check "status beside the demo" '{"state":"starting"}' "$(curl -s "$URL/upload/status?X-Progress-ID=beside-demo")"

# --no-demo, and its variable: no pages, the protocol as before.
for how in flag env-1 env-true; do
  case "$how" in
    flag) start_daemon "no-demo-$how" --directory "$WORK/pool" --no-demo ;;
    env-1) FILEUPLOAD_NO_DEMO=1 start_daemon "no-demo-$how" --directory "$WORK/pool" ;;
    env-true) FILEUPLOAD_NO_DEMO=true start_daemon "no-demo-$how" --directory "$WORK/pool" ;;
  esac
  check "$how: no /" 404 "$(curl -s -o /dev/null -w '%{http_code}' "$URL/")"
  check "$how: no /iframe" 404 "$(curl -s -o /dev/null -w '%{http_code}' "$URL/iframe")"
  check "$how: no /resumable" 404 "$(curl -s -o /dev/null -w '%{http_code}' "$URL/resumable")"
  check "$how: no script" 404 "$(curl -s -o /dev/null -w '%{http_code}' "$URL/demo/page.js")"
  check "$how: status still" '{"state":"starting"}' "$(curl -s "$URL/upload/status?X-Progress-ID=no-demo")"
done
FILEUPLOAD_NO_DEMO=0 start_daemon demo-env-0 --directory "$WORK/pool"
check "FILEUPLOAD_NO_DEMO=0 keeps the demo" 200 "$(curl -s -o /dev/null -w '%{http_code}' "$URL/")"

finish
