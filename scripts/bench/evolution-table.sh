#!/usr/bin/env bash
# The table of docs/evolution.md ("What it costs"), measured on this machine: the hello
# app in C, Perl and Python as CGI and as launched FastCGI workers (conf/bench.toml), then
# the WSGI callable as CGI through wsgiref and as launched workers (conf/portico.toml),
# each with `portico bench`. Prints the machine, the commands and the table in the
# tutorial's columns, so that a reader compares their numbers with the text; the JSON and
# the charts (`--html`) stay in the output directory.
#
#   scripts/bench/evolution-table.sh [-o DIR] [BENCH FLAGS...]
#
# The flags go to both runs; without any, `-d 3`, as the tutorial's figures were taken.
# DIR defaults to target/evolution. `portico` is the one on PATH, else target/release's
# (cargo build --release && scripts/build-examples first).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
out=target/evolution
if [[ ${1:-} == -o ]]; then
    out=$2
    shift 2
fi
(($#)) || set -- -d 3
portico=$(command -v portico || echo target/release/portico)
mkdir -p "$out"

# What a figure depends on besides Portico: the CPUs, the kernel, and which python3 a
# script's `#!/usr/bin/env python3` finds (a version manager's shim costs 100 ms a start).
python=$(command -v python3 || echo none)
if [[ -f $python ]] && [[ $(head -c 2 "$python") == '#!' ]]; then
    python="$python (a script, not the interpreter)"
fi
cpu=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //' || true)
echo "Machine: $(nproc) CPUs (nproc), ${cpu:-CPU model unknown}, $(uname -sr), python3 = $python"
echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'), Portico $("$portico" --version | cut -d' ' -f2)"
echo "Commands:"
echo "  portico bench --config conf/bench.toml $* --json $out/hello.json --html $out/hello.html"
echo "  portico bench $* --json $out/wsgi.json --html $out/wsgi.html /cgi-bin/hello-wsgi.py/ /wsgi/hello/"
echo

"$portico" bench --config conf/bench.toml "$@" \
    --json "$out/hello.json" --html "$out/hello.html" >"$out/hello.txt"
"$portico" bench "$@" --json "$out/wsgi.json" --html "$out/wsgi.html" \
    /cgi-bin/hello-wsgi.py/ /wsgi/hello/ >"$out/wsgi.txt"

python3 - "$out/hello.json" "$out/wsgi.json" <<'PY'
import json
import sys

hello = json.load(open(sys.argv[1]))
wsgi = json.load(open(sys.argv[2]))
by_target = {t["target"]: t for t in hello["targets"]}
language = {"-c": "C", ".pl": "Perl", ".py": "Python", ".sh": "sh"}

print("| app | CGI req/s | FastCGI req/s | FastCGI over CGI | CGI p99 ms | FastCGI p99 ms |")
print("|---|---:|---:|---:|---:|---:|")
for pair in hello["ratios"]:
    cgi, fcgi = by_target[pair["cgi"]], by_target[pair["fastcgi"]]
    name = next((l for end, l in language.items() if pair["cgi"].endswith(end)), pair["cgi"])
    print(
        f"| hello in {name} | {cgi['requests_per_second']:,.0f} "
        f"| {fcgi['requests_per_second']:,.0f} | {pair['ratio']:,.1f}x "
        f"| {cgi['latency_ms']['p99']:.2f} | {fcgi['latency_ms']['p99']:.2f} |"
    )
as_cgi, as_workers = wsgi["targets"]
print(
    f"\nThe WSGI callable: {as_cgi['requests_per_second']:,.0f} requests/s as CGI "
    f"({as_cgi['target']}), {as_workers['requests_per_second']:,.0f} from launched "
    f"workers ({as_workers['target']})."
)
PY
echo
echo "Charts: $out/hello.html and $out/wsgi.html"
