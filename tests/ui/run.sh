#!/bin/sh
# The dashboard's browser test (tests/ui/dashboard.mjs, docs/ui.md), run by `make test`
# through tests/run.sh like a test binary. It installs playwright-core from the npm
# registry into $BUILD/ui-test (once; the version is pinned in tests/ui/package.json),
# starts $ORCHESTRATORD on a loopback port with a fresh data directory, the embedded
# local site and the examples as its catalog, drives Debian's chromium against it, and
# stops the daemon. Screenshots go to $BUILD/ui-screenshots (docs/ui/ holds copies).
# Prints the summary lines tests/run.sh counts.
set -u
cd "$(dirname "$0")/../.." || exit 1
build=${BUILD:-build/release}
daemon=${ORCHESTRATORD:-$build/bin/orchestratord}
chromium=${CHROMIUM:-/usr/bin/chromium}
deps="$build/ui-test"

fail() {
    echo "ui: $*"
    echo "[  PASSED  ] 0 test(s)."
    echo "[  FAILED  ] 1 test(s), listed below:"
    exit 1
}

[ -x "$chromium" ] || fail "no chromium at $chromium (deploy/install-deps.sh installs it)"
command -v node >/dev/null || fail "no node (deploy/install-deps.sh installs nodejs and npm)"
want=$(sed -n 's/.*"playwright-core": *"\([^"]*\)".*/\1/p' tests/ui/package.json)
have=$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$deps/node_modules/playwright-core/package.json" 2>/dev/null)
if [ "$have" != "$want" ]; then
    mkdir -p "$deps" && cp tests/ui/package.json "$deps/" &&
        (cd "$deps" && npm install --no-audit --no-fund --silent) ||
        fail "npm could not install playwright-core $want"
fi

dir=$(mktemp -d /tmp/test-ui-XXXXXX)
log="$dir/daemon.log"
"$daemon" --listen 127.0.0.1:0 --data-dir "$dir/var" --catalog-dir examples >"$log" 2>&1 &
pid=$!
url=""
for _ in $(seq 1 200); do
    url=$(sed -n 's/.*listening on \(http:\/\/127\.0\.0\.1:[0-9]*\).*/\1/p' "$log" | head -n 1)
    [ -n "$url" ] && break
    sleep 0.05
done
stop() {
    kill -TERM "$pid" 2>/dev/null
    wait "$pid"
    st=$?
    rm -rf "$dir"
    return $st
}
if [ -z "$url" ]; then
    cat "$log"
    stop
    fail "the daemon did not start"
fi
for _ in $(seq 1 200); do # ready once the catalog is read and the site open
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/readyz")" = 200 ] && break
    sleep 0.05
done

PLAYWRIGHT_DIR="$(pwd)/$deps/node_modules" timeout 300 \
    node tests/ui/dashboard.mjs "$url" "$build/ui-screenshots" "$chromium"
rc=$?
[ "$rc" = 0 ] || cat "$log"
if ! stop; then
    echo "ui: the daemon did not exit 0 after SIGTERM"
    echo "[  FAILED  ] 1 test(s), listed below:"
    exit 1
fi
exit $rc
