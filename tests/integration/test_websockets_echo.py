#!/usr/bin/python3
"""python3-websockets (a client we did not write) against `wsl echo`.

Run by ctest with the Debian interpreter (/usr/bin/python3), which has websockets 10.4.
"""

import asyncio
import functools
import os
import random
import unittest

import websockets

from harness import TIMEOUT, Server

SIZES = [0, 1, 125, 126, 65535, 65536, 1 << 20, 16 << 20]


def text_of_size(n: int, seed: int = 0) -> str:
    """A str whose UTF-8 encoding is exactly n bytes, mixing 1- to 4-byte characters."""
    rng = random.Random(seed)
    alphabet = "aZ 9~\u00e9\u00df\u0416\u20ac\u4e2d\ufffd\U0001d11e\U0001f600"
    block = "".join(rng.choice(alphabet) for _ in range(4096))
    encoded = (block * (n // len(block.encode()) + 1)).encode()[:n]
    text = encoded.decode("utf-8", "ignore")  # drops the character cut at the end, if any
    return text + "x" * (n - len(text.encode()))


def connect(url: str, **kwargs) -> websockets.connect:
    """A client with no limit on message size and no keepalive pings of its own."""
    kwargs.setdefault("max_size", None)
    kwargs.setdefault("ping_interval", None)
    kwargs.setdefault("open_timeout", TIMEOUT)
    kwargs.setdefault("close_timeout", TIMEOUT)
    return websockets.connect(url, **kwargs)


def async_test(timeout: float = 3 * TIMEOUT):
    """Runs an `async def test_...(self, ws)` in a fresh event loop, bounded by `timeout`, with a
    connected client `ws` that is closed afterwards; then checks that the server is still running."""

    def decorate(test):
        @functools.wraps(test)
        def run(self):
            async def body():
                async with connect(self.server.url) as ws:
                    await test(self, ws)

            asyncio.run(asyncio.wait_for(body(), timeout))
            self.server.assert_alive()

        return run

    return decorate


class EchoCase(unittest.TestCase):
    server_options = ()

    @classmethod
    def setUpClass(cls):
        cls.server = Server(*cls.server_options)
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
        cls.server.kill()


async def roundtrip(ws, message):
    await ws.send(message)
    return await asyncio.wait_for(ws.recv(), TIMEOUT)


class Messages(EchoCase):
    @async_test()
    async def test_text_sizes(self, ws):
        for size in SIZES:
            with self.subTest(size=size):
                message = text_of_size(size, seed=size)
                self.assertEqual(len(message.encode()), size)
                echo = await roundtrip(ws, message)
                self.assertIsInstance(echo, str, "a text message must come back as text")
                self.assertTrue(echo == message, f"{size}-byte text echo differs")

    @async_test()
    async def test_binary_sizes(self, ws):
        for size in SIZES:
            with self.subTest(size=size):
                message = os.urandom(size)
                echo = await roundtrip(ws, message)
                self.assertIsInstance(echo, bytes, "a binary message must come back as binary")
                self.assertTrue(echo == message, f"{size}-byte binary echo differs")

    @async_test()
    async def test_pipelined_messages_keep_order_and_type(self, ws):
        messages = [os.urandom(n) if n % 2 else text_of_size(n, seed=n) for n in range(0, 3000, 7)]
        for m in messages:
            await ws.send(m)
        for i, m in enumerate(messages):
            self.assertEqual(await asyncio.wait_for(ws.recv(), TIMEOUT), m, f"message {i}")

    @async_test()
    async def test_fragmented_text(self, ws):
        fragments = ["", "Hello, ", "", "w\u00f6rld \u20ac", " \U0001f600" * 1000, "!"]
        self.assertEqual(await roundtrip(ws, fragments), "".join(fragments))

    @async_test()
    async def test_fragmented_binary(self, ws):
        fragments = [os.urandom(n) for n in (0, 1, 125, 126, 65536, 0, 300000, 3)]
        self.assertEqual(await roundtrip(ws, fragments), b"".join(fragments))

    @async_test()
    async def test_many_small_fragments(self, ws):
        fragments = [os.urandom(64) for _ in range(20000)]
        self.assertEqual(await roundtrip(ws, fragments), b"".join(fragments))

    @async_test()
    async def test_ping_with_payload_gets_pong(self, ws):
        # websockets resolves the waiter only for a pong carrying this ping's exact payload.
        for payload in (b"", b"x", b"latency-probe-\x00\xff", os.urandom(125)):
            with self.subTest(length=len(payload)):
                pong = await ws.ping(payload)
                await asyncio.wait_for(pong, TIMEOUT)

    @async_test()
    async def test_ping_between_fragments(self, ws):
        async def fragments():
            yield b"first half "
            await asyncio.wait_for(await ws.ping(b"in the middle"), TIMEOUT)
            yield b"second half"

        self.assertEqual(await roundtrip(ws, fragments()), b"first half second half")


class CloseCodes(EchoCase):
    async def close_with(self, ws, code, reason):
        """The client starts the closing handshake; the server answers with the same code and reason."""
        await asyncio.wait_for(ws.close(code, reason), TIMEOUT)
        self.assertEqual((ws.close_code, ws.close_reason), (code, reason), "the server's answer to our close")

    @async_test()
    async def test_close_1000(self, ws):
        await self.close_with(ws, 1000, "")

    @async_test()
    async def test_close_3000_with_reason(self, ws):
        await self.close_with(ws, 3000, "registered by a library")

    @async_test()
    async def test_close_4999_with_reason(self, ws):
        await self.close_with(ws, 4999, "private use \u2713")


class ManyClients(EchoCase):
    clients = 50
    rounds = 20

    async def client(self, n):
        async with connect(self.server.url) as ws:
            for i in range(self.rounds):
                message = os.urandom(1 + (n * 131 + i * 977) % 20000) if i % 2 else f"client {n} round {i}"
                await ws.send(message)
                echo = await asyncio.wait_for(ws.recv(), TIMEOUT)
                if echo != message:
                    raise AssertionError(f"client {n} round {i}: wrong echo")
        return n

    @async_test()
    async def test_concurrent_clients(self, ws):
        done = await asyncio.wait_for(asyncio.gather(*(self.client(n) for n in range(self.clients))), 6 * TIMEOUT)
        self.assertEqual(sorted(done), list(range(self.clients)))


class ManyClientsTwoThreads(ManyClients):
    server_options = ("--threads", "2")

    @async_test()
    async def test_large_messages_in_parallel(self, ws):
        async def big(n):
            async with connect(self.server.url) as ws:
                message = os.urandom(4 << 20)
                await ws.send(message)
                return await asyncio.wait_for(ws.recv(), TIMEOUT) == message

        self.assertEqual(await asyncio.gather(*(big(n) for n in range(8))), [True] * 8)


if __name__ == "__main__":
    unittest.main(verbosity=2)
