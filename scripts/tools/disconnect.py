"""Clients that go away mid-upload, under each front end.

Usage: disconnect.py BIN WORKDIR

For the daemon, the FastCGI responder (a web server closing its connection)
and a CGI process (its stdin closed): a body cut inside a part's headers,
inside a file's content, and between two parts. Each must end in state
error with no file left in its bucket. Then, for the daemon and the
responder, --max-uploads uploads at once must all succeed: every worker
the cut requests held is free again. Exits 1 on any failure.
"""
import functools
import os
import socket
import subprocess
import sys
import threading
import time

import harness
import net
import wire

BIN, WORK = sys.argv[1], sys.argv[2]
MAX_UPLOADS = 2
check = harness.Checks()
children = harness.Children()


FULL = wire.body("BB", [("a", "one.bin", os.urandom(300_000)), ("b", "two.bin", os.urandom(300_000))])
first_end = FULL.index(b"\r\n--BB\r\n", 10) + len(b"\r\n--BB\r\n")
CUTS = {
    # Inside the first part's headers.
    "mid-headers": FULL.index(b"filename") + 3,
    # Inside the first file's content.
    "mid-body": 150_000,
    # After the first part and the next delimiter line, before the second
    # part's headers: the first file is complete by then, and must go too.
    "between-parts": first_end,
}


status = functools.partial(harness.status, BIN)


def settled(pool, ident):
    for _ in range(200):
        s = status(pool, ident)
        if s.get("state") not in ("uploading", "starting"):
            return s
        time.sleep(0.05)
    return status(pool, ident)


def send_cut(port, kind, ident, cut):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    if kind == "daemon":
        s.sendall(wire.http_head(ident, len(FULL)) + FULL[:cut])
    else:
        s.sendall(wire.fcgi_head(ident, len(FULL)) + wire.fcgi_stdin(FULL[:cut]))
    time.sleep(0.2)  # let the writer take the bytes before the close
    s.close()


def upload(port, kind, ident, results, i):
    payload = wire.body("BB", [("f", "ok.bin", os.urandom(200_000))])
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    if kind == "daemon":
        s.sendall(wire.http_head(ident, len(payload)) + payload)
    else:
        s.sendall(wire.fcgi_head(ident, len(payload)) + wire.fcgi_stdin(payload)
                  + wire.fcgi_record(5, 1, b""))
    end_request = lambda reply: b"\x01\x03\x00\x01" in reply  # END_REQUEST
    reply = net.recv_all(s, done=end_request if kind == "fastcgi" else None)
    s.close()
    results[i] = b"201" in reply.split(b"\r\n\r\n")[0] or b"Status: 201" in reply


def front(kind):
    pool = os.path.join(WORK, f"cut-{kind}")
    port = net.free_port()
    if kind == "daemon":
        args = [BIN, "serve", "--listen", f"127.0.0.1:{port}"]
    else:
        args = [BIN, "fastcgi", "--listen", f"127.0.0.1:{port}", "--threads", "1"]
    children.start(args + ["--directory", pool, "--max-uploads", str(MAX_UPLOADS)],
                   os.path.join(WORK, f"cut-{kind}.log"))
    for name, cut in CUTS.items():
        ident = f"{kind}-{name}"
        send_cut(port, kind, ident, cut)
        s = settled(pool, ident)
        check(s.get("state") == "error", f"{kind} {name}: state {s}")
        left = sorted(os.listdir(os.path.join(pool, ident)))
        check(left == ["lock", "status.json"], f"{kind} {name}: files left {left}")
    results = [False] * MAX_UPLOADS
    threads = [threading.Thread(target=upload, args=(port, kind, f"{kind}-after-{i}", results, i))
               for i in range(MAX_UPLOADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(all(results), f"{kind}: after the cuts, {results.count(True)} of {MAX_UPLOADS} uploads succeeded")


def cgi():
    pool = os.path.join(WORK, "cut-cgi")
    for name, cut in CUTS.items():
        ident = f"cgi-{name}"
        env = dict(os.environ, FILEUPLOAD_DIRECTORY=pool, **wire.cgi_vars(ident, len(FULL)))
        out = subprocess.run([BIN, "cgi"], input=FULL[:cut], env=env, capture_output=True, timeout=60)
        check(b"Status: 400" in out.stdout, f"cgi {name}: answered {out.stdout[:80]!r}")
        s = status(pool, ident)
        check(s.get("state") == "error", f"cgi {name}: state {s}")
        left = sorted(os.listdir(os.path.join(pool, ident)))
        check(left == ["lock", "status.json"], f"cgi {name}: files left {left}")


try:
    front("daemon")
    front("fastcgi")
    cgi()
finally:
    children.stop()
print(f"disconnects: {check.count} checks, {len(check.failures)} failed")
sys.exit(1 if check.failures else 0)
