#!/usr/bin/env python3
"""Footprint of the whole node, idle with N peers (issue 16), same run:
tailkitd against Tailscale's tailscaled (userspace networking, from the
interop harness: tailscale.com v1.102.3).

Everything runs in one network namespace of its own, with loopback and a
veth as its default route into a namespace that forwards nothing (needs
root): testcontrol and its DERP server (interop-peer, N fake peers added
to the tailnet), tailkitd and tailscaled, both DERP-only
(TS_DEBUG_ALWAYS_USE_DERP=1: no disco to addresses outside, and the same
work for both), DERP over TLS with the server's certificate verified by
both (the system's CAs plus the test server's).  Once both are Running
with the full netmap and have settled, every second for --seconds:

  RSS (VmRSS), PSS and private dirty memory (/proc/PID/smaps_rollup),
  threads, open fds; CPU time used over the window, as ms per minute.

Also the binaries: file size and stripped size of tailkitd, the shared
libraries it loads (their stripped sizes: a dynamic binary's whole cost),
tailscaled's.  Medians of the samples; ratios tailkitd/tailscaled last
(lower is better), each with the issue's goal.

Then (unless --no-split) the same node as four daemons (ctrld, wgd, the
derpd client, netstackd) on ipc:// buses, joining as another node: what
each component costs (RSS, PSS, private dirty, threads), once settled.

usage: sudo tools/bench/footprint.py [--peers 100] [--seconds 60] [--settle 15]
                                     [--no-split]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "interop"))
import netns  # noqa: E402
from conftest import binary  # noqa: E402

B = os.path.join(ROOT, "build")
TAILKITD = os.path.join(B, "tools", "node", "tailkitd")
TAILKIT = os.path.join(B, "tools", "cli", "tailkit")
TICK = os.sysconf("SC_CLK_TCK")
SPLIT = {  # the same node as four daemons on ipc:// buses: what each costs
    "ctrld": os.path.join(B, "ctrld", "ctrld"),
    "wgd": os.path.join(B, "wgd", "src", "wgd"),
    "derpd": os.path.join(B, "derpd", "src", "derpd"),
    "netstackd": os.path.join(B, "netstackd", "netstackd"),
}

def status_json(cli, sock):
    r = subprocess.run([cli, "--socket", sock, "status", "--json"], capture_output=True,
                       text=True, timeout=30)
    try:
        return json.loads(r.stdout) if r.returncode == 0 else None
    except ValueError:
        return None


def running_with(cli, sock, n):
    st = status_json(cli, sock)
    return bool(st and st.get("BackendState") == "Running" and
                len(st.get("Peer") or {}) >= n)


def wait(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.5)
    raise SystemExit(f"bench: timed out waiting for {what}")


def sample(pid):
    kv = {}
    with open(f"/proc/{pid}/status") as f:
        for ln in f:
            k, _, v = ln.partition(":")
            kv[k] = v.split()
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for ln in f:
            k, _, v = ln.partition(":")
            if k in ("Pss", "Private_Dirty"):
                kv[k] = v.split()
    return {"rss": int(kv["VmRSS"][0]), "pss": int(kv["Pss"][0]),
            "priv": int(kv["Private_Dirty"][0]), "threads": int(kv["Threads"][0]),
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])   # utime + stime


def stripped(path, tmp):
    out = os.path.join(tmp, "strip-" + os.path.basename(path))
    shutil.copy(path, out)
    subprocess.run(["strip", "--strip-unneeded", out], check=False, capture_output=True)
    return os.path.getsize(out)


def shared_libs(path):
    r = subprocess.run(["ldd", path], capture_output=True, text=True)
    libs = []
    for ln in r.stdout.splitlines():
        parts = ln.split("=>")
        if len(parts) == 2 and parts[1].strip().startswith("/"):
            libs.append(os.path.realpath(parts[1].split()[0]))
    return libs


def split_node(h, info, tmp, env, a):
    """The four daemons of a split node, idle with the same peers: a sample
    of each once the node is Running (ctrld's status) and settled."""
    bus, procs = os.path.join(tmp, "split-bus"), {}
    os.makedirs(bus)
    args = {
        "wgd": ["--bus", bus, "--state", os.path.join(tmp, "split-wgd"), "--no-uapi"],
        "netstackd": ["--bus", bus],
        "derpd": ["client", "--bus", bus, "--ca-file", os.path.join(tmp, "derp-ca.pem")],
        "ctrld": ["--bus", bus, "--state", os.path.join(tmp, "split-ctrld"), "--control-url",
                  info["control_url"], "--authkey", info["auth_key"], "--hostname",
                  "tksplit"],
    }
    status = os.path.join(B, "tools", "feed", "tk-status")

    def state(comp):
        r = subprocess.run([status, f"ipc://{bus}/{comp}.rpc"], capture_output=True,
                           text=True, timeout=10)
        try:
            return json.loads(r.stdout) if r.returncode == 0 else {}
        except ValueError:
            return {}
    try:
        for comp in ("wgd", "netstackd", "derpd", "ctrld"):
            procs[comp] = h.popen(SPLIT[comp], *args[comp], env=env,
                                  stdout=subprocess.DEVNULL,
                                  stderr=open(os.path.join(tmp, f"split-{comp}.log"), "w"))
            time.sleep(0.3)
        wait(lambda: state("ctrld").get("state") == 6 and
             len(state("wgd").get("peers") or []) >= a.peers, 90,
             f"the split node Running with {a.peers} peers in wgd")
        time.sleep(a.settle)
        out = {c: sample(p.pid) for c, p in procs.items()}
        return out if all(p.poll() is None for p in procs.values()) else None
    finally:
        for p in procs.values():
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peers", type=int, default=100)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--settle", type=int, default=15)
    ap.add_argument("--no-split", action="store_true")
    a = ap.parse_args()
    tsd_bin, ts_cli = binary("tailscaled"), binary("tailscale")
    for f in (TAILKITD, TAILKIT, tsd_bin, ts_cli):
        if not os.path.exists(f):
            raise SystemExit(f"bench: {f} missing (tools/setup.sh and the interop harness "
                             "build it)")
    tmp = tempfile.mkdtemp(prefix="tk-bench-footprint-")
    log = open(os.path.join(tmp, "go.log"), "w")
    env = dict(os.environ, TS_DEBUG_ALWAYS_USE_DERP="1")
    with netns.Topology() as topo:
        h = topo.host("fp")
        # an interface that is up with a default route: without one tailscaled
        # sees no network and pauses its control client (what goes there ends
        # in a second namespace that forwards nothing)
        topo.link(h, "10.77.0.1/24", topo.host("sink"), "10.77.0.2/24")
        h.run("ip", "route", "add", "default", "via", "10.77.0.2")
        # DERP over TLS with the certificate verified, as on a real tailnet:
        # the harness's DERP server without InsecureForTests, its
        # certificate trusted by both (tailkitd: --ca-file besides the
        # system's CAs; tailscaled: the system bundle plus it, SSL_CERT_FILE)
        ca = os.path.join(tmp, "derp-ca.pem")
        peer = h.popen(binary("interop-peer"), "-derp-only", "-derp-verify-ca", ca,
                       stderr=log)
        info = None
        deadline = time.time() + 120
        while time.time() < deadline and info is None:
            line = peer.stdout.readline()
            if not line:
                break
            if line.startswith("{"):
                info = json.loads(line)
        if info is None:
            raise SystemExit(f"bench: interop-peer printed no JSON line (see {log.name})")

        bundle = os.path.join(tmp, "bundle.pem")
        with open(bundle, "w") as out:
            for f in ("/etc/ssl/certs/ca-certificates.crt", ca):
                if os.path.exists(f):
                    out.write(open(f).read())
        tk_state = os.path.join(tmp, "tk")
        tk = h.popen(TAILKITD, "--state", tk_state, "--control-url", info["control_url"],
                     "--authkey", info["auth_key"], "--hostname", "tkfoot",
                     "--ca-file", ca, env=env,
                     stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "tk.log"), "w"))
        tk_sock = os.path.join(tk_state, "tailkitd.sock")
        ts_dir = os.path.join(tmp, "ts")
        os.makedirs(ts_dir)
        ts_sock = os.path.join(ts_dir, "tailscaled.sock")
        ts = h.popen(tsd_bin, "--tun=userspace-networking", "--statedir", ts_dir,
                     "--socket", ts_sock, "--port=0", "--no-logs-no-support",
                     env=dict(env, SSL_CERT_FILE=bundle), stdout=subprocess.DEVNULL,
                     stderr=open(os.path.join(tmp, "tailscaled.log"), "w"))
        wait(lambda: os.path.exists(ts_sock), 30, "tailscaled's socket")
        r = subprocess.run([ts_cli, "--socket", ts_sock, "up", "--login-server",
                            info["control_url"], "--auth-key", info["auth_key"],
                            "--hostname", "tsfoot"], capture_output=True, text=True,
                           timeout=120)
        if r.returncode != 0:
            raise SystemExit(f"bench: tailscale up: {r.stderr[-400:]}")
        wait(lambda: running_with(TAILKIT, tk_sock, 0), 90, "tailkitd Running")
        # testcontrol adds fake nodes once a real one has registered
        h.http_json("POST", info["admin_url"] + "/fake-nodes", {"n": a.peers})
        wait(lambda: running_with(TAILKIT, tk_sock, a.peers), 90,
             f"tailkitd Running with {a.peers} peers")
        wait(lambda: running_with(ts_cli, ts_sock, a.peers), 90,
             f"tailscaled Running with {a.peers} peers")
        npeers = (len(status_json(TAILKIT, tk_sock).get("Peer") or {}),
                  len(status_json(ts_cli, ts_sock).get("Peer") or {}))
        time.sleep(a.settle)
        samples = {"tk": [], "ts": []}
        c0 = {"tk": cpu_ticks(tk.pid), "ts": cpu_ticks(ts.pid)}
        t0 = time.monotonic()
        while time.monotonic() - t0 < a.seconds:
            samples["tk"].append(sample(tk.pid))
            samples["ts"].append(sample(ts.pid))
            time.sleep(1)
        dt = time.monotonic() - t0
        cpu = {k: (cpu_ticks(p.pid) - c0[k]) * 1000 / TICK * 60 / dt
               for k, p in (("tk", tk), ("ts", ts))}
        alive = tk.poll() is None and ts.poll() is None
        for p in (tk, ts):
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        split = None if a.no_split else split_node(h, info, tmp, env, a)
        for p in (peer,):
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
    if not alive:
        raise SystemExit(f"bench: a daemon exited during the measurement (logs in {tmp})")

    def med(k, f):
        return statistics.median(s[f] for s in samples[k])

    libs = shared_libs(TAILKITD)
    libs_stripped = sum(stripped(x, tmp) for x in libs)
    sizes = {"tk": os.path.getsize(TAILKITD), "tk_s": stripped(TAILKITD, tmp),
             "ts": os.path.getsize(tsd_bin), "ts_s": stripped(tsd_bin, tmp)}
    print(f"footprint, idle with {a.peers} peers (tailkitd saw {npeers[0]}, tailscaled "
          f"{npeers[1]}), both DERP-only, medians of {len(samples['tk'])} samples over "
          f"{dt:.0f} s after {a.settle} s settling")
    rows = [("RSS", "rss", "MiB"), ("PSS", "pss", "MiB"), ("private dirty", "priv", "MiB"),
            ("threads", "threads", ""), ("open fds", "fds", "")]
    for name, f, unit in rows:
        tkv, tsv = med("tk", f), med("ts", f)
        if unit == "MiB":
            print(f"  {name:14s} tailscaled {tsv / 1024:7.1f} MiB   tailkitd {tkv / 1024:7.1f} MiB")
        else:
            print(f"  {name:14s} tailscaled {tsv:7.0f}       tailkitd {tkv:7.0f}")
    print(f"  {'CPU idle':14s} tailscaled {cpu['ts']:7.1f} ms/min tailkitd {cpu['tk']:7.1f} ms/min")
    print(f"  {'binary':14s} tailscaled {sizes['ts'] / 1024:7.0f} KiB (stripped "
          f"{sizes['ts_s'] / 1024:.0f}, static)   tailkitd {sizes['tk'] / 1024:.0f} KiB "
          f"(stripped {sizes['tk_s'] / 1024:.0f}, dynamic: + {len(libs)} shared libraries, "
          f"{libs_stripped / 1024:.0f} KiB stripped; no static build: Debian ships no static "
          f"GnuTLS)")
    whole = sizes["tk_s"] + libs_stripped
    if split:
        print("  the same node as four daemons (each process's own libraries and threads):")
        for c, v in split.items():
            print(f"    {c:10s} RSS {v['rss'] / 1024:5.1f} MiB  PSS {v['pss'] / 1024:5.1f} MiB  "
                  f"private dirty {v['priv'] / 1024:5.1f} MiB  threads {v['threads']:3d}  "
                  f"fds {v['fds']:3d}")
        print(f"    {'sum':10s} RSS {sum(v['rss'] for v in split.values()) / 1024:5.1f} MiB  "
              f"PSS {sum(v['pss'] for v in split.values()) / 1024:5.1f} MiB  private dirty "
              f"{sum(v['priv'] for v in split.values()) / 1024:5.1f} MiB  threads "
              f"{sum(v['threads'] for v in split.values()):3d}")
    elif not a.no_split:
        print("  the split node: a daemon exited (see the split-*.log files in", tmp + ")")

    def ratio(name, x, y, goal):
        print(f"  ratio {name:34s} {x / y if y else 0:6.2f}x   ({goal})")
    ratio("RSS tailkitd/tailscaled", med("tk", "rss"), med("ts", "rss"),
          f"goal: tailkitd <= 8 MiB: {med('tk', 'rss') / 1024:.1f} MiB")
    ratio("PSS tailkitd/tailscaled", med("tk", "pss"), med("ts", "pss"), "lower is better")
    ratio("threads tailkitd/tailscaled", med("tk", "threads"), med("ts", "threads"),
          f"goal: tailkitd <= 8: {med('tk', 'threads'):.0f}")
    ratio("idle CPU tailkitd/tailscaled", cpu["tk"], cpu["ts"], "goal <= 0.25")
    ratio("stripped binary tailkitd/tailscaled", sizes["tk_s"], sizes["ts_s"],
          f"goal: static <= 2 MB; dynamic + libraries {whole / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
