#!/usr/bin/python3
"""Bad input on raw sockets: broken handshakes, protocol violations, limits and timeouts.

Each case asserts the exact HTTP status or close code (RFC 6455 sections 4.2, 5, 7.4 and 8.1), that
the server then closes TCP, and that a fresh client still gets echoes afterwards.
"""

import asyncio
import base64
import os
import socket
import struct
import tempfile
import time
import unittest
from typing import Optional

import websockets  # python3-websockets, the Debian package

from harness import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, TIME_SCALE, PeerClosed,
                     RawClient, Server, assert_echoes, frame_header, handshake_request, open_client,
                     run_wsl)


class ServerCase(unittest.TestCase):
    server_options = ()

    @classmethod
    def setUpClass(cls):
        cls.server = Server(*cls.server_options)
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
        cls.server.kill()

    def tearDown(self):
        self.server.assert_alive()
        assert_echoes(self.server.port)


class Handshake(ServerCase):
    server_options = ("--max-handshake-size", "4K")

    def answer_to(self, request: bytes):
        """Sends raw bytes as the request; returns the HTTP answer, after checking TCP is closed after it."""
        with RawClient(self.server.port) as client:
            client.send(request)
            response = client.read_http_response()
            self.assertEqual(client.wait_eof(), b"", "nothing may follow a rejection, and TCP must close")
        return response

    def test_garbage_instead_of_http_gets_400(self):
        self.assertEqual(self.answer_to(b"this is not HTTP at all\r\n\r\n").status, 400)

    def test_binary_garbage_gets_400(self):
        self.assertEqual(self.answer_to(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\r\n\r\n").status, 400)

    def test_bad_sec_websocket_key_gets_400(self):
        for key in ("abc", base64.b64encode(os.urandom(8)).decode(), "!!!!!!!!!!!!!!!!!!!!!!==",
                    base64.b64encode(os.urandom(17)).decode()):
            with self.subTest(key=key):
                self.assertEqual(self.answer_to(handshake_request(self.server.port, key=key)).status, 400)

    def test_missing_sec_websocket_key_gets_400(self):
        request = handshake_request(self.server.port).replace(b"Sec-WebSocket-Key", b"X-Not-The-Key")
        self.assertEqual(self.answer_to(request).status, 400)

    def test_version_8_gets_426_with_supported_version(self):
        response = self.answer_to(handshake_request(self.server.port, version="8"))
        self.assertEqual(response.status, 426)
        self.assertEqual(response.header("Sec-WebSocket-Version"), "13")

    def test_head_over_max_handshake_size_gets_431(self):
        request = handshake_request(self.server.port, extra=["X-Padding: " + "p" * 5000])
        self.assertEqual(self.answer_to(request).status, 431)

    def test_head_under_max_handshake_size_is_accepted(self):
        with RawClient(self.server.port) as client:
            client.handshake(extra=["X-Padding: " + "p" * 3000])
            client.send_frame(OP_TEXT, b"big head")
            self.assertEqual(client.recv_message(), (OP_TEXT, b"big head"))

    def test_plain_http_get_gets_426(self):
        # Closed after the answer when the client says so; otherwise kept for a next request (HTTP/1.1
        # keep-alive), and an upgrade may follow on the same connection.
        response = self.answer_to(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/html\r\n"
                                  b"Connection: close\r\n\r\n")
        self.assertEqual((response.status, response.header("Connection")), (426, "upgrade, close"))
        self.assertEqual(response.header("Sec-WebSocket-Version"), "13")
        with RawClient(self.server.port) as client:
            client.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/html\r\n\r\n")
            response = client.read_http_response()
            self.assertEqual((response.status, response.header("Connection")), (426, "upgrade"))
            self.assertEqual(response.header("Sec-WebSocket-Version"), "13")
            client.handshake()
            client.send_frame(OP_TEXT, b"after a 426")
            self.assertEqual(client.recv_message(), (OP_TEXT, b"after a 426"))


class HandshakeTimeout(ServerCase):
    server_options = ("--handshake-timeout", "1s")

    def test_half_a_request_is_dropped_after_the_timeout(self):
        with RawClient(self.server.port) as client:
            started = time.monotonic()
            client.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
            rest = client.wait_eof(5 * TIME_SCALE)  # a 408 answer is allowed, nothing else
            elapsed = time.monotonic() - started
        self.assertTrue(rest == b"" or rest.startswith(b"HTTP/1.1 408"), f"unexpected answer {rest[:100]!r}")
        self.assertGreater(elapsed, 0.5, "dropped long before --handshake-timeout")


class ConnectionLimit(ServerCase):
    server_options = ("--max-connections", "2")

    def tearDown(self):
        self.server.assert_alive()  # the limit is full here: no fresh client

    def test_connection_over_the_limit_gets_503_and_the_others_keep_working(self):
        with open_client(self.server.port) as first, open_client(self.server.port) as second:
            with RawClient(self.server.port) as third:
                third.send(handshake_request(self.server.port))
                self.assertEqual(third.read_http_response().status, 503)
            for client in (first, second):
                client.send_frame(OP_TEXT, b"still here")
                self.assertEqual(client.recv_message(), (OP_TEXT, b"still here"))


class ConnectionLimitPerAddress(ServerCase):
    # A negotiation ended by the handshake timeout cannot pass for one refused at once.
    server_options = ("--max-connections-per-ip", "2", "--handshake-timeout", "60s", "-v")

    def tearDown(self):
        self.server.assert_alive()  # 127.0.0.1's share is full here: no fresh client

    def client(self, source: str = "127.0.0.1") -> RawClient:
        client = RawClient(self.server.port, source=source)
        self.addCleanup(client.sock.close)
        return client

    def open(self, source: str = "127.0.0.1") -> RawClient:
        client = self.client(source)
        client.handshake()
        return client

    def refused(self, source: str = "127.0.0.1"):
        client = self.client(source)
        client.send(handshake_request(self.server.port))
        return client.read_http_response()

    def test_an_address_over_its_share_gets_429_and_other_addresses_are_served(self):
        first, second = self.open(), self.open()
        response = self.refused()
        self.assertEqual((response.status, response.body), (429, b"too many connections from this address\n"))
        self.assertRegex(self.server.wait_stderr(r"127\.0\.0\.1:\d+ GET / 429 "),
                         r"^wsl echo: access \S+ \[-\] 127\.0\.0\.1:\d+ GET / "
                         r"429 .*\(too many connections from this address\)$")
        # Another host (127.0.0.2 and 127.0.0.3 are loopback addresses too) has a share of its own.
        others = [self.open("127.0.0.2"), self.open("127.0.0.2"), self.open("127.0.0.3")]
        self.assertEqual(self.refused("127.0.0.2").status, 429)
        for client in (first, second, *others):
            client.send_frame(OP_TEXT, b"still here")
            self.assertEqual(client.recv_message(), (OP_TEXT, b"still here"))
        # A connection that ended gives its place back before the client sees TCP close.
        self.assertEqual(first.close().close_code, 1000)
        third = self.open()
        self.assertEqual(self.refused().status, 429)
        third.sock.close()  # dropped without a close frame: its place comes back too
        self.server.wait_stderr(r"close=1006")
        self.open()

    def test_an_address_negotiates_no_more_than_its_share_at_once(self):
        # Two connections from 127.0.0.4 that send no request hold two negotiations (a slowloris
        # would hold every slot of the server without a bound). A third is closed unanswered.
        held = [self.client("127.0.0.4"), self.client("127.0.0.4")]
        third = self.client("127.0.0.4")
        self.assertEqual(third.wait_eof(), b"")
        self.assertRegex(self.server.wait_stderr(r"access .* under way"),
                         r"^wsl echo: access \S+ \[-\] 127\.0\.0\.4:\d+ - - - \S+ in=0 out=0 "
                         r"\(too many handshakes under way from this address\)$")
        self.open("127.0.0.5")  # another host is served meanwhile
        for client in held:  # the held negotiations finish: the address's two places
            client.handshake()
        # Its places taken, the address negotiates once more and is answered 429.
        self.assertEqual(self.refused("127.0.0.4").status, 429)
        for client in held:
            client.send_frame(OP_TEXT, b"served")
            self.assertEqual(client.recv_message(), (OP_TEXT, b"served"))


class TrustedProxy(ServerCase):
    """--trusted-proxy 127.0.0.2: a reverse proxy there names its clients in X-Forwarded-For."""
    server_options = ("--trusted-proxy", "127.0.0.2", "--max-connections-per-ip", "1", "--handshake-timeout", "60s",
                      "-v")

    def tearDown(self):
        self.server.assert_alive()  # 127.0.0.1's share may be taken here

    def client(self, source: str) -> RawClient:
        client = RawClient(self.server.port, source=source)
        self.addCleanup(client.sock.close)
        return client

    def upgrade(self, source: str, forwarded: str, status: int) -> RawClient:
        """An upgrade from `source` naming `forwarded`, answered with `status`."""
        client = self.client(source)
        client.send(handshake_request(self.server.port, extra=[f"X-Forwarded-For: {forwarded}"]))
        self.assertEqual(client.read_http_response().status, status)
        return client

    def test_the_proxys_clients_have_their_own_shares_and_names(self):
        first = self.upgrade("127.0.0.2", "198.51.100.7", 101)
        # Another client through the same proxy: a place of its own (the share is one).
        self.upgrade("127.0.0.2", "203.0.113.1, 198.51.100.8", 101)
        # The first client again: its share is taken.
        self.upgrade("127.0.0.2", "198.51.100.7", 429)
        self.assertRegex(self.server.wait_stderr(r"access .* 429 "), r"\[-\] 198\.51\.100\.7 GET / 429 ")
        # A header the proxy did not fill in is not believed: the proxy's own address counts then.
        unbelieved = self.upgrade("127.0.0.2", "not an address", 101)
        # From anyone else the header means nothing.
        self.upgrade("127.0.0.3", "198.51.100.9", 101)
        self.upgrade("127.0.0.3", "198.51.100.10", 429)
        self.server.wait_stderr(r"access .* 127\.0\.0\.3:\d+ GET / 429 ")
        first.send_frame(OP_TEXT, b"still here")
        self.assertEqual(first.recv_message(), (OP_TEXT, b"still here"))
        # The access line of a connection comes when it ends.
        self.assertEqual(first.close().close_code, 1000)
        self.server.wait_stderr(r"access .* \[\d+\] 198\.51\.100\.7 GET / 101 .* close=1000$")
        self.assertEqual(unbelieved.close().close_code, 1000)
        self.server.wait_stderr(r"access .* \[\d+\] 127\.0\.0\.2:\d+ GET / 101 .* close=1000$")

    def test_a_trusted_proxy_may_hold_any_number_of_handshakes(self):
        # Every connection comes from the proxy: bounding its negotiations per address would bound
        # the whole site's. Three held ones (the share is one), and a fourth is still served.
        held = [self.client("127.0.0.2") for _ in range(3)]
        self.upgrade("127.0.0.2", "198.51.100.20", 101)
        for n, client in enumerate(held):
            client.send(handshake_request(self.server.port, extra=[f"X-Forwarded-For: 198.51.100.{21 + n}"]))
            self.assertEqual(client.read_http_response().status, 101)

    def test_a_bad_range_is_a_usage_error(self):
        for bad in ("10.0.0.1/8", "localhost", "::/129"):
            result = run_wsl("echo", "--port", "0", "--trusted-proxy", bad)
            self.assertEqual(result.returncode, 64, result.stderr)
            self.assertEqual(result.stderr.strip(),
                             f"wsl echo: --trusted-proxy {bad}: not an address or a network (10.0.0.0/8, fd00::/8)")
        result = run_wsl("echo", "--port", "0", "--trusted-proxy", "10.0.0.1", "--trusted-proxy-header", "X-Client")
        self.assertEqual(result.returncode, 64, result.stderr)
        self.assertEqual(result.stderr, "wsl echo: --trusted-proxy-header X-Client: X-Forwarded-For, Forwarded or "
                                        "X-Real-IP\n")
        result = run_wsl("echo", "--port", "0", "--trusted-proxy-header", "Forwarded")
        self.assertEqual(result.returncode, 64, result.stderr)
        self.assertIn("--trusted-proxy-header requires --trusted-proxy", result.stderr)


def proxy_v1(source: str) -> bytes:
    family = "TCP6" if ":" in source else "TCP4"
    target = "::1" if ":" in source else "127.0.0.1"
    return f"PROXY {family} {source} {target} 40000 443\r\n".encode()


def proxy_v2(source: Optional[str]) -> bytes:
    """A version 2 header: PROXY from `source` (IPv4 or IPv6), or LOCAL when None."""
    signature = b"\r\n\r\n\x00\r\nQUIT\n"
    if source is None:
        return signature + b"\x20\x00\x00\x00"
    if ":" in source:
        body = socket.inet_pton(socket.AF_INET6, source) + socket.inet_pton(socket.AF_INET6, "::1")
        family = b"\x21"
    else:
        body = socket.inet_aton(source) + socket.inet_aton("127.0.0.1")
        family = b"\x11"
    body += struct.pack("!HH", 40000, 443) + b"\x04\x00\x02ok"  # and a TLV, skipped
    return signature + b"\x21" + family + struct.pack("!H", len(body)) + body


class ProxyProtocol(ServerCase):
    """--proxy-protocol: a load balancer (HAProxy, an AWS NLB) names each client in a header first."""
    server_options = ("--proxy-protocol", "--max-connections-per-ip", "1", "-v")

    def tearDown(self):
        self.server.assert_alive()  # (assert_echoes sends no PROXY header)

    def upgrade(self, header: bytes, status: int) -> RawClient:
        client = RawClient(self.server.port)
        self.addCleanup(client.sock.close)
        client.send(header + handshake_request(self.server.port))  # one write, as a balancer's may be
        self.assertEqual(client.read_http_response().status, status)
        return client

    def test_each_client_named_by_a_header_has_its_share(self):
        first = self.upgrade(proxy_v1("198.51.100.7"), 101)
        self.upgrade(proxy_v2("198.51.100.7"), 429)  # the same client, however the header is written
        self.assertRegex(self.server.wait_stderr(r"access .* 429 "), r"\[-\] 198\.51\.100\.7 GET / 429 ")
        second = self.upgrade(proxy_v2("2001:db8::7"), 101)
        local = self.upgrade(proxy_v2(None), 101)  # the balancer's own check: its address counts
        for client in (first, second, local):
            client.send_frame(OP_TEXT, b"through the balancer")
            self.assertEqual(client.recv_message(), (OP_TEXT, b"through the balancer"))
        self.assertEqual(second.close().close_code, 1000)
        self.server.wait_stderr(r"access .* \[\d+\] \[2001:db8::7\] GET / 101 .* close=1000$")

    def test_a_connection_without_a_header_is_closed_unanswered(self):
        for first_bytes in (handshake_request(self.server.port), b"PROXY TCP4 nonsense\r\n", b"\x16\x03\x01\x02\x00"):
            client = RawClient(self.server.port)
            self.addCleanup(client.sock.close)
            client.send(first_bytes)
            try:
                self.assertEqual(client.wait_eof(), b"")
            except PeerClosed:  # the bytes it sent were never read: a reset may end it
                pass
            self.server.wait_stderr(r"access .* - - - .* \(no valid PROXY protocol header\)$")

    def test_a_real_client_behind_the_header(self):
        # python3-websockets on a socket that has sent a balancer's header first.
        async def scenario():
            sock = socket.create_connection(("127.0.0.1", self.server.port))
            sock.sendall(proxy_v1("203.0.113.50"))
            async with websockets.connect(f"ws://127.0.0.1:{self.server.port}/", sock=sock, compression=None) as ws:
                await ws.send("hello")
                return await asyncio.wait_for(ws.recv(), 10)

        self.assertEqual(asyncio.run(scenario()), "hello")
        self.server.wait_stderr(r"access .* \[\d+\] 203\.0\.113\.50 GET / 101 ")

    def test_over_a_unix_socket_too(self):
        # HAProxy's "server x unix@/path send-proxy": the header names the client, in the access log
        # and for the per-address limit; without one, closed unanswered as over TCP.
        with tempfile.TemporaryDirectory() as directory, \
                Server("--proxy-protocol", "--max-connections-per-ip", "1", "-v",
                       unix=os.path.join(directory, "wsl.sock")) as server:
            async def scenario():
                sock = socket.socket(socket.AF_UNIX)
                sock.connect(server.unix_path)
                sock.sendall(proxy_v1("203.0.113.51"))
                async with websockets.connect("ws://localhost/", sock=sock, compression=None) as ws:
                    await ws.send("over unix")
                    got = [await asyncio.wait_for(ws.recv(), 10)]
                    again = socket.socket(socket.AF_UNIX)  # the same client again: its share is taken
                    again.connect(server.unix_path)
                    again.sendall(proxy_v1("203.0.113.51"))
                    try:
                        async with websockets.connect("ws://localhost/", sock=again, compression=None):
                            got.append("admitted")
                    except websockets.InvalidStatusCode as e:
                        got.append(e.status_code)
                    return got

            self.assertEqual(asyncio.run(scenario()), ["over unix", 429])
            self.assertRegex(server.wait_stderr(r"access .* 429 "), r"\[-\] 203\.0\.113\.51 GET / 429 ")
            self.assertRegex(server.wait_stderr(r"access .* 101 "), r"\[\d+\] 203\.0\.113\.51 GET / 101 ")
            with socket.socket(socket.AF_UNIX) as bare:
                bare.settimeout(10)
                bare.connect(server.unix_path)
                bare.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                try:  # closed unanswered (a reset, as what it sent was never read)
                    self.assertEqual(bare.recv(100), b"")
                except ConnectionResetError:
                    pass
            self.assertRegex(server.wait_stderr(r"no valid PROXY protocol header"), r"access .* unix:pid=\d+,uid=\d+ ")


class ProtocolErrors(ServerCase):
    server_options = ("--max-message-size", "1000")

    def assert_fails_with(self, client: RawClient, code: int) -> None:
        """The server sends a well-formed Close with `code`, then closes TCP without waiting for us."""
        close = client.expect_close()
        self.assertEqual(close.close_code, code, f"close frame {close!r}")
        self.assertTrue(close.fin and not close.masked and close.rsv == 0, f"malformed close {close!r}")
        self.assertEqual(client.wait_eof(), b"", "nothing may follow the Close frame")

    def test_unmasked_frame_gets_1002(self):
        with open_client(self.server.port) as client:
            client.send_frame(OP_TEXT, b"not masked", masked=False)
            self.assert_fails_with(client, 1002)

    def test_reserved_data_opcode_3_gets_1002(self):
        with open_client(self.server.port) as client:
            client.send_frame(3, b"reserved")
            self.assert_fails_with(client, 1002)

    def test_reserved_control_opcode_11_gets_1002(self):
        with open_client(self.server.port) as client:
            client.send_frame(11, b"reserved")
            self.assert_fails_with(client, 1002)

    def test_rsv1_without_extension_gets_1002(self):
        with open_client(self.server.port) as client:
            client.send_frame(OP_TEXT, b"compressed?", rsv=4)
            self.assert_fails_with(client, 1002)

    def test_126_byte_ping_gets_1002(self):
        with open_client(self.server.port) as client:
            client.send_frame(OP_PING, b"p" * 126)
            self.assert_fails_with(client, 1002)

    def test_fragmented_ping_gets_1002(self):
        with open_client(self.server.port) as client:
            client.send_frame(OP_PING, b"half", fin=False)
            self.assert_fails_with(client, 1002)

    def test_invalid_utf8_across_fragments_fails_before_the_final_fragment(self):
        with open_client(self.server.port) as client:
            # U+10FFFF is F4 8F BF BF; F4 90 would be above it. Fragment 1 ends with a lone F4,
            # which is still a valid prefix; fragment 2 starts with 90, which makes it invalid.
            client.send_frame(OP_TEXT, "\u03ba\u1f79\u03c3\u03bc\u03b5 ".encode() + b"\xf4", fin=False)
            client.send_frame(OP_PING, b"after fragment 1")  # the pong proves fragment 1 was accepted
            frame = client.recv_frame()
            if frame.opcode == OP_TEXT:  # the echo may relay fragment 1 (never as a final frame)
                self.assertFalse(frame.fin)
                frame = client.recv_frame()
            self.assertEqual(frame.opcode, OP_PONG)
            client.send_frame(OP_CONT, b"\x90\x80\x80 and more", fin=False)
            self.assert_fails_with(client, 1007)  # the final fragment is never sent

    def test_invalid_utf8_in_a_single_frame_gets_1007(self):
        with open_client(self.server.port) as client:
            client.send_frame(OP_TEXT, b"overlong \xc0\xaf slash")
            self.assert_fails_with(client, 1007)

    def test_message_at_max_message_size_is_echoed(self):
        with open_client(self.server.port) as client:
            payload = os.urandom(1000)
            client.send_frame(OP_BINARY, payload)
            self.assertEqual(client.recv_message(), (OP_BINARY, payload))

    def test_frame_over_max_message_size_gets_1009_before_its_payload(self):
        with open_client(self.server.port) as client:
            client.send(frame_header(OP_BINARY, 1001, key=os.urandom(4)))  # the header only
            self.assert_fails_with(client, 1009)

    def test_huge_declared_length_gets_1009_before_its_payload(self):
        with open_client(self.server.port) as client:
            client.send(frame_header(OP_TEXT, 1 << 62, key=os.urandom(4)))
            self.assert_fails_with(client, 1009)

    def test_fragments_over_max_message_size_get_1009(self):
        with open_client(self.server.port) as client:
            client.send_frame(OP_BINARY, os.urandom(600), fin=False)
            client.send_frame(OP_CONT, os.urandom(600), fin=False)
            self.assert_fails_with(client, 1009)


class IdleTimeout(ServerCase):
    server_options = ("--idle-timeout", "1s", "--ping-interval", "0")

    def test_silent_client_is_dropped_after_about_a_second(self):
        with open_client(self.server.port) as client:
            started = time.monotonic()
            try:  # a Close frame before the drop is allowed, data is not
                frame = client.recv_frame(5 * TIME_SCALE)
                self.assertEqual(frame.opcode, OP_CLOSE, f"unexpected {frame!r}")
                client.wait_eof(5 * TIME_SCALE)
            except PeerClosed:
                pass
            except TimeoutError:
                self.fail("a silent client was not dropped within 5 s of --idle-timeout 1s")
            elapsed = time.monotonic() - started
        self.assertGreater(elapsed, 0.5)
        self.assertLess(elapsed, 5 * TIME_SCALE)

    def test_client_that_keeps_pinging_is_not_dropped(self):
        with open_client(self.server.port) as client:
            started = time.monotonic()
            while time.monotonic() - started < 2.5:  # more than twice the idle timeout
                client.send_frame(OP_PING, b"alive")
                self.assertEqual(client.recv_frame().payload, b"alive")
                client.expect_silence(0.25)  # paces the pings, and the connection must stay open
            client.send_frame(OP_TEXT, b"still open")
            self.assertEqual(client.recv_message(), (OP_TEXT, b"still open"))
            self.assertEqual(client.close().close_code, 1000)


if __name__ == "__main__":
    unittest.main(verbosity=2)
