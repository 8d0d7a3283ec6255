#!/usr/bin/env python3
# The smallest CGI document response (RFC 3875 §6.2.1) in Python.
# Kept minimal for benchmarks.
import sys

sys.stdout.write("Content-Type: text/plain\n\nhello\n")
