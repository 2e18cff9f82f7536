"""A FastCGI client for the records no web server here sends, over a real
socket to the real responder (scripts/test-fastcgi.sh). The records
themselves are wire.py's.

Usage: fcgi_client.py PORT values       GET_VALUES and an unknown management
                                         type: prints NAME=VALUE per value,
                                         then "type 11: 42" (UNKNOWN_TYPE)
       fcgi_client.py PORT role         a role other than responder: prints
                                         the END_REQUEST's protocol status
       fcgi_client.py PORT abort ID     ABORT_REQUEST mid-upload: prints the
                                         records answered
       fcgi_client.py PORT stall ID     an upload whose web server stops
                                         sending: prints the types of the
                                         records answered before the close
A responder that does not close the connection within 10 s is said on
stdout, where the checks look.
"""
import socket
import struct
import sys
import time

import net
import wire

GET_VALUES, GET_VALUES_RESULT, ABORT_REQUEST = 9, 10, 2


def connect(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(10)
    return s


def read_records(s):
    """The (type, request id, content) of every record until the close."""
    def timed_out(_):
        # Said on stdout, where the checks look: a traceback alone would
        # leave it empty, which "stalled upload closed" expects.
        print("timeout: the responder did not close the connection")
    data = net.recv_all(s, errors=(socket.timeout,), on_error=timed_out)
    records = []
    while data:
        _, kind, rid, length, pad = struct.unpack(">BBHHBx", data[:8])
        records.append((kind, rid, data[8:8 + length]))
        data = data[8 + length + pad:]
    return records


def name_values(content):
    """The name-value pairs of PARAMS or GET_VALUES_RESULT content, in order
    (the reverse of wire.fcgi_params)."""
    def length(i):
        if content[i] < 128:
            return content[i], i + 1
        return struct.unpack(">I", content[i:i + 4])[0] & 0x7FFFFFFF, i + 4
    pairs, i = [], 0
    while i < len(content):
        n, i = length(i)
        v, i = length(i)
        pairs.append((content[i:i + n].decode(), content[i + n:i + n + v].decode()))
        i += n + v
    return pairs


# A part of an upload that never ends: CONTENT_LENGTH says 100000.
PART = b'--XX\r\nContent-Disposition: form-data; name="f"; filename="a.bin"\r\n\r\n' + b"x" * 5000


def upload_start(ident):
    return wire.fcgi_head(ident, 100000, boundary="XX") + wire.fcgi_record(5, 1, PART)


def main(port, what, ident=None):
    s = connect(port)
    if what == "values":
        names = {"FCGI_MAX_CONNS": "", "FCGI_MAX_REQS": "", "FCGI_MPXS_CONNS": ""}
        s.sendall(wire.fcgi_record(GET_VALUES, 0, wire.fcgi_params(names))
                  + wire.fcgi_record(42, 0, b""))
        time.sleep(0.5)
        s.shutdown(socket.SHUT_WR)
        for kind, rid, content in read_records(s):
            if kind == GET_VALUES_RESULT:
                for n, v in name_values(content):
                    print(n + "=" + v)
            else:
                print("type %d: %d" % (kind, content[0]))
    elif what == "role":
        s.sendall(wire.fcgi_begin(1, role=2))
        for kind, rid, content in read_records(s):
            print("type %d id %d protocol status %d" % (kind, rid, content[4]))
    elif what == "abort":
        s.sendall(upload_start(ident))
        time.sleep(0.5)
        s.sendall(wire.fcgi_record(ABORT_REQUEST, 1, b""))
        for kind, rid, content in read_records(s):
            print("type %d id %d" % (kind, rid))
    elif what == "stall":
        s.sendall(upload_start(ident))
        print(" ".join(str(kind) for kind, _, _ in read_records(s)))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(int(sys.argv[1]), *sys.argv[2:])
