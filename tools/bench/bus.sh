#!/usr/bin/env bash
# Bus benchmark: builds tk_bench_bus (Release) if needed, then runs it.
# One run prints packets/s and Gbit/s for 1420-byte packets over inproc://
# and ipc:// pair1 (one packet per message vs ~64 KiB batches) and the raw
# AF_UNIX SOCK_SEQPACKET ceiling; medians of several runs; ratios last.
#
# usage: tools/bench/bus.sh [tk_bench_bus options: --runs N --secs S --size B]
# env:   TK_BUILD_DIR (default: <repo>/build, the Release tree of setup.sh)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${TK_BUILD_DIR:-$ROOT/build}

if [ ! -f "$BUILD/build.ninja" ]; then
	echo "bus.sh: configuring $BUILD (Release)" >&2
	cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
		-DTK_WERROR=ON >/dev/null
fi
type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD/CMakeCache.txt")
if [ "$type" != Release ]; then
	echo "bus.sh: warning: $BUILD is a '$type' build, figures will be low" >&2
fi
if grep -q '^TK_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt"; then
	echo "bus.sh: warning: $BUILD has sanitizers on, figures will be low" >&2
fi
# Only the benchmark and what it links: other targets may be mid-change.
ninja -C "$BUILD" -j"${TK_JOBS:-2}" tk_bench_bus >/dev/null
exec "$BUILD/tools/bench/tk_bench_bus" "$@"
