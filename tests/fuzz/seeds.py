#!/usr/bin/env python3
"""Writes the hand-made seeds of the fuzz targets into corpus/<target>/seed-*: one input per rule
of RFC 6455 and RFC 7692 worth starting a search from. The rest of the corpus is what libFuzzer
found from them (scripts/fuzz), minimised; crashes it found are kept as regressions too.

    tests/fuzz/seeds.py            # rewrites the seed-* files; the other files stay
"""
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
MASK = b"\x37\xfa\x21\x3d"


def frame(opcode, payload=b"", fin=True, rsv=0, masked=True, length=None):
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    m = 0x80 if masked else 0
    if n < 126:
        head += bytes([m | n])
    elif n < 65536:
        head += bytes([m | 126]) + struct.pack(">H", n)
    else:
        head += bytes([m | 127]) + struct.pack(">Q", n)
    if not masked:
        return head + payload
    return head + MASK + bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))


def close(code, reason=b""):
    return frame(8, struct.pack(">H", code) + reason)


def write(target, name, config, piece, data):
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "seed-" + name), "wb") as f:
        f.write(bytes([config, piece]) + data)


def frames_seeds():
    # config: bits 0-1 message limit (unlimited, 1, 200, 70000), 4 small read buffer, 8 small
    # write buffer, 16 control queue of 1, 32 client role; piece: bytes per delivery - 1.
    w = lambda name, data, config=0, piece=255: write("frames", name, config, piece, data)
    w("text", frame(1, b"hello") + close(1000, b"bye"))
    w("binary-empty", frame(2) + close(1000))
    w("fragmented-ping", frame(1, b"he", fin=False) + frame(9, b"p") + frame(0, b"llo") + close(1001), piece=2)
    w("close-no-code", frame(8))
    w("close-one-byte", frame(8, b"\x03"))
    w("close-bad-code", close(1005))
    w("close-app-code", close(4321, "é".encode()))
    w("close-bad-reason", close(1000, b"\xff"))
    w("unmasked", frame(1, b"x", masked=False))
    w("opcode-3", frame(3, b"x"))
    w("rsv1", frame(1, b"x", rsv=0x40))
    w("long-ping", frame(9, b"p" * 126))
    w("ping-not-final", frame(9, b"p", fin=False))
    w("continuation-first", frame(0, b"x"))
    w("text-in-text", frame(1, b"a", fin=False) + frame(1, b"b"))
    w("utf8-split", frame(1, b"\xe2\x82", fin=False) + frame(0, b"\xac") + frame(1, b"\xe2\x82", fin=False) + frame(0, b"\x28"), piece=0)
    w("len64-top-bit", bytes([0x82, 0xFF]) + b"\x80" + b"\0" * 7 + MASK)
    w("len16", frame(2, bytes(range(256)) + b"x" * 44), config=4 | 8)
    w("len64", frame(2, b"y" * 70001), config=3)
    w("too-big", frame(1, b"z" * 201), config=2)
    w("limit-fragments", frame(2, b"a" * 150, fin=False) + frame(0, b"b" * 60), config=2)
    w("pings-queue", b"".join(frame(9, bytes([i])) for i in range(20)) + frame(2, b"q" * 40), config=16 | 8)
    w("pong", frame(10, b"unsolicited") + frame(1, b"ok"))
    # The client role: the server's frames come unmasked, and a masked one is an error.
    s = lambda *a, **k: frame(*a, masked=False, **k)
    w("client-text", s(1, b"hello") + s(9, b"p") + s(8, struct.pack(">H", 1000)), config=32)
    w("client-fragmented", s(2, b"a" * 300, fin=False) + s(0, b"b" * 10) + s(8), config=32 | 4 | 8, piece=7)
    w("client-masked", frame(1, b"masked"), config=32)
    w("client-bad-utf8", s(1, b"\xed\xa0\x80"), config=32)
    w("client-too-big", s(2, b"z" * 201), config=32 | 2)


def handshake_seeds():
    # config: bits 0-1 head limit (64, 512, 4096, 16 KiB), 4 a hook that picks a subprotocol or
    # refuses /refuse, bits 3-4 the header a trusted proxy names the client in (1 X-Forwarded-For,
    # 2 Forwarded, 3 X-Real-IP).
    def req(target="/", extra=b"", version=b"13", key=b"dGhlIHNhbXBsZSBub25jZQ==", method=b"GET"):
        return (method + b" " + target.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1:9000\r\nUpgrade: websocket\r\n"
                b"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: "
                + version + b"\r\n" + extra + b"\r\n")
    w = lambda name, data, config=3, piece=255: write("handshake", name, config, piece, data)
    w("upgrade", req())
    w("upgrade-pieces", req("/chat?room=1"), piece=0)
    w("hook-subprotocol-cookies", req(extra=b"Sec-WebSocket-Protocol: a, b\r\nCookie: x=1; y=\"2\"\r\n"), config=3 | 4)
    w("hook-refuse", req("/refuse"), config=3 | 4)
    w("version-8", req(version=b"8"))
    w("bad-key", req(key=b"short"))
    w("post", req(method=b"POST"))
    w("plain-get", b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
    w("keep-alive-then-upgrade", b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nHEAD /b HTTP/1.1\r\nHost: x\r\n\r\n" + req(),
      config=3 | 4, piece=7)
    w("keep-alive-then-close", b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nConnection: close\r\n\r\n")
    w("http-1.0", b"GET / HTTP/1.0\r\n\r\n")
    w("too-long", req(extra=b"X-Pad: " + b"p" * 600 + b"\r\n"), config=1)
    w("bare-lf", req().replace(b"\r\n", b"\n"))
    w("empty-lines-first", b"\r\n\r\n" + req(), piece=0)  # RFC 9112 section 2.2: ignored
    w("empty-lines-too-many", b"\r\n" * 5 + req())
    w("obs-fold", req(extra=b"X-A: a\r\n b\r\n"))
    w("duplicate-key", req(extra=b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"))
    w("deflate-offer", req(extra=b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, x-y\r\n"))
    w("pipelined-frame", req() + frame(1, b"early"))
    w("garbage", bytes(range(256)))
    # PROXY protocol headers before the request (parse_proxy_header runs on every input).
    w("proxy-v1", b"PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n" + req())
    w("proxy-v1-unknown", b"PROXY UNKNOWN\r\n" + req())
    w("proxy-v2", b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x12" + bytes([203, 0, 113, 7, 192, 0, 2, 1, 1, 2, 3, 4])
      + b"\x04\x00\x03abc" + req())
    w("x-forwarded-for", req(extra=b"X-Forwarded-For: 198.51.100.1, [2001:db8::7]:4711, 203.0.113.7:80\r\n"),
      config=3 | 8)
    w("forwarded", req(extra=b"Forwarded: for=198.51.100.1;proto=https, for=\"[2001:db8::7]:4711\";by=_x\r\n"
                         b"Forwarded: For=\"a\\\"b\", , for=unknown;host=example.com\r\n"), config=3 | 16)
    w("x-real-ip", req(extra=b"X-Real-IP: 203.0.113.7\r\nX-Real-IP: ::ffff:198.51.100.1\r\n"), config=3 | 24)
    w("proxy-v2-local", b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00" + req())


def compress(data, wbits=15, level=6):
    c = zlib.compressobj(level, zlib.DEFLATED, -wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def inflate_seeds():
    # config: 1 threshold 0, 2 our window 9, 4 our no_context_takeover, 8 level 1, 16 message
    # limit 1000, 32 client_max_window_bits=9, 64 client_no_context_takeover, 128
    # server_max_window_bits=10. Then frames: [flags: FIN 0x80, RSV1 0x40, opcode index][length][payload].
    def fr(payload, op=2, fin=True, rsv1=True):
        chunks = [payload[i:i + 255] for i in range(0, len(payload), 255)] or [b""]
        out = b""
        for i, c in enumerate(chunks):
            last = i == len(chunks) - 1
            flags = (0x80 if fin and last else 0) | (0x40 if rsv1 and i == 0 else 0) | (op if i == 0 else 0)
            out += bytes([flags, len(c)]) + c
        return out
    w = lambda name, data, config=1, piece=255: write("inflate", name, config, piece, data)
    text = b"the quick brown fox jumps over the lazy dog " * 20
    w("binary", fr(compress(text)))
    w("text", fr(compress(text), op=1))
    w("uncompressed", fr(b"plain", rsv1=False))
    w("two-messages-takeover", fr(compress(text)) + fr(compress(text)))
    w("window-9", fr(compress(text, wbits=9)), config=1 | 32)
    w("no-takeover", fr(compress(text)) + fr(compress(text)), config=1 | 4 | 64 | 128)
    w("bomb", fr(compress(b"\0" * 200000)), config=1 | 16)
    w("corrupt", fr(b"\xff\xff\xff\xff"))
    w("empty", fr(b""))
    w("rsv1-on-ping", bytes([0x80 | 0x40 | 3, 1]) + b"p")
    w("ping-between", fr(compress(text), fin=False) + bytes([0x80 | 3, 1, ord("p")]) + bytes([0x80 | 0, 0]))
    w("text-bad-utf8", fr(compress(b"\xc3\x28"), op=1))
    w("close", fr(compress(text)) + bytes([0x80 | 5, 2]) + struct.pack(">H", 1000), config=0)
    w("level-1-window-9", fr(compress(text)), config=1 | 2 | 8)


def client_handshake_seeds():
    # config, upgrade mode (bit 0 clear): bits 1-2 subprotocols offered (none, chat, chat and
    # superchat, v1.wsl.test and chat), 8 permessage-deflate offered, 16 with small windows and no
    # context takeover, bits 5-6 head limit (256, 1024, 4096, 16 KiB), 128 user info, a query,
    # Origin, cookies and custom headers. A run of 28 '?' stands for the Sec-WebSocket-Accept the
    # client's key calls for.
    # config, proxy mode (bit 0 set): bits 1-2 head limit, 8 proxy credentials, 16 an IPv6
    # target, 32 no User-Agent. The input is the proxy's answer to CONNECT and what follows it.
    accept = b"?" * 28

    def response(status=b"101 Switching Protocols", fields=None, version=b"HTTP/1.1", eol=b"\r\n"):
        if fields is None:
            fields = [b"Upgrade: websocket", b"Connection: Upgrade", b"Sec-WebSocket-Accept: " + accept]
        return version + b" " + status + eol + b"".join(f + eol for f in fields) + eol

    def with_fields(*extra):
        return response(fields=[b"Upgrade: websocket", b"Connection: Upgrade", b"Sec-WebSocket-Accept: " + accept]
                        + list(extra))

    def refusal(status, body, extra=()):
        return response(status, list(extra) + [b"Content-Length: %d" % len(body)]) + body

    s = lambda *a, **k: frame(*a, masked=False, **k)
    big = 3 << 5  # head limit 16 KiB
    w = lambda name, data, config=big, piece=255: write("client_handshake", name, config, piece, data)
    w("101", response())
    w("101-pieces", response(), piece=0)
    w("101-odd-case", response(fields=[b"upgrade:WebSocket", b"CONNECTION: keep-alive,  upgrade",
                                       b"sec-websocket-accept:   " + accept + b"  ", b"Server: x"]))
    w("101-http-1.0", response(version=b"HTTP/1.0"))
    w("101-no-reason", b"HTTP/1.1 101\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "
      + accept + b"\r\n\r\n")
    w("101-more-headers", with_fields(b"Set-Cookie: a=1; Path=/", b"Date: Tue, 15 Nov 1994 08:12:31 GMT"),
      config=big | 128)
    w("101-subprotocol", with_fields(b"Sec-WebSocket-Protocol: superchat"), config=big | 4)
    w("101-subprotocol-unoffered", with_fields(b"Sec-WebSocket-Protocol: superchat"), config=big | 2)
    w("101-subprotocol-none-offered", with_fields(b"Sec-WebSocket-Protocol: chat"))
    w("101-subprotocol-twice", with_fields(b"Sec-WebSocket-Protocol: chat", b"Sec-WebSocket-Protocol: chat"),
      config=big | 2)
    w("101-subprotocol-list", with_fields(b"Sec-WebSocket-Protocol: chat, superchat"), config=big | 4)
    w("101-deflate", with_fields(b"Sec-WebSocket-Extensions: permessage-deflate"), config=big | 8)
    w("101-deflate-params", with_fields(b"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover;"
                                        b" client_no_context_takeover; server_max_window_bits=10;"
                                        b" client_max_window_bits=9"), config=big | 8 | 16)
    w("101-deflate-quoted", with_fields(b'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits="12"'),
      config=big | 8)
    w("101-deflate-wider", with_fields(b"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=12"),
      config=big | 8 | 16)
    w("101-deflate-client-wider", with_fields(b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=12"),
      config=big | 8 | 16)
    w("101-deflate-no-value", with_fields(b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"),
      config=big | 8)
    w("101-deflate-leading-zero", with_fields(b"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=010"),
      config=big | 8)
    w("101-deflate-duplicate", with_fields(b"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover",
                                           b"Sec-WebSocket-Extensions: x-webkit-deflate-frame"), config=big | 8)
    w("101-deflate-unknown-param", with_fields(b"Sec-WebSocket-Extensions: permessage-deflate; mystery=1"),
      config=big | 8)
    w("101-deflate-unoffered", with_fields(b"Sec-WebSocket-Extensions: permessage-deflate"))
    w("101-deflate-frames", with_fields(b"Sec-WebSocket-Extensions: permessage-deflate")
      + s(1, compress(b"hello hello hello"), rsv=0x40) + s(1, b"plain") + s(8, struct.pack(">H", 1000)),
      config=big | 8, piece=9)
    w("101-wrong-accept", response(fields=[b"Upgrade: websocket", b"Connection: Upgrade",
                                           b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="]))
    w("101-two-accepts", with_fields(b"Sec-WebSocket-Accept: " + accept))
    w("101-no-upgrade", response(fields=[b"Connection: Upgrade", b"Sec-WebSocket-Accept: " + accept]))
    w("101-no-connection", response(fields=[b"Upgrade: websocket", b"Sec-WebSocket-Accept: " + accept]))
    w("101-upgrade-h2c", response(fields=[b"Upgrade: h2c", b"Connection: Upgrade", b"Sec-WebSocket-Accept: " + accept]))
    w("101-frames-behind", response() + s(1, b"hello") + s(9, b"p") + s(2, b"\x00\x01", fin=False) + s(0, b"\x02")
      + s(8, struct.pack(">H", 1000) + b"bye"), piece=20)
    w("101-masked-frame-behind", response() + frame(1, b"masked"))
    w("101-bad-utf8-behind", response() + s(1, b"\xc3\x28"))
    w("101-half-frame-behind", response() + s(2, b"x" * 300)[:100])
    w("403", refusal(b"403 Forbidden", b"go away\n", [b"Content-Type: text/plain"]))
    w("426", refusal(b"426 Upgrade Required", b"version 13 only\n", [b"Sec-WebSocket-Version: 13",
                                                                     b"Upgrade: websocket"]))
    w("301-long-body", response(b"301 Moved Permanently", [b"Location: wss://elsewhere.test/", b"Content-Length: 5"])
      + b"moved, and more than its Content-Length says")
    w("200-no-length", response(b"200 OK", [b"Content-Type: text/html"]) + b"<html>" + b"x" * 5000, piece=200)
    w("500-bad-length", response(b"500 Internal Server Error", [b"Content-Length: +3"]) + b"oops")
    w("100-then-101", response(b"100 Continue", []) + response())
    w("103-then-101", response(b"103 Early Hints", [b"Link: </style.css>; rel=preload"]) + response(), piece=7)
    w("100-then-403", response(b"100 Continue", []) + refusal(b"403 Forbidden", b"no"))
    w("100-five-times", response(b"100 Continue", []) * 5 + response())
    w("100-then-nothing", response(b"100 Continue", []))
    w("obs-fold", response(fields=[b"Upgrade: websocket", b"Connection: Upgrade", b"X-Folded: a",
                                   b" b", b"Sec-WebSocket-Accept: " + accept]))
    w("bare-lf", response(eol=b"\n"))
    w("bare-lf-once", response().replace(b"Upgrade\r\n", b"Upgrade\n"))
    w("reason-control", response(b"101 Switching\x1bProtocols"))
    w("status-short", b"HTTP/1.1 10 Switching\r\n\r\n")
    w("http-2", response(version=b"HTTP/2.0"))
    w("no-colon", response(fields=[b"Upgrade websocket", b"Connection: Upgrade", b"Sec-WebSocket-Accept: " + accept]))
    w("cut-short", response()[:40])
    w("empty", b"")
    w("too-long", with_fields(b"X-Pad: " + b"p" * 300), config=0)
    w("too-long-interim", response(b"100 Continue", [b"X-Pad: " + b"p" * 200]) + response(), config=0)
    w("garbage", bytes(range(256)))
    # Proxy mode.
    p = lambda name, data, config=1 | 6, piece=255: write("client_handshake", "proxy-" + name, config, piece, data)
    p("200", b"HTTP/1.1 200 Connection established\r\n\r\n" + response())
    p("200-pieces", b"HTTP/1.1 200 Connection established\r\nProxy-Agent: tinyproxy\r\n\r\n" + response(), piece=3)
    p("200-credentials-ipv6", b"HTTP/1.0 200 OK\r\n\r\n", config=1 | 6 | 8 | 16 | 32)
    p("407", b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"x\"\r\n"
      b"Content-Length: 4\r\n\r\nauth")
    p("502", b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
    p("100-then-200", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n" + s(1, b"early"))
    p("bare-lf", b"HTTP/1.1 200 OK\n\n")
    p("too-long", b"HTTP/1.1 200 OK\r\nX-Pad: " + b"p" * 300 + b"\r\n\r\n", config=1)
    p("cut-short", b"HTTP/1.1 200 Connection")
    p("obs-fold", b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\n\r\n")


if __name__ == "__main__":
    frames_seeds()
    handshake_seeds()
    inflate_seeds()
    client_handshake_seeds()
