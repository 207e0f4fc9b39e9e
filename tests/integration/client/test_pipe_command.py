#!/usr/bin/python3
"""`wsl pipe URL -- COMMAND`: a command in place of stdin and stdout, against servers we did not write.

    test_pipe_command.py --peer websockets|ws [unittest options]

The servers are the `relay` mode of peer_websockets.py / peer_ws.js: they send the messages of
--send, record every message they receive (answering none) and, with --replies N, close once N
have come. What the command saw comes back as its messages, so the server's record is the proof.
The tests that do not depend on the server (usage, nobody listening) run once, with the
websockets peer.
"""

import json
import os
import signal
import sys
import time
import unittest

from client_harness import TIMEOUT, Peer, Wsl, peer_from_argv, run_wsl, unused_port

PEER = peer_from_argv(sys.argv)
INVALID_UTF8 = b"\xc3\x28\xa0\xa1\xe2\x28\xa1\xe2\x82\x28\xf0\x28\x8c\xbc\xed\xa0\x80\xff\xfe\xc0\xaf"
os.environ["WSL_TEST_INHERITED"] = "from the test"  # the command inherits wsl's environment


def peer_independent(test):
    """Run once, with one peer: the server plays no part."""
    return unittest.skipIf(PEER != "websockets", "runs with the websockets peer only")(test)


def relay(*messages, replies=0, close_code=1000, close_reason="", options=()):
    """A relay server that sends `messages` (str: text, bytes: binary) and closes after `replies`."""
    script = [{"text": m} if isinstance(m, str) else {"hex": m.hex()} for m in messages]
    return Peer(PEER, "relay", "--send", json.dumps(script), "--replies", str(replies), "--close-code",
                str(close_code), "--close-reason", close_reason, *options)


def pipe_command(url, *args, timeout=TIMEOUT):
    """`wsl pipe [OPTIONS] URL -- COMMAND...`: args before "--" are options, after it the command."""
    split = args.index("--")
    return run_wsl("pipe", *args[:split], url, *args[split:], timeout=timeout)


def payloads(peer, count):
    return [bytes.fromhex(m["hex"]) for m in peer.messages(count)]


class RoundTrip(unittest.TestCase):
    """The server's messages through the command and back."""

    def test_lines_through_cat_in_order(self):
        lines = [f"line {i} ünï €" for i in range(200)] + ["", "  spaces\tand tabs \r"]
        with relay(*lines, replies=len(lines)) as peer:
            done = pipe_command(peer.url, "--", "cat")
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertEqual(payloads(peer, len(lines)), [line.encode() for line in lines])
            self.assertEqual([m["type"] for m in peer.messages(len(lines))], ["text"] * len(lines))
            self.assertEqual(peer.wait_event("close")["code"], 1000)
            self.assertEqual(done.stdout, b"")  # stdout is the command's, not ours

    def test_lines_through_tr_with_max_messages(self):
        # tr writes only at the end of its input: --max-messages ends it after the second message,
        # and what it writes then still goes out before our close.
        with relay("hello", "world", "not delivered") as peer:
            done = pipe_command(peer.url, "--max-messages", "2", "--", "tr", "a-z", "A-Z")
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertEqual(payloads(peer, 2), [b"HELLO", b"WORLD"])
            self.assertEqual(peer.wait_event("close")["code"], 1000)
            self.assertEqual(len([e for e in peer.events if e["event"] == "message"]), 2)

    def test_nul_delimited(self):
        with relay("a", "b\nc", "", "d", replies=4) as peer:
            done = pipe_command(peer.url, "-0", "--", "cat")
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertEqual(payloads(peer, 4), [b"a", b"b\nc", b"", b"d"])

    def test_binary_exact_bytes_in_chunks(self):
        data = bytes(range(256)) * 8 + INVALID_UTF8 + b"\n\0\r\n"
        with relay(data) as peer:
            # The one message ends cat's input (--once); its copy comes back in reads of at most 100.
            done = pipe_command(peer.url, "--binary", "--chunk", "100", "--once", "--", "cat")
            self.assertEqual(done.returncode, 0, done.stderr)
            messages = peer.messages_totalling(len(data))
            self.assertEqual(b"".join(bytes.fromhex(m["hex"]) for m in messages), data)
            self.assertTrue(all(m["type"] == "binary" and 0 < len(m["hex"]) <= 200 for m in messages), messages)
            self.assertEqual(peer.wait_event("close")["code"], 1000)

    def test_a_line_that_is_not_utf8_goes_as_binary(self):
        with relay(INVALID_UTF8, "ok", replies=2) as peer:
            done = pipe_command(peer.url, "--", "cat")
            self.assertEqual(done.returncode, 0, done.stderr)
            got = [(m["type"], bytes.fromhex(m["hex"])) for m in peer.messages(2)]
            self.assertEqual(got, [("binary", INVALID_UTF8), ("text", b"ok")])

    def test_typed_lines_both_ways(self):
        # The command sees each message after its type's prefix (binary ones as base64) and its
        # lines are sent as their prefix says: through cat, the server gets back exactly what it
        # sent, types included. A line after the binary prefix that is not base64 is not sent.
        sent = ["hello", b"\x00\x01\x02\xff", "b:looks typed", b""]
        with relay(*sent, replies=len(sent)) as peer:
            done = pipe_command(peer.url, "--text-prefix", "t:", "--binary-prefix", "b:", "--base64", "--",
                                "sh", "-c", "echo 'b:not base64!'; exec cat")
            self.assertEqual(done.returncode, 0, done.stderr)
            got = peer.messages(len(sent))
            self.assertEqual([(m["type"], bytes.fromhex(m["hex"])) for m in got],
                             [("text", b"hello"), ("binary", b"\x00\x01\x02\xff"), ("text", b"b:looks typed"),
                              ("binary", b"")])
        self.assertIn(b"a line of the process's output is not base64 after the binary prefix 'b:' (--base64): "
                      b"not sent", done.stderr)

    def test_once_closes_stdin_and_still_sends_what_follows(self):
        with relay("one", "two", "three") as peer:
            done = pipe_command(peer.url, "--once", "-v", "--", "sh", "-c", "cat; echo after-eof")
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertEqual(payloads(peer, 2), [b"one", b"after-eof"])
            self.assertEqual(peer.wait_event("close")["code"], 1000)
            self.assertIn(b"1 message delivered", done.stderr)


class Trace(unittest.TestCase):
    def test_vv_traces_messages_and_close_frames_as_plain_pipe_does(self):
        # The command echoes one line and exits: our close goes first, the server answers it.
        for verbosity in ("-v", "-vv"):
            with self.subTest(verbosity=verbosity), relay("hello") as peer:
                done = pipe_command(peer.url, verbosity, "--", "sh", "-c", 'read l; echo "$l!"')
                stderr = done.stderr.decode()
                self.assertEqual(done.returncode, 0, stderr)
                self.assertEqual(payloads(peer, 1), [b"hello!"])
                self.assertIn("connected to", stderr)  # -v's own lines in both cases
                self.assertEqual(stderr.count("exit 0"), 1, stderr)  # the command's end, said once
                frames = ["< text message, 5 bytes\n", "> text message, 6 bytes\n",
                          "> close 1000 (normal closure)\n", "< close 1000"]
                for line in frames:
                    if verbosity == "-vv":
                        self.assertIn(line, stderr)
                    else:
                        self.assertNotIn(line, stderr)


class Environment(unittest.TestCase):
    def test_the_command_sees_url_subprotocol_extensions_and_ours(self):
        script = 'echo "$WSL_URL"; echo "$WSL_SUBPROTOCOL"; echo "$WSL_EXTENSIONS"; echo "$WSL_TEST_INHERITED"'
        with relay(options=("--subprotocols", "chat.v2", "--deflate")) as peer:
            url = peer.url + "path?q=1"
            done = run_wsl("pipe", "--subprotocol", "chat.v2", "--deflate", url, "--", "sh", "-c", script)
            self.assertEqual(done.returncode, 0, done.stderr)
            got = [p.decode() for p in payloads(peer, 4)]
            self.assertEqual(got[0], url)
            self.assertEqual(got[1], "chat.v2")
            self.assertTrue(got[2].startswith("permessage-deflate"), got[2])
            self.assertEqual(got[3], "from the test")

    def test_wsl_url_has_no_credentials(self):
        # The URL's user:password@ goes to the server as Basic auth, never to the command.
        with relay() as peer:
            url = peer.url.replace("ws://", "ws://alice:s3cr%40t@") + "in?x=1"
            done = pipe_command(url, "-v", "--", "sh", "-c", 'echo "$WSL_URL"')
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertEqual(payloads(peer, 1), [(peer.url + "in?x=1").encode()])
            self.assertIn(b"alice:***@", done.stderr)  # -v names the URL, its password hidden
            self.assertNotIn(b"s3cr", done.stderr)

    def test_a_failure_to_connect_hides_the_password(self):
        port = unused_port()
        done = pipe_command(f"ws://alice:s3cret@127.0.0.1:{port}/", "--", "cat")
        self.assertEqual(done.returncode, 69, done.stderr)
        self.assertIn(b"alice:***@", done.stderr)
        self.assertNotIn(b"s3cret", done.stderr)

    def test_empty_when_nothing_was_negotiated(self):
        with relay() as peer:
            done = pipe_command(peer.url, "--", "sh", "-c", 'echo "[$WSL_SUBPROTOCOL][$WSL_EXTENSIONS]"')
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertEqual(payloads(peer, 1), [b"[][]"])


class ExitStatus(unittest.TestCase):
    def test_the_commands_status_is_ours(self):
        with relay() as peer:
            done = pipe_command(peer.url, "--close-code", "4001", "--close-reason", "done here", "--", "sh", "-c",
                                "echo bye; exit 3")
            self.assertEqual(done.returncode, 3, done.stderr)
            self.assertEqual(payloads(peer, 1), [b"bye"])
            close = peer.wait_event("close")
            self.assertEqual((close["code"], close["reason"]), (4001, "done here"))

    def test_killed_by_a_signal_is_128_plus_n(self):
        with relay() as peer:
            done = pipe_command(peer.url, "--", "sh", "-c", "kill -KILL $$")
            self.assertEqual(done.returncode, 128 + signal.SIGKILL, done.stderr)
            self.assertEqual(peer.wait_event("close")["code"], 1000)

    def test_command_not_found(self):
        with relay() as peer:
            done = pipe_command(peer.url, "--", "wsl-no-such-command-here")
            self.assertEqual(done.returncode, 1, done.stderr)
            self.assertIn(b"wsl-no-such-command-here: command not found", done.stderr)
            self.assertEqual(done.stderr.count(b"\n"), 1, done.stderr)
            self.assertEqual(peer.wait_event("close")["code"], 1011)


class ServerClosesFirst(unittest.TestCase):
    def test_the_command_gets_every_message_then_eof(self):
        # The server closes right after the reply to its last message: the command has had every
        # message, then its stdin ends; its status (5) is ours since the close was a normal one.
        messages = [f"m{i}" for i in range(50)]
        with relay(*messages, replies=1) as peer:
            done = pipe_command(peer.url, "--", "sh", "-c",
                                'read first; echo "got $first"; n=1; while read l; do n=$((n+1)); done; '
                                'echo "eof after $n" >&2; exit 5')
            self.assertEqual(done.returncode, 5, done.stderr)
            self.assertEqual(payloads(peer, 1), [b"got m0"])
            self.assertIn(b"eof after 50", done.stderr)
            self.assertEqual(peer.wait_event("close")["code"], 1000)

    def test_a_command_ignoring_eof_gets_sigterm_after_the_grace(self):
        with relay("x", replies=1) as peer:
            started = time.monotonic()
            done = pipe_command(peer.url, "--close-grace", "0.3", "-v", "--", "sh", "-c",
                                "read l; echo $$; exec sleep 100")
            elapsed = time.monotonic() - started
            # We had to signal it: the connection's status, 0 for a normal close.
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertIn(b"SIGTERM", done.stderr)
            self.assertGreater(elapsed, 0.25)
            self.assertLess(elapsed, 0.3 + TIMEOUT / 2)
            pid = int(payloads(peer, 1)[0])
            self.assertFalse(os.path.exists(f"/proc/{pid}"), "the command is gone")

    def test_an_abnormal_close_code_wins(self):
        with relay("x", replies=1, close_code=4000, close_reason="go away") as peer:
            done = pipe_command(peer.url, "--", "sh", "-c", "cat; exit 0")
            self.assertEqual(done.returncode, 76, done.stderr)
            self.assertIn(b'server closed the connection: 4000 "go away"', done.stderr)


class Signals(unittest.TestCase):
    def test_sigint_closes_with_1001_stops_the_command_and_exits_130(self):
        with relay() as peer:
            with Wsl("pipe", peer.url, "--", "sh", "-c", "echo $$; exec sleep 100") as wsl:
                pid = int(payloads(peer, 1)[0])
                wsl.signal(signal.SIGINT)
                self.assertEqual(wsl.wait(), 130, wsl.stderr_text())
            close = peer.wait_event("close")
            self.assertEqual((close["code"], close["reason"]), (1001, "interrupted"))
            self.assertFalse(os.path.exists(f"/proc/{pid}"), "the command is gone")


class NoServer(unittest.TestCase):
    @peer_independent
    def test_nobody_listening(self):
        done = pipe_command(f"ws://127.0.0.1:{unused_port()}/", "--", "cat")
        self.assertEqual(done.returncode, 69, done.stderr)
        self.assertIn(b"refused", done.stderr)

    @peer_independent
    def test_usage_errors(self):
        url = f"ws://127.0.0.1:{unused_port()}/"
        for args in (["--close-grace", "1s", url], ["--close-grace", "0", url, "--", "cat"],
                     ["--no-close", url, "--", "cat"], ["--linger", "1", url, "--", "cat"]):
            with self.subTest(args=args):
                done = run_wsl("pipe", *args)
                self.assertEqual(done.returncode, 64, done.stderr)

    @peer_independent
    def test_help_shows_the_command_form(self):
        done = run_wsl("pipe", "--help")
        self.assertIn(b"Usage: wsl pipe [OPTIONS] URL [-- COMMAND [ARGS...]]", done.stdout)


if __name__ == "__main__":
    unittest.main()
