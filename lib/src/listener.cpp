#include "wsl/listener.hpp"

#include "connection.hpp"
#include "handshake.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/error.hpp>
#include <asio/ip/v6_only.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>
#include <deque>
#include <list>

namespace wsl {
namespace detail {

struct listener_state : std::enable_shared_from_this<listener_state> {
  listener_state(asio::any_io_executor ex, listener_options o)
      : executor(ex), opts(std::move(o)), acceptor(ex), unix_acceptor(ex), wake(ex) {
    wake.expires_at(clock::time_point::max());
    budget = opts.budget ? opts.budget
                         : std::make_shared<connection_budget>(opts.max_connections, opts.max_connections_per_address);
  }

  asio::any_io_executor executor;
  listener_options opts;
  asio::ip::tcp::acceptor acceptor;
  asio::local::stream_protocol::acceptor unix_acceptor;  // open instead of acceptor on a Unix-domain socket
  std::string unix_path;                                 // its path ("@name" in the abstract namespace)
  // The socket file this listener created, removed by stop() if it is still the same file.
  std::optional<unix_socket_file> socket_file;
  std::shared_ptr<connection_budget> budget;
  std::deque<websocket> ready;
  // A negotiation running: stop() ends it, and a connection kept alive gives its place up.
  struct negotiation final : handshake_control {
    negotiation(listener_state& s, const asio::ip::address& a) : state(s), peer(a) {}
    listener_state& state;
    asio::ip::address peer;                    // its host's negotiation slot is taken; unspecified: no slot to take
    clock::time_point started = clock::now();  // of the request under way (its record's duration)
    bool holds_address_slot = true;
    bool idle = false;
    clock::time_point idle_since{};

    // Each plain request answered on a connection kept alive is reported as it is answered; the
    // next one's time counts from then.
    void answered(const handshake_report& report) override {
      const auto now = clock::now();
      state.record(report, make_error_code(error::not_upgrade), now - started);
      started = now;
    }
    // While it waits for a next request, a connection kept alive holds no slot of its host's:
    // a browser's idle connections do not keep its next one out.
    void waiting() override {
      idle = true;
      idle_since = clock::now();
      ++state.idle;
      if (holds_address_slot) state.budget->end_negotiation(peer);
      holds_address_slot = false;
      state.notify();  // the accept loop may wait for a place this connection can give up
    }
    bool resumed() override {
      if (!idle) return false;  // given up already (the stream is closed)
      idle = false;
      --state.idle;
      started = clock::now();  // the request's time counts from its first bytes, not the wait before
      holds_address_slot = state.budget->try_begin_negotiation(peer);
      return holds_address_slot;
    }
  };
  std::list<negotiation> in_progress;
  std::size_t negotiating = 0;
  std::size_t idle = 0;  // of those negotiating: connections kept alive that wait for a next request
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
  // Room once the connections kept alive that wait for a next request are closed (nginx's
  // reusable connections): a new connection may take an idle one's place.
  bool has_room_by_closing_idle() const noexcept {
    const auto busy = negotiating - idle;
    return idle > 0 && busy < opts.max_pending_handshakes && busy + ready.size() < opts.accept_queue_size;
  }

  // Closes the connection that has waited longest for a next request.
  void close_longest_idle() {
    negotiation* oldest = nullptr;
    for (auto& c : in_progress)
      if (c.idle && (!oldest || c.idle_since < oldest->idle_since)) oldest = &c;
    if (!oldest) return;
    oldest->idle = false;
    --idle;
    log(log_level::debug, "closing a connection kept alive to make room for a new one");
    auto close = oldest->close_idle;  // it clears itself when the negotiation ends
    close();
  }

  // Once its acceptor is open, by whichever start(): accepting runs in the background.
  void begin(std::shared_ptr<listener_state> self) {
    running = true;
    asio::co_spawn(executor, accept_loop(std::move(self)), asio::detached);
  }

  static asio::awaitable<void> accept_loop(std::shared_ptr<listener_state> self) {
    while (!self->stopped) {
      while (!self->stopped && !self->has_room() && !self->has_room_by_closing_idle()) co_await self->wait();
      if (self->stopped) break;
      std::error_code ec;
      std::unique_ptr<transport> stream;
      if (self->unix_acceptor.is_open()) {
        auto socket = co_await self->unix_acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
        if (!ec && !self->stopped) stream = make_unix_transport(std::move(socket));
      } else {
        auto socket = co_await self->acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
        if (!ec && !self->stopped) stream = make_tcp_transport(std::move(socket));
      }
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
      // One host may not hold more negotiation slots than its share of connections: beyond it
      // the connection is closed before anything is read (a client whose open websockets fill its
      // share, but that negotiates no more than that, is answered 429 instead).
      // A trusted proxy's connections, or a load balancer's with PROXY headers, all come from it:
      // they are bounded by the total only.
      const auto peer = stream->remote_endpoint().address();
      const bool counted = !self->opts.proxy_protocol && !trusted_proxy(self->opts.trusted_proxies, peer);
      if (counted && !self->budget->try_begin_negotiation(peer)) {
        self->refuse_at_accept(*stream);
        continue;
      }
      if (!self->has_room()) self->close_longest_idle();
      ++self->negotiating;
      asio::co_spawn(self->executor, negotiate(self, std::move(stream), counted ? peer : asio::ip::address()),
                     asio::detached);
    }
    self->running = false;
  }

  void refuse_at_accept(transport& stream) {
    negotiation_record record;
    record.remote = stream.remote_endpoint();
    record.client_address = record.remote.address();
    record.error = make_error_code(error::too_many_handshakes_from_address);
    stream.close();
    log(log_level::info, fmt::format("{}: {}", format_endpoint(record.remote), record.error.message()));
    if (opts.on_negotiation) {
      try {
        opts.on_negotiation(record);
      } catch (...) {
      }
    }
  }

  static std::string format_endpoint(const asio::ip::tcp::endpoint& remote) {
    return remote.address().is_v6() ? fmt::format("[{}]:{}", remote.address().to_string(), remote.port())
                                    : fmt::format("{}:{}", remote.address().to_string(), remote.port());
  }

  // A negotiation's end, or one of the plain requests a connection kept alive made before it: to
  // options.on_negotiation, and the log when it failed.
  void record(const handshake_report& report, std::error_code ec, clock::duration took) {
    if (opts.on_negotiation) {
      try {
        opts.on_negotiation(negotiation_record{report.remote, report.client_address, report.method, report.target,
                                               report.status, report.bytes_sent, took, ec, report.unix_peer,
                                               report.connection_id});
      } catch (...) {
      }
    }
    if (!ec) return;
    const auto peer = report.unix_peer ? fmt::format("unix:pid={},uid={}", report.unix_peer->pid, report.unix_peer->uid)
                                       : format_endpoint(report.remote);
    // A peer that leaves before its request is complete is no fault of either side: a load
    // balancer's or a script's check that something listens (wsl's own, on a Unix socket it is
    // about to take over, is one).
    const bool left_early = ec == asio::error::eof && report.status == 0;
    const auto level =
        ec == error::not_upgrade || ec == error::listener_stopped || left_early ? log_level::info : log_level::warning;
    if (report.status != 0 && !report.method.empty())
      log(level, fmt::format("{} {} {}: {} ({})", peer, report.method, report.target, report.status, ec.message()));
    else if (report.status != 0)
      log(level, fmt::format("{}: {} ({})", peer, report.status, ec.message()));
    else
      log(level, fmt::format("{}: handshake failed: {}", peer, ec.message()));
  }

  static asio::awaitable<void> negotiate(std::shared_ptr<listener_state> self, std::unique_ptr<transport> stream,
                                         asio::ip::address peer) {
    std::error_code ec;
    handshake_report report;
    self->in_progress.emplace_front(*self, peer);
    const auto control = self->in_progress.begin();
    auto ws = co_await server_handshake(std::move(stream), self->opts, self->budget, report, ec, *control);
    if (control->idle) --self->idle;
    if (control->holds_address_slot) self->budget->end_negotiation(peer);
    const auto started = control->started;
    self->in_progress.erase(control);
    --self->negotiating;
    if (!report.idle_end) self->record(report, ec, clock::now() - started);
    if (!ec && self->stopped)
      ws.abort();
    else if (!ec)
      self->ready.push_back(std::move(ws));
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
  if (!ec && s.opts.ipv6_only && endpoint.address().is_v6()) s.acceptor.set_option(asio::ip::v6_only(true), ec);
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
  s.begin(state_);
  return {};
}

namespace {

// A negotiated websocket the listener stopped before anyone accepted it: closed with 1001 (the
// close handshake, bounded by close_timeout).
asio::awaitable<void> close_unaccepted(websocket ws) {
  std::error_code ignored;
  co_await ws.close(close_code::going_away, "server shutting down", ignored);
}

// A Unix-domain socket's name as unix_endpoint() takes it: "@name" for the abstract namespace.
std::string unix_name(const asio::local::stream_protocol::endpoint& endpoint) {
  std::string name = endpoint.path();
  if (!name.empty() && name[0] == '\0') name[0] = '@';
  return name;
}

}  // namespace

std::error_code listener::start(const asio::local::stream_protocol::endpoint& endpoint) {
  auto& s = *state_;
  if (auto ec = s.opts.validate()) return ec;
  if (s.running || s.stopped) return make_error_code(error::invalid_option);
  const std::string path = endpoint.path();
  const bool abstract = !path.empty() && path[0] == '\0';
  if (path.empty() || (abstract && path.size() == 1)) return make_error_code(error::invalid_option);
  if (auto ec = listen_unix(s.unix_acceptor, endpoint, s.opts.unix_mode, s.opts.backlog, s.socket_file)) return ec;
  s.unix_path = unix_name(endpoint);
  s.begin(state_);
  return {};
}

std::error_code listener::adopt(int fd) {
  auto& s = *state_;
  if (auto ec = s.opts.validate()) return ec;
  if (s.running || s.stopped) return make_error_code(error::invalid_option);
  int type = 0, listening = 0;
  socklen_t size = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &size) != 0) return {errno, std::system_category()};
  size = sizeof listening;
  if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) != 0) return {errno, std::system_category()};
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) return {errno, std::system_category()};
  if (type != SOCK_STREAM || !listening) return make_error_code(error::invalid_option);
  // Its children (a command wsl serve runs) must not hold the socket open.
  if (::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) return {errno, std::system_category()};
  std::error_code ec;
  if (address.ss_family == AF_UNIX) {
    s.unix_acceptor.assign(asio::local::stream_protocol(), fd, ec);
    if (!ec) s.unix_path = unix_name(s.unix_acceptor.local_endpoint(ec));
  } else if (address.ss_family == AF_INET || address.ss_family == AF_INET6) {
    s.acceptor.assign(address.ss_family == AF_INET ? asio::ip::tcp::v4() : asio::ip::tcp::v6(), fd, ec);
    if (!ec) s.endpoint = s.acceptor.local_endpoint(ec);
  } else {
    return make_error_code(error::invalid_option);
  }
  if (ec) {
    // Not ours to close unless it was taken.
    if (s.unix_acceptor.is_open()) s.unix_acceptor.release(ec);
    if (s.acceptor.is_open()) s.acceptor.release(ec);
    return make_error_code(error::invalid_option);
  }
  s.begin(state_);
  return {};
}

std::error_code listener::start(const listener& other) {
  auto& s = *state_;
  auto& o = *other.state_;  // native_handle() is not const
  if (auto ec = s.opts.validate()) return ec;
  if (s.running || s.stopped || !o.running || o.stopped) return make_error_code(error::invalid_option);
  const bool is_unix = o.unix_acceptor.is_open();
  const int fd = ::fcntl(is_unix ? o.unix_acceptor.native_handle() : o.acceptor.native_handle(), F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return {errno, std::system_category()};
  std::error_code ec;
  if (is_unix)
    s.unix_acceptor.assign(asio::local::stream_protocol(), fd, ec);
  else
    s.acceptor.assign(o.endpoint.protocol(), fd, ec);
  if (ec) {
    ::close(fd);
    return ec;
  }
  s.endpoint = o.endpoint;
  s.unix_path = o.unix_path;
  s.begin(state_);
  return {};
}

void listener::stop() noexcept {
  auto& s = *state_;
  if (s.stopped) return;
  s.stopped = true;
  std::error_code ignored;
  s.acceptor.close(ignored);
  s.unix_acceptor.close(ignored);
  remove_unix_socket_file(s.socket_file);
  // Their clients saw the 101: each gets a close frame, not a dropped connection.
  for (auto& ws : s.ready) {
    try {
      asio::co_spawn(s.executor, close_unaccepted(std::move(ws)), asio::detached);
    } catch (...) {  // no memory for it: dropped after all
    }
  }
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

const std::string& listener::unix_path() const noexcept { return state_->unix_path; }

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
  detail::handshake_control control;  // no listener to tell: the hooks do nothing
  auto ws = co_await detail::server_handshake(std::move(stream), options, options.budget, report, ec, control);
  if (!ec) ws.impl()->start();
  co_return ws;
}

}  // namespace wsl
