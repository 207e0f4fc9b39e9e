#!/usr/bin/python3
"""wsl echo behind a real load balancer, Debian's HAProxy (scripts/install-deps installs it): in TCP mode
with `send-proxy` and `send-proxy-v2` in front of `--proxy-protocol`, and in HTTP mode with `option
forwardfor` (or a Forwarded or X-Real-IP header it sets) in front of `--trusted-proxy`. python3-websockets clients connect to HAProxy from
127.0.0.9; wsl must name that address, not HAProxy's 127.0.0.1.
"""

import asyncio
import os
import re
import shutil
import socket
import subprocess
import tempfile
import unittest

import websockets  # python3-websockets, the Debian package

from harness import TIMEOUT, Server, _die_with_parent

HAPROXY = os.environ.get("WSL_TEST_HAPROXY") or shutil.which("haproxy") or "/usr/sbin/haproxy"
CLIENT = "127.0.0.9"  # a loopback address of its own: the client HAProxy stands for
FORGED = "192.0.2.66"  # what the client claims to be in headers of its own


class HAProxy:
    """haproxy -db with a frontend per backend server given: {name: (mode, server line[, frontend lines])},
    `option forwardfor` the frontend line of HTTP mode unless others are given. Each frontend
    listens on a socket made here and inherited (`bind fd@N`): its port is known, and a client may
    connect before haproxy runs (the kernel's backlog holds it), so nothing waits for it to start."""

    def __init__(self, backends) -> None:
        self.backends = backends

    def __enter__(self) -> "HAProxy":
        self.directory = tempfile.TemporaryDirectory(prefix="wsl-haproxy-")
        self.sockets = {}
        for name in self.backends:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            s.listen(16)
            self.sockets[name] = s
        self.ports = {name: s.getsockname()[1] for name, s in self.sockets.items()}
        config = os.path.join(self.directory.name, "haproxy.cfg")
        with open(config, "w") as f:
            f.write("global\n  maxconn 100\ndefaults\n  timeout connect 5s\n  timeout client 30s\n"
                    "  timeout server 30s\n  timeout tunnel 30s\n")
            for name, (mode, server, *lines) in self.backends.items():
                f.write(f"frontend {name}\n  mode {mode}\n  bind fd@{self.sockets[name].fileno()}\n"
                        f"  default_backend {name}_servers\n")
                for line in lines or (["option forwardfor"] if mode == "http" else []):
                    f.write(f"  {line}\n")
                f.write(f"backend {name}_servers\n  mode {mode}\n  server wsl {server}\n")
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", config], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
                                     pass_fds=[s.fileno() for s in self.sockets.values()])
        return self

    def __exit__(self, *exc) -> None:
        self.proc.kill()
        output = self.proc.communicate(timeout=TIMEOUT)[0].decode(errors="replace")
        for s in self.sockets.values():
            s.close()
        self.directory.cleanup()
        if exc and exc[0] is not None:
            print(f"haproxy said:\n{output}")


async def echo_through(port: int, text: str, headers=()) -> str:
    """A python3-websockets client from CLIENT, through HAProxy's `port`, sending `headers` too."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT, source_address=(CLIENT, 0))
    async with websockets.connect(f"ws://127.0.0.1:{port}/", sock=sock, compression=None,
                                  open_timeout=TIMEOUT, extra_headers=list(headers)) as ws:
        await ws.send(text)
        return await asyncio.wait_for(ws.recv(), TIMEOUT)


async def first_message_through(port: int) -> str:
    """The first message a server sends a python3-websockets client from CLIENT, through HAProxy."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT, source_address=(CLIENT, 0))
    async with websockets.connect(f"ws://127.0.0.1:{port}/", sock=sock, compression=None,
                                  open_timeout=TIMEOUT) as ws:
        return await asyncio.wait_for(ws.recv(), TIMEOUT)


class BehindHAProxy(unittest.TestCase):
    def test_send_proxy_v1_and_v2_name_the_client(self):
        with Server("--proxy-protocol", "-v") as server:
            backend = f"127.0.0.1:{server.port}"
            with HAProxy({"v1": ("tcp", f"{backend} send-proxy"), "v2": ("tcp", f"{backend} send-proxy-v2")}) as lb:
                for version in ("v1", "v2"):
                    self.assertEqual(asyncio.run(echo_through(lb.ports[version], version)), version)
                    line = server.wait_stderr(r"access .* GET / 101 ")
                    self.assertRegex(line, rf"\[\d+\] {re.escape(CLIENT)} GET / 101 .* close=1000$")

    def test_send_proxy_to_a_unix_socket_names_the_client_to_the_log_and_the_command(self):
        # HAProxy in front, wsl on a Unix socket behind it ("server wsl unix@PATH send-proxy-v2").
        with tempfile.TemporaryDirectory() as directory, \
                Server("--proxy-protocol", "-v", "--", "sh", "-c", 'echo "$REMOTE_ADDR $WSL_PEER_UID"',
                       subcommand="serve", unix=os.path.join(directory, "wsl.sock")) as server, \
                HAProxy({"unix": ("tcp", f"unix@{server.unix_path} send-proxy-v2")}) as lb:
            self.assertEqual(asyncio.run(first_message_through(lb.ports["unix"])), f"{CLIENT} {os.getuid()}")
            line = server.wait_stderr(r"access .* GET / 101 ")
            self.assertRegex(line, rf"\[\d+\] {re.escape(CLIENT)} GET / 101 ")

    def test_forwardfor_names_the_client_to_a_trusted_proxy(self):
        with Server("--trusted-proxy", "127.0.0.1", "-v") as server:
            with HAProxy({"web": ("http", f"127.0.0.1:{server.port}")}) as lb:
                self.assertEqual(asyncio.run(echo_through(lb.ports["web"], "forwarded")), "forwarded")
                line = server.wait_stderr(r"access .* GET / 101 ")
                self.assertRegex(line, rf"\[\d+\] {re.escape(CLIENT)} GET / 101 .* close=1000$")

    def test_the_header_the_proxy_sets_is_read_and_those_the_client_forges_are_not(self):
        # The client sends all three headers naming FORGED; HAProxy sets or appends one of them.
        forged = [("X-Forwarded-For", FORGED), ("Forwarded", f"for={FORGED}"), ("X-Real-IP", FORGED)]
        for header, line in (("Forwarded", "http-request add-header Forwarded for=%[src]"),
                             ("X-Real-IP", "http-request set-header X-Real-IP %[src]")):
            with self.subTest(header=header), \
                    Server("--trusted-proxy", "127.0.0.1", "--trusted-proxy-header", header, "-v") as server, \
                    HAProxy({"web": ("http", f"127.0.0.1:{server.port}", line)}) as lb:
                self.assertEqual(asyncio.run(echo_through(lb.ports["web"], header, forged)), header)
                line = server.wait_stderr(r"access .* GET / 101 ")
                self.assertRegex(line, rf"\[\d+\] {re.escape(CLIENT)} GET / 101 .* close=1000$")

    def test_without_trust_the_proxy_is_the_client(self):
        with Server("-v") as server:
            with HAProxy({"web": ("http", f"127.0.0.1:{server.port}")}) as lb:
                self.assertEqual(asyncio.run(echo_through(lb.ports["web"], "plain")), "plain")
                line = server.wait_stderr(r"access .* GET / 101 ")
                self.assertRegex(line, r"\[\d+\] 127\.0\.0\.1:\d+ GET / 101 ")


if __name__ == "__main__":
    unittest.main(verbosity=2)
