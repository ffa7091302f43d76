"""pytest fixtures that run the real Go counterparts on loopback.

Every fixture starts its process, waits until it is ready (bounded), and on
teardown stops it (SIGTERM, then SIGKILL).  A test that fails gets the tail
of each counterpart's log in its report.  Binaries come from
tools/setup_interop.sh (default cache: /var/cache/tailkit/interop/bin); a
missing binary FAILS the test with the command that builds it, it never
skips.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import netns  # noqa: E402

CACHE = os.environ.get("TAILKIT_CACHE", "/var/cache/tailkit")
BIN = os.path.join(CACHE, "interop", "bin")


@pytest.fixture(autouse=True, scope="session")
def _tailkit_derp_only():
    """Direct paths are tried only where a test built the network for them
    (namespaces: test_node_direct.py): everywhere else tailkit's daemons go
    through DERP, as Go's TS_DEBUG_ALWAYS_USE_DERP makes magicsock do, so no
    test sends disco to the host's own non-loopback addresses that a Go node
    on the host advertises.  interop_peer removes it for the Go nodes; the
    benchmarks, which import this module, are not affected."""
    os.environ.setdefault("TS_DEBUG_ALWAYS_USE_DERP", "1")
    yield


def pytest_configure(config):
    config.addinivalue_line("markers", "harness: the harness's own self-tests (no tailkit code)")


_passed = {"tailkit": 0, "go": 0}


def pytest_runtest_logreport(report):
    # Tests marked "harness" exercise only the Go counterparts: counted apart
    # so a green run says how much of it involved tailkit code.
    if report.when == "call" and report.passed:
        _passed["go" if "harness" in report.keywords else "tailkit"] += 1


def pytest_terminal_summary(terminalreporter):
    # tools/check.sh reads this line.
    terminalreporter.write_line(
        f"interop: {_passed['tailkit']} passed (tailkit), "
        f"{_passed['go']} passed (Go-only self-tests)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def binary(name):
    path = os.path.join(BIN, name)
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is missing: run tools/setup_interop.sh (needs go on PATH)")
    return path


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Proc:
    """A counterpart process with its log file."""

    def __init__(self, name, args, env=None, cwd=None):
        self.name = name
        self.log = tempfile.NamedTemporaryFile(prefix=f"tk-{name}-", suffix=".log", delete=False)
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, env=env,
                                  cwd=cwd, text=True, start_new_session=True)

    def json_line(self, timeout=120):
        """First stdout line as JSON (interop-peer's ready signal)."""
        deadline = time.time() + timeout
        os.set_blocking(self.p.stdout.fileno(), False)
        buf = ""
        while time.time() < deadline:
            if self.p.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.p.returncode}:\n{self.tail()}")
            chunk = self.p.stdout.readline()
            if chunk:
                buf += chunk
                if buf.endswith("\n"):
                    return json.loads(buf)
            else:
                time.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready in {timeout}s:\n{self.tail()}")

    def tail(self, n=60):
        try:
            with open(self.log.name, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGTERM)
                self.p.wait(timeout=10)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(self.p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.p.wait(timeout=10)
        if self.p.stdout:
            self.p.stdout.close()


@pytest.fixture
def procs(request):
    """Registry that stops every started process and reports logs on failure."""
    started = []
    yield started
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for p in reversed(started):
        p.stop()
        if failed:
            sys.stderr.write(f"\n----- {p.name} log (tail) -----\n{p.tail()}\n")
        os.unlink(p.log.name)


def wait_tcp(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port}")


def http_json(method, url, body=None, timeout=60):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


@pytest.fixture
def interop_peer(procs):
    """Factory: interop_peer(nodes=2, *extra_args) -> the JSON line dict."""
    def start(nodes=0, *extra, env=None):
        e = dict(os.environ)
        # tailkit's daemons run with TS_DEBUG_ALWAYS_USE_DERP (below); Go
        # nodes use direct paths unless a test passes -derp-only
        e.pop("TS_DEBUG_ALWAYS_USE_DERP", None)
        e.update(env or {})
        p = Proc("interop-peer", [binary("interop-peer"), "-nodes", str(nodes), *extra], env=e)
        procs.append(p)
        info = p.json_line()
        info["proc"] = p
        return info
    return start


@pytest.fixture
def derper(procs, tmp_path):
    """Factory: derper(tls=False, mesh_psk=None, extra=()) -> {"url", "stun_port", "port"}."""
    def start(tls=False, mesh_psk=None, extra=()):
        port, stun = free_port(), free_port(socket.SOCK_DGRAM)
        args = [binary("derper"), "-a", f"127.0.0.1:{port}", "-http-port", "-1",
                "-stun-port", str(stun), "-c", str(tmp_path / f"derper-{port}.json")]
        env = dict(os.environ)
        url = f"http://127.0.0.1:{port}/derp"
        if tls:
            certdir = tmp_path / "certs"
            certdir.mkdir(exist_ok=True)
            crt, key = certdir / "127.0.0.1.crt", certdir / "127.0.0.1.key"
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out",
                            str(crt), "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
                            "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
            args += ["-certmode", "manual", "-certdir", str(certdir), "-hostname", "127.0.0.1"]
            url = f"https://127.0.0.1:{port}/derp"
        if mesh_psk:
            psk = tmp_path / "mesh.key"
            psk.write_text(mesh_psk)
            args += ["-mesh-psk-file", str(psk)]
        p = Proc("derper", args + list(extra), env=env)
        procs.append(p)
        wait_tcp(port)
        return {"url": url, "port": port, "stun_port": stun, "proc": p,
                "ca": str(tmp_path / "certs" / "127.0.0.1.crt") if tls else None}
    return start


HEADSCALE_CONFIG = """
server_url: http://127.0.0.1:{port}
listen_addr: 127.0.0.1:{port}
metrics_listen_addr: 127.0.0.1:{metrics}
grpc_listen_addr: 127.0.0.1:{grpc}
grpc_allow_insecure: false
noise:
  private_key_path: {dir}/noise_private.key
prefixes:
  v4: 100.64.0.0/10
  v6: fd7a:115c:a1e0::/48
  allocation: sequential
derp:
  server:
    enabled: true
    region_id: 999
    region_code: "headscale"
    region_name: "Headscale Embedded DERP"
    stun_listen_addr: "127.0.0.1:{stun}"
    private_key_path: {dir}/derp_server_private.key
    automatically_add_embedded_derp_region: true
    ipv4: 127.0.0.1
  urls: []
  paths: []
  auto_update_enabled: false
disable_check_updates: true
node:
  ephemeral:
    inactivity_timeout: 30m
database:
  type: sqlite
  sqlite:
    path: {dir}/db.sqlite
    write_ahead_log: true
log:
  level: info
  format: text
policy:
  mode: {policy_mode}
  path: ""
dns:
  magic_dns: true
  base_domain: tailnet.test
  override_local_dns: false
  nameservers:
    global: []
unix_socket: {dir}/headscale.sock
unix_socket_permission: "0770"
logtail:
  enabled: false
"""


def start_headscale(workdir, procs, policy_mode="file"):
    """Starts headscale on loopback in `workdir` (config, sqlite, keys) and
    creates a user and a reusable pre-auth key through its CLI.  The Proc is
    appended to `procs`.  Returns a dict shaped like interop-peer's JSON line
    (control_url, auth_key, stun, derp region) plus a `cli` callable.
    policy_mode "file" (with no path: every node may reach every other) or
    "database": the ACL policy is set at run time with `cli("policy", "set",
    "-f", FILE)`, and headscale pushes the new packet filters at once."""
    hs = binary("headscale")
    d = os.fspath(workdir)
    port, metrics, grpc, stun = free_port(), free_port(), free_port(), free_port(socket.SOCK_DGRAM)
    cfg = os.path.join(d, "config.yaml")
    with open(cfg, "w") as f:
        f.write(HEADSCALE_CONFIG.format(port=port, metrics=metrics, grpc=grpc, stun=stun, dir=d,
                                        policy_mode=policy_mode))
    p = Proc("headscale", [hs, "-c", cfg, "serve"])
    procs.append(p)
    try:
        wait_tcp(port)
    except TimeoutError as e:
        raise RuntimeError(f"headscale did not start: {e}\n{p.tail()}") from None

    def cli(*args):
        deadline = time.time() + 30
        while True:
            r = subprocess.run([hs, "-c", cfg, *args, "-o", "json"], capture_output=True,
                               text=True, timeout=30)
            if r.returncode == 0 or time.time() > deadline:
                break
            time.sleep(0.5)  # the unix socket may lag the HTTP listener
        if r.returncode != 0:
            raise RuntimeError(f"headscale {' '.join(args)}: {r.stderr or r.stdout}")
        return json.loads(r.stdout) if r.stdout.strip() else None

    user = cli("users", "create", "tailkit")
    key = cli("preauthkeys", "create", "--user", str(user["id"]), "--reusable",
              "--expiration", "1h")
    return {"control_url": f"http://127.0.0.1:{port}", "url": f"http://127.0.0.1:{port}",
            "auth_key": key["key"], "stun": f"127.0.0.1:{stun}",
            "derp": {"region_id": 999, "url": f"http://127.0.0.1:{port}/derp"},
            "config": cfg, "cli_hint": f"{hs} -c {cfg} nodes list",
            "cli": cli, "proc": p}


@pytest.fixture
def headscale(procs, tmp_path):
    """headscale on loopback with a user and a reusable pre-auth key."""
    d = tmp_path / "hs"
    d.mkdir()
    return start_headscale(d, procs)


@pytest.fixture
def topology():
    with netns.Topology() as topo:
        yield topo


def wait_for(fn, timeout, what):
    """fn() until it returns something true (returned), for timeout s."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")
