"""The Python binding (bindings/python) on a tailnet with Go tsnet nodes:
driven by tests/interop/test_python_binding.py, one line per fact on
stdout.

    probe.py CONTROL_URL STATE_DIR AUTHKEY GO_IP

- serves TCP echo on 7007 (threads, blocking sockets), HTTP on 8080 (the
  answer names the peer from the accepted connection's identity) and UDP
  echo on 7007, logging each peer;
- dials go1 by name (TCP echo, port 7) and checks the reply and identity;
- sends UDP datagrams of 1..1200 bytes to go1's UDP echo, one at a time,
  and checks each reply has the same size and bytes (boundaries kept);
- prints status() and whois(GO_IP) as JSON;
- runs the bad-argument checks (each prints "bad NAME ERRNAME message");
- exits when stdin closes ("bye").
"""

import errno
import json
import os
import socket
import sys
import threading
import time

import tailkit


def out(*a):
    print(*a, flush=True)


def ename(e):
    return errno.errorcode.get(getattr(e, "errno", None) or 0, type(e).__name__)


def tcp_echo(lst):
    while True:
        try:
            sock, peer = lst.accept()
        except OSError:
            return
        out(f"accept {peer.remote_ip} {peer.remote_port} node {peer.node_name} "
            f"user {peer.user_login} local {peer.local_ip}:{peer.local_port}")
        with sock:
            while data := sock.recv(65536):
                sock.sendall(data)


def http_hello(lst):
    while True:
        try:
            sock, peer = lst.accept()
        except OSError:
            return
        with sock:
            sock.settimeout(10)
            req = b""
            while b"\r\n\r\n" not in req:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                req += chunk
            body = f"hello {peer.node_name} ({peer.user_login}) from python\n".encode()
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
            out(f"http {peer.remote_ip}")


def udp_echo(u):
    while True:
        try:
            data, addr = u.recvfrom(2048)
        except OSError:
            return
        out(f"udp {addr[0]} {addr[1]} {len(data)}")
        u.sendto(data, addr)


def dial_go(n, go_ip):
    sock, peer = n.dial("go1:7", timeout=30)
    with sock:
        sock.settimeout(10)
        sock.sendall(b"hello-py")
        got = b""
        while len(got) < 8:
            chunk = sock.recv(64)
            if not chunk:
                break
            got += chunk
    out(f"dial {peer.remote_ip} {peer.remote_port} node {peer.node_name} "
        f"user {peer.user_login} reply {got.decode()}")


def udp_sizes(n, go_ip):
    """Datagrams of 1..1200 bytes to go1's UDP echo; each reply must come
    back whole.  UDP may lose one: resend after 0.5 s (bounded)."""
    with n.udp(0) as u:
        u.settimeout(0.5)
        for size in range(1, 1201):
            data = bytes((size + i) & 0xFF for i in range(size))
            for _ in range(20):
                u.sendto(data, (go_ip, 7))
                try:
                    got, addr = u.recvfrom(2048)
                except socket.timeout:
                    continue
                if got != data or addr != (go_ip, 7):
                    out(f"udp-mismatch size {size} got {len(got)} from {addr}")
                    return
                break
            else:
                out(f"udp-lost size {size}")
                return
    out("ok udp 1..1200 bytes")


def bad(name, fn):
    try:
        r = fn()
    except (OSError, ValueError, TypeError) as e:
        out(f"bad {name} {ename(e)} {e}")
        return
    out(f"bad {name} NOERROR {r!r}")


def bad_args(n, go_ip, tmp):
    bad("listen-port-0", lambda: n.listen(0))
    bad("listen-port-70000", lambda: n.listen(70000))
    bad("listen-twice", lambda: n.listen(7007))
    bad("dial-unknown-name", lambda: n.dial("no-such-node", 7, timeout=20))
    bad("dial-no-port", lambda: n.dial("go1"))
    bad("dial-port-0", lambda: n.dial(go_ip, 0))
    bad("dial-timeout-negative", lambda: n.dial(go_ip, 7, timeout=-1))
    with n.udp(0) as u:
        bad("udp-too-big", lambda: u.sendto(b"x" * 1253, (go_ip, 7)))
        bad("udp-not-ip", lambda: u.sendto(b"x", ("go1", 7)))
        bad("udp-bad-port", lambda: u.sendto(b"x", (go_ip, 0)))
    bad("whois-garbage", lambda: n.whois("not an address"))
    bad("whois-unknown", lambda: n.whois("100.64.99.99"))
    bad("set-after-start", lambda: n.set("hostname", "late"))
    with tailkit.Node(hostname="two", state_dir=os.path.join(tmp, "two"),
                      control_url="http://127.0.0.1:9") as two:
        bad("second-node", two.start)
    bad("setting-type", lambda: n.set("hostname", 3.5))
    lst = n.listen(7100)
    lst.close()
    bad("accept-closed", lambda: lst.accept(timeout=1))


def fds():
    """This process's descriptors, as what they point to."""
    out = []
    for x in os.listdir("/proc/self/fd"):
        try:
            out.append(f"{x}:{os.readlink(f'/proc/self/fd/{x}')}")
        except OSError:
            pass  # the directory's own descriptor
    return out


def main():
    control, state, key, go_ip = sys.argv[1:5]
    out(f"lib {tailkit.library_path()}")
    fds_before = fds()
    with tailkit.Node(hostname="tkpy", authkey=key, control_url=control, state_dir=state,
                      derp_plain_http=True, log_level="info") as n:
        t0 = time.monotonic()
        ips = n.up(timeout=90)
        out(f"ips {','.join(ips)} up {int((time.monotonic() - t0) * 1000)} ms")
        out(f"state {n.state()}")
        lst, web, u = n.listen(7007), n.listen(8080), n.udp(7007)
        for fn, arg in ((tcp_echo, lst), (http_hello, web), (udp_echo, u)):
            threading.Thread(target=fn, args=(arg,), daemon=True).start()
        out(f"serving {u.port}")
        dial_go(n, go_ip)
        udp_sizes(n, go_ip)
        out("status " + json.dumps(n.status()))
        out("whois " + json.dumps(n.whois(go_ip)))
        out("whois-port " + json.dumps(n.whois(f"{go_ip}:7") is not None))
        bad_args(n, go_ip, os.path.dirname(state))
        out("ready")
        sys.stdin.read()
        n.stop()
        for x in (lst, web, u):
            x.close()
    after = fds()
    out(f"fds {len(fds_before)} {len(after)} new: {' '.join(sorted(set(after) - set(fds_before)))}")
    out("bye")


if __name__ == "__main__":
    main()
