"""The Elixir binding (bindings/elixir, issue 14 part 5): its ExUnit tests
against a Go tsnet node (go1) on testcontrol over Go's derper.

The NIF is compiled by `mix compile` (offline: no Hex dependency) against
libtailkit in test_embed's scratch prefix (pkg-config), in a copy of the
project in the test's directory (the checkout stays clean); `mix test`
then runs test/tailkit_test.exs with the tailnet's coordinates in the
environment.  Skipped, with the reason, when elixir/mix is not installed
(tools/setup.sh installs Debian's elixir and erlang-dev).
"""

import os
import re
import shutil
import subprocess

import pytest

from test_embed import prefix, tailnet  # noqa: F401 (fixtures)

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.normpath(os.path.join(HERE, "..", ".."))
PROJECT = os.path.join(SRC, "bindings", "elixir")


def test_elixir_binding_exunit(prefix, tailnet, tmp_path):  # noqa: F811
    if not shutil.which("mix") or not shutil.which("elixir"):
        pytest.skip("elixir/mix not installed (apt-get install elixir erlang-dev; "
                    "tools/setup.sh does)")
    _, env = prefix
    if env.get("TK_EMBED_CFLAGS"):
        pytest.skip("the library is the ASan build: the BEAM cannot load it without "
                    "LD_PRELOAD of libasan (the C tests cover that build)")
    proj = tmp_path / "elixir"
    shutil.copytree(PROJECT, proj, ignore=shutil.ignore_patterns("_build", "deps", "priv"))
    env = dict(env, MIX_ENV="test", HEX_OFFLINE="1", MIX_HOME=str(tmp_path / "mixhome"),
               TK_CONTROL_URL=tailnet["control_url"], TK_AUTHKEY=tailnet["auth_key"],
               TK_ADMIN_URL=tailnet["admin_url"], TK_GO1_IP=tailnet["go1"],
               TK_STATE_DIR=str(tmp_path / "state"))
    r = subprocess.run(["mix", "compile"], cwd=proj, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "compiled priv/tailkit_nif.so against " + os.path.dirname(
        env["PKG_CONFIG_PATH"]) in r.stdout, r.stdout
    r = subprocess.run(["mix", "test", "--trace"], cwd=proj, env=env, capture_output=True,
                       text=True, timeout=600)
    print(r.stdout[-8000:], r.stderr[-4000:])
    assert r.returncode == 0, "mix test failed (output above)"
    m = re.search(r"(\d+) tests?, (\d+) failures?", r.stdout)
    assert m and int(m.group(1)) >= 8 and m.group(2) == "0", r.stdout[-2000:]
