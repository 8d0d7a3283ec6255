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
HEADER_SIZE = HEADER.size
BEGIN_BODY = struct.Struct(">HB5x")
END_BODY = struct.Struct(">IB3x")
# A request's last three records: the ends of FCGI_STDOUT and FCGI_STDERR (spec 3.3), then
# FCGI_END_REQUEST (spec 5.5). Packed at once, they cost one call, not three.
ENDING = struct.Struct(">" + "BBHHBx" * 3 + "IB3x")
LONG_LENGTH = struct.Struct(">I")
MAX_CONTENT = 0xFFFF
# As much as one recv asks for: a request's first records, or a record of 64 KiB and its
# header, arrive in one.
RECEIVE_SIZE = 0x10000 + 2 * HEADER_SIZE

# The keys every environ has besides the params (PEP 3333, environ variables), copied into
# each request's: one C-level update instead of seven stores. The three set per request
# hold their place here, so that the environ's order is the params, then these.
BASE_ENVIRON = {
    "wsgi.version": (1, 0),
    "wsgi.url_scheme": "http",
    "wsgi.input": None,
    "wsgi.errors": None,
    "wsgi.multithread": False,
    "wsgi.multiprocess": True,
    "wsgi.run_once": False,
}


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
        # Bytes received and not yet read as records, from `start` on. Records are sliced
        # out of it: Portico writes a request's begin, params and end of stdin at once,
        # and they cost one recv, not a read per header and per content.
        self.received = b""
        self.start = 0
        # Records held back to go out with the next ones in one send: a small response's
        # head, body and end are one write, not five (each a system call and a wake-up).
        self.pending = bytearray()

    def read(self):
        """The next record as (type, request id, content), or None once Portico closed."""
        received, start = self.received, self.start
        if len(received) - start < HEADER_SIZE:
            if not self.receive(HEADER_SIZE):
                return None
            received, start = self.received, 0
        _version, rtype, request_id, length, padding = HEADER.unpack_from(received, start)
        end = start + HEADER_SIZE + length
        if len(received) < end + padding:
            if not self.receive(HEADER_SIZE + length + padding):
                return None
            received, start, end = self.received, 0, HEADER_SIZE + length
        self.start = end + padding
        return rtype, request_id, received[start + HEADER_SIZE : end]

    def receive(self, size):
        """Receives until `size` bytes are held: False if the connection closes first."""
        held = self.received[self.start :]
        parts, total = ([held] if held else []), len(held)
        while total < size:
            try:
                chunk = self.sock.recv(max(RECEIVE_SIZE, size - total))
            except OSError as e:
                raise Disconnected(e) from e
            if not chunk:
                return False
            parts.append(chunk)
            total += len(chunk)
        # The join of one part is that part: a request that came whole is not copied.
        self.received, self.start = b"".join(parts), 0
        return True

    def take_end(self, rtype, request_id):
        """Whether the next record, if it has already come, is the empty one that ends
        stream `rtype` of the request; if so, it is read."""
        end = HEADER.pack(1, rtype, request_id, 0, 0)
        if not self.received.startswith(end, self.start):
            return False
        self.start += HEADER_SIZE
        return True

    def write(self, rtype, request_id, data=b"", flush=True):
        """Writes a record (or several, for data past 64 KiB); with flush=False it waits
        for the next write that flushes, so that both go out in one send."""
        out = self.pending
        # Header and content joined first: data that is not bytes fails before any of
        # its record is pending.
        if len(data) <= MAX_CONTENT:
            out += HEADER.pack(1, rtype, request_id, len(data), 0) + data
        else:
            for start in range(0, len(data), MAX_CONTENT):
                chunk = data[start : start + MAX_CONTENT]
                out += HEADER.pack(1, rtype, request_id, len(chunk), 0) + chunk
        if flush:
            self.flush()

    def end(self, request_id, app_status):
        """Ends a request (ENDING) with whatever is pending, in one send."""
        self.pending += ENDING.pack(1, STDOUT, request_id, 0, 0, 1, STDERR, request_id, 0, 0,
                                    1, END_REQUEST, request_id, END_BODY.size, 0,
                                    app_status, REQUEST_COMPLETE)
        self.flush()

    def flush(self):
        out, self.pending = self.pending, bytearray()
        try:
            self.sock.sendall(out)
        except OSError as e:
            raise Disconnected(e) from e

    def close(self):
        self.sock.close()


def long_length(data, i):
    """A length of four bytes, its high bit set (spec 3.4)."""
    return LONG_LENGTH.unpack_from(data, i)[0] & 0x7FFFFFFF


def decode_pairs(data):
    """Name-value pairs (spec 3.4) as a dict of bytes; a name that comes again takes the
    later value. The persistent CGI runner decodes every request's params with it."""
    data = bytes(data)
    pairs, i, end = {}, 0, len(data)
    while i < end:
        n = data[i]
        if n < 0x80:
            i += 1
        else:
            n, i = long_length(data, i), i + 4
        m = data[i]
        if m < 0x80:
            i += 1
        else:
            m, i = long_length(data, i), i + 4
        value = i + n
        pairs[data[i:value]] = data[value : value + m]
        i = value + m
    return pairs


def decode_environ(data):
    """Name-value pairs (spec 3.4) as a dict of native strings, the bytes decoded as
    latin-1 (PEP 3333, unicode issues); a name that comes again takes the later value.

    Latin-1 maps each byte to one character, so the data is decoded once and the names and
    values are slices of that string at their bytes' offsets, not each decoded on its own.
    The loop is decode_pairs' with the usual case, both lengths short, tested at once.
    """
    text = data.decode("latin-1")
    environ, i, end = {}, 0, len(data)
    while i < end:
        n = data[i]
        m = data[i + 1]
        if (n | m) < 0x80:
            name = i + 2
        else:
            if n < 0x80:
                i += 1
            else:
                n, i = long_length(data, i), i + 4
            m = data[i]
            if m < 0x80:
                name = i + 1
            else:
                m, name = long_length(data, i), i + 4
        value = name + n
        i = value + m
        environ[text[name:value]] = text[value:i]
    return environ


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
        # A view, so that taking the part the app has read off the front copies nothing.
        self.buffer = memoryview(b"")
        self.done = False

    def readable(self):
        return True

    def readinto(self, target):
        while not self.buffer and not self.done:
            chunk = self.request.next_stdin()
            if chunk:
                self.buffer = memoryview(chunk)
            else:
                self.done = True
        n = min(len(target), len(self.buffer))
        target[:n] = self.buffer[:n]
        self.buffer = self.buffer[n:]
        return n


class NoInput(io.BufferedIOBase):
    """wsgi.input of a request whose FCGI_STDIN had ended, empty, before the app was
    called (a GET's: Portico sends its end with the params): every read is empty.

    It holds no state, so one serves every request and thread, and a request without a
    body costs no reader and no buffer. close() leaves it open for the next request: the
    app does not own wsgi.input (wsgiref.validate forbids closing it).
    """

    def readable(self):
        return True

    def read(self, size=-1):
        return b""

    read1 = peek = readline = read

    def readinto(self, target):
        return 0

    readinto1 = readinto

    def readlines(self, hint=-1):
        return []

    def close(self):
        pass


NO_INPUT = NoInput()


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
        # The app's status and headers from start_response, and whether they are sent.
        self.status = self.headers = None
        self.sent = False

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
        """The app's environ (PEP 3333): the params, then the wsgi.* keys."""
        environ = decode_environ(self.params)
        environ.update(BASE_ENVIRON)
        scheme = environ.get("REQUEST_SCHEME")
        if not scheme:
            https = environ.get("HTTPS", "").lower() in ("on", "1")
            scheme = "https" if https else "http"
        environ["wsgi.url_scheme"] = scheme
        if self.conn.take_end(STDIN, self.id):
            self.stdin_ended = True
            environ["wsgi.input"] = NO_INPUT
        else:
            environ["wsgi.input"] = io.BufferedReader(Input(self))
        environ["wsgi.errors"] = Errors(self)
        environ.setdefault("SCRIPT_NAME", "")
        environ.setdefault("PATH_INFO", "")
        return environ

    def run(self, app):
        """One request, from the app's call to END_REQUEST."""
        app_status = self.respond(app, self.environ())
        # The app may not have read all of its input; the rest is read and dropped.
        while self.next_stdin():
            pass
        self.conn.end(self.id, app_status)

    def start_response(self, status, headers, exc_info=None):
        """The app's start_response (PEP 3333): its write(), the head kept until the
        first block of the body, or the response's end."""
        if exc_info:
            try:
                # PEP 3333 (the start_response() callable): once the head is out the
                # error cannot change it, so it goes back to the app; before that,
                # the new status and headers replace the old ones.
                if self.sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response called twice without exc_info")
        self.status, self.headers = status, headers
        return self.write

    def write(self, data, last=False):
        """The app's write() (PEP 3333); with last=True, the block waits for the
        response's end records, to go out with them."""
        if self.status is None:
            raise AssertionError("write() before start_response()")
        if not self.sent:
            fields = "".join([f"{name}: {value}\r\n" for name, value in self.headers])
            head = f"Status: {self.status}\r\n{fields}\r\n"
            # With a block, the head goes out with it.
            flush = not data and not last
            self.conn.write(STDOUT, self.id, head.encode("latin-1"), flush=flush)
            self.sent = True
        if data:
            self.conn.write(STDOUT, self.id, data, flush=not last)

    def respond(self, app, environ):
        """Calls the app and sends its response: 0, or 1 when it failed before its head.

        The iterable is closed and dropped before this returns, so whatever its close() or
        its finalizer does happens before the response ends.
        """
        try:
            result = app(environ, self.start_response)
            try:
                # PEP 3333 (buffering and streaming): each block goes out before the
                # next is asked for, and the head only with the first non-empty one. A
                # list or tuple of one block has no next: it waits for the response's end
                # records, to go out with them in one send.
                single = isinstance(result, (list, tuple)) and len(result) == 1
                for data in result:
                    if data:
                        self.write(data, last=single)
                if not self.sent:
                    self.write(b"", last=True)
            finally:
                # PEP 3333: close() is called once, on success, error or disconnect.
                if hasattr(result, "close"):
                    result.close()
        except Disconnected:
            raise
        except Exception:
            Errors(self).write(traceback.format_exc())
            if self.sent:
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
        known = [(n, VALUES[n]) for n in decode_pairs(content) if n in VALUES]
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
            role, flags = BEGIN_BODY.unpack(content)
            if request is not None:
                conn.write(END_REQUEST, request_id, END_BODY.pack(0, CANT_MPX_CONN))
            elif role != RESPONDER:
                conn.write(END_REQUEST, request_id, END_BODY.pack(0, UNKNOWN_ROLE))
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
                conn.write(END_REQUEST, request.id, END_BODY.pack(1, REQUEST_COMPLETE))
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
    BASE_ENVIRON["wsgi.multithread"] = THREADS > 1
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
