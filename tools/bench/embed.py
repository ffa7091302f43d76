#!/usr/bin/env python3
"""Embedding a node: libtailkit on libtailscale's C API next to a Go tsnet
program doing the same, same run, same tailnet (issue 14's benchmark).

  C:  tools/bench/embed_bench.c, libtailscale's API only (tailscale.h),
      compiled with `pkg-config --cflags --libs tailkit` against the build
      installed into a scratch prefix (`cmake --install --component embed`);
  Go: tests/interop/peer/cmd/tsnetbench, the same steps with tsnet.Server
      ($TAILKIT_CACHE/interop/bin/tsnetbench from tools/setup_interop.sh;
      built from the module cache into the scratch directory if missing).

The tailnet: interop-peer's testcontrol, Go's derper (plain HTTP) as the
only DERP server, one Go tsnet node (go1, DERP-only) serving TCP echo on
port 7.  The Go program is DERP-only too (-derp-only); tailkit has no
direct UDP paths yet (disco), so every packet of both goes through derper.
Each round runs the two programs one after the other (alternating which
goes first), never at once.  Per program and round:

  1. time from tailscale_start (Go: tsnet.Server.Up) to the first echo
     reply from go1, measured inside the program (and to tailscale_up's /
     Up's return); also from exec, measured here (includes process and
     runtime start-up);
  2. VmRSS, RssAnon and threads of the process with its one node idle (the
     first connection closed, --settle seconds later);
  3. TCP echo round trips per second: --echo writes of 64 bytes on one
     connection to go1:7, each read back before the next.

Medians of --runs; ratios (tailkit / Go) printed last, with the goals
(RSS <= 1/4, time to first connection <= 1/3).

usage: tools/bench/embed.py [--runs 5] [--echo 2000] [--settle 5] [--build build]
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
from conftest import BIN, free_port  # noqa: E402


def install_and_compile(build, tmp):
    """The library into tmp/prefix; embed_bench.c compiled against it."""
    pfx = os.path.join(tmp, "prefix")
    subprocess.run(["cmake", "--install", build, "--prefix", pfx, "--component", "embed"],
                   check=True, capture_output=True)
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(pfx, "lib", "pkgconfig"))
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "tailkit"], env=env,
                           check=True, capture_output=True, text=True).stdout.split()
    exe = os.path.join(tmp, "embed_bench")
    subprocess.run(["cc", "-O2", "-o", exe, os.path.join(ROOT, "tools", "bench",
                                                          "embed_bench.c"), *flags],
                   check=True)
    return exe, os.path.join(pfx, "lib")


def tsnetbench(tmp):
    exe = os.path.join(BIN, "tsnetbench")
    if os.access(exe, os.X_OK):
        return exe
    exe = os.path.join(tmp, "tsnetbench")
    print(f"bench: {BIN}/tsnetbench missing, building it (go, module cache)", file=sys.stderr)
    subprocess.run(["go", "build", "-trimpath", "-o", exe, "./cmd/tsnetbench"], check=True,
                   cwd=os.path.join(ROOT, "tests", "interop", "peer"),
                   env=dict(os.environ, GOTOOLCHAIN="local", GOFLAGS="-mod=readonly"))
    return exe


def tailnet(tmp, procs):
    """derper (plain HTTP) + interop-peer with go1; its JSON line."""
    port, stun = free_port(), free_port(__import__("socket").SOCK_DGRAM)
    log = open(os.path.join(tmp, "harness.log"), "w")
    procs.append(subprocess.Popen([os.path.join(BIN, "derper"), "-a", f"127.0.0.1:{port}",
                                   "-http-port", "-1", "-stun-port", str(stun), "-c",
                                   os.path.join(tmp, "derper.json")],
                                  stdout=log, stderr=log))
    p = subprocess.Popen([os.path.join(BIN, "interop-peer"), "-nodes", "1", "-derp",
                          f"127.0.0.1:{port}", "-derp-stun-port", str(stun), "-derp-http",
                          "-derp-only"], stdout=subprocess.PIPE, stderr=log, text=True)
    procs.append(p)
    info = json.loads(p.stdout.readline() or "{}")
    if not info.get("nodes"):
        raise SystemExit(f"bench: interop-peer did not start (see {log.name})")
    info["go1"] = next(n for n in info["nodes"] if n["name"] == "go1")["ips"][0]
    return info


def run_one(cmd, env, log, timeout=180):
    """Run a bench program; {"exec_ms", "connected", "rss", "anon", "threads",
    "echo_ms", "rounds"} or None with the reason in the log."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    r = {}
    try:
        for line in p.stdout:
            f = line.split()
            if f[:1] == ["up"]:
                r["up"] = float(f[1])
            elif f[:1] == ["connected"]:
                r["exec_ms"] = (time.monotonic() - t0) * 1000
                r["connected"] = float(f[1])
            elif f[:1] == ["idle"]:
                r["rss"], r["anon"], r["threads"] = map(int, f[1:4])
            elif f[:1] == ["echo"]:
                r["rounds"], r["echo_ms"] = int(f[1]), float(f[2])
            elif f[:1] == ["done"]:
                break
            if time.monotonic() - t0 > timeout:
                break
    finally:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    ok = {"connected", "rss", "echo_ms"} <= r.keys()
    if not ok:
        log.write(f"bench: {cmd[0]} failed (exit {p.returncode}): {r}\n")
        log.flush()
    return r if ok else None


def med(rs, key, f=lambda x: x):
    v = [f(r) for r in rs if r and key in r]
    return statistics.median(v) if v else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--echo", type=int, default=2000)
    ap.add_argument("--settle", type=int, default=5)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    a = ap.parse_args()
    if not os.path.exists(os.path.join(a.build, "tools", "embed", "libtailkit.a")):
        raise SystemExit(f"bench: {a.build}/tools/embed/libtailkit.a missing (build the tree)")
    tmp = tempfile.mkdtemp(prefix="tk-bench-embed-")
    c_exe, libdir = install_and_compile(a.build, tmp)
    go_exe = tsnetbench(tmp)
    procs = []
    tk, go = [], []
    log = open(os.path.join(tmp, "programs.log"), "w")
    try:
        info = tailnet(tmp, procs)
        base = dict(os.environ, HOME=tmp, TS_AUTHKEY=info["auth_key"],
                    TS_CONTROL_URL=info["control_url"])
        for i in range(a.runs):
            def run_tk():
                st = os.path.join(tmp, f"tk{i}")
                tk.append(run_one([c_exe, st, f"tkbench{i}", info["go1"], str(a.echo),
                                   str(a.settle)],
                                  dict(base, LD_LIBRARY_PATH=libdir,
                                       TAILKIT_DERP_PLAIN_HTTP="1"), log))

            def run_go():
                go.append(run_one([go_exe, "-control", info["control_url"], "-authkey",
                                   info["auth_key"], "-dir", os.path.join(tmp, f"go{i}"),
                                   "-hostname", f"gobench{i}", "-peer", info["go1"],
                                   "-rounds", str(a.echo), "-settle", f"{a.settle}s",
                                   "-derp-only", "-derp-http"], base, log))
            for f in ((run_tk, run_go) if i % 2 == 0 else (run_go, run_tk)):
                f()
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
    report(a, tk, go, tmp)
    if all(tk) and all(go):
        shutil.rmtree(tmp, ignore_errors=True)


def report(a, tk, go, tmp):
    rate = lambda r: r["rounds"] / r["echo_ms"] * 1000
    rows = [
        ("start -> first echo reply (ms)", "connected", None, "<= 0.33"),
        ("start -> up returned (ms)", "up", None, None),
        ("exec -> first echo reply (ms)", "exec_ms", None, None),
        ("idle RSS (MiB)", "rss", lambda r: r["rss"] / 1024, "<= 0.25"),
        ("idle RSS anonymous (MiB)", "anon", lambda r: r["anon"] / 1024, None),
        ("threads", "threads", None, None),
        ("TCP echo round trips/s", "echo_ms", rate, None),
    ]
    nok_t, nok_g = sum(1 for r in tk if r), sum(1 for r in go if r)
    print(f"embedding benchmark: medians of {a.runs} rounds (ok: tailkit {nok_t}, "
          f"Go {nok_g}); {a.echo} echo round trips of 64 bytes; idle after {a.settle} s")
    if nok_t < a.runs or nok_g < a.runs:
        print(f"  failed runs: see {tmp}/programs.log")
    print(f"  {'metric':34} {'Go tsnet':>10} {'tailkit':>10}")
    res = []
    for name, key, f, goal in rows:
        fn = f or (lambda r, k=key: r[k])
        g, t = med(go, key, fn), med(tk, key, fn)
        res.append((name, g, t, goal))
        print(f"  {name:34} {g:10.1f} {t:10.1f}")
    print("  per run, tailkit / Go:")
    for name, key, f, _ in rows[:4] + rows[6:]:
        fn = f or (lambda r, k=key: r[k])
        print(f"    {name:32} tk {' '.join(f'{fn(r):.0f}' if r else 'fail' for r in tk)}"
              f"  go {' '.join(f'{fn(r):.0f}' if r else 'fail' for r in go)}")
    print("  ratios tailkit/Go (time and memory: lower is better; echo: higher is better)")
    for name, g, t, goal in res:
        ratio = t / g if g else float("nan")
        verdict = ""
        if goal:
            verdict = f"goal {goal}: " + ("met" if ratio <= float(goal[3:]) else "missed")
        print(f"  ratio {name:34} {ratio:6.2f}x  {verdict}")


if __name__ == "__main__":
    main()
