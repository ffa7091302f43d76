"""Direct paths (issue 15): disco over UDP and path selection with Go nodes.

A split edge deployment: wgd runs in its own network namespace ("edge"),
linked by a veth to a second namespace ("core") where everything else
runs: Tailscale's testcontrol and a Go tsnet node (interop-peer), Go's
derper, and tailkit's ctrld, derpd and netstackd.  The daemons meet on the
ipc:// buses in the test's directory, which namespaces share.  wgd's only
non-loopback address is 10.97.1.2; go1's is 10.97.1.1: the direct path is
the veth, the relayed one goes through derper on core's loopback.

Asserted (with go1): traffic flows first; wgd then confirms a direct path to go1 by
disco (its status shows go1's veth address, not the DERP pseudo-address),
and a bulk transfer leaves DERP idle; when the veth drops UDP mid-transfer,
wgd falls back to DERP and the transfer completes with the right checksum;
when UDP passes again, the path returns to direct.

tailkit <-> tailkit: two edge nodes, each wgd in its own namespace
(10.97.1.2 and 10.97.2.2), routed through core (no NAT): both go direct to
each other and a transfer between them leaves DERP idle.
"""
import contextlib
import json
import os
import time

import pytest

from conftest import binary, wait_for
from test_derp_node import DERPD, SNAPSHOT, WGD, need, rpc_json
from test_node_derp import UserspaceNode
from test_node_e2e import Transfer, apis, echo, node_reaches, serve, up  # noqa: F401

EDGE, CORE = "10.97.1.2", "10.97.1.1"

class EdgeNode(UserspaceNode):
    """UserspaceNode with wgd in `edge` and ctrld/derpd in `core`."""

    def __init__(self, tmp, control_url, auth_key, edge, core, hostname="tkedge"):
        self.edge, self.core = edge, core
        os.makedirs(tmp, exist_ok=True)
        super().__init__(tmp, control_url, auth_key, hostname=hostname, mode="split")

    def start_wgd(self):
        self._spawn("wgd", [need(WGD), "--bus", self.bus, "--state",
                            os.path.join(self.tmp, "wgd-state"), "--no-uapi"], host=self.edge)
        wait_for(lambda: self.status("wgd"), 20, "wgd status")

    def start_derpd(self, *extra):
        self._spawn("derpd", [need(DERPD), "client", "--bus", self.bus, "--derp-http", *extra],
                    host=self.core)

    def start_ctrld(self):
        from test_derp_node import CTRLD
        self._spawn("ctrld", [need(CTRLD), "--bus", self.bus, "--state",
                              os.path.join(self.tmp, "ctrld-state"), "--control-url",
                              self.control_url, "--authkey", self.auth_key,
                              "--hostname", self.hostname], host=self.core)


def start_derper(host, tmp, ip="127.0.0.1"):
    """Go's derper in host, DERP on ip:3340 and STUN on ip:3478.  Bound to
    that one address: a STUN server on a wildcard socket answers a client on
    another link from that link's address, which no NAT's mapping matches
    (the client's netcheck then finds "UDP blocked")."""
    derper = host.popen(binary("derper"), "-a", f"{ip}:3340",
                        "-http-port", "-1", "-stun-port", "3478", "-c",
                        os.path.join(tmp, "derper.json"))
    wait_for(lambda: host.run("python3", "-c", "import socket;socket.create_connection("
                              f"('{ip}',3340),1)", check=False).returncode == 0,
             20, "derper")
    return derper


def start_core(core, tmp, derp_ip="127.0.0.1", derper_host=None):
    """interop-peer (testcontrol + go1) inside core, with derper (started in
    core unless derper_host has one) at derp_ip:3340."""
    derper = start_derper(core, tmp) if derper_host is None else None
    extra = ["-v"] if os.environ.get("TK_PEER_VERBOSE") else []
    peer = core.popen(binary("interop-peer"), "-nodes", "1", "-derp", f"{derp_ip}:3340",
                      "-derp-stun-port", "3478", "-derp-http", *extra,
                      stderr=open(os.path.join(tmp, "interop-peer.log"), "w"))
    deadline = time.time() + 120
    while time.time() < deadline:
        line = peer.stdout.readline()
        if not line:
            break
        if line.startswith("{"):
            return derper, peer, json.loads(line)
    pytest.fail("interop-peer in core printed no JSON line")


def go_http(core, method, url, body=None):
    return core.http_json(method, url, body, timeout=60)


def stop_clean(tk):
    """Stops the node's daemons; each must exit 0."""
    rcs = tk.stop()
    bad = {k: v for k, v in rcs.items() if v != 0}
    assert not bad, f"unclean stop {bad}:\n{tk.tails()}"


@contextlib.contextmanager
def tailkit_pair(tmp_path, info, h1, h2, core, apis):
    """Two split edge nodes (wgd in h1 and in h2, their other daemons in
    core), both up with the tailnet's Go node, the second serving echo on
    port 7 and reached by the first (through DERP at first): yields (tk1,
    tk2, tk2's IPv4); prints both nodes' logs on a failure and stops both
    cleanly after."""
    tks = []
    try:
        for sub, h in (("a", h1), ("b", h2)):
            tks.append(EdgeNode(str(tmp_path / sub), info["control_url"], info["auth_key"],
                                h, core, hostname=f"tkedge{len(tks) + 1}"))
        up(tks[0], n_go=2)
        _, ip2 = up(tks[1], n_go=2)
        serve(tks[1].api, 7, echo, apis)
        node_reaches(tks[0], ip2, 7, b"tk-to-tk")
        yield tks[0], tks[1], ip2
    except BaseException:
        for tk in tks:
            print(tk.tails())
        raise
    finally:
        for tk in tks:
            stop_clean(tk)


def peer_path(tk):
    st = tk.status("wgd") or {}
    for p in st.get("peers", []):
        return p.get("cur_addr"), p.get("relay_region")
    return None, None


def go_sees(core, info):
    """go1's view of the tailkit node: (CurAddr, Relay) from its ipnstate."""
    st = go_http(core, "GET", info["admin_url"] + "/nodes/go1/netmap")
    peer = next((p for p in st.get("Peer", {}).values() if p.get("HostName") == "tkedge"), {})
    return peer.get("CurAddr") or "", peer.get("Relay") or ""


def direct(tk):
    addr, _ = peer_path(tk)
    return addr is not None and addr.startswith(CORE + ":")


def derp_packets(tk):
    c = tk.counters("derpd")
    return int(c.get("derp_tx_packets", 0)) + int(c.get("derp_rx_packets", 0))


def block_udp(edge, on):
    op = "-A" if on else "-D"
    edge.run("iptables", op, "OUTPUT", "-p", "udp", "-d", CORE, "-j", "DROP")
    edge.run("iptables", op, "INPUT", "-p", "udp", "-s", CORE, "-j", "DROP")


@pytest.fixture
def edge_node(topology, tmp_path, monkeypatch):
    monkeypatch.delenv("TS_DEBUG_ALWAYS_USE_DERP", raising=False)  # conftest's
    edge, core = topology.host("edge"), topology.host("core")
    topology.link(edge, f"{EDGE}/24", core, f"{CORE}/24")
    _, _, info = start_core(core, str(tmp_path))
    tk = EdgeNode(str(tmp_path), info["control_url"], info["auth_key"], edge, core)
    try:
        yield tk, info, edge, core
    finally:
        stop_clean(tk)


def test_direct_path_with_go_and_fallback_to_derp(edge_node):
    tk, info, edge, core = edge_node
    try:
        nm, me = up(tk)
        go1 = next(n for n in info["nodes"] if n["name"] == "go1")["ips"][0]
        t0 = time.time()
        node_reaches(tk, go1, 7, b"first")           # works at once (DERP)
        wait_for(lambda: direct(tk), 30, "a direct path to go1")
        took = time.time() - t0
        c = tk.counters("wgd")
        assert c["path_direct_adopted"] >= 1 and c["disco_udp_tx_pong"] + c["path_pongs"] >= 1, c
        print(f"direct path confirmed {took:.2f} s after the first packet")
        # the "paths" topic says so too
        pp = (rpc_json(SNAPSHOT, f"ipc://{tk.bus}/wgd.rpc", "paths") or {}).get("body", {})
        p0 = (pp.get("peers") or [{}])[0]
        assert p0.get("kind") in ("PATH_KIND_DIRECT", 3), pp
        ba = p0.get("best_addr") or {}
        ba = ba if isinstance(ba, str) else f"{ba.get('addr')}:{ba.get('port')}"
        assert ba.startswith(CORE + ":"), pp
        # and Go's magicsock uses the direct path to us too (our Pongs)
        wait_for(lambda: go_sees(core, info)[0].startswith(EDGE + ":"), 30,
                 "go1's CurAddr to the edge node")

        # bulk both ways: DERP stays (nearly) idle, Go uses the direct path too
        before = derp_packets(tk)
        t = Transfer(tk, go1, size=8 << 20)
        t.finish(timeout=120)
        relayed = derp_packets(tk) - before
        assert relayed < 200, f"{relayed} DERP packets during a direct transfer"

        # UDP between the namespaces stops mid-transfer: DERP takes over
        t = Transfer(tk, go1, size=16 << 20, rate=2 << 20)
        t.wait_progress(0.2)
        block_udp(edge, True)
        try:
            wait_for(lambda: not direct(tk), 30, "fallback to DERP")
            t.finish(timeout=150)                    # complete, checksum right
            assert tk.counters("wgd")["path_fell_back_to_derp"] >= 1
            assert peer_path(tk)[1] is not None, peer_path(tk)
            wait_for(lambda: go_sees(core, info)[0] == "", 30, "go1 back on DERP")
        finally:
            block_udp(edge, False)
        # and back to direct once UDP passes again
        node_reaches(tk, go1, 7, b"again")
        wait_for(lambda: direct(tk), 60, "the direct path again")
        node_reaches(tk, go1, 7, b"direct-again")
    except BaseException:
        print(tk.tails())
        raise


def test_direct_path_between_two_tailkit_nodes(topology, tmp_path, monkeypatch, apis):
    monkeypatch.delenv("TS_DEBUG_ALWAYS_USE_DERP", raising=False)
    e1, e2, core = topology.host("edge1"), topology.host("edge2"), topology.host("core")
    topology.link(e1, "10.97.1.2/24", core, "10.97.1.1/24")
    topology.link(e2, "10.97.2.2/24", core, "10.97.2.1/24")
    core.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
    e1.run("ip", "route", "add", "10.97.2.0/24", "via", "10.97.1.1")
    e2.run("ip", "route", "add", "10.97.1.0/24", "via", "10.97.2.1")
    _, _, info = start_core(core, str(tmp_path))
    with tailkit_pair(tmp_path, info, e1, e2, core, apis) as (tk1, tk2, ip2):
        wait_for(lambda: direct_via(tk1, "10.97.2.2"), 30, "tk1 direct to tk2")
        wait_for(lambda: direct_via(tk2, "10.97.1.2"), 30, "tk2 direct to tk1")
        before = derp_packets(tk1) + derp_packets(tk2)
        Transfer(tk1, ip2, size=8 << 20).finish(timeout=120)
        relayed = derp_packets(tk1) + derp_packets(tk2) - before
        assert relayed < 200, f"{relayed} DERP packets during a direct transfer"


# -- NAT topologies --------------------------------------------------------
#
# "net" is the internet: a router with Go's derper on 10.98.0.1 (its own
# address, so STUN answers come from the address asked).  Each node's host
# hangs off net as side idx: "public" (a veth 10.98.idx.1 <-> net), or
# behind a NAT box whose outside address is 10.98.idx.1 and whose inside
# is 10.99.idx.0/24 (unroutable from net): "eim" (Linux MASQUERADE:
# endpoint-independent mapping, port kept) or "edm" (--random-fully: a new
# random port per destination, "hard" NAT).  Both NAT boxes filter like a
# home router (only replies come in).  Either way the node is seen on the
# internet as 10.98.idx.1.  testcontrol and go1 (interop-peer) run on the
# go side; tailkit's ctrld, derpd and netstackd run there too (they reach
# testcontrol on that namespace's loopback), wgd on the tailkit side.

NET_DERP = "10.98.0.1"


def internet(topology, tmp):
    net = topology.host("net")
    net.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
    net.run("ip", "addr", "add", f"{NET_DERP}/32", "dev", "lo")
    start_derper(net, tmp, ip=NET_DERP)
    return net


def attach(topology, net, name, idx, kind, with_box=False):
    """A host on the internet as side idx (see above): (host, public address)
    (and its NAT box, or None, with_box)."""
    h, box = topology.host(name), None
    if kind == "public":
        topology.link(h, f"10.98.{idx}.1/24", net, f"10.98.{idx}.2/24")
        h.run("ip", "route", "add", "default", "via", f"10.98.{idx}.2")
    else:
        box = topology.host(name + "nat")
        topology.nat(h, box, net, inside_net=f"10.99.{idx}", outside_net=f"10.98.{idx}",
                     mapping=kind)
        box.run("ip", "route", "add", "default", "via", f"10.98.{idx}.2")
    return (h, f"10.98.{idx}.1", box) if with_box else (h, f"10.98.{idx}.1")


def renumber(box, idx, new):
    """The NAT box's outside address moves from 10.98.idx.1 to 10.98.idx.<new>
    (a new lease): MASQUERADE forgets every mapping, the node behind it is
    seen from a new address and nothing on the node itself changes."""
    dev = box.veths[-1]
    box.run("ip", "addr", "del", f"10.98.{idx}.1/24", "dev", dev)
    box.run("ip", "addr", "add", f"10.98.{idx}.{new}/24", "dev", dev)
    box.run("ip", "route", "replace", "default", "via", f"10.98.{idx}.2")
    return f"10.98.{idx}.{new}"


def direct_via(tk, pub):
    """The node's wgd has a trusted direct path to a peer at pub:port."""
    st = tk.status("wgd") or {}
    return any((p.get("cur_addr") or "").startswith(pub + ":") for p in st.get("peers", []))


def stays_on_derp(tk, ip, seconds=12):
    """Traffic keeps flowing over DERP for `seconds` while discovery runs
    (pings go out every 5 s) and never confirms a direct path."""
    t_end = time.time() + seconds
    n = 0
    while time.time() < t_end:
        node_reaches(tk, ip, 7, b"derp-%d" % n, timeout=20)
        n += 1
        assert peer_path(tk)[1] is not None, peer_path(tk)
        time.sleep(1)
    c = tk.counters("wgd")
    assert c["path_pings_sent"] >= 2 and c["path_direct_adopted"] == 0, c


NAT_CASES_GO = [  # (tailkit's side, go1's side, the outcome Go's rules give)
    ("eim", "eim", "direct"),      # both behind NAT: STUN + CallMeMaybe punch through
    ("eim", "public", "direct"),
    ("public", "eim", "direct"),
    ("edm", "public", "direct"),   # hard NAT: go1 answers the ping's source
    ("public", "edm", "direct"),   # and we answer go1's (a ping-learned candidate)
    ("edm", "eim", "derp"),        # hard NAT behind, easy NAT ahead: no way through
]


@pytest.mark.parametrize("tk_kind,go_kind,want", NAT_CASES_GO,
                         ids=[f"{a}-{b}" for a, b, _ in NAT_CASES_GO])
def test_direct_path_nat_with_go(topology, tmp_path, monkeypatch, tk_kind, go_kind, want):
    monkeypatch.delenv("TS_DEBUG_ALWAYS_USE_DERP", raising=False)
    net = internet(topology, str(tmp_path))
    tkh, tk_pub = attach(topology, net, "tk", 1, tk_kind)
    goh, go_pub = attach(topology, net, "go", 2, go_kind)
    _, _, info = start_core(goh, str(tmp_path), derp_ip=NET_DERP, derper_host=net)
    tk = EdgeNode(str(tmp_path / "tk"), info["control_url"], info["auth_key"], tkh, goh)
    try:
        up(tk)
        go1 = next(n for n in info["nodes"] if n["name"] == "go1")["ips"][0]
        node_reaches(tk, go1, 7, b"through-derp-first")
        if want == "derp":
            stays_on_derp(tk, go1)
            assert go_sees(goh, info)[0] == "", go_sees(goh, info)
            return
        wait_for(lambda: direct_via(tk, go_pub), 30, f"direct to go1 at {go_pub}")
        wait_for(lambda: go_sees(goh, info)[0].startswith(tk_pub + ":"), 30,
                 f"go1 direct to us at {tk_pub}")
        before = derp_packets(tk)
        Transfer(tk, go1, size=4 << 20).finish(timeout=120)
        assert derp_packets(tk) - before < 200
    except BaseException:
        print(tk.tails())
        raise
    finally:
        stop_clean(tk)


NAT_CASES_TK = [("eim", "eim", "direct"), ("eim", "public", "direct"),
                ("edm", "public", "direct"), ("edm", "eim", "derp")]


@pytest.mark.parametrize("a_kind,b_kind,want", NAT_CASES_TK,
                         ids=[f"{a}-{b}" for a, b, _ in NAT_CASES_TK])
def test_direct_path_nat_tailkit_pair(topology, tmp_path, monkeypatch, apis, a_kind, b_kind,
                                      want):
    monkeypatch.delenv("TS_DEBUG_ALWAYS_USE_DERP", raising=False)
    net = internet(topology, str(tmp_path))
    ha, pub_a = attach(topology, net, "tka", 1, a_kind)
    hb, pub_b = attach(topology, net, "tkb", 3, b_kind)
    goh, _ = attach(topology, net, "go", 2, "eim")
    _, _, info = start_core(goh, str(tmp_path), derp_ip=NET_DERP, derper_host=net)
    with tailkit_pair(tmp_path, info, ha, hb, goh, apis) as (tk1, tk2, ip2):
        if want == "derp":
            stays_on_derp(tk1, ip2)
            assert not direct_via(tk2, pub_a)
            return
        wait_for(lambda: direct_via(tk1, pub_b), 30, f"tk1 direct to tk2 at {pub_b}")
        wait_for(lambda: direct_via(tk2, pub_a), 30, f"tk2 direct to tk1 at {pub_a}")
        before = derp_packets(tk1) + derp_packets(tk2)
        Transfer(tk1, ip2, size=4 << 20).finish(timeout=120)
        assert derp_packets(tk1) + derp_packets(tk2) - before < 200


@pytest.mark.parametrize("roamer", ["go", "tailkit"])
def test_direct_path_peer_roams(topology, tmp_path, monkeypatch, roamer):
    """A direct path through a NAT whose outside address changes mid-transfer
    (the roamer's, the other side public): the old path stops answering,
    traffic goes on over DERP, and both sides find the new address (the
    roamer's pings now come from it) and go direct again; the transfer
    completes with the right checksum."""
    monkeypatch.delenv("TS_DEBUG_ALWAYS_USE_DERP", raising=False)
    net = internet(topology, str(tmp_path))
    tk_kind, go_kind = ("eim", "public") if roamer == "tailkit" else ("public", "eim")
    tkh, tk_pub, tk_box = attach(topology, net, "tk", 1, tk_kind, with_box=True)
    goh, go_pub, go_box = attach(topology, net, "go", 2, go_kind, with_box=True)
    _, _, info = start_core(goh, str(tmp_path), derp_ip=NET_DERP, derper_host=net)
    tk = EdgeNode(str(tmp_path / "tk"), info["control_url"], info["auth_key"], tkh, goh)
    try:
        up(tk)
        go1 = next(n for n in info["nodes"] if n["name"] == "go1")["ips"][0]
        node_reaches(tk, go1, 7, b"first")
        wait_for(lambda: direct_via(tk, go_pub), 30, f"direct to go1 at {go_pub}")
        wait_for(lambda: go_sees(goh, info)[0].startswith(tk_pub + ":"), 30, "go1 direct")
        adopted = tk.counters("wgd")["path_direct_adopted"]
        t = Transfer(tk, go1, size=12 << 20, rate=1 << 20)
        t.wait_progress(0.15)
        if roamer == "go":
            go_pub = renumber(go_box, 2, 7)
        else:
            tk_pub = renumber(tk_box, 1, 7)
        t.finish(timeout=150)                        # complete, checksum right
        wait_for(lambda: direct_via(tk, go_pub), 60, f"direct to go1 at {go_pub}")
        wait_for(lambda: go_sees(goh, info)[0].startswith(tk_pub + ":"), 60,
                 f"go1 direct to us at {tk_pub}")
        node_reaches(tk, go1, 7, b"after-roam")
        if roamer == "go":   # we noticed: a new path was adopted
            assert tk.counters("wgd")["path_direct_adopted"] > adopted
    except BaseException:
        print(tk.tails())
        raise
    finally:
        stop_clean(tk)


def test_direct_path_survives_loss(edge_node):
    """2% random loss each way on the direct path (iptables statistic):
    a transfer completes, and neither side falls back to DERP (Go's rules:
    trust lasts 6.5 s after a Pong, heartbeats every 3 s, so only two
    heartbeats lost in a row could end it: ~0.2% a heartbeat here)."""
    tk, info, edge, core = edge_node
    rules = [("OUTPUT", "-d"), ("INPUT", "-s")]
    try:
        up(tk)
        go1 = next(n for n in info["nodes"] if n["name"] == "go1")["ips"][0]
        node_reaches(tk, go1, 7, b"first")
        wait_for(lambda: direct(tk), 30, "a direct path to go1")
        wait_for(lambda: go_sees(core, info)[0].startswith(EDGE + ":"), 30, "go1 direct")
        for chain, flag in rules:
            edge.run("iptables", "-A", chain, "-p", "udp", flag, CORE, "-m", "statistic",
                     "--mode", "random", "--probability", "0.02", "-j", "DROP")
        fell = tk.counters("wgd")["path_fell_back_to_derp"]
        t0 = time.time()
        Transfer(tk, go1, size=4 << 20, rate=1 << 20).finish(timeout=150)
        while time.time() - t0 < 15:                 # and at least 15 s of heartbeats
            node_reaches(tk, go1, 7, b"lossy", timeout=30)
            time.sleep(1)
        dropped = sum(int(line.split()[0]) for line in
                      edge.run("iptables", "-nvxL").stdout.splitlines()
                      if "statistic" in line)
        assert dropped > 0, "the loss rules dropped nothing"
        print(f"{dropped} packets dropped by the loss rules")
        c = tk.counters("wgd")
        assert c["path_fell_back_to_derp"] == fell, c
        assert direct(tk), peer_path(tk)
        assert go_sees(core, info)[0].startswith(EDGE + ":"), go_sees(core, info)
    except BaseException:
        print(tk.tails())
        raise
    finally:
        for chain, flag in rules:
            edge.run("iptables", "-D", chain, "-p", "udp", flag, CORE, "-m", "statistic",
                     "--mode", "random", "--probability", "0.02", "-j", "DROP", check=False)


def test_direct_path_tailkit_pair_break_and_roam(topology, tmp_path, monkeypatch, apis):
    """tailkit <-> tailkit, one behind an easy NAT, the other public: direct;
    the NAT box drops UDP mid-transfer (both fall back to DERP, the transfer
    completes), UDP passes again (direct again); then the box's outside
    address changes mid-transfer (both go direct at the new address)."""
    monkeypatch.delenv("TS_DEBUG_ALWAYS_USE_DERP", raising=False)
    net = internet(topology, str(tmp_path))
    ha, pub_a, box = attach(topology, net, "tka", 1, "eim", with_box=True)
    hb, pub_b = attach(topology, net, "tkb", 3, "public")
    goh, _ = attach(topology, net, "go", 2, "public")
    _, _, info = start_core(goh, str(tmp_path), derp_ip=NET_DERP, derper_host=net)
    drop = ["FORWARD", "-p", "udp", "-d", pub_b, "-j", "DROP"]
    with tailkit_pair(tmp_path, info, ha, hb, goh, apis) as (tk1, tk2, ip2):
        wait_for(lambda: direct_via(tk1, pub_b), 30, "tk1 direct to tk2")
        wait_for(lambda: direct_via(tk2, pub_a), 30, "tk2 direct to tk1")
        # the direct path breaks mid-transfer
        t = Transfer(tk1, ip2, size=8 << 20, rate=1 << 20)
        t.wait_progress(0.15)
        box.run("iptables", "-I", *drop)
        try:
            wait_for(lambda: not direct_via(tk1, pub_b), 30, "tk1 back on DERP")
            t.finish(timeout=150)
            assert tk1.counters("wgd")["path_fell_back_to_derp"] >= 1
        finally:
            box.run("iptables", "-D", *drop)
        node_reaches(tk1, ip2, 7, b"again")
        wait_for(lambda: direct_via(tk1, pub_b), 60, "tk1 direct again")
        # tk1's NAT renumbers mid-transfer
        t = Transfer(tk1, ip2, size=8 << 20, rate=1 << 20)
        t.wait_progress(0.15)
        pub_a = renumber(box, 1, 7)
        t.finish(timeout=150)
        wait_for(lambda: direct_via(tk2, pub_a), 60, f"tk2 direct to tk1 at {pub_a}")
        wait_for(lambda: direct_via(tk1, pub_b), 60, "tk1 direct to tk2")


def test_netcheck_reports_wgd_stun(topology, tmp_path, monkeypatch):
    """`tailkit netcheck` on a tailkitd behind an easy NAT: UDP works and
    the global IPv4 address is NAT's mapping, as wgd's STUN client learned
    it from its own WireGuard socket (Go's report shows the same facts)."""
    from test_tailkitd import tailkit
    monkeypatch.delenv("TS_DEBUG_ALWAYS_USE_DERP", raising=False)
    net = internet(topology, str(tmp_path))
    goh, go_pub = attach(topology, net, "go", 2, "eim")
    _, _, info = start_core(goh, str(tmp_path), derp_ip=NET_DERP, derper_host=net)

    class InNamespace(UserspaceNode):
        def _spawn(self, name, args, host=None):
            return super()._spawn(name, args, host=goh)
    os.makedirs(tmp_path / "tk", exist_ok=True)
    tk = InNamespace(str(tmp_path / "tk"), info["control_url"], info["auth_key"],
                     hostname="tkstun", mode="tailkitd")
    try:
        r = wait_for(lambda: (lambda x: x if x.returncode == 0 and
                              f"IPv4: yes, {go_pub}:" in x.stdout else None)(
                                  tailkit(tk, "netcheck")), 40,
                     "netcheck with wgd's STUN mapping")
        assert "UDP: true" in r.stdout and "STUN by wgd" in r.stdout, r.stdout
        print(r.stdout)
    except BaseException:
        print(tk.tails())
        raise
    finally:
        stop_clean(tk)
