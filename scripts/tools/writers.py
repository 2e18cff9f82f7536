"""Two writers, one identifier, the same moment: exactly one wins.

Usage: writers.py BIN WORKDIR ROUNDS

Pairs: a daemon and a CGI process, then two daemons, on one pool. Each
round both start an upload with the same identifier at once (a barrier),
sending their bodies in slow steps so that the two overlap. Exactly one
must answer 201 and the other 409, and the stored file must be the
winner's. Exits 1 on any failure.
"""
import hashlib
import os
import re
import subprocess
import sys
import threading
import time
import socket

import harness
import net
import wire

BIN, WORK, ROUNDS = sys.argv[1], sys.argv[2], int(sys.argv[3])
POOL = os.path.join(WORK, "writers-pool")
children = harness.Children()
failures = []


def body(data):
    return wire.body("BB", [("f", "w.bin", data)])


def steps(payload, send, ident, barrier):
    """Sends the first block, then the rest only once both writers have sent
    theirs and the bucket says uploading, and a moment more: so the two
    requests overlap however loaded the machine is."""
    send(payload[:16384])
    try:
        barrier.wait(timeout=10)
    except threading.BrokenBarrierError:
        pass
    status = os.path.join(POOL, ident, "status.json")
    for _ in range(1000):
        try:
            with open(status) as f:
                if '"uploading"' in f.read():
                    break
        except OSError:
            pass
        time.sleep(0.005)
    time.sleep(0.3)
    for i in range(16384, len(payload), 16384):
        send(payload[i:i + 16384])


def via_http(addr, ident, payload, barrier):
    host, port = addr.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)), timeout=30)
    try:
        s.sendall(wire.http_head(ident, len(payload)))
        try:
            steps(payload, s.sendall, ident, barrier)
        except OSError:
            pass  # the 409 came first and the server closed
        reply = net.recv_all(s)
    except OSError:
        return 0
    m = re.match(rb"HTTP/1\.1 (\d+)", reply)
    return int(m.group(1)) if m else 0


def via_cgi(ident, payload, barrier):
    env = dict(os.environ, FILEUPLOAD_DIRECTORY=POOL, **wire.cgi_vars(ident, len(payload)))
    p = subprocess.Popen([BIN, "cgi"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, env=env)

    def send(chunk):
        p.stdin.write(chunk)
        p.stdin.flush()
    try:
        steps(payload, send, ident, barrier)
        p.stdin.close()
    except OSError:
        pass
    out = p.stdout.read()
    p.wait()
    m = re.search(rb"^Status: (\d+)", out, re.M)
    return int(m.group(1)) if m else 0


def daemon():
    log = os.path.join(WORK, f"writers-daemon-{len(children.started)}.log")
    _, addr = children.start([BIN, "serve", "--directory", POOL, "--listen", "127.0.0.1:0"], log)
    return addr


def rounds(name, first, second):
    for n in range(ROUNDS):
        ident = f"{name}-{n}"
        payloads = [body(os.urandom(48 * 1024)), body(os.urandom(48 * 1024))]
        codes = [None, None]
        start, sent = threading.Barrier(2), threading.Barrier(2)

        def run(i, writer):
            start.wait()
            codes[i] = writer(ident, payloads[i], sent)
        threads = [threading.Thread(target=run, args=(i, w)) for i, w in enumerate((first, second))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if sorted(codes) != [201, 409]:
            failures.append(f"{ident}: answers {codes}")
            continue
        winner = payloads[codes.index(201)]
        with open(os.path.join(POOL, ident, "0"), "rb") as f:
            stored = hashlib.sha256(f.read()).hexdigest()
        data = winner[winner.index(b"\r\n\r\n") + 4:-len(b"\r\n--BB--\r\n")]
        if stored != hashlib.sha256(data).hexdigest():
            failures.append(f"{ident}: the stored file is not the winner's")


try:
    a, b = daemon(), daemon()
    rounds("daemon-cgi", lambda i, p, s: via_http(a, i, p, s), via_cgi)
    rounds("two-daemons", lambda i, p, s: via_http(a, i, p, s), lambda i, p, s: via_http(b, i, p, s))
finally:
    children.stop()
for f in failures:
    print("FAIL:", f, file=sys.stderr)
print(f"writer races: {2 * ROUNDS} rounds, {len(failures)} failed")
sys.exit(1 if failures else 0)
