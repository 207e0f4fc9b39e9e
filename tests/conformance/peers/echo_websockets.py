#!/usr/bin/python3
"""Echo server built on python3-websockets (Debian 12 ships 10.4).

Reference peer used to validate the conformance suite. Every text or binary
message is sent back unchanged with the same type.

Usage: /usr/bin/python3 echo_websockets.py [--deflate] [PORT]     (PORT 0 = pick a free one)
Prints "listening on ws://127.0.0.1:PORT/" to stderr once it accepts connections.
--deflate negotiates permessage-deflate with websockets' defaults (windows of
12 bits, memLevel 5), for the conformance cases 12.x-14.x.
"""

import asyncio
import sys

import websockets

# The 9.x cases echo messages of up to 16 MiB; leave generous headroom.
MAX_MESSAGE_SIZE = 64 * 2**20


async def echo(websocket):
    async for message in websocket:
        await websocket.send(message)


async def serve(port, deflate):
    async with websockets.serve(
        echo,
        "127.0.0.1",
        port,
        max_size=MAX_MESSAGE_SIZE,  # also limits the inflated size of compressed messages
        compression="deflate" if deflate else None,
        ping_interval=None,  # keepalive pings would show up as unexpected events
    ) as server:
        bound = server.sockets[0].getsockname()[1]
        print(f"listening on ws://127.0.0.1:{bound}/", file=sys.stderr, flush=True)
        await asyncio.Future()  # run until killed


def main():
    args = sys.argv[1:]
    deflate = "--deflate" in args
    if deflate:
        args.remove("--deflate")
    port = int(args[0]) if args else 0
    try:
        asyncio.run(serve(port, deflate))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
