"""netstackd benchmark (tools/bench/netstack.sh runs it; root, namespaces).

One TCP flow from the kernel (host B: wgd + tk-tun) through WireGuard to
  netstackd path: host A = wgd + netstackd, received by tk-ns (local API)
  kernel path:    host A = wgd + tk-tun, received by the kernel
with the same sender (tests/interop/ns_tool.py blast) in the same run, runs
alternating; medians.  The other way too (A sends REV_MIB to a kernel
receiver on B: tk-ns dial vs a kernel socket).  Also connections/s (one at a time, one byte echoed)
through each path, and netstackd's RSS idle and with N open connections.
Ratios last.
"""

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "interop"))

import netns  # noqa: E402
from test_netstackd import (A4, A6, B4, B6, ALLOW_ALL, USERS, TKNS, TOOL,  # noqa: E402
                            KernelNode, NsNode, node_json, need, rss_kib, wait_line)


def pair(topo, tmp, kind):
    ha, hb = topo.host("a" + kind[0]), topo.host("b" + kind[0])
    topo.link(ha, "10.94.0.1/24", hb, "10.94.0.2/24")
    if kind == "netstackd":
        a = NsNode(ha, tmp, "a" + kind[0], "10.94.0.1")
    else:
        a = KernelNode(ha, tmp, "a" + kind[0], "10.94.0.1", v4=A4, v6=A6)
    b = KernelNode(hb, tmp, "b" + kind[0], "10.94.0.2")
    na = node_json(1, a.nodekey, [A4, A6], a.outer, 10)
    nb = node_json(2, b.nodekey, [B4, B6], b.outer, 20)
    a.publish({"Node": na, "Peers": [nb], "UserProfiles": USERS, "PacketFilter": ALLOW_ALL})
    b.publish({"Node": nb, "Peers": [na], "UserProfiles": USERS, "PacketFilter": ALLOW_ALL})
    if kind == "netstackd":
        for _ in range(400):
            if "netmap: 1 peers" in a.log():
                break
            time.sleep(0.05)
    b.ping(A4, count=2)
    return a, b


def server(a, kind, port, mode):
    if kind == "netstackd":
        p = subprocess.Popen(a.host.cmd(need(TKNS), "--api", a.api, "listen", str(port), mode),
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    else:
        p = subprocess.Popen(a.host.cmd("python3", TOOL, "sink", A4, str(port)),
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    wait_line(p, "listening")
    return p


def blast(b, port, secs):
    r = b.host.run("python3", TOOL, "blast", A4, str(port), str(secs), timeout=secs + 120)
    return float(r.stdout.strip())


def reverse(a, b, kind, port, size):
    """Mbit/s of size bytes from A (netstackd: through tk-ns dial; kernel:
    a socket) to a kernel receiver on B."""
    srv = b.host.popen("python3", TOOL, "serve", B4, str(port), "/dev/null")
    wait_line(srv, "listening")
    sender = (f"{need(TKNS)} --api {a.api} dial {B4} {port}" if kind == "netstackd"
              else f"python3 {TOOL} pipe {B4} {port}")
    t0 = time.time()
    a.host.run("sh", "-c", f"head -c {size} /dev/zero | {sender} >/dev/null 2>&1",
               timeout=300)
    mbps = size * 8 / (time.time() - t0) / 1e6
    srv.wait(timeout=30)
    return mbps


def cps(b, port, n):
    r = b.host.run("python3", TOOL, "cps", A4, str(port), str(n), timeout=300)
    return float(r.stdout.strip())


def main():
    runs = int(os.environ.get("RUNS", "3"))
    secs = float(os.environ.get("SECS", "5"))
    nconn = int(os.environ.get("CONNS", "500"))
    thr = {"kernel": [], "netstackd": []}
    rate = {"kernel": [], "netstackd": []}
    rev = {"kernel": [], "netstackd": []}
    size = int(os.environ.get("REV_MIB", "512")) << 20
    rss_idle = rss_busy = 0
    tmp = tempfile.mkdtemp(prefix="tk-nsbench-")
    for i in range(runs):
        for kind in ("kernel", "netstackd"):
            with netns.Topology() as topo:
                a, b = pair(topo, tmp, kind)
                try:
                    if kind == "netstackd" and i == 0:
                        time.sleep(1)
                        rss_idle = rss_kib(a.ns.pid)
                    srv = server(a, kind, 5001, "sink" if kind == "netstackd" else "")
                    thr[kind].append(blast(b, 5001, secs))
                    srv.kill()
                    srv.wait()
                    rev[kind].append(reverse(a, b, kind, 5003, size))
                    srv = server(a, kind, 5002, "echo" if kind == "netstackd" else "")
                    rate[kind].append(cps(b, 5002, 300))
                    if kind == "netstackd" and i == 0:
                        # N connections held open at once
                        script = ("import socket,time\n"
                                  f"s=[socket.create_connection(('{A4}',5002),timeout=30) "
                                  f"for _ in range({nconn})]\n"
                                  "print('open',flush=True)\ntime.sleep(30)\n")
                        h = b.host.popen("python3", "-c", script)
                        wait_line(h, "open", timeout=120)
                        time.sleep(1)
                        rss_busy = rss_kib(a.ns.pid)
                        h.kill()
                        h.wait()
                    srv.kill()
                    srv.wait()
                    print(f"run {i + 1} {kind:9s}: {thr[kind][-1]:8.1f} Mbit/s in, "
                          f"{rev[kind][-1]:8.1f} Mbit/s out, "
                          f"{rate[kind][-1]:6.0f} conn/s", flush=True)
                finally:
                    a.close()
                    b.close()
    km, nm = statistics.median(thr["kernel"]), statistics.median(thr["netstackd"])
    kc, nc = statistics.median(rate["kernel"]), statistics.median(rate["netstackd"])
    kr, nr = statistics.median(rev["kernel"]), statistics.median(rev["netstackd"])
    print()
    print(f"one TCP flow, kernel -> [wgd -> ...], {secs:g} s, median of {runs}:")
    print(f"  kernel -> kernel    (tk-tun both ends)  {km:8.1f} Mbit/s")
    print(f"  kernel -> netstackd (local API, tk-ns)  {nm:8.1f} Mbit/s")
    print(f"the other way, {size >> 20} MiB to a kernel receiver, median of {runs}:")
    print(f"  kernel -> kernel    (a socket)          {kr:8.1f} Mbit/s")
    print(f"  netstackd -> kernel (tk-ns dial)        {nr:8.1f} Mbit/s")
    print("connections/s, one at a time, 1 byte echoed (servers: the kernel path's is "
          "Python threads, netstackd's is tk-ns):")
    print(f"  kernel path {kc:6.0f}   netstackd path {nc:6.0f}")
    print(f"netstackd RSS: idle {rss_idle / 1024:.1f} MiB, "
          f"{nconn} open connections {rss_busy / 1024:.1f} MiB")
    print(f"ratio netstackd/kernel: throughput {nm / km:.2f} (goal >= 0.60), "
          f"the other way {nr / kr:.2f}, "
          f"connections/s {nc / kc:.2f}; idle RSS {rss_idle / 1024:.1f} MiB (goal <= 4)")


if __name__ == "__main__":
    main()
