#!/usr/bin/python3
"""`wsl loadtest` against a server we did not write (or `wsl echo`).

    test_loadtest.py --peer websockets|ws|wsl [unittest options]

Against an echo server every message sent during the measurement comes back, so the figures are
checked exactly where they can be (messages received equal messages sent, every connection opened
and closed with 1000, echoed bytes equal sent bytes) and for plausibility elsewhere (round trips
above zero, below a second, percentiles in order; an open-loop rate close to the one asked for).
"""

import json
import os
import re
import signal
import sys
import tempfile
import time
import unittest

from client_harness import TIME_SCALE, TIMEOUT, Peer, Wsl, peer_from_argv, run_wsl, unused_port

PEER = peer_from_argv(sys.argv)
KIND = "websockets" if PEER == "wsl" else PEER  # for the servers wsl echo cannot stand in for
SANE_RTT_NS = 1e9  # loopback; generous for a loaded machine or a sanitizer build

TIME = r"[\d.]+ [um]?s"
PROGRESS = re.compile(rf"^\[ *\d+\.\ds\] open \d+  sent [\d.]+k?/s  received [\d.]+k?/s  p50 ({TIME}|-)  p99 ({TIME}|-)  "
                      r"errors \d+$")


def loadtest(url, *options, timeout=TIMEOUT * 3):
    return run_wsl("loadtest", url, *options, timeout=timeout)


class Figures(unittest.TestCase):
    def assert_percentiles(self, h: dict, count: int):
        self.assertEqual(h["count"], count, h)
        self.assertGreater(h["min"], 0, h)
        self.assertLess(h["max"], SANE_RTT_NS, h)
        self.assertTrue(h["min"] <= h["p50"] <= h["p90"] <= h["p99"] <= h["p999"] <= h["max"], h)
        # The histogram reports values within 1% of the recorded ones: the mean lies within the range.
        self.assertTrue(h["min"] * 0.99 <= h["mean"] <= h["max"] * 1.01, h)

    def run_json(self, url, *options):
        done = loadtest(url, "--json", *options)
        self.assertEqual(done.returncode, 0, done.stderr)
        lines = done.stdout.decode().splitlines()
        self.assertEqual(len(lines), 1, "one JSON object and nothing else on stdout")
        return json.loads(lines[0]), done

    def assert_all_echoed(self, r: dict, connections: int, size: int):
        self.assertEqual((r["opened"], r["failed"], r["errors"], r["failures"]), (connections, 0, 0, {}), r)
        self.assertGreater(r["sent"], 0, r)
        self.assertEqual(r["received"], r["sent"], "every message sent in the measurement is echoed and counted")
        self.assertEqual(r["close_codes"], {"1000": connections})
        self.assertFalse(r["interrupted"])
        self.assertEqual(r["payload_bytes_received"], r["payload_bytes_sent"])
        self.assertGreaterEqual(r["payload_bytes_sent"], r["sent"] * size)
        self.assertEqual(r["payload_bytes_sent"] % size if size else 0, 0)
        # Frames add at least 2 bytes a message each way; a client masks (4 bytes more).
        self.assertGreaterEqual(r["wire_bytes_sent"], r["payload_bytes_sent"] + 6 * (r["payload_bytes_sent"] // max(size, 1)))
        # Rates over the window ("seconds" is printed to the millisecond: 0.2% slack).
        rate = r["sent"] / r["seconds"]
        self.assertAlmostEqual(r["sent_per_second"], rate, delta=max(1, 0.002 * rate))
        self.assertAlmostEqual(r["bytes_sent_per_second"], rate * size, delta=max(size, 0.002 * rate * size))
        self.assert_percentiles(r["rtt_ns"], r["received"])
        self.assert_percentiles(r["handshake_ns"], connections)


class AgainstOneEchoServer(Figures):
    """One echo server of the kind under test for every test of the class: `self.peer`."""

    @classmethod
    def setUpClass(cls):
        cls.peer = Peer(PEER).__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.peer.__exit__()


class Echo(AgainstOneEchoServer):
    """Against an echo server."""

    def test_closed_loop_text(self):
        r, done = self.run_json(self.peer.url, "-c", "4", "-d", "500ms", "-s", "32", "--verify")
        self.assertEqual((r["connections"], r["size"], r["binary"], r["rate"], r["inflight"]), (4, 32, False, 0, 1))
        self.assertEqual(r["url"], self.peer.url)
        self.assertAlmostEqual(r["seconds"], 0.5, delta=0.25)
        self.assert_all_echoed(r, 4, 32)
        self.assertGreater(r["cpu_seconds"], 0)
        # The measurement starts as the last connection opens, not at the control thread's next look.
        self.assertLess(r["connect_seconds"], r["handshake_ns"]["max"] / 1e9 + 0.03 * TIME_SCALE, r)

    def test_closed_loop_binary_with_several_in_flight(self):
        r, _ = self.run_json(self.peer.url, "-c", "2", "-d", "400ms", "-s", "3000", "--binary", "--inflight", "4",
                             "--verify", "--threads", "2")
        self.assertEqual((r["binary"], r["inflight"], r["threads"]), (True, 4, 2))
        self.assert_all_echoed(r, 2, 3000)

    def test_large_messages(self):
        # Above the inline path's limit: a sender and a receiver per connection.
        r, _ = self.run_json(self.peer.url, "-c", "2", "-d", "400ms", "-s", "200K", "--binary", "--verify")
        self.assertEqual(r["size"], 200 * 1024)
        self.assert_all_echoed(r, 2, 200 * 1024)

    def test_payload_file(self):
        with tempfile.TemporaryDirectory() as directory:
            binary = os.path.join(directory, "payload.bin")
            with open(binary, "wb") as f:
                f.write(bytes(range(256)) * 11 + b"\xff\xfe")  # not UTF-8
            text = os.path.join(directory, "payload.json")
            with open(text, "wb") as f:
                f.write('{"op":"subscribe","topic":"prix/€"}'.encode())
            r, _ = self.run_json(self.peer.url, "-c", "2", "-d", "300ms", "--payload-file", binary, "--binary", "--verify")
            self.assertEqual((r["size"], r["binary"]), (2818, True))
            self.assert_all_echoed(r, 2, 2818)
            r, _ = self.run_json(self.peer.url, "-c", "2", "-d", "300ms", "--payload-file", text, "--verify")
            self.assertEqual((r["size"], r["binary"]), (len('{"op":"subscribe","topic":"prix/€"}'.encode()), False))
            self.assert_all_echoed(r, 2, r["size"])
            for options in (["--payload-file", binary], ["--payload-file", text, "-s", "10"],
                            ["--payload-file", os.path.join(directory, "missing")], ["--payload-file", directory]):
                with self.subTest(options=options):
                    done = loadtest(self.peer.url, "-c", "1", "-d", "200ms", *options)
                    self.assertEqual(done.returncode, 64, done.stderr)
                    self.assertEqual(done.stdout, b"")
                    self.assertEqual(len(done.stderr.decode().splitlines()), 1, done.stderr)

    def messages_in(self, total: int, sizes: list) -> int:
        """How many messages of these sizes, taken in turn, make `total` bytes."""
        count, sum_ = 0, 0
        while sum_ < total:
            sum_, count = sum_ + sizes[count % len(sizes)], count + 1
        self.assertEqual(sum_, total, "whole messages, the lines in turn")
        return count

    def test_payloads_sends_the_lines_in_turn(self):
        lines = ['{"n":%d,"pad":"%s"}' % (i, "é" * 3 * i) for i in range(7)]
        sizes = [len(line.encode()) for line in lines]
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "lines.ndjson")
            with open(path, "wb") as f:  # a CRLF and an empty line, both left out of the messages
                f.write(("\n".join(lines[:3]) + "\r\n\n" + "\n".join(lines[3:]) + "\n").encode())
            # Every echo checked against the line its message carried, closed loop and open loop.
            for options in (["--inflight", "3"], ["-r", "600"]):
                with self.subTest(options=options):
                    r, _ = self.run_json(self.peer.url, "-c", "3", "-d", "300ms", "--payloads", path, "--verify", *options)
                    self.assertEqual((r["payloads"], r["size"]), (7, max(sizes)))
                    self.assertEqual((r["opened"], r["failed"], r["errors"]), (3, 0, 0), r)
                    self.assertGreater(r["sent"], 0, r)
                    self.assertEqual((r["received"], r["payload_bytes_received"]), (r["sent"], r["payload_bytes_sent"]))
                    self.assertEqual(r["close_codes"], {"1000": 3})
            # One connection's messages, as a server got them: the lines in order, round and round.
            with Peer(KIND, "relay") as peer:
                r, _ = self.run_json(peer.url, "-c", "1", "-r", "50", "-d", "300ms", "--reply", "none", "--payloads", path)
                count = self.messages_in(r["payload_bytes_sent"], sizes)
                self.assertGreater(count, 7, "the lines came round again")
                got = [bytes.fromhex(m["hex"]).decode() for m in peer.messages(count)]
            self.assertEqual(got, [lines[i % 7] for i in range(count)])
            # With --stamp, each line has its own place for the stamp.
            stamped = os.path.join(directory, "stamped.ndjson")
            with open(stamped, "w") as f:
                f.write('{"a":"{{stamp}}"}\n{"b":1,"at":"{{stamp}}"}\n')
            with Peer(KIND, "relay") as peer:
                r, _ = self.run_json(peer.url, "-c", "1", "-r", "50", "-d", "300ms", "--reply", "none", "--stamp",
                                     "--payloads", stamped)
                count = self.messages_in(r["payload_bytes_sent"], [len('{"a":""}') + 20, len('{"b":1,"at":""}') + 20])
                got = [bytes.fromhex(m["hex"]).decode() for m in peer.messages(count)]
            self.assertGreater(len(got), 3)
            for i, text in enumerate(got):
                self.assertRegex(text, [r'^\{"a":"wsl@[0-9a-f]{16}"\}$', r'^\{"b":1,"at":"wsl@[0-9a-f]{16}"\}$'][i % 2])
            # Binary lines with --binary; what is wrong is a usage error.
            binary = os.path.join(directory, "lines.bin")
            with open(binary, "wb") as f:
                f.write(b"\xff\x00a\n\xfe\xfd\n")
            r, _ = self.run_json(self.peer.url, "-c", "2", "-d", "300ms", "--payloads", binary, "--binary", "--verify")
            self.assertEqual((r["payloads"], r["size"], r["binary"]), (2, 3, True))
            self.assertEqual((r["opened"], r["errors"], r["received"]), (2, 0, r["sent"]), r)
            empty = os.path.join(directory, "empty")
            with open(empty, "w") as f:
                f.write("\n\r\n")
            for options in (["--payloads", binary], ["--payloads", path, "-s", "10"], ["--payloads", empty],
                            ["--payloads", path, "--payload-file", path], ["--payloads", os.path.join(directory, "no")],
                            ["--payloads", path, "--reply", "none", "--stamp", "-r", "10"]):
                with self.subTest(options=options):
                    done = loadtest(self.peer.url, "-c", "1", "-d", "200ms", *options)
                    self.assertEqual(done.returncode, 64, done.stderr)
                    self.assertEqual(done.stdout, b"")
                    self.assertEqual(len(done.stderr.decode().splitlines()), 1, done.stderr)

    def test_messages_per_connection_churns_connections(self):
        r, _ = self.run_json(self.peer.url, "-c", "2", "-d", "600ms", "--messages-per-connection", "5", "--verify")
        self.assertEqual(r["messages_per_connection"], 5)
        self.assertGreater(r["opened"], 2, "connections were replaced")
        self.assertEqual((r["failed"], r["errors"], r["failures"]), (0, 0, {}), r)
        self.assertEqual(r["received"], r["sent"])
        # Each connection closed by us with 1000, answered 1000; each handshake timed.
        self.assertEqual(r["close_codes"], {"1000": r["opened"]})
        self.assertEqual(r["handshake_ns"]["count"], r["opened"])
        self.assertGreater(r["opened_per_second"], 0)
        # Every connection but the two open at the end sent exactly 5 (in every phase).
        total = r["payload_bytes_sent"] // 32
        self.assertTrue(5 * (r["opened"] - 2) <= total <= 5 * r["opened"], (total, r["opened"]))
        self.assertEqual(r["payload_bytes_received"], r["payload_bytes_sent"])
        done = loadtest(self.peer.url, "-c", "1", "-r", "100", "--messages-per-connection", "5")
        self.assertEqual(done.returncode, 64, done.stderr)
        self.assertEqual(len(done.stderr.decode().splitlines()), 1, done.stderr)

    def test_open_loop_keeps_the_rate(self):
        r, _ = self.run_json(self.peer.url, "-c", "2", "-d", "1s", "-r", "200", "--warmup", "200ms")
        self.assertEqual(r["rate"], 200)
        self.assert_all_echoed(r, 2, 32)
        # Sends are scheduled by time, not by replies: about 200 in the second.
        self.assertTrue(150 <= r["sent"] <= 250, r["sent"])

    def test_open_loop_messages_due_in_one_window_leave_together(self):
        # 100 messages of each connection are due in each 100 ms window: they go in gathered
        # writes (of at most 64), which the server must take apart into messages like any other.
        r, _ = self.run_json(self.peer.url, "-c", "2", "-d", "1s", "-r", "2k", "--send-window", "100ms",
                             "--warmup", "200ms", "--verify")
        self.assertEqual(r["rate"], 2000, "-r takes a k suffix, as --stage's rates do")
        self.assert_all_echoed(r, 2, 32)
        self.assertTrue(1800 <= r["sent"] <= 2200, r["sent"])

    def test_open_loop_at_a_low_rate_ends_with_the_measurement(self):
        # Each connection's next message is 20 s away when the 300 ms measurement ends: its sender
        # must stop then, and the connections close cleanly, well within the 30 s drain.
        done = loadtest(self.peer.url, "--json", "-c", "2", "-d", "300ms", "-r", "0.1", "--drain", "30s")
        self.assertEqual(done.returncode, 0, done.stderr)
        r = json.loads(done.stdout)
        self.assertEqual((r["opened"], r["errors"], r["failures"], r["close_codes"]), (2, 0, {}, {"1000": 2}), r)
        self.assertEqual(r["received"], r["sent"])
        self.assertLess(done.elapsed, 5 * TIME_SCALE, "the run waited for the next message's time")

    def test_human_summary_and_progress_lines(self):
        done = loadtest(self.peer.url, "-c", "3", "-d", "1200ms")
        self.assertEqual(done.returncode, 0, done.stderr)
        out = done.stdout.decode()
        self.assertRegex(out, rf"^{re.escape(self.peer.url)}: 3 connections, 32-byte text messages, closed loop, "
                              r"1 in flight per connection, 1\.\d s\n")
        self.assertRegex(out, r"\n  connections  3 opened, 0 failed\n")
        sent, received = map(int, re.search(r"\n  messages     sent (\d+) \(.*\)  received (\d+) ", out).groups())
        self.assertEqual(sent, received)
        self.assertGreater(sent, 0)
        self.assertRegex(out, r"\n  round trip   p50 [\d.]+ [um]?s  p90 .* p99 .* p99\.9 .* max ")
        self.assertRegex(out, r"\n  close codes  1000 x 3\n")
        # Not a terminal: one plain progress line a second on stderr.
        progress = [line for line in done.stderr.decode().splitlines() if PROGRESS.match(line)]
        self.assertGreaterEqual(len(progress), 1, done.stderr)
        self.assertEqual(done.stderr.decode().count("\r"), 0)

    def test_quiet_prints_no_progress(self):
        done = loadtest(self.peer.url, "-c", "1", "-d", "1100ms", "-q")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stderr, b"")
        self.assertIn(b"  messages     sent", done.stdout)

    def test_sigint_prints_the_summary_so_far(self):
        for mode in ([], ["-r", "400"]):  # closed loop, open loop
            with self.subTest(mode=mode), Wsl("loadtest", self.peer.url, "-c", "2", "-d", "60s", "--json", *mode,
                                              stdin=None) as wsl:
                wsl.stderr_until("open 2", timeout=TIMEOUT)  # the first progress line: measuring
                wsl.signal(signal.SIGINT)
                self.assertEqual(wsl.wait(), 130, wsl.stderr_text())
                r = json.loads(wsl.stdout.data())
                self.assertTrue(r["interrupted"])
                self.assertEqual(r["opened"], 2)
                self.assertGreater(r["received"], 0)
                self.assertLessEqual(r["sent"] - r["received"], 2, "at most the messages in flight are missing")
                self.assertLess(r["seconds"], 30)
                # Dropping the connections is our doing, not a failure of the server's.
                self.assertEqual((r["errors"], r["failures"]), (0, {}), r)


class Intervals(AgainstOneEchoServer):
    """--ndjson: a record per --interval of the measurement, then the summary."""

    def assert_intervals_add_up(self, intervals: list, summary: dict):
        self.assertGreaterEqual(len(intervals), 1)
        for i in intervals:
            self.assertEqual(i["type"], "interval")
            # Counted and timed on the workers' threads together: an interval's round trips are
            # those of its echoes.
            self.assertEqual(i["rtt_ns"]["count"], i["received"], i)
            if i["received"]:
                self.assert_percentiles(i["rtt_ns"], i["received"])
            # The rate over the interval's length, printed to the microsecond (a last interval cut
            # short by Ctrl-C may last less than a millisecond).
            self.assertAlmostEqual(i["sent_per_second"] * i["seconds"], i["sent"], delta=1 + 0.002 * i["sent"])
            self.assertEqual(i["errors"], 0)
        times = [i["t"] for i in intervals]
        self.assertEqual(times, sorted(times))
        self.assertAlmostEqual(times[-1], summary["seconds"], delta=0.002)
        self.assertAlmostEqual(sum(i["seconds"] for i in intervals), summary["seconds"], delta=0.001 * len(intervals))
        # Every message sent in the measurement is in one interval; echoes that came in the drain
        # are in the summary only.
        self.assertEqual(sum(i["sent"] for i in intervals), summary["sent"])
        self.assertLessEqual(sum(i["received"] for i in intervals), summary["received"])
        self.assertGreater(sum(i["received"] for i in intervals), 0)

    def test_a_record_per_interval_then_the_summary(self):
        done = loadtest(self.peer.url, "-c", "3", "-d", "1s", "--interval", "200ms", "--ndjson", "-q")
        self.assertEqual(done.returncode, 0, done.stderr)
        records = [json.loads(line) for line in done.stdout.decode().splitlines()]
        summary = records.pop()
        self.assertEqual(summary["type"], "summary")
        self.assert_all_echoed(summary, 3, 32)
        # Five intervals of 200 ms, fewer only if the machine stalled past the end.
        self.assertLessEqual(len(records), 5)
        if len(records) == 5:
            for i in records:
                self.assertAlmostEqual(i["seconds"], 0.2, delta=0.1 * TIME_SCALE)
        self.assert_intervals_add_up(records, summary)
        for i in records:
            self.assertEqual(i["open"], 3)

    def test_records_come_while_the_run_goes_on_and_ctrl_c_ends_them(self):
        with Wsl("loadtest", self.peer.url, "-c", "2", "-d", "60s", "--interval", "100ms", "--ndjson", "-q",
                 stdin=None) as wsl:
            first = wsl.line()
            # (No stderr_text() here: it waits for stderr to end, that is for the run's end.)
            self.assertIsNotNone(first)
            self.assertEqual(json.loads(first)["type"], "interval")
            wsl.signal(signal.SIGINT)
            self.assertEqual(wsl.wait(), 130, wsl.stderr_text())
            records = [json.loads(line) for line in wsl.stdout.data().decode().splitlines()]
        summary = records.pop()
        self.assertEqual(summary["type"], "summary")
        self.assertTrue(summary["interrupted"])
        self.assertLess(summary["seconds"], 5 * TIME_SCALE, "Ctrl-C ended the run soon after the first record")
        self.assert_intervals_add_up(records, summary)

    def test_progress_lines_follow_the_interval(self):
        done = loadtest(self.peer.url, "-c", "2", "-d", "1s", "--interval", "250ms")
        self.assertEqual(done.returncode, 0, done.stderr)
        progress = [line for line in done.stderr.decode().splitlines() if PROGRESS.match(line)]
        self.assertTrue(1 <= len(progress) <= 4, done.stderr)
        # The first at about 250 ms, not at the default 1 s.
        self.assertLess(float(re.match(r"\[ *([\d.]+)s\]", progress[0])[1]), 1.0, progress)
        self.assertNotIn("p50 -", progress[0], "the first interval has round trips")

    def test_stages_ramp_the_rate(self):
        # From 200 to 1000 msgs/s over 1 s: 600 messages, 75, 125, 175 and 225 in its quarters.
        done = loadtest(self.peer.url, "-c", "4", "-r", "200", "--stage", "1s:1k", "--interval", "250ms", "--ndjson",
                        "-q")
        self.assertEqual(done.returncode, 0, done.stderr)
        records = [json.loads(line) for line in done.stdout.decode().splitlines()]
        summary = records.pop()
        self.assertEqual((summary["rate"], summary["stages"]), (200, [{"seconds": 1.0, "target": 1000}]))
        self.assertAlmostEqual(summary["seconds"], 1.0, delta=0.1 * TIME_SCALE, msg="-d is the stages' length")
        self.assert_all_echoed(summary, 4, 32)
        self.assertTrue(570 <= summary["sent"] <= 630, summary["sent"])
        self.assert_intervals_add_up(records, summary)
        if len(records) == 4:
            sent = [i["sent"] for i in records]
            self.assertLess(sent[0] + sent[1], sent[2] + sent[3], sent)  # about 200 against 400
            for got, expected in zip(sent, (75, 125, 175, 225)):
                self.assertAlmostEqual(got, expected, delta=25 * TIME_SCALE, msg=sent)

    def test_a_run_frozen_across_its_end_still_measures_its_duration(self):
        # SIGSTOP freezes the whole run (its workers and its control thread) from about 0.75 s to
        # 1.25 s, across the end of its one second: resumed, the control thread is late to end the
        # measurement, as on a machine too loaded to wake it in time. The window is still one
        # second, and nothing sent after its end is counted (400 due at most, and one at 0).
        with Wsl("loadtest", self.peer.url, "-c", "1", "-r", "400", "-d", "1s", "--interval", "250ms", "--ndjson",
                 "-q") as wsl:
            for _ in range(3):  # the records at 0.25, 0.5 and 0.75 s
                self.assertIsNotNone(wsl.line())
            wsl.signal(signal.SIGSTOP)
            time.sleep(0.5)  # the freeze itself, not a wait for something to happen
            wsl.signal(signal.SIGCONT)
            self.assertEqual(wsl.wait(), 0, wsl.stderr_text())
            records = [json.loads(line) for line in wsl.stdout.data().decode().splitlines()]
        summary = records.pop()
        self.assertEqual(summary["seconds"], 1.0, summary)
        self.assertLessEqual(summary["sent"], 401, summary)
        self.assert_all_echoed(summary, 1, 32)
        self.assert_intervals_add_up(records, summary)

    def test_stages_from_zero_are_open_loop_and_a_rate_of_zero_sends_nothing(self):
        # -r 0 with stages starts the ramp from nothing (closed loop would send thousands).
        r, _ = self.run_json(self.peer.url, "-c", "2", "-r", "0", "--stage", "500ms:400")
        self.assert_all_echoed(r, 2, 32)
        self.assertTrue(80 <= r["sent"] <= 120, r["sent"])  # 100 due
        # Down to 0 in 500 ms, then nothing for the rest of -d: the senders wait, and still end with
        # the measurement.
        done = loadtest(self.peer.url, "-c", "2", "-r", "400", "--stage", "500ms:0", "-d", "1s", "--interval",
                        "250ms", "--ndjson", "-q")
        self.assertEqual(done.returncode, 0, done.stderr)
        records = [json.loads(line) for line in done.stdout.decode().splitlines()]
        summary = records.pop()
        self.assert_all_echoed(summary, 2, 32)
        self.assertTrue(90 <= summary["sent"] <= 101, summary["sent"])  # 100 due
        self.assertAlmostEqual(summary["seconds"], 1.0, delta=0.1 * TIME_SCALE)
        self.assertLess(done.elapsed, 5 * TIME_SCALE)
        # The last quarter has nothing due (and nothing left from before, unless 250 ms late).
        last = [i["sent"] for i in records if i["t"] > 0.8 and i["t"] - i["seconds"] >= 0.7]
        self.assertEqual(last, [0] * len(last), records)
        for stage in ("10s", "0s:100", "1s:fast"):
            with self.subTest(stage=stage):
                done = loadtest(self.peer.url, "-c", "1", "--stage", stage)
                self.assertEqual(done.returncode, 64, done.stderr)
                self.assertEqual(len(done.stderr.decode().splitlines()), 1, done.stderr)
                self.assertIn("--stage: ", done.stderr.decode())

    def test_json_and_ndjson_exclude_each_other_and_the_interval_is_bounded(self):
        for options in (["--json", "--ndjson"], ["--interval", "5ms"], ["--interval", "0"]):
            with self.subTest(options=options):
                done = loadtest(self.peer.url, "-c", "1", "-d", "200ms", *options)
                self.assertEqual(done.returncode, 64, done.stderr)
                self.assertEqual(done.stdout, b"")
                self.assertEqual(len(done.stderr.decode().splitlines()), 1, done.stderr)


class Thresholds(AgainstOneEchoServer):
    """--threshold METRIC OP VALUE: exit 1 when one is missed, each verdict in the summary and the JSON."""

    def test_thresholds_that_hold_exit_0_with_the_values_they_compared(self):
        held = [f"p99<{TIMEOUT}s", "p99.9<=1h", "max<1h", "handshake.max<1h", "lost==0", "opened==3", "failed==0",
                "errors==0", "received/s>0", "sent>=1"]
        options = [o for t in held for o in ("--threshold", t)]
        r, done = self.run_json(self.peer.url, "-c", "3", "-d", "300ms", "-q", *options)
        self.assert_all_echoed(r, 3, 32)
        self.assertEqual([v["threshold"] for v in r["thresholds"]], held)
        self.assertEqual([v["ok"] for v in r["thresholds"]], [True] * len(held))
        value = {v["threshold"]: v["value"] for v in r["thresholds"]}
        # Each verdict compared the figure the report shows, not another one.
        self.assertEqual(value[held[0]], r["rtt_ns"]["p99"])
        self.assertEqual(value["p99.9<=1h"], r["rtt_ns"]["p999"])
        self.assertEqual(value["max<1h"], r["rtt_ns"]["max"])
        self.assertEqual(value["handshake.max<1h"], r["handshake_ns"]["max"])
        self.assertEqual((value["lost==0"], value["opened==3"], value["failed==0"], value["errors==0"]), (0, 3, 0, 0))
        self.assertAlmostEqual(value["received/s>0"], r["received_per_second"], delta=0.1)
        self.assertEqual(value["sent>=1"], r["sent"])
        self.assertEqual(done.stderr, b"", "nothing on stderr when every threshold holds")

    def test_a_missed_threshold_exits_1_and_says_which(self):
        done = loadtest(self.peer.url, "-c", "2", "-d", "300ms", "-q", "--threshold", "p50 < 1us",
                        "--threshold", "lost==0", "--threshold", "received/s>=1G")
        self.assertEqual(done.returncode, 1, done.stderr)
        out = done.stdout.decode()
        p50 = re.search(r"\n  round trip   p50 ([\d.]+ [um]?s) ", out)
        self.assertIsNotNone(p50, out)
        rate = re.search(r"received \d+ \(([\d.]+k?)/s\)", out)
        self.assertIsNotNone(rate, out)
        # On loopback no round trip takes under a microsecond: the first threshold cannot hold.
        self.assertIn(f"\n  threshold    p50<1us  FAILED ({p50[1]})\n", out)
        self.assertIn("\n  threshold    lost==0  ok (0)\n", out)
        self.assertIn(f"\n  threshold    received/s>=1G  FAILED ({rate[1]}/s)\n", out)
        self.assertEqual(done.stderr.decode(), f"wsl loadtest: 2 thresholds failed: p50<1us ({p50[1]}), "
                                               f"received/s>=1G ({rate[1]}/s)\n")

    def test_failed_connections_can_fail_the_run(self):
        # wsl echo takes 2 connections and answers the third 503: the run itself succeeds (exit 0)
        # unless the user asked for no failures.
        with Peer("wsl", "echo", "--max-connections", "2") as server:
            r, _ = self.run_json(server.url, "-c", "3", "-d", "200ms", "--max-connecting", "1")
            self.assertEqual((r["opened"], r["failed"], r["failures"]), (2, 1, {"HTTP 503": 1}), r)
            done = loadtest(server.url, "-c", "3", "-d", "200ms", "--max-connecting", "1", "--json", "-q",
                            "--threshold", "failed==0")
        self.assertEqual(done.returncode, 1, done.stderr)
        self.assertEqual(json.loads(done.stdout)["thresholds"], [{"threshold": "failed==0", "value": 1, "ok": False}])
        self.assertEqual(done.stderr, b"wsl loadtest: threshold failed: failed==0 (1)\n")

    def test_nothing_measured_fails_a_threshold_but_the_connect_failure_decides_the_status(self):
        port = unused_port()
        done = loadtest(f"ws://127.0.0.1:{port}/", "-c", "1", "-d", "200ms", "--json", "--threshold", "p99<1h")
        self.assertEqual(done.returncode, 69, done.stderr)
        self.assertEqual(json.loads(done.stdout)["thresholds"], [{"threshold": "p99<1h", "value": None, "ok": False}])


class Stall(Figures):
    """Open loop against a server that stops reading: round trips count from when messages were due."""

    def test_a_stall_is_charged_to_the_server(self):
        # 50 messages/s of 256 KiB for 2 s on one connection; the server reads nothing for its first
        # 1.5 s. The few messages that fit in the socket buffers leave on time, the rest the moment
        # the server reads again. Counted from when each was due, the round trips spread over the
        # whole stall: 75 of the 100 were due during it, so half of them exceed 0.3 s. Counted from
        # when they left (coordinated omission), only those few buffered ones would.
        kind = "websockets" if PEER == "wsl" else PEER  # wsl echo does not stall
        with Peer(kind, "echo", "--stall", "1.5") as peer:
            r, _ = self.run_json(peer.url, "-c", "1", "-d", "2s", "-r", "50", "-s", "256K", "--binary")
        self.assertEqual((r["opened"], r["errors"], r["received"]), (1, 0, r["sent"]), r)
        # Sent by the schedule, late or not: 50 a second of the window (2 s, longer when the
        # control thread woke late on a loaded machine), less the last few whose writes were still
        # going on at its end.
        due = 50 * r["seconds"]
        self.assertTrue(due - 5 <= r["sent"] <= due + 1, (r["sent"], r["seconds"]))
        rtt = r["rtt_ns"]
        self.assertEqual(rtt["count"], r["received"])
        self.assertGreater(rtt["p50"], 0.3e9, rtt)
        self.assertGreater(rtt["max"], 1.2e9, rtt)  # the first message waited out the whole stall
        self.assertLess(rtt["max"], 1.5e9 + TIMEOUT * 1e9, rtt)

    def test_messages_due_before_the_measurement_do_not_count_in_it(self):
        # As above, with the first second warm-up: the messages due in it mostly leave late, once
        # the server reads again half a second into the measurement. They are not counted in it:
        # what it counts was due within it, 50 a second at most.
        kind = "websockets" if PEER == "wsl" else PEER
        with Peer(kind, "echo", "--stall", "1.5") as peer:
            r, _ = self.run_json(peer.url, "-c", "1", "--warmup", "1s", "-d", "1s", "-r", "50", "-s", "256K",
                                 "--binary")
        self.assertEqual((r["opened"], r["errors"], r["received"]), (1, 0, r["sent"]), r)
        due = 50 * r["seconds"]
        self.assertTrue(due - 5 <= r["sent"] <= due + 1, (r["sent"], r["seconds"]))
        self.assertEqual(r["rtt_ns"]["count"], r["received"])


class Drain(Figures):
    """The end of a run: what is under way finishes within --drain, and no more."""

    def test_a_handshake_under_way_at_the_end_is_finished_and_closed(self):
        # Every handshake takes 400 ms and each connection sends one message, so one is always
        # under way: the third begins about 400 ms into the 600 ms of measurement and ends 200 ms
        # after it. The drain waits for it; the connection closes at once (1000), having sent nothing.
        kind = "websockets" if PEER == "wsl" else PEER
        wait = 0.4 * TIME_SCALE
        measure = f"{600 * TIME_SCALE:.0f}ms"
        with Peer(kind, "echo", "--answer-after", str(wait)) as peer:
            r, _ = self.run_json(peer.url, "-c", "1", "-d", measure, "--messages-per-connection", "1")
            self.assertEqual((r["opened"], r["cancelled"], r["failed"], r["errors"]), (3, 0, 0, 0), r)
            self.assertEqual(r["close_codes"], {"1000": 3})
            self.assertEqual(r["handshake_ns"]["count"], 3)
            self.assertEqual(r["sent"], r["received"])
            # A drain shorter than what is left of the handshake cuts it: cancelled, not failed.
            r, _ = self.run_json(peer.url, "-c", "1", "-d", measure, "--messages-per-connection", "1", "--drain",
                                 "10ms")
            self.assertEqual((r["opened"], r["cancelled"], r["failed"], r["errors"]), (2, 1, 0, 0), r)
            self.assertEqual(r["close_codes"], {"1000": 2})


class Replies(Figures):
    """--reply any and none, and --first-message: servers whose answers are no echoes, or that push."""

    def test_any_message_answers_the_oldest_outstanding_one(self):
        # The server answers every message with `ack N`: shorter than the message, and text.
        with Peer(KIND, "ack") as peer:
            r, _ = self.run_json(peer.url, "-c", "2", "-d", "400ms", "--reply", "any", "--inflight", "3", "--binary")
            acked = [e["count"] for e in peer.events_named("acked", 2)]
            human = loadtest(peer.url, "-c", "1", "-d", "100ms", "--reply", "any", "-q")
        self.assertEqual((r["reply"], r["inflight"]), ("any", 3))
        self.assertEqual((r["opened"], r["failed"], r["errors"], r["failures"]), (2, 0, 0, {}), r)
        self.assertGreater(r["sent"], 0, r)
        self.assertEqual(r["received"], r["sent"], "every message in the measurement is answered and counted")
        self.assert_percentiles(r["rtt_ns"], r["received"])
        self.assertEqual(r["close_codes"], {"1000": 2})
        # Over the whole run, every message sent was acknowledged and every acknowledgement came in.
        self.assertEqual(sum(acked) * 32, r["payload_bytes_sent"], (acked, r))
        self.assertEqual(r["payload_bytes_received"], sum(len(f"ack {i}") for n in acked for i in range(1, n + 1)))
        self.assertEqual(human.returncode, 0, human.stderr)
        self.assertIn(b"closed loop, 1 in flight per connection, any message an answer", human.stdout)

    def test_echo_takes_an_answer_of_another_length_for_a_failure(self):
        with Peer(KIND, "ack") as peer:
            done = loadtest(peer.url, "-c", "2", "-d", "300ms", "--json")
        self.assertEqual(done.returncode, 0, done.stderr)
        r = json.loads(done.stdout)
        self.assertEqual(r["reply"], "echo")
        self.assertEqual((r["opened"], r["errors"], r["failures"], r["received"]), (2, 2, {"echo mismatch": 2}, 0), r)

    def test_none_counts_what_a_server_pushes(self):
        # Each connection subscribes with --first-message, then the server pushes 100 bytes to it
        # every 10 ms. Nothing else is sent and nothing is an answer: the messages that arrive
        # within the measurement are counted (not those of the warm-up), with no round trips.
        subscribe = '{"subscribe":"ticks"}'
        with Peer(KIND, "push", "--push-every", "0.01") as peer:
            r, _ = self.run_json(peer.url, "-c", "3", "--warmup", "500ms", "-d", "1s", "--reply", "none",
                                 "--first-message", subscribe)
            pushed = [e["count"] for e in peer.events_named("pushed", 3)]
            subscriptions = peer.messages(3)
            human = loadtest(peer.url, "-c", "1", "-d", "100ms", "--reply", "none", "--first-message", "x", "-q")
        self.assertEqual(r["reply"], "none")
        self.assertEqual([bytes.fromhex(m["hex"]) for m in subscriptions], [subscribe.encode()] * 3)
        self.assertEqual((r["opened"], r["failed"], r["errors"], r["sent"]), (3, 0, 0, 0), r)
        self.assertEqual(r["payload_bytes_sent"], 3 * len(subscribe))
        self.assertEqual(r["rtt_ns"]["count"], 0)
        # One message every 10 ms a connection at most; a timer-driven server on a loaded machine
        # sends fewer, but not a tenth of that.
        cadence = 3 * r["seconds"] / 0.01
        self.assertTrue(cadence / 10 <= r["received"] <= cadence + 6, (cadence, r))
        self.assertAlmostEqual(r["bytes_received_per_second"], r["received"] * 100 / r["seconds"],
                               delta=0.002 * r["received"] * 100 / r["seconds"])
        self.assertTrue(r["received"] * 100 <= r["payload_bytes_received"] <= sum(pushed) * 100, (pushed, r))
        self.assertEqual(r["close_codes"], {"1000": 3})
        self.assertEqual(human.returncode, 0, human.stderr)
        self.assertIn(b": 1 connections, receiving only, nothing sent, a 1-byte first message,", human.stdout)

    def test_none_with_a_rate_sends_by_the_schedule_and_awaits_nothing(self):
        with Peer(KIND, "push", "--push-every", "0.05") as peer:
            r, _ = self.run_json(peer.url, "-c", "2", "-d", "1s", "-r", "100", "-s", "10", "--reply", "none")
            peer.events_named("pushed", 2)  # after every message the server received
            received_by_server = len([e for e in peer.events if e["event"] == "message"])
        self.assertEqual((r["opened"], r["failed"], r["errors"]), (2, 0, 0), r)
        due = 100 * r["seconds"]
        self.assertTrue(due - 5 <= r["sent"] <= due + 1, (r["sent"], r["seconds"]))
        self.assertEqual(received_by_server * 10, r["payload_bytes_sent"], "the whole run's messages, all sent")
        self.assertGreater(r["received"], 0, r)
        self.assertEqual(r["rtt_ns"]["count"], 0)
        self.assertEqual(r["close_codes"], {"1000": 2})

    def test_the_first_message_and_its_echo_are_not_counted(self):
        # Were the first message's echo taken for the first 32-byte message's, --verify would fail.
        with Peer(PEER) as peer:
            r, _ = self.run_json(peer.url, "-c", "1", "-d", "300ms", "--first-message", "hello", "--verify")
            if peer.records_events:
                self.assertEqual(bytes.fromhex(peer.messages(1)[0]["hex"]), b"hello")
        self.assertEqual((r["opened"], r["failed"], r["errors"]), (1, 0, 0), r)
        self.assertGreater(r["sent"], 0, r)
        self.assertEqual(r["received"], r["sent"])
        self.assertEqual(r["payload_bytes_received"], r["payload_bytes_sent"])
        self.assertEqual((r["payload_bytes_sent"] - 5) % 32, 0, r)

    def test_conn_in_the_first_message_is_the_connection_number(self):
        # A login or a subscription of each connection's own; with --reconnect the connections that
        # replace those the server closed log in again under the same numbers.
        with Peer(KIND, "relay") as peer:
            r, _ = self.run_json(peer.url, "-c", "3", "-d", "200ms", "--reply", "none", "--first-message",
                                 '{"login":"user{{conn}}","again":{{conn}}}')
            logins = sorted(bytes.fromhex(m["hex"]).decode() for m in peer.messages(3))
        self.assertEqual(logins, ['{"login":"user%d","again":%d}' % (n, n) for n in (1, 2, 3)])
        self.assertEqual(r["payload_bytes_sent"], sum(len(text) for text in logins), r)
        with Peer(KIND, "relay", "--replies", "1") as peer:  # closes each connection after its first message
            r, _ = self.run_json(peer.url, "-c", "2", "-d", "500ms", "--reply", "none", "--reconnect",
                                 "--first-message", "u{{conn}}")
            firsts = [bytes.fromhex(m["hex"]) for m in peer.messages(r["opened"])]
        self.assertGreater(r["opened"], 2, r)
        self.assertEqual(sorted(set(firsts)), [b"u1", b"u2"], firsts)

    def test_a_first_message_never_answered_is_an_error(self):
        with Peer(KIND, "relay") as peer:
            r, _ = self.run_json(peer.url, "-c", "1", "-d", "200ms", "--drain", "100ms", "--first-message", "hello")
        self.assertEqual((r["opened"], r["sent"], r["errors"], r["failures"]),
                         (1, 0, 1, {"first message unanswered": 1}), r)


class Stamps(Figures):
    """--stamp: latency through a server that broadcasts, with no answer to time a round trip by."""

    def test_a_chat_room_broadcast_is_timed_from_each_stamp(self):
        # Three members of a chat room each send 50 messages a second into it (in open loop, --reply
        # none); the room sends each to all three, wrapped in JSON of its own. Every message that
        # arrives carries a stamp, and its latency counts.
        with Peer(KIND, "chat") as peer:
            r, _ = self.run_json(peer.url, "-c", "3", "-r", "150", "--warmup", "300ms", "-d", "1s", "--reply", "none",
                                 "--stamp", "--threshold", "p99<5s")
            chatted = [e["count"] for e in peer.events_named("chatted", 3)]
            human = loadtest(peer.url, "-c", "2", "-r", "100", "-d", "300ms", "--reply", "none", "--stamp", "-s", "64",
                             "-q")
        self.assertEqual((r["type"], r["stamp"], r["reply"]), ("summary", True, "none"))
        self.assertEqual((r["opened"], r["failed"], r["errors"]), (3, 0, 0), r)
        self.assertGreater(r["sent"], 0, r)
        self.assertEqual(r["stamped"], r["received"], "every message from the room carried a stamp")
        # Each message counted comes back three times; messages sent at the measurement's edges may
        # arrive on the other side of them.
        self.assertTrue(abs(r["received"] - 3 * r["sent"]) <= 0.2 * 3 * r["sent"] + 6, r)
        self.assert_percentiles(r["stamp_ns"], r["stamped"])
        self.assertEqual(r["rtt_ns"]["count"], 0, "no round trip: nothing answers")
        self.assertEqual(r["stamps_ahead"], 0)
        self.assertEqual(r["thresholds"][0]["value"], r["stamp_ns"]["p99"])
        self.assertEqual(sum(chatted) * 32, r["payload_bytes_sent"], "every message of the run reached the room")
        self.assertEqual(r["close_codes"], {"1000": 3})
        self.assertEqual(human.returncode, 0, human.stderr)
        out = human.stdout.decode()
        self.assertIn("64-byte text messages, open loop at 100 msgs/s", out)
        self.assertIn(", no answers awaited, stamped,", out)
        self.assertRegex(out, rf"\n  latency      p50 {TIME}  p90 {TIME}  p99 {TIME}  p99.9 {TIME}  max {TIME}  ")
        self.assertRegex(out, r"\n  stamps       (\d+) of the \1 messages received, timed from their stamp; "
                              r"[12]\.\d\d per message sent\n")
        self.assertNotIn("round trip", out)

    def test_stamps_of_another_run_are_timed_too(self):
        # Subscribers that send nothing, in one process; a publisher in another. The subscribers
        # time the publisher's stamps: both read the same realtime clock.
        with Peer(KIND, "chat") as peer, \
                Wsl("loadtest", peer.url, "-c", "2", "-d", "60s", "--reply", "none", "--stamp", "--ndjson",
                    "--interval", "100ms", "-q", stdin=None) as subscribers:
            first = subscribers.line()  # its first record: the subscribers measure
            self.assertIsNotNone(first)
            published, _ = self.run_json(peer.url, "-c", "1", "-r", "200", "-d", "500ms", "--reply", "none", "--stamp")
            messages = published["payload_bytes_sent"] // 32
            self.assertGreater(messages, 50, published)
            # Until both subscribers have had every message (the records count them), then Ctrl-C.
            records = [json.loads(first)]
            while sum(i["received"] for i in records) < 2 * messages:
                line = subscribers.line()
                self.assertIsNotNone(line, f"{records} of {2 * messages} messages arrived")
                records.append(json.loads(line))
            subscribers.signal(signal.SIGINT)
            self.assertEqual(subscribers.wait(), 130, subscribers.stderr_text())
            r = json.loads(subscribers.stdout.data().decode().splitlines()[-1])
        self.assertEqual((r["type"], r["interrupted"], r["opened"], r["sent"]), ("summary", True, 2, 0), r)
        self.assertEqual(r["received"], 2 * messages, r)
        self.assertEqual(r["stamped"], r["received"])
        self.assert_percentiles(r["stamp_ns"], r["received"])
        self.assertEqual(r["stamps_ahead"], 0)
        for i in records:  # each interval's latencies are those of its messages
            self.assertEqual((i["type"], i["stamped"], i["stamp_ns"]["count"], i["rtt_ns"]["count"]),
                             ("interval", i["received"], i["received"], 0), i)

    def test_a_message_without_a_stamp_is_counted_not_timed(self):
        with Peer(KIND, "push", "--push-every", "0.01") as peer:
            r, _ = self.run_json(peer.url, "-c", "2", "-d", "500ms", "--reply", "none", "--stamp", "--first-message",
                                 "subscribe")
        self.assertEqual((r["opened"], r["errors"], r["sent"]), (2, 0, 0), r)
        self.assertGreater(r["received"], 0, r)
        self.assertEqual((r["stamped"], r["stamp_ns"]["count"]), (0, 0), r)

    def test_the_stamp_goes_in_place_of_a_placeholder_in_the_payload_file(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f, Peer(KIND, "relay") as peer:
            f.write('{"op":"say","stamp":"{{stamp}}","n":1}')
            f.flush()
            r, _ = self.run_json(peer.url, "-c", "1", "-r", "20", "-d", "300ms", "--reply", "none", "--stamp",
                                 "--payload-file", f.name)
            sent = [bytes.fromhex(m["hex"]).decode() for m in peer.messages(r["payload_bytes_sent"] // r["size"])]
        self.assertEqual(r["size"], len('{"op":"say","stamp":"","n":1}') + 20)
        self.assertGreater(len(sent), 3)
        stamps = []
        for text in sent:
            m = re.fullmatch(r'\{"op":"say","stamp":"wsl@([0-9a-f]{16})","n":1\}', text)
            self.assertIsNotNone(m, text)
            stamps.append(int(m[1], 16))
        # Nanoseconds since the epoch, now, in the order the messages were due (20 a second).
        self.assertTrue(all(abs(s / 1e9 - time.time()) < 60 for s in stamps), stamps)
        self.assertEqual(stamps, sorted(stamps))
        self.assertTrue(all(b - a >= 40e6 for a, b in zip(stamps, stamps[1:])), stamps)


    def test_a_large_message_is_streamed_with_its_stamp_in_place(self):
        # Over 16 KiB a stamped message is sent in parts (no copy of the payload per connection):
        # the server still gets the whole message, the stamp where the placeholder was; and a chat
        # room's JSON of 100 KiB, read in chunks, still yields every stamp.
        with tempfile.NamedTemporaryFile("w", suffix=".txt") as f, Peer(KIND, "relay") as peer:
            f.write("x" * 30000 + "{{stamp}}" + "y" * 30000)
            f.flush()
            r, _ = self.run_json(peer.url, "-c", "1", "-r", "20", "-d", "300ms", "--reply", "none", "--stamp",
                                 "--payload-file", f.name)
            got = [bytes.fromhex(m["hex"]).decode() for m in peer.messages(r["payload_bytes_sent"] // r["size"])]
        self.assertGreater(len(got), 3)
        for text in got:
            self.assertRegex(text, r"^x{30000}wsl@[0-9a-f]{16}y{30000}$")
        with Peer(KIND, "chat") as peer:
            r, _ = self.run_json(peer.url, "-c", "2", "-r", "40", "-d", "500ms", "--reply", "none", "--stamp", "-s", "100K")
        self.assertGreater(r["received"], 0, r)
        self.assertEqual(r["stamped"], r["received"], r)
        self.assert_percentiles(r["stamp_ns"], r["stamped"])


class Senders(Figures):
    """--senders N: only the first N connections send; the others stay open and count what comes."""

    def test_one_publisher_and_four_subscribers_in_one_run(self):
        with Peer(KIND, "chat") as peer:
            r, _ = self.run_json(peer.url, "-c", "5", "--senders", "1", "-r", "100", "-d", "1s", "--reply", "none",
                                 "--stamp")
            chatted = sorted(e["count"] for e in peer.events_named("chatted", 5))
        self.assertEqual((r["connections"], r["senders"], r["opened"], r["errors"]), (5, 1, 5, 0), r)
        self.assertEqual(chatted[:4], [0, 0, 0, 0], "only one connection sent")
        self.assertEqual(chatted[4] * 32, r["payload_bytes_sent"])
        due = 100 * r["seconds"]
        self.assertTrue(due - 5 <= r["sent"] <= due + 1, ("the one sender keeps the whole rate", r))
        self.assertTrue(abs(r["received"] - 5 * r["sent"]) <= 0.2 * 5 * r["sent"] + 10, r)
        self.assertEqual(r["stamped"], r["received"])

    def test_closed_loop_with_idle_connections(self):
        # Four connections open, one of them loading the server; the idle ones get nothing and
        # close with 1000 at the end like the others.
        with Peer(KIND, "ack") as peer:
            r, _ = self.run_json(peer.url, "-c", "4", "--senders", "1", "-d", "400ms", "--reply", "any")
            acked = sorted(e["count"] for e in peer.events_named("acked", 4))
            human = loadtest(peer.url, "-c", "3", "--senders", "2", "-d", "100ms", "-q")
        self.assertEqual((r["senders"], r["opened"], r["errors"], r["failures"]), (1, 4, 0, {}), r)
        self.assertEqual(acked[:3], [0, 0, 0], "only one connection sent")
        self.assertGreater(r["sent"], 0, r)
        self.assertEqual(r["received"], r["sent"])
        self.assert_percentiles(r["rtt_ns"], r["received"])
        self.assertEqual(acked[3] * 32, r["payload_bytes_sent"])
        self.assertEqual(r["close_codes"], {"1000": 4})
        self.assertIn(b"closed loop, 1 in flight per connection, 2 of the connections sending", human.stdout)


class Server(Figures):
    """Servers that refuse, never answer, or are not there."""

    def setUp(self):
        if PEER == "wsl":
            self.skipTest("needs a test peer")

    def test_header_and_subprotocol_before_the_url_take_one_value_each(self):
        # `-H 'X: a' URL`: the URL is not a second header value (nor a second subprotocol).
        with Peer(PEER, "echo", "--subprotocols", "chat.v2") as peer:
            done = run_wsl("loadtest", "-H", "X-Test: 42", "--subprotocol", "chat.v2", peer.url, "-c", "1", "-d",
                           "200ms", "--json", timeout=TIMEOUT * 3)
            self.assertEqual(done.returncode, 0, done.stderr)
            opened = peer.wait_event("open")
            headers = {name.lower(): value for name, value in opened["headers"]}
            self.assertEqual(headers.get("x-test"), "42")
            self.assertEqual(headers.get("sec-websocket-protocol"), "chat.v2")

    def test_handshake_refused_403(self):
        with Peer(PEER, "refuse") as peer:
            done = loadtest(peer.url, "-c", "3", "-d", "200ms", "--json")
            self.assertEqual(done.returncode, 76, done.stderr)
            self.assertIn(b"handshake refused: HTTP 403", done.stderr)
            r = json.loads(done.stdout)
            self.assertEqual((r["opened"], r["failed"], r["failures"], r["sent"]), (0, 3, {"HTTP 403": 3}, 0))

    def test_server_never_answers_the_handshake(self):
        with Peer(PEER, "silent") as peer:
            done = loadtest(peer.url, "-c", "2", "-d", "200ms", "--handshake-timeout", "1")
            self.assertEqual(done.returncode, 75, done.stderr)
            self.assertIn(b"timed out", done.stderr)
            self.assertLess(done.elapsed, 1 + TIMEOUT / 2)
            self.assertRegex(done.stdout.decode(), r"\n  connections  0 opened, 2 failed, 2 x ")

    def test_ctrl_c_cancels_handshakes_under_way_and_connections_waiting_their_turn(self):
        # A handshake waits for its 60 s limit, others for a handshake slot or their time on the
        # ramp: Ctrl-C ends them all at once, and the summary counts the handshakes it cut short.
        for options, in_handshake in ((["--max-connecting", "1"], 1), (["--connect-rate", "4"], 2)):
            with self.subTest(options=options), Peer(PEER, "silent") as peer, \
                    Wsl("loadtest", peer.url, "-c", "40", "-d", "1s", "--handshake-timeout", "60", "--json",
                        *options, stdin=None) as wsl:
                peer.events_named("tcp", in_handshake)
                wsl.signal(signal.SIGINT)
                self.assertEqual(wsl.wait(), 130, wsl.stderr_text())
                r = json.loads(wsl.stdout.data())
                self.assertTrue(r["interrupted"])
                self.assertEqual((r["opened"], r["failed"], r["failures"], r["errors"]), (0, 0, {}, 0), r)
                # Those under way when the signal came (another may have started meanwhile).
                self.assertGreaterEqual(r["cancelled"], in_handshake, r)
                self.assertLess(r["cancelled"], 40, "connections waiting their turn never started")
                self.assertNotIn("timed out", wsl.stderr_text())

    def test_reconnect_replaces_the_connections_the_server_closes(self):
        # The server closes each connection with 1001 once it has echoed 3 messages.
        with Peer(PEER, "echo", "--close-after", "3", "--close-code", "1001") as peer:
            r, _ = self.run_json(peer.url, "-c", "2", "-d", "500ms", "--reconnect")
            self.assertTrue(r["reconnect"])
            self.assertGreater(r["opened"], 2 + 2, "connections replaced, again and again")
            self.assertEqual((r["failed"], r["errors"], r["failures"]), (0, 0, {}), r)
            # Every connection but the two open at the end got its 3 echoes, over the whole run.
            echoes = r["payload_bytes_received"] // 32
            self.assertTrue(3 * (r["opened"] - 2) <= echoes <= 3 * r["opened"], (echoes, r["opened"]))
            closed_by_server = r["close_codes"].get("1001", 0)
            self.assertTrue(r["opened"] - 2 <= closed_by_server <= r["opened"], r["close_codes"])
            self.assertEqual(closed_by_server + r["close_codes"].get("1000", 0), r["opened"], r["close_codes"])
            # Without --reconnect the run goes on with the connections left: none.
            r, _ = self.run_json(peer.url, "-c", "2", "-d", "300ms")
            self.assertFalse(r["reconnect"])
            self.assertEqual((r["opened"], r["close_codes"]), (2, {"1001": 2}), r)
            self.assertEqual(r["payload_bytes_received"], 2 * 3 * 32)

    def test_reconnect_backs_off_while_the_server_is_down(self):
        with Peer(PEER) as peer, Wsl("loadtest", peer.url, "-c", "2", "-d", "1500ms", "--interval", "100ms",
                                      "--reconnect", "--json", stdin=None) as wsl:
            wsl.stderr_until("open 2")  # the first progress line: both open, measuring
            peer.__exit__()  # killed: its connections drop, and connecting is refused
            self.assertEqual(wsl.wait(), 0, wsl.stderr_text())
            r = json.loads(wsl.stdout.data())
        self.assertEqual(r["opened"], 2)
        self.assertEqual(r["errors"], 2, r)  # the drops
        # Retried 50 ms, 100 ms, 200 ms... apart: a few times each in 1.5 s, not in a loop.
        self.assertTrue(2 <= r["failed"] <= 2 * 8, r)
        self.assertEqual(sum(r["failures"].values()), r["failed"] + 2, r)

    def test_reconnect_waits_for_a_server_started_after_the_load_test(self):
        if PEER != "websockets":
            self.skipTest("the websockets peer takes --port")
        port = unused_port()
        url = f"ws://127.0.0.1:{port}/"
        with Wsl("loadtest", url, "-c", "2", "-d", f"{5 * TIME_SCALE:g}s", "--interval", "100ms", "--reconnect",
                 "--json", stdin=None) as wsl:
            wsl.stderr_until("open 0")  # the connect phase ended with none open, and the run went on
            with Peer(PEER, "echo", "--port", str(port)):
                wsl.stderr_until("open 2")
                self.assertEqual(wsl.wait(timeout=TIMEOUT + 5 * TIME_SCALE), 0, wsl.stderr_text())
            r = json.loads(wsl.stdout.data())
        self.assertGreaterEqual(r["opened"], 2, r)
        self.assertGreaterEqual(r["failures"].get("Connection refused", 0), 2, r)
        self.assertGreater(r["received"], 0, r)

    def test_reconnect_does_not_wait_for_a_refusal_that_would_only_repeat(self):
        with Peer(PEER, "refuse") as peer:
            done = loadtest(peer.url, "-c", "2", "-d", "30s", "--reconnect", "--json")
            self.assertEqual(done.returncode, 76, done.stderr)
            self.assertLess(done.elapsed, 15)
            self.assertEqual(json.loads(done.stdout)["opened"], 0)

    def test_reconnect_backs_off_from_a_server_that_closes_what_it_opens(self):
        # The server closes every connection with 1013 (try again later) as soon as it opens.
        with Peer(PEER, "script", "--close-code", "1013") as peer:
            r, _ = self.run_json(peer.url, "-c", "2", "-d", "1s", "--reconnect")
            # Reopened 50 ms, 100 ms, 200 ms... apart, as after a refusal: a few times each, not in
            # a loop (without the back-off: hundreds).
            self.assertTrue(2 * 3 <= r["opened"] <= 2 * 8, r)
            self.assertEqual(r["close_codes"], {"1013": r["opened"]}, r)
            self.assertEqual((r["failed"], r["received"]), (0, 0), r)

    def test_local_addresses_take_the_connections_in_turn(self):
        # 127.0.0.8/30 stands for .9 and .10: with 127.0.0.20, three sources for six connections.
        with Peer(PEER, "echo") as peer:
            r, _ = self.run_json(peer.url, "-c", "6", "-d", "200ms", "--local-address", "127.0.0.8/30",
                                 "--local-address", "127.0.0.20")
            self.assertEqual((r["opened"], r["failed"]), (6, 0), r)
            sources = sorted(e["remote"] for e in peer.events_named("open", 6))
            self.assertEqual(sources, ["127.0.0.10"] * 2 + ["127.0.0.20"] * 2 + ["127.0.0.9"] * 2)
            done = loadtest(peer.url, "-c", "2", "-d", "200ms", "--json", "--local-address", "::1")
            self.assertEqual(done.returncode, 69, done.stderr)
            self.assertEqual(json.loads(done.stdout)["failures"],
                             {"Address family not supported by protocol": 2})

    def test_nobody_listening(self):
        port = unused_port()
        done = loadtest(f"ws://127.0.0.1:{port}/", "-c", "2", "-d", "200ms", "--json")
        self.assertEqual(done.returncode, 69, done.stderr)
        r = json.loads(done.stdout)
        self.assertEqual((r["opened"], r["failed"]), (0, 2))
        self.assertEqual(sum(r["failures"].values()), 2)

    def test_usage_errors(self):
        for args in (["-c", "x"], ["-d", "soon"], ["--send-window", "soon"], ["--threads", "0"], ["--bogus"], [],
                     ["--threshold", "p99=5ms"], ["--threshold", "p98<5ms"], ["--threshold", "lost<=ten"],
                     ["--reply", "maybe"], ["--reply", "any", "--verify"], ["--reply", "none", "--inflight", "2"],
                     ["--reply", "none", "--messages-per-connection", "3"], ["--reply", "none", "--threshold", "p99<5ms"],
                     ["--reply", "none", "--threshold", "lost==0"], ["--first-message", "\udcff"],
                     ["--stamp"], ["--reply", "any", "--stamp"], ["--reply", "none", "--stamp", "-s", "19"],
                     ["--reply", "none", "--stamp", "--threshold", "lost==0"],
                     ["--reply", "none", "--stamp", "--payload-file", os.devnull], ["-c", "2", "--senders", "3"],
                     ["-r", "2x"], ["-r", "-5"], ["-c", "1.5"], ["-c", "0"], ["--local-address", "10.0.0.0/8"],
                     ["--local-address", "localhost"], ["--local-address", "127.0.0.1", "--unix-socket", "/x"]):
            with self.subTest(args=args):
                done = run_wsl("loadtest", *(args and ["ws://127.0.0.1:1/"]), *args)
                self.assertEqual(done.returncode, 64, done.stderr)
                self.assertEqual(len(done.stderr.decode().strip().splitlines()), 1, done.stderr)


if __name__ == "__main__":
    unittest.main()
