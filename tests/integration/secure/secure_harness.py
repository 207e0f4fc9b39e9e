"""Shared parts of the wss:// and permessage-deflate tests (tests/integration/secure).

- `make_pki`: a CA and the certificates the tests need, made with the `openssl` command.
- `Listening`: a server process (wsl, node_peer.js) that prints `listening on ws[s]://HOST:PORT/ [NAME]`
  lines on stderr and JSON events on stdout; killed and reaped at the end.
- `wsl_echo`, `run_wsl`: `wsl echo` on port 0, and short-lived `wsl` clients.
- `PyServers`: python3-websockets echo servers (ws:// or wss://, any permessage-deflate settings) on an
  event loop thread of the test process; `py_client`: a python3-websockets client running a plan.
- `NodeServers`, `node_clients`: the same with node `ws` (node_peer.js).
- `RawServer`: answers every upgrade with a fixed Sec-WebSocket-Extensions header.
- Message plans (`DEFLATE_PLAN`, `payloads`) and the expectations about what a compressor that
  honours the negotiated window and context takeover produces (`expect_compression`).

Every wait is bounded (TIMEOUT, stretched by WSL_TIME_SCALE); nothing synchronises by sleeping.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
import os
import queue
import re
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import harness  # noqa: E402  (tests/integration/harness.py)
from harness import GUID, TIME_SCALE, TIMEOUT, WSL  # noqa: E402

import websockets  # noqa: E402
from websockets.extensions.permessage_deflate import (  # noqa: E402
    ClientPerMessageDeflateFactory, ServerPerMessageDeflateFactory)

NODE = os.environ.get("WSL_TEST_NODE") or "node"
OPENSSL = os.environ.get("WSL_TEST_OPENSSL") or "openssl"
NODE_PEER = os.path.join(HERE, "node_peer.js")
MAX_SIZE = 64 << 20


# --------------------------------------------------------------------------------------------
# Certificates
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Pki:
    """PEM files in one directory. Every key is EC P-256 (fast to make)."""
    ca: str                 # the CA the tests trust
    server: str             # signed by ca, for DNS:localhost and IP:127.0.0.1
    server_key: str
    wrong_host: str         # signed by ca, for DNS:wrong.example and IP:10.255.255.1 only
    wrong_host_key: str
    self_signed: str        # for localhost and 127.0.0.1, but signed by itself
    self_signed_key: str
    client: str             # a client certificate signed by ca
    client_key: str
    other_ca: str           # another CA, trusted by nobody
    other_client: str       # a client certificate signed by other_ca
    other_client_key: str


def _openssl(*args: str, cwd: str) -> None:
    result = subprocess.run([OPENSSL, *args], cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT,
                            env=dict(os.environ, OPENSSL_CONF="/dev/null"))
    if result.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed:\n{result.stderr}")


def make_pki(directory: str) -> Pki:
    """Makes the CAs and certificates in `directory` (valid for two days)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]

    def ca(name: str) -> None:
        _openssl("req", "-x509", *ec, "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
                 "-subj", f"/CN=wsl test {name}", "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)

    def leaf(name: str, subject: str, extensions: str, issuer: Optional[str]) -> None:
        with open(os.path.join(directory, f"{name}.ext"), "w") as f:
            f.write(extensions + "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n")
        if issuer is None:  # self-signed
            _openssl("req", "-x509", *ec, "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
                     "-subj", subject, "-extensions", "v3", "-config", _self_signed_config(directory, name),
                     cwd=directory)
            return
        _openssl("req", "-new", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject,
                 cwd=directory)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{issuer}.pem", "-CAkey", f"{issuer}.key",
                 "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "2", "-out", f"{name}.pem",
                 "-extfile", f"{name}.ext", cwd=directory)

    server_names = "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
    ca("ca")
    ca("other_ca")
    leaf("server", "/CN=localhost", server_names, "ca")
    leaf("wrong_host", "/CN=wrong.example",
         "subjectAltName=DNS:wrong.example,IP:10.255.255.1\nextendedKeyUsage=serverAuth\n", "ca")
    leaf("self_signed", "/CN=localhost", server_names, None)
    leaf("client", "/CN=wsl test client", "extendedKeyUsage=clientAuth\n", "ca")
    leaf("other_client", "/CN=wsl test other client", "extendedKeyUsage=clientAuth\n", "other_ca")
    path = lambda name: os.path.join(directory, name)  # noqa: E731
    return Pki(ca=path("ca.pem"), server=path("server.pem"), server_key=path("server.key"),
               wrong_host=path("wrong_host.pem"), wrong_host_key=path("wrong_host.key"),
               self_signed=path("self_signed.pem"), self_signed_key=path("self_signed.key"),
               client=path("client.pem"), client_key=path("client.key"), other_ca=path("other_ca.pem"),
               other_client=path("other_client.pem"), other_client_key=path("other_client.key"))


def _self_signed_config(directory: str, name: str) -> str:
    config = os.path.join(directory, f"{name}.cnf")
    with open(os.path.join(directory, f"{name}.ext")) as f:
        extensions = f.read()
    with open(config, "w") as f:
        f.write("[req]\ndistinguished_name=dn\n[dn]\n[v3]\n" + extensions)
    return config


def server_context(cert: str, key: str, client_ca: Optional[str] = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(client_ca)
    return ctx


def client_context(ca: str, cert: Optional[str] = None, key: Optional[str] = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca)
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------

LISTENING = re.compile(r"^listening on (?P<scheme>wss?)://(?P<host>[^ /]+):(?P<port>\d+)/(?: (?P<name>\S+))?$")


class Listening:
    """A server process that announces `listening on ws[s]://HOST:PORT/ [NAME]` lines on stderr.

    `ports[name]` (name "" when the line has none) and `urls[name]` are ready after start(); stdout
    lines are JSON events (`wait_event`)."""

    def __init__(self, argv: Sequence[str], count: int = 1, env: Optional[Dict[str, str]] = None) -> None:
        self.argv = list(argv)
        self.count = count
        self.env = env
        self.ports: Dict[str, int] = {}
        self.urls: Dict[str, str] = {}
        self.proc: Optional[subprocess.Popen] = None
        self.events: List[Dict[str, Any]] = []

    def __enter__(self) -> "Listening":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.kill()

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=dict(os.environ, **(self.env or {})),
                                     preexec_fn=harness._die_with_parent)
        harness._live.append(self.proc)
        self.stdout = harness._LineCollector(self.proc.stdout)
        self.stderr = harness._LineCollector(self.proc.stderr)
        deadline = time.monotonic() + TIMEOUT
        while len(self.ports) < self.count:
            try:
                line = self.stderr.next_line(deadline)
            except TimeoutError:
                line = None
            match = LISTENING.match(line or "")
            if not match:
                self.kill()
                raise AssertionError(f"{' '.join(self.argv)}: no listening line (got {line!r}); stderr:\n"
                                     f"{self.stderr.text()}")
            name = match["name"] or ""
            self.ports[name] = int(match["port"])
            self.urls[name] = f"{match['scheme']}://127.0.0.1:{match['port']}/"

    @property
    def port(self) -> int:
        return self.ports[""]

    @property
    def url(self) -> str:
        return self.urls[""]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def assert_alive(self) -> None:
        if not self.running():
            raise AssertionError(f"{self.argv[0]} exited with {self.proc.returncode}; stderr:\n{self.stderr.text()}")

    def wait_event(self, predicate, timeout: float = TIMEOUT) -> Dict[str, Any]:
        """The first JSON event on stdout (seen before or arriving now) for which predicate holds."""
        deadline = time.monotonic() + timeout
        for event in self.events:
            if predicate(event):
                self.events.remove(event)
                return event
        while True:
            try:
                line = self.stdout.next_line(deadline)
            except TimeoutError:
                raise AssertionError(f"no matching event within {timeout:.1f} s; stderr:\n{self.stderr.text()}") from None
            if line is None:
                raise AssertionError(f"{self.argv[0]} ended; stderr:\n{self.stderr.text()}")
            event = json.loads(line)
            if predicate(event):
                return event
            self.events.append(event)

    def vm_kib(self, field: str) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise KeyError(field)

    def kill(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=TIMEOUT)
        for collector in (self.stdout, self.stderr):
            collector.join(TIMEOUT)
            collector.pipe.close()


def wsl_echo(*options: str, pki: Optional[Pki] = None, cert: Optional[str] = None, key: Optional[str] = None,
             env: Optional[Dict[str, str]] = None) -> Listening:
    """`wsl echo --port 0 OPTIONS`, with --tls-cert/--tls-key when pki (or cert and key) is given."""
    argv = [WSL, "echo", "--host", "127.0.0.1", "--port", "0", *options]
    if pki or cert:
        argv += ["--tls-cert", cert or pki.server, "--tls-key", key or pki.server_key]
    return Listening(argv, env=env)


def run_wsl(*args: str, stdin: bytes = b"", timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    """Runs `wsl ARGS` to its end with `stdin`; stdout and stderr as bytes and text."""
    result = subprocess.run([WSL, *args], input=stdin, capture_output=True, timeout=timeout,
                            preexec_fn=harness._die_with_parent)
    result.stderr = result.stderr.decode("utf-8", "replace")
    return result


def describe(result: subprocess.CompletedProcess) -> str:
    out = result.stdout if isinstance(result.stdout, str) else result.stdout[:160].decode("utf-8", "replace")
    return f"`wsl {' '.join(result.args[1:])}` exited {result.returncode}; stdout: {out!r}; stderr:\n{result.stderr}"


# --------------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------------

# Several messages per connection, so that context takeover and the window size matter: message 1
# repeats message 0 (6000 random bytes, incompressible on their own) right behind it, so it shrinks
# to a few bytes only with context takeover and a window of at least 2^13; message 3 repeats it
# behind 20000 more bytes, within reach of a 2^15 window only.
DEFLATE_PLAN: List[Dict[str, Any]] = [
    {"type": "binary", "kind": "random", "size": 6000},
    {"type": "binary", "kind": "again", "of": 0},
    {"type": "text", "kind": "words", "size": 20000},
    {"type": "binary", "kind": "again", "of": 0},
    {"type": "text", "kind": "pattern", "size": 0},
    {"type": "text", "kind": "words", "size": 10},       # under the default threshold of 64
    {"type": "text", "kind": "random", "size": 70000},   # base64: compresses to about 3/4
    {"type": "binary", "kind": "pattern", "size": 1 << 20},
]

_WORDS = ["stream", "frame", "window", "deflate", "context", "takeover", "socket", "message"]


def payloads(plan: Sequence[Dict[str, Any]]) -> List[bytes]:
    """The payloads of a plan (node_peer.js builds the same kinds)."""
    out: List[bytes] = []
    for spec in plan:
        kind, size = spec["kind"], spec.get("size", 0)
        if kind == "random":
            data = os.urandom(size)
            if spec["type"] == "text":
                data = base64.b64encode(data)[:size]
        elif kind == "words":
            parts, n, i = [], 0, 0
            while n < size:
                word = _WORDS[(i * 7 + (i >> 3)) % len(_WORDS)] + " "
                parts.append(word)
                n += len(word)
                i += 1
            data = "".join(parts)[:size].encode()
        elif kind == "pattern":
            data = bytes(97 + i * 7 % 26 if spec["type"] == "text" else i * 131 % 251 for i in range(size))
        elif kind == "again":
            data = out[spec["of"]]
        else:
            raise ValueError(kind)
        out.append(data)
    return out


def expect_compression(plan: Sequence[Dict[str, Any]], sizes: Sequence[Optional[int]], *,
                       takeover: Optional[bool], window: int, threshold: int = 64, context: str = "") -> None:
    """Checks the compressed sizes of a plan's messages (None: sent without RSV1) against what a
    compressor that honours the agreement sends: messages under the threshold uncompressed; a
    repeat a few bytes long exactly when the context is kept and the window reaches back to the
    nearest copy (zlib matches reach 2^window - 262 bytes back); compressible data smaller (with a window of 8
    bits only run-length matches are left, and the binary pattern's period of 251 bytes needs 10).
    With takeover None only the RSV1 bits are checked (for low compression levels)."""
    assert len(sizes) == len(plan), f"{context}: {len(sizes)} sizes for {len(plan)} messages"
    lengths = payloads_sizes(plan)
    reach = (1 << window) - 262
    for i, (spec, size) in enumerate(zip(plan, sizes)):
        where = f"{context}: message {i} ({spec['type']} {spec['kind']}, {lengths[i]} bytes) went as {size}"
        if lengths[i] < threshold:
            assert size is None, where + f"; expected uncompressed (threshold {threshold})"
            continue
        assert isinstance(size, int), where + "; expected compressed (RSV1)"
        if lengths[i] == 0:
            # RFC 7692 7.2.1: the data ends with an empty stored block, of which only the last 4
            # octets (00 00 ff ff) are removed: its header byte (00) stays.
            assert size >= 1, where + "; an empty message compresses to at least one byte"
            continue
        if takeover is None:
            continue
        if spec["kind"] == "again":
            nearest = max(j for j in range(i) if j == spec["of"] or plan[j].get("of") == spec["of"])
            distance = sum(lengths[nearest:i])
            if takeover and distance <= reach:
                assert size < lengths[i] // 10, where + f"; the kept context (window {window}) should be used"
            else:  # random bytes (base64 as text) can only lose their Huffman share
                why = f"a window of {window} bits cannot reach {distance} bytes back" if takeover else "no context kept"
                assert size > lengths[i] * (0.95 if spec["type"] == "binary" else 0.7), where + f"; expected no match ({why})"
        elif spec["kind"] == "random" and spec["type"] == "binary":
            assert size > lengths[i] * 0.95, where + "; random bytes do not compress"
        elif lengths[i] >= 1000 and window > 8 and not (spec["kind"] == "pattern" and spec["type"] == "binary" and reach < 251):
            assert size < lengths[i] * 0.8, where + "; expected compression"
        else:
            assert size <= lengths[i] * 1.01 + 16, where


def payloads_sizes(plan: Sequence[Dict[str, Any]]) -> List[int]:
    sizes: List[int] = []
    for spec in plan:
        sizes.append(sizes[spec["of"]] if spec["kind"] == "again" else spec["size"])
    return sizes


# --------------------------------------------------------------------------------------------
# python3-websockets
# --------------------------------------------------------------------------------------------

def _watch_compression(ws) -> List[Optional[int]]:
    """Wraps the connection's permessage-deflate decoder to record, per data message received, its
    compressed payload size, or None when it arrived without RSV1."""
    sizes: List[Optional[int]] = []
    for ext in ws.extensions:
        original = ext.decode
        state = {"rsv1": False, "size": 0}

        def decode(frame, *, max_size=None, original=original, state=state):
            if frame.opcode in (websockets.frames.Opcode.TEXT, websockets.frames.Opcode.BINARY):
                state["rsv1"], state["size"] = frame.rsv1, 0
            if frame.opcode in websockets.frames.DATA_OPCODES:
                state["size"] += len(frame.data)
                if frame.fin:
                    sizes.append(state["size"] if state["rsv1"] else None)
            return original(frame, max_size=max_size)

        ext.decode = decode
    return sizes


class _WatchedServerProtocol(websockets.WebSocketServerProtocol):
    """Watches the compression of every frame: the reader starts with connection_open(), before the
    handler runs, and a client may send at once."""

    def connection_open(self) -> None:
        self.compressed_sizes = _watch_compression(self)
        super().connection_open()


class PyServers:
    """python3-websockets echo servers on a loop thread; each records events like node_peer.js."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.events: "queue.Queue[Dict[str, Any]]" = queue.Queue()
        self.servers = []

    def __enter__(self) -> "PyServers":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        async def stop():
            for server in self.servers:
                server.close()
            for server in self.servers:
                await server.wait_closed()
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(TIMEOUT)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)
        if not self.thread.is_alive():
            self.loop.close()

    def start(self, name: str, ssl_context: Optional[ssl.SSLContext] = None,
              deflate: Optional[Dict[str, Any]] = None) -> str:
        """Starts an echo server; deflate holds ServerPerMessageDeflateFactory arguments (None: no
        compression). Returns its URL."""
        extensions = [ServerPerMessageDeflateFactory(**deflate)] if deflate is not None else None

        async def handler(ws, path=None):
            self.events.put({"server": name, "event": "open", "host": ws.request_headers.get("Host"),
                             "offer": ws.request_headers.get("Sec-WebSocket-Extensions"),
                             "response": ws.response_headers.get("Sec-WebSocket-Extensions")})
            received = 0
            try:
                async for message in ws:
                    size = ws.compressed_sizes[received] if ws.extensions else None
                    received += 1
                    self.events.put({"server": name, "event": "message", "compressed": size})
                    await ws.send(message)
            except websockets.ConnectionClosedError as e:
                self.events.put({"server": name, "event": "error", "message": str(e)})
            except Exception as e:  # a decoding failure, say: the test must see it
                self.events.put({"server": name, "event": "error", "message": repr(e)})
                raise

        async def start():
            server = await websockets.serve(handler, "127.0.0.1", 0, ssl=ssl_context, compression=None,
                                            extensions=extensions, max_size=MAX_SIZE,
                                            create_protocol=_WatchedServerProtocol)
            self.servers.append(server)
            return server.sockets[0].getsockname()[1]

        port = asyncio.run_coroutine_threadsafe(start(), self.loop).result(TIMEOUT)
        return f"{'wss' if ssl_context else 'ws'}://127.0.0.1:{port}/"

    def wait_event(self, predicate, timeout: float = TIMEOUT) -> Dict[str, Any]:
        deadline = time.monotonic() + timeout
        skipped = []
        try:
            while True:
                try:
                    event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    raise AssertionError(f"no matching event within {timeout:.1f} s (saw {skipped})") from None
                if predicate(event):
                    return event
                skipped.append(event)
        finally:
            for event in skipped:
                self.events.put(event)


@dataclasses.dataclass
class ClientResult:
    opened: bool = False
    error: Optional[str] = None
    response: Optional[str] = None            # the server's Sec-WebSocket-Extensions
    echoes: List[bool] = dataclasses.field(default_factory=list)
    compressed: List[Optional[int]] = dataclasses.field(default_factory=list)
    close: Optional[int] = None


def py_client(url: str, plan: Sequence[Dict[str, Any]], ssl_context: Optional[ssl.SSLContext] = None,
              deflate: Optional[Dict[str, Any]] = None, data: Optional[List[bytes]] = None) -> ClientResult:
    """Connects with python3-websockets (deflate: ClientPerMessageDeflateFactory arguments, None for
    no compression), sends the plan's messages one at a time and checks each echo."""
    data = data if data is not None else payloads(plan)
    result = ClientResult()

    async def run():
        extensions = [ClientPerMessageDeflateFactory(**deflate)] if deflate is not None else None
        async with websockets.connect(url, ssl=ssl_context, compression=None, extensions=extensions,
                                      max_size=MAX_SIZE, open_timeout=TIMEOUT, close_timeout=TIMEOUT,
                                      ping_interval=None) as ws:
            result.opened = True
            result.response = ws.response_headers.get("Sec-WebSocket-Extensions")
            sizes = _watch_compression(ws)
            for spec, payload in zip(plan, data):
                await ws.send(payload.decode() if spec["type"] == "text" else payload)
                echo = await asyncio.wait_for(ws.recv(), TIMEOUT)
                expected = payload.decode() if spec["type"] == "text" else payload
                result.echoes.append(echo == expected)
                if not ws.extensions:
                    result.compressed.append(None)
                else:  # one size per message received
                    result.compressed.append(sizes[-1] if len(sizes) == len(result.echoes) else "missing")
            await ws.close()
            result.close = ws.close_code

    try:
        asyncio.run(asyncio.wait_for(run(), 6 * TIMEOUT))
    except Exception as e:  # the test asserts on result.error
        result.error = f"{type(e).__name__}: {e}"
    return result


# --------------------------------------------------------------------------------------------
# node ws
# --------------------------------------------------------------------------------------------

class NodeServers(Listening):
    """node_peer.js servers: configs is a list of {name, tls?, deflate?} (see node_peer.js)."""

    def __init__(self, configs: Sequence[Dict[str, Any]]) -> None:
        super().__init__([NODE, NODE_PEER, "servers", json.dumps(list(configs))], count=len(configs))


def node_clients(cases: Sequence[Dict[str, Any]], timeout: float = 60 * TIME_SCALE) -> Dict[str, Dict[str, Any]]:
    """Runs node_peer.js clients; returns its result per case name."""
    result = subprocess.run([NODE, NODE_PEER, "clients", json.dumps({"cases": list(cases)})], capture_output=True,
                            text=True, timeout=timeout, preexec_fn=harness._die_with_parent)
    if result.returncode != 0:
        raise AssertionError(f"node_peer.js clients exited {result.returncode}:\n{result.stderr}")
    out = {}
    for line in result.stdout.splitlines():
        record = json.loads(line)
        out[record["case"]] = record
    missing = [c["name"] for c in cases if c["name"] not in out]
    assert not missing, f"node_peer.js gave no result for {missing}; stderr:\n{result.stderr}"
    return out


# --------------------------------------------------------------------------------------------
# A server answering with whatever extension header a test wants
# --------------------------------------------------------------------------------------------

class RawServer:
    """Answers every upgrade request with 101 and `extensions` as Sec-WebSocket-Extensions (set it
    before each connection), then reads until the client goes. `requests` holds the request heads."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}/"
        self.extensions: Optional[str] = None
        self.requests: List[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def __enter__(self) -> "RawServer":
        return self

    def __exit__(self, *exc) -> None:
        self.sock.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(TIMEOUT)
                try:
                    self._answer(conn)
                except (OSError, TypeError, struct.error):
                    pass

    def _answer(self, conn: socket.socket) -> None:
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            chunk = conn.recv(4096)
            if not chunk:
                return
            buffer += chunk
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        text = head.decode("latin-1")
        self.requests.append(text)
        key = re.search(r"(?im)^Sec-WebSocket-Key:\s*(\S+)", text)[1]
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        lines = ["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Accept: {accept}"]
        if self.extensions is not None:
            lines.append(f"Sec-WebSocket-Extensions: {self.extensions}")
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        # Then frames are read and dropped until the client's close, which is answered.
        while True:
            while len(buffer) < 2 or len(buffer) < _frame_size(buffer):
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            opcode = buffer[0] & 0x0F
            buffer = buffer[_frame_size(buffer):]
            if opcode == 0x8:
                conn.sendall(b"\x88\x02\x03\xe8")
                return


def _frame_size(data: bytes) -> int:
    """The size of the (masked) frame at the start of data, once its header is there (else a bound)."""
    length, at = data[1] & 0x7F, 2
    if length == 126:
        if len(data) < 4:
            return 4
        length, at = struct.unpack("!H", data[2:4])[0], 4
    elif length == 127:
        if len(data) < 10:
            return 10
        length, at = struct.unpack("!Q", data[2:10])[0], 10
    return at + (4 if data[1] & 0x80 else 0) + length
