#!/usr/bin/python3
"""`--proxy`: the client subcommands through proxies we did not write: an HTTP CONNECT proxy,
Debian's tinyproxy, started here with a generated configuration on a free port of 127.0.0.1 (in
the foreground, `-d`), and a SOCKS5 one, Debian's microsocks; and, for the one case tinyproxy
cannot play, a proxy that never answers.

    test_proxy.py [unittest options]

$WSL_TEST_TINYPROXY and $WSL_TEST_MICROSOCKS are the binaries (set by ctest; default: on PATH).
"""

import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from client_harness import (TIMEOUT, WSL, Peer, _die_with_parent, _Output, make_certificate, pipe_round_trip,
                            run_wsl, unused_port)

TINYPROXY = os.environ.get("WSL_TEST_TINYPROXY") or shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
MICROSOCKS = os.environ.get("WSL_TEST_MICROSOCKS") or shutil.which("microsocks") or "/usr/bin/microsocks"
PROXY_USER, PROXY_PASSWORD = "me", "pr0xyPW"  # tinyproxy's BasicAuth takes letters and digits only


class _ProxyProcess:
    """What the proxies below share: the process, killed on exit, and its output, drained."""

    proc = None
    output = None

    def _stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=TIMEOUT)
        self.output.join(TIMEOUT)
        self.output.pipe.close()
        self.proc = None


class Tinyproxy(_ProxyProcess):
    """tinyproxy on 127.0.0.1, allowing CONNECT to `ports`, with BasicAuth when `auth` is given:

        with Tinyproxy([peer.port], auth=("me", "pw")) as proxy:
            run_wsl("pipe", "--proxy", proxy.url("me:pw"), peer.url)
    """

    def __init__(self, ports, auth=None) -> None:
        self.ports = list(ports)
        self.auth = auth
        self.proc = None

    def __enter__(self) -> "Tinyproxy":
        self.directory = tempfile.TemporaryDirectory(prefix="wsl-tinyproxy-")
        # The port must be in the configuration: pick a free one, and take another should someone
        # else bind it first (tinyproxy then exits at once).
        for _ in range(5):
            self.port = unused_port()
            if self._start():
                return self
        self.__exit__()
        raise AssertionError(f"tinyproxy did not start; it said:\n{self.output.data().decode(errors='replace')}")

    def _start(self) -> bool:
        config = os.path.join(self.directory.name, "tinyproxy.conf")
        with open(config, "w") as f:
            f.write(f"Port {self.port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 20\nAllow 127.0.0.1\n"
                    "LogLevel Info\n")
            for port in self.ports:
                f.write(f"ConnectPort {port}\n")
            if self.auth:
                f.write(f"BasicAuth {self.auth[0]} {self.auth[1]}\n")
        self.proc = subprocess.Popen([TINYPROXY, "-d", "-c", config], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        self.output = _Output(self.proc.stdout)
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                line = self.output.next_line(deadline)
            except TimeoutError:
                line = None
            if line is None:  # it exited (or said nothing in time)
                self._stop()
                return False
            if b"Accepting connections" in line:
                return True

    def __exit__(self, *exc) -> None:
        self._stop()
        self.directory.cleanup()

    def url(self, userinfo: str = "") -> str:
        return f"http://{userinfo + '@' if userinfo else ''}127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.output.data().decode(errors="replace")


class Microsocks(_ProxyProcess):
    """microsocks (SOCKS5) on 127.0.0.1, with a user and password when `auth` is given. It says
    nothing when it is ready: the test connects until it is accepted (bounded by TIMEOUT).

        with Microsocks() as proxy:
            run_wsl("pipe", "--proxy", proxy.url("socks5h"), peer.url)
    """

    def __init__(self, auth=None) -> None:
        self.auth = auth
        self.proc = None

    def __enter__(self) -> "Microsocks":
        for _ in range(5):  # a port someone else took first: microsocks exits, take another
            self.port = unused_port()
            auth = ["-u", self.auth[0], "-P", self.auth[1]] if self.auth else []
            self.proc = subprocess.Popen([MICROSOCKS, "-i", "127.0.0.1", "-p", str(self.port), *auth],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, preexec_fn=_die_with_parent)
            self.output = _Output(self.proc.stderr)
            deadline = time.monotonic() + TIMEOUT
            while self.proc.poll() is None and time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT).close()
                    return self
                except ConnectionRefusedError:
                    time.sleep(0.01)  # not listening yet: a readiness poll, not a synchronisation
            self._stop()
        raise AssertionError("microsocks did not start")

    def __exit__(self, *exc) -> None:
        self._stop()

    def url(self, scheme: str, userinfo: str = "") -> str:
        return f"{scheme}://{userinfo + '@' if userinfo else ''}127.0.0.1:{self.port}"

    def wait_log(self, text: str) -> None:
        """Waits for a line of microsocks's log that holds `text`."""
        if not self.output.wait_line(text, time.monotonic() + TIMEOUT):
            raise AssertionError(f"microsocks ended without logging {text!r}")


class SilentProxy:
    """Accepts connections and reads them, never answering: a proxy that hangs."""

    def __enter__(self) -> "SilentProxy":
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.requests = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        return self

    def _serve(self) -> None:
        try:
            connection, _ = self.listener.accept()
        except OSError:
            return
        with connection:
            data = b""
            while True:
                chunk = connection.recv(4096)
                if not chunk:
                    break
                data += chunk
                if b"\r\n\r\n" in data:
                    self.requests.append(data)

    def __exit__(self, *exc) -> None:
        self.listener.close()
        self.thread.join(TIMEOUT)


def exchange(test, url: str, *options: str) -> str:
    """`wsl pipe -v OPTIONS URL`: one line there and back, exit 0. Returns stderr."""
    return pipe_round_trip(test, url, *options, line=b"through the tunnel\n")


class ThroughTinyproxy(unittest.TestCase):

    def test_pipe_round_trip(self):
        for kind in ("websockets", "ws", "wsl"):
            with self.subTest(peer=kind), Peer(kind) as peer, Tinyproxy([peer.port]) as proxy:
                stderr = exchange(self, peer.url, "--proxy", proxy.url())
                self.assertIn(f"* through proxy 127.0.0.1:{proxy.port}\n", stderr)
                self.assertIn(f"> CONNECT 127.0.0.1:{peer.port} HTTP/1.1\n", stderr)
                self.assertIn("< HTTP/1.0 200 Connection established\n", stderr)  # tinyproxy's version, as sent
                self.assertNotIn("Proxy-Authorization", stderr)
                self.assertIn("Request (file descriptor", proxy.log())  # it did go through tinyproxy
                self.assertIn(f"CONNECT 127.0.0.1:{peer.port} HTTP/1.1", proxy.log())

    def test_proxy_credentials_and_server_credentials_each_go_to_their_own(self):
        auth = (PROXY_USER, PROXY_PASSWORD)
        with Peer("websockets") as peer, Tinyproxy([peer.port], auth=auth) as proxy:
            # Percent-encoded letters decode to the same password: the decoded one is what is sent.
            proxy_url = proxy.url(f"{PROXY_USER}:pr0xy%50W")
            stderr = exchange(self, f"ws://bob:s3cret@127.0.0.1:{peer.port}/", "--proxy", proxy_url)
            self.assertIn("> Proxy-Authorization: Basic ***\n", stderr)
            self.assertIn("> Authorization: Basic ***\n", stderr)
            for secret in ("pr0xy", "s3cret", base64.b64encode(b"me:pr0xyPW").decode()):
                self.assertNotIn(secret, stderr)
            headers = {k.lower(): v for k, v in peer.wait_event("open")["headers"]}
            self.assertEqual(headers["authorization"], "Basic " + base64.b64encode(b"bob:s3cret").decode())
            self.assertNotIn("proxy-authorization", headers)  # the proxy's stay with the proxy

    def test_latency_and_loadtest_through_the_proxy(self):
        with Peer("wsl") as peer, Tinyproxy([peer.port]) as proxy:
            done = run_wsl("latency", "--proxy", proxy.url(), "-c", "3", "-i", "0", peer.url)
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertIn(b"3 sent, 3 received", done.stdout)
            self.assertIn(f"(127.0.0.1:{proxy.port})".encode(), done.stdout)  # connected to the proxy
            done = run_wsl("loadtest", peer.url, "--proxy", proxy.url(), "-c", "2", "-d", "300ms")
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertIn(b"connections  2 opened, 0 failed", done.stdout)

    def test_wss_through_the_proxy(self):
        with tempfile.TemporaryDirectory() as directory:
            certificate = make_certificate(directory)
            if certificate is None:
                self.skipTest("no openssl to make a certificate")
            cert, key = certificate
            with Peer("websockets", "echo", "--tls", cert, key) as peer, Tinyproxy([peer.port]) as proxy:
                stderr = exchange(self, peer.url, "--proxy", proxy.url(), "--cacert", cert)
                self.assertIn("* TLS TLSv1.", stderr)  # verified against --cacert, through the tunnel

    def test_wrong_or_missing_proxy_credentials_exit_76_with_the_status(self):
        with Peer("websockets") as peer, Tinyproxy([peer.port], auth=(PROXY_USER, PROXY_PASSWORD)) as proxy:
            for userinfo, status in ((f"{PROXY_USER}:wrongPW", "401 Unauthorized"),
                                     ("", "407 Proxy Authentication Required")):
                with self.subTest(userinfo=userinfo):
                    done = run_wsl("pipe", "--proxy", proxy.url(userinfo), peer.url, input=b"x\n")
                    stderr = done.stderr.decode()
                    self.assertEqual(done.returncode, 76, stderr)
                    self.assertIn(f"proxy 127.0.0.1:{proxy.port} refused CONNECT: HTTP {status}", stderr)
                    self.assertNotIn("wrongPW", stderr)
            self.assertEqual([e for e in peer.events if e["event"] == "open"], [])

    def test_a_proxy_nobody_listens_on_exits_69(self):
        port = unused_port()
        done = run_wsl("pipe", "--proxy", f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{unused_port()}/",
                       input=b"x\n")
        self.assertEqual(done.returncode, 69, done.stderr)
        self.assertIn(f"proxy 127.0.0.1:{port}: Connection refused".encode(), done.stderr)

    def test_a_server_the_proxy_cannot_reach_exits_69(self):
        dead = unused_port()
        with Tinyproxy([dead]) as proxy:
            done = run_wsl("pipe", "--proxy", proxy.url(), f"ws://127.0.0.1:{dead}/", input=b"x\n")
            self.assertEqual(done.returncode, 69, done.stderr)
            self.assertIn(b"refused CONNECT: HTTP 500 ", done.stderr)  # tinyproxy's "Unable to connect"

    def test_a_port_the_proxy_does_not_allow_exits_76(self):
        with Peer("websockets") as peer, Tinyproxy([unused_port()]) as proxy:
            done = run_wsl("pipe", "--proxy", proxy.url(), peer.url, input=b"x\n")
            self.assertEqual(done.returncode, 76, done.stderr)
            self.assertIn(b"refused CONNECT: HTTP 403 ", done.stderr)


class ThroughMicrosocks(unittest.TestCase):

    def test_pipe_round_trip_with_the_name_resolved_here_or_by_the_proxy(self):
        for kind in ("websockets", "ws", "wsl"):
            for scheme, seen in (("socks5", "127.0.0.1"), ("socks5h", "localhost")):
                with self.subTest(peer=kind, scheme=scheme), Peer(kind) as peer, Microsocks() as proxy:
                    # localhost is 127.0.0.1 in /etc/hosts; the peers listen on 127.0.0.1 only.
                    stderr = exchange(self, f"ws://localhost:{peer.port}/", "--proxy", proxy.url(scheme))
                    self.assertIn(f"* through SOCKS5 proxy 127.0.0.1:{proxy.port}", stderr)
                    self.assertIn(f"> SOCKS5 CONNECT localhost:{peer.port}\n", stderr)
                    self.assertIn("< SOCKS5 0 succeeded\n", stderr)
                    self.assertIn("< HTTP/1.1 101 Switching Protocols\n", stderr)
                    proxy.wait_log(f"connected to {seen}:{peer.port}")  # what the proxy was asked to reach

    def test_proxy_credentials_go_to_the_proxy_and_wrong_or_missing_ones_exit_76(self):
        with Peer("ws") as peer, Microsocks(auth=("me", "s0cks")) as proxy:
            stderr = exchange(self, peer.url, "--proxy", proxy.url("socks5h", "me:s0cks"))
            self.assertNotIn("s0cks", stderr)
            for userinfo, why in (("me:wrong", "user or password refused"), ("", "it wants a user and password")):
                with self.subTest(userinfo=userinfo):
                    done = run_wsl("pipe", "--proxy", proxy.url("socks5h", userinfo), peer.url, input=b"x\n")
                    self.assertEqual(done.returncode, 76, done.stderr)
                    self.assertEqual(done.stderr.decode(), f"wsl pipe: {peer.url}: SOCKS5 proxy 127.0.0.1:{proxy.port} "
                                                          f"refused: {why}\n")
        self.assertEqual(len(peer.events_named("open", 1)), 1)  # the one with the right password

    def test_wss_latency_and_loadtest_through_it(self):
        with tempfile.TemporaryDirectory() as directory:
            cert, key = make_certificate(directory)
            with Peer("websockets", "echo", "--tls", cert, key) as peer, Microsocks() as proxy:
                stderr = exchange(self, peer.url, "--proxy", proxy.url("socks5h"), "--cacert", cert)
                self.assertIn("* TLS TLSv1.", stderr)
        with Peer("wsl") as peer, Microsocks() as proxy:
            done = run_wsl("latency", "--proxy", proxy.url("socks5"), "-c", "3", "-i", "0", peer.url)
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertIn(b"3 sent, 3 received", done.stdout)
            done = run_wsl("loadtest", peer.url, "--proxy", proxy.url("socks5h"), "-c", "2", "-d", "300ms")
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertIn(b"connections  2 opened, 0 failed", done.stdout)

    def test_a_server_the_proxy_cannot_reach_exits_69_and_an_unknown_name_too(self):
        with Microsocks() as proxy:
            done = run_wsl("pipe", "--proxy", proxy.url("socks5h"), f"ws://127.0.0.1:{unused_port()}/", input=b"x\n")
            self.assertEqual(done.returncode, 69, done.stderr)
            self.assertIn(b"refused CONNECT: 5 connection refused\n", done.stderr)
            done = run_wsl("loadtest", "--proxy", proxy.url("socks5h"), f"ws://127.0.0.1:{unused_port()}/", "-c", "2",
                           "-d", "200ms", "--json")
            self.assertEqual(done.returncode, 69, done.stderr)
            self.assertEqual(json.loads(done.stdout)["failures"], {"SOCKS5 5": 2})
            # socks5:// resolves here, and says so when it cannot.
            done = run_wsl("pipe", "--proxy", proxy.url("socks5"), "ws://name.invalid/", input=b"x\n")
            self.assertEqual(done.returncode, 69, done.stderr)
            self.assertIn(b"(socks5:// resolves the name here, socks5h:// lets the proxy do it)", done.stderr)


class Others(unittest.TestCase):

    def test_a_proxy_that_never_answers_exits_75_at_the_connect_timeout(self):
        with SilentProxy() as proxy:
            started = time.monotonic()
            done = run_wsl("pipe", "--connect-timeout", "1", "--proxy", f"http://127.0.0.1:{proxy.port}",
                           "ws://127.0.0.1:9/", input=b"x\n")
            elapsed = time.monotonic() - started
            self.assertEqual(done.returncode, 75, done.stderr)
            self.assertIn(f"timed out (waiting for proxy 127.0.0.1:{proxy.port} to answer CONNECT)".encode(),
                          done.stderr)
            self.assertGreater(elapsed, 0.9)
            self.assertLess(elapsed, 1 + TIMEOUT / 2)
        self.assertTrue(proxy.requests and proxy.requests[0].startswith(b"CONNECT 127.0.0.1:9 HTTP/1.1\r\n"),
                        proxy.requests)

    def test_proxies_other_than_http_host_port_are_usage_errors(self):
        url = f"ws://127.0.0.1:{unused_port()}/"
        for proxy in ("https://127.0.0.1:3128", "socks4://127.0.0.1:1080", "socks5://127.0.0.1", "http://127.0.0.1",
                      "127.0.0.1:3128", "http://127.0.0.1:3128/path", "http://me:s3cr%zz@127.0.0.1:3128"):
            with self.subTest(proxy=proxy):
                done = run_wsl("pipe", "--proxy", proxy, url)
                self.assertEqual(done.returncode, 64, done.stderr)
                self.assertEqual(len(done.stderr.splitlines()), 1, done.stderr)
                self.assertIn(b"--proxy", done.stderr)
                self.assertNotIn(b"s3cr", done.stderr)

    def test_proxy_variables_in_the_environment_are_not_used(self):
        with SilentProxy() as proxy, Peer("wsl") as peer:
            env = dict(os.environ)
            for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
                env[name] = f"http://127.0.0.1:{proxy.port}"
            done = subprocess.run([WSL, "pipe", peer.url],
                                  input=b"direct\n", capture_output=True, timeout=TIMEOUT, env=env,
                                  preexec_fn=_die_with_parent)
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertEqual(proxy.requests, [])


if __name__ == "__main__":
    unittest.main()
