"""Network-namespace toolkit for interop tests.

Test hosts are Linux network namespaces joined by veth pairs.  Every name
carries a per-run prefix (``tkt<pid>x``) so a sweeper can remove what a
killed run left behind.  Private addresses are assigned only inside the
namespaces this module created; nothing touches the root namespace except
the veth endpoints' creation (they are moved into namespaces at once).

    with Topology() as topo:
        a = topo.host("a"); b = topo.host("b")
        topo.link(a, "10.99.0.1/24", b, "10.99.0.2/24")
        a.run("ping", "-c1", "10.99.0.2")

NAT boxes: ``topo.nat(inside_host, box, outside_host, ...)`` puts a router
namespace with iptables MASQUERADE between two hosts.  ``mapping="eim"``
keeps the source port (endpoint-independent mapping, Linux conntrack's
default); ``mapping="edm"`` uses ``--random-fully`` so each destination gets
a fresh port (endpoint-dependent, "hard" NAT).  ``topo.netem(host, dev,
delay_ms=, loss_pct=)`` adds latency/loss with tc netem.
"""

import json
import os
import re
import signal
import subprocess
import time

PREFIX = "tkt"


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def sweep(all_runs=False):
    """Remove namespaces left by dead runs (or by every run if all_runs)."""
    out = _ip("netns", "list", check=False).stdout
    removed = []
    for line in out.splitlines():
        name = line.split()[0] if line.strip() else ""
        m = re.match(rf"{PREFIX}(\d+)x", name)
        if not m:
            continue
        pid = int(m.group(1))
        alive = os.path.exists(f"/proc/{pid}")
        if all_runs or not alive:
            _kill_ns_pids(name)
            _ip("netns", "del", name, check=False)
            removed.append(name)
    return removed


def leftovers(pid=None):
    """Namespaces of this module's runs; with pid, only those made by that
    process (one pytest run), so parallel runs do not judge each other."""
    out = _ip("netns", "list", check=False).stdout
    want = f"{PREFIX}{pid}x" if pid else PREFIX
    return [l.split()[0] for l in out.splitlines() if l.startswith(want)]


def sweep_pid(pid):
    """Remove the namespaces (and their processes) made by process pid."""
    for name in leftovers(pid):
        _kill_ns_pids(name)
        _ip("netns", "del", name, check=False)


def run_procs(run_id):
    """Processes whose environment carries TK_INTEROP_RUN=run_id: what one
    run.sh started, counterparts included (they inherit the environment)."""
    found = []
    tag = f"TK_INTEROP_RUN={run_id}".encode()
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                env = f.read().split(b"\0")
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if tag in env:
            found.append((int(d), cmd))
    return found


def _kill_ns_pids(ns):
    r = _ip("netns", "pids", ns, check=False)
    for p in r.stdout.split():
        try:
            os.kill(int(p), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


_NS_HTTP = r"""
import sys, urllib.request
body = sys.argv[4].encode() if len(sys.argv) > 4 else None
req = urllib.request.Request(sys.argv[2], data=body, method=sys.argv[1],
                             headers={"Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=float(sys.argv[3])) as r:
    print(r.read().decode())
"""


class Host:
    def __init__(self, topo, name):
        self.topo = topo
        self.name = name
        self.ns = f"{topo.prefix}{name}"
        self.procs = []
        self.veths = []  # this host's ends of Topology.link, in creation order

    def cmd(self, *args):
        return ["ip", "netns", "exec", self.ns, *args]

    def run(self, *args, check=True, timeout=60, env=None):
        return subprocess.run(self.cmd(*args), check=check, capture_output=True,
                              text=True, timeout=timeout, env=env)

    def http_json(self, method, url, body=None, timeout=60):
        """An HTTP request made from inside the namespace (a JSON body, if
        any): the decoded JSON answer; RuntimeError with the request's
        error otherwise."""
        r = self.run("python3", "-c", _NS_HTTP, method, url, str(timeout),
                     *([json.dumps(body)] if body is not None else []),
                     check=False, timeout=timeout + 30)
        if r.returncode != 0:
            raise RuntimeError(f"{method} {url} in {self.name}: {r.stderr[-400:]}")
        return json.loads(r.stdout or "null")

    def popen(self, *args, env=None, stdout=None, stderr=None):
        p = subprocess.Popen(self.cmd(*args), env=env, stdout=stdout or subprocess.PIPE,
                             stderr=stderr or subprocess.STDOUT, text=True)
        self.procs.append(p)
        return p


class NetemUnavailable(RuntimeError):
    pass


_NETEM = None


def netem_available():
    """True when the kernel can attach a netem qdisc (probed once, in a
    throwaway namespace)."""
    global _NETEM
    if _NETEM is None:
        ns = f"{PREFIX}probe"
        _ip("netns", "add", ns, check=False)
        try:
            subprocess.run(["ip", "-n", ns, "link", "add", "name", "p0", "type", "dummy"],
                           capture_output=True, timeout=30)
            r = subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "p0",
                                "root", "netem", "delay", "1ms"], capture_output=True, timeout=30)
            _NETEM = r.returncode == 0
        finally:
            _ip("netns", "del", ns, check=False)
    return _NETEM


class Topology:
    def __init__(self):
        self.prefix = f"{PREFIX}{os.getpid()}x{int(time.time() * 1000) % 100000}"
        self.hosts = {}
        self._n = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def host(self, name):
        h = Host(self, name)
        _ip("netns", "add", h.ns)
        self.hosts[name] = h
        h.run("ip", "link", "set", "lo", "up")
        return h

    def link(self, a, addr_a, b, addr_b, mtu=None):
        """veth between hosts a and b, with CIDR addresses on each end."""
        self._n += 1
        va, vb = f"tkv{os.getpid() % 10000}a{self._n}", f"tkv{os.getpid() % 10000}b{self._n}"
        # created directly inside the namespaces: nothing touches the host's
        # own namespace, even briefly
        _ip("link", "add", va, "netns", a.ns, "type", "veth", "peer", "name", vb, "netns", b.ns)
        for h, dev, addr in ((a, va, addr_a), (b, vb, addr_b)):
            h.veths.append(dev)
            if addr:
                h.run("ip", "addr", "add", addr, "dev", dev)
            if mtu:
                h.run("ip", "link", "set", dev, "mtu", str(mtu))
            h.run("ip", "link", "set", dev, "up")
        return va, vb

    def nat(self, inside, box, outside, inside_net="10.98.1", outside_net="10.98.2",
            mapping="eim"):
        """inside --(inside_net)-- box(NAT) --(outside_net)-- outside."""
        _, box_in = self.link(inside, f"{inside_net}.2/24", box, f"{inside_net}.1/24")
        box_out, _ = self.link(box, f"{outside_net}.1/24", outside, f"{outside_net}.2/24")
        box.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        inside.run("ip", "route", "add", "default", "via", f"{inside_net}.1")
        rule = ["iptables", "-t", "nat", "-A", "POSTROUTING", "-o", box_out, "-j", "MASQUERADE"]
        if mapping == "edm":
            rule.append("--random-fully")
        elif mapping != "eim":
            raise ValueError("mapping must be 'eim' or 'edm'")
        box.run(*rule)
        # a home router's stateful firewall: from the outside only replies
        # (to the box itself or forwarded inside).  Without it an unsolicited
        # packet to the box's outside address (a peer's disco ping arriving
        # before ours went out) is delivered locally and leaves a conntrack
        # entry that makes MASQUERADE pick another source port for our own
        # later packets to that peer: the mapping the peer was told about
        # would never be used, and no hole could be punched.
        for chain, flag in (("INPUT", "-i"), ("FORWARD", "-i")):
            box.run("iptables", "-A", chain, flag, box_out, "-m", "conntrack",
                    "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
            box.run("iptables", "-A", chain, flag, box_out, "-j", "DROP")
        return f"{outside_net}.1"

    def netem(self, host, dev, delay_ms=0, loss_pct=0.0):
        """Impairs packets leaving `dev` on `host`.

        Uses tc netem where the kernel has it.  Some kernels (this project's
        CI machines among them) ship without sch_netem; there random loss
        falls back to an iptables `statistic` rule on the same interface and
        a delay raises NetemUnavailable, so no test silently runs unimpaired.
        """
        if netem_available():
            args = ["tc", "qdisc", "replace", "dev", dev, "root", "netem"]
            if delay_ms:
                args += ["delay", f"{delay_ms}ms"]
            if loss_pct:
                args += ["loss", f"{loss_pct}%"]
            host.run(*args)
            return "netem"
        if delay_ms:
            raise NetemUnavailable(
                "this kernel has no sch_netem: packet delay cannot be emulated "
                "(loss can, through iptables statistic)")
        if loss_pct:
            for tool in ("iptables", "ip6tables"):
                host.run(tool, "-A", "OUTPUT", "-o", dev, "-m", "statistic",
                         "--mode", "random", "--probability",
                         f"{loss_pct / 100.0:.6f}", "-j", "DROP")
                host.run(tool, "-A", "FORWARD", "-o", dev, "-m", "statistic",
                         "--mode", "random", "--probability",
                         f"{loss_pct / 100.0:.6f}", "-j", "DROP")
        return "iptables"

    def close(self):
        for h in self.hosts.values():
            for p in h.procs:
                if p.poll() is None:
                    p.terminate()
            for p in h.procs:
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=5)
        for h in self.hosts.values():
            _kill_ns_pids(h.ns)
            _ip("netns", "del", h.ns, check=False)
        self.hosts = {}
