#!/usr/bin/env bash
# Runs the interop pytest suite, then checks that no harness process or
# network namespace outlived it.  pytest's exit 5 (no tests ran) is a failure.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$HERE"
if ! command -v go >/dev/null 2>&1 && [ ! -x "${TAILKIT_CACHE:-/var/cache/tailkit}/interop/bin/interop-peer" ]; then
	echo "interop: go is not installed and the harness is not built; run tools/setup_interop.sh" >&2
	exit 1
fi
python3 -c 'import netns; netns.sweep()' # leftovers of killed earlier runs
# Everything this run starts inherits TK_INTEROP_RUN, and its namespaces
# carry pytest's pid: the leftover check and the clean-up touch this run's
# own processes and namespaces only, never a parallel run's.
export TK_INTEROP_RUN="$$-$(date +%s%N)"
timeout "${TK_INTEROP_TIMEOUT:-2400}" python3 -m pytest -p no:cacheprovider -v --durations=15 "$@" . &
PYPID=$!
# `timeout` forks pytest: its child is the process that names namespaces
sleep 1
PYTEST_PID=$(pgrep -P "$PYPID" -f pytest | head -1)
wait "$PYPID"
rc=$?
[ "$rc" -eq 5 ] && { echo "interop: no tests ran" >&2; rc=1; }
left=$(python3 -c "import netns; print(' '.join(netns.leftovers('${PYTEST_PID:-none}')))")
procs=$(python3 -c "import netns; print('; '.join(f'{p} {c}' for p, c in netns.run_procs('$TK_INTEROP_RUN')))")
if [ -n "$left" ] || [ -n "$procs" ]; then
	echo "interop: FAILED: left behind: namespaces [$left] processes [$procs]" >&2
	[ -n "${PYTEST_PID:-}" ] && python3 -c "import netns; netns.sweep_pid('$PYTEST_PID')"
	python3 -c "
import os, signal, netns
for p, _ in netns.run_procs('$TK_INTEROP_RUN'):
    try:
        os.kill(p, signal.SIGKILL)
    except ProcessLookupError:
        pass"
	rc=1
fi
exit $rc
