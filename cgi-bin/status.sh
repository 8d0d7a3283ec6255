#!/bin/sh
# The Status header (RFC 3875 §6.3.3) sets the HTTP status code and reason.
printf "Status: 418 I'm a teapot\n"
printf 'Content-Type: text/plain\n\n'
printf "I'm a teapot\n"
