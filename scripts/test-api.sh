#!/usr/bin/env bash
# The HTTP interface of the daemon over real sockets with curl: uploads,
# status, clear, JSONP, identifiers, limits, errors, filenames. The core's
# own rules (refused callbacks, too many files, the escaped iframe reply,
# replacing a finished upload, and again the rest) are tested in memory in
# tests/core.rs.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

POOL="$WORK/pool"
start_daemon api --directory "$POOL" --max-size 1M --max-files 3

# An identifier nobody has used yet.
s=$(curl -s "$URL/upload/status?X-Progress-ID=fresh-1")
check "unknown identifier" '{"state":"starting"}' "$s"

# A small upload with two files and fields; the reply is the description.
printf 'hello\n' > "$WORK/a.txt"
head -c 100000 /dev/urandom > "$WORK/b.bin"
r=$(curl -s -w '\n%{http_code}' -F "first=@$WORK/a.txt;type=text/plain" -F "second=@$WORK/b.bin" \
  -F note=hi -F note=again -F "other=x y" "$URL/upload?X-Progress-ID=two-files")
code=${r##*$'\n'}; body=${r%$'\n'*}
check "upload status code" 201 "$code"
check "state" done "$(json "$body" 'j["state"]')"
check "identifier" two-files "$(json "$body" 'j["identifier"]')"
check "files" 2 "$(json "$body" 'len(j["files"])')"
check "first filename" a.txt "$(json "$body" 'j["filename"]')"
check "first content type" text/plain "$(json "$body" 'j["content-type"]')"
check "first length" 6 "$(json "$body" 'j["files"][0]["length"]')"
check "second sha256" "$(sha256sum < "$WORK/b.bin" | cut -d' ' -f1)" "$(json "$body" 'j["files"][1]["sha256"]')"
check "second field" second "$(json "$body" 'j["files"][1]["field"]')"
check "fields" '{"note": ["hi", "again"], "other": ["x y"]}' "$(json "$body" 'j["fields"]')"
check "received equals size" "$(json "$body" 'j["size"]')" "$(json "$body" 'j["received"]')"
check "no path to a browser" false "$(json "$body" '"path" in j["files"][0]')"
s=$(curl -s "$URL/upload?X-Progress-ID=two-files&status")
check "status after upload" "$(json "$body" 'j')" "$(json "$s" 'j')"
check "stored file" "$(sha256sum < "$WORK/b.bin")" "$(sha256sum < "$("$BIN" --directory "$POOL" path two-files 1)")"
check "status by CLI" "$(json "$body" 'j')" "$(json "$("$BIN" --directory "$POOL" status two-files)" 'j')"

# Headers of the status reply, and the identifier as a header.
h=$(curl -s -D - -o /dev/null -H 'X-Progress-ID: two-files' "$URL/upload/status")
check_contains "status content type" "Content-Type: application/json" "$h"
check_contains "status no-store" "Cache-Control: no-store" "$h"
check_contains "status by header" "200 OK" "$h"

# JSONP as the daemon writes it.
s=$(curl -s -D "$WORK/h" "$URL/upload?X-Progress-ID=fresh-2&status&callback=jQuery_1.cb")
check "jsonp body" '/**/jQuery_1.cb({"state":"starting"});' "$s"
check_contains "jsonp type" "Content-Type: application/javascript" "$(cat "$WORK/h")"
check_contains "jsonp nosniff" "X-Content-Type-Options: nosniff" "$(cat "$WORK/h")"
# Refused callback names: tests/core.rs.

# Invalid identifiers: 400 and nothing touched on disk.
before=$(ls -A "$POOL" | sort | tr '\n' ' ')
for bad in '..' '../x' '..%2Fx' '%2e%2e' 'a%00b' 'a.b' 'a%20b' "$(printf 'a%.0s' $(seq 1 65))" 'abc:0123' ''; do
  for u in "$URL/upload/status?X-Progress-ID=$bad" "$URL/upload?X-Progress-ID=$bad&clear"; do
    c=$(curl -s -o "$WORK/out" -w '%{http_code}' "$u")
    check "invalid identifier [$bad]" 400 "$c"
    check "invalid identifier [$bad] json" error "$(json "$(cat "$WORK/out")" 'j["state"]')"
  done
  c=$(curl -s -o /dev/null -w '%{http_code}' -F "f=@$WORK/a.txt" "$URL/upload?X-Progress-ID=$bad")
  check "upload with invalid identifier [$bad]" 400 "$c"
done
check "nothing created by invalid identifiers" "$before" "$(ls -A "$POOL" | sort | tr '\n' ' ')"
[ ! -e "$WORK/x" ] && ok || fail "a traversal created $WORK/x"

# An upload without identifier gets one.
body=$(curl -s -F "f=@$WORK/a.txt" "$URL/upload")
id=$(json "$body" 'j["identifier"]')
[[ "$id" =~ ^[0-9a-f]{32}$ ]] && ok || fail "minted identifier [$id]"
check "minted upload done" done "$(json "$(curl -s "$URL/upload/status?X-Progress-ID=$id")" 'j["state"]')"

# Clear: by query flag, by /clear, by DELETE; unknown identifiers too.
check "clear" '{"success":true}' "$(curl -s "$URL/upload?X-Progress-ID=$id&clear")"
check "cleared status" '{"state":"starting"}' "$(curl -s "$URL/upload/status?X-Progress-ID=$id")"
[ ! -e "$POOL/$id" ] && ok || fail "bucket still there after clear"
check "clear unknown" '{"success":true}' "$(curl -s -X POST "$URL/upload/clear?X-Progress-ID=never-used")"
check "clear by DELETE" '{"success":true}' "$(curl -s -X DELETE "$URL/upload?X-Progress-ID=two-files")"
check "clear jsonp" '/**/cb({"success":true});' "$(curl -s "$URL/upload?X-Progress-ID=two-files&clear&callback=cb")"
[ ! -e "$POOL/two-files" ] && ok || fail "bucket two-files still there"

# Size limit by Content-Length, before reading anything, and recorded.
head -c 2000000 /dev/urandom > "$WORK/big.bin"
c=$(curl -s -o "$WORK/out" -w '%{http_code}' -F "f=@$WORK/big.bin" "$URL/upload?X-Progress-ID=too-big")
check "413 by length" 413 "$c"
check "413 body" 413 "$(json "$(cat "$WORK/out")" 'j["status"]')"
s=$(curl -s "$URL/upload/status?X-Progress-ID=too-big")
check "413 recorded" error "$(json "$s" 'j["state"]')"
check "413 recorded status" 413 "$(json "$s" 'j["status"]')"
# …and by the bytes received, for a chunked body with no length.
c=$(curl -s -o "$WORK/out" -w '%{http_code}' -H 'Transfer-Encoding: chunked' -F "f=@$WORK/big.bin" \
  "$URL/upload?X-Progress-ID=too-big-chunked")
check "413 by bytes received" 413 "$c"
s=$(curl -s "$URL/upload/status?X-Progress-ID=too-big-chunked")
check "chunked 413 recorded" 413 "$(json "$s" 'j["status"]')"
check "chunked size unknown" null "$(json "$s" 'j["size"]')"
ls "$POOL/too-big-chunked" | grep -qv -e '^lock$' -e '^status.json$' && fail "stray file after 413" || ok
# A chunked body within the limit is fine.
c=$(curl -s -o "$WORK/out" -w '%{http_code}' -H 'Transfer-Encoding: chunked' -F "f=@$WORK/b.bin" "$URL/upload?X-Progress-ID=chunked-ok")
check "chunked upload" 201 "$c"
check "chunked sha" "$(sha256sum < "$WORK/b.bin" | cut -d' ' -f1)" "$(json "$(cat "$WORK/out")" 'j["files"][0]["sha256"]')"

# A refused request that declares a huge Content-Length must not bring the
# daemon down (tiny_http, the daemon's earlier HTTP layer, allocated the declared
# length to drain it).
r=$(python3 - "${URL#http://}" <<'PY'
import socket, sys
host, port = sys.argv[1].split(":")
s = socket.create_connection((host, int(port)), timeout=10)
s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=X\r\n"
          b"Content-Length: 1000000000000000000\r\n\r\n--X\r\n")
print(s.recv(4096).split(b"\r\n")[0].decode())
s.close()
PY
)
check "huge Content-Length" "HTTP/1.1 413 Content Too Large" "$r"
sleep 0.2
kill -0 "$DAEMON_PID" 2>/dev/null && ok || fail "daemon died after a huge Content-Length"
check "still serving" '{"state":"starting"}' "$(curl -s "$URL/upload/status?X-Progress-ID=fresh-3")"

# Wrong media type, method, path.
c=$(curl -s -o /dev/null -w '%{http_code}' -d 'x=1' "$URL/upload")
check "415 without multipart" 415 "$c"
c=$(curl -s -D "$WORK/h" -o /dev/null -w '%{http_code}' -X PUT "$URL/upload")
check "405" 405 "$c"
check_contains "405 Allow" "Allow: POST, DELETE" "$(cat "$WORK/h")"
c=$(curl -s -o /dev/null -w '%{http_code}' "$URL/elsewhere")
check "404" 404 "$c"
c=$(curl -s -o /dev/null -w '%{http_code}' -F "f=@$WORK/a.txt" "$URL/myupload")
check "404 on a look-alike path" 404 "$c"
c=$(curl -s -o /dev/null -w '%{http_code}' -F "f=@$WORK/a.txt" "$URL/some/prefix/upload?X-Progress-ID=prefixed")
check "any prefix before /upload" 201 "$c"

# File names browsers send.
for name in 'a;b.txt' 'quote"d.txt' "it's.txt" 'résumé 日本.txt' 'C:\Users\me\report.pdf' '../../etc/passwd'; do
  esc=${name//\\/\\\\}; esc=${esc//\"/\\\"}
  body=$(curl -s -F "f=@$WORK/a.txt;filename=\"$esc\"" "$URL/upload?X-Progress-ID=names")
  want=$name
  case "$name" in
    'C:\Users\me\report.pdf') want=report.pdf ;;
    '../../etc/passwd') want=passwd ;;
  esac
  check "filename [$name]" "$want" "$(json "$body" 'j["files"][0]["filename"]')"
done
# CR/LF in a file name never comes back: browsers send them as %0D and %0A
# (and a quote as %22); raw ones make the part header malformed.
body=$(printf -- '--XX\r\nContent-Disposition: form-data; name="f\t"; filename="a%%0Db%%0Ac%%22\t.txt"\r\n\r\nz\r\n--XX--\r\n' |
  curl -s -H 'Content-Type: multipart/form-data; boundary=XX' --data-binary @- "$URL/upload?X-Progress-ID=crlf")
check "control characters removed" 'abc".txt' "$(json "$body" 'j["files"][0]["filename"]')"
check "control characters removed from the field" 'f' "$(json "$body" 'j["files"][0]["field"]')"
c=$(printf -- '--XX\r\nContent-Disposition: form-data; name="f"; filename="a\rb\nc.txt"\r\n\r\nz\r\n--XX--\r\n' |
  curl -s -o "$WORK/out" -w '%{http_code}' -H 'Content-Type: multipart/form-data; boundary=XX' --data-binary @- "$URL/upload?X-Progress-ID=crlf-raw")
check "raw CR/LF in a part header" 400 "$c"
[[ "$(cat "$WORK/out")" != *$'\r'* ]] && ok || fail "CR in the reply"

# A malformed body fails cleanly and is recorded.
c=$(printf -- '--XX\r\nContent-Disposition: form-data; name="f"; filename="t"\r\n\r\nno end' |
  curl -s -o "$WORK/out" -w '%{http_code}' -H 'Content-Type: multipart/form-data; boundary=XX' --data-binary @- "$URL/upload?X-Progress-ID=broken")
check "truncated multipart" 400 "$c"
check "truncated recorded" error "$(json "$(curl -s "$URL/upload/status?X-Progress-ID=broken")" 'j["state"]')"
c=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: multipart/form-data' -d 'x' "$URL/upload")
check "no boundary" 400 "$c"

# The daemon logged one line per request.
n=$(grep -c ' /upload' "$WORK/api.log" || true)
[ "$n" -gt 50 ] && ok || fail "request log has $n lines"
grep -q 'POST /upload 201 .* two-files$' "$WORK/api.log" && ok || fail "log line of the first upload"

finish
