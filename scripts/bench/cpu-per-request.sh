#!/usr/bin/env bash
# The gateway's own CPU time per request, for servers already running: Portico and a peer
# loaded with the same wrk command, in alternating rounds.
#
#   scripts/bench/cpu-per-request.sh [-c CONNS] [-d SECONDS] [-r ROUNDS] NAME=PID@URL...
#
# CPU is the server process's own user + system time (/proc/PID/stat), over wrk's request
# count. It leaves out the scripts (their time is their own) and what the kernel charges
# to nobody, so it is the part a gateway can change. On a machine where starting a process
# costs far more than the gateway does, requests/s hardly tell gateways apart; this does.
# PID may be a comma-separated list (nginx's workers and fcgiwrap's), whose times are summed.
# Needs wrk.
set -euo pipefail

conns=8 seconds=5 rounds=3
while getopts c:d:r: opt; do
    case $opt in
    c) conns=$OPTARG ;;
    d) seconds=$OPTARG ;;
    r) rounds=$OPTARG ;;
    *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
(($#)) || { sed -n '2,10p' "$0" >&2; exit 2; }

ticks=$(getconf CLK_TCK)
cpu_ticks() {
    local total=0 pid
    for pid in ${1//,/ }; do
        total=$((total + $(awk '{ print $14 + $15 }' "/proc/$pid/stat")))
    done
    echo "$total"
}

printf '%-12s %5s %10s %9s %14s\n' target round 'req/s' 'p99' 'cpu µs/req'
for ((round = 1; round <= rounds; round++)); do
    for target in "$@"; do
        name=${target%%=*} rest=${target#*=}
        pid=${rest%%@*} url=${rest#*@}
        before=$(cpu_ticks "$pid")
        out=$(wrk -t1 -c"$conns" -d"${seconds}s" --latency "$url")
        after=$(cpu_ticks "$pid")
        requests=$(awk '/requests in/ { print $1 }' <<<"$out")
        rate=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
        p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
        per=$(awk -v t=$((after - before)) -v hz="$ticks" -v n="$requests" \
            'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
        printf '%-12s %5s %10s %9s %14s\n' "$name" "$round" "$rate" "$p99" "$per"
    done
done
