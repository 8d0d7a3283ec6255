#!/usr/bin/env python3
# Echoes the request body (RFC 3875 §4.2): reads exactly CONTENT_LENGTH
# bytes from stdin, since the server need not send EOF after them, and
# copies them in 64 KiB chunks so a large body never sits in memory.
import os
import sys

CHUNK = 64 * 1024

length = int(os.environ.get("CONTENT_LENGTH") or 0)
out = sys.stdout.buffer
out.write(
    b"Content-Type: application/octet-stream\n"
    b"Content-Length: %d\n\n" % length
)
src = sys.stdin.buffer
while length > 0:
    chunk = src.read(min(CHUNK, length))
    if not chunk:
        break
    out.write(chunk)
    length -= len(chunk)
out.flush()
