"""tailkit ping, netcheck and debug against Go (issue 13's diagnostics):
tailkitd's LocalAPI /ping (wgd's rpc "ping": TSMP and ICMP probes through
the tunnel) pinging a Go tsnet node over DERP, a tsnet node TSMP-pinging the
tailkit node, Go's own `tailscale ping --tsmp/--icmp` against tailkitd's
socket, `tailkit netcheck` (derpd's measurements), `tailkit debug wg/bus/
derp`, and the errors a user gets for an unknown peer, a bad flag or no
daemon."""

import json
import os
import re
import subprocess
import time

from conftest import binary, http_json, wait_for
from test_node_derp import TKNS, dial, go_ip, need, usnode  # noqa: F401 (fixture)
from test_tailkitd import TAILKIT, cli, tailkit


def running_with_peer(tk):
    r = cli(tk, "status", "--json")
    if r.returncode != 0:
        return None
    st = json.loads(r.stdout)
    return st if st.get("BackendState") == "Running" and st.get("Peer") else None


def node_over_derp(derper, interop_peer, usnode, name):  # noqa: F811
    d = derper()
    info = interop_peer(1, "-derp", f"127.0.0.1:{d['port']}", "-derp-stun-port",
                        str(d["stun_port"]), "-derp-http", "-derp-only")
    tk = usnode(info["control_url"], info["auth_key"], hostname=name, mode="tailkitd")
    st = wait_for(lambda: running_with_peer(tk), 60, "Running with the Go peer")
    return d, info, tk, st


# Go's format: the PeerAPI port follows the address when the pong carries it
PONG = re.compile(r"pong from go1 \((100\.[0-9.]+)(?:, [0-9]+)?\) via (\S+) in ([0-9.]+)m?s")  # Go: "0s" under 0.5 ms


def test_tailkit_ping_go_node_over_derp(derper, interop_peer, usnode):  # noqa: F811
    d, info, tk, st = node_over_derp(derper, interop_peer, usnode, "tkping")
    go1 = go_ip(info, "go1")
    me = st["Self"]["TailscaleIPs"][0]
    try:
        # TSMP, by short name: the pong names the peer, the DERP path, the latency
        r = wait_for(lambda: (lambda x: x if x.returncode == 0 else None)(
            tailkit(tk, "ping", "--tsmp", "--timeout", "3s", "go1")), 60,
            "a TSMP pong from go1")
        m = PONG.search(r.stdout)
        assert m and m.group(1) == go1 and m.group(2) == "DERP(test)", r.stdout
        assert float(m.group(3)) >= 0   # rounded to ms as Go does: "0s" when under 0.5 ms
        # ICMP echo through the tunnel, answered by go1's netstack
        r = wait_for(lambda: (lambda x: x if x.returncode == 0 else None)(
            tailkit(tk, "ping", "--icmp", "-c", "2", go1)), 30, "ICMP pongs from go1")
        pongs = PONG.findall(r.stdout)
        assert len(pongs) == 2 and all(p[1] == "DERP(test)" for p in pongs), r.stdout
        # Go's own CLI against tailkitd's LocalAPI
        for flag in ("--tsmp", "--icmp"):
            r = wait_for(lambda: (lambda x: x if x.returncode == 0 else None)(
                cli(tk, "ping", flag, "--timeout", "5s", go1)), 30, f"Go ping {flag}")
            m = PONG.search(r.stdout)
            assert m and m.group(1) == go1 and m.group(2) == "DERP(test)", r.stdout
        # Go's default (disco): test_node_disco.py
        # a tsnet node TSMP-pings the tailkit node (wgd answers)
        res = wait_for(lambda: (lambda x: x if x.get("ok") else None)(
            http_json("POST", info["admin_url"] + "/ping",
                      {"from": "go1", "ip": me, "type": "TSMP", "timeout_ms": 5000})),
            30, "go1's TSMP pong from the tailkit node")
        assert res["result"]["NodeName"] == "tkping", res
        # ... and an ICMP echo, answered by the node's netstack (lwIP)
        res = wait_for(lambda: (lambda x: x if x.get("ok") else None)(
            http_json("POST", info["admin_url"] + "/ping",
                      {"from": "go1", "ip": me, "type": "ICMP", "timeout_ms": 5000})),
            30, "go1's ICMP echo reply from the tailkit node")
        assert res["result"]["NodeName"] == "tkping", res
        # errors: unknown name, unknown IP, bad flag, self, no daemon
        r = tailkit(tk, "ping", "nosuchpeer")
        assert r.returncode == 1 and "no peer named nosuchpeer" in r.stderr, r.stderr
        r = tailkit(tk, "ping", "100.64.99.99")
        assert r.returncode == 1 and "no matching peer" in r.stderr, r.stderr
        r = tailkit(tk, "ping", "--bogus", "go1")
        assert r.returncode == 2 and "unexpected --bogus" in r.stderr, r.stderr
        r = tailkit(tk, "ping", "--timeout", "forever", "go1")
        assert r.returncode == 2 and "5s or 500ms" in r.stderr, r.stderr
        r = tailkit(tk, "ping", me)
        assert r.returncode == 0 and "is local Tailscale IP" in r.stderr, r.stderr
        r = subprocess.run([need(TAILKIT), "--socket", "/nonexistent.sock", "ping", "go1"],
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 1 and "is tailkitd running?" in r.stderr, r.stderr
        # wgd counted what it did
        c = {k: int(v) for k, v in tk.counters("wgd").items()}
        assert c.get("ping_answered", 0) >= 4 and c.get("ping_replies_bad", 0) == 0, c
    except BaseException:
        print(tk.tails())
        raise


def test_tailkit_netcheck_and_debug(derper, interop_peer, usnode):  # noqa: F811
    d, info, tk, st = node_over_derp(derper, interop_peer, usnode, "tkdbg")
    try:
        # netcheck: derpd's home region and its latency; STUN facts unknown
        r = wait_for(lambda: (lambda x: x if x.returncode == 0 and "Nearest DERP: Test"
                              in x.stdout and ", connected" in x.stdout else None)(
                                  tailkit(tk, "netcheck")), 30,
                     "netcheck with the home region, connected")
        assert "(test, region 1)" in r.stdout, r.stdout
        assert re.search(r"- test: [0-9.]+ms \(Test\), connected", r.stdout), r.stdout
        assert "UDP: not measured" in r.stdout, r.stdout
        # debug wg: wgd's UAPI view, the Go peer through DERP region 1
        r = wait_for(lambda: (lambda x: x if x.returncode == 0 and "endpoint: DERP region 1"
                              in x.stdout else None)(tailkit(tk, "debug", "wg")), 30,
                     "the peer in debug wg")
        assert "private key: (hidden)" in r.stdout and r.stdout.count("\npeer: ") == 1
        raw = tailkit(tk, "debug", "wg", "--raw").stdout
        assert "public_key=" in raw and "private_key" not in raw, raw
        # debug bus: the netmap topic, decoded, with its sequence number
        r = tailkit(tk, "debug", "bus", "--count", "1", "netmap")
        assert r.returncode == 0, r.stderr
        msg = json.loads(r.stdout.splitlines()[0])
        assert msg["topic"] == "netmap" and msg["kind"] == "snapshot" and msg["seq"] >= 1
        assert msg["body"]["self"]["name"].startswith("tkdbg."), msg
        assert any(p.get("hostname") == "go1" for p in msg["body"]["peers"]), msg
        r = tailkit(tk, "debug", "bus", "--count", "1", "derp")
        assert r.returncode == 0 and json.loads(r.stdout)["body"]["home_region"] == 1, r
        r = tailkit(tk, "debug", "bus", "nosuchtopic")
        assert r.returncode == 1 and "one of" in r.stderr and "netmap" in r.stderr, r.stderr
        # the packet bus: go1 fetches a page from the node while we watch
        srv = subprocess.Popen([need(TKNS), "--api", tk.api, "listen", "8080", "http", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        tap = subprocess.Popen([need(TAILKIT), "--socket", tk.socket, "debug", "bus", "--pkt",
                                "--count", "4", "wgd-pkt"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        try:
            assert srv.stdout.readline().startswith("listening")
            me = st["Self"]["TailscaleIPs"][0]
            go1 = go_ip(info, "go1")
            time.sleep(0.5)   # the tap is on after its first poll
            wait_for(lambda: (lambda x: x if x.get("ok") else None)(
                dial(info["admin_url"], "go1", "http", f"{me}:8080")), 60, "go1's fetch")
            out, err = tap.communicate(timeout=30)
        finally:
            for p in (srv, tap):
                if p.poll() is None:
                    p.kill()
                    p.wait(timeout=5)
        lines = [json.loads(x) for x in out.splitlines()]
        assert len(lines) == 4 and lines[0]["dir"] == "in", (out, err)
        assert lines[0]["proto"] == "tcp" and lines[0]["src"].startswith(go1 + ":"), lines
        assert lines[0]["dst"] == f"{me}:8080" and lines[0]["bus"] == "wgd-pkt", lines
        assert any(x["dir"] == "out" and x["src"] == f"{me}:8080" for x in lines), lines
        assert [x["seq"] for x in lines] == sorted(x["seq"] for x in lines), lines
        r = tailkit(tk, "debug", "bus", "--pkt", "wgd-derp")
        assert r.returncode == 1 and "cannot be dumped yet" in r.stderr, r.stderr
        # debug derp: tk-derp probes the home region of the node's map
        r = tailkit(tk, "debug", "derp", "--http")
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"http://127.0.0.1:{d['port']}/derp" in r.stdout, r.stdout
        r = tailkit(tk, "debug", "derp", "--http", "77")
        assert r.returncode == 1 and "region 77 is not in" in r.stderr, r.stderr
        r = tailkit(tk, "debug", "control")
        assert r.returncode == 2 and "usage" in r.stderr
        r = tailkit(tk, "debug", "nosuch")
        assert r.returncode == 2 and "bus|wg|derp|control" in r.stderr
        # an open stream does not hold up tailkitd's stop, and then ends
        s = subprocess.Popen([need(TAILKIT), "--socket", tk.socket, "debug", "bus", "keys"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert json.loads(s.stdout.readline())["topic"] == "keys"
            assert tk.stop().get("tailkitd") == 0
            assert s.wait(timeout=15) == 0
        finally:
            if s.poll() is None:
                s.kill()
                s.wait(timeout=5)
    except BaseException:
        print(tk.tails())
        raise
