// tcp_relay.hpp first: it brings Asio's config.hpp in before any standard header, as every other
// file of the program does (see serve_command.cpp).
#include "tcp_relay.hpp"

#include "frame_trace.hpp"

#include <asio/co_spawn.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <memory>

namespace wsl::cli {
namespace {

using asio::ip::tcp;

inline auto use_ec(std::error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

}  // namespace

tcp_relay::tcp_relay(websocket& ws, asio::generic::stream_protocol::socket socket, const tcp_relay_options& o)
    : ws_(ws), tcp_(std::move(socket)), o_(o), wake_(ws.get_executor()) {}

tcp_relay::tcp_relay(websocket& ws, tcp::socket socket, const tcp_relay_options& o)
    : tcp_relay(
          ws,
          [&socket] {
            std::error_code ignored;
            socket.set_option(tcp::no_delay(true), ignored);
            return asio::generic::stream_protocol::socket(std::move(socket));
          }(),
          o) {}

void tcp_relay::stop() {
  peer_gone_ = interrupted_ = true;
  notify();
}

void tcp_relay::notify() noexcept {
  try {
    wake_.cancel();
  } catch (...) {
  }
}

void tcp_relay::close_tcp() noexcept {
  std::error_code ignored;
  tcp_.close(ignored);
}

asio::awaitable<void> tcp_relay::wait_until(clock::time_point deadline) {
  wake_.expires_at(deadline);
  std::error_code ignored;
  co_await wake_.async_wait(use_ec(ignored));
}

// Our close frame, once: the first reason to close is the one the peer hears.
asio::awaitable<void> tcp_relay::close_websocket(std::uint16_t code, std::string reason) {
  if (closing_) co_return;
  closing_ = true;
  if (reason.size() > 123) reason.resize(123);
  if (tracing_frames()) trace_close_sent(ws_, code, reason, o_.prefix);
  std::error_code ignored;
  co_await ws_.close(code, reason, ignored);
}

// The peer's messages to the TCP side, byte for byte (a text message's UTF-8 too).
asio::awaitable<void> tcp_relay::websocket_to_tcp() {
  std::error_code ec, write_ec;
  while (!write_ec) {
    auto in = co_await ws_.read_message(ec);
    if (ec) break;
    do {
      const auto chunk = co_await in.read_chunk(ec);
      if (ec) break;
      co_await asio::async_write(tcp_, chunk, use_ec(write_ec));
      if (write_ec) break;
      to_tcp_ += chunk.size();
    } while (!in.done());
    if (ec) break;
    if (tracing_frames() && !write_ec) trace_message('<', in.type(), in.bytes_read(), o_.prefix);
  }
  if (write_ec && !peer_gone_) {
    // The TCP side went away while the peer was talking: the peer hears why.
    diagnostics::info(fmt::format("{}{}: {}", o_.prefix, o_.name, write_ec.message()));
    co_await close_websocket(o_.failure_code, fmt::format("{}: {}", o_.name, write_ec.message()));
  }
  if (tracing_frames()) trace_failure_close(ws_, ec, o_.prefix);
  peer_gone_ = true;
  // The TCP side gets its EOF after the last of the peer's bytes.
  std::error_code ignored;
  tcp_.shutdown(asio::socket_base::shutdown_send, ignored);
}

// What the TCP side sends, a binary message per read. Once the peer is gone, it is read and dropped
// until the TCP side closes (or run() stops waiting). The buffer of a read is taken once the socket
// is readable and given back once its message is sent: a connection that waits holds none.
asio::awaitable<void> tcp_relay::tcp_to_websocket() {
  std::error_code ec;
  tcp_.non_blocking(true, ec);  // a read after a readiness that went away says so, it does not block
  bool sending = true;
  while (!ec) {
    co_await tcp_.async_wait(asio::socket_base::wait_read, use_ec(ec));
    if (ec) break;
    const auto buffer = std::make_unique_for_overwrite<char[]>(o_.chunk);
    const auto n = tcp_.read_some(asio::buffer(buffer.get(), o_.chunk), ec);
    if (ec == asio::error::would_block) {
      ec.clear();
      continue;
    }
    if (ec) break;
    if (!sending || peer_gone_) continue;
    std::error_code write_ec;
    co_await ws_.write_message(message_type::binary, asio::buffer(buffer.get(), n), write_ec);
    if (write_ec) {
      sending = false;  // the peer is gone or going: the rest is dropped
      continue;
    }
    to_websocket_ += n;
    if (tracing_frames()) trace_message('>', message_type::binary, n, o_.prefix);
  }
  tcp_done_ = true;
  if (sending && !peer_gone_) {
    if (ec == asio::error::eof) {
      co_await close_websocket(close_code::normal, {});
    } else if (ec != asio::error::operation_aborted) {
      diagnostics::info(fmt::format("{}{}: {}", o_.prefix, o_.name, ec.message()));
      co_await close_websocket(o_.failure_code, fmt::format("{}: {}", o_.name, ec.message()));
    }
  }
}

asio::awaitable<void> tcp_relay::run() {
  const auto ex = ws_.get_executor();
  running_ = 2;
  const auto done = counted_out(
      running_, [this] { notify(); }, o_.prefix);
  asio::co_spawn(ex, tcp_to_websocket(), done);
  asio::co_spawn(ex, websocket_to_tcp(), done);
  while (running_ > 0 && !peer_gone_ && !tcp_done_) co_await wait_until(clock::time_point::max());
  if (peer_gone_ && !tcp_done_ && !interrupted_) {
    // Our FIN went after the peer's last bytes; the TCP side has the close timeout to close too.
    std::error_code ignored;
    tcp_.shutdown(asio::socket_base::shutdown_send, ignored);
    const auto deadline = clock::now() + o_.close_timeout;
    while (!tcp_done_ && clock::now() < deadline) co_await wait_until(deadline);
  }
  close_tcp();  // ends both pumps: a read or write of the socket fails at once
  while (running_ > 0) co_await wait_until(clock::time_point::max());
}

}  // namespace wsl::cli
