"""netstackd's services against real clients: MagicDNS at 100.100.100.100
(dig from the kernel side through the tunnel), dial by name (tk-ns), and the
loopback proxies (curl --socks5-hostname, curl -p -x, a SOCKS5 UDP ASSOCIATE
client) on the netstackd host.

Same two hosts as test_netstackd.py (its ns_pair fixture): A = wgd +
netstackd, B = wgd + tk-tun (the kernel).  The netmap comes from tk-feed
(ctrld's own map state) with a DNSConfig; B's wgd also routes 100.100.100.100
and fd7a:115c:a1e0::53 to A, so B's dig reaches A's MagicDNS through
WireGuard.  Upstream resolvers are small Python responders the test runs in
A's namespace (netstackd forwards from the host, on kernel UDP).

What is tailkit's own: netstackd, wgd, tk-ns, tk-feed.  The counterparts:
dig (bind9), curl, python3 -m http.server, the kernel's TCP/UDP.

test_netstackd_svc_names_from_testcontrol takes the names from the real
ctrld against Go's testcontrol instead (a tailkit node with netstackd dials
two tsnet nodes by name over Go's derper).
"""

import os
import re
import subprocess
import time

import pytest

from test_netstackd import (A4, A6, B4, B6, ALLOW_ALL, NETSTACKD, TKNS, USERS,
                            node_json, ns_pair, wait_line)  # noqa: F401 (fixture)
from test_wgd import need
from test_derp_node import tknode  # noqa: F401 (fixture)

SOCKS, HTTP = "127.0.0.1:1080", "127.0.0.1:3128"
Q4, Q6 = "100.100.100.100", "fd7a:115c:a1e0::53"

# A DNS responder for the forwarding tests: answers A <ip> to every query,
# from inside the namespace it runs in; ends by itself.
RESOLVER = r"""
import socket, struct, sys, time
ip, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", port)); s.settimeout(0.5)
print("ready", flush=True)
end = time.time() + 120
while time.time() < end:
    try:
        q, addr = s.recvfrom(4096)
    except socket.timeout:
        continue
    qid, flags = struct.unpack(">HH", q[:4])
    e = 12
    while q[e] != 0:
        e += q[e] + 1
    question = q[12:e + 5]
    r = struct.pack(">HHHHHH", qid, 0x8180 | (flags & 0x0100), 1, 1, 0, 0) + question
    r += b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 30, 4) + socket.inet_aton(ip)
    s.sendto(r, addr)
"""

UDP_ECHO = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2]))); s.settimeout(0.5)
print("ready", flush=True)
end = time.time() + 60
while time.time() < end:
    try:
        d, a = s.recvfrom(65536)
    except socket.timeout:
        continue
    s.sendto(b"echo:" + d, a)
"""

# RFC 1928 §7 client: UDP ASSOCIATE, then datagrams to a tailnet name and
# to an IP, through the relay; prints what came back.
SOCKS_UDP = r"""
import socket, struct, sys
c = socket.create_connection(("127.0.0.1", 1080), timeout=10)
c.sendall(b"\x05\x01\x00"); assert c.recv(2) == b"\x05\x00"
c.sendall(b"\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00")
rep = c.recv(10)
assert rep[:4] == b"\x05\x00\x00\x01", rep.hex()
relay = (socket.inet_ntoa(rep[4:8]), struct.unpack(">H", rep[8:10])[0])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(2)
u.bind(("127.0.0.1", 0))
for hdr in (b"\x00\x00\x00\x03\x05node2", b"\x00\x00\x00\x01" + socket.inet_aton(sys.argv[1])):
    for _ in range(5):
        u.sendto(hdr + struct.pack(">H", 7777) + b"ping", relay)
        try:
            back, _ = u.recvfrom(2000)
            break
        except socket.timeout:
            continue
    else:
        print("no answer"); sys.exit(1)
    want = b"\x00\x00\x00\x01" + socket.inet_aton(sys.argv[1]) + struct.pack(">H", 7777)
    assert back == want + b"echo:ping", back.hex()
# a fragment (FRAG 1) is dropped and counted
u.sendto(b"\x00\x00\x01\x01" + socket.inet_aton(sys.argv[1]) + struct.pack(">H", 7777) + b"x", relay)
try:
    u.recvfrom(2000); print("fragment relayed"); sys.exit(1)
except socket.timeout:
    pass
c.close()
print("ok")
"""


def dns_config(up1, up2):
    return {"Resolvers": [{"Addr": f"127.0.0.1:{up1}"}],
            "Routes": {"corp.example.": [{"Addr": f"127.0.0.1:{up2}"}],
                       "dead.example.": [{"Addr": "127.0.0.1:5399"}],
                       "doh.example.": [{"Addr": "https://dns.example/dns-query"}]},
            "Domains": ["tail0.ts.net"], "Proxied": True,
            "ExtraRecords": [{"Name": "db.tail0.ts.net.", "Type": "A",
                              "Value": "100.64.0.99"}]}


def nodes(a, b):
    """A and B as the netmap lists them.  B's dig reaches A's MagicDNS
    through the tunnel only if quad-100 is one of A's addresses: B's wgd
    routes by A's AllowedIPs, and A's wgd lets a peer reach only the
    addresses A advertises (Go's filter: "destination not allowed").  In
    Tailscale nobody but the node itself asks its quad-100; netstackd
    keeps these two addresses out of the MagicDNS answers."""
    na = node_json(1, a.nodekey, [A4, A6, Q4, Q6], a.outer, 10)
    nb = node_json(2, b.nodekey, [B4, B6], b.outer, 20)
    return na, nb


def restart_netstackd(a, *extra):
    """netstackd again, with extra flags (the proxies)."""
    a.ns.terminate()
    a.ns.wait(timeout=20)
    assert a.ns.returncode == 0, a.log()
    if os.path.exists(a.api):
        os.unlink(a.api)
    a.ns = a.host.popen(need(NETSTACKD), "--bus", a.bus, "--addr", A4, "--addr", A6, *extra,
                        stderr=open(os.path.join(a.dir, "netstackd.log"), "a"))
    for _ in range(200):
        if os.path.exists(a.api):
            break
        assert a.ns.poll() is None, a.log()
        time.sleep(0.05)
    for _ in range(400):
        if a.ns_status()["counters"]["netmap_snapshots"] >= 1:
            return
        time.sleep(0.05)
    raise AssertionError("netstackd never applied the netmap: " + a.log())


@pytest.fixture
def svc(ns_pair):
    """ns_pair with a DNSConfig, quad-100 routed from B to A, two upstream
    resolvers in A's namespace, and netstackd's proxies on."""
    a, b = ns_pair
    up1 = a.host.popen("python3", "-c", RESOLVER, "192.0.2.7", "5300")
    # the split route's resolver: corp.example names are on B
    up2 = a.host.popen("python3", "-c", RESOLVER, B4, "5301")
    wait_line(up1, "ready")
    wait_line(up2, "ready")
    na, nb = nodes(a, b)
    a.publish({"Node": na, "Peers": [nb], "UserProfiles": USERS,
               "PacketFilter": ALLOW_ALL, "DNSConfig": dns_config(5300, 5301)})
    b.publish({"Node": nb, "Peers": [na], "UserProfiles": USERS,
               "PacketFilter": ALLOW_ALL})
    restart_netstackd(a, "--socks5", SOCKS, "--http-proxy", HTTP)
    for _ in range(200):        # the DNS config arrived with the snapshot
        if a.ns_status()["counters"]["dns_tables"] >= 1:
            break
        time.sleep(0.05)
    yield a, b


def dig(host, server, *args):
    r = host.run("dig", f"@{server}", "+tries=3", "+time=2", *args, check=False, timeout=60)
    out = r.stdout + r.stderr
    assert not re.search(r"(?i)warning|malformed|mismatch", out), out
    m = re.search(r"status: (\w+),", out)
    flags = re.search(r";; flags: ([a-z ]+);", out)
    answers = re.findall(r"^(\S+)\s+(\d+)\s+IN\s+(\w+)\s+(\S+)$",
                         out.split("ANSWER SECTION:")[1].split("\n\n")[0], re.M) \
        if "ANSWER SECTION:" in out else []
    return (m.group(1) if m else None), (flags.group(1).split() if flags else []), answers, out


def test_netstackd_svc_dig_tailnet_names(svc):
    a, b = svc
    st, flags, ans, out = dig(b.host, Q4, "node2.tail0.ts.net", "A")
    assert st == "NOERROR" and "aa" in flags, out + a.log()
    assert ans == [("node2.tail0.ts.net.", "600", "A", B4)], out
    # self, short name, AAAA
    st, _, ans, out = dig(b.host, Q4, "node1", "AAAA")
    assert ans == [("node1.", "600", "AAAA", A6)], out
    # PTR, v4 and v6
    st, _, ans, out = dig(b.host, Q4, "-x", B4)
    assert ans == [("2.0.64.100.in-addr.arpa.", "600", "PTR", "node2.tail0.ts.net.")], out
    st, _, ans, out = dig(b.host, Q4, "-x", A6)
    assert len(ans) == 1 and ans[0][3] == "node1.tail0.ts.net.", out
    # ExtraRecords; an unknown name under the tailnet domain: NXDOMAIN
    st, _, ans, out = dig(b.host, Q4, "db.tail0.ts.net", "A")
    assert ans == [("db.tail0.ts.net.", "600", "A", "100.64.0.99")], out
    st, flags, ans, out = dig(b.host, Q4, "nope.tail0.ts.net", "A")
    assert st == "NXDOMAIN" and "aa" in flags, out
    # the IPv6 service address, and TCP (two queries on one connection)
    st, _, ans, out = dig(b.host, Q6, "node2.tail0.ts.net", "AAAA")
    assert ans == [("node2.tail0.ts.net.", "600", "AAAA", B6)], out
    r = b.host.run("dig", f"@{Q4}", "+tcp", "+keepopen", "+short", "+tries=2", "+time=3",
                   "node2.tail0.ts.net", "A", "node1", "A", check=False, timeout=60)
    assert r.stdout.split() == [B4, A4], r.stdout + r.stderr
    c = a.ns_status()["counters"]
    assert c["dns_answered"] >= 7 and c["dns_nxdomain"] >= 1 and c["dns_tcp_conns"] >= 1, c


def test_netstackd_svc_dig_rebuilt_on_delta(svc):
    """A peer renamed in a delta: the table follows."""
    a, b = svc
    na, nb = nodes(a, b)
    nb["Name"] = "renamed.tail0.ts.net."
    before = a.ns_status()["counters"]["dns_tables"]
    a.publish({"Node": na, "Peers": [nb], "UserProfiles": USERS,
               "PacketFilter": ALLOW_ALL, "DNSConfig": dns_config(5300, 5301)})
    for _ in range(200):
        if a.ns_status()["counters"]["dns_tables"] > before:
            break
        time.sleep(0.05)
    st, _, ans, out = dig(b.host, Q4, "renamed.tail0.ts.net", "A")
    assert ans == [("renamed.tail0.ts.net.", "600", "A", B4)], out
    st, _, ans, out = dig(b.host, Q4, "node2.tail0.ts.net", "A")
    assert st == "NXDOMAIN", out


def test_netstackd_svc_dig_forwarding(svc):
    a, b = svc
    # default resolver, split route, DoH-only route
    st, _, ans, out = dig(b.host, Q4, "www.example.com", "A")
    assert st == "NOERROR" and ans == [("www.example.com.", "30", "A", "192.0.2.7")], \
        out + a.log()
    st, _, ans, out = dig(b.host, Q4, "host.corp.example", "A")
    assert ans == [("host.corp.example.", "30", "A", B4)], out
    st, _, ans, out = dig(b.host, Q4, "x.doh.example", "A")
    assert st == "SERVFAIL", out
    # a forwarded query asked over TCP: forwarded over UDP, answered on TCP
    r = b.host.run("dig", f"@{Q4}", "+tcp", "+short", "+tries=2", "+time=3",
                   "tcp.example.org", "A", check=False, timeout=60)
    assert r.stdout.split() == ["192.0.2.7"], r.stdout + r.stderr
    # an upstream that never answers: SERVFAIL at the forwarder's 5 s
    t0 = time.time()
    st, _, ans, out = dig(b.host, Q4, "+tries=1", "+time=10", "x.dead.example", "A")
    assert st == "SERVFAIL" and 4 < time.time() - t0 < 9, out
    c = a.ns_status()["counters"]
    assert c["dns_fwd_replied"] >= 3 and c["dns_servfail_unforwardable"] >= 1 and \
        c["dns_up_in"] >= 3 and c["dns_fwd_timeout"] == 1, c


def test_netstackd_svc_dial_by_name(svc):
    a, b = svc
    got = os.path.join(a.dir, "byname")
    tool = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ns_tool.py")
    srv = b.host.popen("python3", tool, "serve", B4, "9191", got, "hi-by-name")
    wait_line(srv, "listening")
    cli = subprocess.run(a.host.cmd(need(TKNS), "--api", a.api, "dial", "node2", "9191"),
                         input=b"hello\n", capture_output=True, timeout=30)
    assert cli.returncode == 0, cli.stderr + a.log().encode()
    assert cli.stdout == b"hi-by-name\n"
    assert b"node=2 name=node2.tail0.ts.net." in cli.stderr, cli.stderr
    srv.wait(timeout=10)
    # a split-DNS name: resolved by the test's resolver for corp.example
    srv = b.host.popen("python3", tool, "serve", B4, "9192", got, "hi-split-dns")
    wait_line(srv, "listening")
    cli = subprocess.run(a.host.cmd(need(TKNS), "--api", a.api, "dial", "db.corp.example",
                                    "9192"), input=b"x\n", capture_output=True, timeout=30)
    assert cli.returncode == 0 and cli.stdout == b"hi-split-dns\n", cli.stderr
    srv.wait(timeout=10)
    # (a single label like "nosuch" would go to the resolver, which
    # answers everything here)
    for name in ("nosuch.tail0.ts.net", "x.doh.example"):
        cli = subprocess.run(a.host.cmd(need(TKNS), "--api", a.api, "dial", name, "9191"),
                             capture_output=True, timeout=30)
        assert cli.returncode == 1 and b"no tailnet node by that name" in cli.stderr, \
            (name, cli.stderr)


@pytest.fixture
def web(svc, tmp_path):
    """python3 -m http.server on B's tailnet address, a 1 MiB file in it."""
    a, b = svc
    root = tmp_path / "www"
    root.mkdir()
    blob = os.urandom(1 << 20)
    (root / "blob").write_bytes(blob)
    for addr, port in ((B4, 8000), (B6, 8001)):
        b.host.popen("python3", "-m", "http.server", "--bind", addr, str(port), "--directory",
                     str(root), stdout=subprocess.DEVNULL)
        for _ in range(100):
            if b.host.run("python3", "-c", "import socket; socket.create_connection("
                          f"('{addr}', {port}), 1)", check=False).returncode == 0:
                break
            time.sleep(0.1)
    return a, b, blob


def curl(host, *args):
    return subprocess.run(host.cmd("curl", "-sS", "--max-time", "30", *args),
                          capture_output=True, timeout=60)


def test_netstackd_svc_curl_socks5(web):
    a, b, blob = web
    for name in ("node2", "node2.tail0.ts.net", B4):
        r = curl(a.host, "--socks5-hostname", SOCKS, f"http://{name}:8000/blob")
        assert r.returncode == 0 and r.stdout == blob, r.stderr + a.log().encode()
    # curl resolving the IP itself (SOCKS5 with an IPv4 / IPv6 address)
    r = curl(a.host, "--socks5", SOCKS, f"http://{B4}:8000/blob")
    assert r.returncode == 0 and r.stdout == blob, r.stderr
    r = curl(a.host, "--socks5-hostname", SOCKS, f"http://[{B6}]:8001/blob")
    assert r.returncode == 0 and r.stdout == blob, r.stderr
    # a name of the split-DNS route: resolved by the test's resolver (B4)
    r = curl(a.host, "--socks5-hostname", SOCKS, "http://web.corp.example:8000/blob")
    assert r.returncode == 0 and r.stdout == blob, r.stderr + a.log().encode()
    # no such name: host unreachable (REP 04; curl prints the code)
    for name in ("nosuch.tail0.ts.net", "x.doh.example"):
        r = curl(a.host, "--socks5-hostname", SOCKS, f"http://{name}:8000/")
        assert r.returncode == 97 and b"(4)" in r.stderr, r.stderr
    # a port nobody listens on: B's kernel answers RST, refused (REP 05)
    r = curl(a.host, "--socks5-hostname", SOCKS, "http://node2:8009/")
    assert r.returncode == 97 and b"(5)" in r.stderr, r.stderr
    c = a.ns_status()["counters"]
    assert c["proxy_socks_connect"] >= 8 and c["proxy_dial_ok"] >= 6 and \
        c["proxy_name_unknown"] >= 2 and c["proxy_bytes_down"] >= 6 << 20, c
    assert c["dns_lookups_ok"] >= 1 and c["dns_lookups_failed"] >= 2, c


def test_netstackd_svc_curl_http_connect(web):
    a, b, blob = web
    for name in ("node2", "node2.tail0.ts.net", B4):
        r = curl(a.host, "-p", "-x", f"http://{HTTP}", f"http://{name}:8000/blob")
        assert r.returncode == 0 and r.stdout == blob, r.stderr + a.log().encode()
    r = curl(a.host, "-p", "-x", f"http://{HTTP}", f"http://[{B6}]:8001/blob")
    assert r.returncode == 0 and r.stdout == blob, r.stderr
    r = curl(a.host, "-p", "-x", f"http://{HTTP}", "http://web.corp.example:8000/blob")
    assert r.returncode == 0 and r.stdout == blob, r.stderr
    r = curl(a.host, "-p", "-x", f"http://{HTTP}", "http://nosuch.tail0.ts.net:8000/")
    assert r.returncode != 0 and b"502" in r.stderr, r.stderr
    c = a.ns_status()["counters"]
    assert c["proxy_http_ok"] >= 4 and c["proxy_http_conns"] >= 4, c


def test_netstackd_svc_socks5_udp_associate(svc):
    a, b = svc
    echo = b.host.popen("python3", "-c", UDP_ECHO, B4, "7777")
    wait_line(echo, "ready")
    r = a.host.run("python3", "-c", SOCKS_UDP, B4, check=False, timeout=60)
    assert r.returncode == 0 and "ok" in r.stdout, r.stdout + r.stderr + a.log()
    c = a.ns_status()["counters"]
    assert c["proxy_udp_assoc"] == 1 and c["proxy_udp_to_client"] >= 2 and \
        c["proxy_socks_udp_frag"] == 1, c


def test_netstackd_svc_proxy_auth(web):
    a, b, blob = web
    restart_netstackd(a, "--socks5", SOCKS, "--http-proxy", HTTP,
                      "--proxy-user", "alice", "--proxy-pass", "s3cret")
    url = "http://node2:8000/blob"
    r = curl(a.host, "--socks5-hostname", SOCKS, "--proxy-user", "alice:s3cret", url)
    assert r.returncode == 0 and r.stdout == blob, r.stderr
    r = curl(a.host, "--socks5-hostname", SOCKS, "--proxy-user", "alice:nope", url)
    assert r.returncode != 0, r.stdout
    r = curl(a.host, "-p", "-x", f"http://{HTTP}", "--proxy-user", "alice:s3cret", url)
    assert r.returncode == 0 and r.stdout == blob, r.stderr
    r = curl(a.host, "-p", "-x", f"http://{HTTP}", url)
    assert r.returncode != 0 and b"407" in r.stderr, r.stderr
    c = a.ns_status()["counters"]
    assert c["proxy_socks_auth_failed"] == 1 and c["proxy_http_auth"] == 1, c


def test_netstackd_svc_proxy_flags_refused(ns_pair):
    a, b = ns_pair
    for flags, want in ((["--socks5", "10.95.0.1:1080"], "not a loopback address"),
                        (["--http-proxy", "localhost"], "expected ADDR:PORT"),
                        (["--socks5", SOCKS, "--proxy-user", "u"], "go together")):
        r = a.host.run(need(NETSTACKD), "--api", os.path.join(a.dir, "x.sock"),
                       "--pkt", "inproc://x/y", "--no-ctrld", *flags, check=False, timeout=20)
        assert r.returncode == 2 and want in r.stderr, (flags, r.stderr)


# Kernel server on B: reads until the client's FIN (half-close), answers
# the SHA-256 of what it got, then 32 MiB of a known pattern, then closes.
HALF_SERVER = r"""
import hashlib, socket, sys
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((sys.argv[1], 7800)); ls.listen(1); ls.settimeout(60)
print("listening", flush=True)
s, _ = ls.accept(); s.settimeout(120)
h = hashlib.sha256()
while True:
    c = s.recv(1 << 16)
    if not c:
        break
    h.update(c)
s.sendall(h.hexdigest().encode())
chunk = bytes(range(256)) * 4096
for _ in range(32):
    s.sendall(chunk)
s.close()
"""

# SOCKS5 client on A: 8 MiB up, FIN, then stops reading for a while (the
# test measures netstackd meanwhile), then reads everything.
HALF_CLIENT = r"""
import hashlib, os, socket, struct, sys, time
c = socket.create_connection(("127.0.0.1", 1080), timeout=30)
c.sendall(b"\x05\x01\x00"); assert c.recv(2) == b"\x05\x00"
c.sendall(b"\x05\x01\x00\x03\x05node2" + struct.pack(">H", 7800))
rep = c.recv(10); assert rep[:2] == b"\x05\x00", rep.hex()
up = os.urandom(8 << 20)
c.sendall(up)
c.shutdown(socket.SHUT_WR)
print("paused", flush=True)
time.sleep(4)
got = b""
while True:
    d = c.recv(1 << 20)
    if not d:
        break
    got += d
want = hashlib.sha256(up).hexdigest().encode() + bytes(range(256)) * 4096 * 32
print("ok" if got == want else "mismatch %d of %d" % (len(got), len(want)), flush=True)
"""


def test_netstackd_svc_socks5_half_close_backpressure(svc):
    """Through the SOCKS5 relay: the client's FIN reaches the kernel server
    while the other direction still carries 32 MiB; a client that stops
    reading stalls the server (netstackd's memory stays bounded); then every
    byte arrives, in order."""
    a, b = svc

    def rss_kib():
        with open(f"/proc/{a.ns.pid}/status") as f:
            return [int(x.split()[1]) for x in f if x.startswith("VmRSS:")][0]
    srv = b.host.popen("python3", "-c", HALF_SERVER, B4)
    wait_line(srv, "listening")
    before = rss_kib()
    cli = a.host.popen("python3", "-c", HALF_CLIENT)
    wait_line(cli, "paused", timeout=60)
    time.sleep(2)
    # the relay read at most what the stalled client's socket took: the
    # rest waits in B's kernel behind netstackd's closed window
    c = a.ns_status()["counters"]
    assert c["proxy_open"] == 1 and c["proxy_bytes_down"] < 16 << 20, c
    with open(need(NETSTACKD), "rb") as f:
        asan = b"__asan_init" in f.read()
    if not asan:    # ASan's quarantine keeps every freed buffer for a while
        assert rss_kib() - before < 16 * 1024, (before, rss_kib())
    print(f"netstackd RSS {before} KiB before, {rss_kib()} KiB with a stalled client")
    out, _ = cli.communicate(timeout=120)
    assert cli.returncode == 0 and "ok" in out, out + a.log()
    srv.wait(timeout=30)
    c = a.ns_status()["counters"]
    assert c["proxy_open"] == 0 and c["proxy_bytes_up"] >= 8 << 20, c


SOCKS_ECHO = r"""
import socket, struct, sys
port, name, payload = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3].encode()
c = socket.create_connection(("127.0.0.1", port), timeout=20)
c.sendall(b"\x05\x01\x00"); assert c.recv(2) == b"\x05\x00"
c.sendall(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + struct.pack(">H", 7))
rep = c.recv(4)
assert rep[:2] == b"\x05\x00", rep.hex()
c.recv({1: 6, 4: 18}[rep[3]])
c.sendall(payload); c.shutdown(socket.SHUT_WR)
buf = b""
while True:
    d = c.recv(65536)
    if not d:
        break
    buf += d
print(buf.decode(errors="replace"))
"""


def test_netstackd_svc_names_from_testcontrol(derper, interop_peer, tknode):
    """The names come from the real ctrld against Go's testcontrol: netstackd
    on a tailkit node (ctrld + wgd + derpd, DERP only) dials two tsnet nodes
    by name, through its API and through its SOCKS5 proxy."""
    from conftest import free_port, wait_for
    from test_derp_node import go_ip
    d = derper()
    info = interop_peer(2, "-derp", f"127.0.0.1:{d['port']}", "-derp-stun-port",
                        str(d["stun_port"]), "-derp-http", "-derp-only")
    tk = tknode(info["control_url"], info["auth_key"])
    nm = wait_for(lambda: (lambda m: m if m and m.get("self", {}).get("addresses")
                           and len(m.get("peers", [])) >= 2 else None)(tk.netmap()),
                  60, "netmap with self and the Go peers")
    fqdn = {p["name"].split(".")[0]: p["name"] for p in nm["peers"]}
    port = free_port()
    log = open(os.path.join(tk.tmp, "netstackd.log"), "a")
    ns = subprocess.Popen([need(NETSTACKD), "--bus", tk.bus, "--socks5", f"127.0.0.1:{port}"],
                          stdout=subprocess.DEVNULL, stderr=log)
    api = os.path.join(tk.bus, "netstackd.sock")
    try:
        wait_for(lambda: (tk.counters("netstackd").get("dns_tables", 0) >= 1 and
                          tk.counters("netstackd").get("netmap_peers", 0) >= 2), 30,
                 "netstackd's MagicDNS table from ctrld's netmap")

        def dial(name, payload):
            r = subprocess.run([need(TKNS), "--api", api, "dial", name, "7"],
                               input=payload.encode(), capture_output=True, timeout=40)
            return r if r.returncode == 0 and payload.encode() in r.stdout else None
        r = wait_for(lambda: dial("go1", "hello-go1"), 90, "dial go1 by name")
        assert f"name={fqdn['go1']}".encode() in r.stderr, r.stderr
        assert go_ip(info, "go1").encode() in r.stderr, r.stderr
        r = dial(fqdn["go2"].rstrip("."), "hello-go2")
        assert r is not None
        # the SOCKS5 proxy, by short name and by FQDN
        for name in ("go2", fqdn["go1"]):
            out = subprocess.run(["python3", "-c", SOCKS_ECHO, str(port), name, f"via-{name}"],
                                 capture_output=True, text=True, timeout=60)
            assert out.returncode == 0 and f"via-{name}" in out.stdout, out.stdout + out.stderr
        r = subprocess.run([need(TKNS), "--api", api, "dial", "go9", "7"],
                           capture_output=True, timeout=20)
        assert r.returncode == 1 and b"no tailnet node by that name" in r.stderr, r.stderr
    except BaseException:
        print(tk.tails())
        raise
    finally:
        ns.terminate()
        rc = ns.wait(timeout=20)
        assert rc == 0, open(log.name).read()[-3000:]
