#!/usr/bin/env python3
# hello.py as a FastCGI responder (FastCGI spec §6.2), standard library only:
# app() is hello.py's one line, run once per request. A FastCGI server starts it
# with a listening socket as fd 0 (FCGI_LISTENSOCK_FILENO, §2.2); it serves one
# connection, and one request on it, at a time, as its FCGI_GET_VALUES answer
# says (§4.1). Started as plain CGI (fd 0 a pipe or a file) it runs app() once,
# like hello.py, so the one file works behind both gateways.
# tests/fixtures/fcgi_app.py has the full-size version of the protocol code.
import errno
import io
import socket
import struct
import sys

# Record types (§8).
BEGIN_REQUEST, ABORT_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT = 1, 2, 3, 4, 5, 6
GET_VALUES, GET_VALUES_RESULT, UNKNOWN_TYPE = 9, 10, 11
RESPONDER, KEEP_CONN = 1, 1  # FCGI_BEGIN_REQUEST role and flag (§5.1)
REQUEST_COMPLETE, CANT_MPX_CONN, UNKNOWN_ROLE = 0, 1, 3  # protocolStatus (§5.5)
VALUES = {b"FCGI_MAX_CONNS": b"1", b"FCGI_MAX_REQS": b"1", b"FCGI_MPXS_CONNS": b"0"}

# version, type, requestId, contentLength, paddingLength, reserved (§3.3)
HEADER = struct.Struct(">BBHHBx")


def app(stdout):
    stdout.write("Content-Type: text/plain\n\nhello\n")


def read_record(reader):
    """Returns (type, request_id, content), or None once the server has closed."""
    header = reader.read(HEADER.size)
    if len(header) == HEADER.size:
        _version, rtype, request_id, length, padding = HEADER.unpack(header)
        body = reader.read(length + padding)
        if len(body) == length + padding:
            return rtype, request_id, body[:length]
    return None


def record(rtype, request_id, content=b""):
    return HEADER.pack(1, rtype, request_id, len(content), 0) + content


def end_request(request_id, app_status, protocol_status=REQUEST_COMPLETE):
    return record(END_REQUEST, request_id, struct.pack(">IB3x", app_status, protocol_status))


def pair_names(data):
    """The names in FCGI_GET_VALUES' name-value pairs (§3.4, §4.1)."""
    i = 0
    while i < len(data):
        lengths = []
        for _ in range(2):  # below 128 in one byte, else in four with the top bit set
            size = 1 if data[i] < 0x80 else 4
            lengths.append(int.from_bytes(data[i : i + size], "big") & 0x7FFFFFFF)
            i += size
        yield data[i : i + lengths[0]]
        i += sum(lengths)


def management_reply(rtype, content):
    """The answer to a record with requestId 0, which concerns the connection (§4)."""
    if rtype == GET_VALUES:
        known = [(n, VALUES[n]) for n in pair_names(content) if n in VALUES]
        pairs = b"".join(bytes([len(n), len(v)]) + n + v for n, v in known)  # all short
        return record(GET_VALUES_RESULT, 0, pairs)
    return record(UNKNOWN_TYPE, 0, struct.pack(">B7x", rtype))  # §4.2


def serve(conn):
    """Serves the requests on one connection in turn, until the server closes it
    or a request that came without FCGI_KEEP_CONN has ended (§5.1)."""
    request_id, keep_conn = None, False
    with conn.makefile("rb") as reader:
        while (rec := read_record(reader)) is not None:
            rtype, rid, content = rec
            ended = None
            if rid == 0:
                conn.sendall(management_reply(rtype, content))
            elif rtype == BEGIN_REQUEST and request_id is not None:
                conn.sendall(end_request(rid, 0, CANT_MPX_CONN))
            elif rtype == BEGIN_REQUEST:
                role, flags = struct.unpack(">HB5x", content)
                request_id, keep_conn = rid, bool(flags & KEEP_CONN)
                if role != RESPONDER:
                    ended = end_request(rid, 0, UNKNOWN_ROLE)
            elif rid == request_id and rtype == STDIN and not content:
                stdout = io.StringIO()  # STDIN's empty record ends the request's input (§3.3)
                app(stdout)
                body = stdout.getvalue().encode()
                ended = record(STDOUT, rid, body) + record(STDOUT, rid) + end_request(rid, 0)
            elif rid == request_id and rtype == ABORT_REQUEST:
                ended = end_request(rid, 1)  # §5.4; 1 as for a CGI script that was stopped
            # PARAMS, STDIN content and an inactive request's records need no answer (§3.3).
            if ended:
                conn.sendall(ended)
                if not keep_conn:
                    return
                request_id = None


def fastcgi_listener():
    """fd 0 if it is a socket without a peer (libfcgi's FCGX_IsCGI test), else None."""
    try:
        sock = socket.socket(fileno=0)  # fails on a pipe, a file or a closed fd 0
        sock.getpeername()
    except OSError as err:
        return sock if err.errno == errno.ENOTCONN else None
    sock.detach()  # a connected socket as stdin is CGI too
    return None


def main():
    listener = fastcgi_listener()
    if listener is None:
        app(sys.stdout)
        return
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return  # the listening socket was closed under us
        with conn:
            try:
                serve(conn)
            except (OSError, IndexError, struct.error):
                pass  # the server went away or sent a malformed record: drop only it


if __name__ == "__main__":
    main()
