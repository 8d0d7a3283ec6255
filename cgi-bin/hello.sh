#!/bin/sh
# The smallest CGI document response (RFC 3875 §6.2.1): a Content-Type
# header, a blank line, then the body. Kept minimal for benchmarks.
printf 'Content-Type: text/plain\n\nhello\n'
