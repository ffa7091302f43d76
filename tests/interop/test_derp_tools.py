"""tk-derp (the DERP debugging tool) against Go's derper: it connects,
upgrades, checks the server key, seals a ClientInfo, opens the ServerInfo,
gets a Pong for its Ping and its own packets back through the server.
What is tailkit's own: tk-derp and libs/derp; the server is Go's."""

import os
import subprocess

import pytest

from test_ctrld import ROOT, need

TKDERP = os.path.join(ROOT, "build", "tools", "derp", "tk-derp")


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_tk_derp_probe_against_go_derper(derper, tls):
    d = derper(tls=tls)
    args = [need(TKDERP), "probe", d["url"], "--count", "50", "--trace", "--stun",
            f"127.0.0.1:{d['stun_port']}"]
    if tls:
        args += ["--ca-file", d["ca"]]
    r = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'server info {"version":2}' in r.stdout, r.stdout
    assert "ping/pong" in r.stdout and "50 packets to ourselves" in r.stdout, r.stdout
    assert "< ServerKey" in r.stdout and "> ClientInfo" in r.stdout, r.stdout
    # Go's STUN server answered our request (Go's format) with our address
    assert "ok   STUN 127.0.0.1:" in r.stdout and "mapped 127.0.0.1:" in r.stdout, r.stdout
    if tls:
        assert "ok   TLS" in r.stdout and "NOT verified" not in r.stdout, r.stdout


def test_tk_derp_probe_refuses_wrong_ca(derper, tmp_path):
    d = derper(tls=True)
    other = tmp_path / "other.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(tmp_path / "o.key"),
                    "-out", str(other), "-days", "2", "-subj", "/CN=other"], check=True,
                   capture_output=True)
    r = subprocess.run([need(TKDERP), "probe", d["url"], "--ca-file", str(other)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "FAIL TLS" in r.stdout, r.stdout + r.stderr


def test_tk_derp_user_errors():
    r = subprocess.run([need(TKDERP), "probe", "ftp://x/derp"], capture_output=True, text=True)
    assert r.returncode == 2 and "accepted: http://" in r.stderr, r.stderr
    r = subprocess.run([need(TKDERP)], capture_output=True, text=True)
    assert r.returncode == 2 and "usage" in r.stderr


def test_go_derpprobe_finds_tailkit_derpd_healthy(procs, tmp_path):
    """Go's own prober (cmd/derpprobe, v1.102.3, -once) against a region
    served by tailkit's derpd and, in the same run, by Go's derper with the
    same certificate and map: derpd passes the TLS, STUN and DERP mesh
    (send/receive) probes, and passes exactly the probes derper passes
    (udp6 fails for both: the relays listen on 127.0.0.1 only)."""
    import json
    import re
    from conftest import Proc, binary, free_port, wait_tcp
    certs = tmp_path / "certs"
    certs.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(certs / "localhost.key"),
                    "-out", str(certs / "localhost.crt"), "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost"], check=True, capture_output=True)
    derpd = os.environ.get("TK_DERPD", os.path.join(ROOT, "build", "derpd", "src", "derpd"))

    def probe(kind):
        port, stun = free_port(), free_port(2)
        tls = ["-certmode", "manual", "-certdir", str(certs), "-hostname", "localhost"]
        if kind == "derpd":
            args = [need(derpd), "server", "-a", f"127.0.0.1:{port}", "-http-port", "-1",
                    "-stun-port", str(stun), "--state", str(tmp_path / "st"), *tls]
        else:
            args = [binary("derper"), "-a", f"127.0.0.1:{port}", "-http-port", "-1",
                    "-stun-port", str(stun), "-c", str(tmp_path / "derper.json"), *tls]
        p = Proc(kind, args)
        procs.append(p)
        wait_tcp(port)
        m = {"Regions": {"900": {"RegionID": 900, "RegionCode": "tk", "RegionName": "tk",
                                 "Nodes": [{"Name": "900a", "RegionID": 900,
                                            "HostName": "localhost", "IPv4": "127.0.0.1",
                                            "IPv6": "none", "STUNPort": stun,
                                            "DERPPort": port}]}}}
        mf = tmp_path / f"map-{kind}.json"
        mf.write_text(json.dumps(m))
        env = dict(os.environ, SSL_CERT_FILE=str(certs / "localhost.crt"))
        r = subprocess.run([binary("derpprobe"), "-derp-map", f"file://{mf}", "-once"],
                           capture_output=True, text=True, timeout=120, env=env)
        p.stop()
        out = r.stdout + r.stderr
        good = set(re.findall(r"good: derp/tk/900a/(\S+):", out))
        bad = set(re.findall(r"bad: derp/tk/900a/(\S+):", out))
        return good, bad, out

    gd, bd, out_d = probe("derpd")
    gg, bg, out_g = probe("derper")
    assert {"tls", "udp", "900a/mesh"} <= gd, out_d
    assert gd == gg and bd == bg, f"derpd {gd}/{bd} vs derper {gg}/{bg}\n{out_d}\n{out_g}"
