"""Node, Listener, UDPSocket: tailkit.h in Python terms.

Every blocking wait happens in Python (select on the descriptor, in slices,
so Ctrl-C and timeouts work); the C calls themselves never block: listeners
and pending dials are non-blocking descriptors here.
"""

import asyncio
import ctypes
import errno as _errno
import ipaddress
import json
import os
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Tuple, TypeVar, Union

from . import _lib

_T = TypeVar("_T", bound="_Closing")
DEFAULT_CONTROL_URL = "https://controlplane.tailscale.com"
UDP_HDR_LEN = 20
UDP_MAX_V4 = 1252  # payload bytes a datagram may carry over IPv4 (tailnet MTU)
UDP_MAX_V6 = 1232

EVENT_STATE, EVENT_LOGIN_URL, EVENT_PEERS, EVENT_IPS = 1, 2, 3, 4
_EVENT_NAMES = {EVENT_STATE: "state", EVENT_LOGIN_URL: "login_url", EVENT_PEERS: "peers",
                EVENT_IPS: "ips"}


class TailkitError(OSError):
    """A failed tailkit call: .errno is the error number, str() and
    .strerror carry tailkit's message (tailkit_errmsg)."""


def _fail(rv: int, what: str = "") -> "TailkitError":
    msg = _lib.errmsg() or os.strerror(-rv)
    return TailkitError(-rv, f"{what}: {msg}" if what else msg)


def _check(rv: int, what: str = "") -> int:
    if rv < 0:
        raise _fail(rv, what)
    return rv


@dataclass(frozen=True)
class Peer:
    """Who is on the other end of a connection (from the netmap when the
    connection was handed over).  node_id 0: not a known tailnet node."""
    remote_ip: str
    remote_port: int
    local_ip: str
    local_port: int
    node_id: int
    user_id: int
    node_name: str
    user_login: str

    @classmethod
    def _from(cls, p: _lib.PeerStruct) -> "Peer":
        return cls(p.remote_ip.decode(), p.remote_port, p.local_ip.decode(), p.local_port,
                   p.node_id, p.user_id, p.node_name.decode(errors="replace"),
                   p.user_login.decode(errors="replace"))


@dataclass(frozen=True)
class Event:
    type: str  # "state", "login_url", "peers", "ips"
    state: str  # the node's state when the event was queued
    text: str


def _wait_readable(fd: int, deadline: Optional[float], what: str) -> None:
    """Waits (in slices, so signals are handled) until fd is readable;
    TailkitError(ETIMEDOUT) past the deadline."""
    p = select.poll()  # not select(): descriptors above 1023 are fine
    p.register(fd, select.POLLIN)
    while True:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise TailkitError(_errno.ETIMEDOUT, f"{what}: timed out")
        if p.poll(1000 if left is None else max(1, int(min(left, 1.0) * 1000))):
            return


def _deadline(timeout: Optional[float]) -> Optional[float]:
    if timeout is None:
        return None
    if timeout < 0:
        raise ValueError(f"timeout must be None or >= 0 seconds, not {timeout!r}")
    return time.monotonic() + timeout


async def _readable_async(fd: int) -> None:
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    loop.add_reader(fd, lambda: fut.done() or fut.set_result(None))
    try:
        await fut
    finally:
        loop.remove_reader(fd)


def _set_nonblock(fd: int) -> None:
    os.set_blocking(fd, False)


def _conn_socket(fd: int) -> socket.socket:
    # an AF_UNIX stream socket carrying the TCP connection's bytes; the
    # socket is blocking as Python's default (settimeout/setblocking as usual)
    s = socket.socket(fileno=fd)
    s.setblocking(True)
    return s


class _Closing:
    """with x: ... closes x."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _T) -> _T:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Listener(_Closing):
    """A TCP listener on every address of the node.  accept() returns a
    (socket.socket, Peer) pair; accept_async() the same in asyncio; the
    descriptor (fileno()) is readable when a connection waits.  close()
    stops listening."""

    def __init__(self, node: "Node", fd: int, port: int):
        self._node, self._fd, self.port = node, fd, port
        _set_nonblock(fd)

    def fileno(self) -> int:
        if self._fd < 0:
            raise TailkitError(_errno.EBADF, "the listener is closed")
        return self._fd

    def _try_accept(self) -> Optional[Tuple[socket.socket, Peer]]:
        p = _lib.PeerStruct()
        fd = _lib.lib().tailkit_accept(self.fileno(), ctypes.byref(p))
        if fd == -_errno.EAGAIN:
            return None
        _check(fd, "accept")
        return _conn_socket(fd), Peer._from(p)

    def accept(self, timeout: Optional[float] = None) -> Tuple[socket.socket, Peer]:
        dl = _deadline(timeout)
        while True:
            got = self._try_accept()
            if got:
                return got
            _wait_readable(self.fileno(), dl, f"accept on port {self.port}")

    async def accept_async(self) -> Tuple[socket.socket, Peer]:
        """accept() for asyncio; the socket is non-blocking (for
        asyncio.open_connection(sock=...) or loop.sock_recv)."""
        while True:
            got = self._try_accept()
            if got:
                got[0].setblocking(False)
                return got
            await _readable_async(self.fileno())

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __repr__(self) -> str:
        return f"<tailkit.Listener port={self.port} fd={self._fd}>"


def _pack_udp(data: bytes, addr: Tuple[str, int]) -> bytes:
    if not isinstance(addr, tuple) or len(addr) != 2:
        raise TailkitError(_errno.EINVAL, f"udp address must be (ip, port), not {addr!r}")
    ip, port = addr
    try:
        a = ipaddress.ip_address(ip)
    except ValueError:
        raise TailkitError(_errno.EINVAL, f"udp sendto: {ip!r}: expected an IPv4 or IPv6 "
                           "address (resolve names with Node.whois/status first)") from None
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise TailkitError(_errno.EINVAL, f"udp sendto: port {port!r}: expected 1..65535")
    limit = UDP_MAX_V4 if a.version == 4 else UDP_MAX_V6
    if len(data) > limit:
        raise TailkitError(_errno.EMSGSIZE, f"udp sendto: {len(data)} bytes; at most "
                           f"{UDP_MAX_V4} (IPv4) or {UDP_MAX_V6} (IPv6) cross the tailnet")
    # netstackd's UDP descriptor header (netstackd/README.md "UDP descriptors")
    return struct.pack("!BBH16s", a.version, 0, port, a.packed) + bytes(data)


def _unpack_udp(msg: bytes) -> Optional[Tuple[bytes, Tuple[str, int]]]:
    if len(msg) < UDP_HDR_LEN:
        return None
    fam, _flags, port, raw = struct.unpack("!BBH16s", msg[:UDP_HDR_LEN])
    if fam == 4:
        ip = str(ipaddress.IPv4Address(raw[:4]))
    elif fam == 6:
        ip = str(ipaddress.IPv6Address(raw))
    else:
        return None
    return msg[UDP_HDR_LEN:], (ip, port)


class UDPSocket(_Closing):
    """A UDP port on the node's addresses: one sendto is one datagram,
    one recvfrom returns one datagram, boundaries kept.  .sock is the
    underlying socket.socket (AF_UNIX SOCK_SEQPACKET; each message carries
    a 20-byte address header, which these methods add and strip)."""

    def __init__(self, fd: int, port: int):
        self.sock = socket.socket(fileno=fd)
        self.sock.setblocking(True)
        self.port = port

    def fileno(self) -> int:
        return self.sock.fileno()

    def settimeout(self, t: Optional[float]) -> None:
        self.sock.settimeout(t)

    def setblocking(self, flag: bool) -> None:
        self.sock.setblocking(flag)

    def sendto(self, data: bytes, addr: Tuple[str, int]) -> int:
        self.sock.send(_pack_udp(data, addr))
        return len(data)

    def recvfrom(self, bufsize: int = 65535) -> Tuple[bytes, Tuple[str, int]]:
        """One datagram (truncated to bufsize, as recvfrom does) and its
        sender (ip, port)."""
        while True:
            msg = self.sock.recv(bufsize + UDP_HDR_LEN)
            if not msg:
                raise TailkitError(_errno.ECONNRESET, "udp recvfrom: closed: the node stopped")
            got = _unpack_udp(msg)
            if got:
                return got

    async def sendto_async(self, data: bytes, addr: Tuple[str, int]) -> int:
        self.sock.setblocking(False)
        await asyncio.get_running_loop().sock_sendall(self.sock, _pack_udp(data, addr))
        return len(data)

    async def recvfrom_async(self, bufsize: int = 65535) -> Tuple[bytes, Tuple[str, int]]:
        self.sock.setblocking(False)
        loop = asyncio.get_running_loop()
        while True:
            msg = await loop.sock_recv(self.sock, bufsize + UDP_HDR_LEN)
            if not msg:
                raise TailkitError(_errno.ECONNRESET, "udp recvfrom: closed: the node stopped")
            got = _unpack_udp(msg)
            if got:
                return got

    def close(self) -> None:
        self.sock.close()

    def __repr__(self) -> str:
        return f"<tailkit.UDPSocket port={self.port} fd={self.sock.fileno()}>"


def _split_addr(addr: str, port: Optional[int]) -> Tuple[str, int]:
    if port is not None:
        return addr, port
    if not isinstance(addr, str):
        raise TypeError(f"dial address must be a str, not {type(addr).__name__}")
    if addr.startswith("["):
        host, sep, rest = addr[1:].partition("]:")
    else:
        host, sep, rest = addr.rpartition(":")
    if not sep or not rest.isdigit() or not host:
        raise TailkitError(_errno.EINVAL, f"dial: {addr!r}: expected host:port, "
                           "[v6]:port, or dial(host, port)")
    return host, int(rest)


class Node(_Closing):
    """A tailnet node in this process (one per process: libtailkit's
    netstack keeps global state).

        with Node(hostname="app", authkey=key, state_dir="/var/lib/app/tk") as n:
            n.up(timeout=60)
            lst = n.listen(8080)
            sock, peer = lst.accept()

    Settings left as None are not passed (libtailkit's defaults): authkey
    falls back to $TS_AUTHKEY, control_url to $TS_CONTROL_URL and then
    Tailscale's control server.  Extra settings of tailkit_set (e.g.
    advertise_tags, ca_file, derp_plain_http, log_level) go in **settings.
    """

    def __init__(self, hostname: Optional[str] = None, authkey: Optional[str] = None,
                 control_url: Optional[str] = None, state_dir: Optional[str] = None,
                 ephemeral: bool = False, *, logfd: Optional[int] = None,
                 **settings: Union[str, bool, int, None]):
        lib = _lib.lib()
        h = ctypes.c_void_p()
        _check(lib.tailkit_new(ctypes.byref(h)), "tailkit_new")
        self._tk: Optional[int] = h.value
        self._mu = threading.Lock()  # start()
        self._cv = threading.Condition()  # _busy, _closing
        self._busy = 0
        self._closing = False
        self._started = False
        try:
            authkey = authkey or os.environ.get("TS_AUTHKEY") or os.environ.get("TS_AUTH_KEY")
            control_url = (control_url or os.environ.get("TS_CONTROL_URL")
                           or DEFAULT_CONTROL_URL)
            all_settings: Dict[str, Union[str, bool, int, None]] = {
                "hostname": hostname, "authkey": authkey, "control_url": control_url,
                "state_dir": state_dir, "ephemeral": bool(ephemeral)}
            all_settings.update(settings)
            for k, v in all_settings.items():
                if v is not None:
                    self.set(k, v)
            if logfd is not None:
                _check(self._call("tailkit_set_logfd", logfd), "set_logfd")
        except BaseException:
            self.close()
            raise

    def _call(self, name: str, *args: Any) -> Any:
        """lib.name(tk, *args), counted: close() frees the node only once
        no call is inside libtailkit (tailkit.h: every call on tk must have
        returned before tailkit_free)."""
        with self._cv:
            if self._tk is None or self._closing:
                raise TailkitError(_errno.EBADF, "the node is closed")
            self._busy += 1
            tk = self._tk
        try:
            return getattr(_lib.lib(), name)(tk, *args)
        finally:
            with self._cv:
                self._busy -= 1
                if self._busy == 0:
                    self._cv.notify_all()

    def set(self, key: str, value: Union[str, bool, int, None]) -> None:
        """tailkit_set (before start): booleans become "1"/"0"."""
        if isinstance(value, bool):
            value = "1" if value else "0"
        elif isinstance(value, int):
            value = str(value)
        elif value is not None and not isinstance(value, str):
            raise TypeError(f"setting {key!r}: expected str, bool, int or None, "
                            f"not {type(value).__name__}")
        _check(self._call("tailkit_set", key.encode(),
                                      None if value is None else value.encode()), key)

    def start(self) -> None:
        """Starts the node's threads (no-op if started already)."""
        with self._mu:
            if self._started:
                return
            _check(self._call("tailkit_start"), "start")
            self._started = True

    def up(self, timeout: Optional[float] = 60.0) -> List[str]:
        """Starts the node if needed and waits until it is Running and has
        its addresses; returns them.  TailkitError(ETIMEDOUT) names the
        state (and the login URL when one is needed)."""
        dl = _deadline(timeout)
        self.start()
        while True:  # in slices, so Ctrl-C and close() from a thread work
            left = None if dl is None else max(0.0, dl - time.monotonic())
            ms = 500 if left is None else int(min(left, 0.5) * 1000)
            rv = self._call("tailkit_wait_running", ms)
            if rv == 0:
                ips = self.ips()
                if ips:
                    return ips
                time.sleep(0.05)
            elif rv != -_errno.ETIMEDOUT:
                raise _fail(rv, "up")
            if dl is not None and time.monotonic() >= dl:
                if rv == 0:
                    raise TailkitError(_errno.ETIMEDOUT, f"up: Running but no address "
                                       f"after {timeout} s")
                # C's message counts only the last slice: keep its "(state
                # ...; log in at URL)" part
                msg = _lib.errmsg()
                why = msg[msg.find("(state"):] if "(state" in msg else f"(state {self.state()})"
                raise TailkitError(_errno.ETIMEDOUT, f"up: not running after {timeout} s {why}")

    def stop(self) -> None:
        """Stops the node: listeners see end-of-file, connections close
        from the node's side (close your sockets too)."""
        _check(self._call("tailkit_stop"), "stop")

    def close(self) -> None:
        """Stops and frees the node (idempotent; safe while other threads
        are in up() or other calls: they end with an error)."""
        with self._cv:
            if self._tk is None or self._closing:
                return
            self._closing = True
            tk = self._tk
        lib = _lib.lib()
        lib.tailkit_stop(tk)  # cancels waits elsewhere; fails if never started
        with self._cv:
            while self._busy:
                self._cv.wait()
            self._tk = None
        lib.tailkit_free(tk)

    def state(self) -> str:
        """"NoState", "NeedsLogin", "NeedsMachineAuth", "Starting",
        "Running" or "Stopped"."""
        lib = _lib.lib()
        return lib.tailkit_state_name(_check(self._call("tailkit_state"), "state")).decode()

    def _text(self, fn: str, what: str, size: int) -> str:
        while True:
            buf = ctypes.create_string_buffer(size)
            rv = self._call(fn, buf, size)
            if rv == -_errno.ERANGE and size < (64 << 20):
                size *= 4
                continue
            _check(rv, what)
            return buf.value.decode(errors="replace")

    def ips(self) -> List[str]:
        """The node's tailnet addresses ([] before the first netmap)."""
        s = self._text("tailkit_ips", "ips", 256)
        return [x for x in s.split(",") if x]

    def status(self) -> Dict[str, Any]:
        """ipnstate.Status as a dict (Go's /localapi/v0/status shape:
        BackendState, Self, Peer, User, TailscaleIPs, ...)."""
        return json.loads(self._text("tailkit_status_json", "status", 64 << 10))

    def whois(self, addr: str) -> Optional[Dict[str, Any]]:
        """Who has this tailnet address ("100.64.0.2", "100.64.0.2:80",
        "[fd7a:...]:80"): {"Node": the peer's status entry, "UserProfile":
        its user} like Go's LocalAPI whois, from the current netmap; None
        when no node has it."""
        if not isinstance(addr, str):
            raise TypeError(f"whois address must be a str, not {type(addr).__name__}")
        host = addr
        if addr.startswith("["):
            host = addr[1:].split("]", 1)[0]
        elif addr.count(":") == 1:
            host = addr.split(":", 1)[0]
        try:
            ip = str(ipaddress.ip_address(host))
        except ValueError:
            raise TailkitError(_errno.EINVAL, f"whois: {addr!r}: expected an IP address "
                               "or ip:port") from None
        st = self.status()
        nodes = list((st.get("Peer") or {}).values())
        if st.get("Self"):
            nodes.append(st["Self"])
        for n in nodes:
            if ip in (n.get("TailscaleIPs") or []):
                user = (st.get("User") or {}).get(str(n.get("UserID")), {})
                return {"Node": n, "UserProfile": user}
        return None

    def event_fd(self) -> int:
        """Readable while events are queued (for select/epoll/asyncio);
        drain it with events()."""
        return _check(self._call("tailkit_event_fd"), "event_fd")

    def events(self) -> Iterator[Event]:
        """The queued events, without blocking."""
        lib = _lib.lib()
        ev = _lib.EventStruct()
        while _check(self._call("tailkit_next_event", ctypes.byref(ev)), "next_event") == 1:
            yield Event(_EVENT_NAMES.get(ev.type, str(ev.type)),
                        lib.tailkit_state_name(ev.state).decode(),
                        ev.text.decode(errors="replace"))

    def listen(self, port: int) -> Listener:
        """A TCP listener on port (1..65535) of every node address."""
        return Listener(self, _check(self._call("tailkit_listen", port),
                                     f"listen on port {port}"), port)

    def _dial_start(self, addr: str, port: Optional[int]) -> Tuple[int, str]:
        host, port = _split_addr(addr, port)
        what = f"dial {host}:{port}"
        fd = _check(self._call("tailkit_dial_start", host.encode(), port), what)
        _set_nonblock(fd)
        return fd, what

    def _dial_finish(self, pending: List[int], what: str
                     ) -> Optional[Tuple[socket.socket, Peer]]:
        """None while the dial runs; else the pending descriptor was
        consumed by tailkit_dial_finish (pending[0] = -1 then)."""
        p = _lib.PeerStruct()
        c = _lib.lib().tailkit_dial_finish(pending[0], ctypes.byref(p))
        if c == -_errno.EAGAIN:
            return None
        pending[0] = -1
        _check(c, what)
        return _conn_socket(c), Peer._from(p)

    def dial(self, addr: str, port: Optional[int] = None,
             timeout: Optional[float] = 30.0) -> Tuple[socket.socket, Peer]:
        """A TCP connection: dial("host:port") or dial("host", port); host
        a tailnet name (MagicDNS, short or FQDN) or an IP.  Returns
        (socket.socket, Peer)."""
        dl = _deadline(timeout)  # before a descriptor exists
        fd, what = self._dial_start(addr, port)
        pending = [fd]
        try:
            while True:
                got = self._dial_finish(pending, what)
                if got:
                    return got
                _wait_readable(pending[0], dl, what)
        finally:
            if pending[0] >= 0:  # timed out or interrupted while pending
                os.close(pending[0])

    async def dial_async(self, addr: str, port: Optional[int] = None
                         ) -> Tuple[socket.socket, Peer]:
        """dial() for asyncio; the socket is non-blocking."""
        fd, what = self._dial_start(addr, port)
        pending = [fd]
        try:
            while True:
                got = self._dial_finish(pending, what)
                if got:
                    got[0].setblocking(False)
                    return got
                await _readable_async(pending[0])
        finally:
            if pending[0] >= 0:  # cancelled while pending
                os.close(pending[0])

    def udp(self, port: int = 0) -> UDPSocket:
        """A UDP socket bound to port (0: an ephemeral one; .port says
        which) on the node's addresses."""
        bound = ctypes.c_int(0)
        fd = _check(self._call("tailkit_udp_bind", port, ctypes.byref(bound)),
                    f"udp bind port {port}")
        return UDPSocket(fd, bound.value)

    def __repr__(self) -> str:
        return f"<tailkit.Node {'closed' if self._tk is None else self.state()}>"
