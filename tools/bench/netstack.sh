#!/usr/bin/env bash
# netstackd benchmark: one TCP flow kernel -> netstackd vs kernel -> kernel
# (tk-tun at both ends) through wgd, and the other way, in the same run;
# connections/s; RSS of netstackd idle and with open connections.  Medians;
# ratios last.
#
# usage: tools/bench/netstack.sh [--runs N] [--secs S] [--conns N]   (root)
# env:   TK_BUILD_DIR (default <repo>/build, Release)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${TK_BUILD_DIR:-$ROOT/build}
RUNS=3 SECS=5 CONNS=500
while [ $# -gt 0 ]; do
	case $1 in
	--runs) RUNS=$2; shift 2 ;;
	--secs) SECS=$2; shift 2 ;;
	--conns) CONNS=$2; shift 2 ;;
	*) echo "netstack.sh: unknown option '$1' (accepted: --runs N --secs S --conns N)" >&2; exit 2 ;;
	esac
done
cmake --build "$BUILD" --target netstackd tk-ns wgd tk-tun tk-feed tk-status -j"${TK_JOBS:-2}" >/dev/null
[ -x "$BUILD/netstackd/netstackd" ] || { echo "netstack.sh: netstackd not built (no lwIP source: run tools/setup.sh)" >&2; exit 1; }
export RUNS SECS CONNS
exec timeout 1800 python3 "$ROOT/tools/bench/netstack.py"
