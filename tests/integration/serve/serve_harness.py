"""Helpers for the `wsl serve` tests (on top of ../harness.py).

- `Serve`: `wsl serve --port 0 ...` with stdin as a pipe we write to, and stdout collected as raw
  bytes (`wait_stdout` waits for a predicate on them); stderr lines as in harness.Server.
- `run`: runs an asyncio coroutine with a bound, so that no test hangs.
- `connect`: a python3-websockets client (10.4: asyncio only), with our defaults.
- `proc_state`: the state letter of a process in /proc (None once it is gone), for zombie checks.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from typing import Callable, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import websockets  # noqa: E402  (python3-websockets, the Debian package)

from harness import (LISTENING, OP_TEXT, TIME_SCALE, TIMEOUT, WSL, DidNotStart, HttpResponse,  # noqa: E402,F401
                     RawClient, _LineCollector, _die_with_parent, _live, close_payload, handshake_request, run_wsl)


class _ByteCollector(threading.Thread):
    """Drains a pipe into one bytes buffer; wait() blocks until a predicate on it holds."""

    def __init__(self, pipe) -> None:
        super().__init__(daemon=True)
        self.pipe = pipe
        self.data = bytearray()
        self.eof = False
        self.cond = threading.Condition()
        self.start()

    def run(self) -> None:
        while True:
            chunk = os.read(self.pipe.fileno(), 1 << 16)
            with self.cond:
                if not chunk:
                    self.eof = True
                    self.cond.notify_all()
                    return
                self.data += chunk
                self.cond.notify_all()

    def wait(self, predicate: Callable[[bytes], bool], timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate(bytes(self.data)):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.eof and not predicate(bytes(self.data))):
                    raise AssertionError(f"stdout did not become as expected within {timeout:.1f} s "
                                         f"(eof={self.eof}); it holds {len(self.data)} bytes: {bytes(self.data[-200:])!r}")
                self.cond.wait(remaining)
            return bytes(self.data)


class Serve:
    """`wsl serve --host 127.0.0.1 --port 0 OPTIONS...`, for a `with` block."""

    def __init__(self, *options: str, subcommand: str = "serve", env: Optional[dict] = None,
                 stdin: bool = True, stdout_closed: bool = False, fifo: Optional[str] = None) -> None:
        """fifo: stdin and stdout are both this FIFO, opened for reading and writing (what wsl
        writes it reads again)."""
        self.stdout_closed = stdout_closed
        self.fifo = fifo
        self.argv = [WSL, subcommand, "--host", "127.0.0.1", "--port", "0", *options]
        self.env = env
        self.with_stdin = stdin
        self.proc: Optional[subprocess.Popen] = None

    def __enter__(self) -> "Serve":
        env = dict(os.environ, **(self.env or {}))
        stdout = subprocess.PIPE
        if self.stdout_closed:
            reader, stdout = os.pipe()
            os.close(reader)
        stdin = subprocess.PIPE if self.with_stdin else subprocess.DEVNULL
        if self.fifo:
            stdin = stdout = os.open(self.fifo, os.O_RDWR)
        self.proc = subprocess.Popen(self.argv, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, env=env,
                                     preexec_fn=_die_with_parent)
        if self.stdout_closed or self.fifo:
            os.close(stdout)
        _live.append(self.proc)
        self.stdout = _ByteCollector(self.proc.stdout) if self.proc.stdout else None
        self.stderr = _LineCollector(self.proc.stderr)
        deadline = time.monotonic() + TIMEOUT
        line = self.stderr.next_line(deadline)
        match = LISTENING.match(line or "")
        if not match:
            try:
                self.proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
            self.kill()
            raise AssertionError(f"{' '.join(self.argv)}: no listening line, got {line!r}; stderr:\n"
                                 f"{self.stderr.text()}")
        self.port = int(match["port"])
        self.url = f"ws://127.0.0.1:{self.port}/"
        return self

    def __exit__(self, *exc) -> None:
        self.kill()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def end_input(self) -> None:
        self.proc.stdin.close()

    def wait(self, timeout: float = TIMEOUT) -> int:
        """Its exit status, once it ended and everything it wrote has been read: the readers of
        stdout and stderr may lag behind the exit on a busy machine."""
        try:
            status = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"wsl serve still running after {timeout:.1f} s; stderr:\n"
                                 f"{self.stderr.text()}") from None
        for collector in (self.stdout, self.stderr):
            if collector is not None:
                collector.join(TIMEOUT)
        return status

    def wait_stdout(self, predicate: Callable[[bytes], bool], timeout: float = TIMEOUT) -> bytes:
        return self.stdout.wait(predicate, timeout)

    def wait_stderr(self, pattern: str, timeout: float = TIMEOUT) -> str:
        """The first stderr line (after those already seen) that matches the regex."""
        return self.stderr.wait_match(pattern, timeout)

    def kill(self) -> Optional[int]:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.kill()
        status = self.proc.wait(timeout=TIMEOUT)
        if self.proc.stdin:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        self.stderr.join(TIMEOUT)
        if self.stdout:
            self.stdout.join(TIMEOUT)
        return status

    def children(self) -> List[int]:
        """PIDs whose parent is this wsl."""
        out = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == self.pid:
                    out.append(int(entry))
        return out


def run(coroutine, timeout: float = TIMEOUT * 3):
    """Runs a coroutine to completion within `timeout` seconds."""
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


def raw_get(port, target, method="GET", extra=()) -> HttpResponse:
    """A request sent byte for byte (http.client would normalise `..`), and its response, read up to
    the EOF with which the server ends a plain request asking to close (so HEAD and 304 need no
    special case)."""
    with RawClient(port) as client:
        lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close", *extra]
        client.send(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = client.wait_eof()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *fields = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (f.partition(":") for f in fields)}
    return HttpResponse(int(status_line.split()[1]), status_line.split(" ", 2)[-1], headers, body)


def connect(url: str, **options):
    options.setdefault("compression", None)
    options.setdefault("max_size", None)
    options.setdefault("open_timeout", TIMEOUT)
    options.setdefault("close_timeout", TIMEOUT)
    options.setdefault("ping_interval", None)
    return websockets.connect(url, **options)


async def receive_until_close(ws, timeout: float = TIMEOUT) -> list:
    """Every message until the server closes; the close code is in ws.close_code afterwards."""
    messages = []
    try:
        while True:
            messages.append(await asyncio.wait_for(ws.recv(), timeout))
    except websockets.ConnectionClosed:
        pass
    return messages


def proc_state(pid: int) -> Optional[str]:
    """R, S, Z, ... for a live process (Z: a zombie), None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def wait_gone(pid: int, timeout: float) -> float:
    """Waits until the process is gone (not even a zombie); returns how long that took."""
    started = time.monotonic()
    while proc_state(pid) is not None:
        if time.monotonic() - started > timeout:
            raise AssertionError(f"process {pid} still there ({proc_state(pid)}) after {timeout:.1f} s")
        time.sleep(0.02)
    return time.monotonic() - started
