// wsl serve -- COMMAND / --dir DIR: one process per connection, as websocketd runs them.
//
// Each connection's process gets the client's messages on stdin and its stdout lines go back as
// messages; its stderr goes to ours, each line prefixed with the connection id. Everything runs on
// the connection's executor: the pipes and a pidfd (readable once the process has exited, so no
// SIGCHLD handler and no race with other children) are asio stream_descriptors, and one
// coroutine per direction moves the data while the session's own coroutine decides how it ends:
//
//  - the process exits first: the rest of its stdout is sent, then close 1000 (status 0) or 1011
//    "exit N" / "signal N (SIGX)"; whatever is left of its process group gets SIGTERM at once and
//    SIGKILL once its stdout has ended (or --close-grace has passed);
//  - the client leaves first (or SIGINT): the process's stdin is closed; --close-grace later its
//    group gets SIGTERM, as long again later SIGKILL.
// Either way the process is reaped with waitpid() on its own pid before the session ends.
// serve_modes.hpp first: it brings Asio's config.hpp in before any standard header, as every other
// file of the program does. Asio decides ASIO_HAS_STD_ALIGNED_ALLOC from a macro of the standard
// library's config; files that disagree on it pair aligned_alloc with operator delete (ASan says
// alloc-dealloc-mismatch).
#include "serve_modes.hpp"

#include "process.hpp"
#include "records.hpp"

#include <wsl/detail/utf8.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <sys/wait.h>
#include <array>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <unordered_set>

namespace wsl::cli {
namespace {

inline auto use_ec(std::error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

// ------------------------------------------------------------------------------------------------
// Process slots (--max-forks): taken by the negotiation hook, so that the 503 comes before the
// 101, and handed over to the session, which gives it back once its process has been reaped.

class fork_slots {
 public:
  explicit fork_slots(std::uint64_t limit) : limit_(limit) {}

  bool try_take() noexcept {
    auto n = used_.load(std::memory_order_relaxed);
    do {
      if (limit_ != 0 && n >= limit_) return false;
    } while (!used_.compare_exchange_weak(n, n + 1, std::memory_order_relaxed));
    return true;
  }
  // A process that runs whatever the limit (its negotiation took no slot: cannot happen through the
  // listener, but the count must stay balanced).
  void take_anyway() noexcept { used_.fetch_add(1, std::memory_order_relaxed); }
  void give_back() noexcept { used_.fetch_sub(1, std::memory_order_relaxed); }
  std::uint64_t used() const noexcept { return used_.load(std::memory_order_relaxed); }

  // The hook, the negotiation observer and the session of one connection run on the same thread
  // (its listener's), in that order: a slot taken by the hook is noted by peer address there.
  void note_taken(const asio::ip::tcp::endpoint& peer) { pending().insert(key(peer)); }
  // A negotiation failed after the hook took a slot (the 101 could not be written, say).
  void negotiation_failed(const asio::ip::tcp::endpoint& peer) {
    if (pending().erase(key(peer)) != 0) give_back();
  }
  // The session takes over the slot its negotiation took; false when it had none.
  bool claim(const asio::ip::tcp::endpoint& peer) { return pending().erase(key(peer)) != 0; }

 private:
  static std::string key(const asio::ip::tcp::endpoint& e) { return format_endpoint(e); }
  static std::unordered_set<std::string>& pending() {
    thread_local std::unordered_set<std::string> set;
    return set;
  }
  const std::uint64_t limit_;
  std::atomic<std::uint64_t> used_{0};
};

// ------------------------------------------------------------------------------------------------
// What to run for a request

struct endpoint_program {
  std::string program;
  std::vector<std::string> argv;
  std::string script_name;  // "/NAME" with --dir, else empty
  std::string path_info;    // the path after SCRIPT_NAME
};

bool script_name_ok(std::string_view name) noexcept {
  if (name.empty() || name.front() == '.') return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
          c == '-'))
      return false;
  return true;
}

std::string percent_decoded(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  auto hex = [](char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
  };
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0 &&
        (s[i + 1] != '0' || s[i + 2] != '0')) {
      out.push_back(static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// Which program serves `path`; false (404) when none does.
bool resolve_endpoint(const serve_options& o, std::string_view path, endpoint_program& out) {
  if (o.dir.empty()) {
    out.program = o.program;
    out.argv = o.command;
    out.script_name.clear();
    out.path_info = percent_decoded(path);
    return true;
  }
  if (path.empty() || path.front() != '/') return false;
  path.remove_prefix(1);
  const auto slash = path.find('/');
  const auto name = path.substr(0, slash);
  if (!script_name_ok(name)) return false;
  out.program = o.dir + "/" + std::string(name);
  if (!is_executable_file(out.program)) return false;
  out.argv = {out.program};
  out.script_name = "/" + std::string(name);
  out.path_info = slash == std::string_view::npos ? std::string() : percent_decoded(path.substr(slash));
  return true;
}

// ------------------------------------------------------------------------------------------------
// The environment: CGI's variables and --passenv, nothing else of ours.

std::vector<std::string> build_environment(const serve_options& o, const websocket& ws, const session_context& s,
                                           const endpoint_program& p) {
  const auto& req = ws.request();
  std::vector<std::string> env;
  auto add = [&env](std::string_view name, std::string_view value) {
    env.push_back(fmt::format("{}={}", name, value));
  };
  const auto remote = ws.remote_endpoint();
  const auto local = ws.local_endpoint();
  std::string server_name = local.address().to_string();
  if (const auto host = req.headers.get("Host"); host && !host->empty()) {
    auto h = *host;
    const auto colon = h.rfind(':');
    const auto bracket = h.rfind(']');
    if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket))
      h = h.substr(0, colon);
    server_name = std::string(h);
  }
  const auto id = std::to_string(s.id);
  add("GATEWAY_INTERFACE", "CGI/1.1");
  add("SERVER_SOFTWARE", "wsl/" WSL_VERSION);
  add("SERVER_PROTOCOL", fmt::format("HTTP/{}.{}", req.version_major, req.version_minor));
  add("SERVER_NAME", server_name);
  add("SERVER_PORT", std::to_string(local.port()));
  add("REMOTE_ADDR", remote.address().to_string());
  add("REMOTE_HOST", remote.address().to_string());
  add("REMOTE_PORT", std::to_string(remote.port()));
  add("REQUEST_METHOD", req.method);
  add("REQUEST_URI", req.target);
  add("SCRIPT_NAME", p.script_name);
  add("PATH_INFO", p.path_info);
  add("QUERY_STRING", req.query);
  add("WEBSOCKET_SUBPROTOCOL", ws.subprotocol());
  add("WSL_CONNECTION_ID", id);
  add("UNIQUE_ID", id);  // websocketd's name for it
  // HTTP_<NAME> for each request header; repeated fields joined with ", " as CGI does.
  std::vector<std::pair<std::string, std::string>> http;
  for (const auto& f : req.headers) {
    std::string name = "HTTP_";
    for (char c : f.name) name.push_back(c >= 'a' && c <= 'z' ? static_cast<char>(c - 32) : (c == '-' ? '_' : c));
    bool valid = true;
    for (char c : name) valid = valid && ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_');
    if (!valid || name == "HTTP_PROXY") continue;  // "httpoxy": Proxy: would become the child's proxy
    auto it = std::find_if(http.begin(), http.end(), [&](const auto& e) { return e.first == name; });
    if (it == http.end())
      http.emplace_back(std::move(name), f.value);
    else
      it->second.append(", ").append(f.value);
  }
  for (const auto& [name, value] : http) add(name, value);
  bool path_passed = false;
  for (const auto& name : o.passenv) {
    if (const char* value = std::getenv(name.c_str())) {
      add(name, value);
      path_passed = path_passed || name == "PATH";
    }
  }
  if (!path_passed) add("PATH", "/usr/local/bin:/usr/bin:/bin");  // what a shell would assume anyway
  return env;
}

// ------------------------------------------------------------------------------------------------
// One connection and its process

// The child's stderr, one line at a time, after the connection id.
void emit_child_stderr(std::uint64_t id, std::string_view line) {
  const auto text = fmt::format("[{}] {}\n", id, line);
  std::fwrite(text.data(), 1, text.size(), stderr);  // one call per line: the FILE lock keeps lines whole
}

class command_connection {
 public:
  command_connection(websocket& ws, session_context& session, const serve_options& o, child_process child)
      : ws_(ws),
        session_(session),
        o_(o),
        child_(child),
        input_(ws.get_executor(), std::exchange(child_.stdin_fd, -1)),
        output_(ws.get_executor(), std::exchange(child_.stdout_fd, -1)),
        errors_(ws.get_executor(), std::exchange(child_.stderr_fd, -1)),
        exit_(ws.get_executor(), std::exchange(child_.pidfd, -1)),
        wake_(ws.get_executor()) {}

  asio::awaitable<void> run();

 private:
  asio::awaitable<void> pump_input();
  asio::awaitable<void> pump_output();
  asio::awaitable<void> pump_errors();
  asio::awaitable<void> watch_exit();
  asio::awaitable<void> send(message_type type, std::string_view data);
  asio::awaitable<void> send_line(std::string_view line);
  asio::awaitable<void> wait_until(clock::time_point deadline);
  asio::awaitable<void> wait_for_pumps(clock::duration bound);
  void notify() {
    try {
      wake_.cancel();
    } catch (...) {
    }
  }
  void close_input() {
    std::error_code ignored;
    input_.close(ignored);
  }

  websocket& ws_;
  session_context& session_;
  const serve_options& o_;
  child_process child_;
  asio::posix::stream_descriptor input_, output_, errors_, exit_;
  timer wake_;  // cancel() wakes run(), which re-checks the flags below

  int running_ = 0;  // coroutines still using this object
  bool exited_ = false;
  bool client_gone_ = false;
  bool output_done_ = false;
  bool sending_ = true;  // false once a send failed: the rest of stdout is read and dropped
  bool warned_utf8_ = false;
  std::uint64_t dropped_ = 0;  // messages for a process that no longer reads its stdin
};

asio::awaitable<void> command_connection::wait_until(clock::time_point deadline) {
  wake_.expires_at(deadline);
  std::error_code ignored;
  co_await wake_.async_wait(use_ec(ignored));
}

asio::awaitable<void> command_connection::run() {
  const auto ex = ws_.get_executor();
  session_.on_shutdown = [this] {
    client_gone_ = true;
    std::error_code ignored;
    input_.cancel(ignored);  // a write the process is not reading must not hold the shutdown
    notify();
  };
  running_ = 4;
  auto done = [this](std::exception_ptr e) {
    --running_;
    notify();
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& what) {
        diagnostics::error(fmt::format("[{}] {}", session_.id, what.what()));
      }
    }
  };
  asio::co_spawn(ex, watch_exit(), done);
  asio::co_spawn(ex, pump_errors(), done);
  asio::co_spawn(ex, pump_output(), done);
  asio::co_spawn(ex, pump_input(), done);

  const auto forever = clock::time_point::max();
  while (!exited_ && !client_gone_) co_await wait_until(forever);

  int status = 0;
  const pid_t pid = child_.pid;
  if (exited_ && !client_gone_) {
    // The process ended: anything left of its group goes, the rest of its output is sent.
    signal_group(child_, SIGTERM);
    auto deadline = clock::now() + o_.close_grace;
    while (!output_done_ && clock::now() < deadline) co_await wait_until(deadline);
    signal_group(child_, SIGKILL);
    status = reap(child_);
    deadline = clock::now() + o_.close_grace;
    while (!output_done_ && clock::now() < deadline) co_await wait_until(deadline);
    if (!output_done_) {  // a process that left the group still holds the pipe
      std::error_code ignored;
      output_.cancel(ignored);
      while (!output_done_) co_await wait_until(forever);
    }
    const bool success = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    const auto reason = success ? std::string() : describe_wait_status(status);
    diagnostics::debug(fmt::format("[{}] process {}: {}", session_.id, pid, describe_wait_status(status)));
    std::error_code ec;
    co_await ws_.close(success ? close_code::normal : close_code::internal_error, reason, ec);
  } else {
    // The client left (or we are shutting down): the process's stdin ends; then it has
    // --close-grace to exit before SIGTERM, and as long again before SIGKILL.
    close_input();
    auto deadline = clock::now() + o_.close_grace;
    while (!exited_ && clock::now() < deadline) co_await wait_until(deadline);
    if (!exited_) {
      diagnostics::info(fmt::format("[{}] process {} still runs {} after its client left: SIGTERM", session_.id, pid,
                                    format_duration(o_.close_grace)));
      signal_group(child_, SIGTERM);
      deadline = clock::now() + o_.close_grace;
      while (!exited_ && clock::now() < deadline) co_await wait_until(deadline);
    }
    if (!exited_) {
      diagnostics::info(fmt::format("[{}] process {} ignored SIGTERM: SIGKILL", session_.id, pid));
      signal_group(child_, SIGKILL);
      while (!exited_) co_await wait_until(forever);
    }
    signal_group(child_, SIGKILL);  // what is left of its group
    status = reap(child_);
    diagnostics::debug(fmt::format("[{}] process {}: {}", session_.id, pid, describe_wait_status(status)));
  }
  close_input();
  co_await wait_for_pumps(o_.close_grace);
  session_.on_shutdown = nullptr;
  if (dropped_ != 0)
    diagnostics::info(fmt::format("[{}] {} message{} dropped: the process no longer read its stdin", session_.id,
                                  dropped_, dropped_ == 1 ? "" : "s"));
}

// The pipes end once no process holds them; one that escaped the group may: stop waiting then.
asio::awaitable<void> command_connection::wait_for_pumps(clock::duration bound) {
  const auto deadline = clock::now() + bound;
  while (running_ > 0 && clock::now() < deadline) co_await wait_until(deadline);
  if (running_ > 0) {
    std::error_code ignored;
    output_.cancel(ignored);
    errors_.cancel(ignored);
    input_.cancel(ignored);
  }
  while (running_ > 0) co_await wait_until(clock::time_point::max());
}

asio::awaitable<void> command_connection::watch_exit() {
  std::error_code ec;
  co_await exit_.async_wait(asio::posix::stream_descriptor::wait_read, use_ec(ec));
  if (ec) diagnostics::error(fmt::format("[{}] waiting for process {}: {}", session_.id, child_.pid, ec.message()));
  exited_ = true;
}

// Client messages to the process's stdin, each followed by the delimiter (text mode).
asio::awaitable<void> command_connection::pump_input() {
  const std::string_view delimiter = o_.binary           ? std::string_view()
                                     : o_.null_delimited ? std::string_view("\0", 1)
                                                         : std::string_view("\n");
  bool reading = true;  // the process still takes its stdin
  std::error_code ec;
  for (;;) {
    auto in = co_await ws_.read_message(ec);
    if (ec) break;
    for (;;) {
      const auto chunk = co_await in.read_chunk(ec);
      if (ec) break;
      const bool last = in.done();
      if (reading) {
        std::error_code write_ec;
        const std::array<asio::const_buffer, 2> parts = {chunk,
                                                         asio::buffer(delimiter.data(), last ? delimiter.size() : 0)};
        co_await asio::async_write(input_, parts, use_ec(write_ec));
        if (write_ec) {
          reading = false;
          if (write_ec != asio::error::operation_aborted)
            diagnostics::debug(fmt::format("[{}] the process's stdin: {}", session_.id, write_ec.message()));
        }
      }
      if (last) break;
    }
    if (ec) break;
    if (!reading) ++dropped_;
  }
  close_input();
  client_gone_ = true;
}

asio::awaitable<void> command_connection::send(message_type type, std::string_view data) {
  if (!sending_) co_return;
  std::error_code ec;
  co_await ws_.write_message(type, asio::buffer(data.data(), data.size()), ec);
  if (ec) sending_ = false;  // the client is gone; the process's output is drained from now on
}

// A line is a text message when it is UTF-8, as RFC 6455 requires; otherwise a binary one.
asio::awaitable<void> command_connection::send_line(std::string_view line) {
  auto type = message_type::text;
  if (!detail::utf8_validator::validate(line.data(), line.size())) {
    type = message_type::binary;
    if (!warned_utf8_) {
      warned_utf8_ = true;
      diagnostics::warning(
          fmt::format("[{}] the process wrote a line that is not UTF-8: sent as a binary message", session_.id));
    }
  }
  co_await send(type, line);
}

// The process's stdout to messages: a line each (text mode), or a read each (--binary).
asio::awaitable<void> command_connection::pump_output() {
  const std::size_t size = o_.binary ? static_cast<std::size_t>(o_.chunk) : std::size_t{64} << 10;
  const auto buffer = std::make_unique_for_overwrite<char[]>(size);
  // Never hold more than a message may be: a longer line goes in pieces.
  record_splitter lines(o_.null_delimited ? '\0' : '\n',
                        static_cast<std::size_t>(o_.server.listener.connection.max_message_size));
  std::error_code ec;
  for (;;) {
    const auto n = co_await output_.async_read_some(asio::buffer(buffer.get(), size), use_ec(ec));
    if (ec) break;
    if (!sending_) continue;
    if (o_.binary) {
      co_await send(message_type::binary, std::string_view(buffer.get(), n));
      continue;
    }
    lines.feed(std::string_view(buffer.get(), n));
    while (sending_) {
      const auto line = lines.next();
      if (!line) break;
      co_await send_line(*line);
    }
  }
  if (sending_) {
    const auto last = lines.finish();  // a last line without its newline
    if (last) co_await send_line(*last);
  }
  output_done_ = true;
}

asio::awaitable<void> command_connection::pump_errors() {
  constexpr std::size_t size = 16 << 10, max_line = 64 << 10;
  const auto buffer = std::make_unique_for_overwrite<char[]>(size);
  std::string line;
  std::error_code ec;
  for (;;) {
    const auto n = co_await errors_.async_read_some(asio::buffer(buffer.get(), size), use_ec(ec));
    if (ec) break;
    std::string_view rest(buffer.get(), n);
    for (;;) {
      const auto end = rest.find('\n');
      if (end == std::string_view::npos) {
        line.append(rest);
        if (line.size() >= max_line) {
          emit_child_stderr(session_.id, line);
          line.clear();
        }
        break;
      }
      line.append(rest.substr(0, end));
      emit_child_stderr(session_.id, line);
      line.clear();
      rest.remove_prefix(end + 1);
    }
  }
  if (!line.empty()) emit_child_stderr(session_.id, line);
}

// ------------------------------------------------------------------------------------------------

asio::awaitable<void> command_session(websocket& ws, session_context& session, const serve_options& o,
                                      fork_slots& slots) {
  if (!slots.claim(ws.remote_endpoint())) slots.take_anyway();
  endpoint_program p;
  const bool found = resolve_endpoint(o, ws.request().path, p);
  child_process child;
  std::error_code ec = found ? std::error_code() : std::make_error_code(std::errc::no_such_file_or_directory);
  if (found) ec = spawn_child(p.program, p.argv, build_environment(o, ws, session, p), child);
  if (ec) {
    slots.give_back();
    diagnostics::error(
        fmt::format("[{}] cannot start {}: {}", session.id, found ? p.program : ws.request().path, ec.message()));
    std::error_code ignored;
    co_await ws.close(close_code::internal_error, "cannot start the command", ignored);
    co_return;
  }
  diagnostics::debug(fmt::format("[{}] process {} started: {}", session.id, child.pid, p.program));
  {
    command_connection connection(ws, session, o, child);
    co_await connection.run();
  }
  slots.give_back();
}

}  // namespace

int run_serve_command(serve_options& o) {
  if (!o.dir.empty()) {
    char resolved[PATH_MAX];
    if (::realpath(o.dir.c_str(), resolved) == nullptr) {
      diagnostics::fatal(fmt::format("--dir {}: {}", o.dir, std::strerror(errno)));
      return exit_usage;
    }
    o.dir = resolved;
  } else {
    o.program = find_program(o.command.front());
    if (o.program.empty()) {
      diagnostics::fatal(fmt::format("{}: command not found (or not executable)", o.command.front()));
      return exit_usage;
    }
  }
  if (o.close_grace.count() <= 0) {
    diagnostics::fatal("--close-grace: more than 0");
    return exit_usage;
  }

  auto slots = std::make_shared<fork_slots>(o.max_forks);
  auto& listener = o.server.listener;
  listener.hook = [&o, slots](const http_request& req, http_response& res) {
    endpoint_program p;
    if (!resolve_endpoint(o, req.path, p)) {
      res.reject(404, "no such endpoint\n");
      return;
    }
    if (!slots->try_take()) {
      diagnostics::warning(fmt::format("{} {}: refused with 503, --max-forks {} processes are running",
                                       format_endpoint(req.remote_endpoint), req.target, o.max_forks));
      res.reject(503, "too many processes\n");
      res.headers.add("Retry-After", "1");
      return;
    }
    slots->note_taken(req.remote_endpoint);
  };
  listener.on_negotiation = [slots](const negotiation_record& r) {
    if (r.error) slots->negotiation_failed(r.remote);
  };
  server_callbacks callbacks;
  callbacks.aborting = [] { kill_all_children(); };
  return run_server(
      "serve", o.server,
      [&o, slots](websocket& ws, session_context& session) { return command_session(ws, session, o, *slots); },
      callbacks);
}

}  // namespace wsl::cli
