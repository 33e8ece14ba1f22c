#!/usr/bin/env python3
"""A slow and lossy link between HAProxy and one agent, for the fault suite (this kernel
has no netem). Forwards TCP from --listen to --to, holding every chunk --delay-ms in each
direction (order kept), and cutting a connection with a reset in the middle of a chunk
toward the agent with probability --reset-pct percent per chunk (a SPOP frame usually
travels as one chunk, so that is a reset mid-frame).

The settings can change while it runs: write them as JSON ({"delay_ms": 600,
"reset_pct": 0}) to the --control file and send SIGHUP. Stdlib only; stops on SIGTERM."""
import argparse
import asyncio
import json
import random
import signal
import socket
import struct
import sys
import time


class Link:
    def __init__(self, delay_ms, reset_pct, seed):
        self.delay = delay_ms / 1000.0
        self.reset = reset_pct / 100.0
        self.rng = random.Random(seed)
        self.conns = set()
        self.resets = 0

    def load(self, path):
        try:
            with open(path) as f:
                c = json.load(f)
            self.delay = float(c.get("delay_ms", self.delay * 1000)) / 1000.0
            self.reset = float(c.get("reset_pct", self.reset * 100)) / 100.0
            print(f"linkproxy: delay {self.delay * 1000:.0f} ms, reset {self.reset * 100:g}%", flush=True)
        except (OSError, ValueError) as e:
            print(f"linkproxy: control file: {e}", file=sys.stderr, flush=True)


def abort(writer):
    """Close with a TCP reset (SO_LINGER 0), as a broken link or a dying peer would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


async def pump(link, reader, writer, both, to_agent):
    """Reads from reader, delivers to writer after the delay, in order."""
    q = asyncio.Queue()

    async def deliver():
        while True:
            when, data = await q.get()
            if data is None:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            wait = when - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if to_agent and link.reset and link.rng.random() < link.reset and len(data) > 1:
                writer.write(data[: len(data) // 2])
                await writer.drain()
                link.resets += 1
                for w in both:
                    abort(w)
                return
            writer.write(data)
            await writer.drain()

    task = asyncio.ensure_future(deliver())
    try:
        while True:
            data = await reader.read(65536)
            await q.put((time.monotonic() + link.delay, data or None))
            if not data:
                break
        await task
    except (ConnectionError, OSError):
        pass
    finally:
        task.cancel()


async def handle(link, target, creader, cwriter):
    host, port = target
    try:
        areader, awriter = await asyncio.open_connection(host, port)
    except OSError:
        abort(cwriter)
        return
    both = (cwriter, awriter)
    link.conns.add(both)
    try:
        await asyncio.gather(pump(link, creader, awriter, both, True),
                             pump(link, areader, cwriter, both, False))
    finally:
        link.conns.discard(both)
        for w in both:
            w.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--to", required=True, help="host:port of the agent")
    ap.add_argument("--delay-ms", type=float, default=0.0)
    ap.add_argument("--reset-pct", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--control", help="JSON settings file, read again on SIGHUP")
    a = ap.parse_args()
    host, port = a.to.rsplit(":", 1)
    link = Link(a.delay_ms, a.reset_pct, a.seed)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, lambda: stop.done() or stop.set_result(None))
    if a.control:
        loop.add_signal_handler(signal.SIGHUP, link.load, a.control)
    server = await asyncio.start_server(lambda r, w: handle(link, (host, int(port)), r, w),
                                        "127.0.0.1", a.listen, reuse_address=True)
    print(f"linkproxy: 127.0.0.1:{a.listen} -> {a.to}", flush=True)
    await stop
    server.close()
    print(f"linkproxy: {link.resets} connections reset", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
