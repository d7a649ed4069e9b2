#!/bin/bash
# The benchmarks' entry point (make bench; docs/performance.md): runs the
# parts named in BENCH (default all: tosca http creates engine scale rss agent ssh slurm), prints
# each part's rounds, then a summary table of the medians with the goals and
# the figures of the previous run (from the results file, when there is one),
# and stores this run's figures in that file. Exit status: 0 when every part
# ran without an error (whatever the figures), 1 when something was wrong.
#
# Every part starts what it needs (orchestratord on an ephemeral loopback
# port, nginx on a loopback port with a private prefix, temp dirs under
# BENCH_TMPDIR) and the exit trap stops and removes all of it.
#
# Knobs (environment): BENCH, BENCH_ROUNDS (3), BENCH_HTTP_ROUNDS (5),
# BENCH_SECONDS (wrk run length, 5), BENCH_HTTP_FILL (1000), BENCH_CREATES
# (5000 per round), BENCH_CREATE_CONC (50), BENCH_DEPLOYMENTS (10000), BENCH_SCALE_DEPLOYMENTS (2000), BENCH_SCALE_CONFIGS (sqlite:1 pgoverlap:1 pg:1 pg:2 pg:3),
# BENCH_ENGINE_DAEMON_ROUNDS (BENCH_ROUNDS), BENCH_RSS_LATENCY_MS (300000),
# BENCH_AGENT_ROUNDS (20), BENCH_SSH_DEPLOYMENTS (100), BENCH_SSH_HOSTS (10), BENCH_TMPDIR (BUILD/bench-tmp), BENCH_RESULTS (BUILD/bench-results.txt).
set -u -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../.." || exit 1
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=parts.sh
. "$here/parts.sh"
# shellcheck source=sites.sh
. "$here/sites.sh"
# shellcheck source=scale.sh
. "$here/scale.sh"

BUILD=${BUILD:-build/release}
CORPUS=${CORPUS:-../shared/corpus}
ORCHESTRATORD=${ORCHESTRATORD:-$BUILD/bin/orchestratord}
PLUGIN_DIR=${PLUGIN_DIR:-$BUILD/plugins}
HTTPLOAD=${HTTPLOAD:-$BUILD/bench/httpload}
GPU_AGENT=${GPU_AGENT:-$BUILD/bin/gpu-agent}
BENCH=${BENCH:-all}
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
BENCH_HTTP_ROUNDS=${BENCH_HTTP_ROUNDS:-5}
BENCH_SECONDS=${BENCH_SECONDS:-5}
BENCH_HTTP_FILL=${BENCH_HTTP_FILL:-1000}
BENCH_CREATES=${BENCH_CREATES:-5000}
BENCH_CREATE_CONC=${BENCH_CREATE_CONC:-50}
BENCH_DEPLOYMENTS=${BENCH_DEPLOYMENTS:-10000}
BENCH_ENGINE_DAEMON_ROUNDS=${BENCH_ENGINE_DAEMON_ROUNDS:-$BENCH_ROUNDS}
BENCH_RSS_LATENCY_MS=${BENCH_RSS_LATENCY_MS:-300000}
BENCH_TMPDIR=${BENCH_TMPDIR:-$BUILD/bench-tmp}
BENCH_RESULTS=${BENCH_RESULTS:-$BUILD/bench-results.txt}
HTTP_CONNS=50
ALL_PARTS="tosca http creates engine scale rss agent ssh slurm"

[ "$BENCH" = all ] && BENCH=$ALL_PARTS
for p in $BENCH; do
    case " $ALL_PARTS " in
    *" $p "*) ;;
    *) echo "bench: unknown part '$p' (parts: $ALL_PARTS)" >&2; exit 2 ;;
    esac
done

# CPU placement: the daemon (one loop thread) or nginx on one core, the load
# generator on the other.
if [ "$(nproc)" -ge 2 ]; then
    CPU_DAEMON=0
    CPU_LOAD=1
else
    CPU_DAEMON=0
    CPU_LOAD=0
fi

trap bench_cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$BENCH_TMPDIR" || exit 1
BENCH_TMPDIR=$(cd "$BENCH_TMPDIR" && pwd)

declare -A CUR PREV
PREV_DATE=""
if [ -f "$BENCH_RESULTS" ]; then
    while read -r k v; do
        [ "$k" = date ] && PREV_DATE=$v && continue
        [ -n "$k" ] && PREV[$k]=$v
    done <"$BENCH_RESULTS"
fi

result() {
    [ -n "$2" ] || bench_die "no figure for $1"
    CUR[$1]=$2
}

machine() {
    local disk fs
    fs=$(stat -f -c %T "$BENCH_TMPDIR")
    disk=$(df --output=source "$BENCH_TMPDIR" | tail -1)
    echo "machine: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(nproc) cores," \
        "$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), Linux $(uname -r)"
    echo "temp dirs: $BENCH_TMPDIR ($fs on $disk$(lsblk -dno ROTA "$disk" 2>/dev/null |
        awk '{ print ", lsblk ROTA=" $1 }'))"
    echo "cores: daemon/nginx on CPU $CPU_DAEMON, load generators on CPU $CPU_LOAD;" \
        "load average $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the figures)"
}

# key | what | goal (awk condition on v, or "") | unit
ROWS=(
    "tosca_ratio|libtosca load+plan / bare libyaml|v <= 3|x"
    "http_daemon_rps|GET /deployments/{id}: orchestratord||req/s"
    "http_daemon_p99_ms|  p99 latency||ms"
    "http_nginx_rps|  nginx, same bytes, static||req/s"
    "http_nginx_p99_ms|  nginx p99 latency||ms"
    "http_ratio|  ratio orchestratord / nginx|v >= 0.7|"
    "http_body_bytes|  response body||bytes"
    "creates_per_s|durable creates (POST, 201)|v >= 2000|/s"
    "creates_p50_ms|  p50 latency||ms"
    "creates_p99_ms|  p99 latency||ms"
    "creates_errors|  errors|v == 0|"
    "engine_node_ops_per_s|engine in process, N x 4 nodes, sim|v >= 10000|ops/s"
    "engine_deployments_per_s|  deployments||/s"
    "engine_daemon_node_ops_per_s|  the same through orchestratord||ops/s"
    "engine_daemon_deployments_per_s|  deployments||/s"
    "scale_sqlite1_deployments_per_s|scale: 1 daemon on SQLite, deployments||/s"
    "scale_sqlite1_node_ops_per_s|  node operations||ops/s"
    "scale_pgoverlap1_deployments_per_s|  1 daemon on PostgreSQL, store_commit overlap, deployments||/s"
    "scale_pgoverlap1_node_ops_per_s|  node operations||ops/s"
    "scale_pg1_deployments_per_s|  1 daemon on PostgreSQL, deployments||/s"
    "scale_pg1_node_ops_per_s|  node operations||ops/s"
    "scale_pg2_deployments_per_s|  2 daemons on PostgreSQL, deployments||/s"
    "scale_pg2_node_ops_per_s|  node operations||ops/s"
    "scale_pg3_deployments_per_s|  3 daemons on PostgreSQL, deployments||/s"
    "scale_pg3_node_ops_per_s|  node operations||ops/s"
    "rss_kb_per_deployment|RSS per in-flight deployment|v <= 20|kB"
    "rss_idle_kb|  VmRSS idle||kB"
    "rss_hwm_kb|  VmHWM with all in flight||kB"
    "store_bytes_per_deployment|  store file per deployment||bytes"
    "agent_first_report_ms|gpu-agent exec to first report|v < 50|ms"
    "agent_baseline_ms|  curl exec to one POST (baseline)||ms"
    "agent_ratio|  ratio agent / curl||x"
    "agent_rss_kb|  agent VmRSS supervising a workload|v < 20480|kB"
    "ssh_one_ms|ssh pool: one job, POST -> CREATE_COMPLETE||ms"
    "ssh_local_one_ms|  the same on the local site (baseline)||ms"
    "ssh_many_p50_ms|  100 services at once on 10 hosts: p50||ms"
    "ssh_many_max_ms|  100 services at once on 10 hosts: the last||ms"
    "ssh_conns_per_deployment|  SSH connections accepted per deployment||"
    "slurm_running_ms|slurm: one job, POST -> job running||ms"
    "slurm_complete_ms|  POST -> CREATE_COMPLETE (job sleeps 3 s)||ms"
)

summary() {
    local row k what goal unit v p verdict
    echo
    echo "== summary: medians ($(date -u +%Y-%m-%dT%H:%MZ))${PREV_DATE:+; previous run $PREV_DATE} =="
    printf "%-40s %14s %14s  %-6s %s\n" "figure" "this run" "previous" "unit" "goal"
    for row in "${ROWS[@]}"; do
        IFS='|' read -r k what goal unit <<<"$row"
        v=${CUR[$k]:-}
        [ -n "$v" ] || continue
        p=${PREV[$k]:--}
        verdict=""
        if [ -n "$goal" ]; then
            if awk -v v="$v" "BEGIN { exit !($goal) }"; then
                verdict="${goal#v } (met)"
            else
                verdict="${goal#v } (NOT met)"
            fi
        fi
        printf "%-40s %14s %14s  %-6s %s\n" "$what" "$v" "$p" "$unit" "$verdict"
    done
}

save() {
    local k
    for k in "${!CUR[@]}"; do
        PREV[$k]=${CUR[$k]}
    done
    {
        echo "date $(date -u +%Y-%m-%dT%H:%MZ)"
        for k in "${!PREV[@]}"; do
            echo "$k ${PREV[$k]}"
        done | sort
    } >"$BENCH_RESULTS.tmp" && mv "$BENCH_RESULTS.tmp" "$BENCH_RESULTS"
}

machine
for p in $BENCH; do
    for tool in wrk nginx jq taskset; do
        [ "$p" = tosca ] || [ "$p" = agent ] || command -v "$tool" >/dev/null || {
            echo "bench: $tool is missing (sh deploy/install-deps.sh --bench)" >&2
            exit 1
        }
    done
    echo
    echo "-- $p -- (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    "part_$p"
done
summary
save
