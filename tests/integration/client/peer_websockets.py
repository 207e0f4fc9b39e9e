#!/usr/bin/python3
"""A python3-websockets (10.4) server for driving `wsl pipe` and `wsl latency`.

    peer_websockets.py MODE [--send JSON] [--close-code N] [--close-reason TEXT]
                            [--subprotocols a,b] [--no-pong] [--deflate] [--tls CERT KEY]
                            [--stall SECONDS] [--replies N] [--raw HEX] [--close-after N]
                            [--redirect-from PATH --location URL [--status N]]
                            [--answer-after SECONDS] [--unix PATH]
                            [--push-every SECONDS] [--push-size N] [--abort-stalled] [--port N]
                            [--hang-up]

Modes:
  echo     every message goes back with its type (--no-pong: pings are left unanswered;
           --close-after N: each connection is closed with --close-code/--close-reason once N
           messages went back);
           --stall S: the first connection reads nothing for S seconds after its handshake (its
           buffers kept small, so a sender blocks) and emits no message events; with
           --abort-stalled it then resets the TCP connection instead of reading
  script   sends the messages of --send (a JSON list of {"text": str} or {"hex": str}), then
           closes with --close-code/--close-reason
  relay    sends the messages of --send, then records the messages it receives (answering none);
           after --replies N of them (0: never) it closes with --close-code/--close-reason
  ack      answers every message with a text message `ack N`, N its number on the connection from 1
           (no event per message); at the close, {"event": "acked", "count": N}
  push     once a connection's first message came, sends it a binary message of --push-size (100)
           zero bytes every --push-every (0.01) seconds until it closes; records every message it
           receives; at the close, {"event": "pushed", "count": N}
  chat     a chat room: every message received, from any connection, goes to every open
           connection (its sender too) as the text of a JSON object {"from": N, "text": T}, N the
           sender's number from 1, T the message (a binary one as hex); at each close,
           {"event": "chatted", "count": messages that connection sent}
  refuse   answers the upgrade with 403 Forbidden and a text body
  silent   accepts TCP connections and never answers the HTTP request
  deaf     completes the handshake (by hand, not with websockets), then reads and ignores every
           frame: no pong, no close answered
  rude     completes the handshake by hand, sends the bytes of --raw (frames that break RFC 6455,
           say), then reads until the client closes TCP: one {"event": "received", "hex": ...}
           with every byte that came after the handshake; with --hang-up it closes TCP right
           after sending them instead (a message cut short, say)

--deflate accepts permessage-deflate; --tls serves wss:// with that certificate and key.
--redirect-from PATH (echo, script, relay, refuse): an upgrade request for PATH (the query aside)
is answered with --status (302) and `Location: --location`, and emits
  {"event": "redirect", "path": ..., "headers": [[name, value], ...]}
--answer-after S (echo, script, relay, refuse): every upgrade request waits S seconds for its answer.
--unix PATH: listen on this Unix-domain socket instead (its line: `listening on ws+unix:PATH`).
--port N: listen on this port of 127.0.0.1 (default 0: any free one).

Prints `listening on ws://127.0.0.1:PORT/` (wss://) on stderr when ready, like `wsl echo`, and one
JSON object per event on stdout, flushed at once, for the test to assert on:
  {"event": "open", "path": ..., "headers": [[name, value], ...], "subprotocol": ..., "remote": ADDRESS}
  {"event": "message", "type": "text"|"binary", "hex": ...}
  {"event": "close", "code": N, "reason": ...}
Runs until killed.
"""

import argparse
import asyncio
import base64
import hashlib
import http
import json
import re
import ssl
import sys

import websockets


def emit(**event) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def decode_script(text: str):
    out = []
    for item in json.loads(text):
        out.append(item["text"] if "text" in item else bytes.fromhex(item["hex"]))
    return out


async def no_pong(data: bytes = b"") -> None:
    """Stands in for the protocol's pong(): the ping is read and left unanswered."""


def make_handler(args):
    script = decode_script(args.send)
    stalls = [args.stall] if args.stall else []
    room = set()
    joined = 0

    async def handler(ws, path=None):
        nonlocal joined
        emit(event="open", path=ws.path, headers=[[k, v] for k, v in ws.request_headers.raw_items()],
             subprotocol=ws.subprotocol, remote=(ws.remote_address or [None])[0])
        if args.no_pong:
            ws.pong = no_pong
        try:
            if args.mode == "script":
                for message in script:
                    await ws.send(message)
                await ws.close(args.close_code, args.close_reason)
            elif args.mode == "relay":
                for message in script:
                    await ws.send(message)
                received = 0
                async for message in ws:
                    emit(event="message", type="text" if isinstance(message, str) else "binary",
                         hex=(message.encode() if isinstance(message, str) else message).hex())
                    received += 1
                    if received == args.replies:
                        await ws.close(args.close_code, args.close_reason)
            elif args.mode == "ack":
                acked = 0
                async for message in ws:
                    acked += 1
                    await ws.send(f"ack {acked}")
                emit(event="acked", count=acked)
            elif args.mode == "push":
                await push(ws, args)
            elif args.mode == "chat":
                joined += 1
                number, chatted = joined, 0
                room.add(ws)
                try:
                    async for message in ws:
                        chatted += 1
                        text = message if isinstance(message, str) else message.hex()
                        websockets.broadcast(room, json.dumps({"from": number, "text": text}))
                finally:
                    room.discard(ws)
                    emit(event="chatted", count=chatted)
            elif args.stall:
                if stalls:
                    await asyncio.sleep(stalls.pop())
                    if args.abort_stalled:
                        emit(event="abort")
                        ws.transport.abort()
                        return
                async for message in ws:
                    await ws.send(message)
            else:
                echoed = 0
                async for message in ws:
                    emit(event="message", type="text" if isinstance(message, str) else "binary",
                         hex=(message.encode() if isinstance(message, str) else message).hex())
                    await ws.send(message)
                    echoed += 1
                    if echoed == args.close_after:
                        await ws.close(args.close_code, args.close_reason)
        except websockets.ConnectionClosed:
            pass
        await ws.wait_closed()
        emit(event="close", code=ws.close_code, reason=ws.close_reason)

    return handler


async def push(ws, args) -> None:
    pushed = 0

    async def pusher():
        nonlocal pushed
        payload = bytes(args.push_size)
        try:
            while True:
                await ws.send(payload)
                pushed += 1
                await asyncio.sleep(args.push_every)
        except websockets.ConnectionClosed:
            pass

    task = None
    try:
        async for message in ws:
            emit(event="message", type="text" if isinstance(message, str) else "binary",
                 hex=(message.encode() if isinstance(message, str) else message).hex())
            if task is None:
                task = asyncio.create_task(pusher())
    finally:
        if task is not None:
            task.cancel()
        emit(event="pushed", count=pushed)


def refuse(path, request_headers):
    return http.HTTPStatus.FORBIDDEN, [("Content-Type", "text/plain")], b"forbidden: no token for this test\n"


def make_process_request(args):
    async def process_request(path, request_headers):
        if args.answer_after:
            await asyncio.sleep(args.answer_after)
        if args.redirect_from and path.split("?")[0] == args.redirect_from:
            emit(event="redirect", path=path, headers=[[k, v] for k, v in request_headers.raw_items()])
            return http.HTTPStatus(args.status), [("Location", args.location)], b""
        return refuse(path, request_headers) if args.mode == "refuse" else None

    return process_request


async def silent_connection(reader, writer) -> None:
    emit(event="tcp")
    await reader.read()  # never answers; returns when the client goes away
    writer.close()


async def answer_upgrade(reader, writer) -> None:
    """The 101 to the request, by hand; emits the open event."""
    head = await reader.readuntil(b"\r\n\r\n")
    key = re.search(rb"(?im)^sec-websocket-key:[ \t]*(\S+)", head)[1]
    accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    emit(event="open", path=head.split(b" ")[1].decode(), headers=[], subprotocol=None)


async def deaf_connection(reader, writer) -> None:
    await answer_upgrade(reader, writer)
    while await reader.read(1 << 16):
        pass
    writer.close()


def rude_connection(raw: bytes, hang_up: bool):
    async def handler(reader, writer) -> None:
        await answer_upgrade(reader, writer)
        writer.write(raw)
        if hang_up:
            await writer.drain()
            writer.close()
            return
        received = await reader.read()  # until EOF
        emit(event="received", hex=received.hex())
        writer.close()

    return handler


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["echo", "ack", "push", "chat", "script", "relay", "refuse", "silent", "deaf", "rude"])
    parser.add_argument("--send", default="[]")
    parser.add_argument("--close-code", type=int, default=1000)
    parser.add_argument("--close-reason", default="")
    parser.add_argument("--subprotocols", default="")
    parser.add_argument("--no-pong", action="store_true")
    parser.add_argument("--deflate", action="store_true")
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--stall", type=float, default=0)
    parser.add_argument("--replies", type=int, default=0)
    parser.add_argument("--raw", default="")
    parser.add_argument("--close-after", type=int, default=0)
    parser.add_argument("--redirect-from", default="")
    parser.add_argument("--location", default="")
    parser.add_argument("--status", type=int, default=302)
    parser.add_argument("--answer-after", type=float, default=0)
    parser.add_argument("--unix", default="")
    parser.add_argument("--push-every", type=float, default=0.01)
    parser.add_argument("--push-size", type=int, default=100)
    parser.add_argument("--abort-stalled", action="store_true")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--hang-up", action="store_true")
    args = parser.parse_args()
    context = None
    if args.tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*args.tls)

    if args.mode in ("silent", "deaf", "rude"):
        handler = {"silent": silent_connection, "deaf": deaf_connection,
                   "rude": rude_connection(bytes.fromhex(args.raw), args.hang_up)}[args.mode]
        server = await (asyncio.start_unix_server(handler, args.unix, ssl=context) if args.unix
                        else asyncio.start_server(handler, "127.0.0.1", args.port, ssl=context))
    else:
        where = {"path": args.unix} if args.unix else {"host": "127.0.0.1", "port": args.port}
        server = await (websockets.unix_serve if args.unix else websockets.serve)(
            make_handler(args), **where, max_size=None, ping_interval=None, ssl=context,
            # A stalled connection holds at most one message and a small read buffer.
            **({"max_queue": 1, "read_limit": 1 << 14} if args.stall else {}),
            compression="deflate" if args.deflate else None,
            subprotocols=[p for p in args.subprotocols.split(",") if p] or None,
            process_request=make_process_request(args))
    if args.unix:
        print(f"listening on ws+unix:{args.unix}", file=sys.stderr, flush=True)
    else:
        port = server.sockets[0].getsockname()[1]
        print(f"listening on {'wss' if context else 'ws'}://127.0.0.1:{port}/", file=sys.stderr, flush=True)
    await asyncio.Future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
