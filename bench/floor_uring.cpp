// The io_uring floor for bench/echo: floor_server.cpp's echo with io_uring instead of epoll.
//
// Not a server to use (it trusts its client like floor_server does, and gives up on a short
// send), but an answer to one question: would a server built on io_uring spend less CPU per
// message here than the epoll floor, which wsl already matches? It batches everything it can:
//
// - one thread, one ring (single issuer, deferred task work), one io_uring_enter per loop turn
//   that submits every queued operation and waits for at least one completion;
// - each connection has one recv outstanding into its buffer; every complete frame in what
//   arrived is answered (unmasked, header rewritten) into the connection's output buffer, sent
//   with one send linked to the next recv, so a message costs two queue entries and no system
//   call of its own;
// - multishot accept; nothing is allocated per message.
//
// Usage: floor_uring PORT (0: any free port). Binds 127.0.0.1 and prints
// "listening on ws://127.0.0.1:PORT/" on stderr once it accepts connections. Linux 6.1 or later,
// liburing, OpenSSL's SHA-1.

#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "floor_common.hpp"

using floor_common::accept_key;
using floor_common::header;
using floor_common::unmask;

namespace {

constexpr std::size_t buffer_size = 256 << 10;

struct conn {
  int fd = -1;
  bool upgraded = false;
  bool closing = false;
  bool dead = false;  // a send failed: the linked recv's completion drops it
  std::vector<std::uint8_t> in, out;
  std::size_t in_used = 0, out_used = 0;
};

enum kind : std::uint64_t { k_accept = 0, k_recv = 1, k_send = 2 };

std::uint64_t tag(conn* c, kind k) { return reinterpret_cast<std::uint64_t>(c) | k; }

[[noreturn]] void die(const char* what, int err) {
  std::fprintf(stderr, "floor_uring: %s: %s\n", what, std::strerror(err));
  std::exit(1);
}

void append(conn& c, const void* p, std::size_t n) {
  if (c.out_used + n > c.out.size()) c.out.resize(c.out_used + n);
  std::memcpy(c.out.data() + c.out_used, p, n);
  c.out_used += n;
}

// Answers every complete frame at the front of the input into `out`. False when the connection
// must go.
bool process_frames(conn& c) {
  std::size_t pos = 0;
  while (c.in_used - pos >= 2) {
    std::uint8_t* f = c.in.data() + pos;
    const std::uint8_t op = f[0] & 0x0f;
    std::uint64_t len = f[1] & 0x7f;
    std::size_t header = 2;
    if (!(f[1] & 0x80)) return false;
    if (len == 126) {
      if (c.in_used - pos < 4) break;
      len = (std::uint64_t{f[2]} << 8) | f[3];
      header = 4;
    } else if (len == 127) {
      if (c.in_used - pos < 10) break;
      len = 0;
      for (int i = 0; i < 8; ++i) len = (len << 8) | f[2 + i];
      header = 10;
    }
    if (len > buffer_size - 14) return false;
    if (c.in_used - pos < header + 4 + len) break;
    std::uint8_t mask[4];
    std::memcpy(mask, f + header, 4);
    std::uint8_t* payload = f + header + 4;
    const std::uint8_t first = f[0];
    pos += header + 4 + len;
    if (op == 0xa) continue;
    unmask(payload, static_cast<std::size_t>(len), mask);
    std::uint8_t h[10];
    h[0] = op == 0x9 ? 0x8a : static_cast<std::uint8_t>(first & 0x8f);
    h[1] = static_cast<std::uint8_t>(len < 126 ? len : len <= 0xffff ? 126 : 127);
    if (header == 4) {
      h[2] = static_cast<std::uint8_t>(len >> 8);
      h[3] = static_cast<std::uint8_t>(len);
    } else if (header == 10) {
      for (int i = 0; i < 8; ++i) h[2 + i] = static_cast<std::uint8_t>(len >> (56 - 8 * i));
    }
    append(c, h, header);
    append(c, payload, static_cast<std::size_t>(len));
    if (op == 0x8) {
      c.closing = true;
      break;
    }
  }
  std::memmove(c.in.data(), c.in.data() + pos, c.in_used - pos);
  c.in_used -= pos;
  return true;
}

bool process_handshake(conn& c) {
  const std::string_view text(reinterpret_cast<const char*>(c.in.data()), c.in_used);
  const auto end = text.find("\r\n\r\n");
  if (end == std::string_view::npos) return c.in_used < 8192;
  const auto key = header(text.substr(0, end + 2), "Sec-WebSocket-Key");
  if (key.empty()) return false;
  const std::string response =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: " +
      accept_key(key) + "\r\n\r\n";
  append(c, response.data(), response.size());
  const std::size_t rest = c.in_used - (end + 4);
  std::memmove(c.in.data(), c.in.data() + end + 4, rest);
  c.in_used = rest;
  c.upgraded = true;
  return process_frames(c);
}

io_uring ring;

io_uring_sqe* sqe() {
  io_uring_sqe* s = io_uring_get_sqe(&ring);
  if (s == nullptr) {
    io_uring_submit(&ring);
    s = io_uring_get_sqe(&ring);
    if (s == nullptr) die("io_uring_get_sqe", EBUSY);
  }
  return s;
}

void queue_recv(conn* c, unsigned flags) {
  io_uring_sqe* s = sqe();
  io_uring_prep_recv(s, c->fd, c->in.data() + c->in_used, c->in.size() - c->in_used, 0);
  s->flags |= flags;
  io_uring_sqe_set_data64(s, tag(c, k_recv));
}

// Sends what `out` holds, linked to the next recv (none after a close).
void queue_send_then_recv(conn* c) {
  io_uring_sqe* s = sqe();
  io_uring_prep_send(s, c->fd, c->out.data(), c->out_used, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(s, tag(c, k_send));
  if (c->closing) return;
  s->flags |= IOSQE_IO_LINK;
  queue_recv(c, 0);
}

void drop(conn* c) {
  ::close(c->fd);
  delete c;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: floor_uring PORT\n");
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0) die("socket", errno);
  const int on = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(std::atoi(argv[1])));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) die("bind", errno);
  if (::listen(listener, 4096) != 0) die("listen", errno);
  socklen_t len = sizeof addr;
  getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);

  io_uring_params params{};
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  if (const int r = io_uring_queue_init_params(4096, &ring, &params); r < 0) die("io_uring_queue_init", -r);
  {
    io_uring_sqe* s = sqe();
    io_uring_prep_multishot_accept(s, listener, nullptr, nullptr, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(s, k_accept);
  }
  std::fprintf(stderr, "listening on ws://127.0.0.1:%d/\n", ntohs(addr.sin_port));
  std::fflush(stderr);

  for (;;) {
    const int r = io_uring_submit_and_wait(&ring, 1);
    if (r < 0 && r != -EINTR) die("io_uring_submit_and_wait", -r);
    io_uring_cqe* cqe;
    unsigned head;
    unsigned seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      ++seen;
      const std::uint64_t data = cqe->user_data;
      const int res = cqe->res;
      if (data == k_accept) {
        if (res >= 0) {
          setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
          auto* c = new conn;
          c->fd = res;
          c->in.resize(buffer_size);
          c->out.resize(buffer_size);
          queue_recv(c, 0);
        }
        if (!(cqe->flags & IORING_CQE_F_MORE)) {
          io_uring_sqe* s = sqe();
          io_uring_prep_multishot_accept(s, listener, nullptr, nullptr, SOCK_CLOEXEC);
          io_uring_sqe_set_data64(s, k_accept);
        }
        continue;
      }
      auto* c = reinterpret_cast<conn*>(data & ~std::uint64_t{3});
      if ((data & 3) == k_send) {
        if (c->closing) {  // no recv was linked: this was the last operation
          drop(c);
          continue;
        }
        if (res < 0 || static_cast<std::size_t>(res) != c->out_used) {
          if (res >= 0) die("short send", EAGAIN);
          c->dead = true;  // the linked recv is cancelled, and its completion drops the conn
        }
        c->out_used = 0;
        continue;
      }
      // A recv.
      if (res <= 0 || c->dead) {
        drop(c);
        continue;
      }
      c->in_used += static_cast<std::size_t>(res);
      const bool ok = c->upgraded ? process_frames(*c) : process_handshake(*c);
      if (!ok) {
        drop(c);
        continue;
      }
      if (c->out_used != 0)
        queue_send_then_recv(c);
      else
        queue_recv(c, 0);
    }
    io_uring_cq_advance(&ring, seen);
  }
}
