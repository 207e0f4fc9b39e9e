#!/usr/bin/python3
"""`wsl pipe` against a server we did not write (or `wsl echo`).

    test_pipe.py --peer websockets|ws|wsl [unittest options]

Echo round trips run against every peer; the tests that need a server doing something particular
(closing with a code, refusing, never answering, recording what it received) run against the
python3-websockets and node `ws` peers; the ones that do not depend on the server at all (usage,
nobody listening, a terminal on stdin) run once, with the websockets peer.
"""

import base64
import json
import os
import pty
import random
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from client_harness import (TIMEOUT, WSL, Peer, Wsl, _die_with_parent, make_certificate, peer_from_argv,
                            pipe_round_trip, run_wsl, unused_port)

PEER = peer_from_argv(sys.argv)
INVALID_UTF8 = b"\xc3\x28\xa0\xa1\xe2\x28\xa1\xe2\x82\x28\xf0\x28\x8c\xbc\xed\xa0\x80\xff\xfe\xc0\xaf"


def pipe(url, *options, input=b"", timeout=TIMEOUT):
    return run_wsl("pipe", *options, url, input=input, timeout=timeout)


def peer_independent(test):
    """Run once, with one peer: the server plays no part (or is the test's own)."""
    return unittest.skipIf(PEER != "websockets", "runs with the websockets peer only")(test)


def exchange(test, url, data: bytes, expected: bytes, *options: str, timeout: float = TIMEOUT) -> str:
    """Writes `data` to `wsl pipe`, waits until `expected` has come back on stdout, then ends stdin:
    wsl must close, exit 0 and have written exactly `expected`. Returns its stderr.

    stdin ends only once the replies are in: a server may well not answer messages that it reads
    after our close frame (python3-websockets does not), and that is not what these tests test."""
    with Wsl("pipe", *options, url) as wsl:
        wsl.send(data)
        wsl.output(len(expected), timeout)
        wsl.end_input()
        status = wsl.wait(timeout)
        stderr = wsl.stderr_text()
        test.assertEqual(status, 0, stderr)
        test.assertEqual(wsl.stdout.data(), expected)
        return stderr


class Echo(unittest.TestCase):
    """Round trips through an echo server."""

    @classmethod
    def setUpClass(cls):
        cls.peer = Peer(PEER).__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.peer.__exit__()

    def test_lines_round_trip(self):
        text = "hello\nworld\n\nünïcødé € 中文 😀\n  spaces and\ttabs  \r\n".encode()
        stderr = exchange(self, self.peer.url, text, text)
        self.assertEqual(stderr, "")

    def test_last_line_without_newline_is_a_message(self):
        with Peer(PEER) as peer, Wsl("pipe", peer.url) as wsl:
            wsl.send(b"first\nlast")
            self.assertEqual(wsl.line(), b"first\n")
            wsl.end_input()  # sends "last", then the close
            self.assertEqual(wsl.wait(), 0, wsl.stderr_text())
            if peer.records_events:
                self.assertEqual([bytes.fromhex(m["hex"]) for m in peer.messages(2)], [b"first", b"last"])

    def test_end_of_stdin_closes_and_exits_0(self):
        done = pipe(self.peer.url, input=b"")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual((done.stdout, done.stderr), (b"", b""))

    def test_many_lines_from_a_regular_file_in_order(self):
        rng = random.Random(1)
        lines = [("%06d " % i + "x" * rng.randrange(0, 300)).encode() for i in range(20000)]
        data = b"\n".join(lines) + b"\n"
        with tempfile.TemporaryFile() as f:
            f.write(data)
            f.seek(0)
            # At the end of the file wsl keeps receiving (-n) until the 20000th echo.
            done = subprocess.run([WSL, "pipe", "-n", "--max-messages", "20000", self.peer.url], stdin=f,
                                  capture_output=True, timeout=3 * TIMEOUT, preexec_fn=_die_with_parent)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout, data)

    def test_replies_that_arrive_after_our_close_are_written(self):
        # stdin ends at once: the close frame follows the lines, and the echoes come back after it.
        # They came before the server's close, so none may be lost (RFC 6455 1.4 discards only
        # what follows the peer's close). python3-websockets answers nothing that it reads after
        # receiving our close, which here is everything: it runs this with an empty answer.
        lines = b"".join(b"line %d\n" % i for i in range(50))
        for attempt in range(5):
            done = pipe(self.peer.url, input=lines)
            self.assertEqual(done.returncode, 0, done.stderr)
            if PEER == "websockets":
                self.assertTrue(lines.startswith(done.stdout), done.stdout)
            else:
                self.assertEqual(done.stdout, lines, f"attempt {attempt + 1}")

    def test_a_long_line_is_one_message(self):
        line = b"a" * (3 << 20)
        exchange(self, self.peer.url, line + b"\n", line + b"\n")

    def test_binary_all_byte_values_and_invalid_utf8(self):
        data = bytes(range(256)) * 64 + INVALID_UTF8 + b"\n\0\r\n"
        exchange(self, self.peer.url, data, data, "--binary", "--chunk", "1000")

    def test_binary_large_random(self):
        data = random.Random(2).randbytes(5 << 20)
        exchange(self, self.peer.url, data, data, "-b", timeout=3 * TIMEOUT)

    def test_invalid_utf8_line_goes_as_binary_and_comes_back_exactly(self):
        data = b"caf\xc3\xa9\n" + INVALID_UTF8 + b"\nok\n" + b"\xff\n"
        stderr = exchange(self, self.peer.url, data, data)
        self.assertIn("not valid UTF-8", stderr)
        self.assertEqual(stderr.count("\n"), 1, "warned once")

    def test_nul_delimited(self):
        exchange(self, self.peer.url, b"a\0b\nc\0\0", b"a\0b\nc\0\0", "-0")

    def test_once_exits_after_the_first_message(self):
        with Wsl("pipe", "--once", self.peer.url) as wsl:
            wsl.send(b"one\ntwo\nthree\n")  # stdin stays open: the exit is --once's doing
            self.assertEqual(wsl.wait(), 0, wsl.stderr_text())
            self.assertEqual(wsl.stdout.data(), b"one\n")

    def test_max_messages(self):
        with Wsl("pipe", "--max-messages", "3", self.peer.url) as wsl:
            wsl.send(b"1\n2\n3\n4\n5\n")
            self.assertEqual(wsl.wait(), 0, wsl.stderr_text())
            self.assertEqual(wsl.stdout.data(), b"1\n2\n3\n")

    def test_no_close_then_once(self):
        # The request/response idiom: `echo request | wsl pipe -n -1 URL`.
        done = pipe(self.peer.url, "-n", "-1", input=b"request\n")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout, b"request\n")

    def test_sigint_closes_with_1001_and_exits_130(self):
        with Wsl("pipe", "-v", self.peer.url) as wsl:
            wsl.send(b"before the signal\n")
            self.assertEqual(wsl.line(), b"before the signal\n")
            wsl.signal(signal.SIGINT)
            self.assertEqual(wsl.wait(), 130, wsl.stderr_text())
            self.assertIn("SIGINT: closing with 1001", wsl.stderr_text())
        if self.peer.records_events:
            close = self.peer.wait_event("close", lambda e: e["code"] == 1001)
            self.assertEqual(close["reason"], "interrupted")

    def test_stdout_closed_is_a_quiet_end(self):
        data = b"".join(b"line %d\n" % i for i in range(200000))
        read_end, write_end = os.pipe()
        with tempfile.TemporaryFile() as f:
            f.write(data)
            f.seek(0)
            proc = subprocess.Popen([WSL, "pipe", "-n", self.peer.url], stdin=f, stdout=write_end,
                                    stderr=subprocess.PIPE, preexec_fn=_die_with_parent)
        os.close(write_end)
        try:
            deadline = time.monotonic() + TIMEOUT
            first = b""
            while b"\n" not in first:
                ready, _, _ = select.select([read_end], [], [], max(0.0, deadline - time.monotonic()))
                self.assertTrue(ready, "no output before the deadline")
                data = os.read(read_end, 4096)
                if not data:
                    self.fail(f"wsl closed stdout without writing a line; stderr:\n{proc.communicate(timeout=TIMEOUT)[1]}")
                first += data
            self.assertTrue(first.startswith(b"line 0\n"))
        finally:
            os.close(read_end)  # like `| head -n 1`; -n keeps wsl receiving, so it must notice
        try:
            _, stderr = proc.communicate(timeout=TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.assertEqual(proc.returncode, 0, stderr)
        self.assertEqual(stderr, b"")


class Server(unittest.TestCase):
    """Servers that close, refuse, never answer or record what they see."""

    def setUp(self):
        if PEER == "wsl":
            self.skipTest("needs a test peer")

    def test_local_address_is_where_the_connection_comes_from(self):
        with Peer(PEER, "echo") as peer:
            pipe_round_trip(self, peer.url, "--local-address", "127.0.0.6")
            self.assertEqual(peer.wait_event("open")["remote"], "127.0.0.6")
            # No server address of its family, and an address this machine does not have.
            done = pipe(peer.url, "--local-address", "::1", input=b"x\n")
            self.assertEqual(done.returncode, 69, done.stderr)
            self.assertEqual(done.stderr.decode(), f"wsl pipe: {peer.url}: no address of the server's in the family "
                                                   "(IPv4, IPv6) of --local-address\n")
            done = pipe(peer.url, "--local-address", "192.0.2.1", input=b"x\n")
            self.assertEqual(done.returncode, 69, done.stderr)
            self.assertIn(b"(a --local-address this machine does not have, or no local port left)", done.stderr)
            done = pipe(peer.url, "--local-address", "127.0.0.0/30", input=b"x\n")
            self.assertEqual(done.returncode, 64, done.stderr)
            self.assertEqual(done.stderr.decode(), "wsl pipe: --local-address: one address (wsl loadtest spreads its "
                                                   "connections over several)\n")

    def server_closes(self, code: int, reason: str, *options: str):
        script = [{"text": "first"}, {"hex": INVALID_UTF8.hex()}, {"text": "third ünï"}, {"hex": ""}]
        with Peer(PEER, "script", "--send", json.dumps(script), "--close-code", str(code), "--close-reason",
                  reason) as peer:
            with Wsl("pipe", *options, peer.url) as wsl:  # stdin stays open: the server closes first
                status = wsl.wait()
                self.assertEqual(wsl.stdout.data(), b"first\n" + INVALID_UTF8 + b"\nthird \xc3\xbcn\xc3\xaf\n\n")
                return status, wsl.stderr_text()

    def test_server_closes_with_1000(self):
        status, stderr = self.server_closes(1000, "")
        self.assertEqual(status, 0, stderr)
        self.assertRegex(stderr, r"server closed the connection: 1000\b")

    def test_server_closes_with_1001(self):
        status, stderr = self.server_closes(1001, "restarting")
        self.assertEqual(status, 0, stderr)
        self.assertRegex(stderr, r"server closed the connection: 1001 .*\"restarting\"")

    def test_server_closes_with_4000(self):
        status, stderr = self.server_closes(4000, "bye now")
        self.assertEqual(status, 76, stderr)
        self.assertRegex(stderr, r"server closed the connection: 4000 \"bye now\"")

    def test_server_closes_with_4000_quietly(self):
        status, stderr = self.server_closes(4000, "bye now", "-q")
        self.assertEqual(status, 76, stderr)
        self.assertEqual(stderr, "")

    def test_close_code_and_reason_at_end_of_stdin(self):
        with Peer(PEER) as peer:
            exchange(self, peer.url, b"x\n", b"x\n", "--close-code", "4001", "--close-reason", "done here")
            close = peer.wait_event("close")
            self.assertEqual((close["code"], close["reason"]), (4001, "done here"))

    def test_messages_sent_as_text_and_binary(self):
        with Peer(PEER) as peer:
            data = b"text line\n" + INVALID_UTF8 + b"\n"
            exchange(self, peer.url, data, data)
            got = [(m["type"], bytes.fromhex(m["hex"])) for m in peer.messages(2)]
            self.assertEqual(got, [("text", b"text line"), ("binary", INVALID_UTF8)])

    def test_binary_messages_of_at_most_chunk_bytes(self):
        data = bytes(range(256)) * 16
        with Peer(PEER) as peer:
            exchange(self, peer.url, data, data, "--binary", "--chunk", "1000")
            messages = peer.messages_totalling(len(data))
            self.assertEqual(b"".join(bytes.fromhex(m["hex"]) for m in messages), data)
            self.assertTrue(all(m["type"] == "binary" and 0 < len(m["hex"]) <= 2000 for m in messages), messages)

    def test_nul_mode_messages(self):
        with Peer(PEER) as peer:
            with Wsl("pipe", "--null", peer.url) as wsl:
                wsl.send(b"a\0b\nc\0\0tail")
                wsl.output(len(b"a\0b\nc\0\0"))
                wsl.end_input()  # sends "tail", then the close
                self.assertEqual(wsl.wait(), 0, wsl.stderr_text())
            got = [bytes.fromhex(m["hex"]) for m in peer.messages(4)]
            self.assertEqual(got, [b"a", b"b\nc", b"", b"tail"])

    def test_once_closes_with_1000(self):
        with Peer(PEER) as peer:
            with Wsl("pipe", "-1", peer.url) as wsl:
                wsl.send(b"only\n")
                self.assertEqual(wsl.wait(), 0, wsl.stderr_text())
            self.assertEqual(peer.wait_event("close")["code"], 1000)

    def test_linger_waits_for_replies_before_closing(self):
        with Peer(PEER) as peer:
            done = pipe(peer.url, "--linger", "0.3", input=b"one\ntwo\nthree\n")
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertEqual(done.stdout, b"one\ntwo\nthree\n")

    def test_headers_origin_subprotocol(self):
        with Peer(PEER, "echo", "--subprotocols", "chat.v2") as peer:
            done = pipe(peer.url + "chat?room=1", "-v", "-H", "X-Test: 42", "-H", "Authorization: Bearer abc",
                        "-H", "Cookie: sid=s3cret-c00kie; theme=dark",
                        "--origin", "http://example.test", "--subprotocol", "other", "--subprotocol", "chat.v2",
                        input=b"x\n")
            stderr = done.stderr.decode()
            self.assertEqual(done.returncode, 0, stderr)
            opened = peer.wait_event("open")
            headers = {name.lower(): value for name, value in opened["headers"]}
            self.assertEqual(opened["path"], "/chat?room=1")
            self.assertEqual(headers.get("x-test"), "42")
            self.assertEqual(headers.get("authorization"), "Bearer abc")
            self.assertEqual(headers.get("cookie"), "sid=s3cret-c00kie; theme=dark")
            self.assertEqual(headers.get("origin"), "http://example.test")
            self.assertEqual(headers.get("sec-websocket-protocol"), "other, chat.v2")
            self.assertEqual(opened["subprotocol"], "chat.v2")
            # -v shows both heads.
            self.assertIn("> GET /chat?room=1 HTTP/1.1", stderr)
            self.assertIn("> X-Test: 42", stderr)
            self.assertIn("> Cookie: sid=***; theme=***", stderr)  # credentials are never printed
            self.assertNotIn("s3cret", stderr)
            self.assertIn("> Authorization: Bearer ***", stderr)
            self.assertRegex(stderr, r"< HTTP/1.1 101 ")
            self.assertRegex(stderr, r"(?i)< Sec-WebSocket-Protocol: chat.v2")

    def test_headers_from_a_file(self):
        # -H @FILE (curl's form): a token stays out of the process list. CRLF line ends, an empty
        # line, spaces around the value; -H before and after it keep their order.
        with tempfile.TemporaryDirectory() as directory, Peer(PEER) as peer:
            path = os.path.join(directory, "headers")
            with open(path, "wb") as f:
                f.write(b"Authorization: Bearer s3cret-t0ken\r\n\r\nX-Tenant:  acme \r\nX-Empty:\n")
            done = pipe(peer.url, "-v", "-H", "X-First: 1", "-H", "@" + path, "-H", "X-Last: 2", input=b"x\n")
            stderr = done.stderr.decode()
            self.assertEqual(done.returncode, 0, stderr)
            opened = peer.wait_event("open")
            sent = [(name.lower(), value) for name, value in opened["headers"]
                    if name.lower() in ("x-first", "authorization", "x-tenant", "x-empty", "x-last")]
            self.assertEqual(sent, [("x-first", "1"), ("authorization", "Bearer s3cret-t0ken"), ("x-tenant", "acme"),
                                    ("x-empty", ""), ("x-last", "2")])
            self.assertIn("> Authorization: Bearer ***", stderr)
            self.assertNotIn("s3cret", stderr)
            # What is wrong with the file: one line that names the line, not its content.
            bad = os.path.join(directory, "bad")
            with open(bad, "wb") as f:
                f.write(b"X-Ok: 1\nsecret-without-a-colon\n")
            big = os.path.join(directory, "big")
            with open(big, "wb") as f:
                f.write(b"X-Big: " + b"x" * (64 << 10) + b"\n")
            for arg, expected in ((bad, f"-H @{bad}: line 2: expected 'Name: value'"), (big, f"-H @{big}: larger than 64K"),
                                  (directory, f"-H @{directory}: cannot read it"),
                                  (os.path.join(directory, "no"), f"-H @{directory}/no: cannot read it: No such file")):
                with self.subTest(file=arg):
                    done = pipe(peer.url, "-H", "@" + arg, input=b"")
                    self.assertEqual(done.returncode, 64, done.stderr)
                    self.assertEqual(len(done.stderr.splitlines()), 1, done.stderr)
                    self.assertIn(expected, done.stderr.decode())
                    self.assertNotIn(b"secret", done.stderr)

    def test_header_and_subprotocol_before_the_url_take_one_value_each(self):
        # `-H 'X: a' URL`: the URL is not a second header value (nor a second subprotocol).
        with Peer(PEER, "echo", "--subprotocols", "chat.v2") as peer:
            done = run_wsl("pipe", "-H", "X-Test: 42", "--subprotocol", "chat.v2", peer.url, "-H", "X-Other: 1",
                           "-n", "-1", input=b"x\n")  # -n -1: the echo comes back before our close
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertEqual(done.stdout, b"x\n")
            opened = peer.wait_event("open")
            headers = {name.lower(): value for name, value in opened["headers"]}
            self.assertEqual((headers.get("x-test"), headers.get("x-other")), ("42", "1"))
            self.assertEqual(headers.get("sec-websocket-protocol"), "chat.v2")

    def test_vv_shows_frames(self):
        with Peer(PEER) as peer:
            stderr = exchange(self, peer.url, b"abc\n", b"abc\n", "-vv")
            self.assertIn("> text message, 3 bytes", stderr)
            self.assertIn("< text message, 3 bytes", stderr)
            self.assertIn("> close 1000", stderr)
            self.assertIn("< close 1000", stderr)

    def test_wss(self):
        with tempfile.TemporaryDirectory() as directory:
            files = make_certificate(directory)
            if not files:
                self.skipTest("no openssl to make a certificate")
            with Peer(PEER, "echo", "--tls", *files) as peer:
                self.assertTrue(peer.url.startswith("wss://"), peer.url)
                exchange(self, peer.url, b"over TLS\n", b"over TLS\n", "--cacert", files[0])
                exchange(self, peer.url, b"unverified\n", b"unverified\n", "--insecure")
                done = pipe(peer.url, input=b"x\n")  # the system's CAs do not know this certificate
                self.assertEqual(done.returncode, 77, done.stderr)
                self.assertIn(b"TLS verification failed", done.stderr)

    def test_deflate(self):
        line = b"compressible " * 10000
        with Peer(PEER, "echo", "--deflate") as peer:
            stderr = exchange(self, peer.url, line + b"\n", line + b"\n", "--deflate", "-v")
            self.assertRegex(stderr, r"(?i)< Sec-WebSocket-Extensions: permessage-deflate")
            headers = {name.lower(): value for name, value in peer.wait_event("open")["headers"]}
            self.assertIn("permessage-deflate", headers.get("sec-websocket-extensions", ""))

    def test_handshake_refused_403(self):
        with Peer(PEER, "refuse") as peer:
            done = pipe(peer.url, input=b"x\n")
            stderr = done.stderr.decode()
            self.assertEqual(done.returncode, 76, stderr)
            self.assertIn("HTTP 403", stderr)
            self.assertIn("forbidden: no token for this test", stderr)

    def test_sigint_during_the_handshake(self):
        with Peer(PEER, "silent") as peer, Wsl("pipe", peer.url) as wsl:
            peer.wait_event("tcp")
            wsl.signal(signal.SIGINT)
            self.assertEqual(wsl.wait(), 130, wsl.stderr_text())

    def test_server_never_answers_the_handshake(self):
        with Peer(PEER, "silent") as peer:
            done = pipe(peer.url, "--handshake-timeout", "1", input=b"x\n")
            self.assertEqual(done.returncode, 75, done.stderr)
            self.assertIn(b"timed out", done.stderr)
            self.assertGreater(done.elapsed, 0.9)
            self.assertLess(done.elapsed, 1 + TIMEOUT / 2)


class TypedLines(unittest.TestCase):
    """--text-prefix, --binary-prefix and --base64: both kinds of message on lines, as websocat does."""

    TYPED = ("--text-prefix", "T:", "--binary-prefix", "B:", "--base64")

    def setUp(self):
        if PEER == "wsl":
            self.skipTest("needs a test peer")

    def test_messages_received_are_written_with_their_type(self):
        script = [{"text": "first"}, {"hex": INVALID_UTF8.hex()}, {"hex": b"a\nb\0".hex()}, {"text": ""},
                  {"hex": ""}, {"text": "T:x ü"}]
        expected = [b"T:first", b"B:" + base64.b64encode(INVALID_UTF8), b"B:YQpiAA==", b"T:", b"B:", b"T:T:x \xc3\xbc"]
        with Peer(PEER, "script", "--send", json.dumps(script)) as peer:
            for delimiter, options in ((b"\n", []), (b"\0", ["-0"])):
                with self.subTest(options=options), Wsl("pipe", *self.TYPED, *options, peer.url) as wsl:
                    self.assertEqual(wsl.wait(), 0, wsl.stderr_text())
                    self.assertEqual(wsl.stdout.data(), b"".join(line + delimiter for line in expected))
            # Without --base64 a binary payload is written as it is, after its prefix.
            with Wsl("pipe", "--binary-prefix", "bin ", peer.url) as wsl:
                self.assertEqual(wsl.wait(), 0, wsl.stderr_text())
                self.assertEqual(wsl.stdout.data().split(b"\n")[:3], [b"first", b"bin " + INVALID_UTF8, b"bin a"])

    def test_a_large_binary_message_is_one_line_of_base64(self):
        data = random.Random(7).randbytes(60001)  # read in pieces that are no multiple of 3
        with Peer(PEER, "script", "--send", json.dumps([{"hex": data.hex()}])) as peer:
            with Wsl("pipe", "--base64", peer.url) as wsl:
                self.assertEqual(wsl.wait(), 0, wsl.stderr_text())
                self.assertEqual(wsl.stdout.data(), base64.b64encode(data) + b"\n")

    def test_lines_are_sent_as_their_prefix_says(self):
        lines = b"T:B:x\nB:AAr/\nplain\nB:\nT:\n" + INVALID_UTF8 + b"\nB:" + base64.b64encode(INVALID_UTF8)
        with Peer(PEER, "relay") as peer:
            with Wsl("pipe", *self.TYPED, peer.url) as wsl:
                wsl.send(lines)
                wsl.end_input()  # the last line has no newline: a message too
                self.assertEqual(wsl.wait(), 0, wsl.stderr_text())
            got = [(m["type"], bytes.fromhex(m["hex"])) for m in peer.messages(7)]
            self.assertEqual(got, [("text", b"B:x"), ("binary", b"\0\n\xff"), ("text", b"plain"), ("binary", b""),
                                   ("text", b""), ("binary", INVALID_UTF8), ("binary", INVALID_UTF8)])
        # The longer prefix is tried first; without --base64 the rest is the payload.
        with Peer(PEER, "relay") as peer:
            with Wsl("pipe", "--text-prefix", ">", "--binary-prefix", ">>", peer.url) as wsl:
                wsl.send(b">>raw\n>text\n")
                wsl.end_input()
                self.assertEqual(wsl.wait(), 0, wsl.stderr_text())
            got = [(m["type"], bytes.fromhex(m["hex"])) for m in peer.messages(2)]
            self.assertEqual(got, [("binary", b"raw"), ("text", b"text")])

    def test_a_line_that_is_not_base64_ends_the_input(self):
        with Peer(PEER, "relay") as peer:
            with Wsl("pipe", *self.TYPED, peer.url) as wsl:
                wsl.send(b"one\nB:AAr\nthree\n")  # 3 characters: no base64
                status = wsl.wait()
                stderr = wsl.stderr_text()
            self.assertEqual(status, 1, stderr)
            self.assertEqual(len(stderr.splitlines()), 1, stderr)
            self.assertIn("line 2 is not base64 after the binary prefix 'B:'", stderr)
            self.assertEqual(peer.messages(1), [{"event": "message", "type": "text", "hex": b"one".hex()}])
            self.assertEqual(peer.wait_event("close")["code"], 1000)
            self.assertEqual(len([e for e in peer.events if e["event"] == "message"]), 1, peer.events)


class Slash(unittest.TestCase):
    """--slash: wscat's commands between the lines of stdin."""

    def test_ping_and_close_between_lines(self):
        with Peer(PEER) as peer:
            with Wsl("pipe", "--slash", peer.url) as wsl:
                wsl.send(b"/ping hello\n//literal\nplain\n/nope\n/ping\n/close 999\n/ping " + b"x" * 126 + b"\n")
                wsl.output(len(b"/literal\nplain\n"))
                wsl.stderr_until('pong "hello" after ')
                wsl.stderr_until('pong "" after ')
                wsl.send(b"/close 4000 bye now\nnot sent\n")
                status = wsl.wait()
                stderr = wsl.stderr_text()
                self.assertEqual(status, 0, stderr)
                self.assertEqual(wsl.stdout.data(), b"/literal\nplain\n")
            self.assertIn("unknown command '/nope': not sent", stderr)
            self.assertIn("/close 999: expected a code of 1000-1003, 1007-1014 or 3000-4999", stderr)
            self.assertIn("/ping: 126 bytes of payload, a ping carries at most 125: not sent", stderr)
            self.assertRegex(stderr, r'pong "hello" after \d+\.\d{3} ms')
            if peer.records_events:
                close = peer.wait_event("close")
                self.assertEqual((close["code"], close["reason"]), (4000, "bye now"))
                self.assertEqual([bytes.fromhex(m["hex"]) for m in peer.messages(2)], [b"/literal", b"plain"])
                self.assertEqual(len([e for e in peer.events if e["event"] == "message"]), 2, "nothing after /close")

    def test_a_last_line_without_newline_can_be_a_command_and_usage_errors(self):
        with Peer(PEER) as peer:
            result = run_wsl("pipe", "--slash", peer.url, input=b"/close 4001")
            self.assertEqual(result.returncode, 0, result.stderr)
            if peer.records_events:
                self.assertEqual(peer.wait_event("close")["code"], 4001)
        for options in (["--slash", "--binary"], ["--slash", "ws://127.0.0.1:1/", "--", "cat"]):
            result = run_wsl("pipe", *options, *([] if "--" in options else ["ws://127.0.0.1:1/"]))
            self.assertEqual(result.returncode, 64, f"{options}: {result.stderr}")


class RawServer:
    """Answers one connection with `answer`, written as given once the request head has come, then
    hangs up: for answers the peers will not give. `request` is the head it read."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.request = b""

    def __enter__(self) -> "RawServer":
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"ws://127.0.0.1:{self.listener.getsockname()[1]}/"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        return self

    def _serve(self) -> None:
        try:
            connection, _ = self.listener.accept()
        except OSError:
            return
        with connection:
            connection.settimeout(TIMEOUT)
            try:
                while b"\r\n\r\n" not in self.request:
                    chunk = connection.recv(4096)
                    if not chunk:
                        return
                    self.request += chunk
                connection.sendall(self.answer)
                connection.shutdown(socket.SHUT_WR)
                while connection.recv(4096):  # until the client hangs up: no reset to lose the answer
                    pass
            except OSError:
                pass

    def __exit__(self, *exc) -> None:
        self.listener.close()
        self.thread.join(TIMEOUT)


class RawServerAnswers(unittest.TestCase):
    """Answers written byte by byte."""

    @peer_independent
    def test_v_shows_the_http_version_of_the_answer(self):
        with RawServer(b"HTTP/1.0 403 Forbidden\r\nContent-Length: 3\r\n\r\nno\n") as server:
            done = pipe(server.url, "-v", input=b"x\n")
        stderr = done.stderr.decode()
        self.assertTrue(server.request.startswith(b"GET / HTTP/1.1\r\n"), server.request)
        self.assertEqual(done.returncode, 76, stderr)
        self.assertIn("< HTTP/1.0 403 Forbidden\n", stderr)
        self.assertIn("handshake refused: HTTP 403 Forbidden: no", stderr)


class BrokenFrames(unittest.TestCase):
    """A server that breaks RFC 6455 after the handshake (frames written by hand)."""

    @peer_independent
    def test_a_server_that_breaks_the_protocol_gets_the_rfc_close_and_exit_76(self):
        # After a good message, a frame the client must fail the connection for (RFC 6455 section
        # 7.1.7): the good message is out, the close frame says why, one line, exit 76.
        hi = bytes([0x81, 2]) + b"hi"
        cases = [
            ("invalid UTF-8", bytes([0x81, 4]) + b"ok\xff\xfe", 1007, "invalid payload"),
            ("server frame is masked", bytes([0x81, 0x82, 1, 2, 3, 4, ord("o") ^ 1, ord("k") ^ 2]), 1002,
             "protocol error"),
        ]
        for reason, bad, code, name in cases:
            for command in ([], ["--", "cat"]):  # messages to stdout, or to a command's stdin
                with self.subTest(reason=reason, command=command), \
                        Peer("websockets", "rude", "--raw", (hi + bad).hex()) as peer, \
                        Wsl("pipe", "-vv", peer.url, *command) as wsl:
                    self.assertEqual(wsl.wait(), 76, wsl.stderr_text())
                    # Without a command, the good message is on stdout; with one, on its stdin.
                    self.assertEqual(wsl.stdout.data(), b"" if command else b"hi\n")
                    stderr = wsl.stderr_text()
                    self.assertIn("< text message, 2 bytes", stderr)
                    self.assertIn(f'> close {code} ({name}) "{reason}"', stderr)
                    self.assertIn(f"wsl pipe: connection ended: {reason}\n", stderr)
                    # What the server got ends with our close frame, masked, with the code and the
                    # reason (cat's echo of "hi" may come before it).
                    received = bytes.fromhex(peer.wait_event("received")["hex"])
                    frames = []
                    while received:
                        self.assertTrue(received[1] & 0x80, "a client frame is masked")
                        length, mask = received[1] & 0x7F, received[2:6]
                        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(received[6:6 + length]))
                        frames.append((received[0], payload))
                        received = received[6 + length:]
                    self.assertIn(frames[:-1], ([], [(0x81, b"hi")]))
                    self.assertEqual(frames[-1], (0x88, code.to_bytes(2, "big") + reason.encode()))



class Reconnect(unittest.TestCase):
    """--reconnect: another connection when the server closes or goes, stdin going on where it was."""

    def setUp(self):
        if PEER == "wsl":
            self.skipTest("needs a test peer")

    def test_the_server_closes_and_the_next_lines_go_to_a_new_connection(self):
        with Peer(PEER, "echo", "--close-after", "2", "--close-code", "1001", "--close-reason", "restarting") as peer:
            with Wsl("pipe", "--reconnect", peer.url) as wsl:
                wsl.send(b"one\ntwo\n")
                self.assertEqual(wsl.output(8), b"one\ntwo\n")
                # Lines written before wsl has read the server's close would be sent after it, and
                # dropped by the server: the next ones go once the next connection is open.
                peer.events_named("open", 2)
                wsl.send(b"three\nfour\n")
                self.assertEqual(wsl.output(19), b"one\ntwo\nthree\nfour\n")
                peer.events_named("open", 3)
                wsl.send(b"five\n")
                self.assertEqual(wsl.output(24), b"one\ntwo\nthree\nfour\nfive\n")
                wsl.end_input()
                self.assertEqual(wsl.wait(), 0, wsl.stderr_text())
                stderr = wsl.stderr_text()
            self.assertEqual([bytes.fromhex(m["hex"]) for m in peer.messages(5)],
                             [b"one", b"two", b"three", b"four", b"five"])
            self.assertEqual([c["code"] for c in peer.events_named("close", 3)], [1001, 1001, 1000])
        self.assertEqual(stderr.count('server closed the connection: 1001 (going away) "restarting"; '
                                      'connecting again in'), 2, stderr)
        self.assertIn("connected again to ws://127.0.0.1", stderr)
        self.assertIn("(connection 3)", stderr)

    def test_first_message_goes_first_on_every_connection(self):
        first = b'{"subscribe": "t\xc3\xafcks"}'
        with Peer(PEER, "echo", "--close-after", "2", "--close-code", "1001") as peer:
            with Wsl("pipe", "--reconnect", "--first-message", first.decode(), peer.url) as wsl:
                expected = first + b"\n"
                self.assertEqual(wsl.output(len(expected)), expected)
                wsl.send(b"a\n")  # the second message: the server closes after its echo
                expected += b"a\n" + first + b"\n"
                self.assertEqual(wsl.output(len(expected)), expected)
                wsl.send(b"b\n")
                expected += b"b\n" + first + b"\n"
                self.assertEqual(wsl.output(len(expected)), expected)
                wsl.end_input()
                self.assertEqual(wsl.wait(), 0, wsl.stderr_text())
                self.assertEqual(wsl.stdout.data(), expected)
            self.assertEqual([(m["type"], bytes.fromhex(m["hex"])) for m in peer.messages(5)],
                             [("text", first), ("text", b"a"), ("text", first), ("text", b"b"), ("text", first)])

    @peer_independent
    def test_the_first_attempts_fail_until_the_server_is_up(self):
        port = unused_port()
        with Wsl("pipe", "--reconnect", f"ws://127.0.0.1:{port}/") as wsl:
            wsl.send(b"early\n")  # waits in wsl for a connection
            wsl.stderr_until("refused; connecting again in")
            with Peer("websockets", "echo", "--port", str(port)) as peer:
                self.assertEqual(wsl.output(6), b"early\n")
                wsl.end_input()
                self.assertEqual(wsl.wait(), 0, wsl.stderr_text())
                self.assertEqual(peer.messages(1)[0]["hex"], b"early".hex())
            self.assertRegex(wsl.stderr_text(), r"connected to ws://127\.0\.0\.1:\d+/ \(connection 1, after \d+ "
                                                 r"failed attempts?\)")

    @peer_independent
    def test_a_refused_handshake_is_not_tried_again(self):
        with Peer("websockets", "refuse") as peer:
            done = pipe(peer.url, "--reconnect", input=b"x\n")
        self.assertEqual(done.returncode, 76, done.stderr)
        self.assertIn(b"handshake refused: HTTP 403", done.stderr)
        self.assertNotIn(b"connecting again", done.stderr)

    @peer_independent
    def test_reconnect_limit_gives_up_after_so_many_failed_attempts(self):
        done = pipe(f"ws://127.0.0.1:{unused_port()}/", "--reconnect", "--reconnect-limit", "3", input=b"x\n")
        self.assertEqual(done.returncode, 69, done.stderr)
        self.assertEqual(done.stderr.count(b"refused; connecting again in"), 2, done.stderr)
        self.assertIn(b"refused; giving up after 3 attempts in a row (--reconnect-limit)", done.stderr)

    def test_reconnect_limit_counts_connections_that_end_at_once(self):
        with Peer(PEER, "script", "--send", json.dumps([{"text": "hi"}]), "--close-code", "1001") as peer:
            with Wsl("pipe", "--reconnect", "--reconnect-limit", "3", peer.url) as wsl:  # stdin stays open
                status = wsl.wait()
                self.assertEqual(wsl.stdout.data(), b"hi\n" * 3)
                stderr = wsl.stderr_text()
            self.assertEqual(len(peer.events_named("open", 3)), 3)
        self.assertEqual(status, 1, stderr)  # gave up: not the 0 that 1001 alone would give
        self.assertIn("giving up after 3 connections in a row that ended within 5s (--reconnect-limit)", stderr)

    @peer_independent
    def test_the_messages_a_broken_connection_was_writing_are_sent_again(self):
        # The first connection reads nothing, then is reset while wsl is blocked writing to it:
        # what the kernel buffers held is lost with it, but the batch being written goes again,
        # first on the next connection, followed by the rest in order.
        count = 32000
        lines = [b"%06d " % i + b"x" * 993 + b"\n" for i in range(1, count + 1)]
        with Peer("websockets", "echo", "--stall", "1", "--abort-stalled") as peer:
            with Wsl("pipe", "--reconnect", peer.url) as wsl:
                writer = threading.Thread(target=wsl.send, args=(b"".join(lines),))
                writer.start()
                peer.wait_event("abort")
                stderr = wsl.stderr_until("sent again on the next one")
                found = re.search(r"messages (\d+)-(\d+) were being sent when connection 1 ended", stderr)
                self.assertIsNotNone(found, stderr)
                first = int(found[1])
                self.assertGreater(first, 1)  # some went into the first connection's buffers
                expected = b"".join(lines[first - 1:])
                writer.join(TIMEOUT)
                self.assertFalse(writer.is_alive())
                wsl.output(len(expected), 3 * TIMEOUT)
                wsl.end_input()
                self.assertEqual(wsl.wait(), 0, wsl.stderr_text())
                self.assertEqual(wsl.stdout.data(), expected)

    @peer_independent
    def test_sigint_between_attempts_exits_130_at_once(self):
        with Wsl("pipe", "--reconnect", f"ws://127.0.0.1:{unused_port()}/") as wsl:
            wsl.stderr_until("refused; connecting again in")
            wsl.signal(signal.SIGINT)
            self.assertEqual(wsl.wait(TIMEOUT / 2), 130, wsl.stderr_text())

    def test_sigint_closes_with_1001_and_does_not_connect_again(self):
        with Peer(PEER) as peer:
            with Wsl("pipe", "--reconnect", peer.url) as wsl:
                wsl.send(b"x\n")
                self.assertEqual(wsl.output(2), b"x\n")
                wsl.signal(signal.SIGINT)
                self.assertEqual(wsl.wait(), 130, wsl.stderr_text())
                stderr = wsl.stderr_text()
            self.assertEqual(peer.wait_event("close")["code"], 1001)
        self.assertNotIn("connecting again", stderr)  # said before any other attempt

    @peer_independent
    def test_a_message_cut_short_ends_its_line_and_the_next_connection_starts_a_new_one(self):
        # Each connection: the first 7 bytes of a text message (no FIN), then the server hangs up.
        partial = (bytes([0x01, 7]) + b"partial").hex()
        warning = "message 1 was cut short by the end of the connection after 7 bytes: its line ends there"
        with Peer("websockets", "rude", "--raw", partial, "--hang-up") as peer:
            with Wsl("pipe", peer.url) as wsl:
                self.assertEqual(wsl.wait(), 1, wsl.stderr_text())
                self.assertEqual(wsl.stdout.data(), b"partial\n")
                self.assertIn(warning, wsl.stderr_text())
            with Wsl("pipe", "--reconnect", "--reconnect-limit", "2", peer.url) as wsl:
                self.assertEqual(wsl.wait(), 1, wsl.stderr_text())
                self.assertEqual(wsl.stdout.data(), b"partial\npartial\n")
                self.assertEqual(wsl.stderr_text().count(warning), 2, wsl.stderr_text())

    @peer_independent
    def test_a_binary_message_cut_short_is_whole_base64_on_its_line(self):
        partial = (bytes([0x02, 4]) + b"abcd").hex()  # base64 holds back the "d" until the next bytes
        with Peer("websockets", "rude", "--raw", partial, "--hang-up") as peer:
            with Wsl("pipe", "--binary-prefix", "b:", "--base64", "--reconnect", "--reconnect-limit", "2",
                     peer.url) as wsl:
                self.assertEqual(wsl.wait(), 1, wsl.stderr_text())
                self.assertEqual(wsl.stdout.data(), b"b:YWJjZA==\nb:YWJjZA==\n")

    @peer_independent
    def test_usage(self):
        url = f"ws://127.0.0.1:{unused_port()}/"
        done = run_wsl("pipe", "--reconnect", url, "--", "cat")
        self.assertEqual(done.returncode, 64, done.stderr)
        self.assertIn(b"--reconnect: not with a COMMAND", done.stderr)
        done = pipe(url, "--reconnect-limit", "2")
        self.assertEqual(done.returncode, 64, done.stderr)
        done = run_wsl("pipe", "--first-message", "hi", url, "--", "cat")
        self.assertEqual(done.returncode, 64, done.stderr)
        self.assertIn(b"--first-message: not with a COMMAND", done.stderr)
        done = pipe(url, "--first-message", b"\xff".decode("utf-8", "surrogateescape"))  # the byte 0xff
        self.assertEqual(done.returncode, 64, done.stderr)
        self.assertIn(b"--first-message: not UTF-8", done.stderr)


class NoServer(unittest.TestCase):
    """What does not depend on the server."""

    @peer_independent
    def test_nobody_listening(self):
        done = pipe(f"ws://127.0.0.1:{unused_port()}/", input=b"x\n")
        self.assertEqual(done.returncode, 69, done.stderr)
        self.assertIn(b"refused", done.stderr)

    @peer_independent
    def test_usage_errors(self):
        url = f"ws://127.0.0.1:{unused_port()}/"
        for options in (["--close-code", "1005"], ["--close-code", "999"], ["-0", "--binary"], ["-H", "no colon"],
                        ["-H", "X Y: a space in the name"], ["-H", ": no name"],
                        ["--chunk", "0", "--binary"], ["--close-reason", "x" * 124], ["--binary", "--base64"],
                        ["--binary-prefix", ""], ["--text-prefix", "", "--binary-prefix", "b"],
                        ["--text-prefix", "p", "--binary-prefix", "p"], ["--text-prefix", "a\nb"]):
            with self.subTest(options=options):
                done = pipe(url, *options)
                self.assertEqual(done.returncode, 64, done.stderr)
        done = pipe("http//nowhere")
        self.assertEqual(done.returncode, 64, done.stderr)

    @peer_independent
    def test_terminal_on_stdin(self):
        with Peer("websockets") as peer:
            master, slave = pty.openpty()
            try:
                wsl = Wsl("pipe", peer.url, stdin=slave)
                os.close(slave)
                with wsl:
                    os.write(master, b"typed line\n")
                    self.assertEqual(wsl.line(), b"typed line\n")  # echoed while the terminal stays open
                    os.write(master, b"\x04")  # Ctrl-D: end of input
                    self.assertEqual(wsl.wait(), 0, wsl.stderr_text())
                    self.assertEqual(wsl.stdout.data(), b"typed line\n")
            finally:
                os.close(master)

    @peer_independent
    def test_second_sigint_exits_at_once(self):
        with Peer("websockets", "deaf") as peer:  # never answers our close
            with Wsl("pipe", "-v", "--close-timeout", "60", peer.url) as wsl:
                wsl.stderr_until("connected to")
                wsl.signal(signal.SIGINT)
                wsl.stderr_until("SIGINT: closing with 1001")
                started = time.monotonic()
                wsl.signal(signal.SIGINT)
                self.assertEqual(wsl.wait(), 130)
                self.assertLess(time.monotonic() - started, TIMEOUT / 2)

    @peer_independent
    def test_close_not_answered_is_bounded(self):
        with Peer("websockets", "deaf") as peer:
            done = pipe(peer.url, "--close-timeout", "0.5", input=b"x\n")
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertIn(b"did not answer our close within 500ms", done.stderr)
            self.assertLess(done.elapsed, 0.5 + TIMEOUT / 2)


if __name__ == "__main__":
    unittest.main()
