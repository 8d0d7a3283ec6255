#!/bin/sh
# A slow, streamed body: one line every DELAY seconds, to show that the
# server forwards output as it comes instead of waiting for the end.
# Query string (RFC 3875 §4.1.7): n=COUNT&delay=SECONDS, defaults 5 and 1.
n=5
delay=1
set -f  # a query like "n=*" must not expand to file names
IFS='&'
for pair in ${QUERY_STRING:-}; do
    case $pair in
        n=*) n=${pair#n=} ;;
        delay=*) delay=${pair#delay=} ;;
    esac
done
unset IFS
# Only digits (and a dot for delay) reach arithmetic and sleep.
case $n in '' | *[!0-9]*) n=5 ;; esac
case $delay in '' | *[!0-9.]*) delay=1 ;; esac

printf 'Content-Type: text/plain\n\n'
i=1
while [ "$i" -le "$n" ]; do
    echo "line $i"
    [ "$i" -lt "$n" ] && sleep "$delay"
    i=$((i + 1))
done
