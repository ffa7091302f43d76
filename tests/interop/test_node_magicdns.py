"""MagicDNS from the node itself, with names from the real ctrld against
Go's testcontrol (issue 12): an application on a tailkitd node binds a UDP
socket through netstackd's local API and asks 100.100.100.100:53, as a
program on a Tailscale node asks its quad-100.  The answers must match
control's netmap: A/AAAA for the Go peer by short name and FQDN, the node's
own name, PTR for the peer's address, NXDOMAIN inside the tailnet domain."""

import array
import os
import socket
import struct

from conftest import http_json, wait_for
from test_node_derp import usnode  # noqa: F401 (fixture)


def api_bind_udp(api):
    """BIND_UDP (op 3) on an ephemeral port: the datagram descriptor."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(api)
    s.sendall(struct.pack(">HBBIH", 10, 3, 0, 7, 0))
    fds = array.array("i")
    msg, anc, _, _ = s.recvmsg(1024, socket.CMSG_LEN(4))
    for level, typ, data in anc:
        if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
            fds.frombytes(data[:4])
    n, op, status, rid = struct.unpack(">HBBI", msg[:8])
    assert op == 0x81 and status == 0 and rid == 7 and fds, (op, status, msg[8:])
    return socket.socket(fileno=fds[0]), s


def query(name, qtype, qid):
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00" + struct.pack(">HH", qtype, 1)


def skip_name(m, o):
    while True:
        n = m[o]
        if n & 0xC0 == 0xC0:
            return o + 2
        if n == 0:
            return o + 1
        o += 1 + n


def answers(m):
    """(rcode, [(type, rdata)])"""
    qid, flags, qd, an = struct.unpack(">HHHH", m[:8])
    o = 12
    for _ in range(qd):
        o = skip_name(m, o) + 4
    out = []
    for _ in range(an):
        o = skip_name(m, o)
        t, _, _, rl = struct.unpack(">HHIH", m[o:o + 10])
        out.append((t, m[o + 10:o + 10 + rl]))
        o += 10 + rl
    return flags & 0xF, out


def ask(udp, name, qtype, qid=1):
    hdr = struct.pack(">BBH", 4, 0, 53) + socket.inet_aton("100.100.100.100") + b"\x00" * 12
    udp.settimeout(5)
    for _ in range(3):
        udp.send(hdr + query(name, qtype, qid))
        try:
            d = udp.recv(2048)
        except socket.timeout:
            continue
        assert d[:4] == struct.pack(">BBH", 4, 0, 53), d[:20]   # from quad-100:53
        return answers(d[20:])
    raise AssertionError(f"no answer for {name}")


def test_magicdns_from_the_node_with_ctrld_names(interop_peer, usnode):  # noqa: F811
    info = interop_peer(1)
    tk = usnode(info["control_url"], info["auth_key"], hostname="tkdns", mode="tailkitd")
    go1 = next(n for n in info["nodes"] if n["name"] == "go1")
    nodes = wait_for(lambda: (lambda ns: ns if any(n.get("Name", "").startswith("tkdns.")
                                                   for n in ns) else None)(
        http_json("GET", info["admin_url"] + "/nodes").get("control_nodes") or []),
        60, "control knowing the node")
    me = next(n for n in nodes if n["Name"].startswith("tkdns."))
    domain = me["Name"].split(".", 1)[1]                       # tail-scale.ts.net.
    wait_for(lambda: os.path.exists(tk.api), 30, "the API socket")
    udp, ctl = api_bind_udp(tk.api)
    v4 = socket.inet_aton(go1["ips"][0])
    rc, an = wait_for(lambda: (lambda r: r if r[1] else None)(ask(udp, "go1", 1)), 30,
                      "go1's A record (the netmap reached netstackd)")
    assert rc == 0 and (1, v4) in an, an
    rc, an = ask(udp, "go1." + domain, 1, 2)
    assert rc == 0 and (1, v4) in an, an
    rc, an = ask(udp, "GO1." + domain.upper(), 28, 3)                # AAAA, any case
    assert rc == 0 and any(t == 28 and socket.inet_ntop(socket.AF_INET6, d) == go1["ips"][1]
                           for t, d in an), an
    rc, an = ask(udp, "tkdns", 1, 4)
    assert rc == 0 and (1, socket.inet_aton(me["Addresses"][0].split("/")[0])) in an, an
    rev = ".".join(reversed(go1["ips"][0].split("."))) + ".in-addr.arpa"
    rc, an = ask(udp, rev, 12, 5)
    assert rc == 0 and an and b"go1" in an[0][1], an
    rc, an = ask(udp, "nosuchnode." + domain, 1, 6)
    assert rc == 3 and not an, (rc, an)                              # NXDOMAIN
    udp.close()
    ctl.close()
