// A WebSocket connection and a TCP connection joined, bytes both ways: `wsl serve --tcp` (the TCP
// side is the server behind, or a Unix-domain socket's: any stream socket does) and `wsl pipe
// --tcp-listen` (it is a local program's connection).
//
// The WebSocket peer's messages, text or binary, go to the TCP side byte for byte; what the TCP
// side sends goes back as binary messages, one per read of at most `chunk` bytes. Two coroutines
// move the data, each awaiting its write before its next read, so that a slow side holds the other
// back instead of filling memory; a read buffer is taken only once the TCP side has something to
// read. How it ends:
//  - the TCP side closes: everything it sent goes out, then close 1000;
//  - it resets: `failure_code` with "NAME: the error" as the reason;
//  - the WebSocket peer leaves (its close, a dropped connection): the TCP side gets its FIN after
//    the peer's last bytes, and what it still sends is read and dropped until it closes too, for
//    at most `close_timeout`, so that no reset destroys those last bytes on their way;
//  - stop() (SIGINT): the TCP side is closed at once.
#pragma once

#include "common.hpp"

#include <asio/awaitable.hpp>
#include <asio/generic/stream_protocol.hpp>
#include <asio/ip/tcp.hpp>

#include <cstdint>
#include <string>

namespace wsl::cli {

struct tcp_relay_options {
  std::size_t chunk = 64 << 10;
  clock::duration close_timeout = std::chrono::seconds(5);
  std::uint16_t failure_code = close_code::bad_gateway;  // when the TCP side fails
  std::string name;                                      // of the TCP side, in close reasons
  std::string prefix;                                    // "[7] " before log lines
};

class tcp_relay {
 public:
  // A TCP socket gets TCP_NODELAY (an interactive protocol, SSH, wants its bytes out now).
  tcp_relay(websocket& ws, asio::ip::tcp::socket socket, const tcp_relay_options& o);
  tcp_relay(websocket& ws, asio::generic::stream_protocol::socket socket, const tcp_relay_options& o);
  tcp_relay(const tcp_relay&) = delete;
  tcp_relay& operator=(const tcp_relay&) = delete;

  // Until both directions have ended and the TCP connection is closed.
  asio::awaitable<void> run();
  // SIGINT: the TCP side is left at once (the caller closes the WebSocket).
  void stop();

  std::uint64_t to_tcp() const noexcept { return to_tcp_; }
  std::uint64_t to_websocket() const noexcept { return to_websocket_; }

 private:
  asio::awaitable<void> websocket_to_tcp();
  asio::awaitable<void> tcp_to_websocket();
  asio::awaitable<void> close_websocket(std::uint16_t code, std::string reason);
  asio::awaitable<void> wait_until(clock::time_point deadline);
  void notify() noexcept;
  void close_tcp() noexcept;

  websocket& ws_;
  asio::generic::stream_protocol::socket tcp_;
  const tcp_relay_options& o_;
  timer wake_;  // cancel() wakes run()
  int running_ = 0;
  bool peer_gone_ = false;  // the WebSocket peer's close came, its connection broke, or stop()
  bool tcp_done_ = false;   // the TCP side closed, reset, or was closed by us
  bool closing_ = false;    // a close frame of ours is on its way
  bool interrupted_ = false;
  std::uint64_t to_tcp_ = 0, to_websocket_ = 0;
};

}  // namespace wsl::cli
