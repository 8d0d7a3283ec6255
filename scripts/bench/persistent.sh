#!/usr/bin/env bash
# Persistent CGI against plain CGI, side by side in one run: the same scripts spawned per
# request (/cgi-bin, /gitweb) and kept warm (/warm, /gitweb-warm, `persistent` with 2
# workers per language), one Portico (release build, --log-level warn), wrk in alternating
# rounds; requests/s and p99 of each round.
#
#   scripts/bench/persistent.sh [-c CONNS] [-d SECONDS] [-r ROUNDS]
#
# gitweb's project list (one project, one commit) is measured when Debian's gitweb is
# installed. Needs wrk and git.
set -euo pipefail

conns=8 seconds=5 rounds=2
while getopts c:d:r: opt; do
    case $opt in
    c) conns=$OPTARG ;;
    d) seconds=$OPTARG ;;
    r) rounds=$OPTARG ;;
    *) exit 2 ;;
    esac
done

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
portico=$repo/target/release/portico
[[ -x $portico ]] || { echo "build it first: cargo build --release" >&2; exit 2; }
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$work"' EXIT
cp -r "$repo/cgi-bin" "$work/cgi-bin"

gitweb=/usr/share/gitweb/gitweb.cgi
targets=(/cgi-bin/hello.pl /warm/hello.pl /cgi-bin/form.pl /warm/form.pl
    /cgi-bin/hello.py /warm/hello.py)
{
    echo 'listen = "127.0.0.1:0"'
    if [[ -e $gitweb ]]; then
        export GIT_AUTHOR_DATE=2020-01-02T03:04:05Z GIT_COMMITTER_DATE=2020-01-02T03:04:05Z
        git init -q "$work/repo" && echo hello >"$work/repo/README"
        git -C "$work/repo" add README
        git -C "$work/repo" -c user.name=Bench -c user.email=bench@example.org commit -qm one
        git clone -q --bare "$work/repo" "$work/git/demo.git"
        echo "\$projectroot = \"$work/git\";" >"$work/gitweb.conf"
        printf '[env]\nset = { GITWEB_CONFIG = "%s" }\n' "$work/gitweb.conf"
        printf '[[cgi]]\nmount = "/gitweb"\nscript = "%s"\n' "$gitweb"
        printf '[[cgi]]\nmount = "/gitweb-warm"\nscript = "%s"\n' "$gitweb"
        echo 'persistent = { perl = ["gitweb.cgi"], workers = 2 }'
        targets+=(/gitweb/ /gitweb-warm/)
    fi
    printf '[[cgi]]\nmount = "/cgi-bin"\ndir = "cgi-bin"\n'
    printf '[[cgi]]\nmount = "/warm"\ndir = "cgi-bin"\n'
    echo 'persistent = { perl = ["*.pl"], python = ["*.py"], workers = 2 }'
} >"$work/bench.toml"

"$portico" serve --config "$work/bench.toml" --log-level warn 2>"$work/log" &
pid=$!
for _ in $(seq 50); do
    url=$(sed -n 's/^listening on //p' "$work/log")
    [[ -n $url ]] && break
    sleep 0.1
done
[[ -n $url ]] || { cat "$work/log" >&2; exit 1; }
# Every script once, so that the runners have compiled them before the clock starts.
for target in "${targets[@]}"; do curl -fsS -o /dev/null "$url$target"; done

echo "$(date -u '+%F %H:%M') UTC, nproc $(nproc), load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-18s %5s %10s %10s\n' target round 'req/s' 'p99'
for ((round = 1; round <= rounds; round++)); do
    for target in "${targets[@]}"; do
        wrk -t1 -c"$conns" -d"${seconds}s" --latency "$url$target" |
            awk -v t="$target" -v r="$round" '
                /Requests\/sec/ { rps = $2 } / 99%/ { p99 = $2 } /Non-2xx/ { bad = $0 }
                END { printf "%-18s %5s %10s %10s %s\n", t, r, rps, p99, bad }'
    done
done
