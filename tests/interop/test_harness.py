"""The harness's own tests: real Go counterparts talking to each other, no
tailkit code involved.  They prove the fixtures work before any tailkit test
leans on them."""

import json
import os
import shutil
import subprocess
import time

import pytest

import netns

from conftest import binary, http_json

pytestmark = pytest.mark.harness


def dial(admin, frm, network, addr, payload=""):
    return http_json("POST", admin + "/dial", {"from": frm, "network": network, "addr": addr,
                                               "payload": payload, "timeout_ms": 20000})


def node(info, name):
    return next(n for n in info["nodes"] if n["name"] == name)


def test_two_tsnet_nodes_through_testcontrol(interop_peer):
    info = interop_peer(2)
    assert info["control_url"].startswith("http://127.0.0.1:")
    assert info["auth_key"].startswith("tskey-auth-")
    assert len(info["nodes"]) == 2
    for n in info["nodes"]:
        assert n["node_key"].startswith("nodekey:") and len(n["node_key"]) == 8 + 64
        assert n["ips"][0].startswith("100.64.")
    go2 = node(info, "go2")
    admin = info["admin_url"]
    for ip in go2["ips"]:  # v4 and v6 tailnet addresses
        host = f"[{ip}]" if ":" in ip else ip
        r = dial(admin, "go1", "tcp", f"{host}:7", "tcp-echo-" + ip)
        assert r["ok"] and r["reply"] == "tcp-echo-" + ip, r
        r = dial(admin, "go1", "udp", f"{host}:7", "udp-echo-" + ip)
        assert r["ok"] and r["reply"] == "udp-echo-" + ip, r
    r = dial(admin, "go1", "http", f"{go2['ips'][0]}:80")
    assert r["ok"] and r["reply"] == "go2", r
    # control sees both nodes; a third joins live and is reachable
    nodes = http_json("GET", admin + "/nodes")
    assert len(nodes["control_nodes"]) == 2
    go3 = http_json("POST", admin + "/nodes", {"name": "go3"})
    r = dial(admin, "go1", "tcp", f"{go3['ips'][0]}:7", "hi go3")
    assert r["ok"] and r["reply"] == "hi go3", r
    # a dial to an address nobody has is refused (tsnet would otherwise use
    # the host network and leave loopback)
    r = http_json("POST", admin + "/dial", {"from": "go1", "network": "tcp",
                                            "addr": "100.64.99.99:7", "payload": "nobody",
                                            "timeout_ms": 2000})
    assert not r["ok"] and "not a tailnet address" in r["error"], r


ALLOW_ALL = [{"SrcIPs": ["*"], "DstPorts": [{"IP": "*", "Ports": {"First": 0, "Last": 65535}}]}]


def test_admin_filter_dns_knobs_and_remove(interop_peer):
    info = interop_peer(2)
    admin = info["admin_url"]
    go2 = node(info, "go2")
    ip2 = go2["ips"][0]
    r = dial(admin, "go1", "tcp", f"{ip2}:7", "before")
    assert r["ok"], r
    # a present-but-empty packet filter on go2 denies all inbound traffic
    # (tailcfg.PacketFilter is omitempty, so deny-all travels in PacketFilters)
    http_json("POST", admin + "/rawmap", {"node_key": go2["node_key"],
                                          "map": {"PacketFilters": {"*": None, "base": []}}})
    # the push reaches go2's map stream asynchronously: a dial right after it
    # may still get through, so wait (bounded) for the filter to take effect
    deadline = time.time() + 15
    while True:
        r = http_json("POST", admin + "/dial", {"from": "go1", "network": "tcp",
                                                "addr": f"{ip2}:7", "payload": "denied",
                                                "timeout_ms": 2000})
        if not r["ok"] or time.time() > deadline:
            break
        time.sleep(0.5)
    assert not r["ok"], r
    http_json("POST", admin + "/rawmap", {"node_key": go2["node_key"],
                                          "map": {"PacketFilters": {"*": None, "base": ALLOW_ALL}}})
    r = dial(admin, "go1", "tcp", f"{ip2}:7", "allowed-again")
    assert r["ok"] and r["reply"] == "allowed-again", r
    # a DNS config pushed to go2 is accepted on its map stream
    dns = {"Resolvers": [{"Addr": "192.0.2.53"}], "Domains": ["tailnet.test"]}
    assert http_json("POST", admin + "/rawmap", {"node_key": go2["node_key"],
                                                 "map": {"DNSConfig": dns}})["ok"]
    # knobs: DERP-only switches on and off without breaking traffic
    assert http_json("POST", admin + "/knobs", {"derp_only": True})["ok"]
    r = dial(admin, "go1", "udp", f"{ip2}:7", "knob")
    assert r["ok"], r
    http_json("POST", admin + "/knobs", {"derp_only": False})
    # removing go2 takes it out of control's view
    http_json("DELETE", admin + "/nodes/go2")
    deadline = time.time() + 30
    while time.time() < deadline:
        names = [n.get("name") or n.get("Name") for n in http_json("GET", admin + "/nodes")["nodes"]]
        if "go2" not in names:
            break
        time.sleep(0.5)
    assert "go2" not in names


def test_two_tsnet_nodes_through_derper_derp_only(derper, interop_peer):
    d = derper()
    info = interop_peer(2, "-derp", f"127.0.0.1:{d['port']}", "-derp-stun-port",
                        str(d["stun_port"]), "-derp-http", "-derp-only")
    admin = info["admin_url"]
    ip2 = node(info, "go2")["ips"][0]
    r = dial(admin, "go1", "tcp", f"{ip2}:7", "via-derper")
    assert r["ok"] and r["reply"] == "via-derper", r
    r = dial(admin, "go1", "udp", f"{ip2}:7", "udp-via-derper")
    assert r["ok"] and r["reply"] == "udp-via-derper", r
    st = http_json("GET", admin + "/nodes/go1/netmap")
    peer = next(p for p in st["Peer"].values() if p["HostName"] == "go2")
    assert not peer.get("CurAddr"), "DERP-only must not use a direct path"
    assert peer.get("Relay") == "test"


@pytest.mark.parametrize("tls", [False, True])
def test_go_derp_clients_through_derper(derper, tls):
    d = derper(tls=tls)
    env = dict(os.environ)
    if tls:
        env["SSL_CERT_FILE"] = d["ca"]  # trust the test's self-signed cert
    r = subprocess.run([binary("derpclient"), "-url", d["url"], "-n", "20"], env=env,
                       capture_output=True, text=True, timeout=60)
    res = json.loads(r.stdout)
    assert r.returncode == 0 and res["ok"], (res, r.stderr)
    assert res["received"] == {"a": 20, "b": 20}
    assert res["server_key"].startswith("nodekey:")


def test_derper_mesh_psk_starts(derper):
    d = derper(mesh_psk="ab" * 32)
    r = subprocess.run([binary("derpclient"), "-url", d["url"], "-n", "3"],
                       capture_output=True, text=True, timeout=60)
    assert json.loads(r.stdout)["ok"]
    assert "mesh" in d["proc"].tail().lower()


def test_headscale_registers_go_node(headscale, interop_peer):
    info = interop_peer(2, "-control", headscale["url"], "-authkey", headscale["auth_key"])
    assert all(n["ips"] for n in info["nodes"])
    listed = headscale["cli"]("nodes", "list")
    names = sorted(n.get("given_name") or n.get("name") for n in listed)
    assert names == ["go1", "go2"], listed
    keys = {n["node_key"] for n in listed}
    assert {n["node_key"] for n in info["nodes"]} <= keys
    # the two Go nodes reach each other through headscale's netmap
    ip2 = node(info, "go2")["ips"][0]
    r = dial(info["admin_url"], "go1", "tcp", f"{ip2}:7", "via-headscale")
    assert r["ok"] and r["reply"] == "via-headscale", r


def test_wireguard_go_peers_in_netns(topology, tmp_path):
    wg_go = shutil.which("wireguard-go")
    wg = shutil.which("wg")
    if not (wg_go and wg):
        pytest.fail("wireguard-go and wg are required: tools/setup.sh installs them")
    a, b = topology.host("a"), topology.host("b")
    topology.link(a, "10.99.0.1/24", b, "10.99.0.2/24")
    keys = {}
    for h in (a, b):
        priv = subprocess.run([wg, "genkey"], capture_output=True, text=True, check=True).stdout.strip()
        pub = subprocess.run([wg, "pubkey"], input=priv, capture_output=True, text=True,
                             check=True).stdout.strip()
        (tmp_path / f"{h.name}.key").write_text(priv + "\n")
        keys[h.name] = pub
    env = dict(os.environ, WG_PROCESS_FOREGROUND="1",
               WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD="1")
    for h, me, peer_ip, inner, peer_inner in ((a, "a", "10.99.0.2", "10.100.0.1", "10.100.0.2"),
                                              (b, "b", "10.99.0.1", "10.100.0.2", "10.100.0.1")):
        # UAPI sockets live in /var/run/wireguard, which namespaces share:
        # each host (and each concurrent run) needs its own interface name.
        dev = f"tkw{os.getpid()}{me}"
        h.popen(wg_go, "-f", dev, env=env)
        for _ in range(100):
            if h.run("ip", "link", "show", dev, check=False).returncode == 0 and \
               h.run(wg, "show", dev, check=False).returncode == 0:
                break
            time.sleep(0.1)
        other = "b" if me == "a" else "a"
        h.run(wg, "set", dev, "private-key", str(tmp_path / f"{me}.key"), "listen-port", "51820",
              "peer", keys[other], "allowed-ips", f"{peer_inner}/32",
              "endpoint", f"{peer_ip}:51820")
        h.run("ip", "addr", "add", f"{inner}/24", "dev", dev)
        h.run("ip", "link", "set", dev, "up")
    r = a.run("ping", "-c", "3", "-W", "2", "10.100.0.2", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    r = b.run("ping", "-c", "3", "-W", "2", "10.100.0.1", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    show = a.run(wg, "show", f"tkw{os.getpid()}a", "dump").stdout
    assert keys["b"] in show and "10.99.0.2:51820" in show


def test_netns_nat_box(topology):
    inside, box, outside = topology.host("in"), topology.host("nat"), topology.host("out")
    pub = topology.nat(inside, box, outside, mapping="eim")
    assert inside.run("ping", "-c", "1", "-W", "2", "10.98.2.2", check=False).returncode == 0
    # outside sees the NAT's address, not the inside one
    srv = outside.popen("python3", "-c",
                        "import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
                        "s.bind(('10.98.2.2',9999));s.settimeout(10);d,a=s.recvfrom(100);"
                        "print(a[0],flush=True)")
    time.sleep(0.3)
    inside.run("python3", "-c", "import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
                                "s.sendto(b'x',('10.98.2.2',9999))")
    out, _ = srv.communicate(timeout=15)
    assert out.strip() == pub
    # impairments: latency through tc netem where the kernel has it (else a
    # clear NetemUnavailable), loss through netem or the iptables fallback
    dev = outside.veths[0]
    if netns.netem_available():
        topology.netem(outside, dev, delay_ms=100)
        r = inside.run("ping", "-c", "1", "-W", "3", "10.98.2.2")
        rtt = float(r.stdout.split("time=")[1].split()[0])
        assert rtt >= 100, r.stdout
    else:
        with pytest.raises(netns.NetemUnavailable):
            topology.netem(outside, dev, delay_ms=100)
    topology.netem(outside, dev, loss_pct=100)
    r = inside.run("ping", "-c", "2", "-W", "1", "10.98.2.2", check=False)
    assert r.returncode != 0, r.stdout
