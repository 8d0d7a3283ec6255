#!/bin/sh
# Two Set-Cookie headers: the server must keep both, not fold them into
# one line (RFC 6265 §3).
printf 'Content-Type: text/plain\n'
printf 'Set-Cookie: flavour=oatmeal; Path=/\n'
printf 'Set-Cookie: count=1; Path=/; HttpOnly\n\n'
printf 'two cookies set\n'
