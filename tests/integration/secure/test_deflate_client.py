#!/usr/bin/python3
"""permessage-deflate (RFC 7692) with `wsl` as the client: `wsl pipe`, `loadtest` and `latency` with
--deflate options against python3-websockets and node `ws` echo servers configured to answer with
each parameter, and against a raw server answering with parameters wsl did not allow (exit 76).

`wsl pipe -v` shows the offer and the answer; the servers record what they received, so the test
checks the offer wsl made, the answer, every echoed line, and what wsl's compressor sent
(secure_harness.expect_compression: a repeated line shrinks to a few bytes exactly when wsl may keep
its context and its agreed window reaches back to the earlier copy; the servers' decoders are set to
the agreed window and would fail on a longer match).
"""

import json
import unittest

import secure_harness as h

# Text lines for `wsl pipe`: random base64 repeated at 6000 and 26000 bytes' distance, compressible
# words, a short line under the threshold, an empty one, and longer ones.
PIPE_PLAN = [
    {"type": "text", "kind": "random", "size": 6000},
    {"type": "text", "kind": "again", "of": 0},
    {"type": "text", "kind": "words", "size": 20000},
    {"type": "text", "kind": "again", "of": 0},
    {"type": "text", "kind": "words", "size": 10},
    {"type": "text", "kind": "pattern", "size": 0},      # an empty line: an empty message
    {"type": "text", "kind": "random", "size": 70000},
    {"type": "text", "kind": "pattern", "size": 200000},
]

OFFER = "permessage-deflate; client_max_window_bits"

# (name, wsl options, expected offer, python ServerPerMessageDeflateFactory arguments, expected
# answer, wsl's context takeover, wsl's window). python's zlib cannot compress with 8 bits, so its
# server never answers server_max_window_bits=8 (node does, below).
PYTHON_CASES = [
    ("default", (), OFFER, {}, "permessage-deflate", True, 15),
    ("server_no_context_takeover", (), OFFER, {"server_no_context_takeover": True},
     "permessage-deflate; server_no_context_takeover", True, 15),
    ("client_no_context_takeover", (), OFFER, {"client_no_context_takeover": True},
     "permessage-deflate; client_no_context_takeover", False, 15),
    *[(f"server_max_window_bits={n}", (), OFFER, {"server_max_window_bits": n},
       f"permessage-deflate; server_max_window_bits={n}", True, 15) for n in (9, 12, 15)],
    *[(f"client_max_window_bits={n}", (), OFFER, {"client_max_window_bits": n},
       f"permessage-deflate; client_max_window_bits={n}", True, n) for n in (8, 9, 12, 13, 14, 15)],
    ("all", (), OFFER, {"server_no_context_takeover": True, "client_no_context_takeover": True,
                        "server_max_window_bits": 11, "client_max_window_bits": 10},
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=11; "
     "client_max_window_bits=10", False, 10),
    # wsl's options make the offer.
    ("--deflate-window-bits 10", ("--deflate-window-bits", "10"), "permessage-deflate; client_max_window_bits=10",
     {}, "permessage-deflate; client_max_window_bits=10", True, 10),
    ("--deflate-window-bits 10, server limits to 9", ("--deflate-window-bits", "10"),
     "permessage-deflate; client_max_window_bits=10", {"client_max_window_bits": 9},
     "permessage-deflate; client_max_window_bits=9", True, 9),
    ("--deflate-window-bits 8", ("--deflate-window-bits", "8"), "permessage-deflate; client_max_window_bits=8",
     {}, "permessage-deflate; client_max_window_bits=8", True, 8),
    ("--deflate-peer-window-bits 10", ("--deflate-peer-window-bits", "10"),
     "permessage-deflate; server_max_window_bits=10; client_max_window_bits", {},
     "permessage-deflate; server_max_window_bits=10", True, 15),
    ("--deflate-no-context-takeover", ("--deflate-no-context-takeover",),
     "permessage-deflate; client_no_context_takeover; client_max_window_bits", {},
     "permessage-deflate; client_no_context_takeover", False, 15),
    ("--deflate-peer-no-context-takeover", ("--deflate-peer-no-context-takeover",),
     "permessage-deflate; server_no_context_takeover; client_max_window_bits", {},
     "permessage-deflate; server_no_context_takeover", True, 15),
    ("--deflate-threshold 0", ("--deflate-threshold", "0"), OFFER, {}, "permessage-deflate", True, 15),
    ("--deflate-level 1", ("--deflate-level", "1", "--deflate-mem-level", "1"), OFFER, {}, "permessage-deflate",
     None, 15),
]

# The same with node ws servers (PerMessageDeflate options; threshold 0: it compresses every echo).
NODE_CASES = [
    ("default", (), OFFER, {}, "permessage-deflate", True, 15),
    ("serverNoContextTakeover", (), OFFER, {"serverNoContextTakeover": True},
     "permessage-deflate; server_no_context_takeover", True, 15),
    ("clientNoContextTakeover", (), OFFER, {"clientNoContextTakeover": True},
     "permessage-deflate; client_no_context_takeover", False, 15),
    *[(f"serverMaxWindowBits={n}", (), OFFER, {"serverMaxWindowBits": n},
       f"permessage-deflate; server_max_window_bits={n}", True, 15) for n in (8, 9, 12, 15)],
    *[(f"clientMaxWindowBits={n}", (), OFFER, {"clientMaxWindowBits": n},
       f"permessage-deflate; client_max_window_bits={n}", True, n) for n in (8, 10, 12, 15)],
    ("--deflate-peer-window-bits 8", ("--deflate-peer-window-bits", "8"),
     "permessage-deflate; server_max_window_bits=8; client_max_window_bits", {},
     "permessage-deflate; server_max_window_bits=8", True, 15),
    ("--deflate-window-bits 9 --deflate-no-context-takeover", ("--deflate-window-bits", "9",
                                                                "--deflate-no-context-takeover"),
     "permessage-deflate; client_no_context_takeover; client_max_window_bits=9", {},
     "permessage-deflate; client_no_context_takeover; client_max_window_bits=9", False, 9),
    ("--deflate-threshold 0", ("--deflate-threshold", "0"), OFFER, {}, "permessage-deflate", True, 15),
]


def threshold_of(options):
    return int(options[options.index("--deflate-threshold") + 1]) if "--deflate-threshold" in options else 64


def negotiation(stderr):
    """The offer and the answer `wsl pipe -v` printed."""
    sent = [line.split(": ", 2)[2] for line in stderr.splitlines() if line.startswith("wsl pipe: > Sec-WebSocket-Extensions:")]
    got = [line.split(": ", 2)[2] for line in stderr.splitlines() if line.startswith("wsl pipe: < Sec-WebSocket-Extensions:")]
    return sent, got


class Pipe(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.data = h.payloads(PIPE_PLAN)
        cls.stdin = b"".join(line + b"\n" for line in cls.data)

    def check(self, name, url, options, offer, answer, takeover, window, server_events):
        result = h.run_wsl("pipe", url, "--deflate", *options, "-v", "-n", "--max-messages", str(len(PIPE_PLAN)),
                           stdin=self.stdin, timeout=3 * h.TIMEOUT)
        self.assertEqual(result.returncode, 0, h.describe(result))
        self.assertEqual(negotiation(result.stderr), ([offer], [answer]))
        self.assertEqual(result.stdout, self.stdin, "the echoes differ")
        opened = server_events(lambda e: e["server"] == name and e["event"] == "open")
        self.assertEqual((opened["offer"], opened["response"]), (offer, answer))
        sizes = [server_events(lambda e: e["server"] == name and e["event"] in ("message", "error"))
                 for _ in PIPE_PLAN]
        errors = [e for e in sizes if e["event"] == "error"]
        self.assertEqual(errors, [], "the server failed to decode what wsl sent")
        h.expect_compression(PIPE_PLAN, [e["compressed"] for e in sizes], takeover=takeover, window=window,
                             threshold=threshold_of(options), context=name)

    def test_python_servers(self):
        with h.PyServers() as py:
            urls = {name: py.start(name, deflate=config) for name, _, _, config, *_ in PYTHON_CASES}
            for name, options, offer, _, answer, takeover, window in PYTHON_CASES:
                with self.subTest(case=name):
                    self.check(name, urls[name], options, offer, answer, takeover, window, py.wait_event)

    def test_node_servers(self):
        # node_peer.js server names are tokens: the cases are numbered.
        configs = [{"name": f"n{i}", "deflate": {"threshold": 0, **case[3]}} for i, case in enumerate(NODE_CASES)]
        with h.NodeServers(configs) as node:
            for i, (name, options, offer, _, answer, takeover, window) in enumerate(NODE_CASES):
                with self.subTest(case=name):
                    self.check(f"n{i}", node.urls[f"n{i}"], options, offer, answer, takeover, window, node.wait_event)


class LoadtestAndLatency(unittest.TestCase):
    """Many messages per connection, verified byte for byte, over a few agreements."""

    PY = {"py-default": {}, "py-client-no-takeover-9": {"client_no_context_takeover": True, "client_max_window_bits": 9},
          "py-server-no-takeover-10": {"server_no_context_takeover": True, "server_max_window_bits": 10}}
    NODE = {"node-default": {}, "node-windows-8": {"serverMaxWindowBits": 8, "clientMaxWindowBits": 8}}

    @classmethod
    def setUpClass(cls):
        cls.py = h.PyServers()
        cls.urls = {name: cls.py.start(name, deflate=config) for name, config in cls.PY.items()}
        cls.node = h.NodeServers([{"name": name, "deflate": {"threshold": 0, **config}} for name, config in cls.NODE.items()])
        cls.node.start()
        cls.urls.update(cls.node.urls)

    @classmethod
    def tearDownClass(cls):
        cls.node.kill()
        cls.py.close()

    def test_loadtest_verify(self):
        for name, url in self.urls.items():
            for options in ((), ("--deflate-no-context-takeover", "--deflate-window-bits", "9")):
                with self.subTest(server=name, options=options):
                    result = h.run_wsl("loadtest", url, "--deflate", *options, "-c", "2", "-d", "300ms", "-s", "3000",
                                       "--binary", "--verify", "--json")
                    self.assertEqual(result.returncode, 0, h.describe(result))
                    stats = json.loads(result.stdout)
                    self.assertEqual((stats["opened"], stats["failed"], stats["errors"], stats["failures"]), (2, 0, 0, {}))
                    self.assertGreater(stats["received"], 10)
                    self.assertEqual(stats["close_codes"], {"1000": 2})

    def test_latency_messages(self):
        for name, url in self.urls.items():
            with self.subTest(server=name):
                result = h.run_wsl("latency", url, "--deflate", "--message", "-s", "500", "-c", "5", "-i", "0", "--json")
                self.assertEqual(result.returncode, 0, h.describe(result))
                stats = json.loads(result.stdout)
                self.assertEqual((stats["sent"], stats["received"], stats["lost"]), (5, 5, 0))


class BadAnswers(unittest.TestCase):
    """A server answering with an extension or parameters wsl did not offer or allow: wsl fails the
    connection before any data (RFC 7692 section 5 and 7.1; RFC 6455 section 4.1) and exits 76."""

    REFUSED = [
        # (wsl options, answer)
        ((), "permessage-deflate; client_max_window_bits"),  # a value is required in an answer
        (("--deflate-window-bits", "10"), "permessage-deflate; client_max_window_bits=12"),  # wider than offered
        (("--deflate-window-bits", "10"), "permessage-deflate; client_max_window_bits=15"),
        (("--deflate-peer-window-bits", "10"), "permessage-deflate; server_max_window_bits=12"),
        ((), "permessage-deflate; x-unknown"),
        ((), "permessage-deflate; server_max_window_bits=7"),
        ((), "permessage-deflate; server_max_window_bits=16"),
        ((), "permessage-deflate; client_max_window_bits=7"),
        ((), "permessage-deflate; server_no_context_takeover=1"),
        ((), "permessage-deflate; server_no_context_takeover; server_no_context_takeover"),
        ((), "permessage-deflate, permessage-deflate"),
        ((), "x-other"),
        ((), "permessage-deflate; server_max_window_bits=10 junk"),
    ]
    # The control: answers within what was offered work.
    ALLOWED = [
        ((), "permessage-deflate"),
        ((), "permessage-deflate; client_max_window_bits=10"),
        ((), "permessage-deflate; server_max_window_bits=10"),
        ((), "permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
        (("--deflate-window-bits", "10"), "permessage-deflate; client_max_window_bits=9"),
        (("--deflate-peer-window-bits", "10"), "permessage-deflate; server_max_window_bits=9"),
        ((), None),
    ]

    def test_answers(self):
        with h.RawServer() as server:
            for options, answer in self.REFUSED:
                server.extensions = answer
                for command in ("pipe", "latency"):
                    with self.subTest(answer=answer, options=options, client=command):
                        result = h.run_wsl(command, server.url, "--deflate", *options, stdin=b"x\n")
                        self.assertEqual(result.returncode, 76, h.describe(result))
                        self.assertRegex(result.stderr, "extension")
            for options, answer in self.ALLOWED:
                with self.subTest(answer=answer, options=options):
                    server.extensions = answer
                    result = h.run_wsl("pipe", server.url, "--deflate", *options, stdin=b"x\n")
                    self.assertEqual(result.returncode, 0, h.describe(result))

    def test_answer_with_an_extension_not_offered(self):
        with h.RawServer() as server:
            server.extensions = "permessage-deflate"
            result = h.run_wsl("pipe", server.url, stdin=b"x\n")
            self.assertEqual(result.returncode, 76, h.describe(result))
            self.assertNotIn("Sec-WebSocket-Extensions", server.requests[-1])


if __name__ == "__main__":
    unittest.main(verbosity=2)
