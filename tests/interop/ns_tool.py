"""Kernel-side helper for test_netstackd.py (run inside a namespace):

  ns_tool.py serve ADDR PORT OUTFILE [REPLY]   accept one TCP connection,
        send REPLY (if any) and FIN, write everything received to OUTFILE
  ns_tool.py send ADDR PORT FILE               connect, send FILE, FIN,
        read until the peer's FIN (prints the byte count it read)
  ns_tool.py pace FILE BYTES_PER_S             FILE to stdout at a rate
  ns_tool.py blast ADDR PORT SECS              send for SECS, FIN, wait for
        the peer's close; prints Mbit/s (bytes / time until that close)
  ns_tool.py sink ADDR PORT                    accept connections forever,
        discard what they send, close on FIN
  ns_tool.py pipe ADDR PORT                    stdin -> a connection, FIN,
        wait for the peer's close
  ns_tool.py cps ADDR PORT N                   N connections one after the
        other, one byte echoed on each; prints connections/s
"""

import socket
import sys
import time


def serve(addr, port, out, reply=None):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    ls = socket.socket(fam, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port))
    ls.listen(1)
    ls.settimeout(120)
    print("listening", flush=True)
    s, _ = ls.accept()
    s.settimeout(240)
    if reply:
        s.sendall(reply.encode() + b"\n")
        s.shutdown(socket.SHUT_WR)
    with open(out, "wb") as f:
        while True:
            c = s.recv(1 << 20)
            if not c:
                break
            f.write(c)
    s.close()


def send(addr, port, path):
    s = socket.create_connection((addr, port), timeout=60)
    s.settimeout(240)
    with open(path, "rb") as f:
        while True:
            c = f.read(1 << 20)
            if not c:
                break
            s.sendall(c)
    s.shutdown(socket.SHUT_WR)
    n = 0
    while True:
        c = s.recv(1 << 20)
        if not c:
            break
        n += len(c)
    print(n)


def pace(path, rate):
    out = sys.stdout.buffer
    t0 = time.time()
    sent = 0
    with open(path, "rb") as f:
        while True:
            c = f.read(256 * 1024)
            if not c:
                break
            out.write(c)
            out.flush()
            sent += len(c)
            ahead = sent / rate - (time.time() - t0)
            if ahead > 0:
                time.sleep(ahead)


def blast(addr, port, secs):
    s = socket.create_connection((addr, port), timeout=30)
    s.settimeout(120)
    buf = b"z" * (1 << 20)
    sent, t0 = 0, time.time()
    while time.time() - t0 < secs:
        s.sendall(buf)
        sent += len(buf)
    s.shutdown(socket.SHUT_WR)
    while s.recv(65536):
        pass
    print("%.1f" % (sent * 8 / (time.time() - t0) / 1e6), flush=True)


def sink(addr, port):
    import threading
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    ls = socket.socket(fam, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port))
    ls.listen(512)
    print("listening", flush=True)

    def one(c):
        while True:
            d = c.recv(1 << 20)
            if not d:
                break
            if len(d) == 1:       # cps: echo the byte
                c.sendall(d)
        c.close()
    while True:
        c, _ = ls.accept()
        threading.Thread(target=one, args=(c,), daemon=True).start()


def pipe(addr, port):
    s = socket.create_connection((addr, port), timeout=30)
    s.settimeout(120)
    inp = sys.stdin.buffer
    while True:
        c = inp.read1(1 << 20)
        if not c:
            break
        s.sendall(c)
    s.shutdown(socket.SHUT_WR)
    while s.recv(65536):
        pass


def cps(addr, port, n):
    t0 = time.time()
    for _ in range(n):
        s = socket.create_connection((addr, port), timeout=30)
        s.sendall(b"x")
        assert s.recv(1) == b"x"
        s.close()
    print("%.0f" % (n / (time.time() - t0)), flush=True)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "serve":
        serve(sys.argv[2], int(sys.argv[3]), sys.argv[4],
              sys.argv[5] if len(sys.argv) > 5 else None)
    elif cmd == "send":
        send(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif cmd == "blast":
        blast(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    elif cmd == "sink":
        sink(sys.argv[2], int(sys.argv[3]))
    elif cmd == "pipe":
        pipe(sys.argv[2], int(sys.argv[3]))
    elif cmd == "cps":
        cps(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "pace":
        pace(sys.argv[2], float(sys.argv[3]))
    else:
        sys.exit("unknown command")
