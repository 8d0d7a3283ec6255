#!/usr/bin/env bash
# FastCGI against its peers: Portico, lighttpd (mod_fastcgi) and nginx (fastcgi_pass), each
# in front of the same libfcgi backend (cgi-bin/hello-fcgi-c, 2 processes under spawn-fcgi
# on a unix socket; one such backend per gateway, since a libfcgi process serves one
# connection at a time and Portico keeps its connections open), loaded by the same wrk
# command in alternating rounds; requests/s, p99 and each gateway's own CPU per request
# (scripts/bench/cpu-per-request.sh).
#
#   scripts/bench/fastcgi-peers.sh [-c CONNS] [-d SECONDS] [-r ROUNDS] [-b PORTICO_BINARY]
#
# -b adds a second Portico (another build, as portico-b) on the same backend, for a change's
# before and after in one run. Each gateway serves from one thread or process: Portico's
# `threads = 1` (its default on 2 CPUs for FastCGI only), lighttpd's one process, nginx's
# `worker_processes 1`. Portico keeps its backend connections open, as many as the backend
# has processes (`max_connections = 2`: a libfcgi process answers FCGI_GET_VALUES with
# FCGI_MAX_CONNS 1 for itself, and cannot say that another shares its socket); lighttpd
# and nginx open one per request, as they do by default. Needs wrk, spawn-fcgi, lighttpd and nginx, and
# scripts/build-examples run first.
set -euo pipefail

conns=8 seconds=5 rounds=3 other=
while getopts c:d:r:b: opt; do
    case $opt in
    c) conns=$OPTARG ;;
    d) seconds=$OPTARG ;;
    r) rounds=$OPTARG ;;
    b) other=$OPTARG ;;
    *) exit 2 ;;
    esac
done

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
portico=$repo/target/release/portico
backend=$repo/cgi-bin/hello-fcgi-c
[[ -x $portico ]] || { echo "build it first: cargo build --release" >&2; exit 2; }
[[ -x $backend ]] || { echo "build the examples first: scripts/build-examples" >&2; exit 2; }
for tool in wrk spawn-fcgi lighttpd nginx; do
    command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 2; }
done

work=$(mktemp -d)
chmod 755 "$work"
pids=()
cleanup() {
    # spawn-fcgi's pid files end without a newline: awk gives each line its own.
    for pid in "${pids[@]}" $(awk 1 "$work"/*.pid 2>/dev/null); do
        kill "$pid" 2>/dev/null || true
    done
    sleep 0.3
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0
        sleep 0.05
    done
    echo "nothing answers on port $1" >&2
    exit 1
}

backend_for() { # NAME: the socket of a backend of NAME's own
    spawn-fcgi -F 2 -P "$work/$1.pid" -s "$work/$1.sock" -M 0666 -- "$backend" >/dev/null
    echo "$work/$1.sock"
}

targets=()
start_portico() { # NAME BINARY
    local port sock
    port=$(free_port)
    sock=$(backend_for "$1")
    cat >"$work/$1.toml" <<CONF
listen = "127.0.0.1:$port"
threads = 1
[[fastcgi]]
mount = "/fcgi/hello"
upstream = "unix:$sock"
root = "$work"
max_connections = 2
CONF
    "$2" serve --config "$work/$1.toml" --log-level warn >"$work/$1.log" 2>&1 &
    pids+=($!)
    wait_port "$port"
    targets+=("$1=$!@http://127.0.0.1:$port/fcgi/hello")
}
start_portico portico "$portico"
[[ -n $other ]] && start_portico portico-b "$other"

port=$(free_port)
sock=$(backend_for lighttpd)
mkdir -p "$work/lighttpd"
cat >"$work/lighttpd.conf" <<CONF
server.modules = ( "mod_fastcgi" )
server.bind = "127.0.0.1"
server.port = $port
server.document-root = "$work/lighttpd"
server.errorlog = "$work/lighttpd/error.log"
server.max-keep-alive-requests = 1000000
fastcgi.server = ( "/fcgi/" => ( ( "socket" => "$sock", "check-local" => "disable" ) ) )
CONF
lighttpd -D -f "$work/lighttpd.conf" &
pids+=($!)
wait_port "$port"
targets+=("lighttpd=$!@http://127.0.0.1:$port/fcgi/hello")

port=$(free_port)
sock=$(backend_for nginx)
mkdir -p "$work/nginx"
cat >"$work/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/nginx;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$port;
        location /fcgi/ {
            include /etc/nginx/fastcgi_params;
            fastcgi_pass unix:$sock;
        }
    }
}
CONF
nginx -c "$work/nginx.conf" &
pids+=($!)
wait_port "$port"
# nginx's one worker is the gateway; its master only waits.
worker=$(pgrep -P "$!" | head -1)
targets+=("nginx=$worker@http://127.0.0.1:$port/fcgi/hello")

# Each answers before it is measured (lighttpd connects to its backend on first use).
for target in "${targets[@]}"; do
    url=${target#*@}
    for _ in $(seq 50); do
        curl -sf -o /dev/null "$url" && break
        sleep 0.1
    done
    curl -sf -o /dev/null "$url" || { echo "no answer from $url" >&2; exit 1; }
done

"$repo/scripts/bench/cpu-per-request.sh" -c "$conns" -d "$seconds" -r "$rounds" "${targets[@]}"
