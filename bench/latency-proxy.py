#!/usr/bin/env python3
"""A TCP proxy on 127.0.0.1 that adds DELAY_MS to every request: what a client sends
reaches the server DELAY_MS later (each piece scheduled at its arrival + DELAY_MS, in
order, so a request of many pieces is delayed once, as on a link with that latency);
answers come back at once. One request-answer round trip so takes DELAY_MS more, as
against a cache that is not on this machine.

    bench/latency-proxy.py LISTEN_PORT UPSTREAM_PORT DELAY_MS

Prints "ready" on stdout once it listens. Stops on SIGTERM/SIGINT.
"""
import asyncio
import signal
import sys
import time


async def delayed_pump(reader, writer, delay):
    queue = asyncio.Queue()

    async def read():
        try:
            while True:
                data = await reader.read(1 << 16)
                await queue.put((time.monotonic() + delay, data))
                if not data:
                    return
        except (ConnectionError, asyncio.CancelledError):
            await queue.put((0, b""))

    async def write():
        try:
            while True:
                due, data = await queue.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    writer.write_eof() if writer.can_write_eof() else None
                    return
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            return

    await asyncio.gather(read(), write())


async def pump(reader, writer):
    try:
        while True:
            data = await reader.read(1 << 16)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        return


async def handle(client_reader, client_writer, upstream_port, delay):
    try:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
    except OSError:
        client_writer.close()
        return
    try:
        await asyncio.gather(
            delayed_pump(client_reader, up_writer, delay),
            pump(up_reader, client_writer),
        )
    finally:
        for w in (up_writer, client_writer):
            try:
                w.close()
            except OSError:
                pass


async def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    listen, upstream, delay = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]) / 1000
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, upstream, delay), "127.0.0.1", listen, backlog=1024
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
