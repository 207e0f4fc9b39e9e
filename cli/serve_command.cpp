// wsl serve -- COMMAND / --dir DIR: one process per connection, as websocketd runs them.
//
// Each connection's process gets the client's messages on stdin and its stdout lines go back as
// messages; its stderr goes to ours, each line prefixed with the connection id. The process's life
// on its connection is running_command's (running_command.hpp); this file chooses the program,
// builds its CGI environment, counts processes (--max-forks) and maps its exit to a close code:
// 1000 for status 0, 1011 "exit N" / "signal N (SIGX)" otherwise. When the client leaves first (or
// SIGINT) the process's stdin is closed; --close-grace later its group gets SIGTERM, as long again
// later SIGKILL. Either way the process is reaped before the session ends.
// serve_modes.hpp first: it brings Asio's config.hpp in before any standard header, as every other
// file of the program does. Asio decides ASIO_HAS_STD_ALIGNED_ALLOC from a macro of the standard
// library's config; files that disagree on it pair aligned_alloc with operator delete (ASan says
// alloc-dealloc-mismatch).
#include "serve_modes.hpp"

#include "frame_trace.hpp"
#include "process.hpp"
#include "running_command.hpp"

#include <sys/wait.h>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <unordered_set>

namespace wsl::cli {
namespace {

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
  // (its listener's), in that order: a slot taken by the hook is noted by connection there (its
  // number: on a Unix-domain socket every peer has the same empty endpoint).
  void note_taken(std::uint64_t connection) { pending().insert(connection); }
  // A negotiation failed after the hook took a slot (the 101 could not be written, say).
  void negotiation_failed(std::uint64_t connection) {
    if (pending().erase(connection) != 0) give_back();
  }
  // The session takes over the slot its negotiation took; false when it had none.
  bool claim(std::uint64_t connection) { return pending().erase(connection) != 0; }

 private:
  static std::unordered_set<std::uint64_t>& pending() {
    thread_local std::unordered_set<std::uint64_t> set;
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
  if (const auto peer = ws.unix_peer()) {
    // No port: who connected instead, for a command that decides by user; and the client a PROXY
    // header named (--proxy-protocol behind HAProxy), if one did.
    if (s.unix_socket) add("WSL_UNIX_SOCKET", *s.unix_socket);
    add("WSL_PEER_PID", std::to_string(peer->pid));
    add("WSL_PEER_UID", std::to_string(peer->uid));
    add("WSL_PEER_GID", std::to_string(peer->gid));
    if (!req.client_address.is_unspecified()) {
      add("REMOTE_ADDR", req.client_address.to_string());
      add("REMOTE_HOST", req.client_address.to_string());
    }
  } else {
    add("SERVER_PORT", std::to_string(local.port()));
    // Behind a --trusted-proxy: the client it names, whose port nobody told us.
    const auto client = req.client_address;
    add("REMOTE_ADDR", client.to_string());
    add("REMOTE_HOST", client.to_string());
    if (client == remote.address()) add("REMOTE_PORT", std::to_string(remote.port()));
  }
  add("REQUEST_METHOD", req.method);
  add("REQUEST_URI", req.target);
  add("SCRIPT_NAME", p.script_name);
  add("PATH_INFO", p.path_info);
  add("QUERY_STRING", req.query);
  add("WEBSOCKET_SUBPROTOCOL", ws.subprotocol());
  add("WSL_CONNECTION_ID", id);
  add("UNIQUE_ID", id);  // websocketd's name for it
  // --basic-auth-file: who the checked credentials are (CGI's names); the password stays here.
  const bool authenticated = !o.server.http.basic_auth_file.empty();
  if (authenticated) {
    add("AUTH_TYPE", "Basic");
    add("REMOTE_USER", basic_auth_user(req));
  }
  // HTTP_<NAME> for each request header; repeated fields joined with ", " as CGI does.
  std::vector<std::pair<std::string, std::string>> http;
  for (const auto& f : req.headers) {
    std::string name = "HTTP_";
    for (char c : f.name) name.push_back(c >= 'a' && c <= 'z' ? static_cast<char>(c - 32) : (c == '-' ? '_' : c));
    bool valid = true;
    for (char c : name) valid = valid && ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_');
    if (!valid || name == "HTTP_PROXY") continue;  // "httpoxy": Proxy: would become the child's proxy
    if (authenticated && name == "HTTP_AUTHORIZATION") continue;
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

constexpr std::string_view start_failure = "cannot start the command";

void trace_start_failure(const websocket& ws, const session_context& session) {
  if (tracing_frames()) trace_close_sent(ws, close_code::internal_error, start_failure, session_prefix(session));
}

asio::awaitable<void> command_session(websocket& ws, session_context& session, const serve_options& o,
                                      fork_slots& slots) {
  if (!slots.claim(ws.request().connection_id)) slots.take_anyway();
  endpoint_program p;
  const bool found = resolve_endpoint(o, ws.request().path, p);
  child_process child;
  std::error_code ec = found ? std::error_code() : std::make_error_code(std::errc::no_such_file_or_directory);
  if (found) ec = spawn_child(p.program, p.argv, build_environment(o, ws, session, p), child);
  if (ec) {
    slots.give_back();
    diagnostics::error(
        fmt::format("[{}] cannot start {}: {}", session.id, found ? p.program : ws.request().path, ec.message()));
    trace_start_failure(ws, session);
    std::error_code ignored;
    co_await ws.close(close_code::internal_error, start_failure, ignored);
    co_return;
  }
  diagnostics::debug(fmt::format("[{}] process {} started: {}", session.id, child.pid, p.program));
  {
    running_command_options options;
    options.null_delimited = o.null_delimited;
    options.binary = o.binary;
    options.chunk = o.chunk;
    options.types = o.types;
    options.max_line = o.server.listener.connection.max_message_size;
    options.close_grace = o.close_grace;
    options.log_prefix = session_prefix(session);
    options.trace_frames = tracing_frames();
    // Status 0 closes with 1000; any other end with 1011 and "exit N" / "signal N (SIGX)".
    options.close_for_exit = [](int status) {
      const bool success = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      return success ? close_status{close_code::normal, {}}
                     : close_status{close_code::internal_error, describe_wait_status(status)};
    };
    running_command command(ws, child, options);
    session.on_shutdown = [&command] { command.stop(); };
    co_await command.run();
    session.on_shutdown = nullptr;
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
                                       format_peer(req), req.target, o.max_forks));
      res.reject(503, "too many processes\n");
      res.headers.add("Retry-After", "1");
      return;
    }
    slots->note_taken(req.connection_id);
  };
  listener.on_negotiation = [slots](const negotiation_record& r) {
    if (r.error) slots->negotiation_failed(r.connection_id);
  };
  server_callbacks callbacks;
  callbacks.aborting = [] { kill_all_children(); };
  return run_server(
      "serve", o.server,
      [&o, slots](websocket& ws, session_context& session) { return command_session(ws, session, o, *slots); },
      callbacks);
}

}  // namespace wsl::cli
