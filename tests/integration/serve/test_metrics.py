#!/usr/bin/python3
"""--metrics PATH (wsl echo, wsl serve): the counters in Prometheus' text format, checked against what
python3-websockets clients did and against the server's own access lines."""

import asyncio
import base64
import os
import re
import signal
import tempfile
import time
import unittest

from serve_harness import TIMEOUT, RawClient, Serve, connect, raw_get, run, run_wsl

SAMPLE = re.compile(r'^([a-z_]+)(?:\{([a-z_]+)="([^"]*)"\})? (\S+)$')  # one label at most here


def parse(text):
    """The exposition as {(name, label value or None): value}, checking its syntax on the way: every
    sample belongs to a family announced by HELP and TYPE lines just before it."""
    samples, announced = {}, set()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("# HELP "):
            name = line.split()[2]
            if not lines[i + 1].startswith(f"# TYPE {name} "):
                raise AssertionError(f"HELP without TYPE: {line!r}")
            if lines[i + 1].split()[3] not in ("counter", "gauge", "histogram"):
                raise AssertionError(f"unknown type: {lines[i + 1]!r}")
            announced.add(name)
            continue
        if line.startswith("# TYPE "):
            continue
        match = SAMPLE.match(line)
        if not match:
            raise AssertionError(f"not a sample: {line!r}")
        name, _, label, value = match.groups()
        family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in announced else name
        if family not in announced:
            raise AssertionError(f"sample of an unannounced family: {line!r}")
        samples[(name, label)] = float(value)
    return samples


def scrape(port, **kwargs):
    response = raw_get(port, "/metrics", **kwargs)
    if response.status != 200:
        raise AssertionError(f"/metrics answered {response.status}: {response.body!r}")
    if response.headers["content-type"] != "text/plain; version=0.0.4; charset=utf-8":
        raise AssertionError(f"content type {response.headers['content-type']!r}")
    return parse(response.body.decode())


def scrape_until(port, predicate, what):
    """Scrapes until `predicate` holds: byte counts and round trips are published once a second."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        samples = scrape(port)
        if predicate(samples):
            return samples
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} never showed; last scrape: {samples}")
        time.sleep(0.1)


class Counters(unittest.TestCase):
    def test_counters_follow_what_clients_did(self):
        with Serve("--metrics", "/metrics", "--threads", "2", "-v", subcommand="echo") as server:
            first = scrape(server.port)
            self.assertEqual(first[("wsl_connections_total", None)], 0)
            self.assertEqual(first[("wsl_connections_open", None)], 0)
            version = run_wsl("--version").stdout.split()[1]
            self.assertEqual(first[("wsl_build_info", version)], 1)

            key = ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13"]

            def requests_then_scrape():
                self.assertEqual(raw_get(server.port, "/", extra=key).status, 400)  # no Sec-WebSocket-Key
                self.assertEqual(raw_get(server.port, "/other").status, 426)
                self.assertEqual(raw_get(server.port, "/metrics", method="POST").status, 405)
                with RawClient(server.port):  # ends before sending a request: answered with nothing
                    pass
                server.wait_stderr(r"access .* - - - ")
                return scrape(server.port)

            async def scenario():
                async with connect(server.url) as a:
                    await a.send("x" * 100)
                    self.assertEqual(await asyncio.wait_for(a.recv(), TIMEOUT), "x" * 100)
                async with connect(server.url) as b:
                    await b.send(bytes(1000))
                    self.assertEqual(await asyncio.wait_for(b.recv(), TIMEOUT), bytes(1000))
                    await b.close(4001, "done")
                async with connect(server.url) as c:  # open while the server is asked
                    await c.send("still open")
                    await asyncio.wait_for(c.recv(), TIMEOUT)
                    return await asyncio.get_running_loop().run_in_executor(None, requests_then_scrape)

            samples = run(scenario())
            self.assertEqual(samples[("wsl_connections_total", None)], 3)
            self.assertEqual(samples[("wsl_connections_open", None)], 1)
            self.assertEqual(samples[("wsl_connections_closed_total", "1000")], 1)
            self.assertEqual(samples[("wsl_connections_closed_total", "4xxx")], 1)
            self.assertEqual(samples[("wsl_http_requests_total", "101")], 3)
            self.assertEqual(samples[("wsl_http_requests_total", "400")], 1)
            self.assertEqual(samples[("wsl_http_requests_total", "426")], 1)
            self.assertEqual(samples[("wsl_http_requests_total", "405")], 1)
            self.assertEqual(samples[("wsl_http_requests_total", "200")], 1)  # the first scrape
            self.assertEqual(samples[("wsl_http_requests_total", "none")], 1)
            # The three upgrades' handshake times: cumulative buckets, +Inf the count.
            buckets = [(float(label), value) for (name, label), value in samples.items()
                       if name == "wsl_handshake_duration_seconds_bucket"]
            self.assertEqual([b for b, _ in buckets], sorted(b for b, _ in buckets))
            self.assertEqual([n for _, n in buckets], sorted(n for _, n in buckets))
            self.assertEqual(buckets[-1], (float("inf"), 3))
            self.assertEqual(samples[("wsl_handshake_duration_seconds_count", None)], 3)
            self.assertGreater(samples[("wsl_handshake_duration_seconds_sum", None)], 0)
            self.assertLess(samples[("wsl_handshake_duration_seconds_sum", None)], 3 * TIMEOUT)
            self.assertGreater(samples[("process_resident_memory_bytes", None)], 1 << 20)
            self.assertGreater(samples[("process_open_fds", None)], 3)
            self.assertGreater(samples[("process_cpu_seconds_total", None)], 0)
            self.assertLessEqual(samples[("process_start_time_seconds", None)], time.time())

            # Every connection's bytes, as the access lines count them, once the threads have published.
            server.wait_stderr(r"access .* \[3\] .* close=")
            lines = re.findall(r"^wsl echo: access .* \[\d+\] .* close=.*$", server.stderr.text(), re.M)
            self.assertEqual(len(lines), 3, lines)
            received = sum(int(re.search(r" in=(\d+) ", line)[1]) for line in lines)
            sent = sum(int(re.search(r" out=(\d+) ", line)[1]) for line in lines)
            self.assertGreater(received, 1100)
            samples = scrape_until(server.port, lambda s: s[("wsl_received_bytes_total", None)] == received and
                                   s[("wsl_sent_bytes_total", None)] == sent, f"{received} bytes in, {sent} out")
            self.assertEqual(samples[("wsl_connections_open", None)], 0)
            self.assertEqual(samples[("wsl_connections_closed_total", "1000")], 2)

    def test_round_trips_of_the_open_connections(self):
        with Serve("--metrics", "/metrics", "--ping-interval", "100ms", subcommand="echo") as server:
            async def scenario():
                clients = [await connect(server.url) for _ in range(3)]
                try:
                    # python3-websockets answers pings from its own reading task while the loop
                    # runs: the scrapes wait in another thread.
                    return await asyncio.get_running_loop().run_in_executor(
                        None, scrape_until, server.port, lambda s: s[("wsl_connections_measured", None)] == 3,
                        "three connections measured")
                finally:
                    for ws in clients:
                        await ws.close()

            samples = run(scenario())
            quantiles = [samples[("wsl_connection_rtt_seconds", q)] for q in ("0", "0.5", "0.9", "0.99", "1")]
            self.assertEqual(quantiles, sorted(quantiles))
            self.assertGreater(quantiles[0], 0)
            self.assertLess(quantiles[-1], 1)


class Access(unittest.TestCase):
    def test_basic_auth_covers_the_metrics(self):
        with tempfile.TemporaryDirectory(prefix="wsl-metrics-") as tmp:
            users = os.path.join(tmp, "users")
            with open(users, "w") as f:
                f.write("prometheus:scrape\n")
            with Serve("--metrics", "/metrics", "--basic-auth-file", users, "--pipe") as server:
                self.assertEqual(raw_get(server.port, "/metrics").status, 401)
                token = base64.b64encode(b"prometheus:scrape").decode()
                samples = scrape(server.port, extra=[f"Authorization: Basic {token}"])
                self.assertEqual(samples[("wsl_http_requests_total", "401")], 1)

    def test_a_listener_of_their_own(self):
        # --metrics-listen: the main port's clients do not reach them, the scraper's port has nothing else.
        with Serve("--metrics", "/metrics", "--metrics-listen", "127.0.0.1:0", subcommand="echo") as server:
            line = server.wait_stderr(r"^metrics on ")
            port = int(re.fullmatch(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", line)[1])

            async def scenario():
                async with connect(server.url) as ws:  # the main port serves WebSockets as ever
                    await ws.send("hi")
                    await asyncio.wait_for(ws.recv(), TIMEOUT)
                try:
                    async with connect(f"ws://127.0.0.1:{port}/metrics"):
                        return None
                except Exception as e:
                    return getattr(e, "status_code", repr(e))

            self.assertEqual(run(scenario()), 404)  # no WebSocket on the metrics port
            self.assertEqual(scrape(port)[("wsl_connections_total", None)], 1)
            self.assertEqual(raw_get(server.port, "/metrics").status, 426)
            self.assertEqual(raw_get(port, "/").status, 404)
            os.kill(server.pid, signal.SIGINT)
            self.assertEqual(server.wait(), 130)  # both listeners stop

    def test_head_gets_the_length_only_and_the_path_must_be_one(self):
        with Serve("--metrics", "/internal/metrics", subcommand="echo") as server:
            head = raw_get(server.port, "/internal/metrics", method="HEAD")
            self.assertEqual((head.status, head.body), (200, b""))
            self.assertGreater(int(head.headers["content-length"]), 500)
            self.assertEqual(raw_get(server.port, "/metrics").status, 426)
        for bad in ("metrics", "/metrics?x=1"):
            result = run_wsl("echo", "--port", "0", "--metrics", bad)
            self.assertEqual(result.returncode, 64, result.stderr)
            self.assertEqual(result.stderr.strip(),
                             f"wsl echo: --metrics {bad}: a path from '/', without a query")
        result = run_wsl("echo", "--port", "0", "--metrics", "/m", "--metrics-listen", "9100")
        self.assertEqual((result.returncode, result.stderr.strip()),
                         (64, "wsl echo: --metrics-listen '9100': expected HOST:PORT ([ADDRESS]:PORT for IPv6)"))
        result = run_wsl("echo", "--port", "0", "--metrics-listen", "127.0.0.1:0")
        self.assertEqual(result.returncode, 64, result.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
