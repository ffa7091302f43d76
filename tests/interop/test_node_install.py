"""`cmake --install` and `tailkit install`/`uninstall` into a scratch root:
the units it writes pass systemd's own `systemd-analyze verify` with the
installed binaries, `systemctl --root` enables them, and uninstall removes
only what install wrote.  (No systemd runs in this container, so starting
the service is not exercised here; tailkitd itself is tested elsewhere.)"""

import os
import shutil
import stat
import subprocess

import pytest

from test_ctrld import ROOT


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    """The build installed by cmake into a scratch prefix."""
    p = tmp_path_factory.mktemp("prefix")
    r = subprocess.run(["cmake", "--install", os.path.join(ROOT, "build"), "--prefix", str(p)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return p


def tk(prefix, *args):
    return subprocess.run([str(prefix / "bin" / "tailkit"), *args], capture_output=True,
                          text=True, timeout=60)


def test_cmake_install_layout(prefix):
    for b in ("tailkitd", "tailkit", "ctrld", "wgd", "derpd", "netstackd", "tk-ns"):
        assert os.access(prefix / "bin" / b, os.X_OK), b
    for u in ("tailkitd.service", "tailkit-split.target", "tailkit-wgd.service",
              "derpd.service"):
        assert (prefix / "lib" / "systemd" / "system" / u).is_file(), u
    assert (prefix / "lib" / "sysusers.d" / "tailkit.conf").is_file()
    assert (prefix / "share" / "doc" / "tailkit" / "GUIDE.md").is_file()


def verify(unit_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    r = subprocess.run([tool, "verify", "--man=no", str(unit_path)], capture_output=True,
                       text=True, timeout=60, cwd="/")
    # the units name multi-user.target and network-online.target, which a
    # scratch root does not have; everything else must be clean
    bad = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.strip()]
    assert not bad, bad


def test_tailkit_install_uninstall(prefix, tmp_path):
    root = tmp_path / "root"
    units = root / "etc" / "systemd" / "system"
    keyf = tmp_path / "key"
    keyf.write_text("tskey-auth-xyz\n")
    r = tk(prefix, "install", "--root", str(root), "--control-url", "http://127.0.0.1:9",
           "--hostname", "box1", "--authkey", f"file:{keyf}")
    assert r.returncode == 0, r.stdout + r.stderr
    unit = (units / "tailkitd.service").read_text()
    assert unit.startswith("# written by `tailkit install`")
    assert f"ExecStart={prefix}/bin/tailkitd --state /var/lib/tailkit" in unit, unit
    assert "ExecStart=/usr/local/bin" not in unit
    assert (units / "multi-user.target.wants" / "tailkitd.service").is_symlink()
    settings = (root / "etc" / "default" / "tailkitd").read_text()
    assert 'TAILKITD_ARGS="--control-url http://127.0.0.1:9 --hostname box1"' in settings
    key = root / "etc" / "tailkit" / "authkey"
    assert key.read_text() == "tskey-auth-xyz\n"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((root / "etc" / "tailkit").stat().st_mode) == 0o700
    assert (root / "etc" / "sysusers.d" / "tailkit.conf").read_text().count("u tailkit") == 1
    verify(units / "tailkitd.service")

    # again: idempotent (its own files are replaced); the settings are kept
    # when no setting is given
    r = tk(prefix, "install", "--root", str(root), "--no-start")
    assert r.returncode == 0 and "keeping" in r.stdout, r.stdout + r.stderr
    assert "box1" in (root / "etc" / "default" / "tailkitd").read_text()
    # split mode while all-in-one is installed: refused, saying why
    r = tk(prefix, "install", "--split", "--root", str(root))
    assert r.returncode == 1 and "uninstall" in r.stderr, r.stderr

    r = tk(prefix, "uninstall", "--root", str(root))
    assert r.returncode == 0, r.stdout + r.stderr
    assert not (units / "tailkitd.service").exists()
    assert not (units / "multi-user.target.wants" / "tailkitd.service").exists()
    assert key.exists() and (root / "etc" / "default" / "tailkitd").exists()  # kept

    # split mode: the four daemons and the target
    r = tk(prefix, "install", "--split", "--root", str(root), "--control-url",
           "https://ctl.example")
    assert r.returncode == 0, r.stdout + r.stderr
    for u in ("tailkit-ctrld.service", "tailkit-wgd.service", "tailkit-derpd.service",
              "tailkit-netstackd.service", "tailkit-split.target"):
        assert (units / u).is_file(), u
        if u.endswith(".service"):
            verify(units / u)
    assert "ExecStart=%s/bin/ctrld " % prefix in (units / "tailkit-ctrld.service").read_text()
    assert (units / "multi-user.target.wants" / "tailkit-split.target").is_symlink()
    r = tk(prefix, "uninstall", "--root", str(root))
    assert r.returncode == 0 and not (units / "tailkit-split.target").exists()

    # a unit tailkit did not write is neither replaced nor removed
    units.mkdir(parents=True, exist_ok=True)
    (units / "tailkitd.service").write_text("[Service]\nExecStart=/bin/true\n")
    r = tk(prefix, "install", "--root", str(root))
    assert r.returncode == 1 and "--force" in r.stderr, r.stderr
    r = tk(prefix, "uninstall", "--root", str(root))
    assert r.returncode == 0 and "not written by tailkit" in r.stdout, r.stdout
    assert (units / "tailkitd.service").read_text().startswith("[Service]")
    r = tk(prefix, "install", "--root", str(root), "--force")
    assert r.returncode == 0, r.stderr


def test_tailkit_install_errors(prefix, tmp_path):
    r = tk(prefix, "install", "--root", "relative/dir")
    assert r.returncode == 2 and "absolute" in r.stderr
    r = tk(prefix, "install", "--bogus")
    assert r.returncode == 2 and "--control-url" in r.stderr
    r = tk(prefix, "install", "--root", str(tmp_path), "--hostname", "a b")
    assert r.returncode == 2 and "--hostname" in r.stderr
    # a tailkit without its daemons next to it
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(prefix / "bin" / "tailkit", lone / "tailkit")
    r = subprocess.run([str(lone / "tailkit"), "install", "--root", str(tmp_path / "r")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "cmake --install" in r.stderr, r.stderr


def test_empty_key_file_means_interactive_login(interop_peer, procs, tmp_path):
    """The units' SetCredential= default hands tailkitd a key file holding
    one empty line when /etc/tailkit/authkey is absent: the node waits for a
    login (NeedsLogin, with testcontrol's login URL) instead of refusing to
    start, and `tailkit up --authkey` then brings it up."""
    from conftest import Proc, wait_for
    from test_node_derp import TAILKITD, need
    info = interop_peer(0)
    keyf = tmp_path / "authkey"
    keyf.write_text("\n")
    state = tmp_path / "state"
    procs.append(Proc("tailkitd", [need(TAILKITD), "--state", str(state), "--control-url",
                                   info["control_url"], "--authkey-file", str(keyf),
                                   "--hostname", "tkempty", "--derp-http"]))
    sock = str(state / "tailkitd.sock")
    cli = os.path.join(ROOT, "build", "tools", "cli", "tailkit")
    st = wait_for(lambda: (lambda r: r if "Logged out." in r.stdout else None)(
        subprocess.run([cli, "--socket", sock, "status"], capture_output=True, text=True,
                       timeout=30)), 60, "NeedsLogin")
    assert st.returncode == 1
    r = subprocess.run([cli, "--socket", sock, "up", "--authkey", info["auth_key"],
                        "--timeout", "60"], capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
