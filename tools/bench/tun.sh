#!/usr/bin/env bash
# TUN offload benchmark: TCP throughput (iperf3, one flow) between two network
# namespaces joined by tk_bench_tun, a userspace forwarder over two tk_tun
# devices, with plain TUN (one packet per read()/write()) and with the
# virtio-net offloads (TSO frames split on read, segments coalesced on write),
# each without and with per-packet ChaCha20-Poly1305 seal+open (a WireGuard
# pair's crypto work, here on one core).  Medians of --runs; ratios last.
#
# usage: tools/bench/tun.sh [--runs N] [--secs S]     (root; needs iperf3)
# env:   TK_BUILD_DIR (default <repo>/build, Release)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${TK_BUILD_DIR:-$ROOT/build}
RUNS=3 SECS=5
while [ $# -gt 0 ]; do
	case $1 in
	--runs) RUNS=$2; shift 2 ;;
	--secs) SECS=$2; shift 2 ;;
	*) echo "tun.sh: unknown option '$1' (accepted: --runs N --secs S)" >&2; exit 2 ;;
	esac
done
command -v iperf3 >/dev/null || { echo "tun.sh: iperf3 missing: tools/setup.sh installs it" >&2; exit 1; }
cmake --build "$BUILD" --target tk_bench_tun -j"${TK_JOBS:-2}" >/dev/null
FWD=$(find "$BUILD" -name tk_bench_tun -type f -perm -u+x | head -1)
P=tktun$$
NA=${P}a NB=${P}b
FPID=
cleanup() {
	if [ -n "$FPID" ]; then kill "$FPID" 2>/dev/null || true; wait "$FPID" 2>/dev/null || true; FPID=; fi
	for ns in $NA $NB; do
		for pid in $(ip netns pids $ns 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
		ip netns del $ns 2>/dev/null || true
	done
}
trap cleanup EXIT INT TERM

# start <forwarder flags...>: namespaces, forwarder, addresses, a ping.
start() {
	cleanup
	ip netns add $NA; ip netns add $NB
	ip -n $NA link set lo up; ip -n $NB link set lo up
	"$FWD" "$@" $NA $NB >/tmp/$P.fwd 2>&1 &
	FPID=$!
	for _ in $(seq 50); do grep -q ready /tmp/$P.fwd 2>/dev/null && break; sleep 0.1; done
	grep -q ready /tmp/$P.fwd || { cat /tmp/$P.fwd >&2; exit 1; }
	ip -n $NA addr add 10.201.0.1/24 dev tkbenchA; ip -n $NA link set tkbenchA up
	ip -n $NB addr add 10.201.0.2/24 dev tkbenchB; ip -n $NB link set tkbenchB up
	ip netns exec $NA ping -c 2 -i 0.2 -W 2 10.201.0.2 >/dev/null
}

stop_fwd() {
	kill "$FPID"; wait "$FPID" 2>/dev/null || true; FPID=
	sed -n 's/^\([AB] .*\)/    \1/p' /tmp/$P.fwd | sed 's/rx_bad=[0-9]* //'
}

# iperf_once -> Gbit/s
iperf_once() {
	ip netns exec $NB timeout $((SECS + 30)) iperf3 -s -1 -B 10.201.0.2 >/dev/null 2>&1 &
	local srv=$! out=
	for _ in $(seq 50); do # until the server listens
		ip netns exec $NB ss -Hltn 'sport = :5201' | grep -q . && break
		sleep 0.1
	done
	for _ in $(seq 5); do
		out=$(ip netns exec $NA timeout $((SECS + 20)) iperf3 -c 10.201.0.2 -t "$SECS" \
			--connect-timeout 2000 -J 2>/dev/null) && ! grep -q '"error"' <<<"$out" && break
		sleep 0.2
	done
	wait $srv 2>/dev/null || true
	[ -n "$out" ] || { echo "tun.sh: iperf3 failed; forwarder said:" >&2; cat /tmp/$P.fwd >&2; echo 0; return; }
	echo "$out" | python3 -c '
import json, sys
j = json.load(sys.stdin)
if "error" in j or "sum_received" not in j["end"]:
    print("tun.sh: iperf3: %s" % j.get("error", "no result"), file=sys.stderr)
    print("0")
else:
    print("%.3f" % (j["end"]["sum_received"]["bits_per_second"] / 1e9))'
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A RES
for mode in plain offload plain+crypto offload+crypto; do
	flags=()
	case $mode in plain*) flags+=(--plain) ;; esac
	case $mode in *crypto) flags+=(--crypto) ;; esac
	start "${flags[@]}"
	vals=()
	for _ in $(seq "$RUNS"); do vals+=("$(iperf_once)"); done
	RES[$mode]=$(median "${vals[@]}")
	echo "$mode: ${vals[*]} Gbit/s (median ${RES[$mode]})"
	stop_fwd
done
cleanup
rm -f /tmp/$P.fwd
python3 - "${RES[plain]}" "${RES[offload]}" "${RES[plain+crypto]}" "${RES[offload+crypto]}" <<'EOF'
import sys
p, o, pc, oc = map(float, sys.argv[1:])
print("tun forwarder, no crypto:   plain TUN %.2f Gbit/s, offload %.2f Gbit/s, ratio %.2fx" % (p, o, o / p))
print("tun forwarder, with crypto: plain TUN %.2f Gbit/s, offload %.2f Gbit/s, ratio %.2fx" % (pc, oc, oc / pc))
EOF
