#!/usr/bin/python3
"""A 1 GiB message streamed through `wsl echo --max-message-size 0`, with bounded memory on both sides.

The client sends one binary message of 1 GiB as 1 MiB fragments (each freshly masked) from a thread,
while the main thread reads the echo and compares it byte for byte with the payload it regenerates
from its offset: neither side ever holds the message. The payload cycles through 17 different random
1 MiB blocks, so a lost, repeated or misplaced block shows up. The server's peak RSS (VmHWM), read
before it is stopped, must stay far below the message size: it proves that the server streams.

Environment: WSL_STREAM_MIB (default 1024) and WSL_STREAM_MAX_RSS_MIB (default 64) let slower builds
(sanitizers) run a smaller variant.
"""

import os
import resource
import struct
import sys
import threading
import time
import unittest

from harness import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, TIMEOUT, Server, frame_header, open_client

MIB = 1 << 20
MESSAGE_MIB = int(os.environ.get("WSL_STREAM_MIB", "1024"))
# How much the server's peak RSS may grow while the message passes through.
MAX_SERVER_RSS_MIB = int(os.environ.get("WSL_STREAM_MAX_RSS_MIB", "32"))
BLOCKS = [os.urandom(MIB) for _ in range(17)]
BLOCK_INTS = [int.from_bytes(b, "little") for b in BLOCKS]


def masked_fragment(i: int) -> bytes:
    """Fragment i of the message: block i % 17, as a masked frame with a fresh key."""
    key = os.urandom(4)
    payload = (BLOCK_INTS[i % len(BLOCKS)] ^ int.from_bytes(key * (MIB // 4), "little")).to_bytes(MIB, "little")
    opcode = OP_BINARY if i == 0 else OP_CONT
    return frame_header(opcode, MIB, fin=i == MESSAGE_MIB - 1, key=key) + payload


class Receiver:
    """Parses the server's frames from recv() chunks and checks the payload in place, never storing it."""

    def __init__(self) -> None:
        self.offset = 0          # bytes of the echoed message verified so far
        self.frames = 0          # data frames received
        self.finished = False    # the final fragment arrived
        self.close_frame = None  # (code, reason) once a Close arrives
        self.header = bytearray()
        self.remaining = None    # payload bytes left in the current frame; None while reading a header

    def feed(self, data: memoryview) -> None:
        while data:
            if self.remaining is None:
                need = self._header_size() - len(self.header)
                self.header += data[:need]
                data = data[need:]
                if len(self.header) == self._header_size():  # the size is known once 2 bytes are in
                    self._start_frame()
                continue
            take = min(self.remaining, len(data))
            if self.control is not None:
                self.control += data[:take]
            else:
                self._check_payload(data[:take])
            self.remaining -= take
            data = data[take:]
            if self.remaining == 0:
                self._end_frame()

    def _header_size(self) -> int:
        if len(self.header) < 2:
            return 2
        length = self.header[1] & 0x7F
        return 2 + {126: 2, 127: 8}.get(length, 0) + (4 if self.header[1] & 0x80 else 0)

    def _start_frame(self) -> None:
        b0, b1 = self.header[0], self.header[1]
        length = b1 & 0x7F
        if length == 126:
            length = struct.unpack_from("!H", self.header, 2)[0]
        elif length == 127:
            length = struct.unpack_from("!Q", self.header, 2)[0]
        self.header.clear()
        if b1 & 0x80 or b0 & 0x70:
            raise AssertionError("the server sent a masked frame or one with RSV bits")
        if self.finished or self.close_frame:
            raise AssertionError(f"a frame (opcode {b0 & 0xF}) after the end of the message or a Close")
        self.fin, self.opcode, self.remaining = bool(b0 & 0x80), b0 & 0xF, length
        self.control = bytearray() if self.opcode >= 8 else None
        if self.opcode < 8:
            expected = OP_BINARY if self.frames == 0 else OP_CONT
            if self.opcode != expected:
                raise AssertionError(f"data frame {self.frames} has opcode {self.opcode}, expected {expected}")
            self.frames += 1
        if length == 0:
            self._end_frame()

    def _check_payload(self, data: memoryview) -> None:
        while data:
            block, start = BLOCKS[(self.offset // MIB) % len(BLOCKS)], self.offset % MIB
            piece = min(len(data), MIB - start)
            if data[:piece] != block[start:start + piece]:
                raise AssertionError(f"the echo differs from the message in the {piece} bytes at offset {self.offset}")
            self.offset += piece
            data = data[piece:]

    def _end_frame(self) -> None:
        self.remaining = None
        if self.opcode == OP_CLOSE:
            payload = bytes(self.control)
            self.close_frame = (struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None, payload[2:])
        elif self.opcode in (OP_PING, OP_PONG):
            pass  # a keepalive ping needs no answer within this test's duration
        elif self.fin:
            self.finished = True


class StreamOneGiB(unittest.TestCase):
    def test_1gib_message_echoed_exactly_with_bounded_server_memory(self):
        size = MESSAGE_MIB * MIB
        with Server("--max-message-size", "0") as server, open_client(server.port) as client:
            # Memory before the message (the process, its threads and, under ASan, its shadow) is
            # not what this test is about: the bound is on how much the peak grows over it.
            baseline_mib = server.proc_status("VmRSS") / 1024
            send_error = []

            def send_all():
                try:
                    for i in range(MESSAGE_MIB):
                        client.send(masked_fragment(i))
                except OSError as e:  # the main thread reports what the server said
                    send_error.append(e)

            started = time.monotonic()
            sender = threading.Thread(target=send_all, daemon=True)
            sender.start()
            receiver = Receiver()
            buffer = bytearray(4 * MIB)
            view = memoryview(buffer)
            client.sock.settimeout(TIMEOUT)  # the longest the echo may stall
            while not receiver.finished and receiver.close_frame is None:
                n = client.sock.recv_into(buffer)
                if n == 0:
                    self.fail(f"EOF after {receiver.offset} bytes of echo (send error: {send_error})")
                receiver.feed(view[:n])
            elapsed = time.monotonic() - started
            sender.join(TIMEOUT)
            self.assertIsNone(receiver.close_frame, f"the server closed after {receiver.offset} bytes")
            self.assertEqual(send_error, [])
            self.assertEqual(receiver.offset, size, "the echo has the wrong length")

            peak_rss_mib = server.proc_status("VmHWM") / 1024
            growth_mib = peak_rss_mib - baseline_mib
            print(f"\n{MESSAGE_MIB} MiB echoed in {elapsed:.1f} s ({2 * MESSAGE_MIB / elapsed:.0f} MiB/s both ways), "
                  f"in {receiver.frames} frames; server peak RSS {peak_rss_mib:.1f} MiB ({growth_mib:+.1f} MiB over "
                  f"{baseline_mib:.1f} before it); client peak RSS "
                  f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB", file=sys.stderr)
            self.assertLess(growth_mib, MAX_SERVER_RSS_MIB, "the server does not stream: its memory grew")

            reply = client.close(1000)
            self.assertEqual(reply.close_code, 1000)
            server.assert_alive()


if __name__ == "__main__":
    unittest.main(verbosity=2)
