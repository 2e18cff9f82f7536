"""Sockets for the test tools and the shell suites: a free loopback port,
and a reply read until the peer closes (or until it is whole).

Usage: net.py free-port   prints a free TCP port on 127.0.0.1
"""
import socket
import sys


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on (free at the time of
    asking: the caller binds it next)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def recv_all(sock, done=None, errors=(), on_error=None):
    """What sock receives until the peer closes it, or until done(data)
    holds for all that came so far. An exception of a type in `errors` (a
    timeout, say) ends the reading too, after on_error(exception) when
    given: what came before it is returned."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
            if done is not None and done(data):
                break
    except errors as e:
        if on_error is not None:
            on_error(e)
    return data


if __name__ == "__main__":
    if sys.argv[1:] != ["free-port"]:
        sys.exit(__doc__)
    print(free_port())
