#!/usr/bin/env python3
"""A TCP proxy that delays every chunk by a fixed time in each direction, to stand for a
database across a network (tests/soak/readers.sh): `delay_proxy.py TARGET_PORT DELAY_MS`
listens on a free loopback port, prints it on stdout, and forwards each connection to
127.0.0.1:TARGET_PORT, each chunk DELAY_MS later than it came (order kept)."""
import asyncio
import sys


async def pipe(reader, writer, delay):
    queue = asyncio.Queue()

    async def read():
        while True:
            data = await reader.read(65536)
            await queue.put((asyncio.get_running_loop().time() + delay, data))
            if not data:
                return

    async def write():
        while True:
            due, data = await queue.get()
            wait = due - asyncio.get_running_loop().time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                writer.close()
                return
            writer.write(data)
            await writer.drain()

    try:
        await asyncio.gather(read(), write())
    except (ConnectionError, asyncio.CancelledError):
        writer.close()


async def main():
    target, delay = int(sys.argv[1]), float(sys.argv[2]) / 1000.0

    async def serve(client_r, client_w):
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(pipe(client_r, server_w, delay), pipe(server_r, client_w, delay),
                             return_exceptions=True)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
