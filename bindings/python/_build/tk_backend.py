"""A minimal PEP 517 build backend for the tailkit package (standard
library only): build_wheel zips tailkit/ with its dist-info; build_sdist
tars the source.  Why not setuptools: building a wheel with setuptools
< 70 needs the `wheel` package, which is not always installed, and pip's
build isolation would then download both.  This backend needs nothing.

The wheel also records where it was built from (tailkit/_buildinfo.py):
when libtailkit is neither named by TAILKIT_LIB nor installed, the
package looks in that checkout's build/ tree.
"""

import base64
import hashlib
import io
import os
import tarfile
import zipfile

NAME = "tailkit"
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _version():
    with open(os.path.join(HERE, "pyproject.toml")) as f:
        for line in f:
            if line.startswith("version"):
                return line.split("=", 1)[1].strip().strip('"')
    raise RuntimeError("pyproject.toml has no version")


def _metadata(version):
    with open(os.path.join(HERE, "README.md")) as f:
        readme = f.read()
    return (f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {version}\n"
            "Summary: A tailnet node inside your Python program (libtailkit over ctypes)\n"
            "License: BSD-2-Clause\nRequires-Python: >=3.8\n"
            "Description-Content-Type: text/markdown\n\n" + readme)


def _buildinfo():
    # bindings/python -> the repository root, if this is a checkout
    root = os.path.dirname(os.path.dirname(HERE))
    if not os.path.isdir(os.path.join(root, "tools", "embed")):
        root = None
    return ('"""Written by the build backend: the checkout the package was built from."""\n'
            f"REPO = {root!r}\n")


def _files():
    pkg = os.path.join(HERE, NAME)
    for name in sorted(os.listdir(pkg)):
        if name.endswith((".py", ".typed")) and name != "_buildinfo.py":
            with open(os.path.join(pkg, name), "rb") as f:
                yield f"{NAME}/{name}", f.read()
    yield f"{NAME}/_buildinfo.py", _buildinfo().encode()


def _record_line(path, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"{path},sha256={digest.decode()},{len(data)}"


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    version = _version()
    dist = f"{NAME}-{version}.dist-info"
    files = list(_files())
    files.append((f"{dist}/METADATA", _metadata(version).encode()))
    files.append((f"{dist}/WHEEL", b"Wheel-Version: 1.0\nGenerator: tk_backend\n"
                  b"Root-Is-Purelib: true\nTag: py3-none-any\n"))
    record = [_record_line(p, d) for p, d in files] + [f"{dist}/RECORD,,"]
    files.append((f"{dist}/RECORD", ("\n".join(record) + "\n").encode()))
    wheel = f"{NAME}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel), "w",
                         zipfile.ZIP_DEFLATED) as z:
        for path, data in files:
            z.writestr(path, data)
    return wheel


def build_sdist(sdist_directory, config_settings=None):
    version = _version()
    base = f"{NAME}-{version}"
    out = f"{base}.tar.gz"
    with tarfile.open(os.path.join(sdist_directory, out), "w:gz") as t:
        for rel in ["pyproject.toml", "README.md", "_build/tk_backend.py"] + \
                [f"{NAME}/{n}" for n in sorted(os.listdir(os.path.join(HERE, NAME)))
                 if n.endswith((".py", ".typed")) and n != "_buildinfo.py"]:
            t.add(os.path.join(HERE, rel), arcname=f"{base}/{rel}")
        pkg = io.BytesIO(_metadata(version).encode())
        info = tarfile.TarInfo(f"{base}/PKG-INFO")
        info.size = len(pkg.getvalue())
        t.addfile(info, pkg)
    return out
