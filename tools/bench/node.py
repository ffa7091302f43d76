#!/usr/bin/env python3
"""The node, next to a Go tsnet node doing the same, same run (issue 13):

  1. time to Running with an auth key, from process start: tailkitd until
     its LocalAPI says Running; a Go process with one tsnet node
     (interop-peer -nodes 1 joining the same tailnet) until it prints its
     ready line, which it does once tsnet's Up() returned (Running);
  2. idle RSS with 100 peers (fake nodes in testcontrol's tailnet): the
     tailkitd process, against a Go process running one tsnet node
     (interop-peer joining the same tailnet, nothing else in it);
  3. TCP throughput node to node over DERP (every node DERP-only, the
     harness's DERP server): tailkitd (netstackd, through its local API)
     <-> a tsnet node's echo service, next to tsnet <-> tsnet, the same
     bytes each way at once.

Medians of --runs; every ratio printed last (tailkit / tsnet for time and
RSS: lower is better; for throughput higher is better).

usage: tools/bench/node.py [--runs 5] [--peers 100] [--mib 16] [--no-throughput]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "interop"))
from conftest import BIN  # noqa: E402

B = os.path.join(ROOT, "build")
TAILKITD = os.path.join(B, "tools", "node", "tailkitd")


def call(admin, method, path, body=None, timeout=120):
    req = urllib.request.Request(admin + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read() or b"null")


def local_status(sock):
    import socket
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(3)
    try:
        s.connect(sock)
        s.sendall(b"GET /localapi/v0/status?peers=false HTTP/1.1\r\nHost: x\r\n\r\n")
        buf = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            buf += d
        return json.loads(buf.split(b"\r\n\r\n", 1)[1])
    except (OSError, ValueError, IndexError):
        return None
    finally:
        s.close()


def rss_kib(pid, field="VmRSS:"):
    with open(f"/proc/{pid}/status") as f:
        for ln in f:
            if ln.startswith(field):
                return int(ln.split()[1])
    return 0


def start_peer(args, log):
    p = subprocess.Popen([os.path.join(BIN, "interop-peer"), *args], stdout=subprocess.PIPE,
                         stderr=log, text=True)
    info = json.loads(p.stdout.readline())
    return p, info


def tailkitd(tmp, info, name):
    state = os.path.join(tmp, name)
    log = open(os.path.join(tmp, name + ".log"), "w")
    t0 = time.monotonic()
    # DERP only, as the Go peers (-derp-only): Go's knob, which wgd honours
    p = subprocess.Popen([TAILKITD, "--state", state, "--control-url", info["control_url"],
                          "--authkey", info["auth_key"], "--hostname", name],
                         stdout=subprocess.DEVNULL, stderr=log,
                         env=dict(os.environ, TS_DEBUG_ALWAYS_USE_DERP="1"))
    sock = os.path.join(state, "tailkitd.sock")
    while time.monotonic() - t0 < 60:
        st = local_status(sock) if os.path.exists(sock) else None
        if st and st.get("BackendState") == "Running":
            return p, (time.monotonic() - t0) * 1000
        time.sleep(0.005)
    p.kill()
    raise SystemExit(f"bench: {name} not Running within 60 s (see {log.name})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--peers", type=int, default=100)
    ap.add_argument("--mib", type=int, default=16)
    ap.add_argument("--no-throughput", action="store_true")
    a = ap.parse_args()
    if not os.path.exists(TAILKITD):
        raise SystemExit(f"bench: {TAILKITD} missing (tools/setup.sh builds it)")
    tmp = tempfile.mkdtemp(prefix="tk-bench-node-")
    log = open(os.path.join(tmp, "peer.log"), "w")
    procs = []
    try:
        peer, info = start_peer(["-derp-only"], log)
        procs.append(peer)
        admin = info["admin_url"]
        # 1. time to Running
        tk_ms, go_ms = [], []
        for i in range(a.runs):
            p, ms = tailkitd(tmp, info, f"tk{i}")
            tk_ms.append(ms)
            p.terminate()
            p.wait(timeout=20)
            t0 = time.monotonic()
            gp, _ = start_peer(["-nodes", "1", "-control", info["control_url"], "-authkey",
                                info["auth_key"]], log)
            go_ms.append((time.monotonic() - t0) * 1000)
            gp.terminate()
            gp.wait(timeout=20)
        # 2. idle RSS with N peers
        call(admin, "POST", "/fake-nodes", {"n": a.peers})
        p, _ = tailkitd(tmp, info, "tkrss")
        procs.append(p)
        gop, _ = start_peer(["-nodes", "1", "-control", info["control_url"], "-authkey",
                             info["auth_key"]], log)
        procs.append(gop)
        time.sleep(10)   # both settle with the full netmap
        tk_rss, go_rss, tk_anon, go_anon = [], [], [], []
        for _ in range(a.runs):
            tk_rss.append(rss_kib(p.pid))
            go_rss.append(rss_kib(gop.pid))
            tk_anon.append(rss_kib(p.pid, "RssAnon:"))
            go_anon.append(rss_kib(gop.pid, "RssAnon:"))
            time.sleep(1)
        st = local_status(os.path.join(tmp, "tkrss", "tailkitd.sock"))
        npeers = len(json.loads(subprocess.run(
            [os.path.join(B, "tools", "cli", "tailkit"), "--socket",
             os.path.join(tmp, "tkrss", "tailkitd.sock"), "status", "--json"],
            capture_output=True, text=True, timeout=30).stdout or "{}").get("Peer") or {})
        tput = None
        if not a.no_throughput:
            n = a.mib << 20
            api = os.path.join(tmp, "tkrss", "netstackd.sock")
            ga = call(admin, "POST", "/nodes", {"name": "bulk1"})["ips"][0]
            gb = call(admin, "POST", "/nodes", {"name": "bulk2"})["ips"][0]
            tkns = os.path.join(B, "netstackd", "tk-ns")

            def tk_bulk():
                t0 = time.monotonic()
                r = subprocess.run(f"head -c {n} /dev/zero | timeout 120 {tkns} --api {api} "
                                   f"dial {ga} 7 | wc -c", shell=True, capture_output=True,
                                   text=True, timeout=150)
                dt = time.monotonic() - t0
                return n * 8 / dt / 1e6 if r.stdout.strip() == str(n) else None

            def go_bulk():
                t0 = time.monotonic()
                res = call(admin, "POST", "/dial", {"from": "bulk2", "network": "bulk",
                                                    "addr": f"{ga}:7", "payload": str(n),
                                                    "timeout_ms": 120000}, timeout=150)
                dt = time.monotonic() - t0
                return n * 8 / dt / 1e6 if res.get("ok") else None
            for _ in range(30):   # the paths up (handshakes, DERP routes)
                if subprocess.run(f"head -c 1000 /dev/zero | timeout 10 {tkns} --api {api} "
                                  f"dial {ga} 7 | wc -c", shell=True, capture_output=True,
                                  text=True, timeout=20).stdout.strip() == "1000":
                    break
                time.sleep(1)
            call(admin, "POST", "/dial", {"from": "bulk2", "network": "tcp",
                                          "addr": f"{ga}:7", "payload": "x"})
            tks, gos = [], []
            for _ in range(a.runs):
                tks.append(tk_bulk())
                gos.append(go_bulk())
            ok_t = [x for x in tks if x]
            ok_g = [x for x in gos if x]
            tput = (statistics.median(ok_t) if ok_t else 0.0,
                    statistics.median(ok_g) if ok_g else 0.0,
                    len(tks) - len(ok_t), tks, gos, gb)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
    tkm, gom = statistics.median(tk_ms), statistics.median(go_ms)
    tkr, gor = statistics.median(tk_rss), statistics.median(go_rss)
    print(f"node benchmark (state {st and st.get('BackendState')}, {npeers} peers in the "
          f"RSS run), medians of {a.runs}")
    print(f"  time to Running   tsnet {gom:8.0f} ms   tailkitd {tkm:8.0f} ms   "
          f"(runs tk {' '.join(f'{x:.0f}' for x in tk_ms)}; go {' '.join(f'{x:.0f}' for x in go_ms)})")
    print(f"  idle RSS          tsnet {gor / 1024:8.1f} MiB  tailkitd {tkr / 1024:8.1f} MiB   "
          f"(anonymous: tsnet {statistics.median(go_anon) / 1024:.1f}, tailkitd "
          f"{statistics.median(tk_anon) / 1024:.1f}; the rest is shared libraries)")
    if tput:
        tm, gm, fails, tks, gos, _ = tput
        print(f"  TCP over DERP, {a.mib} MiB each way: tsnet<->tsnet {gm:6.1f} Mbit/s   "
              f"tailkitd<->tsnet {tm:6.1f} Mbit/s   (runs tk "
              f"{' '.join(f'{x:.0f}' if x else 'fail' for x in tks)}; go "
              f"{' '.join(f'{x:.0f}' if x else 'fail' for x in gos)})")
    print(f"  ratio time to Running tailkitd/tsnet {tkm / gom:6.2f}x   (goal <= 0.33)")
    print(f"  ratio idle RSS        tailkitd/tsnet {tkr / gor:6.2f}x   (goal <= 0.25)")
    if tput and tput[1]:
        print(f"  ratio TCP over DERP   tailkitd/tsnet {tput[0] / tput[1]:6.2f}x   (goal >= 1)")


if __name__ == "__main__":
    main()
