#!/usr/bin/env bash
# HTTPS: Portico against nginx on the same two workloads, with the same certificate and
# the same wrk load, in alternating rounds (scripts/bench/cpu-per-request.sh):
#   - CGI: cgi-bin/src/hello.c, spawned per request (nginx through fcgiwrap);
#   - FastCGI: cgi-bin/src/hello-fcgi.c behind spawn-fcgi (2 processes, a unix socket).
#     Portico keeps its connections (as many as the app says it takes, FCGI_MAX_CONNS);
#     nginx opens one per request, its usual setup: kept connections (`keepalive` with
#     `fastcgi_keep_conn on`) pin libfcgi's one-connection-at-a-time processes and stall
#     it (a few hundred requests/s here).
# Each server has two workers (Portico's threads = 2, nginx's worker_processes 2). The CPU
# per request is the gateway's: Portico's process, nginx's workers (plus fcgiwrap's
# processes for CGI, its half of nginx's CGI gateway).
#
#   scripts/bench/tls-peers.sh [-c CONNS] [-d SECONDS] [-r ROUNDS]
#
# Needs root (nginx), nginx, fcgiwrap, spawn-fcgi, libfcgi-dev, openssl, wrk, and
# `cargo build --release`. Listens on 127.0.0.1 only; stops what it started.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
portico=${PORTICO:-$root/target/release/portico}
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true; done
    [[ -f $work/nginx.pid ]] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
    pkill -F "$work/fcgi.pids" 2>/dev/null || true
    sleep 0.5
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

mkdir -p "$work/cgi-bin" "$work/nginx"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=localhost -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
cc -O2 -o "$work/cgi-bin/hello-c" "$root/cgi-bin/src/hello.c"
cc -O2 -o "$work/hello-fcgi" "$root/cgi-bin/src/hello-fcgi.c" -lfcgi

spawn-fcgi -s "$work/fcgi.sock" -M 0666 -F 2 -P "$work/fcgi.pids" -- "$work/hello-fcgi" >/dev/null
spawn-fcgi -s "$work/fcgiwrap.sock" -M 0666 -F 2 -P "$work/fcgiwrap.pids" -- /usr/sbin/fcgiwrap >/dev/null
cat "$work/fcgiwrap.pids" >>"$work/fcgi.pids"

p_port=$(free_port) n_port=$(free_port)
cat >"$work/portico.toml" <<TOML
listen = "127.0.0.1:$(free_port)"
threads = 2
[tls]
listen = "127.0.0.1:$p_port"
certificate = "cert.pem"
key = "key.pem"
[[cgi]]
mount = "/cgi-bin"
dir = "cgi-bin"
[[fastcgi]]
mount = "/fcgi"
upstream = "unix:$work/fcgi.sock"
script = "hello-fcgi"
TOML
setsid "$portico" serve --config "$work/portico.toml" --log-level warn 2>"$work/portico.log" &
pids+=($!)
portico_pid=$!

cat >"$work/nginx.conf" <<NGINX
worker_processes 2;
user root;
pid $work/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/nginx/body; fastcgi_temp_path $work/nginx/fastcgi;
    proxy_temp_path $work/nginx/proxy; uwsgi_temp_path $work/nginx/uwsgi; scgi_temp_path $work/nginx/scgi;
    server {
        listen 127.0.0.1:$n_port ssl;
        ssl_certificate $work/cert.pem;
        ssl_certificate_key $work/key.pem;
        location /cgi-bin/ {
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $work\$fastcgi_script_name;
            fastcgi_pass unix:$work/fcgiwrap.sock;
        }
        location /fcgi/ {
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $work/hello-fcgi;
            fastcgi_pass unix:$work/fcgi.sock;
        }
    }
}
NGINX
nginx -c "$work/nginx.conf"
wait_port "$p_port"
wait_port "$n_port"
sleep 0.5
workers=$(pgrep -P "$(cat "$work/nginx.pid")" | paste -sd, -)
fcgiwrap=$(paste -sd, "$work/fcgiwrap.pids")

for url in /cgi-bin/hello-c /fcgi/hello; do
    for port in "$p_port" "$n_port"; do
        body=$(curl -sk "https://127.0.0.1:$port$url")
        [[ $body == hello ]] || { echo "https://127.0.0.1:$port$url said: $body" >&2; exit 1; }
    done
done

"$root/scripts/bench/cpu-per-request.sh" "$@" \
    "portico-cgi=$portico_pid@https://127.0.0.1:$p_port/cgi-bin/hello-c" \
    "nginx-cgi=$workers,$fcgiwrap@https://127.0.0.1:$n_port/cgi-bin/hello-c" \
    "portico-fcgi=$portico_pid@https://127.0.0.1:$p_port/fcgi/hello" \
    "nginx-fcgi=$workers@https://127.0.0.1:$n_port/fcgi/hello"
