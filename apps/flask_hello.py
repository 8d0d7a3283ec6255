"""The hello app in Flask: a real framework's WSGI callable, served by Portico both as
launched workers ([[wsgi]] app = "flask_hello:app") and as plain CGI through wsgiref.
The tests install Flask in target/pyenv (scripts/test does)."""

from flask import Flask, redirect, request, url_for

app = Flask(__name__)


@app.get("/")
def hello():
    return "hello\n", 200, {"Content-Type": "text/plain"}


@app.post("/form")
def form():
    fields = "".join("%s=%s\n" % item for item in request.form.items())
    return fields, 200, {"Content-Type": "text/plain; charset=utf-8"}


@app.get("/go")
def go():
    return redirect(url_for("hello"))
