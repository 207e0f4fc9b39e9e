"""Helpers for the tests of the client subcommands (`wsl pipe`, `wsl latency`); standard library only.

- `Peer`: a server to connect to, for a `with` block: python3-websockets (peer_websockets.py), node
  `ws` (peer_ws.js) or `wsl echo`. It reads the `listening on ws://127.0.0.1:PORT/` line from stderr
  and collects the JSON events the test peers print on stdout (`wait_event`).
- `run_wsl`: runs `wsl ARGS` to completion with bytes on stdin, bounded in time.
- `Wsl`: a running `wsl` for tests that talk to it while it runs (stdin kept open, SIGINT).
- `pipe_round_trip`: `wsl pipe -v` sends a line to an echo server and gets it back.
- `unused_port`: a port nobody listens on; `make_certificate`: a self-signed one for 127.0.0.1.

$WSL_BIN is the binary (set by ctest; default build/release/cli/wsl), $WSL_TEST_NODE the node
interpreter, $NODE_PATH where `ws` lives, $WSL_TIME_SCALE stretches every bound (sanitizer builds).
Every wait has a deadline; nothing synchronises by sleeping.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Callable, List, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
WSL = os.environ.get("WSL_BIN") or os.path.join(TOP, "build", "release", "cli", "wsl")
NODE = os.environ.get("WSL_TEST_NODE") or "node"
NODE_PATH = os.environ.get("NODE_PATH") or os.path.join(TOP, ".deps", "node", "node_modules")
PYTHON = "/usr/bin/python3"  # the Debian interpreter, which has websockets 10.4

TIME_SCALE = float(os.environ.get("WSL_TIME_SCALE", "1"))
TIMEOUT = 10.0 * TIME_SCALE  # the bound of any single wait

LISTENING = re.compile(r"^listening on (?:(?P<scheme>wss?)://127\.0\.0\.1:(?P<port>\d+)/|ws\+unix:(?P<unix>.+))$")
PEERS = ("websockets", "ws", "wsl")

_prctl = ctypes.CDLL(None, use_errno=True).prctl


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the test process dies, even by SIGKILL from ctest."""
    _prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG


class _Output(threading.Thread):
    """Drains a pipe so that the child never blocks on it; waits for lines or byte counts."""

    def __init__(self, pipe) -> None:
        super().__init__(daemon=True)
        self.pipe = pipe
        self.buffer = bytearray()
        self.position = 0  # where next_line() goes on
        self.eof = False
        self.changed = threading.Condition()
        self.start()

    def run(self) -> None:
        fd = self.pipe.fileno()
        while True:
            data = os.read(fd, 1 << 16)
            with self.changed:
                if not data:
                    self.eof = True
                else:
                    self.buffer += data
                self.changed.notify_all()
            if not data:
                return

    def _wait(self, ready: Callable[[], bool], deadline: float, what: str) -> None:
        with self.changed:
            while not ready() and not self.eof:
                if not self.changed.wait(max(0.0, deadline - time.monotonic())) and time.monotonic() >= deadline:
                    raise TimeoutError(f"no {what} before the deadline; got {bytes(self.buffer[-200:])!r}")

    def next_line(self, deadline: float) -> Optional[bytes]:
        """The next line (with its newline), None at EOF; TimeoutError at the deadline."""
        self._wait(lambda: self.buffer.find(b"\n", self.position) >= 0, deadline, "line")
        with self.changed:
            end = self.buffer.find(b"\n", self.position)
            if end < 0:
                end = len(self.buffer) - 1
                if end < self.position:
                    return None
            line = bytes(self.buffer[self.position:end + 1])
            self.position = end + 1
            return line

    def wait_line(self, text: str, deadline: float) -> bool:
        """Reads on to a line that holds `text`: True, or False at EOF; TimeoutError at the deadline."""
        while True:
            line = self.next_line(deadline)
            if line is None:
                return False
            if text in line.decode(errors="replace"):
                return True

    def wait_size(self, size: int, deadline: float) -> bytes:
        """Everything once at least `size` bytes have come (or EOF); TimeoutError at the deadline."""
        self._wait(lambda: len(self.buffer) >= size, deadline, f"{size} bytes")
        return self.data()

    def data(self) -> bytes:
        with self.changed:
            return bytes(self.buffer)


class Peer:
    """A server for the client subcommands to connect to.

        with Peer("websockets", "script", "--send", '[{"text": "hi"}]', "--close-code", "4000") as peer:
            run_wsl("pipe", peer.url, ...)
            peer.wait_event("close")["code"]
    """

    def __init__(self, kind: str, mode: str = "echo", *options: str, unix: Optional[str] = None) -> None:
        """unix: listen on this Unix-domain socket instead of 127.0.0.1 (url is then ws+unix:PATH)."""
        where = ["--unix", unix] if unix else []
        if kind == "websockets":
            self.argv = [PYTHON, os.path.join(HERE, "peer_websockets.py"), mode, *where, *options]
        elif kind == "ws":
            self.argv = [NODE, os.path.join(HERE, "peer_ws.js"), mode, *where, *options]
        elif kind == "wsl":
            if mode != "echo":
                raise ValueError("wsl echo only echoes")
            where = ["--unix-socket", unix] if unix else ["--host", "127.0.0.1", "--port", "0"]
            self.argv = [WSL, "echo", *where, *options]  # options of wsl echo
        else:
            raise ValueError(kind)
        self.kind = kind
        self.events: List[dict] = []

    def __enter__(self) -> "Peer":
        env = dict(os.environ, NODE_PATH=NODE_PATH)
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env, preexec_fn=_die_with_parent)
        self.stdout = _Output(self.proc.stdout)
        self.stderr = _Output(self.proc.stderr)
        try:
            line = self.stderr.next_line(time.monotonic() + TIMEOUT)
        except TimeoutError:
            line = None
        match = LISTENING.match((line or b"").decode(errors="replace").rstrip("\n"))
        if not match:
            self.__exit__()
            raise AssertionError(f"{' '.join(self.argv)}: no 'listening on' line (got {line!r}); stderr:\n"
                                 f"{self.stderr.data().decode(errors='replace')}")
        if match["unix"]:
            self.port = 0
            self.unix = match["unix"]
            self.url = f"ws+unix:{self.unix}"
        else:
            self.port = int(match["port"])
            self.unix = None
            self.url = f"{match['scheme']}://127.0.0.1:{self.port}/"
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=TIMEOUT)
        for lines in (self.stdout, self.stderr):
            lines.join(TIMEOUT)
            lines.pipe.close()

    @property
    def records_events(self) -> bool:
        return self.kind != "wsl"

    def wait_event(self, name: str, where: Callable[[dict], bool] = lambda e: True,
                   timeout: float = TIMEOUT) -> dict:
        """The first event called `name` (among those seen and those to come) for which `where` holds."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for event in self.events[seen:]:
                if event["event"] == name and where(event):
                    return event
            seen = len(self.events)
            self._pull(deadline, f"a {name!r} event")

    def events_named(self, name: str, count: int, timeout: float = TIMEOUT) -> List[dict]:
        """The first `count` events called `name`."""
        deadline = time.monotonic() + timeout
        while True:
            got = [e for e in self.events if e["event"] == name]
            if len(got) >= count:
                return got[:count]
            self._pull(deadline, f"{count} {name!r} events")

    def messages(self, count: int, timeout: float = TIMEOUT) -> List[dict]:
        """The first `count` messages the peer received, as events."""
        return self.events_named("message", count, timeout)

    def messages_totalling(self, size: int, timeout: float = TIMEOUT) -> List[dict]:
        """The first messages the peer received, once their payloads add up to `size` bytes."""
        deadline = time.monotonic() + timeout
        while True:
            got = [e for e in self.events if e["event"] == "message"]
            if sum(len(e["hex"]) // 2 for e in got) >= size:
                return got
            self._pull(deadline, f"messages of {size} bytes in all")

    def _pull(self, deadline: float, what: str) -> None:
        try:
            line = self.stdout.next_line(deadline)
        except TimeoutError:
            raise AssertionError(f"no {what} before the deadline; events: {self.events}") from None
        if line is None:
            raise AssertionError(f"the peer exited before {what}; events: {self.events}")
        self.events.append(json.loads(line))


def run_wsl(*args: str, input: bytes = b"", timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    """Runs `wsl ARGS` to completion with `input` on stdin; AssertionError if it outlives `timeout`."""
    started = time.monotonic()
    try:
        done = subprocess.run([WSL, *args], input=input, capture_output=True, timeout=timeout,
                              preexec_fn=_die_with_parent)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"wsl {' '.join(args)} still running after {timeout:.1f} s; stderr:\n"
                             f"{(e.stderr or b'').decode(errors='replace')}") from None
    done.elapsed = time.monotonic() - started
    return done


class Wsl:
    """A running `wsl ARGS` with stdin kept open, for tests that act while it runs."""

    def __init__(self, *args: str, stdin=subprocess.PIPE) -> None:
        self.args = args
        self.proc = subprocess.Popen([WSL, *args], stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     preexec_fn=_die_with_parent)
        self.stdout = _Output(self.proc.stdout)
        self.stderr = _Output(self.proc.stderr)

    def __enter__(self) -> "Wsl":
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=TIMEOUT)
        for output in (self.stdout, self.stderr):
            output.join(TIMEOUT)
            output.pipe.close()
        if self.proc.stdin and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass

    def send(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def line(self, timeout: float = TIMEOUT) -> Optional[bytes]:
        return self.stdout.next_line(time.monotonic() + timeout)

    def output(self, size: int, timeout: float = TIMEOUT) -> bytes:
        """stdout so far, once it holds at least `size` bytes (or wsl ended)."""
        return self.stdout.wait_size(size, time.monotonic() + timeout)

    def end_input(self) -> None:
        self.proc.stdin.close()

    def stderr_until(self, text: str, timeout: float = TIMEOUT) -> str:
        """Waits for a stderr line containing `text`; returns stderr so far."""
        if not self.stderr.wait_line(text, time.monotonic() + timeout):
            raise AssertionError(f"wsl ended without printing {text!r}; stderr:\n{self.stderr_text()}")
        return self.stderr.data().decode(errors="replace")

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = TIMEOUT) -> int:
        """Its exit status, once it ended and everything it wrote has been read: stdout.data() after
        wait() is the whole output (the readers may lag behind the exit on a busy machine)."""
        try:
            status = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"wsl {' '.join(self.args)} still running after {timeout:.1f} s; stderr:\n"
                                 f"{self.stderr.data().decode(errors='replace')}") from None
        for output in (self.stdout, self.stderr):
            output.join(TIMEOUT)
        return status

    def stderr_text(self) -> str:
        self.stderr.join(TIMEOUT)
        return self.stderr.data().decode(errors="replace")


def pipe_round_trip(test, url: str, *options: str, line: bytes = b"hello\n") -> str:
    """`wsl pipe -v OPTIONS URL` to an echo server: `line` there and back, then exit 0 (asserted on
    `test`, a unittest.TestCase). Returns wsl's stderr."""
    with Wsl("pipe", "-v", *options, url) as wsl:
        wsl.send(line)
        wsl.output(len(line))
        wsl.end_input()
        status = wsl.wait()
        stderr = wsl.stderr_text()
        test.assertEqual(status, 0, stderr)
        test.assertEqual(wsl.stdout.data(), line)
    return stderr


def make_certificate(directory: str) -> Optional[tuple]:
    """A self-signed certificate for 127.0.0.1 and its key, (cert, key) paths; None without openssl."""
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                       check=True, capture_output=True, timeout=TIMEOUT)
    except (OSError, subprocess.CalledProcessError):
        return None
    return cert, key


def unused_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago and that nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peer_from_argv(argv: Sequence[str]) -> str:
    """`test_x.py --peer websockets|ws|wsl [unittest args]`: the peer, and sys.argv left for unittest."""
    if len(argv) >= 3 and argv[1] == "--peer" and argv[2] in PEERS:
        peer = argv[2]
        sys.argv[1:] = list(argv[3:])
        return peer
    print(f"usage: {argv[0]} --peer {'|'.join(PEERS)} [unittest options]", file=sys.stderr)
    sys.exit(64)
