#!/usr/bin/python3
"""-L/--location: `wsl pipe`, `wsl latency` and `wsl loadtest` follow redirects from servers we did
not write (python3-websockets' process_request and a node http server's upgrade handler answer
301/302/307/308 with a Location), within --max-redirects; credentials stay on their origin, wss://
never goes to ws://, and without -L a redirect is a refusal that says how to follow it.

    test_redirect.py [unittest options]
"""

import base64
import json
import tempfile
import unittest

from client_harness import Peer, make_certificate, pipe_round_trip, run_wsl

PEERS = ("websockets", "ws")  # both report the request heads they receive


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def header(event: dict, name: str) -> list:
    return [value for key, value in event["headers"] if key.lower() == name]


def exchange(test: unittest.TestCase, url: str, *options: str) -> str:
    """`wsl pipe -v -L OPTIONS URL`: one line there and back, exit 0; returns stderr."""
    return pipe_round_trip(test, url, "-L", *options)


class SameOrigin(unittest.TestCase):
    def test_a_relative_location_is_followed_with_the_credentials(self):
        for kind, location, status, path in (("websockets", "/new?x=1", "302", "/new?x=1"),
                                             ("ws", "../b/./new?y=2#frag", "308", "/b/new?y=2"),
                                             ("ws", "next", "307", "/a/next")):
            with self.subTest(peer=kind, location=location):
                with Peer(kind, "echo", "--redirect-from", "/a/old", "--location", location,
                          "--status", status) as peer:
                    stderr = exchange(self, f"ws://bob:pw@127.0.0.1:{peer.port}/a/old?q")
                    redirect, opened = peer.wait_event("redirect"), peer.wait_event("open")
                    self.assertEqual(redirect["path"], "/a/old?q")
                    self.assertEqual(opened["path"], path)
                    self.assertEqual(header(opened, "authorization"), [basic("bob", "pw")])
                    final = f"ws://bob:***@127.0.0.1:{peer.port}{path}"
                    self.assertIn(f"< HTTP/1.1 {status} ", stderr)
                    self.assertIn(f"* redirected to {final}\n", stderr)
                    self.assertIn(f"connected to {final} (127.0.0.1:{peer.port}) in ", stderr)
                    self.assertIn(f"1 redirect from ws://bob:***@127.0.0.1:{peer.port}/a/old?q ", stderr)
                    self.assertNotIn(":pw@", stderr)

    def test_a_command_sees_the_url_the_redirects_led_to(self):
        with Peer("ws", "echo", "--redirect-from", "/old", "--location", "/new?x=1") as peer:
            done = run_wsl("pipe", "-L", f"ws://bob:pw@127.0.0.1:{peer.port}/old", "--",
                           "sh", "-c", 'echo "$WSL_URL"; read -r echoed')
            self.assertEqual(done.returncode, 0, done.stderr)
            sent = bytes.fromhex(peer.wait_event("message")["hex"]).decode()
            self.assertEqual(sent, f"ws://127.0.0.1:{peer.port}/new?x=1")

    def test_without_L_a_redirect_is_a_refusal_that_names_the_location(self):
        for kind in PEERS:
            with self.subTest(peer=kind):
                with Peer(kind, "echo", "--redirect-from", "/old", "--location", "/new") as peer:
                    done = run_wsl("pipe", f"ws://127.0.0.1:{peer.port}/old")
                    self.assertEqual(done.returncode, 76, done.stderr)
                    self.assertEqual(done.stderr.decode(),
                                     f"wsl pipe: ws://127.0.0.1:{peer.port}/old: handshake refused: HTTP 302 Found: "
                                     "redirect to /new (-L follows redirects)\n")
                    self.assertEqual(peer.wait_event("redirect")["path"], "/old")

    def test_max_redirects_without_L_is_a_usage_error(self):
        done = run_wsl("pipe", "--max-redirects", "3", "ws://127.0.0.1:9/")
        self.assertEqual(done.returncode, 64, done.stderr)
        self.assertIn("--max-redirects", done.stderr.decode())


class OtherOrigin(unittest.TestCase):
    def test_authorization_and_cookies_stay_behind_other_headers_go_on(self):
        for kind in PEERS:
            with self.subTest(peer=kind):
                with Peer(kind) as final, \
                        Peer(kind, "echo", "--redirect-from", "/", "--location",
                             f"http://127.0.0.1:{final.port}/there", "--status", "307") as first:
                    stderr = exchange(self, f"ws://bob:pw@127.0.0.1:{first.port}/", "-H", "Cookie: session=s3",
                                      "-H", "X-Trace: t1", "-H", "Authorization: Bearer tok")
                    redirect, opened = first.wait_event("redirect"), final.wait_event("open")
                    self.assertEqual(header(redirect, "authorization"), ["Bearer tok"])
                    self.assertEqual(header(redirect, "cookie"), ["session=s3"])
                    self.assertEqual(opened["path"], "/there")
                    self.assertEqual(header(opened, "authorization"), [])
                    self.assertEqual(header(opened, "cookie"), [])
                    self.assertEqual(header(opened, "x-trace"), ["t1"])
                    self.assertEqual(header(opened, "host"), [f"127.0.0.1:{final.port}"])
                    self.assertIn(f"* redirected to ws://127.0.0.1:{final.port}/there\n", stderr)

    def test_a_location_with_credentials_of_its_own_sends_them(self):
        with Peer("ws") as final, \
                Peer("websockets", "echo", "--redirect-from", "/", "--location",
                     f"ws://carol:s3cret-c4@127.0.0.1:{final.port}/") as first:
            stderr = exchange(self, f"ws://bob:pw@127.0.0.1:{first.port}/")
            self.assertEqual(header(final.wait_event("open"), "authorization"), [basic("carol", "s3cret-c4")])
            self.assertNotIn("s3cret-c4", stderr)  # a "-": never part of a random base64 key

    def test_ws_may_go_to_wss_and_wss_never_to_ws(self):
        with tempfile.TemporaryDirectory() as directory:
            cert, key = make_certificate(directory)
            for kind in PEERS:
                with self.subTest(peer=kind):
                    with Peer(kind, "echo", "--tls", cert, key) as secure, \
                            Peer(kind, "echo", "--redirect-from", "/", "--location",
                                 f"wss://127.0.0.1:{secure.port}/s") as plain:
                        stderr = exchange(self, plain.url, "--cacert", cert)
                        self.assertIn(f"connected to wss://127.0.0.1:{secure.port}/s ", stderr)
                        self.assertEqual(secure.wait_event("open")["path"], "/s")
                    with Peer(kind) as plain, \
                            Peer(kind, "echo", "--tls", cert, key, "--redirect-from", "/", "--location",
                                 f"ws://127.0.0.1:{plain.port}/") as secure:
                        done = run_wsl("pipe", "-L", "--cacert", cert, secure.url)
                        self.assertEqual(done.returncode, 76, done.stderr)
                        self.assertEqual(done.stderr.decode(),
                                         f"wsl pipe: {secure.url}: redirect refused: HTTP 302 Found from {secure.url} "
                                         f"to 'ws://127.0.0.1:{plain.port}/' (wss:// never goes to ws://)\n")


class Limits(unittest.TestCase):
    def test_a_loop_ends_at_max_redirects(self):
        for kind in PEERS:
            with self.subTest(peer=kind):
                with Peer(kind, "echo", "--redirect-from", "/loop", "--location", "/loop") as peer:
                    done = run_wsl("pipe", "-v", "-L", "--max-redirects", "3", f"ws://127.0.0.1:{peer.port}/loop")
                    stderr = done.stderr.decode()
                    self.assertEqual(done.returncode, 76, stderr)
                    self.assertEqual(stderr.count("* redirected to "), 3, stderr)
                    self.assertIn(f"wsl pipe: ws://127.0.0.1:{peer.port}/loop: too many redirects (3; --max-redirects): "
                                  f"the last, /loop from ws://127.0.0.1:{peer.port}/loop: HTTP 302 Found\n", stderr)
                    self.assertEqual(len(peer.events_named("redirect", 4)), 4)  # the first request and 3 more

    def test_a_location_that_is_no_websocket_url_is_refused(self):
        with Peer("websockets", "echo", "--redirect-from", "/", "--location", "ftp://127.0.0.1/x") as peer:
            done = run_wsl("pipe", "-L", peer.url)
            self.assertEqual(done.returncode, 76, done.stderr)
            self.assertIn("redirect refused: HTTP 302 Found from", done.stderr.decode())
            self.assertIn("to 'ftp://127.0.0.1/x' (not a WebSocket URL)", done.stderr.decode())


class LatencyAndLoadtest(unittest.TestCase):
    def test_latency_follows(self):
        with Peer("ws", "echo", "--redirect-from", "/", "--location", "/echo") as peer:
            done = run_wsl("latency", "-L", "-c", "2", "-i", "0", peer.url)
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertIn(f"LATENCY ws://127.0.0.1:{peer.port}/echo (127.0.0.1:{peer.port})", done.stdout.decode())
            self.assertEqual(peer.wait_event("open")["path"], "/echo")
            done = run_wsl("latency", "-L", "-c", "1", "--json", peer.url)
            self.assertEqual(done.returncode, 0, done.stderr)
            r = json.loads(done.stdout)
            self.assertEqual((r["url"], r["final_url"], r["redirects"]), (peer.url, peer.url + "echo", 1))

    def test_loadtest_follows_on_every_connection(self):
        with Peer("websockets", "echo", "--redirect-from", "/", "--location", "/echo") as peer:
            done = run_wsl("loadtest", "-L", "-q", "--json", "-c", "3", "-d", "300ms", peer.url)
            self.assertEqual(done.returncode, 0, done.stderr)
            r = json.loads(done.stdout)
            self.assertEqual((r["opened"], r["failed"], r["redirects"]), (3, 0, 3))
            self.assertEqual((r["url"], r["final_url"]), (peer.url, peer.url + "echo"))
            self.assertGreater(r["received"], 0)
            self.assertEqual(r["received"], r["sent"])
            self.assertEqual([e["path"] for e in peer.events_named("open", 3)], ["/echo"] * 3)
            self.assertEqual(len(peer.events_named("redirect", 3)), 3)
            done = run_wsl("loadtest", "-L", "-q", "-c", "1", "-d", "100ms", peer.url)
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertIn(f"  connections  1 opened, 0 failed, 1 redirect followed (to {peer.url}echo)\n",
                          done.stdout.decode())

    def test_loadtest_without_L_counts_the_redirect_as_a_failure(self):
        with Peer("ws", "echo", "--redirect-from", "/", "--location", "/echo") as peer:
            done = run_wsl("loadtest", "-q", "--json", "-c", "2", "-d", "300ms", peer.url)
            self.assertEqual(done.returncode, 76, done.stderr)
            r = json.loads(done.stdout)
            self.assertEqual((r["opened"], r["failed"], r["failures"], r["redirects"]), (0, 2, {"HTTP 302": 2}, 0))
            self.assertIsNone(r["final_url"])


if __name__ == "__main__":
    unittest.main()
