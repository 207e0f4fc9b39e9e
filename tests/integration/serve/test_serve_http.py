#!/usr/bin/python3
"""The HTTP side shared by `wsl serve` and `wsl echo`: --origin and --same-origin (403), --header, --subprotocol,
--static (files, content types, no escape from the directory, the size bound), --basic-auth-file (401) and the -v
access log.
"""

import asyncio
import http.client
import os
import re
import signal
import tempfile
import unittest

from serve_harness import OP_TEXT, TIMEOUT, RawClient, Serve, connect, raw_get, receive_until_close, run, run_wsl


async def status_of(url, **options):
    try:
        async with connect(url, **options) as ws:
            return 101, ws
    except Exception as e:
        return getattr(e, "status_code", repr(e)), None


class Origin(unittest.TestCase):
    def check(self, server):
        async def scenario():
            results = {}
            for origin in ("https://app.example.com", "https://evil.example.net", "http://localhost:3000",
                           "http://localhost", "null", None):
                status, _ = await status_of(server.url, origin=origin)
                results[origin] = status
            return results

        self.assertEqual(run(scenario()), {
            "https://app.example.com": 101, "https://evil.example.net": 403, "http://localhost:3000": 101,
            "http://localhost": 101, "null": 403, None: 101,
        })

    def test_serve_refuses_other_origins_with_403(self):
        with Serve("--origin", "https://*.example.com", "--origin", "localhost", "--pipe") as server:
            self.check(server)

    def test_echo_refuses_other_origins_with_403(self):
        with Serve("--origin", "https://*.example.com", "--origin", "localhost:*", subcommand="echo",
                   stdin=False) as server:
            self.check(server)

    def test_the_opaque_origin_null_passes_only_when_allowed_by_name(self):
        # What a page opened from a file: URL sends.
        async def scenario(url):
            return [(await status_of(url, origin=origin))[0] for origin in ("null", "http://localhost", None)]

        with Serve("--origin", "null", subcommand="echo", stdin=False) as server:
            self.assertEqual(run(scenario(server.url)), [101, 403, 101])
        with Serve("--origin", "*", subcommand="echo", stdin=False) as server:
            self.assertEqual(run(scenario(server.url)), [101, 101, 101])

    def test_same_origin_takes_the_servers_own_origin_and_the_patterns(self):
        async def scenario(url, port):
            origins = (f"http://127.0.0.1:{port}", f"https://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}",
                       "http://127.0.0.1", f"http://localhost:{port}", f"http://127.0.0.1:{port}.evil.test",
                       "https://app.example.com", "null", None)
            return [(await status_of(url, origin=origin))[0] for origin in origins]

        with Serve("--same-origin", subcommand="echo", stdin=False) as server:
            self.assertEqual(run(scenario(server.url, server.port)), [101, 101, 403, 403, 403, 403, 403, 403, 101])
        with Serve("--same-origin", "--origin", "https://*.example.com", "--", "cat") as server:
            self.assertEqual(run(scenario(server.url, server.port)), [101, 101, 403, 403, 403, 403, 101, 403, 101])


class Headers(unittest.TestCase):
    def test_headers_go_on_every_response_and_the_subprotocol_is_ours_to_choose(self):
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "index.html"), "w") as f:
                f.write("<p>hi</p>")
            with Serve("--header", "X-Served-By: wsl test", "--header", "Cache-Control: no-store",
                       "--subprotocol", "v2.chat", "--subprotocol", "v1.chat", "--origin", "localhost",
                       "--static", tmp, "--", "cat") as server:
                async def scenario():
                    async with connect(server.url, subprotocols=["v1.chat", "v2.chat"]) as ws:
                        upgrade = (ws.subprotocol, ws.response_headers.get("X-Served-By"))
                    async with connect(server.url, subprotocols=["v1.chat", "other"]) as ws:
                        second = ws.subprotocol
                    async with connect(server.url, subprotocols=["other"]) as ws:
                        none = ws.subprotocol
                    return upgrade, second, none

                upgrade, second, none = run(scenario())
                self.assertEqual(upgrade, ("v2.chat", "wsl test"))
                self.assertEqual((second, none), ("v1.chat", None))
                page = raw_get(server.port, "/")
                self.assertEqual((page.status, page.header("X-Served-By")), (200, "wsl test"))
                refused = raw_get(server.port, "/", extra=["Upgrade: websocket", "Connection: Upgrade",
                                                            "Sec-WebSocket-Version: 13",
                                                            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                                                            "Origin: http://elsewhere"])
                self.assertEqual((refused.status, refused.header("X-Served-By")), (403, "wsl test"))
                # The refusals the library decides itself, which no hook sees, carry them too.
                upgrade = ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13"]
                for extra, status in ((upgrade + ["Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                                                  "Sec-WebSocket-Version: 8"], 426),
                                      (upgrade + ["Sec-WebSocket-Key: short"], 400),
                                      (["X-Filler: " + "f" * 20000], 431)):
                    with self.subTest(status=status):
                        library = raw_get(server.port, "/", extra=extra)
                        self.assertEqual((library.status, library.header("X-Served-By"),
                                          library.header("Cache-Control")), (status, "wsl test", "no-store"))


class Static(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        root = os.path.join(cls.tmp.name, "www")
        os.makedirs(os.path.join(root, "sub"))
        files = {"index.html": b"<!doctype html><p>page</p>", "app.js": b"console.log(1)", "style.css": b"p{}",
                 "sub/data.json": b'{"a": 1}', "sub/index.html": b"sub index", "img.png": b"\x89PNG....",
                 "notes.unknownext": b"?", ".secret": b"hidden", "big.bin": b"x" * 70000}
        for name, data in files.items():
            with open(os.path.join(root, name), "wb") as f:
                f.write(data)
        with open(os.path.join(cls.tmp.name, "outside.txt"), "w") as f:
            f.write("outside the root")
        os.symlink(os.path.join(cls.tmp.name, "outside.txt"), os.path.join(root, "link-out"))
        os.symlink(os.path.join(root, "app.js"), os.path.join(root, "link-in.js"))
        cls.root = root

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_files_with_their_content_types(self):
        with Serve("--static", self.root, "--static-max-size", "64K", "--pipe") as server:
            expected = {"/": (200, "text/html; charset=utf-8", b"<!doctype html><p>page</p>"),
                        "/app.js": (200, "text/javascript; charset=utf-8", b"console.log(1)"),
                        "/style.css": (200, "text/css; charset=utf-8", b"p{}"),
                        "/sub/data.json": (200, "application/json", b'{"a": 1}'),
                        "/sub/": (200, "text/html; charset=utf-8", b"sub index"),
                        "/img.png": (200, "image/png", b"\x89PNG...."),
                        "/notes.unknownext": (200, "application/octet-stream", b"?"),
                        "/link-in.js": (200, "text/javascript; charset=utf-8", b"console.log(1)"),
                        "/app.js?v=3": (200, "text/javascript; charset=utf-8", b"console.log(1)"),
                        "/%61pp.js": (200, "text/javascript; charset=utf-8", b"console.log(1)")}
            for target, (status, content_type, body) in expected.items():
                response = raw_get(server.port, target)
                self.assertEqual((response.status, response.header("Content-Type"), response.body),
                                 (status, content_type, body), target)
            # http.client as a browser-like client: keep the plain request path honest too.
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
            connection.request("GET", "/sub/data.json")
            response = connection.getresponse()
            self.assertEqual((response.status, response.read()), (200, b'{"a": 1}'))
            connection.close()

    def test_a_connection_is_kept_for_the_next_request_and_each_is_logged(self):
        # http.client keeps one connection for requests in turn (HTTP/1.1 keep-alive), as a browser
        # does for a page's files; every request gets its access line, and a WebSocket may follow.
        with Serve("--static", self.root, "--pipe", "-v") as server:
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
            answers, ports, hints = [], set(), []
            for method, target in (("GET", "/"), ("GET", "/app.js"), ("HEAD", "/style.css"), ("GET", "/missing")):
                connection.request(method, target)
                response = connection.getresponse()
                answers.append((response.status, response.read(), response.getheader("Connection")))
                hints.append(response.getheader("Keep-Alive"))
                ports.add(connection.sock.getsockname()[1])
            # How long it waits for the next request (--handshake-timeout) and how many more it takes.
            self.assertEqual(hints, [f"timeout=10, max={n}" for n in (99, 98, 97, 96)])
            self.assertEqual(answers, [(200, b"<!doctype html><p>page</p>", "keep-alive"),
                                       (200, b"console.log(1)", "keep-alive"), (200, b"", "keep-alive"),
                                       (404, b"not found\n", "keep-alive")])
            self.assertEqual(len(ports), 1, "one connection for the four requests")
            port = ports.pop()
            for method, target, status in (("GET", "/", 200), ("GET", "/app.js", 200), ("HEAD", "/style.css", 200),
                                           ("GET", "/missing", 404)):
                server.wait_stderr(rf"access .* \[-\] 127\.0\.0\.1:{port} {method} {re.escape(target)} {status} ")
            # The client leaves: no line for that (nothing was asked).
            connection.close()
            with RawClient(server.port) as client:  # and an upgrade after a file, on one connection
                client.send(f"GET /app.js HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
                self.assertEqual(client.read_http_response().body, b"console.log(1)")
                client.handshake()
                client.send_frame(OP_TEXT, b"after a file")
                self.assertEqual(server.wait_stdout(lambda out: b"after a file\n" in out), b"after a file\n")
            server.wait_stderr(r"access .* \[\d+\] 127\.0\.0\.1:\d+ GET / 101 ")
            # Five plain requests, five lines: none for http.client's leaving an idle connection.
            self.assertEqual(len(re.findall(r"access .* \[-\] ", server.stderr.text())), 5, server.stderr.text())
            self.assertNotRegex(server.stderr.text(), r"handshake failed|End of file")

    def test_connections_kept_alive_do_not_keep_the_websocket_out(self):
        # A browser loads a page's files over a few connections and keeps them; with a per-address
        # bound that they would fill, its websocket still gets in, and they still serve files.
        with Serve("--static", self.root, "--max-connections-per-ip", "2", subcommand="echo", stdin=False) as server:
            browser = [http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT) for _ in range(2)]
            for connection, target in zip(browser, ("/", "/app.js")):
                connection.request("GET", target)
                self.assertEqual(connection.getresponse().read()[:2], b"<!" if target == "/" else b"co")

            async def scenario():
                async with connect(server.url) as ws:
                    await ws.send("past two idle connections")
                    return await ws.recv()

            self.assertEqual(run(scenario()), "past two idle connections")
            for connection in browser:
                port = connection.sock.getsockname()[1]
                connection.request("GET", "/style.css")
                self.assertEqual(connection.getresponse().read(), b"p{}")
                self.assertEqual(connection.sock.getsockname()[1], port, "the same connection")
                connection.close()

    def test_an_idle_connection_kept_alive_gives_its_handshake_slot_to_a_new_one(self):
        # One handshake at a time, and a connection kept alive holds it: the websocket takes its
        # place at once (not after --handshake-timeout), and the idle connection is closed.
        with Serve("--static", self.root, "--max-pending-handshakes", "1", "--handshake-timeout", "1h",
                   subcommand="echo", stdin=False) as server:
            idle = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
            idle.request("GET", "/app.js")
            self.assertEqual(idle.getresponse().read(), b"console.log(1)")

            async def scenario():
                async with connect(server.url, open_timeout=TIMEOUT) as ws:
                    await ws.send("in its place")
                    return await ws.recv()

            self.assertEqual(run(scenario()), "in its place")
            self.assertEqual(idle.sock.recv(1), b"", "closed, with nothing sent")
            idle.close()

    def test_keep_alive_requests_1_closes_after_each_answer(self):
        with Serve("--static", self.root, "--pipe", "--keep-alive-requests", "1") as server:
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
            for target in ("/", "/app.js"):  # http.client connects again for the second
                connection.request("GET", target)
                response = connection.getresponse()
                self.assertEqual((response.status, response.getheader("Connection")), (200, "close"))
                response.read()
            connection.close()

    def test_escapes_and_refusals(self):
        with Serve("--static", self.root, "--static-max-size", "64K", "--pipe") as server:
            cases = {"/../outside.txt": 403, "/sub/../../outside.txt": 403, "/%2e%2e/outside.txt": 403,
                     "/sub/%2E%2E/%2e%2e/outside.txt": 403, "/link-out": 403, "/.secret": 404,
                     "/missing.html": 404, "/big.bin": 403, "/%zz": 400, "/a%00b": 400}
            for target, status in cases.items():
                response = raw_get(server.port, target)
                self.assertEqual(response.status, status, target)
                self.assertNotIn(b"outside the root", response.body, target)
            self.assertEqual(raw_get(server.port, "/app.js", method="POST").status, 405)
            moved = raw_get(server.port, "/sub")
            self.assertEqual((moved.status, moved.header("Location")), (301, "/sub/"))

    def test_head_and_not_modified(self):
        with Serve("--static", self.root, "--pipe") as server:
            head = raw_get(server.port, "/app.js", method="HEAD")
            self.assertEqual((head.status, head.header("Content-Length"), head.body), (200, "14", b""))
            again = raw_get(server.port, "/app.js", extra=[f"If-Modified-Since: {head.header('Last-Modified')}"])
            self.assertEqual((again.status, again.body), (304, b""))

    def test_a_page_and_its_websocket_share_the_port(self):
        with Serve("--static", self.root, subcommand="echo", stdin=False) as server:
            self.assertEqual(raw_get(server.port, "/").status, 200)

            async def scenario():
                async with connect(server.url) as ws:
                    await ws.send("same port")
                    return await ws.recv()

            self.assertEqual(run(scenario()), "same port")

    def test_without_static_a_plain_request_gets_426(self):
        with Serve("--pipe") as server:
            self.assertEqual(raw_get(server.port, "/").status, 426)


class DevConsole(unittest.TestCase):
    """The page itself is tried in a browser (test_browser.py); here, what any HTTP client sees."""

    def test_any_path_gets_the_page_with_a_strict_policy_and_the_websocket_still_works(self):
        with Serve("--devconsole", subcommand="echo", stdin=False) as server:
            for target in ("/", "/chat/room?x=1"):
                page = raw_get(server.port, target)
                self.assertEqual((page.status, page.header("Content-Type")), (200, "text/html; charset=utf-8"), target)
                self.assertIn(b"<title>wsl console</title>", page.body)
                self.assertEqual(page.header("Content-Length"), str(len(page.body)))
            policy = page.header("Content-Security-Policy")
            self.assertIn("default-src 'none'", policy)
            self.assertIn("connect-src ws: wss:", policy)
            self.assertNotIn("http", policy)  # nothing from elsewhere: no scripts, styles or images
            head = raw_get(server.port, "/", method="HEAD")
            self.assertEqual((head.status, head.header("Content-Length"), head.body), (200, str(len(page.body)), b""))
            post = raw_get(server.port, "/", method="POST")
            self.assertEqual((post.status, post.header("Allow")), (405, "GET, HEAD"))
            self.assertEqual(raw_get(server.port, "/favicon.ico").status, 404)

            async def scenario():
                async with connect(server.url + "chat/room?x=1") as ws:
                    await ws.send("still a server")
                    return await ws.recv()

            self.assertEqual(run(scenario()), "still a server")

    def test_not_with_static(self):
        with tempfile.TemporaryDirectory() as tmp:
            for args in (["echo"], ["serve", "--pipe"], ["serve", "--", "cat"]):
                result = run_wsl(args[0], "--port", "0", "--devconsole", "--static", tmp, *args[1:])
                self.assertEqual(result.returncode, 64, f"{args}: {result.stderr}")
                self.assertIn("--static excludes --devconsole", result.stderr)


class AccessLog(unittest.TestCase):
    def test_one_line_per_connection_at_v(self):
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "index.html"), "w") as f:
                f.write("page")
            with Serve("-v", "--static", tmp, "--origin", "localhost", "--", "sh", "-c", "read x; exit 2") as server:
                async def scenario():
                    async with connect(server.url + "chat?room=1") as ws:
                        await ws.send("hello")
                        await receive_until_close(ws)
                    await status_of(server.url, origin="http://evil")

                run(scenario())
                raw_get(server.port, "/")
                upgraded = server.wait_stderr(r"access .* GET /chat\?room=1 101")
                self.assertRegex(upgraded, r"^wsl serve: access \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[\d+\] "
                                           r"127\.0\.0\.1:\d+ GET /chat\?room=1 101 [\d.]+m?s in=25 out=10 close=1011$")
                # in/out are WebSocket bytes on the wire: "hello" is 5 + 6 (masked header), the
                # client's close 2 + 6; our close carries 1011 and "exit 1" (10 bytes in all).
                self.assertRegex(server.wait_stderr(r"access .* 403"), r"\[-\] 127\.0\.0\.1:\d+ GET / 403 .* out=\d+")
                self.assertRegex(server.wait_stderr(r"access .* 200"), r"\[-\] 127\.0\.0\.1:\d+ GET / 200 .* out=\d+")


    def test_access_log_file_appended_and_opened_again_at_sighup(self):
        line = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[\d+\] 127\.0\.0\.1:\d+ GET /PATH 101 .* close=1000$"
        with tempfile.TemporaryDirectory() as tmp:
            log = os.path.join(tmp, "access.log")

            async def visit(server, path, then=None):
                async with connect(server.url + path) as ws:
                    await ws.send("x")
                    await asyncio.wait_for(ws.recv(), TIMEOUT)
                    if then:
                        await asyncio.get_running_loop().run_in_executor(None, then)

            # Once the server has exited, every line is in the file (one write each, nothing buffered).
            with Serve("-v", "--access-log", log, subcommand="echo") as server:
                run(visit(server, "first"))
                self.assertEqual(raw_get(server.port, "/plain").status, 426)
                server.proc.send_signal(signal.SIGINT)
                self.assertEqual(server.wait(), 130)
                self.assertNotIn(" access ", server.stderr.text(), "the lines go to the file only")
            with open(log) as f:
                first = f.read().splitlines()
            self.assertEqual(len(first), 2, first)
            self.assertRegex(first[0], line.replace("PATH", "first"))
            self.assertRegex(first[1], r"\[-\] 127\.0\.0\.1:\d+ GET /plain 426 .*\(not a WebSocket upgrade request\)$")

            # logrotate: the file moved away while a connection is open; SIGHUP; the connection's
            # line, written as it ends, goes to the new file. A second server appended, not truncated.
            def rotate():
                os.rename(log, log + ".1")
                server.proc.send_signal(signal.SIGHUP)
                self.assertEqual(server.wait_stderr("SIGHUP"), f"wsl echo: SIGHUP: reopened the access log {log}")

            with Serve("--access-log", log, subcommand="echo") as server:
                run(visit(server, "second", then=rotate))
                server.proc.send_signal(signal.SIGINT)
                self.assertEqual(server.wait(), 130)
            with open(log + ".1") as f:
                self.assertEqual(f.read().splitlines(), first)
            with open(log) as f:
                second = f.read().splitlines()
            self.assertEqual(len(second), 1, second)
            self.assertRegex(second[0], line.replace("PATH", "second"))
            # A path that cannot be opened: one line, exit 1.
            done = run_wsl("echo", "--port", "0", "--access-log", os.path.join(tmp, "no", "such", "dir"))
            self.assertEqual((done.returncode, done.stderr.count("\n")), (1, 1), done.stderr)
            self.assertIn("cannot open the access log", done.stderr)

    def test_vv_shows_each_request_head_and_what_was_answered(self):
        with Serve("-vv", "--origin", "localhost", "--subprotocol", "chat", "--pipe") as server:
            async def scenario():
                headers = {"Authorization": "Bearer s3cret", "X-Debug": "one"}
                async with connect(server.url + "in?x=1", subprotocols=["other", "chat"], extra_headers=headers) as ws:
                    await ws.send("hi")
                    await asyncio.get_running_loop().run_in_executor(None, server.wait_stdout, lambda o: o == b"hi\n")
                return await status_of(server.url + "refused", origin="http://evil.example")

            self.assertEqual(run(scenario())[0], 403)
            err = server.stderr
            peer = re.escape(server.wait_stderr(r"< GET /in\?x=1 HTTP/1\.1$").split()[2])  # "wsl serve: PEER < ..."
            # In the order they came and went (lines are taken in order).
            for line in (r"< Sec-WebSocket-Protocol: other, chat$", r"< Authorization: Bearer \*\*\*$", r"< X-Debug: one$",
                         r"> 101 Switching Protocols, subprotocol chat$"):
                self.assertRegex(server.wait_stderr(f"{peer} {line}"), f"^wsl serve: {peer} {line}")
            server.wait_stderr(r"< GET /refused HTTP/1\.1$")
            server.wait_stderr(r"< Origin: http://evil\.example$")
            server.wait_stderr(r"> 403 Forbidden$")
            self.assertNotIn("s3cret", err.text())


class BasicAuth(unittest.TestCase):
    """--basic-auth-file: python3-websockets sends a URL's user:password as Basic credentials."""

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="wsl-auth-")
        self.addCleanup(self.dir.cleanup)
        self.file = os.path.join(self.dir.name, "users")
        with open(self.file, "wb") as f:
            f.write(b"# who may connect\nalice:s3cret\n\nbob:pa:ss\ncarol:crlf\r\n")

    def test_upgrades_need_a_line_of_the_file(self):
        with Serve("--basic-auth-file", self.file, "-v", subcommand="echo") as server:
            async def scenario():
                for user in ("alice:s3cret", "bob:pa:ss", "carol:crlf"):  # a ':' in a password; a CRLF line
                    async with connect(f"ws://{user}@127.0.0.1:{server.port}/") as ws:
                        await ws.send(user)
                        self.assertEqual(await asyncio.wait_for(ws.recv(), TIMEOUT), user)
                return [(await status_of(f"ws://{user}127.0.0.1:{server.port}/"))[0]
                        for user in ("alice:wrong@", "alice:s3cret2@", "mallory:s3cret@", "alice:@", "")]

            self.assertEqual(run(scenario()), [401] * 5)
            server.wait_stderr(r" /: wrong credentials for user 'alice': 401$")
            server.wait_stderr(r" /: no credentials: 401$")
            # What a browser or curl gets: the challenge that makes them ask.
            response = raw_get(server.port, "/chat", extra=["Upgrade: websocket", "Connection: Upgrade",
                                                            "Sec-WebSocket-Version: 13",
                                                            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                                                            "Authorization: Bearer not-basic"])
            self.assertEqual(response.status, 401)
            self.assertEqual(response.headers["www-authenticate"], 'Basic realm="wsl", charset="UTF-8"')
            self.assertEqual(response.body, b"authentication required\n")

    def test_files_need_them_too(self):
        with open(os.path.join(self.dir.name, "index.html"), "w") as f:
            f.write("<p>private</p>")
        with Serve("--basic-auth-file", self.file, "--static", self.dir.name, subcommand="echo") as server:
            self.assertEqual(raw_get(server.port, "/").status, 401)
            ok = raw_get(server.port, "/", extra=["Authorization: basic YWxpY2U6czNjcmV0"])  # alice:s3cret
            self.assertEqual((ok.status, ok.body), (200, b"<p>private</p>"))

    def test_a_command_learns_the_user_and_never_the_password(self):
        with Serve("--basic-auth-file", self.file, "--", "sh", "-c",
                   'echo "$AUTH_TYPE $REMOTE_USER ${HTTP_AUTHORIZATION:-none}"') as server:
            async def scenario():
                async with connect(f"ws://bob:pa:ss@127.0.0.1:{server.port}/") as ws:
                    return await asyncio.wait_for(ws.recv(), TIMEOUT)

            self.assertEqual(run(scenario()), "Basic bob none")

    def test_a_bad_file_is_a_usage_error_that_shows_no_line(self):
        for content, why in ((b"alice:ok\nsecret-without-colon\n", "line 2 is not 'user:password'"),
                             (b":nouser\n", "line 1 is not 'user:password'"),
                             (b"# nothing\n\n", "no 'user:password' line")):
            with self.subTest(content=content):
                with open(self.file, "wb") as f:
                    f.write(content)
                done = run_wsl("echo", "--port", "0", "--basic-auth-file", self.file)
                self.assertEqual(done.returncode, 64, done.stderr)
                self.assertEqual(done.stderr, f"wsl echo: --basic-auth-file {self.file}: {why}\n")
        done = run_wsl("serve", "--port", "0", "--pipe", "--basic-auth-file", self.file + ".missing")
        self.assertEqual(done.returncode, 64, done.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
