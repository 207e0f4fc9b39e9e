#!/usr/bin/env python3
"""Strict WebSocket server conformance suite (RFC 6455, RFC 7692).

Modelled on the Autobahn|TestSuite "fuzzingclient" cases 1 to 10, and 12 and
13 (permessage-deflate), run against an echo server (every text/binary message
is sent back with the same type and payload). Python standard library only:
raw sockets, our own client-side frame encoder (always masked, with chosen
fragmentation and TCP chop sizes), our own frame decoder, and zlib.

    conformance.py ws://127.0.0.1:PORT/ [--cases 6.4.*,7.*] [--exclude PATTERN]
                   [--jobs N] [--timeout S] [--verbose]
    conformance.py ws://127.0.0.1:PORT/ --cases '12.*,13.*,14.*' [--max-message-size 1M]

The compression cases 12.x-14.x run only when --cases selects them or with
--deflate: a server without permessage-deflate cannot pass them.

Each case opens its own connection, performs its scenario and is judged like
Autobahn's strict "OK" verdict; see README.md for the exact rules.
Exit status: 0 all selected cases passed, 1 some failed, 2 usage error or
server unreachable.
"""

from __future__ import annotations

import argparse
import base64
import fnmatch
import hashlib
import itertools
import json
import math
import os
import random
import re
import select
import socket
import struct
import sys
import time
import unicodedata
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Callable, List, Optional, Sequence, Tuple, Union
from urllib.parse import urlsplit

# --------------------------------------------------------------------------
# Protocol constants
# --------------------------------------------------------------------------

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
CONTROL_OPCODES = {OP_CLOSE, OP_PING, OP_PONG}
OPCODE_NAMES = {OP_CONT: "continuation", OP_TEXT: "text", OP_BINARY: "binary",
                OP_CLOSE: "close", OP_PING: "ping", OP_PONG: "pong"}

CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_INVALID_PAYLOAD = 1007
CLOSE_MESSAGE_TOO_BIG = 1009

# The three RSV bits as Frame.rsv counts them; permessage-deflate uses RSV1.
RSV1, RSV2, RSV3 = 0x4, 0x2, 0x1

HANDSHAKE_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_CONTROL_PAYLOAD = 125
RECV_CHUNK = 1 << 20
MAX_HTTP_HEAD = 64 * 1024
KIB, MIB = 1 << 10, 1 << 20


def close_code_allowed_on_wire(code: int) -> bool:
    """RFC 6455 7.4: codes an endpoint may put into a Close frame (incl. IANA 1012-1014)."""
    return code in (1000, 1001, 1002, 1003) or 1007 <= code <= 1014 or 3000 <= code <= 4999


def is_utf8(data: bytes) -> bool:
    """Strict RFC 3629 UTF-8 (no surrogates, no overlongs, nothing above U+10FFFF)."""
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


# --------------------------------------------------------------------------
# Frame encoding (client side: always masked)
# --------------------------------------------------------------------------

def apply_mask(data: bytes, key: bytes) -> bytes:
    """XOR data with the 4-octet masking key (fast for multi-MiB payloads)."""
    if not data:
        return b""
    size = len(data)
    keystream = (key * (size // 4 + 1))[:size]
    masked = int.from_bytes(data, "little") ^ int.from_bytes(keystream, "little")
    return masked.to_bytes(size, "little")


def encode_frame(opcode: int, payload: bytes = b"", fin: bool = True, rsv: int = 0) -> bytes:
    """Encode one masked client frame. Opcode and RSV are not validated on purpose."""
    first = (0x80 if fin else 0) | ((rsv & 0x7) << 4) | (opcode & 0xF)
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", first, 0x80 | size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", first, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, size)
    key = os.urandom(4)
    return header + key + apply_mask(payload, key)


def close_payload(code: Optional[int], reason: bytes = b"") -> bytes:
    return b"" if code is None else struct.pack("!H", code) + reason


def split_every(data: bytes, size: int) -> List[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)] or [data]


def repeat_to(pattern: bytes, size: int) -> bytes:
    return (pattern * (size // len(pattern) + 1))[:size]


# --------------------------------------------------------------------------
# Frame decoding (server side: must not be masked)
# --------------------------------------------------------------------------

class ProtocolViolation(Exception):
    """The server broke RFC 6455 in what it sent to us."""


class HandshakeError(Exception):
    """The opening handshake did not succeed."""


@dataclass
class RawFrame:
    fin: bool
    rsv: int
    opcode: int
    payload: bytes


class FrameReader:
    """Incremental decoder for the frames the server sends."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.offset = 0

    def feed(self, data: bytes) -> None:
        self.buffer += data

    def next_frame(self) -> Optional[RawFrame]:
        buf, pos = self.buffer, self.offset
        available = len(buf) - pos
        if available < 2:
            return None
        first, second = buf[pos], buf[pos + 1]
        if second & 0x80:
            raise ProtocolViolation("server sent a masked frame")
        size, header = second & 0x7F, 2
        if size == 126:
            if available < 4:
                return None
            size, header = struct.unpack_from("!H", buf, pos + 2)[0], 4
            if size < 126:
                raise ProtocolViolation("non-minimal 16-bit payload length")
        elif size == 127:
            if available < 10:
                return None
            size, header = struct.unpack_from("!Q", buf, pos + 2)[0], 10
            if size >> 63:
                raise ProtocolViolation("64-bit payload length with the most significant bit set")
            if size < 1 << 16:
                raise ProtocolViolation("non-minimal 64-bit payload length")
        if available < header + size:
            return None
        payload = bytes(buf[pos + header:pos + header + size])
        self._consume(header + size)
        return RawFrame(bool(first & 0x80), (first >> 4) & 0x7, first & 0xF, payload)

    def _consume(self, count: int) -> None:
        self.offset += count
        if self.offset == len(self.buffer):
            self.buffer.clear()
            self.offset = 0
        elif self.offset > RECV_CHUNK:
            del self.buffer[:self.offset]
            self.offset = 0


def parse_close_payload(payload: bytes) -> Tuple[Optional[int], bytes]:
    """Return (code, reason) of a Close frame the server sent, or raise."""
    if not payload:
        return None, b""
    if len(payload) == 1:
        raise ProtocolViolation("close frame with a 1-octet payload")
    code = struct.unpack("!H", payload[:2])[0]
    if not close_code_allowed_on_wire(code):
        raise ProtocolViolation(f"close frame with invalid close code {code}")
    if not is_utf8(payload[2:]):
        raise ProtocolViolation("close frame reason is not valid UTF-8")
    return code, payload[2:]


# --------------------------------------------------------------------------
# Events observed from the server (what Autobahn calls "received")
# --------------------------------------------------------------------------

Event = Tuple[str, object]


def text(payload) -> Event:
    return ("text", payload.encode("utf-8") if isinstance(payload, str) else bytes(payload))


def binary(payload: bytes) -> Event:
    return ("binary", bytes(payload))


def pong(payload=b"") -> Event:
    return ("pong", payload.encode("utf-8") if isinstance(payload, str) else bytes(payload))


def message(opcode: int, payload: bytes) -> Event:
    return text(payload) if opcode == OP_TEXT else binary(payload)


# Pseudo events of the fail-fast cases: the connection was still open after a pause.
STILL_OPEN_AFTER_PART1 = ("open", 1)
STILL_OPEN_AFTER_PART2 = ("open", 2)


def describe_event(event: Event) -> str:
    kind, data = event
    if kind == "open":
        return f"<still open after part {data}>"
    if len(data) <= 24:
        return f"{kind}({data!r})"
    return f"{kind}({len(data)} octets)"


def describe_events(events: Sequence[Event], limit: int = 4) -> str:
    shown = [describe_event(e) for e in events[:limit]]
    if len(events) > limit:
        shown.append(f"... {len(events)} in total")
    return "[" + ", ".join(shown) + "]"


# --------------------------------------------------------------------------
# Case description: steps to perform and the outcome to expect
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Frame:
    """Send one frame. chop: split its octets into TCP writes of that size;
    sync: send it in its own TCP write. Otherwise consecutive frames are
    coalesced into a single write (as Autobahn does)."""
    opcode: int
    payload: bytes = b""
    fin: bool = True
    rsv: int = 0
    chop: Optional[int] = None
    sync: bool = False


@dataclass(frozen=True)
class Close:
    """Start the closing handshake. raw overrides the payload (malformed closes)."""
    code: Optional[int] = CLOSE_NORMAL
    reason: bytes = b""
    raw: Optional[bytes] = None


@dataclass(frozen=True)
class Pause:
    """Deliberate pause of the case (length: --pause); incoming data is still read."""


@dataclass(frozen=True)
class Message:
    """Send a whole message, compressed if permessage-deflate was agreed and
    `compress` is set (see Session.send_message); fragment: frame payload size."""
    opcode: int
    payload: bytes
    fragment: Optional[int] = None
    compress: bool = True


Step = Union[Frame, Close, Pause, Message]


@dataclass(frozen=True)
class Expect:
    """The strict ("OK") outcome of a case.

    events       acceptable sequences of received events (usually one)
    closed_by_me True: the suite starts the closing handshake; False: the
                 server must fail the connection itself
    codes        close codes the server may send (an absent code is allowed,
                 as in Autobahn, unless --require-close-code)
    clean        the closing handshake must complete (both Close frames)
    non_strict   sequences Autobahn grades NON-STRICT: still a FAIL here,
                 only used to explain the failure
    """
    events: Tuple[Tuple[Event, ...], ...]
    closed_by_me: bool
    codes: frozenset
    clean: bool
    non_strict: Tuple[Tuple[Event, ...], ...] = ()


def echo(*events: Event) -> Expect:
    """Events arrive, then a clean close initiated by us, answered with 1000."""
    return Expect((tuple(events),), True, frozenset({CLOSE_NORMAL}), True)


def fail(code: int = CLOSE_PROTOCOL_ERROR, *events: Event, non_strict=()) -> Expect:
    """The server must fail the connection (with `code`) after `events`."""
    return Expect((tuple(events),), False, frozenset({code}), False, tuple(non_strict))


def closing(codes: Sequence[int], clean: bool) -> Expect:
    """We send a Close frame (maybe malformed); nothing else may arrive."""
    return Expect(((),), True, frozenset(codes), clean)


@dataclass
class Plan:
    """offer: Sec-WebSocket-Extensions value to send (permessage-deflate cases);
    deflate_required: the server must accept one of the offers (see README)."""
    expect: Expect
    steps: Sequence[Step] = ()
    run: Optional[Callable[["Session"], None]] = None  # custom scenario instead of steps
    offer: Optional[str] = None
    deflate_required: bool = False


@dataclass(frozen=True)
class Case:
    id: str
    description: str
    plan: Callable[[], Plan]  # built lazily: the 9.x payloads are large
    compression: bool = False  # 12.x-14.x: run only when selected or with --deflate


def case(cid: str, description: str, expect: Expect, *steps: Step) -> Case:
    plan = Plan(expect, tuple(steps))
    return Case(cid, description, lambda: plan)


# --------------------------------------------------------------------------
# Session: one client connection, driven by a case
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Options:
    host: str
    port: int
    path: str
    timeout: float = 5.0        # max time the server may stay silent when we wait for it
    close_timeout: float = 1.0  # time the server gets to drop TCP after the closing handshake
    pause: float = 0.5          # deliberate pauses of 5.19, 5.20 and 6.4.x
    case_limit: float = 90.0    # hard limit per case, whatever happens
    require_close_code: bool = False


PENDING, MATCH, MISMATCH = "pending", "match", "mismatch"


def match_events(received: List[Event], alternatives) -> str:
    if any(received == list(alt) for alt in alternatives):
        return MATCH
    count = len(received)
    if any(len(alt) > count and list(alt[:count]) == received for alt in alternatives):
        return PENDING
    return MISMATCH


class Session:
    """A WebSocket client connection with its observed history.

    Every socket operation is non-blocking behind select() with a deadline, and
    incoming data is read while we write, so neither side can dead-lock on a
    full TCP buffer and nothing can hang.
    """

    def __init__(self, opts: Options, offer: Optional[str] = None) -> None:
        self.opts = opts
        self.sock: Optional[socket.socket] = None
        self.established = False
        self.reader = FrameReader()
        self.batch = bytearray()
        self.pending_pongs: List[bytes] = []
        self.message_opcode: Optional[int] = None
        self.message_parts: List[bytes] = []
        self.message_compressed = False
        # permessage-deflate: what we offer, what the server agreed to, the codec state.
        self.offer = offer
        self.agreement: Optional[Agreement] = None
        self.deflater = None
        self.inflater = None
        self.inflated_tail = b""  # the last octets inflated: the server's LZ77 window
        self.compressed_received = 0
        # What we observed; judged afterwards.
        self.events: List[Event] = []
        self.close_sent: Optional[bytes] = None       # payload of our first Close frame
        self.closed_by_me = False                      # we sent Close before receiving one
        self.close_received: Optional[Tuple[Optional[int], bytes]] = None
        self.peer_gone = False                         # EOF or reset from the server
        self.peer_reset = False
        self.violation: Optional[str] = None
        self.write_error: Optional[str] = None
        self.notes: List[str] = []                     # shown by --verbose
        self.deadline = time.monotonic() + opts.case_limit

    # ---- state -----------------------------------------------------------

    @property
    def closing(self) -> bool:
        """The server started closing (or broke the protocol)."""
        return self.close_received is not None or self.peer_gone or self.violation is not None

    # ---- opening handshake -----------------------------------------------

    def open(self) -> None:
        opts = self.opts
        self.sock = socket.create_connection((opts.host, opts.port), timeout=opts.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        request = (f"GET {opts.path} HTTP/1.1\r\n"
                   f"Host: {opts.host}:{opts.port}\r\n"
                   "Upgrade: websocket\r\n"
                   "Connection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\n"
                   "Sec-WebSocket-Version: 13\r\n"
                   + (f"Sec-WebSocket-Extensions: {self.offer}\r\n" if self.offer is not None else "")
                   + "User-Agent: wsl-conformance\r\n"
                   "\r\n")
        self._write(request.encode("ascii"))
        if self.write_error:
            raise HandshakeError(f"sending the request failed: {self.write_error}")
        head, rest = self._read_http_head()
        self.agreement = check_handshake_response(head, key, self.offer)
        self.established = True
        self.reader.feed(rest)
        self._process_frames()

    def _read_http_head(self) -> Tuple[bytes, bytes]:
        buf = bytearray()
        end = time.monotonic() + self.opts.timeout
        while b"\r\n\r\n" not in buf:
            if len(buf) > MAX_HTTP_HEAD:
                raise HandshakeError("response head too large")
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                raise HandshakeError(f"no complete response within {self.opts.timeout:g} s")
            try:
                chunk = self.sock.recv(RECV_CHUNK)
            except BlockingIOError:
                continue
            except OSError as exc:
                raise HandshakeError(f"connection error: {exc}") from None
            if not chunk:
                raise HandshakeError("server closed the connection during the handshake")
            buf += chunk
        head, _, rest = bytes(buf).partition(b"\r\n\r\n")
        return head, rest

    # ---- sending ---------------------------------------------------------

    def play(self, steps: Sequence[Step]) -> None:
        for step in steps:
            if isinstance(step, Frame):
                self.send_frame(step)
            elif isinstance(step, Close):
                self.send_close(step.code, step.reason, step.raw)
            elif isinstance(step, Pause):
                self.hold_open(self.opts.pause)
            elif isinstance(step, Message):
                self.send_message(step.opcode, step.payload, step.fragment, step.compress)
            else:
                raise TypeError(f"unknown step {step!r}")

    def send_frame(self, frame: Frame) -> None:
        data = encode_frame(frame.opcode, frame.payload, frame.fin, frame.rsv)
        if frame.chop or frame.sync:
            self.flush()
            for piece in split_every(data, frame.chop or len(data)):
                self._write(piece)
        else:
            self.batch += data

    def send_message(self, opcode: int, payload: bytes, fragment: Optional[int] = None,
                     compress: bool = True) -> None:
        """Send a message in frames of `fragment` octets (one frame if None),
        compressed (RSV1 on the first frame) when permessage-deflate was agreed."""
        rsv = 0
        if compress and self.agreement is not None:
            payload, rsv = self._deflate(payload), RSV1
        parts = split_every(payload, fragment) if fragment else [payload]
        last = len(parts) - 1
        for i, part in enumerate(parts):
            self.send_frame(Frame(OP_CONT if i else opcode, part, fin=(i == last), rsv=0 if i else rsv))

    def _deflate(self, payload: bytes) -> bytes:
        """Compress one message as agreed: within our window, and with a fresh
        compressor per message when we promised client_no_context_takeover."""
        agreement = self.agreement
        if self.deflater is None or agreement.client_no_context_takeover:
            self.deflater = make_compressor(agreement.client_window)
        return compress_message(self.deflater, payload)

    def send_close(self, code: Optional[int] = CLOSE_NORMAL, reason: bytes = b"",
                   raw: Optional[bytes] = None) -> None:
        payload = raw if raw is not None else close_payload(code, reason)
        if self.close_sent is None:
            self.close_sent = payload
            self.closed_by_me = self.close_received is None
        self.send_frame(Frame(OP_CLOSE, payload))

    def write_now(self, data: bytes) -> None:
        """Send octets in a TCP write of their own (after anything batched)."""
        self.flush()
        self._write(data)

    def flush(self) -> None:
        if self.batch:
            data, self.batch = bytes(self.batch), bytearray()
            self._write(data)

    def _send_pending_pongs(self) -> None:
        while self.pending_pongs and self.close_sent is None:
            self._write(encode_frame(OP_PONG, self.pending_pongs.pop(0)))

    def _write(self, data: bytes) -> None:
        """Write all of data, reading meanwhile; failures end up in write_error."""
        view, offset = memoryview(data), 0
        idle_end = time.monotonic() + self.opts.timeout
        while offset < len(view) and self.write_error is None:
            if self.peer_gone:
                self.write_error = "server closed the connection"
                return
            left = min(idle_end, self.deadline) - time.monotonic()
            if left <= 0:
                self.write_error = f"server did not read our data for {self.opts.timeout:g} s"
                return
            readable = [self.sock] if self.established and not self.violation else []
            can_read, can_write, _ = select.select(readable, [self.sock], [], left)
            if can_read and self._receive():
                idle_end = time.monotonic() + self.opts.timeout
            if can_write:
                try:
                    offset += self.sock.send(view[offset:])
                    idle_end = time.monotonic() + self.opts.timeout
                except BlockingIOError:
                    pass
                except OSError as exc:
                    self.write_error = exc.strerror or str(exc)

    # ---- receiving -------------------------------------------------------

    def _receive(self) -> bool:
        """Read what is available; returns True if anything happened."""
        try:
            data = self.sock.recv(RECV_CHUNK)
        except BlockingIOError:
            return False
        except OSError:
            self.peer_gone = self.peer_reset = True
            return True
        if not data:
            self.peer_gone = True
            return True
        self.reader.feed(data)
        self._process_frames()
        return True

    def _process_frames(self) -> None:
        while self.violation is None:
            try:
                frame = self.reader.next_frame()
                if frame is None:
                    return
                self._on_frame(frame)
            except ProtocolViolation as exc:
                self.violation = str(exc)

    def _on_frame(self, frame: RawFrame) -> None:
        name = OPCODE_NAMES.get(frame.opcode, f"opcode-{frame.opcode}")
        if self.close_received is not None:
            raise ProtocolViolation(f"{name} frame after the server's close frame")
        if self.agreement is None and frame.rsv:
            raise ProtocolViolation(f"{name} frame with RSV={frame.rsv} (no extension negotiated)")
        if frame.rsv & ~(RSV1 if frame.opcode in (OP_TEXT, OP_BINARY) else 0):
            raise ProtocolViolation(f"{name} frame with RSV={frame.rsv} (permessage-deflate allows "
                                    "only RSV1, on the first frame of a message)")
        if frame.opcode in CONTROL_OPCODES:
            if not frame.fin:
                raise ProtocolViolation(f"fragmented {name} frame")
            if len(frame.payload) > MAX_CONTROL_PAYLOAD:
                raise ProtocolViolation(f"{name} frame with {len(frame.payload)} octets of payload")
            self._on_control_frame(frame)
        elif frame.opcode in (OP_CONT, OP_TEXT, OP_BINARY):
            self._on_data_frame(frame)
        else:
            raise ProtocolViolation(f"frame with reserved opcode {frame.opcode}")

    def _on_control_frame(self, frame: RawFrame) -> None:
        if frame.opcode == OP_CLOSE:
            self.close_received = parse_close_payload(frame.payload)
        elif frame.opcode == OP_PING:
            self.events.append(("ping", frame.payload))
            self.pending_pongs.append(frame.payload)
        else:
            self.events.append(pong(frame.payload))

    def _on_data_frame(self, frame: RawFrame) -> None:
        if frame.opcode == OP_CONT:
            if self.message_opcode is None:
                raise ProtocolViolation("continuation frame without a message in progress")
        else:
            if self.message_opcode is not None:
                raise ProtocolViolation("new data frame while a fragmented message is in progress")
            self.message_opcode, self.message_parts = frame.opcode, []
            self.message_compressed = bool(frame.rsv & RSV1)
        self.message_parts.append(frame.payload)
        if frame.fin:
            payload = b"".join(self.message_parts)
            if self.message_compressed:
                payload = self._inflate(payload)
                self.compressed_received += 1
            if self.message_opcode == OP_TEXT and not is_utf8(payload):
                raise ProtocolViolation("text message with invalid UTF-8")
            self.events.append(message(self.message_opcode, payload))
            self.message_opcode, self.message_parts = None, []

    def _inflate(self, data: bytes) -> bytes:
        """Inflate one compressed message (RFC 7692 7.2.2): append 00 00 ff ff,
        inflate within the server's agreed window, with a fresh inflater per
        message if it promised server_no_context_takeover. A DEFLATE block with
        BFINAL set (7.2.3.4) ends zlib's stream: the rest of the message is
        inflated by a new inflater that is given the window so far."""
        agreement, window = self.agreement, 1 << self.agreement.server_window
        if agreement.server_no_context_takeover:
            self.inflater, self.inflated_tail = None, b""
        pending, output, size = data + DEFLATE_TAIL, [], 0
        while pending:
            if self.inflater is None:
                history = (self.inflated_tail + b"".join(output))[-window:]
                self.inflater = zlib.decompressobj(wbits=-agreement.server_window, zdict=history) \
                    if history else zlib.decompressobj(wbits=-agreement.server_window)
            try:
                chunk = self.inflater.decompress(pending, MAX_INFLATED - size)
            except zlib.error as exc:
                raise ProtocolViolation(f"compressed message does not inflate: {exc}") from None
            output.append(chunk)
            size += len(chunk)
            if self.inflater.unconsumed_tail or size >= MAX_INFLATED:
                raise ProtocolViolation(f"compressed message inflates to {size_text(MAX_INFLATED)} or more")
            pending = b""
            if self.inflater.eof:
                pending, self.inflater = self.inflater.unused_data, None
        payload = b"".join(output)
        self.inflated_tail = (self.inflated_tail + payload)[-window:]
        return payload

    # ---- waiting ---------------------------------------------------------

    def wait_until(self, done: Callable[[], bool], timeout: float, idle: bool = True) -> bool:
        """Read until done() holds. The timeout restarts whenever data arrives
        (idle=True) or is a fixed period (idle=False). Returns done()."""
        self.flush()
        end = time.monotonic() + timeout
        while not done():
            if self.peer_gone or self.violation:
                return done()
            self._send_pending_pongs()
            left = min(end, self.deadline) - time.monotonic()
            if left <= 0:
                return False
            if select.select([self.sock], [], [], left)[0] and self._receive() and idle:
                end = time.monotonic() + timeout
        return True

    def hold_open(self, seconds: float) -> bool:
        """Deliberate pause: read for `seconds` unless the server starts closing.
        Returns True if the connection is still open afterwards."""
        self.wait_until(lambda: self.closing, seconds, idle=False)
        return not self.closing

    def finish(self, expect: Expect) -> None:
        """Run the closing phase the way Autobahn's fuzzing client does."""
        self.flush()
        timeout = self.opts.timeout
        if expect.closed_by_me and self.close_sent is None:
            self.wait_until(lambda: self.closing or
                            match_events(self.events, expect.events) != PENDING, timeout)
            if not self.closing:
                self.send_close(CLOSE_NORMAL)
        self.wait_until(lambda: self.close_received is not None or self.peer_gone, timeout)
        if self.close_received is not None and self.close_sent is None and not self.peer_gone:
            self.send_close(self.close_received[0])  # echo the server's code
        # The server must now drop the TCP connection (RFC 6455 7.1.1).
        self.wait_until(lambda: self.peer_gone, self.opts.close_timeout, idle=False)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()


def expected_accept(key: str) -> str:
    digest = hashlib.sha1((key + HANDSHAKE_GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def check_handshake_response(head: bytes, key: str, offer: Optional[str] = None) -> Optional["Agreement"]:
    """RFC 6455 4.1: validate the server's opening handshake response; with an
    extension offer, also what it says about permessage-deflate (RFC 7692)."""
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ", 2)
    if len(status) < 2 or not status[0].startswith("HTTP/1.1") or status[1] != "101":
        raise HandshakeError(f"expected 'HTTP/1.1 101', got {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise HandshakeError(f"malformed header line {line!r}")
        headers.setdefault(name.strip().lower(), []).append(value.strip())

    def tokens(name):
        return {t.strip().lower() for v in headers.get(name, []) for t in v.split(",")}

    if "websocket" not in tokens("upgrade"):
        raise HandshakeError("missing 'Upgrade: websocket'")
    if "upgrade" not in tokens("connection"):
        raise HandshakeError("missing 'Connection: Upgrade'")
    accept = headers.get("sec-websocket-accept", [])
    if accept != [expected_accept(key)]:
        raise HandshakeError(f"bad Sec-WebSocket-Accept {accept!r}")
    if headers.get("sec-websocket-protocol"):
        raise HandshakeError("server selected a subprotocol we did not offer")
    extensions = headers.get("sec-websocket-extensions", [])
    if offer is None:
        if extensions:
            raise HandshakeError("server accepted an extension we did not offer")
        return None
    return check_deflate_response(offer, extensions)


# --------------------------------------------------------------------------
# permessage-deflate (RFC 7692): extension header, negotiation, codec
# --------------------------------------------------------------------------

DEFLATE = "permessage-deflate"
DEFLATE_TAIL = b"\x00\x00\xff\xff"   # removed from, and appended to, each compressed message (7.2.1)
MAX_INFLATED = 256 * MIB             # what the suite inflates of one message from the server at most
WINDOW_BITS = {str(bits): bits for bits in range(8, 16)}  # "8" to "15", no leading zeros (7.1.2)
HEADER_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
HEADER_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
HEADER_SPACE = re.compile(r"[ \t]*")


@dataclass(frozen=True)
class Extension:
    """One element of a Sec-WebSocket-Extensions header: a name and its parameters."""
    name: str
    params: Tuple[Tuple[str, Optional[str]], ...] = ()

    def __str__(self) -> str:
        return "; ".join([self.name] + [k if v is None else f"{k}={v}" for k, v in self.params])


def parse_extensions(header: str) -> List[Extension]:
    """RFC 6455 9.1: comma-separated elements of a name and ;-separated
    parameters, whose values are tokens or quoted strings (returned unquoted).
    Raises ValueError on anything else."""
    pos, elements = 0, []

    def space() -> None:
        nonlocal pos
        pos = HEADER_SPACE.match(header, pos).end()

    def token(what: str) -> str:
        nonlocal pos
        found = HEADER_TOKEN.match(header, pos)
        if not found:
            raise ValueError(f"expected {what} at offset {pos} of {header!r}")
        pos = found.end()
        return found.group()

    def value() -> str:
        nonlocal pos
        quoted = HEADER_QUOTED.match(header, pos)
        if not quoted:
            return token("a parameter value")
        pos = quoted.end()
        return re.sub(r"\\(.)", r"\1", quoted.group(1))

    while True:
        space()
        if pos < len(header) and header[pos] != ",":
            name, params = token("an extension name"), []
            space()
            while pos < len(header) and header[pos] == ";":
                pos += 1
                space()
                param, param_value = token("a parameter name"), None
                space()
                if pos < len(header) and header[pos] == "=":
                    pos += 1
                    space()
                    param_value = value()
                    space()
                params.append((param, param_value))
            elements.append(Extension(name, tuple(params)))
        if pos == len(header):
            return elements
        if header[pos] != ",":
            raise ValueError(f"unexpected {header[pos]!r} at offset {pos} of {header!r}")
        pos += 1


@dataclass(frozen=True)
class DeflateParams:
    """The parameters of one permessage-deflate offer or response."""
    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: Optional[int] = None
    client_max_window_bits: bool = False    # present, with or without a value
    client_window: Optional[int] = None     # the value of client_max_window_bits


def parse_deflate_params(element: Extension, response: bool) -> DeflateParams:
    """RFC 7692 7.1: the parameters of a valid offer (or response); raises
    ValueError for unknown or duplicate parameters and invalid values."""
    seen = {}
    for name, value in element.params:
        if name in seen:
            raise ValueError(f"duplicate parameter {name}")
        if name in ("server_no_context_takeover", "client_no_context_takeover"):
            if value is not None:
                raise ValueError(f"{name} has a value ({value!r})")
        elif name in ("server_max_window_bits", "client_max_window_bits"):
            if value is None and (response or name == "server_max_window_bits"):
                raise ValueError(f"{name} without a value")
            if value is not None and value not in WINDOW_BITS:
                raise ValueError(f"{name}={value!r} is not one of 8 to 15")
        else:
            raise ValueError(f"unknown parameter {name}")
        seen[name] = value
    server_bits, client_bits = seen.get("server_max_window_bits"), seen.get("client_max_window_bits")
    return DeflateParams("server_no_context_takeover" in seen, "client_no_context_takeover" in seen,
                         WINDOW_BITS.get(server_bits), "client_max_window_bits" in seen,
                         WINDOW_BITS.get(client_bits))


def deflate_offers(offer: str) -> List[Tuple[int, Optional[DeflateParams], str]]:
    """Our own permessage-deflate offers: (position, parameters or None if the
    offer is malformed on purpose, why it is malformed)."""
    result = []
    for position, element in enumerate(parse_extensions(offer), 1):
        if element.name == DEFLATE:
            try:
                result.append((position, parse_deflate_params(element, response=False), ""))
            except ValueError as exc:
                result.append((position, None, str(exc)))
    return result


def response_problem(offer: DeflateParams, response: DeflateParams) -> Optional[str]:
    """Why `response` cannot be the acceptance of `offer` (RFC 7692 7.1.1-7.1.2),
    or None if it can."""
    if offer.server_no_context_takeover and not response.server_no_context_takeover:
        return "server_no_context_takeover was offered; accepting requires it in the response"
    if offer.server_max_window_bits is not None:
        if response.server_max_window_bits is None:
            return (f"server_max_window_bits={offer.server_max_window_bits} was offered; "
                    "accepting requires server_max_window_bits in the response")
        if response.server_max_window_bits > offer.server_max_window_bits:
            return (f"server_max_window_bits={response.server_max_window_bits} is larger than "
                    f"the {offer.server_max_window_bits} offered")
    if response.client_max_window_bits:
        if not offer.client_max_window_bits:
            return "client_max_window_bits was not offered"
        if offer.client_window is not None and response.client_window > offer.client_window:
            return (f"client_max_window_bits={response.client_window} is larger than "
                    f"the {offer.client_window} offered")
    return None


@dataclass(frozen=True)
class Agreement:
    """What the opening handshake settled, seen from the suite (the client)."""
    response: Extension
    server_no_context_takeover: bool  # we inflate each message with a fresh inflater
    client_no_context_takeover: bool  # we compress each message with a fresh compressor
    server_window: int                # the server compresses within 2**server_window octets
    client_window: int                # and so do we within 2**client_window


def check_deflate_response(offer: str, values: List[str]) -> Optional[Agreement]:
    """RFC 7692 7.1: the response may accept at most one extension, which must be
    permessage-deflate with valid parameters consistent with one of our valid
    offers. Returns None if the server declined."""
    if not values:
        return None
    try:
        accepted = parse_extensions(", ".join(values))
    except ValueError as exc:
        raise HandshakeError(f"malformed Sec-WebSocket-Extensions response: {exc}") from None
    if len(accepted) != 1:
        raise HandshakeError(f"server must accept one extension, got {len(accepted)}: "
                             f"{', '.join(map(str, accepted))!r}")
    element = accepted[0]
    if element.name != DEFLATE:
        raise HandshakeError(f"server accepted {element.name!r} instead of {DEFLATE}")
    try:
        response = parse_deflate_params(element, response=True)
    except ValueError as exc:
        raise HandshakeError(f"invalid response {str(element)!r}: {exc}") from None
    matching, problems = [], []
    for position, params, malformed in deflate_offers(offer):
        problem = f"it is malformed ({malformed})" if params is None else response_problem(params, response)
        if problem:
            problems.append(f"offer {position}: {problem}")
        else:
            matching.append(params)
    if not matching:
        raise HandshakeError(f"response {str(element)!r} accepts none of our offers ({'; '.join(problems)})")
    # When the response fits several offers, assume the most restrictive of them.
    client_hints = [p.client_window for p in matching if p.client_window is not None]
    client_resets = response.client_no_context_takeover or any(p.client_no_context_takeover for p in matching)
    return Agreement(element, response.server_no_context_takeover, client_resets,
                     response.server_max_window_bits or 15,
                     min([response.client_window or 15] + client_hints))


def make_compressor(window: int, level: int = zlib.Z_DEFAULT_COMPRESSION):
    """A raw deflate compressor within 2**window octets. zlib refuses window 8
    for raw deflate: window 9 with run-length matches only (distance 1) stays
    within 256 octets."""
    if window == 8:
        return zlib.compressobj(level, zlib.DEFLATED, -9, 8, zlib.Z_RLE)
    return zlib.compressobj(level, zlib.DEFLATED, -window)


def compress_message(compressor, payload: bytes) -> bytes:
    """RFC 7692 7.2.1: compress, flush to an octet boundary, drop the 00 00 ff ff."""
    data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(DEFLATE_TAIL)
    return data[:-len(DEFLATE_TAIL)]


# --------------------------------------------------------------------------
# Judgement (Autobahn's strict "OK")
# --------------------------------------------------------------------------

def judge(expect: Expect, s: Session, opts: Options) -> Tuple[bool, str]:
    if s.violation:
        return False, f"server violated RFC {'6455' if s.offer is None else '6455/7692'}: {s.violation}"
    code = s.close_received[0] if s.close_received else None
    if match_events(s.events, expect.events) != MATCH:
        reason = explain_mismatch(s.events, expect)
        if expect.closed_by_me and s.close_received and not s.closed_by_me:
            reason += f"; server closed first: {close_text(s)}{too_big_hint(code)}"
        return False, reason
    if s.close_received is None and not s.peer_gone:
        if expect.closed_by_me:
            return False, f"no close frame in reply to ours within {opts.timeout:g} s"
        return False, f"server did not fail the connection within {opts.timeout:g} s"
    if expect.closed_by_me and not s.closed_by_me:
        return False, f"server closed the connection unexpectedly ({close_text(s)})"
    if not expect.closed_by_me and s.closed_by_me:
        return False, "connection was closed by the wrong endpoint"
    clean = s.close_sent is not None and s.close_received is not None
    if expect.clean and not clean:
        return False, f"unclean close: {close_text(s)} (closing handshake required)"
    if code is not None and code not in expect.codes:
        return False, f"wrong close code {code}, expected {codes_text(expect.codes)}{too_big_hint(code)}"
    if code is None and opts.require_close_code and s.close_sent != close_payload(None):
        return False, f"no close code from the server ({close_text(s)}), expected {codes_text(expect.codes)}"
    if not s.peer_gone:
        return False, (f"server did not close the TCP connection within "
                       f"{opts.close_timeout:g} s after the closing handshake")
    return True, summary(s)


def explain_mismatch(received: List[Event], expect: Expect) -> str:
    wanted = list(expect.events[0])
    if STILL_OPEN_AFTER_PART2 in received:
        return "not fail-fast: connection still open after part 2 (the invalid octets) (Autobahn: NON-STRICT)"
    if wanted == [STILL_OPEN_AFTER_PART1] and STILL_OPEN_AFTER_PART1 not in received:
        return "connection failed after part 1, before the invalid octets were sent"
    got, want = describe_events(received), describe_events(wanted)
    if got == want:  # the summaries look alike: point at the first difference
        return explain_first_difference(received, wanted)
    hint = " (Autobahn: NON-STRICT)" if any(received == list(alt) for alt in expect.non_strict) else ""
    return f"received {got}, expected {want}{hint}"


def explain_first_difference(received: List[Event], wanted: List[Event]) -> str:
    index = next(i for i, (a, b) in enumerate(zip(received, wanted)) if a != b)
    (kind, data), (wanted_kind, wanted_data) = received[index], wanted[index]
    where = f"event #{index + 1}"
    if kind != wanted_kind:
        return f"{where} is {kind}, expected {wanted_kind}"
    if len(data) != len(wanted_data):
        return f"{where} ({kind}) has {len(data)} octets, expected {len(wanted_data)}"
    octet = next(i for i, (a, b) in enumerate(zip(data, wanted_data)) if a != b)
    return f"{where} ({kind}) differs from what was sent at octet {octet}"


def codes_text(codes) -> str:
    return "/".join(str(c) for c in sorted(codes))


def too_big_hint(code: int) -> str:
    if code != CLOSE_MESSAGE_TOO_BIG:
        return ""
    return " (1009: raise the server's max message size to >= 16 MiB)"


def close_text(s: Session) -> str:
    if s.close_received is None:
        return "TCP dropped without close frame"
    code, reason = s.close_received
    text_reason = f" {reason.decode('utf-8')!r}" if reason else ""
    return f"close {code if code is not None else '(no code)'}{text_reason}"


def describe_close_payload(payload: bytes) -> str:
    if len(payload) < 2:
        return f"{len(payload)}-octet payload"
    return f"code {struct.unpack('!H', payload[:2])[0]} + {len(payload) - 2}-octet reason"


def summary(s: Session) -> str:
    count = len([e for e in s.events if e[0] != "open"])
    received = f"{count} event{'s' if count != 1 else ''}, " if count else ""
    if s.compressed_received:
        received = f"{received[:-2]} ({s.compressed_received} compressed), "
    declined = "permessage-deflate declined, " if s.offer is not None and s.agreement is None else ""
    return f"{declined}{received}{close_text(s)}, TCP closed by server"


# --------------------------------------------------------------------------
# Case registry
# --------------------------------------------------------------------------

HELLO = b"Hello, world!"
SMALL_BINARY = b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff"
KOSME = bytes.fromhex("cebae1bdb9cf83cebcceb5")  # Greek "kosme"
TEXT_PATTERN = b"BAsd7&jh23"
BINARY_PATTERN = b"\x00\xfe\x23\xfa\xf0"


def fragments(opcode: int, parts: Sequence[bytes], **frame_options) -> List[Frame]:
    """A message split into the given frame payloads."""
    last = len(parts) - 1
    return [Frame(opcode if i == 0 else OP_CONT, part, fin=(i == last), **frame_options)
            for i, part in enumerate(parts)]


def cases_framing() -> List[Case]:
    result = []
    sizes = [0, 125, 126, 127, 128, 65535, 65536]
    for sub, kind, opcode, fill in ((1, "text", OP_TEXT, b"*"), (2, "binary", OP_BINARY, b"\xfe")):
        for i, size in enumerate(sizes, 1):
            payload = fill * size
            result.append(case(f"1.{sub}.{i}", f"Send {kind} message with payload length {size}",
                               echo(message(opcode, payload)), Frame(opcode, payload)))
        payload = fill * 65536
        result.append(case(f"1.{sub}.8",
                           f"Send {kind} message with payload length 65536 in chops of 997 octets",
                           echo(message(opcode, payload)), Frame(opcode, payload, chop=997)))
    return result


def cases_ping_pong() -> List[Case]:
    pings = [f"payload-{i}".encode() for i in range(10)]
    return [
        case("2.1", "Send ping without payload", echo(pong()), Frame(OP_PING)),
        case("2.2", "Send ping with small text payload", echo(pong(HELLO)), Frame(OP_PING, HELLO)),
        case("2.3", "Send ping with small binary (non UTF-8) payload",
             echo(pong(SMALL_BINARY)), Frame(OP_PING, SMALL_BINARY)),
        case("2.4", "Send ping with binary payload of 125 octets",
             echo(pong(b"\xfe" * 125)), Frame(OP_PING, b"\xfe" * 125)),
        case("2.5", "Send ping with binary payload of 126 octets (too long for a control frame)",
             fail(), Frame(OP_PING, b"\xfe" * 126)),
        case("2.6", "Send ping with binary payload of 125 octets in octet-wise chops",
             echo(pong(b"\xfe" * 125)), Frame(OP_PING, b"\xfe" * 125, chop=1)),
        case("2.7", "Send unsolicited pong without payload, then close",
             echo(), Frame(OP_PONG), Close()),
        case("2.8", "Send unsolicited pong with payload, then close",
             echo(), Frame(OP_PONG, b"unsolicited pong payload"), Close()),
        case("2.9", "Send unsolicited pong with payload, then ping with payload",
             echo(pong(b"ping payload")),
             Frame(OP_PONG, b"unsolicited pong payload"), Frame(OP_PING, b"ping payload")),
        case("2.10", "Send 10 pings with payload",
             echo(*map(pong, pings)), *(Frame(OP_PING, p) for p in pings)),
        case("2.11", "Send 10 pings with payload in octet-wise chops",
             echo(*map(pong, pings)), *(Frame(OP_PING, p, chop=1) for p in pings)),
    ]


def hello_then_bad_frame(bad: Frame, **options) -> List[Frame]:
    """Valid text message, a bad frame, then a ping (whose pong must not come)."""
    return [Frame(OP_TEXT, HELLO, **options), bad, Frame(OP_PING, **options)]


def fail_after_hello() -> Expect:
    return fail(CLOSE_PROTOCOL_ERROR, text(HELLO), non_strict=[()])


def cases_reserved_bits() -> List[Case]:
    return [
        case("3.1", "Send small text message with RSV = 1", fail(), Frame(OP_TEXT, HELLO, rsv=1)),
        case("3.2", "Send small text message, then again with RSV = 2, then ping",
             fail_after_hello(), *hello_then_bad_frame(Frame(OP_TEXT, HELLO, rsv=2))),
        case("3.3", "Send small text message, then again with RSV = 3, then ping; frame-wise chops",
             fail_after_hello(), *hello_then_bad_frame(Frame(OP_TEXT, HELLO, rsv=3, sync=True), sync=True)),
        case("3.4", "Send small text message, then again with RSV = 4, then ping; octet-wise chops",
             fail_after_hello(), *hello_then_bad_frame(Frame(OP_TEXT, HELLO, rsv=4, chop=1), chop=1)),
        case("3.5", "Send small binary message with RSV = 5", fail(), Frame(OP_BINARY, SMALL_BINARY, rsv=5)),
        case("3.6", "Send ping with RSV = 6", fail(), Frame(OP_PING, HELLO, rsv=6)),
        case("3.7", "Send close with RSV = 7", fail(), Frame(OP_CLOSE, rsv=7)),
    ]


def cases_opcodes() -> List[Case]:
    result = []
    for group, kind, opcodes in ((1, "non-control", (3, 4, 5, 6, 7)), (2, "control", (11, 12, 13, 14, 15))):
        first, second, third, fourth, fifth = opcodes
        payload = b"reserved opcode payload"
        result += [
            case(f"4.{group}.1", f"Send frame with reserved {kind} opcode {first}",
                 fail(), Frame(first)),
            case(f"4.{group}.2", f"Send frame with reserved {kind} opcode {second} and non-empty payload",
                 fail(), Frame(second, payload)),
            case(f"4.{group}.3",
                 f"Send small text message, then frame with reserved {kind} opcode {third}, then ping",
                 fail_after_hello(), *hello_then_bad_frame(Frame(third))),
            case(f"4.{group}.4", f"Send small text message, then frame with reserved {kind} opcode {fourth} "
                 "and non-empty payload, then ping",
                 fail_after_hello(), *hello_then_bad_frame(Frame(fourth, HELLO))),
            case(f"4.{group}.5", f"Send small text message, then frame with reserved {kind} opcode {fifth} "
                 "and non-empty payload, then ping; octet-wise chops",
                 fail_after_hello(), *hello_then_bad_frame(Frame(fifth, HELLO, chop=1), chop=1)),
        ]
    return result


def cases_fragmentation() -> List[Case]:
    two = [b"fragment1", b"fragment2"]
    whole = b"fragment1fragment2"
    ping = b"ping payload"

    def with_ping(**options):
        return [Frame(OP_TEXT, two[0], fin=False, **options), Frame(OP_PING, ping, **options),
                Frame(OP_CONT, two[1], **options)]

    def nothing_to_continue(fin, **options):
        return [Frame(OP_CONT, b"non-continuation payload", fin=fin, **options),
                Frame(OP_TEXT, HELLO, **options)]

    def twice_nothing_to_continue(fin):
        round_ = [Frame(OP_CONT, b"fragment1", fin=fin), Frame(OP_TEXT, b"fragment2", fin=False),
                  Frame(OP_CONT, b"fragment3")]
        return round_ * 2

    modes = (("", {}), ("; frame-wise chops", {"sync": True}), ("; octet-wise chops", {"chop": 1}))
    result = [
        case("5.1", "Send ping fragmented into 2 fragments", fail(), *fragments(OP_PING, two)),
        case("5.2", "Send pong fragmented into 2 fragments", fail(), *fragments(OP_PONG, two)),
    ]
    for i, (note, options) in enumerate(modes):
        result.append(case(f"5.{3 + i}", f"Send text message fragmented into 2 fragments{note}",
                           echo(text(whole)), *fragments(OP_TEXT, two, **options)))
    for i, (note, options) in enumerate(modes):
        result.append(case(f"5.{6 + i}", f"Send text message in 2 fragments with a ping in between{note}",
                           echo(pong(ping), text(whole)), *with_ping(**options)))
    for i, (note, options) in enumerate(modes):
        result.append(case(f"5.{9 + i}", "Send continuation frame (FIN = true) with nothing to continue, "
                           f"then text message{note}", fail(), *nothing_to_continue(True, **options)))
    for i, (note, options) in enumerate(modes):
        result.append(case(f"5.{12 + i}", "Send continuation frame (FIN = false) with nothing to continue, "
                           f"then text message{note}", fail(), *nothing_to_continue(False, **options)))
    four = [b"fragment1", b"fragment2", b"fragment3", b"fragment4"]
    result += [
        case("5.15", "Send text message in 2 fragments, then continuation (FIN = false) with nothing "
             "to continue, then text message",
             fail(CLOSE_PROTOCOL_ERROR, text(whole), non_strict=[()]),
             *fragments(OP_TEXT, four[:2]), Frame(OP_CONT, four[2], fin=False), Frame(OP_TEXT, four[3])),
        case("5.16", "Twice: continuation (FIN = false) with nothing to continue, then text message "
             "in 2 fragments", fail(), *twice_nothing_to_continue(False)),
        case("5.17", "Twice: continuation (FIN = true) with nothing to continue, then text message "
             "in 2 fragments", fail(), *twice_nothing_to_continue(True)),
        case("5.18", "Send text message in 2 fragments, both with opcode text", fail(),
             Frame(OP_TEXT, two[0], fin=False), Frame(OP_TEXT, two[1])),
    ]
    five = [b"fragment%d" % i for i in range(1, 6)]
    pings = [b"pongme 1!", b"pongme 2!"]
    for cid, note, sync in (("5.19", "", False), ("5.20", "; frame-wise chops", True)):
        steps = [Frame(OP_TEXT, five[0], fin=False, sync=sync), Frame(OP_CONT, five[1], fin=False, sync=sync),
                 Frame(OP_PING, pings[0], sync=sync), Pause(),
                 Frame(OP_CONT, five[2], fin=False, sync=sync), Frame(OP_CONT, five[3], fin=False, sync=sync),
                 Frame(OP_PING, pings[1], sync=sync), Frame(OP_CONT, five[4], sync=sync)]
        result.append(case(cid, f"Send text message in 5 fragments with 2 pings in between and a pause{note}",
                           echo(pong(pings[0]), pong(pings[1]), text(b"".join(five))), *steps))
    return result


# ---- category 6: UTF-8 -----------------------------------------------------

def fail_fast_run(parts: Sequence[bytes], one_frame: bool, s: Session) -> None:
    """6.4.x: send an invalid text message in 3 parts with pauses in between.
    Part 2 completes the invalid sequence; the server must fail the connection
    before part 3 is sent. Records a pseudo event for each pause survived."""
    if one_frame:
        frame = encode_frame(OP_TEXT, b"".join(parts))
        cut1 = len(frame) - len(parts[1]) - len(parts[2])
        cut2 = cut1 + len(parts[1])
        chunks = [frame[:cut1], frame[cut1:cut2], frame[cut2:]]
    else:
        chunks = [encode_frame(OP_TEXT, parts[0], fin=False), encode_frame(OP_CONT, parts[1], fin=False),
                  encode_frame(OP_CONT, parts[2])]
    for marker, chunk in zip((STILL_OPEN_AFTER_PART1, STILL_OPEN_AFTER_PART2, None), chunks):
        s.write_now(chunk)
        if marker is None or not s.hold_open(s.opts.pause):
            return
        s.events.append(marker)


def fail_fast_case(cid: str, description: str, parts: Sequence[bytes], one_frame: bool) -> Case:
    expect = Expect(((STILL_OPEN_AFTER_PART1,),), False, frozenset({CLOSE_INVALID_PAYLOAD}), False,
                    non_strict=((STILL_OPEN_AFTER_PART1, STILL_OPEN_AFTER_PART2),))
    plan = Plan(expect, run=partial(fail_fast_run, parts, one_frame))
    return Case(cid, description, lambda: plan)


def utf8_case(cid: str, title: str, payload: bytes) -> Case:
    """Valid payloads must be echoed, invalid ones must fail the connection with 1007."""
    valid = is_utf8(payload)
    description = f"{title}: {'valid' if valid else 'invalid'} UTF-8 text message 0x{payload.hex()}"
    expect = echo(text(payload)) if valid else fail(CLOSE_INVALID_PAYLOAD)
    return case(cid, description, expect, Frame(OP_TEXT, payload))


def from_hex(*items: str) -> List[bytes]:
    return [bytes.fromhex(item) for item in items]


def utf8_sequences() -> List[Tuple[str, List[bytes]]]:
    """Groups 6.5 to 6.23, after Markus Kuhn's UTF-8 decoder stress test.
    Validity is not listed: it is decided by a strict UTF-8 decoder."""
    lonely = [bytes(itertools.chain.from_iterable((b, 0x20) for b in range(lo, hi)))
              for lo, hi in ((0xC0, 0xDF), (0xE0, 0xEF), (0xF0, 0xF7), (0xF8, 0xFB), (0xFC, 0xFD))]
    truncated = from_hex("c0", "e080", "f08080", "f8808080", "fc80808080",
                         "df", "efbf", "f7bfbf", "fbbfbfbf", "fdbfbfbfbf")
    high, low = from_hex("eda080", "edadbf", "edae80", "edafbf"), from_hex("edb080", "edbfbf")
    noncharacters = [(plane << 16) | last for plane in range(17) for last in (0xFFFE, 0xFFFF)]
    return [
        ("Some valid UTF-8 sequences",
         [b"hello$world", b"hello\xc2\xa2world", b"hello\xe2\x82\xacworld",
          b"hello\xf0\xa4\xad\xa2world", KOSME]),
        ("Prefixes of a valid UTF-8 string with multi-byte code points",
         [KOSME[:i] for i in range(1, len(KOSME) + 1)]),
        ("First possible sequence of a certain length", from_hex("00", "c280", "e0a080", "f0908080")),
        ("First possible sequence length 5/6 (invalid code points)", from_hex("f888808080", "fc8480808080")),
        ("Last possible sequence of a certain length", from_hex("7f", "dfbf", "efbfbf", "f48fbfbf")),
        ("Last possible sequence length 4/5/6 (invalid code points)",
         from_hex("f7bfbfbf", "fbbfbfbfbf", "fdbfbfbfbfbf")),
        ("Other boundary conditions", from_hex("ed9fbf", "ee8080", "efbfbd", "f48fbfbf", "f4908080")),
        ("Unexpected continuation bytes",
         from_hex("80", "bf", "80bf", "80bf80", "80bf80bf", "80bf80bf80", "80bf80bf80bf")
         + [bytes(range(0x80, 0xBF))]),
        ("Lonely start characters", lonely),
        ("Sequences with last continuation byte missing", truncated),
        ("Concatenation of incomplete sequences", [b"".join(truncated)]),
        ("Impossible bytes", from_hex("fe", "ff", "fefeffff")),
        ("Overlong ASCII character", from_hex("c0af", "e080af", "f08080af", "f8808080af", "fc80808080af")),
        ("Maximum overlong sequences", from_hex("c1bf", "e09fbf", "f08fbfbf", "f887bfbfbf", "fc83bfbfbfbf")),
        ("Overlong NUL character", from_hex("c080", "e08080", "f0808080", "f880808080", "fc8080808080")),
        ("Single UTF-16 surrogates",
         from_hex("eda080", "edadbf", "edae80", "edafbf", "edb080", "edbe80", "edbfbf")),
        ("Paired UTF-16 surrogates", [h + l for h in high for l in low]),
        ("Non-character code points (valid UTF-8)", [chr(c).encode("utf-8") for c in noncharacters]),
        ("Unicode specials (valid UTF-8)", [chr(c).encode("utf-8") for c in range(0xFFF9, 0x10000)]),
    ]


def cases_utf8() -> List[Case]:
    hello_utf8 = "Hello-µ@ßöäüàá-UTF-8!!".encode("utf-8")
    invalid = KOSME + bytes.fromhex("eda080") + b"edited"
    result = [
        case("6.1.1", "Send text message of length 0", echo(text(b"")), Frame(OP_TEXT)),
        case("6.1.2", "Send text message in 3 empty fragments", echo(text(b"")),
             *fragments(OP_TEXT, [b"", b"", b""])),
        case("6.1.3", "Send text message in 3 fragments, only the middle one non-empty",
             echo(text(b"middle frame payload")), *fragments(OP_TEXT, [b"", b"middle frame payload", b""])),
        case("6.2.1", "Send valid UTF-8 text message in one fragment", echo(text(hello_utf8)),
             Frame(OP_TEXT, hello_utf8)),
        case("6.2.2", "Send valid UTF-8 text message in 2 fragments split on a code point boundary",
             echo(text(hello_utf8)),
             *fragments(OP_TEXT, ["Hello-µ@ßöä".encode("utf-8"), "üàá-UTF-8!!".encode("utf-8")])),
        case("6.2.3", "Send valid UTF-8 text message in 1-octet fragments (splitting code points)",
             echo(text(hello_utf8)), *fragments(OP_TEXT, split_every(hello_utf8, 1))),
        case("6.2.4", "Send valid UTF-8 text message (kosme) in 1-octet fragments",
             echo(text(KOSME)), *fragments(OP_TEXT, split_every(KOSME, 1))),
        case("6.3.1", "Send invalid UTF-8 text message unfragmented", fail(CLOSE_INVALID_PAYLOAD),
             Frame(OP_TEXT, invalid)),
        case("6.3.2", "Send invalid UTF-8 text message in 1-octet fragments", fail(CLOSE_INVALID_PAYLOAD),
             *fragments(OP_TEXT, split_every(invalid, 1))),
    ]
    # Fail-fast: 0xf4 0x90 is U+110000 and up, invalid at its second octet (index 12).
    out_of_range = KOSME + bytes.fromhex("f4908080") + b"edited"
    whole_sequence = [KOSME, bytes.fromhex("f4908080"), b"edited"]
    up_to_bad_octet = [out_of_range[:12], out_of_range[12:13], out_of_range[13:]]
    result += [
        fail_fast_case("6.4.1", "Fail fast: invalid text message in 3 frames; frame 2 makes it invalid",
                       whole_sequence, one_frame=False),
        fail_fast_case("6.4.2", "Fail fast: as 6.4.1, frame 2 is just the octet making it invalid",
                       up_to_bad_octet, one_frame=False),
        fail_fast_case("6.4.3", "Fail fast: as 6.4.1, but 3 chops of a single frame",
                       whole_sequence, one_frame=True),
        fail_fast_case("6.4.4", "Fail fast: as 6.4.2, but 3 chops of a single frame",
                       up_to_bad_octet, one_frame=True),
    ]
    for group, (title, payloads) in enumerate(utf8_sequences(), 5):
        result += [utf8_case(f"6.{group}.{i}", title, p) for i, p in enumerate(payloads, 1)]
    return result


# ---- category 7: closing ---------------------------------------------------

def cases_close() -> List[Case]:
    hello = b"Hello World!"
    invalid_reason = KOSME + bytes.fromhex("eda080") + b"edited"
    quiet_close = closing([CLOSE_NORMAL], clean=True)
    result = [
        case("7.1.1", "Send a message, then close", echo(text(hello)), Frame(OP_TEXT, hello)),
        case("7.1.2", "Send two close frames", quiet_close, Close(), Frame(OP_CLOSE)),
        case("7.1.3", "Send a ping after the close frame", quiet_close, Close(), Frame(OP_PING)),
        case("7.1.4", "Send a text message after the close frame", quiet_close,
             Close(), Frame(OP_TEXT, hello)),
        case("7.1.5", "Send message fragment 1, close, then fragment 2", quiet_close,
             Frame(OP_TEXT, b"fragment1", fin=False), Close(), Frame(OP_CONT, b"fragment2")),
        Case("7.1.6", "Send a 256 KiB message, a small message, close, then ping", close_after_flood_plan),
        case("7.3.1", "Send close frame without payload", quiet_close, Close(None)),
        case("7.3.2", "Send close frame with 1-octet payload", closing([CLOSE_PROTOCOL_ERROR], clean=False),
             Close(raw=b"a")),
        case("7.3.3", "Send close frame with close code only", quiet_close, Close(CLOSE_NORMAL)),
        case("7.3.4", "Send close frame with close code and reason", quiet_close, Close(CLOSE_NORMAL, hello)),
        case("7.3.5", "Send close frame with close code and 123-octet reason (maximum)", quiet_close,
             Close(CLOSE_NORMAL, b"*" * 123)),
        case("7.3.6", "Send close frame with close code and 124-octet reason (payload 126 > 125)",
             closing([CLOSE_PROTOCOL_ERROR], clean=False), Close(CLOSE_NORMAL, b"*" * 124)),
        case("7.5.1", "Send close frame with invalid UTF-8 reason",
             closing([CLOSE_PROTOCOL_ERROR, CLOSE_INVALID_PAYLOAD], clean=False),
             Close(CLOSE_NORMAL, invalid_reason)),
    ]
    valid = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]
    result += [case(f"7.7.{i}", f"Send close with valid close code {code}",
                    closing([CLOSE_NORMAL, code], clean=True), Close(code))
               for i, code in enumerate(valid, 1)]
    invalid = [0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999]
    result += [case(f"7.9.{i}", f"Send close with invalid close code {code}",
                    closing([CLOSE_PROTOCOL_ERROR], clean=False), Close(code))
               for i, code in enumerate(invalid, 1)]
    return result


def close_after_flood_plan() -> Plan:
    """7.1.6 (INFORMATIONAL in Autobahn). The RFC lets the server answer the
    close before echoing messages still in flight, so any in-order prefix of
    the two echoes is accepted; the closing handshake itself must be clean."""
    big, small = repeat_to(TEXT_PATTERN, 256 * KIB), b"Hello World!"
    expect = Expect(((text(big), text(small)), (text(big),), ()), True, frozenset({CLOSE_NORMAL}), True)
    return Plan(expect, (Frame(OP_TEXT, big), Frame(OP_TEXT, small), Close(), Frame(OP_PING)))


# ---- category 9: limits ----------------------------------------------------

def big_message_plan(opcode: int, payload: bytes, fragment: Optional[int] = None,
                     chop: Optional[int] = None) -> Plan:
    if fragment:
        steps = fragments(opcode, split_every(payload, fragment))
    else:
        steps = [Frame(opcode, payload, chop=chop)]
    return Plan(echo(message(opcode, payload)), steps)


def big_case(cid: str, description: str, opcode: int, pattern: bytes, size: int, **options) -> Case:
    return Case(cid, description, lambda: big_message_plan(opcode, repeat_to(pattern, size), **options))


def roundtrip_run(opcode: int, payloads: Sequence[bytes], s: Session, fragment: Optional[int] = None) -> None:
    """Send the next message only after the previous one has been echoed
    (compressed if permessage-deflate was agreed, see Session.send_message)."""
    for sent, payload in enumerate(payloads, 1):
        s.send_message(opcode, payload, fragment)
        if not s.wait_until(lambda count=sent: len(s.events) >= count or s.closing, s.opts.timeout):
            return
        if s.closing or s.events[-1] != message(opcode, payload):
            return


def roundtrip_case(cid: str, kind: str, opcode: int, fill: bytes, size: int, count: int) -> Case:
    payloads = [fill * size] * count
    expect = echo(*[message(opcode, p) for p in payloads])
    plan = Plan(expect, run=partial(roundtrip_run, opcode, payloads))
    return Case(cid, f"Send {count} {kind} messages of {size} octets, one at a time (round trips)",
                lambda: plan)


def size_text(size: int) -> str:
    return f"{size // MIB} MiB" if size >= MIB else f"{size // KIB} KiB" if size >= KIB else f"{size} octets"


def cases_limits() -> List[Case]:
    result = []
    kinds = (("text", OP_TEXT, TEXT_PATTERN, b"*"), ("binary", OP_BINARY, BINARY_PATTERN, b"\xfe"))
    for sub, (kind, opcode, pattern, _fill) in enumerate(kinds, 1):
        for i, size in enumerate([64 * KIB, 256 * KIB, 1 * MIB, 4 * MIB, 8 * MIB, 16 * MIB], 1):
            result.append(big_case(f"9.{sub}.{i}", f"Send {kind} message of {size_text(size)}",
                                   opcode, pattern, size))
    for sub, (kind, opcode, _pattern, fill) in enumerate(kinds, 3):
        for i, fragment in enumerate([64, 256, KIB, 4 * KIB, 16 * KIB, 64 * KIB, 256 * KIB, MIB, 4 * MIB], 1):
            result.append(big_case(f"9.{sub}.{i}", f"Send {kind} message of 4 MiB in fragments of "
                                   f"{size_text(fragment)}", opcode, fill, 4 * MIB, fragment=fragment))
    for sub, (kind, opcode, pattern, _fill) in enumerate(kinds, 5):
        for i, chop in enumerate([64, 128, 256, 512, 1024, 2048], 1):
            result.append(big_case(f"9.{sub}.{i}", f"Send {kind} message of 1 MiB in chops of {chop} octets",
                                   opcode, pattern, MIB, chop=chop))
    for sub, (kind, opcode, _pattern, fill) in enumerate(kinds, 7):
        for i, size in enumerate([0, 16, 64, 256, 1024, 4096], 1):
            result.append(roundtrip_case(f"9.{sub}.{i}", kind, opcode, fill, size, 1000))
    return result


def cases_misc() -> List[Case]:
    payload = b"*" * 65536
    return [case("10.1.1", "Send text message of 65536 octets auto-fragmented into frames of 1300 octets",
                 echo(text(payload)), *fragments(OP_TEXT, split_every(payload, 1300)))]


# ---- categories 12 and 13: permessage-deflate (RFC 7692) ------------------

CORPUS_SIZE = 256 * KIB
LOREM = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut "
         "labore et dolore magna aliqua enim ad minim veniam quis nostrud exercitation ullamco laboris "
         "nisi aliquip ex ea commodo consequat duis aute irure in reprehenderit voluptate velit esse "
         "cillum fugiat nulla pariatur excepteur sint occaecat cupidatat non proident sunt culpa qui "
         "officia deserunt mollit anim id est laborum").split()
FIRST_NAMES = ["Anna", "Björn", "Chloé", "Dmitri", "Émile", "Fatima", "Günther", "Hana", "Ingrid", "José",
               "Kenji", "Łucja", "Mónica", "Nils", "Océane", "Pål", "Søren", "Yusuf", "Zoë", "Amélie"]
LAST_NAMES = ["Müller", "García", "Nováková", "Østergaard", "Smith", "Tanaka", "Łukasiewicz", "Dubois",
              "Jensen", "Rossi", "Öztürk", "Fernández", "Kowalski", "Nguyễn"]
CITIES = ["Zürich", "München", "Kraków", "São Paulo", "Reykjavík", "Tōkyō", "Montréal", "Malmö", "Besançon",
          "New York", "Lyon", "Porto"]


def lorem(rng: random.Random, words: int) -> str:
    sentence = " ".join(rng.choice(LOREM) for _ in range(words))
    return sentence[0].upper() + sentence[1:] + "."


def ascii_lower(name: str) -> str:
    return unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii").lower()


def timestamp(rng: random.Random) -> str:
    return (f"20{rng.randint(14, 24)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T"
            f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d} -01:00")


def friends(rng: random.Random) -> List[dict]:
    return [{"id": i, "name": f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"} for i in range(3)]


def json_corpus(rng: random.Random) -> bytes:
    """Pretty-printed records as a JSON generator makes them, with non-ASCII names."""
    records, size = [], 0
    while size < CORPUS_SIZE:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        company = rng.choice(LOREM).upper() + rng.choice(["TEX", "CORP", "GMBH", "LABS", "WORKS"])
        record = {
            "_id": f"{rng.getrandbits(96):024x}",
            "index": len(records),
            "guid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "isActive": rng.random() < 0.5,
            "balance": f"${rng.randint(1000, 3999):,}.{rng.randint(0, 99):02d}",
            "age": rng.randint(20, 70),
            "eyeColor": rng.choice(["blue", "brown", "green"]),
            "name": f"{first} {last}",
            "company": company,
            "email": f"{ascii_lower(first)}.{ascii_lower(last)}@{company.lower()}.com",
            "phone": f"+1 ({rng.randint(800, 999)}) {rng.randint(100, 999)}-{rng.randint(1000, 9999)}",
            "address": f"{rng.randint(1, 999)} {rng.choice(LOREM).title()} Street, {rng.choice(CITIES)}, "
                       f"{rng.randint(1000, 99999)}",
            "about": lorem(rng, rng.randint(20, 50)),
            "registered": timestamp(rng),
            "latitude": round(rng.uniform(-90, 90), 6),
            "longitude": round(rng.uniform(-180, 180), 6),
            "tags": rng.sample(LOREM, 6),
            "friends": friends(rng),
            "greeting": f"Hello, {first}! You have {rng.randint(1, 10)} unread messages.",
            "favoriteFruit": rng.choice(["apple", "banana", "strawberry"]),
        }
        records.append(record)
        size += len(json.dumps(record, ensure_ascii=False, indent=2).encode("utf-8")) + 30
    return json.dumps(records, ensure_ascii=False, indent=2).encode("utf-8") + b"\n"


def bitmap_corpus(rng: random.Random) -> bytes:
    """A 512x512 8-bit greyscale BMP: smooth shading, a few discs and sensor
    noise, which deflate shrinks about as little as a photograph."""
    width = height = 512
    palette = b"".join(bytes((grey, grey, grey, 0)) for grey in range(256))
    offset = 14 + 40 + len(palette)
    head = struct.pack("<2sIHHI", b"BM", offset + width * height, 0, 0, offset)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 0, width * height, 2835, 2835, 256, 0)
    columns = [128 + 45 * math.sin(x / 41) + 12 * math.cos(x / 13) for x in range(width)]
    discs = [(rng.randrange(width), rng.randrange(height), rng.randint(20, 90), rng.randint(-60, 60))
             for _ in range(12)]
    rows = []
    for y in range(height):
        shade = 40 * math.cos(y / 57)
        values = [c + shade for c in columns]
        for cx, cy, radius, delta in discs:
            if abs(y - cy) < radius:
                half = int(math.sqrt(radius * radius - (y - cy) ** 2))
                for x in range(max(0, cx - half), min(width, cx + half)):
                    values[x] += delta
        noise = rng.getrandbits(8 * width).to_bytes(width, "little")
        rows.append(bytes(min(255, max(0, int(v) + (n & 15) - 8)) for v, n in zip(values, noise)))
    return head + info + palette + b"".join(rows)


VERSE_SPEAKERS = ["FAUST", "MEPHISTOPHELES", "MARGARETE", "WAGNER", "MARTHE", "SCHÜLER", "CHOR DER ENGEL"]
VERSE_WORDS = ("ich du er sie es wir ihr mich dich sich mir dir uns und oder aber doch nicht noch schon "
               "so wie was wer wo hier dort dann nun auch nur mehr sehr gar ganz mit von zu aus bei nach "
               "über unter vor für ohne durch in an auf der die das den dem des ein eine einen mein dein "
               "sein kein").split()
VERSE_NOUNS = ("Welt Geist Herz Nacht Tag Licht Gott Teufel Seele Leben Tod Liebe Glück Natur Himmel Erde "
               "Brust Blick Hand Kraft Wissen Mensch Zeit Traum Schmerz Freude Mädchen Flamme Schönheit "
               "Ewigkeit Augenblick Sinn Wort Tat Buch Kunst Qual Lust Stube Straße Garten Kerker").split()
VERSE_VERBS = ("weiß fühle sehe höre gehe komme bleibe strebe will muss kann möchte liebe träume suche finde "
               "fliehe schwöre lebe sterbe").split()
VERSE_ADJECTIVES = ("früh schön grün süß heiß groß klein tief hoch dunkel hell still wild müde selig bang "
                    "ewig").split()
VERSE_DIRECTIONS = ["geht ab", "tritt auf", "allein", "für sich"]


def verse_corpus(rng: random.Random) -> bytes:
    """A German verse drama: speakers, stanzas, stage directions (UTF-8, sent as
    binary like Autobahn's Faust)."""
    kinds = [VERSE_WORDS] * 5 + [VERSE_NOUNS] * 3 + [VERSE_VERBS] * 2 + [VERSE_ADJECTIVES]
    lines, size = [], 0
    while size < CORPUS_SIZE:
        stanza = [f"{rng.choice(VERSE_SPEAKERS)}:"]
        for _ in range(rng.randint(2, 8)):
            words = " ".join(rng.choice(rng.choice(kinds)) for _ in range(rng.randint(4, 8)))
            stanza.append(words[0].upper() + words[1:] + rng.choice([",", ".", "!", "?", ";", ":", ""]))
        if rng.random() < 0.15:
            stanza.append(f"({rng.choice(VERSE_SPEAKERS).title()} {rng.choice(VERSE_DIRECTIONS)}.)")
        block = "\n".join(stanza) + "\n\n"
        lines.append(block)
        size += len(block.encode("utf-8"))
    return "".join(lines).encode("utf-8")


def html_corpus(rng: random.Random) -> bytes:
    """An HTML page: navigation, articles with metadata, paragraphs, tables and tags."""
    out = ['<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
           '<title>Archive – all posts</title>\n<link rel="stylesheet" href="/static/css/site.css">\n'
           '<script src="/static/js/app.js" defer></script>\n</head>\n<body>\n<header class="site-header">\n'
           '<nav class="navbar navbar-expand">\n<ul class="nav">\n']
    out += [f'  <li class="nav-item"><a class="nav-link" href="/section/{word}">{word.title()}</a></li>\n'
            for word in rng.sample(LOREM, 12)]
    out.append('</ul>\n</nav>\n</header>\n<main class="container">\n')
    size, post = 0, 0
    while size < CORPUS_SIZE:
        post += 1
        title = lorem(rng, rng.randint(3, 8))[:-1]
        slug = "-".join(ascii_lower(title).split())
        author = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        parts = [f'<article class="post" id="post-{post}">\n'
                 f'  <h2 class="post-title"><a href="/posts/{post}/{slug}">{title}</a></h2>\n'
                 f'  <p class="post-meta">Posted on <time datetime="2023-{rng.randint(1, 12):02d}-'
                 f'{rng.randint(1, 28):02d}">{rng.randint(1, 28)} {rng.choice(["May", "June", "July"])} 2023'
                 f'</time> '
                 f'by <a href="/users/{ascii_lower(author).replace(" ", ".")}">{author}</a> in '
                 f'{rng.choice(CITIES)}</p>\n']
        for _ in range(rng.randint(2, 4)):
            emphasis = ["naïve", "café", "résumé", "über"]
            parts.append(f'  <p>{lorem(rng, rng.randint(30, 80))} <em>{rng.choice(emphasis)}'
                         f'</em> <a href="/posts/{rng.randint(1, post)}">{rng.choice(LOREM)}</a>.</p>\n')
        if rng.random() < 0.3:
            parts.append('  <table class="table table-striped">\n    <thead><tr><th>Item</th><th>Count</th>'
                         '<th>Price</th></tr></thead>\n    <tbody>\n')
            parts += [f'      <tr><td>{rng.choice(LOREM)}</td><td class="num">{rng.randint(1, 500)}</td>'
                      f'<td class="num">{rng.randint(1, 999)}.{rng.randint(0, 99):02d} €</td></tr>\n'
                      for _ in range(rng.randint(3, 10))]
            parts.append('    </tbody>\n  </table>\n')
        parts.append('  <ul class="tags">' + "".join(f'<li><a class="tag" href="/tags/{tag}">{tag}</a></li>'
                                                     for tag in rng.sample(LOREM, 4)) + '</ul>\n</article>\n')
        block = "".join(parts)
        out.append(block)
        size += len(block.encode("utf-8"))
    out.append('</main>\n<footer class="site-footer"><p>© 2023 Example. All rights reserved.</p></footer>\n'
               '</body>\n</html>\n')
    return "".join(out).encode("utf-8")


def pdf_corpus(rng: random.Random) -> bytes:
    """A PDF-like document: page and font dictionaries, plain content streams,
    and about as much incompressible data (deflated streams, JPEG-like images)."""
    out, offsets, size = [b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n"], [], 0
    while size < CORPUS_SIZE:
        number, kind = len(offsets) + 1, rng.random()
        content = "".join(f"BT /F{rng.randint(1, 3)} {rng.choice([9, 10, 11, 12])} Tf {rng.randint(50, 90)} "
                          f"{rng.randint(50, 750)} Td ({lorem(rng, rng.randint(5, 12))}) Tj ET\n"
                          for _ in range(rng.randint(10, 40))).encode("ascii")
        if kind < 0.35:
            body = b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content)
        elif kind < 0.65:
            packed = zlib.compress(content)
            body = b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(packed), packed)
        elif kind < 0.85:
            pixels = rng.getrandbits(8 * 4096).to_bytes(4096, "little")
            body = (b"<< /Type /XObject /Subtype /Image /Width 64 /Height 64 /ColorSpace /DeviceRGB "
                    b"/BitsPerComponent 8 /Filter /DCTDecode /Length 4096 >>\nstream\n%s\nendstream" % pixels)
        else:
            body = (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << "
                    b"/F1 4 0 R /F2 5 0 R /F3 6 0 R >> /ProcSet [/PDF /Text /ImageB] >> /Contents %d 0 R >>"
                    % (number + 1))
        offsets.append(sum(map(len, out)))
        out.append(b"%d 0 obj\n%s\nendobj\n" % (number, body))
        size += len(out[-1])
    xref = sum(map(len, out))
    out.append(b"xref\n0 %d\n0000000000 65535 f \n" % (len(offsets) + 1))
    out += [b"%010d 00000 n \n" % offset for offset in offsets]
    out.append(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(offsets) + 1, xref))
    return b"".join(out)


@dataclass(frozen=True)
class Corpus:
    title: str
    opcode: int
    generate: Callable[[random.Random], bytes]


# The test data of 12.1-12.5, in Autobahn's order; generated, not Autobahn's files.
CORPORA = [
    Corpus("JSON records", OP_TEXT, json_corpus),
    Corpus("Greyscale bitmap 512x512", OP_BINARY, bitmap_corpus),
    Corpus("German verse drama", OP_BINARY, verse_corpus),
    Corpus("HTML page", OP_TEXT, html_corpus),
    Corpus("PDF-like document, half incompressible", OP_BINARY, pdf_corpus),
]


@lru_cache(maxsize=None)
def corpus_data(index: int) -> bytes:
    """Corpus `index`, generated deterministically (fixed seed)."""
    corpus = CORPORA[index]
    return corpus.generate(random.Random(f"wsl-conformance/{corpus.generate.__name__}"))


def corpus_messages(index: int, size: int, count: int) -> List[bytes]:
    """`count` consecutive slices of `size` octets, wrapping around at the end
    of the corpus as Autobahn does. Text slices end on a character boundary
    and are padded with spaces."""
    data = corpus_data(index)
    ring, is_text = data + data[:size + 4], CORPORA[index].opcode == OP_TEXT
    result, pos = [], 0
    for _ in range(count):
        cut = size
        while is_text and cut and ring[pos + cut] & 0xC0 == 0x80:
            cut -= 1
        result.append(ring[pos:pos + cut] + b" " * (size - cut))
        pos = (pos + cut) % len(data)
    return result


# (message size, frame size) of Autobahn's 12.x.y and 13.x.y; y is the position here.
DEFLATE_SIZES = [(16, None), (64, None), (256, None), (KIB, None), (4 * KIB, None), (8 * KIB, None),
                 (16 * KIB, None), (32 * KIB, None), (64 * KIB, None), (128 * KIB, None),
                 (8 * KIB, 256), (16 * KIB, 256), (32 * KIB, 256), (64 * KIB, 256), (128 * KIB, 256),
                 (128 * KIB, KIB), (128 * KIB, 4 * KIB), (128 * KIB, 32 * KIB)]
DEFLATE_BUDGET = 512 * KIB  # octets per 12.x/13.x case (10 to 1000 messages); --full-counts: always 1000

AUTOBAHN_OFFER = "permessage-deflate; client_no_context_takeover; client_max_window_bits"
PLAIN_OFFER = "permessage-deflate; client_max_window_bits"

# 13.x: (offer, the server must accept it). 13.1-13.7 are Autobahn's offers (with
# window 9 where Autobahn once offered 8, which zlib cannot honour; 8 is 14.5.14).
DEFLATE_OFFERS = [
    (AUTOBAHN_OFFER, True),
    (f"{AUTOBAHN_OFFER}; server_no_context_takeover", False),
    (f"{AUTOBAHN_OFFER}; server_max_window_bits=9", False),
    (f"{AUTOBAHN_OFFER}; server_max_window_bits=15", False),
    (f"{AUTOBAHN_OFFER}; server_no_context_takeover; server_max_window_bits=9", False),
    (f"{AUTOBAHN_OFFER}; server_no_context_takeover; server_max_window_bits=15", False),
    (f"{AUTOBAHN_OFFER}; server_no_context_takeover; server_max_window_bits=9, "
     f"{AUTOBAHN_OFFER}; server_no_context_takeover, {AUTOBAHN_OFFER}", True),
    ("permessage-deflate", True),
    (PLAIN_OFFER, True),
    ("permessage-deflate; client_max_window_bits=9", True),
    ("permessage-deflate; server_max_window_bits=10", False),
    ("permessage-deflate; server_max_window_bits=11", False),
    ("permessage-deflate; server_max_window_bits=12", False),
    ("permessage-deflate; server_max_window_bits=13", False),
    ("permessage-deflate; server_max_window_bits=14", False),
    ("permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
     "server_max_window_bits=10; client_max_window_bits=10", False),
    ("permessage-deflate; server_max_window_bits=10; client_max_window_bits, " + PLAIN_OFFER, True),
]


def deflate_echo_case(cid: str, title: str, offer: str, required: bool, corpus: int, size: int,
                      fragment: Optional[int], full_counts: bool) -> Case:
    """Compressed round trips of `count` slices of a corpus (12.x, 13.x)."""
    count = 1000 if full_counts else max(10, min(1000, DEFLATE_BUDGET // size))
    opcode = CORPORA[corpus].opcode

    def plan() -> Plan:
        payloads = corpus_messages(corpus, size, count)
        return Plan(echo(*(message(opcode, p) for p in payloads)),
                    run=partial(roundtrip_run, opcode, payloads, fragment=fragment),
                    offer=offer, deflate_required=required)

    frames = f" in frames of {size_text(fragment)}" if fragment else ""
    description = (f"{title}: {count} compressed {OPCODE_NAMES[opcode]} messages of {size_text(size)}"
                   f"{frames}, one at a time")
    return Case(cid, description, plan, compression=True)


def cases_deflate_echo(full_counts: bool) -> List[Case]:
    result = []
    for group, corpus in enumerate(CORPORA, 1):
        for i, (size, fragment) in enumerate(DEFLATE_SIZES, 1):
            result.append(deflate_echo_case(f"12.{group}.{i}", f"{corpus.title}, Autobahn's default offer",
                                            AUTOBAHN_OFFER, True, group - 1, size, fragment, full_counts))
    for group, (offer, required) in enumerate(DEFLATE_OFFERS, 1):
        for i, (size, fragment) in enumerate(DEFLATE_SIZES, 1):
            result.append(deflate_echo_case(f"13.{group}.{i}", f"JSON records, offer {offer!r}",
                                            offer, required, 0, size, fragment, full_counts))
    return result


# ---- category 14 (ours): permessage-deflate robustness --------------------

def deflate_case(cid: str, description: str, expect: Expect, *steps: Step, offer: str = PLAIN_OFFER,
                 required: bool = True) -> Case:
    plan = Plan(expect, tuple(steps), offer=offer, deflate_required=required)
    return Case(cid, description, lambda: plan, compression=True)


def deflate_run_case(cid: str, description: str, expect: Expect, run: Callable[[Session], None],
                     offer: str = PLAIN_OFFER, required: bool = True) -> Case:
    plan = Plan(expect, run=run, offer=offer, deflate_required=required)
    return Case(cid, description, lambda: plan, compression=True)


def raw_deflate(payload: bytes, zdict: Optional[bytes] = None, flush_tail: bool = False) -> bytes:
    """`payload` compressed on its own (its matches stay within any window for
    the short payloads used here); flush_tail keeps the final 00 00 ff ff."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY, zdict) if zdict \
        else zlib.compressobj(9, zlib.DEFLATED, -15)
    data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return data if flush_tail else data[:-len(DEFLATE_TAIL)]


def compressed_zeros(count: int) -> bytes:
    """`count` zero octets compressed at deflate's best ratio (about 1:1000),
    with run-length matches only, which fit every window."""
    compressor, chunk, parts = make_compressor(8, level=9), bytes(MIB), []
    for start in range(0, count, MIB):
        parts.append(compressor.compress(chunk[:min(MIB, count - start)]))
    return b"".join(parts) + compressor.flush(zlib.Z_SYNC_FLUSH)[:-len(DEFLATE_TAIL)]


def echo_then_run(first: Step, then: Sequence[Step], s: Session) -> None:
    """Send `first`, wait for its echo, then send `then`."""
    s.play([first])
    if s.wait_until(lambda: s.events or s.closing, s.opts.timeout) and not s.closing:
        s.play(then)


def bomb_plan(size: int) -> Plan:
    """One frame of compressed zeros (about 1 KiB per MiB inflated)."""
    return Plan(fail(CLOSE_MESSAGE_TOO_BIG), (Frame(OP_BINARY, compressed_zeros(size), rsv=RSV1),),
                offer=PLAIN_OFFER, deflate_required=True)


def bomb_stream_run(limit: int, s: Session) -> None:
    """A compressed message of zeros that never ends: frames of compressed data
    until 4x `limit` octets were sent inflated, or the server failed the
    connection. A server that inflates only complete messages never sees it end."""
    compressor, chunk = make_compressor(8, level=9), bytes(min(MIB, max(4 * KIB, limit // 16)))
    opcode, rsv, frames, inflated, sent = OP_BINARY, RSV1, 0, 0, 0
    while inflated < 4 * limit and not s.closing and not s.write_error:
        data = compressor.compress(chunk) + compressor.flush(zlib.Z_SYNC_FLUSH)
        s.send_frame(Frame(opcode, data, fin=False, rsv=rsv, sync=True))
        opcode, rsv, frames, inflated, sent = OP_CONT, 0, frames + 1, inflated + len(chunk), sent + len(data)
    s.notes.append(f"sent {frames} frames, {sent} octets inflating to {inflated}, "
                   f"{'then the server was closing' if s.closing else 'then stopped'}")


def shared_window_run(s: Session) -> None:
    """RFC 7692 7.2.3.2: the second "Hello" is a back-reference into the first
    message, unless the handshake ruled out context takeover for us."""
    first, second = bytes.fromhex("f248cdc9c90700"), bytes.fromhex("f200110000")
    s.send_frame(Frame(OP_TEXT, first, rsv=RSV1))
    s.send_frame(Frame(OP_TEXT, first if s.agreement.client_no_context_takeover else second, rsv=RSV1))


def cases_deflate_robustness(max_message_size: int) -> List[Case]:
    hello = b"Hello, world! " * 40
    hello_blocks = raw_deflate(hello, flush_tail=True)
    reserved_block = b"\x06\x00\x00\x00"                  # BFINAL 0, BTYPE 11: reserved
    bad_stored_block = b"\x00\x05\x00\x00\x00Hello"       # stored block whose NLEN is not ~LEN
    dictionary = b"The quick brown fox jumps over the lazy dog"
    too_far_back = raw_deflate(b"the lazy dog jumps over the quick brown fox", zdict=dictionary)
    invalid_utf8 = KOSME + bytes.fromhex("eda080") + b"edited"
    fail_1007, fail_1002 = fail(CLOSE_INVALID_PAYLOAD), fail(CLOSE_PROTOCOL_ERROR)
    result = [
        deflate_case("14.1.1", "Compressed text message using the reserved block type 3", fail_1007,
                     Frame(OP_TEXT, reserved_block, rsv=RSV1)),
        deflate_case("14.1.2", "Compressed binary message using the reserved block type 3", fail_1007,
                     Frame(OP_BINARY, reserved_block, rsv=RSV1)),
        deflate_case("14.1.3", "Compressed text message: stored block whose LEN and NLEN disagree", fail_1007,
                     Frame(OP_TEXT, bad_stored_block, rsv=RSV1)),
        deflate_case("14.1.4", "Compressed text message referring to data before its start "
                     "(distance too far back)", fail_1007, Frame(OP_TEXT, too_far_back, rsv=RSV1)),
        deflate_run_case("14.1.5", "Valid compressed text message, echoed; then a corrupt one",
                         fail(CLOSE_INVALID_PAYLOAD, text(hello)),
                         partial(echo_then_run, Message(OP_TEXT, hello),
                                 [Frame(OP_TEXT, bad_stored_block, rsv=RSV1)])),
        deflate_case("14.1.6", "Compressed text message in 2 fragments: the first valid, the second corrupt",
                     fail_1007, Frame(OP_TEXT, hello_blocks, fin=False, rsv=RSV1),
                     Frame(OP_CONT, bad_stored_block)),
        deflate_case("14.1.7", "Compressed text message that inflates to invalid UTF-8", fail_1007,
                     Message(OP_TEXT, invalid_utf8)),
    ]
    bomb_size = 2 * max_message_size + 1
    result += [
        Case("14.2.1", f"Compressed binary message of one frame inflating to {size_text(bomb_size)} "
             f"(2x --max-message-size)", partial(bomb_plan, bomb_size), compression=True),
        deflate_run_case("14.2.2", "Compressed binary message that never ends, frames of compressed zeros "
                         f"up to {size_text(4 * max_message_size)} inflated (4x --max-message-size)",
                         fail(CLOSE_MESSAGE_TOO_BIG), partial(bomb_stream_run, max_message_size)),
    ]
    compressed_hello = raw_deflate(HELLO)
    result += [
        deflate_case("14.3.1", "Compressed text message in 2 fragments, RSV1 on the continuation frame too",
                     fail_1002, Frame(OP_TEXT, compressed_hello[:4], fin=False, rsv=RSV1),
                     Frame(OP_CONT, compressed_hello[4:], rsv=RSV1)),
        deflate_case("14.3.2", "Uncompressed text message in 2 fragments, RSV1 on the continuation frame",
                     fail_1002, Frame(OP_TEXT, b"fragment1", fin=False),
                     Frame(OP_CONT, b"fragment2", rsv=RSV1)),
        deflate_case("14.3.3", "Ping with RSV1", fail_1002, Frame(OP_PING, HELLO, rsv=RSV1)),
        deflate_case("14.3.4", "Pong with RSV1", fail_1002, Frame(OP_PONG, HELLO, rsv=RSV1)),
        deflate_case("14.3.5", "Close with RSV1", fail_1002,
                     Frame(OP_CLOSE, close_payload(CLOSE_NORMAL), rsv=RSV1)),
        deflate_case("14.3.6", "Compressed text message with RSV1 and RSV2", fail_1002,
                     Frame(OP_TEXT, compressed_hello, rsv=RSV1 | RSV2)),
        deflate_case("14.3.7", "Text message with RSV3", fail_1002, Frame(OP_TEXT, HELLO, rsv=RSV3)),
    ]
    rfc_hello = bytes.fromhex("f248cdc9c90700")
    json_parts = corpus_messages(0, 2 * KIB, 2)
    pinged = raw_deflate(hello)
    result += [
        deflate_case("14.4.1", "RFC 7692 7.2.3.1: \"Hello\" in one compressed block", echo(text(b"Hello")),
                     Frame(OP_TEXT, rfc_hello, rsv=RSV1)),
        deflate_case("14.4.2", "RFC 7692 7.2.3.1: \"Hello\" in one compressed block, in 2 fragments",
                     echo(text(b"Hello")), Frame(OP_TEXT, rfc_hello[:3], fin=False, rsv=RSV1),
                     Frame(OP_CONT, rfc_hello[3:])),
        deflate_run_case("14.4.3", "RFC 7692 7.2.3.2: \"Hello\" twice, the second referring into the first "
                         "(context takeover)", echo(text(b"Hello"), text(b"Hello")), shared_window_run),
        deflate_case("14.4.4", "RFC 7692 7.2.3.3: \"Hello\" in a stored (uncompressed) block",
                     echo(text(b"Hello")), Frame(OP_TEXT, bytes.fromhex("000500faff48656c6c6f00"), rsv=RSV1)),
        deflate_case("14.4.5", "RFC 7692 7.2.3.4: \"Hello\" in a block with BFINAL set, then an empty "
                     "block header", echo(text(b"Hello")),
                     Frame(OP_TEXT, bytes.fromhex("f348cdc9c9070000"), rsv=RSV1)),
        deflate_case("14.4.6", "RFC 7692 7.2.3.5: \"Hello\" in two blocks", echo(text(b"Hello")),
                     Frame(OP_TEXT, bytes.fromhex("f24805000000ffffcac9c90700"), rsv=RSV1)),
        deflate_case("14.4.7", "RFC 7692 7.2.3.6: \"Hello\" flushed in a first fragment, then an empty block "
                     "in the last", echo(text(b"Hello")),
                     Frame(OP_TEXT, rfc_hello + DEFLATE_TAIL, fin=False, rsv=RSV1), Frame(OP_CONT, b"\x00")),
        deflate_case("14.4.8", "Empty compressed text message, payload 0x00", echo(text(b"")),
                     Frame(OP_TEXT, b"\x00", rsv=RSV1)),
        deflate_case("14.4.9", "Empty compressed binary message, empty payload", echo(binary(b"")),
                     Frame(OP_BINARY, b"", rsv=RSV1)),
        deflate_case("14.4.10", "Uncompressed text message (RSV1 clear) on a compressed connection",
                     echo(text(HELLO)), Message(OP_TEXT, HELLO, compress=False)),
        deflate_case("14.4.11", "Compressed, uncompressed, then compressed again the first text "
                     "(context takeover across an uncompressed message)",
                     echo(*(text(p) for p in (json_parts[0], json_parts[1], json_parts[0]))),
                     Message(OP_TEXT, json_parts[0]), Message(OP_TEXT, json_parts[1], compress=False),
                     Message(OP_TEXT, json_parts[0])),
        deflate_case("14.4.12", "Compressed text message in 3 fragments with a ping after the first",
                     echo(pong(b"ping payload"), text(hello)),
                     Frame(OP_TEXT, pinged[:10], fin=False, rsv=RSV1), Frame(OP_PING, b"ping payload"),
                     Frame(OP_CONT, pinged[10:20], fin=False), Frame(OP_CONT, pinged[20:])),
    ]
    # Malformed offers the server must decline (RFC 7692 5), never failing the
    # handshake; then a malformed offer before a valid one, and valid but unusual offers.
    malformed = ["server_max_window_bits=99", "server_max_window_bits=7", "server_max_window_bits",
                 "server_max_window_bits=010", "client_max_window_bits=16", "server_no_context_takeover=1",
                 "x_wsl_unknown_parameter", "client_max_window_bits; client_max_window_bits"]
    offers = [(f"permessage-deflate; {params}", False, "malformed: must be declined") for params in malformed]
    offers += [
        ("permessage-deflate; server_max_window_bits=99, " + PLAIN_OFFER, True,
         "the first is malformed, the second must be accepted"),
        ('permessage-deflate; client_max_window_bits="10"', True, "a quoted value: must be accepted"),
        ("permessage-deflate ;\tclient_max_window_bits ,permessage-deflate", True,
         "spaces and a tab around separators: must be accepted"),
        ("x-wsl-unknown-extension; x=1, permessage-deflate", True,
         "an unknown extension first: permessage-deflate must be accepted"),
        ("permessage-deflate, permessage-deflate", True, "offered twice: accepted once"),
        ("permessage-deflate; server_max_window_bits=8", False, "accepted with window 8 or declined"),
        ("permessage-deflate; client_max_window_bits=8", True, "must be accepted"),
    ]
    payloads = corpus_messages(0, 4 * KIB, 3)
    expect = echo(*(text(p) for p in payloads))
    for i, (offer, required, what) in enumerate(offers, 1):
        result.append(deflate_run_case(f"14.5.{i}", f"Offer {offer!r} ({what}), then 3 text messages",
                                       expect, partial(roundtrip_run, OP_TEXT, payloads), offer, required))
    return result


def all_cases(full_counts: bool = False, max_message_size: int = 64 * MIB) -> List[Case]:
    return (cases_framing() + cases_ping_pong() + cases_reserved_bits() + cases_opcodes() +
            cases_fragmentation() + cases_utf8() + cases_close() + cases_limits() + cases_misc() +
            cases_deflate_echo(full_counts) + cases_deflate_robustness(max_message_size))


# --------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------

@dataclass
class Result:
    case: Case
    passed: bool
    reason: str
    seconds: float
    details: List[str] = field(default_factory=list)


def run_case(case_: Case, opts: Options) -> Result:
    started = time.monotonic()
    plan = case_.plan()
    session = Session(opts, plan.offer)
    try:
        try:
            session.open()
        except (HandshakeError, OSError) as exc:
            return Result(case_, False, f"opening handshake failed: {exc}", time.monotonic() - started)
        if plan.deflate_required and session.agreement is None:
            session.send_close(CLOSE_NORMAL)
            session.finish(closing([CLOSE_NORMAL], clean=True))
            return Result(case_, False, f"server declined permessage-deflate (offer: {plan.offer!r}); "
                          "run 12.x-14.x against a server with compression", time.monotonic() - started)
        if plan.run:
            plan.run(session)
        else:
            session.play(plan.steps)
        session.finish(plan.expect)
    except OSError as exc:
        return Result(case_, False, f"socket error: {exc}", time.monotonic() - started)
    finally:
        session.close()
    passed, reason = judge(plan.expect, session, opts)
    return Result(case_, passed, reason, time.monotonic() - started, trace(case_, plan, session))


def trace(case_: Case, plan: Plan, s: Session) -> List[str]:
    expect = plan.expect
    sent_close = "none" if s.close_sent is None else (
        f"{describe_close_payload(s.close_sent)}, {'first' if s.closed_by_me else 'in reply'}")
    lines = [
        case_.description,
        f"expected: {' or '.join(describe_events(list(alt)) for alt in expect.events)}, "
        f"{'we close' if expect.closed_by_me else 'server fails the connection'}, "
        f"codes {codes_text(expect.codes)}{', clean' if expect.clean else ''}",
        f"received: {describe_events(s.events)}",
        f"close received: {close_text(s) if s.close_received else 'none'}; our close: {sent_close}",
        f"TCP: {'reset' if s.peer_reset else 'closed' if s.peer_gone else 'still open'} by server"
        + (f"; write stopped: {s.write_error}" if s.write_error else ""),
    ]
    if plan.offer is not None:
        lines.insert(1, f"offer: {plan.offer!r}; response: "
                        f"{repr(str(s.agreement.response)) if s.agreement else 'declined'}")
    return lines + s.notes


def select_cases(cases: List[Case], include: Optional[str], exclude: Optional[str],
                 deflate: bool = False) -> List[Case]:
    """--cases selects by id; without it, every case except the compression
    cases (12.x-14.x), which --deflate adds."""
    def patterns(text_):
        return [p.strip() for p in (text_ or "").split(",") if p.strip()]

    def matches(cid, pats):
        return any(fnmatch.fnmatchcase(cid, p) for p in pats)

    include_pats, exclude_pats = patterns(include), patterns(exclude)
    unknown = [p for p in include_pats if not any(matches(c.id, [p]) for c in cases)]
    if unknown:
        raise ValueError(f"no case matches {', '.join(unknown)}")
    return [c for c in cases
            if (matches(c.id, include_pats) if include_pats else deflate or not c.compression)
            and not matches(c.id, exclude_pats)]


def parse_size(text_: str) -> int:
    """A size in octets: a whole number with an optional K, M or G suffix (x1024)."""
    found = re.fullmatch(r"(\d+)\s*([kmg]?)(?:i?b)?", text_.strip(), re.IGNORECASE)
    if not found:
        raise argparse.ArgumentTypeError(f"not a size: {text_!r} (use e.g. 65536, 64K or 1M)")
    return int(found.group(1)) << {"": 0, "k": 10, "m": 20, "g": 30}[found.group(2).lower()]


def parse_url(url: str) -> Tuple[str, int, str]:
    parts = urlsplit(url)
    if parts.scheme != "ws" or not parts.hostname:
        raise ValueError(f"expected a ws://host:port/path URL, got {url!r}")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.hostname, parts.port or 80, path


def probe(opts: Options) -> Optional[str]:
    """Return an error message if the server cannot be reached at all."""
    session = Session(opts)
    try:
        session.open()
        session.send_close(CLOSE_NORMAL)
        session.finish(closing([CLOSE_NORMAL], clean=True))
    except (HandshakeError, OSError) as exc:
        if session.established or isinstance(exc, HandshakeError):
            return None  # reachable; the cases will report the handshake problem
        return str(exc)
    finally:
        session.close()
    return None


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Strict RFC 6455 and RFC 7692 conformance suite for WebSocket echo servers "
                    "(after Autobahn|TestSuite cases 1-10, 12 and 13).")
    parser.add_argument("url", nargs="?", help="server URL, e.g. ws://127.0.0.1:9001/")
    parser.add_argument("--cases", help="comma-separated case ids or globs, e.g. 6.4.*,7.*")
    parser.add_argument("--exclude", help="comma-separated case ids or globs to skip")
    parser.add_argument("--jobs", type=int, default=4, help="cases run concurrently (default 4)")
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="seconds the server may stay silent while we wait for it (default 5)")
    parser.add_argument("--close-timeout", type=float, default=1.0,
                        help="seconds the server gets to close TCP after the closing handshake (default 1)")
    parser.add_argument("--pause", type=float, default=0.5,
                        help="length of the deliberate pauses in 5.19, 5.20 and 6.4.x (default 0.5)")
    parser.add_argument("--require-close-code", action="store_true",
                        help="also fail when the server closes without a close code "
                             "(Autobahn accepts a missing code)")
    parser.add_argument("--deflate", action="store_true",
                        help="also run the permessage-deflate cases 12.x-14.x (the server must support "
                             "compression); without --cases only 1.x-10.x run")
    parser.add_argument("--full-counts", action="store_true",
                        help="send 1000 messages in every 12.x/13.x case, as Autobahn does (slow); "
                             f"default: about {DEFLATE_BUDGET // KIB} KiB per case, 10 to 1000 messages")
    parser.add_argument("--max-message-size", type=parse_size, default=64 * MIB, metavar="SIZE",
                        help="the server's message size limit, for the decompression bombs 14.2.x "
                             "(default 64M)")
    parser.add_argument("--list", action="store_true", help="list the selected cases and exit")
    parser.add_argument("--verbose", "-v", action="store_true", help="print details for every case")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.timeout <= 0 or args.close_timeout <= 0 or not 0 < args.pause <= 5:
        parser.error("--jobs must be >= 1, timeouts > 0 and 0 < --pause <= 5")
    if not KIB <= args.max_message_size <= 1 << 30:
        parser.error("--max-message-size must be between 1K and 1G")
    if not args.url and not args.list:
        parser.error("the server URL is required")
    return args


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    try:
        cases = select_cases(all_cases(args.full_counts, args.max_message_size), args.cases, args.exclude,
                             args.deflate)
        host, port, path = parse_url(args.url) if args.url else ("", 0, "/")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not cases:
        print("error: no cases selected", file=sys.stderr)
        return 2
    if args.list:
        for c in cases:
            print(f"{c.id:<8}  {c.description}")
        return 0
    opts = Options(host, port, path, timeout=args.timeout, close_timeout=args.close_timeout,
                   pause=args.pause, require_close_code=args.require_close_code)
    problem = probe(opts)
    if problem:
        print(f"error: cannot reach {args.url}: {problem}", file=sys.stderr)
        return 2
    passed = 0
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for result in pool.map(lambda c: run_case(c, opts), cases):
            passed += result.passed
            print(f"{result.case.id:<8}  {'PASS' if result.passed else 'FAIL'}  {result.reason}", flush=True)
            if args.verbose:
                for line in result.details + [f"time: {result.seconds:.2f} s"]:
                    print(f"          {line}")
    print(f"passed {passed}/{len(cases)}")
    return 0 if passed == len(cases) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
