#!/bin/sh
# A non-parsed header script (RFC 3875 §5): the "nph-" prefix tells the
# server to pass the status line and headers through untouched, so the
# script writes a complete HTTP response with CRLF line endings itself.
printf 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-NPH: yes\r\n\r\nhello from nph\n'
