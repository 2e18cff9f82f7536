#!/usr/bin/env bash
# Hostile input against the daemon over real sockets: one check (or a few)
# per row of the table in SECURITY.md. Raw requests curl would not send go
# through python3 sockets. Rows already tested elsewhere are named there.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

POOL="$WORK/pool"
mkdir -p "$WORK/outside"
start_daemon hostile --directory "$POOL" --idle-timeout 2s --max-size 64M
PLAIN=$URL
HOSTPORT=${URL#http://}
printf 'hello\n' > "$WORK/a.txt"

# raw FILE [half-close] [wait]: sends FILE's bytes as they are, optionally
# shuts down the sending side, and prints the first status line of the
# reply (the whole reply goes to $WORK/reply); "closed" when none came.
raw() {
  python_tools - "$HOSTPORT" "$1" "${2:-}" "${3:-10}" <<'PY'
import socket, sys
import net
host, port = sys.argv[1].split(":")
data = open(sys.argv[2], "rb").read()
s = socket.create_connection((host, int(port)), timeout=float(sys.argv[4]))
try:
    s.sendall(data)
    if sys.argv[3] == "half-close":
        s.shutdown(socket.SHUT_WR)
except OSError:
    pass
def whole(reply):
    if b"\r\n\r\n" not in reply:
        return False
    head, _, body = reply.partition(b"\r\n\r\n")
    length = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
    return bool(length) and len(body) >= length[0]
# One reply is enough unless more were asked for by pipelining.
reply = net.recv_all(s, done=None if sys.argv[3] == "all" else whole, errors=(OSError,))
open(sys.argv[2] + ".reply", "wb").write(reply)
print(reply.split(b"\r\n")[0].decode("latin-1") if reply else "closed")
PY
  cp "$1.reply" "$WORK/reply"
}

# body_of: the body of the last raw reply.
body_of() { python3 -c 'import sys; print(open(sys.argv[1],"rb").read().partition(b"\r\n\r\n")[2].decode("latin-1"))' "$WORK/reply"; }

# request FILE METHOD TARGET CONTENT_LENGTH BODY_FILE [EXTRA_HEADER...]:
# writes a multipart request with boundary XX to FILE.
request() {
  local file=$1 method=$2 target=$3 length=$4 body=$5; shift 5
  {
    printf '%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XX\r\n' "$method" "$target"
    [ "$length" == none ] || printf 'Content-Length: %s\r\n' "$length"
    local h
    for h in "$@"; do printf '%s\r\n' "$h"; done
    printf '\r\n'
    cat "$body"
  } > "$file"
}

files_in() { ls "$POOL/$1" 2>/dev/null | tr '\n' ' ' | sed 's/ $//'; }
state_of() { json "$(curl -s "$PLAIN/upload/status?X-Progress-ID=$1")" 'j["state"]'; }

# --- Identifiers: path traversal (the query forms are in test-api.sh) ------
before=$(ls -A "$POOL" | sort | tr '\n' ' ')
for bad in '../outside' '..' '/etc' "$(printf 'a\tb')" "$(printf 'a%.0s' $(seq 1 65))" '.'; do
  c=$(curl -s -o "$WORK/out" -w '%{http_code}' -H "X-Progress-ID: $bad" "$PLAIN/upload/status")
  check "identifier header [$bad]" 400 "$c"
  c=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Progress-ID: $bad" -F "f=@$WORK/a.txt" "$PLAIN/upload")
  check "upload with identifier header [$bad]" 400 "$c"
done
# Unencoded traversal and NUL in the query, as no client library would send it.
for target in '/upload?X-Progress-ID=../../outside/x' '/upload?X-Progress-ID=/tmp/x' \
  '/upload?X-Progress-ID=a%00' '/upload?X-Progress-ID=%2e%2e%2foutside' '/upload?X-Progress-ID=%2E%2E'; do
  request "$WORK/req" POST "$target" "$(stat -c %s "$WORK/a.txt")" "$WORK/a.txt"
  check "raw upload to [$target]" "HTTP/1.1 400 Bad Request" "$(raw "$WORK/req")"
done
printf 'GET /upload/status?X-Progress-ID=a\0b HTTP/1.1\r\nHost: x\r\n\r\n' > "$WORK/req"
check "NUL in the request line" "HTTP/1.1 400 Bad Request" "$(raw "$WORK/req")"
check "traversal created nothing in the pool" "$before" "$(ls -A "$POOL" | sort | tr '\n' ' ')"
check "traversal created nothing outside" "" "$(ls -A "$WORK/outside")"

# --- JSONP callback injection (more names in test-api.sh) -----------------
for cb in 'cb%0D%0AX-Injected:%201' 'cb%0AX' 'a.b(1)//' 'cb;alert(1)' '%EF%BD%83b' 'cb%00' '$x%22' \
  "$(printf 'a%.0s' $(seq 1 65))" '/**/cb' '%3Cscript%3E'; do
  curl -s -D "$WORK/h" -o "$WORK/out" "$PLAIN/upload/status?X-Progress-ID=jsonp&callback=$cb"
  check "callback [$cb] refused" 400 "$(json "$(cat "$WORK/out")" 'j["status"]')"
  check_contains "callback [$cb] answered as JSON" "Content-Type: application/json" "$(cat "$WORK/h")"
  grep -qi 'X-Injected' "$WORK/h" && fail "callback [$cb] injected a header" || ok
done
check "a good callback" '/**/$jQ._1({"state":"starting"});' \
  "$(curl -s "$PLAIN/upload/status?X-Progress-ID=jsonp&callback=\$jQ._1")"

# --- HTML injection through the file name in the text/html reply ----------
# (the <img> case is in test-api.sh)
# (A '/' or '\' would cut the name to its last path component.)
for name in 'x" onload="alert(1)' "x' onload='alert(1)" '"><script>alert(1)<' '<svg onload=alert(1)>' \
  '&quot;&gt;&lt;script&gt;' 'a&b<c>d"e'"'"'f'; do
  esc=${name//\\/\\\\}; esc=${esc//\"/\\\"}
  body=$(curl -s -H 'Accept: text/html' -F "f=@$WORK/a.txt;filename=\"$esc\"" "$PLAIN/upload?X-Progress-ID=html-inj")
  got=$(python3 -c '
import html.parser, json, sys
class P(html.parser.HTMLParser):
    tags, attrs = [], {}
    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "body":
            self.attrs = dict(attrs)
p = P(); p.feed(sys.stdin.read())
# Only the page skeleton, only the two data attributes on body.
assert p.tags == ["html", "head", "meta", "title", "body", "p"], p.tags
assert sorted(p.attrs) == ["data-upload-identifier", "data-upload-info"], p.attrs
print(json.loads(p.attrs["data-upload-info"])["files"][0]["filename"])' <<<"$body" 2>&1) || true
  check "html reply with file name [$name]" "$name" "$got"
done

# --- CR/LF in file names and field names (more in test-api.sh) ------------
printf -- '--XX\r\nContent-Disposition: form-data; name="n%%0D%%0AX-Injected: 1"; filename="f%%0D%%0AX-Injected: 2.txt"\r\n\r\nz\r\n--XX\r\nContent-Disposition: form-data; name="k%%0D%%0AX-Injected: 3"\r\n\r\nv\r\n--XX--\r\n' > "$WORK/crlf.body"
request "$WORK/req" POST '/upload?X-Progress-ID=crlf-names' "$(stat -c %s "$WORK/crlf.body")" "$WORK/crlf.body" 'Accept: text/html'
check "CR/LF names upload" "HTTP/1.1 201 Created" "$(raw "$WORK/req")"
python3 - "$WORK/reply" <<'PY' && ok || fail "CR/LF reached the reply"
import sys
reply = open(sys.argv[1], "rb").read()
head, _, body = reply.partition(b"\r\n\r\n")
assert b"X-Injected" not in head, head
assert b"\r" not in body and b"\n" not in body.replace(b">\n", b">"), body
PY
s=$(curl -s -D "$WORK/h" "$PLAIN/upload/status?X-Progress-ID=crlf-names")
check "CR/LF file name cleaned" "fX-Injected: 2.txt" "$(json "$s" 'j["files"][0]["filename"]')"
grep -qi 'X-Injected' "$WORK/h" && fail "a status header carries a name" || ok
python3 -c 'import sys; d=sys.stdin.buffer.read(); sys.exit(1 if b"\r" in d or b"\\r" in d or b"\\n" in d else 0)' <<<"$s" && ok || fail "CR/LF in the status JSON: $s"
grep -q '^X-Injected' "$WORK/hostile.log" && fail "CR/LF reached the log" || ok

# --- A part header of 1 MiB -----------------------------------------------
python3 -c '
import sys
sys.stdout.buffer.write(b"--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\nz\r\n--XX--\r\n")' > "$WORK/big-header.body"
c=$(curl -s -o "$WORK/out" -w '%{http_code}' -H 'Content-Type: multipart/form-data; boundary=XX' \
  --data-binary @"$WORK/big-header.body" "$PLAIN/upload?X-Progress-ID=big-header")
check "1 MiB part header" 400 "$c"
check_contains "1 MiB part header message" "part headers longer than" "$(json "$(cat "$WORK/out")" 'j["error"]')"
check "1 MiB part header state" error "$(state_of big-header)"
check "1 MiB part header left no file" "lock status.json" "$(files_in big-header)"
# …and a request head of more than 64 KiB, which tiny_http refuses.
c=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Big: $(head -c 70000 /dev/zero | tr '\0' a)" "$PLAIN/upload/status?X-Progress-ID=a")
check "request head over 64 KiB" 431 "$c"

# --- 100,000 tiny parts ------------------------------------------------------
for name in a ''; do
  python3 -c '
import sys
part = b"--XX\r\nContent-Disposition: form-data; name=\"" + sys.argv[1].encode() + b"\"\r\n\r\n\r\n"
sys.stdout.buffer.write(part * 100000 + b"--XX--\r\n")' "$name" > "$WORK/tiny.body"
  c=$(curl -s -o "$WORK/out" -w '%{http_code}' -m 60 -H 'Content-Type: multipart/form-data; boundary=XX' \
    --data-binary @"$WORK/tiny.body" "$PLAIN/upload?X-Progress-ID=tiny-parts")
  check "100,000 tiny parts named [$name]" 413 "$c"
  check_contains "100,000 tiny parts message" "form fields larger than 65536 bytes" "$(json "$(cat "$WORK/out")" 'j["error"]')"
  curl -s -m 5 -o "$WORK/status" "$PLAIN/upload/status?X-Progress-ID=tiny-parts"
  r=$(python3 -c '
import json, sys
raw = open(sys.argv[1], "rb").read()
j = json.loads(raw)
# The fields that came before the limit are kept, bounded: 64 KiB of them
# and the JSON around them.
print(j["state"], j["status"], len(raw) < 512 * 1024)' "$WORK/status")
  check "100,000 tiny parts status" "error 413 True" "$r"
done
# 100,000 empty file inputs are no files at all: nothing kept, nothing stored.
python3 -c '
import sys
part = b"--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"\"\r\n\r\n\r\n"
sys.stdout.buffer.write(part * 100000 + b"--XX--\r\n")' > "$WORK/tiny.body"
c=$(curl -s -o "$WORK/out" -w '%{http_code}' -m 60 -H 'Content-Type: multipart/form-data; boundary=XX' \
  --data-binary @"$WORK/tiny.body" "$PLAIN/upload?X-Progress-ID=empty-files")
check "100,000 empty file inputs" 201 "$c"
check "100,000 empty file inputs stored nothing" "lock status.json" "$(files_in empty-files)"
check "daemon fine after tiny parts" '{"state":"starting"}' "$(curl -s -m 5 "$PLAIN/upload/status?X-Progress-ID=fine")"

# --- A boundary of 71+ characters ------------------------------------------
for n in 70 71 200; do
  b=$(head -c "$n" /dev/zero | tr '\0' b)
  printf -- '--%s\r\nContent-Disposition: form-data; name="f"; filename="x"\r\n\r\nz\r\n--%s--\r\n' "$b" "$b" > "$WORK/long.body"
  c=$(curl -s -o "$WORK/out" -w '%{http_code}' -H "Content-Type: multipart/form-data; boundary=$b" \
    --data-binary @"$WORK/long.body" "$PLAIN/upload?X-Progress-ID=boundary-$n")
  if [ "$n" -le 70 ]; then check "boundary of $n characters" 201 "$c"; else
    check "boundary of $n characters" 400 "$c"
    check_contains "boundary of $n message" "RFC 2046" "$(json "$(cat "$WORK/out")" 'j["error"]')"
  fi
done

# --- A missing final boundary ------------------------------------------------
printf -- '--XX\r\nContent-Disposition: form-data; name="f"; filename="x"\r\n\r\ncomplete data\r\n' > "$WORK/nofinal.body"
c=$(curl -s -o "$WORK/out" -w '%{http_code}' -H 'Content-Type: multipart/form-data; boundary=XX' \
  --data-binary @"$WORK/nofinal.body" "$PLAIN/upload?X-Progress-ID=no-final")
check "missing final boundary" 400 "$c"
check "missing final boundary state" error "$(state_of no-final)"
check "missing final boundary left no file" "lock status.json" "$(files_in no-final)"
printf -- '--XX\r\nContent-Disposition: form-data; name="f"; filename="x"\r\n\r\ndata\r\n--XX\r\n' > "$WORK/nofinal.body"
c=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: multipart/form-data; boundary=XX' \
  --data-binary @"$WORK/nofinal.body" "$PLAIN/upload?X-Progress-ID=no-final-2")
check "a delimiter but no close delimiter" 400 "$c"
check "no close delimiter left no file" "lock status.json" "$(files_in no-final-2)"

# --- A body longer than Content-Length ---------------------------------------
printf -- '--XX\r\nContent-Disposition: form-data; name="f"; filename="x"\r\n\r\nexact\r\n--XX--\r\n' > "$WORK/exact.body"
len=$(stat -c %s "$WORK/exact.body")
cat "$WORK/exact.body" > "$WORK/longer.body"
printf 'EXTRA BYTES THAT ARE NOT HTTP\r\n\r\n' >> "$WORK/longer.body"
request "$WORK/req" POST '/upload?X-Progress-ID=longer' "$len" "$WORK/longer.body"
r=$(raw "$WORK/req" "" 5)
check "longer body: the upload is framed by Content-Length" "HTTP/1.1 201 Created" "$r"
check "longer body: exactly what Content-Length covered is stored" "exact" "$(cat "$POOL/longer/0")"
check "longer body: received" "$len" "$(json "$(curl -s "$PLAIN/upload/status?X-Progress-ID=longer")" 'j["received"]')"
# The extra bytes are read as a next request, refused, and the connection closed.
request "$WORK/req" POST '/upload?X-Progress-ID=longer' "$len" "$WORK/longer.body"
raw "$WORK/req" all 5 >/dev/null
check "extra bytes after the body" "HTTP/1.1 201 HTTP/1.1 400" "$(grep -ao 'HTTP/1.1 [0-9]*' "$WORK/reply" | tr '\n' ' ' | sed 's/ $//')"
# Content-Length cutting the multipart body short: an incomplete body.
request "$WORK/req" POST '/upload?X-Progress-ID=cut-short' $((len - 10)) "$WORK/exact.body"
check "Content-Length inside the body" "HTTP/1.1 400 Bad Request" "$(raw "$WORK/req" "" 5)"
check "Content-Length inside the body left no file" "lock status.json" "$(files_in cut-short)"

# --- A body shorter than Content-Length --------------------------------------
request "$WORK/req" POST '/upload?X-Progress-ID=shorter' $((len + 1000)) "$WORK/exact.body"
r=$(raw "$WORK/req" half-close 10)
check "shorter body, then the client closes" "HTTP/1.1 400 Bad Request" "$r"
check "shorter body state" error "$(state_of shorter)"
check "shorter body left no file" "lock status.json" "$(files_in shorter)"
request "$WORK/req" POST '/upload?X-Progress-ID=shorter-wait' $((len + 1000)) "$WORK/exact.body"
r=$(raw "$WORK/req" "" 15)
check "shorter body, then the client waits" "HTTP/1.1 408 Request Timeout" "$r"
check "shorter body (wait) state" error "$(state_of shorter-wait)"
check "shorter body (wait) left no file" "lock status.json" "$(files_in shorter-wait)"

# --- Transfer-Encoding with Content-Length -------------------------------------
before=$(ls -A "$POOL" | sort | tr '\n' ' ')
python3 -c '
import sys
body = open(sys.argv[1], "rb").read()
chunked = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
sys.stdout.buffer.write(b"POST /upload?X-Progress-ID=te-cl HTTP/1.1\r\nHost: x\r\n"
  b"Content-Type: multipart/form-data; boundary=XX\r\nContent-Length: 5\r\n"
  b"Transfer-Encoding: chunked\r\n\r\n" + chunked)' "$WORK/exact.body" > "$WORK/req"
check "Transfer-Encoding with Content-Length" "HTTP/1.1 400 Bad Request" "$(raw "$WORK/req")"
printf 'POST /upload?X-Progress-ID=cl-cl HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XX\r\nContent-Length: %s\r\nContent-Length: 5\r\n\r\n' "$len" > "$WORK/req"
cat "$WORK/exact.body" >> "$WORK/req"
check "two different Content-Length" "HTTP/1.1 400 Bad Request" "$(raw "$WORK/req")"
check "refused framings created nothing" "$before" "$(ls -A "$POOL" | sort | tr '\n' ' ')"
# Chunked alone is fine (more in test-api.sh), and an endless chunk-size
# line is cut after 4 KiB of framing.
python3 -c '
import sys
body = open(sys.argv[1], "rb").read()
sys.stdout.buffer.write(b"POST /upload?X-Progress-ID=chunk-line HTTP/1.1\r\nHost: x\r\n"
  b"Content-Type: multipart/form-data; boundary=XX\r\nTransfer-Encoding: chunked\r\n\r\n"
  + b"%x\r\n" % len(body) + body + b"\r\n" + b"1;" + b"e" * 100000 + b"\r\nz\r\n0\r\n\r\n")' "$WORK/exact.body" > "$WORK/req"
check "endless chunk extension" "HTTP/1.1 400 Bad Request" "$(raw "$WORK/req")"
check "endless chunk extension state" error "$(state_of chunk-line)"

# --- 10,000 query parameters ----------------------------------------------------
q=$(python3 -c 'print("&".join("p%d" % i for i in range(10000)))')
r=$(curl -s -m 10 -w '\n%{http_code}' "$PLAIN/upload/status?$q&X-Progress-ID=many-params")
check "10,000 query parameters" 200 "${r##*$'\n'}"
check "10,000 query parameters answer" '{"state":"starting"}' "${r%$'\n'*}"
c=$(curl -s -o /dev/null -m 10 -w '%{http_code}' "$PLAIN/upload?$q&X-Progress-ID=many-params-up" -F "f=@$WORK/a.txt")
check "10,000 query parameters on an upload" 201 "$c"
python3 -c '
import sys
q = "&".join("p%d" % i for i in range(100000))
sys.stdout.write("GET /upload/status?%s&X-Progress-ID=many-params HTTP/1.1\r\nHost: x\r\n\r\n" % q)' > "$WORK/req"
check "100,000 query parameters (over 64 KiB)" "HTTP/1.1 431 Request Header Fields Too Large" "$(raw "$WORK/req")"

# --- A pool bucket replaced by a symlink by another local user ------------------
# (the library-level case is tests/pool.rs a_bucket_replaced_by_a_symlink_is_not_followed)
mkdir -p "$WORK/outside/victim"
printf '{"state":"done","received":1}' > "$WORK/outside/victim/status.json"
printf 'secret' > "$WORK/outside/victim/0"
ln -s "$WORK/outside/victim" "$POOL/evil"
chown -h nobody "$POOL/evil" 2>/dev/null || true
c=$(curl -s -o "$WORK/out" -w '%{http_code}' "$PLAIN/upload/status?X-Progress-ID=evil")
check "status of a symlinked bucket" 500 "$c"
check_contains "symlinked bucket message" "refusing to follow it" "$(json "$(cat "$WORK/out")" 'j["error"]')"
c=$(curl -s -o /dev/null -w '%{http_code}' -F "f=@$WORK/a.txt" "$PLAIN/upload?X-Progress-ID=evil")
check "upload into a symlinked bucket" 500 "$c"
c=$(curl -s -o /dev/null -w '%{http_code}' "$PLAIN/upload?X-Progress-ID=evil&clear")
check "clear of a symlinked bucket" 500 "$c"
check "the link's target untouched" "0 status.json" "$(ls "$WORK/outside/victim" | tr '\n' ' ' | sed 's/ $//')"
check "the link's target content untouched" secret "$(cat "$WORK/outside/victim/0")"
"$BIN" --directory "$POOL" status evil >/dev/null 2>&1 && fail "CLI followed the link" || ok
"$BIN" --directory "$POOL" gc --older-than 0s >/dev/null
[ -L "$POOL/evil" ] && [ -e "$WORK/outside/victim/0" ] && ok || fail "gc followed or removed the link"
# A file inside a real bucket replaced by a link: never read through it.
curl -s -o /dev/null -F "f=@$WORK/a.txt" "$PLAIN/upload?X-Progress-ID=linked-status"
rm "$POOL/linked-status/status.json"
ln -s "$WORK/outside/victim/0" "$POOL/linked-status/status.json"
c=$(curl -s -o "$WORK/out" -w '%{http_code}' "$PLAIN/upload/status?X-Progress-ID=linked-status")
check "status.json replaced by a link" 500 "$c"
grep -q secret "$WORK/out" && fail "the link's target reached the reply" || ok
rm "$POOL/linked-status/lock"
ln -s "$WORK/outside/victim/0" "$POOL/linked-status/lock"
c=$(curl -s -o /dev/null -w '%{http_code}' -F "f=@$WORK/a.txt" "$PLAIN/upload?X-Progress-ID=linked-status")
check "lock replaced by a link" 500 "$c"
check "the link's target content untouched after all" secret "$(cat "$WORK/outside/victim/0")"

# --- Modes: buckets 0700, files 0600 (the key file check is in test-cli.sh) -------
curl -s -o /dev/null -F "f=@$WORK/a.txt" "$PLAIN/upload?X-Progress-ID=modes"
check "bucket mode" 700 "$(stat -c %a "$POOL/modes")"
check "file modes" "600 600 600" "$(stat -c %a "$POOL/modes/0" "$POOL/modes/lock" "$POOL/modes/status.json" | tr '\n' ' ' | sed 's/ $//')"

# --- Forged, truncated and swapped MACs (more in test-cli.sh) ---------------------
KEY=hostile-key
export FILEUPLOAD_KEY=$KEY
start_daemon keyed --directory "$WORK/keyed-pool"
unset FILEUPLOAD_KEY
KEYED=$URL
mac() { python3 -c 'import hmac,hashlib,sys; print(hmac.new(sys.argv[1].encode(), sys.argv[2].encode(), hashlib.sha256).hexdigest())' "$KEY" "$1"; }
good="victim:$(mac victim)"
other="$(mac other)"
c=$(curl -s -o /dev/null -w '%{http_code}' -F "f=@$WORK/a.txt" "$KEYED/upload?X-Progress-ID=$good")
check "right MAC" 201 "$c"
for forged in "victim:$(head -c 64 /dev/zero | tr '\0' 0)" "victim:${good:7:63}" "victim:${good:7:62}" \
  "victim:$(tr a-f A-F <<<"${good:7}")" "victim:$other" "victim:${good:7}00" "victim:" "victim::${good:7}" \
  "Victim:${good:7}" "victim:$(mac victim | rev)" "victim%00:${good:7}" "victim%3A${good:7}x"; do
  for u in "$KEYED/upload/status?X-Progress-ID=$forged" "$KEYED/upload?X-Progress-ID=$forged&clear"; do
    c=$(curl -s -o "$WORK/out" -w '%{http_code}' "$u")
    check "forged MAC [$forged]" 400 "$c"
  done
done
check "the upload survived the forged clears" done "$(json "$(curl -s "$KEYED/upload/status?X-Progress-ID=$good")" 'j["state"]')"

# Timing: a wrong MAC whose first byte is right must not be answered
# measurably faster or slower than one whose first byte is wrong (ring
# compares in constant time). Many requests, interleaved at random on one
# kept-alive connection, medians compared with a generous bound; a loaded
# machine slows both kinds alike. Up to three rounds, as noise can spoil
# one but a real difference shows in every round.
r=$(python3 - "${KEYED#http://}" "$(mac victim)" <<'PY'
import http.client, random, statistics, sys, time
host, port = sys.argv[1].split(":")
right = sys.argv[2]
flip = lambda c: "0" if c != "0" else "1"
first_right = right[:2] + "".join(flip(c) for c in right[2:])
first_wrong = flip(right[0]) + flip(right[1]) + right[2:]
rng = random.Random(1)
for attempt in range(3):
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    times = {"first_right": [], "first_wrong": []}
    order = ["first_right", "first_wrong"] * 1500
    rng.shuffle(order)
    for kind in order:
        mac = first_right if kind == "first_right" else first_wrong
        t = time.perf_counter()
        conn.request("GET", "/upload/status?X-Progress-ID=victim:" + mac)
        resp = conn.getresponse()
        resp.read()
        elapsed = time.perf_counter() - t
        assert resp.status == 400, resp.status
        times[kind].append(elapsed)
    conn.close()
    a = statistics.median(times["first_right"])
    b = statistics.median(times["first_wrong"])
    bound = max(0.25 * min(a, b), 100e-6)
    print(f"round {attempt + 1}: median {a * 1e6:.0f} us (first byte right) vs {b * 1e6:.0f} us (wrong), bound {bound * 1e6:.0f} us", file=sys.stderr)
    if abs(a - b) <= bound:
        print("same")
        break
else:
    print("different")
PY
)
check "a wrong MAC's first byte does not change the answer time" same "$r"

finish
