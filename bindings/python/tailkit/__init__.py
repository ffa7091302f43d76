"""tailkit: a tailnet node inside your Python program.

ctypes over libtailkit's native C API (tailkit.h): no Go runtime, no
threads of Python's; connections are real socket.socket objects (usable
with selectors and asyncio), UDP keeps datagram boundaries, every accepted
or dialled connection comes with the peer's identity.  See README.md.
"""

from ._lib import library_path
from ._node import (UDP_MAX_V4, UDP_MAX_V6, Event, Listener, Node, Peer, TailkitError,
                    UDPSocket)

__all__ = ["Node", "Listener", "UDPSocket", "Peer", "Event", "TailkitError",
           "library_path", "UDP_MAX_V4", "UDP_MAX_V6"]
__version__ = "0.1.0"
