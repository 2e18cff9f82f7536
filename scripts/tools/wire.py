"""What the Python test tools send: multipart bodies, HTTP heads, FastCGI
records and CGI variables, written once for all of them."""
import struct


def body(boundary, parts):
    """A multipart body from (name, filename or None, bytes) parts."""
    out = b""
    for name, filename, data in parts:
        disposition = f"form-data; name=\"{name}\""
        if filename is not None:
            disposition += f"; filename=\"{filename}\""
        out += (f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
                "Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def http_head(ident, length, boundary="BB"):
    return (f"POST /upload?X-Progress-ID={ident} HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {length}\r\nConnection: close\r\n\r\n").encode()


def cgi_vars(ident, length, boundary="BB"):
    return {"GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": "POST", "SCRIPT_NAME": "/upload",
            "PATH_INFO": "", "QUERY_STRING": f"X-Progress-ID={ident}",
            "CONTENT_TYPE": f"multipart/form-data; boundary={boundary}",
            "CONTENT_LENGTH": str(length), "SERVER_PROTOCOL": "HTTP/1.1"}


def fcgi_record(kind, rid, content):
    out = b""
    while True:
        part, content = content[:65535], content[65535:]
        out += struct.pack(">BBHHBx", 1, kind, rid, len(part), 0) + part
        if not content:
            return out


def fcgi_params(pairs):
    b = b""
    for k, v in pairs.items():
        k, v = k.encode(), v.encode()
        for x in (k, v):
            b += bytes([len(x)]) if len(x) < 128 else struct.pack(">I", len(x) | 0x80000000)
        b += k + v
    return b


def fcgi_begin(rid=1, role=1, keep=0):
    """BEGIN_REQUEST: role 1 is the responder, keep 1 FCGI_KEEP_CONN."""
    return fcgi_record(1, rid, struct.pack(">HB5x", role, keep))


def fcgi_head(ident, length, boundary="BB"):
    """BEGIN_REQUEST (responder) and the PARAMS of a CGI upload request."""
    return (fcgi_begin() + fcgi_record(4, 1, fcgi_params(cgi_vars(ident, length, boundary)))
            + fcgi_record(4, 1, b""))


def fcgi_stdin(data):
    return fcgi_record(5, 1, data) if data else b""
