"""Finding and loading libtailkit.so; the ctypes prototypes of tailkit.h.

Search order (the first that loads wins; library_path() says which):
1. $TAILKIT_LIB: the path of libtailkit.so (or .so.0);
2. pkg-config: `pkg-config --variable=libdir tailkit` (an installed prefix,
   PKG_CONFIG_PATH honoured);
3. ctypes.util.find_library("tailkit") (the dynamic linker's cache,
   LD_LIBRARY_PATH);
4. the build tree of the checkout the package came from
   (<repo>/build/tools/embed/libtailkit.so.0).
"""

import ctypes
import ctypes.util
import os
import shutil
import subprocess
from typing import List, Optional, Tuple

SONAME = "libtailkit.so.0"


class PeerStruct(ctypes.Structure):
    _fields_ = [
        ("remote_ip", ctypes.c_char * 48),
        ("remote_port", ctypes.c_int),
        ("local_ip", ctypes.c_char * 48),
        ("local_port", ctypes.c_int),
        ("node_id", ctypes.c_longlong),
        ("user_id", ctypes.c_longlong),
        ("node_name", ctypes.c_char * 256),
        ("user_login", ctypes.c_char * 256),
    ]


class EventStruct(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("state", ctypes.c_int),
        ("text", ctypes.c_char * 1024),
    ]


_P = ctypes.c_void_p
_I = ctypes.c_int
_S = ctypes.c_char_p
_PROTOS = {
    "tailkit_new": (_I, [ctypes.POINTER(_P)]),
    "tailkit_set": (_I, [_P, _S, _S]),
    "tailkit_set_logfd": (_I, [_P, _I]),
    "tailkit_start": (_I, [_P]),
    "tailkit_wait_running": (_I, [_P, _I]),
    "tailkit_stop": (_I, [_P]),
    "tailkit_free": (None, [_P]),
    "tailkit_errmsg": (_I, [ctypes.c_char_p, ctypes.c_size_t]),
    "tailkit_state": (_I, [_P]),
    "tailkit_state_name": (_S, [_I]),
    "tailkit_ips": (_I, [_P, ctypes.c_char_p, ctypes.c_size_t]),
    "tailkit_status_json": (_I, [_P, ctypes.c_char_p, ctypes.c_size_t]),
    "tailkit_event_fd": (_I, [_P]),
    "tailkit_next_event": (_I, [_P, ctypes.POINTER(EventStruct)]),
    "tailkit_listen": (_I, [_P, _I]),
    "tailkit_accept": (_I, [_I, ctypes.POINTER(PeerStruct)]),
    "tailkit_dial_start": (_I, [_P, _S, _I]),
    "tailkit_dial_finish": (_I, [_I, ctypes.POINTER(PeerStruct)]),
    "tailkit_udp_bind": (_I, [_P, _I, ctypes.POINTER(_I)]),
}


def _candidates() -> List[Tuple[str, str]]:
    """(how found, what to load) in search order."""
    out = []
    env = os.environ.get("TAILKIT_LIB")
    if env:
        out.append(("TAILKIT_LIB", env))
    if shutil.which("pkg-config"):
        r = subprocess.run(["pkg-config", "--variable=libdir", "tailkit"],
                           capture_output=True, text=True)
        if r.returncode == 0 and r.stdout.strip():
            out.append(("pkg-config", os.path.normpath(os.path.join(r.stdout.strip(), SONAME))))
    found = ctypes.util.find_library("tailkit")
    if found:
        out.append(("find_library", found))
    for repo in _repos():
        out.append(("build tree", os.path.join(repo, "build", "tools", "embed", SONAME)))
    return out


def _repos() -> List[str]:
    repos = []
    try:
        from . import _buildinfo  # written by the build backend
        if _buildinfo.REPO:
            repos.append(_buildinfo.REPO)
    except ImportError:
        pass
    # running from the checkout itself (bindings/python/tailkit)
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.normpath(os.path.join(here, "..", "..", ".."))
    if os.path.isdir(os.path.join(root, "tools", "embed")) and root not in repos:
        repos.append(root)
    return repos


_lib: Optional[ctypes.CDLL] = None
_path: Optional[str] = None


def lib() -> ctypes.CDLL:
    """libtailkit, loaded on first use (ImportError naming every place
    tried when it is nowhere)."""
    global _lib, _path
    if _lib is not None:
        return _lib
    tried = []
    for how, path in _candidates():
        try:
            dll = ctypes.CDLL(path)
        except OSError as e:
            tried.append(f"{how}: {path}: {e}")
            if how == "TAILKIT_LIB":
                break  # named explicitly: do not silently take another
            continue
        for name, (res, args) in _PROTOS.items():
            fn = getattr(dll, name)
            fn.restype, fn.argtypes = res, args
        _lib, _path = dll, path
        return dll
    raise ImportError("libtailkit not found; tried: " + ("; ".join(tried) or "nothing") +
                      " (set TAILKIT_LIB=/path/to/libtailkit.so.0, or install it with "
                      "`cmake --install build --prefix P` and set PKG_CONFIG_PATH)")


def library_path() -> str:
    """The libtailkit that was loaded (loads it if needed)."""
    lib()
    assert _path is not None
    return _path


def errmsg() -> str:
    buf = ctypes.create_string_buffer(1024)
    lib().tailkit_errmsg(buf, len(buf))
    return buf.value.decode(errors="replace")
