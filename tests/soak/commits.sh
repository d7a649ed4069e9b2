#!/bin/bash
# Commits waited for or sent without waiting (store_commit: wait | overlap; docs/store.md,
# "Commits that do not wait") against a database across a network: one daemon on
# PostgreSQL (--durable) reached through a proxy that delays every chunk by COMMITS_DELAY_MS
# (1) each way (tests/soak/delay_proxy.py), COMMITS_DEPLOYMENTS (200) deployments of
# tests/bench/templates/cluster4.yaml posted at concurrency 20 on a sim site, timed until
# all are CREATE_COMPLETE; COMMITS_ROUNDS (2) rounds, the two modes alternating, each on a
# fresh database. Prints one line per run.
# Environment: BUILD (build/release); ORCHESTRATORD, PLUGIN_DIR and HTTPLOAD as for make bench.
set -eu
BUILD=${BUILD:-build/release}
make -s BUILD="$BUILD" all "$BUILD/bench/httpload"
ORCHESTRATORD=${ORCHESTRATORD:-$BUILD/bin/orchestratord}
PLUGIN_DIR=${PLUGIN_DIR:-$BUILD/plugins}
HTTPLOAD=${HTTPLOAD:-$BUILD/bench/httpload}
rounds=${COMMITS_ROUNDS:-2}
delay=${COMMITS_DELAY_MS:-1}
count=${COMMITS_DEPLOYMENTS:-200}
dir=$(mktemp -d /tmp/orc-commits-XXXXXX)
chmod 755 "$dir" # the server's user reaches its data directory below
proxy_pid= daemon_pid=
cleanup() {
    [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null
    [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null
    sh deploy/testbed/postgres.sh stop "$dir/pg" >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM
sh deploy/testbed/postgres.sh start "$dir/pg" --durable >"$dir/pg.log" 2>&1 || { cat "$dir/pg.log"; exit 1; }
. "$dir/pg/postgres.env"
pg_port=$(echo "$PG_URL" | sed 's|.*:\([0-9]*\)/.*|\1|')
mkfifo "$dir/proxy.fifo"
python3 tests/soak/delay_proxy.py "$pg_port" "$delay" >"$dir/proxy.fifo" &
proxy_pid=$!
read -r proxy_port <"$dir/proxy.fifo"
cat >"$dir/sites.yaml" <<EOF
sites:
  - name: sim
    driver: sim
    config:
      capacity: {cpus: 100000000, mem: 1000000 TiB, gpus: {}}
EOF
jq -cRs '{template: .}' <tests/bench/templates/cluster4.yaml >"$dir/body.json"
echo "commits.sh: PostgreSQL through a proxy adding $delay ms each way; $count deployments per run"
n=0
for r in $(seq 1 "$rounds"); do
    for mode in wait overlap; do
        n=$((n + 1))
        sh deploy/testbed/postgres.sh psql "$dir/pg" -q -c "CREATE DATABASE run$n"
        url=$(echo "${PG_URL%/*}/run$n" | sed "s|:$pg_port/|:$proxy_port/|")
        ORCHESTRATOR_PLUGIN_DIR="$PLUGIN_DIR" ORCHESTRATOR_STORE="$url" ORCHESTRATOR_STORE_COMMIT=$mode \
            "$ORCHESTRATORD" --listen 127.0.0.1:0 --data-dir "$dir/var$n" --sites "$dir/sites.yaml" \
            >"$dir/daemon$n.log" 2>&1 &
        daemon_pid=$!
        api=
        for _ in $(seq 100); do
            api=$(grep -o "listening on http://[0-9.:]*" "$dir/daemon$n.log" | head -1 | sed "s/^listening on //")
            [ -n "$api" ] && curl -sf "$api/healthz" >/dev/null && break
            sleep 0.2
        done
        [ -n "$api" ] || { cat "$dir/daemon$n.log"; exit 1; }
        t0=$EPOCHREALTIME
        "$HTTPLOAD" -c 20 -n "$count" -X POST -H 'Content-Type: application/json' \
            -b "$dir/body.json" -e 201 "$api/deployments" >"$dir/load.out" 2>&1
        until [ "$(curl -s "$api/deployments?size=1&excludedStatus=CREATE_COMPLETE" |
            grep -o '"totalElements":[0-9]*' | cut -d: -f2)" = 0 ]; do
            sleep 0.1
        done
        secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
        echo "round $r, store_commit $mode: $count deployments complete in $secs s;" \
            "$(grep -o 'p50_ms=[0-9.]*' "$dir/load.out");" \
            "$(curl -s "$api/metrics" | grep '^orchestrator_store_commits_sent_total')"
        kill "$daemon_pid"
        wait "$daemon_pid" || true
        daemon_pid=
    done
done
