// wsl serve --tcp HOST:PORT: each connection a byte stream to a TCP server behind (websockify's job:
// a VNC server for noVNC, SSH through a WebSocket-only path, any TCP service for a browser), or
// with unix:PATH to a Unix-domain socket (websockify's --unix-target).
//
// Each connection opens its own TCP connection to HOST:PORT (resolved anew each time, within
// --connect-timeout), or is closed with 1014 (bad gateway) and the reason when it cannot; then
// tcp_relay.hpp joins the two: bytes both ways, 1000 when the server behind closes, 1014 when it
// resets.
// serve_modes.hpp first: it brings Asio's config.hpp in before any standard header (see
// serve_command.cpp).
#include "serve_modes.hpp"

#include "frame_trace.hpp"
#include "tcp_relay.hpp"

#include <asio/connect.hpp>
#include <asio/generic/stream_protocol.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>

#include <memory>

namespace wsl::cli {
namespace {

using asio::ip::tcp;
using generic_socket = asio::generic::stream_protocol::socket;

inline auto use_ec(std::error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

// Connects to --tcp's server, within --connect-timeout: a timer closes the socket (and cancels
// the resolve) when it runs out. Its handler holds only the shared state, which says whether it
// may still touch them. HOST:PORT is resolved anew each time; unix:PATH is a Unix-domain socket.
// `address`: " (127.0.0.1:5900)", what HOST resolved to; nothing for a Unix-domain socket.
// SIGINT while connecting gives up at once (session.on_shutdown).
asio::awaitable<std::error_code> connect_upstream(generic_socket& out, const serve_options& o, std::string& address,
                                                  session_context& session) {
  const auto ex = out.get_executor();
  tcp::resolver resolver(ex);
  tcp::socket socket(ex);
  asio::local::stream_protocol::socket unix_socket(ex);
  struct state {
    bool done = false, expired = false;
  };
  auto s = std::make_shared<state>();
  timer limit(ex);
  limit.expires_after(o.connect_timeout);
  limit.async_wait([s, &resolver, &socket, &unix_socket](std::error_code ec) {
    if (ec || s->done) return;
    s->expired = true;
    resolver.cancel();
    std::error_code ignored;
    socket.close(ignored);
    unix_socket.close(ignored);
  });
  session.on_shutdown = [&socket, &unix_socket] {
    std::error_code ignored;
    socket.close(ignored);
    unix_socket.close(ignored);
  };
  std::error_code ec;
  if (!o.tcp_unix.empty()) {
    const auto endpoint = unix_endpoint(o.tcp_unix, ec);  // checked when the options were
    if (!ec) co_await unix_socket.async_connect(endpoint, use_ec(ec));
  } else {
    const auto endpoints = co_await resolver.async_resolve(o.tcp_host, o.tcp_port, use_ec(ec));
    if (!ec && endpoints.empty()) ec = asio::error::host_not_found;
    if (!ec) co_await asio::async_connect(socket, endpoints, use_ec(ec));
  }
  session.on_shutdown = nullptr;
  s->done = true;
  limit.cancel();
  if (s->expired) ec = std::make_error_code(std::errc::timed_out);
  if (ec) co_return ec;
  if (o.tcp_unix.empty()) {
    std::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);  // an interactive protocol (SSH) wants its bytes out now
    address = " (" + format_endpoint(socket.remote_endpoint(ignored)) + ")";
    out = generic_socket(std::move(socket));
  } else {
    out = generic_socket(std::move(unix_socket));
  }
  co_return ec;
}

asio::awaitable<void> tcp_session(websocket& ws, session_context& session, const serve_options& o) {
  const auto prefix = session_prefix(session);
  const auto target = o.tcp_unix.empty() ? fmt::format("{}:{}", o.tcp_host, o.tcp_port) : "unix:" + o.tcp_unix;
  const auto started = clock::now();
  generic_socket upstream(ws.get_executor());
  std::string address;
  const auto ec = co_await connect_upstream(upstream, o, address, session);
  if (ec) {
    diagnostics::info(fmt::format("{}cannot connect to {}: {}", prefix, target, ec.message()));
    const auto reason = "cannot connect to the server behind: " + ec.message();
    if (tracing_frames()) trace_close_sent(ws, close_code::bad_gateway, reason, prefix);
    std::error_code ignored;
    co_await ws.close(close_code::bad_gateway, reason, ignored);
    co_return;
  }
  diagnostics::debug(
      fmt::format("{}connected to {}{} in {}", prefix, target, address, format_duration(clock::now() - started)));
  tcp_relay_options options;
  options.chunk = static_cast<std::size_t>(o.chunk);
  options.close_timeout = o.server.listener.connection.close_timeout;
  options.failure_code = close_code::bad_gateway;
  options.name = "the server behind";
  options.prefix = prefix;
  tcp_relay relay(ws, std::move(upstream), options);
  session.on_shutdown = [&relay] { relay.stop(); };
  co_await relay.run();
  session.on_shutdown = nullptr;
  diagnostics::debug(
      fmt::format("{}{} bytes to {}, {} bytes back", prefix, relay.to_tcp(), target, relay.to_websocket()));
}

}  // namespace

int run_serve_tcp(serve_options& o) {
  return run_server("serve", o.server,
                    [&o](websocket& ws, session_context& session) { return tcp_session(ws, session, o); });
}

}  // namespace wsl::cli
