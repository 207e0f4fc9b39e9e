#!/usr/bin/python3
"""Memory an idle connection holds: right after its handshake, and after large traffic.

A connection that has only shaken hands and waits for its first message must cost the server at
most WSL_IDLE_MAX_BYTES (4 KiB in a release build: the target of the foundation issue, which
bench/echo reports against the peers). Measured as in bench/echo: the server's RSS growth over
1,000 connections, counted from a baseline taken with 100 already open.

A connection grows its receive buffer (up to --read-buffer-size, 64 KiB by default) while large
messages stream through. Once it has waited a second for its next message, it gives that buffer
back: a server whose clients each sent one large message and then stayed connected does not
hold a large buffer per client.

Two waves of clients each send a 128 KiB message, read its echo and stay connected. Between the
waves the test lets the documented second pass (the time is what is under test here, not a
synchronisation). The second wave must then cost the server the few KiB of an idle connection
each: the large buffers the first wave gave back serve it. Connections that kept their buffers
would add 64 KiB or more each.
"""

import os
import resource
import time
import unittest

from harness import OP_BINARY, TIME_SCALE, Server, open_client

CLIENTS = 100
MESSAGE = 128 * 1024
RELEASE_DELAY = 1.0  # seconds between messages after which a connection gives back its buffer
# Generous for sanitizer builds, whose allocations are larger; far below the 64 KiB of a kept buffer.
MAX_KIB_PER_CONNECTION = int(os.environ.get("WSL_IDLE_MAX_KIB", "24"))
# A fresh idle connection, in bytes. Sanitizer builds get their own bound (their allocations carry
# redzones and their freed blocks wait in a quarantine).
MAX_BYTES_PER_IDLE_CONNECTION = int(os.environ.get("WSL_IDLE_MAX_BYTES", "4096"))
IDLE_BASE = 100
IDLE = 1000


class FreshIdleConnections(unittest.TestCase):
    def test_an_idle_connection_costs_at_most_the_target(self):
        # Both processes hold one descriptor per connection: lift the soft limit (the server
        # inherits it) to what the test needs, within the hard limit.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        need = IDLE_BASE + IDLE + 64
        if soft != resource.RLIM_INFINITY and soft < need:
            self.assertTrue(hard == resource.RLIM_INFINITY or hard >= need,
                            f"the hard limit on open files ({hard}) is below the {need} this test needs")
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
        clients = []
        asan = ":".join(filter(None, [os.environ.get("ASAN_OPTIONS", ""), "quarantine_size_mb=0"]))
        try:
            with Server(env={"ASAN_OPTIONS": asan}) as server:
                try:
                    clients.extend(open_client(server.port) for _ in range(IDLE_BASE))
                    before_kib = server.proc_status("VmRSS")
                    clients.extend(open_client(server.port) for _ in range(IDLE))
                    after_kib = server.proc_status("VmRSS")
                    per_connection = (after_kib - before_kib) * 1024 / IDLE
                    print(f"server RSS {before_kib} KiB with {IDLE_BASE} idle connections, {after_kib} KiB with "
                          f"{IDLE_BASE + IDLE}: {per_connection:.0f} bytes per connection")
                    self.assertLessEqual(per_connection, MAX_BYTES_PER_IDLE_CONNECTION)
                    # Idle, not dead: the first and the last still get their echoes.
                    for client in (clients[0], clients[-1]):
                        client.send_frame(OP_BINARY, b"awake")
                        self.assertEqual(client.recv_message(), (OP_BINARY, b"awake"))
                finally:
                    for client in clients:
                        client.sock.close()
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class IdleAfterLargeTraffic(unittest.TestCase):
    def wave(self, server, clients):
        for _ in range(CLIENTS):
            client = open_client(server.port)
            clients.append(client)
            payload = os.urandom(MESSAGE)
            client.send_frame(OP_BINARY, payload)
            self.assertEqual(client.recv_message(), (OP_BINARY, payload))

    def test_quiet_connections_give_back_their_large_receive_buffers(self):
        clients = []
        # Under AddressSanitizer freed blocks sit in its quarantine and would count as RSS: the
        # server is told to keep none, so that RSS shows what it holds (ignored by release builds).
        asan = ":".join(filter(None, [os.environ.get("ASAN_OPTIONS", ""), "quarantine_size_mb=0"]))
        with Server(env={"ASAN_OPTIONS": asan}) as server:
            try:
                self.wave(server, clients)
                time.sleep(RELEASE_DELAY * 2 * TIME_SCALE)
                before_kib = server.proc_status("VmRSS")
                self.wave(server, clients)
                after_kib = server.proc_status("VmRSS")
                per_connection = (after_kib - before_kib) / CLIENTS
                print(f"server RSS {before_kib} KiB -> {after_kib} KiB for {CLIENTS} more connections that "
                      f"each sent {MESSAGE // 1024} KiB and went quiet: {per_connection:.1f} KiB per connection")
                self.assertLess(per_connection, MAX_KIB_PER_CONNECTION)
                # Quiet, not gone: each still gets its echoes, large ones included.
                for client in clients[::20]:
                    payload = os.urandom(MESSAGE)
                    client.send_frame(OP_BINARY, payload)
                    self.assertEqual(client.recv_message(), (OP_BINARY, payload))
            finally:
                for client in clients:
                    client.sock.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
