#!/bin/sh
# The long API load test, on demand (make test runs a short one): LOAD_CLIENTS (500)
# concurrent clients for LOAD_SECONDS (300) creating, watching, reading, listing and
# deleting deployments on one daemon; the daemon's resident memory at the end may exceed
# that after the warm-up by at most LOAD_RSS_GROWTH_PCT (10) percent. With ORC_TEST_PG_URL
# set the daemon's store is on that PostgreSQL server. See tests/unit/test_load.c.
# Environment: BUILD (build/release), ORCHESTRATORD and PLUGIN_DIR as for make test.
set -eu
BUILD=${BUILD:-build/release}
make -s BUILD="$BUILD" all "$BUILD/tests/test_load"
export ORCHESTRATORD="${ORCHESTRATORD:-$BUILD/bin/orchestratord}"
export PLUGIN_DIR="${PLUGIN_DIR:-$BUILD/plugins}"
export LOAD_CLIENTS="${LOAD_CLIENTS:-500}"
export LOAD_SECONDS="${LOAD_SECONDS:-300}"
export LOAD_RSS_GROWTH_PCT="${LOAD_RSS_GROWTH_PCT:-10}"
exec "$BUILD/tests/test_load"
