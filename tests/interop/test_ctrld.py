"""ctrld's ts2021 client against Tailscale's Go testcontrol and headscale
v0.29.2: the server key fetch, the Noise handshake inside the HTTP upgrade,
the early payload, HTTP/2, registration with a pre-auth key and the zstd
map stream, seen through tk-control (ctrld's transport as a command)."""

import json
import os
import select
import subprocess
import time
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TKCONTROL = os.path.join(ROOT, "build", "tools", "control", "tk-control")


def need(p):
    if not os.access(p, os.X_OK):
        pytest.fail(f"{p} is missing: tools/setup.sh builds it")
    return p


class Control:
    """tk-control streaming in the background; stdout lines are MapResponses."""

    def __init__(self, url, authkey, *extra):
        self.p = subprocess.Popen([need(TKCONTROL), "--authkey", authkey, "--idle", "60",
                                   *extra, url], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.buf = ""

    def next(self, timeout=30):
        deadline = time.time() + timeout
        while "\n" not in self.buf:
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError("no MapResponse in time: " + self.stderr())
            r, _, _ = select.select([self.p.stdout], [], [], left)
            if r:
                chunk = os.read(self.p.stdout.fileno(), 1 << 20).decode()
                if not chunk:
                    raise AssertionError("tk-control ended: " + self.stderr())
                self.buf += chunk
        line, self.buf = self.buf.split("\n", 1)
        return json.loads(line)

    def until(self, pred, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = self.next(deadline - time.time())
            if pred(m):
                return m
        raise AssertionError("condition never met")

    def stderr(self):
        if self.p.poll() is None:
            self.p.terminate()
            self.p.wait(timeout=5)
        return self.p.stderr.read()

    def close(self):
        if self.p.poll() is None:
            self.p.terminate()
            self.p.wait(timeout=5)


def admin(info, method, path, body=None):
    req = urllib.request.Request(info["admin_url"] + path, method=method,
                                 data=json.dumps(body).encode() if body else None)
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read() or b"null")


def peer_names(m):
    return sorted(p.get("Name", "").split(".")[0] for p in m.get("Peers") or [])


def test_testcontrol_register_and_map(interop_peer):
    info = interop_peer(2)
    c = Control(info["control_url"], info["auth_key"], "--hostname", "tk1")
    try:
        m = c.next()
        assert m["Node"]["Name"].startswith("tk1.")
        assert m["Node"]["MachineAuthorized"] is True
        assert peer_names(m) == ["go1", "go2"]
        assert m["DERPMap"]["Regions"], "a DERP map comes with the first netmap"
        # a node joins live, then leaves
        admin(info, "POST", "/nodes", {"name": "go3"})
        c.until(lambda x: any(p.get("Name", "").startswith("go3.")
                              for p in (x.get("Peers") or []) + (x.get("PeersChanged") or [])))
        assert c.p.poll() is None
    finally:
        c.close()


def test_testcontrol_wrong_authkey_is_refused(interop_peer):
    info = interop_peer(0)
    r = subprocess.run([need(TKCONTROL), "--authkey", "tskey-auth-wrong", "--count", "1",
                        "--idle", "10", info["control_url"]], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode != 0
    assert "refused" in r.stderr or "HTTP" in r.stderr, r.stderr


def test_headscale_register_and_map(interop_peer, headscale):
    hs = headscale
    peer = interop_peer(1, "-control", hs["control_url"], "-authkey", hs["auth_key"])
    assert peer["nodes"]
    c = Control(hs["control_url"], hs["auth_key"], "--hostname", "tk1")
    try:
        m = c.until(lambda x: "Node" in x)
        assert m["Node"]["Name"].startswith("tk1.")
        assert "go1" in peer_names(m)
        assert m["DERPMap"]["Regions"]
        assert "tailkit-0.1" in json.dumps(m["Node"].get("Hostinfo", {}))
        err = c.stderr()
        assert "early payload" in err and "nodeKeyChallenge" in err, err
    finally:
        c.close()


def test_headscale_bad_authkey_is_refused(headscale):
    hs = headscale
    r = subprocess.run([need(TKCONTROL), "--authkey", "hskey-auth-bogus", "--count", "1",
                        "--idle", "10", hs["control_url"]], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode != 0, r.stderr


# --- the ctrld daemon ----------------------------------------------------------

import base64  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402

from conftest import Proc, binary, wait_tcp  # noqa: E402

CTRLD = os.path.join(ROOT, "build", "ctrld", "ctrld")
WGD = os.path.join(ROOT, "build", "wgd", "src", "wgd")
STATUS = os.path.join(ROOT, "build", "tools", "feed", "tk-status")
SNAPSHOT = os.path.join(ROOT, "build", "tools", "feed", "tk-snapshot")


class Daemon:
    def __init__(self, tmp, url, authkey, hostname="tkd", standalone=True, extra=()):
        self.bus = os.path.join(tmp, "bus")
        self.state = os.path.join(tmp, "ctrld-state")
        self.log = open(os.path.join(tmp, "ctrld.log"), "a")
        self.args = [need(CTRLD), "--bus", self.bus, "--state", self.state,
                     "--control-url", url, "--authkey", authkey, "--hostname", hostname,
                     *(["--standalone"] if standalone else []), *extra]
        self.p = None
        self.start()

    def start(self):
        self.p = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=self.log)

    def stop(self, sig=signal.SIGTERM):
        if self.p and self.p.poll() is None:
            self.p.send_signal(sig)
            self.p.wait(timeout=10)

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
        st = d.status()
        assert st["state"] != 6 and st.get("health"), st   # not connected, says why
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
