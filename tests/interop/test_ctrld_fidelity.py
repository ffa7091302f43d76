"""ctrld behaves like Go's control client where the plain test servers never
look (issue 17, items 1, 2, 4-8): key expiry noticed locally and answered
with a new key and OldNodeKey, no registration on reconnect, HTTP 429 with
Retry-After, PopBrowserURL in the status, device approval, the login URL
behind a refused auth key, OldNodeKey across a restart, and peers expired
locally from KeyExpiry.  Knobs: interop-peer's POST /control on Tailscale's
testcontrol, and headscale's CLI."""

import os
import signal
import time

from test_ctrld import admin
from conftest import wait_for
from test_ctrld_daemon import Daemon, daemons, names  # noqa: F401 (fixture)

RUNNING, NEEDS_LOGIN, NEEDS_MACHINE_AUTH = 6, 2, 3


def until(pred, timeout=60, what="condition", last=lambda: None):
    try:
        return wait_for(pred, timeout, what)
    except AssertionError as e:
        raise AssertionError(f"{e}; status: {last()}") from None


def state(d):
    st = d.status()
    return st["state"] if st else None


def self_of(d):
    nm = d.netmap()
    return (nm or {}).get("body", {}).get("self", {})


def registers(info):
    return admin(info, "GET", "/control")["registers"]


def log(d):
    d.log.flush()
    return open(d.log.name).read()


def test_ctrld_self_key_expiry_noticed_locally(interop_peer, tmp_path, daemons):
    """testcontrol's expire-all knob only moves the self node's KeyExpiry into
    the past (no Expired flag) and answers NodeKeyExpired to registrations:
    ctrld notices from KeyExpiry and the clock, makes a new key and
    registers it with OldNodeKey, so once control stops refusing, the same
    node (same id and addresses) runs again under the new key."""
    info = interop_peer(1)
    d = Daemon(str(tmp_path), info["control_url"], info["auth_key"], hostname="tkexp")
    daemons.append(d)
    nm = d.wait(lambda n: names(n) == ["go1"], what="the Go peer")
    k1, id1, addrs1 = nm["self"]["key"], nm["self"]["id"], nm["self"]["addresses"]
    admin(info, "POST", "/control", {"expire_all": True})
    until(lambda: state(d) == NEEDS_LOGIN, what="NEEDS_LOGIN after local expiry",
          last=d.status)
    until(lambda: "NodeKeyExpired" in log(d) or "node key expired" in log(d),
          what="the server refusing the new key while all nodes are expired")
    admin(info, "POST", "/control", {"expire_all": False})
    nm = d.wait(lambda n: n.get("self", {}).get("key", k1) != k1, timeout=90,
                what="a new node key registered")
    until(lambda: state(d) == RUNNING, what="RUNNING with the new key", last=d.status)
    assert nm["self"]["id"] == id1 and nm["self"]["addresses"] == addrs1, nm["self"]


def test_ctrld_headscale_expired_while_stopped(headscale, tmp_path, daemons):
    """headscale expires the node while ctrld is stopped: at start the
    registration of the old key is answered NodeKeyExpired; ctrld makes a
    new key and registers it with OldNodeKey and its auth key, and runs."""
    hs = headscale
    d = Daemon(str(tmp_path), hs["control_url"], hs["auth_key"], hostname="tkstop")
    daemons.append(d)
    nm = d.wait(lambda n: n.get("self", {}).get("name", "").startswith("tkstop."),
                what="self")
    k1 = nm["self"]["key"]
    d.stop()
    hs["cli"]("nodes", "expire", "--identifier", str(nm["self"]["id"]))
    d.start()
    nm = d.wait(lambda n: n.get("self", {}).get("key", k1) != k1 and
                not n["self"].get("expired"), timeout=90, what="a renewed node key")
    until(lambda: state(d) == RUNNING, what="RUNNING", last=d.status)


def test_ctrld_no_register_on_reconnect(interop_peer, tmp_path, daemons):
    """Go registers once per login, then only repeats the map poll: a
    control restart costs a new session, not a registration.  (No Go node
    in this tailnet: testcontrol counts every node's registrations.)"""
    info = interop_peer(0)
    d = Daemon(str(tmp_path), info["control_url"], info["auth_key"], hostname="tkrc")
    daemons.append(d)
    d.wait(lambda n: n.get("self", {}).get("name", "").startswith("tkrc."), what="self")
    r0 = registers(info)
    assert r0 == 1, r0
    s0 = int(d.status()["counters"]["sessions"])
    for _ in range(2):
        admin(info, "POST", "/restart-control", {"down_ms": 500})
        until(lambda: int(d.status()["counters"]["sessions"]) > s0 and
              state(d) == RUNNING, what="a new session", last=d.status)
        s0 = int(d.status()["counters"]["sessions"])
    admin(info, "POST", "/nodes", {"name": "go2"})
    d.wait(lambda n: names(n) == ["go2"], what="the netmap after reconnects")
    assert registers(info) == r0 + 1, (r0, registers(info))   # go2's own


def test_ctrld_register_429_retry_after(interop_peer, tmp_path, daemons):
    """HTTP 429 to a registration: wait as Retry-After says (Go's
    parseRateLimitError), not the ordinary backoff."""
    info = interop_peer(0)
    admin(info, "POST", "/control", {"reject_registers": 2, "retry_after": "3"})
    t0 = time.time()
    d = Daemon(str(tmp_path), info["control_url"], info["auth_key"], hostname="tk429")
    daemons.append(d)
    until(lambda: state(d) == RUNNING, what="RUNNING after two 429s", last=d.status)
    took = time.time() - t0
    assert took >= 5.5, took                  # two waits of 3 s
    assert registers(info) == 3, registers(info)
    assert "rate limited" in log(d) and "retry after 3" in log(d), log(d)[-2000:]


def test_ctrld_pop_browser_url_in_status(interop_peer, tmp_path, daemons):
    """A PopBrowserURL (re-authentication, check mode) reaches the status
    and stays there; the node keeps running."""
    info = interop_peer(0)
    d = Daemon(str(tmp_path), info["control_url"], info["auth_key"], hostname="tkpop")
    daemons.append(d)
    nm = d.wait(lambda n: n.get("self", {}).get("name", "").startswith("tkpop."),
                what="self")
    url = "https://login.example.test/a/0123456789"
    admin(info, "POST", "/rawmap", {"node_key": "nodekey:" + nm["self"]["key"],
                                    "map": {"PopBrowserURL": url}})
    st = until(lambda: (lambda s: s if s and s.get("auth_url") == url else None)(d.status()),
               what="the PopBrowserURL in the status", last=d.status)
    assert st["state"] == RUNNING, st
    time.sleep(1.0)   # later keep-alives and messages do not clear it
    assert d.status().get("auth_url") == url, d.status()


def test_ctrld_needs_machine_auth(interop_peer, tmp_path, daemons):
    """A tailnet with device approval: MachineAuthorized false is
    NEEDS_MACHINE_AUTH, not RUNNING; approval makes it RUNNING."""
    info = interop_peer(0)
    admin(info, "POST", "/control", {"require_machine_auth": True})
    d = Daemon(str(tmp_path), info["control_url"], info["auth_key"], hostname="tkma")
    daemons.append(d)
    until(lambda: state(d) == NEEDS_MACHINE_AUTH, what="NEEDS_MACHINE_AUTH",
          last=d.status)
    time.sleep(1.0)
    assert state(d) == NEEDS_MACHINE_AUTH, d.status()
    key = self_of(d).get("key")
    assert key, d.netmap()
    admin(info, "POST", "/control", {"approve": "nodekey:" + key})
    until(lambda: state(d) == RUNNING, what="RUNNING after approval", last=d.status)


def test_ctrld_refused_auth_key_shows_login_url(headscale, tmp_path, daemons):
    """Registered with a one-off auth key, then deleted at the server: the
    key cannot register it again, so ctrld shows the login URL headscale
    gives (as Go does) instead of looping on the key's error."""
    hs = headscale
    users = hs["cli"]("users", "list")
    uid = str(users[0]["id"])
    once = hs["cli"]("preauthkeys", "create", "--user", uid, "--expiration", "1h")["key"]
    d = Daemon(str(tmp_path), hs["control_url"], once, hostname="tkonce")
    daemons.append(d)
    nm = d.wait(lambda n: n.get("self", {}).get("name", "").startswith("tkonce."),
                what="self")
    d.stop()
    hs["cli"]("nodes", "delete", "--identifier", str(nm["self"]["id"]), "--force")
    d.start()
    st = until(lambda: (lambda s: s if s and s.get("auth_url") else None)(d.status()),
               timeout=60, what="a login URL in the status", last=d.status)
    assert st["state"] == NEEDS_LOGIN, st
    assert "auth key" in log(d), log(d)[-2000:]


def test_ctrld_old_node_key_survives_restart(interop_peer, tmp_path, daemons):
    """A key rotation interrupted by a kill -9 before the new key registered:
    after the restart ctrld still sends OldNodeKey, so control keeps the
    same node (id and addresses) instead of making a new one."""
    info = interop_peer(0)
    d = Daemon(str(tmp_path), info["control_url"], info["auth_key"], hostname="tkold")
    daemons.append(d)
    nm = d.wait(lambda n: n.get("self", {}).get("name", "").startswith("tkold."),
                what="self")
    k1, id1 = nm["self"]["key"], nm["self"]["id"]
    admin(info, "POST", "/control", {"expire_all": True})
    until(lambda: "NodeKeyExpired" in log(d) or "node key expired" in log(d),
          what="a refused registration of the new key")
    d.stop(signal.SIGKILL)
    admin(info, "POST", "/control", {"expire_all": False})
    d.start()
    nm = d.wait(lambda n: n.get("self", {}).get("key", k1) != k1 and
                n["self"].get("name", "").startswith("tkold."), timeout=90,
                what="the new key registered after the restart")
    assert nm["self"]["id"] == id1, (id1, nm["self"])
    # testcontrol keeps the entries of keys it cloned the node for; all
    # are the one node
    nodes = admin(info, "GET", "/nodes")["control_nodes"]
    assert {n["ID"] for n in nodes if n.get("Name", "").startswith("tkold")} == {id1}, nodes


def test_ctrld_peer_key_expiry_local(interop_peer, tmp_path, daemons):
    """A peer whose KeyExpiry passes is expired locally (Go's
    flagExpiredPeers): Expired set, endpoints and home DERP cleared, with no
    message from control at that moment.  testcontrol's ControlTime is fixed
    in 2020, which puts the skew-corrected clock before Go's epoch: Go then
    skips local expiry, and so does ctrld; a ControlTime of now turns it
    on."""
    info = interop_peer(1)
    d = Daemon(str(tmp_path), info["control_url"], info["auth_key"], hostname="tkpx")
    daemons.append(d)
    nm = d.wait(lambda n: names(n) == ["go1"], what="the Go peer")
    go1 = nm["peers"][0]
    assert not go1.get("expired")
    at = int(time.time()) + 3
    admin(info, "POST", "/control", {"key_expiry": {"node_key": "nodekey:" + go1["key"],
                                                    "unix": at}})
    nm = d.wait(lambda n: n["peers"][0].get("key_expiry_unix") == at, what="KeyExpiry")
    assert not nm["peers"][0].get("expired"), nm["peers"][0]
    while time.time() < at + 2:
        time.sleep(0.2)
    assert not d.netmap()["body"]["peers"][0].get("expired")   # ControlTime 2020
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    admin(info, "POST", "/rawmap", {"node_key": "nodekey:" + nm["self"]["key"],
                                    "map": {"ControlTime": now}})
    nm = d.wait(lambda n: n["peers"][0].get("expired"), timeout=20,
                what="the peer expired locally")
    p = nm["peers"][0]
    assert not p.get("endpoints") and not p.get("home_derp"), p
    assert d.status()["state"] == RUNNING


def test_ctrld_control_dial_plan(interop_peer, tmp_path, daemons):
    """MapResponse.ControlDialPlan (item 9): the next ts2021 dial tries the
    plan's candidates instead of the URL's address; when none connects
    (testcontrol listens on 127.0.0.1 only, the candidate is 127.0.0.2) it
    falls back to the name, as controlhttp does."""
    info = interop_peer(0)
    d = Daemon(str(tmp_path), info["control_url"], info["auth_key"], hostname="tkdp")
    daemons.append(d)
    nm = d.wait(lambda n: n.get("self", {}).get("name", "").startswith("tkdp."), what="self")
    admin(info, "POST", "/rawmap", {"node_key": "nodekey:" + nm["self"]["key"], "map": {
        "ControlDialPlan": {"Candidates": [{"IP": "127.0.0.2", "DialTimeoutSec": 2}]}}})
    until(lambda: "control dial plan: 1 candidates" in log(d), what="the plan stored")
    s0 = int(d.status()["counters"]["sessions"])
    admin(info, "POST", "/restart-control", {"down_ms": 300})
    until(lambda: int(d.status()["counters"]["sessions"]) > s0 and state(d) == RUNNING,
          what="a new session after the plan's candidate failed", last=d.status)
    assert "no candidate connected" in log(d), log(d)[-2000:]
