#!/bin/sh
# Test site: N OpenSSH servers that integration tests start and stop themselves.
#
#   sh sshd.sh start   DIR [--hosts N] [--netns]
#   sh sshd.sh stop    DIR
#   sh sshd.sh link    DIR I down|up      (netns mode only)
#   sh sshd.sh kill    DIR I              (SIGKILL host I's sshd and its sessions)
#   sh sshd.sh restart DIR I              (start host I's sshd again, same address and key)
#   sh sshd.sh status  DIR
#
# Needs root. See README.md next to this script for the files it writes.
set -eu

ME=sshd.sh
MARKER=.orctb-sshd
# for lib.sh: KIND names this kind of testbed in messages, DIR_WHY follows
# the characters DIR may hold, LOG_LINES is how much of a log show_log shows
# shellcheck disable=SC2034
KIND="an sshd testbed" DIR_WHY=" (sshd_config cannot quote others)" LOG_LINES=15
NETNS_PORT=2222           # port sshd listens on inside a namespace
LOCKDIR=/run/orctb-testbed-netns.lock

# say, die, rd, alive, pick_port, begin_start ...: lib.sh next to this script
here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
# shellcheck disable=SC1091 source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

usage() {
    cat >&2 <<EOF
usage: sh $ME start DIR [--hosts N] [--netns]
       sh $ME stop DIR
       sh $ME link DIR I down|up
       sh $ME kill DIR I
       sh $ME restart DIR I
       sh $ME status DIR
EOF
    exit 2
}

# ---------------------------------------------------------------- helpers

# process command name is sshd (guards against killing a recycled pid)
is_sshd() {
    [ -n "$1" ] || return 1
    _c=$(ps -o comm= -p "$1" 2>/dev/null || true)
    case $_c in sshd*) return 0 ;; esac
    return 1
}

listening() { # ns port
    if [ -n "$1" ]; then
        [ -n "$(ip netns exec "$1" ss -Hltn "sport = :$2" 2>/dev/null)" ]
    else
        [ -n "$(ss -Hltn "sport = :$2" 2>/dev/null)" ]
    fi
}

lock_netns() {
    _n=0
    while ! mkdir "$LOCKDIR" 2>/dev/null; do
        _holder=$(rd "$LOCKDIR/pid")
        if [ -n "$_holder" ] && ! alive "$_holder"; then
            rm -rf "$LOCKDIR"; continue
        fi
        _n=$((_n + 1))
        [ $_n -lt 300 ] || die "could not take lock $LOCKDIR (held by pid ${_holder:-?})"
        sleep 0.1
    done
    echo $$ >"$LOCKDIR/pid"
    LOCKED=1
}
unlock_netns() {
    if [ "${LOCKED:-0}" = 1 ]; then rm -rf "$LOCKDIR"; LOCKED=0; fi
}

# ---------------------------------------------------------------- per host

# SIGKILL host I's sshd, its per-connection children and (netns mode) every
# process in its namespace; waits until they are gone.
kill_host() {
    _h=$DIR/host$1
    _ns=$(rd "$_h/netns")
    _all=
    for _pid in $(rd "$_h/pid") $(rd "$_h/sshd.pid"); do
        if is_int "$_pid" && is_sshd "$_pid"; then
            kill -STOP "$_pid" 2>/dev/null || true     # no new forks meanwhile
            _all="$_all $(descendants "$_pid")"
        fi
    done
    if [ -n "$_ns" ] && ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$_ns"; then
        _all="$_all $(ip netns pids "$_ns" 2>/dev/null || true)"
    fi
    for _pid in $_all; do kill -KILL "$_pid" 2>/dev/null || true; done
    _n=0
    for _pid in $_all; do
        while alive "$_pid"; do
            _n=$((_n + 1)); [ $_n -lt 100 ] || { warn "pid $_pid does not die"; break; }
            sleep 0.05
        done
    done
    rm -f "$_h/pid" "$_h/sshd.pid"
}

# Runs "$@" (sshd) with the login user's ~/.bashrc hidden behind an empty
# file, in a mount namespace of its own: bash reads ~/.bashrc even for
# `ssh host command`, and a machine's rc (pyenv init, conda, module) would
# slow every remote command of the tests and may stall on a lock a killed
# session left. Nothing changes outside the testbed's sshd and its sessions.
quiet_rc() {
    _rc=$(getent passwd root | cut -d: -f6)/.bashrc
    if [ -f "$_rc" ] && command -v unshare >/dev/null 2>&1; then
        : >"$DIR/empty.bashrc"
        exec unshare -m sh -c 'mount --make-rprivate / && mount --bind "$1" "$2" && shift 2 &&
            exec "$@"' sh "$DIR/empty.bashrc" "$_rc" "$@"
    fi
    exec "$@"
}

# start host I's sshd from its existing sshd_config; 0 when listening
start_sshd() {
    _h=$DIR/host$1
    _ns=$(rd "$_h/netns")
    _port=$(rd "$_h/port")
    rm -f "$_h/sshd.pid"
    : >>"$_h/sshd.log"
    if [ -n "$_ns" ]; then
        # ip netns exec execs the command itself: $! is sshd's pid
        (quiet_rc ip netns exec "$_ns" "$SSHD" -D -f "$_h/sshd_config" -E "$_h/sshd.log") \
            </dev/null >>"$_h/sshd.out" 2>&1 &
    else
        (quiet_rc "$SSHD" -D -f "$_h/sshd_config" -E "$_h/sshd.log") </dev/null >>"$_h/sshd.out" 2>&1 &
    fi
    _pid=$!
    echo "$_pid" >"$_h/pid"
    _n=0
    while :; do
        if ! alive "$_pid"; then
            wait "$_pid" 2>/dev/null || true
            rm -f "$_h/pid"
            return 1
        fi
        if listening "$_ns" "$_port"; then return 0; fi
        _n=$((_n + 1))
        if [ $_n -ge 100 ]; then     # ~5 s
            kill -KILL "$_pid" 2>/dev/null || true
            rm -f "$_h/pid"
            return 1
        fi
        sleep 0.05
    done
}

write_config() { # I addr port
    _h=$DIR/host$1
    if [ "$LOCKED_ROOT" = 1 ]; then _pam=yes; else _pam=no; fi
    cat >"$_h/sshd_config" <<EOF
# generated by $ME for host $1 of testbed $DIR
ListenAddress $2:$3
HostKey $_h/ssh_host_ed25519_key
PidFile $_h/sshd.pid
AuthorizedKeysFile $DIR/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM $_pam
StrictModes no
MaxStartups 200:30:300
MaxSessions 100
ClientAliveInterval 15
ClientAliveCountMax 3
LoginGraceTime 30
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowTcpForwarding yes
AllowAgentForwarding no
PermitUserEnvironment no
LogLevel VERBOSE
Subsystem sftp internal-sftp
EOF
    echo "$2" >"$_h/addr"
    echo "$3" >"$_h/port"
}

# ---------------------------------------------------------------- env file

hosts_list() {
    _i=1
    while [ -d "$DIR/host$_i" ]; do echo "$_i"; _i=$((_i + 1)); done
}

write_env() {
    _hosts=""; _addrs=""; _ports=""; _pids=""; _ns=""; _veth=""
    for _i in $(hosts_list); do
        _h=$DIR/host$_i
        _hosts="$_hosts $(rd "$_h/addr"):$(rd "$_h/port")"
        _addrs="$_addrs $(rd "$_h/addr")"
        _ports="$_ports $(rd "$_h/port")"
        _p=$(rd "$_h/pid"); _pids="$_pids ${_p:--}"
        [ ! -f "$_h/netns" ] || _ns="$_ns $(rd "$_h/netns")"
        [ ! -f "$_h/veth" ] || _veth="$_veth $(rd "$_h/veth")"
    done
    _t=$DIR/testbed.env.tmp
    {
        echo "# sshd testbed written by $ME; sourceable by sh (KEY=\"VALUE\" lines)"
        echo "SSH_TESTBED_DIR=\"$DIR\""
        echo "SSH_HOSTS=\"${_hosts# }\""
        echo "SSH_ADDRS=\"${_addrs# }\""
        echo "SSH_PORTS=\"${_ports# }\""
        echo "SSH_NHOSTS=\"$(hosts_list | wc -l | tr -d ' ')\""
        echo "SSH_USER=\"root\""
        echo "SSH_KEY=\"$DIR/id_ed25519\""
        echo "SSH_KNOWN_HOSTS=\"$DIR/known_hosts\""
        echo "SSH_WRONG_KNOWN_HOSTS=\"$DIR/wrong_known_hosts\""
        echo "SSH_PIDS=\"${_pids# }\""
        echo "SSH_NETNS=\"${_ns# }\""
        echo "SSH_VETH=\"${_veth# }\""
        echo "export SSH_TESTBED_DIR SSH_HOSTS SSH_ADDRS SSH_PORTS SSH_NHOSTS SSH_USER SSH_KEY SSH_KNOWN_HOSTS SSH_WRONG_KNOWN_HOSTS SSH_PIDS SSH_NETNS SSH_VETH"
    } >"$_t"
    mv -f "$_t" "$DIR/testbed.env"
}

# ---------------------------------------------------------------- commands

do_stop() {
    testbed_to_stop || return 0
    for _d in "$DIR"/host*; do
        [ -d "$_d" ] || continue
        _i=${_d##*/host}
        is_int "$_i" || continue
        kill_host "$_i"
        _ns=$(rd "$_d/netns")
        _v=$(rd "$_d/veth")
        if [ -n "$_ns" ]; then ip netns del "$_ns" 2>/dev/null || true; fi
        if [ -n "$_v" ] && ip link show "$_v" >/dev/null 2>&1; then ip link del "$_v" 2>/dev/null || true; fi
    done
    rm -rf "$DIR"
}

# a failed start (cleanup_failed_start in lib.sh) runs this before do_stop
start_failed_hook() {
    unlock_netns
    for _l in "$DIR"/host*/sshd.log "$DIR"/host*/sshd.out; do [ -f "$_l" ] && show_log "$_l"; done
    return 0
}

find_sshd() {
    SSHD=${SSHD:-$(command -v sshd || true)}
    [ -n "$SSHD" ] || die "sshd not found (install openssh-server)"
    case $SSHD in /*) ;; *) SSHD=$(cd "$(dirname "$SSHD")" && pwd -P)/$(basename "$SSHD") ;; esac
    [ -x "$SSHD" ] || die "$SSHD is not executable"
}

do_start() {
    NHOSTS=1 NETNS=0
    while [ $# -gt 0 ]; do
        case $1 in
            --hosts) [ $# -ge 2 ] || usage; NHOSTS=$2; shift 2 ;;
            --hosts=*) NHOSTS=${1#--hosts=}; shift ;;
            --netns) NETNS=1; shift ;;
            *) die "unknown option: $1" ;;
        esac
    done
    is_int "$NHOSTS" && [ "$NHOSTS" -ge 1 ] && [ "$NHOSTS" -le 250 ] || die "--hosts wants 1..250, got $NHOSTS"
    need_root
    find_sshd
    for _c in ssh-keygen ss ps awk od cksum; do
        command -v $_c >/dev/null 2>&1 || die "$_c not found"
    done
    [ $NETNS = 0 ] || command -v ip >/dev/null 2>&1 || die "ip (iproute2) not found"

    begin_start
    [ -d /run/sshd ] || { mkdir -p /run/sshd && chmod 0755 /run/sshd; }

    # root with a locked password ("!...") is refused by sshd with UsePAM no
    LOCKED_ROOT=0
    case $(awk -F: '$1 == "root" { print $2 }' /etc/shadow 2>/dev/null) in
        '!'*) LOCKED_ROOT=1; warn "root's password is locked (!); using UsePAM yes" ;;
    esac

    ssh-keygen -q -t ed25519 -N '' -C "orctb-client@$DIR" -f "$DIR/id_ed25519" </dev/null
    cp "$DIR/id_ed25519.pub" "$DIR/authorized_keys"
    chmod 0644 "$DIR/authorized_keys"

    SID=$(short_id "$DIR")
    if [ $NETNS = 1 ]; then
        lock_netns
        # 10.B.I.0/24 per host, B = 251 unless another testbed uses it
        _used=$(ip -4 -o addr show 2>/dev/null | awk '{print $4}')
        NET=
        for _b in 251 252 253 254 250 249 248 247 246 245 244 243 242 241 240; do
            if ! printf '%s\n' "$_used" | grep -q "^10\.$_b\."; then NET=10.$_b; break; fi
        done
        [ -n "$NET" ] || die "no free 10.B.0.0/16 network for the namespaces (240..254 all used)"
    fi

    i=1
    while [ $i -le "$NHOSTS" ]; do
        h=$DIR/host$i
        mkdir -p "$h"
        ssh-keygen -q -t ed25519 -N '' -C "orctb-host$i" -f "$h/ssh_host_ed25519_key" </dev/null
        ssh-keygen -q -t ed25519 -N '' -C "orctb-wrong$i" -f "$h/wrong_host_key" </dev/null
        if [ $NETNS = 1 ]; then
            ns=orctb-$SID-$i
            vr=tb${SID}r$i        # root side (<= 15 chars)
            vn=tb${SID}n$i        # namespace side
            # leftovers of a crashed earlier run of this DIR
            ip netns del "$ns" 2>/dev/null || true
            ip link del "$vr" 2>/dev/null || true
            echo "$ns" >"$h/netns"
            ip netns add "$ns"
            echo "$vr" >"$h/veth"
            echo "$vn" >"$h/veth_ns"
            echo "$NET.$i.1" >"$h/gateway"
            ip link add "$vr" type veth peer name "$vn"
            ip link set "$vn" netns "$ns"
            ip addr add "$NET.$i.1/24" dev "$vr"
            ip link set "$vr" up
            ip -n "$ns" link set lo up
            ip -n "$ns" addr add "$NET.$i.2/24" dev "$vn"
            ip -n "$ns" link set "$vn" up
            ip -n "$ns" route add default via "$NET.$i.1"
            write_config $i "$NET.$i.2" $NETNS_PORT
            start_sshd $i || die "sshd for host$i did not start in namespace $ns"
        else
            tries=0
            while :; do
                tries=$((tries + 1))
                write_config $i 127.0.0.1 "$(pick_port -Hltn)"
                if start_sshd $i; then break; fi
                [ $tries -lt 5 ] || die "sshd for host$i did not start (5 ports tried)"
                warn "sshd for host$i did not start on port $(rd "$h/port"); trying another port"
            done
        fi
        i=$((i + 1))
    done
    unlock_netns

    : >"$DIR/known_hosts.tmp"; : >"$DIR/wrong_known_hosts.tmp"
    for i in $(hosts_list); do
        h=$DIR/host$i
        name="[$(rd "$h/addr")]:$(rd "$h/port")"
        awk -v n="$name" '{ print n, $1, $2 }' "$h/ssh_host_ed25519_key.pub" >>"$DIR/known_hosts.tmp"
        awk -v n="$name" '{ print n, $1, $2 }' "$h/wrong_host_key.pub" >>"$DIR/wrong_known_hosts.tmp"
    done
    mv -f "$DIR/known_hosts.tmp" "$DIR/known_hosts"
    mv -f "$DIR/wrong_known_hosts.tmp" "$DIR/wrong_known_hosts"
    write_env
    end_start
    for i in $(hosts_list); do
        h=$DIR/host$i
        _extra=
        [ ! -f "$h/netns" ] || _extra=" netns $(rd "$h/netns") veth $(rd "$h/veth")"
        echo "sshd host$i $(rd "$h/addr"):$(rd "$h/port") pid $(rd "$h/pid")$_extra"
    done
    echo "env $DIR/testbed.env"
}

need_host() { # I
    [ -e "$DIR/$MARKER" ] || die "$DIR is not a running sshd testbed"
    is_int "$1" && [ -d "$DIR/host$1" ] || die "no host $1 in $DIR"
}

do_link() { # I down|up
    [ $# -eq 2 ] || usage
    need_host "$1"
    case $2 in up|down) ;; *) usage ;; esac
    _h=$DIR/host$1
    _ns=$(rd "$_h/netns")
    _vn=$(rd "$_h/veth_ns")
    [ -n "$_ns" ] && [ -n "$_vn" ] || die "host $1 is not in a network namespace (start with --netns)"
    # The namespace side goes down: the root side keeps its address and route
    # (NO-CARRIER), so packets to the host are silently dropped and TCP hangs.
    # (Downing the root side would remove the route and send the packets out
    # of the default route instead.)
    ip -n "$_ns" link set "$_vn" "$2"
    if [ "$2" = up ]; then
        ip -n "$_ns" route replace default via "$(rd "$_h/gateway")"
    fi
    say "host$1 link $_vn (netns $_ns, peer of $(rd "$_h/veth")) $2"
}

do_kill() { # I
    [ $# -eq 1 ] || usage
    need_host "$1"
    _kp=$(rd "$DIR/host$1/pid")
    kill_host "$1"
    write_env
    say "host$1 sshd killed${_kp:+ (pid $_kp)}"
}

do_restart() { # I
    [ $# -eq 1 ] || usage
    need_host "$1"
    find_sshd
    [ -d /run/sshd ] || { mkdir -p /run/sshd && chmod 0755 /run/sshd; }
    kill_host "$1"
    if ! start_sshd "$1"; then
        show_log "$DIR/host$1/sshd.log"
        write_env
        die "sshd for host$1 did not start again on $(rd "$DIR/host$1/addr"):$(rd "$DIR/host$1/port")"
    fi
    write_env
    echo "sshd host$1 $(rd "$DIR/host$1/addr"):$(rd "$DIR/host$1/port") pid $(rd "$DIR/host$1/pid")"
}

do_status() {
    [ -e "$DIR/$MARKER" ] || { echo "no testbed in $DIR"; return 1; }
    _rc=0
    for i in $(hosts_list); do
        h=$DIR/host$i
        _p=$(rd "$h/pid")
        if alive "$_p"; then _s=running; else _s=stopped; _rc=1; fi
        _l=""
        if [ -f "$h/veth_ns" ]; then
            if ip -n "$(rd "$h/netns")" -o link show "$(rd "$h/veth_ns")" 2>/dev/null | grep -q '[<,]UP[,>]'; then
                _l=" link up"
            else
                _l=" link down"
            fi
        fi
        echo "sshd host$i $(rd "$h/addr"):$(rd "$h/port") pid ${_p:--} $_s$_l"
    done
    return $_rc
}

init_cmd_dir "$@"
shift 2
case $CMD in
    start) do_start "$@" ;;
    stop) cmd_stop "$@" ;;
    link) do_link "$@" ;;
    kill) do_kill "$@" ;;
    restart) do_restart "$@" ;;
    status) do_status ;;
    *) usage ;;
esac
