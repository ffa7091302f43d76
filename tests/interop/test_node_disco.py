"""Disco over DERP against Go (issue 15, first step): wgd answers disco
Pings that arrive over DERP with a Pong (Src 127.3.3.40:<region>, as Go's
magicsock does) and sends its own disco Pings over DERP.  Counterparts: Go's
`tailscale ping` (default: disco) against tailkitd's LocalAPI, a Go tsnet
node's LocalClient().Ping(..., PingDisco) to the tailkit node, and `tailkit
ping --disco` to the tsnet node.  Direct paths are not done: every pong
comes via DERP.  Dropping disco from non-peers and forged boxes is covered
by the unit tests (tests/unit/wgd/test_disco.c) with crafted packets."""

import re
import time

from conftest import http_json, wait_for
from test_node_derp import go_ip, usnode  # noqa: F401 (fixture)
from test_node_diag import node_over_derp
from test_tailkitd import cli, tailkit

PONG = re.compile(r"pong from go1 \((100\.[0-9.]+)(?:, [0-9]+)?\) via (\S+) in ([0-9.]+)m?s")  # Go: "0s" under 0.5 ms
GO_PONG = re.compile(r"pong from (\S+) \((100\.[0-9.]+)\) via (\S+) in (\S+)")


def ok(r):
    return r if r.returncode == 0 else None


def test_disco_ping_over_derp_with_go(derper, interop_peer, usnode):  # noqa: F811
    d, info, tk, st = node_over_derp(derper, interop_peer, usnode, "tkdisco")
    go1 = go_ip(info, "go1")
    me = st["Self"]["TailscaleIPs"][0]
    try:
        # tailkit -> Go: a disco Ping over DERP, Go's magicsock answers
        r = wait_for(lambda: ok(tailkit(tk, "ping", "--disco", "--timeout", "3s", "go1")),
                     60, "a disco pong from go1")
        m = PONG.search(r.stdout)
        assert m and m.group(1) == go1 and m.group(2) == "DERP(test)", r.stdout
        assert float(m.group(3)) >= 0   # rounded to ms as Go does
        # the default is disco when the peer has a disco key
        r = ok(tailkit(tk, "ping", "-c", "2", "go1"))
        assert r is not None and len(PONG.findall(r.stdout)) == 2, r
        c = {k: int(v) for k, v in tk.counters("wgd").items()}
        assert c["disco_tx_ping"] >= 3 and c["disco_rx_pong"] >= 3, c
        assert c["disco_rx_pong_unmatched"] == 0, c

        # Go -> tailkit: a tsnet node's disco ping, answered by wgd over DERP
        res = wait_for(lambda: (lambda x: x if x.get("ok") else None)(
            http_json("POST", info["admin_url"] + "/ping",
                      {"from": "go1", "ip": me, "type": "disco", "timeout_ms": 5000})),
            30, "go1's disco pong from the tailkit node")
        assert res["result"]["NodeName"].startswith("tkdisco"), res
        assert res["result"]["DERPRegionID"] == 1 and not res["result"].get("Endpoint"), res

        # Go's own CLI (default: disco) against tailkitd's LocalAPI
        r = cli(tk, "ping", "-c", "2", "--until-direct=false", go1)
        assert r.returncode == 0, r
        pongs = GO_PONG.findall(r.stdout)
        assert len(pongs) == 2 and all(p[2] == "DERP(test)" for p in pongs), r.stdout
        # with --until-direct (Go's default) it says what is true: no direct path
        r = cli(tk, "ping", "-c", "1", go1)
        assert r.returncode != 0 and "direct connection not established" in r.stderr, r
        assert GO_PONG.search(r.stdout), r.stdout

        # What wgd counted: pings answered, nothing dropped for a bad
        # source, box or parse.  Go's CallMeMaybes (sent over DERP when it
        # pings our UDP endpoints) are counted, no direct path attempted.
        time.sleep(1)
        c = {k: int(v) for k, v in tk.counters("wgd").items()}
        print("wgd disco counters:", {k: v for k, v in c.items() if "disco" in k})
        assert c["disco_rx_ping"] >= 1 and c["disco_tx_pong"] == c["disco_rx_ping"], c
        for k in ("disco_drop_unknown_sender", "disco_drop_bad_derp_src",
                  "disco_drop_bad_box", "disco_drop_bad_parse", "disco_drop_no_key",
                  "disco_tx_failed"):
            assert c[k] == 0, (k, c)
        assert c["derp_rx_disco"] >= c["disco_rx"], c
        if c["disco_rx_call_me_maybe_endpoints"]:
            # kept in wgd's status for path selection (not used yet)
            peers = tk.status("wgd").get("peers", [])
            print("wgd peers:", peers)
            cmm = [p.get("call_me_maybe") for p in peers if p.get("call_me_maybe")]
            assert cmm, peers
    except BaseException:
        print(tk.tails())
        raise


def test_disco_call_me_maybe_from_go(derper, interop_peer, usnode):  # noqa: F811
    """A Go node with direct UDP allowed pings the tailkit node's UDP
    endpoints when it has traffic for it and sends a CallMeMaybe with its
    own endpoints over DERP: wgd keeps them in status (path selection is
    not done, so the traffic stays on DERP)."""
    from test_node_diag import running_with_peer
    d = derper()
    info = interop_peer(1, "-derp", f"127.0.0.1:{d['port']}", "-derp-stun-port",
                        str(d["stun_port"]), "-derp-http")
    tk = usnode(info["control_url"], info["auth_key"], hostname="tkcmm", mode="tailkitd")
    st = wait_for(lambda: running_with_peer(tk), 60, "Running with the Go peer")
    me = st["Self"]["TailscaleIPs"][0]
    try:
        # traffic from go1 to us makes its magicsock start discovery
        wait_for(lambda: (lambda x: x if x.get("ok") else None)(
            http_json("POST", info["admin_url"] + "/ping",
                      {"from": "go1", "ip": me, "type": "TSMP", "timeout_ms": 5000})),
            30, "go1's TSMP pong from the tailkit node")

        def cmm():
            c = {k: int(v) for k, v in tk.counters("wgd").items()}
            return c if c.get("disco_rx_call_me_maybe_endpoints", 0) > 0 else None
        c = wait_for(cmm, 30, "a CallMeMaybe with endpoints from go1")
        peers = tk.status("wgd").get("peers", [])
        eps = [e for p in peers for e in p.get("call_me_maybe", [])]
        print("CallMeMaybe endpoints in wgd's status:", eps)
        assert eps and all(re.match(r"^(\[[0-9a-f:]+\]|[0-9.]+):[0-9]+$", e) for e in eps), peers
        # disco_drop_unknown_sender is not checked: go1 may send disco before
        # wgd has its disco key from the netmap (a start-up race; Go drops
        # frames from keys it does not know as well).  Seen in 2 of the
        # fresh-clone runs, each time 1 drop; the accepted CallMeMaybe above
        # shows the key was learned.
        for k in ("disco_drop_bad_derp_src", "disco_drop_bad_box",
                  "disco_drop_bad_parse"):
            assert c[k] == 0, (k, c)
    except BaseException:
        print(tk.tails())
        raise
