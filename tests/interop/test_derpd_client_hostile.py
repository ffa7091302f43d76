"""derpd's client mode against a hostile DERP server (a scripted Python
server on 127.0.0.1): garbage instead of the upgrade, a refused upgrade, a
ServerKey without the magic, a 2 GiB frame length, malformed frames after
a good handshake.  derpd must stay up, count what it dropped, and reconnect
with Go's backoff (not hammer the server).  tailkit-only evidence: the
server is ours; the real servers are in test_derp_node.py."""

import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import wait_for
from test_derp_node import CTRLD, DERPD, STATUS, WGD, need, rpc_json

MAGIC = b"DERP\xf0\x9f\x94\x91"


def frame(t, payload):
    return struct.pack(">BI", t, len(payload)) + payload


class Hostile:
    """Accepts connections and answers each with the given script."""

    def __init__(self, script):
        self.script = script
        self.s = socket.socket()
        self.s.bind(("127.0.0.1", 0))
        self.s.listen(16)
        self.port = self.s.getsockname()[1]
        self.conns = 0
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        self.s.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.s.accept()
            except socket.timeout:
                continue
            self.conns += 1
            try:
                c.settimeout(2)
                c.recv(4096)  # the upgrade request
                c.sendall(self.script)
                time.sleep(0.3)
            except OSError:
                pass
            c.close()

    def close(self):
        self.stop = True
        self.t.join(timeout=5)
        self.s.close()


UPGRADE = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n\r\n"
SCRIPTS = {
    "garbage": b"\x00\xff garbage, not HTTP at all\r\n\r\n",
    "refused": b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n",
    "no_magic": UPGRADE + frame(1, b"NOTMAGIC" + b"k" * 32),
    "huge_len": UPGRADE + frame(1, MAGIC + b"k" * 32)[:0] + struct.pack(">BI", 1, 0x7fffffff),
    "first_not_key": UPGRADE + frame(6, b""),
    # a good start, then frames Go's client drops (short RecvPacket, short
    # PeerGone, short Ping, an unknown type), then a 2 GiB length
    "bad_frames": UPGRADE + frame(1, MAGIC + b"k" * 32) + frame(5, b"short") +
    frame(8, b"x" * 10) + frame(0x12, b"1234") + frame(0x99, b"?") +
    struct.pack(">BI", 5, 0x7fffffff),
}


@pytest.mark.parametrize("kind", sorted(SCRIPTS))
def test_derpd_client_survives_hostile_server(kind, tmp_path, interop_peer):
    """The DERP map comes from testcontrol through the real ctrld; its only
    region is the hostile server."""
    h = Hostile(SCRIPTS[kind])
    info = interop_peer(0, "-derp", f"127.0.0.1:{h.port}", "-derp-http")
    bus = str(tmp_path / "bus")
    logs = open(tmp_path / "log", "w")
    ps = []
    try:
        ps.append(subprocess.Popen([need(WGD), "--bus", bus, "--state", str(tmp_path / "w"),
                                    "--no-uapi"], stdout=subprocess.DEVNULL, stderr=logs))
        wait_for(lambda: rpc_json(STATUS, f"ipc://{bus}/wgd.rpc"), 20, "wgd")
        ps.append(subprocess.Popen([need(CTRLD), "--bus", bus, "--state", str(tmp_path / "c"),
                                    "--control-url", info["control_url"], "--authkey",
                                    info["auth_key"]], stdout=subprocess.DEVNULL, stderr=logs))
        ps.append(subprocess.Popen([need(DERPD), "client", "--bus", bus, "--derp-http"],
                                   stdout=subprocess.DEVNULL, stderr=logs))
        d = ps[-1]
        wait_for(lambda: h.conns >= 2, 20, "derpd retrying")
        time.sleep(3)
        st = rpc_json(STATUS, f"ipc://{bus}/derpd.rpc")
        assert d.poll() is None, "derpd died"
        c = st["counters"]
        assert c["regions_connected"] == 0 and c["handshakes"] == 0, c
        # Go's backoff (n^2 x 10 ms, capped at 5 s): a handful of tries in
        # ~4 s, never a tight loop
        assert 2 <= h.conns <= 15, (h.conns, c)
        assert c["connection_failures"] >= 2, c
        if kind == "bad_frames":
            assert c["bad_frames"] >= 3 * 2, c  # per connection: 3 malformed
    finally:
        for p in reversed(ps):
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=20)
        h.close()
    assert d.returncode == 0, open(tmp_path / "log").read()[-2000:]
