#include "wsl/listener.hpp"

#include "connection.hpp"
#include "handshake.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>

#include <fmt/format.h>

#include <deque>
#include <list>

namespace wsl {
namespace detail {

struct listener_state : std::enable_shared_from_this<listener_state> {
  listener_state(asio::any_io_executor ex, listener_options o)
      : executor(ex), opts(std::move(o)), acceptor(ex), wake(ex) {
    wake.expires_at(clock::time_point::max());
    budget = opts.budget ? opts.budget : std::make_shared<connection_budget>(opts.max_connections);
  }

  asio::any_io_executor executor;
  listener_options opts;
  asio::ip::tcp::acceptor acceptor;
  std::shared_ptr<connection_budget> budget;
  std::deque<websocket> ready;
  std::list<handshake_control> in_progress;  // negotiations running, which stop() ends
  std::size_t negotiating = 0;
  std::size_t waiters = 0;
  bool running = false;
  bool stopped = false;
  asio::ip::tcp::endpoint endpoint;
  timer wake;  // never expires; cancel() wakes every waiter

  void notify() noexcept {
    if (waiters == 0) return;
    try {
      wake.cancel();
    } catch (...) {
    }
  }

  asio::awaitable<void> wait() {
    ++waiters;
    std::error_code ignored;
    co_await wake.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    --waiters;
  }

  void log(log_level level, std::string_view text) const {
    if (opts.log) opts.log(level, text);
  }

  bool has_room() const noexcept {
    return negotiating < opts.max_pending_handshakes && negotiating + ready.size() < opts.accept_queue_size;
  }

  static asio::awaitable<void> accept_loop(std::shared_ptr<listener_state> self) {
    while (!self->stopped) {
      while (!self->stopped && !self->has_room()) co_await self->wait();
      if (self->stopped) break;
      std::error_code ec;
      auto socket = co_await self->acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (self->stopped) break;
      if (ec) {
        self->log(log_level::warning, fmt::format("accept: {}", ec.message()));
        if (ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space || ec == asio::error::no_memory) {
          // Out of file descriptors: back off rather than spin; connections wait in the backlog.
          timer pause(self->executor);
          pause.expires_after(std::chrono::milliseconds(100));
          co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
        continue;
      }
      ++self->negotiating;
      asio::co_spawn(self->executor, negotiate(self, std::move(socket)), asio::detached);
    }
    self->running = false;
  }

  static asio::awaitable<void> negotiate(std::shared_ptr<listener_state> self, asio::ip::tcp::socket socket) {
    std::error_code ec;
    handshake_report report;
    const auto started = clock::now();
    self->in_progress.emplace_front();
    const auto control = self->in_progress.begin();
    auto ws = co_await server_handshake(make_tcp_transport(std::move(socket)), self->opts, self->budget, report, ec,
                                        &*control);
    self->in_progress.erase(control);
    --self->negotiating;
    if (self->opts.on_negotiation) {
      try {
        self->opts.on_negotiation(negotiation_record{report.remote, report.method, report.target, report.status,
                                                     report.bytes_sent, clock::now() - started, ec});
      } catch (...) {
      }
    }
    if (ec) {
      const auto peer = report.remote.address().is_v6()
                            ? fmt::format("[{}]:{}", report.remote.address().to_string(), report.remote.port())
                            : fmt::format("{}:{}", report.remote.address().to_string(), report.remote.port());
      const auto level =
          ec == error::not_upgrade || ec == error::listener_stopped ? log_level::info : log_level::warning;
      if (report.status != 0 && !report.method.empty())
        self->log(level,
                  fmt::format("{} {} {}: {} ({})", peer, report.method, report.target, report.status, ec.message()));
      else if (report.status != 0)
        self->log(level, fmt::format("{}: {} ({})", peer, report.status, ec.message()));
      else
        self->log(level, fmt::format("{}: handshake failed: {}", peer, ec.message()));
    } else if (self->stopped) {
      ws.abort();
    } else {
      self->ready.push_back(std::move(ws));
    }
    self->notify();
  }
};

}  // namespace detail

listener::listener(asio::any_io_executor executor, listener_options options)
    : state_(std::make_shared<detail::listener_state>(executor, std::move(options))) {}

listener::~listener() { stop(); }

std::error_code listener::start(const asio::ip::tcp::endpoint& endpoint) {
  auto& s = *state_;
  if (auto ec = s.opts.validate()) return ec;
  if (s.running || s.stopped) return make_error_code(error::invalid_option);
  std::error_code ec;
  s.acceptor.open(endpoint.protocol(), ec);
  if (!ec) s.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec && s.opts.reuse_port) {
    s.acceptor.set_option(asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>(true), ec);
  }
  if (!ec) s.acceptor.bind(endpoint, ec);
  if (!ec) s.acceptor.listen(s.opts.backlog, ec);
  if (!ec) s.endpoint = s.acceptor.local_endpoint(ec);
  if (ec) {
    std::error_code ignored;
    s.acceptor.close(ignored);
    return ec;
  }
  s.running = true;
  asio::co_spawn(s.executor, detail::listener_state::accept_loop(state_), asio::detached);
  return {};
}

void listener::stop() noexcept {
  auto& s = *state_;
  if (s.stopped) return;
  s.stopped = true;
  std::error_code ignored;
  s.acceptor.close(ignored);
  s.ready.clear();
  // A client that connected but never finished its request (a browser's spare connection, say)
  // would otherwise hold its negotiation, and whoever waits for the listener's connections to end,
  // until handshake_timeout.
  for (auto& negotiation : s.in_progress)
    if (negotiation.abort) negotiation.abort();
  s.notify();
}

bool listener::is_running() const noexcept { return state_->running && !state_->stopped; }

asio::ip::tcp::endpoint listener::local_endpoint() const noexcept { return state_->endpoint; }

asio::awaitable<websocket> listener::accept(std::error_code& ec) {
  ec = {};
  auto s = state_;
  while (s->ready.empty()) {
    if (s->stopped || !s->running) {
      ec = error::listener_stopped;
      co_return websocket{};
    }
    co_await s->wait();
  }
  websocket ws = std::move(s->ready.front());
  s->ready.pop_front();
  s->notify();
  ws.impl()->start();
  co_return ws;
}

asio::awaitable<websocket> listener::accept() {
  std::error_code ec;
  auto ws = co_await accept(ec);
  if (ec) throw std::system_error(ec);
  co_return ws;
}

std::size_t listener::connection_count() const noexcept { return state_->budget->count(); }

const listener_options& listener::options() const noexcept { return state_->opts; }

asio::awaitable<websocket> accept_websocket(std::unique_ptr<transport> stream, const listener_options& options,
                                            std::error_code& ec) {
  if (auto e = options.validate()) {
    ec = e;
    co_return websocket{};
  }
  detail::handshake_report report;
  auto ws = co_await detail::server_handshake(std::move(stream), options, options.budget, report, ec, nullptr);
  if (!ec) ws.impl()->start();
  co_return ws;
}

}  // namespace wsl
