# Helpers of the daemon benches (sourced by tests/bench/run.sh, bash): temp
# directories, starting and stopping orchestratord and nginx on loopback
# ports pinned to a CPU, reading figures from the API and /proc, medians, and
# a cleanup that stops everything the benches started, whatever happened.

BENCH_PIDS=""     # processes to stop at exit
BENCH_DIRS=""     # directories to remove at exit
NGINX_CONFS=""    # nginx configurations whose master to stop at exit

bench_die() {
    echo "bench: FAILED: $*" >&2
    exit 1
}

bench_cleanup() {
    local pid conf
    for conf in $NGINX_CONFS; do
        [ -f "$conf" ] && nginx -c "$conf" -s stop 2>/dev/null
    done
    for pid in $BENCH_PIDS; do
        kill -TERM "$pid" 2>/dev/null
    done
    for pid in $BENCH_PIDS; do
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null
    done
    for conf in $NGINX_CONFS; do
        local pidf="${conf%/*}/nginx.pid"
        [ -f "$pidf" ] && kill -KILL "$(cat "$pidf")" 2>/dev/null
    done
    # testbeds a part started (sites.sh): stopped before their dirs go
    [ -n "${BENCH_CLEANUP_CMDS:-}" ] && eval "$BENCH_CLEANUP_CMDS"
    for d in $BENCH_DIRS; do
        rm -rf "$d"
    done
}

bench_forget_pid() {
    local p out=""
    for p in $BENCH_PIDS; do
        [ "$p" = "$1" ] || out="$out $p"
    done
    BENCH_PIDS="$out"
}

# A new temp directory under $BENCH_TMPDIR, removed at exit: sets BENCH_DIR.
# (Not inside $(...): the list of what to clean up lives in this shell.)
bench_tmpdir() {
    BENCH_DIR=$(mktemp -d "$BENCH_TMPDIR/$1-XXXXXX") || bench_die "cannot create a directory in $BENCH_TMPDIR"
    BENCH_DIRS="$BENCH_DIRS $BENCH_DIR"
}

# Copies stdin to stdout and, line by line as it comes, to stderr: a bench
# program's output is shown live and kept for its figures. (tee /dev/stderr
# would truncate a log file that stderr is redirected to.)
passthru() {
    local line
    while IFS= read -r line; do
        printf '%s\n' "$line" >&2
        printf '%s\n' "$line"
    done
}

# Runs a command on the load generator's CPU.
on_load_cpu() {
    taskset -c "$CPU_LOAD" "$@"
}

# The sites file of one sim site: sim_sites FILE CPUS [PROVISION_LATENCY_MS]
sim_sites() {
    cat >"$1" <<EOF
sites:
  - name: sim
    driver: sim
    config:
      capacity: {cpus: $2, mem: 1000000 TiB, gpus: {}}
      latency: {provision: ${3:-0}}
EOF
}

# Starts orchestratord pinned to $CPU_DAEMON with its data in DIR/var and the
# sites file DIR/sites.yaml; sets DAEMON_PID and DAEMON_URL once the engine
# is ready. Its log is DIR/daemon.log.
daemon_start() {
    local dir=$1
    ORCHESTRATOR_PLUGIN_DIR="$PLUGIN_DIR" taskset -c "$CPU_DAEMON" "$ORCHESTRATORD" \
        --listen 127.0.0.1:0 --data-dir "$dir/var" --sites "$dir/sites.yaml" \
        >"$dir/daemon.log" 2>&1 &
    DAEMON_PID=$!
    BENCH_PIDS="$BENCH_PIDS $DAEMON_PID"
    daemon_wait_ready "$DAEMON_PID" "$dir/daemon.log"
}

# Waits until the daemon PID, logging to LOG, says its engine is ready (else
# fails, showing the log); sets DAEMON_URL to the address it listens on.
daemon_wait_ready() {
    local pid=$1 log=$2 url=""
    for _ in $(seq 1 300); do
        if grep -q "engine ready" "$log" 2>/dev/null; then
            url=$(grep -o 'listening on http://[0-9.:]*' "$log" | head -1)
            break
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    [ -n "$url" ] || { cat "$log" >&2; bench_die "orchestratord did not start"; }
    DAEMON_URL=${url#listening on }
}

# Stops the daemon (SIGTERM, a clean shutdown is expected).
daemon_stop() {
    local pid=$DAEMON_PID rc=0
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" || rc=$?
    bench_forget_pid "$pid"
    [ "$rc" = 0 ] || bench_die "orchestratord exited with status $rc at shutdown (log: $1/daemon.log)"
}

# A loopback TCP port that nothing listens on, from the upper ephemeral range.
free_port() {
    local p
    for _ in $(seq 1 50); do
        p=$((40000 + RANDOM % 20000))
        (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
    bench_die "no free port"
}

# nginx_start DIR PORT URI FILE REQUEST_ID: nginx with a private prefix and
# configuration in DIR, one worker pinned to $CPU_DAEMON, serving FILE at URI
# on 127.0.0.1:PORT as application/json. Headers are made like the daemon's:
# no ETag, Last-Modified or Accept-Ranges, and an x-request-id of the same
# length. Keep-alive without a request limit, as the daemon.
nginx_start() {
    local dir=$1 port=$2 uri=$3 file=$4 rid=$5
    mkdir -p "$dir/tmp"
    cat >"$dir/nginx.conf" <<EOF
daemon on;
master_process on;
worker_processes 1;
worker_cpu_affinity $(cpu_mask "$CPU_DAEMON");
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    server_tokens off;
    keepalive_timeout 30s;
    keepalive_requests 100000000;
    sendfile on;
    etag off;
    max_ranges 0;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    types { }
    default_type application/json;
    server {
        listen 127.0.0.1:$port;
        location = $uri {
            alias $file;
            add_header Last-Modified "";
            add_header x-request-id $rid;
        }
    }
}
EOF
    taskset -c "$CPU_DAEMON" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" ||
        bench_die "nginx did not start ($dir/error.log)"
    NGINX_CONFS="$NGINX_CONFS $dir/nginx.conf"
    for _ in $(seq 1 100); do
        curl -sf -o /dev/null "http://127.0.0.1:$port$uri" && return
        sleep 0.05
    done
    bench_die "nginx does not answer on 127.0.0.1:$port"
}

nginx_stop() {
    local dir=$1 pid
    pid=$(cat "$dir/nginx.pid" 2>/dev/null)
    nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" -s stop 2>/dev/null
    for _ in $(seq 1 100); do
        [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    local out=""
    for c in $NGINX_CONFS; do
        [ "$c" = "$dir/nginx.conf" ] || out="$out $c"
    done
    NGINX_CONFS="$out"
}

# Bitmask of one CPU for nginx's worker_cpu_affinity.
cpu_mask() {
    local m="1" i
    for i in $(seq 1 "$1"); do m="${m}0"; done
    echo "$m"
}

# A request body {"template": <file as a JSON string>}.
json_body() {
    jq -cRs '{template: .}' <"$1"
}

# totalElements of GET /deployments with a query, e.g. "excludedStatus=CREATE_COMPLETE".
deployments_total() {
    curl -sf "$DAEMON_URL/deployments?size=1&$1" | grep -o '"totalElements":[0-9]*' | cut -d: -f2
}

# Waits until no deployment is in progress, polling every 50 ms, for at most
# $1 seconds (else fails); prints the seconds waited.
wait_settled() {
    local start=$EPOCHREALTIME left
    while :; do
        left=$(deployments_total "excludedStatus=CREATE_COMPLETE,CREATE_FAILED,DELETE_COMPLETE")
        [ "$left" = 0 ] && { secs_since "$start"; return 0; }
        [ "$(secs_since "$start" | cut -d. -f1)" -lt "$1" ] ||
            bench_die "deployments still in progress after $1 s (${left:-no answer} left)"
        sleep 0.05
    done
}

# Seconds since a $EPOCHREALTIME value.
secs_since() {
    awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f\n", b - a }'
}

# Field of /proc/PID/status in kB (VmRSS, VmHWM).
proc_kb() {
    awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"
}

# Size in bytes of the daemon's store (database and WAL).
store_bytes() {
    du -cb "$1"/var/*.db "$1"/var/*.db-wal 2>/dev/null | tail -1 | cut -f1
}

# Median of numbers on stdin.
median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit 1; if (NR % 2) print v[(NR + 1) / 2]; else printf "%.6g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Value of key=... in an httpload line.
field() {
    echo "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k { print $2 }'
}

# wrk's latency figure ("5.27ms", "812.00us", "1.02s") in milliseconds.
wrk_ms() {
    echo "$1" | awk '/us$/ { printf "%.3f\n", $1 / 1000; next } /ms$/ { printf "%.3f\n", $1 + 0; next }
                     /s$/ { printf "%.3f\n", $1 * 1000 }'
}
