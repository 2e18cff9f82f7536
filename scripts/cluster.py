"""Several hosts, one pool: the checks of scripts/test-cluster.sh.

Usage: cluster.py BIN WORK MOUNT... -- CHECK...

Starts one daemon per MOUNT (one mount of the shared volume = one host),
each writing its PID to WORK/pids, and runs the named checks:

  rising   status asked on B rises for an upload running on A
  clear    a clear sent to B for A's running upload answers 200, A's client 410
  kill     kill -9 of A's daemon: B reports `upload interrupted` within about
           1 s and the partial file is gone
  race     RACE_ROUNDS rounds of one identifier sent to A and B at once:
           exactly one 201 and one 409 each
  cli      the CLI on every mount: `path` of A's upload on every host, `clear`
           on B of A's running upload (A's client 410), `gc` on the last
           host removing what A and B stored
  load     LOAD_UPLOADS uploads on every host with pollers on every host:
           every 201'd upload reads `done` with the right sha256 on every host
           (HTTP and the CLI), `received` never decreases for one poller
           asking one host
  fleet    three hosts as a fleet is deployed, each at its own address
           (HOSTS_ADDRS, in its network namespace when HOSTS_NETNS names
           them) and on its own mount, all running as the web user: A the daemon, B
           the FastCGI responder behind its nginx, C the CGI program under
           Apache; an nginx balancer in front of them, round-robin.
           FLEET_UPLOADS uploads through the balancer, FLEET_PARALLEL at a
           time, with pollers on A, B, C and the balancer at FLEET_RATE
           polls/s in all (default 275: the issue asks for 250, and the
           pollers ask nothing until the first upload runs, about a
           second of a minute's run): every upload 201 with its sha256, every status
           200, `done` with the sha256 on every host afterwards, the stored
           file right, each host taking a share, `received` never
           decreasing for a poller asking one host
  gauges   the pool's gauges of /metrics are the same on every host, and
           the same as `fileupload metrics` on every mount
  brick    the second brick's process (CLUSTER_VOLUME, CLUSTER_BRICK_DIRS)
           killed mid-upload on A: the upload completes; the brick started
           again and healed, the stored file is right on both bricks
  tus      one tus upload across the fleet's hosts (started as for
           `fleet` when that check did not run): created on A, PATCHed on
           B, its offset read on C, a PATCH on C cut off mid-body (what
           arrived is kept), a PATCH on B with a stale offset answered 409,
           the rest sent to A; then `done` with the right sha256 on every
           host and through the balancer, the stored file right
  cut      (network namespaces only) a blip first: the last host's port
           off the bridge for BLIP s (default 5) mid-upload, and the upload
           completes, `done` with its sha256 everywhere; then the same port
           taken off mid-upload until the bricks give up: the first host
           reads `upload interrupted` once the bricks give up on it (the
           time it took is printed), no partial file is left, and once the
           network is back every host reads the upload as failed, and
           its client is not told 201
  healthz  /healthz answers 200 on every host; then, with an upload running
           on the last host, that host's Gluster client (its FUSE process,
           PIDs in CLUSTER_FUSE_PIDS, one per MOUNT) is killed: 503 there,
           200 on the first host, and the upload reported interrupted on
           the first host (the time it took is printed).
           Leaves that mount dead: run it last
Exits 1 on any failure; prints one line per check with its figures.
"""
import hashlib
import json
import multiprocessing
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "tools"))
import harness  # noqa: E402  (scripts/tools: the test tools' shared helpers)

BIN, WORK = sys.argv[1], sys.argv[2]
sep = sys.argv.index("--")
MOUNTS, CHECKS = sys.argv[3:sep], sys.argv[sep + 1:]
failures = []
daemons = []  # (Popen, address, mount)
lock = threading.Lock()
# Where the hosts are (scripts/test-cluster.sh): host I (of MOUNTS[I]) in
# network namespace HOST_NETNS[I] at HOST_ADDRS[I], this script and the
# balancer at FRONT_ADDR; without namespaces, loopback addresses.
HOST_NETNS = os.environ.get("HOSTS_NETNS", "").split()
HOST_ADDRS = (os.environ.get("HOSTS_ADDRS", "").split()
              or [f"127.0.0.{11 + i}" for i in range(len(MOUNTS))])
FRONT_ADDR = os.environ.get("CLUSTER_FRONT_ADDR") or "127.0.0.10"
STORAGE_NETNS = os.environ.get("CLUSTER_STORAGE_NETNS", "")
WEB_USER = "www-data"


def in_netns(netns, argv):
    """argv run in network namespace NETNS (none: here). `nsenter` execs
    argv in its own process, so a Popen's PID is the program's."""
    return ["nsenter", f"--net=/run/netns/{netns}", "--", *argv] if netns else argv


def on_host(i, argv, web=False):
    """argv run on host I, as the web user when `web` (switched after
    entering the namespace, which the web user may not do)."""
    if web:
        argv = ["setpriv", f"--reuid={WEB_USER}", f"--regid={WEB_USER}", "--clear-groups", *argv]
    return in_netns(HOST_NETNS[i] if HOST_NETNS else "", argv)


def fail(what):
    with lock:
        failures.append(what)
    print("FAIL:", what, file=sys.stderr, flush=True)


spawned = [0]


def start_daemon(i):
    """The daemon of host I on its mount."""
    spawned[0] += 1
    log = os.path.join(WORK, f"daemon-{spawned[0]}.log")
    mount = MOUNTS[i]
    p = subprocess.Popen(on_host(i, [BIN, "serve", "--directory", mount, "--listen",
                                     f"{HOST_ADDRS[i]}:0", "--metrics"]),
                         stderr=open(log, "a"), stdout=subprocess.DEVNULL)
    with open(os.path.join(WORK, "pids"), "a") as f:
        f.write(f"{p.pid}\n")
    return p, harness.wait_listening(p, log, seconds=10).removeprefix("http://"), mount


def request(addr, method, target, body=b"", timeout=30):
    """One HTTP/1.1 request; (status, body bytes)."""
    host, port = addr.split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(f"{method} {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
                  "Connection: close\r\n\r\n".encode() + body)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    return parse_reply(reply)


def parse_reply(reply):
    """(status, body bytes) of an HTTP/1.1 answer read until the close."""
    head, _, rest = reply.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.1 (\d+)", head)
    if re.search(rb"(?im)^transfer-encoding:\s*chunked", head):
        rest = dechunk(rest)
    return (int(m.group(1)) if m else 0), rest


def dechunk(data):
    """A chunked body's bytes (Apache chunks what a CGI program writes)."""
    out = b""
    while data:
        size, _, data = data.partition(b"\r\n")
        n = int(size.split(b";")[0], 16)
        if n == 0:
            break
        out, data = out + data[:n], data[n + 2:]
    return out


def status(addr, ident):
    code, body = request(addr, "GET", f"/upload/status?X-Progress-ID={ident}")
    try:
        return code, json.loads(body)
    except ValueError:
        return code, {"unparsable": body.decode(errors="replace")}


def clear(addr, ident):
    return request(addr, "GET", f"/upload?X-Progress-ID={ident}&clear")


def multipart(data):
    return (b"--BB\r\nContent-Disposition: form-data; name=\"f\"; filename=\"c.bin\"\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n--BB--\r\n")


class Upload(threading.Thread):
    """An upload sent in `step`-byte pieces with `pause` seconds between
    them; `code` and `reply` once it ends."""

    def __init__(self, addr, ident, data, step=65536, pause=0.0, barrier=None):
        super().__init__(daemon=True)
        self.barrier = barrier
        self.addr, self.uid, self.data = addr, ident, data
        self.body = multipart(data)
        self.step, self.pause = step, pause
        self.code, self.reply = None, None
        self.target = f"/upload?X-Progress-ID={ident}"

    def run(self):
        host, port = self.addr.split(":")
        try:
            s = socket.create_connection((host, int(port)), timeout=60)
            s.sendall((f"POST {self.target} HTTP/1.1\r\nHost: x\r\n"
                       "Content-Type: multipart/form-data; boundary=BB\r\n"
                       f"Content-Length: {len(self.body)}\r\nConnection: close\r\n\r\n").encode())
            try:
                for i in range(0, len(self.body), self.step):
                    s.sendall(self.body[i:i + self.step])
                    if i == 0 and self.barrier:
                        # Both writers have sent their first piece: they
                        # overlap however loaded the machine is.
                        try:
                            self.barrier.wait(timeout=10)
                        except threading.BrokenBarrierError:
                            pass
                        time.sleep(0.3)
                    if self.pause:
                        time.sleep(self.pause)
            except OSError:
                pass  # the server answered early and closed
            reply = b""
            try:
                while chunk := s.recv(65536):
                    reply += chunk
            except OSError:
                pass
            s.close()
        except OSError as e:
            self.code, self.reply = 0, str(e).encode()
            return
        self.code, self.reply = parse_reply(reply)


def wait_for(pred, timeout, interval=0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    return None


def ident(name):
    return f"{name}-{os.getpid()}-{random.randrange(1 << 30):x}"


def threads_named(pid, name):
    """How many of process PID's threads are called NAME."""
    count = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/comm") as f:
                count += f.read().strip() == name
        except FileNotFoundError:
            pass  # the thread ended meanwhile
    return count


def check_rising():
    (_, a, _), (pb, b, _) = daemons[0], daemons[1]
    i = ident("rising")
    up = Upload(a, i, os.urandom(4 << 20), step=65536, pause=0.02)
    up.start()
    seen = []
    while up.is_alive():
        code, st = status(b, i)
        if code != 200:
            fail(f"rising: status on B answered {code} {st}")
        if st.get("state") == "uploading":
            seen.append(st.get("received", 0))
        time.sleep(0.1)
    up.join()
    rises = sum(1 for x, y in zip(seen, seen[1:]) if y > x)
    drops = sum(1 for x, y in zip(seen, seen[1:]) if y < x)
    if up.code != 201:
        fail(f"rising: upload answered {up.code} {up.reply[:200]!r}")
    if rises < 3 or drops:
        fail(f"rising: received seen on B {seen}")
    code, st = status(b, i)
    if st.get("state") != "done":
        fail(f"rising: status on B after 201: {st}")
    # On a shared pool no status connection is parked between requests
    # (README, "The daemon"): a status read there may wait on other hosts,
    # and the threads that answer parked connections must never wait.
    parking = threads_named(pb.pid, "parking")
    if parking:
        fail(f"rising: B, on the shared pool, runs {parking} threads for parked connections")
    print(f"rising: {len(seen)} polls on B saw uploading, {rises} rises, {drops} drops; "
          f"B parks no connection", flush=True)


def check_clear(rounds=3):
    (_, a, _), (_, b, mb) = daemons[0], daemons[1]
    for n in range(rounds):
        i = ident("clear")
        up = Upload(a, i, os.urandom(8 << 20), step=65536, pause=0.02)
        up.start()
        if not wait_for(lambda: status(b, i)[1].get("state") == "uploading", 10):
            fail(f"clear {n}: B never saw uploading")
        t = time.monotonic()
        code, body = clear(b, i)
        took = time.monotonic() - t
        up.join()
        if code != 200 or json.loads(body or b"{}") != {"success": True}:
            fail(f"clear {n}: clear on B answered {code} {body[:200]!r}")
        if up.code != 410:
            fail(f"clear {n}: A's client got {up.code} {up.reply[:200]!r}")
        gone = wait_for(lambda: not os.path.exists(os.path.join(mb, i)), 3)
        st = status(b, i)[1]
        if not gone or st != {"state": "starting"}:
            fail(f"clear {n}: after the clear the bucket exists={not gone}, status {st}")
        print(f"clear {n}: B answered {code} in {took:.2f} s, A's client {up.code}", flush=True)


def partial_files(mount, ident):
    """The `.part` files left in an upload's bucket on a mount."""
    bucket = os.path.join(mount, ident)
    return [n for n in os.listdir(bucket) if n.endswith(".part")] if os.path.isdir(bucket) else []


def judged_interrupted(addr, mount, ident, since, timeout, interval, trace=None):
    """Polls `addr` until it says `upload interrupted` of `ident` (at most
    `timeout` s); whether it did, the seconds from `since`, and the partial
    files then left on `mount`. Each poll goes to `trace` when given."""
    def said():
        code, st = status(addr, ident)
        if trace is not None:
            trace.append((round(time.monotonic() - since, 3), code, st.get("state"),
                          st.get("received"), st.get("error")))
        return st.get("error") == "upload interrupted"
    seen = wait_for(said, timeout, interval)
    return seen, time.monotonic() - since, partial_files(mount, ident)


def check_kill():
    pa, a, ma = daemons[0]
    _, b, mb = daemons[1]
    i = ident("kill")
    up = Upload(a, i, os.urandom(64 << 20), step=65536, pause=0.01)
    up.start()
    if not wait_for(lambda: (status(b, i)[1].get("received") or 0) >= 1 << 20, 10):
        fail("kill: B never saw 1 MiB received")
    pa.kill()
    trace = []
    got, took, parts = judged_interrupted(b, mb, i, time.monotonic(), 10, 0.01, trace)
    if os.environ.get("KILL_TRACE"):
        print("kill: polls on B after kill -9:", trace[:3], "...", trace[-3:], flush=True)
    pa.wait()
    up.join()
    if not got:
        fail(f"kill: B says {status(b, i)[1]} 10 s after kill -9")
    if parts:
        fail(f"kill: partial files left: {parts}")
    if took > 1.5:
        fail(f"kill: interrupted seen on B after {took:.2f} s")
    print(f"kill: `upload interrupted` on B {took:.3f} s after kill -9, partial files left: {len(parts)}",
          flush=True)
    daemons[0] = start_daemon(0)


def check_race(rounds):
    (_, a, _), (_, b, mb) = daemons[0], daemons[1]
    bad = 0
    for n in range(rounds):
        i = ident("race")
        both = threading.Barrier(2)
        ups = [Upload(a, i, os.urandom(256 << 10), step=16384, barrier=both),
               Upload(b, i, os.urandom(256 << 10), step=16384, barrier=both)]
        for u in ups:
            u.start()
        for u in ups:
            u.join()
        codes = sorted(u.code for u in ups)
        if codes != [201, 409]:
            bad += 1
            fail(f"race {n}: answers {[u.code for u in ups]} {[u.reply[:120] for u in ups]}")
            continue
        win = next(u for u in ups if u.code == 201)
        with open(os.path.join(mb, i, "0"), "rb") as f:
            if hashlib.sha256(f.read()).digest() != hashlib.sha256(win.data).digest():
                bad += 1
                fail(f"race {n}: the stored file is not the winner's")
    print(f"race: {rounds} rounds, {bad} wrong", flush=True)


def send_while_polling(count, batch, running, make, pollers, done):
    """Starts the `pollers`, sends `count` uploads, make(n) for the n-th,
    `batch` running at a time (a new one starts as soon as one ends, so
    that the pollers always have uploads to ask about), each in `running`
    while it runs, then sets `done` and waits for the pollers; returns the
    uploads, ended, and the seconds the sending took."""
    for t in pollers:
        t.start()
    t0 = time.monotonic()
    sent, live, n = [], [], 0
    while n < count or live:
        while n < count and len(live) < batch:
            u = make(n)
            n += 1
            with lock:
                running[u.uid] = u
            u.start()
            live.append(u)
        ended = [u for u in live if not u.is_alive()]
        if not ended:
            time.sleep(0.002)
            continue
        for u in ended:
            u.join()
            live.remove(u)
            with lock:
                running.pop(u.uid, None)
            sent.append(u)
    done.set()
    took = time.monotonic() - t0
    for t in pollers:
        t.join()
    return sent, took


def check_load(uploads, pollers_per_host, rate):
    hosts = [d[1] for d in daemons]
    running = {}  # ident -> Upload
    done = threading.Event()
    backwards, errors500, polls = [], [], [0]
    wrong_verdicts = []

    def poller(addr, k):
        last = {}
        while not done.is_set():
            with lock:
                ids = list(running)
            if not ids:
                time.sleep(0.01)
                continue
            i = random.choice(ids)
            try:
                code, st = status(addr, i)
            except OSError as e:
                errors500.append(f"{addr} {i}: {e}")
                continue
            polls[0] += 1
            if code != 200:
                errors500.append(f"{addr} {i}: {code} {st}")
            r = st.get("received")
            if st.get("state") == "uploading" and r is not None:
                if r < last.get(i, 0):
                    backwards.append(f"{addr} {i}: {last[i]} then {r}")
                last[i] = max(r, last.get(i, 0))
            if st.get("state") == "done":
                last[i] = 1 << 62
            if st.get("error") == "upload interrupted":
                wrong_verdicts.append(f"{addr} {i}: {st}")
            if rate:
                time.sleep(1 / rate)

    threads = [threading.Thread(target=poller, args=(h, k), daemon=True)
               for h in hosts for k in range(pollers_per_host)]
    sent, took = send_while_polling(uploads, len(hosts) * 2, running, lambda n: Upload(
        hosts[n % len(hosts)], ident("load"), os.urandom(random.randrange(1 << 20, 6 << 20)),
        step=65536, pause=0.001), threads, done)
    misreported = 0
    for u in sent:
        if u.code != 201:
            fail(f"load: {u.uid} on {u.addr} answered {u.code} {u.reply[:200]!r}")
            continue
        want = hashlib.sha256(u.data).hexdigest()
        for addr, mount in [(d[1], d[2]) for d in daemons]:
            st = status(addr, u.uid)[1]
            cli = subprocess.run([BIN, "--directory", mount, "status", u.uid],
                                 capture_output=True, text=True)
            try:
                st_cli = json.loads(cli.stdout)
            except ValueError:
                st_cli = {"cli": cli.stdout + cli.stderr}
            for where, s in (("http", st), ("cli", st_cli)):
                f = (s.get("files") or [{}])[0]
                if s.get("state") != "done" or f.get("sha256") != want:
                    misreported += 1
                    fail(f"load: {u.uid} (201 on {u.addr}) reads on {addr} ({where}): {s}")
    for line in backwards[:10]:
        fail("load: received went backwards: " + line)
    for line in errors500[:10]:
        fail("load: status answered " + line)
    for line in wrong_verdicts[:10]:
        fail("load: a reader said interrupted: " + line)
    print(f"load: {len(sent)} uploads in {took:.1f} s, {polls[0]} status polls "
          f"({polls[0] / took:.0f}/s), misreported {misreported}, received backwards "
          f"{len(backwards)}, non-200 {len(errors500)}, interrupted verdicts {len(wrong_verdicts)}",
          flush=True)


HERE = os.path.dirname(os.path.abspath(__file__))


def spawn(name, argv, **kw):
    """A server in a session of its own, its output in WORK/NAME.log; the
    EXIT trap of test-cluster.sh stops its whole process group."""
    p = subprocess.Popen(argv, stdout=open(os.path.join(WORK, f"{name}.log"), "a"),
                         stderr=subprocess.STDOUT, start_new_session=True, **kw)
    with open(os.path.join(WORK, "pids"), "a") as f:
        f.write(f"-{p.pid}\n")
    fleet_servers.append(p)
    return p


fleet_servers = []


def free_port(i):
    """A port free on host I's address (asked in its namespace)."""
    if not HOST_NETNS:
        with socket.socket() as s:
            s.bind((HOST_ADDRS[i], 0))
            return s.getsockname()[1]
    ask = ("import socket; s = socket.socket(); s.bind((%r, 0)); print(s.getsockname()[1])"
           % HOST_ADDRS[i])
    return int(subprocess.run(on_host(i, [sys.executable, "-c", ask]), check=True,
                              capture_output=True, text=True).stdout)


def front_port():
    """A port free on the front's address, where this script runs."""
    with socket.socket() as s:
        s.bind((FRONT_ADDR, 0))
        return s.getsockname()[1]


def answering(addr, path, timeout=10):
    def up():
        try:
            return request(addr, "GET", path, timeout=2)[0] != 0
        except OSError:
            return False
    if not wait_for(up, timeout, 0.05):
        raise RuntimeError(f"nothing answers on {addr}{path}")


def nginx_conf(root, body):
    os.makedirs(root, exist_ok=True)
    temps = "".join(f"    {kind}_temp_path {root}/{kind};\n"
                    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = os.path.join(root, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"daemon off;\nuser {WEB_USER};\nworker_processes 1;\npid {root}/nginx.pid;\n"
                f"error_log {root}/error.log warn;\nevents {{ worker_connections 1024; }}\n"
                f"http {{\n    client_max_body_size 0;\n{temps}{body}}}\n")
    return conf


def start_fleet():
    """Hosts A, B, C and the balancer (see `fleet` above); the balancer's
    address, the hosts' addresses and their pool directories, and the
    balancer's log of which host took each request."""
    # The web user reaches the mounts and configs, and the volume's root
    # (made from the bricks' temporary directories, mode 0700).
    os.chmod(WORK, 0o755)
    os.chmod(MOUNTS[0], 0o755)
    # Not an identifier: the daemons on the volume's root never take it
    # for a bucket.
    pool = "fleet.pool"
    os.makedirs(os.path.join(MOUNTS[0], pool), mode=0o700, exist_ok=True)
    shutil.chown(os.path.join(MOUNTS[0], pool), WEB_USER, WEB_USER)
    pools = [os.path.join(m, pool) for m in MOUNTS[:3]]
    a_addr = f"{HOST_ADDRS[0]}:{free_port(0)}"
    spawn("fleet-a", on_host(0, [BIN, "serve", "--no-demo", "--directory", pools[0],
                                 "--listen", a_addr], web=True))
    fcgi = f"{HOST_ADDRS[1]}:{free_port(1)}"
    spawn("fleet-b-responder", on_host(1, [BIN, "fastcgi", "--directory", pools[1],
                                           "--listen", fcgi], web=True))
    b_addr = f"{HOST_ADDRS[1]}:{free_port(1)}"
    params = "".join(f"            fastcgi_param {k} {v};\n" for k, v in (
        ("SCRIPT_NAME", "$fastcgi_script_name"), ("PATH_INFO", "$fastcgi_path_info"),
        ("REQUEST_METHOD", "$request_method"), ("QUERY_STRING", "$query_string"),
        ("CONTENT_TYPE", "$content_type"), ("CONTENT_LENGTH", "$content_length"),
        ("SERVER_PROTOCOL", "$server_protocol"), ("REMOTE_ADDR", "$remote_addr")))
    b_conf = nginx_conf(os.path.join(WORK, "fleet-b"), f"""    access_log off;
    upstream responder {{ server {fcgi}; keepalive 8; }}
    server {{
        listen {b_addr};
        location /fleet/ {{
            fastcgi_request_buffering off;
            fastcgi_keep_conn on;
            fastcgi_split_path_info ^(/fleet)(/.*)$;
{params}            fastcgi_pass responder;
        }}
    }}
""")
    spawn("fleet-b-nginx", on_host(1, ["nginx", "-c", b_conf]))
    c_addr = f"{HOST_ADDRS[2]}:{free_port(2)}"
    apache = os.path.join(WORK, "apache")
    os.makedirs(apache, exist_ok=True)
    head = subprocess.run(
        ["bash", "-c", 'source "$0"; apache_conf_head "$1" prefork alias env cgi',
         os.path.join(HERE, "lib-apache.sh"), c_addr.split(":")[1]],
        env={**os.environ, "WORK": WORK}, check=True, capture_output=True, text=True).stdout
    head = head.replace("Listen 127.0.0.1:", f"Listen {HOST_ADDRS[2]}:")
    with open(os.path.join(apache, "httpd.conf"), "w") as f:
        f.write(head + f"""ScriptAlias /fleet "{BIN}"
<Location /fleet>
    SetEnv FILEUPLOAD_DIRECTORY "{pools[2]}"
</Location>
""")
    spawn("fleet-c-apache", on_host(2, ["apache2", "-f", os.path.join(apache, "httpd.conf"),
                                        "-DFOREGROUND"]))
    lb_addr = f"{FRONT_ADDR}:{front_port()}"
    lb_log = os.path.join(WORK, "fleet-lb", "upstream.log")
    lb_conf = nginx_conf(os.path.join(WORK, "fleet-lb"), f"""    log_format upstream '$request_method $uri $status $upstream_addr';
    access_log {lb_log} upstream;
    upstream fleet {{ server {a_addr}; server {b_addr}; server {c_addr}; keepalive 16; }}
    server {{
        listen {lb_addr};
        location /fleet/ {{
            proxy_pass http://fleet;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_request_buffering off;
            proxy_buffering off;
        }}
    }}
""")
    spawn("fleet-lb", ["nginx", "-c", lb_conf])
    for addr in (a_addr, b_addr, c_addr, lb_addr):
        answering(addr, "/fleet/upload/status?X-Progress-ID=up")
    return lb_addr, [a_addr, b_addr, c_addr], pools, lb_log


class Running(dict):
    """The uploads running, by identifier, also written to a file at each
    change, from which poller processes learn them."""

    def __init__(self, path):
        super().__init__()
        self.path = path
        self._write()

    def _write(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write("\n".join(self))
        os.replace(tmp, self.path)

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        self._write()

    def pop(self, key, default=None):
        value = super().pop(key, default)
        self._write()
        return value


def fleet_poller(addr, cross_hosts, threads, per_poller, ids_path, out_path, done):
    """One process of `threads` pollers asking `addr` for the status of
    uploads named in `ids_path`, each `per_poller` times a second, until
    `done`; writes what they saw to `out_path` as JSON. A process of its
    own: in the sender's, the pollers and the uploads' threads share one
    interpreter lock, and fell short of the rate asked for."""
    seen = {"polls": 0, "idle": 0, "problems": [], "backwards": [], "took": []}
    mine = threading.Lock()
    ids_cache = [0.0, []]

    def running_ids():
        with mine:
            if time.monotonic() - ids_cache[0] > 0.02:
                try:
                    with open(ids_path) as f:
                        ids_cache[1] = f.read().split()
                except OSError:
                    pass
                ids_cache[0] = time.monotonic()
            return ids_cache[1]

    def poller():
        last = {}
        due = time.monotonic()
        while not done.is_set():
            # Paced by the clock, not by a sleep after each poll: a slow
            # answer does not lower the rate asked for.
            due += 1 / per_poller
            time.sleep(max(0.0, due - time.monotonic()))
            ids = running_ids()
            if not ids:
                with mine:
                    seen["idle"] += 1
                continue
            i = random.choice(ids)
            asked = time.monotonic()
            try:
                code, body = request(addr, "GET", f"/fleet/upload/status?X-Progress-ID={i}")
                st = json.loads(body)
            except (OSError, ValueError) as e:
                seen["problems"].append(f"status of {i} on {addr}: {e}")
                continue
            with mine:
                seen["polls"] += 1
                seen["took"].append(time.monotonic() - asked)
            if code != 200:
                seen["problems"].append(f"status of {i} on {addr}: {code} {st}")
            if st.get("error") == "upload interrupted":
                seen["problems"].append(f"status of {i} on {addr} says interrupted: {st}")
            r = st.get("received") if st.get("state") == "uploading" else None
            if st.get("state") == "done":
                r = 1 << 62
            if r is not None:
                if r < last.get(i, 0) and not cross_hosts:
                    seen["backwards"].append(f"{addr} {i}: {last[i]} then {r}")
                last[i] = max(r, last.get(i, 0))

    pool = [threading.Thread(target=poller, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    with open(out_path, "w") as f:
        json.dump(seen, f)


def check_fleet(uploads, parallel, rate):
    lb, hosts, pools, lb_log = fleet()
    names = dict(zip(hosts, "ABC"))
    running = Running(os.path.join(WORK, "fleet.running"))
    done = multiprocessing.Event()

    # Enough pollers that each asks about once a second: one that waits
    # for a slow answer (a CGI process under load took 600 ms at the
    # median, 4.7 s at p99) still keeps the rate asked for in all. With 8
    # a second (32 pollers for 250/s) the runs reached 165 to 220 polls/s,
    # with 4 a second 194 to 206, with 2 a second 226 (the CGI host 42/s).
    per_host = max(4, round(rate / (len(hosts) + 1)))
    per_poller = rate / (per_host * (len(hosts) + 1))
    outs = [os.path.join(WORK, f"fleet.polls.{n}") for n in range(len(hosts) + 1)]
    pollers = [multiprocessing.Process(
        target=fleet_poller, args=(h, h == lb, per_host, per_poller, running.path, out, done))
        for h, out in zip(hosts + [lb], outs)]
    def through_balancer(_):
        i = ident("fleet")
        u = Upload(lb, i, os.urandom(random.randrange(64 << 10, 2 << 20)), step=65536,
                   pause=0.002)
        u.target = f"/fleet/upload?X-Progress-ID={i}"
        return u
    sent, took = send_while_polling(uploads, parallel, running, through_balancer, pollers, done)
    problems, backwards, polls, by_host = [], [], [0], []
    for p, out, name in zip(pollers, outs, [names[h] for h in hosts] + ["balancer"]):
        if p.exitcode != 0:
            problems.append(f"a poller process ended with {p.exitcode}")
            continue
        with open(out) as f:
            seen = json.load(f)
        polls[0] += seen["polls"]
        times = sorted(seen["took"]) or [0.0]
        by_host.append(f"{name} {seen['polls']} (idle ticks {seen['idle']}, "
                       f"p50 {times[len(times) // 2] * 1000:.0f} ms, "
                       f"p99 {times[int(len(times) * 0.99)] * 1000:.0f} ms)")
        problems += seen["problems"]
        backwards += seen["backwards"]
    misreported = 0
    for u in sent:
        want = hashlib.sha256(u.data).hexdigest()
        try:
            answer = json.loads(u.reply)
        except ValueError:
            answer = {}
        if u.code != 201 or answer.get("files", [{}])[0].get("sha256") != want:
            misreported += 1
            fail(f"fleet: {u.uid} answered {u.code} {u.reply[:200]!r}")
            continue
        for addr in hosts:
            code, body = request(addr, "GET", f"/fleet/upload/status?X-Progress-ID={u.uid}")
            st = json.loads(body or b"{}")
            if code != 200 or st.get("state") != "done" or st["files"][0].get("sha256") != want:
                misreported += 1
                fail(f"fleet: {u.uid} reads on {names[addr]}: {code} {st}")
        with open(os.path.join(pools[0], u.uid, "0"), "rb") as f:
            if hashlib.sha256(f.read()).hexdigest() != want:
                fail(f"fleet: the stored file of {u.uid} is not what was sent")
    took_by = {h: 0 for h in hosts}
    with open(lb_log) as f:
        for line in f:
            method, uri, code, upstream = (line.split() + ["", "", "", ""])[:4]
            if method == "POST" and uri == "/fleet/upload" and upstream in took_by:
                took_by[upstream] += 1
    if min(took_by.values()) == 0 or sum(took_by.values()) != uploads:
        fail(f"fleet: uploads by host {took_by}, {uploads} sent")
    for line in problems[:10]:
        fail("fleet: " + line)
    for line in backwards[:10]:
        fail("fleet: received went backwards on one host: " + line)
    shares = ", ".join(f"{names[h]} {n}" for h, n in took_by.items())
    print(f"fleet: {len(sent)} uploads through the balancer in {took:.1f} s ({shares}), "
          f"{polls[0]} status polls ({polls[0] / took:.0f}/s) on A, B, C and the balancer, "
          f"misreported {misreported}, other problems {len(problems)}, received backwards "
          f"on one host {len(backwards)}; polls by host: {', '.join(by_host)}", flush=True)
fleet_started = []


def fleet():
    """The fleet of start_fleet, started once."""
    if not fleet_started:
        fleet_started.append(start_fleet())
    return fleet_started[0]


def tus(addr, method, target, headers=(), body=b"", send=None):
    """One tus request: (status, headers with lower-case names, body).
    With `send`, only that many bytes of the body are sent before the
    connection is closed, and (0, {}, b"") is returned."""
    host, port = addr.split(":")
    head = [f"{method} {target} HTTP/1.1", "Host: x", "Tus-Resumable: 1.0.0",
            f"Content-Length: {len(body)}", "Connection: close", *headers]
    with socket.create_connection((host, int(port)), timeout=60) as s:
        s.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        if send is not None:
            s.sendall(body[:send])
            # Time for the server to read what was sent (a reset drops what
            # its kernel holds unread), then a reset, not a FIN: the client
            # is gone, as when a network breaks.
            time.sleep(1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            return 0, {}, b""
        s.sendall(body)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    head, _, rest = reply.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    m = re.match(r"HTTP/1\.1 (\d+)", lines[0])
    fields = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    return (int(m.group(1)) if m else 0), fields, rest


def check_tus():
    lb, hosts, pools, _ = fleet()
    a, b, c = hosts
    data = os.urandom(12 << 20)
    mib = 1 << 20
    patch = ["Content-Type: application/offset+octet-stream"]
    code, h, _ = tus(a, "POST", "/fleet/files", [f"Upload-Length: {len(data)}",
                                                 "Upload-Metadata: filename Y3Jvc3MuYmlu"])
    if code != 201 or "location" not in h:
        fail(f"tus: creation on A answered {code} {h}")
        return
    i = h["location"].rsplit("/", 1)[1]
    url = f"/fleet/files/{i}"
    code, h, _ = tus(b, "PATCH", url, patch + ["Upload-Offset: 0"], data[:4 * mib])
    if code != 204 or h.get("upload-offset") != str(4 * mib):
        fail(f"tus: PATCH on B answered {code} {h}")
    code, h, _ = tus(c, "HEAD", url)
    if code != 200 or h.get("upload-offset") != str(4 * mib) or h.get("upload-length") != str(len(data)):
        fail(f"tus: HEAD on C after B's PATCH answered {code} {h}")
    tus(c, "PATCH", url, patch + [f"Upload-Offset: {4 * mib}"], data[4 * mib:8 * mib], send=2 * mib)
    code, h, _ = tus(b, "PATCH", url, patch + ["Upload-Offset: 0"], data[:mib])
    if code not in (409, 423):
        fail(f"tus: a PATCH on B at offset 0 answered {code} {h}")
    # Until C's CGI process has seen its client go and saved (423 while
    # it writes), then the rest from the offset A reports.
    # C's CGI process keeps some of what arrived: more than 4 MiB, once
    # it has saved (until then HEAD may say 4 MiB, and a PATCH 423).
    heads = []

    def resumed():
        code, h, _ = tus(a, "HEAD", url)
        heads.append((code, h.get("upload-offset")))
        offset = int(h.get("upload-offset", "-1"))
        if code != 200 or not 4 * mib < offset <= 6 * mib:
            return None
        code, h, _ = tus(a, "PATCH", url, patch + [f"Upload-Offset: {offset}"], data[offset:])
        return None if code == 423 else (offset, code, h)
    got = wait_for(resumed, 20, 0.2)
    if not got:
        fail(f"tus: the rest could not be sent to A; HEAD on A answered {heads[-5:]}")
        return
    offset, code, h = got
    if code != 204 or h.get("upload-offset") != str(len(data)):
        fail(f"tus: the last PATCH on A answered {code} {h}")
    want = hashlib.sha256(data).hexdigest()
    for addr in hosts + [lb]:
        code, body = request(addr, "GET", f"/fleet/upload/status?X-Progress-ID={i}")
        st = json.loads(body or b"{}")
        if code != 200 or st.get("state") != "done" or st["files"][0].get("sha256") != want:
            fail(f"tus: status of {i} on {addr}: {code} {st}")
    with open(os.path.join(pools[0], i, "0"), "rb") as f:
        right = hashlib.sha256(f.read()).hexdigest() == want
    if not right:
        fail("tus: the stored file is not what was sent")
    print(f"tus: created on A, 4 MiB on B, a PATCH cut on C kept {offset - 4 * mib} bytes, "
          f"the rest on A from {offset}; done with the right sha256 on A, B, C and the balancer, "
          f"the stored file right: {right}", flush=True)


def pool_gauges(text):
    """The fileupload_pool_* samples of a Prometheus text exposition."""
    return {line.rsplit(" ", 1)[0]: line.rsplit(" ", 1)[1]
            for line in text.splitlines() if line.startswith("fileupload_pool_")}


def check_gauges():
    seen = {}
    for _, addr, mount in daemons:
        code, body = request(addr, "GET", "/metrics")
        if code != 200:
            fail(f"gauges: /metrics on {addr} answered {code}: {body[:200]!r}")
            continue
        seen[f"/metrics of {addr}"] = pool_gauges(body.decode())
        r = cli(mount, "metrics")
        if r.returncode != 0:
            fail(f"gauges: `fileupload metrics` on {mount}: {r.returncode} {r.stderr!r}")
            continue
        seen[f"`fileupload metrics` on {mount}"] = pool_gauges(r.stdout)
    first = next(iter(seen.values()), {})
    if len(first) != 5:
        fail(f"gauges: not the five pool gauges: {first}")
    for where, gauges in seen.items():
        if gauges != first:
            fail(f"gauges: {where} differs: {gauges} against {first}")
    done = first.get('fileupload_pool_buckets{state="done"}')
    print(f"gauges: {len(seen)} readings alike: {done} buckets done, "
          f"{first.get('fileupload_pool_stored_bytes')} bytes stored", flush=True)


def check_healthz():
    for _, addr, _ in daemons:
        code, body = request(addr, "GET", "/healthz")
        if code != 200:
            fail(f"healthz: {addr} answered {code} {body!r} with every mount up")
    fuse = os.environ.get("CLUSTER_FUSE_PIDS", "").split()
    if len(fuse) != len(MOUNTS):
        fail(f"healthz: CLUSTER_FUSE_PIDS gives {len(fuse)} PIDs for {len(MOUNTS)} mounts")
        return
    (_, a, a_mount), (_, lost, lost_mount) = daemons[0], daemons[-1]
    i = ident("lost")
    up = Upload(lost, i, os.urandom(64 << 20), step=65536, pause=0.01)
    up.start()
    if not wait_for(lambda: (status(a, i)[1].get("received") or 0) >= 1 << 20, 10):
        fail("healthz: the first host never saw 1 MiB of the last host's upload")
    os.kill(int(fuse[-1]), signal.SIGKILL)
    t = time.monotonic()
    answers = []

    def unhealthy():
        answers.append(request(lost, "GET", "/healthz"))
        return answers[-1][0] == 503
    got = wait_for(unhealthy, 10, 0.05)
    took = time.monotonic() - t
    if not got:
        fail(f"healthz: the host without its mount answered {answers[-1]} for 10 s")
    code, body = request(a, "GET", "/healthz")
    if code != 200:
        fail(f"healthz: the first host answered {code} {body!r} once another lost its mount")
    reason = json.loads(answers[-1][1]).get("error", "") if got else ""
    # The bricks drop a client's locks when its connections close (a
    # killed client) or after network.ping-timeout (a vanished host).
    seen, interrupted_after, parts = judged_interrupted(a, a_mount, i, t, 60, 0.05)
    up.join()
    if not seen:
        fail(f"healthz: the first host says {status(a, i)[1]} of the lost host's upload")
    if parts:
        fail(f"healthz: partial files of the lost host's upload left: {parts}")
    print(f"lost client: the upload on the host whose Gluster client was killed reads "
          f"`upload interrupted` on the first host {interrupted_after:.3f} s after; its client "
          f"got {up.code}; partial files left: {len(parts)}", flush=True)
    # A dead FUSE mount stays in the mount table: take it out, so that the
    # teardown does not meet it.
    subprocess.run(["umount", "-l", lost_mount], capture_output=True)
    print(f"healthz: 200 on {len(daemons)} hosts; 503 on the host whose Gluster client was "
          f"killed {took:.3f} s after ({reason!r}), 200 on the first", flush=True)


def error_of(body):
    """The `error` of a JSON answer's body, or its first bytes."""
    try:
        return json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return body[:100]


def check_cut():
    """The last host's network taken away mid-upload: its port leaves the
    bridge, so that its packets go nowhere and nothing tells anyone, as
    when a host loses power or its switch. The bricks drop its locks once
    they judge it gone; the first host must then read `upload interrupted`
    (the time it took is printed), and the partial file is removed. The
    network given back, every host must read the upload as failed, and the
    cut host's client must not be told 201.

    First, a blip: the same cut for BLIP seconds only, shorter than the
    bricks' patience. The upload must go on where it was and complete: 201
    with its sha256, `done` on every host, the stored file right."""
    if not HOST_NETNS:
        print("cut: skipped (needs network namespaces)", flush=True)
        return
    (_, a, a_mount), (_, lost, lost_mount) = daemons[0], daemons[-1]
    port = f"bh{len(HOST_NETNS)}"  # the bridge's end of its pair (lib-cluster.sh)

    def link(*how):
        subprocess.run(in_netns(STORAGE_NETNS, ["ip", "link", "set", "dev", port, *how]), check=True)
    blip = float(os.environ.get("BLIP", "5"))
    i = ident("blip")
    data = os.urandom(16 << 20)
    want = hashlib.sha256(data).hexdigest()
    up = Upload(lost, i, data, step=65536, pause=0.005)
    up.start()
    if not wait_for(lambda: (status(a, i)[1].get("received") or 0) >= 1 << 20, 20):
        fail("cut: the first host never saw 1 MiB of the blip's upload")
    link("nomaster")
    try:
        time.sleep(blip)
        during = status(a, i)[1]
    finally:
        link("master", "br0")
    up.join(timeout=120)
    ends = [status(addr, i)[1] for _, addr, _ in daemons]
    try:
        answer = json.loads(up.reply)
    except (ValueError, TypeError):
        answer = {}
    if up.code != 201 or answer.get("files", [{}])[0].get("sha256") != want:
        fail(f"cut: after a blip of {blip} s the upload answered {up.code} {up.reply[:200]!r}")
    for st in ends:
        if st.get("state") != "done" or st["files"][0].get("sha256") != want:
            fail(f"cut: after a blip the hosts say {ends}")
            break
    else:
        with open(os.path.join(lost_mount, i, "0"), "rb") as f:
            if hashlib.sha256(f.read()).hexdigest() != want:
                fail("cut: after a blip the stored file differs from the one sent")
    print(f"cut: a blip of {blip:.0f} s mid-upload: the first host read {during.get('state')!r} "
          f"meanwhile; the upload answered {up.code}, done with the right sha256 on every host",
          flush=True)
    i = ident("cut")
    data = os.urandom(32 << 20)
    up = Upload(lost, i, data, step=65536, pause=0.01)
    up.start()
    if not wait_for(lambda: (status(a, i)[1].get("received") or 0) >= 1 << 20, 20):
        fail("cut: the first host never saw 1 MiB of the last host's upload")
    link("nomaster")
    t = time.monotonic()
    trace = []
    try:
        seen, after, parts = judged_interrupted(a, a_mount, i, t, 180, 0.2, trace)
    finally:
        link("master", "br0")
    back = time.monotonic()
    up.join(timeout=180)
    answered = time.monotonic() - back
    if up.is_alive():
        fail("cut: the cut host's client had no answer 180 s after the network came back")
    # The cut host's Gluster client reconnects a few seconds after the
    # network is back; until then its status requests answer 500 of its
    # own pool (not of the upload).
    if not wait_for(lambda: status(lost, i)[0] == 200, 60, 0.5):
        fail(f"cut: the cut host still cannot read its pool 60 s after: {status(lost, i)}")
    end = {addr: status(addr, i)[1] for _, addr, _ in daemons}
    if not seen:
        fail(f"cut: the first host never said interrupted: {trace[-3:]}")
    # Until its verdict, the first host reads the upload as still running.
    before = [poll for poll in trace[:-1] if poll[1] != 200 or poll[2] != "uploading"]
    if before:
        fail(f"cut: before its verdict the first host read {before[:3]}")
    if parts:
        fail(f"cut: partial files left: {parts}")
    if len({json.dumps(st, sort_keys=True) for st in end.values()}) != 1:
        fail(f"cut: the hosts disagree: {end}")
    # The first host said interrupted: a 201 or a `done` would misreport.
    if up.code == 201:
        fail("cut: the client was told 201 of an upload the first host said was interrupted")
    for addr, st in end.items():
        if st.get("state") != "error":
            fail(f"cut: {addr} says {st} of an upload the first host said was interrupted")
    print(f"cut: the upload on the host whose network was cut reads `upload interrupted` on "
          f"the first host {after:.1f} s after the cut; the network given back, its client got "
          f"{up.code} {error_of(up.reply)!r} {answered:.1f} s later; every host "
          f"then says {sorted({(st.get('state'), st.get('error')) for st in end.values()})}",
          flush=True)


def gluster(*args):
    return subprocess.run(in_netns(STORAGE_NETNS, ["gluster", "--mode=script", *args]),
                          capture_output=True, text=True)


def brick_pid(volume, brick):
    """The PID of the brick process serving directory `brick`."""
    run_dir = f"/var/run/gluster/vols/{volume}"
    for name in os.listdir(run_dir):
        if name.endswith(".pid") and brick.replace("/", "-") in name:
            with open(os.path.join(run_dir, name)) as f:
                return int(f.read().strip())
    raise RuntimeError(f"no PID file for brick {brick} in {run_dir}")


def check_brick():
    volume = os.environ["CLUSTER_VOLUME"]
    bricks = os.environ["CLUSTER_BRICK_DIRS"].split()
    (_, a, _), (_, b, _) = daemons[0], daemons[1]
    i = ident("brick")
    up = Upload(a, i, os.urandom(48 << 20), step=65536, pause=0.005)
    up.start()
    if not wait_for(lambda: (status(b, i)[1].get("received") or 0) >= 4 << 20, 20):
        fail("brick: B never saw 4 MiB received")
    # The second brick: with two, the client's quorum (cluster.quorum-type
    # auto) holds while the first is up; losing the first stops writes.
    os.kill(brick_pid(volume, bricks[1]), signal.SIGKILL)
    t = time.monotonic()
    up.join()
    if up.code != 201:
        fail(f"brick: the upload answered {up.code} {up.reply[:200]!r} with a brick down")
    started = gluster("volume", "start", volume, "force")
    if started.returncode != 0:
        fail(f"brick: the brick did not start again: {started.stderr}")
    gluster("volume", "heal", volume)

    def healed():
        info = gluster("volume", "heal", volume, "info").stdout
        counts = re.findall(r"Number of entries: (\d+)", info)
        return len(counts) == 2 and all(c == "0" for c in counts)
    if not wait_for(healed, 120, 0.5):
        fail(f"brick: not healed after 120 s: {gluster('volume', 'heal', volume, 'info').stdout}")
    took = time.monotonic() - t
    want = hashlib.sha256(up.data).hexdigest()
    on_bricks = []
    for brick in bricks:
        with open(os.path.join(brick, i, "0"), "rb") as f:
            on_bricks.append(hashlib.sha256(f.read()).hexdigest())
    if on_bricks != [want, want]:
        fail(f"brick: the stored file on the bricks {on_bricks}, sent {want}")
    st = status(b, i)[1]
    if st.get("state") != "done" or st["files"][0].get("sha256") != want:
        fail(f"brick: B reads {st}")
    print(f"brick: the second brick killed mid-upload; the upload answered {up.code}; brick "
          f"back and healed {took:.1f} s after the kill; the file right on both bricks: "
          f"{on_bricks == [want, want]}", flush=True)


def cli(mount, *args):
    return subprocess.run([BIN, "--directory", mount, *args], capture_output=True, text=True)


def check_cli():
    (_, a, _), (_, b, mb), (_, _, mc) = daemons[0], daemons[1], daemons[-1]
    i = ident("cli")
    data = os.urandom(1 << 20)
    up = Upload(a, i, data)
    up.run()
    if up.code != 201:
        fail(f"cli: upload answered {up.code}")
    for _, _, m in daemons:
        r = cli(m, "path", i)
        path = r.stdout.strip()
        ok = r.returncode == 0 and path.startswith(m) and os.path.exists(path)
        if not ok or hashlib.sha256(open(path, "rb").read()).digest() != hashlib.sha256(data).digest():
            fail(f"cli: path on {m}: {r.returncode} {r.stdout!r} {r.stderr!r}")
    j = ident("cli-clear")
    up = Upload(a, j, os.urandom(8 << 20), pause=0.02)
    up.start()
    if not wait_for(lambda: status(b, j)[1].get("state") == "uploading", 10):
        fail("cli: B never saw uploading")
    r = cli(mb, "clear", j)
    up.join()
    if r.returncode != 0 or up.code != 410:
        fail(f"cli: clear on B: {r.returncode} {r.stderr!r}; A's client {up.code}")
    k = ident("cli-gc")
    up2 = Upload(b, k, os.urandom(1 << 20))
    up2.run()
    r = cli(mc, "gc", "--older-than", "0s")
    left = [x for x in (i, k) if os.path.exists(os.path.join(mc, x))]
    if r.returncode != 0 or left or up2.code != 201:
        fail(f"cli: gc on the last host: {r.returncode} {r.stdout!r} {r.stderr!r}, left {left}")
    print(f"cli: path on {len(daemons)} hosts, clear on B, gc on the last host: "
          f"{len(left)} left", flush=True)


try:
    for host in range(len(MOUNTS)):
        daemons.append(start_daemon(host))
    for c in CHECKS:
        if c == "rising":
            check_rising()
        elif c == "clear":
            check_clear(int(os.environ.get("CLEAR_ROUNDS", "3")))
        elif c == "cli":
            check_cli()
        elif c == "kill":
            check_kill()
        elif c == "race":
            check_race(int(os.environ.get("RACE_ROUNDS", "20")))
        elif c == "fleet":
            check_fleet(int(os.environ.get("FLEET_UPLOADS", "1000")),
                        int(os.environ.get("FLEET_PARALLEL", "8")),
                        float(os.environ.get("FLEET_RATE", "275")))
        elif c == "brick":
            check_brick()
        elif c == "gauges":
            check_gauges()
        elif c == "tus":
            check_tus()
        elif c == "healthz":
            check_healthz()
        elif c == "cut":
            check_cut()
        elif c == "load":
            check_load(int(os.environ.get("LOAD_UPLOADS", "24")),
                       int(os.environ.get("LOAD_POLLERS", "2")),
                       float(os.environ.get("LOAD_RATE", "0")))
        else:
            fail(f"unknown check {c}")
finally:
    for p in fleet_servers:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
        p.wait()
    for p, _, _ in daemons:
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
        p.wait()
print(f"cluster checks {' '.join(CHECKS)}: {len(failures)} failures", flush=True)
sys.exit(1 if failures else 0)
