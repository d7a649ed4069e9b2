#!/bin/sh
# The docs check (run by `make test` through tests/run.sh like a test binary): every
# command of the README's and the user docs' shell examples runs as written, in order,
# and prints what the docs show after it. A command is a line of a ```sh block that
# starts with "$ " (with its "\" continuation lines); the lines that follow it up to the
# next command are its output as the docs show it: each must appear in what it printed
# ("..." stands for what the docs leave out). Each must exit 0, or N when its line ends
# with the comment "# exit N" (a `make ...` line is the set-up this test stands in for,
# and is not run).
#
# It runs where the commands expect to be: a scratch copy of the checkout's layout (the
# examples, build/release pointing at $BUILD, ../shared beside it), in a network namespace
# of its own with the daemon `make run` starts (the build's orchestratord on its embedded
# defaults: http://127.0.0.1:8080, ./var, the site `local`), so port 8080 is its own.
# Last, docs/api-reference.md must be what tests/docs/api_reference.py makes of that
# daemon's /openapi.json (UPDATE_DOCS=1 writes it).
# Prints the summary lines tests/run.sh counts.
set -u
cd "$(dirname "$0")/../.." || exit 1
repo=$(pwd)
build=${BUILD:-build/release}
docs=${DOCS:-README.md docs/user-guide.md}

fail() {
    echo "docs: $*"
    echo "[  PASSED  ] 0 test(s)."
    echo "[  FAILED  ] 1 test(s), listed below:"
    exit 1
}

[ "$(id -u)" = 0 ] || fail "needs root for its network namespace (unshare -n)"
work=$(mktemp -d /tmp/test-docs-XXXXXX) || fail "no scratch directory"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/main/build" &&
    ln -s "$repo/examples" "$work/main/examples" &&
    ln -s "$repo/$build" "$work/main/build/release" &&
    ln -s "$(cd "$repo/.." && pwd)/shared" "$work/shared" || fail "cannot lay out $work"

# The commands and their outputs, as a script that runs each and checks it.
script="$work/run.sh"
awk -v q="'" '
function flush() {
    if (cmd == "") return
    n++
    printf "echo %s[ RUN      ] %s%s\n", q, where, q
    if (cmd ~ /^make /) {
        printf "echo %s[       OK ] %s (the set-up: not run)%s\n", q, where, q
    } else {
        print "{"
        print cmd
        printf "} >\"$W/out\" 2>&1 </dev/null\n"
        want = 0
        if (match(cmd, /# exit [0-9]+/)) want = substr(cmd, RSTART + 7, RLENGTH - 7)
        printf "check $? %s %s%s%s", want, q, where, q
        for (i = 1; i <= nout; i++) printf " %s%s%s", q, out[i], q
        printf "\n"
    }
    cmd = ""; nout = 0
}
FNR == 1 { inblock = 0 }
/^```sh/ { inblock = 1; next }
/^```/ { if (inblock) flush(); inblock = 0; next }
inblock && cont { cmd = cmd "\n" $0; cont = ($0 ~ /\\$/); next }
inblock && /^\$ / { flush(); where = FILENAME ":" FNR; cmd = substr($0, 3); cont = ($0 ~ /\\$/); next }
inblock && cmd != "" && $0 != "" { gsub(q, q "\\" q q); out[++nout] = $0 }
END { flush() }
' $docs >"$work/commands.sh" || fail "cannot read $docs"

cat >"$script" <<'EOF'
W=$(dirname "$0")
passed=0
failed=0
# check RC WANT WHERE EXPECTED...: the command exited WANT and printed each expected line
check() {
    rc=$1 want_rc=$2 where=$3
    shift 3
    bad=""
    [ "$rc" = "$want_rc" ] || bad="exit status $rc, not $want_rc"
    for want in "$@"; do
        case "$want" in
        ...) continue ;;
        ...*) want=${want#...} ;;
        esac
        want=${want%%...*}
        grep -qF -- "$want" "$W/out" || bad="$bad; no line with: $want"
    done
    if [ -z "$bad" ]; then
        passed=$((passed + 1))
        echo "[       OK ] $where"
    else
        failed=$((failed + 1))
        echo "[  FAILED  ] $where: $bad"
        sed 's/^/    | /' "$W/out" | tail -n 20
    fi
}
ip link set lo up || exit 1
cd "$W/main" || exit 1
build/release/bin/orchestratord >"$W/daemon.log" 2>&1 &
daemon=$!
for _ in $(seq 1 200); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/readyz)" = 200 ] && break
    sleep 0.05
done
. "$W/commands.sh"
# the API reference is the server's own: built again from its /openapi.json
echo "[ RUN      ] docs/api-reference.md"
curl -s http://127.0.0.1:8080/openapi.json | python3 "$REPO/tests/docs/api_reference.py" >"$W/api-reference.md"
if [ "${UPDATE_DOCS:-0}" = 1 ]; then
    cp "$W/api-reference.md" "$REPO/docs/api-reference.md"
fi
if diff -u "$REPO/docs/api-reference.md" "$W/api-reference.md" >"$W/out"; then
    passed=$((passed + 1))
    echo "[       OK ] docs/api-reference.md"
else
    failed=$((failed + 1))
    echo "[  FAILED  ] docs/api-reference.md: not what /openapi.json says (UPDATE_DOCS=1 sh tests/docs/check_docs.sh writes it)"
    head -n 40 "$W/out"
fi
kill -TERM "$daemon"
wait "$daemon" || { echo "the daemon did not exit 0 after SIGTERM"; failed=$((failed + 1)); }
[ "$failed" = 0 ] || tail -n 30 "$W/daemon.log"
echo "[  PASSED  ] $passed test(s)."
if [ "$failed" != 0 ]; then
    echo "[  FAILED  ] $failed test(s), listed below:"
    exit 1
fi
EOF
REPO=$repo timeout 600 unshare -n sh "$script"
