#!/usr/bin/python3
"""`wsl pipe URL --tcp-listen [ADDRESS:]PORT` (websocat's tcp-l:) against a WebSocket server we did
not write: each TCP connection accepted gets its own WebSocket connection, bytes both ways as
binary messages; the TCP client's close closes the WebSocket with 1000; the server's close ends
the TCP connection after every byte; a URL that cannot be reached closes the TCP connection and
the listener goes on; --max-connections; SIGINT closes with 1001 and exits 130; usage errors.

    test_pipe_tcp.py --peer websockets|ws [unittest options]   (ctest: integration.client.pipe_tcp.*)
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import unittest

from client_harness import TIMEOUT, Peer, Wsl, peer_from_argv, run_wsl, unused_port

PEER = peer_from_argv(sys.argv)
KIND = "websockets" if PEER == "wsl" else PEER  # for the servers wsl echo cannot stand in for


class Listener:
    """`wsl pipe URL --tcp-listen 0 OPTIONS` and the port it listens on."""

    def __init__(self, url: str, *options: str) -> None:
        self.wsl = Wsl("pipe", url, "--tcp-listen", "0", *options, stdin=subprocess.DEVNULL)

    def __enter__(self) -> "Listener":
        self.wsl.__enter__()
        text = self.wsl.stderr_until("listening on tcp://")
        self.port = int(re.search(r"listening on tcp://127\.0\.0\.1:(\d+)", text)[1])
        return self

    def __exit__(self, *exc) -> None:
        self.wsl.__exit__(*exc)

    def connect(self) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.port), TIMEOUT)
        s.settimeout(TIMEOUT)
        return s


def read_exactly(s: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = s.recv(size - len(data))
        if not chunk:
            raise AssertionError(f"EOF after {len(data)} of {size} bytes")
        data += chunk
    return data


def read_to_eof(s: socket.socket) -> bytes:
    data = b""
    while True:
        chunk = s.recv(1 << 16)
        if not chunk:
            return data
        data += chunk


class TcpListen(unittest.TestCase):
    def test_each_tcp_connection_has_a_websocket_of_its_own(self):
        with Peer(PEER) as peer, Listener(peer.url) as listener:
            a, b = listener.connect(), listener.connect()
            try:
                payload = os.urandom(300_000)
                a.sendall(payload)
                b.sendall(b"from b")
                self.assertEqual(read_exactly(b, 6), b"from b")
                self.assertEqual(read_exactly(a, len(payload)), payload)  # echoed, byte for byte
                if peer.records_events:
                    self.assertEqual(len(peer.events_named("open", 2)), 2)
            finally:
                a.close()
                b.close()
            if peer.records_events:  # the TCP client's close is the WebSocket's, with 1000
                self.assertEqual([e["code"] for e in peer.events_named("close", 2)], [1000, 1000])
            self.assertIsNone(listener.wsl.proc.poll())

    def test_the_servers_close_ends_the_tcp_connection_after_every_byte(self):
        sent = [{"hex": os.urandom(1000).hex()} for _ in range(20)]
        with Peer(KIND, "script", "--send", json.dumps(sent), "--close-code", "1000") as peer, \
                Listener(peer.url) as listener:
            s = listener.connect()
            try:
                got = read_to_eof(s)
            finally:
                s.close()
            self.assertEqual(got, b"".join(bytes.fromhex(m["hex"]) for m in sent))
            self.assertIsNone(listener.wsl.proc.poll(), "it goes on listening")

    def test_a_server_that_cannot_be_reached_closes_the_tcp_connection(self):
        url = f"ws://127.0.0.1:{unused_port()}/"
        with Listener(url) as listener:
            for _ in range(2):
                s = listener.connect()
                try:
                    self.assertEqual(read_to_eof(s), b"")
                except ConnectionResetError:
                    pass
                finally:
                    s.close()
            listener.wsl.stderr_until("refused")
            self.assertIsNone(listener.wsl.proc.poll())

    def test_max_connections(self):
        with Peer(PEER) as peer, Listener(peer.url, "--max-connections", "1") as listener:
            first = listener.connect()
            try:
                first.sendall(b"one")
                self.assertEqual(read_exactly(first, 3), b"one")
                second = listener.connect()
                try:
                    self.assertEqual(read_to_eof(second), b"", "closed at once")
                except ConnectionResetError:
                    pass
                finally:
                    second.close()
                listener.wsl.stderr_until("refused, --max-connections 1 are open")
                first.sendall(b"still")
                self.assertEqual(read_exactly(first, 5), b"still")
            finally:
                first.close()

    def test_sigint_closes_every_websocket_with_1001(self):
        with Peer(PEER) as peer, Listener(peer.url) as listener:
            s = listener.connect()
            try:
                s.sendall(b"x")
                self.assertEqual(read_exactly(s, 1), b"x")
                listener.wsl.signal(signal.SIGINT)
                self.assertEqual(listener.wsl.wait(), 130)
                self.assertEqual(read_to_eof(s), b"")
            finally:
                s.close()
            if peer.records_events:
                self.assertEqual(peer.wait_event("close")["code"], 1001)

    def test_usage_errors(self):
        url = f"ws://127.0.0.1:{unused_port()}/"
        for options in (["--tcp-listen", "localhost:80"], ["--tcp-listen", "70000"], ["--tcp-listen", "x"],
                        ["--tcp-listen", "::1:80"], ["--tcp-listen", "[::1"],
                        ["--tcp-listen", "0", "-0"], ["--tcp-listen", "0", "--slash"], ["--tcp-listen", "0", "-1"],
                        ["--tcp-listen", "0", "--reconnect"], ["--tcp-listen", "0", "-n"],
                        ["--tcp-listen", "0", "--first-message", "hi"], ["--tcp-listen", "0", "--", "cat"],
                        ["--tcp-listen", "0", "--max-connections", "0"], ["--max-connections", "3"]):
            with self.subTest(options=options):
                done = run_wsl("pipe", url, *options)
                self.assertEqual(done.returncode, 64, done.stderr)
                self.assertEqual(len(done.stderr.splitlines()), 1, done.stderr)


if __name__ == "__main__":
    unittest.main()
