#!/usr/bin/python3
"""`wsl pipe`, `wsl latency` and `wsl loadtest` through a Unix-domain socket: a ws+unix: URL (node
ws's form) or --unix-socket PATH with an ordinary URL (curl's), against a server we did not write on
that socket (python3-websockets' unix_serve, node ws on an http server listening on the path) or
`wsl echo --unix-socket`.

    test_unix_socket.py --peer websockets|ws|wsl [unittest options]

The failures that do not depend on the server (no socket there, a file nobody listens on, usage
errors) run once, with the websockets peer.
"""

import json
import os
import socket
import sys
import tempfile
import unittest

from client_harness import Peer, pipe_round_trip, peer_from_argv, run_wsl

PEER = peer_from_argv(sys.argv)
EXIT_UNAVAILABLE, EXIT_USAGE = 69, 64


def peer_independent(test):
    return unittest.skipIf(PEER != "websockets", "runs with the websockets peer only")(test)


def recording_peers_only(test):
    """The peer must report the requests it received (wsl echo does not)."""
    return unittest.skipIf(PEER == "wsl", "wsl echo records no events")(test)


class UnixSocket(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="wsl-unix-")
        self.path = os.path.join(self.dir.name, "peer.sock")

    def tearDown(self) -> None:
        self.dir.cleanup()

    def test_pipe_through_a_ws_unix_url(self):
        with Peer(PEER, unix=self.path) as peer:
            stderr = pipe_round_trip(self, f"ws+unix:{self.path}:/chat?room=1", line="été\n".encode())
            self.assertIn(f"* through Unix socket {self.path}", stderr)
            self.assertIn(f"connected to ws+unix:{self.path}:/chat?room=1 (unix:{self.path})", stderr)
            if peer.records_events:
                opened = peer.wait_event("open")
                self.assertEqual(opened["path"], "/chat?room=1")
                self.assertIn(["Host", "localhost"], opened["headers"])

    @recording_peers_only
    def test_unix_socket_option_keeps_the_urls_host_and_path(self):
        with Peer(PEER, unix=self.path) as peer:
            pipe_round_trip(self, "ws://example.test:9000/x?y=z", "--unix-socket", self.path)
            opened = peer.wait_event("open")
            self.assertEqual(opened["path"], "/x?y=z")
            self.assertIn(["Host", "example.test:9000"], opened["headers"])

    @recording_peers_only
    def test_a_redirect_is_followed_through_the_same_socket(self):
        with Peer(PEER, "echo", "--redirect-from", "/old", "--location", "/new", unix=self.path) as peer:
            stderr = pipe_round_trip(self, f"ws+unix:{self.path}:/old", "-L")
            self.assertEqual(peer.wait_event("redirect")["path"], "/old")
            self.assertEqual(peer.wait_event("open")["path"], "/new")
            self.assertIn("* redirected to ws://localhost/new", stderr)

    @recording_peers_only
    def test_a_redirect_to_wss_is_refused_in_so_many_words(self):
        with Peer(PEER, "echo", "--redirect-from", "/old", "--location", "wss://localhost/new",
                  unix=self.path) as peer:
            done = run_wsl("pipe", "-L", f"ws+unix:{self.path}:/old", input=b"x\n")
            self.assertEqual(peer.wait_event("redirect")["path"], "/old")
        self.assertEqual(done.returncode, 76, done.stderr)
        self.assertIn(b"redirect refused: HTTP 302 Found from ws://localhost/old", done.stderr)
        self.assertIn(b"to 'wss://localhost/new' (wss:// over a Unix-domain socket is not supported", done.stderr)

    def test_latency(self):
        with Peer(PEER, unix=self.path):
            done = run_wsl("latency", "-c", "3", "-i", "0", "--json", f"ws+unix:{self.path}")
            self.assertEqual(done.returncode, 0, done.stderr)
            result = json.loads(done.stdout)
            self.assertEqual((result["sent"], result["received"]), (3, 3))
            self.assertEqual(result["remote"], f"unix:{self.path}")
            self.assertGreater(result["rtt_ms"]["min"], 0)

    def test_loadtest(self):
        with Peer(PEER, unix=self.path):
            done = run_wsl("loadtest", "-q", "-c", "4", "-d", "500ms", "--json", "--unix-socket", self.path,
                           "ws://localhost/load")
            self.assertEqual(done.returncode, 0, done.stderr)
            result = json.loads(done.stdout)
            self.assertEqual(result["opened"], 4, result)
            self.assertGreater(result["sent"], 0)
            self.assertEqual(result["received"], result["sent"])
            self.assertEqual(result["close_codes"], {"1000": 4})
            self.assertEqual(result["unix_socket"], self.path)

    @peer_independent
    def test_no_socket_there(self):
        missing = os.path.join(self.dir.name, "missing.sock")
        done = run_wsl("pipe", f"ws+unix:{missing}", input=b"x\n")
        self.assertEqual(done.returncode, EXIT_UNAVAILABLE, done.stderr)
        self.assertEqual(done.stderr.decode(),
                         f"wsl pipe: ws+unix:{missing}: Unix socket {missing}: No such file or directory\n")

    @peer_independent
    def test_nobody_listening_on_the_socket_file(self):
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(self.path)
        stale.close()
        done = run_wsl("latency", "-c", "1", "--unix-socket", self.path, "ws://localhost/")
        self.assertEqual(done.returncode, EXIT_UNAVAILABLE, done.stderr)
        self.assertEqual(done.stderr.decode(),
                         f"wsl latency: ws://localhost/: Unix socket {self.path}: Connection refused\n")

    @peer_independent
    def test_usage_errors(self):
        for args, message in [
            (["--unix-socket", self.path, "--proxy", "http://127.0.0.1:1", "ws://h/"], "--proxy excludes --unix-socket"),
            (["--unix-socket", self.path, "wss://h/"], "wss:// over a Unix-domain socket is not supported"),
            ([f"ws+unix:{self.path}", "--unix-socket", self.path], "not with --unix-socket"),
            (["ws+unix:"], "expected ws+unix:/path/to/socket[:/path]"),
            ([f"ws+unix:{self.path}:chat"], "expected ws+unix:/path/to/socket[:/path]"),
            (["--unix-socket", "x" * 200, "ws://h/"], "File name too long"),
        ]:
            done = run_wsl("pipe", *args)
            self.assertEqual(done.returncode, EXIT_USAGE, f"{args}: {done.stderr}")
            self.assertIn(message.encode(), done.stderr, args)
            self.assertEqual(done.stderr.count(b"\n"), 1, done.stderr)


if __name__ == "__main__":
    unittest.main()
