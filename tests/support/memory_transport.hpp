// An in-memory duplex byte stream for unit tests: two connected ends on one io_context.
//
//   asio::io_context ctx;
//   auto [stream, peer] = wsl::test::make_memory_pipe(ctx);
//   auto ws = wsl::websocket::adopt(std::move(stream), wsl::role::server);   // the code under test
//   peer->inject(wsl::test::client_frame(wsl::test::op::text, "hi"));        // the test plays the peer
//   ... run the io_context ...
//   std::string sent = peer->take();                                         // what the library wrote
//
// Each end is a wsl::transport. A read completes when the other end writes; it ends with
// asio::error::eof once the other end has shut down its send side (or closed) and everything it
// wrote has been read; close() makes a pending read on the same end end with operation_aborted.
// Writes complete at once unless the test gives the pipe a capacity (below), so nothing here
// depends on timing.
//
// A busy peer, for tests of backpressure: the test may give an end a receive capacity,
//
//   peer->set_receive_capacity(100);   // the websocket's writes wait while 100 bytes are unread here
//   ... run ...                        // a write of more than that has delivered what fits and waits
//   peer->take_some(40);               // the test reads 40 bytes: the write goes on with 40 more
//
// so that a write waits, as on a socket whose send buffer is full, until the other end reads.
// Nothing happens by time: the write goes on only when the test (or the other end's read_some())
// takes bytes, so a test still decides every interleaving. Without a capacity nothing changes.
#pragma once

#include "wsl/transport.hpp"

#include <asio/error.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/address_v4.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <string_view>

namespace wsl::test {

namespace detail {

// One direction of the pipe: bytes written by one end and not yet read by the other.
struct channel {
  explicit channel(asio::any_io_executor executor) : readable(executor), writable(executor) {
    readable.expires_at(asio::steady_timer::time_point::max());
    writable.expires_at(asio::steady_timer::time_point::max());
  }
  std::string data;
  bool write_closed = false;    // the writing end shut down its send side or closed
  asio::steady_timer readable;  // never expires; cancel() wakes the reader, which looks again
  // Unread bytes beyond which a write() into this channel waits; and the timer that wakes it
  // (never expires either) when bytes are taken or an end closes.
  std::size_t capacity = std::numeric_limits<std::size_t>::max();
  asio::steady_timer writable;
  void wake() { readable.cancel(); }
  void wake_writer() { writable.cancel(); }
  std::size_t room() const noexcept { return data.size() >= capacity ? 0 : capacity - data.size(); }
};

struct end_state {
  explicit end_state(asio::any_io_executor executor) : inbound(executor) {}
  channel inbound;  // what this end reads
  bool closed = false;
  std::size_t read_limit = std::numeric_limits<std::size_t>::max();
  std::size_t writes = 0;
  std::size_t last_read_capacity = 0;  // the buffer size of the latest read_some()
  bool reading = false;                // a read_some() is pending
  bool cancel_read = false;            // cancel_read() was called: the pending read ends
  bool write_waiting = false;          // a write() waits for room in the other end's channel
  std::size_t waited_writes = 0;       // write() calls that had to wait for room
};

struct pipe_state {
  explicit pipe_state(asio::any_io_executor executor) : ends{end_state(executor), end_state(executor)} {}
  std::array<end_state, 2> ends;
};

}  // namespace detail

class memory_stream final : public wsl::transport {
 public:
  memory_stream(std::shared_ptr<detail::pipe_state> state, int side, asio::any_io_executor executor,
                asio::ip::tcp::endpoint local, asio::ip::tcp::endpoint remote)
      : state_(std::move(state)), side_(side), executor_(std::move(executor)), local_(local), remote_(remote) {}
  ~memory_stream() override { close(); }

  // ---- wsl::transport
  asio::any_io_executor get_executor() override { return executor_; }

  asio::awaitable<std::size_t> read_some(asio::mutable_buffer buffer, std::error_code& ec) override {
    ec = {};
    if (buffer.size() == 0) co_return 0;
    auto state = state_;  // keeps the pipe alive while this read waits, whatever happens to *this
    auto& self = state->ends[side_];
    self.last_read_capacity = buffer.size();
    self.reading = true;
    for (;;) {
      if (std::exchange(self.cancel_read, false)) {
        ec = asio::error::operation_aborted;
        self.reading = false;
        co_return 0;
      }
      const auto n = take_now(*state, buffer, ec);
      if (ec != asio::error::would_block) {
        self.reading = false;
        co_return n;
      }
      ec = {};  // the caller may look at it while this read waits
      co_await wait(*state);
    }
  }

  bool cancel_read() noexcept override {
    if (own().reading) own().cancel_read = true;  // like a socket: only a pending read ends
    own().inbound.wake();
    return true;
  }

  asio::awaitable<void> write(std::span<const asio::const_buffer> buffers, std::error_code& ec) override {
    ec = {};
    std::string bytes;
    for (const auto& b : buffers) bytes.append(static_cast<const char*>(b.data()), b.size());
    if (own().closed) {
      ec = asio::error::bad_descriptor;
      co_return;
    }
    if (!deliver(bytes, true)) ec = asio::error::broken_pipe;
    if (ec || sent_ == bytes.size()) co_return;
    // The other end's capacity is reached: the rest waits for it to read, as a socket's would.
    auto state = state_;  // keeps the pipe alive while this write waits
    auto& self = state->ends[side_];
    auto& out = state->ends[1 - side_].inbound;
    std::string_view rest = std::string_view(bytes).substr(sent_);
    ++self.waited_writes;
    self.write_waiting = true;
    while (!rest.empty()) {
      std::error_code woken;
      co_await out.writable.async_wait(asio::redirect_error(asio::use_awaitable, woken));
      if (self.closed) {
        ec = asio::error::operation_aborted;
        break;
      }
      if (out.write_closed || state->ends[1 - side_].closed) {
        ec = asio::error::broken_pipe;
        break;
      }
      const auto n = std::min(out.room(), rest.size());
      if (n == 0) continue;
      out.data.append(rest.substr(0, n));
      rest.remove_prefix(n);
      out.wake();
    }
    self.write_waiting = false;
  }

  void shutdown_send() noexcept override {
    auto& out = other().inbound;
    out.write_closed = true;
    out.wake();
  }

  void close() noexcept override {
    if (own().closed) return;
    own().closed = true;
    own().inbound.wake();           // a pending read ends with operation_aborted
    own().inbound.wake_writer();    // so does the other end's waiting write (broken_pipe)
    other().inbound.wake_writer();  // and ours (operation_aborted)
    shutdown_send();
  }

  bool is_open() const noexcept override { return !state_->ends[side_].closed; }
  asio::ip::tcp::endpoint remote_endpoint() const noexcept override { return remote_; }
  asio::ip::tcp::endpoint local_endpoint() const noexcept override { return local_; }

  // ---- for the test playing this end
  // Sends bytes to the other end, as write() would; false when they cannot be delivered (this
  // end shut down or closed, or the other end closed).
  bool inject(std::string_view bytes) {
    if (own().closed) return false;
    return deliver(bytes, false);
  }
  // Everything received and not read yet, removed from the pipe.
  std::string take() {
    own().inbound.wake_writer();
    return std::exchange(own().inbound.data, std::string());
  }
  // At most n bytes of it: a busy peer that reads a little at a time.
  std::string take_some(std::size_t n) {
    auto& in = own().inbound;
    auto bytes = in.data.substr(0, n);
    in.data.erase(0, bytes.size());
    if (!bytes.empty()) in.wake_writer();
    return bytes;
  }
  // The other end's writes wait while n bytes of theirs are unread here (n >= 1).
  void set_receive_capacity(std::size_t n) noexcept { own().inbound.capacity = std::max<std::size_t>(n, 1); }
  // inject_some() sends no more than the other end has room for: n bytes unread there (n >= 1).
  void set_send_capacity(std::size_t n) noexcept { other().inbound.capacity = std::max<std::size_t>(n, 1); }
  // Sends what the other end has room for of bytes, as a write on a busy socket would take it; 0
  // when the pipe is closed.
  std::size_t inject_some(std::string_view bytes) {
    const auto n = std::min(other().inbound.room(), bytes.size());
    if (n == 0 || own().closed) return 0;
    return deliver(bytes.substr(0, n), false) ? n : 0;
  }
  // A write() of the other end waits for room here.
  bool other_write_waiting() const noexcept { return state_->ends[1 - side_].write_waiting; }
  // write() calls of the other end that had to wait for room.
  std::size_t other_waited_writes() const noexcept { return state_->ends[1 - side_].waited_writes; }
  // Bytes sent to the other end that it has not read yet.
  std::size_t other_unread() const noexcept { return state_->ends[1 - side_].inbound.data.size(); }
  std::size_t available() const noexcept { return state_->ends[side_].inbound.data.size(); }
  // The other end shut down its send side or closed: nothing more will arrive.
  bool received_eof() const noexcept { return state_->ends[side_].inbound.write_closed; }
  // The other end closed (not merely shut down its send side).
  bool other_end_closed() const noexcept { return state_->ends[1 - side_].closed; }
  // The other end reads what this end sends at most n bytes at a time, to cut frames into pieces.
  void deliver_in_pieces_of(std::size_t n) noexcept { other().read_limit = std::max<std::size_t>(n, 1); }
  // write() calls made on this end (a gathered write counts once).
  std::size_t write_count() const noexcept { return state_->ends[side_].writes; }
  // write() calls made on the other end.
  std::size_t other_write_count() const noexcept { return state_->ends[1 - side_].writes; }
  // The buffer size of the other end's latest read: what a waiting reader holds.
  std::size_t other_read_capacity() const noexcept { return state_->ends[1 - side_].last_read_capacity; }

 private:
  detail::end_state& own() noexcept { return state_->ends[side_]; }
  detail::end_state& other() noexcept { return state_->ends[1 - side_]; }

  // What a non-blocking read would give: bytes, eof, operation_aborted, or would_block.
  std::size_t take_now(detail::pipe_state& state, asio::mutable_buffer buffer, std::error_code& ec) {
    ec = {};
    auto& self = state.ends[side_];
    if (self.closed) {
      ec = asio::error::operation_aborted;
      return 0;
    }
    if (!self.inbound.data.empty()) {
      const auto n = std::min({buffer.size(), self.inbound.data.size(), self.read_limit});
      std::memcpy(buffer.data(), self.inbound.data.data(), n);
      self.inbound.data.erase(0, n);
      self.inbound.wake_writer();
      return n;
    }
    if (self.inbound.write_closed) {
      ec = asio::error::eof;
      return 0;
    }
    ec = asio::error::would_block;
    return 0;
  }
  asio::awaitable<void> wait(detail::pipe_state& state) {
    std::error_code woken;
    co_await state.ends[side_].inbound.readable.async_wait(asio::redirect_error(asio::use_awaitable, woken));
  }

  // Appends bytes to the other end's channel, with `bounded` only what fits its capacity, and
  // notes in sent_ how many; false when they cannot be delivered.
  bool deliver(std::string_view bytes, bool bounded) {
    auto& out = other().inbound;
    if (out.write_closed || other().closed) return false;
    ++own().writes;
    sent_ = bounded ? std::min(out.room(), bytes.size()) : bytes.size();
    out.data.append(bytes.substr(0, sent_));
    out.wake();
    return true;
  }

  std::shared_ptr<detail::pipe_state> state_;
  int side_;
  asio::any_io_executor executor_;
  asio::ip::tcp::endpoint local_, remote_;
  std::size_t sent_ = 0;  // what the latest deliver() appended
};

struct memory_pipe {
  std::unique_ptr<memory_stream> stream;  // for the code under test
  std::unique_ptr<memory_stream> peer;    // for the test
};

// The stream looks like a server socket on 127.0.0.1:8080 with a client on 127.0.0.1:50000.
inline memory_pipe make_memory_pipe(asio::io_context& ctx) {
  auto state = std::make_shared<detail::pipe_state>(ctx.get_executor());
  const asio::ip::tcp::endpoint server(asio::ip::address_v4::loopback(), 8080);
  const asio::ip::tcp::endpoint client(asio::ip::address_v4::loopback(), 50000);
  return {std::make_unique<memory_stream>(state, 0, ctx.get_executor(), server, client),
          std::make_unique<memory_stream>(state, 1, ctx.get_executor(), client, server)};
}

}  // namespace wsl::test
