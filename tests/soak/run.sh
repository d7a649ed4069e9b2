#!/bin/sh
# The long soak of several daemons, on demand (make test runs a short one):
# three daemons on one PostgreSQL (started here unless ORC_TEST_PG_URL is set), 1,000
# deployments on two shared sim clouds, one daemon killed with SIGKILL every 700 ms.
# Environment: BUILD (build/release), SOAK_DEPLOYMENTS (1000), SOAK_KILL_EVERY_MS (700),
# ORCHESTRATORD and PLUGIN_DIR as for make test. See tests/unit/test_soak.c.
set -eu
BUILD=${BUILD:-build/release}
make -s BUILD="$BUILD" all "$BUILD/tests/test_soak"
export ORCHESTRATORD=${ORCHESTRATORD:-$BUILD/bin/orchestratord}
export PLUGIN_DIR=${PLUGIN_DIR:-$BUILD/plugins}
export SOAK_DEPLOYMENTS=${SOAK_DEPLOYMENTS:-1000}
exec "$BUILD/tests/test_soak"
