"""wgd as a tailkit component against Debian's wireguard-go.

wgd runs with its buses and state (`wgd --bus DIR --state DIR`), takes its
peers and packet filter from the control bus (tk-feed publishes a netmap
from a tailcfg-style JSON file, as ctrld will), and hands decrypted packets
to the packet bus, where tk-tun moves them to and from a TUN device so the
kernel's ping and TCP run over it.  The other end is wireguard-go configured
with wg(8).  What is tailkit's own here: the netmap source (tk-feed) and the
packet bus; the WireGuard peer, the TCP stacks and the tools are not.
"""

import base64
import json
import os
import signal
import subprocess
import time

import pytest

from test_wgd import Node, ROOT, iperf, need

BUILD = os.path.join(ROOT, "build")
WGD = os.environ.get("TK_WGD", os.path.join(BUILD, "wgd", "src", "wgd"))
TKTUN = os.path.join(BUILD, "tools", "tun", "tk-tun")
FEED = os.path.join(BUILD, "tools", "feed", "tk-feed")
STATUS = os.path.join(BUILD, "tools", "feed", "tk-status")
SNAPSHOT = os.path.join(BUILD, "tools", "feed", "tk-snapshot")


def b64_to_nodekey(b64):
    return "nodekey:" + base64.b64decode(b64).hex()


def nodekey_to_b64(nk):
    return base64.b64encode(bytes.fromhex(nk.split(":", 1)[1])).decode()


class BusNode:
    """wgd + tk-tun + tk-feed in one namespace, sharing one bus directory."""

    def __init__(self, host, tmp, tag, outer, inner):
        self.host, self.outer, self.inner = host, outer, inner
        self.dir = os.path.join(tmp, f"node{tag}")
        self.bus = os.path.join(self.dir, "bus")
        self.state = os.path.join(self.dir, "state")
        self.dev = f"tkt{os.getpid() % 100000}{tag}"[:15]
        self.netmap = os.path.join(self.dir, "netmap.json")
        os.makedirs(self.dir, exist_ok=True)
        self.wgd = self.tun = self.feed = None
        self.start_wgd()
        self.tun = host.popen(need(TKTUN), "--bus", self.bus, self.dev,
                              stderr=open(os.path.join(self.dir, "tun.log"), "w"))
        for _ in range(100):
            if host.run("ip", "link", "show", self.dev, check=False).returncode == 0:
                break
            time.sleep(0.05)
        host.run("ip", "addr", "add", f"{inner}/24", "dev", self.dev)
        host.run("ip", "link", "set", self.dev, "up")
        st = self.status()
        self.nodekey = st["self"]["key"]
        self.pub = nodekey_to_b64(self.nodekey)

    def start_wgd(self):
        self.wgd = self.host.popen(need(WGD), "--bus", self.bus, "--state", self.state,
                                   "--port", "51820",
                                   stderr=open(os.path.join(self.dir, "wgd.log"), "a"))
        for _ in range(100):
            if os.path.exists(os.path.join(self.bus, "wgd.rpc")):
                break
            time.sleep(0.05)

    def status(self):
        for _ in range(50):
            r = subprocess.run([need(STATUS), f"ipc://{self.bus}/wgd.rpc"],
                               capture_output=True, text=True, timeout=10)
            if r.returncode == 0:
                return json.loads(r.stdout)
            time.sleep(0.1)
        raise AssertionError(f"wgd status: {r.stderr}")

    def publish(self, netmap):
        with open(self.netmap + ".tmp", "w") as f:
            json.dump(netmap, f)
        os.replace(self.netmap + ".tmp", self.netmap)
        before = self.status()["counters"]
        if self.feed is None:
            self.feed = subprocess.Popen([need(FEED), "--bus", self.bus, self.netmap],
                                         stderr=open(os.path.join(self.dir, "feed.log"), "a"))
            key = "netmap_snapshots"
        else:
            self.feed.send_signal(signal.SIGHUP)
            key = "netmap_deltas"
        # until wgd applied it: as a delta, or as a snapshot when it resynced
        # (pub/sub is lossy: a delta missed under load shows as a seq gap and
        # a resync, which is the bus contract working, not a failure)
        deadline = time.time() + 20
        while time.time() < deadline:
            now = self.status()["counters"]
            if now[key] > before[key] or (key == "netmap_deltas" and
                                          now["netmap_snapshots"] > before["netmap_snapshots"]):
                return
            time.sleep(0.05)
        raise AssertionError(f"wgd never applied the netmap ({key})")

    def ping(self, addr, count=3, check=True):
        r = self.host.run("ping", "-c", str(count), "-i", "0.2", "-W", "2", addr, check=False)
        if check:
            assert r.returncode == 0, f"ping {addr}: {r.stdout}{r.stderr}"
        return r.returncode == 0

    def close(self):
        for p in (self.feed, self.tun, self.wgd):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=5)
                    raise
                if p is self.wgd:   # a clean stop; under ASan also leak-free
                    log = open(os.path.join(self.dir, "wgd.log")).read()[-3000:]
                    assert p.returncode == 0, f"wgd exited {p.returncode}: {log}"


ALLOW_ALL = [{"SrcIPs": ["*"], "DstPorts": [{"IP": "*", "Ports": {"First": 0, "Last": 65535}}]}]


def netmap(a, peers, packet_filter=ALLOW_ALL):
    nm = {"Node": {"ID": 1, "Key": a.nodekey, "Addresses": [f"{a.inner}/32"]},
          "Peers": peers}
    if packet_filter is not None:
        nm["PacketFilter"] = packet_filter
    return nm


def peer_of(b, node_id=2, endpoint=None):
    return {"ID": node_id, "Key": b64_to_nodekey(b.pub), "Name": f"peer{node_id}.",
            "Addresses": [f"{b.inner}/32"], "AllowedIPs": [f"{b.inner}/32", f"{b.inner6}/128"],
            "Endpoints": [endpoint or f"{b.outer}:51820"]}


@pytest.fixture
def bus_pair(topology, tmp_path):
    a_host, b_host = topology.host("a"), topology.host("b")
    topology.link(a_host, "10.97.0.1/24", b_host, "10.97.0.2/24")
    a = BusNode(a_host, str(tmp_path), "a", "10.97.0.1", "10.101.0.1")
    b = Node(b_host, "wggo", "b", "10.97.0.2", "10.101.0.2", "fd00:101::2")
    # wireguard-go knows wgd under the key wgd generated and keeps in state
    b.host.run("wg", "set", b.dev, "peer", a.pub, "allowed-ips", f"{a.inner}/32",
               "endpoint", "10.97.0.1:51820")
    yield a, b
    a.close()
    b.close()


def handshake_time(b, a):
    for line in b.dump().splitlines()[1:]:
        f = line.split("\t")
        if f[0] == a.pub:
            return int(f[4])
    return 0


def test_bus_netmap_peer_ping_and_tcp(bus_pair):
    a, b = bus_pair
    a.publish(netmap(a, [peer_of(b)]))
    a.ping(b.inner)                 # wgd initiates (endpoint from the netmap)
    b.ping(a.inner)
    up = iperf(a, b.host, b.inner)
    down = iperf(b, a.host, a.inner)
    assert up > 0.05 and down > 0.05, (up, down)
    st = a.status()
    assert st["counters"]["handshakes_completed"] >= 1
    (p,) = st["peers"]
    assert p["id"] == 2 and p["node_key"] == b64_to_nodekey(b.pub)
    assert p["cur_addr"] == "10.97.0.2:51820" and p["rx_bytes"] > 0


def test_bus_packet_filter(bus_pair):
    a, b = bus_pair
    a.publish(netmap(a, [peer_of(b)], packet_filter=[]))     # present but empty: deny all
    # a's own pings go out and their replies come back (ICMP responses pass)
    a.ping(b.inner)
    # b's pings to a are new inbound flows: dropped by wgd's filter
    assert not b.ping(a.inner, count=2, check=False)
    st = a.status()["counters"]
    assert st["filter_in_no_rule"] >= 2
    # TCP from b to a: SYNs dropped; TCP from a to b: return traffic passes
    r = b.host.run("timeout", "3", "bash", "-c", f"echo > /dev/tcp/{a.inner}/22",
                   check=False)
    assert r.returncode != 0
    srv = b.host.popen("iperf3", "-s", "-1", "-B", b.inner, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        r = a.host.run("iperf3", "-c", b.inner, "-t", "1", check=False, timeout=20)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        srv.kill()
        srv.wait()
    # a rule for TCP 5201 from b only: iperf3 from b works, TCP to another
    # port does not.  ICMP passes: Go's filter lets ICMP through when a rule
    # matches source and destination IP, whatever its protocols and ports.
    rule = [{"SrcIPs": [f"{b.inner}/32"], "DstPorts": [{"IP": f"{a.inner}/32",
             "Ports": {"First": 5201, "Last": 5201}}], "IPProto": [6]}]
    a.publish(netmap(a, [peer_of(b)], packet_filter=rule))
    assert iperf(b, a.host, a.inner, seconds=1) > 0.01
    lst = a.host.popen("timeout", "5", "nc", "-l", "-p", "5202", stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    r = b.host.run("timeout", "2", "bash", "-c", f"echo > /dev/tcp/{a.inner}/5202",
                   check=False)
    lst.kill()
    lst.wait()
    assert r.returncode != 0, "TCP to a port no rule opens got through"
    b.ping(a.inner)
    # back to allow-all
    a.publish(netmap(a, [peer_of(b)]))
    b.ping(a.inner)


def test_bus_no_filter_denies(bus_pair):
    a, b = bus_pair
    a.publish(netmap(a, [peer_of(b)], packet_filter=None))   # never received
    # like Go's filter.NewAllowNone: nothing comes in, not even replies
    assert not a.ping(b.inner, count=2, check=False)
    assert not b.ping(a.inner, count=2, check=False)
    assert a.status()["counters"]["filter_in_no_filter"] >= 2
    a.publish(netmap(a, [peer_of(b)]))
    a.ping(b.inner)


def test_bus_deltas_keep_sessions(bus_pair):
    a, b = bus_pair
    a.publish(netmap(a, [peer_of(b)]))
    a.ping(b.inner)
    hs = handshake_time(b, a)
    assert hs > 0
    # another peer joins; b's record is unchanged: its session must survive
    other = {"ID": 3, "Key": "nodekey:" + "11" * 32, "AllowedIPs": ["10.101.0.3/32"],
             "Endpoints": ["10.97.0.3:51820"]}
    time.sleep(1.1)   # handshake times have 1 s resolution
    a.publish(netmap(a, [peer_of(b), other]))
    a.ping(b.inner)
    assert handshake_time(b, a) == hs, "an unrelated delta re-handshook the peer"
    assert len(a.status()["peers"]) == 2
    # the peer is removed: nothing gets through; it comes back: it works again
    a.publish(netmap(a, [other]))
    assert not a.ping(b.inner, count=2, check=False)
    assert [p["id"] for p in a.status()["peers"]] == [3]
    a.publish(netmap(a, [peer_of(b), other]))
    a.ping(b.inner)


def test_bus_endpoint_change_from_netmap(bus_pair):
    a, b = bus_pair
    a.publish(netmap(a, [peer_of(b)]))
    a.ping(b.inner)
    # b moves; control tells wgd the new endpoint (b does not speak first)
    dev = b.host.veths[0]
    b.host.run("ip", "addr", "del", "10.97.0.2/24", "dev", dev)
    b.host.run("ip", "addr", "add", "10.97.0.12/24", "dev", dev)
    a.publish(netmap(a, [peer_of(b, endpoint="10.97.0.12:51820")]))
    ok = a.ping(b.inner, check=False)
    assert ok, json.dumps(a.status(), indent=1)
    assert a.status()["peers"][0]["cur_addr"] == "10.97.0.12:51820"


def test_bus_restart_keeps_key_and_recovers(bus_pair):
    a, b = bus_pair
    a.publish(netmap(a, [peer_of(b)]))
    a.ping(b.inner)
    a.wgd.kill()                    # -9: no clean shutdown
    a.wgd.wait()
    a.start_wgd()
    assert a.status()["self"]["key"] == a.nodekey, "node key must survive a restart"
    # the netmap comes back from tk-feed's snapshot; tk-tun reconnects
    for _ in range(100):
        if a.status()["counters"]["netmap_snapshots"] >= 1:
            break
        time.sleep(0.05)
    a.ping(b.inner, count=5)
    b.ping(a.inner)


def test_bus_bad_netmap_refused_keeps_last(bus_pair):
    a, b = bus_pair
    a.publish(netmap(a, [peer_of(b)]))
    with open(a.netmap, "w") as f:
        f.write('{"Peers": [{"ID": "two"}]}')
    a.feed.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert a.feed.poll() is None
    a.ping(b.inner)
    assert len(a.status()["peers"]) == 1


def endpoint_addrs(node):
    """The addresses in wgd's "endpoints" topic (what ctrld reports)."""
    r = subprocess.run([need(SNAPSHOT), f"ipc://{node.bus}/wgd.rpc", "endpoints"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout).get("body", {})
    return [e["addr"]["addr"] for e in body.get("endpoints", [])]


def test_bus_endpoints_skip_tailnet_addresses(bus_pair):
    """Issue 17 item 16: wgd never offers a tailnet address or its own tunnel
    as an endpoint (Go: net/netmon skips tsaddr.IsTailscaleIP and the
    Tailscale interface).  The node's TUN (tk-tun's device) is up with its
    tailnet addresses; a dummy interface has a CGNAT-range address next to
    an ordinary one; another (both idle TUNs) is named like Go's tunnel (tailscale*)."""
    a, b = bus_pair
    h = a.host
    h.run("ip", "addr", "add", "100.64.0.1/32", "dev", a.dev)
    h.run("ip", "addr", "add", "fd7a:115c:a1e0::1/128", "dev", a.dev)
    h.run("ip", "tuntap", "add", "dev", "tkdum0", "mode", "tun")
    h.run("ip", "addr", "add", "100.100.5.5/32", "dev", "tkdum0")
    h.run("ip", "addr", "add", "192.0.2.9/24", "dev", "tkdum0")
    h.run("ip", "link", "set", "tkdum0", "up")
    h.run("ip", "tuntap", "add", "dev", "tailscale7", "mode", "tun")
    h.run("ip", "addr", "add", "198.51.100.7/24", "dev", "tailscale7")
    h.run("ip", "link", "set", "tailscale7", "up")
    # the netmap's self address (a.inner, on a.dev) names the node's tunnel
    a.publish(netmap(a, [peer_of(b)]))
    # a fresh scan: wgd restarts, takes the netmap from tk-feed's snapshot
    a.wgd.terminate()
    a.wgd.wait(timeout=20)
    a.start_wgd()
    for _ in range(100):
        if a.status()["counters"]["netmap_snapshots"] >= 1:
            break
        time.sleep(0.05)
    addrs = endpoint_addrs(a)
    assert "10.97.0.1" in addrs, addrs          # the real link
    assert "192.0.2.9" in addrs, addrs          # an ordinary address stays
    for bad in ("100.64.0.1", "fd7a:115c:a1e0::1", "100.100.5.5",   # tailnet
                a.inner,                                             # own TUN
                "198.51.100.7"):                                     # tailscale*
        assert bad not in addrs, (bad, addrs)
    a.ping(b.inner)
