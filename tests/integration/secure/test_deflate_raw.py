#!/usr/bin/python3
"""permessage-deflate from a raw socket (harness.RawClient with zlib): what no well-behaved peer
sends. Corrupt compressed data -> 1007; a decompression bomb -> 1009 with the server's peak RSS
staying small; misplaced RSV bits -> 1002; malformed offers -> 101 without the extension (RFC 7692
section 5: a server declines an offer it cannot accept). After each case a fresh client still gets
echoes.
"""

import os
import unittest
import zlib

import secure_harness as h
from harness import OP_BINARY, OP_CONT, OP_PING, OP_TEXT, RawClient, assert_echoes

TAIL = b"\x00\x00\xff\xff"
MAX_RSS_MIB = int(os.environ.get("WSL_SECURE_MAX_RSS_MIB", "32"))


def deflate(data: bytes, compressor=None) -> bytes:
    """One message as RFC 7692 section 7.2.1 sends it: flushed, without the 00 00 ff ff tail."""
    c = compressor or zlib.compressobj(6, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(TAIL)
    return out[:-4]


class DeflateClient(RawClient):
    """A raw client that negotiated permessage-deflate (context takeover both ways, window 15)."""

    def __init__(self, port, offer="permessage-deflate"):
        super().__init__(port)
        response = self.handshake(extra=[f"Sec-WebSocket-Extensions: {offer}"])
        self.extensions = response.header("Sec-WebSocket-Extensions")
        self.compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.decompressor = zlib.decompressobj(-15)

    def send_compressed(self, opcode, data):
        self.send_frame(opcode, deflate(data, self.compressor), rsv=4)

    def recv_decompressed(self):
        """The next message: (opcode, payload, whether it came with RSV1)."""
        first = self.recv_frame()
        frames = [first]
        while not frames[-1].fin:
            frames.append(self.recv_frame())
        payload = b"".join(f.payload for f in frames)
        if first.rsv & 4:
            payload = self.decompressor.decompress(payload + TAIL)
        return first.opcode, payload, bool(first.rsv & 4)


class Failures(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = h.wsl_echo("--deflate", "--max-message-size", "1M")
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
        cls.server.kill()

    def tearDown(self):
        self.server.assert_alive()
        assert_echoes(self.server.port)

    def expect_failure(self, client, code):
        reply = client.expect_close()
        self.assertEqual(reply.close_code, code, reply)
        client.wait_eof()

    def test_the_client_compresses_and_the_echo_is_compressed(self):
        # The control for the cases below: this client's compressed messages are good ones.
        with DeflateClient(self.server.port) as client:
            self.assertEqual(client.extensions, "permessage-deflate")
            for i in range(3):
                text = (f"message {i}: " + "compressible " * 50).encode()
                client.send_compressed(OP_TEXT, text)
                self.assertEqual(client.recv_decompressed(), (OP_TEXT, text, True))
            self.assertEqual(client.close().close_code, 1000)

    def test_corrupt_streams_fail_with_1007(self):
        dictionary = b"a preset dictionary the server never saw " * 4
        with_dictionary = zlib.compressobj(6, zlib.DEFLATED, -15, zdict=dictionary)
        corrupt = {
            "reserved block type": b"\xff\xff\xff\xff",
            "stored block with a bad NLEN": b"\x00\x05\x00\x00\x00hello",
            "distance before the start": deflate(dictionary[:60], with_dictionary),
        }
        for what, payload in corrupt.items():
            with self.subTest(what=what), DeflateClient(self.server.port) as client:
                client.send_frame(OP_BINARY, payload, rsv=4)
                self.expect_failure(client, 1007)

    def test_corrupt_second_fragment_fails_with_1007(self):
        with DeflateClient(self.server.port) as client:
            good = deflate(b"a good start " * 100, client.compressor)  # ends on a block boundary
            client.send_frame(OP_BINARY, good, fin=False, rsv=4)
            client.send_frame(OP_CONT, b"\x07" + os.urandom(20))     # BFINAL=1, BTYPE=11: reserved
            self.expect_failure(client, 1007)

    def test_corruption_after_good_messages_fails_with_1007(self):
        with DeflateClient(self.server.port) as client:
            client.send_compressed(OP_TEXT, b"first, fine " * 20)
            self.assertEqual(client.recv_decompressed()[1], b"first, fine " * 20)
            client.send_frame(OP_TEXT, b"\xff\xff", rsv=4)
            self.expect_failure(client, 1007)

    def test_invalid_utf8_inside_compressed_text_fails_with_1007(self):
        with DeflateClient(self.server.port) as client:
            client.send_compressed(OP_TEXT, b"valid start, then \xff\xfe" + b"x" * 200)
            self.expect_failure(client, 1007)

    def test_misplaced_rsv_bits_fail_with_1002(self):
        cases = {
            "RSV1 on a continuation": lambda c: (c.send_frame(OP_TEXT, b"plain", fin=False),
                                                 c.send_frame(OP_CONT, deflate(b"x" * 100), rsv=4)),
            "RSV1 on a ping": lambda c: c.send_frame(OP_PING, b"", rsv=4),
            "RSV2": lambda c: c.send_frame(OP_TEXT, deflate(b"x" * 100), rsv=6),
            "RSV3": lambda c: c.send_frame(OP_TEXT, b"x", rsv=1),
        }
        for what, send in cases.items():
            with self.subTest(what=what), DeflateClient(self.server.port) as client:
                send(client)
                self.expect_failure(client, 1002)

    def test_rsv1_without_the_extension_fails_with_1002(self):
        with RawClient(self.server.port) as client:
            client.handshake()
            client.send_frame(OP_TEXT, deflate(b"x" * 100), rsv=4)
            self.expect_failure(client, 1002)


class Bomb(unittest.TestCase):
    """128 MiB of zeros in 128 KiB of deflate against a 1 MiB limit: 1009, and the server never holds
    the inflated message (its peak RSS stays under WSL_SECURE_MAX_RSS_MIB)."""

    INFLATED = 128 << 20

    @classmethod
    def setUpClass(cls):
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        zeros = bytes(1 << 20)
        cls.bomb = b"".join(c.compress(zeros) for _ in range(cls.INFLATED >> 20)) + c.flush(zlib.Z_SYNC_FLUSH)[:-4]

    def check(self, send):
        with h.wsl_echo("--deflate", "--max-message-size", "1M") as server:
            with DeflateClient(server.port) as client:
                send(client)
                # The echo relays the start of the message (compressed again) before the limit hits.
                relayed, inflate = 0, zlib.decompressobj(-15)
                while True:
                    frame = client.recv_frame()
                    if frame.opcode == 0x8:
                        break
                    self.assertFalse(frame.fin, "the bomb was echoed as a whole message")
                    relayed += len(inflate.decompress(frame.payload))
                self.assertEqual(frame.close_code, 1009, frame)
                client.wait_eof()
                self.assertLessEqual(relayed, 1 << 20)
            peak = server.vm_kib("VmHWM")
            self.assertLess(peak, MAX_RSS_MIB << 10, f"peak RSS {peak} KiB")
            server.assert_alive()
            assert_echoes(server.port)

    def test_in_one_frame(self):
        self.assertLess(len(self.bomb), 1 << 20)  # under the limit as it travels
        self.check(lambda client: client.send_frame(OP_BINARY, self.bomb, rsv=4))

    def test_in_fragments(self):
        def send(client):
            pieces = [self.bomb[i:i + 4096] for i in range(0, len(self.bomb), 4096)]
            client.send_frame(OP_BINARY, pieces[0], fin=False, rsv=4)
            for piece in pieces[1:-1]:
                client.send_frame(OP_CONT, piece, fin=False)
            client.send_frame(OP_CONT, pieces[-1])
        try:
            self.check(send)
        except (BrokenPipeError, ConnectionResetError):
            self.fail("the server closed before reading the bomb's fragments (it should fail with 1009 first)")


class MalformedOffers(unittest.TestCase):
    """An offer the server cannot read or accept is declined: 101 without Sec-WebSocket-Extensions,
    and the connection carries uncompressed messages. A good offer behind a bad one is taken."""

    DECLINED = [
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=abc",
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; client_max_window_bits=16",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; client_no_context_takeover=true",
        "permessage-deflate; unknown_parameter",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
        "permessage-deflate;",
        "permessage-deflate; =10",
        'permessage-deflate; server_max_window_bits="1 0"',
        'permessage-deflate; server_max_window_bits="10',
        "x-webkit-deflate-frame",
    ]
    ACCEPTED = {
        'permessage-deflate; server_max_window_bits="10"': "permessage-deflate; server_max_window_bits=10",
        "x-unknown; a=1, permessage-deflate": "permessage-deflate",
        "permessage-deflate; bogus, permessage-deflate; server_no_context_takeover":
            "permessage-deflate; server_no_context_takeover",
        "permessage-deflate; client_max_window_bits=20, permessage-deflate; client_max_window_bits=12":
            "permessage-deflate; client_max_window_bits=12",
    }

    @classmethod
    def setUpClass(cls):
        cls.server = h.wsl_echo("--deflate")
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
        cls.server.kill()

    def tearDown(self):
        self.server.assert_alive()

    def test_declined(self):
        text = b"compressible " * 100
        for offer in self.DECLINED:
            with self.subTest(offer=offer), DeflateClient(self.server.port, offer) as client:
                self.assertIsNone(client.extensions)
                client.send_frame(OP_TEXT, text)
                self.assertEqual(client.recv_decompressed(), (OP_TEXT, text, False))
                self.assertEqual(client.close().close_code, 1000)

    def test_good_offer_after_a_bad_one(self):
        text = b"compressible " * 100
        for offer, response in self.ACCEPTED.items():
            with self.subTest(offer=offer), DeflateClient(self.server.port, offer) as client:
                self.assertEqual(client.extensions, response)
                client.send_compressed(OP_TEXT, text)
                self.assertEqual(client.recv_decompressed(), (OP_TEXT, text, True))
                self.assertEqual(client.close().close_code, 1000)

    def test_offer_split_over_two_headers(self):
        with RawClient(self.server.port) as client:
            response = client.handshake(extra=["Sec-WebSocket-Extensions: x-foo",
                                               "Sec-WebSocket-Extensions: permessage-deflate"])
            self.assertEqual(response.header("Sec-WebSocket-Extensions"), "permessage-deflate")


if __name__ == "__main__":
    unittest.main(verbosity=2)
