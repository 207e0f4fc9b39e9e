#!/usr/bin/python3
"""Credentials in the URL: `wsl pipe ws://user:password@host/` sends them as Basic authorization to
servers we did not write (python3-websockets, node `ws`), which record the headers they received;
and the password never shows in what wsl prints (the -v trace, errors, latency and loadtest reports).

    test_credentials.py [unittest options]
"""

import base64
import json
import unittest

from client_harness import Peer, pipe_round_trip, run_wsl, unused_port

PEERS = ("websockets", "ws")  # the ones that report the request's headers
USER = "bob"
PASSWORD = "s3cr@t:/?#%\u00e9"  # every kind of character that needs care, and one beyond ASCII
ENCODED = "s3cr%40t:%2F%3F%23%25%C3%A9"  # ':' and '@' may stay raw in a password; '/', '?', '#', '%' may not


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def authorization(event: dict, name: str = "authorization") -> list:
    return [value for key, value in event["headers"] if key.lower() == name]


class Credentials(unittest.TestCase):
    SECRETS = (PASSWORD, ENCODED, "s3cr", basic(USER, PASSWORD).split()[1])

    def assert_no_secret(self, text: str) -> None:
        for secret in self.SECRETS:
            self.assertNotIn(secret, text)

    def exchange(self, kind: str, userinfo: str, *options: str):
        """`wsl pipe -v` to a `kind` echo peer with userinfo@ in the URL: one line there and back.
        Returns the peer's "open" event and wsl's stderr."""
        with Peer(kind) as peer:
            stderr = pipe_round_trip(self, f"ws://{userinfo}@127.0.0.1:{peer.port}/path?q=1", *options)
            return peer.wait_event("open"), stderr

    def test_url_credentials_go_as_basic_authorization_and_stay_hidden(self):
        for kind in PEERS:
            with self.subTest(peer=kind):
                event, stderr = self.exchange(kind, f"{USER}:{ENCODED}")
                self.assertEqual(authorization(event), [basic(USER, PASSWORD)])
                self.assertEqual(event["path"], "/path?q=1")
                self.assertIn("> Authorization: Basic ***\n", stderr)
                self.assertIn(f"connected to ws://{USER}:***@127.0.0.1:", stderr)
                self.assert_no_secret(stderr)

    def test_the_last_at_sign_ends_the_user_info(self):
        event, stderr = self.exchange("websockets", "bob:p@ss@w0rd")
        self.assertEqual(authorization(event), [basic("bob", "p@ss@w0rd")])
        self.assertNotIn("w0rd", stderr)

    def test_a_user_alone_has_an_empty_password(self):
        event, _ = self.exchange("ws", "alice")
        self.assertEqual(authorization(event), [basic("alice", "")])

    def test_an_explicit_authorization_header_wins(self):
        for kind in PEERS:
            with self.subTest(peer=kind):
                event, stderr = self.exchange(kind, f"{USER}:{ENCODED}", "-H", "Authorization: Bearer t0ken")
                self.assertEqual(authorization(event), ["Bearer t0ken"])  # one, not two
                self.assertIn("> Authorization: Bearer ***\n", stderr)
                self.assertNotIn("t0ken", stderr)
                self.assert_no_secret(stderr)

    def test_malformed_user_info_is_a_usage_error(self):
        port = unused_port()
        for userinfo in ("bob:hunter2%zz", ":hunter2", "b%0Aob:hunter2", "bo b:hunter2", "b%3Aob:hunter2"):
            with self.subTest(userinfo=userinfo):
                done = run_wsl("pipe", f"ws://{userinfo}@127.0.0.1:{port}/")
                stderr = done.stderr.decode()
                self.assertEqual(done.returncode, 64, stderr)
                self.assertEqual(len(stderr.splitlines()), 1, stderr)
                self.assertIn("malformed user:password", stderr)
                self.assertNotIn("hunter2", stderr)

    def test_connection_errors_hide_the_password(self):
        port = unused_port()
        done = run_wsl("pipe", f"ws://{USER}:{ENCODED}@127.0.0.1:{port}/")
        stderr = done.stderr.decode()
        self.assertEqual(done.returncode, 69, stderr)
        self.assertIn(f"ws://{USER}:***@127.0.0.1:{port}/", stderr)
        self.assert_no_secret(stderr)
        # A refusal, and a URL that does not parse (a raw '/' in the password).
        with Peer("websockets", "refuse") as peer:
            done = run_wsl("pipe", f"ws://{USER}:{ENCODED}@127.0.0.1:{peer.port}/")
            self.assertEqual(done.returncode, 76, done.stderr)
            self.assert_no_secret(done.stderr.decode())
        done = run_wsl("pipe", f"ws://{USER}:s3cr/et@127.0.0.1:{port}/")
        self.assertEqual(done.returncode, 64, done.stderr)
        self.assert_no_secret(done.stderr.decode())

    def test_latency_and_loadtest_reports_hide_the_password(self):
        with Peer("websockets") as peer:
            url = f"ws://{USER}:{ENCODED}@127.0.0.1:{peer.port}/"
            shown = f"ws://{USER}:***@127.0.0.1:{peer.port}/"
            done = run_wsl("latency", "-c", "2", "-i", "0", "--json", url)
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertEqual(json.loads(done.stdout)["url"], shown)
            done = run_wsl("latency", "-v", "-c", "2", "-i", "0", url)
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertIn(f"LATENCY {shown} ", done.stdout.decode())
            self.assertIn(f"--- {shown} latency statistics ---", done.stdout.decode())
            for output in (done.stdout, done.stderr):
                self.assert_no_secret(output.decode())
            self.assertEqual(authorization(peer.wait_event("open")), [basic(USER, PASSWORD)])

            done = run_wsl("loadtest", url, "-c", "1", "-d", "300ms", "--json")
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertEqual(json.loads(done.stdout)["url"], shown)
            done = run_wsl("loadtest", url, "-c", "1", "-d", "300ms")
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertTrue(done.stdout.decode().startswith(f"{shown}: 1 connections"), done.stdout)
            for output in (done.stdout, done.stderr):
                self.assert_no_secret(output.decode())


if __name__ == "__main__":
    unittest.main()
