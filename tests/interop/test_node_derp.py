"""netstackd as the node's TCP/IP, end to end with Go Tailscale nodes over
DERP (issue 12): a tailkit node made of ctrld + wgd + derpd (client) +
netstackd, no TUN and no network namespace, on testcontrol with Go's derper
and tsnet nodes.  A Go node fetches a page from a service listening through
netstackd's local API, and the node fetches a Go node's page through it;
the peer's identity comes with each descriptor."""

import os
import subprocess

import pytest

from conftest import http_json, wait_for
from test_derp_node import (BUILD, CTRLD, DERPD, STATUS, WGD, TailkitNode, dial, go_ip,
                            need, rpc_json, v4_of)

NETSTACKD = os.environ.get("TK_NETSTACKD", os.path.join(BUILD, "netstackd", "netstackd"))
TAILKITD = os.environ.get("TK_TAILKITD", os.path.join(BUILD, "tools", "node", "tailkitd"))
TKNS = os.path.join(BUILD, "netstackd", "tk-ns")


class UserspaceNode(TailkitNode):
    """ctrld + wgd + derpd client + netstackd on one bus directory, as four
    daemons (split mode), or all four in one tailkitd process (its buses on
    ipc:// in the same directory, so tk-status and tk-snapshot attach; or,
    mode "inproc", in-process only)."""

    ORDER = ("tailkitd", "ctrld", "netstackd", "derpd", "wgd")

    def __init__(self, tmp, control_url, auth_key, hostname="tkns", mode="split"):
        self.tmp, self.bus = tmp, os.path.join(tmp, "bus")
        self.api = os.path.join(self.bus, "netstackd.sock")
        self.procs, self.logs = {}, {}
        self.inproc = mode == "inproc"
        if mode != "split":
            state = os.path.join(tmp, "state")
            bus = [] if self.inproc else ["--bus", self.bus]
            if self.inproc:   # no bus directory: the API socket is in the state
                self.api = os.path.join(state, "netstackd.sock")
            self.socket = os.path.join(state, "tailkitd.sock")   # the LocalAPI
            key = ["--authkey", auth_key] if auth_key else []
            self._spawn("tailkitd", [need(TAILKITD), *bus, "--state", state,
                                     "--control-url", control_url, *key,
                                     "--hostname", hostname, "--derp-http"])
            return
        # split: TailkitNode's start_* (also how a test restarts one daemon)
        self.derp_http, self.control_url = True, control_url
        self.auth_key, self.hostname = auth_key, hostname
        self.start_wgd()
        self.start_netstackd()
        self.start_derpd()
        self.start_ctrld()

    def start_netstackd(self):
        self._spawn("netstackd", [need(NETSTACKD), "--bus", self.bus])


@pytest.fixture
def usnode(tmp_path):
    made = []

    def make(*a, **kw):
        n = UserspaceNode(str(tmp_path), *a, **kw)
        made.append(n)
        return n
    yield make
    for n in made:
        rcs = n.stop()
        bad = {k: v for k, v in rcs.items() if v != 0}
        assert not bad, f"unclean stop {bad}:\n{n.tails()}"


@pytest.mark.parametrize("mode", ["split", "tailkitd", "inproc"])
def test_netstackd_node_and_go_nodes_over_derp(derper, interop_peer, usnode, mode):
    d = derper()
    info = interop_peer(1, "-derp", f"127.0.0.1:{d['port']}", "-derp-stun-port",
                        str(d["stun_port"]), "-derp-http", "-derp-only")
    tk = usnode(info["control_url"], info["auth_key"], mode=mode)
    try:
        if tk.inproc:   # nothing to attach to: ask control for our address
            me = wait_for(lambda: next((n["Addresses"][0].split("/")[0] for n in
                                        http_json("GET", info["admin_url"] + "/nodes")
                                        .get("control_nodes") or []
                                        if n.get("Name", "").startswith("tkns.")), None),
                          60, "control knowing the node")
        else:
            nm = wait_for(lambda: (lambda m: m if m and m.get("self", {}).get("addresses")
                                   and m.get("peers") else None)(tk.netmap()),
                          60, "netmap with self and the Go peer")
            me = v4_of(nm["self"])
        go1 = go_ip(info, "go1")
        wait_for(lambda: os.path.exists(tk.api), 20, "netstackd's API socket")

        # Go -> tailkit: go1 fetches a page served through netstackd's API
        srv = subprocess.Popen([need(TKNS), "--api", tk.api, "listen", "8080", "http", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert srv.stdout.readline().startswith("listening"), srv.stderr.read()
            res = wait_for(lambda: (lambda x: x if x.get("ok") else None)(
                dial(info["admin_url"], "go1", "http", f"{me}:8080")), 90,
                "go1 fetching the page behind netstackd")
            assert "go1" in res["reply"], res     # the page names the peer: identity
            srv.wait(timeout=20)
            acc = srv.stderr.read()
            assert f"accept {go1}" in acc and "name=go1." in acc, acc
        finally:
            if srv.poll() is None:
                srv.kill()
                srv.wait(timeout=5)

        # tailkit -> Go: the node fetches go1's page (tsnet serves its name on :80)
        def fetch():
            r = subprocess.run([need(TKNS), "--api", tk.api, "dial", go1, "80"],
                               input="GET / HTTP/1.0\r\nHost: go1\r\n\r\n",
                               capture_output=True, text=True, timeout=40)
            return r.stdout if r.returncode == 0 and "200 OK" in r.stdout else None
        page = wait_for(fetch, 60, "the node fetching go1's page")
        assert page.rstrip().endswith("go1"), page
    except BaseException:
        print(tk.tails())
        raise
