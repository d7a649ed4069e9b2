#!/bin/sh
# Test site: a PostgreSQL server (Debian's packages) run from DIR.
#
#   sh postgres.sh start   DIR [--port N] [--durable]
#   sh postgres.sh stop    DIR
#   sh postgres.sh kill    DIR            (SIGKILL the postmaster and its children: a crash)
#   sh postgres.sh restart DIR            (start the server again, same port and data)
#   sh postgres.sh status  DIR            (exit 1 if it does not accept connections)
#   sh postgres.sh psql    DIR [ARGS...]  (psql as orch to the database orch, over TCP)
#
# Needs root (start, stop, kill, restart); the server runs as the user
# postgres (initdb refuses root). See README.md next to this script.
set -eu

ME=postgres.sh
MARKER=.orctb-postgres
# for lib.sh: KIND names this kind of testbed in messages, DIR_WHY follows
# the characters DIR may hold, LOG_LINES is how much of a log show_log shows
# shellcheck disable=SC2034
KIND="a PostgreSQL testbed" DIR_WHY="" LOG_LINES=20
PG_ROOT=/usr/lib/postgresql   # Debian: one VERSION/bin per installed major version
DB_USER=orch                  # the role and the database the tests use
DB_NAME=orch
TO=15                         # seconds a start waits for the server; one psql may take

# say, die, rd, alive, pick_port, begin_start ...: lib.sh next to this script
here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
# shellcheck disable=SC1091 source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

usage() {
    cat >&2 <<EOF
usage: sh $ME start DIR [--port N] [--durable]
       sh $ME stop DIR
       sh $ME kill DIR
       sh $ME restart DIR
       sh $ME status DIR
       sh $ME psql DIR [PSQL-ARGS...]
EOF
    exit 2
}

# ---------------------------------------------------------------- helpers

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# libpq reads PGHOST, PGPORT, PGUSER, PGOPTIONS ... and pg_ctl PGDATA from the
# environment: none of the caller's may reach the server or our clients
# (PG_URL, PG_PORT ... of a sourced postgres.env have an underscore: kept)
clean_env() {
    for _v in $(env | awk -F= '/^PG[A-Z]+=/ { print $1 }'); do
        unset "$_v"
    done
}

# the newest $PG_ROOT/VERSION/bin with the programs this script runs
find_pg() {
    PG_BIN='' _best=-1
    for _d in "$PG_ROOT"/*/bin; do
        [ -x "$_d/postgres" ] || continue
        _v=${_d%/bin}; _v=${_v##*/}
        _maj=${_v%%.*}; _min=0
        case $_v in *.*) _min=${_v#*.} ;; esac
        if ! is_int "$_maj" || ! is_int "$_min"; then continue; fi
        _k=$((_maj * 1000 + _min))
        if [ $_k -gt $_best ]; then _best=$_k; PG_BIN=$_d; fi
    done
    [ -n "$PG_BIN" ] || die "no PostgreSQL under $PG_ROOT (no $PG_ROOT/VERSION/bin/postgres; apt-get install postgresql)"
    for _c in initdb pg_ctl postgres psql pg_isready; do
        [ -x "$PG_BIN/$_c" ] || die "$PG_BIN/$_c not found (apt-get install postgresql)"
    done
}

# the unprivileged user the server runs as: postgres (Debian's package
# creates it), else nobody
find_user() {
    if id -u postgres >/dev/null 2>&1; then
        SUSER=postgres
    elif id -u nobody >/dev/null 2>&1; then
        SUSER=nobody
        warn "no user postgres; running the server as nobody"
    else
        die "neither the user postgres nor nobody exists (the server cannot run as root)"
    fi
}

# "$@" as the server user, in DIR (the caller's directory may be closed to it)
as_user() {
    if command -v runuser >/dev/null 2>&1; then
        (cd "$DIR" && exec runuser -u "$SUSER" -- "$@")
    elif command -v setpriv >/dev/null 2>&1; then
        (cd "$DIR" && exec setpriv --reuid="$SUSER" --regid="$(id -g "$SUSER")" --init-groups -- "$@")
    else
        die "neither runuser nor setpriv found (util-linux)"
    fi
}

# process command name is postgres
is_postgres() {
    [ -n "$1" ] && is_int "$1" || return 1
    [ "$(cat "/proc/$1/comm" 2>/dev/null || true)" = postgres ]
}

# a live postgres process of this testbed: every server process works in
# DIR/data (guards against a recycled pid, another testbed's included)
is_ours() {
    is_postgres "$1" && [ "$(readlink "/proc/$1/cwd" 2>/dev/null || true)" = "$DIR/data" ]
}

# wait until pid is gone, up to $2 tenths of a second; 0 when gone
wait_gone() {
    _n=0
    while alive "$1"; do
        _n=$((_n + 1)); [ $_n -le "$2" ] || return 1
        sleep 0.1
    done
    return 0
}

# the postmaster's pid: the first line of postmaster.pid while it runs
postmaster_pid() {
    _p=$(head -n 1 "$DIR/data/postmaster.pid" 2>/dev/null || true)
    if is_ours "$_p"; then echo "$_p"; return 0; fi
    _p=$(rd "$DIR/pid")
    if is_ours "$_p"; then echo "$_p"; return 0; fi
    return 1
}

# every postgres process of this testbed: the postmaster and its descendants,
# and any postgres process whose working directory is DIR/data (every server
# process chdirs there; this finds children whose postmaster died already)
server_pids() {
    _pm=$(postmaster_pid || true)
    [ -z "$_pm" ] || descendants "$_pm"
    find /proc -mindepth 2 -maxdepth 2 -name cwd -lname "$DIR/data" 2>/dev/null |
        while read -r _c; do
            _p=${_c#/proc/}; _p=${_p%/cwd}
            if is_postgres "$_p"; then echo "$_p"; fi
        done
}

# SIGKILL the postmaster (stopped first: no new children meanwhile) and every
# process of the server; waits until they are gone (zombies count as gone)
kill_server() {
    _pm=$(postmaster_pid || true)
    [ -z "$_pm" ] || kill -STOP "$_pm" 2>/dev/null || true
    _all=$(server_pids | sort -u)
    for _pid in $_all; do kill -KILL "$_pid" 2>/dev/null || true; done
    for _pid in $_all; do wait_gone "$_pid" 50 || warn "pid $_pid does not die"; done
    rm -f "$DIR/pid"
}

# A killed postmaster leaves its lock files, data/postmaster.pid and
# run/.s.PGSQL.PORT.lock (the pid on their first line). That pid may live on
# as a zombie (pid 1 here does not reap orphans) or be recycled by a process
# of the user postgres (another testbed's server), and the next postmaster
# takes it for a running server ("lock file ... already exists"). A lock
# file is removed when its pid is not a process of this server. (The shared
# memory interlock still refuses a second postmaster on DIR/data while a
# killed one's children are attached.)
remove_stale_locks() {
    remove_stale_shm
    for _f in "$DIR/data/postmaster.pid" "$DIR"/run/.s.PGSQL.*.lock; do
        [ -f "$_f" ] || continue
        _p=$(head -n 1 "$_f" 2>/dev/null || true)
        if ! is_ours "$_p"; then rm -f "$_f"; fi
    done
}

# A killed postmaster also leaves its small SysV shared memory segment (a
# fast shutdown removes it; a restart reuses it). postmaster.pid's line 7 is
# "KEY ID"; the segment is removed if it has that key and nothing attached.
remove_stale_shm() {
    [ -f "$DIR/data/postmaster.pid" ] || return 0
    command -v ipcs >/dev/null 2>&1 || return 0
    read -r _key _id <<EOF
$(sed -n 7p "$DIR/data/postmaster.pid" 2>/dev/null || true)
EOF
    is_int "${_key:-x}" && is_int "${_id:-x}" || return 0
    _key=$(printf '0x%08x' "$_key")
    _att=$(ipcs -m 2>/dev/null | awk -v k="$_key" -v id="$_id" '$1 == k && $2 == id { print $6 }')
    if [ "$_att" = 0 ]; then ipcrm -m "$_id" 2>/dev/null || true; fi
}

# A free port no socket uses, below the ephemeral range (lib.sh's pick_port).
pick_server_port() {
    pick_port -Htan
}

# psql as the superuser postgres over DIR/run (local trust); quiet, stops at
# the first error
psql_admin() {
    PGCONNECT_TIMEOUT=5 timeout "$TO" "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 \
        -h "$DIR/run" -p "$PORT" -U postgres -d postgres "$@"
}

# psql as orch to the database orch over TCP, as the tests connect
psql_orch() {
    PGCONNECT_TIMEOUT=5 timeout "$TO" "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 \
        -h 127.0.0.1 -p "$PORT" -U "$DB_USER" -d "$DB_NAME" "$@"
}

load_state() {
    [ -e "$DIR/$MARKER" ] || die "$DIR is not a running PostgreSQL testbed"
    PORT=$(rd "$DIR/port")
    SUSER=$(rd "$DIR/user")
    PG_BIN=$(rd "$DIR/bin")
    if ! is_int "$PORT" || [ -z "$SUSER" ] || [ ! -x "$PG_BIN/postgres" ]; then
        die "$DIR is not a complete PostgreSQL testbed (port, user or bin missing)"
    fi
}

# ---------------------------------------------------------------- server

# the testbed's settings (postgresql.conf includes this file last)
write_config() { # port
    {
        echo "# generated by $ME for testbed $DIR; included last by postgresql.conf"
        echo "listen_addresses = '127.0.0.1'"
        echo "port = $1"
        echo "unix_socket_directories = '$DIR/run'"
        echo "max_connections = 200"
        echo "shared_buffers = 64MB"
        echo "cluster_name = 'orctb-$(short_id "$DIR")'"
        echo "# files in pg_dynshmem/ (not /dev/shm): nothing is left behind when a"
        echo "# killed server is not restarted and DIR is removed"
        echo "dynamic_shared_memory_type = mmap"
        echo "logging_collector = off          # stderr goes to DIR/log/postgres.log (pg_ctl -l)"
        echo "log_destination = 'stderr'"
        if [ "$(rd "$DIR/durable")" = 1 ]; then
            echo "# --durable: fsync and full_page_writes keep their defaults (on)"
        else
            echo "# a fast test server: a crash of the machine may lose or corrupt the data;"
            echo "# a commit is in the kernel before it returns, so a killed server keeps it"
            echo "fsync = off"
            echo "full_page_writes = off"
        fi
    } >"$DIR/data/testbed.conf"
    chown "$SUSER:" "$DIR/data/testbed.conf"
    chmod 0600 "$DIR/data/testbed.conf"
    echo "$1" >"$DIR/port"
}

# start the server from DIR/data (pg_ctl -w) and wait until it accepts
# connections (at most TO seconds); 0 when it does
start_server() {
    : >>"$DIR/log/postgres.log"
    chown "$SUSER:" "$DIR/log/postgres.log"
    remove_stale_locks
    as_user "$PG_BIN/pg_ctl" start -D "$DIR/data" -l "$DIR/log/postgres.log" -w -t "$TO" \
        </dev/null >>"$DIR/log/pg_ctl.out" 2>&1 || return 1
    _pid=$(head -n 1 "$DIR/data/postmaster.pid" 2>/dev/null || true)
    is_ours "$_pid" || return 1
    echo "$_pid" >"$DIR/pid"
    _end=$(($(date +%s) + TO))
    until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -t 1 >/dev/null 2>&1; do
        alive "$_pid" || return 1
        [ "$(date +%s)" -lt $_end ] || return 1
        sleep 0.1
    done
    return 0
}

server_version() {
    psql_orch -At -c 'SHOW server_version' 2>/dev/null | awk 'NR == 1 { print $1 }'
}

write_env() {
    _p=$(rd "$DIR/pid")
    _t=$DIR/postgres.env.tmp
    {
        echo "# PostgreSQL testbed written by $ME; sourceable by sh (KEY=\"VALUE\" lines)"
        echo "PG_TESTBED_DIR=\"$DIR\""
        echo "PG_URL=\"postgresql://$DB_USER@127.0.0.1:$PORT/$DB_NAME\""
        echo "PG_HOST=\"127.0.0.1\""
        echo "PG_PORT=\"$PORT\""
        echo "PG_USER=\"$DB_USER\""
        echo "PG_DATABASE=\"$DB_NAME\""
        echo "PG_PID=\"${_p:--}\""
        echo "PG_BIN=\"$PG_BIN\""
        echo "PG_DATA=\"$DIR/data\""
        echo "export PG_URL"
    } >"$_t"
    mv -f "$_t" "$DIR/postgres.env"
}

# ---------------------------------------------------------------- commands

do_stop() {
    testbed_to_stop || return 0
    SUSER=$(rd "$DIR/user")
    PG_BIN=$(rd "$DIR/bin")
    if [ -n "$SUSER" ] && [ -x "$PG_BIN/pg_ctl" ] && postmaster_pid >/dev/null; then
        as_user "$PG_BIN/pg_ctl" stop -D "$DIR/data" -m fast -w -t 10 \
            </dev/null >>"$DIR/log/pg_ctl.out" 2>&1 || warn "fast shutdown did not finish in 10 s; killing the server"
    fi
    kill_server
    remove_stale_shm
    rm -rf "$DIR"
}

# a failed start (cleanup_failed_start in lib.sh) runs this before do_stop
start_failed_hook() {
    # initdb's log only when the server did not get to run
    [ -s "$DIR/log/postgres.log" ] || show_log "$DIR/log/initdb.log"
    show_log "$DIR/log/pg_ctl.out"
    show_log "$DIR/log/postgres.log"
    return 0
}

do_start() {
    _t0=$(now)
    PORT="" DURABLE=0
    while [ $# -gt 0 ]; do
        case $1 in
            --port) [ $# -ge 2 ] || usage; PORT=$2; shift 2 ;;
            --port=*) PORT=${1#--port=}; shift ;;
            --durable) DURABLE=1; shift ;;
            *) die "unknown option: $1" ;;
        esac
    done
    if [ -n "$PORT" ]; then
        if ! is_int "$PORT" || [ "$PORT" -lt 1024 ] || [ "$PORT" -gt 65535 ]; then
            die "--port wants 1024..65535, got $PORT"
        fi
    fi
    need_root
    find_pg
    find_user
    for _c in ss ps awk od cksum find timeout; do
        command -v $_c >/dev/null 2>&1 || die "$_c not found"
    done
    if [ -n "$PORT" ] && [ -n "$(ss -Hltn "sport = :$PORT" 2>/dev/null)" ]; then
        die "port $PORT is in use"
    fi

    begin_start
    # the socket DIR/run/.s.PGSQL.PORT must fit in sun_path (107 bytes)
    _sock="$DIR/run/.s.PGSQL.65535"
    [ ${#_sock} -le 107 ] || die "DIR is too long for a unix socket path (at most $((107 - ${#_sock} + ${#DIR})) characters): $DIR"
    # the server user must reach DIR/data: every directory from / to DIR
    set -- /
    _d='' _rest=${DIR#/}
    while [ -n "$_rest" ]; do
        _d=$_d/${_rest%%/*}
        case $_rest in */*) _rest=${_rest#*/} ;; *) _rest='' ;; esac
        set -- "$@" "$_d"
    done
    # shellcheck disable=SC2016  # $d is the inner sh's
    _closed=$(as_user sh -c 'for d; do test -x "$d" || { echo "$d"; exit 0; }; done' sh "$@") ||
        die "cannot run a command as $SUSER"
    [ -z "$_closed" ] || die "$_closed is not traversable by the user $SUSER (mode $(stat -c %a "$_closed")); the server cannot reach $DIR/data: choose a DIR elsewhere (under /tmp, say)"

    mkdir -p "$DIR/data" "$DIR/run" "$DIR/log"
    : >"$DIR/log/postgres.log"
    chown "$SUSER:" "$DIR/data" "$DIR/run" "$DIR/log" "$DIR/log/postgres.log"
    chmod 0700 "$DIR/data"
    chmod 0755 "$DIR/run" "$DIR/log"
    echo "$SUSER" >"$DIR/user"
    echo "$PG_BIN" >"$DIR/bin"
    echo "$DURABLE" >"$DIR/durable"

    # C.UTF-8: byte-order collation and UTF-8 classification, on any machine
    _loc=C
    if locale -a 2>/dev/null | grep -qix 'c\.utf-\{0,1\}8'; then _loc=C.UTF-8; fi
    _sync=--no-sync
    [ $DURABLE = 0 ] || _sync=
    # shellcheck disable=SC2086  # _sync: one word or none
    as_user "$PG_BIN/initdb" -D "$DIR/data" -U postgres -E UTF8 --locale="$_loc" -A trust \
        --no-instructions $_sync </dev/null >"$DIR/log/initdb.log" 2>&1 ||
        die "initdb failed"

    # a test-only server: anyone on this machine may connect as any role,
    # without a password, over 127.0.0.1 or the socket in DIR/run
    cat >"$DIR/data/pg_hba.conf" <<EOF
# generated by $ME: a TEST-ONLY server, no passwords (trust), local connections only
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 trust
host    all       all   127.0.0.1/32  trust
EOF
    chown "$SUSER:" "$DIR/data/pg_hba.conf"
    chmod 0600 "$DIR/data/pg_hba.conf"
    printf "\n# %s: the testbed's settings\ninclude 'testbed.conf'\n" "$ME" >>"$DIR/data/postgresql.conf"

    if [ -n "$PORT" ]; then
        write_config "$PORT"
        start_server || die "the server did not start on 127.0.0.1:$PORT"
    else
        tries=0
        while :; do
            tries=$((tries + 1))
            PORT=$(pick_server_port)
            write_config "$PORT"
            _sz=$(wc -c <"$DIR/log/postgres.log")
            if start_server; then break; fi
            tail -c +$((_sz + 1)) "$DIR/log/postgres.log" | grep -q 'Address already in use' ||
                die "the server did not start on 127.0.0.1:$PORT"
            [ $tries -lt 5 ] || die "the server did not start (5 ports tried)"
            warn "port $PORT is taken; trying another one"
        done
    fi

    psql_admin -c "CREATE ROLE $DB_USER LOGIN CREATEDB" -c "CREATE DATABASE $DB_NAME OWNER $DB_USER" \
        </dev/null >"$DIR/log/setup.out" 2>&1 || { show_log "$DIR/log/setup.out"; die "creating the role and database $DB_USER failed"; }
    _one=$(psql_orch -At -c 'SELECT 1' </dev/null 2>"$DIR/log/setup.out" || true)
    [ "$_one" = 1 ] || { show_log "$DIR/log/setup.out"; die "SELECT 1 as $DB_USER over 127.0.0.1:$PORT failed"; }
    VERSION=$(server_version)
    write_env
    end_start
    echo "postgres pid $(rd "$DIR/pid") 127.0.0.1:$PORT version ${VERSION:-?} data $DIR/data"
    echo "env $DIR/postgres.env ($(since "$_t0") s)"
}

do_kill() {
    [ $# -eq 0 ] || usage
    need_root
    load_state
    _kp=$(postmaster_pid || true)
    kill_server
    write_env
    say "postgres killed${_kp:+ (pid $_kp)}"
}

do_restart() {
    [ $# -eq 0 ] || usage
    need_root
    load_state
    _t0=$(now)
    if postmaster_pid >/dev/null; then
        as_user "$PG_BIN/pg_ctl" stop -D "$DIR/data" -m fast -w -t 10 \
            </dev/null >>"$DIR/log/pg_ctl.out" 2>&1 || warn "fast shutdown did not finish in 10 s; killing the server"
    fi
    kill_server
    if ! start_server; then
        kill_server
        write_env
        show_log "$DIR/log/pg_ctl.out"
        show_log "$DIR/log/postgres.log"
        die "the server did not start again on 127.0.0.1:$PORT"
    fi
    write_env
    echo "postgres pid $(rd "$DIR/pid") 127.0.0.1:$PORT version $(server_version) data $DIR/data ($(since "$_t0") s)"
}

do_status() {
    [ $# -eq 0 ] || usage
    [ -e "$DIR/$MARKER" ] || { echo "no testbed in $DIR"; return 1; }
    load_state
    _p=$(postmaster_pid || true)
    if [ -z "$_p" ]; then
        echo "postgres pid - 127.0.0.1:$PORT stopped"
        return 1
    fi
    if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -t 3 >/dev/null 2>&1; then
        echo "postgres pid $_p 127.0.0.1:$PORT accepting connections"
        return 0
    fi
    echo "postgres pid $_p 127.0.0.1:$PORT running, not accepting connections"
    return 1
}

do_psql() {
    load_state
    exec "$PG_BIN/psql" -X -h 127.0.0.1 -p "$PORT" -U "$DB_USER" -d "$DB_NAME" "$@"
}

init_cmd_dir "$@"
shift 2
clean_env
case $CMD in
    start) do_start "$@" ;;
    stop) cmd_stop "$@" ;;
    kill) do_kill "$@" ;;
    restart) do_restart "$@" ;;
    status) do_status "$@" ;;
    psql) do_psql "$@" ;;
    *) usage ;;
esac
