#!/usr/bin/python3
"""`wsl latency` against a server we did not write (or `wsl echo`).

    test_latency.py --peer websockets|ws|wsl [unittest options]

Figures are checked for presence and plausibility on loopback: every probe answered, RTTs above
zero and below a second, percentiles in order.
"""

import json
import re
import signal
import sys
import tempfile
import time
import unittest

from client_harness import TIMEOUT, Peer, Wsl, make_certificate, peer_from_argv, run_wsl, unused_port

PEER = peer_from_argv(sys.argv)
SANE_RTT_MS = 1000.0  # loopback; generous for a loaded machine or a sanitizer build

REPLY = re.compile(r"^(?P<bytes>\d+) bytes from 127\.0\.0\.1:\d+: seq=(?P<seq>\d+) time=(?P<ms>\d+\.\d{3}) ms$")
SUMMARY = re.compile(r"^(?P<sent>\d+) sent, (?P<received>\d+) received, (?P<loss>[\d.]+)% loss, time \d+ ms$")
RTT = re.compile(r"^rtt min/avg/p50/p90/p99/max/stddev = (?P<values>[\d./]+) ms$")


def latency(url, *options, timeout=TIMEOUT):
    return run_wsl("latency", *options, url, timeout=timeout)


def peer_independent(test):
    return unittest.skipIf(PEER != "websockets", "runs with the websockets peer only")(test)


class Figures(unittest.TestCase):
    def assert_plausible(self, rtt: dict):
        values = [rtt[k] for k in ("min", "avg", "p50", "p90", "p99", "max")]
        self.assertGreater(rtt["min"], 0, rtt)
        self.assertLess(rtt["max"], SANE_RTT_MS, rtt)
        self.assertLessEqual(rtt["min"], rtt["p50"], rtt)
        self.assertTrue(rtt["p50"] <= rtt["p90"] <= rtt["p99"] <= rtt["max"], rtt)
        self.assertTrue(rtt["min"] <= rtt["avg"] <= rtt["max"], rtt)
        self.assertGreaterEqual(rtt["stddev"], 0, rtt)
        self.assertTrue(all(v > 0 for v in values), rtt)

    def human(self, stdout: str):
        """The reply lines, the summary figures and the rtt figures of the human form."""
        lines = stdout.splitlines()
        self.assertRegex(lines[0], r"^LATENCY ws://127\.0\.0\.1:\d+/ \(127\.0\.0\.1:\d+\): \d+ bytes per (ping|message)$")
        replies = [REPLY.match(line) for line in lines if REPLY.match(line)]
        summary = next((SUMMARY.match(line) for line in lines if SUMMARY.match(line)), None)
        self.assertIsNotNone(summary, stdout)
        rtt = next((RTT.match(line) for line in lines if RTT.match(line)), None)
        self.assertTrue(any(re.match(r"^handshake \d+\.\d{3} ms \(tcp connect \d+\.\d{3} ms\)$", line) for line in lines),
                        stdout)
        names = ("min", "avg", "p50", "p90", "p99", "max", "stddev")
        figures = dict(zip(names, map(float, rtt["values"].split("/")))) if rtt else None
        return replies, summary, figures


class Echo(Figures):
    """Against an echo server that answers pings."""

    @classmethod
    def setUpClass(cls):
        cls.peer = Peer(PEER).__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.peer.__exit__()

    def test_ping_lines_and_summary(self):
        done = latency(self.peer.url, "-c", "5", "-i", "0.02")
        stdout = done.stdout.decode()
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stderr, b"")
        replies, summary, rtt = self.human(stdout)
        self.assertEqual([int(r["seq"]) for r in replies], [1, 2, 3, 4, 5], stdout)
        self.assertTrue(all(int(r["bytes"]) == 56 and 0 < float(r["ms"]) < SANE_RTT_MS for r in replies), stdout)
        self.assertEqual((summary["sent"], summary["received"], summary["loss"]), ("5", "5", "0"))
        self.assert_plausible(rtt)
        self.assertEqual(rtt["min"], min(float(r["ms"]) for r in replies))
        self.assertEqual(rtt["max"], max(float(r["ms"]) for r in replies))
        # p50 of five is the third smallest, within the histogram's 0.4% and the 1 us the lines show.
        third = sorted(float(r["ms"]) for r in replies)[2]
        self.assertAlmostEqual(rtt["p50"], third, delta=third * 0.004 + 0.001)

    def test_json_back_to_back(self):
        done = latency(self.peer.url, "-c", "200", "-i", "0", "--json")
        self.assertEqual(done.returncode, 0, done.stderr)
        lines = done.stdout.decode().splitlines()
        self.assertEqual(len(lines), 1, "one JSON object and nothing else")
        result = json.loads(lines[0])
        self.assertEqual((result["mode"], result["size"], result["sent"], result["received"], result["lost"]),
                         ("ping", 56, 200, 200, 0))
        self.assertEqual(result["loss_percent"], 0)
        self.assertEqual(result["url"], self.peer.url)
        self.assertFalse(result["interrupted"])
        self.assertGreater(result["handshake_ms"], 0)
        self.assertLess(result["handshake_ms"], SANE_RTT_MS)
        self.assertGreater(result["time_ms"], 0)
        self.assert_plausible(result["rtt_ms"])

    def test_ndjson_a_line_per_reply_then_the_summary(self):
        before = time.time()
        done = latency(self.peer.url, "-c", "5", "-i", "0.01", "--ndjson")
        after = time.time()
        self.assertEqual(done.returncode, 0, done.stderr)
        records = [json.loads(line) for line in done.stdout.decode().splitlines()]
        summary = records.pop()
        self.assertEqual(summary["type"], "summary")
        self.assertEqual((summary["sent"], summary["received"]), (5, 5))
        self.assertEqual([(r["type"], r["seq"], r["bytes"]) for r in records], [("reply", n, 56) for n in range(1, 6)])
        times = [r["time"] for r in records]
        self.assertEqual(times, sorted(times))
        self.assertTrue(before <= times[0] and times[-1] <= after, (before, times, after))
        rtts = [r["rtt_ms"] for r in records]
        self.assertEqual(summary["rtt_ms"]["min"], min(rtts))
        self.assertEqual(summary["rtt_ms"]["max"], max(rtts))
        self.assertEqual(latency(self.peer.url, "-c", "1", "--json", "--ndjson").returncode, 64)

    def test_message_mode(self):
        done = latency(self.peer.url, "--message", "-c", "5", "-i", "0", "-s", "300", "--json")
        self.assertEqual(done.returncode, 0, done.stderr)
        result = json.loads(done.stdout)
        self.assertEqual((result["mode"], result["size"], result["sent"], result["received"]), ("message", 300, 5, 5))
        self.assert_plausible(result["rtt_ms"])

    def test_ping_payload_sizes(self):
        for size in ("0", "1", "125"):
            with self.subTest(size=size):
                done = latency(self.peer.url, "-c", "2", "-i", "0", "-s", size)
                self.assertEqual(done.returncode, 0, done.stderr)
                replies, summary, _ = self.human(done.stdout.decode())
                self.assertEqual([r["bytes"] for r in replies], [size, size])
        self.assertEqual(latency(self.peer.url, "-c", "1", "-s", "126").returncode, 64)

    def test_sigint_prints_the_summary_so_far(self):
        with Wsl("latency", "-c", "0", "-i", "0.02", self.peer.url) as wsl:
            for _ in range(3):
                line = wsl.line()
                self.assertIsNotNone(line)
            while not REPLY.match(line.decode().rstrip("\n")):
                line = wsl.line()
            wsl.signal(signal.SIGINT)
            self.assertEqual(wsl.wait(), 130, wsl.stderr_text())
            replies, summary, rtt = self.human(wsl.stdout.data().decode())
            self.assertGreaterEqual(int(summary["received"]), 1)
            self.assertEqual(summary["sent"], summary["received"])
            self.assert_plausible(rtt)
        if self.peer.records_events:
            self.assertEqual(self.peer.wait_event("close", lambda e: e["code"] == 1001)["reason"], "interrupted")


class Server(Figures):
    """Servers that do not answer pings, refuse, never answer, or close."""

    def setUp(self):
        if PEER == "wsl":
            self.skipTest("needs a test peer")

    def test_header_and_subprotocol_before_the_url_take_one_value_each(self):
        # `-H 'X: a' URL`: the URL is not a second header value (nor a second subprotocol).
        with Peer(PEER, "echo", "--subprotocols", "chat.v2") as peer:
            done = run_wsl("latency", "-H", "X-Test: 42", "--subprotocol", "chat.v2", peer.url, "-c", "1")
            self.assertEqual(done.returncode, 0, done.stderr)
            opened = peer.wait_event("open")
            headers = {name.lower(): value for name, value in opened["headers"]}
            self.assertEqual(headers.get("x-test"), "42")
            self.assertEqual(headers.get("sec-websocket-protocol"), "chat.v2")

    def test_no_pong_fails_in_ping_mode(self):
        with Peer(PEER, "echo", "--no-pong") as peer:
            done = latency(peer.url, "-c", "3", "-i", "0", "-W", "0.2")
            stdout = done.stdout.decode()
            self.assertEqual(done.returncode, 1, stdout)
            replies, summary, rtt = self.human(stdout)
            self.assertEqual((replies, rtt), ([], None))
            self.assertEqual((summary["sent"], summary["received"], summary["loss"]), ("3", "0", "100"))
            self.assertEqual(stdout.count("no reply to seq="), 3, stdout)

    def test_no_pong_works_in_message_mode(self):
        with Peer(PEER, "echo", "--no-pong") as peer:
            done = latency(peer.url, "--message", "-c", "3", "-i", "0", "-W", "5")
            self.assertEqual(done.returncode, 0, done.stderr)
            replies, summary, rtt = self.human(done.stdout.decode())
            self.assertEqual(summary["received"], "3")
            self.assert_plausible(rtt)
            payloads = [bytes.fromhex(m["hex"]) for m in peer.messages(3)]
            self.assertEqual(len(set(payloads)), 3, "every probe is unique")
            self.assertTrue(all(len(p) == 56 for p in payloads), payloads)

    def test_json_when_nothing_came_back(self):
        with Peer(PEER, "echo", "--no-pong") as peer:
            done = latency(peer.url, "--json", "-c", "2", "-i", "0", "-W", "0.1")
            self.assertEqual(done.returncode, 1)
            result = json.loads(done.stdout)
            self.assertEqual((result["sent"], result["received"], result["loss_percent"], result["rtt_ms"]),
                             (2, 0, 100, None))

    def test_ndjson_lost_probes(self):
        with Peer(PEER, "echo", "--no-pong") as peer:
            done = latency(peer.url, "--ndjson", "-c", "2", "-i", "0", "-W", "0.1")
            self.assertEqual(done.returncode, 1)
            records = [json.loads(line) for line in done.stdout.decode().splitlines()]
            self.assertEqual([(r["type"], r["seq"]) for r in records[:-1]], [("lost", 1), ("lost", 2)])
            self.assertTrue(all("rtt_ms" not in r and r["time"] > 0 for r in records[:-1]), records)
            self.assertEqual((records[-1]["type"], records[-1]["sent"], records[-1]["received"]), ("summary", 2, 0))

    def test_wss(self):
        with tempfile.TemporaryDirectory() as directory:
            files = make_certificate(directory)
            if not files:
                self.skipTest("no openssl to make a certificate")
            with Peer(PEER, "echo", "--tls", *files) as peer:
                for mode in ([], ["--message"]):
                    done = latency(peer.url, "--cacert", files[0], "-c", "3", "-i", "0", "--json", *mode)
                    self.assertEqual(done.returncode, 0, done.stderr)
                    result = json.loads(done.stdout)
                    self.assertEqual(result["received"], 3)
                    self.assert_plausible(result["rtt_ms"])

    def test_handshake_refused_403(self):
        with Peer(PEER, "refuse") as peer:
            done = latency(peer.url, "-c", "1")
            self.assertEqual(done.returncode, 76, done.stderr)
            self.assertIn(b"HTTP 403", done.stderr)

    def test_server_never_answers_the_handshake(self):
        with Peer(PEER, "silent") as peer:
            done = latency(peer.url, "-c", "1", "--handshake-timeout", "1")
            self.assertEqual(done.returncode, 75, done.stderr)
            self.assertLess(done.elapsed, 1 + TIMEOUT / 2)

    def test_sigint_during_the_handshake(self):
        with Peer(PEER, "silent") as peer, Wsl("latency", peer.url) as wsl:
            peer.wait_event("tcp")
            wsl.signal(signal.SIGINT)
            self.assertEqual(wsl.wait(), 130, wsl.stderr_text())
            self.assertEqual(wsl.stdout.data(), b"")

    def test_server_closes_during_the_run(self):
        with Peer(PEER, "script", "--close-code", "1001", "--close-reason", "restarting") as peer:
            done = latency(peer.url, "-c", "5", "-i", "0.05", "-W", "1")
            stderr = done.stderr.decode()
            self.assertIn(done.returncode, (0, 1), stderr)  # a first pong may beat the close frame
            self.assertIn("server closed the connection: 1001", stderr)
            replies, summary, _ = self.human(done.stdout.decode())
            self.assertLessEqual(int(summary["sent"]), 1)
            self.assertEqual(done.returncode, 0 if summary["received"] == "1" else 1)


CONNECTED = re.compile(r"^upgraded by 127\.0\.0\.1:\d+: seq=(?P<seq>\d+) time=(?P<ms>\d+\.\d{3}) ms "
                       r"\((?P<phases>[a-z]+ \d+\.\d{3} ms(, [a-z]+ \d+\.\d{3} ms)*)\)$")


class Connect(Figures):
    """--connect: a new connection and upgrade per probe, timed in phases."""

    def setUp(self):
        if PEER == "wsl":
            self.skipTest("needs a test peer")

    def test_each_probe_is_a_connection_closed_with_1000(self):
        with Peer(PEER, "echo") as peer:
            done = latency(peer.url, "--connect", "-c", "3", "-i", "0.02")
            stdout = done.stdout.decode()
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertEqual(done.stderr, b"")
            lines = stdout.splitlines()
            self.assertEqual(lines[0], f"CONNECT {peer.url}: a new connection and upgrade per probe")
            probes = [CONNECTED.match(line) for line in lines if CONNECTED.match(line)]
            self.assertEqual([int(p["seq"]) for p in probes], [1, 2, 3], stdout)
            for probe in probes:
                # An address to connect to: no name to resolve, no TLS.
                phases = dict(part.rsplit(" ", 2)[:2] for part in probe["phases"].split(", "))
                self.assertEqual(list(phases), ["tcp", "upgrade"], stdout)
                self.assertLessEqual(sum(map(float, phases.values())), float(probe["ms"]) + 0.002, stdout)
            self.assertIn("3 connections, 3 upgraded, 0% failed, time ", stdout)
            self.assertRegex(stdout, r"\ntime min/avg/p50/p90/p99/max/stddev = [\d./]+ ms\n"
                                     r"phases avg tcp \d+\.\d{3}, upgrade \d+\.\d{3} ms\n")
            # The peer saw three connections, each closed by the client with 1000.
            self.assertEqual(len(peer.events_named("open", 3)), 3)
            self.assertEqual([e["code"] for e in peer.events_named("close", 3)], [1000] * 3)

    def test_json_and_ndjson(self):
        with Peer(PEER, "echo") as peer:
            done = latency(peer.url.replace("127.0.0.1", "localhost"), "--connect", "-c", "4", "-i", "0", "--json")
            self.assertEqual(done.returncode, 0, done.stderr)
            result = json.loads(done.stdout)
            self.assertEqual((result["mode"], result["sent"], result["upgraded"], result["failed"]),
                             ("connect", 4, 4, 0))
            self.assert_plausible(result["connect_time_ms"])
            phases = result["phases_avg_ms"]
            self.assertEqual(phases["tls"], 0)
            self.assertTrue(all(phases[k] > 0 for k in ("resolve", "tcp", "upgrade")), phases)
            self.assertLess(sum(phases.values()), result["connect_time_ms"]["avg"] * 1.01, result)
            done = latency(peer.url, "--connect", "-c", "2", "-i", "0", "--ndjson")
            records = [json.loads(line) for line in done.stdout.decode().splitlines()]
            self.assertEqual([(r["type"], r.get("seq")) for r in records],
                             [("upgraded", 1), ("upgraded", 2), ("summary", None)])
            for r in records[:2]:
                self.assertGreater(r["connect_time_ms"], r["tcp_ms"] + r["upgrade_ms"] - 0.001, r)
            self.assertEqual(records[-1]["connect_time_ms"]["max"],
                             max(r["connect_time_ms"] for r in records[:2]))

    def test_wss_has_a_tls_phase(self):
        with tempfile.TemporaryDirectory() as directory:
            files = make_certificate(directory)
            with Peer(PEER, "echo", "--tls", *files) as peer:
                done = latency(peer.url, "--cacert", files[0], "--connect", "-c", "2", "-i", "0")
                self.assertEqual(done.returncode, 0, done.stderr)
                for line in done.stdout.decode().splitlines()[1:3]:
                    self.assertRegex(line, r"\(tcp [\d.]+ ms, tls [\d.]+ ms, upgrade [\d.]+ ms\)$")
                # Verification fails on every probe: each says so, and the exit status is TLS's.
                done = latency(peer.url, "--connect", "-c", "2", "-i", "0")
                self.assertEqual(done.returncode, 77, done.stdout)
                self.assertEqual(done.stdout.decode().count("failed: TLS verification failed"), 2, done.stdout)

    def test_failed_probes_are_counted_and_the_run_goes_on(self):
        with Peer(PEER, "refuse") as peer:
            done = latency(peer.url, "--connect", "-c", "2", "-i", "0", "--ndjson")
            self.assertEqual(done.returncode, 76, done.stderr)
            records = [json.loads(line) for line in done.stdout.decode().splitlines()]
            self.assertEqual([(r["type"], r.get("http_status")) for r in records[:2]], [("failed", 403)] * 2)
            self.assertIn("HTTP 403", records[0]["error"])
            self.assertEqual((records[2]["sent"], records[2]["upgraded"], records[2]["failed"]), (2, 0, 2))
        with Peer(PEER, "silent") as peer:
            done = latency(peer.url, "--connect", "-c", "2", "-i", "0", "-W", "0.3")
            self.assertEqual(done.returncode, 75, done.stderr)
            self.assertEqual(done.stdout.decode().count("failed: no upgrade within 300ms"), 2, done.stdout)
            self.assertLess(done.elapsed, 0.6 + TIMEOUT / 2)
        done = latency(f"ws://127.0.0.1:{unused_port()}/", "--connect", "-c", "2", "-i", "0")
        self.assertEqual(done.returncode, 69, done.stderr)
        self.assertEqual(done.stdout.decode().count("failed: Connection refused"), 2, done.stdout)

    def test_sigint_prints_the_summary_so_far(self):
        with Peer(PEER, "echo") as peer, Wsl("latency", "--connect", "-c", "0", "-i", "0.05", peer.url) as wsl:
            peer.events_named("close", 2)
            wsl.signal(signal.SIGINT)
            self.assertEqual(wsl.wait(), 130, wsl.stderr_text())
            stdout = wsl.stdout.data().decode()
            self.assertRegex(stdout, r"\n(\d+) connections, \1 upgraded, 0% failed")

    def test_usage_errors(self):
        for options in (["-s", "10"], ["--message"]):
            with self.subTest(options=options):
                self.assertEqual(latency(f"ws://127.0.0.1:{unused_port()}/", "--connect", *options).returncode, 64)


class NoServer(unittest.TestCase):
    @peer_independent
    def test_nobody_listening(self):
        done = latency(f"ws://127.0.0.1:{unused_port()}/", "-c", "1")
        self.assertEqual(done.returncode, 69, done.stderr)
        self.assertEqual(done.stdout, b"")

    @peer_independent
    def test_usage_errors(self):
        url = f"ws://127.0.0.1:{unused_port()}/"
        for options in (["-s", "126"], ["-W", "0"], ["-c", "x"], ["-i", "-1"], ["--message", "-s", "2M",
                                                                               "--max-message-size", "1M"]):
            with self.subTest(options=options):
                self.assertEqual(latency(url, *options).returncode, 64)


if __name__ == "__main__":
    unittest.main()
