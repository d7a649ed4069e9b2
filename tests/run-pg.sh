#!/bin/sh
# Runs test binaries again with every daemon on PostgreSQL: starts a real server
# (deploy/testbed/postgres.sh, in a temporary directory, on a loopback port), exports
# ORC_TEST_PG_URL, whose daemons the test fixture (tests/unit/daemon_fixture.h) gives
# each a database of its own, runs tests/run.sh with the arguments, stops the server.
# Exits with run.sh's status (1 if the server does not start).
set -u
dir=$(mktemp -d /tmp/orc-tb-pg-XXXXXX)
log="$dir.log"
if ! sh deploy/testbed/postgres.sh start "$dir" >"$log" 2>&1; then
    cat "$log"
    echo "run-pg.sh: the PostgreSQL testbed did not start"
    rm -f "$log"
    exit 1
fi
. "$dir/postgres.env"
echo "run-pg.sh: the tests below run on PostgreSQL ($PG_URL)"
ORC_TEST_PG_URL=$PG_URL sh tests/run.sh "$@"
rc=$?
sh deploy/testbed/postgres.sh stop "$dir" >>"$log" 2>&1 || cat "$log"
rm -f "$log"
exit $rc
