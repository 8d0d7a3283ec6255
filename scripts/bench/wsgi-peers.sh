#!/usr/bin/env bash
# WSGI against its peers: Portico's [[wsgi]] workers, gunicorn (sync, and gthread) and uWSGI,
# the same app, worker count and Python (target/pyenv, which scripts/test creates; uWSGI is
# installed into it from PyPI here), loaded in turn by the same wrk command, in alternating
# rounds, then the best of the rounds.
#
#   scripts/bench/wsgi-peers.sh [-d SECONDS] [-r ROUNDS] [-w WORKERS] [-t THREADS]
#                               [-s 'SERVER...'] [-S 'SCENARIO...']
#
# -s and -S pick some of the servers and scenarios below (all by default), e.g.
#   -S hello -s 'portico uwsgi uwsgi-router gunicorn-sync'
# Two scenarios, each at 8 and 64 connections:
#   hello    the hello answer, nothing else: what serving a request costs the server
#   sleep20  the same after 20 ms of sleep, standing for a database query or an API call:
#            what threads in the workers are for (-t, 8 by default)
# The servers (W workers or processes each, T threads where the name says so):
#   portico          [[wsgi]], W workers              portico-threads  the same, threads = T
#   gunicorn-sync    gunicorn -w W                    gunicorn-gthread -k gthread --threads T
#   uwsgi            --http-socket, W processes       uwsgi-threads    the same, --threads T
#   uwsgi-router     --http (uWSGI's own HTTP router in front of W processes) --http-keepalive
#   uwsgi-router-threads  the same, --threads T
#
# uWSGI keeps a client's connection open only through its router (--http-keepalive) or
# with --http11-socket (unbit/uwsgi#1097); --http-socket closes after every answer, with
# --http-keepalive or without (uWSGI 2.0.31). --http11-socket is left out: a worker stays
# on its client's connection until that client leaves (unbit/uwsgi#2038), so at 8 or 64
# connections only W x T clients are ever served, and wrk, which counts only the answered,
# shows their rate as if it were everyone's. Keep-alive needs the app to send
# Content-Length (uWSGI does not frame a body itself), so the app here does; Portico and
# gunicorn frame one anyway.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

seconds=5 rounds=3 workers=2 threads=8 only_servers= scenarios="hello sleep20"
while getopts d:r:w:t:s:S: opt; do
    case $opt in
    d) seconds=$OPTARG ;;
    r) rounds=$OPTARG ;;
    w) workers=$OPTARG ;;
    t) threads=$OPTARG ;;
    s) only_servers=" $OPTARG " ;;
    S) scenarios=$OPTARG ;;
    *) sed -n '2,31p' "$0" >&2; exit 2 ;;
    esac
done

venv=$PWD/target/pyenv
python=$venv/bin/python
[[ -x $venv/bin/gunicorn ]] || { echo "run scripts/test first: it creates target/pyenv" >&2; exit 1; }
command -v wrk >/dev/null || { echo "needs wrk (Debian: apt-get install wrk)" >&2; exit 1; }

as_root() {
    if [[ $(id -u) != 0 ]] && command -v sudo >/dev/null; then
        sudo "$@"
    else
        "$@"
    fi
}

# uWSGI from PyPI is C, compiled at install against the interpreter's headers: a Debian
# python3 has them only with python3-dev (pyenv's and python.org's builds ship them).
if [[ ! -x $venv/bin/uwsgi ]]; then
    missing=()
    command -v cc >/dev/null || missing+=(gcc libc6-dev)
    "$python" -c 'import os, sysconfig
raise SystemExit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' ||
        missing+=(python3-dev)
    if ((${#missing[@]})); then
        echo "installing: ${missing[*]}" >&2
        as_root apt-get update
        as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y --no-install-recommends "${missing[@]}"
    fi
    echo "installing uwsgi into $venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check uwsgi
fi

cargo build --release --quiet
portico=$PWD/target/release/portico
run=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$run"' EXIT

cat >"$run/bench_wsgi.py" <<'APP'
import time

HELLO = b"hello\n"


def app(environ, start_response):
    if environ.get("PATH_INFO") == "/sleep20":
        time.sleep(0.02)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))])
    return [HELLO]
APP

# name port: every server runs for the whole benchmark, idle while another is loaded.
servers=()
start() { servers+=("$1 $2"); }
# Whether NAME is one of the servers -s picked (every one without -s).
is_picked() { [[ -z $only_servers || $only_servers == *" $1 "* ]]; }

portico_serve() { # NAME PORT THREADS
    is_picked "$1" || return 0
    cat >"$run/$1.toml" <<CONF
listen = "127.0.0.1:$2"
[[wsgi]]
mount = "/"
app = "bench_wsgi:app"
python = "$python"
path = ["$run"]
workers = $workers
threads = $3
CONF
    "$portico" serve --config "$run/$1.toml" --log-level warn 2>"$run/$1.log" &
    start "$1" "$2"
}
portico_serve portico 18181 1
portico_serve portico-threads 18182 "$threads"

gunicorn_serve() { # NAME PORT ARGS...
    local name=$1 port=$2
    is_picked "$name" || return 0
    shift 2
    (cd "$run" && exec "$venv/bin/gunicorn" -w "$workers" "$@" -b "127.0.0.1:$port" \
        --error-logfile "$run/$name.log" bench_wsgi:app) &
    start "$name" "$port"
}
gunicorn_serve gunicorn-sync 18183
gunicorn_serve gunicorn-gthread 18184 -k gthread --threads "$threads" --keep-alive 5

uwsgi_serve() { # NAME PORT ARGS...
    local name=$1 port=$2
    is_picked "$name" || return 0
    shift 2
    # --die-on-term: uWSGI 2.0 takes SIGTERM (the trap's kill) as "reload".
    (cd "$run" && exec "$venv/bin/uwsgi" "$@" --master --processes "$workers" --die-on-term \
        --disable-logging --wsgi-file bench_wsgi.py --callable app >"$run/$name.log" 2>&1) &
    start "$name" "$port"
}
uwsgi_serve uwsgi 18185 --http-socket 127.0.0.1:18185
uwsgi_serve uwsgi-threads 18186 --http-socket 127.0.0.1:18186 --threads "$threads"
uwsgi_serve uwsgi-router 18187 --http 127.0.0.1:18187 --http-keepalive
uwsgi_serve uwsgi-router-threads 18188 --http 127.0.0.1:18188 --http-keepalive --threads "$threads"

for server in "${servers[@]}"; do
    port=${server#* }
    for _ in $(seq 50); do
        curl -fs "http://127.0.0.1:$port/" >/dev/null && break
        sleep 0.2
    done
    # Every worker started and its connections open before anything is timed.
    wrk -t1 -c64 -d1s "http://127.0.0.1:$port/" >/dev/null
done

# One wrk run: "req/s p99_ms failed closed". wrk counts only whole answers; failed are the
# connects, writes and timeouts that went wrong and the non-2xx answers; closed are the
# connections the server closed ("read" errors): for uWSGI's --http-socket, one after every
# answer (it closes without saying so), for the others none.
load() {
    wrk -t1 -c"$1" -d"${seconds}s" --latency "$2" | awk '
        /Requests\/sec/ { rate = $2 }
        $1 == "99%" { p = $2; ms = p + 0
            if (p ~ /us$/) ms /= 1000; else if (p ~ /[0-9]s$/ && p !~ /ms$/) ms *= 1000 }
        /Socket errors/ { gsub(",", ""); failed += $4 + $8 + $10; closed += $6 }
        /Non-2xx/ { failed += $NF }
        END { printf "%.0f %.2f %d %d\n", rate, ms, failed, closed }'
}

echo "workers $workers, threads $threads, wrk -t1 -d${seconds}s, $rounds rounds," \
    "nproc $(nproc), $(date -u +%FT%RZ)"
results=$run/results
for round in $(seq "$rounds"); do
    echo "round $round: load average $(cut -d' ' -f1-3 /proc/loadavg)"
    for scenario in $scenarios; do
        path=/
        [[ $scenario == sleep20 ]] && path=/sleep20
        for conns in 8 64; do
            for server in "${servers[@]}"; do
                name=${server% *} port=${server#* }
                row=$(load "$conns" "http://127.0.0.1:$port$path")
                echo "$scenario c$conns $name $row" | tee -a "$results"
            done
        done
    done
done
echo "after: load average $(cut -d' ' -f1-3 /proc/loadavg)"

echo
echo "best of $rounds (highest req/s, lowest p99, each on its own; failed and closed summed)"
printf '%-8s %-5s %-22s %10s %10s %7s %8s\n' scenario conns server 'req/s' 'p99 ms' failed closed
awk '{ k = $1 " " $2 " " $3
       if (!(k in rate) || $4 > rate[k]) rate[k] = $4
       if (!(k in p99) || $5 < p99[k]) p99[k] = $5
       failed[k] += $6; closed[k] += $7
       if (!(k in seen)) { seen[k] = 1; order[++n] = k } }
     END { for (i = 1; i <= n; i++) { k = order[i]; split(k, f, " ")
             printf "%-8s %-5s %-22s %10d %10.2f %7d %8d\n", f[1], f[2], f[3], rate[k], p99[k],
                 failed[k], closed[k] } }' "$results"
