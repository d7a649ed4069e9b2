#!/bin/sh
# The GPU check of the gpu-runtime (issue 4, docs/gpu.md "Measured"): run on a
# machine with an NVIDIA GPU; prints, in under 4 minutes:
#   1. the card (nvidia-smi) and gpu-agent's discovery (gpu-agent info)
#   2. the standard health check: each figure against its peak and the
#      model's threshold, and the verdict (gpu-agent check --level standard)
#   3. a training run on the GPU against the same run on the CPU (time, loss),
#      and the first steps on both devices from one initialisation
#   4. a predict round trip: gpu-serve loads the GPU run's checkpoint and
#      answers POST /v2/models/{name}/predict/
#   5. gpu-agent run pinning the GPU (CUDA_VISIBLE_DEVICES as the workload sees it)
# Every part runs under a time limit; the exit status is 0 when all of them
# passed. Output also goes to $OUT/gpu-check.log when OUT is set (the device
# tool's folder).
#
# Binaries: GPU_CHECK_BIN (default build/release/bin); a lib/ folder beside
# them is put on LD_LIBRARY_PATH. For a GPU machine that lacks the build's
# libraries (libcurl and what it needs), make a bundle here first:
#   tests/gpu/check.sh --bundle build/gpu-check
# copies gpu-agent, gpu-train and gpu-serve and every shared library they
# need but the C library's own into build/gpu-check/{gpu-*,lib/}; then run
# there: GPU_CHECK_BIN=build/gpu-check tests/gpu/check.sh
set -u

if [ "${1:-}" = --bundle ]; then
    dest=${2:?usage: check.sh --bundle DIR}
    src=${GPU_CHECK_BIN:-build/release/bin}
    mkdir -p "$dest/lib" || exit 1
    for b in gpu-agent gpu-train gpu-serve; do
        cp "$src/$b" "$dest/" || exit 1
        ldd "$src/$b" | awk '$3 ~ /^\// { print $3 }' |
            grep -v -E '/(libc|libm|libdl|libpthread|librt|ld-linux[^/]*)\.so' |
            while read -r lib; do cp -L "$lib" "$dest/lib/"; done
    done
    du -sh "$dest"
    exit 0
fi
BIN=$(cd "${GPU_CHECK_BIN:-build/release/bin}" && pwd) || exit 1
[ -d "$BIN/lib" ] && export LD_LIBRARY_PATH="$BIN/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
work=$(mktemp -d)
log=${OUT:+$OUT/gpu-check.log}
failed=""
trap 'kill "$serve_pid" 2>/dev/null; rm -rf "$work"' EXIT
serve_pid=""

say() { printf '\n== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }
part() { # NAME SECONDS COMMAND...: runs one part, records a failure
    name=$1 secs=$2
    shift 2
    t0=$(date +%s.%N)
    timeout "$secs" "$@"
    rc=$?
    t1=$(date +%s.%N)
    echo "-- $name: exit $rc in $(echo "$t1 $t0" | awk '{ printf "%.2f", $1 - $2 }') s"
    [ "$rc" = 0 ] || failed="$failed $name"
    return "$rc"
}

main() {
    say "machine"
    date -u
    uname -a
    nvidia-smi --query-gpu=index,name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,pcie.link.gen.max,pcie.link.width.max \
        --format=csv 2>&1 || echo "nvidia-smi: not available"
    "$BIN/gpu-agent" version

    say "discovery: gpu-agent info"
    part info 30 "$BIN/gpu-agent" info

    say "health: gpu-agent check --level standard"
    part check 150 "$BIN/gpu-agent" check --level standard

    say "training: CPU, then GPU (same data, same model)"
    for m in cpu gpu; do
        part "train-$m" 60 "$BIN/gpu-train" --device "$m" --epochs 3 --samples 20000 \
            --data-dim 2 --out "$work/$m.bin" --metrics "$work/$m.json"
    done
    for m in cpu gpu; do
        [ -f "$work/$m.json" ] && printf '%s metrics: ' "$m" && cat "$work/$m.json" && echo
    done
    if [ -f "$work/cpu.json" ] && [ -f "$work/gpu.json" ]; then
        python3 - "$work/cpu.json" "$work/gpu.json" <<'PY'
import json, sys
c, g = (json.load(open(p)) for p in sys.argv[1:3])
print("seconds: cpu %.3f gpu %.3f -> gpu is %.1fx the cpu's speed; final loss cpu %.4f gpu %.4f"
      % (c["seconds_total"], g["seconds_total"], c["seconds_total"] / max(g["seconds_total"], 1e-9),
         c["final_loss"], g["final_loss"]))
PY
    fi
    part compare 60 "$BIN/gpu-train" --compare-devices --data-dim 2

    say "serving: predict round trip on the GPU run's checkpoint"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    ckpt="$work/gpu.bin"
    [ -f "$ckpt" ] || ckpt="$work/cpu.bin"
    "$BIN/gpu-serve" --model "$ckpt" --port "$port" &
    serve_pid=$!
    i=0
    until curl -sf "http://127.0.0.1:$port/v2/models/" >/dev/null 2>&1 || [ $i -ge 100 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    curl -s "http://127.0.0.1:$port/v2/models/"
    echo
    name=$(curl -s "http://127.0.0.1:$port/v2/models/" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["models"][0]["name"])')
    part predict 10 curl -sf -H 'Content-Type: application/json' \
        -d '{"inputs": [[0.5, 0.25], [-0.75, 0.1], [0.0, -0.9]]}' \
        "http://127.0.0.1:$port/v2/models/$name/predict/"
    echo
    kill "$serve_pid" 2>/dev/null
    wait "$serve_pid" 2>/dev/null
    serve_pid=""

    say "launcher: gpu-agent run pins the GPU"
    part run 60 "$BIN/gpu-agent" run --check quick --gpus 0 --log-dir "$work" -- \
        sh -c 'echo "workload sees CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES"; nvidia-smi -L'
    cat "$work/main.log" 2>/dev/null

    say "result"
    if [ -n "$failed" ]; then
        echo "FAILED:$failed"
        return 1
    fi
    echo "all parts passed"
}

if [ -n "$log" ]; then
    main 2>&1 | tee "$log"
    exit "$(grep -q '^all parts passed' "$log" && echo 0 || echo 1)"
fi
main
