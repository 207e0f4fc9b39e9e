// The floor for bench/echo: the least a WebSocket echo server can do on this kernel.
//
// Not a server to use: it trusts its client (no UTF-8 check, no size limits beyond its buffer, no
// timeouts, no close handshake beyond answering one) and exists to show what the kernel's part of
// a closed-loop echo costs, so that the other rows of bench/echo can be read against it. A server
// cannot use fewer system calls per message than this one:
//
// - one thread, one level-triggered epoll loop, non-blocking sockets with TCP_NODELAY;
// - each readiness event is served by one recv() into the connection's buffer (level-triggered:
//   what is left is reported again, so no recv() ever fails with EAGAIN);
// - every complete frame in that buffer is answered in place (unmasked where it lies, the header
//   rewritten in front of it), all with one sendmsg(); EPOLLOUT is asked for only when the kernel
//   took less, and only then is anything copied;
// - nothing is allocated per message.
//
// Usage: floor_server PORT (0: any free port). Binds 127.0.0.1 and prints
// "listening on ws://127.0.0.1:PORT/" on stderr once it accepts connections, as `wsl echo` does.
// Linux only; libc and OpenSSL's SHA-1 (for Sec-WebSocket-Accept).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
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

constexpr std::size_t buffer_size = 256 << 10;  // a whole frame must fit: bench/echo sends 16 KiB

struct conn {
  int fd = -1;
  bool upgraded = false;
  bool closing = false;  // our close frame is queued: close the socket once it is sent
  std::vector<std::uint8_t> in, out;
  std::size_t in_used = 0, out_sent = 0;
};

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "floor_server: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

void append(conn& c, const void* p, std::size_t n) {
  const auto* b = static_cast<const std::uint8_t*>(p);
  c.out.insert(c.out.end(), b, b + n);
}

// Answers every complete frame at the front of the input, in place: each payload is unmasked
// where it lies and the server's header (never longer than the client's header and mask) is
// written right before it, so the answers go out with one sendmsg() and no copy. What the kernel
// does not take is copied to `out`. False when the connection must go.
bool process_frames(conn& c) {
  iovec iov[64];
  int count = 0;
  std::size_t pos = 0;
  while (c.in_used - pos >= 2 && count < 64) {
    std::uint8_t* f = c.in.data() + pos;
    const std::uint8_t op = f[0] & 0x0f;
    const std::uint8_t first = f[0];
    std::uint64_t len = f[1] & 0x7f;
    std::size_t header = 2;
    if (!(f[1] & 0x80)) return false;  // a client's frames are masked
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
    pos += header + 4 + len;
    if (op == 0xa) continue;  // a pong: nothing to answer
    unmask(payload, static_cast<std::size_t>(len), mask);
    std::uint8_t* h = payload - header;                                 // the same length encoding, without the mask
    h[0] = op == 0x9 ? 0x8a : static_cast<std::uint8_t>(first & 0x8f);  // a ping gets its pong
    h[1] = static_cast<std::uint8_t>(len < 126 ? len : len <= 0xffff ? 126 : 127);
    if (header == 4) {
      h[2] = static_cast<std::uint8_t>(len >> 8);
      h[3] = static_cast<std::uint8_t>(len);
    } else if (header == 10) {
      for (int i = 0; i < 8; ++i) h[2 + i] = static_cast<std::uint8_t>(len >> (56 - 8 * i));
    }
    iov[count++] = {h, header + static_cast<std::size_t>(len)};
    if (op == 0x8) {  // close: echo it, then end
      c.closing = true;
      break;
    }
  }
  if (count != 0 && !c.out.empty()) {  // behind output still queued (the 101): in order
    for (int i = 0; i < count; ++i) append(c, iov[i].iov_base, iov[i].iov_len);
  } else if (count != 0) {
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<std::size_t>(count);
    auto sent = ::sendmsg(c.fd, &msg, MSG_NOSIGNAL);
    if (sent < 0 && errno != EAGAIN) return false;
    std::size_t skip = sent < 0 ? 0 : static_cast<std::size_t>(sent);
    for (int i = 0; i < count; ++i) {  // what the kernel did not take waits in `out`
      if (skip >= iov[i].iov_len) {
        skip -= iov[i].iov_len;
        continue;
      }
      append(c, static_cast<std::uint8_t*>(iov[i].iov_base) + skip, iov[i].iov_len - skip);
      skip = 0;
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

// Sends what is queued; false when the connection must go.
bool flush(int ep, conn& c) {
  while (c.out_sent < c.out.size()) {
    const auto n = ::send(c.fd, c.out.data() + c.out_sent, c.out.size() - c.out_sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) return false;
      epoll_event ev{EPOLLOUT, {.ptr = &c}};  // reading waits until the kernel took this
      epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
      return true;
    }
    c.out_sent += static_cast<std::size_t>(n);
  }
  c.out.clear();
  c.out_sent = 0;
  return !c.closing;
}

void drop(int ep, conn* c) {
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, nullptr);
  ::close(c->fd);
  delete c;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: floor_server PORT\n");
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listener < 0) die("socket");
  const int on = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(std::atoi(argv[1])));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) die("bind");
  if (::listen(listener, 4096) != 0) die("listen");
  socklen_t len = sizeof addr;
  getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);

  const int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  epoll_event lev{EPOLLIN, {.ptr = nullptr}};
  epoll_ctl(ep, EPOLL_CTL_ADD, listener, &lev);
  std::fprintf(stderr, "listening on ws://127.0.0.1:%d/\n", ntohs(addr.sin_port));
  std::fflush(stderr);

  epoll_event events[256];
  for (;;) {
    const int n = epoll_wait(ep, events, 256, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int i = 0; i < n; ++i) {
      if (events[i].data.ptr == nullptr) {
        for (;;) {
          const int fd = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) break;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
          auto* c = new conn;
          c->fd = fd;
          c->in.resize(buffer_size);
          epoll_event ev{EPOLLIN, {.ptr = c}};
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        }
        continue;
      }
      auto* c = static_cast<conn*>(events[i].data.ptr);
      if (events[i].events & EPOLLOUT) {
        if (!flush(ep, *c)) {
          drop(ep, c);
          continue;
        }
        if (c->out.empty()) {
          epoll_event ev{EPOLLIN, {.ptr = c}};
          epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        }
      }
      if (!(events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) || !c->out.empty()) continue;
      const auto got = ::recv(c->fd, c->in.data() + c->in_used, c->in.size() - c->in_used, 0);
      if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (got <= 0) {
        drop(ep, c);
        continue;
      }
      c->in_used += static_cast<std::size_t>(got);
      const bool ok = c->upgraded ? process_frames(*c) : process_handshake(*c);
      if (!ok || !flush(ep, *c)) drop(ep, c);
    }
  }
}
