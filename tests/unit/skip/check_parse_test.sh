#!/usr/bin/env bash
# tools/check.sh's log parser: skipped ctests and pytest skips are counted as
# skipped, never as passed.
set -u
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
. "$ROOT/tools/check_parse.sh"
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
fail=0
want() { # want <kind> <log> <expected "P F S">
	local got
	got=$(check_parse "$1" "$2")
	if [ "$got" != "$3" ]; then
		echo "FAIL: $1 $(basename "$2"): got '$got', want '$3'"; fail=1
	fi
}
cat > "$t/ctest.log" <<'LOG'
 1/4 Test #1: test_core ........................   Passed    0.10 sec
 2/4 Test #2: test_tun_dev .....................***Skipped   0.01 sec
 3/4 Test #3: test_wg ..........................   Passed    0.20 sec
 4/4 Test #4: test_wgd .........................***Failed    0.30 sec

75% tests passed, 1 tests failed out of 4

Total Test time (real) =   0.61 sec

The following tests did not run:
	  2 - test_tun_dev (Skipped)

The following tests FAILED:
	  4 - test_wgd (Failed)
LOG
want ctest "$t/ctest.log" "2 1 1"
cat > "$t/pytest.log" <<'LOG'
interop: 3 passed (tailkit), 2 passed (Go-only self-tests)
=================== 5 passed, 1 failed, 2 skipped, 1 error in 40.1s ===================
LOG
want pytest "$t/pytest.log" "5 2 2"
[ "$fail" -eq 0 ] && echo "ok: check_parse"
exit $fail
