#!/usr/bin/python3
"""The `wsl` command line contract (DESIGN.md, "CLI contract"): SIGINT, exit statuses, usage errors.

SIGINT: every connection gets Close 1001, the closing handshakes drain, the exit status is 130;
a second SIGINT exits at once. Usage errors exit 64 with one line on stderr.
"""

import re
import signal
import time
import unittest

from harness import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, TIME_SCALE, DidNotStart,
                     RawClient, Server, close_payload, open_client, run_wsl)

EXIT_USAGE, EXIT_INTERRUPTED = 64, 130


def echo_once(client: RawClient, text: bytes = b"hello") -> None:
    """A round trip: afterwards the server has surely registered this connection."""
    client.send_frame(OP_TEXT, text)
    echo = client.recv_message()
    if echo != (OP_TEXT, text):
        raise AssertionError(f"expected the echo of {text!r}, got {echo!r}")


class Sigint(unittest.TestCase):
    def test_sigint_closes_both_clients_with_1001_and_exits_130(self):
        with Server() as server, open_client(server.port) as a, open_client(server.port) as b:
            echo_once(a)
            echo_once(b)
            server.signal(signal.SIGINT)
            for client in (a, b):
                close = client.expect_close()
                self.assertEqual(close.close_code, 1001, f"close frame {close!r}")
                client.send_frame(OP_CLOSE, close_payload(1001))  # complete the closing handshake
                self.assertEqual(client.wait_eof(), b"")
            self.assertEqual(server.wait(), EXIT_INTERRUPTED)
            self.assertEqual(server.stdout.text(), "", "nothing may go to stdout")

    def test_sigint_without_clients_exits_130(self):
        with Server() as server:
            server.signal(signal.SIGINT)
            self.assertEqual(server.wait(), EXIT_INTERRUPTED)

    def test_sigint_right_after_the_listening_line_shuts_down_gracefully(self):
        # The handler must be in place before "listening" is printed: it used to be installed after
        # the threads started, and a SIGINT in between exited at once, dropping every connection
        # without a Close frame (about half the time when sent right after the line). 20 tries.
        for attempt in range(20):
            with Server("-v") as server:
                server.signal(signal.SIGINT)
                self.assertEqual(server.wait(), EXIT_INTERRUPTED)
                self.assertIn("shutting down: closing connections with 1001", server.stderr.text(),
                              f"attempt {attempt + 1}: exited without the graceful shutdown")

    def test_sigint_waits_at_most_close_timeout_for_silent_clients(self):
        with Server("--close-timeout", "1s") as server, open_client(server.port) as client:
            echo_once(client)
            started = time.monotonic()
            server.signal(signal.SIGINT)
            self.assertEqual(client.expect_close().close_code, 1001)
            self.assertEqual(server.wait(5 * TIME_SCALE), EXIT_INTERRUPTED)  # we never answer the Close
            self.assertGreater(time.monotonic() - started, 0.5, "did not wait for the client's Close")

    def test_sigint_does_not_wait_for_a_connection_that_never_sent_its_request(self):
        # A browser's spare connection, say. The kernel hands connections to accept() in order, so
        # once the second client is echoed, the first one's negotiation is running; stop must end
        # it rather than wait out --handshake-timeout.
        with Server("--handshake-timeout", "60s") as server, RawClient(server.port) as idle, \
                open_client(server.port) as client:
            echo_once(client)
            started = time.monotonic()
            server.signal(signal.SIGINT)
            self.assertEqual(client.expect_close().close_code, 1001)
            client.send_frame(OP_CLOSE, close_payload(1001))
            self.assertEqual(server.wait(5 * TIME_SCALE), EXIT_INTERRUPTED)
            self.assertLess(time.monotonic() - started, 5 * TIME_SCALE)
            self.assertEqual(idle.wait_eof(), b"", "the unfinished negotiation ends without an answer")

    def test_second_sigint_exits_at_once(self):
        with Server("--close-timeout", "60s") as server, open_client(server.port) as client:
            echo_once(client)
            server.signal(signal.SIGINT)
            self.assertEqual(client.expect_close().close_code, 1001)  # the first one is being handled
            server.signal(signal.SIGINT)
            self.assertEqual(server.wait(5 * TIME_SCALE), EXIT_INTERRUPTED)

    def test_sigint_while_a_client_finishes_a_fragmented_message_closes_cleanly(self):
        # RFC 6455 5.5.1: an endpoint MAY send the rest of its fragmented message before it answers
        # a Close. The server must discard that data and wait for our Close frame; dropping TCP
        # first leaves the closing handshake unfinished (not clean, RFC 6455 7.1.1 and 7.1.4).
        with Server("--close-timeout", "10s") as server, open_client(server.port) as client:
            client.send_frame(OP_BINARY, b"first fragment", fin=False)
            client.send_frame(OP_PING, b"sync")  # its pong proves the first fragment was read
            # The echo of the fragment may come first: when the two frames arrive in separate
            # reads, the server passes the fragment on before it sees the ping.
            while (frame := client.recv_frame()).opcode != OP_PONG:
                self.assertIn(frame.opcode, (OP_BINARY, OP_CONT), f"unexpected {frame!r}")
            server.signal(signal.SIGINT)
            while (frame := client.recv_frame()).opcode != OP_CLOSE:
                self.assertIn(frame.opcode, (OP_BINARY, OP_CONT), f"unexpected {frame!r}")
            self.assertEqual(frame.close_code, 1001)
            client.send_frame(OP_CONT, b" and the last one")
            client.expect_silence(0.5)  # the server may send nothing more, and must not hang up yet
            client.send_frame(OP_CLOSE, close_payload(1001))
            self.assertEqual(client.wait_eof(), b"")
            self.assertEqual(server.wait(), EXIT_INTERRUPTED)


class Usage(unittest.TestCase):
    def assert_usage_error(self, *args, mentions=None):
        result = run_wsl(*args)
        self.assertEqual(result.returncode, EXIT_USAGE, f"wsl {' '.join(args)}: {result.stderr!r}")
        self.assertEqual(result.stdout, "")
        lines = result.stderr.splitlines()
        self.assertEqual(len(lines), 1, f"expected one line on stderr, got {result.stderr!r}")
        if mentions:
            self.assertIn(mentions, lines[0], "the message must name what is wrong")

    def test_port_not_a_number(self):
        self.assert_usage_error("echo", "--port", "abc", mentions="--port")

    def test_port_out_of_range(self):
        self.assert_usage_error("echo", "--port", "65536", mentions="--port")

    def test_unknown_option_of_a_subcommand(self):
        self.assert_usage_error("echo", "--bogus", mentions="--bogus")

    def test_unknown_option_before_the_subcommand(self):
        self.assert_usage_error("--bogus", "echo", mentions="--bogus")

    def test_unknown_option_without_a_subcommand(self):
        self.assert_usage_error("--bogus", mentions="--bogus")

    def test_unknown_subcommand(self):
        self.assert_usage_error("frobnicate", mentions="frobnicate")

    def test_no_subcommand(self):
        self.assert_usage_error()

    def test_bad_size_and_duration(self):
        self.assert_usage_error("echo", "--max-message-size", "12Q", mentions="12Q")
        self.assert_usage_error("echo", "--idle-timeout", "soon", mentions="soon")

    def test_threads_out_of_range(self):
        self.assert_usage_error("echo", "--threads", "0", mentions="--threads")

    def test_ping_interval_not_shorter_than_idle_timeout(self):
        self.assert_usage_error("echo", "--ping-interval", "60s", "--idle-timeout", "30s")

    def test_version(self):
        result = run_wsl("--version")
        self.assertEqual(result.returncode, 0)
        self.assertRegex(result.stdout, r"^wsl \d+\.\d+\.\d+\n$")

    def test_help(self):
        for args in (["--help"], ["echo", "--help"]):
            with self.subTest(args=args):
                result = run_wsl(*args)
                self.assertEqual(result.returncode, 0)
                self.assertIn("echo", result.stdout)
        self.assertIn("--max-message-size", run_wsl("echo", "--help").stdout)


class PortInUse(unittest.TestCase):
    def assert_refused(self, port: int, *options: str) -> None:
        """A second `wsl echo` on the port must exit non-zero with one line saying the port is in use."""
        second = Server(*options, port=port)
        try:
            second.start()
        except DidNotStart as failed:
            self.assertIsNotNone(failed.status, "it neither listened nor exited")
            self.assertNotEqual(failed.status, 0)
            self.assertEqual(len(failed.stderr.splitlines()), 1, f"expected one line on stderr: {failed.stderr!r}")
            self.assertRegex(failed.stderr, re.compile(r"in use", re.I))
        else:
            second.kill()
            self.fail(f"a second `wsl echo {' '.join(options)}` listens on port {port}, which is already in use")

    def test_second_server_on_the_same_port_fails(self):
        with Server() as first:
            self.assert_refused(first.port)
            first.assert_alive()

    def test_second_multithreaded_server_on_the_same_port_fails(self):
        # --threads N binds N SO_REUSEPORT sockets; another process must still not share the port.
        with Server("--threads", "2") as first:
            self.assert_refused(first.port, "--threads", "2")
            first.assert_alive()

    def test_multithreaded_server_on_a_port_in_use_fails(self):
        with Server() as first:
            self.assert_refused(first.port, "--threads", "2")


if __name__ == "__main__":
    unittest.main(verbosity=2)
