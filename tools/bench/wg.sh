#!/usr/bin/env bash
# WireGuard benchmark: TCP throughput (iperf3, one TCP flow, 10 s) through a
# tunnel between two network namespaces joined by a veth, the same kind on
# both ends, all kinds in one run:
#   wireguard-go-ts  Tailscale's wireguard-go fork as tailscale.com v1.102.3
#                    pins it (TUN and UDP offloads): the primary counterpart
#                    (tests/interop/wggo, built by tools/setup_interop.sh)
#   wireguard-go     Debian's package
#   wgd+tun          standalone wgd, TUN device, configured by wg(8)
#   wgd+bus          the tailkit path: wgd --bus --state, peers from a netmap
#                    (tk-feed), packets over the packet bus to tk-tun
# Rounds are interleaved (round 1 of every kind, then round 2, ...) so that
# noise from other work on the machine spreads over all kinds; medians of
# --runs.  Also the single-core ChaCha20-Poly1305 ceiling (tk_chacha_seal) at 1420
# bytes and tk_wg handshakes/s.  Ratios last.
#
# --base DIR adds the kinds wgd0 and bus0: the same two tailkit paths with
# the binaries of another build tree DIR (an earlier commit, another
# option), so that a change is measured against what it replaces in one run.
#
# usage: tools/bench/wg.sh [--runs N] [--secs S] [--kinds "ts wggo wgd bus"] [--base DIR]
#        (root; needs iperf3, wg, wireguard-go, tools/setup_interop.sh's cache)
# env:   TK_BUILD_DIR (default <repo>/build, Release), TAILKIT_CACHE
set -euo pipefail
umask 077
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${TK_BUILD_DIR:-$ROOT/build}
RUNS=3 SECS=10 KINDS="ts wggo wgd bus" BASE=
WGTS=${TAILKIT_CACHE:-/var/cache/tailkit}/interop/bin/wireguard-go-ts
while [ $# -gt 0 ]; do
	case $1 in
	--runs) RUNS=$2; shift 2 ;;
	--secs) SECS=$2; shift 2 ;;
	--kinds) KINDS=$2; shift 2 ;;
	--base) BASE=$2; KINDS="$KINDS wgd0 bus0"; shift 2 ;;
	*) echo "wg.sh: unknown option '$1' (accepted: --runs N --secs S --kinds \"ts wggo wgd bus\" --base DIR)" >&2; exit 2 ;;
	esac
done
for t in iperf3 wg wireguard-go; do
	command -v $t >/dev/null || { echo "wg.sh: $t missing: tools/setup.sh installs it" >&2; exit 1; }
done
[ -x "$WGTS" ] || { echo "wg.sh: $WGTS missing: run tools/setup_interop.sh" >&2; exit 1; }
cmake --build "$BUILD" --target wgd tk-tun tk-feed tk-status tk_bench_wg -j"${TK_JOBS:-2}" >/dev/null
FEED=$BUILD/tools/feed/tk-feed
STATUS=$BUILD/tools/feed/tk-status
if [ -n "$BASE" ]; then
	for b in wgd/src/wgd tools/tun/tk-tun; do
		[ -x "$BASE/$b" ] || { echo "wg.sh: --base $BASE has no $b" >&2; exit 1; }
	done
fi
# tree <kind>: the build tree whose wgd and tk-tun that kind runs
tree() { case $1 in *0) echo "$BASE" ;; *) echo "$BUILD" ;; esac; }
P=tkb$$
NA=${P}a NB=${P}b
cleanup() {
	for ns in $NA $NB; do
		for pid in $(ip netns pids $ns 2>/dev/null); do kill -9 $pid 2>/dev/null || true; done
		ip netns del $ns 2>/dev/null || true
	done
	rm -rf /tmp/$P.ka /tmp/$P.kb /tmp/$P.d
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

# start_pair <kind>: kind ts, wggo or wgd on both ends, configured by wg(8)
start_pair() {
	setup_ns
	local kind=$1 pa pb
	pa=$(wg pubkey </tmp/$P.ka); pb=$(wg pubkey </tmp/$P.kb)
	for side in a b; do
		local ns=$NA dev=${P}wa
		[ $side = b ] && ns=$NB dev=${P}wb
		case $kind in
		wgd | wgd0) ip netns exec $ns "$(tree $kind)/wgd/src/wgd" $dev 2>/dev/null & ;;
		ts) ip netns exec $ns env WG_PROCESS_FOREGROUND=1 "$WGTS" -f $dev >/dev/null 2>&1 & ;;
		wggo) ip netns exec $ns env WG_PROCESS_FOREGROUND=1 wireguard-go -f $dev >/dev/null 2>&1 & ;;
		esac
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

# start_bus: wgd --bus --state + tk-tun on both ends; each end's peer comes
# from a netmap that tk-feed publishes on its bus (as ctrld will), with an
# allow-all packet filter (tests/interop/test_wgd_bus.py does the same)
start_bus() {
	setup_ns
	local side ns dev d key t
	t=$(tree $1)
	declare -A KEY
	for side in a b; do
		ns=$NA dev=${P}wa d=/tmp/$P.d/$side
		[ $side = b ] && ns=$NB dev=${P}wb
		mkdir -p $d
		ip netns exec $ns "$t/wgd/src/wgd" --bus $d/bus --state $d/state --port 51820 2>/dev/null &
		disown
		for _ in $(seq 100); do [ -S $d/bus/wgd.rpc ] && break; sleep 0.05; done
		ip netns exec $ns "$t/tools/tun/tk-tun" --bus $d/bus $dev 2>/dev/null &
		disown
		for _ in $(seq 100); do ip -n $ns link show $dev >/dev/null 2>&1 && break; sleep 0.05; done
		key=$(for _ in $(seq 50); do "$STATUS" ipc://$d/bus/wgd.rpc 2>/dev/null && break; sleep 0.1; done |
			python3 -c 'import json,sys; print(json.load(sys.stdin)["self"]["key"])')
		KEY[$side]=$key
	done
	ip -n $NA addr add 10.100.0.1/24 dev ${P}wa; ip -n $NA link set ${P}wa up
	ip -n $NB addr add 10.100.0.2/24 dev ${P}wb; ip -n $NB link set ${P}wb up
	for side in a b; do
		local me=1 peer=2 ns=$NA
		[ $side = b ] && me=2 peer=1 ns=$NB
		local other=a; [ $side = a ] && other=b
		d=/tmp/$P.d/$side
		python3 - "${KEY[$side]}" "${KEY[$other]}" $me $peer >$d/netmap.json <<'PY'
import json, sys
me_key, peer_key, me, peer = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
allow = [{"SrcIPs": ["*"], "DstPorts": [{"IP": "*", "Ports": {"First": 0, "Last": 65535}}]}]
print(json.dumps({
    "Node": {"ID": me, "Key": me_key, "Addresses": [f"10.100.0.{me}/32"]},
    "Peers": [{"ID": peer, "Key": peer_key, "Name": f"peer{peer}.",
               "Addresses": [f"10.100.0.{peer}/32"], "AllowedIPs": [f"10.100.0.{peer}/32"],
               "Endpoints": [f"10.99.0.{peer}:51820"]}],
    "PacketFilter": allow}))
PY
		ip netns exec $ns "$FEED" --bus $d/bus $d/netmap.json 2>/dev/null &
		disown
	done
	for _ in $(seq 50); do
		ip netns exec $NA ping -c 1 -W 1 10.100.0.2 >/dev/null 2>&1 && return 0
	done
	echo "wg.sh: the bus pair never passed a ping" >&2
	return 1
}

# iperf_once <server ip> -> "Gbit/s retransmits"
# tunnel_cpu: CPU seconds (user + system, in clock ticks) used so far by the
# tunnel's processes in both namespaces, everything but iperf3
tunnel_cpu() {
	local pid t=0
	for pid in $(ip netns pids $NA) $(ip netns pids $NB); do
		[ "$(cat /proc/$pid/comm 2>/dev/null)" = iperf3 ] && continue
		t=$((t + $(awk '{print $14 + $15}' /proc/$pid/stat 2>/dev/null || echo 0)))
	done
	echo $t
}

# iperf_once <server ip> -> "Gbit/s retransmits cpu-s/GB"; the last is the
# tunnel's CPU time per GB carried: a cost per byte, which the machine's
# other load disturbs far less than throughput
iperf_once() {
	ip netns exec $NB iperf3 -s -1 -B "$1" >/dev/null 2>&1 &
	local srv=$! c0 c1 out
	sleep 0.3
	c0=$(tunnel_cpu)
	out=$(ip netns exec $NA iperf3 -c "$1" -t "$SECS" -J 2>/dev/null)
	c1=$(tunnel_cpu)
	echo "$out" | python3 -c '
import json, os, sys
e = json.load(sys.stdin)["end"]
gb = e["sum_received"]["bytes"] / 1e9
cpu = (int(sys.argv[2]) - int(sys.argv[1])) / os.sysconf("SC_CLK_TCK")
print("%.3f %d %.2f" % (e["sum_received"]["bits_per_second"] / 1e9,
    e["sum_sent"].get("retransmits", 0), cpu / gb if gb else 0))' "$c0" "$c1"
	wait $srv 2>/dev/null || true
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A VALS RTS TP RT CPU CPUM
for _ in $(seq "$RUNS"); do
	for kind in $KINDS; do
		case $kind in bus*) start_bus $kind ;; *) start_pair $kind ;; esac
		read -r g r c < <(iperf_once 10.100.0.2)
		VALS[$kind]+="$g "; RTS[$kind]+="$r "; CPU[$kind]+="$c "
		cleanup
	done
done
for kind in $KINDS; do
	TP[$kind]=$(printf '%s\n' ${VALS[$kind]} | median)
	RT[$kind]=$(printf '%s\n' ${RTS[$kind]} | median)
	CPUM[$kind]=$(printf '%s\n' ${CPU[$kind]} | median)
done
read -r _ ceil _ < <("$BUILD/tools/bench/tk_bench_wg" --runs 5 --secs 1 | grep crypto_ceiling)
read -r _ hs _ < <("$BUILD/tools/bench/tk_bench_wg" --runs 5 --secs 1 | grep handshakes)
declare -A NAME=([ts]="wireguard-go-ts (Tailscale fork)" [wggo]="wireguard-go (Debian)"
	[wgd]="wgd+tun (standalone)" [bus]="wgd+bus+tk-tun (tailkit)"
	[wgd0]="wgd+tun (--base)" [bus0]="wgd+bus+tk-tun (--base)")
echo
echo "WireGuard tunnel, iperf3 one TCP flow, ${SECS} s, median of $RUNS, rounds interleaved (2 namespaces, veth)"
for kind in $KINDS; do
	printf '  %-34s %8s Gbit/s  %6s CPU-s/GB  (retransmits %s; runs %s)\n' "${NAME[$kind]}" "${TP[$kind]}" "${CPUM[$kind]}" "${RT[$kind]}" "${VALS[$kind]% }"
done
printf '  %-34s %8s Gbit/s\n' "tk_chacha_seal 1420 B, 1 core" "$ceil"
printf '  %-34s %8s /s\n' "tk_wg handshakes, 1 core" "$hs"
python3 - "${VALS[ts]:-}" "${VALS[wggo]:-}" "${VALS[wgd]:-}" "${VALS[bus]:-}" "${VALS[wgd0]:-}" "${VALS[bus0]:-}" "$ceil" \
	"${CPU[ts]:-}" "${CPU[wggo]:-}" "${CPU[wgd]:-}" "${CPU[bus]:-}" "${CPU[wgd0]:-}" "${CPU[bus0]:-}" <<'PY'
import statistics, sys
runs = [[float(x) for x in a.split()] for a in sys.argv[1:7]]
ts, wggo, wgd, bus, wgd0, bus0 = runs
ceil = float(sys.argv[7])
cpu = [[float(x) for x in a.split()] for a in sys.argv[8:14]]
cts, cwggo, cwgd, cbus, cwgd0, cbus0 = cpu
def med(v): return statistics.median(v) if v else 0
def r(a, b):
    # ratio of the medians, and the median of the per-round ratios (each
    # round's kinds ran back to back, so they saw about the same load)
    if not a or not b:
        return "       -"
    per = statistics.median(x / y for x, y in zip(a, b))
    return f"{med(a) / med(b):8.2f}x  (per round {per:.2f}x)"
if wgd0:
    print(f"  ratio wgd / wgd --base                {r(wgd, wgd0)}")
    print(f"  ratio wgd-bus / wgd-bus --base        {r(bus, bus0)}")
print(f"  ratio wgd / wireguard-go (Debian)     {r(wgd, wggo)}")
if wgd:
    print(f"  wgd / crypto ceiling                  {med(wgd) / ceil:8.2f}")
# CPU per GB: the counterpart's cost over ours, so > 1 means we are cheaper
if cwgd0:
    print(f"  CPU/GB efficiency wgd vs --base       {r(cwgd0, cwgd)}")
    print(f"  CPU/GB efficiency bus vs --base       {r(cbus0, cbus)}")
print(f"  CPU/GB efficiency wgd vs fork         {r(cts, cwgd)}")
print(f"  CPU/GB efficiency bus vs fork         {r(cts, cbus)}")
print(f"  ratio wgd-bus / fork                  {r(bus, ts)}   (goal >= 2x)")
print(f"  ratio wgd / fork (standalone)         {r(wgd, ts)}   (goal >= 2x)")
PY
