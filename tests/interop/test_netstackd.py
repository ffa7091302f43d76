"""netstackd (lwIP in userspace) against the Linux kernel's TCP/IP.

Two network-namespace hosts joined by a veth:

  A: wgd --bus + netstackd --bus + tk-feed (a netmap, as ctrld publishes it)
     and tk-ns, a client of netstackd's local API (listen/dial/UDP)
  B: wgd --bus + tk-tun (the kernel's stack on a TUN device) + tk-feed

What is tailkit's own here: netstackd, wgd, the buses, tk-ns.  The
counterpart is the kernel: its TCP (curl, nc, Python sockets), ping and UDP.
"""

import hashlib
import json
import os
import socket
import subprocess
import threading
import time

import pytest

from test_wgd import ROOT, need
from test_wgd_bus import STATUS, BusNode

BUILD = os.path.join(ROOT, "build")
NETSTACKD = os.environ.get("TK_NETSTACKD", os.path.join(BUILD, "netstackd", "netstackd"))
TKNS = os.path.join(BUILD, "netstackd", "tk-ns")
TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ns_tool.py")

A4, A6 = "100.64.0.1", "fd7a:115c:a1e0::1"
B4, B6 = "100.64.0.2", "fd7a:115c:a1e0::2"
ALLOW_ALL = [{"SrcIPs": ["*"], "DstPorts": [{"IP": "*", "Ports": {"First": 0, "Last": 65535}}]}]


def have_netstackd():
    if not os.access(NETSTACKD, os.X_OK):
        pytest.skip("netstackd is not built (no lwIP source: run tools/setup.sh)")


class NsNode(BusNode):
    """wgd + netstackd (instead of tk-tun) + tk-feed in one namespace."""

    def __init__(self, host, tmp, tag, outer):
        self.host, self.outer, self.inner, self.inner6 = host, outer, A4, A6
        self.dir = os.path.join(tmp, f"node{tag}")
        self.bus = os.path.join(self.dir, "bus")
        self.state = os.path.join(self.dir, "state")
        self.netmap = os.path.join(self.dir, "netmap.json")
        self.api = os.path.join(self.bus, "netstackd.sock")
        os.makedirs(self.dir, exist_ok=True)
        self.wgd = self.tun = self.feed = self.ns = None
        self.start_wgd()
        self.start_netstackd()
        st = self.status()
        self.nodekey = st["self"]["key"]

    def start_netstackd(self):
        if os.path.exists(self.api):     # a killed run's socket
            os.unlink(self.api)
        self.ns = self.host.popen(need(NETSTACKD), "--bus", self.bus, "--addr", A4,
                                  "--addr", A6,
                                  stderr=open(os.path.join(self.dir, "netstackd.log"), "a"))
        for _ in range(200):
            if os.path.exists(self.api):
                return
            assert self.ns.poll() is None, self.log()
            time.sleep(0.05)
        raise AssertionError("netstackd did not create its API socket: " + self.log())

    def ns_status(self):
        """netstackd's "status" (tk-status on DIR/netstackd.rpc)."""
        for _ in range(50):
            r = subprocess.run([need(STATUS), f"ipc://{self.bus}/netstackd.rpc"],
                               capture_output=True, text=True, timeout=10)
            if r.returncode == 0:
                return json.loads(r.stdout)
            time.sleep(0.1)
        raise AssertionError(f"netstackd status: {r.stderr}")

    def log(self):
        p = os.path.join(self.dir, "netstackd.log")
        return open(p).read()[-3000:] if os.path.exists(p) else ""

    def tkns(self, *args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE):
        return self.host.popen(need(TKNS), "--api", self.api, *args, stdout=stdout,
                               stderr=open(os.path.join(self.dir, "tk-ns.log"), "a")) \
            if stdin is subprocess.DEVNULL else subprocess.Popen(
                self.host.cmd(need(TKNS), "--api", self.api, *args), stdin=stdin,
                stdout=stdout, stderr=subprocess.PIPE)

    def close(self):
        if self.ns is not None and self.ns.poll() is None:
            self.ns.terminate()
            try:
                self.ns.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.ns.kill()
                self.ns.wait(timeout=5)
                raise
            assert self.ns.returncode == 0, f"netstackd exited {self.ns.returncode}: " \
                + self.log()
        super().close()


class KernelNode(BusNode):
    """wgd + tk-tun: the kernel's stack at 100.64.0.2 / fd7a:115c:a1e0::2."""

    def __init__(self, host, tmp, tag, outer, v4=B4, v6=B6):
        super().__init__(host, tmp, tag, outer, v4)
        self.inner6 = v6
        h = self.host
        h.run("ip", "addr", "flush", "dev", self.dev)
        h.run("ip", "addr", "add", f"{v4}/32", "dev", self.dev)
        h.run("ip", "route", "add", "100.64.0.0/10", "dev", self.dev)
        h.run("ip", "-6", "addr", "add", f"{v6}/128", "dev", self.dev, "nodad")
        h.run("ip", "-6", "route", "add", "fd7a:115c:a1e0::/48", "dev", self.dev)


def node_json(node_id, key, addrs, outer, user):
    return {"ID": node_id, "Key": key, "Name": f"node{node_id}.tail0.ts.net.",
            "User": user, "Addresses": [f"{a}/{32 if '.' in a else 128}" for a in addrs],
            "AllowedIPs": [f"{a}/{32 if '.' in a else 128}" for a in addrs],
            "Endpoints": [f"{outer}:51820"]}


USERS = [{"ID": 10, "LoginName": "alice@example.com", "DisplayName": "Alice"},
         {"ID": 20, "LoginName": "bob@example.com", "DisplayName": "Bob"}]


@pytest.fixture
def ns_pair(topology, tmp_path):
    have_netstackd()
    ha, hb = topology.host("a"), topology.host("b")
    topology.link(ha, "10.95.0.1/24", hb, "10.95.0.2/24")
    made = []
    try:
        a = NsNode(ha, str(tmp_path), "a", "10.95.0.1")
        made.append(a)
        b = KernelNode(hb, str(tmp_path), "b", "10.95.0.2")
        made.append(b)
        na = node_json(1, a.nodekey, [A4, A6], a.outer, 10)
        nb = node_json(2, b.nodekey, [B4, B6], b.outer, 20)
        a.publish({"Node": na, "Peers": [nb], "UserProfiles": USERS,
                   "PacketFilter": ALLOW_ALL})
        b.publish({"Node": nb, "Peers": [na], "UserProfiles": USERS,
                   "PacketFilter": ALLOW_ALL})
        for _ in range(400):     # until netstackd applied the netmap too
            if a.ns_status()["counters"]["netmap_snapshots"] >= 1:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("netstackd never applied the netmap: " + a.log())
        yield a, b
    finally:
        for n in reversed(made):
            n.close()


def wait_line(proc, prefix, timeout=20):
    """The first stdout line of proc starting with prefix (bounded)."""
    out = []

    def rd():
        for line in proc.stdout:
            if isinstance(line, bytes):
                line = line.decode(errors="replace")
            out.append(line)
            if line.startswith(prefix):
                return
    t = threading.Thread(target=rd, daemon=True)
    t.start()
    t.join(timeout)
    for line in out:
        if line.startswith(prefix):
            return line.strip()
    raise AssertionError(f"no '{prefix}' line from {proc.args}: {out}")


def test_netstackd_ping(ns_pair):
    a, b = ns_pair
    b.ping(A4, count=3)
    r = b.host.run("ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", A6, check=False)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("fam", ["v4", "v6"])
def test_netstackd_curl_to_listener_with_identity(ns_pair, fam):
    a, b = ns_pair
    srv = a.tkns("listen", "8080", "http")
    wait_line(srv, "listening")
    host = A4 if fam == "v4" else f"[{A6}]"
    r = b.host.run("curl", "-sS", "--max-time", "20", f"http://{host}:8080/", check=False)
    assert r.returncode == 0, r.stderr + a.log()
    # the identity came with the descriptor, from the netmap
    assert "node 2 name node2.tail0.ts.net. login bob@example.com" in r.stdout, r.stdout
    assert (B4 if fam == "v4" else B6) in r.stdout, r.stdout


def test_netstackd_unlistened_port_refused(ns_pair):
    a, b = ns_pair
    b.ping(A4, count=1)
    r = b.host.run("curl", "-sS", "--max-time", "10", f"http://{A4}:8081/", check=False)
    assert r.returncode == 7, r.stderr     # 7: connection refused (RST), not a timeout


@pytest.mark.parametrize("fam", ["v4", "v6"])
def test_netstackd_dial_kernel_listener(ns_pair, fam):
    a, b = ns_pair
    addr = B4 if fam == "v4" else B6
    got = os.path.join(a.dir, f"k-got-{fam}")
    srv = b.host.popen("python3", TOOL, "serve", addr, "9090", got, "hello-from-kernel")
    wait_line(srv, "listening")
    cli = subprocess.run(a.host.cmd(need(TKNS), "--api", a.api, "dial", addr, "9090"),
                         input=b"hello-from-netstackd\n", capture_output=True, timeout=30)
    assert cli.returncode == 0, cli.stderr + a.log().encode()
    assert cli.stdout == b"hello-from-kernel\n"
    assert b"node=2 name=node2.tail0.ts.net. login=bob@example.com" in cli.stderr
    srv.wait(timeout=10)
    assert open(got).read() == "hello-from-netstackd\n"


def test_netstackd_dial_refused(ns_pair):
    a, b = ns_pair
    b.ping(A4, count=1)
    cli = subprocess.run(a.host.cmd(need(TKNS), "--api", a.api, "dial", B4, "9999"),
                         capture_output=True, timeout=30)
    assert cli.returncode == 1 and b"connection refused" in cli.stderr, cli.stderr


def test_netstackd_large_transfer_checksum(ns_pair):
    """TK_NS_BIG_MIB (default 100; check.sh's release step: 1024) kernel ->
    netstackd and netstackd -> kernel, checksums compared."""
    a, b = ns_pair
    mib = int(os.environ.get("TK_NS_BIG_MIB", "100"))
    size = mib * 1024 * 1024

    def sha(path):
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for c in iter(lambda: f.read(1 << 20), b""):
                h.update(c)
        return h.hexdigest()
    blob = os.path.join(a.dir, "blob")
    with open(blob, "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(1 << 20))
    want = sha(blob)
    # kernel -> netstackd: tk-ns cat writes what it receives to a file
    got = os.path.join(a.dir, "got")
    srv = subprocess.Popen(a.host.cmd(need(TKNS), "--api", a.api, "listen", "7000", "cat"),
                           stdin=subprocess.DEVNULL, stdout=open(got, "wb"),
                           stderr=subprocess.PIPE)
    time.sleep(0.5)
    t0 = time.time()
    r = b.host.run("python3", TOOL, "send", A4, "7000", blob, check=False, timeout=300)
    up = size * 8 / (time.time() - t0) / 1e6
    assert r.returncode == 0, r.stderr + a.log()
    srv.wait(timeout=60)
    assert sha(got) == want
    os.unlink(got)
    # netstackd -> kernel
    got2 = os.path.join(a.dir, "got2")
    ksrv = b.host.popen("python3", TOOL, "serve", B4, "7001", got2)
    wait_line(ksrv, "listening")
    t0 = time.time()
    cli = subprocess.run(a.host.cmd(need(TKNS), "--api", a.api, "dial", B4, "7001"),
                         stdin=open(blob, "rb"), capture_output=True, timeout=300)
    down = size * 8 / (time.time() - t0) / 1e6
    assert cli.returncode == 0, cli.stderr
    ksrv.wait(timeout=60)
    assert sha(got2) == want
    for x in (got2, blob):
        os.unlink(x)
    print(f"netstackd {mib} MiB: kernel->netstackd {up:.0f} Mbit/s, "
          f"netstackd->kernel {down:.0f} Mbit/s")


def test_netstackd_concurrent_connections(ns_pair):
    """500 concurrent kernel connections to an echo service behind netstackd."""
    a, b = ns_pair
    n = int(os.environ.get("TK_NS_CONNS", "500"))
    srv = a.tkns("listen", "7100", "echo")
    wait_line(srv, "listening")
    script = f"""
import socket, os, sys, selectors
n = {n}
socks, want, got = [], {{}}, {{}}
for i in range(n):
    s = socket.create_connection(("{A4}", 7100), timeout=30)
    socks.append(s)
for i, s in enumerate(socks):       # all open at once, then traffic on each
    d = os.urandom(20000) + b"end%d" % i
    want[i] = d
    s.sendall(d)
    s.shutdown(socket.SHUT_WR)
for i, s in enumerate(socks):
    buf = b""
    while True:
        c = s.recv(65536)
        if not c:
            break
        buf += c
    if buf != want[i]:
        print("mismatch", i, len(buf)); sys.exit(1)
    s.close()
print("ok", n)
"""
    r = b.host.run("python3", "-c", script, check=False, timeout=240)
    assert r.returncode == 0 and r.stdout.strip() == f"ok {n}", r.stdout + r.stderr


def test_netstackd_udp_echo(ns_pair):
    a, b = ns_pair
    srv = a.tkns("udp", "5353", "echo")
    wait_line(srv, "udp")
    script = f"""
import socket, sys
for fam, addr in ((socket.AF_INET, "{A4}"), (socket.AF_INET6, "{A6}")):
    s = socket.socket(fam, socket.SOCK_DGRAM); s.settimeout(2)
    for i in range(3):
        for size in (1, 1000, 1200):
            m = bytes([i]) * size
            for _ in range(5):
                s.sendto(m, (addr, 5353))
                try:
                    d, src = s.recvfrom(65536)
                    break
                except socket.timeout:
                    continue
            else:
                print("no echo", addr); sys.exit(1)
            if d != m:
                print("boundary/contents broken", len(d), size); sys.exit(1)
print("ok")
"""
    r = b.host.run("python3", "-c", script, check=False, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_netstackd_half_close_and_close(ns_pair):
    """Kernel closes its write side first: netstackd's echo still answers;
    and a peer's reset reaches the application as a closed stream."""
    a, b = ns_pair
    srv = a.tkns("listen", "7200", "echo")
    wait_line(srv, "listening")
    script = f"""
import socket, sys
s = socket.create_connection(("{A4}", 7200), timeout=20)
s.sendall(b"x" * 100000)
s.shutdown(socket.SHUT_WR)          # FIN first
buf = b""
while True:
    c = s.recv(65536)
    if not c: break
    buf += c
assert buf == b"x" * 100000, len(buf)
print("ok")
"""
    r = b.host.run("python3", "-c", script, check=False, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_netstackd_slow_reader_backpressure(ns_pair):
    """An application that does not read closes the TCP window: the kernel
    sender stalls (bounded memory in netstackd), then, once the application
    reads, every byte arrives."""
    a, b = ns_pair
    srv = subprocess.Popen(a.host.cmd(need(TKNS), "--api", a.api, "listen", "7300", "sink"),
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL)
    wait_line(srv, "listening")
    srv.send_signal(19)          # SIGSTOP: the application stops reading
    script = f"""
import socket, time, sys
s = socket.create_connection(("{A4}", 7300), timeout=10)
s.setblocking(False)
sent, t0, last = 0, time.time(), 0
chunk = b"y" * 65536
while time.time() - t0 < 4:
    try:
        sent += s.send(chunk)
    except BlockingIOError:
        time.sleep(0.01)
print(sent, flush=True)
time.sleep(30)                   # the test kills it
"""
    k = b.host.popen("python3", "-c", script)
    line = wait_line(k, "", timeout=30)
    sent = int(line)
    # window (4 MiB) + kernel send buffer + socket buffers: far below what
    # 4 s at full speed would move
    assert sent < 48 * 1024 * 1024, sent
    assert rss_kib(a.ns.pid) < 64 * 1024, rss_kib(a.ns.pid)
    srv.send_signal(18)          # SIGCONT
    srv.terminate()
    k.kill()
    k.wait(timeout=10)
    srv.wait(timeout=10)


def test_netstackd_survives_wgd_restart(ns_pair):
    """kill -9 wgd in the middle of a transfer, restart it: the TCP
    connection through netstackd completes with the right checksum."""
    a, b = ns_pair
    size = 64 * 1024 * 1024
    blob = os.path.join(a.dir, "blob-r")
    with open(blob, "wb") as f:
        f.write(os.urandom(size))
    want = hashlib.sha256(open(blob, "rb").read()).hexdigest()
    got = os.path.join(a.dir, "got-r")
    ksrv = b.host.popen("python3", TOOL, "serve", B4, "7400", got)
    wait_line(ksrv, "listening")
    # a slow-ish sender so the transfer is still running when wgd dies
    cli = subprocess.Popen(a.host.cmd("python3", TOOL, "pace", blob, str(16 << 20)),
                           stdout=subprocess.PIPE)
    dial = subprocess.Popen(a.host.cmd(need(TKNS), "--api", a.api, "dial", B4, "7400"),
                            stdin=cli.stdout, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    cli.stdout.close()
    for _ in range(100):
        if os.path.exists(got) and os.path.getsize(got) > 4 * 1024 * 1024:
            break
        time.sleep(0.05)
    assert os.path.getsize(got) > 0, "transfer never started"
    a.wgd.kill()                     # -9 mid-transfer
    a.wgd.wait()
    time.sleep(1)
    a.start_wgd()
    dial.wait(timeout=240)
    ksrv.wait(timeout=60)
    assert dial.returncode == 0, dial.stderr.read()
    assert hashlib.sha256(open(got, "rb").read()).hexdigest() == want, \
        f"got {os.path.getsize(got)} of {size} bytes"


def test_netstackd_bad_api_client_harms_nobody(ns_pair):
    a, b = ns_pair
    srv = a.tkns("listen", "7500", "http")
    wait_line(srv, "listening")
    script = f"""
import socket, struct, sys
def conn():
    s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect("{a.api}"); return s
# a well-framed request with a bad body: a clear error reply
s = conn()
s.sendall(struct.pack(">HBBI", 8 + 3, 1, 0, 42) + b"abc")
r = s.recv(1024)
ln, op, st, rid = struct.unpack(">HBBI", r[:8])
assert op == 0x81 and st == 1 and rid == 42, r
assert b"port" in r[8:], r
# an unknown op
s.sendall(struct.pack(">HBBI", 8, 99, 0, 43))
r = s.recv(1024)
assert r[3] == 1 and b"unknown operation" in r, r
# broken framing: dropped
s2 = conn(); s2.sendall(b"\\xff\\xff\\x01\\x00")
assert s2.recv(10) == b""
# disconnect mid-request
s3 = conn(); s3.sendall(b"\\x00\\x0a\\x01"); s3.close()
# listening on a taken port: EADDRINUSE
s.sendall(struct.pack(">HBBIH", 10, 1, 0, 44, 7500))
r = s.recv(1024)
assert r[3] == 2, r
print("ok")
"""
    r = a.host.run("python3", "-c", script, check=False, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    # the good client still serves
    r = b.host.run("curl", "-sS", "--max-time", "20", f"http://{A4}:7500/", check=False)
    assert r.returncode == 0 and "hello from netstackd" in r.stdout, r.stderr


def test_netstackd_status(ns_pair):
    a, b = ns_pair
    b.ping(A4, count=2)
    st = a.ns_status()
    assert st["component"] == "netstackd"
    assert st["self"]["addresses"] == [f"{A4}/32", f"{A6}/128"], st["self"]
    c = st["counters"]
    assert c["pkts_in"] >= 2 and c["pkts_out"] >= 2 and c["netmap_peers"] == 1, c


def test_netstackd_restart_listeners_come_back(ns_pair):
    """kill -9 netstackd: its connections are gone (documented); restarted,
    the API socket is back at its path and a new listener serves."""
    a, b = ns_pair
    srv = a.tkns("listen", "7600", "http")
    wait_line(srv, "listening")
    r = b.host.run("curl", "-sS", "--max-time", "20", f"http://{A4}:7600/", check=False)
    assert r.returncode == 0, r.stderr
    a.ns.kill()
    a.ns.wait()
    srv.wait(timeout=10)             # its API connection ended with netstackd
    a.start_netstackd()
    srv = a.tkns("listen", "7600", "http")
    wait_line(srv, "listening")
    r = b.host.run("curl", "-sS", "--max-time", "20", f"http://{A4}:7600/", check=False)
    assert r.returncode == 0 and "hello from netstackd" in r.stdout, r.stderr + a.log()
