#!/usr/bin/python3
"""`wsl pipe URL --tcp-listen [ADDRESS:]PORT` (websocat's tcp-l:) against a WebSocket server we did
not write: each TCP connection accepted gets its own WebSocket connection, bytes both ways as
binary messages; the TCP client's close closes the WebSocket with 1000; the server's close ends
the TCP connection after every byte; a URL that cannot be reached closes the TCP connection and
the listener goes on; --max-connections; SIGINT closes with 1001 and exits 130; usage errors.
`--unix-listen PATH` (websocat's unix-l:): the same from a Unix-domain socket, whose file is
replaced when stale, refused when in use, and removed at the end.

    test_pipe_tcp.py --peer websockets|ws [unittest options]   (ctest: integration.client.pipe_tcp.*)
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
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


def exchange_on_two_connections(test: unittest.TestCase, listener: Listener, peer=None) -> None:
    """Two local connections at once, each echoed byte for byte through a WebSocket of its own; both
    closed at the end."""
    a, b = listener.connect(), listener.connect()
    try:
        payload = os.urandom(300_000)
        a.sendall(payload)
        b.sendall(b"from b")
        test.assertEqual(read_exactly(b, 6), b"from b")
        test.assertEqual(read_exactly(a, len(payload)), payload)
        if peer is not None and peer.records_events:
            test.assertEqual(len(peer.events_named("open", 2)), 2)
    finally:
        a.close()
        b.close()


def echo_once(test: unittest.TestCase, listener: Listener, payload: bytes) -> None:
    """One local connection whose bytes come back through the WebSocket; closed after."""
    s = listener.connect()
    try:
        s.sendall(payload)
        test.assertEqual(read_exactly(s, len(payload)), payload)
    finally:
        s.close()


class UnixListener(Listener):
    """`wsl pipe URL --unix-listen PATH OPTIONS`."""

    def __init__(self, url: str, path: str, *options: str) -> None:
        self.path = path
        self.wsl = Wsl("pipe", url, "--unix-listen", path, *options, stdin=subprocess.DEVNULL)

    def __enter__(self) -> "UnixListener":
        self.wsl.__enter__()
        self.wsl.stderr_until(f"listening on unix:{self.path}")
        return self

    def connect(self) -> socket.socket:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(TIMEOUT)
        s.connect(self.path if not self.path.startswith("@") else "\0" + self.path[1:])
        return s


class UnixListen(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="wsl-unix-listen-")
        self.addCleanup(self.dir.cleanup)
        self.path = os.path.join(self.dir.name, "gateway.sock")

    def test_each_connection_has_a_websocket_of_its_own_and_the_file_goes_at_the_end(self):
        with socket.socket(socket.AF_UNIX) as stale:  # left by a process that died
            stale.bind(self.path)
        with Peer(PEER) as peer, UnixListener(peer.url, self.path, "-v") as listener:
            exchange_on_two_connections(self, listener, peer)
            listener.wsl.stderr_until(rf"unix:pid={os.getpid()},uid={os.getuid()} connected through")
            if peer.records_events:
                self.assertEqual([e["code"] for e in peer.events_named("close", 2)], [1000, 1000])
            # A second one on the same path is refused: somebody listens there.
            done = run_wsl("pipe", peer.url, "--unix-listen", self.path)
            self.assertEqual(done.returncode, 69, done.stderr)
            self.assertEqual(done.stderr, f"wsl pipe: --unix-listen {self.path}: Address already in use\n".encode())
            listener.wsl.signal(signal.SIGINT)
            self.assertEqual(listener.wsl.wait(), 130)
        self.assertFalse(os.path.exists(self.path), "the socket file is removed at the end")

    def test_unix_mode_sets_the_permissions_before_anyone_connects(self):
        with Peer(PEER) as peer, UnixListener(peer.url, self.path, "--unix-mode", "600") as listener:
            self.assertEqual(os.stat(self.path).st_mode & 0o7777, 0o600)
            echo_once(self, listener, b"owner only")

    def test_an_abstract_name_and_another_file_in_the_way(self):
        name = f"@wsl-test-{os.getpid()}-{id(self)}"
        with Peer(PEER) as peer, UnixListener(peer.url, name) as listener:
            echo_once(self, listener, b"abstract")
        with open(self.path, "w") as f:
            f.write("not a socket")
        done = run_wsl("pipe", "ws://127.0.0.1:1/", "--unix-listen", self.path)
        self.assertEqual(done.returncode, 69, done.stderr)
        self.assertEqual(done.stderr, f"wsl pipe: --unix-listen {self.path}: File exists\n".encode())
        with open(self.path) as f:
            self.assertEqual(f.read(), "not a socket", "another file is never removed")


class TcpListen(unittest.TestCase):
    def test_each_tcp_connection_has_a_websocket_of_its_own(self):
        with Peer(PEER) as peer, Listener(peer.url) as listener:
            exchange_on_two_connections(self, listener, peer)
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
                        ["--tcp-listen", "0", "--max-connections", "0"], ["--max-connections", "3"],
                        ["--unix-listen", "/x", "--tcp-listen", "0"], ["--unix-listen", "/x", "-0"],
                        ["--unix-listen", "/" + "x" * 200], ["--unix-listen", ""], ["--unix-mode", "600"],
                        ["--unix-listen", "@name", "--unix-mode", "600"], ["--unix-listen", "/x", "--unix-mode", "9"]):
            with self.subTest(options=options):
                done = run_wsl("pipe", url, *options)
                self.assertEqual(done.returncode, 64, done.stderr)
                self.assertEqual(len(done.stderr.splitlines()), 1, done.stderr)


if __name__ == "__main__":
    unittest.main()
