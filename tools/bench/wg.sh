#!/usr/bin/env bash
# WireGuard benchmark: TCP throughput (iperf3, one flow, 10 s) through a
# tunnel between two network namespaces, wgd+TUN on both ends vs Debian's
# wireguard-go on both ends, in one run; the single-core libsodium
# ChaCha20-Poly1305 ceiling at 1420 bytes; tk_wg handshakes/s on one core.
# Medians of --runs; ratios last.
#
# usage: tools/bench/wg.sh [--runs N] [--secs S]      (root; needs iperf3, wg, wireguard-go)
# env:   TK_BUILD_DIR (default <repo>/build, Release)
set -euo pipefail
umask 077
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${TK_BUILD_DIR:-$ROOT/build}
RUNS=3 SECS=10
while [ $# -gt 0 ]; do
	case $1 in
	--runs) RUNS=$2; shift 2 ;;
	--secs) SECS=$2; shift 2 ;;
	*) echo "wg.sh: unknown option '$1' (accepted: --runs N --secs S)" >&2; exit 2 ;;
	esac
done
for t in iperf3 wg wireguard-go; do
	command -v $t >/dev/null || { echo "wg.sh: $t missing: tools/setup.sh installs it" >&2; exit 1; }
done
cmake --build "$BUILD" --target wgd tk_bench_wg -j"${TK_JOBS:-2}" >/dev/null
WGD=$BUILD/wgd/src/wgd
P=tkb$$
NA=${P}a NB=${P}b
cleanup() {
	for ns in $NA $NB; do
		for pid in $(ip netns pids $ns 2>/dev/null); do kill -9 $pid 2>/dev/null || true; done
		ip netns del $ns 2>/dev/null || true
	done
	rm -f /tmp/$P.ka /tmp/$P.kb
}
trap cleanup EXIT INT TERM

setup_ns() {
	cleanup
	ip netns add $NA; ip netns add $NB
	ip link add ${P}x netns $NA type veth peer name ${P}y netns $NB
	ip -n $NA addr add 10.99.0.1/24 dev ${P}x; ip -n $NA link set ${P}x up; ip -n $NA link set lo up
	ip -n $NB addr add 10.99.0.2/24 dev ${P}y; ip -n $NB link set ${P}y up; ip -n $NB link set lo up
	wg genkey >/tmp/$P.ka; wg genkey >/tmp/$P.kb; chmod 600 /tmp/$P.ka /tmp/$P.kb
}

# start_pair <kind>: kind wgd or wggo on both ends
start_pair() {
	setup_ns
	local kind=$1 pa pb
	pa=$(wg pubkey </tmp/$P.ka); pb=$(wg pubkey </tmp/$P.kb)
	for side in a b; do
		local ns=$NA dev=${P}wa
		[ $side = b ] && ns=$NB dev=${P}wb
		if [ $kind = wgd ]; then
			ip netns exec $ns "$WGD" $dev 2>/dev/null &
		else
			ip netns exec $ns env WG_PROCESS_FOREGROUND=1 wireguard-go -f $dev >/dev/null 2>&1 &
		fi
		disown
	done
	for _ in $(seq 50); do
		ip netns exec $NA wg show ${P}wa >/dev/null 2>&1 && ip netns exec $NB wg show ${P}wb >/dev/null 2>&1 && break
		sleep 0.1
	done
	ip netns exec $NA wg set ${P}wa private-key /tmp/$P.ka listen-port 51820 peer "$pb" allowed-ips 10.100.0.2/32 endpoint 10.99.0.2:51820
	ip netns exec $NB wg set ${P}wb private-key /tmp/$P.kb listen-port 51820 peer "$pa" allowed-ips 10.100.0.1/32 endpoint 10.99.0.1:51820
	ip -n $NA addr add 10.100.0.1/24 dev ${P}wa; ip -n $NA link set ${P}wa up
	ip -n $NB addr add 10.100.0.2/24 dev ${P}wb; ip -n $NB link set ${P}wb up
	ip netns exec $NA ping -c 2 -W 2 10.100.0.2 >/dev/null
}

# iperf_once <server ip> -> "Gbit/s retransmits"
iperf_once() {
	ip netns exec $NB iperf3 -s -1 -B "$1" >/dev/null 2>&1 &
	local srv=$!
	sleep 0.3
	ip netns exec $NA iperf3 -c "$1" -t "$SECS" -J 2>/dev/null | python3 -c '
import json, sys
e = json.load(sys.stdin)["end"]
print("%.3f %d" % (e["sum_received"]["bits_per_second"] / 1e9, e["sum_sent"].get("retransmits", 0)))'
	wait $srv 2>/dev/null || true
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A TP RT
for kind in wggo wgd; do
	start_pair $kind
	vals=() rts=()
	for _ in $(seq "$RUNS"); do
		read -r g r < <(iperf_once 10.100.0.2)
		vals+=("$g"); rts+=("$r")
	done
	TP[$kind]=$(printf '%s\n' "${vals[@]}" | median)
	RT[$kind]=$(printf '%s\n' "${rts[@]}" | median)
	cleanup
done
read -r _ ceil _ < <("$BUILD/tools/bench/tk_bench_wg" --runs 5 --secs 1 | grep crypto_ceiling)
read -r _ hs _ < <("$BUILD/tools/bench/tk_bench_wg" --runs 5 --secs 1 | grep handshakes)
echo
echo "WireGuard tunnel, iperf3 one TCP flow, ${SECS} s, median of $RUNS (2 namespaces, veth)"
printf '  %-34s %8s Gbit/s  (retransmits %s)\n' "wireguard-go <-> wireguard-go" "${TP[wggo]}" "${RT[wggo]}"
printf '  %-34s %8s Gbit/s  (retransmits %s)\n' "wgd+tun <-> wgd+tun" "${TP[wgd]}" "${RT[wgd]}"
printf '  %-34s %8s Gbit/s\n' "ChaCha20-Poly1305 1420 B, 1 core" "$ceil"
printf '  %-34s %8s /s\n' "tk_wg handshakes, 1 core" "$hs"
python3 - "${TP[wgd]}" "${TP[wggo]}" "$ceil" <<'PY'
import sys
wgd, wggo, ceil = map(float, sys.argv[1:])
print(f"  ratio wgd / wireguard-go           {wgd / wggo:8.2f}x   (goal >= 3x)")
print(f"  wgd / crypto ceiling               {wgd / ceil:8.2f}")
PY
