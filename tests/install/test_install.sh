#!/bin/sh
# An operator's install, end to end (docs/install.md): `make install` into a scratch
# DESTDIR with PREFIX=/usr, every file in its place with its mode and nothing else, the
# man pages linted and holding every option of the binaries' --help, the systemd units
# verified, the nginx front checked by nginx -t and the logrotate file by logrotate
# (each when the tool is there), then the INSTALLED daemon started on the installed
# catalog and plugins, asked over HTTP, and stopped with SIGTERM.
# Run by `make test` through tests/run.sh like a test binary: prints cmocka's summary
# lines ("[  PASSED  ] N test(s)." and "[  FAILED  ] N test(s), listed below:").
# Environment: BUILD (default build/release), SANITIZE (passed on to make).
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build/release}
# a make above us (make test) would hand its jobserver and flags down
unset MAKEFLAGS MFLAGS MAKELEVEL
# the installed daemon must find everything from its own install, not from this shell
for v in $(env | sed -n 's/^\(ORCHESTRATOR_[A-Z_]*\)=.*/\1/p'); do
    unset "$v"
done
umask 022

PREFIX=/usr
tmp=$(mktemp -d "${TMPDIR:-/tmp}/orc-install.XXXXXX") || exit 1
ROOT=$tmp$PREFIX
WORK=$tmp/work
SHARE=$ROOT/share/orchestrator
mkdir -p "$WORK"
daemon_pid=""
port=""

cleanup() {
    if [ -n "$daemon_pid" ]; then
        kill -KILL "$daemon_pid" 2>/dev/null
        wait "$daemon_pid" 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

passed=0
failed=0
skipped=0
ran=0
failed_names=""
skipped_names=""

# run_test NAME: runs the function NAME; 0 passes, 77 skips, anything else fails
run_test() {
    echo "[ RUN      ] $1"
    ran=$((ran + 1))
    "$1"
    case $? in
    0)
        echo "[       OK ] $1"
        passed=$((passed + 1))
        ;;
    77)
        echo "[  SKIPPED ] $1"
        skipped=$((skipped + 1))
        skipped_names="$skipped_names $1"
        ;;
    *)
        echo "[  FAILED  ] $1"
        failed=$((failed + 1))
        failed_names="$failed_names $1"
        ;;
    esac
}

# ---- the install ----

make_install() {
    if ! make -s install DESTDIR="$tmp" PREFIX="$PREFIX" BUILD="$BUILD" \
        SANITIZE="${SANITIZE:-}" >"$WORK/install.log" 2>&1; then
        cat "$WORK/install.log"
        echo "make install DESTDIR=$tmp PREFIX=$PREFIX failed"
        return 1
    fi
}

# MODE PATH (relative to DESTDIR) for every file the install must put there
expected_files() {
    for b in orchestratord orchctl gpu-agent gpu-train gpu-serve; do
        echo "755 usr/bin/$b"
    done
    for so in "$BUILD"/plugins/*.so; do
        echo "644 usr/lib/orchestrator/plugins/${so##*/}"
    done
    echo "644 usr/share/man/man1/orchctl.1"
    echo "644 usr/share/man/man8/orchestratord.8"
    echo "644 usr/share/man/man8/gpu-agent.8"
    for y in examples/*.yaml; do
        echo "644 usr/share/orchestrator/examples/${y##*/}"
    done
    echo "644 usr/share/orchestrator/orchestratord.example.yaml"
    echo "644 usr/share/orchestrator/sites.example.yaml"
    echo "644 usr/share/orchestrator/nginx/orchestrator.conf"
    echo "644 usr/share/orchestrator/logrotate/orchestrator"
    echo "644 usr/lib/systemd/system/orchestratord.service"
    echo "644 usr/lib/systemd/system/gpu-agent.service"
}

files_and_modes() {
    rc=0
    [ -f "$ROOT/lib/orchestrator/plugins/local.so" ] || {
        echo "no local.so among the installed plugins"
        rc=1
    }
    expected_files >"$WORK/expected"
    while read -r mode path; do
        if [ ! -f "$tmp/$path" ]; then
            echo "missing: $path"
            rc=1
        elif [ "$(stat -c %a "$tmp/$path")" != "$mode" ]; then
            echo "$path: mode $(stat -c %a "$tmp/$path"), expected $mode"
            rc=1
        fi
    done <"$WORK/expected"
    # nothing else: no stray file, and nothing outside PREFIX
    (cd "$tmp" && find . -path ./work -prune -o ! -type d -print | sed 's|^\./||' | sort) \
        >"$WORK/found"
    cut -d' ' -f2 "$WORK/expected" | sort >"$WORK/expected.paths"
    extra=$(comm -13 "$WORK/expected.paths" "$WORK/found")
    if [ -n "$extra" ]; then
        echo "installed but not expected:"
        echo "$extra"
        rc=1
    fi
    for d in $(cd "$tmp" && find usr -type d); do
        if [ "$(stat -c %a "$tmp/$d")" != 755 ]; then
            echo "$d/: mode $(stat -c %a "$tmp/$d"), expected 755"
            rc=1
        fi
    done
    return $rc
}

# the units name PREFIX's paths (the repository's files name /usr/local/)
units_use_prefix() {
    rc=0
    u=$ROOT/lib/systemd/system
    grep -q "^ExecStart=$PREFIX/bin/orchestratord " "$u/orchestratord.service" || rc=1
    grep -q -- "--catalog-dir $PREFIX/share/orchestrator/examples\$" \
        "$u/orchestratord.service" || rc=1
    grep -q "^ExecStart=$PREFIX/bin/gpu-agent check " "$u/gpu-agent.service" || rc=1
    if grep -n /usr/local/ "$u"/*.service | grep -v '^[^:]*:[0-9]*:#'; then
        echo "a unit still names /usr/local/"
        rc=1
    fi
    [ $rc = 0 ] || echo "the installed units do not use PREFIX=$PREFIX"
    return $rc
}

# ---- man pages ----

man_lint() {
    if ! command -v groff >/dev/null 2>&1 && ! command -v mandoc >/dev/null 2>&1; then
        echo "neither groff nor mandoc is installed (deploy/install-deps.sh installs groff-base)"
        return 1
    fi
    rc=0
    for page in "$ROOT"/share/man/man1/orchctl.1 "$ROOT"/share/man/man8/orchestratord.8 \
        "$ROOT"/share/man/man8/gpu-agent.8; do
        if command -v groff >/dev/null 2>&1; then
            out=$(groff -man -ww -z "$page" 2>&1)
            if [ -n "$out" ]; then
                echo "groff -man -ww -z ${page##*/}:"
                echo "$out"
                rc=1
            fi
        fi
        if command -v mandoc >/dev/null 2>&1; then
            if ! out=$(mandoc -T lint -W warning "$page" 2>&1) || [ -n "$out" ]; then
                echo "mandoc -T lint ${page##*/}:"
                echo "$out"
                rc=1
            fi
        fi
    done
    return $rc
}

# the page as text, one paragraph per line, runs of blanks made one
render() {
    groff -man -Tascii -P-c -P-b -P-u -rLL=10000n -rHY=0 "$1" 2>/dev/null | tr -s ' \t' '  '
}

# covers PAGE_TEXT HELP_TEXT: every --option (with its upper-case argument) and every
# environment variable the help names is in the page
covers() {
    rc=0
    grep -oE -- '--[a-z][a-z-]*( [A-Z][A-Z=]*)?' "$2" | sort -u >"$WORK/opts"
    grep -oE '(ORCHESTRATOR|ORCHCTL|ORC)_[A-Z_]*' "$2" | sort -u >>"$WORK/opts"
    while read -r opt; do
        if ! grep -q -F -e "$opt" "$1"; then
            echo "${1##*/}: '$opt' of --help is missing"
            rc=1
        fi
    done <"$WORK/opts"
    return $rc
}

man_matches_help() {
    command -v groff >/dev/null 2>&1 || {
        echo "groff is not installed (deploy/install-deps.sh)"
        return 1
    }
    rc=0
    bin=$ROOT/bin
    render "$ROOT/share/man/man8/orchestratord.8" >"$WORK/orchestratord.txt"
    render "$ROOT/share/man/man1/orchctl.1" >"$WORK/orchctl.txt"
    render "$ROOT/share/man/man8/gpu-agent.8" >"$WORK/gpu-agent.txt"
    "$bin/orchestratord" --help >"$WORK/orchestratord.help" || rc=1
    "$bin/orchctl" help >"$WORK/orchctl.help" || rc=1
    { "$bin/gpu-agent" --help && "$bin/gpu-agent" run --help; } >"$WORK/gpu-agent.help" || rc=1
    covers "$WORK/orchestratord.txt" "$WORK/orchestratord.help" || rc=1
    covers "$WORK/orchctl.txt" "$WORK/orchctl.help" || rc=1
    covers "$WORK/gpu-agent.txt" "$WORK/gpu-agent.help" || rc=1
    # orchestratord: each option's and setting's heading, as --help writes it
    sed -n 's/^  \([-a-z][^ ].*\)$/\1/p' "$WORK/orchestratord.help" >"$WORK/lines"
    # orchctl: each command's summary; gpu-agent: each command's synopsis
    sed -n '/^commands:/,/^$/s/^  [a-z]* *\(.*\)$/\1/p' "$WORK/orchctl.help" >>"$WORK/lines"
    sed -n 's/^  \([a-z][^ ]*\( [^ ]\{1,\}\)*\)\(  .*\)\{0,1\}$/\1/p' \
        "$WORK/gpu-agent.help" >>"$WORK/lines"
    cat "$WORK/orchestratord.txt" "$WORK/orchctl.txt" "$WORK/gpu-agent.txt" >"$WORK/all.txt"
    while read -r line; do
        if ! grep -q -i -F -e "$line" "$WORK/all.txt"; then
            echo "not in the man pages: '$line'"
            rc=1
        fi
    done <"$WORK/lines"
    return $rc
}

# ---- systemd, nginx, logrotate ----

systemd_units() {
    if ! command -v systemd-analyze >/dev/null 2>&1; then
        echo "systemd-analyze is not installed: the units are not verified"
        return 77
    fi
    # The units name $PREFIX/bin/..., which exists only after a real install; verify
    # copies whose programs point into DESTDIR instead (nothing else changed), and find
    # their man: pages among the installed ones.
    mkdir -p "$WORK/units"
    for u in "$ROOT"/lib/systemd/system/*.service; do
        sed "s|$PREFIX/bin/|$ROOT/bin/|g" "$u" >"$WORK/units/${u##*/}"
    done
    man=no
    command -v man >/dev/null 2>&1 && man=yes
    out=$(MANPATH=$ROOT/share/man systemd-analyze verify --man=$man "$WORK"/units/*.service 2>&1)
    vrc=$?
    if [ $vrc != 0 ] || [ -n "$out" ]; then
        echo "systemd-analyze verify (exit $vrc):"
        echo "$out"
        return 1
    fi
}

nginx_front() {
    if ! command -v nginx >/dev/null 2>&1; then
        echo "nginx is not installed: deploy/nginx/orchestrator.conf is not checked"
        return 77
    fi
    n=$WORK/nginx
    mkdir -p "$n"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
        -subj /CN=orchestrator.example.org -keyout "$n/key.pem" -out "$n/cert.pem" \
        >"$n/openssl.log" 2>&1 || {
        cat "$n/openssl.log"
        return 1
    }
    # the installed file with this test's certificate, inside a minimal nginx.conf
    sed -e "s|/etc/ssl/orchestrator/fullchain.pem|$n/cert.pem|" \
        -e "s|/etc/ssl/orchestrator/privkey.pem|$n/key.pem|" \
        "$SHARE/nginx/orchestrator.conf" >"$n/orchestrator.conf"
    cat >"$n/nginx.conf" <<EOF
pid $n/nginx.pid;
error_log stderr;
events {}
http {
    access_log off;
    client_body_temp_path $n/body;
    proxy_temp_path $n/proxy;
    include $n/orchestrator.conf;
}
EOF
    if ! out=$(nginx -t -p "$n/" -c "$n/nginx.conf" -e stderr 2>&1); then
        echo "nginx -t:"
        echo "$out"
        return 1
    fi
}

logrotate_file() {
    if ! command -v logrotate >/dev/null 2>&1; then
        echo "logrotate is not installed: deploy/logrotate/orchestrator is not checked"
        return 77
    fi
    # the installed file on a log of this test's own: rotated by copy and truncation
    l=$WORK/log
    mkdir -p "$l"
    sed "s|/var/log/orchestrator/|$l/|" "$SHARE/logrotate/orchestrator" >"$WORK/logrotate.conf"
    echo "2026-01-01T00:00:00.000Z info daemon: a line" >"$l/orchestratord.log"
    if ! out=$(logrotate -f -s "$WORK/logrotate.state" "$WORK/logrotate.conf" 2>&1) ||
        [ -n "$out" ]; then
        echo "logrotate -f:"
        echo "$out"
        return 1
    fi
    if [ -s "$l/orchestratord.log" ] || ! grep -q "a line" "$l/orchestratord.log.1"; then
        echo "the log was not rotated by copytruncate:"
        ls -l "$l"
        return 1
    fi
}

# ---- the installed daemon ----

# get PATH: prints the body, then the status on a line of its own
get() {
    curl -s --max-time 10 -w '\n%{http_code}\n' "http://127.0.0.1:$port$1"
}

daemon_starts() {
    # from a directory of its own, so that nothing comes from the source tree's ./examples;
    # with the example configuration, as the systemd unit runs it with its copy
    : >"$WORK/daemon.log"
    (cd "$WORK" && exec "$ROOT/bin/orchestratord" \
        --config "$SHARE/orchestratord.example.yaml" --listen 127.0.0.1:0 \
        --data-dir "$tmp/var" --catalog-dir "$SHARE/examples") >"$WORK/daemon.log" 2>&1 &
    daemon_pid=$!
    i=0
    while [ $i -lt 300 ]; do
        port=$(sed -n 's|.* listening on http://127\.0\.0\.1:\([0-9]*\)$|\1|p' "$WORK/daemon.log" |
            head -n 1)
        [ -n "$port" ] && break
        kill -0 "$daemon_pid" 2>/dev/null || break
        sleep 0.1
        i=$((i + 1))
    done
    if [ -z "$port" ]; then
        echo "no 'listening on http://127.0.0.1:PORT' line in its log:"
        cat "$WORK/daemon.log"
        return 1
    fi
    echo "installed orchestratord listening on 127.0.0.1:$port"
}

readyz() {
    [ -n "$port" ] || return 1
    i=0
    while [ $i -lt 300 ]; do
        [ "$(get /readyz | tail -n 1)" = 200 ] && return 0
        sleep 0.1
        i=$((i + 1))
    done
    echo "GET /readyz: not 200 within 30 s"
    get /readyz
    return 1
}

# json_check PATH PYTHON: the body of GET PATH is 200 JSON and the expression is true of j
json_check() {
    get "$1" >"$WORK/body"
    if [ "$(tail -n 1 "$WORK/body")" != 200 ]; then
        echo "GET $1:"
        cat "$WORK/body"
        return 1
    fi
    if ! sed '$d' "$WORK/body" | python3 -c "import json, sys
j = json.load(sys.stdin)
sys.exit(0 if ($2) else 1)"; then
        echo "GET $1 fails: $2"
        sed '$d' "$WORK/body"
        return 1
    fi
}

templates_from_catalog() {
    [ -n "$port" ] || return 1
    json_check "/templates?size=50" \
        "{'gpu-serving', 'gpu-train-serve', 'gpu-training'} <= \
         {t['name'] for t in j['content'] if t['source'] == 'catalog'}"
}

sites_from_plugins() {
    [ -n "$port" ] || return 1
    # the drivers are the installed ones, found from the installed daemon's bin/
    # (PREFIX/bin/../lib/orchestrator/plugins), not the build's nor another install's
    loaded=$(grep ' loaded from ' "$WORK/daemon.log")
    if ! echo "$loaded" | grep -q -F "driver local " ||
        echo "$loaded" | grep -v -F " loaded from $ROOT/"; then
        echo "the driver local was not loaded from $ROOT/lib/orchestrator/plugins:"
        grep -i 'driver' "$WORK/daemon.log"
        return 1
    fi
    json_check /sites \
        "[s['state'] for s in j['content'] if s['name'] == 'local'] == ['active']"
}

installed_clients() {
    [ -n "$port" ] || return 1
    "$ROOT/bin/orchctl" validate "$SHARE"/examples/*.yaml || return 1
    "$ROOT/bin/orchctl" list --url "http://127.0.0.1:$port" || return 1
    "$ROOT/bin/gpu-agent" version | grep -q '^gpu-agent ' || return 1
}

sigterm_exits_0() {
    [ -n "$daemon_pid" ] || return 1
    kill -TERM "$daemon_pid"
    i=0
    while [ $i -lt 300 ] && ! grep -q 'stopped (exit status' "$WORK/daemon.log"; do
        sleep 0.1
        i=$((i + 1))
    done
    grep -q 'stopped (exit status' "$WORK/daemon.log" || kill -KILL "$daemon_pid"
    wait "$daemon_pid"
    st=$?
    daemon_pid=""
    if [ $st != 0 ]; then
        echo "orchestratord exited with status $st after SIGTERM:"
        tail -n 20 "$WORK/daemon.log"
        return 1
    fi
}

run_test make_install
run_test files_and_modes
run_test units_use_prefix
run_test man_lint
run_test man_matches_help
run_test systemd_units
run_test nginx_front
run_test logrotate_file
run_test daemon_starts
run_test readyz
run_test templates_from_catalog
run_test sites_from_plugins
run_test installed_clients
run_test sigterm_exits_0

echo "[==========] $ran test(s) run."
echo "[  PASSED  ] $passed test(s)."
if [ $skipped -gt 0 ]; then
    echo "[  SKIPPED ] $skipped test(s), listed below:"
    for t in $skipped_names; do
        echo "[  SKIPPED ] $t"
    done
fi
if [ $failed -gt 0 ]; then
    echo "[  FAILED  ] $failed test(s), listed below:"
    for t in $failed_names; do
        echo "[  FAILED  ] $t"
    done
    exit 1
fi
exit 0
