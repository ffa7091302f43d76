#!/usr/bin/env bash
# ctrld map state benchmark: realistic MapResponses of 1,000, 10,000 and
# 100,000 peers and single-peer deltas through tailkit's map state (parse + apply +
# pack the bus delta; pack a snapshot), and Go's encoding/json decode of the
# same bytes into tailcfg.MapResponse (tailscale.com v1.102.3) from the same
# run.  Medians of --runs; ratios last.  Go's figure is the decode alone
# (what controlclient does before applying), ours includes the apply.
# At 100,000 peers also CPU time and peak RSS: ours in a fresh process
# taking the message as ctrld does (one zstd map frame through the frame
# reader and the map state), Go's decoding the JSON once in a fresh
# process.  Goals: <= 0.5 s CPU and <= 2 KiB RSS per peer at 100,000.
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
"$TMP/gomap" "$TMP" rss >>"$TMP/go.txt"

cat "$TMP/c.txt" "$TMP/go.txt" | awk -v runs="$RUNS" '
{ v[$1] = $2 }
function row(label, c, g, unit) {
	if (g == "")
		printf "%-36s %10.2f %-3s %12s %8s\n", label, c, unit, "", ""
	else
		printf "%-36s %10.2f %-3s %10.2f %-3s %6.1fx\n", label, c, unit, g, unit, g / c
}
END {
	printf "ctrld map state, median of %d runs (JSON: %.1f MB for 10,000 peers, %.1f MB for 100,000)\n",
	    runs, v["c_json_10000_bytes"] / 1e6, v["c_json_100000_bytes"] / 1e6
	printf "%-36s %14s %14s %8s\n", "", "tailkit (C)", "Go decode", "Go/C"
	row("full netmap, 1,000 peers", v["c_full_1000_ms"], v["go_full_1000_ms"], "ms")
	row("full netmap, 10,000 peers", v["c_full_10000_ms"], v["go_full_10000_ms"], "ms")
	row("  CPU time, 10,000 peers", v["c_full_10000_cpu_ms"], "", "ms")
	row("same netmap again, 10,000 peers", v["c_refresh_10000_ms"], v["go_full_10000_ms"], "ms")
	row("snapshot pack, 10,000 peers", v["c_snapshot_10000_ms"], "", "ms")
	row("delta PeersChangedPatch, 10k peers", v["c_patch_10000_us"], v["go_patch_10000_us"], "us")
	row("delta PeersChanged 1 node, 10k", v["c_changed_10000_us"], v["go_changed_10000_us"], "us")
	row("full netmap, 100,000 peers", v["c_full_100000_ms"], v["go_full_100000_ms"], "ms")
	row("  CPU time, 100,000 peers", v["c_full_100000_cpu_ms"], v["go_once_100000_cpu_ms"], "ms")
	row("  CPU incl. zstd frame, 100,000", v["c_frame_100000_cpu_ms"], "", "ms")
	cpeak = v["c_rss_100000_peak_kb"] / 1024; gpeak = v["go_rss_100000_peak_kb"] / 1024
	row("peak RSS, 100,000 peers", cpeak, gpeak, "MiB")
	cgrow = (v["c_rss_100000_peak_kb"] - v["c_rss_100000_base_kb"]) * 1024 / 100000 / 1024
	ggrow = (v["go_rss_100000_peak_kb"] - v["go_rss_100000_base_kb"]) * 1024 / 100000 / 1024
	row("  peak growth per peer", cgrow, ggrow, "KiB")
	ckeep = (v["c_rss_100000_after_kb"] - v["c_rss_100000_base_kb"]) / 100000
	row("  kept after the message, per peer", ckeep, "", "KiB")
	printf "(Go base: the 100,000-peer JSON already read, %.0f MiB; ours: before the %.1f MB zstd frame arrives)\n",
	    v["go_rss_100000_base_kb"] / 1024, v["c_zstd_100000_bytes"] / 1e6
	printf "goals: <= 100 ms CPU per 10,000-peer netmap (%s), <= 50 us per delta (%s)\n",
	    v["c_full_10000_cpu_ms"] <= 100 ? "met" : "MISSED",
	    (v["c_patch_10000_us"] <= 50 && v["c_changed_10000_us"] <= 50) ? "met" : "MISSED"
	printf "goals at 100,000 peers: <= 0.5 s CPU (parse+apply %s, with zstd %s), <= 2 KiB RSS per peer (peak %s, kept %s)\n",
	    v["c_full_100000_cpu_ms"] <= 500 ? "met" : "MISSED",
	    v["c_frame_100000_cpu_ms"] <= 500 ? "met" : "MISSED",
	    cgrow <= 2 ? "met" : "MISSED", ckeep <= 2 ? "met" : "MISSED"
}'
