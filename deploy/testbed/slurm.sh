#!/bin/sh
# Test site: munged + a one-node Slurm cluster (slurmctld, slurmd) run from DIR.
#
#   sh slurm.sh start  DIR [--gpus MODEL:N] [--cpus N] [--node NAME]
#   sh slurm.sh stop   DIR
#   sh slurm.sh node   DIR down|resume|fail
#   sh slurm.sh status DIR
#
# Needs root. See README.md next to this script for the files it writes.
set -eu

ME=slurm.sh
MARKER=.orctb-slurm
# for lib.sh: KIND names this kind of testbed in messages, DIR_WHY follows
# the characters DIR may hold, LOG_LINES is how much of a log show_log shows
# shellcheck disable=SC2034
KIND="a Slurm testbed" DIR_WHY="" LOG_LINES=20
TO=15   # seconds any single client command may take

# say, die, rd, alive, pick_port, begin_start ...: lib.sh next to this script
here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
# shellcheck disable=SC1091 source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

usage() {
    cat >&2 <<EOF
usage: sh $ME start DIR [--gpus MODEL:N] [--cpus N] [--node NAME]
       sh $ME stop DIR
       sh $ME node DIR down|resume|fail
       sh $ME status DIR
EOF
    exit 2
}

# ---------------------------------------------------------------- helpers

# wait until pid is gone, up to $2 tenths of a second; 0 when gone
wait_gone() {
    _n=0
    while alive "$1"; do
        _n=$((_n + 1)); [ $_n -le "$2" ] || return 1
        sleep 0.1
    done
    return 0
}

# the daemons get ORCTB_SLURM_TESTBED=DIR in their environment; slurmstepd
# inherits it from slurmd. Prints the pids of this testbed's slurmstepd.
testbed_stepds() {
    for _e in /proc/[0-9]*/environ; do
        _pid=${_e#/proc/}; _pid=${_pid%/environ}
        [ "$_pid" != $$ ] || continue
        case $(cat "/proc/$_pid/comm" 2>/dev/null) in slurmstepd*) ;; *) continue ;; esac
        if { tr '\0' '\n' <"$_e"; } 2>/dev/null | grep -qx "ORCTB_SLURM_TESTBED=$DIR"; then
            echo "$_pid"
        fi
    done
}

# SIGKILL every slurmstepd of this testbed and the job processes below them
kill_stepds() {
    _all=""
    for _s in $(testbed_stepds); do
        kill -STOP "$_s" 2>/dev/null || true
        _all="$_all $(descendants "$_s")"
    done
    for _pid in $_all; do kill -KILL "$_pid" 2>/dev/null || true; done
    for _pid in $_all; do wait_gone "$_pid" 50 || warn "pid $_pid does not die"; done
}

# TERM, then KILL after $2 tenths of a second; also the daemon's children
stop_pid() { # pid tenths
    [ -n "$1" ] && alive "$1" || return 0
    _kids=$(descendants "$1")
    kill -TERM "$1" 2>/dev/null || true
    if ! wait_gone "$1" "$2"; then
        for _k in $_kids; do kill -KILL "$_k" 2>/dev/null || true; done
        wait_gone "$1" 30 || warn "pid $1 does not die"
    fi
    for _k in $_kids; do
        [ "$_k" = "$1" ] || kill -KILL "$_k" 2>/dev/null || true
    done
}

sc() { timeout "$TO" "$@"; }

node_state() { # prints the node's state as sinfo %T shows it, e.g. idle, down*, drained
    sc sinfo -h -N -n "$NODE" -o %T 2>/dev/null | awk 'NR == 1 { print $1 }'
}

load_state() {
    [ -e "$DIR/$MARKER" ] || die "$DIR is not a running Slurm testbed"
    NODE=$(rd "$DIR/node")
    SLURM_CONF=$DIR/slurm.conf
    export SLURM_CONF
}

# Slurm client commands read SLURM_*/SBATCH_*/... from the environment
# (SLURM_GPUS, SLURM_PARTITION ... from a sourced slurm.env, for example)
clean_env() {
    for _v in $(env | awk -F= '/^(SLURM|SBATCH|SRUN|SALLOC|SQUEUE|SINFO|SCANCEL|SCONTROL)_[A-Za-z0-9_]*=/ { print $1 }'); do
        unset "$_v"
    done
}

# ---------------------------------------------------------------- daemons

start_munged() {
    rm -f "$DIR/munge/munge.socket" "$DIR/munge/munged.pid"
    env ORCTB_SLURM_TESTBED="$DIR" munged -F --key-file "$DIR/munge/munge.key" \
        --socket "$DIR/munge/munge.socket" --pid-file "$DIR/munge/munged.pid" \
        --log-file "$DIR/log/munged.log" --seed-file "$DIR/munge/munged.seed" \
        </dev/null >>"$DIR/log/munged.out" 2>&1 &
    echo $! >"$DIR/run/munged.pid"
    _n=0
    until [ -S "$DIR/munge/munge.socket" ] && munge -n -S "$DIR/munge/munge.socket" >/dev/null 2>&1; do
        alive "$(rd "$DIR/run/munged.pid")" || { show_log "$DIR/log/munged.log"; show_log "$DIR/log/munged.out"; die "munged exited"; }
        _n=$((_n + 1)); [ $_n -lt 100 ] || die "munged did not answer within 10 s"
        sleep 0.1
    done
}

start_slurmctld() {
    env ORCTB_SLURM_TESTBED="$DIR" slurmctld -D -i -f "$DIR/slurm.conf" \
        </dev/null >>"$DIR/log/slurmctld.out" 2>&1 &
    echo $! >"$DIR/run/slurmctld.pid"
    _n=0
    until sc scontrol ping 2>/dev/null | grep -q 'is UP'; do
        alive "$(rd "$DIR/run/slurmctld.pid")" || { show_log "$DIR/log/slurmctld.log"; show_log "$DIR/log/slurmctld.out"; die "slurmctld exited"; }
        _n=$((_n + 1)); [ $_n -lt 150 ] || { show_log "$DIR/log/slurmctld.log"; die "slurmctld did not answer within 15 s"; }
        sleep 0.1
    done
}

start_slurmd() {
    env ORCTB_SLURM_TESTBED="$DIR" slurmd -D -f "$DIR/slurm.conf" -N "$NODE" \
        </dev/null >>"$DIR/log/slurmd.out" 2>&1 &
    echo $! >"$DIR/run/slurmd.pid"
}

# wait until the node is idle (resuming it when it comes up down/drained)
wait_idle() { # tenths
    _n=0; _resumed=0
    while :; do
        _st=$(node_state)
        case $_st in
            idle|mixed|allocated) return 0 ;;
            down|drain*|inval*)        # not down*: that one still waits for slurmd
                if [ $_resumed -lt 3 ]; then
                    sc scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
                    _resumed=$((_resumed + 1))
                fi ;;
        esac
        alive "$(rd "$DIR/run/slurmd.pid")" || { show_log "$DIR/log/slurmd.log"; show_log "$DIR/log/slurmd.out"; die "slurmd exited"; }
        _n=$((_n + 1))
        if [ $_n -ge "$1" ]; then
            show_log "$DIR/log/slurmd.log"
            die "node $NODE not idle after $(($1 / 10)) s (state ${_st:-unknown}; $(sc scontrol show node "$NODE" 2>/dev/null | grep -o 'Reason=.*' || true))"
        fi
        sleep 0.1
    done
}

write_env() {
    _t=$DIR/slurm.env.tmp
    {
        echo "# Slurm testbed written by $ME; sourceable by sh (KEY=\"VALUE\" lines)"
        echo "# Only SLURM_CONF is exported: srun reads SLURM_GPUS and SLURM_PARTITION as options."
        echo "SLURM_TESTBED_DIR=\"$DIR\""
        echo "SLURM_CONF=\"$DIR/slurm.conf\""
        echo "SLURM_CLUSTER=\"$(rd "$DIR/cluster")\""
        echo "SLURM_NODE=\"$NODE\""
        echo "SLURM_PARTITION=\"gpu\""
        echo "SLURM_CPU_PARTITION=\"cpu\""
        echo "SLURM_GPU_MODEL=\"$(rd "$DIR/gpu_model")\""
        echo "SLURM_GPUS=\"$(rd "$DIR/gpus")\""
        echo "SLURM_NODE_CPUS=\"$(rd "$DIR/cpus")\""
        echo "SLURM_NODE_MEMORY=\"$(rd "$DIR/memory")\""
        echo "SLURM_CTLD_PORT=\"$(rd "$DIR/ctld_port")\""
        echo "SLURM_SLURMD_PORT=\"$(rd "$DIR/slurmd_port")\""
        echo "SLURM_MUNGE_SOCKET=\"$DIR/munge/munge.socket\""
        echo "SLURM_JOBCOMP_LOG=\"$DIR/log/jobcomp.log\""
        echo "SLURM_MUNGED_PID=\"$(rd "$DIR/run/munged.pid")\""
        echo "SLURM_SLURMCTLD_PID=\"$(rd "$DIR/run/slurmctld.pid")\""
        echo "SLURM_SLURMD_PID=\"$(rd "$DIR/run/slurmd.pid")\""
        echo "SLURM_PIDS=\"$(rd "$DIR/run/munged.pid") $(rd "$DIR/run/slurmctld.pid") $(rd "$DIR/run/slurmd.pid")\""
        echo "export SLURM_CONF"
    } >"$_t"
    mv -f "$_t" "$DIR/slurm.env"
}

# ---------------------------------------------------------------- commands

do_stop() {
    testbed_to_stop || return 0
    NODE=$(rd "$DIR/node")
    SLURM_CONF=$DIR/slurm.conf
    export SLURM_CONF
    _ctld=$(rd "$DIR/run/slurmctld.pid")
    _slurmd=$(rd "$DIR/run/slurmd.pid")
    _munged=$(rd "$DIR/run/munged.pid")
    if alive "$_ctld" && [ -f "$SLURM_CONF" ]; then
        _jobs=$(sc squeue -h -o %A 2>/dev/null || true)
        if [ -n "$_jobs" ]; then
            # shellcheck disable=SC2086
            sc scancel $_jobs >/dev/null 2>&1 || true
            _n=0
            while [ -n "$(sc squeue -h -t R,CG,S,CF,SO,ST -o %A 2>/dev/null || true)" ] && alive "$_slurmd"; do
                _n=$((_n + 1)); [ $_n -lt 100 ] || { warn "jobs still running 10 s after scancel"; break; }
                sleep 0.1
            done
        fi
    fi
    stop_pid "$_slurmd" 50
    kill_stepds
    stop_pid "$_ctld" 50
    stop_pid "$_munged" 30
    rm -rf "$DIR"
}

do_start() {
    GPU_MODEL=a100 GPUS=2 CPUS="" NODE=""
    while [ $# -gt 0 ]; do
        case $1 in
            --gpus) [ $# -ge 2 ] || usage; _g=$2; shift 2 ;;
            --gpus=*) _g=${1#--gpus=}; shift ;;
            --cpus) [ $# -ge 2 ] || usage; CPUS=$2; shift 2 ;;
            --cpus=*) CPUS=${1#--cpus=}; shift ;;
            --node) [ $# -ge 2 ] || usage; NODE=$2; shift 2 ;;
            --node=*) NODE=${1#--node=}; shift ;;
            *) die "unknown option: $1" ;;
        esac
        if [ -n "${_g:-}" ]; then
            case $_g in
                *:*) GPU_MODEL=${_g%%:*}; GPUS=${_g#*:} ;;
                *) die "--gpus wants MODEL:N, got $_g" ;;
            esac
            _g=""
        fi
    done
    case $GPU_MODEL in ''|*[!A-Za-z0-9_.-]*) die "bad GPU model: $GPU_MODEL" ;; esac
    is_int "$GPUS" && [ "$GPUS" -le 64 ] || die "--gpus wants MODEL:N with N in 0..64, got $GPUS"
    need_root
    for _c in munged munge slurmctld slurmd scontrol sinfo squeue srun scancel ss ps awk od cksum timeout; do
        command -v $_c >/dev/null 2>&1 || die "$_c not found (apt-get install slurmctld slurmd slurm-client munge)"
    done
    [ -n "$CPUS" ] || CPUS=$(nproc)
    is_int "$CPUS" && [ "$CPUS" -ge 1 ] || die "--cpus wants a positive number, got $CPUS"
    HOST=$(hostname -s 2>/dev/null || uname -n)
    HOST=${HOST%%.*}
    [ -n "$NODE" ] || NODE=$HOST
    case $NODE in ''|*[!A-Za-z0-9_-]*) die "bad node name: $NODE" ;; esac

    begin_start
    mkdir -p "$DIR/munge" "$DIR/state" "$DIR/spool" "$DIR/run" "$DIR/log" "$DIR/dev"
    chmod 0755 "$DIR/munge"   # munged wants the socket dir executable by all
    SID=$(short_id "$DIR")
    CLUSTER=orctb$SID
    echo "$NODE" >"$DIR/node"
    echo "$CLUSTER" >"$DIR/cluster"
    echo "$GPU_MODEL" >"$DIR/gpu_model"
    echo "$GPUS" >"$DIR/gpus"
    echo "$CPUS" >"$DIR/cpus"

    # munge key: 1 KiB random, 0400
    dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 2>/dev/null
    chmod 0400 "$DIR/munge/munge.key"

    # memory: what slurmd -C reports, minus 5 % (at least 256 MiB)
    _mem=$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
    is_int "${_mem:-x}" || die "slurmd -C does not tell RealMemory"
    _margin=$((_mem / 20)); [ $_margin -ge 256 ] || _margin=256
    MEM=$((_mem - _margin))
    [ $MEM -ge 256 ] || MEM=$_mem
    echo "$MEM" >"$DIR/memory"

    # fake GPU device files for gres (a Count= only gres is rejected)
    GRES_NODE=""
    if [ "$GPUS" -gt 0 ]; then
        _i=0
        while [ $_i -lt "$GPUS" ]; do
            if ! mknod "$DIR/dev/nvidia$_i" c 195 $_i 2>/dev/null; then
                warn "mknod failed; using a plain file as $DIR/dev/nvidia$_i"
                : >"$DIR/dev/nvidia$_i"
            fi
            _i=$((_i + 1))
        done
        if [ "$GPUS" -eq 1 ]; then _files=$DIR/dev/nvidia0; else _files="$DIR/dev/nvidia[0-$((GPUS - 1))]"; fi
        cat >"$DIR/gres.conf" <<EOF
AutoDetect=off
NodeName=$NODE Name=gpu Type=$GPU_MODEL File=$_files
EOF
        GRES_NODE=" Gres=gpu:$GPU_MODEL:$GPUS"
    else
        : >"$DIR/gres.conf"
    fi

    CTLD_PORT=$(pick_port -Htan)
    SLURMD_PORT=$(pick_port -Htan)
    echo "$CTLD_PORT" >"$DIR/ctld_port"
    echo "$SLURMD_PORT" >"$DIR/slurmd_port"

    cat >"$DIR/slurm.conf" <<EOF
# generated by $ME for testbed $DIR
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.daemon.pid
SlurmdPidFile=$DIR/run/slurmd.daemon.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$((MEM / CPUS))
GresTypes=gpu
MpiDefault=none
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.log
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SlurmdParameters=config_overrides
ReturnToService=1
SlurmctldTimeout=10
SlurmdTimeout=5
MessageTimeout=5
InactiveLimit=0
KillWait=2
MinJobAge=300
WaitTime=0
JobRequeue=0
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$HOST CPUs=$CPUS RealMemory=$MEM$GRES_NODE State=UNKNOWN
PartitionName=gpu Nodes=$NODE Default=YES MaxTime=UNLIMITED State=UP
PartitionName=cpu Nodes=$NODE Default=NO MaxTime=UNLIMITED State=UP
EOF
    SLURM_CONF=$DIR/slurm.conf
    export SLURM_CONF

    _t0=$(date +%s)
    start_munged
    start_slurmctld
    start_slurmd
    wait_idle 200
    # a trivial job must run
    if ! sc srun -N1 -n1 -t 1 -J orctb-check true </dev/null >"$DIR/log/check.out" 2>&1; then
        show_log "$DIR/log/check.out"
        show_log "$DIR/log/slurmd.log"
        die "srun -N1 true failed"
    fi
    # jobs submitted while the node is still completing the check job wait
    # for the next scheduling pass (~2-3 s): wait until it is idle again
    _n=0
    while [ "$(node_state)" != idle ] && [ $_n -lt 100 ]; do _n=$((_n + 1)); sleep 0.1; done
    write_env
    end_start
    echo "munged pid $(rd "$DIR/run/munged.pid") socket $DIR/munge/munge.socket"
    echo "slurmctld pid $(rd "$DIR/run/slurmctld.pid") 127.0.0.1:$CTLD_PORT cluster $CLUSTER"
    echo "slurmd pid $(rd "$DIR/run/slurmd.pid") 127.0.0.1:$SLURMD_PORT node $NODE cpus $CPUS memory ${MEM}M gres ${GRES_NODE:+${GRES_NODE# Gres=}}${GRES_NODE:-none} partitions gpu(default),cpu"
    echo "env $DIR/slurm.env ($(($(date +%s) - _t0)) s)"
}

# node down: DOWN with reason=test (running jobs end NODE_FAIL)
# node fail: SIGKILL slurmd and every job step (a crash); slurmctld marks the
#            node DOWN* after SlurmdTimeout; running jobs end NODE_FAIL
# node resume: slurmd started again if needed, node resumed, waits for idle
do_node() {
    [ $# -eq 1 ] || usage
    load_state
    case $1 in
        down)
            sc scontrol update nodename="$NODE" state=down reason=test
            say "node $NODE down ($(node_state))"
            ;;
        fail)
            _p=$(rd "$DIR/run/slurmd.pid")
            if alive "$_p"; then kill -KILL "$_p"; wait_gone "$_p" 50 || true; fi
            kill_stepds
            write_env
            _t0=$(date +%s)
            while :; do
                case $(node_state) in down*) break ;; esac
                [ $(($(date +%s) - _t0)) -lt 90 ] || die "node $NODE not DOWN 90 s after slurmd was killed"
                sleep 0.2
            done
            say "node $NODE failed: slurmd killed, DOWN after $(($(date +%s) - _t0)) s ($(node_state))"
            ;;
        resume)
            if ! alive "$(rd "$DIR/run/slurmd.pid")"; then start_slurmd; fi
            _st=$(node_state)
            case $_st in
                down*|drain*|inval*|*drng*|fail*)
                    sc scontrol update nodename="$NODE" state=resume 2>/dev/null || true ;;
            esac
            wait_idle 300
            write_env
            say "node $NODE resumed ($(node_state))"
            ;;
        *) usage ;;
    esac
}

do_status() {
    [ -e "$DIR/$MARKER" ] || { echo "no testbed in $DIR"; return 1; }
    load_state
    _rc=0
    for _d in munged slurmctld slurmd; do
        _p=$(rd "$DIR/run/$_d.pid")
        if alive "$_p"; then echo "$_d pid $_p running"; else echo "$_d pid ${_p:--} stopped"; _rc=1; fi
    done
    echo "node $NODE $(node_state)"
    return $_rc
}

init_cmd_dir "$@"
shift 2
clean_env
case $CMD in
    start) do_start "$@" ;;
    stop) cmd_stop "$@" ;;
    node) do_node "$@" ;;
    status) do_status ;;
    *) usage ;;
esac
