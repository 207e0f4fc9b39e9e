#!/usr/bin/python3
"""permessage-deflate (RFC 7692) with `wsl echo --deflate` as the server: every parameter offered by
python3-websockets and node `ws` clients, and wsl's own server options.

For each combination a client sends DEFLATE_PLAN (repeated random blocks, compressible text, 0 B to
1 MiB) on one connection and checks
  - every echo, byte for byte (a decoder out of step with the peer's context or window fails here);
  - the negotiated Sec-WebSocket-Extensions, exactly;
  - what wsl's compressor sent (secure_harness.expect_compression): a repeat of an earlier message
    shrinks to a few bytes exactly when context takeover was agreed and the agreed window reaches
    back to it, and the client's decoder, set to the agreed window, would fail on a longer match.
"""

import unittest

import secure_harness as h
from secure_harness import DEFLATE_PLAN

# (wsl echo options, client offer, expected response, wsl's context takeover, wsl's window). The offers are
# python3-websockets ClientPerMessageDeflateFactory arguments (client_max_window_bits defaults to
# True: offered without a value). python's zlib cannot compress with a window of 8 bits, so it never
# offers client_max_window_bits=8; node does below.
PYTHON_CASES = [
    ((), {}, "permessage-deflate", True, 15),
    ((), {"client_max_window_bits": None}, "permessage-deflate", True, 15),
    ((), {"server_no_context_takeover": True}, "permessage-deflate; server_no_context_takeover", False, 15),
    ((), {"client_no_context_takeover": True}, "permessage-deflate; client_no_context_takeover", True, 15),
    *[((), {"server_max_window_bits": n}, f"permessage-deflate; server_max_window_bits={n}", True, n)
      for n in (8, 9, 12, 13, 14, 15)],
    *[((), {"client_max_window_bits": n}, f"permessage-deflate; client_max_window_bits={n}", True, 15)
      for n in (9, 10, 11, 12, 13, 14)],
    ((), {"client_max_window_bits": 15}, "permessage-deflate", True, 15),
    ((), {"server_no_context_takeover": True, "client_no_context_takeover": True, "server_max_window_bits": 10,
          "client_max_window_bits": 11},
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; "
     "client_max_window_bits=11", False, 10),
    # wsl's own settings.
    (("--deflate-window-bits", "11"), {}, "permessage-deflate; server_max_window_bits=11", True, 11),
    (("--deflate-window-bits", "11"), {"server_max_window_bits": 9}, "permessage-deflate; server_max_window_bits=9",
     True, 9),
    (("--deflate-no-context-takeover",), {}, "permessage-deflate; server_no_context_takeover", False, 15),
    (("--deflate-peer-no-context-takeover",), {}, "permessage-deflate; client_no_context_takeover", True, 15),
    (("--deflate-peer-window-bits", "10"), {}, "permessage-deflate; client_max_window_bits=10", True, 15),
    (("--deflate-peer-window-bits", "10"), {"client_max_window_bits": 12},
     "permessage-deflate; client_max_window_bits=10", True, 15),
    # Without client_max_window_bits in the offer the server cannot limit the client's window.
    (("--deflate-peer-window-bits", "10"), {"client_max_window_bits": None}, "permessage-deflate", True, 15),
    # Level 1 with memLevel 1 compresses little: only the RSV1 bits are checked (takeover None).
    (("--deflate-level", "1", "--deflate-mem-level", "1"), {}, "permessage-deflate", None, 15),
    (("--deflate-level", "9", "--deflate-mem-level", "9"), {}, "permessage-deflate", True, 15),
    (("--deflate-threshold", "0"), {}, "permessage-deflate", True, 15),
    (("--deflate-threshold", "0"), {"server_no_context_takeover": True}, "permessage-deflate; server_no_context_takeover",
     False, 15),
]

# The same for node ws (PerMessageDeflate options; threshold 0 makes it compress every message).
NODE_CASES = [
    ((), {}, "permessage-deflate", True, 15),
    ((), {"clientMaxWindowBits": False}, "permessage-deflate", True, 15),
    ((), {"serverNoContextTakeover": True}, "permessage-deflate; server_no_context_takeover", False, 15),
    ((), {"clientNoContextTakeover": True}, "permessage-deflate; client_no_context_takeover", True, 15),
    *[((), {"serverMaxWindowBits": n}, f"permessage-deflate; server_max_window_bits={n}", True, n)
      for n in (8, 9, 12, 15)],
    *[((), {"clientMaxWindowBits": n}, f"permessage-deflate; client_max_window_bits={n}", True, 15)
      for n in range(8, 15)],
    ((), {"clientMaxWindowBits": 15}, "permessage-deflate", True, 15),
    ((), {"serverNoContextTakeover": True, "clientNoContextTakeover": True, "serverMaxWindowBits": 8,
          "clientMaxWindowBits": 8},
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8; "
     "client_max_window_bits=8", False, 8),
    (("--deflate-window-bits", "8"), {}, "permessage-deflate; server_max_window_bits=8", True, 8),
    (("--deflate-peer-window-bits", "9", "--deflate-peer-no-context-takeover"), {},
     "permessage-deflate; client_no_context_takeover; client_max_window_bits=9", True, 15),
    # Every message compressed, the empty one too (after others: a flush with nothing new).
    (("--deflate-threshold", "0"), {}, "permessage-deflate", True, 15),
]


def threshold_of(options):
    return int(options[options.index("--deflate-threshold") + 1]) if "--deflate-threshold" in options else 64


class Servers:
    """One `wsl echo --deflate OPTIONS` per distinct option set, started together."""

    def __init__(self, option_sets):
        self.servers = {}
        for options in option_sets:
            if options not in self.servers:
                self.servers[options] = h.wsl_echo("--deflate", *options)
        for server in self.servers.values():
            server.start()

    def url(self, options):
        return self.servers[options].url

    def check_alive(self):
        for server in self.servers.values():
            server.assert_alive()

    def kill(self):
        for server in self.servers.values():
            server.kill()


class Parameters(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.servers = Servers([case[0] for case in PYTHON_CASES + NODE_CASES])

    @classmethod
    def tearDownClass(cls):
        cls.servers.kill()

    def tearDown(self):
        self.servers.check_alive()

    def test_python_clients(self):
        for options, offer, response, takeover, window in PYTHON_CASES:
            with self.subTest(server=options, offer=offer):
                result = h.py_client(self.servers.url(options), DEFLATE_PLAN, deflate=offer)
                self.assertIsNone(result.error)
                self.assertEqual(result.response, response)
                self.assertEqual(result.echoes, [True] * len(DEFLATE_PLAN))
                h.expect_compression(DEFLATE_PLAN, result.compressed, takeover=takeover, window=window,
                                     threshold=threshold_of(options), context=f"{options} {offer}")
                self.assertEqual(result.close, 1000)

    def test_node_clients(self):
        cases = [{"name": str(i), "url": self.servers.url(options), "deflate": {"threshold": 0, **offer},
                  "messages": DEFLATE_PLAN} for i, (options, offer, *_) in enumerate(NODE_CASES)]
        results = h.node_clients(cases)
        for i, (options, offer, response, takeover, window) in enumerate(NODE_CASES):
            with self.subTest(server=options, offer=offer):
                r = results[str(i)]
                self.assertIsNone(r["error"])
                self.assertEqual(r["response"], response)
                self.assertEqual([e["ok"] for e in r["echoes"]], [True] * len(DEFLATE_PLAN))
                h.expect_compression(DEFLATE_PLAN, [e["compressed"] for e in r["echoes"]], takeover=takeover,
                                     window=window, threshold=threshold_of(options), context=f"{options} {offer}")
                self.assertEqual(r["close"], 1000)

    def test_wsl_declines_compression_it_was_not_asked_for(self):
        with h.wsl_echo() as plain:
            result = h.py_client(plain.url, DEFLATE_PLAN[:3], deflate={})
            self.assertIsNone(result.error)
            self.assertIsNone(result.response)
            self.assertEqual(result.compressed, [None] * 3)


if __name__ == "__main__":
    unittest.main(verbosity=2)
