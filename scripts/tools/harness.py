"""What the Python test tools share beside the bytes they send (wire.py)
and the sockets (net.py): a tally of checks, the processes they start (all
stopped at the end), waiting for a server to say where it listens, and the
status of an upload as the program reports it."""
import json
import subprocess
import sys
import time


class Checks:
    """Counts checks and keeps the failed ones, said on stderr as they come."""

    def __init__(self):
        self.count = 0
        self.failures = []

    def __call__(self, ok, what):
        self.count += 1
        if not ok:
            self.failures.append(what)
            print("FAIL:", what, file=sys.stderr)


class Children:
    """Processes started by a tool; `stop` kills those still running."""

    def __init__(self):
        self.started = []

    def spawn(self, args, **kw):
        p = subprocess.Popen(args, **kw)
        self.started.append(p)
        return p

    def start(self, args, log):
        """Spawns a daemon or responder, its stderr to the file log, and
        waits until it listens; returns it and the address it logged."""
        p = self.spawn(args, stderr=open(log, "w"))
        return p, wait_listening(p, log)

    def stop(self):
        for p in self.started:
            if p.poll() is None:
                p.kill()
            p.wait()


def wait_listening(p, log, seconds=5):
    """The address a daemon or responder logs as `… listening on ADDR`
    (waiting `seconds` at most)."""
    for _ in range(int(seconds / 0.02)):
        with open(log) as f:
            for line in f:
                if "listening on" in line and line.endswith("\n"):
                    return line.rsplit(" ", 1)[1].strip()
        if p.poll() is not None:
            break
        time.sleep(0.02)
    raise RuntimeError("server did not start: " + open(log).read())


def status(binary, pool, ident, timeout=None):
    """The status document of ident in pool, from `fileupload status`."""
    out = subprocess.run([binary, "--directory", pool, "status", ident],
                         capture_output=True, text=True, timeout=timeout)
    return json.loads(out.stdout)
