"""Node prefs (ctrld owns them, ctrld.db keeps them) applied live in
tailkitd, against Go: a Go tsnet peer on testcontrol that can or cannot
reach the node, sees its new host name; Go's own `tailscale` CLI running
`down` and `set` against tailkitd's LocalAPI."""

import http.client
import json
import os
import socket
import subprocess
import time

from conftest import binary, http_json, wait_for
from test_derp_node import v4_of
from test_node_derp import TKNS, go_ip, need, usnode  # noqa: F401 (fixture)
from test_node_magicdns import api_bind_udp, ask, query
from test_tailkitd import TAILKIT, cli, tailkit


class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("local-tailscaled.sock", timeout=15)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(15)
        self.sock.connect(self.path)


def localapi(node, method, path, body=None):
    c = _UnixHTTP(node.socket)
    c.request(method, path, body=json.dumps(body) if body is not None else None)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, (json.loads(data) if data.strip() else None)


def state(node):
    try:
        st, j = localapi(node, "GET", "/localapi/v0/status?peers=false")
    except OSError:     # tailkitd not listening yet
        return None
    return j.get("BackendState") if st == 200 else None


def wait_state(node, want, timeout=60):
    return wait_for(lambda: state(node) == want, timeout, f"state {want}")


def go_fetch(info, me, timeout_ms=20000):
    """go1 fetches the page the node serves on :8080 (through netstackd)."""
    return http_json("POST", info["admin_url"] + "/dial",
                     {"from": "go1", "network": "http", "addr": f"{me}:8080",
                      "timeout_ms": timeout_ms}, timeout=timeout_ms / 1000 + 20)


def go_refused(info, me):
    """go1's fetches fail (wgd applies what ctrld published asynchronously:
    the first may still pass), and keep failing."""
    wait_for(lambda: not go_fetch(info, me, 5000).get("ok"), 30, "go1 refused")
    res = go_fetch(info, me, 5000)
    assert not res.get("ok"), res


def node_fetch(node, ip):
    """The node fetches go1's page (tsnet serves its name on :80)."""
    r = subprocess.run([need(TKNS), "--api", node.api, "dial", ip, "80"],
                       input="GET / HTTP/1.0\r\nHost: go1\r\n\r\n",
                       capture_output=True, text=True, timeout=40)
    return r.returncode == 0 and "200 OK" in r.stdout


def serve(node, count=50):
    wait_for(lambda: os.path.exists(node.api), 20, "netstackd's API socket")
    srv = subprocess.Popen([need(TKNS), "--api", node.api, "listen", "8080", "http",
                            str(count)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    assert srv.stdout.readline().startswith("listening"), srv.stderr.read()
    return srv


def running_node(usnode, info, hostname):  # noqa: F811
    tk = usnode(info["control_url"], info["auth_key"], hostname=hostname, mode="tailkitd")
    wait_state(tk, "Running")
    nm = wait_for(lambda: (lambda m: m if m and m.get("peers") and
                           m.get("self", {}).get("addresses") else None)(tk.netmap()),
                  60, "netmap with self and go1")
    me = v4_of(nm["self"])
    return tk, nm, me


def tailnet(derper, interop_peer):
    """testcontrol with one Go node, both sides on Go's derper (the path
    test_node_derp proves for netstackd nodes)."""
    d = derper()
    return interop_peer(1, "-derp", f"127.0.0.1:{d['port']}", "-derp-stun-port",
                        str(d["stun_port"]), "-derp-http", "-derp-only")


def go_sees_hostname(info, want):
    st = http_json("GET", info["admin_url"] + "/nodes/go1/netmap")
    return any(p.get("HostName") == want for p in (st.get("Peer") or {}).values())


def stop(tk):
    rcs = tk.stop()
    assert all(v == 0 for v in rcs.values()), rcs


def test_prefs_down_up_restart(derper, interop_peer, usnode):  # noqa: F811
    """tailkit down: Stopped, no peers, go1 cannot reach the node; kept
    across a tailkitd restart; tailkit up: Running and reachable again;
    the host name set live reaches go1 and survives a restart."""
    info = tailnet(derper, interop_peer)
    tk, nm, me = running_node(usnode, info, "tkpf")
    srv = serve(tk)
    try:
        res = wait_for(lambda: (lambda x: x if x.get("ok") else None)(go_fetch(info, me)),
                       90, "go1 fetching the node's page")
        assert "go1" in res["reply"], res
        r = tailkit(tk, "down")
        assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r
        wait_state(tk, "Stopped", 10)
        wait_for(lambda: not (tk.netmap() or {}).get("peers"), 10, "no peers published")
        st, p = localapi(tk, "GET", "/localapi/v0/prefs")
        assert st == 200 and p["WantRunning"] is False and p["Hostname"] == "tkpf", p
        go_refused(info, me)
        r = tailkit(tk, "down")
        assert r.returncode == 0 and "already stopped" in r.stderr, r
        r = tailkit(tk, "status")
        assert r.returncode == 1 and "stopped" in r.stdout, r
    finally:
        srv.kill()
        srv.wait(timeout=5)
    # a tailkitd restart: still down (not NeedsLogin), no map poll
    stop(tk)
    tk = usnode(info["control_url"], info["auth_key"], hostname="tkpf", mode="tailkitd")
    wait_state(tk, "Stopped", 30)
    time.sleep(3)
    assert state(tk) == "Stopped" and not (tk.netmap() or {}).get("peers")
    # up: Running, go1 reaches it again
    r = tailkit(tk, "up", "--timeout", "60")
    assert r.returncode == 0, r.stdout + r.stderr
    assert state(tk) == "Running"
    srv = serve(tk)
    try:
        wait_for(lambda: go_fetch(info, me).get("ok"), 90, "go1 reaching the node after up")
        # the host name, live: go1 sees it (Hostinfo in a lite map update)
        r = tailkit(tk, "set", "--hostname=tkpf-renamed")
        assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r
        wait_for(lambda: go_sees_hostname(info, "tkpf-renamed"), 30,
                 "go1 seeing the new host name")
    finally:
        srv.kill()
        srv.wait(timeout=5)
    # kept over the command line's --hostname tkpf on restart
    stop(tk)
    tk = usnode(info["control_url"], info["auth_key"], hostname="tkpf", mode="tailkitd")
    wait_state(tk, "Running")
    st, p = localapi(tk, "GET", "/localapi/v0/prefs")
    assert p["Hostname"] == "tkpf-renamed" and p["WantRunning"] is True, p
    time.sleep(2)
    assert go_sees_hostname(info, "tkpf-renamed")
    # mistakes get a clear error saying what is accepted
    r = tailkit(tk, "set", "--exit-node=100.64.0.9")
    assert r.returncode == 2 and "--hostname" in r.stderr and "--accept-dns" in r.stderr, r
    r = tailkit(tk, "set")
    assert r.returncode == 2 and "no flags" in r.stderr, r
    r = tailkit(tk, "set", "--hostname=bad_name!")
    assert r.returncode == 1 and "Hostname" in r.stderr, r
    r = tailkit(tk, "set", "--accept-dns=maybe")
    assert r.returncode == 2 and "true or false" in r.stderr, r
    r = tailkit(tk, "up", "--login-server=http://127.0.0.1:9")
    assert r.returncode == 1 and "--control-url" in r.stderr, r
    r = tailkit(tk, "up", "--exit-node=x")
    assert r.returncode == 2 and "--advertise-tags" in r.stderr, r
    st, j = localapi(tk, "PATCH", "/localapi/v0/prefs",
                     {"ExitNodeIPSet": True, "ExitNodeIP": "100.64.0.9"})
    assert st == 400 and "ExitNodeIP" in j["error"], j
    st, j = localapi(tk, "PATCH", "/localapi/v0/prefs",
                     {"AdvertiseServicesSet": True, "AdvertiseServices": ["svc:a"]})
    assert st == 400 and "AdvertiseServices" in j["error"], j
    st, j = localapi(tk, "PATCH", "/localapi/v0/prefs",
                     {"ControlURLSet": True, "ControlURL": "http://127.0.0.1:9"})
    assert st == 400 and "--control-url" in j["error"], j
    assert state(tk) == "Running"


def test_prefs_go_cli(derper, interop_peer, usnode):  # noqa: F811
    """Go's `tailscale` CLI (v1.102.3): down, set --hostname, set with a
    pref tailkit does not do, against tailkitd's LocalAPI."""
    info = tailnet(derper, interop_peer)
    tk, nm, me = running_node(usnode, info, "tkgo")
    r = cli(tk, "set", "--hostname=tkgo-set")
    assert r.returncode == 0, r.stdout + r.stderr
    wait_for(lambda: go_sees_hostname(info, "tkgo-set"), 30, "go1 seeing the name")
    r = cli(tk, "debug", "prefs")
    assert r.returncode == 0 and json.loads(r.stdout)["Hostname"] == "tkgo-set", r
    # Go's `up` on a running node only edits the prefs (its justEditMP);
    # it wants every non-default setting mentioned, as against tailscaled
    r = cli(tk, "up", "--hostname=tkgo-up")
    assert r.returncode != 0 and "--netfilter-mode=off" in r.stderr, r.stderr
    r = cli(tk, "up", "--hostname=tkgo-up", f"--login-server={info['control_url']}",
            "--netfilter-mode=off")
    assert r.returncode == 0, r.stdout + r.stderr
    wait_for(lambda: go_sees_hostname(info, "tkgo-up"), 30, "go1 seeing the up name")
    # tags go to control at once as Hostinfo.RequestTags (control decides)
    r = tailkit(tk, "set", "--advertise-tags=web,tag:db")
    assert r.returncode == 0 and r.stdout == "", r

    def request_tags():
        for n in http_json("GET", info["admin_url"] + "/nodes").get("control_nodes") or []:
            if (n.get("Hostinfo") or {}).get("Hostname") == "tkgo-up":
                return n["Hostinfo"].get("RequestTags")
    wait_for(lambda: request_tags() == ["tag:web", "tag:db"], 30,
             "control seeing the requested tags")
    r = tailkit(tk, "set", "--advertise-tags=tag:Bad!")
    assert r.returncode == 1 and "AdvertiseTags" in r.stderr, r
    r = cli(tk, "set", "--accept-routes")
    assert r.returncode != 0 and "RouteAll" in r.stderr, r
    r = cli(tk, "set", "--ssh")
    assert r.returncode != 0 and "RunSSH" in r.stderr, r
    r = cli(tk, "down")
    assert r.returncode == 0, r.stdout + r.stderr
    wait_state(tk, "Stopped", 10)
    st = json.loads(cli(tk, "status", "--json").stdout)
    assert st["BackendState"] == "Stopped" and not st.get("Peer"), st
    r = cli(tk, "down")
    assert r.returncode == 0 and "already stopped" in r.stderr, r
    # Go's `up` on a Stopped node needs the IPN bus (watch-ipn-bus): not
    # served, so it fails; tailkit's own `up` brings the node back
    r = cli(tk, "up", f"--login-server={info['control_url']}", "--netfilter-mode=off",
            "--hostname=tkgo-up", "--timeout=10s")
    assert r.returncode != 0 and state(tk) == "Stopped", r.stdout + r.stderr
    r = tailkit(tk, "up", "--timeout", "60")
    assert r.returncode == 0, r.stdout + r.stderr
    wait_for(lambda: json.loads(cli(tk, "status", "--json").stdout).get("Peer"), 30,
             "peers back")


def test_prefs_shields_up_and_accept_dns(derper, interop_peer, usnode):  # noqa: F811
    """shields-up: go1's dial to the node fails while the node still dials
    go1; accept-dns=false: the published DNS config loses its resolvers,
    routes and search domains and keeps the names, so netstackd's quad-100
    still answers go1 and control's extra record but forwards nothing."""
    info = tailnet(derper, interop_peer)
    tk, nm, me = running_node(usnode, info, "tksh")
    go1 = go_ip(info, "go1")
    srv = serve(tk)
    try:
        wait_for(lambda: go_fetch(info, me).get("ok"), 90, "go1 reaching the node")
        r = tailkit(tk, "set", "--shields-up")
        assert r.returncode == 0, r
        nmv = wait_for(lambda: (lambda m: m if m.get("packet_filter", {}).get("received")
                                and not m["packet_filter"].get("rules") else None)(
                                    tk.netmap() or {}), 10, "deny-all filter")
        assert nmv.get("peers"), nmv        # the peers stay
        go_refused(info, me)
        assert wait_for(lambda: node_fetch(tk, go1), 30, "the node fetching go1's page")
        r = tailkit(tk, "set", "--shields-up=false")
        assert r.returncode == 0, r
        wait_for(lambda: go_fetch(info, me).get("ok"), 60, "go1 reaching the node again")
    finally:
        srv.kill()
        srv.wait(timeout=5)
    # DNS: control sends resolvers, search domains, a route and a record
    http_json("POST", info["admin_url"] + "/rawmap", {
        "node_key": "nodekey:" + nm["self"]["key"], "map": {"DNSConfig": {
            "Resolvers": [{"Addr": "192.0.2.53"}], "Domains": ["corp.test"],
            "Routes": {"corp.test.": [{"Addr": "192.0.2.54"}]},
            "ExtraRecords": [{"Name": "db.corp.test.", "Type": "A",
                              "Value": "100.64.9.9"}], "Proxied": True}}})
    dns = wait_for(lambda: (tk.netmap() or {}).get("dns_config", {}).get("resolvers") and
                   tk.netmap()["dns_config"], 30, "the DNS config with resolvers")
    assert dns["domains"] == ["corp.test"] and dns["routes"], dns
    # quad-100 through netstackd: www.corp.test goes to the route's resolver
    udp, ctl = api_bind_udp(tk.api)
    hdr = b"\x04\x00\x00\x35" + socket.inet_aton("100.100.100.100") + b"\x00" * 12

    def fwd():
        return int(tk.counters("netstackd").get("dns_forwarded", 0))
    f0 = fwd()
    udp.send(hdr + query("www.corp.test", 1, 41))
    wait_for(lambda: fwd() > f0, 10, "www.corp.test forwarded")
    r = tailkit(tk, "set", "--accept-dns=false")
    assert r.returncode == 0, r
    dns = wait_for(lambda: (lambda d: d if not d.get("resolvers") else None)(
        (tk.netmap() or {}).get("dns_config", {})), 10, "no resolvers")
    assert not dns.get("domains") and not dns.get("routes"), dns
    assert dns["extra_records"][0]["name"] == "db.corp.test.", dns
    # names still answered, nothing forwarded
    def servfail():
        # netstackd applies the new DNS config a moment after ctrld
        # publishes it: a query still forwarded then may go unanswered
        try:
            return ask(udp, "www.corp.test", 1, 42)[0] == 2
        except AssertionError:
            return False
    wait_for(servfail, 40, "www.corp.test not forwarded (SERVFAIL)")
    f1 = fwd()
    rc, an = ask(udp, "go1", 1, 43)
    assert rc == 0 and (1, socket.inet_aton(go1)) in an, an
    rc, an = ask(udp, "db.corp.test", 1, 44)
    assert rc == 0 and (1, socket.inet_aton("100.64.9.9")) in an, an
    assert fwd() == f1
    udp.close()
    ctl.close()
    st, p = localapi(tk, "GET", "/localapi/v0/prefs")
    assert p["CorpDNS"] is False and p["ShieldsUp"] is False, p
    r = tailkit(tk, "set", "--accept-dns")
    assert r.returncode == 0, r
    wait_for(lambda: (tk.netmap() or {}).get("dns_config", {}).get("resolvers"), 10,
             "resolvers back")
    assert TAILKIT and binary("tailscale")
