// A wsl::websocket over a memory pipe, with the test playing its peer byte by byte.
//
//   wsl::test::connection_harness h;                         // server role, quiet options
//   auto reading = h.spawn(wsl::test::read_whole_message(h.ws));
//   h.send(wsl::test::client_frame(wsl::test::op::text, "hi"));   // and runs what follows from it
//   BOOST_TEST(reading.get().data == "hi");
//   auto frames = h.received();                              // what the websocket sent
#pragma once

#include "memory_transport.hpp"
#include "run_coroutine.hpp"
#include "wire_frames.hpp"
#include "wsl/websocket.hpp"

#include <asio/io_context.hpp>

#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace wsl::test {

// Options without pings or idle timeout, so that the only frames on the wire are the test's.
inline connection_options quiet_options() {
  connection_options o;
  o.ping = ping_mode::none;
  o.idle_timeout = clock::duration::zero();
  return o;
}

// The outcome of coroutines that report through an error_code, returned by value so that a
// spawned coroutine never writes to a variable of the test's stack.
struct message_result {
  std::error_code ec;
  message_type type = message_type::binary;
  std::string data;
};

// read_message() and read_all(): one whole message.
inline asio::awaitable<message_result> read_whole_message(websocket& ws) {
  message_result r;
  auto reader = co_await ws.read_message(r.ec);
  if (r.ec) co_return r;
  r.type = reader.type();
  r.data = co_await reader.read_all(r.ec);
  co_return r;
}

inline asio::awaitable<std::error_code> close_websocket(websocket& ws, std::uint16_t code, std::string reason = {}) {
  std::error_code ec;
  co_await ws.close(code, reason, ec);
  co_return ec;
}

inline asio::awaitable<std::error_code> write_whole_message(websocket& ws, message_type type, std::string data) {
  std::error_code ec;
  co_await ws.write_message(type, asio::buffer(data), ec);
  co_return ec;
}

class connection_harness {
 public:
  explicit connection_harness(connection_options options = quiet_options(), role r = role::server) {
    test_clock::enable();
    auto pipe = make_memory_pipe(ctx);
    peer = std::move(pipe.peer);
    ws = websocket::adopt(std::move(pipe.stream), r, options);
  }
  // Drops the connection and lets every coroutine still waiting on it end, before it goes away.
  ~connection_harness() {
    ws.abort();
    try {
      run_until_idle(ctx);
    } catch (...) {
    }
  }
  connection_harness(const connection_harness&) = delete;
  connection_harness& operator=(const connection_harness&) = delete;

  template <typename T>
  task<T> spawn(asio::awaitable<T> coroutine) {
    return test::spawn(ctx, std::move(coroutine));
  }
  void settle() { run_until_idle(ctx); }
  void advance(clock::duration d) { advance_clock(ctx, d); }

  // Sends bytes from the peer and runs until the websocket has done what it can with them.
  void send(std::string_view bytes) {
    if (!peer->inject(bytes)) throw std::runtime_error("connection_harness::send: the pipe is closed");
    settle();
  }
  // Frames the peer received since the last call (a frame cut short waits for the next call).
  std::vector<wire_frame> received() {
    pending_ += peer->take();
    std::size_t consumed = 0;
    auto frames = parse_frames(pending_, &consumed);
    pending_.erase(0, consumed);
    return frames;
  }

  asio::io_context ctx;
  std::unique_ptr<memory_stream> peer;
  websocket ws;

 protected:
  // For harnesses that make `ws` themselves (by a negotiation): only the pipe; its other end is
  // left in `stream_`.
  struct pipe_only {};
  explicit connection_harness(pipe_only) {
    test_clock::enable();
    auto pipe = make_memory_pipe(ctx);
    peer = std::move(pipe.peer);
    stream_ = std::move(pipe.stream);
  }
  std::unique_ptr<memory_stream> stream_;

 private:
  std::string pending_;
};

}  // namespace wsl::test
