// wsl pipe URL --tcp-listen [HOST:]PORT: each TCP connection accepted there gets a WebSocket
// connection of its own to URL, and tcp_relay.hpp joins the two (websocat's tcp-l:). A program
// that speaks TCP (a database client, a VNC viewer) reaches a server behind a WebSocket gateway
// (`wsl serve --tcp`, websockify) through 127.0.0.1. --unix-listen PATH does the same from a
// Unix-domain socket (websocat's unix-l:), for programs that talk to a socket file (docker's
// DOCKER_HOST=unix://...). Runs until SIGINT or SIGTERM, which close every WebSocket with 1001
// and every local connection.
// pipe_modes.hpp first: it brings Asio's config.hpp in before any standard header (see
// serve_command.cpp).
#include "pipe_modes.hpp"

#include "frame_trace.hpp"
#include "tcp_relay.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/generic/stream_protocol.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>

#include <sys/socket.h>

#include <csignal>
#include <list>
#include <optional>

namespace wsl::cli {
namespace {

using asio::ip::tcp;
using local_socket = asio::local::stream_protocol::socket;
using generic_socket = asio::generic::stream_protocol::socket;

inline auto use_ec(std::error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

class tcp_listen_session {
 public:
  tcp_listen_session(const pipe_options& o, asio::io_context& ctx)
      : o_(o), ctx_(ctx), acceptor_(ctx), unix_acceptor_(ctx), wake_(ctx) {}
  ~tcp_listen_session() { remove_unix_socket_file(socket_file_); }
  tcp_listen_session(const tcp_listen_session&) = delete;
  tcp_listen_session& operator=(const tcp_listen_session&) = delete;

  // False, with the line said, when the address cannot be listened on.
  bool listen(const tcp::endpoint& where) {
    std::error_code ec;
    acceptor_.open(where.protocol(), ec);
    if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor_.bind(where, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      diagnostics::fatal(fmt::format("--tcp-listen {}: {}", format_endpoint(where), ec.message()));
      return false;
    }
    // Always, as the servers' listening line: a script reads the port of --tcp-listen 0 there.
    fmt::print(stderr, "listening on tcp://{}\n", format_endpoint(acceptor_.local_endpoint(ec)));
    return true;
  }

  // --unix-listen: a stale socket file is replaced, as the servers' --unix-socket does; `mode`
  // (--unix-mode, 0: the umask's) is set before it listens; the file is removed at the end.
  bool listen(const asio::local::stream_protocol::endpoint& where, const std::string& name, unsigned mode) {
    if (auto ec = listen_unix(unix_acceptor_, where, mode, asio::socket_base::max_listen_connections, socket_file_)) {
      diagnostics::fatal(fmt::format("--unix-listen {}: {}", name, ec.message()));
      return false;
    }
    fmt::print(stderr, "listening on unix:{}\n", name);
    return true;
  }

  asio::awaitable<void> run();
  void interrupt(int signal_number);
  int exit_status() const noexcept { return signal_ == 0 ? exit_ok : exit_status_for_signal(signal_); }

 private:
  struct connection {
    websocket ws;
    tcp_relay* relay = nullptr;  // once it runs
  };
  asio::awaitable<void> serve(generic_socket socket, std::string from, std::uint64_t id);
  // The next connection, and who it is from; false with ec when accepting failed.
  asio::awaitable<bool> accept(generic_socket& socket, std::string& from, std::error_code& ec);
  void notify() noexcept {
    try {
      wake_.cancel();
    } catch (...) {
    }
  }

  const pipe_options& o_;
  asio::io_context& ctx_;
  tcp::acceptor acceptor_;
  asio::local::stream_protocol::acceptor unix_acceptor_;  // open instead with --unix-listen
  std::optional<unix_socket_file> socket_file_;
  timer wake_;  // cancel() wakes run() as the connections end
  std::list<connection> connections_;
  int signal_ = 0;
};

asio::awaitable<bool> tcp_listen_session::accept(generic_socket& socket, std::string& from, std::error_code& ec) {
  std::error_code ignored;
  if (unix_acceptor_.is_open()) {
    local_socket s(ctx_);
    co_await unix_acceptor_.async_accept(s, use_ec(ec));
    if (ec) co_return false;
    ucred cred{};
    socklen_t size = sizeof cred;
    std::optional<peer_credentials> peer;
    if (::getsockopt(s.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &size) == 0 && size == sizeof cred)
      peer = peer_credentials{cred.pid, cred.uid, cred.gid};
    from = peer ? format_peer(tcp::endpoint(), peer) : std::string("unix:?");
    socket = generic_socket(std::move(s));
    co_return true;
  }
  tcp::socket s(ctx_);
  co_await acceptor_.async_accept(s, use_ec(ec));
  if (ec) co_return false;
  s.set_option(tcp::no_delay(true), ignored);  // an interactive protocol (SSH) wants its bytes out now
  from = format_endpoint(s.remote_endpoint(ignored));
  socket = generic_socket(std::move(s));
  co_return true;
}

asio::awaitable<void> tcp_listen_session::run() {
  std::uint64_t next_id = 0;
  std::error_code ec;
  while (signal_ == 0) {
    generic_socket socket(ctx_);
    std::string from;
    const bool accepted = co_await accept(socket, from, ec);
    if (signal_ != 0) break;
    if (!accepted) {  // out of descriptors, say: the listener stays; a pause, so as not to spin on it
      diagnostics::warning(fmt::format("accepting a connection: {}", ec.message()));
      wake_.expires_after(std::chrono::milliseconds(100));
      std::error_code ignored;
      co_await wake_.async_wait(use_ec(ignored));
      continue;
    }
    if (connections_.size() >= o_.max_connections) {
      diagnostics::warning(fmt::format("{}: refused, --max-connections {} are open", from, o_.max_connections));
      continue;  // the socket closes here
    }
    asio::co_spawn(ctx_, serve(std::move(socket), std::move(from), ++next_id), asio::detached);
  }
  while (!connections_.empty()) {
    wake_.expires_at(clock::time_point::max());
    std::error_code ignored;
    co_await wake_.async_wait(use_ec(ignored));
  }
}

asio::awaitable<void> tcp_listen_session::serve(generic_socket socket, std::string from, std::uint64_t id) {
  const auto prefix = fmt::format("[{}] ", id);
  auto& c = connections_.emplace_back(connection{websocket{}, nullptr});
  const auto me = std::prev(connections_.end());
  connect_report report;
  int status = exit_ok;
  std::error_code ec;
  c.ws = co_await connect_and_report(ctx_.get_executor(), o_.connection, report, signal_, status, ec);
  if (!ec && signal_ == 0) {
    diagnostics::info(fmt::format("{}{} connected through {}", prefix, from, format_remote(report)));
    tcp_relay_options options;
    options.chunk = static_cast<std::size_t>(o_.chunk);
    options.close_timeout = o_.connection.client.connection.close_timeout;
    options.failure_code = close_code::going_away;  // the program that connected went away
    options.name = o_.unix_listen.empty() ? "the TCP client" : "the local client";
    options.prefix = prefix;
    tcp_relay relay(c.ws, std::move(socket), options);
    c.relay = &relay;
    co_await relay.run();
    c.relay = nullptr;
    diagnostics::info(fmt::format("{}{} bytes sent, {} received; {}", prefix, relay.to_websocket(), relay.to_tcp(),
                                  describe_close(c.ws.peer_close())));
  } else if (ec) {
    diagnostics::info(fmt::format("{}{}: closed, no WebSocket connection", prefix, from));
  } else {  // connected as the signal came
    std::error_code ignored_close;
    co_await c.ws.close(close_code::going_away, "interrupted", ignored_close);
  }
  connections_.erase(me);
  notify();
}

void tcp_listen_session::interrupt(int signal_number) {
  if (signal_ != 0) return;
  signal_ = signal_number;
  std::error_code ignored;
  acceptor_.close(ignored);
  unix_acceptor_.close(ignored);
  for (auto& c : connections_) {
    if (c.relay == nullptr) continue;  // still connecting: connect_and_report() sees the signal
    c.relay->stop();
    asio::co_spawn(
        ctx_,
        [ws = &c.ws]() -> asio::awaitable<void> {
          constexpr std::string_view why = "interrupted";
          trace_close_sent(*ws, close_code::going_away, why);
          std::error_code ignored_close;
          co_await ws->close(close_code::going_away, why, ignored_close);
        },
        asio::detached);
  }
}

}  // namespace

int run_pipe_tcp(const pipe_options& o) {
  asio::io_context ctx(1);
  tcp_listen_session session(o, ctx);
  if (!o.unix_listen.empty()) {
    std::error_code bad;
    const auto where = unix_endpoint(o.unix_listen, bad);
    if (bad) {
      diagnostics::fatal(fmt::format("--unix-listen '{}': {}", o.unix_listen, bad.message()));
      return exit_usage;
    }
    unsigned mode = 0;
    if (!o.unix_mode.empty()) {
      if (auto problem = parse_unix_mode(o.unix_mode, o.unix_listen, mode)) {
        diagnostics::fatal(*problem);
        return exit_usage;
      }
    }
    if (!session.listen(where, o.unix_listen, mode)) return exit_unavailable;
  } else {
    // [ADDRESS:]PORT: a port alone listens on 127.0.0.1.
    std::string host = "127.0.0.1";
    std::uint16_t port = 0;
    const bool port_only = o.tcp_listen.find(':') == std::string::npos;
    auto problem = parse_host_port(port_only ? "127.0.0.1:" + o.tcp_listen : o.tcp_listen, host, port, 0);
    std::error_code bad_address;
    const auto address = asio::ip::make_address(problem ? std::string("?") : host, bad_address);
    if (!problem && bad_address) problem = "the address must be an IP address (an interface's)";
    if (problem && problem->starts_with("expected")) problem = "expected [ADDRESS:]PORT ([ADDRESS]:PORT for IPv6)";
    if (problem) {
      diagnostics::fatal(fmt::format("--tcp-listen '{}': {}", o.tcp_listen, *problem));
      return exit_usage;
    }
    if (!session.listen(tcp::endpoint(address, port))) return exit_unavailable;
  }
  if (!run_interruptible(ctx, session)) return exit_failure;
  return session.exit_status();
}

}  // namespace wsl::cli
