#!/usr/bin/python3
"""`--resolve HOST:PORT:ADDRESS[,ADDRESS...]` (curl's) for the clients: a name is connected to at the
addresses given, never looked up, while Host and the TLS name (SNI, the certificate check) stay
the URL's. python3-websockets servers (ws:// and wss://, with a certificate for echo.example
only) are the peers; the names used (echo.example, *.example) are never resolved.
"""

import os
import tempfile
import unittest

import secure_harness as h

pki: h.Pki = None
_tmp = None
NAMED = ""  # a certificate for DNS:echo.example only (no IP address)
SNI = []    # the server names the TLS server was asked for


def setUpModule():
    global pki, _tmp, NAMED
    _tmp = tempfile.TemporaryDirectory(prefix="wsl-resolve-")
    pki = h.make_pki(_tmp.name)
    d = _tmp.name
    with open(os.path.join(d, "named.ext"), "w") as f:
        f.write("subjectAltName=DNS:echo.example\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature\n")
    h._openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
               "named.key", "-out", "named.csr", "-subj", "/CN=echo.example", cwd=d)
    h._openssl("x509", "-req", "-in", "named.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", "7",
               "-days", "2", "-out", "named.pem", "-extfile", "named.ext", cwd=d)
    NAMED = os.path.join(d, "named.pem")


def tearDownModule():
    _tmp.cleanup()


class Resolve(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.servers = h.PyServers()
        cls.plain_port = int(cls.servers.start("plain").rsplit(":", 1)[1].strip("/"))
        context = h.server_context(NAMED, NAMED[:-len(".pem")] + ".key")
        context.sni_callback = lambda sock, name, ctx: SNI.append(name)
        cls.tls_port = int(cls.servers.start("tls", ssl_context=context).rsplit(":", 1)[1].strip("/"))

    @classmethod
    def tearDownClass(cls):
        cls.servers.close()

    def pipe(self, url, *options, status=0):
        result = h.run_wsl("pipe", url, "-n", "--max-messages", "1", *options, stdin=b"hello\n")
        self.assertEqual(result.returncode, status, h.describe(result))
        if status == 0:
            self.assertEqual(result.stdout, b"hello\n")
        return result

    def test_a_name_goes_to_the_address_given_with_its_host_header(self):
        port = self.plain_port
        self.pipe(f"ws://Echo.Example:{port}/", "--resolve", f"echo.example:{port}:127.0.0.1")
        event = self.servers.wait_event(lambda e: e["server"] == "plain" and e["event"] == "open")
        self.assertEqual(event["host"], f"Echo.Example:{port}")

    def test_tls_checks_the_urls_name(self):
        port = self.tls_port
        SNI.clear()
        self.pipe(f"wss://echo.example:{port}/", "--cacert", pki.ca, "--resolve", f"echo.example:{port}:127.0.0.1")
        self.assertEqual(SNI, ["echo.example"])
        # The certificate names no address: connecting by the address is refused, as it must be.
        result = self.pipe(f"wss://127.0.0.1:{port}/", "--cacert", pki.ca, status=77)
        self.assertIn("TLS verification failed", result.stderr)

    def test_the_addresses_are_tried_in_order(self):
        port = self.plain_port
        # Nothing listens on 127.0.0.2 (the server is bound to 127.0.0.1): refused, then the next.
        result = self.pipe(f"ws://echo.example:{port}/", "-v", "--resolve", f"echo.example:{port}:127.0.0.2,[127.0.0.1]")
        self.assertRegex(result.stderr, rf"connected to ws://echo\.example:{port}/ \(127\.0\.0\.1:{port}, from --resolve\)")
        result = self.pipe(f"ws://echo.example:{port}/", "--resolve", f"echo.example:{port}:127.0.0.2", status=69)
        self.assertRegex(result.stderr, r"^wsl pipe: ws://echo\.example:\d+/: Connection refused\n$")

    def test_an_entry_is_for_its_port_and_name_only(self):
        port = self.plain_port
        # localhost is in /etc/hosts: with an entry for another port it is looked up as usual...
        self.pipe(f"ws://localhost:{port}/", "--resolve", f"localhost:{port + 1 if port < 65535 else 1}:127.0.0.2")
        self.pipe(f"ws://localhost:{port}/", "--resolve", f"other.example:{port}:127.0.0.2")
        # ...and with one for its port, the entry wins over /etc/hosts.
        self.pipe(f"ws://localhost:{port}/", "--resolve", f"localhost:{port}:127.0.0.2", status=69)
        # The first entry that matches wins; '*' matches any name.
        self.pipe(f"ws://any.example:{port}/", "--resolve", f"any.example:{port}:127.0.0.1",
                  "--resolve", f"*:{port}:127.0.0.2")
        self.pipe(f"ws://any.example:{port}/", "--resolve", f"*:{port}:127.0.0.1")

    def test_latency_and_loadtest_take_it_too(self):
        port = self.plain_port
        url = f"ws://echo.example:{port}/"
        result = h.run_wsl("latency", url, "-c", "2", "-i", "0", "--message", "--json",
                           "--resolve", f"echo.example:{port}:127.0.0.1")
        self.assertEqual(result.returncode, 0, h.describe(result))
        self.assertEqual(h.json.loads(result.stdout)["received"], 2)
        result = h.run_wsl("loadtest", url, "-c", "2", "-d", "200ms", "--json",
                           "--resolve", f"echo.example:{port}:127.0.0.1")
        self.assertEqual(result.returncode, 0, h.describe(result))
        report = h.json.loads(result.stdout)
        self.assertEqual((report["opened"], report["failed"]), (2, 0))
        self.assertGreater(report["received"], 0)
        self.assertEqual(report["received"], report["sent"])

    def test_usage_errors(self):
        for value, why in (("echo.example", "expected HOST:PORT:ADDRESS"), ("echo.example:80", "expected HOST:PORT"),
                           ("echo.example:0:127.0.0.1", "the port is a number from 1 to 65535"),
                           ("echo.example:x:127.0.0.1", "the port is a number"),
                           ("::1:80:127.0.0.1", "expected HOST:PORT"),
                           ("echo.example:80:localhost", "'localhost' is not an IP address"),
                           ("echo.example:80:127.0.0.1,", "'' is not an IP address")):
            with self.subTest(value=value):
                result = h.run_wsl("pipe", "ws://echo.example/", "--resolve", value)
                self.assertEqual(result.returncode, 64, h.describe(result))
                self.assertTrue(result.stderr.startswith(f"wsl pipe: --resolve '{value}': {why}"), result.stderr)
                self.assertEqual(result.stderr.count("\n"), 1, result.stderr)
        # IPv6 in brackets, as a host and as addresses.
        port = self.plain_port
        self.pipe(f"ws://[::2]:{port}/", "--resolve", f"[::2]:{port}:[::1]", status=69)  # a literal is never resolved


if __name__ == "__main__":
    unittest.main()
