"""wgd against Debian's wireguard-go, in network namespaces, configured by
wg(8) through each side's UAPI socket, with the kernel's own ping and TCP
(iperf3) through the TUN devices."""

import json
import os
import shutil
import socket
import subprocess
import time

import pytest

import netns

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WGD = os.environ.get("TK_WGD", os.path.join(ROOT, "build", "wgd", "src", "wgd"))


def need(path_or_name):
    p = shutil.which(path_or_name) if "/" not in path_or_name else path_or_name
    if not p or not os.access(p, os.X_OK):
        pytest.fail(f"{path_or_name} is missing: tools/setup.sh installs/builds it")
    return p


class Node:
    """One WireGuard endpoint in a namespace: kind 'wgd' or 'wggo'."""

    def __init__(self, host, kind, tag, outer, inner, inner6, env=None):
        self.host, self.kind, self.outer, self.inner, self.inner6 = host, kind, outer, inner, inner6
        self.dev = f"tk{kind[:2]}{os.getpid() % 100000}{tag}"[:15]
        self.priv = subprocess.run(["wg", "genkey"], capture_output=True, text=True,
                                   check=True).stdout.strip()
        self.pub = subprocess.run(["wg", "pubkey"], input=self.priv, capture_output=True,
                                  text=True, check=True).stdout.strip()
        self.keyfile = f"/tmp/{self.dev}.key"
        with open(os.open(self.keyfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(self.priv + "\n")
        self.log = f"/tmp/{self.dev}.log"
        if kind == "wgd":
            self.proc = host.popen(need(WGD), self.dev, stdout=subprocess.DEVNULL,
                                   stderr=open(self.log, "w"),
                                   env=dict(os.environ, **(env or {})))
        else:
            env = dict(os.environ, WG_PROCESS_FOREGROUND="1",
                       WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD="1")
            self.proc = host.popen(need("wireguard-go"), "-f", self.dev, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(300):   # 15 s: CI machines can be loaded
            if host.run("wg", "show", self.dev, check=False).returncode == 0:
                break
            time.sleep(0.05)
        else:
            log = open(self.log).read() if os.path.exists(self.log) else ""
            raise RuntimeError(f"{kind} did not serve its UAPI socket for {self.dev} "
                               f"(exit {self.proc.poll()}): {log}")
        host.run("wg", "set", self.dev, "private-key", self.keyfile, "listen-port", "51820")
        host.run("ip", "addr", "add", f"{inner}/24", "dev", self.dev)
        host.run("ip", "-6", "addr", "add", f"{inner6}/64", "dev", self.dev)
        host.run("ip", "link", "set", self.dev, "up")

    def add_peer(self, other, endpoint=True, keepalive=0, pub=None):
        args = ["wg", "set", self.dev, "peer", pub or other.pub, "allowed-ips",
                f"{other.inner}/32,{other.inner6}/128"]
        if endpoint:
            ep = other.outer if ":" not in other.outer else f"[{other.outer}]"
            args += ["endpoint", f"{ep}:51820"]
        if keepalive:
            args += ["persistent-keepalive", str(keepalive)]
        self.host.run(*args)

    def dump(self):
        return self.host.run("wg", "show", self.dev, "dump").stdout

    def ping(self, addr, count=3, check=True):
        r = self.host.run("ping", "-c", str(count), "-i", "0.2", "-W", "2", addr, check=False)
        if check:
            assert r.returncode == 0, f"{self.kind} ping {addr}: {r.stdout}{r.stderr}"
        return r.returncode == 0

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        for f in (self.keyfile, self.log):
            if os.path.exists(f):
                os.unlink(f)


@pytest.fixture
def pair(topology):
    """Factory: pair("wgd", "wggo", v6_outer=False) -> (a, b) peered both ways."""
    made = []

    def make(kind_a, kind_b, v6_outer=False, peer=True, env=None, bindv6only=False):
        a, b = topology.host("a"), topology.host("b")
        if bindv6only:  # per-namespace: IPv6 sockets default to IPv6-only
            for h in (a, b):
                h.run("sysctl", "-qw", "net.ipv6.bindv6only=1")
        topology.link(a, "10.99.0.1/24", b, "10.99.0.2/24")
        for h, addr in ((a, "fd00:99::1/64"), (b, "fd00:99::2/64")):
            h.run("ip", "-6", "addr", "add", addr, "dev", h.veths[0], "nodad")
        oa, ob = ("fd00:99::1", "fd00:99::2") if v6_outer else ("10.99.0.1", "10.99.0.2")
        na = Node(a, kind_a, "a", oa, "10.100.0.1", "fd00:100::1", env=env)
        nb = Node(b, kind_b, "b", ob, "10.100.0.2", "fd00:100::2", env=env)
        made.extend([na, nb])
        if peer:
            na.add_peer(nb)
            nb.add_peer(na)
        return na, nb

    yield make
    for n in made:
        n.close()


def iperf(client, server_host, addr, seconds=3):
    """Gbit/s of one iperf3 TCP flow from client to addr (served on server_host)."""
    srv = server_host.popen("iperf3", "-s", "-B", addr, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        err = None
        for _ in range(50):  # until the server listens
            r = client.host.run("iperf3", "-c", addr, "-t", str(seconds), "-J", check=False,
                                timeout=seconds + 30)
            try:
                d = json.loads(r.stdout)
            except ValueError:
                d = {"error": r.stdout + r.stderr}
            if "error" not in d and "sum_received" in d.get("end", {}):
                return d["end"]["sum_received"]["bits_per_second"] / 1e9
            err = d.get("error")
            time.sleep(0.2)
        raise AssertionError(f"iperf3 to {addr} never ran: {err}")
    finally:
        srv.terminate()
        srv.wait(timeout=10)


@pytest.mark.parametrize("initiator", ["wgd", "wggo"])
@pytest.mark.parametrize("v6_outer", [False, True])
def test_wgd_with_wireguard_go(pair, initiator, v6_outer):
    a, b = pair("wgd", "wggo", v6_outer=v6_outer)
    first, second = (a, b) if initiator == "wgd" else (b, a)
    first.ping(second.inner)          # this side initiates the handshake
    second.ping(first.inner)
    first.ping(second.inner6)         # IPv6 inside
    second.ping(first.inner6)
    dump = a.dump().splitlines()
    iface, peer = dump[0].split("\t"), dump[1].split("\t")
    assert iface[2] == "51820" and peer[0] == b.pub
    assert int(peer[4]) > 0, "latest handshake must be set"       # wg(8) dump fields
    assert int(peer[5]) > 0 and int(peer[6]) > 0                  # rx/tx bytes
    outer = "[fd00:99::2]:51820" if v6_outer else "10.99.0.2:51820"
    assert peer[2] == outer


@pytest.mark.parametrize("gso", ["udp-gso", "no-gso"])
def test_wgd_tcp_both_ways(pair, gso):
    # with UDP GSO/GRO (default) and with datagrams one by one
    a, b = pair("wgd", "wggo", env={"TK_WGD_NO_GSO": "1"} if gso == "no-gso" else None)
    a.ping(b.inner)
    up = iperf(a, b.host, b.inner)
    down = iperf(b, a.host, a.inner)
    assert up > 0.05 and down > 0.05, (up, down)


def test_wgd_with_wgd(pair):
    a, b = pair("wgd", "wgd")
    a.ping(b.inner)
    b.ping(a.inner6)


def test_wgd_ipv4_peer_with_bindv6only(pair):
    # wgd's one dual-stack socket must not depend on the host default
    a, b = pair("wgd", "wggo", bindv6only=True)
    assert a.host.run("sysctl", "-n", "net.ipv6.bindv6only").stdout.strip() == "1"
    a.ping(b.inner)
    b.ping(a.inner)


def test_wgd_roaming(pair):
    a, b = pair("wgd", "wggo")
    a.ping(b.inner)
    # a moves to a new outer address; b learns it from a's next packet
    dev = a.host.veths[0]
    a.host.run("ip", "addr", "del", "10.99.0.1/24", "dev", dev)
    a.host.run("ip", "addr", "add", "10.99.0.11/24", "dev", dev)
    a.ping(b.inner)
    assert "10.99.0.11:51820" in b.dump()
    b.ping(a.inner)
    # and the other way: wireguard-go moves, wgd follows
    devb = b.host.veths[0]
    b.host.run("ip", "addr", "del", "10.99.0.2/24", "dev", devb)
    b.host.run("ip", "addr", "add", "10.99.0.12/24", "dev", devb)
    b.host.run("wg", "set", b.dev, "peer", a.pub, "endpoint", "10.99.0.11:51820")
    b.ping(a.inner)
    assert "10.99.0.12:51820" in a.dump()
    a.ping(b.inner)


def test_wgd_wrong_key_gets_nothing_through(pair):
    a, b = pair("wgd", "wggo", peer=False)
    a.add_peer(b)
    # b knows a's address range but under another key: a's handshakes fail
    bogus = subprocess.run(["wg", "pubkey"], input=subprocess.run(
        ["wg", "genkey"], capture_output=True, text=True).stdout, capture_output=True,
        text=True).stdout.strip()
    b.add_peer(a, pub=bogus)
    assert not a.ping(b.inner, count=2, check=False)
    assert not b.ping(a.inner, count=2, check=False)
    peer = a.dump().splitlines()[1].split("\t")
    assert peer[4] == "0" and peer[5] == "0", "no handshake, nothing received"


def test_wgd_keepalive_through_nat(topology):
    inside, box, outside = topology.host("in"), topology.host("nat"), topology.host("out")
    pub = topology.nat(inside, box, outside, mapping="eim")
    # short conntrack timeouts make an idle mapping expire quickly
    box.run("sysctl", "-qw", "net.netfilter.nf_conntrack_udp_timeout=3")
    box.run("sysctl", "-qw", "net.netfilter.nf_conntrack_udp_timeout_stream=3")
    a = Node(inside, "wgd", "a", "10.98.1.2", "10.100.0.1", "fd00:100::1")
    b = Node(outside, "wggo", "b", "10.98.2.2", "10.100.0.2", "fd00:100::2")
    try:
        b.add_peer(a, endpoint=False)      # b can only answer a's NAT mapping
        a.add_peer(b, keepalive=1)         # (after b: the first keepalive initiates)
        a.ping(b.inner)
        assert f"{pub}:" in b.dump()
        time.sleep(8)                     # idle > conntrack timeout
        b.ping(a.inner)                   # works only if keepalives held the mapping
    finally:
        a.close()
        b.close()


def uapi(dev, request):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(f"/var/run/wireguard/{dev}.sock")
    s.sendall(request.encode())
    out = b""
    while not out.endswith(b"\n\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    s.close()
    return out.decode()


@pytest.mark.parametrize("bad", [
    "set=1\npublic_key=zz\n\n",
    "set=1\nlisten_port=70000\n\n",
    "set=1\nbogus_key=1\n\n",
    "set=1\npublic_key=" + "ab" * 32 + "\nallowed_ip=10.0.0.0/33\n\n",
    "set=1\npublic_key=" + "ab" * 32 + "\nendpoint=nohost\n\n",
    "frobnicate=1\n\n",
    "set=1\nprivate_key=" + "00" * 32 + "\n\n",
])
def test_wgd_bad_uapi_changes_nothing(pair, bad):
    a, b = pair("wgd", "wggo")
    before = uapi(a.dev, "get=1\n\n")
    # every bad request carries a valid change first: it must not apply
    req = bad.replace("set=1\n", "set=1\nlisten_port=40000\n", 1)
    resp = uapi(a.dev, req)
    assert resp.startswith("errno=") and resp != "errno=0\n\n", resp
    after = uapi(a.dev, "get=1\n\n")
    strip = lambda t: "\n".join(l for l in t.splitlines() if not l.startswith(("rx_", "tx_", "last_")))
    assert strip(before) == strip(after)
    a.ping(b.inner)


def latest_handshake(node, other):
    for line in node.dump().splitlines()[1:]:
        f = line.split("\t")
        if f[0] == other.pub:
            return int(f[4])
    return 0


def test_wgd_rekey_with_wireguard_go(topology):
    """REKEY_AFTER_TIME (120 s) in real time, both roles at once: in one pair
    wgd started the session and must rekey it, in the other wireguard-go
    did.  Pings run throughout; a rekey must not interrupt them."""
    pairs = []
    try:
        for tag, first in (("r", "wgd"), ("s", "wggo")):
            ha, hb = topology.host(tag + "a"), topology.host(tag + "b")
            topology.link(ha, "10.96.0.1/24", hb, "10.96.0.2/24")
            a = Node(ha, "wgd", tag + "a", "10.96.0.1", "10.102.0.1", "fd00:102::1")
            b = Node(hb, "wggo", tag + "b", "10.96.0.2", "10.102.0.2", "fd00:102::2")
            pairs.append((a, b))
            a.add_peer(b)
            b.add_peer(a)
            init, resp = (a, b) if first == "wgd" else (b, a)
            init.ping(resp.inner, count=1)
        start = {id(a): (latest_handshake(a, b), latest_handshake(b, a)) for a, b in pairs}
        pings = []
        for a, b in pairs:   # both directions keep sending through the rekey
            for src, dst in ((a, b), (b, a)):
                pings.append(src.host.popen("ping", "-c", "270", "-i", "0.5", "-W", "2",
                                            dst.inner, stdout=subprocess.PIPE,
                                            stderr=subprocess.STDOUT))
        outs = [p.communicate(timeout=200)[0] for p in pings]
        for a, b in pairs:
            ha0, hb0 = start[id(a)]
            ha1, hb1 = latest_handshake(a, b), latest_handshake(b, a)
            assert ha1 >= ha0 + 110 and hb1 >= hb0 + 110, \
                f"no rekey: wgd {ha0}->{ha1}, wireguard-go {hb0}->{hb1}"
        for out in outs:
            last = [l for l in out.splitlines() if "packets transmitted" in l][0]
            sent, got = int(last.split()[0]), int(last.split()[3])
            assert sent - got <= 2, f"rekey interrupted traffic: {last}"
    finally:
        for a, b in pairs:
            a.close()
            b.close()
