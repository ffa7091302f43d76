"""netstackd's protocol modules (netstackd/src/ns_dns_*, ns_socks, ns_hconn)
against real clients, before the userspace stack exists: tk-ns-testsrv
(tools/nsproto) serves them on loopback kernel sockets from the fixed netmap
of tests/unit/ns_dns/nm_fixture.h, and Debian's dig (bind9 9.18) and curl
(7.88) talk to it.  What is tailkit's own: the DNS codec, the MagicDNS table,
the forwarder, the SOCKS5 and HTTP CONNECT parsers; the clients, the HTTP
server (python3 -m http.server) and the fake upstream resolver are not."""

import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

from conftest import Proc, free_port
from test_ctrld import ROOT, need

TESTSRV = os.environ.get("TK_NS_TESTSRV",
                         os.path.join(ROOT, "build", "tools", "nsproto", "tk-ns-testsrv"))


def tool(name):
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: tools/setup.sh installs it (dnsutils, curl)")
    return path


class Server:
    """tk-ns-testsrv in one mode; .port once it printed "ready PORT"."""

    def __init__(self, procs, mode, *args):
        self.proc = Proc(f"ns-testsrv-{mode}", [need(TESTSRV), mode, "--lifetime", "90", *args])
        procs.append(self.proc)
        r, _, _ = select.select([self.proc.p.stdout], [], [], 10)
        line = self.proc.p.stdout.readline() if r else ""
        m = re.match(r"ready (\d+)", line)
        assert m, f"tk-ns-testsrv {mode} not ready: {line!r}\n{self.proc.tail()}"
        self.port = int(m.group(1))

    def stats(self):
        """Stops the server (SIGTERM) and returns its counters."""
        os.killpg(self.proc.p.pid, signal.SIGTERM)
        out, _ = self.proc.p.communicate(timeout=10)
        assert self.proc.p.returncode == 0, self.proc.tail()
        m = re.search(r"^stats (.*)$", out, re.M)
        assert m, out
        return {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}


def dig(port, *args, timeout=20):
    r = subprocess.run([tool("dig"), "@127.0.0.1", "-p", str(port), "+tries=1", "+time=3",
                        *args], capture_output=True, text=True, timeout=timeout)
    out = r.stdout + r.stderr
    # dig warns about replies it finds wrong (ID or question mismatch,
    # malformed packet, missing QR): none of that may appear
    assert not re.search(r"(?i)warning|malformed|mismatch|FORMERR", out), out
    m = re.search(r"status: (\w+), id: (\d+)", out)
    status = m.group(1) if m else None
    flags = re.search(r";; flags: ([a-z ]+);", out)
    answers = re.findall(r"^(\S+)\s+(\d+)\s+IN\s+(\w+)\s+(\S+)$",
                         out.split("ANSWER SECTION:")[1].split("\n\n")[0], re.M) \
        if "ANSWER SECTION:" in out else []
    return status, (flags.group(1).split() if flags else []), answers, out


@pytest.fixture
def dns(procs):
    return Server(procs, "dns")


def test_dig_tailnet_names(dns):
    st, flags, ans, out = dig(dns.port, "peer1.tail-test.ts.net", "A")
    assert st == "NOERROR" and "aa" in flags and "qr" in flags, out
    assert ans == [("peer1.tail-test.ts.net.", "600", "A", "100.64.0.2")], out
    assert "EDNS: version: 0" in out and "udp: 1232" in out, out  # OPT echoed
    # short name, other case, AAAA, no EDNS
    st, flags, ans, out = dig(dns.port, "+noedns", "PEER1", "AAAA")
    assert st == "NOERROR" and ans == [("PEER1.", "600", "AAAA", "fd7a:115c:a1e0::2")], out
    assert "OPT PSEUDOSECTION" not in out, out
    # a name without IPv6: NOERROR, no answer
    st, flags, ans, out = dig(dns.port, "peer2.tail-test.ts.net", "AAAA")
    assert st == "NOERROR" and ans == [] and "aa" in flags, out
    # ExtraRecords
    st, _, ans, out = dig(dns.port, "db.internal", "A")
    assert ans == [("db.internal.", "600", "A", "10.0.0.5")], out
    # over TCP too, two queries on one connection
    r = subprocess.run([tool("dig"), "@127.0.0.1", "-p", str(dns.port), "+tries=1", "+time=3",
                        "+tcp", "+keepopen", "+short", "self.tail-test.ts.net", "A",
                        "peer1", "AAAA"], capture_output=True, text=True, timeout=20)
    assert r.stdout.split() == ["100.64.0.1", "fd7a:115c:a1e0::2"], r.stdout + r.stderr


def test_dig_truncation_and_tcp_retry(dns):
    # 40 A records: 683 bytes.  Without EDNS0 the UDP answer is cut to TC
    # with no records; dig then retries over TCP and gets all 40.
    st, flags, ans, out = dig(dns.port, "+noedns", "+ignore", "many.internal", "A")
    assert st == "NOERROR" and "tc" in flags and ans == [], out
    st, flags, ans, out = dig(dns.port, "+noedns", "many.internal", "A")
    assert "Truncated, retrying in TCP mode" in out, out
    assert len(ans) == 40 and ans[-1][3] == "10.0.1.40" and "tc" not in flags, out
    # with EDNS0 (1232 bytes) it fits in one datagram
    st, flags, ans, out = dig(dns.port, "many.internal", "A")
    assert len(ans) == 40 and "Truncated" not in out, out
    stats = dns.stats()
    assert stats["truncated"] == 2, stats  # the +ignore and the retried one


def test_dig_ptr(dns):
    st, _, ans, out = dig(dns.port, "-x", "100.64.0.2")
    assert st == "NOERROR" and ans == [("2.0.64.100.in-addr.arpa.", "600", "PTR",
                                        "peer1.tail-test.ts.net.")], out
    st, _, ans, out = dig(dns.port, "-x", "fd7a:115c:a1e0::1")
    assert st == "NOERROR" and len(ans) == 1 and ans[0][3] == "self.tail-test.ts.net.", out
    # unknown tailnet address: NXDOMAIN from the local reverse zone
    st, flags, ans, out = dig(dns.port, "-x", "100.64.9.9")
    assert st == "NXDOMAIN" and "aa" in flags, out


def test_dig_local_and_unforwardable(dns):
    st, flags, _, out = dig(dns.port, "nope.tail-test.ts.net")
    assert st == "NXDOMAIN" and "aa" in flags, out
    st, _, _, out = dig(dns.port, "x.local.example")
    assert st == "NXDOMAIN", out
    st, _, _, out = dig(dns.port, "www.doh.example")  # DoH route: SERVFAIL
    assert st == "SERVFAIL", out
    # the tailnet domain itself exists (names below it): no NXDOMAIN
    st, flags, ans, out = dig(dns.port, "tail-test.ts.net", "SOA")
    assert st == "NOERROR" and "aa" in flags and ans == [], out
    stats = dns.stats()
    assert stats["nxdomain"] == 2 and stats["servfail_unforwardable"] == 1, stats
    assert stats["queries"] == 4 and stats["nodata"] == 1, stats


def test_garbage_is_counted(dns):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    try:
        s.sendto(b"\x01\x02\x03", ("127.0.0.1", dns.port))  # shorter than a header
        # qdcount 2: FORMERR without a question, ID kept
        s.sendto(struct.pack(">HHHHHH", 0x4242, 0x0100, 2, 0, 0, 0) + b"\x00\x00\x01\x00\x01",
                 ("127.0.0.1", dns.port))
        data, _ = s.recvfrom(1500)
        assert struct.unpack(">HH", data[:4]) == (0x4242, 0x8181), data.hex()
    finally:
        s.close()
    # the server still answers
    st, _, ans, out = dig(dns.port, "peer1", "A")
    assert ans and ans[0][3] == "100.64.0.2", out
    stats = dns.stats()
    assert stats["drop_short"] == 1 and stats["formerr"] == 1, stats


class FakeUpstream:
    """A UDP resolver answering A 192.0.2.7 to everything, or nothing."""

    def __init__(self, answer=True):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.answer = answer
        self.seen = []
        self.done = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        deadline = time.time() + 60
        while not self.done and time.time() < deadline:
            try:
                q, addr = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            qid, flags, qd = struct.unpack(">HHH", q[:6])
            end = 12
            while q[end] != 0:
                end += q[end] + 1
            question = q[12:end + 5]
            self.seen.append((qid, question))
            if not self.answer:
                continue
            resp = struct.pack(">HHHHHH", qid, 0x8180 | (flags & 0x0100), 1, 1, 0, 0) + question
            resp += b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 30, 4) + bytes([192, 0, 2, 7])
            self.sock.sendto(resp, addr)

    def close(self):
        self.done = True
        self.t.join(5)
        self.sock.close()


def test_dig_forwarded_split_dns(procs):
    up = FakeUpstream()
    try:
        srv = Server(procs, "dns", "--upstream", f"127.0.0.1:{up.port}")
        st, flags, ans, out = dig(srv.port, "www.corp.example", "A")
        assert st == "NOERROR" and ans == [("www.corp.example.", "30", "A", "192.0.2.7")], out
        assert "aa" not in flags, out
        # the upstream saw the same question (under the forwarder's own ID)
        assert len(up.seen) == 1 and up.seen[0][1].startswith(b"\x03www\x04corp\x07example\x00")
        stats = srv.stats()
        assert stats["forwarded"] == 1 and stats["fwd_sent"] == 1 and stats["fwd_replied"] == 1
    finally:
        up.close()


def test_dig_forward_timeout_is_servfail(procs):
    up = FakeUpstream(answer=False)
    try:
        srv = Server(procs, "dns", "--upstream", f"127.0.0.1:{up.port}")
        t0 = time.time()
        st, _, _, out = dig(srv.port, "+time=8", "slow.corp.example", "A")
        assert st == "SERVFAIL", out
        assert 2.5 < time.time() - t0 < 6.5  # the forwarder's 3 s timeout
        stats = srv.stats()
        assert stats["fwd_timeout"] == 1 and stats["fwd_replied"] == 0, stats
    finally:
        up.close()


def test_dig_forward_races_second_upstream(procs):
    # the first resolver never answers: after 1 s the forwarder asks the
    # second too, whose answer dig gets well before its own 5 s timeout
    silent, up = FakeUpstream(answer=False), FakeUpstream()
    try:
        srv = Server(procs, "dns", "--upstream", f"127.0.0.1:{silent.port}",
                     "--upstream", f"127.0.0.1:{up.port}")
        t0 = time.time()
        st, _, ans, out = dig(srv.port, "+time=5", "www.corp.example", "A")
        took = time.time() - t0
        assert st == "NOERROR" and ans == [("www.corp.example.", "30", "A", "192.0.2.7")], out
        assert 0.8 < took < 2.5, took
        assert len(silent.seen) == 1 and len(up.seen) == 1
        assert silent.seen[0][1] == up.seen[0][1]  # the same question
        stats = srv.stats()
        assert stats["fwd_retried"] == 1 and stats["fwd_replied"] == 1, stats
    finally:
        silent.close()
        up.close()


def test_no_traffic_off_the_host(dns):
    # without --upstream, corp.example's resolvers are 10.1.1.x: the tool
    # sends nothing there, and dig gets the forwarder's SERVFAIL at 3 s
    st, _, _, out = dig(dns.port, "+time=6", "www.corp.example", "A")
    assert st == "SERVFAIL", out
    assert "not sending to 10.1.1.1:53" in dns.proc.tail(), dns.proc.tail()


@pytest.fixture
def web(procs, tmp_path):
    """python3 -m http.server on loopback (v4 and v6) serving one file."""
    body = os.urandom(48 * 1024)
    (tmp_path / "blob").write_bytes(body)
    ports = {}
    for fam, addr in (("v4", "127.0.0.1"), ("v6", "::1")):
        port = free_port()
        p = Proc(f"http-{fam}", [sys.executable, "-m", "http.server", "--bind", addr,
                                 str(port)], cwd=str(tmp_path))
        procs.append(p)
        ports[fam] = port
    for fam, port in ports.items():
        deadline = time.time() + 10
        host = "127.0.0.1" if fam == "v4" else "::1"
        while True:
            try:
                socket.create_connection((host, port), timeout=1).close()
                break
            except OSError:
                assert time.time() < deadline, f"http.server {fam} not up"
                time.sleep(0.1)
    return {"body": body, **ports}


def curl(*args, timeout=30):
    return subprocess.run([tool("curl"), "-sS", "--max-time", "15", *args],
                          capture_output=True, timeout=timeout)


def test_curl_socks5(procs, web):
    srv = Server(procs, "socks")
    px = f"127.0.0.1:{srv.port}"
    # name resolved by the proxy (ATYP domain), by curl (ATYP IPv4), IPv6
    for args in (["--socks5-hostname", px, f"http://localhost:{web['v4']}/blob"],
                 ["--socks5", px, f"http://127.0.0.1:{web['v4']}/blob"],
                 ["--socks5-hostname", px, f"http://[::1]:{web['v6']}/blob"],
                 # a tailnet name, resolved through the MagicDNS table
                 ["--socks5-hostname", px, f"http://peer1:{web['v4']}/blob"],
                 ["-x", f"socks5h://{px}", f"http://peer1.tail-test.ts.net:{web['v4']}/blob"]):
        r = curl(*args)
        assert r.returncode == 0 and r.stdout == web["body"], (args, r.stderr)
    # a closed port: REP 05 (connection refused) reaches curl, which
    # prints the code: "Can't complete SOCKS5 connection to ... (5)"
    r = curl("--socks5-hostname", px, f"http://127.0.0.1:{free_port()}/")
    assert r.returncode != 0 and b"(5)" in r.stderr, r.stderr


def test_curl_socks5_userpass(procs, web):
    srv = Server(procs, "socks", "--user", "alice", "--pass", "s3cret")
    url = f"http://localhost:{web['v4']}/blob"
    r = curl("-x", f"socks5h://alice:s3cret@127.0.0.1:{srv.port}", url)
    assert r.returncode == 0 and r.stdout == web["body"], r.stderr
    r = curl("-x", f"socks5h://alice:wrong@127.0.0.1:{srv.port}", url)
    assert r.returncode != 0 and r.stdout == b"", r.stderr
    r = curl("-x", f"socks5h://127.0.0.1:{srv.port}", url)  # no credentials offered
    assert r.returncode != 0 and r.stdout == b"", r.stderr


def test_curl_http_connect(procs, web):
    srv = Server(procs, "http")
    px = f"http://127.0.0.1:{srv.port}"
    for url in (f"http://localhost:{web['v4']}/blob", f"http://[::1]:{web['v6']}/blob",
                f"http://peer1:{web['v4']}/blob"):
        r = curl("-p", "-x", px, url)
        assert r.returncode == 0 and r.stdout == web["body"], (url, r.stderr)
    # dial failure: 502 reaches curl
    r = curl("-p", "-x", px, f"http://127.0.0.1:{free_port()}/")
    assert r.returncode != 0 and b"502" in r.stderr, r.stderr
    # a plain proxy request (no -p: GET http://...): 405
    r = curl("-x", px, "-o", "/dev/null", "-w", "%{http_code}",
             f"http://localhost:{web['v4']}/blob")
    assert r.stdout == b"405", r.stdout + r.stderr


def test_curl_http_connect_auth(procs, web):
    srv = Server(procs, "http", "--user", "alice", "--pass", "s3:cret")
    px = f"http://127.0.0.1:{srv.port}"
    url = f"http://localhost:{web['v4']}/blob"
    r = curl("-p", "-x", px, "--proxy-user", "alice:s3:cret", url)
    assert r.returncode == 0 and r.stdout == web["body"], r.stderr
    r = curl("-p", "-x", px, url)
    assert r.returncode != 0 and b"407" in r.stderr, r.stderr
    r = curl("-p", "-x", px, "--proxy-user", "alice:nope", url)
    assert r.returncode != 0 and b"407" in r.stderr, r.stderr


def test_socks5_udp_associate(procs):
    """A small client (RFC 1928 §7) through the relay to a UDP echo server."""
    srv = Server(procs, "socks", "--udp")
    echo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    echo.bind(("127.0.0.1", 0))
    echo.settimeout(5)
    c = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    u.settimeout(5)
    try:
        c.sendall(b"\x05\x01\x00")
        assert c.recv(2) == b"\x05\x00"
        c.sendall(b"\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00")
        rep = c.recv(10)
        assert rep[:4] == b"\x05\x00\x00\x01", rep.hex()
        relay = (socket.inet_ntoa(rep[4:8]), struct.unpack(">H", rep[8:10])[0])
        eport = echo.getsockname()[1]
        # to the echo server by IPv4 address, then by tailnet name
        for hdr in (b"\x00\x00\x00\x01" + socket.inet_aton("127.0.0.1"),
                    b"\x00\x00\x00\x03\x05peer1"):
            u.sendto(hdr + struct.pack(">H", eport) + b"ping", relay)
            data, src = echo.recvfrom(100)
            assert data == b"ping"
            echo.sendto(b"pong", src)
            back, _ = u.recvfrom(100)
            assert back == b"\x00\x00\x00\x01" + socket.inet_aton("127.0.0.1") + \
                struct.pack(">H", eport) + b"pong", back.hex()
        # a fragment (FRAG 1) is dropped: nothing reaches the echo server
        u.sendto(b"\x00\x00\x01\x01" + socket.inet_aton("127.0.0.1") +
                 struct.pack(">H", eport) + b"frag", relay)
        echo.settimeout(0.5)
        with pytest.raises(socket.timeout):
            echo.recvfrom(100)
        # closing the control connection ends the relay, which counted
        # the fragment
        c.close()
        deadline = time.time() + 5
        while "udp relay done" not in srv.proc.tail() and time.time() < deadline:
            time.sleep(0.1)
        assert "udp relay done: frag=1 bad=0" in srv.proc.tail(), srv.proc.tail()
    finally:
        c.close()
        u.close()
        echo.close()
