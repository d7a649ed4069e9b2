#!/bin/sh
# Reads off the loop against a database across a network (docs/performance.md, "Reads off
# the loop"): the API load test (tests/unit/test_load.c) on PostgreSQL reached through a
# proxy that delays every chunk by READERS_DELAY_MS (1) each way (tests/soak/delay_proxy.py),
# with store_readers 0 and 4 alternating, READERS_ROUNDS (2) rounds of LOAD_CLIENTS (100)
# clients for LOAD_SECONDS (30). Prints each run's summary lines; the figures are the load
# test's (cycles, requests per second, p50/p99 per step).
# Environment: BUILD (build/release), ORCHESTRATORD and PLUGIN_DIR as for make test.
set -eu
BUILD=${BUILD:-build/release}
make -s BUILD="$BUILD" all "$BUILD/tests/test_load"
export ORCHESTRATORD="${ORCHESTRATORD:-$BUILD/bin/orchestratord}"
export PLUGIN_DIR="${PLUGIN_DIR:-$BUILD/plugins}"
export LOAD_CLIENTS="${LOAD_CLIENTS:-100}"
export LOAD_SECONDS="${LOAD_SECONDS:-30}"
rounds=${READERS_ROUNDS:-2}
delay=${READERS_DELAY_MS:-1}
dir=$(mktemp -d /tmp/orc-readers-XXXXXX)
proxy_pid=
cleanup() {
    [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null
    sh deploy/testbed/postgres.sh stop "$dir" >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM
sh deploy/testbed/postgres.sh start "$dir" >"$dir.log" 2>&1 || { cat "$dir.log"; exit 1; }
rm -f "$dir.log"
. "$dir/postgres.env"
pg_port=$(echo "$PG_URL" | sed 's|.*:\([0-9]*\)/.*|\1|')
mkfifo "$dir/proxy.fifo"
python3 tests/soak/delay_proxy.py "$pg_port" "$delay" >"$dir/proxy.fifo" &
proxy_pid=$!
read -r proxy_port <"$dir/proxy.fifo"
export ORC_TEST_PG_URL=$(echo "$PG_URL" | sed "s|:$pg_port/|:$proxy_port/|")
echo "readers.sh: PostgreSQL through a proxy adding $delay ms each way ($ORC_TEST_PG_URL)"
i=1
while [ "$i" -le "$rounds" ]; do
    for n in 0 4; do
        echo "=== round $i, store_readers $n"
        LOAD_STORE_READERS=$n "$BUILD/tests/test_load" 2>&1 | grep -E '^  (step|create|watch|get|list|resources|delete|unwatch|gone|cycles)' || true
    done
    i=$((i + 1))
done
