#!/usr/bin/python3
"""examples/send_file, the library's client side as a user writes it: a file streamed as one message
to echo servers we did not write (python3-websockets and node ws, test peers in this directory),
the echo read and compared while the file is still being sent. $WSL_EXAMPLE_SEND_FILE is the
example's binary.

- the echo of random files (empty, one byte, 60 KB, 1 MiB, 32 MiB) is found identical, and sending 32 MiB
  costs the example far less memory than the file (both directions are streams);
- an echo that differs (a server that answers with the file, one byte changed) is caught at that
  byte, and one cut short at its end; both exit 1 with one line;
- nobody listening: exit 1, the connection's error in one line.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import threading
import unittest

from client_harness import TIMEOUT, Peer, _die_with_parent, unused_port

BINARY = os.environ.get("WSL_EXAMPLE_SEND_FILE") or os.path.join(
    os.path.dirname(__file__), "..", "..", "..", "build", "release", "examples", "send_file")
MiB = 1 << 20
SMALL = 60_000


def run_example(url: str, path: str) -> tuple:
    """Runs the example to its end: (exit status, stdout, stderr, peak RSS in KiB)."""
    proc = subprocess.Popen([BINARY, url, path], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=_die_with_parent)
    try:
        out, err = proc.communicate(timeout=3 * TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError(f"send_file {url} {path} did not end within {3 * TIMEOUT} s")
    return proc.returncode, out.decode(), err.decode()


def peak_rss_kib(url: str, path: str) -> tuple:
    """Runs the example and returns (exit status, its own peak RSS in KiB), from wait4()."""
    proc = subprocess.Popen([BINARY, url, path], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
    bound = threading.Timer(3 * TIMEOUT, proc.kill)  # a hang ends as a failed status, not a hung test
    bound.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        bound.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss


class SendFile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.files = {}
        for size in (0, 1, SMALL, MiB, 32 * MiB):
            path = os.path.join(cls.tmp.name, f"{size}.bin")
            with open(path, "wb") as f:
                f.write(os.urandom(size))
            cls.files[size] = path

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_echo_of_files_is_identical(self):
        for kind in ("websockets", "ws"):
            with Peer(kind, "echo") as peer:
                for size in (0, 1, SMALL, MiB) if kind == "websockets" else (0, 1, SMALL, MiB, 32 * MiB):
                    with self.subTest(peer=kind, size=size):
                        status, out, err = run_example(peer.url, self.files[size])
                        self.assertEqual(status, 0, err)
                        self.assertRegex(out, rf"^sent {size} bytes, echo identical, in [0-9.]+ ms\n$")

    def test_memory_stays_far_below_the_file(self):
        # The peak RSS of a child also counts what it had of this python before exec(), so a run
        # with a 1-byte file, started the same way, is the baseline.
        with Peer("ws", "echo") as peer:
            base_status, base = peak_rss_kib(peer.url, self.files[1])
            status, rss = peak_rss_kib(peer.url, self.files[32 * MiB])
        self.assertEqual((base_status, status), (0, 0))
        # Two 64 KiB buffers of its own and the library's few: 32 MiB would show if either
        # direction held the message.
        self.assertLess(rss - base, 4 * 1024, f"peak RSS {rss} KiB for 32 MiB, {base} KiB for 1 byte")

    # The scripted answers below travel in the peer's argv as hex, which bounds them to 64 KB.
    def test_a_changed_byte_is_found(self):
        with open(self.files[SMALL], "rb") as f:
            data = bytearray(f.read())
        at = 40_001
        data[at] ^= 0x55
        script = json.dumps([{"hex": bytes(data).hex()}])
        for kind in ("websockets", "ws"):
            with self.subTest(peer=kind), Peer(kind, "script", "--send", script) as peer:
                status, out, err = run_example(peer.url, self.files[SMALL])
                self.assertEqual((status, out), (1, ""))
                # Compared a chunk at a time: the byte is inside the chunk named.
                match = re.fullmatch(r"send_file: the echo differs from the file after byte (\d+)\n", err)
                self.assertIsNotNone(match, err)
                self.assertLessEqual(int(match[1]), at)
                self.assertGreater(int(match[1]) + 64 * 1024, at)

    def test_a_short_echo_is_found(self):
        with open(self.files[SMALL], "rb") as f:
            data = f.read()
        script = json.dumps([{"hex": data[:-1].hex()}])
        with Peer("websockets", "script", "--send", script) as peer:
            status, out, err = run_example(peer.url, self.files[SMALL])
        self.assertEqual((status, out, err), (1, "", f"send_file: the echo stops at byte {SMALL - 1}\n"))

    def test_nobody_listening(self):
        url = f"ws://127.0.0.1:{unused_port()}/"
        status, out, err = run_example(url, self.files[1])
        self.assertEqual((status, out), (1, ""))
        self.assertRegex(err, rf"^send_file: {re.escape(url)}: .*refused\n$")


if __name__ == "__main__":
    unittest.main()
