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
        # headscale echoes our Hostinfo: Go's version syntax, tailkit named
        hi = m["Node"].get("Hostinfo", {})
        assert hi.get("IPNVersion", "").endswith("-tailkit0.1"), hi
        assert hi.get("App") == "tailkit", hi
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
