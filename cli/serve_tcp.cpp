// wsl serve --tcp HOST:PORT: each connection a byte stream to a TCP server behind (websockify's job:
// a VNC server for noVNC, SSH through a WebSocket-only path, any TCP service for a browser).
//
// Each connection opens its own TCP connection to HOST:PORT (resolved anew each time, within
// --connect-timeout); the client's messages, text or binary, go to it byte for byte, and what it
// sends comes back as binary messages, one per read of up to --chunk bytes. Two coroutines move the
// data, each awaiting its write before its next read, so that a slow side holds the other back
// instead of filling memory. How it ends:
//  - the server behind closes: everything it sent goes out, then close 1000;
//  - it resets, or cannot be reached: close 1014 (bad gateway) with the reason;
//  - the client leaves (its close, a dropped connection) or SIGINT: the server behind gets our FIN
//    after the last of the client's bytes; what it still sends is read and dropped until it closes
//    too, for at most the close timeout, so that no reset destroys the client's last bytes.
// serve_modes.hpp first: it brings Asio's config.hpp in before any standard header (see
// serve_command.cpp).
#include "serve_modes.hpp"

#include "frame_trace.hpp"

#include <asio/co_spawn.hpp>
#include <asio/connect.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <memory>

namespace wsl::cli {
namespace {

using asio::ip::tcp;

inline auto use_ec(std::error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

// One client and its server behind.
class tcp_bridge {
 public:
  tcp_bridge(websocket& ws, const serve_options& o, std::string prefix)
      : ws_(ws), o_(o), prefix_(std::move(prefix)), upstream_(ws.get_executor()), wake_(ws.get_executor()) {}

  asio::awaitable<void> run();
  // SIGINT: the server behind is left at once (the runtime closes the client with 1001).
  void stop() {
    client_gone_ = interrupted_ = true;
    notify();
  }

 private:
  asio::awaitable<std::error_code> connect();
  asio::awaitable<void> client_to_upstream();
  asio::awaitable<void> upstream_to_client();
  asio::awaitable<void> close_client(std::uint16_t code, std::string reason);
  asio::awaitable<void> wait_until(clock::time_point deadline) {
    wake_.expires_at(deadline);
    std::error_code ignored;
    co_await wake_.async_wait(use_ec(ignored));
  }
  void notify() noexcept {
    try {
      wake_.cancel();
    } catch (...) {
    }
  }
  void close_upstream() noexcept {
    std::error_code ignored;
    upstream_.close(ignored);
  }

  websocket& ws_;
  const serve_options& o_;
  const std::string prefix_;  // "[7] "
  tcp::socket upstream_;
  timer wake_;  // cancel() wakes run()
  int running_ = 0;
  bool client_gone_ = false;    // its close came, its connection broke, or we shut down
  bool upstream_done_ = false;  // the server behind closed, reset, or was closed by us
  bool closing_ = false;        // a close frame of ours is on its way
  bool interrupted_ = false;
  std::uint64_t to_upstream_ = 0, to_client_ = 0;
};

// Resolves HOST and connects, within --connect-timeout: a timer closes the socket (and cancels the
// resolve) when it runs out. Its handler holds only the shared state, which says whether it may
// still touch them.
asio::awaitable<std::error_code> tcp_bridge::connect() {
  const auto ex = ws_.get_executor();
  tcp::resolver resolver(ex);
  struct state {
    bool done = false, expired = false;
  };
  auto s = std::make_shared<state>();
  timer limit(ex);
  limit.expires_after(o_.connect_timeout);
  limit.async_wait([s, &resolver, this](std::error_code ec) {
    if (ec || s->done) return;
    s->expired = true;
    resolver.cancel();
    close_upstream();
  });
  std::error_code ec;
  const auto endpoints = co_await resolver.async_resolve(o_.tcp_host, o_.tcp_port, use_ec(ec));
  if (!ec && endpoints.empty()) ec = asio::error::host_not_found;
  if (!ec) co_await asio::async_connect(upstream_, endpoints, use_ec(ec));
  s->done = true;
  limit.cancel();
  if (s->expired) ec = std::make_error_code(std::errc::timed_out);
  if (!ec) upstream_.set_option(tcp::no_delay(true), ec);  // an interactive protocol (SSH) wants its bytes out now
  co_return ec;
}

// Our close frame, once: the first reason to close is the one the client hears.
asio::awaitable<void> tcp_bridge::close_client(std::uint16_t code, std::string reason) {
  if (closing_) co_return;
  closing_ = true;
  if (reason.size() > 123) reason.resize(123);
  if (tracing_frames()) trace_close_sent(ws_, code, reason, prefix_);
  std::error_code ignored;
  co_await ws_.close(code, reason, ignored);
}

// The client's messages to the server behind, byte for byte (a text message's UTF-8 too).
asio::awaitable<void> tcp_bridge::client_to_upstream() {
  std::error_code ec, write_ec;
  while (!write_ec) {
    auto in = co_await ws_.read_message(ec);
    if (ec) break;
    do {
      const auto chunk = co_await in.read_chunk(ec);
      if (ec) break;
      co_await asio::async_write(upstream_, chunk, use_ec(write_ec));
      if (write_ec) break;
      to_upstream_ += chunk.size();
    } while (!in.done());
    if (ec) break;
    if (tracing_frames() && !write_ec) trace_message('<', in.type(), in.bytes_read(), prefix_);
  }
  if (write_ec && !client_gone_) {
    // The server behind went away while the client was talking: the client hears why.
    diagnostics::info(fmt::format("{}{}:{}: {}", prefix_, o_.tcp_host, o_.tcp_port, write_ec.message()));
    co_await close_client(close_code::bad_gateway, "the server behind: " + write_ec.message());
  }
  if (tracing_frames()) trace_failure_close(ws_, ec, prefix_);
  client_gone_ = true;
  // The server behind gets its EOF after the last of the client's bytes.
  std::error_code ignored;
  upstream_.shutdown(tcp::socket::shutdown_send, ignored);
}

// What the server behind sends, a binary message per read. Once the client is gone, it is read and
// dropped until the server behind closes (or run() stops waiting). The buffer of a read is taken
// once the socket is readable and given back once its message is sent: a connection that waits
// holds none (--chunk, 64K by default, for each of thousands of idle connections would add up).
asio::awaitable<void> tcp_bridge::upstream_to_client() {
  const auto size = static_cast<std::size_t>(o_.chunk);
  std::error_code ec;
  upstream_.non_blocking(true, ec);  // a read after a readiness that went away says so, it does not block
  bool sending = true;
  while (!ec) {
    co_await upstream_.async_wait(tcp::socket::wait_read, use_ec(ec));
    if (ec) break;
    const auto buffer = std::make_unique_for_overwrite<char[]>(size);
    const auto n = upstream_.read_some(asio::buffer(buffer.get(), size), ec);
    if (ec == asio::error::would_block) {
      ec.clear();
      continue;
    }
    if (ec) break;
    if (!sending || client_gone_) continue;
    std::error_code write_ec;
    co_await ws_.write_message(message_type::binary, asio::buffer(buffer.get(), n), write_ec);
    if (write_ec) {
      sending = false;  // the client is gone or going: the rest is dropped
      continue;
    }
    to_client_ += n;
    if (tracing_frames()) trace_message('>', message_type::binary, n, prefix_);
  }
  upstream_done_ = true;
  if (sending && !client_gone_) {
    if (ec == asio::error::eof) {
      co_await close_client(close_code::normal, {});
    } else if (ec != asio::error::operation_aborted) {
      diagnostics::info(fmt::format("{}{}:{}: {}", prefix_, o_.tcp_host, o_.tcp_port, ec.message()));
      co_await close_client(close_code::bad_gateway, "the server behind: " + ec.message());
    }
  }
}

asio::awaitable<void> tcp_bridge::run() {
  const auto started = clock::now();
  if (const auto ec = co_await connect()) {
    diagnostics::info(fmt::format("{}cannot connect to {}:{}: {}", prefix_, o_.tcp_host, o_.tcp_port, ec.message()));
    co_await close_client(close_code::bad_gateway, "cannot connect to the server behind: " + ec.message());
    co_return;
  }
  std::error_code ignored;
  diagnostics::debug(fmt::format("{}connected to {}:{} ({}) in {}", prefix_, o_.tcp_host, o_.tcp_port,
                                 format_endpoint(upstream_.remote_endpoint(ignored)),
                                 format_duration(clock::now() - started)));
  running_ = 2;
  const auto done = counted_out(
      running_, [this] { notify(); }, prefix_);
  const auto ex = ws_.get_executor();
  asio::co_spawn(ex, upstream_to_client(), done);
  asio::co_spawn(ex, client_to_upstream(), done);
  while (running_ > 0 && !client_gone_ && !upstream_done_) co_await wait_until(clock::time_point::max());
  if (client_gone_ && !upstream_done_ && !interrupted_) {
    // Our FIN went after the client's last bytes; the server behind has the close timeout to close too.
    upstream_.shutdown(tcp::socket::shutdown_send, ignored);
    const auto deadline = clock::now() + o_.server.listener.connection.close_timeout;
    while (!upstream_done_ && clock::now() < deadline) co_await wait_until(deadline);
  }
  close_upstream();  // ends both pumps: a read or write of the socket fails at once
  while (running_ > 0) co_await wait_until(clock::time_point::max());
  diagnostics::debug(
      fmt::format("{}{} bytes to {}:{}, {} bytes back", prefix_, to_upstream_, o_.tcp_host, o_.tcp_port, to_client_));
}

asio::awaitable<void> tcp_session(websocket& ws, session_context& session, const serve_options& o) {
  tcp_bridge bridge(ws, o, session_prefix(session));
  session.on_shutdown = [&bridge] { bridge.stop(); };
  co_await bridge.run();
  session.on_shutdown = nullptr;
}

}  // namespace

int run_serve_tcp(serve_options& o) {
  return run_server("serve", o.server,
                    [&o](websocket& ws, session_context& session) { return tcp_session(ws, session, o); });
}

}  // namespace wsl::cli
