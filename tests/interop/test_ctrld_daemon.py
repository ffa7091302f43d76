"""The ctrld daemon against testcontrol and headscale v0.29.2: the netmap it
publishes on the bus (read back with tk-snapshot and tk-status), live
changes, control restarts, deletions, the sqlite cache, and the bus
contract with wgd."""

import json
import os
import subprocess
import time

import pytest

from test_ctrld import ROOT, TKCONTROL, admin, need

# --- the ctrld daemon ----------------------------------------------------------

import signal  # noqa: E402

from conftest import Proc, binary, wait_tcp  # noqa: E402

CTRLD = os.environ.get("TK_CTRLD", os.path.join(ROOT, "build", "ctrld", "ctrld"))
WGD = os.environ.get("TK_WGD", os.path.join(ROOT, "build", "wgd", "src", "wgd"))
STATUS = os.path.join(ROOT, "build", "tools", "feed", "tk-status")
SNAPSHOT = os.path.join(ROOT, "build", "tools", "feed", "tk-snapshot")


class Daemon:
    def __init__(self, tmp, url, authkey, hostname="tkd", standalone=True, extra=()):
        auth = ["--authkey", authkey] if authkey else []
        self.bus = os.path.join(tmp, "bus")
        self.state = os.path.join(tmp, "ctrld-state")
        self.log = open(os.path.join(tmp, "ctrld.log"), "a")
        self.args = [need(CTRLD), "--bus", self.bus, "--state", self.state,
                     "--control-url", url, *auth, "--hostname", hostname,
                     *(["--standalone"] if standalone else []), *extra]
        self.p = None
        self.start()

    def start(self):
        self.p = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=self.log)

    def stop(self, sig=signal.SIGTERM):
        if self.p and self.p.poll() is None:
            self.p.send_signal(sig)
            self.p.wait(timeout=20)
            if sig == signal.SIGTERM:   # a clean stop; under ASan also leak-free
                self.log.flush()
                tail = open(self.log.name).read()[-3000:]
                assert self.p.returncode == 0, f"ctrld exited {self.p.returncode}: {tail}"

    def status(self):
        r = subprocess.run([need(STATUS), f"ipc://{self.bus}/ctrld.rpc"], capture_output=True,
                           text=True, timeout=10)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def netmap(self):
        r = subprocess.run([need(SNAPSHOT), f"ipc://{self.bus}/ctrld.rpc", "netmap"],
                           capture_output=True, text=True, timeout=10)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def wait(self, pred, timeout=60, what="condition"):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            last = self.netmap()
            if last is not None and pred(last["body"] if "body" in last else {}):
                return last["body"]
            time.sleep(0.2)
        raise AssertionError(f"{what} never held; last netmap: {json.dumps(last)[:2000]}"
                             f"\nstatus: {json.dumps(self.status())}")


def names(nm):
    return sorted(p.get("name", "").split(".")[0] for p in nm.get("peers", []))


@pytest.fixture
def daemons():
    made = []
    yield made
    for d in made:
        d.stop()


def test_ctrld_testcontrol_netmap_live(interop_peer, tmp_path, daemons):
    info = interop_peer(2)
    d = Daemon(str(tmp_path), info["control_url"], info["auth_key"])
    daemons.append(d)
    nm = d.wait(lambda n: names(n) == ["go1", "go2"], what="two Go peers")
    assert nm["self"]["name"].startswith("tkd.")
    assert nm["derp_map"]["regions"], nm
    st = d.status()
    assert st["state"] == 6, st          # RUNNING
    # live: a node joins, then control pushes a filter and DNS config
    admin(info, "POST", "/nodes", {"name": "go3"})
    d.wait(lambda n: "go3" in names(n), what="go3 joining")
    selfkey = "nodekey:" + nm["self"]["key"]
    rule = {"SrcIPs": ["100.64.0.0/10"], "DstPorts": [{"IP": "*", "Ports": {"First": 22,
                                                                          "Last": 22}}]}
    admin(info, "POST", "/rawmap", {"node_key": selfkey, "map": {
        "PacketFilters": {"*": None, "base": [rule]},
        "DNSConfig": {"Resolvers": [{"Addr": "100.100.100.100"}], "Domains": ["ts.test"]}}})
    nm = d.wait(lambda n: n.get("packet_filter", {}).get("rules"), what="the filter")
    r = nm["packet_filter"]["rules"][0]
    assert r["dst_ports"][0]["first_port"] == 22 and r["src_ips"][0]["prefix"]["bits"] == 10
    assert nm["dns_config"]["domains"] == ["ts.test"]
    # deny all: present but empty
    admin(info, "POST", "/rawmap", {"node_key": selfkey,
                                    "map": {"PacketFilters": {"*": None, "base": []}}})
    nm = d.wait(lambda n: n.get("packet_filter", {}).get("received") and
                not n["packet_filter"].get("rules"), what="deny-all")


def test_ctrld_headscale_restart_delete_and_cache(interop_peer, headscale, tmp_path, daemons):
    hs = headscale
    interop_peer(1, "-control", hs["control_url"], "-authkey", hs["auth_key"])
    d = Daemon(str(tmp_path), hs["control_url"], hs["auth_key"])
    daemons.append(d)
    d.wait(lambda n: names(n) == ["go1"], what="the Go peer")
    # headscale restarts (same database and keys): ctrld reconnects
    sessions = int(d.status()["counters"]["sessions"])
    hs["proc"].p.terminate()
    hs["proc"].p.wait(timeout=10)
    port = int(hs["control_url"].rsplit(":", 1)[1])
    p2 = Proc("headscale2", [binary("headscale"), "-c", hs["config"], "serve"])
    try:
        wait_tcp(port)
        deadline = time.time() + 90
        while time.time() < deadline:
            st = d.status()
            if int(st["counters"]["sessions"]) > sessions and st["state"] == 6:
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"no new session after the restart: {d.status()}")
        # the Go peer is deleted in headscale: it leaves ctrld's netmap
        nodes = hs["cli"]("nodes", "list")
        go1 = [n for n in nodes if n.get("given_name", n.get("name", "")).startswith("go1")]
        assert go1, nodes
        hs["cli"]("nodes", "delete", "--identifier", str(go1[0]["id"]), "--force")
        d.wait(lambda n: names(n) == [], what="the deleted peer leaving")
        # ctrld restarts while control is down: it comes up from its cache
        d.stop()
        p2.p.terminate()
        p2.p.wait(timeout=10)
        d.start()
        nm = d.wait(lambda n: n.get("self", {}).get("name", "").startswith("tkd."),
                    what="the cached netmap")
        deadline = time.time() + 30
        while time.time() < deadline:     # the first attempt fails and says why
            st = d.status()
            if st.get("health"):
                break
            time.sleep(0.3)
        assert st["state"] != 6 and st.get("health"), st
    finally:
        if p2.p.poll() is None:
            p2.p.terminate()
            p2.p.wait(timeout=10)


def test_ctrld_registers_wgd_node_key(interop_peer, tmp_path, daemons):
    """The bus contract between the two real components: ctrld registers
    with the node key wgd generated, and wgd takes its peers from ctrld."""
    info = interop_peer(1)
    bus = os.path.join(str(tmp_path), "bus")
    w = subprocess.Popen([need(WGD), "--bus", bus, "--state", os.path.join(str(tmp_path), "wgd"),
                          "--no-uapi"], stdout=subprocess.DEVNULL,
                         stderr=open(os.path.join(str(tmp_path), "wgd.log"), "w"))
    try:
        for _ in range(100):
            r = subprocess.run([need(STATUS), f"ipc://{bus}/wgd.rpc"], capture_output=True,
                               text=True, timeout=10)
            if r.returncode == 0:
                break
            time.sleep(0.1)
        wkey = json.loads(r.stdout)["self"]["key"]
        d = Daemon(str(tmp_path), info["control_url"], info["auth_key"], standalone=False)
        daemons.append(d)
        nm = d.wait(lambda n: names(n) == ["go1"], what="the Go peer")
        assert "nodekey:" + nm["self"]["key"] == wkey
        # wgd follows ctrld's netmap: go1 becomes a WireGuard peer
        go1key = "nodekey:" + nm["peers"][0]["key"]
        for _ in range(100):
            ws = json.loads(subprocess.run([need(STATUS), f"ipc://{bus}/wgd.rpc"],
                                           capture_output=True, text=True).stdout)
            if any(p["node_key"] == go1key for p in ws["peers"]):
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"wgd never got go1: {ws}")
    finally:
        w.terminate()
        w.wait(timeout=10)


def test_ctrld_headscale_logout(headscale, tmp_path, daemons):
    hs = headscale
    d = Daemon(str(tmp_path), hs["control_url"], hs["auth_key"], hostname="tklo")
    daemons.append(d)
    d.wait(lambda n: n.get("self", {}).get("name", "").startswith("tklo."), what="self")
    r = subprocess.run([need(STATUS), "--call", "logout", f"ipc://{d.bus}/ctrld.rpc"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stdout + r.stderr
    deadline = time.time() + 30
    while time.time() < deadline:
        st = d.status()
        if st["state"] == 2:       # NEEDS_LOGIN
            break
        time.sleep(0.3)
    assert st["state"] == 2, st
    # headscale expired the node (logout = a registration with a past expiry)
    node = [n for n in hs["cli"]("nodes", "list") if n.get("name") == "tklo"
            or n.get("given_name") == "tklo"]
    assert node, hs["cli"]("nodes", "list")
    exp = node[0].get("expiry") or {}
    assert exp, node[0]
    secs = exp.get("seconds") if isinstance(exp, dict) else None
    assert secs is None or secs <= time.time() + 5, node[0]


def test_ctrld_headscale_expired_node(headscale, tmp_path, daemons):
    hs = headscale
    d = Daemon(str(tmp_path), hs["control_url"], hs["auth_key"], hostname="tkex")
    daemons.append(d)
    nm = d.wait(lambda n: n.get("self", {}).get("name", "").startswith("tkex."), what="self")
    oldkey = nm["self"]["key"]
    hs["cli"]("nodes", "expire", "--identifier", str(nm["self"]["id"]))
    # noticed, then renewed: a new node key registered with OldNodeKey and
    # the auth key, and the node runs again
    nm = d.wait(lambda n: n.get("self", {}).get("key", oldkey) != oldkey and
                not n["self"].get("expired"), timeout=90, what="a renewed node key")
    deadline = time.time() + 30
    while time.time() < deadline and d.status()["state"] != 6:
        time.sleep(0.3)
    assert d.status()["state"] == 6
    assert "expired" in open(d.log.name).read()


def test_ctrld_headscale_interactive_login(headscale, tmp_path, daemons):
    """No auth key: the login URL is in the status; an admin approves it in
    headscale; ctrld, waiting on its Followup registration, comes up."""
    hs = headscale
    d = Daemon(str(tmp_path), hs["control_url"], None, hostname="tkin")
    daemons.append(d)
    deadline = time.time() + 30
    st = None
    while time.time() < deadline:
        st = d.status()
        if st and st.get("auth_url"):
            break
        time.sleep(0.3)
    assert st and st.get("auth_url") and st["state"] == 2, st     # NEEDS_LOGIN
    key = st["auth_url"].rstrip("/").rsplit("/", 1)[1]
    try:
        hs["cli"]("nodes", "register", "--user", "tailkit", "--key", key)
    except RuntimeError:
        hs["cli"]("auth", "register", "--user", "tailkit", "--auth-id", key)
    nm = d.wait(lambda n: n.get("self", {}).get("name", "").startswith("tkin."),
                what="the node after approval")
    assert d.status()["state"] == 6


def test_ctrld_headscale_own_node_deleted(headscale, tmp_path, daemons):
    """Our node is deleted in headscale: at its next session ctrld registers
    again with its auth key and comes back as a new node."""
    hs = headscale
    d = Daemon(str(tmp_path), hs["control_url"], hs["auth_key"], hostname="tkdel")
    daemons.append(d)
    nm = d.wait(lambda n: n.get("self", {}).get("name", "").startswith("tkdel."), what="self")
    old = nm["self"]["id"]
    hs["cli"]("nodes", "delete", "--identifier", str(old), "--force")
    # headscale keeps the open stream going (keep-alives only); at the next
    # session ctrld's registration without the key is refused, so it
    # registers again with the auth key
    d.stop()
    d.start()
    d.wait(lambda n: n.get("self", {}).get("id", old) != old, timeout=90,
           what="a new registration")
    assert "retrying with the auth key" in open(d.log.name).read()


def test_ctrld_expiry_rotates_wgd_key(headscale, tmp_path, daemons):
    """Expiry with wgd owning the key: ctrld asks wgd for a new node key
    (rpc rotate_node_key), wgd publishes it, ctrld registers it with
    OldNodeKey, and headscale's node carries wgd's new key."""
    hs = headscale
    bus = os.path.join(str(tmp_path), "bus")
    w = subprocess.Popen([need(WGD), "--bus", bus, "--state",
                          os.path.join(str(tmp_path), "wgd")], stdout=subprocess.DEVNULL,
                         stderr=open(os.path.join(str(tmp_path), "wgd.log"), "w"))

    def wgd_key():
        r = subprocess.run([need(STATUS), f"ipc://{bus}/wgd.rpc"], capture_output=True,
                           text=True, timeout=10)
        return json.loads(r.stdout)["self"]["key"] if r.returncode == 0 else None
    try:
        for _ in range(100):
            k1 = wgd_key()
            if k1:
                break
            time.sleep(0.1)
        d = Daemon(str(tmp_path), hs["control_url"], hs["auth_key"], hostname="tkrot",
                   standalone=False)
        daemons.append(d)
        nm = d.wait(lambda n: n.get("self", {}).get("name", "").startswith("tkrot."),
                    what="self")
        assert "nodekey:" + nm["self"]["key"] == k1
        hs["cli"]("nodes", "expire", "--identifier", str(nm["self"]["id"]))
        nm = d.wait(lambda n: "nodekey:" + n.get("self", {}).get("key", "") != k1 and
                    not n["self"].get("expired"), timeout=90, what="wgd's new key")
        k2 = wgd_key()
        assert k2 != k1 and "nodekey:" + nm["self"]["key"] == k2
    finally:
        w.terminate()
        w.wait(timeout=10)


def test_ctrld_testcontrol_restart(interop_peer, tmp_path, daemons):
    """testcontrol goes away for 2 s (connections dropped, port closed) and
    comes back with its state: ctrld's session ends, it backs off, reconnects
    and the published netmap keeps the peers throughout."""
    info = interop_peer(1)
    d = Daemon(str(tmp_path), info["control_url"], info["auth_key"])
    daemons.append(d)
    d.wait(lambda n: names(n) == ["go1"], what="the Go peer")
    s0 = int(d.status()["counters"]["sessions"])
    admin(info, "POST", "/restart-control", {"down_ms": 2000})
    deadline = time.time() + 60
    while time.time() < deadline:
        st = d.status()
        if int(st["counters"]["sessions"]) > s0 and st["state"] == 6:
            break
        assert names(d.netmap()["body"]) == ["go1"]   # never lost meanwhile
        time.sleep(0.2)
    else:
        raise AssertionError(f"no new session: {d.status()}")
    admin(info, "POST", "/nodes", {"name": "go2"})
    d.wait(lambda n: names(n) == ["go1", "go2"], what="a node joining after the restart")


def make_certs(d):
    """A throwaway CA and a server certificate for localhost/127.0.0.1."""
    ext = os.path.join(d, "san.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True,
                                    cwd=d, timeout=60)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=tailkit test CA", "-days", "2",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=keyCertSign")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=localhost")
    run("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "srv.pem", "-days", "2", "-extfile", ext)
    return [os.path.join(d, x) for x in ("ca.pem", "srv.pem", "srv.key")]


def test_ctrld_headscale_over_tls(headscale, tmp_path, daemons):
    """headscale serving HTTPS with a private CA: the key fetch verifies the
    certificate (refused without the CA), then ts2021 runs inside TLS."""
    hs = headscale
    ca, cert, key = make_certs(str(tmp_path))
    port = int(hs["control_url"].rsplit(":", 1)[1])
    hs["proc"].p.terminate()
    hs["proc"].p.wait(timeout=10)
    cfg = open(hs["config"]).read().replace(f"server_url: http://127.0.0.1:{port}",
                                            f"server_url: https://localhost:{port}")
    cfg += f"tls_cert_path: {cert}\ntls_key_path: {key}\n"
    with open(hs["config"], "w") as f:
        f.write(cfg)
    p2 = Proc("headscale-tls", [binary("headscale"), "-c", hs["config"], "serve"])
    try:
        wait_tcp(port)
        url = f"https://localhost:{port}"
        # without the CA the server key fetch refuses the certificate
        r = subprocess.run([need(TKCONTROL), "--authkey", hs["auth_key"], "--count", "1",
                            "--idle", "10", url], capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and "TLS" in r.stderr, r.stderr
        d = Daemon(str(tmp_path), url, hs["auth_key"], hostname="tktls",
                   extra=("--ca-file", ca))
        daemons.append(d)
        d.wait(lambda n: n.get("self", {}).get("name", "").startswith("tktls."),
               what="a netmap over TLS")
    finally:
        p2.p.terminate()
        p2.p.wait(timeout=10)
