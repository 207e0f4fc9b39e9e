#include "server.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>

#include <csignal>
#include <list>
#include <memory>
#include <pthread.h>
#include <sys/resource.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace wsl::cli {
namespace {

struct worker {
  asio::io_context context{1};
  std::unique_ptr<listener> server;
  std::list<websocket*> sessions;
};

asio::awaitable<void> run_session(worker& w, websocket ws, const session_handler& handler) {
  const auto peer = format_endpoint(ws.remote_endpoint());
  const auto it = w.sessions.insert(w.sessions.end(), &ws);
  diagnostics::debug(fmt::format("{} open {}", peer, ws.request().target));
  try {
    co_await handler(ws);
  } catch (const std::exception& e) {
    diagnostics::error(fmt::format("{}: {}", peer, e.what()));
  }
  // Finish the close handshake whoever started it (a shutdown's 1001, say): the peer may still be
  // sending the end of a message before its close frame. Nothing happens on a closed websocket.
  std::error_code ec;
  co_await ws.close(close_code::normal, {}, ec);
  w.sessions.erase(it);
  const auto& closed = ws.peer_close();
  diagnostics::debug(fmt::format("{} closed ({})", peer,
                                 closed.code ? fmt::format("peer sent {}", closed.code) : std::string("no close frame")));
}

asio::awaitable<void> accept_loop(worker& w, const session_handler& handler) {
  for (;;) {
    std::error_code ec;
    auto ws = co_await w.server->accept(ec);
    if (ec) break;
    asio::co_spawn(w.context, run_session(w, std::move(ws), handler), asio::detached);
  }
}

// Closes every session with 1001; the io_context ends when they are all done.
void shut_down(worker& w) {
  w.server->stop();
  for (auto* ws : w.sessions) {
    // The close operation keeps its connection alive itself; only its error code needs a home.
    auto ec = std::make_shared<std::error_code>();
    auto run = [](asio::awaitable<void> op, std::shared_ptr<std::error_code>) -> asio::awaitable<void> {
      co_await std::move(op);
    };
    asio::co_spawn(w.context, run(ws->close(close_code::going_away, "server shutting down", *ec), ec),
                   asio::detached);
  }
}

asio::ip::address resolve_host(const std::string& host, std::error_code& ec) {
  auto address = asio::ip::make_address(host, ec);
  if (!ec) return address;
  asio::io_context ctx;
  asio::ip::tcp::resolver resolver(ctx);
  const auto results = resolver.resolve(host, "", ec);
  if (ec || results.empty()) {
    if (!ec) ec = asio::error::host_not_found;
    return {};
  }
  return results.begin()->endpoint().address();
}

// Many connections need many descriptors: take the hard limit.
void raise_descriptor_limit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

}  // namespace

void add_server_options(CLI::App& app, server_options& o) {
  auto& c = o.listener.connection;
  app.add_option("--host", o.host, "Address to listen on (IPv4, IPv6 or a name)")->capture_default_str();
  app.add_option("--port", o.port, "Port to listen on; 0 picks a free one")->capture_default_str();
  app.add_option("--threads", o.threads, "Threads, each with its own SO_REUSEPORT listener")
      ->capture_default_str()
      ->check(CLI::Range(1u, 256u));
  app.add_option("--max-connections", o.max_connections, "Open connections at most (503 beyond); 0 = no limit")
      ->capture_default_str();
  add_size_option(app, "--max-message-size", c.max_message_size,
                  "Largest message accepted (1009 beyond); 0 = no limit");
  add_duration_option(app, "--ping-interval", c.ping_interval, "Ping each connection this often; 0 = never");
  add_duration_option(app, "--idle-timeout", c.idle_timeout,
                      "Drop a connection from which nothing arrives for this long; 0 = never");
  add_duration_option(app, "--close-timeout", c.close_timeout, "Wait this long for the peer's close frame");
  add_size_option(app, "--max-handshake-size", o.listener.max_handshake_size,
                  "Largest HTTP request head (431 beyond)");
  add_duration_option(app, "--handshake-timeout", o.listener.handshake_timeout,
                      "Time allowed for the HTTP negotiation");
  add_verbosity_options(app, o.verbosity, o.quiet);
}

int run_server(const std::string& command, const server_options& given, session_handler handler) {
  auto o = given;
  diagnostics::configure("wsl " + command, o.verbosity, o.quiet);
  if (o.listener.connection.ping_interval.count() > 0 && o.listener.connection.idle_timeout.count() > 0 &&
      o.listener.connection.ping_interval >= o.listener.connection.idle_timeout) {
    diagnostics::fatal("--ping-interval must be shorter than --idle-timeout");
    return exit_usage;
  }
  if (o.listener.connection.ping_interval.count() == 0) o.listener.connection.ping = ping_mode::none;
  raise_descriptor_limit();

  std::error_code ec;
  const auto address = resolve_host(o.host, ec);
  if (ec) {
    diagnostics::fatal(fmt::format("cannot resolve --host {}: {}", o.host, ec.message()));
    return exit_unavailable;
  }

  // Signals are taken by one thread with sigwait(); workers never see them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  o.listener.log = diagnostics::library_log();
  o.listener.reuse_port = o.threads > 1;
  asio::ip::tcp::endpoint endpoint(address, o.port);
  if (o.listener.reuse_port) {
    // SO_REUSEPORT lets any process of this user join a port. Claim it alone first, so that a port
    // in use is an error here too, then let the listeners share it.
    asio::io_context probe_context;
    asio::ip::tcp::acceptor probe(probe_context);
    probe.open(endpoint.protocol(), ec);
    if (!ec) probe.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) probe.bind(endpoint, ec);
    if (!ec) endpoint = probe.local_endpoint(ec);
    if (ec) {
      diagnostics::fatal(fmt::format("cannot listen on {}: {}", format_endpoint(endpoint), ec.message()));
      return exit_unavailable;
    }
  }
  o.listener.budget = std::make_shared<connection_budget>(o.max_connections);
  std::vector<std::unique_ptr<worker>> workers;
  for (unsigned i = 0; i < o.threads; ++i) {
    auto w = std::make_unique<worker>();
    w->server = std::make_unique<listener>(w->context.get_executor(), o.listener);
    if (auto e = w->server->start(endpoint)) {
      diagnostics::fatal(fmt::format("cannot listen on {}: {}", format_endpoint(endpoint), e.message()));
      return e == error::invalid_option ? exit_usage : exit_unavailable;
    }
    endpoint = w->server->local_endpoint();  // the others bind the port the first one got
    asio::co_spawn(w->context, accept_loop(*w, handler), asio::detached);
    workers.push_back(std::move(w));
  }
  const auto url_host =
      endpoint.address().is_v6() ? "[" + endpoint.address().to_string() + "]" : endpoint.address().to_string();
  fmt::print(stderr, "listening on ws://{}:{}/\n", url_host, endpoint.port());
  std::fflush(stderr);

  std::vector<std::thread> threads;
  for (auto& w : workers) threads.emplace_back([&ctx = w->context] { ctx.run(); });

  std::atomic<int> status{exit_ok};
  std::thread([&] {
    int received = 0;
    for (int count = 0;; ++count) {
      if (sigwait(&signals, &received) != 0) continue;
      if (count > 0) _exit(exit_interrupted);  // a second signal: leave at once
      status = received == SIGTERM ? 128 + SIGTERM : exit_interrupted;
      diagnostics::info("shutting down: closing connections with 1001");
      for (auto& w : workers) asio::post(w->context, [&w = *w] { shut_down(w); });
    }
  }).detach();

  for (auto& t : threads) t.join();
  return status;
}

}  // namespace wsl::cli
