"""The hello app as a WSGI callable (PEP 3333): the same answer as cgi-bin/hello.py, now a
function of the request's environ instead of a process.

It runs three ways: as launched workers through Portico's adapter (the [[wsgi]] mount in
conf/portico.toml), as plain CGI through wsgiref (cgi-bin/hello-wsgi.py), and under any
WSGI server (gunicorn hello_wsgi:app).

Paths it answers, below wherever it is mounted:
  /            hello
  /env         the environ, one KEY=value line each (wsgi.* included)
  /form        POST application/x-www-form-urlencoded: the fields back, one per line
  /redirect    303 to ./ (the hello page)
  /error       raises an exception: the server answers 500 and logs the traceback
"""

from urllib.parse import parse_qsl


def app(environ, start_response):
    path = environ.get("PATH_INFO", "") or "/"
    if path == "/":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello\n"]
    if path == "/env":
        lines = "".join("%s=%s\n" % (k, environ[k]) for k in sorted(environ))
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
        return [lines.encode("utf-8", "replace")]
    if path == "/form" and environ["REQUEST_METHOD"] == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length).decode("utf-8", "replace")
        fields = "".join("%s=%s\n" % pair for pair in parse_qsl(body))
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
        return [fields.encode("utf-8")]
    if path == "/redirect":
        location = environ.get("SCRIPT_NAME", "") + "/"
        start_response("303 See Other", [("Location", location), ("Content-Type", "text/plain")])
        return [b"see " + location.encode("latin-1") + b"\n"]
    if path == "/error":
        raise RuntimeError("hello_wsgi: /error raises, as asked")
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found\n"]
