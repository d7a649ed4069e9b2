# shellcheck shell=sh
# Helpers that sshd.sh and slurm.sh share; each of them sources this file
# (". lib.sh" from its own directory) after `set -eu`. Not a command itself.
#
# The sourcing script sets, before it calls the functions here:
#   ME          its name, the prefix of every message ("sshd.sh")
#   MARKER      the file that marks DIR as a testbed of its kind
#   KIND        its kind of testbed, with the article ("an sshd testbed")
#   DIR         the testbed directory (init_cmd_dir sets it)
#   LOG_LINES   optional: how many last lines show_log shows (default 20)
#   DIR_WHY     optional: said after the allowed characters of DIR
# and it defines usage (exit 2) and do_stop (stop and remove DIR).
# start_failed_hook, a no-op here, may be redefined after sourcing: a failed
# start runs it before it warns and calls do_stop.

# shellcheck disable=SC2154  # ME, MARKER, KIND and DIR come from the sourcing script

PATH=$PATH:/usr/sbin:/sbin:/usr/local/sbin
export PATH

say() { echo "$ME: $*"; }
warn() { echo "$ME: $*" >&2; }
die() { echo "$ME: error: $*" >&2; exit 1; }

# ---------------------------------------------------------------- helpers

# absolute path of DIR (DIR need not exist)
abspath() {
    case $1 in
        */) set -- "${1%/}" ;;
    esac
    [ -n "$1" ] || { echo /; return; }
    if [ -d "$1" ]; then
        (cd "$1" && pwd -P)
    else
        _p=$(dirname "$1"); _b=$(basename "$1")
        if [ -d "$_p" ]; then
            echo "$(cd "$_p" && pwd -P)/$_b"
        else
            case $1 in /*) echo "$1" ;; *) echo "$(pwd -P)/$1" ;; esac
        fi
    fi
}

check_dir_name() {
    case $1 in
        *[!A-Za-z0-9/._+=,@-]*) die "DIR must contain only [A-Za-z0-9/._+=,@-]${DIR_WHY:-}: $1" ;;
    esac
    [ "$1" != / ] || die "DIR must not be /"
}

# 6 hex digits derived from DIR: names of namespaces, veths and clusters
short_id() {
    printf '%s' "$1" | cksum | awk '{ printf "%06x", $1 % 16777216 }'
}

is_int() {
    case $1 in ''|*[!0-9]*) return 1 ;; esac
    return 0
}

# read a one-line state file, empty if missing
rd() { if [ -f "$1" ]; then cat "$1"; fi; }

need_root() { [ "$(id -u)" = 0 ] || die "must run as root"; }

# process exists and is not a zombie
alive() {
    [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 1
    case $(ps -o stat= -p "$1" 2>/dev/null) in Z*) return 1 ;; esac
    return 0
}

# pid and all its descendants (parents first)
descendants() {
    ps -e -o pid= -o ppid= | awk -v r="$1" '
        { par[$1] = $2 }
        END {
            want[r] = 1; order[1] = r; n = 1; changed = 1
            while (changed) {
                changed = 0
                for (k in par)
                    if (!(k in want) && (par[k] in want)) { want[k] = 1; order[++n] = k; changed = 1 }
            }
            for (i = 1; i <= n; i++) print order[i]
        }'
}

# random port that is free (TCP, root namespace), from 20000 up to the start of
# the ephemeral range (ip_local_port_range; 20000..59999 if that starts below
# 20100): a server cannot bind a port a client socket holds, and a client's
# TIME-WAIT keeps its port for 60 s, so ports no client is given stay bindable
# (and free while a server is killed, for its restart). The ss flags say free
# of what: -Hltn nothing listens on it, -Htan no socket uses it
pick_port() { # ss-flags
    _try=0
    _lo=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true)
    is_int "${_lo:-x}" || _lo=32768
    _span=40000
    [ "$_lo" -le 20100 ] || _span=$((_lo - 20000))
    while [ $_try -lt 200 ]; do
        _try=$((_try + 1))
        _r=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
        _p=$((20000 + _r % _span))
        case " $USED_PORTS " in *" $_p "*) continue ;; esac
        if [ -z "$(ss "$1" "sport = :$_p" 2>/dev/null)" ]; then
            USED_PORTS="$USED_PORTS $_p"
            echo "$_p"
            return 0
        fi
    done
    die "no free TCP port found"
}
USED_PORTS=

# the last LOG_LINES lines of a log, indented, on stderr (nothing if empty)
show_log() {
    if [ -s "$1" ]; then
        warn "last lines of $1:"
        tail -n "${LOG_LINES:-20}" "$1" | sed 's/^/    /' >&2
    fi
}

# ---------------------------------------------------------------- commands

# CMD=$1 and DIR=$2 made absolute, both checked; the caller then shifts 2
init_cmd_dir() { # "$@" of the script
    [ $# -ge 2 ] || usage
    # shellcheck disable=SC2034  # the sourcing script dispatches on CMD
    CMD=$1
    check_dir_name "$2"
    DIR=$(abspath "$2")
    check_dir_name "$DIR"
}

# do_stop's start: 0 when DIR holds a testbed of this kind, to stop; 1 when
# there is nothing to stop (DIR absent, or empty and removed now); dies when
# DIR is something else
testbed_to_stop() {
    [ -e "$DIR" ] || return 1
    [ -d "$DIR" ] || die "$DIR is not a directory"
    if [ ! -e "$DIR/$MARKER" ]; then
        if rmdir "$DIR" 2>/dev/null; then return 1; fi
        die "$DIR is not $KIND directory (no $MARKER); not removing it"
    fi
    return 0
}

cmd_stop() { # "$@" after DIR: nothing
    [ $# -eq 0 ] || usage
    need_root
    do_stop
    say "stopped $DIR"
}

start_failed_hook() { :; }

# EXIT trap of start: a start that did not finish stops what it started
cleanup_failed_start() {
    _rc=$?
    if [ "${STARTED_OK:-0}" != 1 ]; then
        start_failed_hook
        warn "start failed; cleaning up $DIR"
        do_stop || true
        [ $_rc -ne 0 ] || _rc=1
    fi
    exit $_rc
}

# start's beginning: stops a testbed DIR holds, refuses a DIR with other
# things in it, creates DIR (0755, made absolute without links), marks it and
# sets the trap that cleans up after a failed start
begin_start() {
    if [ -e "$DIR/$MARKER" ]; then
        say "$DIR holds a testbed already; stopping it first"
        do_stop
    elif [ -d "$DIR" ] && [ -n "$(ls -A "$DIR")" ]; then
        die "$DIR exists, is not empty and is not $KIND"
    fi

    STARTED_OK=0
    trap cleanup_failed_start EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    mkdir -p "$DIR"
    chmod 0755 "$DIR"
    DIR=$(cd "$DIR" && pwd -P)
    : >"$DIR/$MARKER"
}

# start's end: everything runs; a later exit stops nothing
end_start() {
    STARTED_OK=1
    trap - EXIT INT TERM
}
