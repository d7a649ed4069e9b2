#!/bin/sh
# Runs test binaries one by one, each in its own process with a time limit,
# and prints one summary line: "N passed, N failed". Exits non-zero on any
# failure. cmocka's own per-test lines are shown as they come.
# Environment: CORPUS (the shared TOSCA corpus), TEST_TIMEOUT (s, default 600),
# VALGRIND=1 to run each binary under valgrind.
set -u
timeout_s=${TEST_TIMEOUT:-600}
passed=0
failed=0
failed_names=""
for bin in "$@"; do
    name=$(basename "$bin")
    out=$(mktemp)
    if [ "${VALGRIND:-0}" = 1 ]; then
        runner="valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect"
    else
        runner=""
    fi
    CMOCKA_MESSAGE_OUTPUT=stdout timeout "$timeout_s" $runner "$bin" >"$out" 2>&1
    rc=$?
    cat "$out"
    # cmocka prints "[  PASSED  ] N test(s)." and "[  FAILED  ] N test(s), listed below:"
    # once per group (test_store runs two: SQLite, then PostgreSQL)
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$out" | awk '{ s += $1 } END { print s + 0 }')
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$out" | awk '{ s += $1 } END { print s + 0 }')
    passed=$((passed + ${p:-0}))
    if [ "$rc" != 0 ] && [ "${f:-0}" = 0 ]; then
        f=1 # crashed, timed out or valgrind error: count the binary as one failure
        echo "$name: exited with status $rc"
    fi
    failed=$((failed + ${f:-0}))
    [ "$rc" != 0 ] && failed_names="$failed_names $name"
    rm -f "$out"
done
[ -n "$failed_names" ] && echo "failing test programs:$failed_names"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
