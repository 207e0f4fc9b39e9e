"""Headless Chromium as a test peer, driven over the DevTools protocol (CDP) with python3-websockets.

    with Chromium(ignore_spki=[spki_sha256(pki.server)]) as browser:
        page = browser.new_page()
        page.evaluate("const p = new Peer(URL); await p.expect('open'); return p.ws.extensions;")

- `Chromium` starts the Debian `chromium` ($WSL_TEST_CHROMIUM, else `chromium` in PATH) headless, with
  a fresh profile and HOME in a temporary directory and every background service that would reach for
  the network switched off, in a session of its own; it reads the DevTools port from
  `<profile>/DevToolsActivePort` (polled with a deadline: the file appears once the port is bound).
  At the end the whole process group gets SIGKILL and is waited for; if the test process dies first,
  the browser gets SIGKILL through PR_SET_PDEATHSIG and its children follow it.
- `Page` is one tab: `evaluate` runs JavaScript as the body of an async function with `awaitPromise`,
  `navigate` loads a URL and waits for its load event. The helpers in `PAGE_HELPERS` come first in every
  evaluation: `Peer` (a WebSocket whose events queue up, `next`/`expect`/`until` with timeouts) and
  base64 codecs, so that binary data crosses CDP exactly.
- `spki_sha256`: base64 SHA-256 of a certificate's public key, for `--ignore-certificate-errors-spki-list`.

Chromium's stderr (plenty of noise about D-Bus and GPUs) goes to a file; `stderr_tail` shows its end
when something failed. Every wait is bounded (TIMEOUT, stretched by WSL_TIME_SCALE); nothing
synchronises by sleeping.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional, Sequence

import websockets  # python3-websockets (Debian), the CDP client

from harness import TIMEOUT, _die_with_parent

CHROMIUM = os.environ.get("WSL_TEST_CHROMIUM") or "chromium"
OPENSSL = os.environ.get("WSL_TEST_OPENSSL") or "openssl"

# As root Chromium runs only without its sandbox; the pages it loads here are our own. The rest keeps
# it off the network (this machine has none beyond loopback: background requests would be refused or
# hang) and quiet: no component updates, sync, QUIC, proxies, first-run UI or crash uploads.
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-proxy-server", "--no-default-browser-check", "--disable-extensions", "--disable-breakpad",
    "--disable-crash-reporter", "--mute-audio", "--remote-debugging-port=0",
]


def spki_sha256(cert_pem: str) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo)) of a PEM certificate, as Chromium's SPKI lists want it."""
    def run(argv, data):
        return subprocess.run(argv, input=data, capture_output=True, check=True, timeout=TIMEOUT,
                              env=dict(os.environ, OPENSSL_CONF="/dev/null")).stdout
    with open(cert_pem, "rb") as f:
        pub = run([OPENSSL, "x509", "-pubkey", "-noout"], f.read())
    der = run([OPENSSL, "pkey", "-pubin", "-outform", "DER"], pub)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


class JsError(AssertionError):
    """The evaluated JavaScript threw (or its promise rejected)."""


class Chromium:
    """One headless Chromium with one DevTools connection, for a `with` block."""

    def __init__(self, ignore_spki: Sequence[str] = (), start_timeout: float = 3 * TIMEOUT) -> None:
        self.ignore_spki = list(ignore_spki)
        self.start_timeout = start_timeout
        self.proc: Optional[subprocess.Popen] = None
        self.dir: Optional[str] = None
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.thread: Optional[threading.Thread] = None
        self.cdp: Optional[_Cdp] = None
        self.version = ""

    def __enter__(self) -> "Chromium":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- process -------------------------------------------------------------------------------

    def start(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="wsl-chromium-")
        profile = os.path.join(self.dir, "profile")
        os.mkdir(profile)
        flags = [*FLAGS, f"--user-data-dir={profile}"]
        if self.ignore_spki:  # trust these keys' certificates, and no other unknown ones
            flags.append("--ignore-certificate-errors-spki-list=" + ",".join(self.ignore_spki))
        # HOME and XDG dirs in the temporary directory too: nothing lands in the user's home.
        env = dict(os.environ, HOME=self.dir, XDG_CONFIG_HOME=self.dir, XDG_CACHE_HOME=self.dir)
        self.log_path = os.path.join(self.dir, "chromium.log")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([CHROMIUM, *flags, "about:blank"], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, env=env, start_new_session=True,
                                         preexec_fn=_die_with_parent)
        port_file = os.path.join(profile, "DevToolsActivePort")
        deadline = time.monotonic() + self.start_timeout
        while True:  # the file is written once the port is bound: poll it, with a deadline
            if self.proc.poll() is not None:
                raise AssertionError(f"{CHROMIUM} exited with {self.proc.returncode} before its DevTools port "
                                     f"was ready:\n{self.stderr_tail()}")
            try:
                with open(port_file) as f:
                    lines = f.read().split("\n")
                if len(lines) >= 2 and lines[0].isdigit() and lines[1].startswith("/devtools/"):
                    break
            except FileNotFoundError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"no {port_file} within {self.start_timeout:.0f} s:\n{self.stderr_tail()}")
            time.sleep(0.05)
        url = f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="cdp")
        self.thread.start()
        self.cdp = self._run(_Cdp.connect(url), TIMEOUT)
        self.version = self.call("Browser.getVersion")["product"]

    def stop(self) -> None:
        if self.cdp is not None and self.loop is not None:
            try:
                self._run(self.cdp.close(), TIMEOUT)
            except Exception:  # the browser may be gone already
                pass
            self.cdp = None
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(TIMEOUT)
            self.loop.close()
            self.loop = None
        if self.proc is not None:
            self._kill_group()
            self.proc = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def _kill_group(self) -> None:
        """SIGKILL to Chromium's process group (it leads a session of its own), reap it, and wait until
        the group is empty: its children are not ours to reap, but must not outlive the test. (Its
        crash handlers start sessions of their own; they end when the browser does.)"""
        pgid = self.proc.pid
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=TIMEOUT)
        deadline = time.monotonic() + TIMEOUT
        while _group_alive(pgid):
            if time.monotonic() > deadline:
                raise AssertionError(f"Chromium's process group {pgid} still has live processes after SIGKILL")
            time.sleep(0.05)

    def stderr_tail(self, lines: int = 40) -> str:
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except (AttributeError, OSError):
            return "(no Chromium log)"
        return "\n".join(text.splitlines()[-lines:])

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- DevTools ------------------------------------------------------------------------------

    def _run(self, coro, timeout: float):
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout + 1)  # the coroutine bounds itself; this is the backstop
        except TimeoutError:
            future.cancel()
            raise AssertionError(f"DevTools call did not finish within {timeout:.0f} s") from None

    def call(self, method: str, params: Optional[Dict[str, Any]] = None, session: Optional[str] = None,
             timeout: float = TIMEOUT) -> Dict[str, Any]:
        return self._run(self.cdp.call(method, params or {}, session, timeout), timeout)

    def new_page(self, url: str = "about:blank") -> "Page":
        target = self.call("Target.createTarget", {"url": url})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, target, session)
        page.call("Page.enable")  # for Page.loadEventFired
        return page


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs (zombies, waiting for init to reap them, do not count)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


class Page:
    """One tab, attached in flat mode: its commands carry our session id."""

    def __init__(self, browser: Chromium, target: str, session: str) -> None:
        self.browser = browser
        self.target = target
        self.session = session

    def __enter__(self) -> "Page":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def call(self, method: str, params: Optional[Dict[str, Any]] = None, timeout: float = TIMEOUT) -> Dict[str, Any]:
        return self.browser.call(method, params, self.session, timeout)

    def close(self) -> None:
        """Closes the tab (and with it every WebSocket it still had open)."""
        if self.browser.alive():
            self.browser.call("Target.closeTarget", {"targetId": self.target})

    def navigate(self, url: str, timeout: float = TIMEOUT) -> None:
        """Loads url and waits for its load event; AssertionError if it could not be loaded."""
        async def go():
            cdp = self.browser.cdp
            loaded = cdp.expect_event("Page.loadEventFired", self.session)
            try:
                result = await cdp.call("Page.navigate", {"url": url}, self.session, timeout)
                if result.get("errorText"):
                    raise AssertionError(f"loading {url}: {result['errorText']}")
                await asyncio.wait_for(loaded, timeout)
            except asyncio.TimeoutError:
                raise AssertionError(f"{url} did not load within {timeout:.0f} s") from None
            finally:
                loaded.cancel()
        self.browser._run(go(), timeout * 2)

    def evaluate(self, body: str, timeout: float = 5 * TIMEOUT, **constants: Any) -> Any:
        """Runs `body` as the body of an async function after PAGE_HELPERS and returns its result
        (JSON-serialisable). `constants` become `const NAME = <json>;` lines before it. JsError if it
        throws; AssertionError if it does not finish within `timeout`."""
        prelude = "".join(f"const {name} = {json.dumps(value)};\n" for name, value in constants.items())
        expression = f"(async () => {{\n{PAGE_HELPERS}\n{prelude}{body}\n}})()"
        result = self.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                "returnByValue": True}, timeout)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise JsError(f"JavaScript threw: {text}")
        return result["result"].get("value")


# JavaScript run before every evaluation. WAIT_MS bounds each wait for an event (WSL_TIME_SCALE applies).
PAGE_HELPERS = """
const WAIT_MS = %d;
const toBase64 = (data) => {
  const bytes = new Uint8Array(data);
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(s);
};
const fromBase64 = (text) => {
  const s = atob(text);
  const bytes = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) bytes[i] = s.charCodeAt(i);
  return bytes.buffer;
};
// A WebSocket whose events queue up as plain objects: {type: 'open'}, {type: 'message', text} or
// {type: 'message', binary: base64}, {type: 'error'}, {type: 'close', code, reason, wasClean}.
class Peer {
  constructor(url, protocols) {
    this.queue = [];
    this.waiter = null;
    this.ws = protocols === undefined ? new WebSocket(url) : new WebSocket(url, protocols);
    this.ws.binaryType = 'arraybuffer';
    this.ws.onopen = () => this.push({type: 'open'});
    this.ws.onerror = () => this.push({type: 'error'});
    this.ws.onclose = (e) => this.push({type: 'close', code: e.code, reason: e.reason, wasClean: e.wasClean});
    this.ws.onmessage = (e) => this.push(typeof e.data === 'string' ? {type: 'message', text: e.data}
                                                                     : {type: 'message', binary: toBase64(e.data)});
  }
  push(event) {
    if (this.waiter) { const w = this.waiter; this.waiter = null; w(event); } else this.queue.push(event);
  }
  // The next event, or {type: 'timeout'} after WAIT_MS.
  next() {
    if (this.queue.length) return Promise.resolve(this.queue.shift());
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.waiter = null; resolve({type: 'timeout', after_ms: WAIT_MS}); }, WAIT_MS);
      this.waiter = (event) => { clearTimeout(timer); resolve(event); };
    });
  }
  // The next event, which must be of this type (else it throws, naming what came instead).
  async expect(type) {
    const event = await this.next();
    if (event.type !== type) throw new Error(`expected ${type}, got ${JSON.stringify(event).slice(0, 300)}`);
    return event;
  }
  // The next n messages (throws on anything else).
  async messages(n) {
    const got = [];
    while (got.length < n) got.push(await this.expect('message'));
    return got;
  }
  // Every event up to and including the close event (or a timeout).
  async untilClose() {
    const events = [];
    for (;;) {
      const event = await this.next();
      events.push(event);
      if (event.type === 'close' || event.type === 'timeout') return events;
    }
  }
}
""" % int(TIMEOUT * 1000)


class _Cdp:
    """A DevTools protocol connection: numbered commands with futures, events to whoever waits."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.pending: Dict[int, asyncio.Future] = {}
        self.waiters: List[tuple] = []  # (method, session, future)
        self.reader = asyncio.ensure_future(self._read())

    @classmethod
    async def connect(cls, url: str) -> "_Cdp":
        # No keepalive pings (the browser answers commands; a stalled one hits its own timeout);
        # results carry whole messages as base64, so no small size limit either.
        ws = await asyncio.wait_for(websockets.connect(url, max_size=256 << 20, ping_interval=None,
                                                       open_timeout=TIMEOUT), TIMEOUT)
        return cls(ws)

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                message = json.loads(raw)
                if "id" in message:
                    future = self.pending.pop(message["id"], None)
                    if future and not future.done():
                        future.set_result(message)
                    continue
                for waiter in list(self.waiters):
                    method, session, future = waiter
                    if future.done():  # cancelled by a waiter that gave up
                        self.waiters.remove(waiter)
                    elif method == message.get("method") and session == message.get("sessionId"):
                        self.waiters.remove(waiter)
                        if not future.done():
                            future.set_result(message.get("params", {}))
        except websockets.ConnectionClosed:
            pass
        finally:
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(AssertionError("the DevTools connection closed (Chromium died?)"))

    async def call(self, method: str, params: Dict[str, Any], session: Optional[str], timeout: float) -> Dict[str, Any]:
        number = next(self.ids)
        message = {"id": number, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        future = asyncio.get_running_loop().create_future()
        self.pending[number] = future
        await self.ws.send(json.dumps(message))
        try:
            reply = await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            self.pending.pop(number, None)
            raise AssertionError(f"{method}: no answer from Chromium within {timeout:.0f} s") from None
        if "error" in reply:
            raise AssertionError(f"{method}: {reply['error']}")
        return reply["result"]

    def expect_event(self, method: str, session: Optional[str]) -> asyncio.Future:
        """A future for the next event `method` of `session` (register it before causing the event)."""
        future = asyncio.get_running_loop().create_future()
        self.waiters.append((method, session, future))
        return future

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()
