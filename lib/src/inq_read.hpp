#pragma once
// Socket reads that skip the recv() that would fail.
//
// asio's reactor tries a read before it waits for the socket, even right after a read that emptied
// it. In a request-response exchange that try fails with EAGAIN every time: two recv() per message
// where one would do, a whole system call per message on each side.
//
// Linux tells us when that try is pointless: with TCP_INQ set, recvmsg() reports how many bytes the
// socket still holds after the read, and reports 1 when only the peer's FIN is left (tcp_inq_hint),
// so 0 means "nothing and no FIN". The read then reports itself exhausted, and the reactor waits
// for the next epoll event before it reads again. That event cannot be missed: epoll's
// edge-triggered mode queues the socket again on every arrival after the read (data, FIN or error).
// A short read alone is not enough to decide: a FIN that came with the last data gives no further
// edge, and the connection would never see its end.
//
// The hook is asio's own: a recv operation that returns `done_and_exhausted` clears the
// descriptor's "try speculatively" flag (epoll_reactor.ipp). We specialise asio's recv operation
// for one buffer type of ours, `inq_buffer`, so only reads made with it change; every other read
// in the program keeps asio's behaviour. Without TCP_INQ (another OS, or setsockopt failed) no
// count comes back and the read behaves as asio's.

#include <asio/detail/reactive_socket_recv_op.hpp>
#include <asio/ip/tcp.hpp>

#if defined(__linux__)
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>
#endif

namespace wsl::detail {

// One buffer, as a MutableBufferSequence of its own type.
struct inq_buffer {
  asio::mutable_buffer buffer;
  const asio::mutable_buffer* begin() const noexcept { return &buffer; }
  const asio::mutable_buffer* end() const noexcept { return &buffer + 1; }
};

// Asks the kernel to report, with each read, what the socket still holds. False when it cannot.
inline bool enable_inq(asio::ip::tcp::socket& socket) noexcept {
#if defined(__linux__) && defined(TCP_INQ)
  if (!socket.is_open()) return false;
  const int on = 1;
  return ::setsockopt(socket.native_handle(), IPPROTO_TCP, TCP_INQ, &on, sizeof on) == 0;
#else
  (void)socket;
  return false;
#endif
}

}  // namespace wsl::detail

#if defined(__linux__) && defined(TCP_INQ) && !defined(ASIO_HAS_IOCP) && !defined(ASIO_HAS_IO_URING_AS_DEFAULT)
namespace asio::detail {

template <>
class reactive_socket_recv_op_base<wsl::detail::inq_buffer> : public reactor_op {
 public:
  reactive_socket_recv_op_base(const asio::error_code& success_ec, socket_type socket, socket_ops::state_type state,
                               const wsl::detail::inq_buffer& buffers, socket_base::message_flags flags,
                               func_type complete_func)
      : reactor_op(success_ec, &reactive_socket_recv_op_base::do_perform, complete_func),
        socket_(socket),
        state_(state),
        buffer_(buffers.buffer),
        flags_(flags) {}

  static status do_perform(reactor_op* base) {
    auto* o = static_cast<reactive_socket_recv_op_base*>(base);
    const bool stream = (o->state_ & socket_ops::stream_oriented) != 0;
    if (o->buffer_.size() == 0) {
      o->ec_ = asio::error_code();
      o->bytes_transferred_ = 0;
      return done;
    }
    iovec iov{o->buffer_.data(), o->buffer_.size()};
    alignas(cmsghdr) unsigned char control[CMSG_SPACE(sizeof(int))];
    for (;;) {
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      const auto n = ::recvmsg(o->socket_, &msg, o->flags_);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return not_done;
        o->ec_ = asio::error_code(errno, asio::error::get_system_category());
        o->bytes_transferred_ = 0;
        return done;
      }
      o->ec_ = asio::error_code();
      o->bytes_transferred_ = static_cast<std::size_t>(n);
      if (n == 0 && stream) {
        o->ec_ = asio::error::eof;
        return done_and_exhausted;
      }
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_TCP && c->cmsg_type == TCP_CM_INQ && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
          int left = 0;
          std::memcpy(&left, CMSG_DATA(c), sizeof left);
          return left == 0 ? done_and_exhausted : done;
        }
      }
      return done;
    }
  }

 private:
  socket_type socket_;
  socket_ops::state_type state_;
  asio::mutable_buffer buffer_;
  socket_base::message_flags flags_;
};

}  // namespace asio::detail
#endif
