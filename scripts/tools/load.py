"""Load: concurrent uploads of random sizes plus clients polling status.

Usage: load.py NAME URL POOL SECONDS UPLOADERS POLLERS SEED

UPLOADERS threads upload files of random sizes (1 KiB to 64 MiB, log-uniform)
for SECONDS; each checks the description's sha256 and the stored file's
against what it sent, then clears the upload. POLLERS threads ask the status
of uploads in flight. Any failed request is a failure. Prints one Markdown
table row of figures: uploads/s, MB/s, status requests, status p50 and p99.
"""
import hashlib
import http.client
import json
import os
import random
import sys
import threading
import time
from urllib.parse import urlsplit

NAME, URL, POOL = sys.argv[1], sys.argv[2], sys.argv[3]
SECONDS, UPLOADERS, POLLERS, SEED = map(int, sys.argv[4:8])
MAX = 64 << 20
parts = urlsplit(URL)
BASE = parts.path.rstrip("/")
DATA = os.urandom(MAX)
lock = threading.Lock()
in_flight = set()
failures, latencies = [], []
done = {"uploads": 0, "bytes": 0}
deadline = time.monotonic() + SECONDS


def connect():
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)


def fail(what):
    with lock:
        failures.append(what)


def uploader(n):
    rng = random.Random(SEED * 1000 + n)
    count = 0
    while time.monotonic() < deadline:
        size = int(2 ** rng.uniform(10, 26))
        start = rng.randrange(0, MAX - size + 1)
        data = memoryview(DATA)[start:start + size]
        ident = f"load-{n}-{count}"
        count += 1
        head = (b"--LB\r\nContent-Disposition: form-data; name=\"f\"; filename=\"l.bin\"\r\n"
                b"Content-Type: application/octet-stream\r\n\r\n")
        tail = b"\r\n--LB--\r\n"
        chunks = [head] + [data[i:i + (1 << 20)] for i in range(0, size, 1 << 20)] + [tail]
        with lock:
            in_flight.add(ident)
        try:
            c = connect()
            c.request("POST", f"{BASE}/upload?X-Progress-ID={ident}", body=iter(chunks),
                      headers={"Content-Type": "multipart/form-data; boundary=LB",
                               "Content-Length": str(len(head) + size + len(tail))})
            r = c.getresponse()
            reply = r.read()
            c.close()
        except OSError as e:
            fail(f"{ident}: {e}")
            continue
        finally:
            with lock:
                in_flight.discard(ident)
        want = hashlib.sha256(data).hexdigest()
        if r.status != 201:
            fail(f"{ident}: {r.status} {reply[:200]!r}")
            continue
        if json.loads(reply)["files"][0]["sha256"] != want:
            fail(f"{ident}: description sha256 differs")
        with open(os.path.join(POOL, ident, "0"), "rb") as f:
            if hashlib.file_digest(f, "sha256").hexdigest() != want:
                fail(f"{ident}: stored file differs")
        c = connect()
        c.request("DELETE", f"{BASE}/upload?X-Progress-ID={ident}")
        r = c.getresponse()
        if r.status != 200:
            fail(f"{ident}: clear answered {r.status}")
        r.read()
        c.close()
        with lock:
            done["uploads"] += 1
            done["bytes"] += size


def poller(n):
    rng = random.Random(SEED * 7 + n)
    c = connect()
    while time.monotonic() < deadline:
        with lock:
            ident = rng.choice(sorted(in_flight)) if in_flight else "nobody-yet"
        t = time.monotonic()
        try:
            c.request("GET", f"{BASE}/upload/status?X-Progress-ID={ident}")
            r = c.getresponse()
            body = r.read()
        except OSError as e:
            fail(f"status {ident}: {e}")
            c = connect()
            continue
        took = time.monotonic() - t
        if r.status != 200 or "state" not in json.loads(body):
            fail(f"status {ident}: {r.status} {body[:200]!r}")
        with lock:
            latencies.append(took)
        time.sleep(0.01)


def guarded(work, n):
    """Runs a client thread; an exception that ends it (a reply that is not
    the JSON expected, a stored file missing) is a failure, not only a
    traceback on stderr."""
    try:
        work(n)
    except Exception as e:
        fail(f"{work.__name__} {n} stopped: {e!r}")


threads = [threading.Thread(target=guarded, args=(uploader, i)) for i in range(UPLOADERS)]
threads += [threading.Thread(target=guarded, args=(poller, i)) for i in range(POLLERS)]
began = time.monotonic()
for t in threads:
    t.start()
for t in threads:
    t.join()
elapsed = time.monotonic() - began
for f in failures[:20]:
    print("FAIL:", f, file=sys.stderr)
latencies.sort()
q = lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else 0
print(f"| {NAME} | {UPLOADERS} + {POLLERS} | {elapsed:.0f} s | {done['uploads']} | "
      f"{done['uploads'] / elapsed:.1f} | {done['bytes'] / elapsed / 1e6:.0f} | "
      f"{len(latencies)} | {q(0.5):.1f} ms | {q(0.99):.1f} ms | {len(failures)} |")
sys.exit(1 if failures or done["uploads"] == 0 else 0)
