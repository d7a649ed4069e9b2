# The benchmark parts (sourced by tests/bench/run.sh, bash; helpers in
# lib.sh). Each part starts what it needs, reports figures with `result KEY
# VALUE` and fails (bench_die) only when something is wrong: an error or an
# unexpected status, a deployment that did not complete, a daemon that does
# not shut down cleanly. Timings are reported, never asserted.

# ---- tosca: libtosca load+validate+plan vs a bare libyaml parse --------------

part_tosca() {
    local out ratio
    out=$(CORPUS="$CORPUS" "$BUILD/bench/bench_tosca" | passthru) || bench_die "bench_tosca failed"
    ratio=$(echo "$out" | sed -n 's/.*ratio ours \/ bare: \([0-9.]*\)x.*/\1/p' | head -1)
    [ -z "$ratio" ] || result tosca_ratio "$ratio" # none when the corpus was skipped
}

# ---- http: GET /deployments/{id}, the daemon against nginx -----------------------

# wrk_run URL: one wrk run on the load CPU; prints "RPS P99_MS".
wrk_run() {
    local out rps p99
    out=$(on_load_cpu wrk -t1 -c"$HTTP_CONNS" -d"${BENCH_SECONDS}s" --latency "$1") ||
        bench_die "wrk failed on $1"
    if echo "$out" | grep -q -e "Non-2xx" -e "Socket errors"; then
        echo "$out" >&2
        bench_die "wrk saw errors on $1"
    fi
    rps=$(echo "$out" | awk '/^Requests\/sec:/ { print $2 }')
    p99=$(wrk_ms "$(echo "$out" | awk '$1 == "99%" { print $2 }')")
    echo "$rps $p99"
}

# Creates the deployment the bench reads (gpu-serving example, completed on
# the sim site) among BENCH_HTTP_FILL others; sets FIXTURE_ID.
http_fixture() {
    local dir=$1 id
    json_body examples/gpu-serving.yaml >"$dir/serving.json"
    json_body tests/bench/templates/small.yaml >"$dir/small.json"
    id=$(curl -sf -X POST -H 'Content-Type: application/json' --data-binary "@$dir/serving.json" \
        "$DAEMON_URL/deployments" | jq -r .uuid) || bench_die "POST /deployments failed"
    on_load_cpu "$HTTPLOAD" -c 16 -n "$BENCH_HTTP_FILL" -X POST -H 'Content-Type: application/json' \
        -b "$dir/small.json" -e 201 "$DAEMON_URL/deployments" >/dev/null || bench_die "filling the store failed"
    wait_settled 120 >/dev/null
    [ "$(curl -sf "$DAEMON_URL/deployments/$id" | jq -r .status)" = CREATE_COMPLETE ] ||
        bench_die "deployment $id did not complete"
    FIXTURE_ID=$id
}

# Prints the response headers of a saved curl -D file, one per line, without
# the status line, and their size.
show_headers() {
    tail -n +2 "$1" | tr -d '\r' | sed '/^$/d; s/^/      /'
    echo "      ($(tail -n +2 "$1" | wc -c) bytes of header lines)"
}

part_http() {
    local dir id port bytes d n out rd=() pd=() rn=() pn=() ratios=() i
    bench_tmpdir http
    dir=$BENCH_DIR
    sim_sites "$dir/sites.yaml" 100000000
    daemon_start "$dir"
    http_fixture "$dir"
    id=$FIXTURE_ID
    curl -sf -D "$dir/daemon.headers" -o "$dir/deployment.json" "$DAEMON_URL/deployments/$id" ||
        bench_die "GET /deployments/$id failed"
    bytes=$(wc -c <"$dir/deployment.json")
    port=$(free_port) || exit 1
    mkdir -p "$dir/nginx"
    chmod 0755 "$dir" "$dir/nginx" # nginx's worker runs as nobody when started as root
    nginx_start "$dir/nginx" "$port" "/deployments/$id" "$dir/deployment.json" "$(cat /proc/sys/kernel/random/uuid)"
    curl -sf -D "$dir/nginx.headers" -o "$dir/nginx.body" "http://127.0.0.1:$port/deployments/$id" ||
        bench_die "nginx does not serve the copy"
    cmp -s "$dir/deployment.json" "$dir/nginx.body" || bench_die "nginx serves other bytes"
    d="$DAEMON_URL/deployments/$id"
    n="http://127.0.0.1:$port/deployments/$id"
    echo "  GET /deployments/{id}: a CREATE_COMPLETE deployment among $BENCH_HTTP_FILL others; body $bytes bytes"
    echo "    orchestratord headers:"
    show_headers "$dir/daemon.headers"
    echo "    nginx $(nginx -v 2>&1 | sed 's/.*\///') headers (same file, static):"
    show_headers "$dir/nginx.headers"
    echo "  wrk -t1 -c$HTTP_CONNS -d${BENCH_SECONDS}s on CPU $CPU_LOAD; daemon (one loop thread) and nginx (one worker) on CPU $CPU_DAEMON; alternating, $BENCH_HTTP_ROUNDS rounds after a warm-up"
    out=$(BENCH_SECONDS=1 wrk_run "$d") || exit 1
    out=$(BENCH_SECONDS=1 wrk_run "$n") || exit 1
    for i in $(seq 1 "$BENCH_HTTP_ROUNDS"); do
        out=$(wrk_run "$d") || exit 1
        read -r rd[i] pd[i] <<<"$out"
        out=$(wrk_run "$n") || exit 1
        read -r rn[i] pn[i] <<<"$out"
        ratios[i]=$(awk -v a="${rd[i]}" -v b="${rn[i]}" 'BEGIN { printf "%.3f", a / b }')
        printf "    round %d: orchestratord %8.0f req/s p99 %6.2f ms | nginx %8.0f req/s p99 %6.2f ms | ratio %s\n" \
            "$i" "${rd[i]}" "${pd[i]}" "${rn[i]}" "${pn[i]}" "${ratios[i]}"
    done
    nginx_stop "$dir/nginx"
    daemon_stop "$dir"
    result http_body_bytes "$bytes"
    result http_daemon_rps "$(printf '%s\n' "${rd[@]}" | median)"
    result http_daemon_p99_ms "$(printf '%s\n' "${pd[@]}" | median)"
    result http_nginx_rps "$(printf '%s\n' "${rn[@]}" | median)"
    result http_nginx_p99_ms "$(printf '%s\n' "${pn[@]}" | median)"
    result http_ratio "$(printf '%s\n' "${ratios[@]}" | median)"
}

# ---- creates: durable POST /deployments ----------------------------------------------

part_creates() {
    local body dir out total bad i rps=() p50=() p99=() errors=0
    bench_tmpdir body
    body=$BENCH_DIR/small.json
    json_body tests/bench/templates/small.yaml >"$body"
    echo "  POST /deployments (tests/bench/templates/small.yaml, $(wc -c <"$body") bytes), $BENCH_CREATES per round at concurrency $BENCH_CREATE_CONC"
    echo "  a fresh daemon per round, default store (SQLite WAL, synchronous=FULL) under $BENCH_TMPDIR; one sim site, latency 0"
    for i in $(seq 1 "$BENCH_ROUNDS"); do
        bench_tmpdir creates
        dir=$BENCH_DIR
        sim_sites "$dir/sites.yaml" 100000000
        daemon_start "$dir"
        out=$(on_load_cpu "$HTTPLOAD" -c "$BENCH_CREATE_CONC" -n "$BENCH_CREATES" -X POST \
            -H 'Content-Type: application/json' -b "$body" -e 201 "$DAEMON_URL/deployments") ||
            bench_die "creates: answers other than 201 ($out)"
        errors=$((errors + $(field "$out" errors)))
        total=$(deployments_total "")
        [ "$total" = "$BENCH_CREATES" ] || bench_die "creates: $total deployments stored, $BENCH_CREATES answered 201"
        wait_settled 300 >/dev/null
        bad=$(deployments_total "excludedStatus=CREATE_COMPLETE")
        [ "$bad" = 0 ] || bench_die "creates: $bad deployments did not complete"
        daemon_stop "$dir"
        rps[i]=$(field "$out" rps)
        p50[i]=$(field "$out" p50_ms)
        p99[i]=$(field "$out" p99_ms)
        printf "    round %d: %7.0f creates/s, p50 %6.2f ms, p99 %6.2f ms, %d errors; all %d completed\n" \
            "$i" "${rps[i]}" "${p50[i]}" "${p99[i]}" "$(field "$out" errors)" "$total"
        rm -rf "$dir"
    done
    result creates_per_s "$(printf '%s\n' "${rps[@]}" | median)"
    result creates_p50_ms "$(printf '%s\n' "${p50[@]}" | median)"
    result creates_p99_ms "$(printf '%s\n' "${p99[@]}" | median)"
    result creates_errors "$errors"
}

# ---- engine: 10,000 deployments x 4 nodes, sim latency 0 ---------------------------------

# The same work through the real daemon: N deployments of the four-node
# template over HTTP, timed from the first POST until none is in progress;
# sets ROUND_SECS.
engine_daemon_round() {
    local body=$1 dir out secs t0 bad probe reason nodes=$((BENCH_DEPLOYMENTS * 4))
    bench_tmpdir engine
    dir=$BENCH_DIR
    sim_sites "$dir/sites.yaml" "$nodes"
    daemon_start "$dir"
    t0=$EPOCHREALTIME
    out=$(on_load_cpu "$HTTPLOAD" -c "$BENCH_CREATE_CONC" -n "$BENCH_DEPLOYMENTS" -X POST \
        -H 'Content-Type: application/json' -b "$body" -e 201 "$DAEMON_URL/deployments") ||
        bench_die "engine (daemon): answers other than 201 ($out)"
    wait_settled 900 >/dev/null
    secs=$(secs_since "$t0")
    bad=$(deployments_total "excludedStatus=CREATE_COMPLETE")
    [ "$bad" = 0 ] || bench_die "engine (daemon): $bad deployments did not complete"
    # the site is full: one more node is refused, so it holds exactly 4N
    probe=$(curl -sf -X POST -H 'Content-Type: application/json' --data-binary "@${body%/*}/small.json" \
        "$DAEMON_URL/deployments" | jq -r .uuid)
    wait_settled 60 >/dev/null
    reason=$(curl -sf "$DAEMON_URL/deployments/$probe" | jq -r .statusReason)
    case "$reason" in
    *"0 of $nodes free"*) ;;
    *) bench_die "engine (daemon): the sim site is not full after $nodes nodes: $reason" ;;
    esac
    daemon_stop "$dir"
    rm -rf "$dir"
    printf "    round: submitted in %.2f s (%.0f/s), all complete after %.2f s: %.0f node ops/s, %.0f deployments/s\n" \
        "$(field "$out" elapsed_s)" "$(field "$out" rps)" "$secs" \
        "$(awk -v n="$nodes" -v s="$secs" 'BEGIN { print n / s }')" \
        "$(awk -v n="$BENCH_DEPLOYMENTS" -v s="$secs" 'BEGIN { print n / s }')"
    ROUND_SECS=$secs
}

part_engine() {
    local out body secs=() i m
    bench_tmpdir engine-c
    out=$(BENCH_ROUNDS="$BENCH_ROUNDS" BENCH_DEPLOYMENTS="$BENCH_DEPLOYMENTS" PLUGIN_DIR="$PLUGIN_DIR" \
        BENCH_TMPDIR="$BENCH_DIR" taskset -c "$CPU_DAEMON" "$BUILD/bench/bench_engine" |
        passthru) || bench_die "bench_engine failed"
    while read -r _ k v; do
        result "$k" "$v"
    done < <(echo "$out" | grep '^result: ')
    bench_tmpdir body
    body=$BENCH_DIR/cluster4.json
    json_body tests/bench/templates/cluster4.yaml >"$body"
    json_body tests/bench/templates/small.yaml >"${body%/*}/small.json"
    echo "  the same through orchestratord: $BENCH_DEPLOYMENTS POSTs at concurrency $BENCH_CREATE_CONC, timed until all are CREATE_COMPLETE"
    for i in $(seq 1 "$BENCH_ENGINE_DAEMON_ROUNDS"); do
        engine_daemon_round "$body"
        secs[i]=$ROUND_SECS
    done
    m=$(printf '%s\n' "${secs[@]}" | median)
    result engine_daemon_node_ops_per_s "$(awk -v n="$((BENCH_DEPLOYMENTS * 4))" -v s="$m" 'BEGIN { printf "%.0f", n / s }')"
    result engine_daemon_deployments_per_s "$(awk -v n="$BENCH_DEPLOYMENTS" -v s="$m" 'BEGIN { printf "%.0f", n / s }')"
}

# ---- rss: daemon memory per in-flight deployment --------------------------------------------

part_rss() {
    local body dir out idle rss hwm store inflight w=10 i per=() idles=() hwms=() sto=()
    bench_tmpdir body
    body=$BENCH_DIR/cluster4.json
    json_body tests/bench/templates/cluster4.yaml >"$body"
    echo "  $BENCH_DEPLOYMENTS deployments of tests/bench/templates/cluster4.yaml in flight (sim provision latency ${BENCH_RSS_LATENCY_MS} ms); VmRSS after start-up and $w warm-up deployments, then with all in flight"
    for i in $(seq 1 "$BENCH_ROUNDS"); do
        bench_tmpdir rss
        dir=$BENCH_DIR
        sim_sites "$dir/sites.yaml" 100000000 "$BENCH_RSS_LATENCY_MS"
        daemon_start "$dir"
        on_load_cpu "$HTTPLOAD" -c "$w" -n "$w" -X POST -H 'Content-Type: application/json' -b "$body" \
            -e 201 "$DAEMON_URL/deployments" >/dev/null || bench_die "rss: warm-up failed"
        sleep 1
        idle=$(proc_kb "$DAEMON_PID" VmRSS)
        out=$(on_load_cpu "$HTTPLOAD" -c "$BENCH_CREATE_CONC" -n "$BENCH_DEPLOYMENTS" -X POST \
            -H 'Content-Type: application/json' -b "$body" -e 201 "$DAEMON_URL/deployments") ||
            bench_die "rss: answers other than 201 ($out)"
        sleep 3
        inflight=$(deployments_total "excludedStatus=CREATE_COMPLETE,CREATE_FAILED,DELETE_COMPLETE")
        [ "$inflight" = $((BENCH_DEPLOYMENTS + w)) ] ||
            bench_die "rss: $inflight deployments in flight, expected $((BENCH_DEPLOYMENTS + w)) (raise BENCH_RSS_LATENCY_MS)"
        rss=$(proc_kb "$DAEMON_PID" VmRSS)
        hwm=$(proc_kb "$DAEMON_PID" VmHWM)
        store=$(store_bytes "$dir")
        daemon_stop "$dir"
        rm -rf "$dir"
        per[i]=$(awk -v a="$rss" -v b="$idle" -v n="$BENCH_DEPLOYMENTS" 'BEGIN { printf "%.2f", (a - b) / n }')
        idles[i]=$idle
        hwms[i]=$hwm
        sto[i]=$(awk -v s="$store" -v n="$((BENCH_DEPLOYMENTS + w))" 'BEGIN { printf "%.0f", s / n }')
        printf "    round %d: VmRSS idle %d kB, in flight %d kB: %s kB per deployment; VmHWM %d kB; store %d bytes (%s per deployment)\n" \
            "$i" "$idle" "$rss" "${per[i]}" "$hwm" "$store" "${sto[i]}"
    done
    result rss_kb_per_deployment "$(printf '%s\n' "${per[@]}" | median)"
    result rss_idle_kb "$(printf '%s\n' "${idles[@]}" | median)"
    result rss_hwm_kb "$(printf '%s\n' "${hwms[@]}" | median)"
    result store_bytes_per_deployment "$(printf '%s\n' "${sto[@]}" | median)"
}

# ---- agent: gpu-agent start-up time and memory ---------------------------------

part_agent() {
    local out line
    out=$("$BUILD/bench/bench_agent" "$GPU_AGENT" "${BENCH_AGENT_ROUNDS:-20}" | passthru) ||
        bench_die "bench_agent failed"
    line=$(echo "$out" | grep '^median ')
    result agent_first_report_ms "$(echo "$line" | awk '{ print $3 }')"
    result agent_baseline_ms "$(echo "$line" | awk '{ print $5 }')"
    result agent_ratio "$(echo "$line" | awk '{ print $7 }')"
    result agent_rss_kb "$(echo "$line" | awk '{ print $9 }')"
}
