#!/usr/bin/env bash
# ctrld map state benchmark: realistic MapResponses of 1,000 and 10,000
# peers and single-peer deltas through tailkit's map state (parse + apply +
# pack the bus delta; pack a snapshot), and Go's encoding/json decode of the
# same bytes into tailcfg.MapResponse (tailscale.com v1.102.3) from the same
# run.  Medians of --runs; ratios last.  Go's figure is the decode alone
# (what controlclient does before applying), ours includes the apply.
#
# usage: tools/bench/ctrld_map.sh [--runs N]
# env:   TK_BUILD_DIR (default <repo>/build, Release)
set -euo pipefail
umask 077
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${TK_BUILD_DIR:-$ROOT/build}
RUNS=7
while [ $# -gt 0 ]; do
	case $1 in
	--runs) RUNS=$2; shift 2 ;;
	*) echo "ctrld_map.sh: unknown option '$1' (accepted: --runs N)" >&2; exit 2 ;;
	esac
done
case $RUNS in ''|*[!0-9]*) echo "ctrld_map.sh: --runs takes a number" >&2; exit 2 ;; esac
command -v go >/dev/null || { echo "ctrld_map.sh: go missing (the Go side needs a Go toolchain)" >&2; exit 1; }
cmake --build "$BUILD" --target tk_bench_ctrld_map >/dev/null
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM

"$BUILD/tools/bench/tk_bench_ctrld_map" --runs "$RUNS" --out "$TMP" >"$TMP/c.txt"
(cd "$ROOT/tools/bench/gomap" &&
	GOTOOLCHAIN=local GOFLAGS=-mod=mod go build -o "$TMP/gomap" .)
"$TMP/gomap" "$TMP" "$RUNS" >"$TMP/go.txt"

cat "$TMP/c.txt" "$TMP/go.txt" | awk -v runs="$RUNS" '
{ v[$1] = $2 }
function row(label, c, g, unit) {
	if (g == "")
		printf "%-36s %10.2f %-3s %12s %8s\n", label, c, unit, "", ""
	else
		printf "%-36s %10.2f %-3s %10.2f %-3s %6.1fx\n", label, c, unit, g, unit, g / c
}
END {
	printf "ctrld map state, median of %d runs (JSON: %.1f MB for 10,000 peers)\n",
	    runs, v["c_json_10000_bytes"] / 1e6
	printf "%-36s %14s %14s %8s\n", "", "tailkit (C)", "Go decode", "Go/C"
	row("full netmap, 1,000 peers", v["c_full_1000_ms"], v["go_full_1000_ms"], "ms")
	row("full netmap, 10,000 peers", v["c_full_10000_ms"], v["go_full_10000_ms"], "ms")
	row("  CPU time, 10,000 peers", v["c_full_10000_cpu_ms"], "", "ms")
	row("same netmap again, 10,000 peers", v["c_refresh_10000_ms"], v["go_full_10000_ms"], "ms")
	row("snapshot pack, 10,000 peers", v["c_snapshot_10000_ms"], "", "ms")
	row("delta PeersChangedPatch, 10k peers", v["c_patch_10000_us"], v["go_patch_10000_us"], "us")
	row("delta PeersChanged 1 node, 10k", v["c_changed_10000_us"], v["go_changed_10000_us"], "us")
	printf "goals: <= 100 ms CPU per 10,000-peer netmap (%s), <= 50 us per delta (%s)\n",
	    v["c_full_10000_cpu_ms"] <= 100 ? "met" : "MISSED",
	    (v["c_patch_10000_us"] <= 50 && v["c_changed_10000_us"] <= 50) ? "met" : "MISSED"
}'
