"""Shared helpers for the integration tests (Python standard library only).

- `Server`: runs `wsl <subcommand> --port 0 ...`, reads the one `listening on ws://HOST:PORT/` line
  from stderr (with a timeout) and always kills and reaps the process at the end.
- `run_wsl`: runs a short-lived `wsl` command (usage errors, --version) with a timeout.
- `RawClient`: a raw RFC 6455 client on a plain socket, with its own masked frame builder and frame
  reader, for the tests that must send what a well-behaved library never would.
- `python3 harness.py with-server [WSL OPTIONS] -- COMMAND...`: runs COMMAND (with `{url}` replaced)
  against a `wsl echo` started with WSL OPTIONS; used to drive node and the conformance suite.

The `wsl` binary is taken from $WSL_BIN (set by ctest), else build/release/cli/wsl.
Every wait has a timeout; nothing synchronises by sleeping.
"""

from __future__ import annotations

import atexit
import base64
import ctypes
import hashlib
import os
import queue
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
WSL = os.environ.get("WSL_BIN") or os.path.join(TOP, "build", "release", "cli", "wsl")

# Sanitizer builds are several times slower; ctest sets WSL_TIME_SCALE for them.
TIME_SCALE = float(os.environ.get("WSL_TIME_SCALE", "1"))
TIMEOUT = 10.0 * TIME_SCALE  # default bound of any single wait

LISTENING = re.compile(r"^listening on ws://(?P<host>[^ ]+):(?P<port>\d+)/$")
UNIX_LISTENING = re.compile(r"^listening on ws\+unix:(?P<path>.+)$")
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------

_prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here: the child only calls it


def _die_with_parent() -> None:
    """In the child, before exec: get SIGKILL if the test process dies (even by SIGKILL from ctest)."""
    PR_SET_PDEATHSIG = 1
    _prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))


_live: List[subprocess.Popen] = []


@atexit.register
def _kill_leftovers() -> None:
    for proc in _live:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=TIMEOUT)


class _LineCollector(threading.Thread):
    """Drains a pipe so the child never blocks on it; hands out lines through a queue."""

    def __init__(self, pipe) -> None:
        super().__init__(daemon=True)
        self.pipe = pipe
        self.lines: "queue.Queue[Optional[str]]" = queue.Queue()
        self.all: List[str] = []
        self.start()

    def run(self) -> None:
        for raw in iter(self.pipe.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.all.append(line)
            self.lines.put(line)
        self.lines.put(None)  # EOF

    def next_line(self, deadline: float) -> Optional[str]:
        """The next line, None at EOF; raises TimeoutError at the deadline."""
        try:
            return self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError("no line before the deadline") from None

    def wait_match(self, pattern: str, timeout: float = TIMEOUT) -> str:
        """The next line (after those already taken) that matches the regular expression."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.next_line(deadline)
            if line is None:
                raise AssertionError(f"the output ended without a line matching {pattern!r}:\n{self.text()}")
            if re.search(pattern, line):
                return line

    def text(self) -> str:
        return "\n".join(self.all)


class DidNotStart(AssertionError):
    """The server exited (or hung) instead of printing its listening line."""

    def __init__(self, server: "Server", status: Optional[int], problem: str) -> None:
        self.status = status  # the exit status, None if it had to be killed
        self.stderr = server.stderr.text()
        super().__init__(f"{' '.join(server.argv)}: {problem} (exit status {status}); stderr:\n{self.stderr}")


class Server:
    """A `wsl` server on 127.0.0.1 and a free port, for a `with` block.

        with Server("--max-message-size", "1000") as server:
            client = RawClient(server.port)
    """

    def __init__(self, *options: str, subcommand: str = "echo", port: int = 0,
                 env: Optional[Dict[str, str]] = None, ready_timeout: float = TIMEOUT,
                 stdin_pipe: bool = False, unix: Optional[str] = None) -> None:
        """unix: listen on this Unix-domain socket (--unix-socket) instead; its path as printed is
        then `unix_path`, and `port` and `url` stay unset."""
        where = ["--unix-socket", unix] if unix else ["--host", "127.0.0.1", "--port", str(port)]
        self.argv = [WSL, subcommand, *where, *options]
        self.unix = unix
        self.unix_path = ""
        self.env = env
        self.stdin_pipe = stdin_pipe  # stdin a pipe for write_stdin() (`wsl serve --pipe`), else /dev/null
        self.ready_timeout = ready_timeout
        self.proc: Optional[subprocess.Popen] = None
        self.port = 0
        self.url = ""

    def __enter__(self) -> "Server":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.kill()

    def start(self) -> None:
        env = dict(os.environ, **(self.env or {}))
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE if self.stdin_pipe else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                     preexec_fn=_die_with_parent)
        _live.append(self.proc)
        self.stdout = _LineCollector(self.proc.stdout)
        self.stderr = _LineCollector(self.proc.stderr)
        deadline = time.monotonic() + self.ready_timeout
        try:
            line = self.stderr.next_line(deadline)
        except TimeoutError:
            self.kill()
            raise DidNotStart(self, None, f"no 'listening on' line within {self.ready_timeout:.0f} s") from None
        match = (UNIX_LISTENING if self.unix else LISTENING).match(line or "")
        if not match:
            try:  # it is failing: let it finish saying why
                status = self.proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                status = None
            self.kill()
            raise DidNotStart(self, status, f"first stderr line {line!r} is not 'listening on ws://HOST:PORT/'")
        if self.unix:
            self.unix_path = match["path"]
            return
        self.port = int(match["port"])
        self.url = f"ws://127.0.0.1:{self.port}/"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def write_stdin(self, data: bytes, end: bool = False) -> None:
        """Writes to wsl's stdin (stdin_pipe=True); `end` closes it afterwards."""
        self.proc.stdin.write(data)
        self.proc.stdin.flush()
        if end:
            self.proc.stdin.close()

    def wait(self, timeout: float = TIMEOUT) -> int:
        """The exit status (negative for a signal), once everything it wrote has been read (the
        readers may lag behind the exit on a busy machine); AssertionError if still running at the
        timeout."""
        try:
            status = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"wsl (pid {self.pid}) still running after {timeout:.1f} s") from None
        for collector in (self.stderr, self.stdout):
            collector.join(TIMEOUT)
        return status

    def wait_stderr(self, pattern: str, timeout: float = TIMEOUT) -> str:
        """The next stderr line (after those already taken) that matches the regular expression."""
        return self.stderr.wait_match(pattern, timeout)

    def kill(self) -> Optional[int]:
        """Kills the server if it still runs, reaps it and returns its exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.kill()
        status = self.proc.wait(timeout=TIMEOUT)
        if self.proc.stdin and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        for collector in (self.stderr, self.stdout):
            collector.join(TIMEOUT)
            collector.pipe.close()
        return status

    def proc_status(self, field_name: str) -> int:
        """A kB figure from /proc/PID/status, e.g. VmHWM (peak RSS) or VmRSS."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
        raise KeyError(field_name)

    def assert_alive(self) -> None:
        if not self.running():
            raise AssertionError(f"wsl exited with status {self.proc.returncode}; stderr:\n{self.stderr.text()}")


def run_wsl(*args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    """Runs `wsl ARGS` to completion (stdin closed), capturing text output."""
    return subprocess.run([WSL, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout, preexec_fn=_die_with_parent)


# --------------------------------------------------------------------------------------------
# Raw RFC 6455 client
# --------------------------------------------------------------------------------------------

def mask(data: bytes, key: bytes) -> bytes:
    """XORs data with the 4-octet masking key."""
    if not data:
        return b""
    n = len(data)
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")).to_bytes(n, "little")


def frame_header(opcode: int, length: int, fin: bool = True, rsv: int = 0,
                 key: Optional[bytes] = None) -> bytes:
    """The header of a frame; `key` None means unmasked. `rsv` is the 3-bit RSV field (4 = RSV1)."""
    first = (0x80 if fin else 0) | (rsv & 7) << 4 | opcode & 0xF
    mask_bit = 0x80 if key is not None else 0
    if length < 126:
        head = struct.pack("!BB", first, mask_bit | length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, length)
    return head + (key or b"")


def build_frame(opcode: int, payload: bytes = b"", fin: bool = True, rsv: int = 0, masked: bool = True) -> bytes:
    """A complete client frame, masked with a fresh random key unless masked=False."""
    key = os.urandom(4) if masked else None
    return frame_header(opcode, len(payload), fin, rsv, key) + (mask(payload, key) if masked else payload)


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack("!H", code) + reason.encode()


@dataclass
class Frame:
    fin: bool
    rsv: int
    opcode: int
    masked: bool
    payload: bytes

    @property
    def close_code(self) -> Optional[int]:
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None

    def __repr__(self) -> str:
        shown = self.payload if len(self.payload) <= 40 else self.payload[:40] + b"..."
        return f"Frame(op={self.opcode:#x}, fin={self.fin}, rsv={self.rsv}, len={len(self.payload)}, {shown!r})"


@dataclass
class HttpResponse:
    status: int
    reason: str
    headers: Dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""

    def header(self, name: str) -> Optional[str]:
        return self.headers.get(name.lower())


class PeerClosed(Exception):
    """The server closed TCP (EOF or reset)."""


def handshake_request(port: int, key: Optional[str] = None, version: str = "13", path: str = "/",
                      extra: Sequence[str] = ()) -> bytes:
    key = key if key is not None else base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {key}", f"Sec-WebSocket-Version: {version}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class RawClient:
    """One TCP connection to the server (or one to a Unix-domain socket, `unix`); reads are buffered
    and every read has a deadline."""

    def __init__(self, port: int, timeout: float = TIMEOUT, ssl_context=None, unix: Optional[str] = None,
                 source: Optional[str] = None) -> None:
        """source: the local address to connect from (another 127.x.y.z: another client host)."""
        self.timeout = timeout
        if unix:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.settimeout(timeout)
            self.sock.connect(unix)
        else:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                                 source_address=(source, 0) if source else None)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ssl_context is not None:  # wss://: the same client over TLS
            self.sock = ssl_context.wrap_socket(self.sock, server_hostname="127.0.0.1")
        self.port = port
        self.buffer = bytearray()

    def __enter__(self) -> "RawClient":
        return self

    def __exit__(self, *exc) -> None:
        self.sock.close()

    # -- bytes -------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the server sent nothing before the deadline")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(1 << 20)
        except socket.timeout:
            raise TimeoutError("the server sent nothing before the deadline") from None
        except (ConnectionResetError, BrokenPipeError) as e:
            raise PeerClosed(str(e)) from None
        if not data:
            raise PeerClosed("EOF")
        self.buffer += data

    def _take(self, n: int, deadline: float) -> bytes:
        while len(self.buffer) < n:
            self._fill(deadline)
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    def wait_eof(self, timeout: Optional[float] = None) -> bytes:
        """Reads until the server closes TCP; returns what arrived meanwhile. TimeoutError if it does not."""
        timeout = timeout if timeout is not None else self.timeout
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._fill(deadline)
        except TimeoutError:
            raise TimeoutError(f"the server did not close the connection within {timeout:.1f} s") from None
        except PeerClosed:
            rest = bytes(self.buffer)
            self.buffer.clear()
            return rest

    def expect_silence(self, seconds: float) -> None:
        """Asserts that the server sends nothing and keeps the connection open for `seconds`."""
        try:
            self._fill(time.monotonic() + seconds)
        except TimeoutError:
            return
        except PeerClosed:
            raise AssertionError("the server closed the connection") from None
        raise AssertionError(f"unexpected data from the server: {bytes(self.buffer[:60])!r}")

    # -- HTTP --------------------------------------------------------------------------------

    def read_http_response(self, timeout: Optional[float] = None) -> HttpResponse:
        """Reads a response head and its body (by Content-Length, or up to EOF without one)."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while b"\r\n\r\n" not in self.buffer:
            self._fill(deadline)
        end = self.buffer.index(b"\r\n\r\n")
        head = bytes(self.buffer[:end]).decode("latin-1")
        del self.buffer[:end + 4]
        status_line, *header_lines = head.split("\r\n")
        match = re.match(r"^HTTP/1\.1 (\d{3}) ?(.*)$", status_line)
        if not match:
            raise AssertionError(f"not an HTTP/1.1 status line: {status_line!r}")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        response = HttpResponse(int(match[1]), match[2], headers)
        if "content-length" in headers:
            response.body = self._take(int(headers["content-length"]), deadline)
        elif int(match[1]) != 101:
            response.body = self.wait_eof(max(0.0, deadline - time.monotonic()))
        return response

    def handshake(self, **request) -> HttpResponse:
        """Sends an opening handshake (see handshake_request) and checks a 101 with the right accept."""
        raw = handshake_request(self.port, **request)
        key = re.search(rb"Sec-WebSocket-Key: ([^\r]*)", raw)[1]
        self.send(raw)
        response = self.read_http_response()
        if response.status != 101:
            raise AssertionError(f"expected 101, got {response.status} {response.reason}: {response.body!r}")
        expected = base64.b64encode(hashlib.sha1(key + GUID.encode()).digest()).decode()
        if response.header("Sec-WebSocket-Accept") != expected:
            raise AssertionError(f"bad Sec-WebSocket-Accept {response.header('Sec-WebSocket-Accept')!r}")
        return response

    # -- frames ------------------------------------------------------------------------------

    def send_frame(self, opcode: int, payload: bytes = b"", fin: bool = True, rsv: int = 0,
                   masked: bool = True) -> None:
        self.send(build_frame(opcode, payload, fin, rsv, masked))

    def recv_frame(self, timeout: Optional[float] = None) -> Frame:
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        b0, b1 = self._take(2, deadline)
        length = b1 & 0x7F
        if length == 126:
            length = struct.unpack("!H", self._take(2, deadline))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._take(8, deadline))[0]
        key = self._take(4, deadline) if b1 & 0x80 else None
        payload = self._take(length, deadline)
        if key:
            payload = mask(payload, key)
        return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, key is not None, payload)

    def recv_message(self, timeout: Optional[float] = None) -> Tuple[int, bytes]:
        """The next data message (opcode, payload), reassembled; pings are answered, pongs skipped."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        opcode, parts = None, []
        while True:
            frame = self.recv_frame(max(0.0, deadline - time.monotonic()))
            if frame.opcode == OP_PING:
                self.send_frame(OP_PONG, frame.payload)
                continue
            if frame.opcode == OP_PONG:
                continue
            if frame.opcode == OP_CLOSE:
                raise AssertionError(f"expected a message, got close {frame.close_code} {frame.payload[2:]!r}")
            if opcode is None:
                opcode = frame.opcode
            parts.append(frame.payload)
            if frame.fin:
                return opcode, b"".join(parts)

    def expect_close(self, timeout: Optional[float] = None) -> Frame:
        """Reads frames until the server's Close frame; fails on EOF or on a frame that ends a message.

        Pings, pongs and non-final fragments are skipped: a streaming echo relays the start of a
        message before its end has arrived, but must never complete a message that fails."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while True:
            try:
                frame = self.recv_frame(max(0.0, deadline - time.monotonic()))
            except PeerClosed:
                raise AssertionError("the server closed TCP without sending a Close frame") from None
            if frame.opcode == OP_CLOSE:
                return frame
            if frame.opcode in (OP_PING, OP_PONG) or not frame.fin:
                continue
            raise AssertionError(f"expected a Close frame, got {frame!r}")

    def close(self, code: int = 1000, reason: str = "") -> Frame:
        """Client-initiated closing handshake; returns the server's Close frame after TCP EOF."""
        self.send_frame(OP_CLOSE, close_payload(code, reason))
        reply = self.expect_close()
        self.wait_eof()
        return reply


def open_client(port: int, timeout: float = TIMEOUT, ssl_context=None) -> RawClient:
    client = RawClient(port, timeout, ssl_context)
    client.handshake()
    return client


def assert_echoes(port: int, payload: bytes = b"still serving") -> None:
    """A fresh client gets a text and a binary echo, then closes cleanly: the server is still serving."""
    with open_client(port) as client:
        client.send_frame(OP_TEXT, payload)
        client.send_frame(OP_BINARY, payload[::-1])
        got = [client.recv_message(), client.recv_message()]
        assert got == [(OP_TEXT, payload), (OP_BINARY, payload[::-1])], f"unexpected echoes {got!r}"
        reply = client.close(1000)
        assert reply.close_code == 1000, f"close reply {reply!r}"


# --------------------------------------------------------------------------------------------
# `harness.py with-server [WSL OPTIONS] -- COMMAND...`
# --------------------------------------------------------------------------------------------

def with_server_main(argv: Sequence[str]) -> int:
    """Starts `wsl echo WSL OPTIONS`, runs COMMAND with {url} and {port} substituted, checks that the
    server survived, stops it. The exit status is COMMAND's (1 if the server died; 124 on timeout)."""
    if "--" not in argv:
        print("usage: harness.py with-server [--timeout S] [WSL ECHO OPTIONS] -- COMMAND...", file=sys.stderr)
        return 64
    split = list(argv).index("--")
    options, command = list(argv[:split]), list(argv[split + 1:])
    timeout = 300.0
    if options[:1] == ["--timeout"]:
        timeout, options = float(options[1]) * TIME_SCALE, options[2:]
    with Server(*options) as server:
        print(f"harness: {' '.join(server.argv)} -> {server.url}", flush=True)
        command = [arg.replace("{url}", server.url).replace("{port}", str(server.port)) for arg in command]
        started = time.monotonic()
        try:
            status = subprocess.run(command, stdin=subprocess.DEVNULL, timeout=timeout,
                                    preexec_fn=_die_with_parent).returncode
        except subprocess.TimeoutExpired:
            print(f"harness: {command[0]} timed out after {timeout:.0f} s", file=sys.stderr)
            status = 124
        print(f"harness: {os.path.basename(command[0])} exited with {status} after "
              f"{time.monotonic() - started:.1f} s", flush=True)
        if not server.running():
            print(f"harness: wsl died during the run (status {server.proc.returncode}); stderr:\n"
                  f"{server.stderr.text()}", file=sys.stderr)
            return 1
    return status


if __name__ == "__main__":
    if sys.argv[1:2] == ["with-server"]:
        sys.exit(with_server_main(sys.argv[2:]))
    print(__doc__, file=sys.stderr)
    sys.exit(64)
