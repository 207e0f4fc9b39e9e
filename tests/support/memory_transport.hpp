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
// Writes complete at once (the pipe has no capacity limit), so nothing here depends on timing.
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
  explicit channel(asio::any_io_executor executor) : readable(executor) {
    readable.expires_at(asio::steady_timer::time_point::max());
  }
  std::string data;
  bool write_closed = false;    // the writing end shut down its send side or closed
  asio::steady_timer readable;  // never expires; cancel() wakes the reader, which looks again
  void wake() { readable.cancel(); }
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
    if (own().closed)
      ec = asio::error::bad_descriptor;
    else if (!deliver(bytes))
      ec = asio::error::broken_pipe;
    co_return;
  }

  void shutdown_send() noexcept override {
    auto& out = other().inbound;
    out.write_closed = true;
    out.wake();
  }

  void close() noexcept override {
    if (own().closed) return;
    own().closed = true;
    own().inbound.wake();  // a pending read ends with operation_aborted
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
    return deliver(bytes);
  }
  // Everything received and not read yet, removed from the pipe.
  std::string take() { return std::exchange(own().inbound.data, std::string()); }
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

  bool deliver(std::string_view bytes) {
    auto& out = other().inbound;
    if (out.write_closed || other().closed) return false;
    ++own().writes;
    out.data.append(bytes);
    out.wake();
    return true;
  }

  std::shared_ptr<detail::pipe_state> state_;
  int side_;
  asio::any_io_executor executor_;
  asio::ip::tcp::endpoint local_, remote_;
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
