#include "server.hpp"

#include "frame_trace.hpp"
#include "metrics.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ip/v6_only.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>

#include <fcntl.h>
#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace wsl::cli {
namespace {

struct worker {
  // One thread runs it and owns its sockets, timers and child-process pipes; other threads only
  // post to it (signals, serve --pipe's stdin reader), which keeps the scheduler's lock: the
  // reactor's per-socket locks can go.
  asio::io_context context{ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  std::vector<std::unique_ptr<listener>> servers;  // one per socket listened on, in the same order on every thread
  struct session {
    websocket* ws;
    session_context* context;
  };
  std::list<session> sessions;
  bool shutting_down = false;
  // --metrics: this thread's figures, published once a second by publish_metrics() from the
  // connections ended (their totals kept here) and those open.
  server_metrics* metrics = nullptr;
  server_metrics::thread_figures* figures = nullptr;
  std::uint64_t ended_bytes_received = 0;
  std::uint64_t ended_bytes_sent = 0;
  std::unique_ptr<timer> publish_timer;      // destroyed before the context
  std::unique_ptr<listener> metrics_server;  // --metrics-listen, on the first thread
  bool listening = true;                     // until stop_listening()
};

// The figures of this thread's connections, for the next scrape: the byte totals only grow (a
// connection's bytes move from the open ones to the ended ones, never dropping).
void publish(worker& w) {
  auto received = w.ended_bytes_received, sent = w.ended_bytes_sent;
  std::vector<double> round_trips;
  for (const auto& s : w.sessions) {
    received += s.ws->bytes_received();
    sent += s.ws->bytes_sent();
    if (const auto l = s.ws->latency(); l.samples != 0)
      round_trips.push_back(std::chrono::duration<double>(l.smoothed).count());
  }
  w.figures->bytes_received.store(received, std::memory_order_relaxed);
  w.figures->bytes_sent.store(sent, std::memory_order_relaxed);
  std::lock_guard lock(w.figures->mutex);
  w.figures->round_trips.swap(round_trips);
}

asio::awaitable<void> publish_metrics(worker& w) {
  while (w.listening) {
    publish(w);
    w.publish_timer->expires_after(std::chrono::seconds(1));
    std::error_code ec;
    co_await w.publish_timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) break;  // stop_listening(): nobody can ask any more
  }
}

// Stops accepting, and with it the metrics (no request can come for them).
void stop_listening(worker& w) {
  for (auto& server : w.servers) server->stop();
  if (w.metrics_server) w.metrics_server->stop();
  w.listening = false;
  if (w.publish_timer) w.publish_timer->cancel();
}

std::atomic<std::uint64_t> next_session_id{1};

std::string format_seconds(clock::duration d) {
  const double s = std::chrono::duration<double>(d).count();
  return s < 1 ? fmt::format("{:.1f}ms", s * 1e3) : fmt::format("{:.3f}s", s);
}

// --access-log FILE: the access lines go there, appended one write(2) each (whole lines, whatever
// the threads), instead of to stderr at -v. SIGHUP opens the path again, after logrotate moved
// the file away.
class access_log_file {
 public:
  bool enabled() const noexcept { return enabled_; }

  // False with `problem` when the path cannot be opened; the file open before, if any, stays.
  bool open(const std::string& path, std::string& problem) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
      problem = fmt::format("cannot open the access log {}: {}", path, std::strerror(errno));
      return false;
    }
    std::lock_guard lock(mutex_);
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
    path_ = path;
    enabled_ = true;
    return true;
  }

  bool reopen(std::string& problem) { return open(path_, problem); }
  const std::string& path() const noexcept { return path_; }

  void write(std::string line) {
    line.push_back('\n');
    iovec part{line.data(), line.size()};
    std::lock_guard lock(mutex_);
    if (const int e = write_fully(fd_, &part, 1); e != 0 && !failed_) {
      failed_ = true;  // once: a full disk must not fill stderr too
      diagnostics::error(fmt::format("writing the access log {}: {}", path_, std::strerror(e)));
    }
  }

 private:
  std::mutex mutex_;
  int fd_ = -1;
  std::string path_;
  bool enabled_ = false;  // set before the threads start
  bool failed_ = false;
};

access_log_file& access_log() {
  static access_log_file file;
  return file;
}

// An access line: to --access-log, or to stderr at -v.
void log_access(std::string line) {
  if (access_log().enabled())
    access_log().write(std::move(line));
  else
    diagnostics::info("access " + line);
}

// The access log line of an upgraded connection, once it has ended.
void log_session_end(const session_context& s, const websocket& ws, clock::duration lasted) {
  if (diagnostics::verbosity() < 1 && !access_log().enabled()) return;
  log_access(fmt::format("{} [{}] {} GET {} 101 {} in={} out={} close={}", log_time(s.opened), s.id, format_peer(ws),
                         ws.request().target, format_seconds(lasted), ws.bytes_received(), ws.bytes_sent(),
                         ending_close_code(ws)));
}

// The access log line of a request that was not upgraded.
void log_refused(const negotiation_record& r) {
  if ((diagnostics::verbosity() < 1 && !access_log().enabled()) || !r.error) return;
  const auto opened =
      std::chrono::system_clock::now() - std::chrono::duration_cast<std::chrono::system_clock::duration>(r.duration);
  log_access(fmt::format("{} [-] {} {} {} {} {} in=0 out={} ({})", log_time(opened),
                         format_peer(r.remote, r.unix_peer, r.client_address), r.method.empty() ? "-" : r.method,
                         r.target.empty() ? "-" : r.target, r.status ? std::to_string(r.status) : "-",
                         format_seconds(r.duration), r.bytes_sent, r.error.message()));
}

// -vv: each request head as it came (Authorization and cookie values hidden, as wsl pipe -v hides its own),
// and what the hooks made of it: the status, the subprotocol chosen and the fields they added
// (Set-Cookie, say). For debugging a client's handshake, refused ones included. The library's own
// refusals (400, 431, 503) come before any hook: -v's access line has them.
negotiation_hook trace_negotiations(negotiation_hook inner) {
  return [inner = std::move(inner)](const http_request& req, http_response& res) {
    const auto peer = format_peer(req);
    std::string head = fmt::format("{} {} HTTP/{}.{}\n", req.method, req.target, req.version_major, req.version_minor);
    for (const auto& f : req.headers) head += fmt::format("{}: {}\n", f.name, f.value);
    head = redact_credentials(head);
    for (std::string_view rest = head; !rest.empty();) {
      const auto end = rest.find('\n');
      diagnostics::debug(fmt::format("{} < {}", peer, rest.substr(0, end)));
      rest.remove_prefix(end + 1);
    }
    if (inner) inner(req, res);
    const auto reason = res.reason.empty() ? http_reason(res.status) : std::string_view(res.reason);
    std::string answer = fmt::format("{} > {} {}", peer, res.status, reason);
    if (res.accepted() && !res.subprotocol.empty()) answer += fmt::format(", subprotocol {}", res.subprotocol);
    diagnostics::debug(answer);
    for (const auto& f : res.headers)
      if (!iequals(f.name, "Content-Type") && !iequals(f.name, "Content-Length"))
        diagnostics::debug(fmt::format("{} > {}", peer, redact_credentials(fmt::format("{}: {}", f.name, f.value))));
  };
}

// -vv: the open line, and from then on the control frames it receives.
void log_session_open(const session_context& context, websocket& ws) {
  if (diagnostics::verbosity() < 2) return;
  diagnostics::debug(fmt::format("[{}] {} open {}", context.id, format_peer(ws), ws.request().target));
  trace_control_frames(ws, session_prefix(context));
}

// -vv: the close frame the runtime is about to send, if it is the first of the handshake.
void trace_session_close(const session_context& context, const websocket& ws, std::uint16_t code,
                         std::string_view reason) {
  if (tracing_frames()) trace_close_sent(ws, code, reason, session_prefix(context));
}

void log_session_error(const session_context& context, const websocket& ws, const std::exception& e) {
  diagnostics::error(fmt::format("[{}] {}: {}", context.id, format_peer(ws), e.what()));
}

// Every idle connection holds this coroutine's frame: what it keeps is kept small, and the
// formatting lives in plain functions.
asio::awaitable<void> run_session(worker& w, websocket ws, const session_handler& handler,
                                  const std::string* unix_socket) {
  session_context context;
  context.unix_socket = unix_socket;
  context.id = next_session_id.fetch_add(1, std::memory_order_relaxed);
  context.opened = std::chrono::system_clock::now();
  const auto started = clock::now();
  const auto it = w.sessions.insert(w.sessions.end(), {&ws, &context});
  if (w.metrics) w.metrics->connection_opened();
  log_session_open(context, ws);
  try {
    co_await handler(ws, context);
  } catch (const std::exception& e) {
    log_session_error(context, ws, e);
  }
  // Finish the close handshake whoever started it (a shutdown's 1001, say): the peer may still be
  // sending the end of a message before its close frame. Nothing happens on a closed websocket.
  trace_session_close(context, ws, close_code::normal, {});
  std::error_code ec;
  co_await ws.close(close_code::normal, {}, ec);
  w.sessions.erase(it);
  if (w.metrics) {
    w.ended_bytes_received += ws.bytes_received();
    w.ended_bytes_sent += ws.bytes_sent();
    w.metrics->connection_closed(ending_close_code_number(ws));
  }
  log_session_end(context, ws, clock::now() - started);
}

asio::awaitable<void> accept_loop(worker& w, listener& server, const session_handler& handler) {
  for (;;) {
    std::error_code ec;
    auto ws = co_await server.accept(ec);
    if (ec) break;
    const auto* unix_socket = server.unix_path().empty() ? nullptr : &server.unix_path();
    asio::co_spawn(w.context, run_session(w, std::move(ws), handler, unix_socket), asio::detached);
  }
}

asio::awaitable<void> keep_error_code(asio::awaitable<void> op, std::shared_ptr<std::error_code>) {
  co_await std::move(op);
}

// Closes every session (1001 on SIGINT); the io_context ends when they are all done.
void shut_down(worker& w, std::uint16_t code, const std::string& reason) {
  stop_listening(w);
  w.shutting_down = true;
  for (auto& s : w.sessions) {
    if (s.context->on_shutdown) s.context->on_shutdown();
    // Traced now, though the close starts one turn later: the session's own close may come first
    // in between, and this line is then one too many (the websocket may be gone by then, so the
    // close cannot trace itself).
    trace_session_close(*s.context, *s.ws, code, reason);
    // The close operation keeps its connection alive itself; only its error code needs a home.
    auto ec = std::make_shared<std::error_code>();
    asio::co_spawn(w.context, keep_error_code(s.ws->close(code, reason, *ec), ec), asio::detached);
  }
}

class control_impl final : public server_control {
 public:
  control_impl(std::vector<std::unique_ptr<worker>>& workers, std::atomic<int>& status)
      : workers_(workers), status_(status) {}
  std::vector<asio::any_io_executor> executors() const override {
    std::vector<asio::any_io_executor> out;
    for (auto& w : workers_) out.push_back(w->context.get_executor());
    return out;
  }
  void stop_accepting() override {
    for (auto& w : workers_) asio::post(w->context, [&w = *w] { stop_listening(w); });
  }
  void close_all(std::uint16_t code, std::string reason) override {
    for (auto& w : workers_) asio::post(w->context, [&w = *w, code, reason] { shut_down(w, code, reason); });
  }
  void set_exit_status(int status) override { status_ = status; }

 private:
  std::vector<std::unique_ptr<worker>>& workers_;
  std::atomic<int>& status_;
};

// --metrics-listen: a listener of its own that answers the metrics and nothing else (404), plain
// HTTP, with the main port's time bound and few connections at once.
listener_options metrics_listener_options(const server_options& o, std::shared_ptr<server_metrics> metrics) {
  listener_options m;
  m.handshake_timeout = o.listener.handshake_timeout;
  m.max_pending_handshakes = 16;
  m.accept_queue_size = 16;
  m.log = diagnostics::library_log();
  m.hook = [metrics = std::move(metrics), path = o.metrics_path](const http_request& req, http_response& res) {
    if (!req.is_websocket_upgrade() && req.path == path) {
      answer_metrics(req, res, [&metrics] { return metrics->render(); });
      return;
    }
    answer_plain(res, 404, "not found");
  };
  return m;
}

// An address as it is, or every address a name resolves to; none with `ec` set. No AI_ADDRCONFIG:
// it would drop ::1 from "localhost" on a machine whose only IPv6 address is the loopback one.
std::vector<asio::ip::address> resolve_addresses(const std::string& host, std::error_code& ec) {
  if (const auto address = asio::ip::make_address(host, ec); !ec) return {address};
  asio::io_context context;
  asio::ip::tcp::resolver resolver(context);
  const auto results = resolver.resolve(host, "", asio::ip::resolver_base::flags(), ec);
  if (!ec && results.empty()) ec = asio::error::host_not_found;
  std::vector<asio::ip::address> out;
  if (!ec)
    for (const auto& r : results) out.push_back(r.endpoint().address());
  return out;
}

// A socket to listen on: an address of --host (at --port), --unix-socket, or a --listen-fd.
struct listen_spec {
  std::string given;  // "--host localhost", "--listen-fd 3": for messages
  bool is_tcp = false;
  asio::ip::tcp::endpoint tcp;
  bool from_name = false;  // an address a name resolved to: skipped if the machine cannot bind it
  int fd = -1;
  std::string unix_path;  // --unix-socket's, as given ("@NAME" in the abstract namespace)
  asio::local::stream_protocol::endpoint unix_endpoint;
};

// --host: the addresses in the order given, a name standing for every address it resolves to
// (as nginx and Python's asyncio bind a name: "localhost" is 127.0.0.1 and ::1 where /etc/hosts
// says so), each once.
std::optional<std::string> resolve_hosts(const std::vector<std::string>& hosts, std::uint16_t port,
                                         std::vector<listen_spec>& out) {
  for (const auto& host : hosts) {
    std::error_code ec;
    const auto addresses = resolve_addresses(host, ec);
    if (ec) return fmt::format("cannot resolve --host {}: {}", host, ec.message());
    // An address of a name that cannot be bound here is skipped (claim_port); a literal one is not.
    std::error_code not_literal;
    asio::ip::make_address(host, not_literal);
    const bool from_name = static_cast<bool>(not_literal);
    for (const auto& address : addresses) {
      if (std::any_of(out.begin(), out.end(), [&](const listen_spec& s) { return s.tcp.address() == address; }))
        continue;
      out.push_back({"--host " + host, true, {address, port}, from_name, -1, {}, {}});
    }
  }
  return std::nullopt;
}

// --listen-fd: each FD, and for 'systemd' the sockets systemd's socket activation passes (LISTEN_FDS
// of them from descriptor 3, when LISTEN_PID is this process), whose variables it then takes out
// of the environment, as sd_listen_fds(3) does when asked to.
std::optional<std::string> listen_descriptors(const std::vector<std::string>& given, std::vector<listen_spec>& out) {
  const auto add = [&out](int fd) -> std::optional<std::string> {
    for (const auto& s : out)
      if (s.fd == fd) return fmt::format("--listen-fd {}: given twice", fd);
    out.push_back({fmt::format("--listen-fd {}", fd), false, {}, false, fd, {}, {}});
    return std::nullopt;
  };
  for (const auto& text : given) {
    if (text == "systemd") {
      const char* pid = std::getenv("LISTEN_PID");
      const char* fds = std::getenv("LISTEN_FDS");
      unsigned long count = 0;
      if (!pid || !fds || std::to_string(::getpid()) != pid || (count = std::strtoul(fds, nullptr, 10)) == 0)
        return std::string(
            "--listen-fd systemd: no socket was passed (LISTEN_PID and LISTEN_FDS do not name this "
            "process: not started by systemd's socket activation?)");
      if (count > 1024) return fmt::format("--listen-fd systemd: LISTEN_FDS={}, more than 1024", fds);
      for (int fd = 3; fd < 3 + static_cast<int>(count); ++fd)
        if (auto problem = add(fd)) return problem;
      ::unsetenv("LISTEN_PID");
      ::unsetenv("LISTEN_FDS");
      ::unsetenv("LISTEN_FDNAMES");
      continue;
    }
    int fd = -1;
    const auto [end, err] = std::from_chars(text.data(), text.data() + text.size(), fd);
    if (err != std::errc() || end != text.data() + text.size() || fd < 0 || fd > (1 << 20))
      return fmt::format("--listen-fd {}: a descriptor number, or 'systemd'", text);
    if (auto problem = add(fd)) return problem;
  }
  return std::nullopt;
}

// Binds each TCP address alone (without SO_REUSEPORT) at one port: a port in use is an error here
// even when the threads' listeners share it later, and with --port 0 every address gets the same
// free port (another is tried when an address has the first one taken already). An address of a
// name that this machine cannot bind (::1 where IPv6 is off) is dropped, with a line at -v.
std::error_code claim_port(std::vector<listen_spec>& specs, bool ipv6_only, std::string& failed) {
  const auto given_port = specs.front().tcp.port();
  std::error_code ec;
  for (int attempt = 0; attempt < 16; ++attempt) {
    asio::io_context context;
    std::vector<asio::ip::tcp::acceptor> probes;
    std::vector<listen_spec> kept;
    std::uint16_t port = given_port;
    bool again = false;
    for (const auto& spec : specs) {
      asio::ip::tcp::endpoint endpoint(spec.tcp.address(), port);
      asio::ip::tcp::acceptor probe(context);
      probe.open(endpoint.protocol(), ec);
      if (!ec && ipv6_only && endpoint.address().is_v6()) probe.set_option(asio::ip::v6_only(true), ec);
      if (!ec) probe.set_option(asio::socket_base::reuse_address(true), ec);
      if (!ec) probe.bind(endpoint, ec);
      if (!ec) endpoint = probe.local_endpoint(ec);
      if (ec == asio::error::address_in_use && given_port == 0 && port != 0) {
        again = true;  // the port the first address got is taken on this one
        failed = format_endpoint(endpoint);
        break;
      }
      if (ec && spec.from_name &&
          (ec == std::error_code(EADDRNOTAVAIL, asio::error::get_system_category()) ||
           ec == asio::error::address_family_not_supported)) {
        diagnostics::info(
            fmt::format("{}: not listening on {}: {}", spec.given, format_endpoint(endpoint), ec.message()));
        failed = format_endpoint(endpoint);
        continue;
      }
      if (ec) {
        failed = format_endpoint(endpoint);
        return ec;
      }
      port = endpoint.port();
      kept.push_back(spec);
      kept.back().tcp = endpoint;
      probes.push_back(std::move(probe));
    }
    if (again) continue;
    if (kept.empty()) return ec;
    specs = std::move(kept);
    return {};
  }
  return ec;
}

}  // namespace

std::string session_prefix(const session_context& s) { return fmt::format("[{}] ", s.id); }

std::uint16_t ending_close_code_number(const websocket& ws) {
  const auto code = ws.local_close().code ? ws.local_close().code : ws.peer_close().code;
  return code ? code : 1006;
}

std::string ending_close_code(const websocket& ws) { return std::to_string(ending_close_code_number(ws)); }

void add_server_options(CLI::App& app, server_options& o) {
  auto& c = o.listener.connection;
  app.add_option("--host", o.hosts,
                 "Address to listen on (IPv4, IPv6, or a name: every address it resolves to); repeatable, all at "
                 "one --port")
      ->type_name("ADDRESS")
      ->capture_default_str()
      ->each([&o](const std::string&) { o.tcp_given = true; });
  app.add_option("--port", o.port, "Port to listen on; 0 picks a free one")
      ->capture_default_str()
      ->each([&o](const std::string&) { o.tcp_given = true; });
  auto* unix_socket =
      app.add_option("--unix-socket", o.unix_sockets,
                     "Listen on this Unix-domain socket (a path, or @NAME in the abstract namespace), instead of TCP "
                     "unless --host or --port is given too (repeatable); a socket file nobody listens on is "
                     "replaced, and the file is removed at exit")
          ->type_name("PATH");
  app.add_option("--listen-fd", o.listen_fds,
                 "Accept on this inherited descriptor, a TCP or Unix socket that already listens, instead of "
                 "--host/--port (repeatable); 'systemd': every socket systemd's socket activation passed")
      ->type_name("FD|systemd")
      ->excludes("--host")
      ->excludes("--port")
      ->excludes(unix_socket);
  app.add_option("--unix-mode", o.unix_mode,
                 "Permissions of the --unix-socket file, in octal (660: its owner and group may connect); "
                 "default: as the umask leaves them")
      ->type_name("MODE")
      ->needs(unix_socket);
  app.add_option("--threads", o.threads, "Threads, each with its own SO_REUSEPORT listener")
      ->capture_default_str()
      ->check(CLI::Range(1u, 256u));
  app.add_option("--max-connections", o.max_connections, "Open connections at most (503 beyond); 0 = no limit")
      ->capture_default_str();
  app.add_option("--trusted-proxy", o.trusted_proxies,
                 "A reverse proxy (an address or a network: 10.0.0.0/8) whose X-Forwarded-For names the client: "
                 "the access log, --max-connections-per-ip and commands' REMOTE_ADDR take that address (repeatable)")
      ->type_name("CIDR");
  app.add_option("--trusted-proxy-header", o.trusted_proxy_header,
                 "The header in which --trusted-proxy names the client: X-Forwarded-For, Forwarded (RFC 7239) or "
                 "X-Real-IP (one address); only the one the proxy sets, the others being the client's to forge")
      ->type_name("NAME")
      ->capture_default_str()
      ->needs("--trusted-proxy");
  app.add_flag("--proxy-protocol", o.proxy_protocol,
               "Each connection (TCP, or Unix with --unix-socket) begins with a PROXY protocol header (v1 or v2: "
               "HAProxy's send-proxy, an AWS NLB's) naming the client, before TLS: the access log, "
               "--max-connections-per-ip and REMOTE_ADDR take its address; a connection without one is closed "
               "unanswered");
  app.add_option("--max-connections-per-ip", o.max_connections_per_ip,
                 "Open connections from one IPv4 address or IPv6 /64 at most (429 beyond), and handshakes under way "
                 "from it (closed unanswered beyond); 0 = no limit")
      ->capture_default_str();
  app.add_option("--max-pending-handshakes", o.listener.max_pending_handshakes,
                 "Handshakes under way at once, per thread; further connections wait in the kernel's backlog (a "
                 "connection kept alive that waits for its next request gives its place to a new one)")
      ->type_name("N")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20));
  add_size_option(app, "--max-message-size", c.max_message_size,
                  "Largest message accepted (1009 beyond); 0 = no limit");
  add_duration_option(app, "--ping-interval", c.ping_interval, "Ping each connection this often; 0 = never");
  add_duration_option(app, "--idle-timeout", c.idle_timeout,
                      "Drop a connection from which nothing arrives for this long; 0 = never");
  add_duration_option(app, "--close-timeout", c.close_timeout, "Wait this long for the peer's close frame");
  add_size_option(app, "--max-handshake-size", o.listener.max_handshake_size, "Largest HTTP request head (431 beyond)");
  add_duration_option(app, "--handshake-timeout", o.listener.handshake_timeout,
                      "Time allowed for the HTTP negotiation (and for each next request on a connection kept alive)");
  app.add_option("--keep-alive-requests", o.listener.max_requests_per_connection,
                 "Plain HTTP requests (files, metrics) one connection may make in turn; 1: each closes its connection")
      ->type_name("N")
      ->capture_default_str();
  add_http_options(app, o.http);
  add_deflate_options(app, o.deflate);
  const std::string tls_group = "TLS (wss://)";
  app.add_option("--tls-cert", o.tls.certificate_chain_file, "Serve wss:// with this certificate chain (PEM)")
      ->check(CLI::ExistingFile)
      ->group(tls_group);
  app.add_option("--tls-key", o.tls.private_key_file, "Private key (PEM) of --tls-cert")
      ->check(CLI::ExistingFile)
      ->group(tls_group);
  app.add_option("--tls-client-ca", o.tls.client_ca_file, "Require client certificates signed by these CAs (PEM)")
      ->check(CLI::ExistingFile)
      ->group(tls_group);
  app.add_option("--tls-key-password-file", o.tls_key_password_file,
                 "The password of an encrypted --tls-key: this file's first line (never prompted for)")
      ->check(CLI::ExistingFile)
      ->group(tls_group);
  app.add_option("--access-log", o.access_log,
                 "Append the access lines (one per connection or refused request) to FILE instead of stderr at -v; "
                 "SIGHUP opens it again (logrotate)")
      ->type_name("FILE");
  app.add_option("--metrics", o.metrics_path,
                 "Answer plain GET requests for PATH (/metrics, say) with the server's counters in Prometheus' "
                 "text format: requests by status, connections, close codes, bytes, ping round trips, CPU, memory")
      ->type_name("PATH");
  app.add_option("--metrics-listen", o.metrics_listen,
                 "Answer --metrics on this address instead of the main port (127.0.0.1:9100, say; port 0: a free "
                 "one, printed): scrapers reach them there, the main port's clients do not")
      ->type_name("HOST:PORT")
      ->needs("--metrics");
  add_verbosity_options(app, o.verbosity, o.quiet);
}

namespace {

// Reads --tls-key-password-file into o.tls; false with `problem` when it cannot be.
bool load_tls_files(server_options& o, std::string& problem) {
  if (o.tls_key_password_file.empty()) return true;
  return read_password_file(o.tls_key_password_file, o.tls.private_key_password, problem);
}

// At -v the certificate served; always a warning when it is outside its validity (clients refuse
// it). After a reload, a line saying so unless -q.
void report_certificate(const connection_extension& ext, bool reloaded) {
  const auto info = tls_certificate_of(ext);
  if (!info) return;
  const auto now = std::chrono::system_clock::now();
  const auto line = fmt::format("TLS certificate {}, valid until {}", info->subject, format_utc(info->not_after));
  if (reloaded)
    diagnostics::warning("SIGHUP: reloaded the TLS files; " + line);
  else
    diagnostics::info(line);
  if (info->not_after < now)
    diagnostics::warning(fmt::format("the TLS certificate {} expired on {}: clients will refuse it", info->subject,
                                     format_utc(info->not_after)));
  else if (info->not_before > now)
    diagnostics::warning(fmt::format("the TLS certificate {} is not valid before {}: clients will refuse it",
                                     info->subject, format_utc(info->not_before)));
}

}  // namespace

int run_server(const std::string& command, const server_options& given, session_handler handler,
               server_callbacks callbacks) {
  auto o = given;
  diagnostics::configure("wsl " + command, o.verbosity, o.quiet);
  if (o.listener.connection.ping_interval.count() > 0 && o.listener.connection.idle_timeout.count() > 0 &&
      o.listener.connection.ping_interval >= o.listener.connection.idle_timeout) {
    diagnostics::fatal("--ping-interval must be shorter than --idle-timeout");
    return exit_usage;
  }
  if (o.listener.connection.ping_interval.count() == 0) o.listener.connection.ping = ping_mode::none;
  if (std::string problem; apply_deflate(o.deflate, o.listener.connection, problem)) {
    diagnostics::fatal(problem);
    return exit_usage;
  }
  const bool tls = !o.tls.certificate_chain_file.empty() || !o.tls.private_key_file.empty();
  std::vector<listen_spec> specs;  // the sockets to listen on, in the order of the listening lines
  if (auto problem = listen_descriptors(o.listen_fds, specs)) {
    diagnostics::fatal(*problem);
    return exit_usage;
  }
  if (!o.unix_sockets.empty() && (tls || !o.tls.client_ca_file.empty())) {
    diagnostics::fatal(fmt::format("--tls-cert: {}", no_tls_over_unix));
    return exit_usage;
  }
  if (!o.access_log.empty()) {
    if (std::string problem; !access_log().open(o.access_log, problem)) {
      diagnostics::fatal(problem);
      return exit_failure;
    }
  }
  std::shared_ptr<connection_extension> tls_extension;  // reloaded by SIGHUP
  if (tls || !o.tls.client_ca_file.empty() || !o.tls_key_password_file.empty()) {
    if (o.tls.certificate_chain_file.empty() || o.tls.private_key_file.empty()) {
      diagnostics::fatal(
          "--tls-cert and --tls-key go together (and --tls-client-ca and --tls-key-password-file need them)");
      return exit_usage;
    }
    std::string problem;
    if (load_tls_files(o, problem)) {
      tls_extension = make_tls_extension(role::server, o.tls, problem);
      o.tls.private_key_password.clear();
    }
    o.listener.transport_extension = tls_extension;
    if (!tls_extension) {
      diagnostics::fatal(explain_key_problem(problem, o.tls_key_password_file, "--tls-key-password-file"));
      return exit_failure;
    }
  }
  if (!o.unix_mode.empty()) {  // with --unix-socket (CLI11 checked)
    for (const auto& path : o.unix_sockets) {
      if (auto problem = parse_unix_mode(o.unix_mode, path, o.listener.unix_mode)) {
        diagnostics::fatal(*problem);
        return exit_usage;
      }
    }
  }
  if (auto problem = finish_http_options(o.http); !problem.empty()) {
    diagnostics::fatal(problem);
    return exit_usage;
  }
  std::shared_ptr<server_metrics> metrics;
  if (!o.metrics_path.empty()) {
    if (o.metrics_path.front() != '/' || o.metrics_path.find_first_of("?# ") != std::string::npos) {
      diagnostics::fatal(fmt::format("--metrics {}: a path from '/', without a query", o.metrics_path));
      return exit_usage;
    }
    metrics = std::make_shared<server_metrics>(o.threads);
    if (o.metrics_listen.empty()) {
      o.http.metrics_path = o.metrics_path;
      o.http.metrics = [metrics] { return metrics->render(); };
    }
  }
  std::string metrics_host;
  std::uint16_t metrics_port = 0;
  if (!o.metrics_listen.empty()) {
    if (auto problem = parse_host_port(o.metrics_listen, metrics_host, metrics_port, 0)) {
      diagnostics::fatal(fmt::format("--metrics-listen '{}': {}", o.metrics_listen, *problem));
      return exit_usage;
    }
  }
  o.listener.hook = make_http_hook(o.http, std::move(o.listener.hook));
  if (tracing_frames()) o.listener.hook = trace_negotiations(std::move(o.listener.hook));
  o.listener.response_headers = response_headers_of(o.http);
  for (const auto& text : o.trusted_proxies) {
    const auto range = address_range::parse(text);
    if (!range) {
      diagnostics::fatal(fmt::format("--trusted-proxy {}: not an address or a network (10.0.0.0/8, fd00::/8)", text));
      return exit_usage;
    }
    o.listener.trusted_proxies.push_back(*range);
  }
  using forwarding_header = listener_options::forwarding_header;
  if (iequals(o.trusted_proxy_header, "X-Forwarded-For")) {
    o.listener.client_address_header = forwarding_header::x_forwarded_for;
  } else if (iequals(o.trusted_proxy_header, "Forwarded")) {
    o.listener.client_address_header = forwarding_header::forwarded;
  } else if (iequals(o.trusted_proxy_header, "X-Real-IP")) {
    o.listener.client_address_header = forwarding_header::x_real_ip;
  } else {
    diagnostics::fatal(
        fmt::format("--trusted-proxy-header {}: X-Forwarded-For, Forwarded or X-Real-IP", o.trusted_proxy_header));
    return exit_usage;
  }
  o.listener.proxy_protocol = o.proxy_protocol;
  // Negotiated websockets wait for the server's accept with those being negotiated: never the
  // tighter bound of the two.
  o.listener.accept_queue_size = std::max(o.listener.accept_queue_size, 2 * o.listener.max_pending_handshakes);
  o.listener.on_negotiation = [then = std::move(o.listener.on_negotiation), metrics](const negotiation_record& r) {
    if (metrics) metrics->request(r.status, r.duration);
    log_refused(r);
    if (then) then(r);
  };
  raise_descriptor_limit();

  std::error_code ec;
  // TCP first (the first listening line is the one scripts read the port from), then the Unix
  // sockets, each in the order given.
  if (specs.empty() && (o.tcp_given || o.unix_sockets.empty())) {
    if (auto problem = resolve_hosts(o.hosts, o.port, specs)) {
      diagnostics::fatal(*problem);
      return exit_unavailable;
    }
  }
  for (const auto& path : o.unix_sockets) {
    const auto endpoint = wsl::unix_endpoint(path, ec);
    if (ec) {
      diagnostics::fatal(fmt::format("--unix-socket '{}': {}", path, ec.message()));
      return exit_usage;
    }
    if (std::any_of(specs.begin(), specs.end(), [&](const listen_spec& s) { return s.unix_path == path; })) {
      diagnostics::fatal(fmt::format("--unix-socket '{}': given twice", path));
      return exit_usage;
    }
    specs.push_back({"--unix-socket " + path, false, {}, false, -1, path, endpoint});
  }

  // Signals are taken by one thread with sigwait(); workers never see them. SIGHUP reloads the
  // TLS files (a renewed certificate) and opens --access-log again; with neither, it shuts down
  // like SIGTERM.
  start_signal_thread(true);
  if (tls_extension || access_log().enabled()) {
    set_reload_hook([ext = tls_extension, o] {
      if (access_log().enabled()) {
        if (std::string problem; access_log().reopen(problem))
          diagnostics::warning(fmt::format("SIGHUP: reopened the access log {}", access_log().path()));
        else
          diagnostics::warning(fmt::format("SIGHUP: {}; still writing to the file open before", problem));
      }
      if (!ext) return;
      std::string problem;
      auto files = o;
      if (load_tls_files(files, problem) && reload_tls_extension(*ext, files.tls, problem)) {
        report_certificate(*ext, true);
      } else {
        diagnostics::warning(
            fmt::format("SIGHUP: {}; still serving the previous certificate",
                        explain_key_problem(problem, o.tls_key_password_file, "--tls-key-password-file")));
      }
    });
  }

  o.listener.log = diagnostics::library_log();
  // :: beside 0.0.0.0 (or ::1 beside 127.0.0.1) at one port: the IPv6 one must leave IPv4 alone.
  const auto is_v4 = [](const listen_spec& s) { return s.is_tcp && s.tcp.address().is_v4(); };
  const auto is_v6 = [](const listen_spec& s) { return s.is_tcp && s.tcp.address().is_v6(); };
  o.listener.ipv6_only =
      std::any_of(specs.begin(), specs.end(), is_v4) && std::any_of(specs.begin(), specs.end(), is_v6);
  const auto tcp_specs = static_cast<std::size_t>(
      std::count_if(specs.begin(), specs.end(), [](const listen_spec& s) { return s.is_tcp && s.fd < 0; }));
  if (tcp_specs > 0 && (o.threads > 1 || tcp_specs > 1)) {
    // SO_REUSEPORT lets any process of this user join a port. Claim it alone first, so that a port
    // in use is an error here too, then let the listeners share it. (The TCP specs come first.)
    std::vector<listen_spec> tcp(specs.begin(), specs.begin() + static_cast<std::ptrdiff_t>(tcp_specs));
    std::string failed;
    if (const auto e = claim_port(tcp, o.listener.ipv6_only, failed)) {
      diagnostics::fatal(fmt::format("cannot listen on {}: {}", failed, e.message()));
      return exit_unavailable;
    }
    // A name's address this machine cannot bind was dropped.
    specs.erase(specs.begin(), specs.begin() + static_cast<std::ptrdiff_t>(tcp_specs));
    specs.insert(specs.begin(), tcp.begin(), tcp.end());
  }
  if (!o.listener.budget)
    o.listener.budget = std::make_shared<connection_budget>(o.max_connections, o.max_connections_per_ip);
  std::vector<std::unique_ptr<worker>> workers;
  for (unsigned i = 0; i < o.threads; ++i) {
    auto w = std::make_unique<worker>();
    for (std::size_t j = 0; j < specs.size(); ++j) {
      auto& spec = specs[j];
      auto options = o.listener;
      // TCP: a listener per thread, each bound with SO_REUSEPORT. An inherited or a Unix socket:
      // the other threads' listeners take the first one's.
      options.reuse_port = o.threads > 1 && spec.is_tcp;
      auto server = std::make_unique<listener>(w->context.get_executor(), std::move(options));
      const auto e = !workers.empty() && !spec.is_tcp ? server->start(*workers.front()->servers[j])
                     : spec.fd >= 0                   ? server->adopt(spec.fd)
                     : spec.is_tcp                    ? server->start(spec.tcp)
                                                      : server->start(spec.unix_endpoint);
      if (e && spec.fd >= 0) {
        diagnostics::fatal(fmt::format("{}: not a listening TCP or Unix stream socket ({})", spec.given,
                                       e == error::invalid_option ? "wrong kind" : e.message()));
        return exit_usage;
      }
      if (!e && spec.fd >= 0 && workers.empty() && tls && !server->unix_path().empty()) {
        diagnostics::fatal(fmt::format("--tls-cert: {}", no_tls_over_unix));
        return exit_usage;
      }
      if (e) {
        diagnostics::fatal(fmt::format("cannot listen on {}: {}",
                                       spec.is_tcp ? format_endpoint(spec.tcp) : "unix:" + spec.unix_path,
                                       e.message()));
        return e == error::invalid_option ? exit_usage : exit_unavailable;
      }
      if (spec.is_tcp) spec.tcp = server->local_endpoint();  // the other threads bind the port it got
      asio::co_spawn(w->context, accept_loop(*w, *server, handler), asio::detached);
      w->servers.push_back(std::move(server));
    }
    if (metrics) {
      w->metrics = metrics.get();
      w->figures = &metrics->thread(static_cast<unsigned>(workers.size()));
      w->publish_timer = std::make_unique<timer>(w->context);
      asio::co_spawn(w->context, publish_metrics(*w), asio::detached);
    }
    workers.push_back(std::move(w));
  }
  asio::ip::tcp::endpoint metrics_endpoint;
  if (!o.metrics_listen.empty()) {
    auto& first = *workers.front();
    first.metrics_server =
        std::make_unique<listener>(first.context.get_executor(), metrics_listener_options(o, metrics));
    const auto metrics_addresses = resolve_addresses(metrics_host, ec);
    if (!ec) ec = first.metrics_server->start(asio::ip::tcp::endpoint(metrics_addresses.front(), metrics_port));
    if (ec) {
      diagnostics::fatal(fmt::format("--metrics-listen {}: cannot listen there: {}", o.metrics_listen, ec.message()));
      return exit_unavailable;
    }
    metrics_endpoint = first.metrics_server->local_endpoint();
  }
  std::atomic<int> status{exit_ok};
  control_impl control(workers, status);
  if (callbacks.started) callbacks.started(control);

  // The first signal closes every connection with 1001; a second one exits at once. Installed
  // before "listening" is printed: a signal sent once a client has been served must find it (it
  // used to be installed after the threads started, and a SIGINT in between exited at once,
  // closing TCP without a Close frame). Until the threads run, shut_down just waits in the queue.
  set_abort_hook(callbacks.aborting);
  set_signal_handler([&, interrupted = callbacks.interrupted](int received) {
    status = exit_status_for_signal(received);
    diagnostics::info("shutting down: closing connections with 1001");
    if (interrupted) interrupted(received);
    for (auto& w : workers)
      asio::post(w->context, [&w = *w] { shut_down(w, close_code::going_away, "server shutting down"); });
  });

  // "listening" once every thread runs: a script that waits for the line must not see it, then
  // exit 1 because a thread could not start.
  std::vector<asio::io_context*> contexts;
  for (auto& w : workers) contexts.push_back(&w->context);
  auto threads = run_threads(contexts);
  for (const auto& server : workers.front()->servers) {  // a line per socket, in the order given
    const auto endpoint = server->local_endpoint();
    const auto url_host =
        endpoint.address().is_v6() ? "[" + endpoint.address().to_string() + "]" : endpoint.address().to_string();
    if (!server->unix_path().empty())
      fmt::print(stderr, "listening on ws+unix:{}\n", server->unix_path());
    else
      fmt::print(stderr, "listening on {}://{}:{}/\n", o.listener.transport_extension ? "wss" : "ws", url_host,
                 endpoint.port());
  }
  if (!o.metrics_listen.empty())
    fmt::print(stderr, "metrics on http://{}{}\n", format_endpoint(metrics_endpoint), o.metrics_path);
  std::fflush(stderr);
  if (tls_extension) report_certificate(*tls_extension, false);  // after the line scripts wait for

  for (auto& t : threads) t.join();
  set_signal_handler(nullptr);  // what it refers to ends here; a late signal just exits
  set_reload_hook(nullptr);
  if (callbacks.finished) callbacks.finished();
  return status;
}

}  // namespace wsl::cli
