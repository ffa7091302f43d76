#!/usr/bin/env python3
"""Runs headscale v0.29.2 on loopback for debugging by hand.

    python3 tests/interop/headscale_run.py [--dir DIR]

Prints one JSON line (control_url, auth_key, stun, derp, config, cli_hint)
like interop-peer's, then keeps headscale running until Ctrl-C or SIGTERM.
The work directory (config, sqlite database, keys, log) is a fresh temporary
one unless --dir is given.
"""

import argparse
import json
import os
import signal
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import start_headscale  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", help="work directory (default: a new temporary directory)")
    args = ap.parse_args()
    d = args.dir or tempfile.mkdtemp(prefix="tk-headscale-")
    os.makedirs(d, mode=0o700, exist_ok=True)
    procs = []
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT, signal.SIGTERM])
    try:
        info = start_headscale(d, procs)
        out = {k: v for k, v in info.items() if k not in ("cli", "proc", "url")}
        out["log"] = procs[0].log.name
        print(json.dumps(out), flush=True)
        while procs[0].p.poll() is None:
            if signal.sigtimedwait([signal.SIGINT, signal.SIGTERM], 1):
                break
    except Exception as e:  # noqa: BLE001 - report any start failure plainly
        print(f"headscale_run: {e}", file=sys.stderr)
        return 1
    finally:
        for p in procs:
            p.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
