# shellcheck shell=bash
# Benchmark parts of the real sites (sourced by run.sh; docs/performance.md):
#   ssh    a 10-host pool of real sshd (deploy/testbed/sshd.sh): one job
#          (`true`) alone, POST -> CREATE_COMPLETE, against the same job on
#          the local site (the baseline); then 100 model servers (gpu-serve,
#          each on its own port) at once, POST -> CREATE_COMPLETE (the server
#          answered its readiness probe) per deployment, and the SSH
#          connections the hosts accepted per deployment since the daemon
#          started (their sshd logs)
#   slurm  one job on a real one-node Slurm (deploy/testbed/slurm.sh) behind
#          a real sshd login node: POST -> the job RUNNING (its gpu-agent's
#          first "running" report) and POST -> CREATE_COMPLETE

# A model server (gpu-serve, from the runtime the driver uploads) on the
# port given as an input: the pool's hosts share this machine's loopback,
# so each deployment gets its own. BENCH_MODEL: a checkpoint path.
SSH_SERVICE_TMPL='tosca_definitions_version: tosca_simple_yaml_1_3
topology_template:
  inputs:
    port: {type: integer}
    model: {type: string}
  node_templates:
    box:
      type: orc.nodes.GPUCompute
      capabilities:
        host:
          properties: {num_cpus: 1, mem_size: 64 MB}
    svc:
      type: orc.nodes.Service
      properties:
        command: {concat: ["exec gpu-serve --port \"$PORT\" --model ", {get_input: model}]}
        port: {get_input: port}
        readiness_path: /v2/models/
      requirements:
        - host: box'

# One job on one small node that runs the command $1.
job_tmpl() {
    printf '%s\n' 'tosca_definitions_version: tosca_simple_yaml_1_3
topology_template:
  node_templates:
    box:
      type: orc.nodes.GPUCompute
      capabilities:
        host:
          properties: {num_cpus: 1, mem_size: 64 MB}
    job:
      type: orc.nodes.Job
      properties:
        command: '"$1"'
      requirements:
        - host: box'
}
SSH_JOB_TMPL=$(job_tmpl '"true"')
SLURM_JOB_TMPL=$(job_tmpl 'sleep 3')

# "uuid t0" for one POST of template $1 to the daemon at $2 (default
# $DAEMON_URL) with the parameters (a JSON object) $3 (t0: $EPOCHREALTIME
# before it). Runs in xargs' children too, where pipefail is not set: the
# uuid is checked, not the pipe's status.
post_one() {
    local t0=$EPOCHREALTIME uuid url=${2:-$DAEMON_URL} params=${3:-}
    [ -n "$params" ] || params='{}'
    uuid=$(jq -cn --arg t "$1" --argjson p "$params" '{template: $t, parameters: $p}' |
        curl -sf -H 'Content-Type: application/json' --data-binary @- "$url/deployments" |
        jq -r '.uuid // empty')
    [ -n "$uuid" ] || { echo "bench: POST $url/deployments failed" >&2; return 1; }
    echo "$uuid $t0"
}
export -f post_one

# "uuid status" of every deployment, page by page (the API serves at most
# 100 per page).
all_statuses() {
    local page=0 body pages
    while :; do
        body=$(curl -sf "$DAEMON_URL/deployments?size=100&page=$page") || return 1
        echo "$body" | jq -r '.content[]? | "\(.uuid) \(.status)"'
        pages=$(echo "$body" | jq -r '.page.totalPages // 1')
        page=$((page + 1))
        [ "$page" -lt "$pages" ] || return 0
    done
}

# Reads "uuid t0" lines ($1), polls until each is CREATE_COMPLETE (fails on
# CREATE_FAILED or after $2 s); prints one "ms" line per deployment.
complete_ms() {
    local list=$1 limit=$2 start=$EPOCHREALTIME page now
    declare -A t0=() done_at=()
    while read -r u t; do t0[$u]=$t; done <"$list"
    while [ "${#done_at[@]}" -lt "${#t0[@]}" ]; do
        page=$(all_statuses) || bench_die "GET /deployments failed"
        now=$EPOCHREALTIME
        while read -r u st; do
            [ -n "${t0[$u]:-}" ] || continue
            [ "$st" = CREATE_FAILED ] &&
                bench_die "deployment $u failed: $(curl -sf "$DAEMON_URL/deployments/$u" | jq -r .statusReason)"
            [ "$st" = CREATE_COMPLETE ] && [ -z "${done_at[$u]:-}" ] && done_at[$u]=$now
        done <<<"$page"
        [ "$(secs_since "$start" | cut -d. -f1)" -lt "$limit" ] ||
            bench_die "deployments not complete after $limit s (${#done_at[@]} of ${#t0[@]})"
        sleep 0.05
    done
    for u in "${!t0[@]}"; do
        awk -v a="${t0[$u]}" -v b="${done_at[$u]}" 'BEGIN { printf "%.1f\n", (b - a) * 1000 }'
    done
}

delete_all() {
    local u
    for u in $(cut -d' ' -f1 "$1"); do curl -sf -X DELETE "$DAEMON_URL/deployments/$u" >/dev/null; done
    for _ in $(seq 1 1200); do
        [ "$(deployments_total "")" = 0 ] && return 0
        sleep 0.1
    done
    bench_die "deployments not deleted after 120 s"
}

accepted_sessions() {
    cat "$1"/host*/sshd.log 2>/dev/null | grep -c 'Accepted publickey'
}

ssh_sites() {
    local tb=$1 n=$2 work=$3 i addr port
    . "$tb/testbed.env"
    {
        echo "sites:"
        echo "  - name: pool"
        echo "    driver: ssh"
        echo "    config:"
        echo "      user: $SSH_USER"
        echo "      identity: $SSH_KEY"
        echo "      known_hosts: $SSH_KNOWN_HOSTS"
        echo "      work_dir: $work"
        echo "      trust_declared_gpus: true"
        echo "      agent_check: none"
        echo "      poll_ms: 200"
        echo "      hosts:"
        i=0
        for hp in $SSH_HOSTS; do
            i=$((i + 1))
            [ "$i" -le "$n" ] || break
            addr=${hp%:*}
            port=${hp##*:}
            echo "        - {name: h$i, address: \"$addr\", port: $port, cpus: 16, mem: 64 GiB, gpus: {A100: 10}}"
        done
    }
}

part_ssh() {
    local dir tb list n=${BENCH_SSH_DEPLOYMENTS:-100} hosts=${BENCH_SSH_HOSTS:-10} before after
    local ms one_ms="" local_ms="" r
    bench_tmpdir ssh
    dir=$BENCH_DIR
    tb=$dir/tb
    sh deploy/testbed/sshd.sh start "$tb" --hosts "$hosts" >"$dir/testbed.log" 2>&1 ||
        { cat "$dir/testbed.log" >&2; bench_die "sshd testbed did not start"; }
    # the workloads run detached on the hosts: a failed run leaves them up
    BENCH_CLEANUP_CMDS="${BENCH_CLEANUP_CMDS:+$BENCH_CLEANUP_CMDS; }pkill -f '$dir/'; sh deploy/testbed/sshd.sh stop '$tb' >/dev/null 2>&1"
    # baseline: the same deployment on the local site
    printf 'sites:\n  - name: local\n    driver: local\n' >"$dir/sites.yaml"
    daemon_start "$dir"
    one_ms=""
    for r in $(seq 1 "$BENCH_ROUNDS"); do
        post_one "$SSH_JOB_TMPL" >"$dir/one.txt" || bench_die "POST failed"
        ms=$(complete_ms "$dir/one.txt" 60) || bench_die "the local deployment did not complete"
        echo "  local round $r: one job, POST -> CREATE_COMPLETE ${ms} ms"
        local_ms="$local_ms $ms"
        delete_all "$dir/one.txt"
    done
    daemon_stop "$dir"
    rm -rf "$dir/var"
    ssh_sites "$tb" "$hosts" "$dir/work" >"$dir/sites.yaml"
    before=$(accepted_sessions "$tb")
    daemon_start "$dir"
    for r in $(seq 1 "$BENCH_ROUNDS"); do
        post_one "$SSH_JOB_TMPL" >"$dir/one.txt" || bench_die "POST failed"
        ms=$(complete_ms "$dir/one.txt" 120) || bench_die "the ssh deployment did not complete"
        echo "  ssh round $r: one job, POST -> CREATE_COMPLETE ${ms} ms"
        one_ms="$one_ms $ms"
        delete_all "$dir/one.txt"
    done
    list=$dir/many.txt
    "$BUILD/bin/gpu-train" --epochs 1 --samples 2000 --device cpu --out "$dir/model.bin" \
        >"$dir/train.log" 2>&1 || bench_die "gpu-train could not write the model (log: $dir/train.log)"
    local t0=$EPOCHREALTIME
    seq 1 "$n" | xargs -P 50 -I{} bash -c \
        'post_one "$0" "$1" "{\"port\": $((20000 + $2)), \"model\": \"$3\"}"' \
        "$SSH_SERVICE_TMPL" "$DAEMON_URL" {} "$dir/model.bin" >"$list" ||
        bench_die "POSTs failed"
    complete_ms "$list" 600 >"$dir/many_ms.txt" || bench_die "the $n deployments did not complete"
    local makespan
    makespan=$(secs_since "$t0")
    after=$(accepted_sessions "$tb")
    echo "  ssh: $n deployments at once on $hosts hosts: all complete after ${makespan} s;" \
        "p50 $(median <"$dir/many_ms.txt") ms, max $(sort -g "$dir/many_ms.txt" | tail -1) ms;" \
        "SSH connections the hosts accepted since the daemon started, for these and the" \
        "$BENCH_ROUNDS single jobs: $((after - before))"
    result ssh_one_ms "$(echo "$one_ms" | tr ' ' '\n' | grep . | median)"
    result ssh_local_one_ms "$(echo "$local_ms" | tr ' ' '\n' | grep . | median)"
    result ssh_many_p50_ms "$(median <"$dir/many_ms.txt")"
    result ssh_many_max_ms "$(sort -g "$dir/many_ms.txt" | tail -1)"
    result ssh_conns_per_deployment "$(awk -v a="$((after - before))" -v n="$((n + BENCH_ROUNDS))" 'BEGIN { printf "%.2f\n", a / n }')"
    delete_all "$list"
    daemon_stop "$dir"
    sh deploy/testbed/sshd.sh stop "$tb" >/dev/null 2>&1
}

# POST -> the job's workload_state first "running", polled on extrainfo.
running_ms() {
    local uuid=$1 t0=$2 st
    for _ in $(seq 1 1200); do
        st=$(curl -sf "$DAEMON_URL/deployments/$uuid/extrainfo" |
            jq -r '.[] | select(.node == "job") | .attributes.workload_state // empty')
        if [ "$st" = running ] || [ "$st" = exited ]; then
            awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f\n", (b - a) * 1000 }'
            return 0
        fi
        sleep 0.02
    done
    bench_die "job $uuid never reported running"
}

part_slurm() {
    local dir tb sl run_ms="" done_ms="" line uuid t0 run done
    bench_tmpdir slurm
    dir=$BENCH_DIR
    tb=$dir/tb
    sl=$dir/slurm
    chmod 0755 "$dir" # munged wants every directory above its socket searchable
    sh deploy/testbed/sshd.sh start "$tb" >"$dir/testbed.log" 2>&1 &&
        sh deploy/testbed/slurm.sh start "$sl" --gpus a100:2 >>"$dir/testbed.log" 2>&1 ||
        { cat "$dir/testbed.log" >&2; bench_die "testbed did not start"; }
    BENCH_CLEANUP_CMDS="${BENCH_CLEANUP_CMDS:+$BENCH_CLEANUP_CMDS; }sh deploy/testbed/slurm.sh stop '$sl' >/dev/null 2>&1; sh deploy/testbed/sshd.sh stop '$tb' >/dev/null 2>&1"
    . "$tb/testbed.env"
    . "$sl/slurm.env"
    cat >"$dir/sites.yaml" <<YAML
sites:
  - name: hpc
    driver: slurm
    config:
      login: {address: "${SSH_HOSTS%:*}", port: ${SSH_HOSTS##*:}, user: $SSH_USER, identity: $SSH_KEY, known_hosts: $SSH_KNOWN_HOSTS}
      work_dir: $dir/work
      partitions: {A100: {partition: gpu, gres: a100}}
      default_partition: gpu
      poll_ms: 200
      agent_check: none
      env: {SLURM_CONF: "$SLURM_CONF"}
YAML
    daemon_start "$dir"
    for r in $(seq 1 "$BENCH_ROUNDS"); do
        line=$(post_one "$SLURM_JOB_TMPL") || bench_die "POST failed"
        uuid=${line% *}
        t0=${line#* }
        echo "$line" >"$dir/job.txt"
        run=$(running_ms "$uuid" "$t0") || bench_die "the job did not run"
        done=$(complete_ms "$dir/job.txt" 120) || bench_die "the job did not complete"
        echo "  slurm round $r: POST -> job running ${run} ms, -> CREATE_COMPLETE ${done} ms (the job sleeps 3 s)"
        run_ms="$run_ms $run"
        done_ms="$done_ms $done"
        delete_all "$dir/job.txt"
    done
    result slurm_running_ms "$(echo "$run_ms" | tr ' ' '\n' | grep . | median)"
    result slurm_complete_ms "$(echo "$done_ms" | tr ' ' '\n' | grep . | median)"
    daemon_stop "$dir"
    sh deploy/testbed/slurm.sh stop "$sl" >/dev/null 2>&1
    sh deploy/testbed/sshd.sh stop "$tb" >/dev/null 2>&1
}
