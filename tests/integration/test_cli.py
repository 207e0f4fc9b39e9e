#!/usr/bin/python3
"""The `wsl` command line contract (DESIGN.md, "CLI contract"): SIGINT, exit statuses, usage errors,
the servers' frame trace.

SIGINT: every connection gets Close 1001, the closing handshakes drain, the exit status is 130;
a second SIGINT exits at once. Usage errors exit 64 with one line on stderr. -vv on a server traces
every message and close frame of each connection, after its "[ID] ".
"""

import asyncio
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import unittest
from typing import Dict, List

import websockets  # python3-websockets 10.4 (asyncio)

from harness import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, TIME_SCALE, TIMEOUT, WSL, DidNotStart,
                     RawClient, Server, _die_with_parent, close_payload, open_client, run_wsl)

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


# --------------------------------------------------------------------------------------------
# -vv on the servers: the frame trace
# --------------------------------------------------------------------------------------------

OPEN_LINE = re.compile(r"^wsl (?:echo|serve): \[(\d+)\] 127\.0\.0\.1:(\d+) open ")
TRACE_LINE = re.compile(r"^wsl (?:echo|serve): \[(\d+)\] ([<>] .*)$")
UNPREFIXED_TRACE_LINE = re.compile(r"^wsl (?:echo|serve): [<>] ")


def run_async(coroutine, timeout: float = TIMEOUT * 3):
    """Runs a coroutine to completion within `timeout` seconds."""
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


def connect(url: str):
    """A python3-websockets client that sends nothing of its own accord (no pings, no compression)."""
    return websockets.connect(url, compression=None, ping_interval=None, open_timeout=TIMEOUT,
                              close_timeout=TIMEOUT, max_size=None)


async def wait_stdout_line(server: Server, expected: str) -> None:
    """Waits (bounded) until wsl writes this line to stdout; earlier lines are skipped."""
    def wait():
        deadline = time.monotonic() + TIMEOUT
        while (line := server.stdout.next_line(deadline)) != expected:
            if line is None:
                raise AssertionError(f"stdout ended without {expected!r}")
    await asyncio.get_running_loop().run_in_executor(None, wait)


def traces_by_client(test: unittest.TestCase, server: Server, clients: Dict[str, int]) -> Dict[str, List[str]]:
    """The trace lines of each client (named: its local port), from the whole of wsl's stderr, without
    their "wsl SUBCOMMAND: [ID] ". The ID of a client is the one of its "[ID] 127.0.0.1:PORT open" line."""
    lines = server.stderr.all
    ids = {int(m[2]): m[1] for m in map(OPEN_LINE.match, lines) if m}
    by_id: Dict[str, List[str]] = {}
    for m in filter(None, map(TRACE_LINE.match, lines)):
        by_id.setdefault(m[1], []).append(m[2])
    for line in lines:
        test.assertIsNone(UNPREFIXED_TRACE_LINE.match(line), f"a trace line without the client's [ID]: {line!r}")
    test.assertEqual(len(ids), len(clients), f"expected {len(clients)} open lines; stderr:\n{server.stderr.text()}")
    named = {}
    for name, port in clients.items():
        test.assertIn(port, ids, f"no open line for {name} (port {port}); stderr:\n{server.stderr.text()}")
        named[name] = by_id.pop(ids[port], [])
    test.assertEqual(by_id, {}, "trace lines of no known client")
    return named


class ServerFrameTrace(unittest.TestCase):
    """Two clients at once, each with its own exchange: every line must carry the right client's ID.
    Each client's lines come in a fixed order (each step waits for the previous one's answer); the
    two clients' lines may interleave."""

    def test_echo_traces_messages_pings_and_close_frames_per_client(self):
        async def scenario(server):
            a = await connect(server.url)
            b = await connect(server.url)
            await a.send("hello")
            self.assertEqual(await a.recv(), "hello")
            await b.send(b"\x00\x01\x02")
            self.assertEqual(await b.recv(), b"\x00\x01\x02")
            await b.send(["frag", "mented"])  # fragments of one message: one line each way
            self.assertEqual(await b.recv(), "fragmented")
            await asyncio.wait_for(await a.ping(b"ping"), TIMEOUT)
            await a.close(4000, "bye")  # the client closes first: the answer is not traced
            server.signal(signal.SIGINT)  # the server closes first: its 1001, then the answer
            await asyncio.wait_for(b.wait_closed(), TIMEOUT)
            self.assertEqual((b.close_code, b.close_reason), (1001, "server shutting down"))
            return {"a": a.local_address[1], "b": b.local_address[1]}

        with Server("-vv", "--ping-interval", "0") as server:
            clients = run_async(scenario(server))
            self.assertEqual(server.wait(), EXIT_INTERRUPTED)
            traces = traces_by_client(self, server, clients)
        self.assertEqual(traces["a"], [
            "< text message, 5 bytes",
            "> text message, 5 bytes",
            "< ping, 4 bytes",
            '< close 4000 "bye"',
        ])
        self.assertEqual(traces["b"], [
            "< binary message, 3 bytes",
            "> binary message, 3 bytes",
            "< text message, 10 bytes",
            "> text message, 10 bytes",
            '> close 1001 (going away) "server shutting down"',
            '< close 1001 (going away) "server shutting down"',
        ])

    def test_echo_v_traces_no_frames(self):
        async def scenario(server):
            async with connect(server.url) as ws:
                await ws.send("hello")
                self.assertEqual(await ws.recv(), "hello")

        with Server("-v") as server:
            run_async(scenario(server))
            server.signal(signal.SIGINT)
            self.assertEqual(server.wait(), EXIT_INTERRUPTED)
        self.assertIn("[1]", server.stderr.text(), "-v's access line")
        self.assertNotRegex(server.stderr.text(), r"(?m)^wsl echo: (\[\d+\] )?[<>] ")

    def test_serve_pipe_traces_both_ways_and_the_close_at_the_end_of_stdin(self):
        async def scenario(server):
            a = await connect(server.url)
            b = await connect(server.url)
            # Each client's first message on stdout: it is surely attached, stdin may come.
            await a.send("from a")
            await wait_stdout_line(server, "from a")
            await b.send("from b")
            await wait_stdout_line(server, "from b")
            await b.send(["one ", "message"])
            await wait_stdout_line(server, "one message")
            server.write_stdin(b"line one\nline two\n", end=True)  # then each client gets 1000
            got = {}
            for name, ws in (("a", a), ("b", b)):
                got[name] = [await asyncio.wait_for(ws.recv(), TIMEOUT) for _ in range(2)]
                await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
                self.assertEqual(ws.close_code, 1000)
            self.assertEqual(got, {"a": ["line one", "line two"], "b": ["line one", "line two"]})
            return {"a": a.local_address[1], "b": b.local_address[1]}

        with Server("--pipe", "-vv", "--ping-interval", "0", subcommand="serve", stdin_pipe=True) as server:
            clients = run_async(scenario(server))
            self.assertEqual(server.wait(), 0)
            traces = traces_by_client(self, server, clients)
        end = ["> text message, 8 bytes", "> text message, 8 bytes",
               "> close 1000 (normal closure)", "< close 1000 (normal closure)"]
        self.assertEqual(traces["a"], ["< text message, 6 bytes", *end])
        self.assertEqual(traces["b"], ["< text message, 6 bytes", "< text message, 11 bytes", *end])

    def test_serve_command_traces_both_ways_and_the_close_after_the_exit(self):
        # One process per client; it echoes lines, and "stop" makes it exit 3: close 1011 "exit 3".
        script = 'while read -r l; do echo "$l"; if [ "$l" = stop ]; then exit 3; fi; done'

        async def scenario(server):
            a = await connect(server.url)
            b = await connect(server.url)
            await a.send("hi a")
            self.assertEqual(await a.recv(), "hi a")
            await b.send("hi b")
            self.assertEqual(await b.recv(), "hi b")
            await b.send(["st", "op"])
            self.assertEqual(await b.recv(), "stop")
            await asyncio.wait_for(b.wait_closed(), TIMEOUT)
            self.assertEqual((b.close_code, b.close_reason), (1011, "exit 3"))
            await a.close(4000, "bye")
            return {"a": a.local_address[1], "b": b.local_address[1]}

        with Server("-vv", "--ping-interval", "0", "--", "sh", "-c", script, subcommand="serve") as server:
            clients = run_async(scenario(server))
            server.signal(signal.SIGINT)
            self.assertEqual(server.wait(), EXIT_INTERRUPTED)
            traces = traces_by_client(self, server, clients)
        self.assertEqual(traces["a"], [
            "< text message, 4 bytes",
            "> text message, 4 bytes",
            '< close 4000 "bye"',
        ])
        self.assertEqual(traces["b"], [
            "< text message, 4 bytes",
            "> text message, 4 bytes",
            "< text message, 4 bytes",
            "> text message, 4 bytes",
            '> close 1011 (internal error) "exit 3"',
            '< close 1011 (internal error) "exit 3"',
        ])


    def test_a_failure_the_server_answers_itself_is_traced_with_its_close_frame(self):
        # The library fails the connection (RFC 6455 section 7.1.7): its close frame is traced as
        # the ones the server sends of its own accord are, in every server mode.
        def wait_trace(server: Server, pattern: str) -> None:
            deadline = time.monotonic() + TIMEOUT
            try:
                while (line := server.stderr.next_line(deadline)) is not None:
                    if re.search(pattern, line):
                        return
            except TimeoutError:
                pass
            self.fail(f"no line matching {pattern!r} on stderr:\n{server.stderr.text()}")

        modes = {
            "echo": dict(options=("-vv", "--ping-interval", "0")),
            "serve --pipe": dict(options=("--pipe", "-vv", "--ping-interval", "0"), subcommand="serve",
                                 stdin_pipe=True),
            "serve -- cat": dict(options=("-vv", "--ping-interval", "0", "--", "cat"), subcommand="serve"),
        }
        for mode, how in modes.items():
            with self.subTest(mode=mode), Server(*how["options"], subcommand=how.get("subcommand", "echo"),
                                                 stdin_pipe=how.get("stdin_pipe", False)) as server:
                clients = {}
                for name, frame, code in (("unmasked", dict(payload=b"hi", masked=False), 1002),
                                          ("bad utf-8", dict(payload=b"ok \xff\xfe"), 1007)):
                    with open_client(server.port) as client:
                        clients[name] = client.sock.getsockname()[1]
                        client.send_frame(OP_TEXT, **frame)
                        self.assertEqual(client.expect_close().close_code, code)
                    wait_trace(server, rf"\] > close {code} ")  # once our end of TCP is closed too
                server.signal(signal.SIGINT)
                self.assertEqual(server.wait(), EXIT_INTERRUPTED)
                traces = traces_by_client(self, server, clients)
                self.assertEqual(traces, {
                    "unmasked": ['> close 1002 (protocol error) "client frame is not masked"'],
                    "bad utf-8": ['> close 1007 (invalid payload) "invalid UTF-8"'],
                })


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

    # A value each repeatable option accepts; a repeatable option missing here fails the test below.
    REPEATABLE_VALUES = {
        "--header": "X-A: b", "--subprotocol": "chat", "--resolve": "example.com:80:127.0.0.1",
        "--origin": "https://a.example", "--trusted-proxy": "10.0.0.1", "--passenv": "HOME",
        "--stage": "1s:10", "--server-pid": "1", "--threshold": "lost==0", "--host": "127.0.0.1",
        "--listen-fd": "3", "--local-address": "127.0.0.1", "--unix-socket": "@wsl-test-cli",
    }
    # What follows the option's value (an option after the URL, as people write it: CLI11 leaves
    # a last argument to a positional still missing), and the error that shows it was taken for
    # what it is.
    POSITIONALS = {
        "echo": (["extra", "-q"], "The following argument was not expected: extra"),
        "serve": (["/nonexistent/command"], "/nonexistent/command: command not found"),
        "pipe": (["nosuch://x", "-q"], "not a WebSocket URL: 'nosuch://x'"),
        "latency": (["nosuch://x", "-q"], "not a WebSocket URL: 'nosuch://x'"),
        "loadtest": (["nosuch://x", "-q"], "not a WebSocket URL: 'nosuch://x'"),
    }

    def test_a_repeatable_option_takes_one_value_and_leaves_the_url_or_command(self):
        # CLI11 let `wsl loadtest --server-pid 7 URL` take the URL for a second pid ("URL is
        # required"), `wsl serve --trusted-proxy 10.0.0.1 cat` the command.
        for command, (positional, error) in self.POSITIONALS.items():
            options = re.findall(r"^\s+(?:-\w,)?(--[a-z0-9-]+) \S.*? \.\.\.(?:\s|$)",
                                 run_wsl(command, "--help").stdout, re.MULTILINE)
            self.assertIn("--help", run_wsl(command, "--help").stdout)
            for option in options:
                with self.subTest(command=command, option=option):
                    self.assertIn(option, self.REPEATABLE_VALUES, "give the test a value for it")
                    self.assert_usage_error(command, option, self.REPEATABLE_VALUES[option], *positional, mentions=error)
        self.assertGreaterEqual(len(re.findall(r" \.\.\.", run_wsl("loadtest", "--help").stdout)), 6)


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



class HealthCheck(unittest.TestCase):
    def test_a_peer_that_leaves_before_its_request_is_no_warning(self):
        # A load balancer's TCP check connects and leaves, every few seconds: at the default
        # verbosity that must not fill the log. -v still tells.
        for verbose in (False, True):
            with Server(*(["-v"] if verbose else [])) as server:
                with socket.create_connection(("127.0.0.1", server.port)):
                    pass
                with open_client(server.port) as client:  # accepted after it: it was read first
                    echo_once(client)
                server.signal(signal.SIGINT)
                self.assertEqual(server.wait(), EXIT_INTERRUPTED)
                logged = [line for line in server.stderr.all if "handshake failed" in line]
                if verbose:
                    self.assertEqual(len(logged), 1, server.stderr.text())
                    self.assertIn("End of file", logged[0])
                else:
                    self.assertEqual(logged, [], server.stderr.text())



def spawn_on_socket(sock, *args: str, listen_pid: str = "$$") -> subprocess.Popen:
    """`wsl ARGS` with `sock` (or each of a list of sockets) as descriptor 3 (and on), and systemd's
    LISTEN_PID and LISTEN_FDS set for them, as socket activation starts a service (a shell sets
    LISTEN_PID to its own pid, then execs)."""
    socks = sock if isinstance(sock, list) else [sock]
    fds = [s.fileno() for s in socks]

    def as_descriptors_from_3() -> None:
        _die_with_parent()
        moved = [os.dup(fd) for fd in fds]  # out of the way of 3, 4... first
        for i, fd in enumerate(moved):
            os.dup2(fd, 3 + i)

    setup = f'export LISTEN_PID={listen_pid} LISTEN_FDS={len(socks)}; exec "$@"'
    return subprocess.Popen(["sh", "-c", setup, "sh", WSL, *args],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            pass_fds=tuple(range(3, 3 + len(socks))), preexec_fn=as_descriptors_from_3)


class ListenFd(unittest.TestCase):
    """--listen-fd: a socket that already listens, inherited (systemd's socket activation)."""

    def run_on(self, sock, *args: str, check, lines: int = 1) -> str:
        """Starts `wsl ARGS` on `sock` (or a list of sockets), calls check(listening line, ...) with
        its first `lines` lines, then stops it with SIGINT (exit 130 wanted); returns the rest of
        its stderr."""
        proc = spawn_on_socket(sock, *args)
        try:
            check(*(proc.stderr.readline().decode().rstrip("\n") for _ in range(lines)))
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=TIMEOUT)
            self.assertEqual(proc.returncode, EXIT_INTERRUPTED, stderr)
            return stderr.decode()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def test_a_tcp_socket_is_served_and_its_port_printed(self):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            sock.listen()
            port = sock.getsockname()[1]

            def check(line: str) -> None:
                self.assertEqual(line, f"listening on ws://127.0.0.1:{port}/")
                with open_client(port) as client:
                    echo_once(client)

            self.run_on(sock, "echo", "--listen-fd", "3", "--threads", "2", check=check)

    def test_a_unix_socket_is_served_and_its_file_left_to_its_owner(self):
        with tempfile.TemporaryDirectory() as directory, socket.socket(socket.AF_UNIX) as sock:
            path = os.path.join(directory, "activated.sock")
            sock.bind(path)
            sock.listen()

            async def round_trip() -> str:
                async with websockets.unix_connect(path, "ws://localhost/") as ws:
                    await ws.send("through systemd's socket")
                    return await ws.recv()

            def check(line: str) -> None:
                self.assertEqual(line, f"listening on ws+unix:{path}")
                self.assertEqual(asyncio.run(asyncio.wait_for(round_trip(), TIMEOUT)), "through systemd's socket")

            self.run_on(sock, "echo", "--listen-fd", "3", check=check)
            self.assertTrue(os.path.exists(path), "wsl removed a socket file it did not make")

    def test_commands_get_neither_the_socket_nor_the_activation_variables(self):
        # A command's environment is CGI's (and --passenv), not wsl's; descriptor 3 is wsl's alone.
        command = ('if [ -e /dev/fd/3 ]; then fd=open; else fd=closed; fi; '
                   'echo "${LISTEN_PID-none} ${LISTEN_FDS-none} $fd"')
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            sock.listen()
            port = sock.getsockname()[1]

            async def first_line() -> str:
                async with websockets.connect(f"ws://127.0.0.1:{port}/") as ws:
                    return await ws.recv()

            def check(line: str) -> None:
                self.assertEqual(line, f"listening on ws://127.0.0.1:{port}/")
                self.assertEqual(asyncio.run(asyncio.wait_for(first_line(), TIMEOUT)), "none none closed")

            self.run_on(sock, "serve", "--listen-fd", "3", "--", "sh", "-c", command, check=check)

    def test_a_descriptor_that_is_no_listening_socket_is_a_usage_error(self):
        with socket.socket() as sock:  # bound, not listening
            sock.bind(("127.0.0.1", 0))
            proc = spawn_on_socket(sock, "echo", "--listen-fd", "3")
            _, stderr = proc.communicate(timeout=TIMEOUT)
            self.assertEqual(proc.returncode, EXIT_USAGE, stderr)
            self.assertEqual(stderr.decode(),
                             "wsl echo: --listen-fd 3: not a listening TCP or Unix stream socket (wrong kind)\n")
        done = run_wsl("echo", "--listen-fd", "9")  # not open
        self.assertEqual(done.returncode, EXIT_USAGE, done.stderr)
        self.assertIn("--listen-fd 9: not a listening TCP or Unix stream socket (Bad file descriptor)", done.stderr)
        done = run_wsl("echo", "--listen-fd", "3", "--port", "1")
        self.assertEqual(done.returncode, EXIT_USAGE, done.stderr)
        self.assertIn("--port excludes --listen-fd", done.stderr)

    def test_systemd_passes_several_sockets_and_each_is_served(self):
        # --listen-fd systemd: LISTEN_FDS sockets from descriptor 3 (a .socket unit with a
        # ListenStream= for TCP and one for a Unix socket), in that order, on every thread.
        with tempfile.TemporaryDirectory() as directory, socket.socket() as tcp, \
                socket.socket(socket.AF_UNIX) as unix:
            tcp.bind(("127.0.0.1", 0))
            tcp.listen()
            port = tcp.getsockname()[1]
            path = os.path.join(directory, "activated.sock")
            unix.bind(path)
            unix.listen()

            async def round_trips() -> List[str]:
                async with websockets.connect(f"ws://127.0.0.1:{port}/") as a, \
                        websockets.unix_connect(path, "ws://localhost/") as b:
                    await a.send("over TCP")
                    await b.send("over the Unix socket")
                    return [await a.recv(), await b.recv()]

            def check(*lines: str) -> None:
                self.assertEqual(lines, (f"listening on ws://127.0.0.1:{port}/", f"listening on ws+unix:{path}"))
                self.assertEqual(asyncio.run(asyncio.wait_for(round_trips(), TIMEOUT)),
                                 ["over TCP", "over the Unix socket"])

            rest = self.run_on([tcp, unix], "echo", "--listen-fd", "systemd", "--threads", "2", check=check, lines=2)
            self.assertEqual(rest, "", "a third listening line, or a complaint")

    def test_systemd_without_its_variables_or_a_descriptor_twice_is_a_usage_error(self):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            sock.listen()
            for args, pid, error in (
                    (["--listen-fd", "systemd"], "1",  # the variables name another process
                     "--listen-fd systemd: no socket was passed (LISTEN_PID and LISTEN_FDS do not name this process"),
                    (["--listen-fd", "3", "--listen-fd", "3"], "$$", "--listen-fd 3: given twice"),
                    (["--listen-fd", "three"], "$$", "--listen-fd three: a descriptor number, or 'systemd'")):
                with self.subTest(args=args):
                    proc = spawn_on_socket(sock, "echo", *args, listen_pid=pid)
                    _, stderr = proc.communicate(timeout=TIMEOUT)
                    self.assertEqual(proc.returncode, EXIT_USAGE, stderr)
                    self.assertTrue(stderr.decode().startswith(f"wsl echo: {error}"), stderr)
                    self.assertEqual(stderr.count(b"\n"), 1, stderr)


class SeveralAddresses(unittest.TestCase):
    """--host repeated: a listener for each address, all at one port, sharing the limits."""

    def test_each_address_is_served_at_the_port_the_first_got(self):
        # localhost is 127.0.0.1 here (and ::1 too where /etc/hosts says so): listed once either way.
        with Server("--host", "::1", "--host", "localhost", "--threads", "2", "--max-connections", "1") as server:
            second = server.stderr.next_line(time.monotonic() + TIMEOUT)
            self.assertEqual(second, f"listening on ws://[::1]:{server.port}/")

            async def exchange() -> List[object]:
                async with websockets.connect(f"ws://[::1]:{server.port}/") as ws:
                    await ws.send("over IPv6")
                    got: List[object] = [await ws.recv()]
                    try:  # the budget is the server's, not each socket's: no place left on 127.0.0.1
                        async with websockets.connect(server.url):
                            got.append("admitted")
                    except websockets.InvalidStatusCode as e:
                        got.append(e.status_code)
                async with websockets.connect(server.url) as ws:
                    await ws.send("over IPv4")
                    got.append(await ws.recv())
                return got

            self.assertEqual(asyncio.run(asyncio.wait_for(exchange(), TIMEOUT)), ["over IPv6", 503, "over IPv4"])
            server.signal(signal.SIGINT)
            self.assertEqual(server.wait(), EXIT_INTERRUPTED)
            listening = [line for line in server.stderr.text().splitlines() if line.startswith("listening")]
            self.assertEqual(len(listening), 2, server.stderr.text())

    def test_a_port_taken_on_one_address_is_an_error_for_all(self):
        with socket.socket(socket.AF_INET6) as taken:
            taken.bind(("::1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            for threads in ("1", "2"):
                with self.subTest(threads=threads):
                    done = run_wsl("echo", "--host", "127.0.0.1", "--host", "::1", "--port", str(port),
                                   "--threads", threads)
                    self.assertEqual(done.returncode, 69, done.stderr)
                    self.assertEqual(done.stderr, f"wsl echo: cannot listen on [::1]:{port}: Address already in use\n")


if __name__ == "__main__":
    unittest.main(verbosity=2)
