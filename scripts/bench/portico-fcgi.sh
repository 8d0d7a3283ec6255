#!/usr/bin/env bash
# portico-fcgi: Portico launching the libfcgi fcgi-hello app itself (2 workers, a socket each).
# workloads: fcgi-hello
# needs:
. "$(cd "$(dirname "$0")" && pwd)/../lib/target-lib.sh"
PORTICO=${PORTICO:-portico}
target_check "$PORTICO"
cat > "$RUN_DIR/portico.toml" <<CONF
listen = "127.0.0.1:$PORT"
[[fastcgi]]
mount = "/fcgi/hello"
launch = { command = ["$BUILD_DIR/fcgi-hello"], workers = ${FCGI_HELLO_CHILDREN:-2} }
CONF
exec "$PORTICO" serve --config "$RUN_DIR/portico.toml" --log-level warn
