#!/usr/bin/env python3
"""Direct paths (issue 15), tailkit next to Go tsnet on one topology, one run.

Network namespaces (needs root, as the interop suite):
  core (10.97.1.1; 10.97.1.2 with --nat): Go's derper, testcontrol with the target tsnet node
      (interop-peer, node go1, echo on port 7), tailkit's ctrld, derpd and
      netstackd, and a TCP forwarder to testcontrol for the edge;
  edge (10.97.1.2): tailkit's wgd (the split edge node), and a second Go
      process with one tsnet node joining the same tailnet.
With --nat (the default) edge sits behind an endpoint-independent NAT box
(Linux MASQUERADE, a home router's filtering) whose outside address is
10.97.1.1: the edge nodes learn their mapping by STUN and go1 must answer
it; with --veth edge and core share a veth.
Both edge nodes reach go1 directly (through the NAT), or through derper.

Measured, medians of --runs:
  1. time from the first packet to a confirmed direct path: tailkit (a
     fresh wgd each run, until its status shows go1's veth address) and
     tsnet (a fresh edge node each run, until its ipnstate shows a CurAddr
     for go1); each node gets 5 s to settle (STUN, netcheck) first;
  2. TCP throughput to go1's echo service, --mib MiB each way: tailkit
     (tk-ns through netstackd) direct, and DERP-only (wgd restarted with
     TS_DEBUG_ALWAYS_USE_DERP=1); tsnet (interop-peer's bulk dial) direct,
     and DERP-only (an edge process with -derp-only).
A tailkitd in core (tkcore, echo through tk-ns) gives the tailkit <-> tailkit
rows next to them: time to direct (the edge wgd restarted) and throughput.
Ratios last, against tsnet <-> tsnet: time (lower is better), throughput
(higher is better).

usage: sudo tools/bench/direct.py [--runs 5] [--mib 16] [--veth]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "interop"))
import netns  # noqa: E402
from conftest import binary  # noqa: E402

B = os.path.join(ROOT, "build")
WGD = os.path.join(B, "wgd", "src", "wgd")
CTRLD = os.path.join(B, "ctrld", "ctrld")
DERPD = os.path.join(B, "derpd", "src", "derpd")
NETSTACKD = os.path.join(B, "netstackd", "netstackd")
TKNS = os.path.join(B, "netstackd", "tk-ns")
STATUS = os.path.join(B, "tools", "feed", "tk-status")
TAILKITD = os.path.join(B, "tools", "node", "tailkitd")
EDGE, CORE = "10.97.1.2", "10.97.1.1"
SETTLE = 5  # s between a node coming up and its first packet, for both

FORWARD = r"""
import socket, sys, threading
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((sys.argv[1], int(sys.argv[2])))
ls.listen(64)
def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
while True:
    c, _ = ls.accept()
    u = socket.create_connection(("127.0.0.1", int(sys.argv[3])))
    threading.Thread(target=pipe, args=(c, u), daemon=True).start()
    threading.Thread(target=pipe, args=(u, c), daemon=True).start()
"""


def json_line(p, what, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        if line.startswith("{"):
            return json.loads(line)
    raise SystemExit(f"bench: {what} printed no JSON line")


def wait(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise SystemExit(f"bench: timed out waiting for {what}")


def tk_status(bus, comp):
    r = subprocess.run([STATUS, f"ipc://{bus}/{comp}.rpc"], capture_output=True, text=True,
                       timeout=10)
    return json.loads(r.stdout) if r.returncode == 0 else None


def tk_direct(bus, key=None):
    """The edge wgd has a trusted direct path (to the peer with node key
    `key`, or to any)."""
    st = tk_status(bus, "wgd") or {}
    return any((p.get("cur_addr") or "").startswith(CORE + ":") and
               (key is None or p.get("node_key") == key) for p in st.get("peers", []))


def tk_bulk(api, ip, n):
    t0 = time.monotonic()
    r = subprocess.run(f"head -c {n} /dev/zero | timeout 150 {TKNS} --api {api} dial {ip} 7 "
                       f"| wc -c", shell=True, capture_output=True, text=True, timeout=180)
    dt = time.monotonic() - t0
    return n * 8 / dt / 1e6 if r.stdout.strip() == str(n) else None


def tk_echo(api, ip):
    r = subprocess.run(f"printf x | timeout 10 {TKNS} --api {api} dial {ip} 7 | wc -c",
                       shell=True, capture_output=True, text=True, timeout=20)
    return r.stdout.strip() == "1"


def go_edge(edge, info, fwd, log, derp_only=False):
    # -derp-http applies only with -derp: Go's knob for a plain-HTTP DERP
    p = edge.popen(binary("interop-peer"), "-nodes", "1", "-control", f"http://{CORE}:{fwd}",
                   "-authkey", info["auth_key"], *(["-derp-only"] if derp_only else []),
                   stderr=log, env=dict(os.environ, TS_DEBUG_USE_DERP_HTTP="true"))
    return p, json_line(p, "the edge interop-peer")


def go_direct(edge, ginfo, name, go1):
    st = edge.http_json("GET", ginfo["admin_url"] + f"/nodes/{name}/netmap", timeout=240)
    for peer in (st or {}).get("Peer", {}).values():
        if go1 in (peer.get("TailscaleIPs") or []) and peer.get("CurAddr"):
            return True
    return False


def go_bulk(edge, ginfo, name, go1, n):
    t0 = time.monotonic()
    res = edge.http_json("POST", ginfo["admin_url"] + "/dial",
               {"from": name, "network": "bulk", "addr": f"{go1}:7", "payload": str(n),
                "timeout_ms": 150000}, timeout=240)
    dt = time.monotonic() - t0
    return n * 8 / dt / 1e6 if res.get("ok") else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--mib", type=int, default=16)
    ap.add_argument("--veth", action="store_true",
                    help="edge and core on one veth instead of edge behind a NAT")
    a = ap.parse_args()
    global CORE
    if not a.veth:
        CORE = "10.97.1.2"
    for f in (WGD, CTRLD, DERPD, NETSTACKD, TKNS, STATUS):
        if not os.path.exists(f):
            raise SystemExit(f"bench: {f} missing (tools/setup.sh builds it)")
    n = a.mib << 20
    tmp = tempfile.mkdtemp(prefix="tk-bench-direct-")
    log = open(os.path.join(tmp, "go.log"), "w")
    bus = os.path.join(tmp, "bus")
    daemons = {}
    with netns.Topology() as topo:
        edge, core = topo.host("edge"), topo.host("core")
        if a.veth:
            topo.link(edge, f"{EDGE}/24", core, f"{CORE}/24")
        else:   # edge 10.99.1.2 -- box (MASQUERADE) 10.97.1.1 -- core 10.97.1.2
            topo.nat(edge, topo.host("box"), core, inside_net="10.99.1",
                     outside_net="10.97.1")
        core.popen(binary("derper"), "-a", f"{CORE}:3340", "-http-port", "-1", "-stun-port", "3478",
                   "-c", os.path.join(tmp, "derper.json"), stderr=log)
        time.sleep(1)
        peer = core.popen(binary("interop-peer"), "-nodes", "1", "-derp", f"{CORE}:3340",
                          "-derp-stun-port", "3478", "-derp-http", stderr=log)
        info = json_line(peer, "interop-peer in core")
        go1 = next(x for x in info["nodes"] if x["name"] == "go1")["ips"][0]
        ctl_port = int(info["control_url"].rsplit(":", 1)[1].strip("/"))
        core.popen("python3", "-c", FORWARD, CORE, "8081", str(ctl_port), stderr=log)

        def spawn(name, host, args, env=None):
            lf = open(os.path.join(tmp, f"{name}.log"), "a")
            daemons[name] = host.popen(*args, stdout=subprocess.DEVNULL, stderr=lf,
                                       env=env)

        def stop(name):
            p = daemons.pop(name)
            p.terminate()
            p.wait(timeout=20)

        def start_wgd(derp_only=False):
            env = dict(os.environ)
            if derp_only:
                env["TS_DEBUG_ALWAYS_USE_DERP"] = "1"
            spawn("wgd", edge, [WGD, "--bus", bus, "--state", os.path.join(tmp, "wgd-state"),
                                "--no-uapi"], env)
            wait(lambda: tk_status(bus, "wgd"), 20, "wgd")

        start_wgd()
        spawn("netstackd", core, [NETSTACKD, "--bus", bus])
        spawn("derpd", core, [DERPD, "client", "--bus", bus, "--derp-http"])
        spawn("ctrld", core, [CTRLD, "--bus", bus, "--state", os.path.join(tmp, "ctrld-state"),
                              "--control-url", info["control_url"], "--authkey",
                              info["auth_key"], "--hostname", "tkedge"])
        api = os.path.join(bus, "netstackd.sock")
        wait(lambda: tk_echo(api, go1), 60, "the tailkit node reaching go1")
        # a second tailkit node in core (tailkitd, its buses on ipc:// for
        # tk-status) with an echo service: tailkit <-> tailkit
        cbus = os.path.join(tmp, "core-bus")
        spawn("tkcore", core, [TAILKITD, "--bus", cbus, "--state",
                               os.path.join(tmp, "core-state"), "--control-url",
                               info["control_url"], "--authkey", info["auth_key"],
                               "--hostname", "tkcore", "--derp-http"])
        wait(lambda: (tk_status(cbus, "ctrld") or {}).get("state") == 6, 60, "tkcore Running")
        cst = tk_status(cbus, "ctrld")
        tkc_key = cst["self"]["key"]
        tkc_ip = next(a.split("/")[0] for a in cst["self"]["addresses"] if "." in a)
        spawn("tkcore-echo", core, [TKNS, "--api", os.path.join(cbus, "netstackd.sock"),
                                    "listen", "7", "echo"])
        wait(lambda: tk_echo(api, tkc_ip), 60, "the edge node reaching tkcore")

        # 1. first packet -> direct (tailkit: to go1, then to tkcore)
        tk_s, tt_s, go_s = [], [], []
        for _ in range(a.runs):
            for target, key, out in ((go1, None, tk_s), (tkc_ip, tkc_key, tt_s)):
                stop("wgd")
                time.sleep(8 if key else 0)   # tkcore's trust in the old path lapses
                start_wgd()
                wait(lambda: (tk_status(bus, "netstackd") or {}).get("state") == 6, 20,
                     "netstackd")
                time.sleep(SETTLE)   # settle (STUN, netcheck) before the first packet
                t0 = time.monotonic()
                wait(lambda: tk_echo(api, target), 60, "the echo after a wgd restart")
                wait(lambda: tk_direct(bus, key), 60, "tailkit's direct path")
                out.append(time.monotonic() - t0)
            gp, gi = go_edge(edge, info, 8081, log)
            name = gi["nodes"][0]["name"]
            time.sleep(SETTLE)
            t0 = time.monotonic()
            edge.http_json("POST", gi["admin_url"] + "/dial",
                 {"from": name, "network": "tcp", "addr": f"{go1}:7", "payload": "x",
                  "timeout_ms": 60000}, timeout=240)
            wait(lambda: go_direct(edge, gi, name, go1), 60, "tsnet's direct path")
            go_s.append(time.monotonic() - t0)
            gp.terminate()
            gp.wait(timeout=20)

        # 2. throughput, direct then DERP-only
        res = {}
        gp, gi = go_edge(edge, info, 8081, log)
        name = gi["nodes"][0]["name"]
        edge.http_json("POST", gi["admin_url"] + "/dial",
                       {"from": name, "network": "tcp", "addr": f"{go1}:7", "payload": "x"},
                       timeout=240)
        wait(lambda: go_direct(edge, gi, name, go1), 60, "tsnet's direct path")
        wait(lambda: tk_direct(bus), 60, "tailkit's direct path")
        wait(lambda: tk_echo(api, tkc_ip) and tk_direct(bus, tkc_key), 60,
             "tailkit's direct path to tkcore")
        res["direct"] = ([tk_bulk(api, go1, n) for _ in range(a.runs)],
                         [go_bulk(edge, gi, name, go1, n) for _ in range(a.runs)],
                         [tk_bulk(api, tkc_ip, n) for _ in range(a.runs)])
        gp.terminate()
        gp.wait(timeout=20)
        stop("wgd")
        start_wgd(derp_only=True)
        wait(lambda: tk_echo(api, go1), 60, "the echo over DERP")
        gp, gi = go_edge(edge, info, 8081, log, derp_only=True)
        name = gi["nodes"][0]["name"]
        edge.http_json("POST", gi["admin_url"] + "/dial",
                       {"from": name, "network": "tcp", "addr": f"{go1}:7", "payload": "x"},
                       timeout=240)
        wait(lambda: tk_echo(api, tkc_ip), 60, "tkcore over DERP")
        res["derp"] = ([tk_bulk(api, go1, n) for _ in range(a.runs)],
                       [go_bulk(edge, gi, name, go1, n) for _ in range(a.runs)],
                       [tk_bulk(api, tkc_ip, n) for _ in range(a.runs)])
        gp.terminate()
        gp.wait(timeout=20)
        for nm in list(daemons):
            stop(nm)

    def med(xs):
        ok = [x for x in xs if x]
        return statistics.median(ok) if ok else 0.0

    tkm, ttm, gom = (statistics.median(tk_s), statistics.median(tt_s),
                     statistics.median(go_s))
    print(f"direct paths (namespaces, {'veth' if a.veth else 'edge behind an easy NAT'}), "
          f"medians of {a.runs}; tailkit edge -> go1 (tk-go), tailkit edge -> tailkitd "
          f"(tk-tk), tsnet edge -> go1 (go-go)")
    print(f"  first packet -> direct   go-go {gom:6.2f} s   tk-go {tkm:6.2f} s   "
          f"tk-tk {ttm:6.2f} s")
    print(f"    (tk-go {' '.join(f'{x:.2f}' for x in tk_s)}; tk-tk "
          f"{' '.join(f'{x:.2f}' for x in tt_s)}; go-go {' '.join(f'{x:.2f}' for x in go_s)})")
    for k in ("direct", "derp"):
        t, g, tt = res[k]
        print(f"  TCP echo {k:6s} {a.mib} MiB   go-go {med(g):7.1f}   tk-go {med(t):7.1f}   "
              f"tk-tk {med(tt):7.1f} Mbit/s   (failed: tk-go {t.count(None)}, tk-tk "
              f"{tt.count(None)}, go-go {g.count(None)})")
    print(f"  ratio time to direct (lower is better): tk-go/go-go {tkm / gom:.2f}x   "
          f"tk-tk/go-go {ttm / gom:.2f}x")
    for k in ("direct", "derp"):
        t, g, tt = res[k]
        if med(g):
            print(f"  ratio throughput {k} (higher is better): tk-go/go-go "
                  f"{med(t) / med(g):.2f}x   tk-tk/go-go {med(tt) / med(g):.2f}x")


if __name__ == "__main__":
    main()
