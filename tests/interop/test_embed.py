"""libtailkit (tools/embed, issue 14) against Go tsnet nodes over Go's derper
on testcontrol.  The library is installed into a scratch prefix with
`cmake --install --component embed` and every program is compiled the way
a user would, with `pkg-config --cflags --libs tailkit`:

- examples/http_server.c (libtailscale's API only) serves HTTP that a Go
  tsnet node fetches (its IP comes back from tailscale_getremoteaddr), and
  dials the Go node;
- examples/echo_epoll.c (tailkit.h, the program's own epoll loop) echoes
  TCP and UDP for a Go node, and logs the peer's identity;
- embed/native_probe.c: tailkit_dial's peer identity, UDP datagrams of
  1..1200 bytes with their boundaries, and a node stopped with descriptors
  open giving back every fd and thread;
- tailscale_loopback: curl through its SOCKS5 proxy with the credentials,
  its LocalAPI answering /localapi/v0/status only with both the header and
  the password;
- libtailscale's own example/echo_server.c, from the mirror of
  github.com/tailscale/libtailscale (not in this repository), compiled
  unchanged and linked statically against libtailkit.a: the drop-in proof.

The DERP server is plain HTTP (derper -dev style): TAILKIT_DERP_PLAIN_HTTP=1
for programs on libtailscale's API, "derp_plain_http" for tailkit.h.
"""

import os
import re
import shutil
import subprocess
import threading
import time

import pytest

from conftest import http_json, wait_for
from test_derp_node import BUILD, dial, go_ip

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.normpath(os.path.join(HERE, "..", ".."))
# TK_EMBED_BUILD=build-asan: the library of the ASan build (programs are then
# compiled with -fsanitize=address,undefined, as the library needs)
EMBED_BUILD = os.environ.get("TK_EMBED_BUILD", BUILD)
MIRROR = os.environ.get("TK_LIBTAILSCALE_MIRROR", "/work/.mirror/tailscale+libtailscale/repo")


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    """The library installed into a scratch prefix; (prefix, env with
    PKG_CONFIG_PATH and LD_LIBRARY_PATH)."""
    lib = os.path.join(EMBED_BUILD, "tools", "embed", "libtailkit.a")
    if not os.path.exists(lib):
        pytest.fail(f"{lib} is missing: build the tree (ninja -C {EMBED_BUILD})")
    p = str(tmp_path_factory.mktemp("prefix"))
    subprocess.run(["cmake", "--install", EMBED_BUILD, "--prefix", p, "--component", "embed"],
                   check=True, capture_output=True)
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(p, "lib", "pkgconfig"),
               LD_LIBRARY_PATH=os.path.join(p, "lib"))
    so = os.path.join(p, "lib", "libtailkit.so")
    needed = subprocess.run(["readelf", "-d", so], capture_output=True, text=True).stdout
    env["TK_EMBED_CFLAGS"] = "-fsanitize=address,undefined" if "libasan" in needed else ""
    return p, env


def pkg(env, *args):
    r = subprocess.run(["pkg-config", *args, "tailkit"], env=env, check=True,
                       capture_output=True, text=True)
    return r.stdout.split()


def compile_c(env, src, out, static_lib=None):
    """cc SRC $(pkg-config --cflags --libs tailkit), or statically against
    libtailkit.a with the system libraries of Libs.private."""
    if static_lib:
        libs = [static_lib] + [x for x in pkg(env, "--static", "--libs-only-l")
                               if x != "-ltailkit"]
        cmd = ["cc", "-o", out, src] + pkg(env, "--cflags") + libs
    else:
        cmd = ["cc", "-o", out, src] + pkg(env, "--cflags", "--libs")
    cmd += env.get("TK_EMBED_CFLAGS", "").split()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stderr}"
    return out


class Prog:
    """A compiled program: stdout lines collected by a thread."""

    def __init__(self, args, env, stdin=subprocess.DEVNULL):
        self.lines, self.err = [], open(os.devnull, "w")
        self.errlog = args[0] + ".stderr"
        self.p = subprocess.Popen(args, env=env, stdin=stdin, stdout=subprocess.PIPE,
                                  stderr=open(self.errlog, "w"), text=True)
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.append(line.rstrip("\n"))

    def line(self, pattern, timeout, what):
        rx = re.compile(pattern)

        def find():
            if self.p.poll() is not None and not any(rx.search(x) for x in self.lines):
                raise AssertionError(f"{what}: exited {self.p.returncode}: {self.text()}")
            return next((m for m in map(rx.search, self.lines) if m), None)
        return wait_for(find, timeout, what)

    def text(self):
        with open(self.errlog) as f:
            return "\n".join(self.lines) + "\n--- stderr ---\n" + f.read()[-4000:]

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=5)
        return self.p.returncode


@pytest.fixture
def tailnet(derper, interop_peer):
    """testcontrol + derper (plain HTTP) + one Go tsnet node, go1."""
    d = derper()
    info = interop_peer(1, "-derp", f"127.0.0.1:{d['port']}", "-derp-stun-port",
                        str(d["stun_port"]), "-derp-http", "-derp-only")
    info["go1"] = go_ip(info, "go1")
    return info


@pytest.fixture
def progs():
    started = []
    yield started
    for p in started:
        p.stop()


def ts_env(env, info, home):
    """What a libtailscale program reads: the auth key and control URL from
    the environment; tailkit's knob for plain-HTTP DERP."""
    return dict(env, TS_AUTHKEY=info["auth_key"], TS_CONTROL_URL=info["control_url"],
                TAILKIT_DERP_PLAIN_HTTP="1", HOME=home)


def test_embed_http_server_libtailscale_api(prefix, tailnet, progs, tmp_path):
    _, env = prefix
    src = os.path.join(SRC, "tools", "embed", "examples", "http_server.c")
    with open(src) as f:
        code = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
    assert "tailkit_" not in code and "tailkit.h" not in code, \
        "the example must use libtailscale's API only"
    exe = compile_c(env, src, str(tmp_path / "http_server"))
    go1 = tailnet["go1"]
    srv = Prog([exe, str(tmp_path / "state"), "tkhttp", "8080", f"{go1}:80"],
               ts_env(env, tailnet, str(tmp_path)))
    progs.append(srv)
    t0 = time.monotonic()
    try:
        m = srv.line(r"^listening on (\d+\.\d+\.\d+\.\d+),(\S+) port 8080", 60,
                     "http_server up on the tailnet")
        up_ms = (time.monotonic() - t0) * 1000
        me = m.group(1)
        # tailkit -> Go: tailscale_dial to go1's web page (its name)
        f = srv.line(r"^fetched .*\| (.*)$", 60, "http_server fetching go1's page")
        assert "200 OK" in f.string and f.group(1).strip() == "go1", f.string
        # Go -> tailkit: go1 fetches our page; it names go1's address
        res = wait_for(lambda: (lambda x: x if x.get("ok") else None)(
            dial(tailnet["admin_url"], "go1", "http", f"{me}:8080")), 60,
            "go1 fetching http_server's page")
        assert res["reply"] == f"hello {go1} from tailkit\n", res
        srv.line(rf"^served {re.escape(go1)}$", 10, "getremoteaddr")
        with open(f"/proc/{srv.p.pid}/status") as f:
            st = dict(x.split(":", 1) for x in f.read().splitlines() if ":" in x)
        # figures for the record (not goals: the benchmark is not written yet)
        print(f"http_server: exec to tailscale_up done {up_ms:.0f} ms (the test reads "
              f"its lines every 0.3 s), VmRSS {st['VmRSS'].strip()}, "
              f"threads {st['Threads'].strip()}")
    except BaseException:
        print(srv.text())
        raise


def test_embed_echo_epoll_native(prefix, tailnet, progs, tmp_path):
    _, env = prefix
    exe = compile_c(env, os.path.join(SRC, "tools", "embed", "examples", "echo_epoll.c"),
                    str(tmp_path / "echo_epoll"))
    srv = Prog([exe, tailnet["control_url"], str(tmp_path / "state"), "tkecho", "7007",
                tailnet["auth_key"]], dict(env, TAILKIT_DERP_PLAIN_HTTP="1"))
    progs.append(srv)
    try:
        srv.line(r"^state Running$", 60, "the Running state event")
        me = srv.line(r"^ips (\d+\.\d+\.\d+\.\d+)", 30, "the node's addresses event").group(1)
        go1 = tailnet["go1"]
        res = wait_for(lambda: (lambda x: x if x.get("ok") else None)(
            dial(tailnet["admin_url"], "go1", "tcp", f"{me}:7007", "hello-epoll")), 60,
            "go1's TCP echo through echo_epoll")
        assert res["reply"] == "hello-epoll", res
        acc = srv.line(rf"^accept {re.escape(go1)} port \d+ node (\S+) user (\S+)$", 10,
                       "the peer's identity")
        assert acc.group(1).startswith("go1.") and "@" in acc.group(2), acc.string
        res = wait_for(lambda: (lambda x: x if x.get("ok") else None)(
            dial(tailnet["admin_url"], "go1", "udp", f"{me}:7007", "dgram-epoll")), 60,
            "go1's UDP echo through echo_epoll")
        assert res["reply"] == "dgram-epoll", res
        assert srv.stop() == 0, srv.text()
        srv.line(r"^bye$", 5, "a clean exit")
    except BaseException:
        print(srv.text())
        raise


def test_embed_native_udp_identity_and_release(prefix, tailnet, tmp_path):
    _, env = prefix
    exe = compile_c(env, os.path.join(HERE, "embed", "native_probe.c"),
                    str(tmp_path / "native_probe"))
    r = subprocess.run([exe, tailnet["control_url"], str(tmp_path / "state"),
                        tailnet["auth_key"], tailnet["go1"]], env=env, capture_output=True,
                       text=True, timeout=240)
    print(r.stdout, r.stderr[-3000:])
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    assert re.search(rf"^peer {re.escape(tailnet['go1'])} 7 go1\.\S+ \S+@\S+$", r.stdout, re.M)
    assert "ok udp 1..1200 bytes" in r.stdout
    assert re.search(r"^ok after free", r.stdout, re.M)


def test_embed_loopback_socks5_and_localapi(prefix, tailnet, progs, tmp_path):
    _, env = prefix
    exe = compile_c(env, os.path.join(HERE, "embed", "loopback_probe.c"),
                    str(tmp_path / "loopback_probe"))
    p = Prog([exe, str(tmp_path / "state"), "tkloop"], ts_env(env, tailnet, str(tmp_path)),
             stdin=subprocess.PIPE)
    progs.append(p)
    try:
        m = p.line(r"^loopback (127\.0\.0\.1:\d+) ([0-9a-f]{32}) ([0-9a-f]{32})$", 60,
                   "tailscale_loopback")
        addr, pcred, lcred = m.groups()
        go1 = tailnet["go1"]

        def curl(*a):
            return subprocess.run(["curl", "-sS", "--max-time", "20", *a],
                                  capture_output=True, text=True)
        # SOCKS5 into the tailnet: user tsnet, the proxy credential
        r = wait_for(lambda: (lambda x: x if x.returncode == 0 else None)(
            curl("--socks5", addr, "--proxy-user", f"tsnet:{pcred}", f"http://{go1}/")),
            60, "curl through the SOCKS5 proxy")
        assert r.stdout == "go1", r.stdout
        r = curl("--socks5", addr, "--proxy-user", f"tsnet:{lcred}", f"http://{go1}/")
        assert r.returncode != 0, "SOCKS5 with the wrong password must fail"
        # LocalAPI: only with the header and the password
        url = f"http://{addr}/localapi/v0/status"
        code = lambda *a: curl("-o", "/dev/null", "-w", "%{http_code}", *a, url).stdout
        assert code() == "403"
        assert code("-H", "Sec-Tailscale: localapi") == "401"
        assert code("-H", "Sec-Tailscale: localapi", "-u", f":{pcred}") == "403"
        assert code("-u", f":{lcred}") == "403"
        r = curl("-H", "Sec-Tailscale: localapi", "-u", f":{lcred}", url)
        import json
        st = json.loads(r.stdout)
        assert st["BackendState"] == "Running", st
        assert any(go1 in pe.get("TailscaleIPs", []) for pe in st.get("Peer", {}).values()), st
    except BaseException:
        print(p.text())
        raise
    finally:
        p.p.stdin.close()
    assert p.p.wait(timeout=30) == 0, p.text()


def test_embed_libtailscale_echo_server_unchanged(prefix, tailnet, progs, tmp_path):
    pfx, env = prefix
    src = os.path.join(MIRROR)
    r = subprocess.run(["git", "-C", src, "show", "HEAD:example/echo_server.c"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"libtailscale's example is not available at {MIRROR} "
                    "(set TK_LIBTAILSCALE_MIRROR to a clone of github.com/tailscale/libtailscale)")
    # its own layout: example/echo_server.c includes "../tailscale.h"
    (tmp_path / "example").mkdir()
    (tmp_path / "example" / "echo_server.c").write_text(r.stdout)
    shutil.copy(os.path.join(pfx, "include", "tailscale.h"), tmp_path / "tailscale.h")
    exe = compile_c(env, str(tmp_path / "example" / "echo_server.c"),
                    str(tmp_path / "echo_server"),
                    static_lib=os.path.join(pfx, "lib", "libtailkit.a"))
    nm = subprocess.run(["nm", "-D", exe], capture_output=True, text=True).stdout
    assert "tailscale_" not in nm, "linked statically: no tailscale_* from a .so"
    # no tailscale_set_dir/hostname: libtailscale's defaults from $HOME and
    # the program's name
    srv = Prog([exe], ts_env(env, tailnet, str(tmp_path)))
    progs.append(srv)
    admin = tailnet["admin_url"]
    try:
        me = wait_for(lambda: next((n["Addresses"][0].split("/")[0] for n in
                                    http_json("GET", admin + "/nodes").get("control_nodes") or []
                                    if n.get("Name", "").startswith("echo")), None),
                      60, "echo_server registered")
        assert os.path.isdir(tmp_path / ".config" / "tsnet-echo_server")

        def sent():
            http_json("POST", admin + "/dial", {"from": "go1", "network": "tcp",
                                                "addr": f"{me}:1999", "payload": "hello-drop-in\n",
                                                "timeout_ms": 2000})
            return "hello-drop-in" in srv.lines
        wait_for(sent, 60, "go1's bytes printed by echo_server")
    except BaseException:
        print(srv.text())
        raise
