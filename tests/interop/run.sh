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
timeout "${TK_INTEROP_TIMEOUT:-1200}" python3 -m pytest -p no:cacheprovider -v "$@" .
rc=$?
[ "$rc" -eq 5 ] && { echo "interop: no tests ran" >&2; rc=1; }
left=$(python3 -c 'import netns; print(" ".join(netns.leftovers()))')
procs=$(pgrep -a -f '/interop/bin/(interop-peer|derper|headscale|derpclient)|wireguard-go' || true)
if [ -n "$left" ] || [ -n "$procs" ]; then
	echo "interop: FAILED: left behind: namespaces [$left] processes [$procs]" >&2
	python3 -c 'import netns; netns.sweep(all_runs=True)'
	pkill -9 -f '/interop/bin/(interop-peer|derper|headscale)' || true
	rc=1
fi
exit $rc
