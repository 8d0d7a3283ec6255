#!/bin/sh
# Lists the environment the script received: the meta-variables of
# RFC 3875 §4.1 plus whatever the server passes through. Sorted so the
# output is stable for tests.
printf 'Content-Type: text/plain\n\n'
env | sort
