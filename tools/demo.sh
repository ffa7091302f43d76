#!/usr/bin/env bash
# The main job: a local tailnet demo, all on 127.0.0.1.
#
# It starts a tailnet of Tailscale's own control server (testcontrol), with
# tailkit's derpd as its DERP relay and STUN server, and two Go tsnet nodes,
# shows traffic crossing it
# (TCP and UDP echo, HTTP, a third node joining live), then brings in
# a tailkit node: ctrld (control client), wgd (WireGuard) and derpd (the DERP
# path) on one bus directory, with tk-tun giving the node's tailnet address
# to the kernel in a network namespace.  The kernel's ping and TCP then cross
# WireGuard and Tailscale's DERP relay to the Go nodes and back.  Last, a
# second tailkit node in one process (tailkitd, with netstackd: no TUN, no
# root) serves and fetches pages through its local API.  It says plainly
# what is not there yet (direct paths need disco).
#
# Installs what it needs (tools/setup.sh; idempotent).  TK_SKIP_SETUP=1 skips
# that step.  Bounded: everything stops by itself within a few minutes.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
if [ "${TK_SKIP_SETUP:-0}" != 1 ]; then
	tools/setup.sh --release-only
fi
BIN=${TAILKIT_CACHE:-/var/cache/tailkit}/interop/bin
if [ ! -x "$BIN/interop-peer" ]; then
	echo "demo: $BIN/interop-peer is missing: tools/setup_interop.sh builds it (needs go)" >&2
	exit 1
fi

WORK=$(mktemp -d /tmp/tk-demo.XXXXXX)
PEER_PID= WGD_PID= CTRLD_PID= DERPD_PID= TUN_PID= NODE2_PID= DERPSRV_PID=
NS=tkdemo$$
cleanup() {
	for p in $NODE2_PID $TUN_PID $CTRLD_PID $DERPD_PID $WGD_PID $PEER_PID $DERPSRV_PID; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

B=$ROOT/build
for x in derpd/src/derpd; do
	[ -x "$B/$x" ] || { echo "demo: $B/$x is missing: tools/setup.sh builds it" >&2; exit 1; }
done
read -r DP SP < <(python3 -c '
import socket
t = socket.socket(); t.bind(("127.0.0.1", 0))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0))
print(t.getsockname()[1], u.getsockname()[1])')
echo "demo: tailkit's derpd as the tailnet's DERP relay and STUN server (127.0.0.1:$DP, STUN $SP)"
"$B/derpd/src/derpd" server -a "127.0.0.1:$DP" -http-port -1 -stun-port "$SP" \
	--state "$WORK/derpd-server" >"$WORK/derpd-server.log" 2>&1 &
DERPSRV_PID=$!
for _ in $(seq 50); do
	python3 -c "import socket,sys;socket.create_connection(('127.0.0.1',$DP),1)" 2>/dev/null && break
	sleep 0.1
done
echo "demo: starting Tailscale's testcontrol and two Go tsnet nodes on 127.0.0.1"
timeout 300 "$BIN/interop-peer" -nodes 2 -derp "127.0.0.1:$DP" -derp-stun-port "$SP" -derp-http \
	>"$WORK/info.json" 2>"$WORK/peer.log" &
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
print(f"  DERP     {info['derp_url']}   STUN {info['stun']}   (tailkit derpd)")
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
sys.exit(0 if ok else 1)
EOF

for x in wgd/src/wgd ctrld/ctrld derpd/src/derpd tools/tun/tk-tun tools/feed/tk-status tools/feed/tk-snapshot; do
	[ -x "$B/$x" ] || { echo "demo: $B/$x is missing: tools/setup.sh builds it" >&2; exit 1; }
done
echo
echo "demo: a tailkit node joins: ctrld (control), wgd (WireGuard), derpd (DERP path) on one bus"
URL=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["control_url"])' "$WORK/info.json")
KEY=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["auth_key"])' "$WORK/info.json")
"$B/wgd/src/wgd" --bus "$WORK/bus" --state "$WORK/wgd" --no-uapi >"$WORK/wgd.log" 2>&1 &
WGD_PID=$!
"$B/derpd/src/derpd" client --bus "$WORK/bus" --derp-http >"$WORK/derpd.log" 2>&1 &
DERPD_PID=$!
"$B/ctrld/ctrld" --bus "$WORK/bus" --state "$WORK/ctrld" --control-url "$URL" --authkey "$KEY" \
	--hostname tailkit1 >"$WORK/ctrld.log" 2>&1 &
CTRLD_PID=$!
for _ in $(seq 100); do
	"$B/tools/feed/tk-status" "ipc://$WORK/bus/ctrld.rpc" 2>/dev/null | grep -q '"state": 6' && break
	sleep 0.3
done
ME=$("$B/tools/feed/tk-snapshot" "ipc://$WORK/bus/ctrld.rpc" netmap | python3 -c '
import json, sys
nm = json.load(sys.stdin)["body"]
print(next(a["addr"].split("/")[0] for a in nm["self"]["addresses"] if "." in a["addr"]))')
# the kernel side of the node: a TUN device with its tailnet address, in a
# network namespace of its own (tk-tun reaches wgd through the ipc socket)
if [ "$(id -u)" -eq 0 ]; then
	ip netns add "$NS"
	ip netns exec "$NS" ip link set lo up
	ip netns exec "$NS" "$B/tools/tun/tk-tun" --bus "$WORK/bus" tailkit0 >"$WORK/tun.log" 2>&1 &
	TUN_PID=$!
	for _ in $(seq 50); do ip netns exec "$NS" ip link show tailkit0 >/dev/null 2>&1 && break; sleep 0.1; done
	ip netns exec "$NS" ip addr add "$ME/32" dev tailkit0
	ip netns exec "$NS" ip link set tailkit0 up
	ip netns exec "$NS" ip route add 100.64.0.0/10 dev tailkit0
fi
python3 - "$B" "$WORK/bus" "$WORK/info.json" "$NS" "$ME" "$(id -u)" <<'EOF'
import json, subprocess, sys, time, urllib.request

b, bus, infof, ns, me, uid = sys.argv[1:7]
info = json.loads(open(infof).readline())
def out(*a):
    return json.loads(subprocess.run(a, capture_output=True, text=True, timeout=10).stdout)
def call(method, path, body=None):
    req = urllib.request.Request(info["admin_url"] + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())
nm = out(f"{b}/tools/feed/tk-snapshot", f"ipc://{bus}/ctrld.rpc", "netmap")["body"]
wg = out(f"{b}/tools/feed/tk-status", f"ipc://{bus}/wgd.rpc")
mine = nm.get("self", {})
print(f"  tailkit  {mine.get('name', '?')}  {' '.join(a['addr'] for a in mine.get('addresses', []))}"
      f"  nodekey:{mine.get('key', '')[:16]}… (wgd's own key: "
      f"{'yes' if wg['self']['key'] == 'nodekey:' + mine.get('key', '') else 'NO'})")
wgkeys = {p["node_key"] for p in wg["peers"]}
ok = bool(mine)
for p in nm.get("peers", []):
    has = "nodekey:" + p["key"] in wgkeys
    ok &= has
    print(f"  {'ok  ' if has else 'FAIL'} wgd peer from ctrld's netmap: {p['name'].split('.')[0]:5}"
          f" {' '.join(a['addr'] for a in p.get('allowed_ips', []))}  home DERP {p.get('home_derp', 0)}")
for _ in range(50):
    d = out(f"{b}/tools/feed/tk-status", f"ipc://{bus}/derpd.rpc")
    if d["counters"].get("regions_connected"):
        break
    time.sleep(0.2)
print(f"  derpd    home region {d['counters'].get('home_region')}, "
      f"{d['counters'].get('regions_connected')} region(s) connected")
if uid != "0":
    print("demo: not root: no network namespace for the node's TUN side; data path not shown")
    sys.exit(0 if ok else 1)
def nsrun(*a, timeout=30):
    return subprocess.run(["ip", "netns", "exec", ns, *a], capture_output=True, text=True,
                          timeout=timeout)
def show(what, good, detail=""):
    global ok
    ok &= bool(good)
    print(f"  {'ok  ' if good else 'FAIL'} {what:44} {detail}")
for n in info["nodes"]:
    ip = n["ips"][0]
    t0 = time.time()
    good = False
    while time.time() - t0 < 30 and not good:
        good = nsrun("ping", "-c", "1", "-W", "2", ip).returncode == 0
    show(f"tailkit -> {n['name']} ping {ip}", good, f"{(time.time() - t0) * 1000:.0f} ms")
    cli = ("import socket,sys;c=socket.create_connection((sys.argv[1],7),timeout=15);"
           "c.sendall(b'hello from tailkit');print(c.recv(100).decode())")
    r = nsrun("python3", "-c", cli, ip)
    show(f"tailkit -> {n['name']} TCP echo", r.stdout.strip() == "hello from tailkit", r.stdout.strip())
srv = subprocess.Popen(["ip", "netns", "exec", ns, "python3", "-c",
    "import socket;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
    "s.bind(('0.0.0.0',7007));s.listen(4);s.settimeout(60);print('ready',flush=True);"
    "c,_=s.accept();d=c.recv(100);c.sendall(d.upper());c.close()"], stdout=subprocess.PIPE, text=True)
srv.stdout.readline()
r = call("POST", "/dial", {"from": "go1", "network": "tcp", "addr": f"{me}:7007",
                          "payload": "hello tailkit", "timeout_ms": 20000})
show("go1 -> tailkit TCP (a server on the node)", r.get("reply") == "HELLO TAILKIT", r.get("reply", r.get("error", "")))
srv.kill()
w = out(f"{b}/tools/feed/tk-status", f"ipc://{bus}/wgd.rpc")["counters"]
print(f"  path     every packet crossed DERP: wgd sent {w.get('derp_tx')} and received "
      f"{w.get('derp_rx')} datagrams through derpd ({w.get('handshakes_completed')} handshakes)")
sys.exit(0 if ok else 1)
EOF

echo
echo "demo: a second tailkit node in one process: tailkitd (ctrld, wgd, derpd and netstackd on"
echo "      in-process buses); no TUN, no root: applications get file descriptors from its API"
for x in tools/node/tailkitd netstackd/tk-ns; do
	[ -x "$B/$x" ] || { echo "demo: $B/$x is missing: tools/setup.sh builds it" >&2; exit 1; }
done
"$B/tools/node/tailkitd" --state "$WORK/node2" --control-url "$URL" --authkey "$KEY" \
	--hostname tailkit2 --derp-http >"$WORK/tailkitd.log" 2>&1 &
NODE2_PID=$!
python3 - "$B" "$WORK/node2/netstackd.sock" "$WORK/info.json" "$NS" "$ME" "$(id -u)" <<'EOF'
import json, os, subprocess, sys, time, urllib.request

b, api, infof, ns, tk1, uid = sys.argv[1:7]
info = json.loads(open(infof).readline())
def call(method, path, body=None):
    req = urllib.request.Request(info["admin_url"] + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())
ok = True
def show(what, good, detail=""):
    global ok
    ok &= bool(good)
    print(f"  {'ok  ' if good else 'FAIL'} {what:46} {detail}")
me = None
for _ in range(150):
    me = next((n["Addresses"][0].split("/")[0] for n in call("GET", "/nodes")["control_nodes"]
               if n.get("Name", "").startswith("tailkit2.")), None)
    if me and os.path.exists(api):
        break
    time.sleep(0.2)
print(f"  tailkit2 {me}  (one process; API {api})")
srv = subprocess.Popen([f"{b}/netstackd/tk-ns", "--api", api, "listen", "8080", "http", "1"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
srv.stdout.readline()
r = {}
for _ in range(30):
    r = call("POST", "/dial", {"from": "go1", "network": "http", "addr": f"{me}:8080",
                               "timeout_ms": 20000})
    if r.get("ok"):
        break
    time.sleep(1)
show("go1 -> tailkit2 HTTP (served through the API)", r.get("ok") and "go1" in r.get("reply", ""),
     " ".join(r.get("reply", r.get("error", "")).split())[:60])
srv.kill()
go2 = next(n for n in info["nodes"] if n["name"] == "go2")["ips"][0]
page = ""
for _ in range(30):
    p = subprocess.run([f"{b}/netstackd/tk-ns", "--api", api, "dial", go2, "80"],
                       input="GET / HTTP/1.0\r\n\r\n", capture_output=True, text=True, timeout=30)
    page = p.stdout
    if "200 OK" in page:
        break
    time.sleep(1)
show("tailkit2 -> go2 HTTP (a dialled descriptor)", page.rstrip().endswith("go2"),
     page.rstrip().splitlines()[-1] if page.strip() else "")
if uid == "0":
    # tailkit <-> tailkit: the first node's kernel side serves a page in its
    # namespace; tailkit2 fetches it, and the first node's kernel curl
    # fetches tailkit2's page served through its API
    web = subprocess.Popen(["ip", "netns", "exec", ns, "python3", "-c",
        "import http.server,sys\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        " def do_GET(s):\n"
        "  b=b'hello from tailkit1\\n';s.send_response(200);s.send_header('Content-Length',str(len(b)));s.end_headers();s.wfile.write(b)\n"
        " def log_message(s,*a): pass\n"
        f"http.server.HTTPServer(('{tk1}',8000),H).serve_forever()"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    page = ""
    for _ in range(30):
        p = subprocess.run([f"{b}/netstackd/tk-ns", "--api", api, "dial", tk1, "8000"],
                           input="GET / HTTP/1.0\r\n\r\n", capture_output=True, text=True, timeout=30)
        page = p.stdout
        if "200" in page.split("\n", 1)[0]:
            break
        time.sleep(1)
    web.kill()
    show("tailkit2 -> tailkit1 HTTP", page.rstrip().endswith("hello from tailkit1"),
         page.rstrip().splitlines()[-1] if page.strip() else "")
    srv = subprocess.Popen([f"{b}/netstackd/tk-ns", "--api", api, "listen", "8081", "http", "1"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    srv.stdout.readline()
    r = subprocess.run(["ip", "netns", "exec", ns, "curl", "-s", "-m", "20", f"http://{me}:8081/"],
                       capture_output=True, text=True, timeout=30)
    srv.kill()
    show("tailkit1 -> tailkit2 HTTP (kernel curl)", "hello from netstackd" in r.stdout,
         " ".join(r.stdout.split())[:60])
print()
print("demo: `tailkit status` on tailkit2 (Go's `tailscale --socket=... status` reads it too):")
st = subprocess.run([f"{b}/tools/cli/tailkit", "--socket", os.path.join(os.path.dirname(api),
                     "tailkitd.sock"), "status"], capture_output=True, text=True, timeout=30)
print("\n".join("  " + ln for ln in st.stdout.splitlines()))
sock2 = os.path.join(os.path.dirname(api), "tailkitd.sock")
pg = subprocess.run([f"{b}/tools/cli/tailkit", "--socket", sock2, "ping", "-c", "1", "go1"],
                    capture_output=True, text=True, timeout=30)
print("demo: `tailkit ping go1` (TSMP through the tunnel):")
print("\n".join("  " + ln for ln in (pg.stdout + pg.stderr).splitlines()))
show("tailkit2 ping go1", pg.returncode == 0 and "pong from go1" in pg.stdout, "")
print()
print("demo: NOT YET: direct UDP paths (disco/STUN: the NAT traversal issue); every packet")
print("      between a tailkit node and another node crossed the DERP relay (tailkit's derpd).")
sys.exit(0 if ok else 1)
EOF
