"""The WSGI adapter's own Python time per request, without Portico, sockets or a kernel.

    python3 scripts/bench/wsgi-adapter.py [-n REQUESTS] [-r ROUNDS] [ADAPTER.py ...]

Each ADAPTER (src/wsgi/portico_wsgi.py by default; name an older copy beside it to compare)
serves REQUESTS requests on one kept connection whose records are the ones Portico sends:
BEGIN_REQUEST with FCGI_KEEP_CONN, its usual params, the empty PARAMS and STDIN ends, all
in one read, as they arrive in one write. The socket is a stand-in that hands over one
request per recv and drops what is sent, so the figure is the adapter's Python and nothing
else: on a machine whose cores Portico and its workers share, each microsecond of it is
a microsecond the workers cannot spend on the next request. The adapters take turns, round
after round; the best round of each is shown, in microseconds per request, for each app:
    hello   start_response, then a list of one block (what the hello benchmark runs)
    gen     a generator of two blocks
    write   two blocks through write(), then an empty list
    post    a 1 KiB form body read whole through wsgi.input
"""

import argparse
import importlib.util
import io
import os
import struct
import time

HEADER = struct.Struct(">BBHHBx")
PARAMS = [
    ("GATEWAY_INTERFACE", "CGI/1.1"), ("PATH_INFO", "/"), ("QUERY_STRING", ""),
    ("REMOTE_ADDR", "127.0.0.1"), ("REMOTE_HOST", "127.0.0.1"), ("REQUEST_METHOD", "GET"),
    ("SCRIPT_NAME", ""), ("SERVER_NAME", "127.0.0.1"), ("SERVER_PORT", "18181"),
    ("SERVER_PROTOCOL", "HTTP/1.1"), ("SERVER_SOFTWARE", "Portico/0.1.0"),
    ("REQUEST_URI", "/"), ("SCRIPT_FILENAME", "bench_wsgi:app"), ("REMOTE_PORT", "38254"),
    ("SERVER_ADDR", "127.0.0.1"), ("REQUEST_SCHEME", "http"), ("REDIRECT_STATUS", "200"),
    ("UNIQUE_ID", "752be1b3f86eb140"), ("HTTP_HOST", "127.0.0.1:18181"),
    ("HTTP_ACCEPT", "*/*"), ("HTTP_USER_AGENT", "wrk"),
]
HELLO = b"hello\n"
HEAD = [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))]
FORM = b"&".join(b"field%d=%s" % (i, b"x" * 40) for i in range(20))


def hello(environ, start_response):
    start_response("200 OK", HEAD)
    return [HELLO]


def gen(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"hello, "
    yield b"world\n"


def write(environ, start_response):
    out = start_response("200 OK", [("Content-Type", "text/plain")])
    out(b"hello, ")
    out(b"world\n")
    return []


def post(environ, start_response):
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d\n" % len(body)]


APPS = {"hello": hello, "gen": gen, "write": write, "post": post}


def record(rtype, content=b""):
    return HEADER.pack(1, rtype, 1, len(content), 0) + content


def pairs(items):
    out = bytearray()
    for name, value in items:
        name, value = name.encode("latin-1"), value.encode("latin-1")
        out += bytes([len(name), len(value)]) + name + value
    return bytes(out)


def request(app_name):
    """One request's records, as Portico writes them (FastCGI spec 3.3, 5.1)."""
    params, body = list(PARAMS), b""
    if app_name == "post":
        body = FORM
        params[5] = ("REQUEST_METHOD", "POST")
        params += [("CONTENT_TYPE", "application/x-www-form-urlencoded"),
                   ("CONTENT_LENGTH", str(len(body)))]
    begin = record(1, struct.pack(">HB5x", 1, 1))
    stdin = (record(5, body) if body else b"") + record(5)
    return begin + record(4, pairs(params)) + record(4) + stdin


class Socket:
    """A connected socket that receives `data` one request at a time and drops what is
    sent: as much of the socket API as an adapter may use."""

    def __init__(self, data, count):
        self.data, self.left, self.view = data, count, memoryview(b"")

    def recv_into(self, buffer, nbytes=0):
        if not self.view and self.left:
            self.view, self.left = memoryview(self.data), self.left - 1
        n = min(len(self.view), nbytes or len(buffer), len(buffer))
        buffer[:n] = self.view[:n]
        self.view = self.view[n:]
        return n

    def recv(self, nbytes):
        if self.view or nbytes < len(self.data):
            buffer = bytearray(nbytes)
            return bytes(buffer[: self.recv_into(buffer)])
        if not self.left:
            return b""
        self.left -= 1
        return self.data

    def makefile(self, mode="rb"):
        return io.BufferedReader(Raw(self))

    def sendall(self, data):
        pass

    def send(self, data):
        return len(data)

    def close(self):
        pass


class Raw(io.RawIOBase):
    def __init__(self, sock):
        self.sock = sock

    def readable(self):
        return True

    def readinto(self, buffer):
        return self.sock.recv_into(buffer)


def load(path):
    name = "adapter_%d" % abs(hash(path))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def per_request_us(adapter, app_name, count):
    sock = Socket(request(app_name), count)
    conn = adapter.Connection(sock)
    start = time.perf_counter()
    adapter.serve(conn, APPS[app_name])
    return (time.perf_counter() - start) / count * 1e6


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default = os.path.join(here, "..", "..", "src", "wsgi", "portico_wsgi.py")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20000, help="requests per round")
    parser.add_argument("-r", type=int, default=5, help="rounds")
    parser.add_argument("adapters", nargs="*", default=[default])
    args = parser.parse_args()
    adapters = [(os.path.relpath(path), load(path)) for path in args.adapters]
    best = {}
    for _ in range(args.r):
        for app_name in APPS:
            for path, adapter in adapters:
                us = per_request_us(adapter, app_name, args.n)
                key = (app_name, path)
                best[key] = min(best.get(key, us), us)
    print("%-6s %-40s %8s" % ("app", "adapter", "us/req"))
    for (app_name, path), us in best.items():
        print("%-6s %-40s %8.2f" % (app_name, path, us))


if __name__ == "__main__":
    main()
