"""Portico's persistent CGI runner for Python: unmodified CGI scripts kept warm.

Portico launches it for a [[cgi]] mount's `persistent.python` scripts as
    python3 portico_cgi.py
with a listening socket as fd 0 (FCGI_LISTENSOCK_FILENO, FastCGI spec 2.2), and sends each
request as FastCGI with SCRIPT_FILENAME naming the script and the same meta-variables plain
CGI would put in its environment. The FastCGI side is the WSGI adapter's (portico_wsgi.py,
written beside this file); what differs is what runs for each request.

Each script is compiled once per worker, and again when its file changes, then executed per
request as `python3 script.py` would run it: in a fresh __main__ module, so its globals
start empty every time; os.environ the request's meta-variables over the worker's own
environment (the scripts' base environment); sys.stdin the body and sys.stdout the response,
text and binary (.buffer), with the encodings Python picks for a pipe; sys.stderr Portico's
log; sys.argv [script]; its directory as the working directory and sys.path[0]. sys.exit()
ends the request. The modules it imports stay imported: that is where a Python CGI request's
time goes.

A script that does not compile is declined: a head with the Portico-Declined field and
nothing else, and Portico runs it as plain CGI instead, which reports the error as it always
did.
"""

import builtins
import io
import os
import socket
import struct
import sys
import traceback
import types

import portico_wsgi as fastcgi

# The environment Portico started the worker with: every CGI script's base, as bytes, as
# the meta-variables arrive.
BASE_ENV = {os.fsencode(name): os.fsencode(value) for name, value in os.environ.items()}
# The encodings a script's stdio gets in a process of its own: this process's, which started
# with the same environment (locale, PYTHONIOENCODING) and pipes for its stdout and stderr.
STDIN_ENCODING = (sys.stdin.encoding, sys.stdin.errors)
STDOUT_ENCODING = (sys.stdout.encoding, sys.stdout.errors)
STDERR_ENCODING = (sys.stderr.encoding, sys.stderr.errors)


class Scripts:
    """Compiled scripts by path, each compiled again when its file changes."""

    def __init__(self):
        self.cache = {}

    def code(self, path):
        """The script's code, and the directory Python puts first on sys.path for it: its
        own, symlinks resolved (resolved once, not on every request)."""
        stat = os.stat(path)
        stamp = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        cached = self.cache.get(path)
        if cached and cached[0] == stamp:
            return cached[1]
        with open(path, "rb") as file:
            source = file.read()
        # Bytes, so that the file's own coding declaration (PEP 263) decides.
        code = compile(source, path, "exec", dont_inherit=True)
        found = (code, os.path.dirname(os.path.realpath(path)))
        self.cache[path] = (stamp, found)
        return found


class Stream(io.RawIOBase):
    """FCGI_STDOUT or FCGI_STDERR as the file under a script's sys.stdout or sys.stderr."""

    def __init__(self, request, record_type):
        super().__init__()
        self.request, self.record_type = request, record_type
        # Whether a write goes out at once: while the script runs, as a pipe's would. What
        # is flushed after it ended goes out with the end of the response, in one send.
        self.eager = True

    def writable(self):
        return True

    def write(self, data):
        # An empty record would end the stream (spec 3.3); a write after the request has
        # ended (a stream the script kept) has nowhere to go.
        if data and self.request is not None:
            request = self.request
            request.conn.write(self.record_type, request.id, bytes(data), self.eager)
        return len(data)


class CgiRequest(fastcgi.Request):
    """One request: the script SCRIPT_FILENAME names, run as plain CGI would run it."""

    def run(self, scripts):
        params = fastcgi.decode_pairs(self.params)
        # As Python decodes its own environment (PEP 383).
        path = os.fsdecode(params.get(b"SCRIPT_FILENAME", b""))
        try:
            code, home = scripts.code(path)
        except Exception as error:
            self.conn.write(fastcgi.STDOUT, self.id, declined(error), flush=False)
            status = 0
        else:
            status = self.execute(code, path, home, params)
        while self.next_stdin():
            pass
        self.conn.write(fastcgi.STDOUT, self.id, flush=False)
        self.conn.write(fastcgi.STDERR, self.id, flush=False)
        end = struct.pack(">IB3x", status, fastcgi.REQUEST_COMPLETE)
        self.conn.write(fastcgi.END_REQUEST, self.id, end)

    def execute(self, code, path, home, params):
        """Runs the script; its exit status as the process's would be."""
        environ = params
        for name, value in BASE_ENV.items():
            environ.setdefault(name, value)
        set_environ(environ)
        directory = os.path.dirname(path) or "."
        os.chdir(directory)
        main = types.ModuleType("__main__")
        main.__file__ = path
        main.__builtins__ = builtins
        main.__cached__ = None
        out = Stream(self, fastcgi.STDOUT)
        err = Stream(self, fastcgi.STDERR)
        saved = (sys.stdin, sys.stdout, sys.stderr, sys.argv, sys.path[0], sys.modules["__main__"])
        sys.stdin = io.TextIOWrapper(io.BufferedReader(fastcgi.Input(self)), *STDIN_ENCODING)
        sys.stdout = io.TextIOWrapper(io.BufferedWriter(out), *STDOUT_ENCODING)
        sys.stderr = io.TextIOWrapper(io.BufferedWriter(err), *STDERR_ENCODING, line_buffering=True)
        streams = (sys.stdout, sys.stderr)
        sys.argv = [path]
        # Python puts the script's own directory, symlinks resolved, first on sys.path.
        sys.path[0] = home
        sys.modules["__main__"] = main
        status = 0
        try:
            try:
                exec(code, main.__dict__)
            except SystemExit as exit:
                status = exit_status(exit.code)
            except fastcgi.Disconnected:
                raise
            except BaseException as error:
                report(error)
                status = 1
            # What the interpreter flushes at exit: the streams the script left in sys, which
            # may wrap the ones it was given, then those.
            out.eager = err.eager = False
            for stream in (sys.stdout, sys.stderr) + streams:
                try:
                    stream.flush()
                except (ValueError, AttributeError):
                    pass
        finally:
            out.request = err.request = None
            (sys.stdin, sys.stdout, sys.stderr, sys.argv, sys.path[0],
             sys.modules["__main__"]) = saved
            sys.excepthook = sys.__excepthook__
        return status


def set_environ(environ):
    """os.environ made `environ`, names and values as bytes. Only what differs from the last
    request is set or unset: each change is a putenv(3) or unsetenv(3) for the processes a
    script starts, and replacing all of it cost more than a small script's run."""
    data = getattr(os.environb, "_data", None)
    if not isinstance(data, dict):
        for name in [name for name in os.environb if name not in environ]:
            del os.environb[name]
        for name, value in environ.items():
            if os.environb.get(name) != value:
                os.environb[name] = value
        return
    # CPython keeps os.environ and os.environb in one dict of bytes: compared with it in
    # one step each, and refilled in place in the request's order, the order of a
    # process's environment (meta-variables first, as Portico passes them to a process).
    for name in data.keys() - environ.keys():
        os.unsetenv(name)
    for name, value in environ.items() - data.items():
        os.putenv(name, value)
    data.clear()
    data.update(environ)


def exit_status(code):
    """sys.exit(code) as the interpreter ends a process with it."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def report(error):
    """An exception the script did not catch, printed as the interpreter would print it
    (through sys.excepthook, which cgitb.enable() replaces), without the runner's frame."""
    tb = error.__traceback__.tb_next if error.__traceback__ else None
    if sys.excepthook is sys.__excepthook__:
        traceback.print_exception(type(error), error, tb, file=sys.stderr)
    else:
        sys.excepthook(type(error), error, tb)


def declined(error):
    """The head by which the runner declines a script: Portico-Declined, the reason in one
    line that is a valid field value."""
    reason = ("%s: %s" % (type(error).__name__, error)).splitlines()[0][:300]
    reason = "".join(c if " " <= c <= "~" else "?" for c in reason)
    return b"Status: 502 Bad Gateway\r\nPortico-Declined: " + reason.encode() + b"\r\n\r\n"


def main():
    # fd 0 is the listening socket. A script that reads fd 0 itself, or looks there for a
    # FastCGI socket, must not find it: it moves to another descriptor, and fd 0 reads
    # nothing, like a CGI script's stdin once the body has been read.
    listener = socket.socket(fileno=os.dup(0))
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    fastcgi.serve_forever(listener, Scripts(), CgiRequest)


if __name__ == "__main__":
    main()
