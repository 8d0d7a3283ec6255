#!/bin/sh
# A client redirect with document (RFC 3875 §6.2.4): an absolute URL,
# an explicit Status and a short page for clients that do not follow it.
printf 'Status: 302 Found\n'
printf 'Location: http://example.invalid/\n'
printf 'Content-Type: text/html\n\n'
printf '<!DOCTYPE html>\n<title>Moved</title>\n<p>Moved to <a href="http://example.invalid/">http://example.invalid/</a>.</p>\n'
