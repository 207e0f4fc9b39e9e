#!/usr/bin/python3
"""`wsl serve --tcp HOST:PORT` (websockify's job), between python3-websockets clients and a TCP
server of asyncio's: bytes both ways, exact, in binary messages of at most --chunk bytes; each
client its own TCP connection; every byte delivered before either side's close; 1000 when the
server behind closes, 1014 when it resets or cannot be reached (refused, connect timeout); an
IPv6 target; a Unix-domain socket target (`--tcp unix:PATH`, websockify's --unix-target); `wsl
pipe --binary` as the other end of a tunnel; usage errors.
"""

import asyncio
import os
import socket
import struct
import tempfile
import time
import unittest

from serve_harness import TIMEOUT, Serve, connect, receive_until_close, run, run_wsl  # isort: first
import websockets  # noqa: E402


class Upstream:
    """A TCP server behind wsl: each connection it accepts waits in a queue as (reader, writer)."""

    @classmethod
    async def start(cls, host: str = "127.0.0.1", rcvbuf: int = 0) -> "Upstream":
        """rcvbuf: a small receive buffer keeps what it has not read in the sender's buffers."""
        self = cls()
        self.connections = asyncio.Queue()
        listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        if rcvbuf:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        listener.bind((host, 0))
        listener.listen()
        self.server = await asyncio.start_server(lambda r, w: self.connections.put_nowait((r, w)), sock=listener)
        self.port = listener.getsockname()[1]
        return self

    async def accepted(self):
        return await asyncio.wait_for(self.connections.get(), TIMEOUT)

    def close(self) -> None:
        self.server.close()


class Relay(unittest.TestCase):
    def test_bytes_both_ways_then_1000_when_the_server_behind_closes(self):
        async def scenario():
            upstream = await Upstream.start()
            with Serve("--tcp", f"127.0.0.1:{upstream.port}", "--chunk", "16K") as server:
                async with connect(server.url) as ws:
                    reader, writer = await upstream.accepted()
                    await ws.send(b"\x00\xffbinary")
                    await ws.send("text é")  # a text message's UTF-8 goes as it is
                    sent = b"\x00\xffbinary" + "text é".encode()
                    self.assertEqual(await asyncio.wait_for(reader.readexactly(len(sent)), TIMEOUT), sent)
                    writer.write(b"reply")
                    await writer.drain()
                    self.assertEqual(await asyncio.wait_for(ws.recv(), TIMEOUT), b"reply")
                    # 3 MiB and the server behind's close at once: every byte, then 1000.
                    payload = os.urandom(3 << 20)
                    writer.write(payload)
                    await writer.drain()
                    writer.close()
                    messages = await receive_until_close(ws)
                self.assertTrue(all(isinstance(m, bytes) for m in messages), "binary messages")
                self.assertEqual(b"".join(messages), payload)
                self.assertLessEqual(max(len(m) for m in messages), 16 << 10, "a message per read of --chunk")
                self.assertEqual(ws.close_code, 1000)
                self.assertIsNone(server.proc.poll())
            upstream.close()

        run(scenario())

    def test_the_client_leaving_gives_the_server_behind_every_byte_then_its_eof(self):
        async def scenario():
            upstream = await Upstream.start()
            with Serve("--tcp", f"127.0.0.1:{upstream.port}") as server:
                async with connect(server.url) as ws:
                    reader, writer = await upstream.accepted()
                    payload = os.urandom(4 << 20)
                    everything = asyncio.create_task(reader.read(-1))  # up to the EOF
                    # The server behind talks too, and the client does not listen: when the client
                    # leaves, wsl holds bytes it will never deliver. Closing with them unread would
                    # reset the connection and could destroy the client's last bytes on their way.
                    writer.write(os.urandom(1 << 20))

                    async def send_and_close():
                        for i in range(0, len(payload), 100_000):
                            await ws.send(payload[i:i + 100_000])
                        await ws.close(1000)  # while most of it is still on its way

                    await asyncio.wait_for(send_and_close(), TIMEOUT)
                    got = await asyncio.wait_for(everything, TIMEOUT)
                    self.assertEqual(len(got), len(payload))
                    self.assertEqual(got, payload)
                    self.assertEqual(ws.close_code, 1000)
                    writer.close()
                self.assertIsNone(server.proc.poll())
            upstream.close()

        run(scenario())

    def test_bytes_still_on_their_way_when_the_client_leaves_are_not_reset(self):
        # The server behind reads nothing until the client's close has come and gone, so most of
        # the client's bytes wait in wsl's socket buffers; and it never stops talking, so wsl has
        # bytes unread when the client leaves. Were wsl to close its socket then, the reset would
        # destroy what it still holds to send. The server behind gets everything, then its EOF.
        async def scenario():
            upstream = await Upstream.start(rcvbuf=4096)
            with Serve("--tcp", f"127.0.0.1:{upstream.port}") as server:
                async with connect(server.url) as ws:
                    reader, writer = await upstream.accepted()

                    async def talk():
                        while True:
                            writer.write(bytes(64 << 10))
                            await writer.drain()

                    async def listen():  # so that the client's close handshake can end
                        try:
                            while True:
                                await ws.recv()
                        except websockets.ConnectionClosed:
                            pass

                    talking, listening = asyncio.create_task(talk()), asyncio.create_task(listen())
                    payload = os.urandom(1 << 20)
                    await ws.send(payload)
                    await asyncio.wait_for(ws.close(1000), TIMEOUT)
                    got = await asyncio.wait_for(reader.read(-1), TIMEOUT)
                    talking.cancel()
                    await listening
                    self.assertEqual(len(got), len(payload))
                    self.assertEqual(got, payload)
                    writer.close()
            upstream.close()

        run(scenario())

    def test_each_client_has_a_connection_of_its_own(self):
        async def scenario():
            upstream = await Upstream.start()
            with Serve("--tcp", f"127.0.0.1:{upstream.port}", "--threads", "2") as server:
                async with connect(server.url) as a, connect(server.url) as b:
                    first = await upstream.accepted()
                    second = await upstream.accepted()
                    await a.send(b"from a")
                    await b.send(b"from b")
                    heard = {await asyncio.wait_for(r.readexactly(6), TIMEOUT): w for r, w in (first, second)}
                    self.assertEqual(set(heard), {b"from a", b"from b"})
                    heard[b"from a"].write(b"to a")
                    heard[b"from b"].write(b"to b")
                    self.assertEqual((await asyncio.wait_for(a.recv(), TIMEOUT),
                                      await asyncio.wait_for(b.recv(), TIMEOUT)), (b"to a", b"to b"))
                    for _, w in (first, second):
                        w.close()
            upstream.close()

        run(scenario())

    def test_an_ipv6_server_behind(self):
        async def scenario():
            upstream = await Upstream.start("::1")
            with Serve("--tcp", f"[::1]:{upstream.port}") as server:
                async with connect(server.url) as ws:
                    reader, writer = await upstream.accepted()
                    self.assertEqual(writer.get_extra_info("peername")[0], "::1")
                    await ws.send(b"over ::1")
                    self.assertEqual(await asyncio.wait_for(reader.readexactly(8), TIMEOUT), b"over ::1")
                    writer.close()
                    self.assertEqual(await receive_until_close(ws), [])
                    self.assertEqual(ws.close_code, 1000)
            upstream.close()

        run(scenario())

    def test_wsl_pipe_at_the_other_end_makes_a_tunnel(self):
        # ssh -o ProxyCommand='wsl pipe --binary -n URL' host: stdin and stdout through the WebSocket.
        async def scenario():
            upstream = await Upstream.start()
            with Serve("--tcp", f"127.0.0.1:{upstream.port}") as server:
                data = bytes(range(256)) * 4000
                client = await asyncio.create_subprocess_exec(
                    os.environ.get("WSL_BIN", "wsl"), "pipe", "--binary", "-n", server.url,
                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
                reader, writer = await upstream.accepted()
                client.stdin.write(data)
                await client.stdin.drain()
                client.stdin.close()
                got = await asyncio.wait_for(reader.readexactly(len(data)), TIMEOUT)
                writer.write(got[::-1])
                await writer.drain()
                writer.close()
                out, err = await asyncio.wait_for(client.communicate(), TIMEOUT)
                self.assertEqual(client.returncode, 0, err)
                self.assertEqual(got, data)
                self.assertEqual(out, data[::-1])
            upstream.close()

        run(scenario())


class UnixTarget(unittest.TestCase):
    """--tcp unix:PATH: the server behind listens on a Unix-domain socket (a path, or @NAME)."""

    def relay_through(self, target: str, path: str):
        async def scenario():
            accepted = asyncio.Queue()
            server = await asyncio.start_unix_server(lambda r, w: accepted.put_nowait((r, w)), path=path)
            with Serve("-vv", "--tcp", target) as wsl:
                async with connect(wsl.url) as ws:
                    reader, writer = await asyncio.wait_for(accepted.get(), TIMEOUT)
                    payload = os.urandom(1 << 20)
                    await ws.send(payload)
                    self.assertEqual(await asyncio.wait_for(reader.readexactly(len(payload)), TIMEOUT), payload)
                    writer.write(b"from the socket" * 1000)
                    writer.close()
                    messages = await receive_until_close(ws)
                self.assertEqual(b"".join(messages), b"from the socket" * 1000)
                self.assertEqual(ws.close_code, 1000)
                wsl.wait_stderr(rf"\[1\] connected to {target.replace('.', '[.]')} in ")
            server.close()

        run(scenario())

    def test_a_socket_file(self):
        with tempfile.TemporaryDirectory(prefix="wsl-unix-target-") as d:
            path = os.path.join(d, "behind.sock")
            self.relay_through(f"unix:{path}", path)

    def test_a_socket_in_the_abstract_namespace(self):
        name = f"wsl-test-{os.getpid()}-{time.monotonic_ns()}"
        self.relay_through(f"unix:@{name}", "\0" + name)

    def test_a_missing_socket_gives_1014(self):
        with tempfile.TemporaryDirectory(prefix="wsl-unix-target-") as d:
            with Serve("--tcp", f"unix:{d}/nobody.sock") as server:
                async def scenario():
                    async with connect(server.url) as ws:
                        self.assertEqual(await receive_until_close(ws), [])
                    return ws.close_code, ws.close_reason

                self.assertEqual(run(scenario()), (1014, "cannot connect to the server behind: No such file or directory"))
                self.assertIsNone(server.proc.poll())


class Failures(unittest.TestCase):
    def close_of(self, url):
        async def scenario():
            async with connect(url) as ws:
                messages = await receive_until_close(ws)
            return messages, ws.close_code, ws.close_reason

        return run(scenario())

    def test_a_server_behind_that_refuses_gives_1014(self):
        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            with Serve("-v", "--tcp", f"127.0.0.1:{port}") as server:
                for _ in range(2):  # and the server goes on
                    self.assertEqual(self.close_of(server.url),
                                     ([], 1014, "cannot connect to the server behind: Connection refused"))
                server.wait_stderr(rf"\[1\] cannot connect to 127\.0\.0\.1:{port}: Connection refused")
                self.assertIsNone(server.proc.poll())

    def test_a_server_behind_that_does_not_answer_gives_1014_after_the_connect_timeout(self):
        # A listener that never accepts, its backlog full: the kernel drops further SYNs.
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(0)
            port = listener.getsockname()[1]
            fillers = []
            try:
                for _ in range(4):
                    f = socket.socket()
                    f.setblocking(False)
                    f.connect_ex(("127.0.0.1", port))
                    fillers.append(f)
                with Serve("--tcp", f"127.0.0.1:{port}", "--connect-timeout", "300ms") as server:
                    started = time.monotonic()
                    messages, code, reason = self.close_of(server.url)
                    elapsed = time.monotonic() - started
                    self.assertEqual((messages, code), ([], 1014))
                    self.assertIn("timed out", reason)
                    self.assertGreaterEqual(elapsed, 0.25)
                    self.assertLess(elapsed, TIMEOUT)
            finally:
                for f in fillers:
                    f.close()

    def test_a_reset_of_the_server_behind_gives_1014(self):
        async def scenario():
            upstream = await Upstream.start()
            with Serve("--tcp", f"127.0.0.1:{upstream.port}") as server:
                async with connect(server.url) as ws:
                    reader, writer = await upstream.accepted()
                    writer.write(b"last words")
                    await writer.drain()
                    self.assertEqual(await asyncio.wait_for(ws.recv(), TIMEOUT), b"last words")
                    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                                               struct.pack("ii", 1, 0))
                    writer.transport.abort()  # SO_LINGER 0: a reset, not a FIN
                    self.assertEqual(await receive_until_close(ws), [])
                    self.assertEqual((ws.close_code, ws.close_reason),
                                     (1014, "the server behind: Connection reset by peer"))
            upstream.close()

        run(scenario())

    def test_usage_errors(self):
        for options in (["--tcp", "127.0.0.1"], ["--tcp", "127.0.0.1:0"], ["--tcp", "127.0.0.1:65536"],
                        ["--tcp", "::1:22"], ["--tcp", "[::1]"], ["--tcp", ":22"], ["--tcp", "h:x"],
                        ["--tcp", "h:22", "--pipe"], ["--tcp", "h:22", "--", "cat"], ["--tcp", "h:22", "-0"],
                        ["--tcp", "h:22", "--text-prefix", "t:"], ["--tcp", "h:22", "--max-forks", "2"],
                        ["--tcp", "h:22", "--prefix-client"], ["--connect-timeout", "1s", "--pipe"],
                        ["--tcp", "h:22", "--connect-timeout", "0"], ["--tcp", "unix:/" + "x" * 200],
                        ["--tcp", "unix:socket"]):
            with self.subTest(options=options):
                done = run_wsl("serve", "--port", "0", *options)
                self.assertEqual(done.returncode, 64, done.stderr)
                self.assertEqual(len(done.stderr.splitlines()), 1, done.stderr)


if __name__ == "__main__":
    unittest.main()
