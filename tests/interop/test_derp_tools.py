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
    args = [need(TKDERP), "probe", d["url"], "--count", "50", "--trace"]
    if tls:
        args += ["--ca-file", d["ca"]]
    r = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'server info {"version":2}' in r.stdout, r.stdout
    assert "ping/pong" in r.stdout and "50 packets to ourselves" in r.stdout, r.stdout
    assert "< ServerKey" in r.stdout and "> ClientInfo" in r.stdout, r.stdout
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
