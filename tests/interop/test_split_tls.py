"""Split mode across hosts (issue 13): the node's components as separate
daemons on two network-namespace hosts, joined by tls+tcp:// buses with
mutual certificate authentication.  Host A runs the control server
(testcontrol, with a Go tsnet node), ctrld, wgd and derpd; host B runs
netstackd alone, reaching wgd's packet bus and ctrld's netmap on A over
tls+tcp.  The Go node fetches a page from a service on B (through
netstackd's API) over DERP and the cross-host packet bus; a client with a
certificate from another CA, or with none, is refused by the bus."""

import json
import os
import ssl
import socket
import subprocess

import pytest

from conftest import binary, wait_for
from test_node_derp import CTRLD, DERPD, NETSTACKD, TKNS, WGD, need

A_IP, B_IP = "10.77.0.1", "10.77.0.2"
NAME = "bus.tailkit.test"   # mbedTLS (nng) checks DNS SANs, not IP SANs
PORTS = {"ctrld.pub": 7101, "ctrld.rpc": 7102, "wgd-pkt": 7103}


def pki(d):
    """A CA, a certificate per host (DNS SAN bus.tailkit.test, server and
    client use), and an intruder's CA and certificate."""
    def run(*a):
        subprocess.run(["openssl", *a], check=True, capture_output=True, cwd=d, timeout=60)
    ext = os.path.join(d, "leaf.ext")
    with open(ext, "w") as f:
        f.write(f"subjectAltName=DNS:{NAME}\nbasicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature,keyAgreement\n"
                "extendedKeyUsage=serverAuth,clientAuth\n")
    for ca in ("ca", "evil-ca"):
        run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-subj", f"/CN=tailkit {ca}",
            "-days", "2", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=keyCertSign")
    for leaf, ca in (("a", "ca"), ("b", "ca"), ("evil", "evil-ca")):
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{leaf}.key", "-out", f"{leaf}.csr", "-subj", f"/CN={leaf}")
        run("x509", "-req", "-in", f"{leaf}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{leaf}.pem", "-days", "2", "-extfile", ext)
    return lambda n: os.path.join(d, n)


def tls_flags(p, leaf):
    return ["--bus-cert", p(f"{leaf}.pem"), "--bus-key", p(f"{leaf}.key"),
            "--bus-ca", p("ca.pem"), "--bus-server-name", NAME]


def url(bus):
    return f"tls+tcp://{A_IP}:{PORTS[bus]}"


def in_host(host, code, *args, timeout=60):
    r = host.run("python3", "-c", code, *args, check=False, timeout=timeout)
    return r.stdout.strip(), r.returncode


ADMIN = r"""
import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1] + sys.argv[2], method=sys.argv[3],
                             data=sys.argv[4].encode() if len(sys.argv) > 4 else None)
try:
    with urllib.request.urlopen(req, timeout=60) as r:
        print(r.read().decode())
except Exception as e:
    print(json.dumps({"ok": False, "error": str(e)}))
"""


def test_split_mode_across_hosts_tls(topology, tmp_path):
    tmp = str(tmp_path)
    p = pki(tmp)
    a, b = topology.host("spa"), topology.host("spb")
    topology.link(a, f"{A_IP}/24", b, f"{B_IP}/24")
    a.run("ip", "link", "set", "lo", "up")
    b.run("ip", "link", "set", "lo", "up")
    logs = {}
    procs = []

    def spawn(host, name, *args):
        logs[name] = open(os.path.join(tmp, f"{name}.log"), "w")
        pr = host.popen(*args, stdout=subprocess.PIPE if name == "peer" else subprocess.DEVNULL,
                        stderr=logs[name])
        procs.append(pr)
        return pr
    try:
        peer = spawn(a, "peer", binary("interop-peer"), "-nodes", "1")
        info = json.loads(peer.stdout.readline())
        bus = os.path.join(tmp, "bus-a")
        os.makedirs(bus, mode=0o700)
        ta = tls_flags(p, "a")
        spawn(a, "wgd", need(WGD), "--bus", bus, "--state", os.path.join(tmp, "wgd"),
              "--no-uapi", "--pkt", url("wgd-pkt"), "--ctrld-pub", url("ctrld.pub"),
              "--ctrld-rpc", url("ctrld.rpc"), *ta)
        spawn(a, "derpd", need(DERPD), "client", "--bus", bus, "--ctrld-pub",
              url("ctrld.pub"), "--ctrld-rpc", url("ctrld.rpc"), *ta)
        spawn(a, "ctrld", need(CTRLD), "--bus", bus, "--state", os.path.join(tmp, "ctrld"),
              "--control-url", info["control_url"], "--authkey", info["auth_key"],
              "--hostname", "tksplit", "--pub", url("ctrld.pub"), "--rpc", url("ctrld.rpc"),
              *ta)
        api = os.path.join(tmp, "ns.sock")
        spawn(b, "netstackd", need(NETSTACKD), "--pkt", url("wgd-pkt"), "--ctrld-pub",
              url("ctrld.pub"), "--ctrld-rpc", url("ctrld.rpc"), "--api", api,
              *tls_flags(p, "b"))
        # the node's address, as control knows it
        def me():
            out, rc = in_host(a, ADMIN, info["admin_url"], "/nodes", "GET")
            nodes = json.loads(out).get("control_nodes") or [] if rc == 0 else []
            return next((n["Addresses"][0].split("/")[0] for n in nodes
                         if n.get("Name", "").startswith("tksplit.")), None)
        ip = wait_for(me, 60, "the split node registered")
        wait_for(lambda: os.path.exists(api), 30, "netstackd's API on host B")
        srv = subprocess.Popen([need(TKNS), "--api", api, "listen", "8080", "http", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(srv)
        assert srv.stdout.readline().startswith("listening")

        def fetch():
            out, rc = in_host(a, ADMIN, info["admin_url"], "/dial", "POST", json.dumps(
                {"from": "go1", "network": "http", "addr": f"{ip}:8080",
                 "timeout_ms": 15000}))
            r = json.loads(out) if rc == 0 and out else {}
            return r if r.get("ok") else None
        res = wait_for(fetch, 90, "go1 fetching the page served on host B")
        assert "go1" in res["reply"], res
        print("split: fetched", res["reply"].strip()[:80])

        # mutual authentication: from host B, a TLS client with the
        # intruder's certificate, and one with no certificate, are refused
        # by ctrld's rpc listener on A; the right certificate is accepted
        probe = r"""
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations(sys.argv[3])
ctx.check_hostname = True
if sys.argv[4] != "-":
    ctx.load_cert_chain(sys.argv[4], sys.argv[5])
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
try:
    t = ctx.wrap_socket(s, server_hostname=sys.argv[6])
    t.settimeout(3)
    # TLS 1.3 servers refuse the client certificate after the handshake:
    # a read then fails or sees the close
    try:
        d = t.recv(1)
        print("closed" if d == b"" else "open")
    except socket.timeout:
        print("open")
    except (ssl.SSLError, ConnectionError, OSError) as e:
        print("refused", e)
except (ssl.SSLError, ConnectionError, OSError) as e:
    print("refused", e)
"""
        args = (A_IP, str(PORTS["ctrld.rpc"]), p("ca.pem"))
        ok, _ = in_host(b, probe, *args, p("b.pem"), p("b.key"), NAME)
        evil, _ = in_host(b, probe, *args, p("evil.pem"), p("evil.key"), NAME)
        none, _ = in_host(b, probe, *args, "-", "-", NAME)
        print("split: probes", ok, "|", evil, "|", none)
        assert ok == "open", ok
        assert evil.startswith(("refused", "closed")), evil
        assert none.startswith(("refused", "closed")), none
    except BaseException:
        for n, f in logs.items():
            f.flush()
            print(f"--- {n} ---\n" + open(f.name, errors="replace").read()[-2000:])
        raise
    finally:
        for pr in reversed(procs):
            if pr.poll() is None:
                pr.terminate()
                try:
                    pr.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    pr.kill()
                    pr.wait(timeout=5)
