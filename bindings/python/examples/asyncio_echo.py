"""asyncio_echo: a TCP and UDP echo server on the tailnet, in one asyncio
loop.  The node's connections are real socket objects, so asyncio's own
streams (asyncio.open_connection(sock=...)) and loop.sock_* calls work on
them; the node's event fd sits in the same loop (loop.add_reader).

    python3 asyncio_echo.py --state-dir DIR [--hostname NAME] [--port 7007]
        [--control-url URL] [--authkey KEY] [--dial HOST:PORT]

--authkey defaults to $TS_AUTHKEY, --control-url to $TS_CONTROL_URL;
TAILKIT_DERP_PLAIN_HTTP=1 for a plain-HTTP DERP server (tests).  --dial
first dials a tailnet echo service with dial_async and prints its reply.
SIGINT/SIGTERM end it cleanly.
"""

import argparse
import asyncio
import os
import signal

import tailkit


async def echo_tcp(sock, peer):
    reader, writer = await asyncio.open_connection(sock=sock)
    print(f"accept {peer.remote_ip} port {peer.remote_port} node {peer.node_name or '-'} "
          f"user {peer.user_login or '-'}", flush=True)
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def serve_tcp(listener):
    tasks = set()
    while True:
        sock, peer = await listener.accept_async()
        t = asyncio.create_task(echo_tcp(sock, peer))
        tasks.add(t)
        t.add_done_callback(tasks.discard)


async def serve_udp(udp):
    while True:
        data, addr = await udp.recvfrom_async(2048)
        print(f"udp {addr[0]} port {addr[1]} {len(data)} bytes", flush=True)
        await udp.sendto_async(data, addr)


async def dial_once(node, addr):
    try:
        sock, peer = await node.dial_async(addr)
    except tailkit.TailkitError as e:
        print(f"dial failed: {e}", flush=True)
        return
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(b"hello-asyncio")
    await writer.drain()
    reply = await reader.readexactly(len(b"hello-asyncio"))
    writer.close()
    print(f"dialed {peer.remote_ip} node {peer.node_name or '-'} reply {reply.decode()}",
          flush=True)


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--hostname", default="asyncio-echo")
    ap.add_argument("--port", type=int, default=7007)
    ap.add_argument("--control-url")
    ap.add_argument("--authkey")
    ap.add_argument("--dial", metavar="HOST:PORT")
    a = ap.parse_args()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with tailkit.Node(hostname=a.hostname, authkey=a.authkey, control_url=a.control_url,
                      state_dir=a.state_dir,
                      derp_plain_http=os.environ.get("TAILKIT_DERP_PLAIN_HTTP") == "1") as node:
        # state changes through the node's event fd, in this loop
        def on_events():
            for ev in node.events():
                if ev.type in ("state", "login_url"):
                    print(f"event {ev.type} {ev.text}", flush=True)
        loop.add_reader(node.event_fd(), on_events)
        node.start()
        # up() blocks: run it beside the loop
        ips = await loop.run_in_executor(None, node.up, 120)
        with node.listen(a.port) as listener, node.udp(a.port) as udp:
            print(f"listening on {','.join(ips)} port {a.port}", flush=True)
            tasks = [asyncio.create_task(serve_tcp(listener)),
                     asyncio.create_task(serve_udp(udp))]
            if a.dial:
                tasks.append(asyncio.create_task(dial_once(node, a.dial)))
            await stop.wait()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        loop.remove_reader(node.event_fd())
    print("bye", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
