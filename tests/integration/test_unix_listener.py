#!/usr/bin/python3
"""`wsl echo` and `wsl serve` on a Unix-domain socket (--unix-socket), driven by peers we did not
write: python3-websockets (unix_connect) and node `ws` (a ws+unix: URL).

What is checked beyond the echoes: the socket file's life (its --unix-mode, a stale file left by a
dead server replaced, a live one or a plain file refused, the file removed at exit unless it was
replaced meanwhile), Linux's abstract namespace (@NAME), several threads sharing the socket, the
peer's credentials (SO_PEERCRED) in the access log and in a command's environment, and the usage
errors.
"""

import asyncio
import os
import signal
import socket
import stat
import subprocess
import tempfile
import time
import unittest
from typing import List

import websockets  # python3-websockets 10.4 (asyncio)

from harness import TIMEOUT, RawClient, Server, _die_with_parent, handshake_request, run_wsl

NODE = os.environ.get("WSL_TEST_NODE", "node")
EXIT_UNAVAILABLE, EXIT_USAGE, EXIT_INTERRUPTED = 69, 64, 130


def unix_server(path: str, *options: str, subcommand: str = "echo") -> Server:
    return Server(*options, subcommand=subcommand, unix=path)


def stop(server: Server) -> int:
    """SIGINT, then the exit status once it has exited and its output is read."""
    server.signal(signal.SIGINT)
    return server.wait()


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, TIMEOUT))


async def echo_over(path: str, messages: List, uri: str = "ws://localhost/") -> List:
    """Each message there and back through python3-websockets' unix_connect; the echoes."""
    async with websockets.unix_connect(path, uri, max_size=None) as ws:
        echoes = []
        for m in messages:
            await ws.send(m)
            echoes.append(await ws.recv())
        return echoes


def is_listening(path: str) -> bool:
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(path)
            return True
        except OSError:
            return False


class Echo(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="wsl-unix-")
        self.path = os.path.join(self.dir.name, "echo.sock")

    def tearDown(self) -> None:
        self.dir.cleanup()

    def test_python_websockets_round_trip_and_the_access_log_names_the_peer_process(self):
        with unix_server(self.path, "-v") as server:
            self.assertEqual(server.unix_path, self.path)
            messages = ["hello", b"\x00\xff" * 1000, "é" * (1 << 19), b""]
            self.assertEqual(run(echo_over(self.path, messages)), messages)
            self.assertEqual(stop(server), EXIT_INTERRUPTED)
            # SO_PEERCRED: this very process connected.
            self.assertRegex(server.stderr.text(),
                             rf"access \S+ \[\d+\] unix:pid={os.getpid()},uid={os.getuid()} GET / 101 .* close=1000")

    def test_node_ws_round_trip_through_a_ws_unix_url(self):
        script = """
            const WebSocket = require('ws');
            const ws = new WebSocket(`ws+unix:${process.argv[1]}:/node?x=1`);
            ws.on('open', () => ws.send('from node'));
            ws.on('message', (data, isBinary) => {
              process.stdout.write(`${isBinary ? 'binary' : 'text'} ${data}\\n`);
              ws.close(4000, 'done');
            });
            ws.on('close', (code) => { process.stdout.write(`close ${code}\\n`); });
            ws.on('error', (e) => { process.stdout.write(`error ${e.message}\\n`); });
        """
        with unix_server(self.path, "-v") as server:
            done = subprocess.run([NODE, "-e", script, self.path], capture_output=True, text=True, timeout=TIMEOUT,
                                  env=dict(os.environ), preexec_fn=_die_with_parent)
            self.assertEqual(done.stdout, "text from node\nclose 4000\n", done.stderr)
            self.assertEqual(stop(server), EXIT_INTERRUPTED)
            self.assertRegex(server.stderr.text(), r"unix:pid=\d+,uid=\d+ GET /node\?x=1 101 .* close=4000")

    def test_the_socket_file_gets_its_mode_and_is_removed_at_exit(self):
        with unix_server(self.path, "--unix-mode", "600") as server:
            st = os.lstat(self.path)
            self.assertTrue(stat.S_ISSOCK(st.st_mode))
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
            self.assertEqual(stop(server), EXIT_INTERRUPTED)
        self.assertFalse(os.path.lexists(self.path))

    def test_a_stale_socket_file_is_replaced(self):
        # What a server that died leaves behind: a socket file nobody listens on.
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(self.path)
        stale.close()
        self.assertFalse(is_listening(self.path))
        with unix_server(self.path):
            self.assertEqual(run(echo_over(self.path, ["after a stale file"])), ["after a stale file"])

    def test_a_socket_in_use_is_refused_and_its_server_goes_on(self):
        with unix_server(self.path) as server:
            done = run_wsl("echo", "--unix-socket", self.path)
            self.assertEqual(done.returncode, EXIT_UNAVAILABLE, done.stderr)
            self.assertEqual(done.stderr, f"wsl echo: cannot listen on unix:{self.path}: Address already in use\n")
            self.assertEqual(run(echo_over(self.path, ["still mine"])), ["still mine"])
            # The second one's check (it connected and left) is no warning of the first one's.
            self.assertEqual(stop(server), EXIT_INTERRUPTED)
            self.assertEqual(server.stderr.text(), f"listening on ws+unix:{self.path}")

    def test_a_plain_file_at_the_path_is_refused_and_kept(self):
        with open(self.path, "w") as f:
            f.write("precious")
        done = run_wsl("echo", "--unix-socket", self.path)
        self.assertEqual(done.returncode, EXIT_UNAVAILABLE, done.stderr)
        self.assertEqual(done.stderr, f"wsl echo: cannot listen on unix:{self.path}: File exists\n")
        with open(self.path) as f:
            self.assertEqual(f.read(), "precious")

    def test_a_socket_file_replaced_meanwhile_is_left_alone_at_exit(self):
        with unix_server(self.path) as server:
            os.unlink(self.path)
            other = socket.socket(socket.AF_UNIX)
            other.bind(self.path)
            try:
                self.assertEqual(stop(server), EXIT_INTERRUPTED)
                self.assertTrue(stat.S_ISSOCK(os.lstat(self.path).st_mode), "wsl removed a file it did not make")
            finally:
                other.close()

    def test_the_abstract_namespace(self):
        name = f"wsl-test-{os.getpid()}-{id(self)}"
        with unix_server("@" + name) as server:
            self.assertEqual(server.unix_path, "@" + name)
            self.assertEqual(run(echo_over("\0" + name, ["abstract"])), ["abstract"])
            self.assertEqual(stop(server), EXIT_INTERRUPTED)
        self.assertFalse(os.path.lexists("@" + name))

    def test_threads_share_the_socket(self):
        async def many() -> List[str]:
            return await asyncio.gather(*(echo_over(self.path, [f"client {i}"]) for i in range(30)))

        with unix_server(self.path, "--threads", "3") as server:
            self.assertEqual(run(many()), [[f"client {i}"] for i in range(30)])
            # The threads that did not bind it are stopped too; the file goes once.
            self.assertEqual(stop(server), EXIT_INTERRUPTED)
        self.assertFalse(os.path.lexists(self.path))

    def test_usage_errors(self):
        for args, message in [
            (["--unix-socket", self.path, "--unix-socket", self.path], f"--unix-socket '{self.path}': given twice"),
            (["--unix-socket", self.path, "--unix-socket", "@wsl-test", "--unix-mode", "600"],
             "--unix-mode: a socket in the abstract namespace"),
            (["--unix-mode", "600"], "--unix-mode requires --unix-socket"),
            (["--unix-socket", self.path, "--unix-mode", "8"], "--unix-mode '8': expected octal permissions"),
            (["--unix-socket", "@wsl-test", "--unix-mode", "600"], "--unix-mode: a socket in the abstract namespace"),
            (["--unix-socket", "x" * 200], "--unix-socket '" + "x" * 200 + "': File name too long"),
        ]:
            done = run_wsl("echo", *args)
            self.assertEqual(done.returncode, EXIT_USAGE, f"{args}: {done.stderr}")
            self.assertIn(message, done.stderr, args)
            self.assertEqual(done.stderr.count("\n"), 1, done.stderr)
        with tempfile.NamedTemporaryFile() as pem:
            done = run_wsl("echo", "--unix-socket", self.path, "--tls-cert", pem.name, "--tls-key", pem.name)
            self.assertEqual(done.returncode, EXIT_USAGE, done.stderr)
            self.assertIn("not supported", done.stderr)
        self.assertFalse(os.path.lexists(self.path))


class Mixed(unittest.TestCase):
    """--unix-socket repeated, and beside --host and --port: one server on all of them."""

    def setUp(self) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="wsl-unix-")
        self.path = os.path.join(self.dir.name, "a.sock")
        self.name = f"wsl-test-{os.getpid()}-{id(self)}"

    def tearDown(self) -> None:
        self.dir.cleanup()

    def listening_lines(self, server: Server) -> List[str]:
        """The lines after the first (TCP's, which Server read): one per Unix socket."""
        deadline = time.monotonic() + TIMEOUT
        return [server.stderr.next_line(deadline) for _ in range(2)]

    def test_tcp_first_then_each_socket_in_order_all_served(self):
        with Server("--unix-socket", self.path, "--unix-socket", "@" + self.name, "--threads", "2",
                    "--max-connections", "2") as server:
            self.assertEqual(self.listening_lines(server),
                             [f"listening on ws+unix:{self.path}", f"listening on ws+unix:@{self.name}"])

            async def all_three() -> List:
                async with websockets.connect(server.url) as tcp:
                    await tcp.send("tcp")
                    return [await tcp.recv(), await echo_over(self.path, ["a"]),
                            await echo_over("\0" + self.name, ["abstract"])]

            self.assertEqual(run(all_three()), ["tcp", ["a"], ["abstract"]])

            async def three_at_once() -> int:
                # One connection budget for every socket: the third of three open at once gets 503.
                async with websockets.connect(server.url), websockets.unix_connect(self.path, "ws://localhost/"):
                    try:
                        async with websockets.unix_connect("\0" + self.name, "ws://localhost/"):
                            return 101
                    except websockets.exceptions.InvalidStatusCode as e:
                        return e.status_code

            self.assertEqual(run(three_at_once()), 503)
            self.assertEqual(stop(server), EXIT_INTERRUPTED)
        self.assertFalse(os.path.lexists(self.path))

    def test_a_command_learns_the_socket_it_came_through(self):
        other = os.path.join(self.dir.name, "b.sock")
        command = 'echo "${WSL_UNIX_SOCKET-tcp} ${SERVER_PORT-none}"'

        async def first_lines(port: int) -> List[str]:
            lines = []
            for connect in (lambda: websockets.unix_connect(self.path, "ws://localhost/"),
                            lambda: websockets.unix_connect(other, "ws://localhost/"),
                            lambda: websockets.connect(f"ws://127.0.0.1:{port}/")):
                async with connect() as ws:
                    lines.append(await ws.recv())
            return lines

        with Server("--unix-socket", self.path, "--unix-socket", other, "--", "sh", "-c", command,
                    subcommand="serve") as server:
            self.listening_lines(server)
            self.assertEqual(run(first_lines(server.port)),
                             [f"{self.path} none", f"{other} none", f"tcp {server.port}"])

    def test_only_unix_sockets_without_host_or_port(self):
        with unix_server(self.path, "--unix-socket", "@" + self.name) as server:
            self.assertEqual(server.unix_path, self.path)
            deadline = time.monotonic() + TIMEOUT
            self.assertEqual(server.stderr.next_line(deadline), f"listening on ws+unix:@{self.name}")
            self.assertEqual(run(echo_over("\0" + self.name, ["second"])), ["second"])
            self.assertEqual(stop(server), EXIT_INTERRUPTED)
            self.assertNotIn("listening on ws://", server.stderr.text())


class ServeCommand(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="wsl-unix-")
        self.path = os.path.join(self.dir.name, "serve.sock")

    def tearDown(self) -> None:
        self.dir.cleanup()

    def test_the_command_learns_who_connected(self):
        command = 'echo "$WSL_PEER_PID $WSL_PEER_UID $WSL_PEER_GID $WSL_UNIX_SOCKET ${REMOTE_ADDR-none}"'

        async def first_line() -> str:
            async with websockets.unix_connect(self.path, "ws://localhost/") as ws:
                return await ws.recv()

        with unix_server(self.path, "--", "sh", "-c", command, subcommand="serve"):
            self.assertEqual(run(first_line()), f"{os.getpid()} {os.getuid()} {os.getgid()} {self.path} none")

    def test_max_forks_counts_each_connection(self):
        # Fork slots are tracked per connection from the hook to the session. On a Unix socket every
        # peer has the same (empty) address: told apart by it, two negotiations at once shared one
        # record, and a slot leaked.
        def statuses_of_two_at_once() -> List[int]:
            """Two clients whose requests are both in before the server reads either."""
            with RawClient(0, unix=self.path) as a, RawClient(0, unix=self.path) as b:
                for client in (a, b):
                    client.send(handshake_request(0))
                return [client.read_http_response().status for client in (a, b)]

        with unix_server(self.path, "-v", "--max-forks", "2", "--", "sh", "-c", "exec cat",
                        subcommand="serve") as server:
            for round in range(3):
                self.assertEqual(statuses_of_two_at_once(), [101, 101], f"round {round + 1}")
                # Both sessions end (their slots back before their access lines).
                server.wait_stderr(r"access .* GET / 101 ")
                server.wait_stderr(r"access .* GET / 101 ")

if __name__ == "__main__":
    unittest.main()
