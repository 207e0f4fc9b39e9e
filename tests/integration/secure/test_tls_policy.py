#!/usr/bin/python3
"""What wss:// refuses: untrusted certificates and wrong names (wsl clients exit 77 with OpenSSL's
reason; -k passes), client certificates required by --tls-client-ca, TLS 1.1 and below, and a client
that never finishes the TLS handshake (dropped after --handshake-timeout). After every refusal the
server still serves a good client.
"""

import os
import re
import socket
import subprocess
import tempfile
import time
import unittest

import secure_harness as h

pki: h.Pki = None
_tmp = None


def setUpModule():
    global pki, _tmp
    _tmp = tempfile.TemporaryDirectory(prefix="wsl-secure-")
    pki = h.make_pki(_tmp.name)


def tearDownModule():
    _tmp.cleanup()


PLAN = [{"type": "text", "kind": "words", "size": 100}, {"type": "binary", "kind": "random", "size": 70000}]
CLIENTS = ("pipe", "latency", "loadtest")


def client_args(command):
    """Arguments that make each client subcommand short."""
    return {"pipe": ["-n", "--max-messages", "1"], "latency": ["-c", "1"],
            "loadtest": ["-c", "1", "-d", "200ms", "--json"]}[command]


def assert_serves(test, server, **tls):
    """A python3-websockets client trusting the test CA still gets its echoes."""
    result = h.py_client(server.url, PLAN, ssl_context=h.client_context(pki.ca, **tls))
    test.assertIsNone(result.error, "the server stopped serving good clients")
    test.assertEqual(result.echoes, [True, True])


class Verification(unittest.TestCase):
    """wsl clients verify the server's certificate chain and name (RFC 6125 via OpenSSL)."""

    def expect_verification_failure(self, server, reason, *args, url=None):
        for command in CLIENTS:
            with self.subTest(client=command, args=args):
                result = h.run_wsl(command, url or server.url, *args, *client_args(command), stdin=b"hello\n")
                self.assertEqual(result.returncode, 77, h.describe(result))
                lines = result.stderr.splitlines()
                self.assertEqual(len(lines), 1, f"expected one line on stderr:\n{result.stderr}")
                self.assertRegex(lines[0], rf"^wsl {command}: .*TLS verification failed: {reason}$")
        server.assert_alive()

    def expect_insecure_passes(self, server, url=None):
        result = h.run_wsl("pipe", url or server.url, "-k", "-n", "--max-messages", "1", stdin=b"hello\n")
        self.assertEqual(result.returncode, 0, h.describe(result))
        self.assertEqual(result.stdout, b"hello\n")

    def test_self_signed_certificate_is_untrusted(self):
        with h.wsl_echo(cert=pki.self_signed, key=pki.self_signed_key) as server:
            self.expect_verification_failure(server, "self-signed certificate", "--cacert", pki.ca)
            self.expect_insecure_passes(server)

    def test_certificate_from_a_ca_not_in_the_system_store_is_untrusted(self):
        with h.wsl_echo(pki=pki) as server:
            self.expect_verification_failure(server, "unable to get local issuer certificate")
            self.expect_insecure_passes(server)
            # The control: the same server verifies with --cacert.
            result = h.run_wsl("pipe", server.url, "--cacert", pki.ca, "-n", "--max-messages", "1", stdin=b"ok\n")
            self.assertEqual((result.returncode, result.stdout), (0, b"ok\n"), h.describe(result))

    def test_certificate_trusted_through_another_ca_is_untrusted(self):
        with h.wsl_echo(pki=pki) as server:
            self.expect_verification_failure(server, "unable to get local issuer certificate", "--cacert", pki.other_ca)

    def test_wrong_ip_address(self):
        with h.wsl_echo(cert=pki.wrong_host, key=pki.wrong_host_key) as server:
            self.expect_verification_failure(server, "IP address mismatch", "--cacert", pki.ca)
            self.expect_insecure_passes(server)

    def test_wrong_host_name(self):
        with h.wsl_echo(cert=pki.wrong_host, key=pki.wrong_host_key) as server:
            url = server.url.replace("127.0.0.1", "localhost")
            self.expect_verification_failure(server, "hostname mismatch", "--cacert", pki.ca, url=url)
            self.expect_insecure_passes(server, url=url)

    def test_python_and_node_clients_refuse_the_wrong_host_too(self):
        # The control for the certificates themselves: peers we did not write agree with wsl.
        with h.wsl_echo(cert=pki.wrong_host, key=pki.wrong_host_key) as server:
            result = h.py_client(server.url, PLAN, ssl_context=h.client_context(pki.ca))
            self.assertRegex(result.error or "", "IP address mismatch")
            node = h.node_clients([{"name": "n", "url": server.url, "tls": {"ca": pki.ca}, "messages": PLAN}])["n"]
            self.assertFalse(node["opened"])
            self.assertRegex(node["error"] or "", "IP: 127.0.0.1 is not in the cert's list")


class ClientCertificates(unittest.TestCase):
    """`wsl echo --tls-client-ca CA` requires a client certificate signed by CA."""

    @classmethod
    def setUpClass(cls):
        cls.server = h.wsl_echo("--tls-client-ca", pki.ca, pki=pki)
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
        cls.server.kill()

    def tearDown(self):
        self.server.assert_alive()
        assert_serves(self, self.server, cert=pki.client, key=pki.client_key)

    def failures_since(self, mark, count):
        """Waits for `count` "handshake failed" lines after stderr line `mark`. A refused TLS
        handshake is logged once the server's lingering after its alert ends, which may be after the
        client has given up: a test waits for its own, or the next test would read them as its own."""
        deadline = time.monotonic() + h.TIMEOUT
        while True:
            logged = [line for line in self.server.stderr.all[mark:] if "handshake failed" in line]
            if len(logged) >= count:
                return logged
            self.assertIsNotNone(self.server.stderr.next_line(deadline), "the server's stderr ended")

    def refused(self, client, pattern):
        """Runs client() and checks that the server logged a refused negotiation matching pattern (a
        TLS failure, not an HTTP one) after it; returns client()'s result."""
        mark = len(self.server.stderr.all)
        result = client()
        self.assertRegex(self.failures_since(mark, 1)[0], pattern)
        return result

    def test_python_client_with_the_right_certificate_passes(self):
        assert_serves(self, self.server, cert=pki.client, key=pki.client_key)

    def test_python_client_without_a_certificate_is_refused(self):
        result = self.refused(lambda: h.py_client(self.server.url, PLAN, ssl_context=h.client_context(pki.ca)),
                              r"handshake failed: TLS handshake failed")
        self.assertFalse(result.opened)
        self.assertIsNotNone(result.error)

    def test_python_client_with_another_cas_certificate_is_refused(self):
        context = h.client_context(pki.ca, pki.other_client, pki.other_client_key)
        result = self.refused(lambda: h.py_client(self.server.url, PLAN, ssl_context=context),
                              r"handshake failed: TLS certificate verification failed")
        self.assertFalse(result.opened)
        self.assertIsNotNone(result.error)

    def test_node_clients(self):
        tls = {"ca": pki.ca}
        cases = [
            {"name": "right", "url": self.server.url, "tls": {**tls, "cert": pki.client, "key": pki.client_key},
             "messages": PLAN},
            {"name": "none", "url": self.server.url, "tls": tls, "messages": PLAN},
            {"name": "other", "url": self.server.url,
             "tls": {**tls, "cert": pki.other_client, "key": pki.other_client_key}, "messages": PLAN},
        ]
        mark = len(self.server.stderr.all)
        results = h.node_clients(cases)
        self.assertEqual(len(self.failures_since(mark, 2)), 2)  # "none" and "other"
        self.assertIsNone(results["right"]["error"])
        self.assertEqual([e["ok"] for e in results["right"]["echoes"]], [True, True])
        self.assertRegex(results["none"]["error"] or "", "certificate required")
        self.assertRegex(results["other"]["error"] or "", "unknown ca")
        for name in ("none", "other"):
            self.assertFalse(results[name]["opened"], name)

    def test_wsl_clients_with_the_right_certificate_pass(self):
        for command in CLIENTS:
            with self.subTest(client=command):
                result = h.run_wsl(command, self.server.url, "--cacert", pki.ca, "--cert", pki.client, "--key",
                                   pki.client_key, *client_args(command), stdin=b"hello\n")
                self.assertEqual(result.returncode, 0, h.describe(result))

    def test_wsl_clients_without_or_with_a_wrong_certificate_are_refused(self):
        # The server refuses the TLS handshake: the client's negotiation fails (exit 76, "refused
        # handshake"), with OpenSSL's reason (the server's alert) on stderr.
        cases = {"without": ([], "certificate required"),
                 "other CA": (["--cert", pki.other_client, "--key", pki.other_client_key], "unknown ca")}
        mark = len(self.server.stderr.all)
        self.addCleanup(lambda: self.failures_since(mark, len(cases) * len(CLIENTS)))
        for what, (args, reason) in cases.items():
            for command in CLIENTS:
                with self.subTest(certificate=what, client=command):
                    result = h.run_wsl(command, self.server.url, "--cacert", pki.ca, *args, *client_args(command),
                                       stdin=b"hello\n")
                    self.assertEqual(result.returncode, 76, h.describe(result))
                    self.assertRegex(result.stderr, rf"TLS handshake failed: .*{reason}")


class WslClientCertificate(unittest.TestCase):
    """`wsl pipe --cert/--key` presents its certificate to a python3-websockets server requiring one."""

    def test_certificate_is_presented(self):
        with h.PyServers() as py:
            url = py.start("strict", h.server_context(pki.server, pki.server_key, client_ca=pki.ca))
            result = h.run_wsl("pipe", url, "--cacert", pki.ca, "--cert", pki.client, "--key", pki.client_key,
                               "-n", "--max-messages", "1", stdin=b"with certificate\n")
            self.assertEqual((result.returncode, result.stdout), (0, b"with certificate\n"), h.describe(result))
            result = h.run_wsl("pipe", url, "--cacert", pki.ca, "-n", "--max-messages", "1", stdin=b"without\n")
            self.assertEqual(result.returncode, 76, h.describe(result))
            self.assertRegex(result.stderr, "TLS handshake failed")


class TlsVersions(unittest.TestCase):
    """TLS 1.2 and 1.3 only: `openssl s_client -tls1`/`-tls1_1` fail, `-tls1_2`/`-tls1_3` succeed."""

    # OpenSSL 3 refuses TLS 1.1 at its default security level whatever the server does; level 0
    # lets the client try, so that only the server's policy is tested.
    CIPHERS = ["-cipher", "DEFAULT:@SECLEVEL=0"]
    ENV = dict(os.environ, OPENSSL_CONF="/dev/null")

    def s_client(self, port, version):
        return subprocess.run([h.OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", version, *self.CIPHERS,
                               "-CAfile", pki.ca, "-verify_return_error", "-brief"],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=h.TIMEOUT, env=self.ENV)

    def test_the_client_command_can_speak_tls_1_1(self):
        # The control: an `openssl s_server` that allows TLS 1.1 accepts the very command refused below.
        server = subprocess.Popen([h.OPENSSL, "s_server", "-accept", "127.0.0.1:0", "-cert", pki.server, "-key",
                                   pki.server_key, "-tls1_1", *self.CIPHERS, "-naccept", "1"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  env=self.ENV, preexec_fn=h.harness._die_with_parent)
        try:
            lines = h.harness._LineCollector(server.stdout)
            deadline = time.monotonic() + h.TIMEOUT
            while True:  # "Using default temp DH parameters", then "ACCEPT 127.0.0.1:PORT"
                line = lines.next_line(deadline)
                self.assertIsNotNone(line, "s_server ended")
                match = re.match(r"^ACCEPT 127\.0\.0\.1:(\d+)$", line.strip())
                if match:
                    break
            result = self.s_client(int(match[1]), "-tls1_1")
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertIn("Protocol version: TLSv1.1", result.stderr)
        finally:
            server.kill()
            server.wait(timeout=h.TIMEOUT)

    def test_versions(self):
        with h.wsl_echo(pki=pki) as server:
            for version in ("-tls1", "-tls1_1"):
                with self.subTest(version=version):
                    result = self.s_client(server.port, version)
                    self.assertNotEqual(result.returncode, 0, result.stderr)
                    self.assertRegex(result.stderr, "alert protocol version")
            for version, name in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
                with self.subTest(version=version):
                    result = self.s_client(server.port, version)
                    self.assertEqual(result.returncode, 0, result.stderr)
                    self.assertIn(f"Protocol version: {name}", result.stderr)
                    self.assertIn("Verification: OK", result.stderr)
            # WebSocket traffic over each accepted version, with python's ssl pinned to it.
            for version in (h.ssl.TLSVersion.TLSv1_2, h.ssl.TLSVersion.TLSv1_3):
                with self.subTest(python=version.name):
                    ctx = h.client_context(pki.ca)
                    ctx.minimum_version = ctx.maximum_version = version
                    result = h.py_client(server.url, PLAN, ssl_context=ctx)
                    self.assertIsNone(result.error)
                    self.assertEqual(result.echoes, [True, True])
            server.assert_alive()


class PlainClientOnTheTlsPort(unittest.TestCase):
    def test_plain_http_is_dropped_without_an_http_answer(self):
        with h.wsl_echo(pki=pki) as server:
            with h.harness.RawClient(server.port) as client:
                client.send(h.harness.handshake_request(server.port))
                self.assertNotIn(b"HTTP/1.1", client.wait_eof())
            result = h.run_wsl("pipe", server.url.replace("wss://", "ws://"), stdin=b"x\n")
            self.assertEqual(result.returncode, 76, h.describe(result))
            server.assert_alive()
            assert_serves(self, server)


class HandshakeTimeout(unittest.TestCase):
    """A client that opens TCP and never finishes the TLS handshake is dropped after
    --handshake-timeout, while the server goes on serving others."""

    TIMEOUT = 1.0

    def test_stalled_handshakes_are_dropped(self):
        with h.wsl_echo("--handshake-timeout", f"{int(self.TIMEOUT * 1000)}ms", pki=pki) as server:
            # Nothing at all, and the start of a ClientHello (a record header announcing 512 bytes).
            stalled = []
            for first_bytes in (b"", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"):
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=h.TIMEOUT)
                sock.sendall(first_bytes)
                stalled.append((sock, time.monotonic()))
            # Meanwhile a good client is served.
            assert_serves(self, server)
            for sock, opened in stalled:
                with sock:
                    sock.settimeout(5 * self.TIMEOUT * h.TIME_SCALE)
                    try:
                        data = sock.recv(100)
                    except ConnectionResetError:
                        data = b""
                    except socket.timeout:
                        self.fail("a stalled TLS handshake was not dropped")
                    elapsed = time.monotonic() - opened
                    self.assertEqual(data, b"", "the server answered a handshake that never came")
                    self.assertGreater(elapsed, self.TIMEOUT * 0.8)
                    self.assertLess(elapsed, self.TIMEOUT + 2 * h.TIME_SCALE)
            server.assert_alive()
            assert_serves(self, server)


if __name__ == "__main__":
    unittest.main(verbosity=2)
