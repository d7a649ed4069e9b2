#!/bin/sh
# Installs the Debian packages that building, testing and running the project
# need: only those missing, so it is quick and idempotent. Run as root on a
# Debian machine (the Makefile calls it when a dependency is absent).
#
#   sh deploy/install-deps.sh          build, test and run (make, make test, make run)
#   sh deploy/install-deps.sh --bench  the same plus the benchmark-only tools
#                                      (make bench calls this; make test never does)
set -eu

# python3: the README's serving example (python3 -m http.server) and
# the walkthrough test that runs it. openssh-server, slurm*, munge: the real
# test sites (deploy/testbed/) that `make test` starts on loopback addresses;
# none of them is started as a system service here (policy-rc.d below).
# openssl: the certificates of the HTTP client's TLS test (test_http_client)
# libpq-dev: libpq, for the store's PostgreSQL backend (pkg-config libpq).
# postgresql: the server that the tests start themselves, from DIR, as the user
# postgres that the package creates (deploy/testbed/postgres.sh); the package's
# own cluster (15/main, port 5432) is created but not started, and not used.
# groff-base, logrotate: the install test (tests/install/test_install.sh) lints the man
# pages with groff and rotates a log with deploy/logrotate/orchestrator.
# chromium, nodejs, npm: the dashboard's browser test (tests/ui/run.sh), which installs
# playwright-core from the npm registry into the build folder and drives chromium with it
# (Debian's npm package only when there is no npm: a nodejs from elsewhere brings its own).
# jq: the README's curl examples, which the docs check (tests/docs/check_docs.sh) runs.
PACKAGES="build-essential pkg-config clang valgrind zip unzip curl python3 openssl
libyaml-dev libjansson-dev libzip-dev libcurl4-openssl-dev libcmocka-dev libuv1-dev
libsqlite3-dev libh2o-dev libssl-dev libssh2-1-dev libjwt-dev libpq-dev
openssh-client openssh-server slurmctld slurmd slurm-client munge postgresql
groff-base logrotate chromium nodejs jq"

# Benchmark-only tools (tests/bench, docs/performance.md): wrk drives the HTTP
# benches, nginx-light serves the static baseline they compare against, jq
# makes the request bodies. The daemon and the tests never need them.
BENCH_PACKAGES="wrk nginx-light jq"

case "${1:-}" in
"") ;;
--bench) PACKAGES="$PACKAGES $BENCH_PACKAGES" ;;
*)
    echo "usage: install-deps.sh [--bench]" >&2
    exit 2
    ;;
esac

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

command -v npm >/dev/null 2>&1 || missing="$missing npm"

if [ -z "$missing" ]; then
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing packages:$missing; run this script as root" >&2
    exit 1
fi

echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
# nginx-light's package would start a system nginx on port 80: the benches
# start their own on a loopback port, so services are kept from starting while
# it installs (policy-rc.d, honoured by invoke-rc.d and deb-systemd-invoke)
policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >&2
