#!/usr/bin/env bash
# The main job: a local tailnet demo, all on 127.0.0.1.
#
# Today (no tailkit node exists yet) it starts the tailnet a tailkit node will
# join: Tailscale's own control server (testcontrol), DERP relay and STUN
# server, and two Go tsnet nodes, then shows traffic crossing it (TCP and UDP
# echo, HTTP, a third node joining live) and stops everything.  It says
# plainly that no tailkit node is part of it.
#
# Installs what it needs (tools/setup.sh; idempotent).  TK_SKIP_SETUP=1 skips
# that step.  Bounded: everything stops by itself within a few minutes.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
if [ "${TK_SKIP_SETUP:-0}" != 1 ]; then
	tools/setup.sh --no-build
fi
BIN=${TAILKIT_CACHE:-/var/cache/tailkit}/interop/bin
if [ ! -x "$BIN/interop-peer" ]; then
	echo "demo: $BIN/interop-peer is missing: tools/setup_interop.sh builds it (needs go)" >&2
	exit 1
fi

WORK=$(mktemp -d /tmp/tk-demo.XXXXXX)
PEER_PID=
cleanup() {
	[ -n "$PEER_PID" ] && kill "$PEER_PID" 2>/dev/null && wait "$PEER_PID" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

echo "demo: starting Tailscale's testcontrol + DERP + STUN and two Go tsnet nodes on 127.0.0.1"
timeout 300 "$BIN/interop-peer" -nodes 2 >"$WORK/info.json" 2>"$WORK/peer.log" &
PEER_PID=$!
for _ in $(seq 120); do
	[ -s "$WORK/info.json" ] && break
	kill -0 "$PEER_PID" 2>/dev/null || { cat "$WORK/peer.log" >&2; exit 1; }
	sleep 0.5
done
[ -s "$WORK/info.json" ] || { echo "demo: the tailnet did not come up in 60 s" >&2; exit 1; }

python3 - "$WORK/info.json" <<'EOF'
import json, sys, urllib.request

info = json.loads(open(sys.argv[1]).readline())
admin = info["admin_url"]

def call(method, path, body=None):
    req = urllib.request.Request(admin + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())

print(f"  control  {info['control_url']}   (ts2021, pre-auth key {info['auth_key'][:16]}…)")
print(f"  DERP     {info['derp_url']}   STUN {info['stun']}")
for n in info["nodes"]:
    print(f"  node     {n['name']:4} {' '.join(n['ips'])}  {n['node_key'][:24]}…")
ok = True
def show(what, r, want):
    global ok
    good = r.get("ok") and r.get("reply") == want
    ok &= bool(good)
    print(f"  {'ok  ' if good else 'FAIL'} {what:42} {r.get('ms', '?')} ms  {r.get('error', '')}")

go2 = next(n for n in info["nodes"] if n["name"] == "go2")
for ip in go2["ips"]:
    host = f"[{ip}]" if ":" in ip else ip
    show(f"go1 -> go2 TCP echo {ip}", call("POST", "/dial", {"from": "go1", "network": "tcp",
         "addr": f"{host}:7", "payload": "hello over the tailnet"}), "hello over the tailnet")
    show(f"go1 -> go2 UDP echo {ip}", call("POST", "/dial", {"from": "go1", "network": "udp",
         "addr": f"{host}:7", "payload": "udp hello"}), "udp hello")
show("go1 -> go2 HTTP", call("POST", "/dial", {"from": "go1", "network": "http",
     "addr": f"{go2['ips'][0]}:80"}), "go2")
go3 = call("POST", "/nodes", {"name": "go3"})
print(f"  node     go3  {' '.join(go3['ips'])}  joined live")
show("go1 -> go3 TCP echo", call("POST", "/dial", {"from": "go1", "network": "tcp",
     "addr": f"{go3['ips'][0]}:7", "payload": "welcome"}), "welcome")
peer = next(p for p in call("GET", "/nodes/go1/netmap")["Peer"].values() if p["HostName"] == "go2")
print(f"  path     go1 -> go2: {'direct ' + peer['CurAddr'] if peer.get('CurAddr') else 'DERP ' + str(peer.get('Relay'))}")
print()
print("demo: NOTE: every node above is Go (Tailscale's tsnet). No tailkit node is in this demo")
print("      yet: ctrld, wgd, derpd and netstackd are still being built (see README, Status).")
sys.exit(0 if ok else 1)
EOF
