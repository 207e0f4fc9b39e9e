#!/usr/bin/python3
"""Headless Chromium, the client most users of a WebSocket server have, against `wsl echo` and
`wsl serve` on 127.0.0.1: the browser's own `new WebSocket(url)`, driven over the DevTools protocol
(chromium.py). One browser for the whole run, a fresh tab per test.

- Echo: text (ASCII, multi-byte, empty, 140 KB), binary (0 B to 1 MiB of random bytes, a Blob) echoed
  byte-exact, 1000 messages in order, the close code and reason echoed back (1000 for a close without
  a code), 1009 for a message over --max-message-size (just over it and far over it) while one of
  exactly the limit passes.
- Deflate: Chrome's offer against `wsl echo --deflate` (ws.extensions, exact round trips of compressible
  and random data, and the bytes on the wire from wsl's access log, so both directions really
  compressed); without --deflate no extension and nothing compressed.
- wss://: a certificate from a test CA, trusted by its key's hash alone (--ignore-certificate-errors-spki-
  list), round trips with compression; a certificate with another key is refused.
- Subprotocols: wsl's choice (in its order of preference) reaches ws.protocol; an offer wsl does not
  take is accepted without a subprotocol, which the browser fails (1006).
- Origin: pages served by `wsl serve --static`, so the browser sends its real Origin; --origin lets it
  through (the command sees HTTP_ORIGIN, and the extension offer) or refuses it (403, the browser sees
  1006) while others are still served; --same-origin lets a page reach its own server, not another; `serve --pipe`: stdin lines reach the page (a non-UTF-8 one as
  binary), the page's messages reach stdout, the end of stdin closes with 1000 and wsl exits 0.

    WSL_BIN=build/release/cli/wsl WSL_TEST_CHROMIUM=/usr/bin/chromium /usr/bin/python3 \
      tests/integration/test_browser.py -v Echo.test_binary_messages
"""

from __future__ import annotations

import base64
import os
import re
import sys
import tempfile
import time
import unittest
from typing import Any, Dict, List, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "serve"), os.path.join(HERE, "secure")]

from chromium import Chromium, spki_sha256  # noqa: E402
from harness import OP_TEXT, TIMEOUT, open_client  # noqa: E402
from secure_harness import make_pki, wsl_echo  # noqa: E402
from serve_harness import Serve  # noqa: E402

BROWSER: Optional[Chromium] = None  # started by main() for the whole run
PKI = None

MiB = 1 << 20

# Opens a WebSocket, sends ITEMS ({text}, {binary: base64} or {blob: base64}) without waiting, takes as
# many events as there were items (stopping at anything that is not a message), closes with CLOSE and
# collects the events up to the close event.
ROUND_TRIP = """
const p = new Peer(URL, PROTOCOLS === null ? undefined : PROTOCOLS);
const first = await p.next();
if (first.type !== 'open')
  return {opened: false, events: first.type === 'close' ? [first] : [first, ...await p.untilClose()]};
for (const item of ITEMS) {
  if ('text' in item) p.ws.send(item.text);
  else if ('binary' in item) p.ws.send(fromBase64(item.binary));
  else p.ws.send(new Blob([fromBase64(item.blob)]));
}
const echoes = [];
while (echoes.length < ITEMS.length) {
  const event = await p.next();
  echoes.push(event);
  if (event.type !== 'message') break;
}
if (CLOSE === null) p.ws.close(); else p.ws.close(CLOSE[0], CLOSE[1]);
return {opened: true, extensions: p.ws.extensions, protocol: p.ws.protocol, echoes, after: await p.untilClose()};
"""

Item = Tuple[str, Any]  # ("text", str) | ("binary", bytes) | ("blob", bytes)


def to_js(items: Sequence[Item]) -> List[Dict[str, str]]:
    return [{"text": v} if kind == "text" else {kind: base64.b64encode(v).decode()} for kind, v in items]


def describe_payload(kind: str, value: Any) -> str:
    return f"{kind} of {len(value)} {'chars' if kind == 'text' else 'bytes'}"


def compressible_text(size: int) -> str:
    line = "The quick brown fox jumps over the lazy dog; ünïcödé ✓ {:08d}\n"
    out, i = [], 0
    while sum(map(len, out)) < size:
        out.append(line.format(i))
        i += 1
    return "".join(out)[:size]


def access_line(collector, timeout: float = TIMEOUT) -> Dict[str, int]:
    """Waits for the next `-v` access line of an upgraded connection; its in=, out= and close= figures."""
    pattern = r" 101 \S+ in=(\d+) out=(\d+) close=(\d+)$"
    match = re.search(pattern, collector.wait_match(pattern, timeout))
    return {"in": int(match[1]), "out": int(match[2]), "close": int(match[3])}


class BrowserTest(unittest.TestCase):
    """A fresh tab per test, closed at its end."""

    def setUp(self) -> None:
        self.assertTrue(BROWSER is not None and BROWSER.alive(), "Chromium is not running")
        self.page = BROWSER.new_page()
        self.addCleanup(self.page.close)

    def round_trip(self, url: str, items: Sequence[Item], protocols: Optional[List[str]] = None,
                   close: Optional[Tuple[int, str]] = (1000, "")) -> Dict[str, Any]:
        """Sends `items` from the browser and checks their echoes: the same types and exact contents, in
        order, then a clean close with our close code (`close` None: ws.close() without a code)."""
        result = self.page.evaluate(ROUND_TRIP, URL=url, ITEMS=to_js(items), PROTOCOLS=protocols,
                                    CLOSE=list(close) if close else None)
        if not result["opened"]:
            self.fail(f"the WebSocket to {url} did not open: {result['events']}")
        self.assert_echoes(items, result["echoes"])
        after = result["after"]
        self.assertEqual([e["type"] for e in after], ["close"], f"after the echoes: {after}")
        self.assertTrue(after[0]["wasClean"], f"unclean close: {after[0]}")
        if close:
            self.assertEqual((after[0]["code"], after[0]["reason"]), tuple(close),
                             "wsl echoes the close code and reason it got")
        return result

    def assert_echoes(self, items: Sequence[Item], echoes: List[Dict[str, Any]]) -> None:
        self.assertEqual(len(echoes), len(items),
                         f"{len(items)} messages sent, {len(echoes)} events came back; the last: {echoes[-1:]}")
        for i, ((kind, value), echo) in enumerate(zip(items, echoes)):
            sent = describe_payload(kind, value)
            self.assertEqual(echo["type"], "message", f"message {i} ({sent}): got {echo}")
            if kind == "text":
                self.assertIn("text", echo, f"message {i} ({sent}) came back binary")
                if echo["text"] != value:
                    at = next((j for j, (a, b) in enumerate(zip(echo["text"], value)) if a != b),
                              min(len(value), len(echo["text"])))
                    self.fail(f"message {i} ({sent}): echo of {len(echo['text'])} chars differs at char {at}")
            else:  # binary and Blob both come back as binary (binaryType 'arraybuffer')
                self.assertIn("binary", echo, f"message {i} ({sent}) came back as text")
                got = base64.b64decode(echo["binary"])
                if got != value:
                    at = next((j for j, (a, b) in enumerate(zip(got, value)) if a != b), min(len(value), len(got)))
                    self.fail(f"message {i} ({sent}): echo of {len(got)} bytes differs at byte {at}")

    def open_fails(self, url: str, protocols: Optional[List[str]] = None) -> List[Dict[str, Any]]:
        """Asserts that the browser's WebSocket fails to open: an error event, then close 1006."""
        events = self.page.evaluate(
            "const p = new Peer(URL, PROTOCOLS === null ? undefined : PROTOCOLS); return await p.untilClose();",
            URL=url, PROTOCOLS=protocols)
        self.assertEqual([(e["type"], e.get("code"), e.get("wasClean")) for e in events],
                         [("error", None, None), ("close", 1006, False)], f"events: {events}")
        return events


class Echo(BrowserTest):
    """`wsl echo` over ws://, from an about:blank tab."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.server = Serve(subcommand="echo", stdin=False).__enter__()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.kill()

    def tearDown(self) -> None:
        self.assertTrue(self.server.proc.poll() is None, f"wsl echo died: {self.server.stderr.text()}")

    def test_text_messages(self):
        self.round_trip(self.server.url, [
            ("text", "hello"), ("text", ""), ("text", "ünïcödé ✓ Ωμέγα 日本語 🎉😀"), ("text", "x" * 125),
            ("text", "é" * 70000),   # 140000 bytes of two-byte characters
            ("text", "🎉" * 20000),  # 80000 bytes of four-byte characters
            ("text", ""),
        ])

    def test_binary_messages(self):
        sizes = [0, 1, 125, 126, 65535, 65536, 65537, MiB]
        items: List[Item] = [("binary", os.urandom(n)) for n in sizes]
        items.insert(3, ("blob", os.urandom(1000)))  # a Blob is read asynchronously, yet sent in order
        self.round_trip(self.server.url, items)

    def test_many_messages_keep_their_order(self):
        items: List[Item] = [("text", f"message {i}") if i % 2 else ("binary", i.to_bytes(4, "big"))
                             for i in range(1000)]
        self.round_trip(self.server.url, items)

    def test_the_close_code_comes_back(self):
        # round_trip checks that the close event is clean and carries 4000 and the reason, echoed
        # (as node ws and python websockets do).
        self.round_trip(self.server.url, [("text", "before the close")], close=(4000, "bye ✓"))

    def test_close_without_a_code_is_answered_with_1000(self):
        # ws.close() sends a close frame without a status code; wsl answers with 1000.
        result = self.round_trip(self.server.url, [("text", "x")], close=None)
        self.assertEqual(result["after"][0]["code"], 1000, result["after"])


class MessageSizeLimit(BrowserTest):
    def test_a_message_over_the_limit_closes_with_1009(self):
        with Serve("-v", "--max-message-size", "64K", subcommand="echo", stdin=False) as server:
            # Exactly the limit passes.
            self.round_trip(server.url, [("binary", os.urandom(64 << 10)), ("text", "y" * (64 << 10))])
            self.assertEqual(access_line(server.stderr)["close"], 1000)
            # Just over it, and far more than the socket buffers hold. wsl fails the connection as soon
            # as the frame header announces too much: its close frame, its FIN, and then it reads and
            # drops what still comes, so that no reset destroys the close frame before the browser
            # read it. The browser, still busy sending the rest, cannot answer with its own close
            # frame before the FIN: wasClean may be false then, but the code must be 1009.
            for size in (64 << 10) + 1, 8 * MiB:
                events = self.page.evaluate("""
                  const p = new Peer(URL);
                  await p.expect('open');
                  p.ws.send(new Uint8Array(SIZE).buffer);
                  return await p.untilClose();
                """, URL=server.url, SIZE=size)
                self.assertEqual([(e["type"], e.get("code")) for e in events], [("close", 1009)], f"{size} B: {events}")
                self.assertEqual(access_line(server.stderr)["close"], 1009)
            # It goes on serving.
            self.round_trip(server.url, [("text", "still serving")])
            self.assertIsNone(server.proc.poll(), server.stderr.text())


class Deflate(BrowserTest):
    """Chrome always offers `permessage-deflate; client_max_window_bits`."""

    def plan(self) -> List[Item]:
        return [
            ("text", compressible_text(256 << 10)),
            ("binary", bytes(range(256)) * 1024),           # 256 KiB, very compressible
            ("binary", os.urandom(256 << 10)),              # 256 KiB, incompressible
            ("text", base64.b64encode(os.urandom(48 << 10)).decode()),  # 64 KiB, a little compressible
            ("text", ""), ("binary", b""), ("text", "short ✓"),
            ("text", compressible_text(256 << 10)),
        ]

    def test_compression_both_ways(self):
        with Serve("-v", "--deflate", subcommand="echo", stdin=False) as server:
            items = self.plan()
            result = self.round_trip(server.url, items)
            self.assertRegex(result["extensions"], r"^permessage-deflate(;|$)")
            wire = access_line(server.stderr)
            payload = sum(len(v.encode() if kind == "text" else v) for kind, v in items)
            # Uncompressed the wire carries the payload and more; compressed, the random 256 KiB and
            # most of the 64 KiB of base64 stay, the rest shrinks to a few KiB.
            for direction in "in", "out":
                self.assertLess(wire[direction], 400 << 10,
                                f"{direction}={wire[direction]} bytes on the wire for a {payload}-byte payload")
            print(f"\n  deflate: extensions {result['extensions']!r}; payload {payload} B each way, on the "
                  f"wire in={wire['in']} out={wire['out']}", file=sys.stderr)

    def test_without_deflate_nothing_is_compressed(self):
        with Serve("-v", subcommand="echo", stdin=False) as server:
            items = self.plan()
            result = self.round_trip(server.url, items)
            self.assertEqual(result["extensions"], "")
            wire = access_line(server.stderr)
            payload = sum(len(v.encode() if kind == "text" else v) for kind, v in items)
            for direction in "in", "out":
                self.assertGreaterEqual(wire[direction], payload, f"{direction}: {wire}")


class Tls(BrowserTest):
    """wss:// with the test CA's server certificate; Chromium trusts that certificate's key only."""

    def test_round_trips_over_wss(self):
        with wsl_echo("-v", "--deflate", pki=PKI) as server:
            self.assertTrue(server.url.startswith("wss://"), server.url)
            items: List[Item] = [("text", "über TLS ✓"), ("binary", os.urandom(MiB)), ("binary", b""),
                                 ("text", compressible_text(128 << 10))]
            result = self.round_trip(server.url, items, close=(4001, "tls bye"))
            self.assertRegex(result["extensions"], r"^permessage-deflate(;|$)")
            self.assertEqual(access_line(server.stderr)["close"], 4001)

    def test_a_certificate_with_another_key_is_refused(self):
        # The self-signed certificate names 127.0.0.1 too, but its key is not in the SPKI list: this
        # fails unless Chromium trusts exactly our key (not any certificate at all).
        with wsl_echo("--deflate", cert=PKI.self_signed, key=PKI.self_signed_key) as server:
            self.open_fails(server.url)
            server.assert_alive()


class Subprotocols(BrowserTest):
    def test_wsl_chooses_from_the_browsers_offer(self):
        with Serve("--subprotocol", "chat", "--subprotocol", "superchat", subcommand="echo", stdin=False) as server:
            for offer, chosen in ((["x", "chat"], "chat"), (["superchat", "chat"], "chat"),
                                  (["superchat", "y"], "superchat")):
                result = self.round_trip(server.url, [("text", f"via {chosen}")], protocols=offer)
                self.assertEqual(result["protocol"], chosen, f"offered {offer}")
            self.assertEqual(self.round_trip(server.url, [("text", "none offered")])["protocol"], "")

    def test_an_offer_wsl_does_not_take_fails_in_the_browser(self):
        # wsl accepts the upgrade without a subprotocol (RFC 6455 allows it; wsl-serve(1) says so), but
        # a browser that offered some fails such a connection (WHATWG WebSockets): 1006 in the page.
        with Serve("--subprotocol", "chat", subcommand="echo", stdin=False) as server:
            self.open_fails(server.url, protocols=["x"])
            self.round_trip(server.url, [("text", "still serving")], protocols=["chat"])


PAGE = "<!doctype html><meta charset=utf-8><title>wsl browser test</title><p>served by wsl</p>\n"


class PageOrigin(BrowserTest):
    """A page from `wsl serve --static` and its WebSocket on the same port: a real Origin header."""

    def setUp(self) -> None:
        super().setUp()
        tmp = tempfile.TemporaryDirectory(prefix="wsl-browser-static-")
        self.addCleanup(tmp.cleanup)
        self.static = tmp.name
        with open(os.path.join(self.static, "index.html"), "w") as f:
            f.write(PAGE)

    def load_page(self, server) -> str:
        self.page.navigate(f"http://127.0.0.1:{server.port}/")
        location = self.page.evaluate("return [document.title, location.origin];")
        self.assertEqual(location, ["wsl browser test", f"http://127.0.0.1:{server.port}"])
        return location[1]

    def test_an_allowed_origin_reaches_the_command(self):
        # The command tells what the browser sent: its Origin, Host and extension offer, and the
        # subprotocol wsl chose; then it echoes.
        script = ('printf "%s|%s|%s|%s\\n" "$HTTP_ORIGIN" "$HTTP_HOST" "$HTTP_SEC_WEBSOCKET_EXTENSIONS" '
                  '"$WEBSOCKET_SUBPROTOCOL"; exec cat')
        with Serve("--static", self.static, "--origin", "127.0.0.1", "--subprotocol", "chat",
                   "--", "sh", "-c", script, stdin=False) as server:
            origin = self.load_page(server)
            result = self.page.evaluate("""
              const p = new Peer(`ws://${location.host}/`, ['chat']);
              await p.expect('open');
              const greeting = await p.expect('message');
              p.ws.send('from the page ✓');
              const echo = await p.expect('message');
              p.ws.close(1000);
              return {protocol: p.ws.protocol, greeting, echo, after: await p.untilClose()};
            """)
            self.assertEqual(result["greeting"]["type"], "message")
            sent_origin, host, offer, subprotocol = result["greeting"]["text"].split("|")
            self.assertEqual((sent_origin, host, subprotocol), (origin, f"127.0.0.1:{server.port}", "chat"))
            self.assertRegex(offer, r"^permessage-deflate\b", "Chrome offers permessage-deflate")
            self.assertEqual(result["echo"], {"type": "message", "text": "from the page ✓"})
            self.assertEqual(result["protocol"], "chat")
            self.assertEqual([(e["type"], e["code"]) for e in result["after"]], [("close", 1000)], result["after"])

    def test_another_origin_is_refused_and_others_are_still_served(self):
        with Serve("-v", "--static", self.static, "--origin", "https://app.example.com", "--", "cat",
                   stdin=False) as server:
            origin = self.load_page(server)  # plain GETs are not checked: the page loads
            self.open_fails(f"ws://127.0.0.1:{server.port}/")
            line = server.stderr.wait_match(r"Origin \S+ refused")
            self.assertIn(f"Origin {origin} refused", line)
            server.stderr.wait_match(r"access .* GET / 403 ")
            # A client without an Origin (not a browser) is served; the browser is refused again.
            with open_client(server.port) as client:
                client.send_frame(OP_TEXT, "no origin ✓".encode())
                self.assertEqual(client.recv_message(), (OP_TEXT, "no origin ✓".encode()))
            self.open_fails(f"ws://127.0.0.1:{server.port}/")
            self.assertIsNone(server.proc.poll(), server.stderr.text())

    def test_same_origin_serves_this_servers_pages_only(self):
        # What --same-origin prevents: a page of one server (A) opening a WebSocket to another
        # server on the same machine (B), through the user's browser. A's page still reaches A.
        with Serve("--static", self.static, "--same-origin", subcommand="echo", stdin=False) as a, \
                Serve("-v", "--same-origin", subcommand="echo", stdin=False) as b:
            origin = self.load_page(a)
            self.round_trip(f"ws://127.0.0.1:{a.port}/", [("text", "same origin ✓")])
            self.open_fails(f"ws://127.0.0.1:{b.port}/")
            self.assertIn(f"Origin {origin} refused", b.stderr.wait_match(r"Origin \S+ refused"))
            self.assertIsNone(b.proc.poll(), b.stderr.text())

    def test_serve_pipe_between_stdin_stdout_and_the_page(self):
        # Chrome may open a spare connection to the page's server that never sends a request. At the
        # end of stdin wsl ends such a negotiation at once: it must not wait out --handshake-timeout
        # (longer here than our wait for the exit) before it exits.
        with Serve("--static", self.static, "--pipe", "--origin", "127.0.0.1", "--handshake-timeout", "60s") as server:
            self.load_page(server)
            self.page.evaluate("window.peer = new Peer(`ws://${location.host}/`); await window.peer.expect('open');")
            server.send("from stdin ✓\n".encode() + b"\xff\xfe not UTF-8\n")
            got = self.page.evaluate("return await window.peer.messages(2);")
            self.assertEqual(got, [{"type": "message", "text": "from stdin ✓"},
                                   {"type": "message", "binary": base64.b64encode(b"\xff\xfe not UTF-8").decode()}])
            self.page.evaluate("window.peer.ws.send('from the page ✓'); window.peer.ws.send('second');")
            server.wait_stdout(lambda out: out == "from the page ✓\nsecond\n".encode())
            server.end_input()  # the end of stdin closes every client with 1000, and wsl exits 0
            after = self.page.evaluate("return await window.peer.untilClose();")
            self.assertEqual([(e["type"], e.get("code"), e.get("wasClean")) for e in after], [("close", 1000, True)])
            self.assertEqual(server.wait(), 0, server.stderr.text())


# Drives the --devconsole page through its own controls, as a person would: waits (MutationObserver,
# bounded by WAIT_MS) until the log holds an entry of a kind whose text matches.
CONSOLE_HELPERS = """
const $ = (id) => document.getElementById(id);
const entries = () => Array.from($('log').children, (li) => [li.dataset.kind, li.querySelector('.body').textContent]);
const logged = (kind, pattern) => new Promise((resolve, reject) => {
  const find = () => entries().find(([k, text]) => k === kind && pattern.test(text));
  const found = find();
  if (found) return resolve(found[1]);
  const observer = new MutationObserver(() => {
    const hit = find();
    if (hit) { observer.disconnect(); clearTimeout(timer); resolve(hit[1]); }
  });
  const timer = setTimeout(() => {
    observer.disconnect();
    reject(new Error(`no ${kind} entry matching ${pattern} within ${WAIT_MS} ms; the log: ${JSON.stringify(entries())}`));
  }, WAIT_MS);
  observer.observe($('log'), {childList: true});
});
const type = (text) => {
  $('input').value = text;
  $('input').dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter', bubbles: true}));
};
"""


class DevConsole(BrowserTest):
    """`--devconsole`: the page a plain GET gets, used through its controls."""

    def test_the_console_talks_to_its_own_path_both_ways(self):
        # The command says which path and query it was started for, then echoes.
        script = 'printf "%s\\n" "$REQUEST_URI"; exec cat'
        with Serve("--devconsole", "--", "sh", "-c", script, stdin=False) as server:
            self.page.navigate(f"http://127.0.0.1:{server.port}/chat/room?x=1")
            result = self.page.evaluate(CONSOLE_HELPERS + """
              const url = $('url').value;
              await logged('event', /^open /);
              const greeting = await logged('received', /^\\//);
              type('hello <b>there</b> ✓');
              const sent = await logged('sent', /hello/);
              const echoed = await logged('received', /hello/);
              $('binary').checked = true;
              type('00 ff 01');
              const binary = await logged('received', /^binary/);
              type('not hex');
              const refused = await logged('error', /not hex/);
              const up = () => { $('input').dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowUp'})); return $('input').value; };
              const recalled = [up(), up()];
              $('toggle').click();
              const closed = await logged('event', /^closed/);
              return {url, greeting, sent, echoed, binary, refused, recalled, closed, bold: $('log').querySelectorAll('b').length,
                      status: $('status').textContent, button: $('toggle').textContent};
            """)
            self.assertEqual(result["url"], f"ws://127.0.0.1:{server.port}/chat/room?x=1")
            self.assertEqual(result["greeting"], "/chat/room?x=1")
            self.assertEqual(result["sent"], "hello <b>there</b> ✓")
            self.assertEqual(result["echoed"], "hello <b>there</b> ✓")
            self.assertEqual(result["bold"], 0, "a message is shown as text, never as markup")
            self.assertEqual(result["binary"], "binary, 3 bytes: 00 ff 01")
            self.assertEqual(result["refused"], "not hex: not hex")
            self.assertEqual(result["recalled"], ["00 ff 01", "hello <b>there</b> ✓"], "arrows recall what was sent")
            self.assertEqual(result["closed"], "closed 1000")
            self.assertEqual((result["status"], result["button"]), ("closed 1000", "Connect"))

    def test_a_refused_upgrade_and_the_close_code_show_in_the_log(self):
        with Serve("--devconsole", "--pipe", "--max-connections", "1") as server:
            self.page.navigate(f"http://127.0.0.1:{server.port}/")
            self.page.evaluate(CONSOLE_HELPERS + "await logged('event', /^open /);")
            server.send(b"line from stdin\n")
            self.page.evaluate(CONSOLE_HELPERS + "await logged('received', /^line from stdin$/);")
            # A second console: the server is full (503), which the browser reports as a failed open.
            second = BROWSER.new_page()
            self.addCleanup(second.close)
            second.navigate(f"http://127.0.0.1:{server.port}/")
            closed = second.evaluate(CONSOLE_HELPERS + "return await logged('event', /^closed/);")
            self.assertEqual(closed, "closed 1006 (not clean)")
            server.end_input()  # the end of stdin closes the first one with 1000
            closed = self.page.evaluate(CONSOLE_HELPERS + "return await logged('event', /^closed/);")
            self.assertEqual(closed, "closed 1000")
            self.assertEqual(server.wait(), 0, server.stderr.text())


def main() -> int:
    global BROWSER, PKI
    with tempfile.TemporaryDirectory(prefix="wsl-browser-") as tmp:
        PKI = make_pki(tmp)
        started = time.monotonic()
        with Chromium(ignore_spki=[spki_sha256(PKI.server)]) as browser:
            BROWSER = browser
            print(f"{browser.version} ready after {time.monotonic() - started:.1f} s", file=sys.stderr)
            program = unittest.main(exit=False)
            ok = program.result.wasSuccessful()
            if not ok:
                print(f"\n--- the end of Chromium's stderr ---\n{browser.stderr_tail()}", file=sys.stderr)
            BROWSER = None
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
