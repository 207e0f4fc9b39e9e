#!/usr/bin/python3
"""wss:// with real peers: python3-websockets and node `ws` clients against `wsl echo --tls-cert`, and the
`wsl` clients (loadtest, pipe, latency) against python3-websockets and node `ws` wss servers.

Certificates come from a CA made for the run (secure_harness.make_pki). Verification failures,
client certificates, TLS versions and the handshake timeout are in test_tls_policy.py.
"""

import asyncio
import json
import os
import socket
import ssl
import struct
import tempfile
import time
import unittest

import secure_harness as h
import websockets  # python3-websockets, the Debian package

pki: h.Pki = None
_tmp = None


def setUpModule():
    global pki, _tmp
    _tmp = tempfile.TemporaryDirectory(prefix="wsl-secure-")
    pki = h.make_pki(_tmp.name)


def tearDownModule():
    _tmp.cleanup()


# Text and binary messages from 0 B to 1 MiB, across the frame length encodings (125/126, 65535/65536).
SIZES = [0, 1, 125, 126, 65535, 65536, 1 << 20]
SIZES_PLAN = [{"type": t, "kind": "random", "size": n} for n in SIZES for t in ("text", "binary")]


class ClientsAgainstWslEcho(unittest.TestCase):
    """python3-websockets and node ws clients, verifying the server against the test CA."""

    @classmethod
    def setUpClass(cls):
        cls.plain = h.wsl_echo(pki=pki)
        cls.deflate = h.wsl_echo("--deflate", pki=pki)
        cls.plain.start()
        cls.deflate.start()

    @classmethod
    def tearDownClass(cls):
        cls.plain.kill()
        cls.deflate.kill()

    def tearDown(self):
        self.plain.assert_alive()
        self.deflate.assert_alive()

    def test_servers_announce_wss(self):
        for server in (self.plain, self.deflate):
            self.assertTrue(server.url.startswith("wss://127.0.0.1:"), server.url)

    def check_python(self, server, deflate, host="127.0.0.1"):
        url = server.url.replace("127.0.0.1", host)
        result = h.py_client(url, SIZES_PLAN, ssl_context=h.client_context(pki.ca), deflate=deflate)
        self.assertIsNone(result.error)
        self.assertEqual(result.echoes, [True] * len(SIZES_PLAN))
        self.assertEqual(result.close, 1000)
        return result

    def test_python_client_without_compression(self):
        result = self.check_python(self.plain, None)
        self.assertIsNone(result.response)

    def test_python_client_with_compression(self):
        result = self.check_python(self.deflate, {})
        self.assertEqual(result.response, "permessage-deflate")
        # Under the 64-byte threshold uncompressed, above it compressed (RSV1).
        self.assertEqual([size is not None for size in result.compressed],
                         [spec["size"] >= 64 for spec in SIZES_PLAN])

    def test_python_client_offering_compression_to_a_server_without_it(self):
        result = self.check_python(self.plain, {})
        self.assertIsNone(result.response)
        self.assertEqual(result.compressed, [None] * len(SIZES_PLAN))

    def test_python_client_verifies_the_name_localhost(self):
        self.check_python(self.plain, None, host="localhost")

    def test_a_client_that_pipelines_gets_every_echo_in_order(self):
        # 300 small messages with a 100 KiB one in the middle, all written before reading anything:
        # wsl answers records it already holds together, and must keep them whole and in order.
        messages = [(h.harness.OP_TEXT, os.urandom(1 + i % 200).hex().encode()) if i % 2 else
                    (h.harness.OP_BINARY, os.urandom(1 + i % 200)) for i in range(300)]
        messages[150] = (h.harness.OP_BINARY, os.urandom(100 * 1024))
        for server in (self.plain, self.deflate):
            with self.subTest(server=server.url), \
                    h.harness.RawClient(server.port, ssl_context=h.client_context(pki.ca)) as client:
                client.handshake()
                client.send(b"".join(h.harness.build_frame(op, data) for op, data in messages))
                echoes = [client.recv_message() for _ in messages]
                self.assertEqual(echoes, messages)
                self.assertEqual(client.close(1000).close_code, 1000)

    def test_node_client_with_and_without_compression(self):
        cases = [
            {"name": "plain", "url": self.plain.url, "tls": {"ca": pki.ca}, "messages": SIZES_PLAN},
            {"name": "deflate", "url": self.deflate.url, "tls": {"ca": pki.ca}, "deflate": {"threshold": 0},
             "messages": SIZES_PLAN},
            {"name": "localhost", "url": self.plain.url.replace("127.0.0.1", "localhost"), "tls": {"ca": pki.ca},
             "messages": SIZES_PLAN[:4]},
        ]
        results = h.node_clients(cases)
        for case in cases:
            with self.subTest(case=case["name"]):
                r = results[case["name"]]
                self.assertIsNone(r["error"])
                self.assertTrue(r["opened"])
                self.assertEqual([e["ok"] for e in r["echoes"]], [True] * len(case["messages"]))
                self.assertEqual(r["close"], 1000)
        self.assertIsNone(results["plain"]["response"])
        self.assertEqual(results["deflate"]["response"], "permessage-deflate")
        self.assertEqual([e["compressed"] is not None for e in results["deflate"]["echoes"]],
                         [spec["size"] >= 64 for spec in SIZES_PLAN])


class ProxyProtocolBeforeTls(unittest.TestCase):
    """--proxy-protocol with wss://: a TCP balancer (TLS passes through it) sends the PROXY header,
    then the client's TLS handshake follows on the same connection."""

    def test_python_client_behind_a_version_2_header(self):
        with h.wsl_echo("--proxy-protocol", "-v", pki=pki) as server:
            async def scenario():
                sock = socket.create_connection(("127.0.0.1", server.port))
                body = socket.inet_aton("198.51.100.77") + socket.inet_aton("127.0.0.1") + struct.pack("!HH", 1, 443)
                sock.sendall(b"\r\n\r\n\x00\r\nQUIT\n\x21\x11" + struct.pack("!H", len(body)) + body)
                async with websockets.connect(f"wss://localhost:{server.port}/", sock=sock,
                                              ssl=h.client_context(pki.ca), server_hostname="localhost",
                                              compression=None) as ws:
                    await ws.send(b"x" * 70000)
                    return await asyncio.wait_for(ws.recv(), h.TIMEOUT)

            self.assertEqual(asyncio.run(scenario()), b"x" * 70000)
            server.stderr.wait_match(r"access .* \[\d+\] 198\.51\.100\.77 GET / 101 .* close=1000$")
            # A TLS client sent straight to it, without the header, is closed unanswered.
            with self.assertRaises((ConnectionError, ssl.SSLError, OSError)):
                with socket.create_connection(("127.0.0.1", server.port), timeout=h.TIMEOUT) as raw:
                    h.client_context(pki.ca).wrap_socket(raw, server_hostname="localhost")
            server.stderr.wait_match(r"no valid PROXY protocol header")


class WslClientsAgainstPeers(unittest.TestCase):
    """`wsl loadtest --verify`, `wsl pipe` and `wsl latency` against python3-websockets and node ws
    wss echo servers, with and without permessage-deflate, trusting the test CA with --cacert."""

    @classmethod
    def setUpClass(cls):
        cls.py = h.PyServers()
        tls = h.server_context(pki.server, pki.server_key)
        cls.urls = {
            "websockets": cls.py.start("websockets", tls),
            "websockets-deflate": cls.py.start("websockets-deflate", tls, deflate={}),
        }
        cls.node = h.NodeServers([
            {"name": "ws", "tls": {"cert": pki.server, "key": pki.server_key}},
            {"name": "ws-deflate", "tls": {"cert": pki.server, "key": pki.server_key}, "deflate": {"threshold": 0}},
        ])
        cls.node.start()
        cls.urls.update(cls.node.urls)
        cls.events = {"websockets": cls.py, "websockets-deflate": cls.py, "ws": cls.node, "ws-deflate": cls.node}

    @classmethod
    def tearDownClass(cls):
        cls.node.kill()
        cls.py.close()

    def opened(self, name):
        """The next open event of server `name`: what wsl offered and what the server answered."""
        predicate = lambda e: e["server"] == name and e["event"] == "open"  # noqa: E731
        return self.events[name].wait_event(predicate)

    def test_servers_are_wss(self):
        for name, url in self.urls.items():
            self.assertTrue(url.startswith("wss://127.0.0.1:"), f"{name}: {url}")

    def test_loadtest_verify(self):
        for name, url in self.urls.items():
            deflate = name.endswith("deflate")
            with self.subTest(server=name):
                args = ["loadtest", url, "--cacert", pki.ca, "-c", "3", "-d", "300ms", "-s", "3000", "--verify", "--json"]
                result = h.run_wsl(*args, *(["--deflate"] if deflate else []))
                self.assertEqual(result.returncode, 0, h.describe(result))
                stats = json.loads(result.stdout)
                self.assertEqual((stats["opened"], stats["failed"], stats["errors"], stats["failures"]), (3, 0, 0, {}))
                self.assertGreater(stats["received"], 0)
                self.assertEqual(stats["close_codes"], {"1000": 3})
                for _ in range(3):
                    opened = self.opened(name)
                    if deflate:
                        self.assertEqual(opened["offer"], "permessage-deflate; client_max_window_bits")
                        self.assertTrue(opened["response"].startswith("permessage-deflate"), opened)
                    else:
                        self.assertIsNone(opened["offer"])

    def test_pipe(self):
        lines = [b"first line", b"x" * 5000, "caf\u00e9 \u2603".encode(), os.urandom(3000).hex().encode()]
        for name, url in self.urls.items():
            deflate = name.endswith("deflate")
            with self.subTest(server=name):
                result = h.run_wsl("pipe", url, "--cacert", pki.ca, "-n", "--max-messages", str(len(lines)),
                                   *(["--deflate"] if deflate else []), stdin=b"\n".join(lines) + b"\n")
                self.assertEqual(result.returncode, 0, h.describe(result))
                self.assertEqual(result.stdout.split(b"\n"), lines + [b""])
                opened = self.opened(name)
                self.assertEqual(opened["response"] is not None, deflate, opened)

    def test_latency_pings_and_messages(self):
        for name, url in self.urls.items():
            deflate = name.endswith("deflate")
            for mode in ([], ["--message"]):
                with self.subTest(server=name, mode=mode):
                    result = h.run_wsl("latency", url, "--cacert", pki.ca, "-c", "3", "-i", "0", "-s", "100", "--json",
                                       *mode, *(["--deflate"] if deflate else []))
                    self.assertEqual(result.returncode, 0, h.describe(result))
                    stats = json.loads(result.stdout)
                    self.assertEqual((stats["sent"], stats["received"], stats["lost"]), (3, 3, 0))
                    self.opened(name)


class IdleConnections(unittest.TestCase):
    """What a quiet wss:// connection costs the server after large traffic.

    While large messages stream through, a TLS connection holds a 64 KiB input buffer and OpenSSL's
    two record buffers (about 17 KB each), besides the connection's own receive buffer. Once it has
    waited a second for its next message, it gives them back, as a plain connection gives back its
    receive buffer (test_idle_memory.py).

    Two waves of clients each send a 128 KiB message, read its echo and stay connected; after each
    wave the documented second passes, with room to spare (the time is what is under test, not a
    synchronisation). RSS is read after each pause: the second wave's quiet connections must cost
    the server no more than an idle TLS connection's state each (OpenSSL's objects, mostly). With
    kept buffers each costs about 130 KiB. (Unlike test_idle_memory.py, the reading is not taken
    while the second wave still holds its buffers: OpenSSL's come from malloc, whose reuse of the
    first wave's is too uneven to measure.)"""

    CLIENTS = 50
    MESSAGE = 128 * 1024
    RELEASE_DELAY = 1.0
    MAX_KIB_PER_CONNECTION = 64 if h.TIME_SCALE > 1 else 48  # sanitizer builds allocate more

    def wave(self, server, clients):
        context = h.client_context(pki.ca)
        for _ in range(self.CLIENTS):
            client = h.harness.open_client(server.port, ssl_context=context)
            clients.append(client)
            payload = os.urandom(self.MESSAGE)
            client.send_frame(h.harness.OP_BINARY, payload)
            self.assertEqual(client.recv_message(), (h.harness.OP_BINARY, payload))
        time.sleep(self.RELEASE_DELAY * 3 * h.TIME_SCALE)

    def test_quiet_connections_give_back_their_buffers(self):
        # So that RSS shows what the server holds, freed buffers must leave it: glibc serves blocks
        # of 16 KiB and more (OpenSSL's record buffers, wsl's buffers beyond its pool's cache) with
        # mmap and unmaps them when freed, and ASan keeps no quarantine.
        asan = ":".join(filter(None, [os.environ.get("ASAN_OPTIONS", ""), "quarantine_size_mb=0"]))
        env = {"ASAN_OPTIONS": asan, "MALLOC_MMAP_THRESHOLD_": str(16 * 1024)}
        clients = []
        with h.wsl_echo(pki=pki, env=env) as server:
            try:
                self.wave(server, clients)
                before_kib = server.vm_kib("VmRSS")
                self.wave(server, clients)
                after_kib = server.vm_kib("VmRSS")
                per_connection = (after_kib - before_kib) / self.CLIENTS
                print(f"server RSS {before_kib} KiB -> {after_kib} KiB for {self.CLIENTS} more wss:// connections "
                      f"that each sent {self.MESSAGE // 1024} KiB and went quiet: {per_connection:.1f} KiB each")
                self.assertLess(per_connection, self.MAX_KIB_PER_CONNECTION)
                # Quiet, not gone: each still gets its echoes, large ones included.
                for client in clients[::10]:
                    payload = os.urandom(self.MESSAGE)
                    client.send_frame(h.harness.OP_BINARY, payload)
                    self.assertEqual(client.recv_message(), (h.harness.OP_BINARY, payload))
            finally:
                for client in clients:
                    client.sock.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
