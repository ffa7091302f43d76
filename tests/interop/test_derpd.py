"""tailkit derpd (server mode) against Go's DERP clients, tsnet nodes and
derper.  Everything listens on 127.0.0.1; every process is stopped by the
fixtures (conftest.Proc)."""

import json
import os
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.request
import zlib
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from conftest import Proc, binary, free_port, http_json, wait_tcp

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DERPD = os.environ.get("TK_DERPD", os.path.join(ROOT, "build", "derpd", "src", "derpd"))
PAIR = os.environ.get("TK_DERPD_PAIR", os.path.join(ROOT, "build", "tests", "unit", "derpd",
                                                    "derpd_pair"))


def make_cert(certdir):
    certdir.mkdir(exist_ok=True)
    crt, key = certdir / "127.0.0.1.crt", certdir / "127.0.0.1.key"
    if not crt.exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out",
                        str(crt), "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
                        "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return str(crt)


@pytest.fixture
def derpd(procs, tmp_path, request):
    """Factory: derpd(tls=False, mesh_psk=None, extra=[]) -> dict(url, port, stun_port,
    metrics(), proc, ca).  On teardown every derpd must stop cleanly on SIGTERM
    (exit 0: with the ASan build, a leak or UB report fails the test)."""
    if not os.access(DERPD, os.X_OK):
        pytest.fail(f"{DERPD} is missing: build it (ninja -C build derpd)")
    mine = []
    yield from _derpd_factory(procs, tmp_path, mine)
    bad = []
    for p in mine:
        p.stop()
        if p.p.returncode != 0:
            bad.append(f"derpd exited {p.p.returncode}:\n{p.tail(80)}")
    if bad:
        pytest.fail("\n".join(bad))


def _derpd_factory(procs, tmp_path, mine):

    def start(tls=False, mesh_psk=None, extra=(), state=None, port=None):
        port = port or free_port()
        stun = free_port(socket.SOCK_DGRAM)
        state = state or str(tmp_path / f"derpd-state-{port}")
        args = [DERPD, "server", "-a", f"127.0.0.1:{port}", "-http-port", "-1",
                "-stun-port", str(stun), "--state", state]
        ca = None
        scheme = "http"
        if tls:
            ca = make_cert(tmp_path / "certs")
            args += ["-certmode", "manual", "-certdir", str(tmp_path / "certs"),
                     "-hostname", "127.0.0.1"]
            scheme = "https"
        if mesh_psk:
            psk = tmp_path / "mesh.key"
            psk.write_text(mesh_psk + "\n")
            args += ["-mesh-psk-file", str(psk)]
        args += list(extra)
        # trust for derpd's own mesh links (to an https peer)
        env = dict(os.environ, SSL_CERT_FILE=ca) if ca else None
        p = Proc("derpd", args, env=env)
        procs.append(p)
        mine.append(p)
        wait_tcp(port)
        base = f"{scheme}://127.0.0.1:{port}"

        def metrics():
            ctx = None
            if tls:
                import ssl
                ctx = ssl.create_default_context(cafile=ca)
            with urllib.request.urlopen(base + "/metrics", timeout=10, context=ctx) as r:
                out = {}
                for line in r.read().decode().splitlines():
                    if line and not line.startswith("#"):
                        k, v = line.rsplit(" ", 1)
                        out[k] = int(v)
                return out

        return {"url": base + "/derp", "base": base, "port": port, "stun_port": stun,
                "proc": p, "ca": ca, "metrics": metrics, "state": state}
    yield start


def derpclient(url, n=20, ca=None):
    env = dict(os.environ)
    if ca:
        env["SSL_CERT_FILE"] = ca
    r = subprocess.run([binary("derpclient"), "-url", url, "-n", str(n)], env=env,
                       capture_output=True, text=True, timeout=60)
    try:
        res = json.loads(r.stdout)
    except ValueError:
        raise AssertionError(f"derpclient: rc={r.returncode} stdout={r.stdout!r} "
                             f"stderr={r.stderr[-2000:]}")
    assert r.returncode == 0 and res["ok"], (res, r.stderr[-2000:])
    assert res["received"] == {"a": n, "b": n}
    return res


def wait_for(fn, timeout=10):
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v or time.time() > deadline:
            return v
        time.sleep(0.1)


@pytest.mark.parametrize("tls", [False, True])
def test_derpd_go_derp_clients(derpd, tls):
    d = derpd(tls=tls)
    res = derpclient(d["url"], n=50, ca=d["ca"])
    assert res["server_key"].startswith("nodekey:")
    m = d["metrics"]()
    assert m["derp_packets_sent_total"] >= 100, m  # derpclient also sends warm-up packets
    assert m["derp_upgrades_total"] == 2
    # over TLS 1.3 Go's client finds derpd's meta certificate and skips the 101
    assert m["derp_fast_start_total"] == (2 if tls else 0), m


@pytest.mark.parametrize("tls", [False, True])
def test_derpd_two_tsnet_nodes_derp_only(derpd, interop_peer, tls):
    d = derpd(tls=tls)
    info = interop_peer(2, "-derp", f"127.0.0.1:{d['port']}", "-derp-stun-port",
                        str(d["stun_port"]), *([] if tls else ["-derp-http"]), "-derp-only")
    admin = info["admin_url"]
    ip2 = next(n for n in info["nodes"] if n["name"] == "go2")["ips"][0]
    r = http_json("POST", admin + "/dial", {"from": "go1", "network": "tcp",
                                            "addr": f"{ip2}:7", "payload": "via-derpd",
                                            "timeout_ms": 20000})
    assert r["ok"] and r["reply"] == "via-derpd", r
    r = http_json("POST", admin + "/dial", {"from": "go1", "network": "udp",
                                            "addr": f"{ip2}:7", "payload": "udp-via-derpd",
                                            "timeout_ms": 20000})
    assert r["ok"] and r["reply"] == "udp-via-derpd", r
    st = http_json("GET", admin + "/nodes/go1/netmap")
    peer = next(p for p in st["Peer"].values() if p["HostName"] == "go2")
    assert not peer.get("CurAddr"), "DERP-only must not use a direct path"
    assert peer.get("Relay")
    m = d["metrics"]()
    assert m["derp_current_clients"] == 2, m
    assert m["derp_packets_sent_total"] > 0


def http_raw(port, data, timeout=3):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    out = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except socket.timeout:
        pass
    except ConnectionResetError:
        pass
    s.close()
    return out


def test_derpd_http_endpoints(derpd):
    d = derpd()
    p = d["port"]
    r = http_raw(p, b"GET /derp HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert r.startswith(b"HTTP/1.1 426 ") and b"DERP requires connection upgrade" in r
    for path in (b"/derp/probe", b"/derp/latency-check"):
        r = http_raw(p, b"GET " + path + b" HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert r.startswith(b"HTTP/1.1 200 ") and b"Access-Control-Allow-Origin: *" in r
        r = http_raw(p, b"PUT " + path + b" HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert r.startswith(b"HTTP/1.1 405 ")
    r = http_raw(p, b"GET /generate_204 HTTP/1.1\r\nX-Tailscale-Challenge: x-1.y_z:0\r\n"
                 b"Connection: close\r\n\r\n")
    assert r.startswith(b"HTTP/1.1 204 ") and b"X-Tailscale-Response: response x-1.y_z:0" in r
    r = http_raw(p, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert r.startswith(b"HTTP/1.1 200 ") and b"DERP" in r
    r = http_raw(p, b"GET /derp HTTP/1.1\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n\r\n", 1)
    assert r.startswith(b"HTTP/1.1 101 ") and b"Derp-Version: 2\r\n" in r
    key = r.split(b"Derp-Public-Key: ")[1][:64].decode()
    res = derpclient(d["url"], n=3)
    assert res["server_key"] == "nodekey:" + key
    m = d["metrics"]()
    assert m["derp_http_requests_total"] >= 9


def stun_request(txid):
    b = struct.pack(">HHI", 1, 20, 0x2112A442) + txid + struct.pack(">HH", 0x8022, 8) + b"tailnode"
    # net/stun Request: the CRC covers everything before the FINGERPRINT attribute
    return b + struct.pack(">HHI", 0x8028, 4, zlib.crc32(b) ^ 0x5354554E)


def test_derpd_stun(derpd):
    d = derpd()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.bind(("127.0.0.1", 0))
    s.sendto(b"not stun at all", ("127.0.0.1", d["stun_port"]))
    tx = os.urandom(12)
    s.sendto(stun_request(tx), ("127.0.0.1", d["stun_port"]))
    resp, _ = s.recvfrom(2048)
    assert resp[:2] == b"\x01\x01" and resp[8:20] == tx
    typ, alen, _, fam, xport = struct.unpack(">HHBBH", resp[20:28])
    assert typ == 0x0020 and fam == 1
    ip = bytes(a ^ b for a, b in zip(resp[28:32], b"\x21\x12\xa4\x42"))
    assert socket.inet_ntoa(ip) == "127.0.0.1" and xport ^ 0x2112 == s.getsockname()[1]
    s.close()
    m = d["metrics"]()
    assert m["derp_stun_requests_total"] == 1 and m["derp_stun_bad_total"] == 1


def frame(t, payload=b""):
    return bytes([t]) + struct.pack(">I", len(payload)) + payload


UPGRADE = b"GET /derp HTTP/1.1\r\nHost: x\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n\r\n"


def closed_by_server(sock, timeout=5):
    sock.settimeout(timeout)
    try:
        while True:
            b = sock.recv(65536)
            if not b:
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_derpd_bad_input(derpd):
    d = derpd()
    p = d["port"]

    def conn(data):
        s = socket.create_connection(("127.0.0.1", p), timeout=5)
        s.sendall(data)
        return s

    # garbage before anything HTTP (a DERP magic instead of a request)
    s = conn(b"DERP\xf0\x9f\x94\x91" + os.urandom(200) + b"\r\n\r\n")
    assert closed_by_server(s)
    # frames before ClientInfo
    s = conn(UPGRADE + frame(4, b"\x01" * 40))
    assert closed_by_server(s)
    # a ClientInfo whose box does not open
    s = conn(UPGRADE + frame(2, os.urandom(32 + 24 + 40)))
    assert closed_by_server(s)
    # oversized ClientInfo length (over 256 KiB), and an absurd one
    s = conn(UPGRADE + bytes([2]) + struct.pack(">I", (256 << 10) + 1))
    assert closed_by_server(s)
    s = conn(UPGRADE + bytes([2]) + struct.pack(">I", 0xFFFFFFFF))
    assert closed_by_server(s)
    # truncated: a header promising more, then the client vanishes
    s = conn(UPGRADE + bytes([2]) + struct.pack(">I", 100) + b"\x00" * 10)
    s.close()
    # 1000 clients connect and vanish, some mid-request, some mid-upgrade
    for i in range(1000):
        try:
            c = socket.create_connection(("127.0.0.1", p), timeout=5)
            if i % 3 == 1:
                c.sendall(UPGRADE[:20])
            elif i % 3 == 2:
                c.sendall(UPGRADE)
            c.close()
        except OSError:
            pass
    # the server is still up and relaying
    derpclient(d["url"], n=10)
    m = wait_for(lambda: (lambda m: m if m["derp_current_connections"] == 1 else None)(d["metrics"]()))
    assert m, d["metrics"]()
    assert m["derp_http_bad_requests_total"] >= 1, m
    assert m["derp_conn_closes_total{reason=\"bad_first_frame\"}"] >= 3, m
    assert m["derp_conn_closes_total{reason=\"bad_box\"}"] == 1, m
    assert m["derp_accepts_total"] >= 1006, m
    assert d["proc"].p.poll() is None


def test_derpd_key_persists(derpd, procs):
    d = derpd()
    k1 = derpclient(d["url"], n=2)["server_key"]
    d["proc"].stop()
    d2 = derpd(state=d["state"], port=d["port"])
    assert derpclient(d2["url"], n=2)["server_key"] == k1
    assert oct(os.stat(os.path.join(d["state"], "derpd.db")).st_mode & 0o777) == "0o600"


def test_derpd_rejects_bad_flags():
    r = subprocess.run([DERPD, "server", "-a", "nonsense"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 2 and "HOST:PORT" in r.stderr
    r = subprocess.run([DERPD, "server", "--certmode", "letsencrypt"], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 2 and "manual" in r.stderr


def start_go_derper(procs, tmp_path, port, psk, mesh_with, ca):
    (tmp_path / "g.key").write_text(psk)
    certdir = tmp_path / "certs"  # derper makes its own cert for an IP host name
    env = dict(os.environ, SSL_CERT_FILE=ca)
    g = Proc("derper", [binary("derper"), "-a", f"127.0.0.1:{port}", "-http-port", "-1",
                        "-stun-port", str(free_port(socket.SOCK_DGRAM)),
                        "-c", str(tmp_path / "g.json"), "-certmode", "manual",
                        "-certdir", str(certdir), "-hostname", "127.0.0.1",
                        "-mesh-psk-file", str(tmp_path / "g.key"),
                        "-mesh-with", mesh_with], env=env)
    procs.append(g)
    wait_tcp(port)
    return g


def pair(url_a, url_b, n, ca):
    r = subprocess.run([PAIR, url_a, url_b, str(n)], env=dict(os.environ, SSL_CERT_FILE=ca),
                       capture_output=True, text=True, timeout=120)
    try:
        return json.loads(r.stdout)
    except ValueError:
        raise AssertionError(f"derpd_pair: rc={r.returncode} {r.stdout!r} {r.stderr[-2000:]}")


def test_go_derper_and_derpd_mesh(derpd, procs, tmp_path):
    """A region of two servers, Go derper and tailkit derpd, each started with
    --mesh-with the other: a client on one reaches a client on the other in both
    directions (ForwardPacket each way), and derpd's link to derper is a watcher
    there while derper's link is one here."""
    if not os.access(PAIR, os.X_OK):
        pytest.fail(f"{PAIR} is missing: ninja -C build derpd_pair")
    psk = "cd" * 32
    gport = free_port()
    d = derpd(tls=True, mesh_psk=psk, extra=["--mesh-with", f"127.0.0.1:{gport}"])
    g = start_go_derper(procs, tmp_path, gport, psk, f"127.0.0.1:{d['port']}", d["ca"])
    m = wait_for(lambda: (lambda m: m if m["derp_current_watchers"] == 1 and
                          m["derp_mesh_connects_total"] >= 1 else None)(d["metrics"]()), 30)
    assert m, (d["metrics"](), g.tail(), d["proc"].tail())
    res = pair(f"https://127.0.0.1:{gport}/derp", d["url"], 100, d["ca"])
    assert res["ok"] and res["a_to_b"] == 100 and res["b_to_a"] == 100, (res, g.tail())
    assert res["server_a"] != res["server_b"]
    m = d["metrics"]()
    assert m["derp_packets_forwarded_in_total"] >= 100, m   # derper -> derpd
    assert m["derp_packets_forwarded_out_total"] >= 100, m  # derpd -> derper
    assert "connected" in g.tail()
    # derpd's own clients are still served directly
    derpclient(d["url"], n=5, ca=d["ca"])


def test_derpd_mesh_derpd(derpd, tmp_path):
    """Two derpd instances meshed over HTTPS."""
    psk = "ef" * 32
    p1, p2 = free_port(), free_port()
    d1 = derpd(tls=True, mesh_psk=psk, port=p1, extra=["--mesh-with", f"127.0.0.1:{p2}"])
    d2 = derpd(tls=True, mesh_psk=psk, port=p2,
               extra=["--mesh-with", f"127.0.0.1:{p1},127.0.0.1:{p2}"])  # self is skipped
    for d in (d1, d2):
        assert wait_for(lambda: d["metrics"]()["derp_current_watchers"] == 1, 30), d["metrics"]()
    res = pair(d1["url"], d2["url"], 50, d1["ca"])
    assert res["ok"], res
    assert "that is this server" in d2["proc"].tail()


class Admission:
    """An admission controller on 127.0.0.1 (what --verify-client-url calls)."""

    def __init__(self, allow):
        self.allow = allow
        self.requests = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                req = json.loads(self.rfile.read(n))
                outer.requests.append(req)
                body = json.dumps({"Allow": outer.allow(req)}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.srv = HTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}/admit"
        self.t = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.t.start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def derpclient_fails(url):
    r = subprocess.run([binary("derpclient"), "-url", url, "-n", "2", "-timeout", "4s"],
                       capture_output=True, text=True, timeout=60)
    return r.returncode != 0


def test_derpd_verify_client_url(derpd):
    adm = Admission(lambda req: True)
    try:
        d = derpd(extra=["--verify-client-url", adm.url])
        derpclient(d["url"], n=5)
        assert len(adm.requests) == 2, adm.requests
        for req in adm.requests:
            assert req["NodePublic"].startswith("nodekey:") and len(req["NodePublic"]) == 72
            assert req["Source"] == "127.0.0.1"
        # the controller says no: connections are closed, as Go's derper does
        adm.allow = lambda req: False
        assert derpclient_fails(d["url"])
        m = d["metrics"]()
        assert m["derp_admission_denied_total"] >= 1, m
        assert m["derp_conn_closes_total{reason=\"not_admitted\"}"] >= 1, m
    finally:
        adm.close()


def test_derpd_verify_client_url_unreachable(derpd):
    # a port bound and never listened on: refused, and no parallel test can
    # take it meanwhile (a free_port() could be reused and answer)
    hold = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    hold.bind(("127.0.0.1", 0))
    try:
        dead = f"http://127.0.0.1:{hold.getsockname()[1]}/admit"
        d = derpd(extra=["--verify-client-url", dead])  # fail-open is the default
        derpclient(d["url"], n=2)
        assert d["metrics"]()["derp_admission_fail_open_total"] == 2
        d2 = derpd(extra=["--verify-client-url", dead,
                          "--verify-client-url-fail-open=false"])
        assert derpclient_fails(d2["url"])
        assert d2["metrics"]()["derp_admission_denied_total"] >= 1
    finally:
        hold.close()


HEADSCALE_DERP_YAML = """\
regions:
  900:
    regionid: 900
    regioncode: tailkit
    regionname: tailkit derpd
    nodes:
      - name: 900a
        regionid: 900
        hostname: 127.0.0.1
        ipv4: 127.0.0.1
        ipv6: none
        stunport: {stun}
        stuntestip: 127.0.0.1
        derpport: {port}
        insecurefortests: true
"""


def test_derpd_as_headscale_derp_region(derpd, procs, interop_peer, tmp_path, monkeypatch):
    """README's recipe: derpd as the only DERP region of a headscale tailnet (a
    derp.paths file, the embedded DERP server off); two Go nodes registered
    with headscale talk through derpd only."""
    import conftest
    d = derpd()
    derp_yaml = tmp_path / "derp.yaml"
    derp_yaml.write_text(HEADSCALE_DERP_YAML.format(stun=d["stun_port"], port=d["port"]))
    cfg = conftest.HEADSCALE_CONFIG.replace("  server:\n    enabled: true", "  server:\n    enabled: false")
    cfg = cfg.replace("automatically_add_embedded_derp_region: true",
                      "automatically_add_embedded_derp_region: false")
    cfg = cfg.replace("  paths: []", f"  paths: [{derp_yaml}]")
    assert "enabled: false" in cfg and str(derp_yaml) in cfg
    monkeypatch.setattr(conftest, "HEADSCALE_CONFIG", cfg)
    hsdir = tmp_path / "hs"
    hsdir.mkdir()
    hs = conftest.start_headscale(hsdir, procs)
    info = interop_peer(2, "-control", hs["url"], "-authkey", hs["auth_key"],
                        "-derp", f"127.0.0.1:{d['port']}", "-derp-stun-port", str(d["stun_port"]),
                        "-derp-http", "-derp-only")
    admin = info["admin_url"]
    ip2 = next(n for n in info["nodes"] if n["name"] == "go2")["ips"][0]
    r = http_json("POST", admin + "/dial", {"from": "go1", "network": "tcp", "addr": f"{ip2}:7",
                                            "payload": "headscale-derpd", "timeout_ms": 30000})
    assert r["ok"] and r["reply"] == "headscale-derpd", r
    st = http_json("GET", admin + "/nodes/go1/netmap")
    peer = next(p for p in st["Peer"].values() if p["HostName"] == "go2")
    assert peer.get("Relay") == "tailkit", peer
    m = d["metrics"]()
    assert m["derp_current_clients"] == 2 and m["derp_packets_sent_total"] > 0, m


def test_derpd_rate_config_and_sighup(derpd, tmp_path):
    rc = tmp_path / "rate.json"
    rc.write_text('{"PerClientRateLimitBytesPerSec": 1000000, "PerClientRateBurstBytes": 10}')
    d = derpd(extra=["--rate-config", str(rc)])
    derpclient(d["url"], n=20)
    assert "client-rate=1000000 bytes/sec, client-burst=65568 bytes" in d["proc"].tail()
    rc.write_text("not json")
    os.kill(d["proc"].p.pid, signal.SIGHUP)
    assert wait_for(lambda: "keeping the old rate config" in d["proc"].tail())
    rc.write_text('{"PerClientRateLimitBytesPerSec": 0}')
    os.kill(d["proc"].p.pid, signal.SIGHUP)
    assert wait_for(lambda: "client-rate=0 bytes/sec" in d["proc"].tail())
    derpclient(d["url"], n=5)


def test_derpd_verify_clients_with_tailscaled(derpd, procs, interop_peer, tmp_path):
    """--verify-clients: derpd asks a real tailscaled (LocalAPI whois by node
    key) and admits only the peers of its tailnet: two tsnet nodes of the
    same tailnet relay through derpd, a stranger (derpclient's fresh keys)
    is refused."""
    sock = tmp_path / "tsd" / "tailscaled.sock"
    d = derpd(extra=["--verify-clients", "--socket", str(sock)])
    info = interop_peer(0, "-derp", f"127.0.0.1:{d['port']}", "-derp-stun-port",
                        str(d["stun_port"]), "-derp-http", "-derp-only")
    (tmp_path / "tsd").mkdir()
    env = dict(os.environ, TS_DEBUG_USE_DERP_HTTP="1")
    tsd = Proc("tailscaled", [binary("tailscaled"), "--tun=userspace-networking",
                              "--statedir", str(tmp_path / "tsd"), "--socket", str(sock),
                              "--port=0"], env=env)
    procs.append(tsd)
    assert wait_for(lambda: sock.exists(), 30), tsd.tail()
    r = subprocess.run([binary("tailscale"), "--socket", str(sock), "up",
                        "--login-server", info["control_url"], "--auth-key", info["auth_key"],
                        "--hostname", "verifier"], capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stderr
    admin = info["admin_url"]
    for name in ("go1", "go2"):
        http_json("POST", admin + "/nodes", {"name": name})
    nodes = http_json("GET", admin + "/nodes")["nodes"]
    ip2 = next(n for n in nodes if n["name"] == "go2")["ips"][0]
    # tailscaled learns of go1/go2 from its netmap; until then derpd refuses
    # them and they retry
    ok = False
    deadline = time.time() + 60
    while time.time() < deadline and not ok:
        r = http_json("POST", admin + "/dial", {"from": "go1", "network": "tcp",
                                                "addr": f"{ip2}:7", "payload": "verified",
                                                "timeout_ms": 10000})
        ok = r["ok"] and r["reply"] == "verified"
    assert ok, (r, d["metrics"](), tsd.tail())
    m = d["metrics"]()
    assert m["derp_current_clients"] >= 2, m
    # a key tailscaled does not know is refused
    assert derpclient_fails(d["url"])
    m = d["metrics"]()
    assert m["derp_admission_denied_total"] >= 2, m


def test_derpd_takes_over_derper_key(derper, tmp_path):
    """derpd -c reads derper's JSON config ({"PrivateKey":"privkey:..."}): a
    derper can be replaced by derpd without changing the server key.  Also
    derper's own command-line style (no "server" word, single dashes)."""
    g = derper()
    k = derpclient(g["url"], n=2)["server_key"]
    g["proc"].stop()
    cfgs = list(tmp_path.glob("derper-*.json"))
    assert len(cfgs) == 1 and "privkey:" in cfgs[0].read_text()
    d2p = free_port()
    d2 = Proc("derpd", [DERPD, "-a", f"127.0.0.1:{d2p}", "-http-port", "-1", "-stun-port", "-1",
                        "-c", str(cfgs[0])])
    try:
        wait_tcp(d2p)
        assert derpclient(f"http://127.0.0.1:{d2p}/derp", n=2)["server_key"] == k
    finally:
        d2.stop()
        os.unlink(d2.log.name)
    assert d2.p.returncode == 0
