#!/usr/bin/env bash
# The hello WSGI app (apps/hello_wsgi.py) served by Portico's [[wsgi]] workers and by
# gunicorn's sync workers, the same worker count and Python (target/pyenv, which
# scripts/test creates), loaded in turn by `portico bench --url`.
# Usage: scripts/bench/wsgi-vs-gunicorn.sh [WORKERS] [SECONDS] [ROUNDS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

workers=${1:-2} seconds=${2:-5} rounds=${3:-2}
python=$PWD/target/pyenv/bin/python
[[ -x $python ]] || { echo "run scripts/test first: it creates target/pyenv" >&2; exit 1; }
cargo build --release --quiet
portico=target/release/portico
run=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$run"' EXIT

cat > "$run/portico.toml" <<CONF
listen = "127.0.0.1:18181"
[[wsgi]]
mount = "/"
app = "hello_wsgi:app"
python = "$python"
path = ["$PWD/apps"]
workers = $workers
CONF
"$portico" serve --config "$run/portico.toml" --log-level warn 2>"$run/portico.log" &
(cd apps && exec "$PWD/../target/pyenv/bin/gunicorn" -w "$workers" -b 127.0.0.1:18182 \
    --access-logfile /dev/null --error-logfile "$run/gunicorn.log" hello_wsgi:app) &
sleep 2

echo "hello WSGI app, $workers workers each, $seconds s per run, nproc $(nproc), $(date -u +%FT%RZ)"
for round in $(seq "$rounds"); do
    for conns in 8 64; do
        for server in portico:18181 gunicorn:18182; do
            name=${server%%:*}
            row=$("$portico" bench --url "http://127.0.0.1:${server##*:}" -c "$conns" \
                -d "$seconds" --warmup-seconds 1 / 2>/dev/null | awk '$1 == "/" {print $2, $5}')
            echo "round $round  c$conns  $name  req/s p99_ms: $row"
        done
    done
done
