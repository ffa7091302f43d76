"""Direct paths (issue 15): disco over UDP and path selection with Go nodes.

A split edge deployment: wgd runs in its own network namespace ("edge"),
linked by a veth to a second namespace ("core") where everything else
runs: Tailscale's testcontrol and a Go tsnet node (interop-peer), Go's
derper, and tailkit's ctrld, derpd and netstackd.  The daemons meet on the
ipc:// buses in the test's directory, which namespaces share.  wgd's only
non-loopback address is 10.97.1.2; go1's is 10.97.1.1: the direct path is
the veth, the relayed one goes through derper on core's loopback.

Asserted: traffic flows first; wgd then confirms a direct path to go1 by
disco (its status shows go1's veth address, not the DERP pseudo-address),
and a bulk transfer leaves DERP idle; when the veth drops UDP mid-transfer,
wgd falls back to DERP and the transfer completes with the right checksum;
when UDP passes again, the path returns to direct.
"""
import hashlib
import json
import os
import time

import pytest

from conftest import binary, wait_for
from test_derp_node import DERPD, WGD, need
from test_node_derp import UserspaceNode
from test_node_e2e import NsApi, Transfer, node_reaches, up

EDGE, CORE = "10.97.1.2", "10.97.1.1"

NS_HTTP = r"""
import json, sys, urllib.request
body = sys.argv[3].encode() if len(sys.argv) > 3 else None
req = urllib.request.Request(sys.argv[2], data=body, method=sys.argv[1],
                             headers={"Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=60) as r:
    print(r.read().decode())
"""


class EdgeNode(UserspaceNode):
    """UserspaceNode with wgd in `edge` and ctrld/derpd in `core`."""

    def __init__(self, tmp, control_url, auth_key, edge, core):
        self.edge, self.core = edge, core
        super().__init__(tmp, control_url, auth_key, hostname="tkedge", mode="split")

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


def start_core(core, tmp):
    """derper and interop-peer (testcontrol + go1) inside core."""
    derper = core.popen(binary("derper"), "-a", "127.0.0.1:3340", "-http-port", "-1",
                        "-stun-port", "3478", "-c", os.path.join(tmp, "derper.json"))
    wait_for(lambda: core.run("python3", "-c", "import socket;socket.create_connection("
                              "('127.0.0.1',3340),1)", check=False).returncode == 0,
             20, "derper in core")
    peer = core.popen(binary("interop-peer"), "-nodes", "1", "-derp", "127.0.0.1:3340",
                      "-derp-stun-port", "3478", "-derp-http")
    deadline = time.time() + 120
    while time.time() < deadline:
        line = peer.stdout.readline()
        if not line:
            break
        if line.startswith("{"):
            return derper, peer, json.loads(line)
    pytest.fail("interop-peer in core printed no JSON line")


def go_http(core, method, url, body=None):
    args = ["python3", "-c", NS_HTTP, method, url] + ([json.dumps(body)] if body else [])
    r = core.run(*args, check=False, timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


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
        rcs = tk.stop()
        bad = {k: v for k, v in rcs.items() if v != 0}
        assert not bad, f"unclean stop {bad}:\n{tk.tails()}"


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
