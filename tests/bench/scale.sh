# shellcheck shell=bash
# The scale-out bench (sourced by tests/bench/run.sh, bash; helpers in lib.sh):
# BENCH_SCALE_DEPLOYMENTS (2000) deployments of tests/bench/templates/cluster4.yaml (four
# nodes each) posted over HTTP, spread evenly over 1, 2 and 3 daemons sharing one
# PostgreSQL server (deploy/testbed/postgres.sh, --durable: fsync on), and over one daemon
# on SQLite (WAL, synchronous=FULL) as the baseline, timed from the first POST until none
# is in progress; and one daemon on PostgreSQL with store_commit: overlap (commits sent
# without waiting for their answer; the default waits) beside them, to compare in the same go. Each daemon has a sim site of its own in memory (latency 0), so the
# figures are those of the daemons and their store. Nothing is pinned to a CPU here: the
# daemons, PostgreSQL and the load generators share the machine's cores.

# Starts the PostgreSQL testbed once per bench run; sets SCALE_PG_DIR and SCALE_PG_URL.
scale_pg_start() {
    [ -n "${SCALE_PG_URL:-}" ] && return 0
    SCALE_PG_DIR=$(mktemp -d /tmp/orc-bench-pg-XXXXXX) || bench_die "cannot create a directory in /tmp"
    BENCH_CLEANUP_CMDS="${BENCH_CLEANUP_CMDS:+$BENCH_CLEANUP_CMDS; }sh deploy/testbed/postgres.sh stop '$SCALE_PG_DIR' >/dev/null 2>&1"
    sh deploy/testbed/postgres.sh start "$SCALE_PG_DIR" --durable >"$BENCH_TMPDIR/postgres-start.log" 2>&1 ||
        { cat "$BENCH_TMPDIR/postgres-start.log" >&2; bench_die "PostgreSQL did not start"; }
    # shellcheck disable=SC1091
    . "$SCALE_PG_DIR/postgres.env"
    SCALE_PG_URL=$PG_URL
}

# A fresh database on the testbed; prints its URL.
scale_pg_db() {
    sh deploy/testbed/postgres.sh psql "$SCALE_PG_DIR" -q -c "CREATE DATABASE $1" >/dev/null ||
        bench_die "cannot create the database $1"
    echo "${SCALE_PG_URL%/*}/$1"
}

# Starts daemon I of a round in DIR/dI with store STORE (empty: SQLite in its data
# directory) and store_commit COMMIT; appends its pid and URL to SCALE_PIDS and SCALE_URLS.
scale_daemon_start() {
    local dir=$1/d$2 store=$3 commit=$4 pid
    mkdir -p "$dir"
    sim_sites "$dir/sites.yaml" 100000000
    ORCHESTRATOR_PLUGIN_DIR="$PLUGIN_DIR" ORCHESTRATOR_STORE="$store" ORCHESTRATOR_INSTANCE="bench-d$2" \
        ORCHESTRATOR_STORE_COMMIT="$commit" \
        "$ORCHESTRATORD" --listen 127.0.0.1:0 --data-dir "$dir/var" --sites "$dir/sites.yaml" \
        >"$dir/daemon.log" 2>&1 &
    pid=$!
    BENCH_PIDS="$BENCH_PIDS $pid"
    daemon_wait_ready "$pid" "$dir/daemon.log"
    SCALE_PIDS="$SCALE_PIDS $pid"
    SCALE_URLS="$SCALE_URLS $DAEMON_URL"
}

# One round: scale_round K STORE_KIND (sqlite|pg|pgoverlap) NAME; sets ROUND_SECS.
scale_round() {
    local k=$1 kind=$2 name=$3 store="" commit=wait dir i url pid n per conc t0 rc=0 bad loads=""
    bench_tmpdir "scale-$name"
    dir=$BENCH_DIR
    [ "$kind" = sqlite ] || store=$(scale_pg_db "$name")
    [ "$kind" = pgoverlap ] && commit=overlap
    SCALE_PIDS="" SCALE_URLS=""
    for i in $(seq 1 "$k"); do
        scale_daemon_start "$dir" "$i" "$store" "$commit"
    done
    n=$BENCH_SCALE_DEPLOYMENTS
    per=$((n / k))
    conc=$((BENCH_CREATE_CONC / k))
    [ "$conc" -ge 1 ] || conc=1
    t0=$EPOCHREALTIME
    i=0
    for url in $SCALE_URLS; do
        i=$((i + 1))
        "$HTTPLOAD" -c "$conc" -n "$per" -X POST -H 'Content-Type: application/json' \
            -b "$SCALE_BODY" -e 201 "$url/deployments" >"$dir/load-$i.out" 2>&1 &
        loads="$loads $!"
    done
    for pid in $loads; do
        wait "$pid" || rc=$?
    done
    [ "$rc" = 0 ] || { cat "$dir"/load-*.out >&2; bench_die "scale ($name): answers other than 201"; }
    DAEMON_URL=${SCALE_URLS# }
    DAEMON_URL=${DAEMON_URL%% *}
    wait_settled 900 >/dev/null
    ROUND_SECS=$(secs_since "$t0")
    bad=$(deployments_total "excludedStatus=CREATE_COMPLETE")
    [ "$bad" = 0 ] || bench_die "scale ($name): $bad deployments did not complete"
    [ "$(deployments_total "")" = $((per * k)) ] || bench_die "scale ($name): not $((per * k)) deployments stored"
    for pid in $SCALE_PIDS; do
        kill -TERM "$pid" 2>/dev/null
        wait "$pid" || bench_die "scale ($name): a daemon did not exit 0 at SIGTERM"
        bench_forget_pid "$pid"
    done
    printf "    %-10s %d daemon(s): %d deployments (%d nodes) complete after %6.2f s: %6.0f deployments/s, %6.0f node ops/s\n" \
        "$name" "$k" $((per * k)) $((per * k * 4)) "$ROUND_SECS" \
        "$(awk -v n=$((per * k)) -v s="$ROUND_SECS" 'BEGIN { print n / s }')" \
        "$(awk -v n=$((per * k * 4)) -v s="$ROUND_SECS" 'BEGIN { print n / s }')"
    rm -rf "$dir"
}

part_scale() {
    local r cfg k kind key m n
    declare -A all
    BENCH_SCALE_DEPLOYMENTS=${BENCH_SCALE_DEPLOYMENTS:-2000}
    SCALE_CONFIGS=${BENCH_SCALE_CONFIGS:-sqlite:1 pgoverlap:1 pg:1 pg:2 pg:3}
    bench_tmpdir body
    SCALE_BODY=$BENCH_DIR/cluster4.json
    json_body tests/bench/templates/cluster4.yaml >"$SCALE_BODY"
    scale_pg_start
    echo "  $BENCH_SCALE_DEPLOYMENTS deployments of cluster4.yaml (4 nodes), POSTs at concurrency $BENCH_CREATE_CONC split over the daemons, timed until all are CREATE_COMPLETE; $BENCH_ROUNDS rounds, configurations alternating"
    for r in $(seq 1 "$BENCH_ROUNDS"); do
        for cfg in $SCALE_CONFIGS; do
            kind=${cfg%:*} k=${cfg#*:}
            scale_round "$k" "$kind" "${kind}${k}_r$r"
            all[$cfg]="${all[$cfg]:-} $ROUND_SECS"
        done
    done
    n=$BENCH_SCALE_DEPLOYMENTS
    for cfg in $SCALE_CONFIGS; do
        kind=${cfg%:*} k=${cfg#*:}
        # shellcheck disable=SC2086 # the round times, one word each
        m=$(printf "%s\n" ${all[$cfg]} | median)
        key="scale_${kind}${k}"
        result "${key}_deployments_per_s" "$(awk -v n=$(((n / k) * k)) -v s="$m" 'BEGIN { printf "%.0f", n / s }')"
        result "${key}_node_ops_per_s" "$(awk -v n=$(((n / k) * k * 4)) -v s="$m" 'BEGIN { printf "%.0f", n / s }')"
    done
}
