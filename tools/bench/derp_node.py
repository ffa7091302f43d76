#!/usr/bin/env python3
"""TCP throughput over one DERP relay: a tailkit node <-> a Go tsnet node,
next to tsnet <-> tsnet over the same relay, same run.

Both sides stream N bytes into a TCP echo service on a tsnet node and read
them back (so N bytes cross DERP each way at once); the figure is N / time.
The relay is Go's derper (plain HTTP) and every node is DERP-only.  The
tailkit node is ctrld + wgd + derpd + tk-tun (the kernel's TCP in a network
namespace).  Medians of --runs; the ratio is printed last.

usage: tools/bench/derp_node.py [--mib 64] [--runs 3]
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
import netns  # noqa: E402
from conftest import BIN, Proc, free_port, wait_tcp  # noqa: E402
from test_derp_node import ECHO_CLIENT, TailkitNode, node_up  # noqa: E402,F401

BULK_CLIENT = r"""
import socket, sys, threading, time
ip, n = sys.argv[1], int(sys.argv[2])
c = socket.create_connection((ip, 7), timeout=60)
c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
chunk = b"x" * 65536
t0 = time.time()
def writer():
    left = n
    while left:
        k = c.send(chunk[:min(left, len(chunk))])
        left -= k
threading.Thread(target=writer, daemon=True).start()
got = 0
while got < n:
    d = c.recv(1 << 20)
    if not d:
        break
    got += len(d)
print(got, time.time() - t0)
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cc", default="", help="TCP congestion control in the tailkit "
                    "node's namespace (e.g. cubic); default: the host's")
    a = ap.parse_args()
    n = a.mib << 20
    procs = []
    netns.sweep()
    tmp = tempfile.mkdtemp(prefix="tk-bench-derp-")
    topo = netns.Topology().__enter__()
    tk = None
    try:
        port, stun = free_port(), free_port(2)
        d = Proc("derper", [os.path.join(BIN, "derper"), "-a", f"127.0.0.1:{port}",
                            "-http-port", "-1", "-stun-port", str(stun), "-c",
                            os.path.join(tmp, "derper.json")])
        procs.append(d)
        wait_tcp(port)
        p = Proc("interop-peer", [os.path.join(BIN, "interop-peer"), "-nodes", "2", "-derp",
                                  f"127.0.0.1:{port}", "-derp-stun-port", str(stun),
                                  "-derp-http", "-derp-only"])
        procs.append(p)
        info = p.json_line()
        tk = TailkitNode(tmp, info["control_url"], info["auth_key"], topo.host("tk"))
        nm, me = node_up(tk, info, 2)
        if a.cc:
            tk.host.run("sysctl", "-q", "-w", f"net.ipv4.tcp_congestion_control={a.cc}",
                        check=False)
        cc = tk.host.run("sysctl", "-n", "net.ipv4.tcp_congestion_control").stdout.strip()
        ips = {x["name"]: x["ips"][0] for x in info["nodes"]}

        def go_run():
            body = {"from": "go1", "network": "bulk", "addr": f"{ips['go2']}:7",
                    "payload": str(n), "timeout_ms": 300000}
            req = urllib.request.Request(info["admin_url"] + "/dial", method="POST",
                                         data=json.dumps(body).encode())
            t0 = time.time()
            with urllib.request.urlopen(req, timeout=320) as r:
                res = json.loads(r.read())
            dt = time.time() - t0
            if not res.get("ok") or int(res["reply"]) != n:
                raise RuntimeError(f"tsnet bulk failed: {res}")
            return n * 8 / dt / 1e6

        def tk_run():
            r = tk.host.run("python3", "-c", BULK_CLIENT, ips["go1"], str(n), timeout=320,
                            check=False)
            if r.returncode != 0:
                return None  # stalled: no progress for 60 s (counted below)
            got, dt = r.stdout.split()
            if int(got) != n:
                raise RuntimeError(f"tailkit bulk got {got} of {n}")
            return n * 8 / float(dt) / 1e6

        tk.host.run("ping", "-c", "1", "-W", "5", ips["go1"], check=False)
        go_run()  # warm both paths (handshakes, DERP routes)
        tk.host.run("python3", "-c", BULK_CLIENT, ips["go1"], str(1 << 20), check=False,
                    timeout=120)
        gos, tks, stalls = [], [], 0
        for _ in range(a.runs):
            gos.append(go_run())
            x = tk_run()
            if x is None:
                stalls += 1
            else:
                tks.append(x)
        g = statistics.median(gos)
        t = statistics.median(tks) if tks else 0.0
        tck = os.sysconf("SC_CLK_TCK")

        def cpu(pid):
            with open(f"/proc/{pid}/stat") as f:
                v = f.read().rsplit(")", 1)[1].split()
            return (int(v[11]) + int(v[12])) / tck
        use = {n: cpu(tk.procs[n].pid) for n in ("wgd", "derpd", "tk-tun")
               if tk.procs.get(n) and tk.procs[n].poll() is None}
        print("CPU seconds over the whole run (tailkit side): " +
              ", ".join(f"{n} {v:.2f}" for n, v in use.items()))
        print(f"TCP over one DERP relay (Go derper, plain HTTP), {a.mib} MiB each way, "
              f"median of {a.runs}; tailkit side TCP: kernel {cc}")
        print(f"  tsnet   <-> tsnet   {g:9.1f} Mbit/s   runs {' '.join(f'{x:.0f}' for x in gos)}")
        print(f"  tailkit <-> tsnet   {t:9.1f} Mbit/s   runs {' '.join(f'{x:.0f}' for x in tks)}"
              + (f"   ({stalls} of {a.runs} runs STALLED: no progress for 60 s)" if stalls else ""))
        print(f"  ratio tailkit/tsnet {t / g:9.2f}x")
    finally:
        if tk:
            tk.stop()
        for x in reversed(procs):
            x.stop()
        topo.__exit__(None, None, None)


if __name__ == "__main__":
    main()
