#!/usr/bin/python3
"""`wsl serve --pipe` with python3-websockets clients (and raw sockets for the misbehaving ones).

stdin records go to every client; every client message goes to stdout whole; a slow client is cut
off with 1008 while the others get everything; the end of stdin delivers what is queued and closes
with 1000; --one, --reject-busy, --max-connections; SIGINT.
"""

import asyncio
import base64
import os
import signal
import socket
import tempfile
import time
import unittest

from serve_harness import (TIME_SCALE, TIMEOUT, RawClient, Serve, close_payload, connect, handshake_request,
                           receive_until_close, run, run_wsl)


def lines(n, prefix="line", width=0):
    return [f"{prefix}{i}".ljust(width, "x") for i in range(n)]


def feed(server, data: bytes, end: bool = True, slices: int = 1, pause: float = 0.0):
    """Writes to wsl's stdin from a thread (wsl reads it at its clients' pace), then ends it. With
    `slices`, the data goes in that many pieces `pause` seconds apart: a producer like `tail -f`."""
    def write():
        step = -(-len(data) // slices)
        for i in range(0, len(data), step):
            server.send(data[i:i + step])
            time.sleep(pause)
        if end:
            server.end_input()
    return asyncio.get_running_loop().run_in_executor(None, write)


async def hello(server, ws, text):
    """Sends `text` and waits until it is on stdout: the session is then surely attached."""
    await ws.send(text)
    await asyncio.get_running_loop().run_in_executor(
        None, server.wait_stdout, lambda out: (text + "\n").encode() in out)


class Broadcast(unittest.TestCase):
    def test_every_client_gets_every_line_then_1000_at_the_end_of_stdin(self):
        records = lines(2000, width=50)

        async def scenario(server):
            clients = [await connect(server.url) for _ in range(3)]
            for i, ws in enumerate(clients):
                await hello(server, ws, f"hello {i}")
            feeding = feed(server, ("\n".join(records) + "\n").encode())
            got = await asyncio.gather(*(receive_until_close(ws) for ws in clients))
            await feeding
            return got, [ws.close_code for ws in clients]

        with Serve("--pipe") as server:
            got, codes = run(scenario(server))
            for messages in got:
                self.assertEqual(messages, records)
            self.assertEqual(codes, [1000, 1000, 1000])
            self.assertEqual(server.wait(), 0)

    def test_stdin_waits_for_the_first_client_and_a_last_line_without_newline_counts(self):
        async def scenario(server):
            async with connect(server.url) as ws:
                return await receive_until_close(ws), ws.close_code

        with Serve("--pipe") as server:
            server.send(b"early one\nearly two\nno newline")
            server.end_input()
            messages, code = run(scenario(server))
            self.assertEqual(messages, ["early one", "early two", "no newline"])
            self.assertEqual(code, 1000)
            self.assertEqual(server.wait(), 0)

    def test_a_line_that_is_not_utf8_goes_as_a_binary_message(self):
        async def scenario(server):
            async with connect(server.url) as ws:
                return await receive_until_close(ws)

        with Serve("--pipe") as server:
            server.send(b"text\n\xff\xfe\n")
            server.end_input()
            self.assertEqual(run(scenario(server)), ["text", b"\xff\xfe"])
            self.assertEqual(server.wait(), 0)

    def test_null_delimited_both_ways(self):
        async def scenario(server):
            async with connect(server.url) as ws:
                await ws.send("from\nclient")
                await asyncio.get_running_loop().run_in_executor(
                    None, server.wait_stdout, lambda out: out == b"from\nclient\0")
                server.send(b"a\nb\0c\0")
                server.end_input()
                return await receive_until_close(ws)

        with Serve("--pipe", "-0") as server:
            self.assertEqual(run(scenario(server)), ["a\nb", "c"])
            self.assertEqual(server.wait(), 0)

    def test_binary_chunks_both_ways(self):
        blob = bytes(range(256)) * 1024  # 256 KiB with every byte value, newlines and NULs included

        async def scenario(server):
            async with connect(server.url) as ws:
                await ws.send(b"\x00raw\nbytes\xff")
                await asyncio.get_running_loop().run_in_executor(
                    None, server.wait_stdout, lambda out: out == b"\x00raw\nbytes\xff")
                feeding = feed(server, blob)
                got = await receive_until_close(ws)
                await feeding
                return got

        with Serve("--pipe", "--binary", "--chunk", "16K") as server:
            messages = run(scenario(server))
            self.assertTrue(all(isinstance(m, bytes) and 0 < len(m) <= 16384 for m in messages))
            self.assertEqual(b"".join(messages), blob)
            self.assertEqual(server.wait(), 0)


class ToStdout(unittest.TestCase):
    def test_messages_of_several_clients_all_reach_stdout_whole(self):
        per_client, count = 2000, 5

        async def client(server, i):
            async with connect(server.url) as ws:
                for n in range(per_client):
                    await ws.send(f"client{i} message{n} " + "y" * (n % 300))

        async def scenario(server):
            await asyncio.gather(*(client(server, i) for i in range(count)))

        with Serve("--pipe") as server:
            run(scenario(server))
            out = server.wait_stdout(lambda o: o.count(b"\n") >= per_client * count).decode()
            got = out.splitlines()
            self.assertEqual(len(got), per_client * count)
            for i in range(count):
                mine = [line for line in got if line.startswith(f"client{i} ")]
                self.assertEqual(mine, [f"client{i} message{n} " + "y" * (n % 300) for n in range(per_client)])

    def test_large_fragmented_messages_of_two_clients_never_mix(self):
        size = 3 << 20  # over the 1 MiB gathered in memory: streamed while holding stdout

        async def client(server, letter):
            async with connect(server.url) as ws:
                fragments = [letter * 65536 for _ in range(size // 65536)]
                await ws.send(fragments)
                for n in range(50):
                    await ws.send(f"{letter} small {n}")

        async def scenario(server):
            await asyncio.gather(client(server, "a"), client(server, "b"))

        with Serve("--pipe") as server:
            run(scenario(server))
            out = server.wait_stdout(lambda o: o.count(b"\n") >= 102).decode()
            got = out.splitlines()
            self.assertEqual(len(got), 102)
            self.assertIn("a" * size, got)
            self.assertIn("b" * size, got)
            self.assertEqual([g for g in got if g.startswith("a small")], [f"a small {n}" for n in range(50)])

    def test_prefix_client_marks_every_line_with_the_connection_id(self):
        async def scenario(server):
            async with connect(server.url) as a, connect(server.url) as b:
                await hello(server, a, "first")
                await hello(server, b, "second")
                await a.send("two\nlines")

        with Serve("--pipe", "--prefix-client") as server:
            run(scenario(server))
            out = server.wait_stdout(lambda o: o.count(b"\n") >= 4).decode().splitlines()
            ids = [line.split("\t", 1)[0] for line in out]
            self.assertEqual([line.split("\t", 1)[1] for line in out], ["first", "second", "two", "lines"])
            self.assertEqual(ids[0], ids[2])
            self.assertEqual(ids[0], ids[3])
            self.assertNotEqual(ids[0], ids[1])
            self.assertTrue(all(i.isdigit() for i in ids))


class ChatRoom(unittest.TestCase):
    def test_stdout_fed_back_to_stdin_makes_a_chat_room(self):
        # The recipe of wsl-serve(1): `wsl serve --pipe --prefix-client <>room >room`. What a client
        # says comes back to every client, after the ID of the one who said it.
        async def scenario(server):
            async with connect(server.url) as a, connect(server.url) as b, connect(server.url) as c:
                said = []
                for ws, text in (a, "hi from a"), (b, "hello from b"), (a, "bye"):
                    await ws.send(text)
                    said.append(text)
                    for listener in a, b, c:
                        line = await asyncio.wait_for(listener.recv(), TIMEOUT)
                        self.assertEqual(line.split("\t", 1)[1], text)
                        ids.setdefault(text, set()).add(line.split("\t", 1)[0])
                return said

        with tempfile.TemporaryDirectory() as tmp:
            room = os.path.join(tmp, "room")
            os.mkfifo(room)
            ids = {}
            with Serve("--pipe", "--prefix-client", fifo=room) as server:
                said = run(scenario(server))
        self.assertEqual(said, ["hi from a", "hello from b", "bye"])
        self.assertTrue(all(len(v) == 1 for v in ids.values()), ids)  # each line names one sender, for all
        self.assertEqual(ids["hi from a"], ids["bye"])
        self.assertNotEqual(ids["hi from a"], ids["hello from b"])


class Addressed(unittest.TestCase):
    async def ids(self, server, clients):
        """Each client says hello; its ID is what --prefix-client writes before its hello."""
        for i, ws in enumerate(clients):
            await hello(server, ws, f"hello {i}")
        lines = server.wait_stdout(lambda out: True).decode().splitlines()
        return [next(line.split("\t")[0] for line in lines if line.endswith(f"\thello {i}")) for i in range(len(clients))]

    def test_each_line_goes_to_the_client_it_names_and_star_to_every_client(self):
        async def scenario(server):
            a, b = await connect(server.url), await connect(server.url)
            id_a, id_b = await self.ids(server, [a, b])
            server.send(f"{id_a}\tfor a\n{id_b}\tfor b\t(tab kept)\n*\tfor all\n{id_a}\tagain a\n".encode())
            server.end_input()
            got = await asyncio.gather(receive_until_close(a), receive_until_close(b))
            return got, [a.close_code, b.close_code]

        with Serve("--pipe", "--prefix-client", "--addressed") as server:
            (got_a, got_b), codes = run(scenario(server))
            self.assertEqual(got_a, ["for a", "for all", "again a"])
            self.assertEqual(got_b, ["for b\t(tab kept)", "for all"])
            self.assertEqual(codes, [1000, 1000])
            self.assertEqual(server.wait(), 0)
            self.assertNotIn("dropped", server.stderr.text())

    def test_lines_without_an_id_or_for_a_client_not_connected_are_dropped_and_said(self):
        async def scenario(server):
            async with connect(server.url) as ws:
                (me,) = await self.ids(server, [ws])
                server.send(f"no tab\n0\tzero\nx{me}\tbad id\n99\tghost\n98\tanother\n99\tghost again\n{me}\tkept\n".encode())
                server.end_input()
                return await receive_until_close(ws)

        with Serve("--pipe", "--prefix-client", "--addressed") as server:
            self.assertEqual(run(scenario(server)), ["kept"])
            self.assertEqual(server.wait(), 0)
            err = server.stderr.text()
            self.assertIn("stdin record 1 does not start with a client's ID and a tab", err)
            self.assertIn("client 99 is not connected", err)
            self.assertEqual(err.count("client 99 is not connected"), 1, err)  # once per client
            self.assertEqual(err.count("client 98 is not connected"), 1, err)
            self.assertIn("3 records without a client's ID and 3 for clients that were not connected were dropped", err)

    def test_null_delimited_records_are_addressed_too(self):
        async def scenario(server):
            async with connect(server.url) as ws:
                await ws.send("hi")
                out = await asyncio.get_running_loop().run_in_executor(
                    None, server.wait_stdout, lambda out: out.endswith(b"\thi\0"))
                me = out.split(b"\t")[0].decode()
                server.send(f"{me}\tline\none\0*\ttwo\0".encode())
                server.end_input()
                return await receive_until_close(ws)

        with Serve("--pipe", "-0", "--prefix-client", "--addressed") as server:
            self.assertEqual(run(scenario(server)), ["line\none", "two"])
            self.assertEqual(server.wait(), 0)


class Events(unittest.TestCase):
    def test_a_client_is_announced_before_it_speaks_and_its_leaving_after_its_last_message(self):
        async def scenario(server):
            ws = await connect(server.url + "room?x=1")
            # Announced at once, before it sends anything: the script can greet it.
            out = await asyncio.get_running_loop().run_in_executor(
                None, server.wait_stdout, lambda out: b"\t/room?x=1\n" in out)
            me = out.decode().split("\t")[0]
            self.assertTrue(me.startswith("+") and me[1:].isdigit(), out)
            server.send(f"{me[1:]}\twelcome\n".encode())
            self.assertEqual(await asyncio.wait_for(ws.recv(), TIMEOUT), "welcome")
            await ws.send("last words")
            await ws.close(4000, "bye")
            await asyncio.get_running_loop().run_in_executor(
                None, server.wait_stdout, lambda out: b"\n-" in out)
            return me[1:]

        with Serve("--pipe", "--keep-open", "--events", "--addressed") as server:
            me = run(scenario(server))
            out = server.wait_stdout(lambda out: out.count(b"\n") >= 3).decode()
            self.assertEqual(out.splitlines(), [f"+{me}\t/room?x=1", f"{me}\tlast words", f"-{me}\t4000"])
            server.proc.send_signal(signal.SIGINT)
            self.assertEqual(server.wait(), 130)

    def test_a_client_closed_by_the_server_leaves_with_its_code(self):
        async def scenario(server):
            async with connect(server.url) as ws:
                await asyncio.get_running_loop().run_in_executor(
                    None, server.wait_stdout, lambda out: out.startswith(b"+"))
                server.end_input()
                return await receive_until_close(ws), ws.close_code

        with Serve("--pipe", "--events") as server:
            self.assertEqual(run(scenario(server)), ([], 1000))
            self.assertEqual(server.wait(), 0)
            lines = server.wait_stdout(lambda out: out.count(b"\n") >= 2).decode().splitlines()
            self.assertEqual([line[0] for line in lines], ["+", "-"], lines)
            self.assertEqual(lines[1].split("\t"), ["-" + lines[0][1:].split("\t")[0], "1000"])


class TypedLines(unittest.TestCase):
    """--text-prefix, --binary-prefix, --base64: the type of each message on both sides."""
    TYPED = ("--text-prefix", "T:", "--binary-prefix", "B:", "--base64")

    def test_each_message_is_written_after_its_prefix_and_each_prefixed_line_sent_as_its_type(self):
        async def scenario(server):
            async with connect(server.url) as ws:
                await ws.send("two\nlines")
                await ws.send(b"\x00\xff\n")
                await ws.send(b"")
                await ws.send("T:not a prefix here")
                out = await asyncio.get_running_loop().run_in_executor(
                    None, server.wait_stdout, lambda out: out.count(b"\n") >= 5)
                me = out.split(b"\t")[0].decode()
                server.send(f"T:typed text\nB:AAEC\nB:not base64!\nplain\nB:\n{me}\tnot addressed\n".encode())
                server.end_input()
                return out, me, await receive_until_close(ws)

        with Serve("--pipe", "--prefix-client", *self.TYPED) as server:
            out, me, got = run(scenario(server))
            self.assertEqual(out.decode(), f"{me}\tT:two\n{me}\tlines\n{me}\tB:AP8K\n{me}\tB:\n{me}\tT:T:not a prefix here\n")
            self.assertEqual(got, ["typed text", b"\x00\x01\x02", "plain", b"", f"{me}\tnot addressed"])
            self.assertEqual(server.wait(), 0)
            err = server.stderr.text()
            self.assertIn("stdin record 3 is not base64 after the binary prefix 'B:' (--base64): dropped", err)
            self.assertIn("--base64: 1 record not base64 after the binary prefix were dropped", err)

    def test_addressed_records_are_typed_after_the_id(self):
        async def scenario(server):
            async with connect(server.url) as a, connect(server.url) as b:
                await hello(server, a, "a")
                await hello(server, b, "b")
                out = server.wait_stdout(lambda out: True).decode()
                id_a = next(line.split("\t")[0] for line in out.splitlines() if line.endswith("\tT:a"))
                server.send(f"{id_a}\tB:/w==\n*\tT:all\n".encode())
                server.end_input()
                return await asyncio.gather(receive_until_close(a), receive_until_close(b))

        async def hello(server, ws, text):
            await ws.send(text)
            await asyncio.get_running_loop().run_in_executor(
                None, server.wait_stdout, lambda out: f"\tT:{text}\n".encode() in out)

        with Serve("--pipe", "--addressed", "--prefix-client", *self.TYPED) as server:
            got_a, got_b = run(scenario(server))
            self.assertEqual(got_a, [b"\xff", "all"])
            self.assertEqual(got_b, ["all"])
            self.assertEqual(server.wait(), 0)

    def test_a_large_fragmented_binary_message_is_one_line_of_base64(self):
        blob = bytes(range(256)) * (3 * 4096 + 1)  # over 3 MiB, past the gathering bound: streamed

        async def scenario(server):
            async with connect(server.url, max_size=None) as ws:
                await ws.send([blob[i:i + 100_003] for i in range(0, len(blob), 100_003)])
                await ws.send("after")
                await asyncio.get_running_loop().run_in_executor(
                    None, server.wait_stdout, lambda out: out.endswith(b"T:after\n"))

        with Serve("--pipe", *self.TYPED) as server:
            run(scenario(server))
            out = server.wait_stdout(lambda out: True)
            self.assertEqual(out, b"B:" + base64.b64encode(blob) + b"\nT:after\n")

    def test_a_message_cut_short_is_written_as_far_as_it_came_and_its_line_ended(self):
        with Serve("--pipe", *self.TYPED) as server:
            with RawClient(server.port) as raw:  # its exit ends the connection (FIN) in mid-message
                self.assertEqual(raw.handshake().status, 101)
                raw.send_frame(0x2, b"partial", fin=False)
            server.wait_stderr(r"\[1\] a message was cut short by the end of the connection after 7 bytes: "
                               r"its line ends there")

            async def scenario():
                async with connect(server.url) as ws:
                    await ws.send("next")
                    await asyncio.get_running_loop().run_in_executor(
                        None, server.wait_stdout, lambda out: out.endswith(b"T:next\n"))

            run(scenario())
            self.assertEqual(server.wait_stdout(lambda out: True), b"B:cGFydGlhbA==\nT:next\n")


class SlowClient(unittest.TestCase):
    def test_a_stalled_client_is_cut_with_1008_and_the_others_get_everything(self):
        # 20 MB, far more than the socket buffers hold, at about 5 MB/s: what healthy clients take
        # easily, so that only the stalled one falls behind.
        records = lines(20000, width=1000)
        with Serve("--pipe", "--queue-limit", "1M", "--close-timeout", "30s") as server:
            # The stalled client: a raw socket with a small receive buffer that reads nothing.
            stalled = socket.socket()
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stalled.connect(("127.0.0.1", server.port))
            stalled.sendall(handshake_request(server.port))
            head = b""
            while b"\r\n\r\n" not in head:
                head += stalled.recv(1)
            self.assertIn(b" 101 ", head.split(b"\r\n")[0])

            async def scenario():
                fast = [await connect(server.url) for _ in range(2)]
                for i, ws in enumerate(fast):
                    await hello(server, ws, f"fast {i}")
                started = time.monotonic()
                feeding = feed(server, ("\n".join(records) + "\n").encode(), slices=200, pause=0.02)
                got = await asyncio.gather(*(receive_until_close(ws, 20 * TIME_SCALE) for ws in fast))
                await feeding
                return got, [ws.close_code for ws in fast], time.monotonic() - started

            got, codes, took = run(scenario(), 120 * TIME_SCALE)
            for messages in got:
                self.assertEqual(len(messages), len(records))
                self.assertEqual(messages, records)
            self.assertEqual(codes, [1000, 1000])
            self.assertLess(took, 30 * TIME_SCALE)
            line = server.wait_stderr(r"fell .* behind, over --queue-limit 1M: closing it with 1008")
            # Now read what the stalled client was sent: some records, then the close frame 1008.
            client = RawClient.__new__(RawClient)
            client.sock, client.timeout, client.buffer, client.port = stalled, TIMEOUT, bytearray(), server.port
            received = 0
            while True:
                frame = client.recv_frame()
                if frame.opcode == 0x8:
                    break
                received += 1
            self.assertEqual(frame.close_code, 1008, line)
            self.assertLess(received, len(records))
            client.send_frame(0x8, close_payload(1008))
            stalled.close()
            self.assertEqual(server.wait(), 0)

    def test_one_slow_client_alone_is_never_cut_stdin_waits_for_it(self):
        records = lines(3000, width=1000)  # 3 MB through a 64 KiB queue limit

        async def scenario(server):
            async with connect(server.url, max_queue=1) as ws:
                await hello(server, ws, "slow")
                feeding = feed(server, ("\n".join(records) + "\n").encode())
                got = []
                for _ in range(len(records)):
                    got.append(await asyncio.wait_for(ws.recv(), TIMEOUT))
                    if len(got) % 100 == 0:
                        await asyncio.sleep(0.02)  # slower than stdin
                got += await receive_until_close(ws)
                await feeding
                return got, ws.close_code

        with Serve("--pipe", "--queue-limit", "64K") as server:
            got, code = run(scenario(server), 60 * TIME_SCALE)
            self.assertEqual(got, records)
            self.assertEqual(code, 1000)
            self.assertEqual(server.wait(), 0)
            self.assertNotIn("1008", server.stderr.text())


class Limits(unittest.TestCase):
    def test_max_connections_answers_503(self):
        async def scenario(server):
            async with connect(server.url), connect(server.url):
                with self.assertRaises(Exception) as refused:
                    async with connect(server.url):
                        pass
                return refused.exception

        with Serve("--pipe", "--max-connections", "2") as server:
            e = run(scenario(server))
            self.assertEqual(getattr(e, "status_code", None), 503, repr(e))

    def test_one_with_reject_busy_answers_503(self):
        async def scenario(server):
            async with connect(server.url) as first:
                await hello(server, first, "first")
                with self.assertRaises(Exception) as refused:
                    async with connect(server.url):
                        pass
                return refused.exception

        with Serve("--pipe", "--one", "--reject-busy") as server:
            e = run(scenario(server))
            self.assertEqual(getattr(e, "status_code", None), 503, repr(e))

    def test_one_makes_later_clients_wait_for_their_turn(self):
        async def scenario(server):
            first = await connect(server.url)
            await hello(server, first, "first")
            second = await connect(server.url)
            await second.send("second waits")
            server.send(b"for the first\n")
            self.assertEqual(await asyncio.wait_for(first.recv(), TIMEOUT), "for the first")
            await asyncio.sleep(0.2 * TIME_SCALE)
            self.assertNotIn(b"second waits", server.stdout.data, "a waiting client was read")
            await first.close()
            await asyncio.get_running_loop().run_in_executor(
                None, server.wait_stdout, lambda out: b"second waits\n" in out)
            server.send(b"for the second\n")
            server.end_input()
            got = await receive_until_close(second)
            return got, second.close_code

        with Serve("--pipe", "--one") as server:
            got, code = run(scenario(server))
            self.assertEqual(got, ["for the second"])
            self.assertEqual(code, 1000)
            self.assertEqual(server.wait(), 0)


class Ending(unittest.TestCase):
    def test_keep_open_serves_after_the_end_of_stdin(self):
        async def scenario(server):
            async with connect(server.url) as ws:
                await hello(server, ws, "one")
                server.send(b"last line\n")
                server.end_input()
                self.assertEqual(await asyncio.wait_for(ws.recv(), TIMEOUT), "last line")
                server.wait_stderr("end of stdin")
            async with connect(server.url) as late:
                await hello(server, late, "still here")

        with Serve("--pipe", "--keep-open", "-v") as server:
            run(scenario(server))
            server.proc.send_signal(signal.SIGINT)
            self.assertEqual(server.wait(), 130)

    def test_sigint_closes_with_1001_and_exits_130(self):
        async def scenario(server):
            clients = [await connect(server.url) for _ in range(2)]
            for i, ws in enumerate(clients):
                await hello(server, ws, f"c{i}")
            server.proc.send_signal(signal.SIGINT)
            for ws in clients:
                await receive_until_close(ws)
            return [ws.close_code for ws in clients]

        with Serve("--pipe") as server:
            self.assertEqual(run(scenario(server)), [1001, 1001])
            self.assertEqual(server.wait(), 130)

    def test_live_reads_stdin_without_clients_and_says_what_reached_nobody(self):
        with Serve("--pipe", "--live", "-v") as server:
            server.send(b"nobody\nhears\n")
            server.end_input()
            self.assertEqual(server.wait(), 0)
            self.assertIn("2 records read while no client was connected reached nobody", server.stderr.text())

    def test_closed_stdout_is_a_quiet_end(self):
        async def scenario(server):
            async with connect(server.url) as ws:
                await ws.send("into a closed pipe")
                await receive_until_close(ws)
                return ws.close_code

        # stdout is a pipe whose reader has gone, as with `| head`
        with Serve("--pipe", stdout_closed=True) as server:
            self.assertEqual(run(scenario(server)), 1001)
            self.assertEqual(server.wait(), 0)


class Usage(unittest.TestCase):
    def test_usage_errors_exit_64(self):
        for args in (["serve"], ["serve", "--pipe", "--", "cat"], ["serve", "--pipe", "--threads", "2"],
                     ["serve", "--pipe", "--binary", "--prefix-client"], ["serve", "--pipe", "--reject-busy"],
                     ["serve", "--one", "--", "cat"], ["serve", "--", "no-such-command-here"],
                     ["serve", "--pipe", "--addressed", "--binary"], ["serve", "--pipe", "--addressed", "--one"],
                     ["serve", "--addressed", "--", "cat"], ["serve", "--pipe", "--events", "--binary"],
                     ["serve", "--events", "--", "cat"], ["serve", "--pipe", "--binary", "--base64"],
                     ["serve", "--pipe", "--text-prefix", ""], ["serve", "--pipe", "--text-prefix", "x",
                                                                "--binary-prefix", "x"],
                     ["serve", "--pipe", "--binary-prefix", "a\nb"],
                     ["serve", "--pipe", "--header", "no colon"]):
            result = run_wsl(*args, "--port", "0")
            self.assertEqual(result.returncode, 64, f"{args}: {result.stderr}")
            self.assertEqual(result.stdout, "")


if __name__ == "__main__":
    unittest.main(verbosity=2)
