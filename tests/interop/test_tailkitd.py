"""tailkitd (the whole node in one process) and its LocalAPI against Go's
own clients of tailscaled's LocalAPI (issue 13): Go's `tailscale` CLI
(status, status --json, whois) and Go's `derper --verify-clients`, which
admits DERP clients by asking the node's LocalAPI whether their node key is
in its tailnet."""

import json
import os
import subprocess

import pytest

from conftest import binary, wait_for
from test_ctrld import ROOT
from test_derpd import derpclient_fails
from test_node_derp import TKNS, dial, go_ip, need, usnode  # noqa: F401 (fixture)


TAILKIT = os.path.join(ROOT, "build", "tools", "cli", "tailkit")


def tailkit(node, *args):
    return subprocess.run([need(TAILKIT), "--socket", node.socket, *args],
                          capture_output=True, text=True, timeout=30)


def cli(node, *args):
    return subprocess.run([binary("tailscale"), f"--socket={node.socket}", *args],
                          capture_output=True, text=True, timeout=30)


def test_tailkitd_localapi_go_cli(interop_peer, usnode):  # noqa: F811
    info = interop_peer(1)
    tk = usnode(info["control_url"], info["auth_key"], hostname="tkla", mode="tailkitd")
    st = wait_for(lambda: (lambda r: json.loads(r.stdout) if r.returncode == 0 and
                           json.loads(r.stdout).get("BackendState") == "Running" and
                           json.loads(r.stdout).get("Peer") else None)(
                               cli(tk, "status", "--json")), 60, "Running with a peer")
    me = st["Self"]
    assert me["HostName"] == "tkla" and me["DNSName"].startswith("tkla.")
    assert st["TailscaleIPs"] == me["TailscaleIPs"] and st["MagicDNSSuffix"]
    go1 = go_ip(info, "go1")
    peer = next(iter(st["Peer"].values()))
    assert peer["HostName"] == "go1" and go1 in peer["TailscaleIPs"], peer
    assert str(peer["UserID"]) in st["User"], st["User"]
    # the text form: one line per node, self first
    r = cli(tk, "status")
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln and not ln.startswith("#")]
    assert lines[0].split()[:2] == [me["TailscaleIPs"][0], "tkla"], r.stdout
    assert any(ln.split()[:2] == [go1, "go1"] for ln in lines), r.stdout
    # whois by address (and by address:port), and a miss
    for addr in (go1, f"{go1}:80"):
        r = cli(tk, "whois", addr)
        assert r.returncode == 0 and "go1.tail-scale.ts.net" in r.stdout, r.stdout + r.stderr
    r = cli(tk, "whois", "100.64.99.99")
    assert r.returncode != 0
    # tailkit's own CLI, same answers
    r = tailkit(tk, "status")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[0].split()[:2] == [me["TailscaleIPs"][0], "tkla"], r.stdout
    assert any(ln.split()[:2] == [go1, "go1"] for ln in r.stdout.splitlines()), r.stdout
    assert json.loads(tailkit(tk, "status", "--json").stdout)["Self"]["HostName"] == "tkla"
    assert tailkit(tk, "ip", "-4").stdout.split() == [me["TailscaleIPs"][0]]
    assert tailkit(tk, "ip", "-4", "go1").stdout.split() == [go1]
    r = tailkit(tk, "whois", f"{go1}:80")
    assert r.returncode == 0 and "go1.tail-scale.ts.net." in r.stdout, r.stdout
    r = tailkit(tk, "whois", "100.64.99.99")
    assert r.returncode == 1 and "no node" in r.stderr, r.stderr
    r = tailkit(tk, "bogus")
    assert r.returncode == 2 and "unknown command" in r.stderr
    r = subprocess.run([need(TAILKIT), "--socket", "/nonexistent.sock", "status"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 1 and "is tailkitd running?" in r.stderr, r.stderr
    # the state is derived live: logged out is NeedsLogin
    r = subprocess.run([binary("tailscale"), f"--socket={tk.socket}", "logout"],
                       capture_output=True, text=True, timeout=30)
    wait_for(lambda: json.loads(cli(tk, "status", "--json").stdout)["BackendState"] ==
             "NeedsLogin", 30, "NeedsLogin after logout")
    r = tailkit(tk, "status")
    assert r.returncode == 1 and "Logged out." in r.stdout, r.stdout


def test_go_derper_verifies_clients_through_tailkitd(derper, interop_peer, usnode, tmp_path):  # noqa: F811
    """derper --verify-clients --socket=<tailkitd's LocalAPI>: the tailnet's
    only DERP region admits the Go node and the tailkit node (their keys are
    in tailkitd's netmap: WhoIsNodeKey answers) and refuses a stranger; the
    two nodes then reach each other through it."""
    sock = os.path.join(str(tmp_path), "state", "tailkitd.sock")
    d = derper(extra=["-verify-clients", "-socket", sock])
    info = interop_peer(1, "-derp", f"127.0.0.1:{d['port']}", "-derp-stun-port",
                        str(d["stun_port"]), "-derp-http", "-derp-only")
    tk = usnode(info["control_url"], info["auth_key"], hostname="tkvc", mode="tailkitd")
    assert tk.socket == sock
    wait_for(lambda: os.path.exists(tk.api), 30, "the node's API")
    st = wait_for(lambda: (lambda r: json.loads(r.stdout) if r.returncode == 0 and
                           json.loads(r.stdout).get("Peer") else None)(
                               cli(tk, "status", "--json")), 60, "a peer")
    me = st["TailscaleIPs"][0]
    # a stranger's key is refused
    assert derpclient_fails(d["url"])
    # the Go node and the tailkit node, both admitted, talk through derper
    srv = subprocess.Popen([need(TKNS), "--api", tk.api, "listen", "8080", "http", "1"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert srv.stdout.readline().startswith("listening")
        res = wait_for(lambda: (lambda x: x if x.get("ok") else None)(
            dial(info["admin_url"], "go1", "http", f"{me}:8080")), 90,
            "go1 fetching the page through the verifying derper")
        assert "go1" in res["reply"], res
    finally:
        srv.kill()
        srv.wait(timeout=5)


def test_tailkit_up_with_and_without_key(interop_peer, usnode):  # noqa: F811
    """tailkitd started without an auth key waits in NeedsLogin; `tailkit up
    --authkey` logs it in (LocalAPI /start -> ctrld's rpc login) and returns
    once it runs; after `tailkit logout`, `tailkit up` logs in again with
    the key it was given; `--timeout` ends a wait that cannot succeed."""
    info = interop_peer(0)
    tk = usnode(info["control_url"], "", hostname="tkup", mode="tailkitd")
    wait_for(lambda: os.path.exists(tk.socket), 30, "the LocalAPI socket")
    st = wait_for(lambda: (lambda r: json.loads(r.stdout) if r.returncode == 0 and
                           json.loads(r.stdout)["BackendState"] == "NeedsLogin"
                           else None)(cli(tk, "status", "--json")), 30, "NeedsLogin")
    r = tailkit(tk, "up", "--exit-node", "x")
    assert r.returncode == 2 and "not supported" in r.stderr, r.stderr
    r = tailkit(tk, "up", "--authkey", "tskey-client-abc")
    assert r.returncode == 1 and "OAuth" in r.stderr, r.stderr
    r = subprocess.run([need(TAILKIT), "--socket", tk.socket, "up", "--authkey",
                        info["auth_key"], "--timeout", "60"],
                       capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    st = json.loads(cli(tk, "status", "--json").stdout)
    assert st["BackendState"] == "Running" and st["Self"]["HostName"] == "tkup", st
    assert tailkit(tk, "logout").returncode == 0
    wait_for(lambda: json.loads(cli(tk, "status", "--json").stdout)["BackendState"] ==
             "NeedsLogin", 30, "NeedsLogin after logout")
    r = subprocess.run([need(TAILKIT), "--socket", tk.socket, "up", "--timeout", "60"],
                       capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(cli(tk, "status", "--json").stdout)["BackendState"] == "Running"


def test_systemd_units_verify():
    """The unit files (tailkitd, split mode, derpd) pass systemd-analyze
    verify; only the not-yet-installed binaries are allowed to be missing."""
    import shutil
    import glob
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    units = glob.glob(os.path.join(ROOT, "tools", "systemd", "*.service")) + \
        glob.glob(os.path.join(ROOT, "tools", "systemd", "*.target")) + \
        [os.path.join(ROOT, "derpd", "derpd.service")]
    assert len(units) >= 7, units
    for u in units:
        r = subprocess.run([tool, "verify", "--man=no", u], capture_output=True, text=True,
                           timeout=60, cwd="/")
        bad = [ln for ln in (r.stdout + r.stderr).splitlines()
               if ln.strip() and "is not executable" not in ln]
        assert not bad, (u, bad)


def test_tailkitd_config_file_same_as_tailscaled(interop_peer, procs, tmp_path):
    """tailscaled's --config file (ipn.ConfigVAlpha, AuthKey as file:PATH)
    brings up Go's tailscaled and tailkitd alike."""
    from conftest import Proc
    info = interop_peer(0)
    key = tmp_path / "key"
    key.write_text(info["auth_key"] + "\n")
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"Version": "alpha0", "ServerURL": info["control_url"],
                               "AuthKey": f"file:{key}", "Hostname": "cfgnode"}))
    env = dict(os.environ, TS_NO_LOGS_NO_SUPPORT="true")
    gsock = str(tmp_path / "tsd.sock")
    procs.append(Proc("tailscaled", [binary("tailscaled"), "--tun=userspace-networking",
                                     f"--statedir={tmp_path / 'tsd'}", f"--socket={gsock}",
                                     f"--config={cfg}", "--port=0"], env=env))
    tsock = str(tmp_path / "st" / "tailkitd.sock")
    from test_node_derp import TAILKITD
    procs.append(Proc("tailkitd", [need(TAILKITD), "--state", str(tmp_path / "st"),
                                   "--config", str(cfg)]))

    def running(sock):
        r = subprocess.run([binary("tailscale"), f"--socket={sock}", "status", "--json"],
                           capture_output=True, text=True, timeout=30)
        st = json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip() else {}
        return st if st.get("BackendState") == "Running" else None
    g = wait_for(lambda: running(gsock), 60, "tailscaled Running from the config")
    t = wait_for(lambda: running(tsock), 60, "tailkitd Running from the config")
    assert g["Self"]["HostName"] == t["Self"]["HostName"] == "cfgnode"
    # the file is locked (Locked defaults to true): both refuse prefs edits
    for sock in (gsock, tsock):
        r = subprocess.run([binary("tailscale"), f"--socket={sock}", "set",
                            "--hostname=other"], capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and "config file is locked" in r.stderr, (sock, r.stderr)
    r = subprocess.run([need(TAILKIT), "--socket", tsock, "set", "--shields-up"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "config file is locked" in r.stderr, r.stderr
    # a flag next to --config is a clear error
    r = subprocess.run([need(TAILKITD), "--state", str(tmp_path / "x"), "--config", str(cfg),
                        "--hostname", "y"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "leave out" in r.stderr, r.stderr
