"""The Python binding (bindings/python, issue 14 part 4) against Go tsnet
nodes on testcontrol over Go's derper.

The package is pip-installed offline (--no-index) into the test's scratch
directory (never the system); libtailkit comes from the scratch prefix of
test_embed's `prefix` fixture, found through pkg-config as a user's
installed copy would be.  Each node runs in its own Python process (one
node per process: libtailkit's netstack keeps global state):

- pybind/probe.py: a Go node echoes TCP through a Python-listened socket,
  fetches HTTP from one (the answer names the peer from the accepted
  socket's identity) and echoes UDP; Python dials go1 by MagicDNS name;
  UDP datagrams of 1..1200 bytes come back whole; status() and whois()
  contents; bad arguments raise clear exceptions; descriptors are given
  back after close;
- bindings/python/examples/asyncio_echo.py, driven by go1 (TCP and UDP
  echo) and dialling go1 with dial_async;
- errors without a tailnet: library not found, unknown settings, calls in
  the wrong order, a closed node.
"""

import json
import os
import re
import subprocess
import sys

import pytest

from conftest import wait_for
from test_derp_node import dial
from test_embed import Prog, prefix, progs, tailnet  # noqa: F401 (fixtures)

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.normpath(os.path.join(HERE, "..", ".."))
PKG = os.path.join(SRC, "bindings", "python")


@pytest.fixture(scope="module")
def pyenv(prefix, tmp_path_factory):  # noqa: F811
    """The package installed with pip into a scratch directory; the
    environment a program using it gets (PYTHONPATH, pkg-config finding
    the scratch prefix's libtailkit)."""
    _, env = prefix
    if env.get("TK_EMBED_CFLAGS"):
        pytest.skip("the library is the ASan build: a Python process cannot load it "
                    "without LD_PRELOAD of libasan (the C tests cover that build)")
    target = str(tmp_path_factory.mktemp("site"))
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-cache-dir",
                        "--disable-pip-version-check", "--target", target, PKG],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, f"pip install (offline) failed:\n{r.stdout}\n{r.stderr}"
    for f in ("__init__.py", "_node.py", "_lib.py", "py.typed"):
        assert os.path.exists(os.path.join(target, "tailkit", f)), f
    return dict(env, PYTHONPATH=target, PYTHONUNBUFFERED="1")


def py(env, *args, stdin=subprocess.DEVNULL):
    return Prog([sys.executable, *args], env, stdin=stdin)


def lines(p, prefix_):
    return [x for x in p.lines if x.startswith(prefix_)]


def go_dial(info, network, addr, payload):
    return wait_for(lambda: (lambda x: x if x.get("ok") else None)(
        dial(info["admin_url"], "go1", network, addr, payload)), 60,
        f"go1's {network} to {addr}")


BAD = {  # probe.py's bad-argument checks: the error each must give
    "listen-port-0": ("EINVAL", "port"),
    "listen-port-70000": ("EINVAL", "port"),
    "listen-twice": ("EADDRINUSE", "7007"),
    "dial-unknown-name": (None, "no-such-node"),
    "dial-no-port": ("EINVAL", "host:port"),
    "dial-port-0": ("EINVAL", "port"),
    "dial-timeout-negative": ("ValueError", "timeout"),
    "udp-too-big": ("EMSGSIZE", "1252"),
    "udp-not-ip": ("EINVAL", "IPv4 or IPv6"),
    "udp-bad-port": ("EINVAL", "1..65535"),
    "whois-garbage": ("EINVAL", "IP address"),
    "set-after-start": ("EBUSY", "before"),
    "second-node": ("EEXIST", "one"),
    "setting-type": ("TypeError", "float"),
    "accept-closed": ("EBADF", "closed"),
}


def test_python_binding_tailnet(pyenv, tailnet, progs, tmp_path):  # noqa: F811
    go1 = tailnet["go1"]
    p = py(pyenv, os.path.join(HERE, "pybind", "probe.py"), tailnet["control_url"],
           str(tmp_path / "state"), tailnet["auth_key"], go1, stdin=subprocess.PIPE)
    progs.append(p)
    try:
        lib = p.line(r"^lib (\S+)$", 30, "the library loaded").group(1)
        assert lib.startswith(os.path.dirname(pyenv["PKG_CONFIG_PATH"])), \
            f"{lib}: expected the prefix's copy, found through pkg-config"
        me = p.line(r"^ips (\d+\.\d+\.\d+\.\d+),(\S+) up (\d+) ms$", 120, "up()").group(1)
        p.line(r"^state Running$", 5, "state()")
        # Python -> Go: dial by MagicDNS name, identity with the socket
        d = p.line(r"^dial (\S+) 7 node (\S+) user (\S+) reply (.*)$", 60, "dial go1:7")
        assert d.group(1) == go1 and d.group(2).startswith("go1.") and "@" in d.group(3), d.string
        assert d.group(4) == "hello-py", d.string
        p.line(r"^ok udp 1\.\.1200 bytes$", 120, "UDP datagrams of 1..1200 bytes, whole")
        st = json.loads(p.line(r"^status (.*)$", 30, "status()").group(1))
        assert st["BackendState"] == "Running", st
        assert me in st["Self"]["TailscaleIPs"], st["Self"]
        assert any(go1 in pe.get("TailscaleIPs", []) for pe in st["Peer"].values()), st
        w = json.loads(p.line(r"^whois (.*)$", 10, "whois()").group(1))
        assert w and go1 in w["Node"]["TailscaleIPs"], w
        assert w["Node"]["DNSName"].startswith("go1."), w
        assert "@" in w["UserProfile"]["LoginName"], w
        p.line(r"^whois-port true$", 10, "whois(ip:port)")
        p.line(r"^ready$", 90, "the bad-argument checks")
        for name, (err, text) in BAD.items():
            m = p.line(rf"^bad {re.escape(name)} (\S+) (.*)$", 1, name)
            if err:
                assert m.group(1) == err, m.string
            else:
                assert m.group(1) not in ("NOERROR", "ValueError", "TypeError"), m.string
            assert text in m.group(2), m.string
        assert lines(p, "bad whois-unknown ") == ["bad whois-unknown NOERROR None"], p.lines
        # Go -> Python: TCP echo, HTTP, UDP echo through Python's sockets
        r = go_dial(tailnet, "tcp", f"{me}:7007", "hello-from-go")
        assert r["reply"] == "hello-from-go", r
        a = p.line(rf"^accept {re.escape(go1)} \d+ node (\S+) user (\S+) local "
                   rf"{re.escape(me)}:7007$", 10, "the accepted socket's peer")
        assert a.group(1).startswith("go1.") and "@" in a.group(2), a.string
        r = go_dial(tailnet, "http", f"{me}:8080", "")
        assert re.match(r"^hello go1\.\S+ \(\S+@\S+\) from python\n$", r["reply"]), r
        r = go_dial(tailnet, "udp", f"{me}:7007", "dgram-py")
        assert r["reply"] == "dgram-py", r
        p.line(rf"^udp {re.escape(go1)} \d+ 8$", 10, "the UDP sender")
        p.p.stdin.close()
        assert p.p.wait(timeout=60) == 0, p.text()
        p.line(r"^bye$", 5, "a clean exit")
        m = p.line(r"^fds (\d+) (\d+) new: ?(.*)$", 5, "descriptors after close")
        # every descriptor of the node is given back; nng's task pool (an
        # epoll and an eventfd) lives as long as the process
        new = [x.split(":", 1)[1] for x in m.group(3).split()]
        assert sorted(new) in ([], ["anon_inode:[eventfd]", "anon_inode:[eventpoll]"]), m.string
    except BaseException:
        print(p.text())
        raise


def test_python_asyncio_example(pyenv, tailnet, progs, tmp_path):  # noqa: F811
    go1 = tailnet["go1"]
    env = dict(pyenv, TAILKIT_DERP_PLAIN_HTTP="1", TS_AUTHKEY=tailnet["auth_key"],
               TS_CONTROL_URL=tailnet["control_url"])
    p = py(env, os.path.join(PKG, "examples", "asyncio_echo.py"), "--state-dir",
           str(tmp_path / "state"), "--hostname", "tkasync", "--port", "7008",
           "--dial", "go1:7")
    progs.append(p)
    try:
        p.line(r"^event state Running$", 120, "the Running event from the event fd")
        me = p.line(r"^listening on (\d+\.\d+\.\d+\.\d+),\S+ port 7008$", 60,
                    "the example listening").group(1)
        d = p.line(r"^dialed (\S+) node (\S+) reply (.*)$", 60, "dial_async to go1")
        assert d.group(1) == go1 and d.group(2).startswith("go1.") and \
            d.group(3) == "hello-asyncio", d.string
        r = go_dial(tailnet, "tcp", f"{me}:7008", "hello-async-tcp")
        assert r["reply"] == "hello-async-tcp", r
        a = p.line(rf"^accept {re.escape(go1)} port \d+ node (\S+) user (\S+)$", 10,
                   "the peer's identity")
        assert a.group(1).startswith("go1.") and "@" in a.group(2), a.string
        r = go_dial(tailnet, "udp", f"{me}:7008", "hello-async-udp")
        assert r["reply"] == "hello-async-udp", r
        p.line(rf"^udp {re.escape(go1)} port \d+ 15 bytes$", 10, "the UDP sender")
        assert p.stop() == 0, p.text()
        p.line(r"^bye$", 5, "a clean exit on SIGTERM")
    except BaseException:
        print(p.text())
        raise


OFFLINE = r"""
import errno, os, sys, tailkit
def show(name, fn):
    try:
        r = fn()
    except (OSError, ValueError, TypeError) as e:
        print(name, errno.errorcode.get(getattr(e, "errno", 0) or 0, type(e).__name__), e)
    else:
        print(name, "NOERROR", r)
st = sys.argv[1]
show("unknown-setting", lambda: tailkit.Node(state_dir=st, bogus=1))
n = tailkit.Node(hostname="off", state_dir=st, control_url="http://127.0.0.1:9")
show("listen-before-start", lambda: n.listen(80))
show("dial-before-start", lambda: n.dial("100.64.0.1:80"))
show("udp-before-start", lambda: n.udp(0))
show("up-negative", lambda: n.up(timeout=-1))
show("bad-control-url", lambda: tailkit.Node(state_dir=st, control_url="ftp://x").start())
print("state", n.state())
n.close()
n.close()
show("after-close", lambda: n.ips())
with tailkit.Node(hostname="ctx", state_dir=st, control_url="http://127.0.0.1:9") as m:
    show("up-timeout", lambda: m.up(timeout=1))
show("after-with", lambda: m.status())
# close() from another thread ends an up() in progress
import threading, time
k = tailkit.Node(hostname="cancel", state_dir=st, control_url="http://127.0.0.1:9")
t0 = time.monotonic()
threading.Timer(0.5, k.close).start()
show("up-closed-elsewhere", lambda: k.up(timeout=30))
print("cancel-took", round(time.monotonic() - t0, 1))
"""


def test_python_binding_errors_offline(pyenv, tmp_path):
    r = subprocess.run([sys.executable, "-c", OFFLINE, str(tmp_path / "st")], env=pyenv,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    got = {x.split(" ", 1)[0]: x.split(" ", 2)[1:] for x in r.stdout.splitlines()}
    print(r.stdout)
    assert got["unknown-setting"][0] == "EINVAL" and "accepted:" in got["unknown-setting"][1]
    for k in ("listen-before-start", "dial-before-start", "udp-before-start"):
        assert got[k][0] not in ("NOERROR",) and "not started" in got[k][1], (k, got[k])
    assert got["up-negative"][0] == "ValueError", got
    assert got["bad-control-url"][0] == "EINVAL" and "http" in got["bad-control-url"][1], got
    assert got["state"] == ["Stopped"], got
    assert got["after-close"][0] == "EBADF" and "closed" in got["after-close"][1], got
    assert got["up-timeout"][0] == "ETIMEDOUT" and "after 1 s (state" in got["up-timeout"][1], got
    assert got["after-with"][0] == "EBADF", got
    assert got["up-closed-elsewhere"][0] in ("ECANCELED", "EBADF"), got
    assert float(got["cancel-took"][0]) < 5, got
    # the library named by TAILKIT_LIB must load, or the error says so
    r = subprocess.run([sys.executable, "-c", "import tailkit; tailkit.library_path()"],
                       env=dict(pyenv, TAILKIT_LIB="/nonexistent/libtailkit.so.0"),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "TAILKIT_LIB: /nonexistent/libtailkit.so.0" in r.stderr, \
        r.stderr
