"""First data between a tailkit node and Go Tailscale nodes, over DERP.

The tailkit node is the real components on their ipc buses: ctrld (ts2021 to
testcontrol), wgd (WireGuard), derpd in client mode (the DERP path), and
tk-tun, which gives the node's tailnet address to the kernel inside a
network namespace so the kernel's ping and TCP run over it.  ctrld, wgd and
derpd run in the root namespace (they reach testcontrol and the DERP server
on 127.0.0.1); tk-tun runs in the namespace and reaches wgd through the ipc
socket files.  The other side is Go: testcontrol, Go's derper, and tsnet
nodes told never to use direct paths (TS_DEBUG_ALWAYS_USE_DERP), so every
packet crosses DERP.  What is tailkit's own: ctrld, wgd, derpd, tk-tun.
"""

import json
import os
import signal
import subprocess
import time

import pytest

from conftest import http_json, wait_for
from test_ctrld import ROOT, need

BUILD = os.path.join(ROOT, "build")
CTRLD = os.environ.get("TK_CTRLD", os.path.join(BUILD, "ctrld", "ctrld"))
WGD = os.environ.get("TK_WGD", os.path.join(BUILD, "wgd", "src", "wgd"))
DERPD = os.environ.get("TK_DERPD", os.path.join(BUILD, "derpd", "src", "derpd"))
TKTUN = os.path.join(BUILD, "tools", "tun", "tk-tun")
STATUS = os.path.join(BUILD, "tools", "feed", "tk-status")
SNAPSHOT = os.path.join(BUILD, "tools", "feed", "tk-snapshot")

ECHO_SERVER = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(8)
s.settimeout(120)
print("ready", flush=True)
for _ in range(8):
    try:
        c, _ = s.accept()
    except socket.timeout:
        break
    c.settimeout(20)
    data = c.recv(65536)
    c.sendall(data.upper())  # same length: the harness reads len(payload)
    c.close()
"""

ECHO_CLIENT = r"""
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
c.sendall(sys.argv[3].encode())
c.shutdown(socket.SHUT_WR)
buf = b""
while True:
    d = c.recv(65536)
    if not d:
        break
    buf += d
print(buf.decode(errors="replace"))
"""


def rpc_json(tool, url, *extra):
    r = subprocess.run([need(tool), url, *extra], capture_output=True, text=True, timeout=10)
    return json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip() else None


def thread_dump(pid):
    """Where each thread of a hung process waits: gdb's backtraces when gdb
    is installed, else each thread's name, kernel wait channel and syscall."""
    import shutil
    if shutil.which("gdb"):
        r = subprocess.run(["gdb", "-batch", "-p", str(pid), "-ex", "thread apply all bt 30"],
                           capture_output=True, text=True, timeout=60)
        return r.stdout[-12000:]
    out = []
    for tid in sorted(os.listdir(f"/proc/{pid}/task")):
        def rd(f):
            try:
                return open(f"/proc/{pid}/task/{tid}/{f}").read().strip()
            except OSError as e:
                return repr(e)
        out.append(f"{tid} {rd('comm')} wchan={rd('wchan')} syscall={rd('syscall').split(' ')[0]}")
    return "\n".join(out)


class TailkitNode:
    """ctrld + wgd + derpd (client) on one bus directory, tk-tun in `host`."""

    ORDER = ("tk-tun", "ctrld", "derpd", "wgd")   # stop order

    def __init__(self, tmp, control_url, auth_key, host, derp_http=True, hostname="tk1"):
        self.tmp = tmp
        self.bus = os.path.join(tmp, "bus")
        self.logs = {}
        self.procs = {}
        self.host = host
        self.derp_http = derp_http
        self.control_url, self.auth_key, self.hostname = control_url, auth_key, hostname
        self.start_wgd()
        self.start_derpd()
        self.start_ctrld()

    def _spawn(self, name, args, host=None):
        log = open(os.path.join(self.tmp, f"{name}.log"), "a")
        self.logs[name] = log.name
        if host is not None:
            p = host.popen(*args, stdout=subprocess.DEVNULL, stderr=log)
        else:
            p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log)
        self.procs[name] = p
        return p

    def start_wgd(self):
        self._spawn("wgd", [need(WGD), "--bus", self.bus, "--state",
                            os.path.join(self.tmp, "wgd-state"), "--no-uapi"])
        wait_for(lambda: rpc_json(STATUS, f"ipc://{self.bus}/wgd.rpc"), 20, "wgd status")

    def start_derpd(self, *extra):
        self._spawn("derpd", [need(DERPD), "client", "--bus", self.bus,
                              *(["--derp-http"] if self.derp_http else []), *extra])

    def start_ctrld(self):
        self._spawn("ctrld", [need(CTRLD), "--bus", self.bus, "--state",
                              os.path.join(self.tmp, "ctrld-state"), "--control-url",
                              self.control_url, "--authkey", self.auth_key,
                              "--hostname", self.hostname])

    def kill(self, name, sig=signal.SIGKILL):
        p = self.procs.get(name)
        if p and p.poll() is None:
            p.send_signal(sig)
            p.wait(timeout=20)

    def netmap(self):
        r = rpc_json(SNAPSHOT, f"ipc://{self.bus}/ctrld.rpc", "netmap")
        return (r or {}).get("body")

    def status(self, comp):
        return rpc_json(STATUS, f"ipc://{self.bus}/{comp}.rpc")

    def counters(self, comp):
        st = self.status(comp) or {}
        return dict(st.get("counters", {}))

    def bring_up_tun(self, v4):
        self.dev = f"tkd{os.getpid() % 100000}"[:15]
        self._spawn("tk-tun", [need(TKTUN), "--bus", self.bus, self.dev], host=self.host)
        wait_for(lambda: self.host.run("ip", "link", "show", self.dev,
                                       check=False).returncode == 0, 10, "TUN device")
        self.host.run("ip", "addr", "add", f"{v4}/32", "dev", self.dev)
        self.host.run("ip", "link", "set", self.dev, "up")
        self.host.run("ip", "link", "set", "lo", "up")
        self.host.run("ip", "route", "add", "100.64.0.0/10", "dev", self.dev)

    def stop(self):
        """SIGTERM to each daemon; returns {name: exit code} of those that
        were still running (a clean stop is 0, also under ASan)."""
        rcs = {}
        for name in self.ORDER:
            p = self.procs.get(name)
            if p and p.poll() is None:
                p.terminate()
                try:
                    rcs[name] = p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    print(f"--- {name} hung on SIGTERM: its threads ---\n{thread_dump(p.pid)}")
                    p.kill()
                    p.wait(timeout=5)
                    rcs[name] = "hung"
        return rcs

    def tails(self):
        out = []
        for name, path in self.logs.items():
            try:
                out.append(f"--- {name} ---\n" + open(path, errors="replace").read()[-2500:])
            except OSError:
                pass
        # each live component's status: its counters say where packets stopped
        for comp in ("ctrld", "derpd", "wgd", "netstackd"):
            if comp in self.logs and self.procs.get(comp) and self.procs[comp].poll() is None:
                try:
                    out.append(f"--- {comp} status ---\n" + json.dumps(self.status(comp))[:3000])
                except Exception as e:  # noqa: BLE001 - a diagnostic, best effort
                    out.append(f"--- {comp} status: {e!r}")
        return "\n".join(out)


@pytest.fixture
def tknode(tmp_path, topology):
    made = []

    def make(*a, **kw):
        host = topology.host("tk")
        n = TailkitNode(str(tmp_path), *a, host=host, **kw)
        made.append(n)
        return n
    yield make
    for n in made:
        rcs = n.stop()
        bad = {k: v for k, v in rcs.items() if v != 0 and k != "tk-tun"}
        assert not bad, f"unclean stop {bad}:\n{n.tails()}"


def v4_of(nm_node):
    for a in nm_node.get("addresses", []):
        ip = a.split("/")[0] if isinstance(a, str) else a.get("addr", "")
        if "." in ip:
            return ip
    raise AssertionError(f"no IPv4 address in {nm_node}")


def dial(admin, frm, network, addr, payload=""):
    return http_json("POST", admin + "/dial", {"from": frm, "network": network, "addr": addr,
                                               "payload": payload, "timeout_ms": 20000})


def ping_ok(host, ip, timeout):
    def one():
        r = host.run("ping", "-c", "1", "-W", "2", ip, check=False, timeout=10)
        return r.returncode == 0
    return wait_for(one, timeout, f"ping {ip}")


def node_up(tk, info, n_go):
    """Waits for the netmap (self + Go peers), the home region, and the TUN."""
    nm = wait_for(lambda: (lambda m: m if m and m.get("self", {}).get("addresses")
                           and len(m.get("peers", [])) >= n_go else None)(tk.netmap()),
                  60, "netmap with self and the Go peers")
    me = v4_of(nm["self"])
    wait_for(lambda: tk.counters("derpd").get("regions_connected", 0) >= 1, 30,
             "derpd connected to its home region")
    tk.bring_up_tun(me)
    return nm, me


def go_ip(info, name):
    return next(n for n in info["nodes"] if n["name"] == name)["ips"][0]


def check_both_ways(tk, info, me, tag):
    admin = info["admin_url"]
    go1 = go_ip(info, "go1")
    # tailkit -> Go: ICMP, then TCP to go1's echo service (port 7)
    ping_ok(tk.host, go1, 60)
    r = tk.host.run("python3", "-c", ECHO_CLIENT, go1, "7", f"hello-{tag}", check=False,
                    timeout=40)
    assert r.returncode == 0 and f"hello-{tag}" in r.stdout, r.stdout + r.stderr
    # Go -> tailkit: go1 dials a TCP server listening on the node's address
    srv = tk.host.popen("python3", "-c", ECHO_SERVER, "7007")
    try:
        assert srv.stdout.readline().strip() == "ready"
        res = wait_for(lambda: (lambda x: x if x.get("ok") else None)(
            dial(admin, "go1", "tcp", f"{me}:7007", f"from-go-{tag}")), 60,
            "go1 dialing the tailkit node")
        assert res["reply"] == f"FROM-GO-{tag.upper()}", res
    finally:
        srv.kill()
        srv.wait(timeout=5)


def test_tailkit_node_reaches_go_nodes_over_go_derper(derper, interop_peer, tknode):
    """ctrld + wgd + derpd against testcontrol, Go's derper and two tsnet
    nodes, DERP only: ping and TCP both ways."""
    d = derper()
    info = interop_peer(2, "-derp", f"127.0.0.1:{d['port']}", "-derp-stun-port",
                        str(d["stun_port"]), "-derp-http", "-derp-only")
    tk = tknode(info["control_url"], info["auth_key"])
    try:
        nm, me = node_up(tk, info, 2)
        # control learned our home region from ctrld's NetInfo: the Go
        # nodes' netmaps carry it (they could not reach us otherwise)
        check_both_ways(tk, info, me, "derper")
        wc = tk.counters("wgd")
        assert wc.get("derp_tx", 0) > 0 and wc.get("derp_rx", 0) > 0, wc
        assert wc.get("handshakes_completed", 0) >= 1, wc
        dc = tk.counters("derpd")
        assert dc["home_region"] == 1 and dc["derp_rx_packets"] > 0, dc
        # the second Go node too
        ping_ok(tk.host, go_ip(info, "go2"), 60)
    except BaseException:
        print(tk.tails())
        raise


def test_tailkit_derpd_restart_resumes(derper, interop_peer, tknode):
    """kill -9 derpd on the node: after a restart DERP traffic resumes;
    wgd and ctrld are not restarted."""
    d = derper()
    info = interop_peer(1, "-derp", f"127.0.0.1:{d['port']}", "-derp-stun-port",
                        str(d["stun_port"]), "-derp-http", "-derp-only")
    tk = tknode(info["control_url"], info["auth_key"])
    try:
        nm, me = node_up(tk, info, 1)
        go1 = go_ip(info, "go1")
        ping_ok(tk.host, go1, 60)
        wgd_pid = tk.procs["wgd"].pid
        tk.kill("derpd")
        r = tk.host.run("ping", "-c", "1", "-W", "1", go1, check=False, timeout=10)
        assert r.returncode != 0, "ping answered with derpd dead"
        tk.start_derpd()
        ping_ok(tk.host, go1, 60)
        assert tk.procs["wgd"].pid == wgd_pid and tk.procs["wgd"].poll() is None
    except BaseException:
        print(tk.tails())
        raise


def test_tailkit_node_over_tls_derp(interop_peer, tknode):
    """The harness's own DERP server (Go's derpserver behind TLS with a
    self-signed certificate, DERPNode.InsecureForTests): derpd's TLS path."""
    info = interop_peer(1, "-derp-only")
    tk = tknode(info["control_url"], info["auth_key"], derp_http=False)
    try:
        nm, me = node_up(tk, info, 1)
        go1 = go_ip(info, "go1")
        ping_ok(tk.host, go1, 60)
        r = tk.host.run("python3", "-c", ECHO_CLIENT, go1, "7", "hello-tls", check=False,
                        timeout=40)
        assert r.returncode == 0 and "hello-tls" in r.stdout, r.stdout + r.stderr
    except BaseException:
        print(tk.tails())
        raise


def test_tailkit_node_verifies_derp_certificate(interop_peer, tknode, tmp_path):
    """The harness's DERP server published without InsecureForTests (its
    self-signed certificate for 127.0.0.1 is the CA; the Go node trusts it
    through SSL_CERT_FILE): derpd verifies the server's chain after the TLS
    handshake, with the CA bundle loaded for that alone (tk/tls_verify.h).
    Without the CA derpd refuses the server (not one DERP byte sent); with
    it as --ca-file (derpd restarted) the node relays to the Go node."""
    ca = tmp_path / "derp-ca.pem"
    info = interop_peer(1, "-derp-only", "-derp-verify-ca", str(ca))
    assert ca.exists()
    tk = tknode(info["control_url"], info["auth_key"], derp_http=False)
    try:
        wait_for(lambda: tk.counters("derpd").get("connection_failures", 0) >= 1, 30,
                 "derpd refusing the unverified DERP server")
        c = tk.counters("derpd")
        assert c.get("regions_connected", 0) == 0 and c.get("handshakes", 0) == 0, c
        with open(tk.logs["derpd"]) as f:
            assert "does not verify" in f.read()
        tk.kill("derpd", signal.SIGTERM)
        tk.start_derpd("--ca-file", str(ca))
        nm, me = node_up(tk, info, 1)
        go1 = go_ip(info, "go1")
        ping_ok(tk.host, go1, 60)
        assert tk.counters("derpd").get("regions_connected", 0) == 1
    except BaseException:
        print(tk.tails())
        raise


def test_tailkit_node_with_headscale_embedded_derp(headscale, interop_peer, tknode):
    """The same node against headscale v0.29.2 and its embedded DERP server
    (region 999, plain HTTP on headscale's listener), with a Go tsnet node
    registered at the same headscale, DERP only."""
    hs = headscale
    info = interop_peer(1, "-control", hs["url"], "-authkey", hs["auth_key"], "-derp-only",
                        env={"TS_DEBUG_USE_DERP_HTTP": "true"})
    tk = tknode(hs["control_url"], hs["auth_key"])
    try:
        nm, me = node_up(tk, info, 1)
        assert tk.counters("derpd")["home_region"] == 999
        check_both_ways(tk, info, me, "headscale")
        assert tk.counters("wgd").get("derp_rx", 0) > 0
    except BaseException:
        print(tk.tails())
        raise


def test_go_derper_killed_and_restarted(procs, interop_peer, tknode, tmp_path):
    """kill -9 the DERP server itself: derpd reconnects (Go's backoff) when
    it comes back on the same address, and traffic resumes; nothing on the
    node restarts."""
    from conftest import Proc, binary, free_port, wait_tcp
    port, stun = free_port(), free_port(2)
    args = [binary("derper"), "-a", f"127.0.0.1:{port}", "-http-port", "-1", "-stun-port",
            str(stun), "-c", str(tmp_path / "derper.json")]
    d = Proc("derper", args)
    procs.append(d)
    wait_tcp(port)
    info = interop_peer(1, "-derp", f"127.0.0.1:{port}", "-derp-stun-port", str(stun),
                        "-derp-http", "-derp-only")
    tk = tknode(info["control_url"], info["auth_key"])
    try:
        nm, me = node_up(tk, info, 1)
        go1 = go_ip(info, "go1")
        ping_ok(tk.host, go1, 60)
        before = tk.counters("derpd")["handshakes"]
        d.p.kill()
        d.p.wait(timeout=10)
        wait_for(lambda: tk.counters("derpd")["regions_connected"] == 0, 20,
                 "derpd noticing the server is gone")
        d2 = Proc("derper", args)  # same key file, same port
        procs.append(d2)
        wait_tcp(port)
        wait_for(lambda: tk.counters("derpd")["handshakes"] > before, 30,
                 "derpd reconnecting")
        ping_ok(tk.host, go1, 60)
        assert all(tk.procs[n].poll() is None for n in ("wgd", "ctrld", "derpd"))
    except BaseException:
        print(tk.tails())
        raise


def test_two_regions_home_and_peer_home(procs, derper, interop_peer, tknode):
    """Two DERP regions (two Go derpers): the tailkit node's home is one, the
    Go node's home the other.  derpd keeps its home connection and opens the
    peer's home region on demand; traffic flows both ways across regions
    (each packet is sent into the receiver's home region, as magicsock
    does)."""
    d1, d2 = derper(), derper()
    info = interop_peer(1, "-derp", f"127.0.0.1:{d1['port']}", "-derp-stun-port",
                        str(d1["stun_port"]), "-derp2", f"127.0.0.1:{d2['port']}",
                        "-derp2-stun-port", str(d2["stun_port"]), "-derp-http", "-derp-only")
    tk = tknode(info["control_url"], info["auth_key"])
    try:
        nm = wait_for(lambda: (lambda m: m if m and m.get("peers") and
                               m["peers"][0].get("home_derp") else None)(tk.netmap()),
                      60, "the Go node's home region in the netmap")
        assert len(nm["derp_map"]["regions"]) == 2
        go_home = nm["peers"][0]["home_derp"]
        mine = 3 - go_home
        tk.kill("derpd")
        tk.start_derpd("--home-region", str(mine))
        wait_for(lambda: tk.counters("derpd").get("home_region") == mine, 20,
                 "derpd's pinned home")
        nm, me = node_up(tk, info, 1)
        # control learned our new home from NetInfo
        check_both_ways(tk, info, me, "regions")
        dc = tk.counters("derpd")
        assert dc["regions_connected"] == 2, dc  # home + the peer's home
        st = tk.status("derpd")
        assert st is not None
    except BaseException:
        print(tk.tails())
        raise


def test_tailkit_node_wgd_restart_over_derp(derper, interop_peer, tknode):
    """kill -9 wgd while the node talks to a Go node over DERP: restarted
    with the same state, it re-handshakes through derpd (whose bus dials
    reconnect by themselves) and traffic resumes; ctrld and derpd are not
    restarted."""
    d = derper()
    info = interop_peer(1, "-derp", f"127.0.0.1:{d['port']}", "-derp-stun-port",
                        str(d["stun_port"]), "-derp-http", "-derp-only")
    tk = tknode(info["control_url"], info["auth_key"])
    try:
        nm, me = node_up(tk, info, 1)
        go1 = go_ip(info, "go1")
        ping_ok(tk.host, go1, 60)
        others = {n: tk.procs[n].pid for n in ("ctrld", "derpd")}
        tk.kill("wgd")
        tk.start_wgd()
        ping_ok(tk.host, go1, 60)
        assert {n: tk.procs[n].pid for n in others} == others
        assert all(tk.procs[n].poll() is None for n in others)
        assert tk.counters("wgd")["handshakes_completed"] >= 1
    except BaseException:
        print(tk.tails())
        raise


def test_tailkit_node_ctrld_down_keeps_forwarding(derper, interop_peer, tknode):
    """kill -9 ctrld: wgd and derpd keep forwarding on the last netmap;
    ctrld restarted re-syncs without disturbing them."""
    d = derper()
    info = interop_peer(1, "-derp", f"127.0.0.1:{d['port']}", "-derp-stun-port",
                        str(d["stun_port"]), "-derp-http", "-derp-only")
    tk = tknode(info["control_url"], info["auth_key"])
    try:
        nm, me = node_up(tk, info, 1)
        go1 = go_ip(info, "go1")
        ping_ok(tk.host, go1, 60)
        tk.kill("ctrld")
        for _ in range(3):
            r = tk.host.run("ping", "-c", "1", "-W", "2", go1, check=False, timeout=10)
            assert r.returncode == 0, "the data plane stopped with ctrld"
        tk.start_ctrld()
        wait_for(lambda: (tk.status("ctrld") or {}).get("state") == 6, 30, "ctrld running")
        ping_ok(tk.host, go1, 30)
    except BaseException:
        print(tk.tails())
        raise


def test_tailkit_node_over_tailkit_derpd(procs, tmp_path, interop_peer, tknode):
    """First data with tailkit on both sides of the relay: the tailkit node
    and two Go tsnet nodes, DERP only, with tailkit's derpd (server mode)
    as the region's server; ping and TCP both ways."""
    from test_derpd import _derpd_factory
    mine = []
    start = next(_derpd_factory(procs, tmp_path, mine))
    d = start()
    info = interop_peer(2, "-derp", f"127.0.0.1:{d['port']}", "-derp-stun-port",
                        str(d["stun_port"]), "-derp-http", "-derp-only")
    tk = tknode(info["control_url"], info["auth_key"])
    try:
        nm, me = node_up(tk, info, 2)
        check_both_ways(tk, info, me, "derpd")
        ping_ok(tk.host, go_ip(info, "go2"), 60)
        m = d["metrics"]()
        relayed = sum(v for k, v in m.items() if "packets" in k and "recv" in k.lower())
        assert relayed > 0 or any(v > 0 for k, v in m.items() if "packets" in k), m
    except BaseException:
        print(tk.tails())
        raise
    finally:
        for p in mine:
            p.stop()
        assert all(p.p.returncode == 0 for p in mine), "derpd server: unclean stop"


def test_go_tsmp_ping_answered_by_wgd(derper, interop_peer, tknode):
    """Issue 17 item 15: a Go node's TSMP ping (`tailscale ping --tsmp`,
    LocalClient.Ping with PingTSMP) to the tailkit node is answered by wgd
    with a TSMP pong that Go accepts (net/tstun injectOutboundPong; before,
    the ping went up to the node's kernel, which has no protocol 99)."""
    d = derper()
    info = interop_peer(1, "-derp", f"127.0.0.1:{d['port']}", "-derp-stun-port",
                        str(d["stun_port"]), "-derp-http", "-derp-only")
    tk = tknode(info["control_url"], info["auth_key"])
    try:
        nm, me = node_up(tk, info, 1)
        ping_ok(tk.host, go_ip(info, "go1"), 60)   # the path is up
        last = {}

        def tsmp():
            last.update(http_json("POST", info["admin_url"] + "/ping",
                                  {"from": "go1", "ip": me, "type": "TSMP",
                                   "timeout_ms": 5000}))
            return last if last.get("ok") else None
        res = wait_for(tsmp, 40, "go1's TSMP ping answered")
        assert res["result"]["NodeIP"] == me, res
        wc = tk.counters("wgd")
        assert wc["tsmp_pings"] >= 1, wc
    except BaseException:
        print(tk.tails())
        raise
