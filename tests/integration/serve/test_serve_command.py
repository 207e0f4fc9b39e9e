#!/usr/bin/python3
"""`wsl serve -- COMMAND` and `--dir`: a process per connection, with python3-websockets clients.

Per-connection `cat`; the CGI environment (and nothing else of ours); the process's end mapped to
close codes with all its output delivered; the process (and its group) killed once the client has
gone, with no zombie left; --max-forks; --dir endpoints; stderr prefixed with the connection id.
"""

import asyncio
import os
import signal
import tempfile
import time
import unittest

from serve_harness import TIME_SCALE, TIMEOUT, Serve, connect, proc_state, receive_until_close, run, wait_gone

GRACE = 0.3  # --close-grace in these tests


class Cat(unittest.TestCase):
    def test_each_connection_has_its_own_cat(self):
        async def client(server, i):
            async with connect(server.url) as ws:
                sent = [f"client {i} line {n}" for n in range(200)]
                for line in sent:
                    await ws.send(line)
                got = [await asyncio.wait_for(ws.recv(), TIMEOUT) for _ in sent]
                self.assertEqual(got, sent)

        async def scenario(server):
            await asyncio.gather(*(client(server, i) for i in range(5)))

        with Serve("--", "cat") as server:
            run(scenario(server))

    def test_binary_mode_passes_bytes_through_unchanged(self):
        blob = bytes(range(256)) * 64

        async def scenario(server):
            async with connect(server.url) as ws:
                await ws.send(blob)
                got = b""
                while len(got) < len(blob):
                    message = await asyncio.wait_for(ws.recv(), TIMEOUT)
                    self.assertIsInstance(message, bytes)
                    got += message
                return got

        with Serve("--binary", "--", "cat") as server:
            self.assertEqual(run(scenario(server)), blob)

    def test_everything_the_process_writes_is_sent_before_the_close(self):
        async def scenario(server):
            async with connect(server.url) as ws:
                return await receive_until_close(ws), ws.close_code

        with Serve("--", "seq", "1", "50000") as server:
            messages, code = run(scenario(server))
            self.assertEqual(messages, [str(n) for n in range(1, 50001)])
            self.assertEqual(code, 1000)


class ExitStatus(unittest.TestCase):
    def close_of(self, *command):
        async def scenario(server):
            async with connect(server.url) as ws:
                messages = await receive_until_close(ws)
                return messages, ws.close_code, ws.close_reason

        with Serve("--", *command) as server:
            return run(scenario(server))

    def test_exit_0_closes_with_1000(self):
        self.assertEqual(self.close_of("sh", "-c", "echo bye"), (["bye"], 1000, ""))

    def test_exit_3_closes_with_1011_exit_3(self):
        self.assertEqual(self.close_of("sh", "-c", "echo last words; exit 3"), (["last words"], 1011, "exit 3"))

    def test_a_signal_closes_with_1011_and_its_name(self):
        self.assertEqual(self.close_of("sh", "-c", "echo dying; kill -9 $$"), (["dying"], 1011, "signal 9 (SIGKILL)"))

    def test_a_command_that_cannot_start_closes_with_1011(self):
        with tempfile.TemporaryDirectory() as tmp:
            script = os.path.join(tmp, "vanishing")
            with open(script, "w") as f:
                f.write("#!/bin/sh\necho hi\n")
            os.chmod(script, 0o755)

            async def scenario(server):
                os.unlink(script)  # it was there when wsl started
                async with connect(server.url) as ws:
                    await receive_until_close(ws)
                    return ws.close_code, ws.close_reason

            with Serve("--", script) as server:
                self.assertEqual(run(scenario(server)), (1011, "cannot start the command"))
                server.wait_stderr("cannot start")


class Environment(unittest.TestCase):
    def test_cgi_variables_and_only_passenv_of_ours(self):
        async def scenario(server):
            async with connect(server.url + "some/path?x=1&y=%20", subprotocols=["chat.v2"],
                               extra_headers={"X-Custom-Thing": "custom value"}) as ws:
                local_port = ws.local_address[1]
                lines = await receive_until_close(ws)
                return dict(line.split("=", 1) for line in lines if "=" in line), local_port, ws.close_code

        env = {"WSL_TEST_PASSED": "passed on", "WSL_TEST_SECRET": "must not leak"}
        with Serve("--passenv", "WSL_TEST_PASSED", "--subprotocol", "chat.v2", "--", "env", env=env) as server:
            got, local_port, code = run(scenario(server))
            self.assertEqual(code, 1000)
            expected = {
                "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": str(local_port), "SERVER_NAME": "127.0.0.1",
                "SERVER_PORT": str(server.port), "REQUEST_URI": "/some/path?x=1&y=%20", "PATH_INFO": "/some/path",
                "QUERY_STRING": "x=1&y=%20", "REQUEST_METHOD": "GET", "SCRIPT_NAME": "",
                "WEBSOCKET_SUBPROTOCOL": "chat.v2", "HTTP_X_CUSTOM_THING": "custom value",
                "HTTP_HOST": f"127.0.0.1:{server.port}", "HTTP_UPGRADE": "websocket",
                "WSL_TEST_PASSED": "passed on", "PATH": "/usr/local/bin:/usr/bin:/bin",
            }
            for name, value in expected.items():
                self.assertEqual(got.get(name), value, name)
            self.assertTrue(got["WSL_CONNECTION_ID"].isdigit())
            self.assertIn("HTTP_SEC_WEBSOCKET_KEY", got)
            self.assertIn("HTTP_USER_AGENT", got)
            for name in ("WSL_TEST_SECRET", "HOME", "USER", "NODE_PATH", "WSL_BIN"):
                self.assertNotIn(name, got)
            allowed = {"GATEWAY_INTERFACE", "SERVER_SOFTWARE", "SERVER_PROTOCOL", "REMOTE_HOST", "UNIQUE_ID",
                       "WSL_CONNECTION_ID"} | set(expected)
            self.assertEqual({n for n in got if not n.startswith("HTTP_")} - allowed, set())

    def test_behind_a_trusted_proxy_remote_addr_is_the_client_it_names(self):
        async def scenario(server, forwarded):
            async with connect(server.url, extra_headers={"X-Forwarded-For": forwarded}) as ws:
                lines = await receive_until_close(ws)
                return dict(line.split("=", 1) for line in lines if "=" in line)

        with Serve("--trusted-proxy", "127.0.0.0/8", "--", "env") as server:
            got = run(scenario(server, "198.51.100.7, 127.0.0.9"))
            self.assertEqual((got["REMOTE_ADDR"], got["REMOTE_HOST"]), ("198.51.100.7", "198.51.100.7"))
            self.assertNotIn("REMOTE_PORT", got)  # the proxy's port is not the client's
            self.assertEqual(got["HTTP_X_FORWARDED_FOR"], "198.51.100.7, 127.0.0.9")
        with Serve("--trusted-proxy", "10.0.0.0/8", "--", "env") as server:  # 127.0.0.1 is not one
            got = run(scenario(server, "198.51.100.7"))
            self.assertEqual(got["REMOTE_ADDR"], "127.0.0.1")
            self.assertTrue(got["REMOTE_PORT"].isdigit())

    def test_connection_ids_differ(self):
        async def one(server):
            async with connect(server.url) as ws:
                return await receive_until_close(ws)

        async def scenario(server):
            return await asyncio.gather(*(one(server) for _ in range(3)))

        with Serve("--", "sh", "-c", "echo $WSL_CONNECTION_ID") as server:
            ids = [m[0] for m in run(scenario(server))]
            self.assertEqual(len(set(ids)), 3)


class Cleanup(unittest.TestCase):
    """The client goes; the process and its whole group follow, and nothing is left unreaped."""

    def leave_and_watch(self, script, abrupt=False):
        """Runs `sh -c script` (which prints its pid and a background child's), makes the client
        leave, and returns how long both processes took to disappear."""
        with Serve("--close-grace", f"{GRACE}s", "-v", "--", "sh", "-c", script) as server:
            async def scenario():
                ws = await connect(server.url)
                pids = [int(await asyncio.wait_for(ws.recv(), TIMEOUT)) for _ in range(2)]
                for pid in pids:
                    self.assertIsNotNone(proc_state(pid))
                started = time.monotonic()
                if abrupt:
                    ws.transport.abort()  # no close frame: the connection just drops
                else:
                    await ws.close()
                return pids, started

            pids, started = run(scenario())
            for pid in pids:
                wait_gone(pid, 5 * GRACE + TIMEOUT)
            took = time.monotonic() - started
            self.assertEqual([p for p in server.children() if proc_state(p) == "Z"], [], "a zombie remains")
            self.assertEqual(server.children(), [])
            return took, server

    def test_a_process_that_ends_on_eof_is_reaped_at_once(self):
        took, _ = self.leave_and_watch("echo $$; sleep 100 & echo $!; cat >/dev/null; kill $!")
        self.assertLess(took, GRACE + 2 * TIME_SCALE)

    def test_a_process_ignoring_stdin_gets_sigterm_after_the_grace(self):
        took, server = self.leave_and_watch("echo $$; sleep 100 & echo $!; wait", abrupt=True)
        self.assertGreaterEqual(took, GRACE * 0.9)
        server.wait_stderr("SIGTERM")

    def test_a_process_ignoring_sigterm_gets_sigkill(self):
        took, server = self.leave_and_watch("trap '' TERM; echo $$; sleep 100 & echo $!; while :; do sleep 0.05; done")
        self.assertGreaterEqual(took, 2 * GRACE * 0.9)
        server.wait_stderr("ignored SIGTERM: SIGKILL")

    def test_leftovers_of_an_ended_process_are_killed(self):
        async def scenario(server):
            async with connect(server.url) as ws:
                messages = await receive_until_close(ws)
                return int(messages[0]), ws.close_code

        # The background sleep keeps stdout open: wsl must not wait for it forever.
        with Serve("--close-grace", f"{GRACE}s", "--", "sh", "-c", "sleep 100 & echo $!") as server:
            pid, code = run(scenario(server))
            self.assertEqual(code, 1000)
            wait_gone(pid, TIMEOUT)
            self.assertEqual(server.children(), [])

    def test_sigint_ends_every_process_and_exits_130(self):
        async def scenario(server):
            clients = [await connect(server.url) for _ in range(3)]
            pids = [int(await asyncio.wait_for(ws.recv(), TIMEOUT)) for ws in clients]
            server.proc.send_signal(signal.SIGINT)
            for ws in clients:
                await receive_until_close(ws)
            return pids, [ws.close_code for ws in clients]

        with Serve("--close-grace", f"{GRACE}s", "--", "sh", "-c", "echo $$; exec sleep 100") as server:
            pids, codes = run(scenario(server))
            self.assertEqual(codes, [1001] * 3)
            self.assertEqual(server.wait(TIMEOUT + 3 * GRACE), 130)
            for pid in pids:
                self.assertIsNone(proc_state(pid))


class Limits(unittest.TestCase):
    def test_max_forks_answers_503_until_a_process_has_ended(self):
        async def scenario(server):
            first = await connect(server.url)
            await first.send("ping")
            self.assertEqual(await asyncio.wait_for(first.recv(), TIMEOUT), "ping")
            with self.assertRaises(Exception) as refused:
                async with connect(server.url):
                    pass
            self.assertEqual(getattr(refused.exception, "status_code", None), 503, repr(refused.exception))
            await first.close()
            deadline = time.monotonic() + TIMEOUT
            while True:  # the slot comes back once the process has been reaped
                try:
                    async with connect(server.url) as again:
                        await again.send("pong")
                        return await asyncio.wait_for(again.recv(), TIMEOUT)
                except Exception as e:
                    if getattr(e, "status_code", None) != 503 or time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.05)

        with Serve("--max-forks", "1", "--", "cat") as server:
            self.assertEqual(run(scenario(server)), "pong")

    def test_threads_share_the_fork_limit(self):
        async def scenario(server):
            clients = [await connect(server.url) for _ in range(4)]
            for ws in clients:
                await ws.send("x")
                await asyncio.wait_for(ws.recv(), TIMEOUT)
            refused = 0
            for _ in range(4):
                try:
                    async with connect(server.url):
                        pass
                except Exception as e:
                    self.assertEqual(getattr(e, "status_code", None), 503, repr(e))
                    refused += 1
            for ws in clients:
                await ws.close()
            return refused

        with Serve("--threads", "2", "--max-forks", "4", "--", "cat") as server:
            self.assertEqual(run(scenario(server)), 4)


class Dir(unittest.TestCase):
    def test_each_executable_is_an_endpoint(self):
        with tempfile.TemporaryDirectory() as tmp:
            def script(name, body, mode=0o755):
                path = os.path.join(tmp, name)
                with open(path, "w") as f:
                    f.write("#!/bin/sh\n" + body)
                os.chmod(path, mode)

            script("hello", 'echo "hello $SCRIPT_NAME $PATH_INFO $QUERY_STRING"\n')
            script("count", "seq 3\n")
            script("plain", "echo no\n", mode=0o644)
            os.mkdir(os.path.join(tmp, "subdir"))

            async def get(server, path):
                async with connect(server.url.rstrip("/") + path) as ws:
                    return await receive_until_close(ws)

            async def status(server, path):
                try:
                    async with connect(server.url.rstrip("/") + path):
                        return 101
                except Exception as e:
                    return getattr(e, "status_code", repr(e))

            async def scenario(server):
                return (await get(server, "/hello/extra/path?q=1"), await get(server, "/count"),
                        [await status(server, p) for p in ("/plain", "/missing", "/subdir", "/", "/.hidden",
                                                           "/../hello")])

            with Serve("--dir", tmp) as server:
                hello, count, refused = run(scenario(server))
                self.assertEqual(hello, ["hello /hello /extra/path q=1"])
                self.assertEqual(count, ["1", "2", "3"])
                self.assertEqual(refused, [404] * 6)


class TypedLines(unittest.TestCase):
    def test_messages_reach_the_process_after_their_prefix_and_its_lines_go_as_their_prefix_says(self):
        async def scenario(server):
            async with connect(server.url) as ws:
                await ws.send("hi")
                await ws.send(b"\x00\xff")
                return [await asyncio.wait_for(ws.recv(), TIMEOUT) for _ in range(3)]

        # The process announces itself with a binary line (and one that is not base64), then says
        # what it got: each message as its stdin line, prefix and all.
        script = 'printf "B:!!\\nB:AAEC\\n"; exec sed -u "s/^/T:got /"'
        with Serve("--text-prefix", "T:", "--binary-prefix", "B:", "--base64", "--", "sh", "-c", script) as server:
            self.assertEqual(run(scenario(server)), [b"\x00\x01\x02", "got T:hi", "got B:AP8="])
            line = server.wait_stderr(r"not base64 after the binary prefix 'B:' \(--base64\): not sent")
            self.assertRegex(line, r"^wsl serve: \[\d+\] a line of the process's output")


class Stderr(unittest.TestCase):
    def test_stderr_lines_carry_the_connection_id(self):
        async def scenario(server):
            async with connect(server.url) as ws:
                await receive_until_close(ws)

        with Serve("--", "sh", "-c", "echo to stderr >&2; echo second line >&2; printf unterminated >&2") as server:
            run(scenario(server))
            first = server.wait_stderr(r"to stderr")
            self.assertRegex(first, r"^\[\d+\] to stderr$")
            self.assertRegex(server.wait_stderr("second line"), r"^\[\d+\] second line$")
            self.assertRegex(server.wait_stderr("unterminated"), r"^\[\d+\] unterminated$")


if __name__ == "__main__":
    unittest.main(verbosity=2)
