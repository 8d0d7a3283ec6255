"""Portico's WSGI adapter: a FastCGI responder that serves a WSGI callable (PEP 3333).

Portico launches it for a [[wsgi]] mount as
    python3 portico_wsgi.py [--threads N] MODULE:CALLABLE [SYS_PATH_ENTRY...]
with a listening socket as fd 0 (FCGI_LISTENSOCK_FILENO, FastCGI spec 2.2). It is the
third generation of the same contract: the meta-variables CGI puts in the environment and
FastCGI sends as FCGI_PARAMS become the `environ` dict of a Python callable.

Standard library only. One request per connection at a time (FCGI_MPXS_CONNS=0). By
default one connection at a time too (FCGI_MAX_CONNS=1), so a worker is a plain process,
as WSGI's multiprocess servers run them. With --threads N, N threads each accept and serve
one connection at a time (FCGI_MAX_CONNS=N), for apps that spend their time waiting on a
database or an API; the app must then be thread-safe, which wsgi.multithread tells it.
"""

import io
import os
import socket
import struct
import sys
import threading
import traceback

BEGIN_REQUEST, ABORT_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT, STDERR = 1, 2, 3, 4, 5, 6, 7
GET_VALUES, GET_VALUES_RESULT, UNKNOWN_TYPE = 9, 10, 11
RESPONDER, KEEP_CONN = 1, 1
REQUEST_COMPLETE, CANT_MPX_CONN, UNKNOWN_ROLE = 0, 1, 3
VALUES = {b"FCGI_MAX_CONNS": b"1", b"FCGI_MAX_REQS": b"1", b"FCGI_MPXS_CONNS": b"0"}
# Connections served at once, a thread each; set once by main() before any is served.
THREADS = 1
HEADER = struct.Struct(">BBHHBx")
MAX_CONTENT = 0xFFFF


class Disconnected(Exception):
    """Portico's side of the connection closed or broke: the request cannot go on.

    Its own type, so that an app's own ConnectionError (a database that refused it) is
    the app's exception like any other, a 500 with its traceback in the log.
    """


class ResponseCut(Exception):
    """The app failed after its head was sent; the connection must close unfinished."""


class Connection:
    """Records in and out of one FastCGI connection (spec 3.3)."""

    def __init__(self, sock):
        self.sock = sock
        self.reader = sock.makefile("rb")
        # Records held back to go out with the next ones in one send: a small response's
        # head, body and end are one write, not five (each a system call and a wake-up).
        self.pending = bytearray()

    def read(self):
        try:
            header = self.reader.read(HEADER.size)
            if len(header) < HEADER.size:
                return None
            _version, rtype, request_id, length, padding = HEADER.unpack(header)
            body = self.reader.read(length + padding)
        except OSError as e:
            raise Disconnected(e) from e
        if len(body) < length + padding:
            return None
        return rtype, request_id, body[:length]

    def write(self, rtype, request_id, data=b"", flush=True):
        """Writes a record (or several, for data past 64 KiB); with flush=False it waits
        for the next write that flushes, so that both go out in one send."""
        out = self.pending
        for start in range(0, max(len(data), 1), MAX_CONTENT):
            chunk = data[start : start + MAX_CONTENT]
            out += HEADER.pack(1, rtype, request_id, len(chunk), 0) + chunk
        if not flush:
            return
        self.pending = bytearray()
        try:
            self.sock.sendall(out)
        except OSError as e:
            raise Disconnected(e) from e

    def close(self):
        self.reader.close()
        self.sock.close()


def decode_pairs(data):
    """Name-value pairs (spec 3.4)."""
    pairs, i = [], 0
    while i < len(data):
        lengths = []
        for _ in range(2):
            if data[i] & 0x80:
                lengths.append(struct.unpack(">I", data[i : i + 4])[0] & 0x7FFFFFFF)
                i += 4
            else:
                lengths.append(data[i])
                i += 1
        name = data[i : i + lengths[0]]
        value = data[i + lengths[0] : i + lengths[0] + lengths[1]]
        i += lengths[0] + lengths[1]
        pairs.append((name, value))
    return pairs


def encode_pairs(pairs):
    out = bytearray()
    for name, value in pairs:
        for length in (len(name), len(value)):
            out += bytes([length]) if length < 128 else struct.pack(">I", length | 0x80000000)
        out += name + value
    return bytes(out)


class Input(io.RawIOBase):
    """wsgi.input: FCGI_STDIN as the app reads it, record by record (PEP 3333 input)."""

    def __init__(self, request):
        self.request = request
        self.buffer = b""
        self.done = False

    def readable(self):
        return True

    def readinto(self, target):
        while not self.buffer and not self.done:
            chunk = self.request.next_stdin()
            if chunk:
                self.buffer = chunk
            else:
                self.done = True
        n = min(len(target), len(self.buffer))
        target[:n] = self.buffer[:n]
        self.buffer = self.buffer[n:]
        return n


class Errors:
    """wsgi.errors: lines on FCGI_STDERR, which Portico logs."""

    def __init__(self, request):
        self.request = request

    def write(self, text):
        self.request.conn.write(STDERR, self.request.id, text.encode("utf-8", "replace"))

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        pass


class Request:
    def __init__(self, conn, request_id, keep_conn):
        self.conn, self.id, self.keep_conn = conn, request_id, keep_conn
        self.params = bytearray()
        self.stdin_ended = False
        self.aborted = False

    def next_stdin(self):
        """The next FCGI_STDIN content, b"" once the stream has ended."""
        while not self.stdin_ended:
            record = self.conn.read()
            if record is None:
                raise Disconnected("server closed the connection")
            rtype, request_id, content = record
            if request_id == 0:
                management(self.conn, rtype, content)
            elif request_id != self.id:
                continue
            elif rtype == STDIN:
                if not content:
                    self.stdin_ended = True
                return content
            elif rtype == ABORT_REQUEST:
                self.aborted = True
                self.stdin_ended = True
        return b""

    def environ(self):
        # PEP 3333: native strings, the bytes decoded as latin-1.
        environ = {k.decode("latin-1"): v.decode("latin-1") for k, v in decode_pairs(bytes(self.params))}
        https = environ.get("HTTPS", "").lower() in ("on", "1")
        environ.update({
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": environ.get("REQUEST_SCHEME") or ("https" if https else "http"),
            "wsgi.input": io.BufferedReader(Input(self)),
            "wsgi.errors": Errors(self),
            "wsgi.multithread": THREADS > 1,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        })
        environ.setdefault("SCRIPT_NAME", "")
        environ.setdefault("PATH_INFO", "")
        return environ

    def run(self, app):
        """One request, from the app's call to END_REQUEST."""
        app_status = self.respond(app, self.environ())
        # The app may not have read all of its input; the rest is read and dropped.
        while self.next_stdin():
            pass
        self.conn.write(STDOUT, self.id, flush=False)
        self.conn.write(STDERR, self.id, flush=False)
        self.conn.write(END_REQUEST, self.id, struct.pack(">IB3x", app_status, REQUEST_COMPLETE))

    def respond(self, app, environ):
        """Calls the app and sends its response: 0, or 1 when it failed before its head.

        The iterable is closed and dropped before this returns, so whatever its close() or
        its finalizer does happens before the response ends.
        """
        state = {"status": None, "headers": None, "sent": False}

        def start_response(status, headers, exc_info=None):
            if exc_info:
                try:
                    # PEP 3333 (the start_response() callable): once the head is out the
                    # error cannot change it, so it goes back to the app; before that,
                    # the new status and headers replace the old ones.
                    if state["sent"]:
                        raise exc_info[1].with_traceback(exc_info[2])
                finally:
                    exc_info = None
            elif state["status"] is not None:
                raise AssertionError("start_response called twice without exc_info")
            state["status"], state["headers"] = status, headers
            return write

        def write(data, last=False):
            if state["status"] is None:
                raise AssertionError("write() before start_response()")
            if not state["sent"]:
                head = "Status: %s\r\n" % state["status"]
                head += "".join("%s: %s\r\n" % (k, v) for k, v in state["headers"]) + "\r\n"
                # With a block, the head goes out with it.
                flush = not data and not last
                self.conn.write(STDOUT, self.id, head.encode("latin-1"), flush=flush)
                state["sent"] = True
            if data:
                self.conn.write(STDOUT, self.id, data, flush=not last)

        try:
            result = app(environ, start_response)
            try:
                # PEP 3333 (buffering and streaming): each block goes out before the
                # next is asked for, and the head only with the first non-empty one. A
                # list or tuple of one block has no next: it waits for the response's end
                # records, to go out with them in one send.
                single = isinstance(result, (list, tuple)) and len(result) == 1
                for data in result:
                    if data:
                        write(data, last=single)
                if not state["sent"]:
                    write(b"", last=True)
            finally:
                # PEP 3333: close() is called once, on success, error or disconnect.
                if hasattr(result, "close"):
                    result.close()
        except Disconnected:
            raise
        except Exception:
            Errors(self).write(traceback.format_exc())
            if state["sent"]:
                # Part of the body is out: FastCGI has no way to say that a response
                # failed (END_REQUEST's appStatus is an exit status), so the connection
                # is closed without it, and Portico cuts the client's response short
                # rather than end it as if it were whole.
                raise ResponseCut() from None
            # The traceback is in the log; the client gets a plain 500.
            self.conn.write(STDOUT, self.id, b"Status: 500 Internal Server Error\r\n"
                            b"Content-Type: text/plain\r\n\r\nInternal Server Error\n")
            return 1
        return 0


def management(conn, rtype, content):
    if rtype == GET_VALUES:
        known = [(n, VALUES[n]) for n, _ in decode_pairs(content) if n in VALUES]
        conn.write(GET_VALUES_RESULT, 0, encode_pairs(known))
    else:
        conn.write(UNKNOWN_TYPE, 0, struct.pack(">B7x", rtype))


def serve(conn, app, request_type=Request):
    """Requests on one connection, one at a time, until it closes.

    `request_type` runs each request (`Request.run`); Portico's persistent CGI runner
    (portico_cgi.py) passes its own, which runs a CGI script instead of a WSGI app.
    """
    request = None
    while True:
        record = conn.read()
        if record is None:
            return
        rtype, request_id, content = record
        if request_id == 0:
            management(conn, rtype, content)
        elif rtype == BEGIN_REQUEST:
            role, flags = struct.unpack(">HB5x", content)
            if request is not None:
                conn.write(END_REQUEST, request_id, struct.pack(">IB3x", 0, CANT_MPX_CONN))
            elif role != RESPONDER:
                conn.write(END_REQUEST, request_id, struct.pack(">IB3x", 0, UNKNOWN_ROLE))
            else:
                request = request_type(conn, request_id, flags & KEEP_CONN)
        elif request is not None and request_id == request.id:
            if rtype == PARAMS and content:
                request.params += content
            elif rtype == PARAMS:
                # The params are complete: the app runs, reading FCGI_STDIN as it goes.
                request.run(app)
                if not request.keep_conn:
                    return
                request = None
            elif rtype == ABORT_REQUEST:
                conn.write(END_REQUEST, request.id, struct.pack(">IB3x", 1, REQUEST_COMPLETE))
                request = None


def serve_forever(listener, app, request_type=Request):
    """Accepts connections on the worker's socket and serves each until it closes."""
    while True:
        sock, _ = listener.accept()
        conn = Connection(sock)
        try:
            serve(conn, app, request_type)
        except (Disconnected, ResponseCut, OSError):
            pass
        finally:
            conn.close()


def serve_thread(listener, app):
    """serve_forever in a thread of its own. Should it fail outside any request, the worker
    would go on a thread short and nobody would know: it exits instead, with the traceback
    on stderr (Portico logs it and starts another), as the main thread's failure ends it.
    """
    try:
        serve_forever(listener, app)
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)


def threads_option(argv):
    """`--threads N` at the front of the arguments: (N, the rest)."""
    if argv[:1] != ["--threads"]:
        return 1, argv
    if len(argv) < 2 or not argv[1].isdigit() or int(argv[1]) < 1:
        sys.exit("portico_wsgi.py: --threads needs a whole number of at least 1")
    return int(argv[1]), argv[2:]


def load(spec, paths):
    module_name, _, attr = spec.partition(":")
    sys.path[:0] = paths
    module = __import__(module_name, fromlist=["_"])
    app = module
    for part in (attr or "application").split("."):
        app = getattr(app, part)
    return app


def main():
    global THREADS
    THREADS, args = threads_option(sys.argv[1:])
    if not args:
        sys.exit("usage: portico_wsgi.py [--threads N] MODULE:CALLABLE [SYS_PATH_ENTRY...]")
    VALUES[b"FCGI_MAX_CONNS"] = VALUES[b"FCGI_MAX_REQS"] = str(THREADS).encode()
    # An app that cannot be imported exits at once with the traceback on stderr, which
    # Portico logs; it stops the route rather than restarting it again and again.
    app = load(args[0], args[1:])
    listener = socket.socket(fileno=0)
    # Every thread blocks in accept() on the one listening socket and the kernel hands each
    # new connection to one of them; the main thread is one. Daemon threads: whatever ends
    # the main thread (its loop failing, SIGINT) ends the worker.
    for _ in range(THREADS - 1):
        threading.Thread(target=serve_thread, args=(listener, app), daemon=True).start()
    serve_forever(listener, app)


if __name__ == "__main__":
    main()
