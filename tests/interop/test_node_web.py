"""`tailkit status --web`: the live HTML status page, served on loopback,
read by headless Chromium (Debian's) with a screenshot, for a tailkitd node
with a Go tsnet peer over DERP."""

import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import Proc, free_port, wait_for, wait_tcp
from test_ctrld import ROOT
from test_node_derp import go_ip, need, usnode  # noqa: F401 (fixture)

TAILKIT = os.path.join(ROOT, "build", "tools", "cli", "tailkit")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def get(url, host=None):
    req = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def chromium(tmp_path, *args):
    exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("chromium is not installed (tools/setup.sh installs Debian's)")
    return subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path}/chrome",
                           *args], capture_output=True, text=True, timeout=90)


def test_tailkit_status_web_in_chromium(interop_peer, usnode, procs, tmp_path):  # noqa: F811
    info = interop_peer(1)
    tk = usnode(info["control_url"], info["auth_key"], hostname="tkweb", mode="tailkitd")
    go1 = go_ip(info, "go1")
    port = free_port()
    web = Proc("tailkit-web", [need(TAILKIT), "--socket", tk.socket, "status", "--web",
                               "--listen", f"127.0.0.1:{port}"])
    procs.append(web)
    wait_tcp(port, 15)
    url = f"http://127.0.0.1:{port}/"
    # live: the page follows the node (Running with the Go peer)
    body = wait_for(lambda: (lambda r: r[1] if r[0] == 200 and ">Running<" in r[1] and
                             go1 in r[1] else None)(get(url)), 60, "Running with go1")
    assert "tkweb" in body and "go1" in body and "DERP" in body, body
    # not a loopback Host (DNS rebinding): refused
    code, msg = get(url, host="evil.example:8384")
    assert code == 403 and "localhost" in msg, (code, msg)
    assert get(f"http://127.0.0.1:{port}/nope")[0] == 404

    # Chromium renders it: the DOM it built, and a screenshot
    r = chromium(tmp_path, "--dump-dom", url)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'id="state">Running<' in r.stdout and go1 in r.stdout, r.stdout[-3000:]
    shot = tmp_path / "status.png"
    r = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1000,500", url)
    assert r.returncode == 0 and shot.exists(), r.stderr[-2000:]
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 8000, len(png)
    keep = os.path.join(ROOT, "build", "check-logs")
    os.makedirs(keep, exist_ok=True)
    shutil.copy(shot, os.path.join(keep, "tailkit-status-web.png"))

    # the daemon goes away: the page says so instead of the server dying
    tk.stop()
    time.sleep(0.5)
    code, body = get(url)
    assert code == 200 and "not answering" in body, body
    assert web.p.poll() is None


def test_tailkit_status_web_flags():
    r = subprocess.run([need(TAILKIT), "--socket", "/nonexistent.sock", "status", "--web",
                        "--listen", "0.0.0.0:8384"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "loopback" in r.stderr, r.stderr
    r = subprocess.run([need(TAILKIT), "status", "--web", "--bogus"], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 2 and "--listen" in r.stderr, r.stderr
