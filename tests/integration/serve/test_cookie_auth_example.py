#!/usr/bin/python3
"""examples/cookie_auth: the negotiation hook as cookie-based authentication, driven by
python3-websockets and a plain HTTP client. $WSL_EXAMPLE_COOKIE_AUTH is the example's binary."""

import http.client
import os
import subprocess
import unittest

from serve_harness import LISTENING, TIMEOUT, _die_with_parent, connect, run
from harness import _LineCollector  # noqa: E402 (serve_harness puts it on the path)

import time

BINARY = os.environ.get("WSL_EXAMPLE_COOKIE_AUTH") or os.path.join(
    os.path.dirname(__file__), "..", "..", "..", "build", "release", "examples", "cookie_auth")


class CookieAuth(unittest.TestCase):
    def setUp(self):
        self.proc = subprocess.Popen([BINARY, "0"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, preexec_fn=_die_with_parent)
        self.stderr = _LineCollector(self.proc.stderr)
        line = self.stderr.next_line(time.monotonic() + TIMEOUT)
        match = LISTENING.match(line or "")
        self.assertIsNotNone(match, f"no listening line: {line!r}")
        self.port = int(match["port"])
        self.url = f"ws://127.0.0.1:{self.port}/"

    def tearDown(self):
        self.proc.kill()
        self.proc.wait(TIMEOUT)
        self.stderr.join(TIMEOUT)
        self.proc.stderr.close()

    def login(self, name):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
        connection.request("GET", f"/login?name={name}")
        response = connection.getresponse()
        body = response.read()
        connection.close()
        self.assertEqual(response.status, 200, body)
        cookie = response.getheader("Set-Cookie")
        self.assertRegex(cookie, r"^session=[0-9a-f]{32}; Path=/; HttpOnly; SameSite=Strict$")
        return cookie.split(";")[0]

    def test_without_a_session_the_upgrade_gets_the_custom_401(self):
        async def scenario(headers):
            try:
                async with connect(self.url, extra_headers=headers):
                    return 101, b""
            except Exception as e:  # websockets.InvalidStatusCode: the status only, so read it raw
                return getattr(e, "status_code", repr(e)), b""

        self.assertEqual(run(scenario({}))[0], 401)
        self.assertEqual(run(scenario({"Cookie": "session=forged"}))[0], 401)
        # The page itself, as a browser would show it.
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
        connection.request("GET", "/", headers={"Upgrade": "websocket", "Connection": "Upgrade",
                                                "Sec-WebSocket-Version": "13",
                                                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
        response = connection.getresponse()
        self.assertEqual(response.status, 401)
        self.assertIn(b"Log in first: GET /login?name=YOU", response.read())
        connection.close()

    def test_with_the_cookie_from_login_the_client_is_served_under_its_name(self):
        cookie = self.login("ada")

        async def scenario():
            async with connect(self.url, extra_headers={"Cookie": f"theme=dark; {cookie}"}) as ws:
                await ws.send("hello")
                return await ws.recv()

        self.assertEqual(run(scenario()), "ada: hello")


if __name__ == "__main__":
    unittest.main(verbosity=2)
