#!/usr/bin/env bash
# DERP relay benchmark: the same load generator (tk_bench_derp: P sender ->
# receiver pairs, S-byte packets) against Go's derper and tailkit's derpd,
# both plain HTTP on 127.0.0.1, in one run, two ways:
#   closed loop: each sender keeps at most --window packets in flight (no
#                drops: the relay's forwarding rate);
#   open loop:   senders write as fast as the sockets take them (overload:
#                what still arrives, the rest the relay drops).
# Figures are packets/s and Gbit/s *received*; medians of --runs; the ratios
# (derpd / derper) last.  On a shared 2-core machine the load generator
# competes with the server for CPU: compare the ratio, not the absolutes.
#
# Then, at the same offered loads for both (from derper's saturation S):
# relay latency p50/p99 at S/2 and the delivered fraction at 2S; and the
# memory per idle client: each server's RSS growth with --idle handshaken,
# silent clients connected (goal: <= 16 KiB).
#
# usage: tools/bench/derp.sh [--runs N] [--secs S] [--pairs P] [--size BYTES] [--window W] [--idle N]
# env:   TK_BUILD_DIR (default <repo>/build, Release), TAILKIT_CACHE
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${TK_BUILD_DIR:-$ROOT/build}
DERPER=${TAILKIT_CACHE:-/var/cache/tailkit}/interop/bin/derper
RUNS=3 SECS=5 PAIRS=4 SIZE=1200 WINDOW=16 IDLE=1000
while [ $# -gt 0 ]; do
	case $1 in
	--runs) RUNS=$2; shift 2 ;;
	--secs) SECS=$2; shift 2 ;;
	--pairs) PAIRS=$2; shift 2 ;;
	--size) SIZE=$2; shift 2 ;;
	--window) WINDOW=$2; shift 2 ;;
	--idle) IDLE=$2; shift 2 ;;
	*) echo "derp.sh: unknown option '$1' (accepted: --runs N --secs S --pairs P --size BYTES --window W --idle N)" >&2; exit 2 ;;
	esac
done
[ -x "$DERPER" ] || { echo "derp.sh: $DERPER missing: run tools/setup_interop.sh" >&2; exit 1; }
cmake --build "$BUILD" --target derpd tk_bench_derp -j"${TK_JOBS:-2}" >/dev/null
DERPD=$BUILD/derpd/src/derpd
LOAD=$BUILD/tools/bench/tk_bench_derp
TMP=$(mktemp -d /tmp/tk-bench-derp.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_port() {
	for _ in $(seq 100); do
		(exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0
		sleep 0.1
	done
	echo "derp.sh: nothing on port $1" >&2
	exit 1
}

ulimit -n 65536 2>/dev/null || ulimit -n 8192 2>/dev/null || true
GP=$(free_port)
"$DERPER" -a 127.0.0.1:$GP -http-port -1 -stun=false -c "$TMP/derper.json" >"$TMP/derper.log" 2>&1 &
PIDS+=($!)
DP=$(free_port)
"$DERPD" server -a 127.0.0.1:$DP --http-port -1 --stun-port -1 --state "$TMP/derpd" >"$TMP/derpd.log" 2>&1 &
PIDS+=($!)
wait_port $GP
wait_port $DP

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A PPS GBPS
for mode in closed open; do
	w=0
	[ $mode = closed ] && w=$WINDOW
	for name in derper derpd; do
		port=$GP
		[ $name = derpd ] && port=$DP
		out=()
		for _ in $(seq "$RUNS"); do
			out+=("$("$LOAD" "$port" --pairs "$PAIRS" --size "$SIZE" --secs "$SECS" --window $w)")
		done
		PPS[$mode$name]=$(printf '%s\n' "${out[@]}" | python3 -c 'import sys,json;[print(json.loads(l)["pps"]) for l in sys.stdin]' | median)
		GBPS[$mode$name]=$(printf '%s\n' "${out[@]}" | python3 -c 'import sys,json;[print(json.loads(l)["gbps"]) for l in sys.stdin]' | median)
	done
done
echo "DERP relay, $PAIRS pairs, $SIZE-byte packets, ${SECS}s x $RUNS runs (median), plain HTTP on loopback, $(nproc) cores shared with the load generator"
for mode in closed open; do
	label="closed loop, window $WINDOW"
	[ $mode = open ] && label="open loop (overload)"
	echo " $label:"
	printf '  %-22s %12s pkt/s  %8s Gbit/s\n' "Go derper (v1.102.3)" "${PPS[${mode}derper]}" "${GBPS[${mode}derper]}"
	printf '  %-22s %12s pkt/s  %8s Gbit/s\n' "tailkit derpd" "${PPS[${mode}derpd]}" "${GBPS[${mode}derpd]}"
done
# the same offered loads for both, from derper's saturation S (its closed-
# loop rate): p50/p99 relay latency at S/2, delivered fraction at 2 S
SAT=${PPS[closedderper]}
declare -A LAT50 LAT99 FRAC SENTR
for name in derper derpd; do
	port=$GP
	[ $name = derpd ] && port=$DP
	half=$("$LOAD" "$port" --pairs "$PAIRS" --size "$SIZE" --secs "$SECS" \
		--rate "$(python3 -c "print($SAT / 2)")")
	LAT50[$name]=$(python3 -c "import json;print(json.loads('$half')['p50_us'])")
	LAT99[$name]=$(python3 -c "import json;print(json.loads('$half')['p99_us'])")
	over=$("$LOAD" "$port" --pairs "$PAIRS" --size "$SIZE" --secs "$SECS" \
		--rate "$(python3 -c "print($SAT * 2)")")
	FRAC[$name]=$(python3 -c "import json;print(json.loads('$over')['fraction'])")
	SENTR[$name]=$(python3 -c "import json;d=json.loads('$over');print(round(d['sent']/d['secs']))")
done
echo " the same offered load for both (derper's saturation S = $SAT pkt/s):"
printf '  %-22s p50 %9s us  p99 %9s us at S/2;  delivered %s at 2S (offered %s pkt/s)\n' \
	"Go derper (v1.102.3)" "${LAT50[derper]}" "${LAT99[derper]}" "${FRAC[derper]}" "${SENTR[derper]}"
printf '  %-22s p50 %9s us  p99 %9s us at S/2;  delivered %s at 2S (offered %s pkt/s)\n' \
	"tailkit derpd" "${LAT50[derpd]}" "${LAT99[derpd]}" "${FRAC[derpd]}" "${SENTR[derpd]}"

# memory per idle client: RSS of each server before and while --idle
# clients are connected (handshaken, silent)
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
declare -A PERIDLE
for name in derper derpd; do
	port=$GP pid=${PIDS[0]}
	[ $name = derpd ] && port=$DP pid=${PIDS[1]}
	before=$(rss_kib "$pid")
	"$LOAD" "$port" --idle "$IDLE" --hold 3 >"$TMP/idle.out" &
	lp=$!
	for _ in $(seq 600); do grep -q idle "$TMP/idle.out" 2>/dev/null && break; sleep 0.1; done
	sleep 1
	after=$(rss_kib "$pid")
	wait $lp || true
	PERIDLE[$name]=$(python3 -c "print('%.1f' % (max($after - $before, 0) / $IDLE))")
done
echo " memory per idle client ($IDLE idle clients, RSS growth of the server process):"
printf '  %-22s %8s KiB\n' "Go derper (v1.102.3)" "${PERIDLE[derper]}"
printf '  %-22s %8s KiB\n' "tailkit derpd" "${PERIDLE[derpd]}"
for mode in closed open; do
	python3 -c "print('  ratio derpd/derper, $mode loop: %.2f' % (${PPS[${mode}derpd]} / max(${PPS[${mode}derper]}, 1)))"
done
python3 -c "print('  ratio derpd/derper, p99 latency at S/2: %.2f' % (${LAT99[derpd]} / max(${LAT99[derper]}, 0.1)))"
python3 -c "print('  ratio derpd/derper, delivered fraction at 2S: %.2f' % (${FRAC[derpd]} / max(${FRAC[derper]}, 0.0001)))"
python3 -c "print('  ratio derpd/derper, memory per idle client: %.2f' % (${PERIDLE[derpd]} / max(${PERIDLE[derper]}, 0.1)))"
