#!/usr/bin/python3
"""A server's TLS files in operation: SIGHUP reloads them (a renewed certificate) for the handshakes
that follow while open connections go on; a reload that fails keeps the certificate served; an
expired certificate is warned about; encrypted private keys are read with a password file, never
prompted for (servers and clients). SIGHUP without TLS shuts a server down like SIGTERM (129).

Every wait is on a line of wsl's stderr or on a socket, bounded (TIMEOUT); nothing sleeps.
"""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import unittest

import secure_harness as h
import harness

pki: h.Pki = None
_tmp = None
RENEWED = ""  # /CN=localhost, O=wsl renewed: another certificate for the same names
EXPIRED = ""  # /CN=localhost, its validity ended yesterday


def _leaf(name: str, subject: str, days: int) -> str:
    """A server certificate for localhost and 127.0.0.1 signed by the test CA; its path."""
    d = _tmp.name
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
                "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n")
    h._openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
               "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=d)
    h._openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
               "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", str(days),
               "-out", f"{name}.pem", "-extfile", f"{name}.ext", cwd=d)
    return os.path.join(d, f"{name}.pem")


def _encrypted(key: str, password: str) -> str:
    """`key` encrypted (AES-256, PKCS#8) with `password`; its path."""
    out = f"{key}.{password}.enc"
    with open(out + ".pw", "w") as f:
        f.write(password)
    h._openssl("pkey", "-in", key, "-aes256", "-passout", f"file:{out}.pw", "-out", out, cwd=_tmp.name)
    return out


def setUpModule():
    global pki, _tmp, RENEWED, EXPIRED
    _tmp = tempfile.TemporaryDirectory(prefix="wsl-reload-")
    pki = h.make_pki(_tmp.name)
    RENEWED = _leaf("renewed", "/CN=localhost/O=wsl renewed", 2)
    EXPIRED = _leaf("expired", "/CN=localhost/O=wsl expired", -1)


def tearDownModule():
    _tmp.cleanup()


def key_of(cert: str) -> str:
    return cert[:-len(".pem")] + ".key"


def der(cert: str) -> bytes:
    with open(cert) as f:
        return h.ssl.PEM_cert_to_DER_cert(f.read())


class Connection:
    """A raw wss:// client that trusts the test CA: the certificate it was shown, and echoes."""

    def __init__(self, port: int) -> None:
        self.client = harness.RawClient(port, ssl_context=h.client_context(pki.ca))
        self.certificate = self.client.sock.getpeercert(binary_form=True)
        self.client.handshake()

    def echo(self, payload: bytes) -> bytes:
        self.client.send_frame(harness.OP_BINARY, payload)
        opcode, data = self.client.recv_message()
        assert opcode == harness.OP_BINARY, opcode
        return data

    def close(self) -> int:
        code = self.client.close().close_code
        self.client.sock.close()
        return code


class Files:
    """The files a server is started with (copies, replaced as a renewal would)."""

    def __init__(self, directory: str) -> None:
        self.cert = os.path.join(directory, "live.pem")
        self.key = os.path.join(directory, "live.key")
        self.password = os.path.join(directory, "live.pw")

    def install(self, cert: str, key: str, password: str = "") -> None:
        # As certbot and most tools do: the new file renamed over the old one.
        for source, target in ((cert, self.cert), (key, self.key)):
            shutil.copyfile(source, target + ".new")
            os.replace(target + ".new", target)
        if password:
            with open(self.password, "w") as f:
                f.write(password + "\n")


class Reload(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="wsl-live-")
        self.addCleanup(self.dir.cleanup)
        self.files = Files(self.dir.name)

    def start(self, *options: str) -> h.Listening:
        server = h.wsl_echo(*options, cert=self.files.cert, key=self.files.key)
        server.start()
        self.addCleanup(server.kill)
        return server

    def sighup(self, server: h.Listening, pattern: str) -> str:
        server.proc.send_signal(signal.SIGHUP)
        return server.stderr.wait_match(pattern)

    def presented(self, server: h.Listening) -> bytes:
        """The certificate a new connection is shown (it is echoed, then closes with 1000)."""
        c = Connection(server.port)
        self.assertEqual(c.echo(b"new connection"), b"new connection")
        self.assertEqual(c.close(), 1000)
        return c.certificate

    def test_sighup_serves_the_renewed_certificate_and_open_connections_go_on(self):
        self.files.install(pki.server, pki.server_key)
        server = self.start()
        before = Connection(server.port)
        self.assertEqual(before.certificate, der(pki.server))
        self.assertEqual(before.echo(b"before"), b"before")

        self.files.install(RENEWED, key_of(RENEWED))
        line = self.sighup(server, r"SIGHUP: ")
        self.assertRegex(line, r"^wsl echo: SIGHUP: reloaded the TLS files; TLS certificate "
                               r"/CN=localhost/O=wsl renewed, valid until \d{4}-\d\d-\d\d \d\d:\d\d UTC$")
        self.assertEqual(self.presented(server), der(RENEWED))
        # The connection made before goes on, over the context it began with (freed only after it).
        self.assertEqual(before.echo(b"x" * 70000), b"x" * 70000)
        self.assertEqual(before.close(), 1000)
        self.assertEqual(self.presented(server), der(RENEWED))
        server.proc.send_signal(signal.SIGINT)
        self.assertEqual(server.proc.wait(timeout=h.TIMEOUT), 130)

    def test_a_reload_that_fails_keeps_the_certificate_served(self):
        self.files.install(pki.server, pki.server_key)
        server = self.start()
        open_connection = Connection(server.port)

        with open(self.files.cert, "w") as f:
            f.write("not a certificate\n")
        self.assertRegex(self.sighup(server, r"SIGHUP: "),
                         r"^wsl echo: SIGHUP: cannot load certificate \S+live\.pem: no start line; "
                         r"still serving the previous certificate$")
        self.assertEqual(self.presented(server), der(pki.server))

        self.files.install(RENEWED, pki.server_key)  # the new certificate, the old key
        self.assertRegex(self.sighup(server, r"SIGHUP: "),
                         r"^wsl echo: SIGHUP: cannot load private key \S+live\.key: key values mismatch; "
                         r"still serving the previous certificate$")
        self.assertEqual(self.presented(server), der(pki.server))

        os.remove(self.files.key)
        self.assertRegex(self.sighup(server, r"SIGHUP: "), r"^wsl echo: SIGHUP: cannot load private key .*; "
                                                           r"still serving the previous certificate$")
        self.assertEqual(self.presented(server), der(pki.server))

        self.files.install(RENEWED, key_of(RENEWED))  # the renewal completed
        self.assertRegex(self.sighup(server, r"SIGHUP: "), r"^wsl echo: SIGHUP: reloaded the TLS files; ")
        self.assertEqual(self.presented(server), der(RENEWED))
        self.assertEqual(open_connection.echo(b"still here"), b"still here")
        self.assertEqual(open_connection.close(), 1000)
        self.assertIsNone(server.proc.poll())

    def test_an_expired_certificate_is_warned_about_at_start_and_at_reload(self):
        self.files.install(EXPIRED, key_of(EXPIRED))
        proc = subprocess.Popen([h.WSL, "echo", "--port", "0", "--tls-cert", self.files.cert,
                                 "--tls-key", self.files.key], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                preexec_fn=harness._die_with_parent)
        harness._live.append(proc)
        stderr = harness._LineCollector(proc.stderr)

        def stop():
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=h.TIMEOUT)
            stderr.join(h.TIMEOUT)
            proc.stderr.close()
        self.addCleanup(stop)
        # The listening line first (scripts wait for it), then the warning.
        port = int(re.match(r"^listening on wss://127\.0\.0\.1:(\d+)/$", stderr.wait_match("."))[1])
        self.assertRegex(stderr.wait_match("."),
                         r"^wsl echo: the TLS certificate /CN=localhost/O=wsl expired expired on "
                         r"\d{4}-\d\d-\d\d \d\d:\d\d UTC: clients will refuse it$")
        # It serves (a client that does not check the dates would get through).
        result = h.run_wsl("pipe", f"wss://127.0.0.1:{port}/", "-k", "--max-messages", "1", stdin=b"hi\n")
        self.assertEqual((result.returncode, result.stdout), (0, b"hi\n"), h.describe(result))
        proc.send_signal(signal.SIGHUP)
        self.assertRegex(stderr.wait_match("SIGHUP"), r"^wsl echo: SIGHUP: reloaded the TLS files; ")
        self.assertRegex(stderr.wait_match("."), r"^wsl echo: the TLS certificate .* expired on ")

    def test_sighup_without_tls_closes_connections_with_1001_and_exits_129(self):
        with harness.Server() as server:
            client = harness.RawClient(server.port)
            client.handshake()
            server.signal(signal.SIGHUP)
            self.assertEqual(client.expect_close().close_code, 1001)
            client.sock.close()
            self.assertEqual(server.wait(), 129)


class EncryptedKeys(unittest.TestCase):
    """Never a prompt: the password comes from a file or the key does not load."""

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="wsl-keys-")
        self.addCleanup(self.dir.cleanup)
        self.password_file = os.path.join(self.dir.name, "pw")
        self.key = _encrypted(pki.server_key, "correct-horse")

    def write_password(self, text: str) -> None:
        with open(self.password_file, "w") as f:
            f.write(text)

    def run_echo(self, *options: str) -> subprocess.CompletedProcess:
        # A session of its own: no terminal that OpenSSL could prompt on.
        return subprocess.run([h.WSL, "echo", "--port", "0", "--tls-cert", pki.server, "--tls-key", self.key,
                               *options], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=h.TIMEOUT, start_new_session=True)

    def test_without_its_password_the_key_is_refused_and_the_option_named(self):
        result = self.run_echo()
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertEqual(result.stderr, f"wsl echo: cannot load private key {self.key}: it is encrypted and no "
                                        "password was given (give it with --tls-key-password-file)\n")

    def test_a_wrong_or_empty_password(self):
        self.write_password("wrong\n")
        result = self.run_echo("--tls-key-password-file", self.password_file)
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertEqual(result.stderr, f"wsl echo: cannot load private key {self.key}: it cannot be decrypted "
                                        "with the password given\n")
        self.write_password("\nsecond line\n")
        result = self.run_echo("--tls-key-password-file", self.password_file)
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertEqual(result.stderr, f"wsl echo: the password file {self.password_file} has an empty first line\n")

    def test_the_password_file_needs_a_certificate(self):
        self.write_password("correct-horse\n")
        result = h.run_wsl("echo", "--port", "0", "--tls-key-password-file", self.password_file)
        self.assertEqual(result.returncode, 64, result.stderr)
        self.assertIn("--tls-key-password-file need them", result.stderr)

    def test_the_password_is_read_again_at_each_reload(self):
        files = Files(self.dir.name)
        files.install(pki.server, self.key, password="correct-horse\r")  # a CRLF line end too
        server = h.wsl_echo("--tls-key-password-file", files.password, cert=files.cert, key=files.key)
        server.start()
        self.addCleanup(server.kill)
        c = Connection(server.port)
        self.assertEqual(c.certificate, der(pki.server))
        self.assertEqual(c.echo(b"encrypted key"), b"encrypted key")
        self.assertEqual(c.close(), 1000)

        files.install(RENEWED, _encrypted(key_of(RENEWED), "battery-staple"), password="battery-staple")
        server.proc.send_signal(signal.SIGHUP)
        self.assertRegex(server.stderr.wait_match("SIGHUP"), r"^wsl echo: SIGHUP: reloaded the TLS files; ")
        c = Connection(server.port)
        self.assertEqual(c.certificate, der(RENEWED))
        self.assertEqual(c.close(), 1000)

    def test_a_client_key(self):
        client_key = _encrypted(pki.client_key, "client-pass")
        self.write_password("client-pass\n")
        with h.wsl_echo("--tls-client-ca", pki.ca, pki=pki) as server:
            base = ["pipe", server.url, "--cacert", pki.ca, "--cert", pki.client, "--key", client_key,
                    "--max-messages", "1"]
            result = h.run_wsl(*base, "--key-password-file", self.password_file, stdin=b"signed\n")
            self.assertEqual((result.returncode, result.stdout), (0, b"signed\n"), h.describe(result))
            result = subprocess.run([h.WSL, *base], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                    timeout=h.TIMEOUT, start_new_session=True)
            self.assertEqual(result.returncode, 64, result.stderr)
            self.assertEqual(result.stderr, f"wsl pipe: cannot load private key {client_key}: it is encrypted and "
                                            "no password was given (give it with --key-password-file)\n")
            result = h.run_wsl("pipe", server.url, "--key-password-file", self.password_file)
            self.assertEqual(result.returncode, 64, result.stderr)
            self.assertEqual(result.stderr, "wsl pipe: --key-password-file needs --cert and --key\n")


if __name__ == "__main__":
    unittest.main()
