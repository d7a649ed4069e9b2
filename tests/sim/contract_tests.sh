#!/bin/sh
# The cloud simulators' contract tests (tests/sim/test_*.py, Python's unittest), run by
# `make test` through tests/run.sh like a test binary: prints the summary lines that
# tests/run.sh counts ("[  PASSED  ] N test(s)." and "[  FAILED  ] N test(s), ...").
set -u
cd "$(dirname "$0")/../.." || exit 1
out=$(mktemp)
python3 -m unittest discover -s tests/sim -p 'test_*.py' -v >"$out" 2>&1
rc=$?
cat "$out"
ran=$(sed -n 's/^Ran \([0-9]*\) test.*/\1/p' "$out" | tail -n 1)
bad=$(grep -cE '^(FAIL|ERROR): ' "$out")
rm -f "$out"
ran=${ran:-0}
echo "[  PASSED  ] $((ran - bad)) test(s)."
if [ "$bad" -gt 0 ] || [ "$rc" != 0 ]; then
    [ "$bad" -gt 0 ] || bad=1
    echo "[  FAILED  ] $bad test(s), listed below:"
    exit 1
fi
exit 0
