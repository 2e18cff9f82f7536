"""Kill -9 of the writer at random points of an upload, for each front end.

Usage: crash.py BIN WORKDIR TRIALS SEED

Each trial stores one upload that completes (its sha256 is recorded), then
starts a second one that trickles in, kills the writer (the daemon, the
FastCGI responder or the CGI process) at a random moment with SIGKILL, and
checks: every upload that reported done is intact, the interrupted one
reports error / "upload interrupted" (or done and intact, when it won the
race), no finished-looking file exists for it, and (for the daemon) a
new start on the same pool serves.
Prints one line per failure and a summary; exits 1 on any failure.
"""
import functools
import hashlib
import os
import random
import signal
import socket
import subprocess
import sys
import time

import harness
import net
import wire

BIN, WORK, TRIALS, SEED = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(SEED)
check = harness.Checks()
children = harness.Children()
outcomes = {}


def body(boundary, name, data):
    return wire.body(boundary, [("f", name, data)])


status = functools.partial(harness.status, BIN, timeout=30)


# --- the three ways to send a body to a writer -----------------------------

def http_send(addr, ident, payload, trickle):
    host, port = addr.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)), timeout=30)
    s.sendall(wire.http_head(ident, len(payload)))
    return feed(s.sendall, payload, trickle, s)


def fcgi_send(addr, ident, payload, trickle):
    host, port = addr.split(":")
    s = socket.create_connection((host, int(port)), timeout=30)
    s.sendall(wire.fcgi_head(ident, len(payload)))
    send = lambda chunk: s.sendall(wire.fcgi_stdin(chunk))
    return feed(send, payload, trickle, s, end=lambda: s.sendall(wire.fcgi_record(5, 1, b"")))


def feed(send, payload, trickle, sock, end=None):
    """Sends payload whole, or when trickle 16 KiB every 10 ms (the writer
    is killed meanwhile, or the upload wins the race); returns the reply."""
    if not trickle:
        send(payload)
        if end:
            end()
        return net.recv_all(sock, done=lambda data: b"\"state\"" in data
                            and data.rstrip().endswith((b"}", b"})")))
    step = 16384
    for i in range(0, len(payload) - 1, step):
        try:
            send(payload[i:i + step])
        except OSError:
            return b""
        time.sleep(0.01)
    return b""


# --- one trial per front end ----------------------------------------------

def trial(kind, n):
    pool = os.path.join(WORK, f"pool-{kind}")
    os.makedirs(pool, exist_ok=True)
    good, bad = f"{kind}-done-{n}", f"{kind}-cut-{n}"
    data = os.urandom(rng.randint(1, 256) * 1024)
    cut = os.urandom(rng.randint(512, 4096) * 1024)
    log = os.path.join(WORK, f"{kind}-{n}.log")
    writer = None
    if kind == "daemon":
        writer, addr = children.start(
            [BIN, "serve", "--directory", pool, "--listen", "127.0.0.1:0"], log)
        http_send(addr, good, body("BB", "good.bin", data), False)
        send = lambda: http_send(addr, bad, body("BB", "cut.bin", cut), True)
    elif kind == "fastcgi":
        port = net.free_port()
        writer, _ = children.start(
            [BIN, "fastcgi", "--directory", pool, "--listen", f"127.0.0.1:{port}"], log)
        fcgi_send(f"127.0.0.1:{port}", good, body("BB", "good.bin", data), False)
        send = lambda: fcgi_send(f"127.0.0.1:{port}", bad, body("BB", "cut.bin", cut), True)
    else:
        payload = body("BB", "good.bin", data)
        env = dict(os.environ, FILEUPLOAD_DIRECTORY=pool, **wire.cgi_vars(good, len(payload)))
        subprocess.run([BIN, "cgi"], input=payload, env=env, capture_output=True, timeout=30)
        payload = body("BB", "cut.bin", cut)
        env = dict(os.environ, FILEUPLOAD_DIRECTORY=pool, **wire.cgi_vars(bad, len(payload)))
        writer = children.spawn([BIN, "cgi"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=open(log, "w"), env=env)

        def send():
            for i in range(0, len(payload) - 1, 16384):
                try:
                    writer.stdin.write(payload[i:i + 16384])
                    writer.stdin.flush()
                except OSError:
                    return
                time.sleep(0.01)
    s = status(pool, good)
    check(s.get("state") == "done", f"{kind} {n}: first upload not done: {s}")
    want = hashlib.sha256(data).hexdigest()
    # Kill the writer at a random moment while the second upload trickles in.
    import threading
    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    time.sleep(rng.uniform(0.02, 0.4))
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    sender.join(timeout=30)
    # The finished upload is intact.
    path = subprocess.run([BIN, "--directory", pool, "path", good], capture_output=True,
                          text=True).stdout.strip()
    with open(path, "rb") as f:
        check(hashlib.sha256(f.read()).hexdigest() == want, f"{kind} {n}: done upload damaged")
    check(status(pool, good).get("files", [{}])[0].get("sha256") == want,
          f"{kind} {n}: done status changed")
    # The interrupted one says so, and leaves no finished-looking file.
    bucket = os.path.join(pool, bad)
    s = status(pool, bad)
    outcomes[(kind, s.get("state"))] = outcomes.get((kind, s.get("state")), 0) + 1
    if s.get("state") == "done":  # it finished before the kill
        with open(os.path.join(bucket, "0"), "rb") as f:
            check(hashlib.sha256(f.read()).hexdigest() == hashlib.sha256(cut).hexdigest(),
                  f"{kind} {n}: upload done before the kill is damaged")
    elif s.get("state") == "starting":  # killed before it began: nothing on disk
        check(not os.path.exists(os.path.join(bucket, "0")), f"{kind} {n}: file without status")
    else:
        check(s.get("state") == "error" and s.get("error") == "upload interrupted",
              f"{kind} {n}: interrupted upload reports {s}")
        left = sorted(os.listdir(bucket))
        check(all(x in ("lock", "status.json") for x in left), f"{kind} {n}: files left: {left}")
    # The next start serves normally, with no manual step.
    if kind == "daemon":
        again, addr = children.start(
            [BIN, "serve", "--directory", pool, "--listen", "127.0.0.1:0"], log + ".2")
        reply = http_send(addr, bad, body("BB", "again.bin", b"again"), False)
        check(b"\"state\":\"done\"" in reply, f"{kind} {n}: restart did not serve: {reply[:200]}")
        again.terminate()
        again.wait()


try:
    for kind in ("daemon", "fastcgi", "cgi"):
        for n in range(TRIALS):
            trial(kind, n)
finally:
    children.stop()
for kind in ("daemon", "fastcgi", "cgi"):
    # The trials must really cut uploads, not only race past them.
    check(outcomes.get((kind, "error"), 0) >= TRIALS // 2,
          f"{kind}: too few interrupted uploads: {outcomes}")
print("outcomes:", ", ".join(f"{k} {s}: {n}" for (k, s), n in sorted(outcomes.items())))
print(f"crash trials: {check.count} checks, {len(check.failures)} failed")
sys.exit(1 if check.failures else 0)
