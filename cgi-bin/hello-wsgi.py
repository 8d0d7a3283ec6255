#!/usr/bin/env python3
# apps/hello_wsgi.py's WSGI callable run once per request as plain CGI, by the standard
# library's wsgiref: the environ is built from this process's environment (RFC 3875
# meta-variables), the body is stdin, the answer goes to stdout. The same callable runs as
# persistent workers under the [[wsgi]] mount of conf/portico.toml.
import os
import sys
from wsgiref.handlers import CGIHandler

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "apps"))
from hello_wsgi import app  # noqa: E402

CGIHandler().run(app)
