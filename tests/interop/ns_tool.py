"""Kernel-side helper for test_netstackd.py (run inside a namespace):

  ns_tool.py serve ADDR PORT OUTFILE [REPLY]   accept one TCP connection,
        send REPLY (if any) and FIN, write everything received to OUTFILE
  ns_tool.py send ADDR PORT FILE               connect, send FILE, FIN,
        read until the peer's FIN (prints the byte count it read)
  ns_tool.py pace FILE BYTES_PER_S             FILE to stdout at a rate
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


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "serve":
        serve(sys.argv[2], int(sys.argv[3]), sys.argv[4],
              sys.argv[5] if len(sys.argv) > 5 else None)
    elif cmd == "send":
        send(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif cmd == "pace":
        pace(sys.argv[2], float(sys.argv[3]))
    else:
        sys.exit("unknown command")
