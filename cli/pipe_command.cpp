// wsl pipe URL -- COMMAND: the client side of a command per connection (websocat's exec:).
//
// Once connected, COMMAND runs with the server's messages on its stdin and its stdout lines (or
// chunks, --binary) going back as messages, its stderr being ours; running_command.hpp does the
// work, as it does for `wsl serve -- COMMAND`. How it ends:
//  - the command exits: the rest of its output is sent, then our close (--close-code, 1000 by
//    default), and wsl exits with the command's status (128+N after signal N, as a shell says);
//  - the server closes (or the connection fails): the command's stdin ends after the last message,
//    it has --close-grace to exit, then SIGTERM, as long again, SIGKILL. The exit status is the
//    connection's when it failed or the server's close code was not a normal one, else the
//    command's, unless we had to signal it;
//  - SIGINT: close 1001, the command gets SIGTERM (SIGKILL --close-grace later), exit 130.
// The command is found in PATH once connected: one that cannot start closes the connection with
// 1011 and wsl exits 1.
#include "pipe_modes.hpp"

#include "process.hpp"
#include "running_command.hpp"
#include "url_userinfo.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>

#include <sys/wait.h>
#include <csignal>
#include <cstring>
#include <memory>

extern char** environ;

namespace wsl::cli {
namespace {

// Ours, with the connection's variables set (and any of ours by the same names left out).
std::vector<std::string> build_environment(std::string_view url, const websocket& ws, const connect_report& report) {
  std::string extensions;
  for (const auto& f : report.response_headers) {
    if (!iequals(f.name, "Sec-WebSocket-Extensions")) continue;
    if (!extensions.empty()) extensions += ", ";
    extensions += f.value;
  }
  const std::pair<std::string_view, std::string> ours[] = {
      {"WSL_URL", url_without_userinfo(report.redirects.empty() ? url : report.final_url)},
      {"WSL_SUBPROTOCOL", std::string(ws.subprotocol())},
      {"WSL_EXTENSIONS", extensions},
      {"WEBSOCKET_SUBPROTOCOL", std::string(ws.subprotocol())},  // the name wsl serve's commands see
  };
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const auto name = entry.substr(0, entry.find('='));
    bool replaced = false;
    for (const auto& [our_name, value] : ours) replaced = replaced || name == our_name;
    if (!replaced) env.emplace_back(entry);
  }
  for (const auto& [name, value] : ours) env.push_back(fmt::format("{}={}", name, value));
  return env;
}

// What a shell makes of a wait status: the exit code, or 128 + the signal.
int shell_status(int wait_status) noexcept {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return exit_failure;
}

class command_session {
 public:
  command_session(const pipe_options& o, asio::io_context& ctx) : o_(o), ctx_(ctx) {
    options_.null_delimited = o.null_delimited;
    options_.binary = o.binary;
    options_.chunk = o.chunk;
    options_.max_line = o.connection.client.connection.max_message_size;
    options_.types = o.types;
    options_.close_grace = o.close_grace;
    options_.message_limit = o.once ? 1 : o.max_messages;
    options_.trace_frames = true;  // as plain pipe does, at -vv
    options_.log_exit = false;     // report_end() says how it ended
    options_.close_for_exit = [this](int) {
      return close_status{static_cast<std::uint16_t>(o_.close_code), o_.close_reason};
    };
  }

  asio::awaitable<void> run();
  // Called on the io_context for the first SIGINT or SIGTERM.
  void interrupt(int signal_number);
  // Once the io_context has run out: says on stderr how it ended and returns the exit status.
  int report_end() const;

 private:
  asio::awaitable<void> close_after_interrupt();

  const pipe_options& o_;
  asio::io_context& ctx_;
  running_command_options options_;
  websocket ws_;
  std::unique_ptr<running_command> command_;
  int connect_status_ = exit_ok;
  bool connected_ = false;
  bool start_failed_ = false;
  int signal_ = 0;
};

asio::awaitable<void> command_session::run() {
  const auto& url = o_.connection.display_url;  // the password hidden: this one is printed
  connect_report report;
  std::error_code ec;
  const auto executor = ctx_.get_executor();
  ws_ = co_await connect_and_report(executor, o_.connection, report, signal_, connect_status_, ec);
  if (signal_ != 0 || ec) co_return;
  connected_ = true;
  report_connected(url, report, ws_);

  const auto& name = o_.command.front();
  const auto program = find_program(name);
  child_process child;
  ec = program.empty() ? std::make_error_code(std::errc::no_such_file_or_directory)
                       : spawn_child(program, o_.command, build_environment(o_.connection.url, ws_, report), child,
                                     child_stderr::inherit);
  if (ec) {
    start_failed_ = true;
    diagnostics::fatal(program.empty() ? fmt::format("{}: command not found (or not executable)", name)
                                       : fmt::format("cannot start {}: {}", program, ec.message()));
    constexpr std::string_view why = "cannot start the command";
    trace_close_sent(ws_, close_code::internal_error, why);
    std::error_code ignored;
    co_await ws_.close(close_code::internal_error, why, ignored);
    co_return;
  }
  diagnostics::debug(fmt::format("process {} started: {}", child.pid, program));
  command_ = std::make_unique<running_command>(ws_, child, options_);
  co_await command_->run();
}

asio::awaitable<void> command_session::close_after_interrupt() {
  constexpr std::string_view why = "interrupted";
  trace_close_sent(ws_, close_code::going_away, why);
  std::error_code ignored;
  co_await ws_.close(close_code::going_away, why, ignored);
}

void command_session::interrupt(int signal_number) {
  if (signal_ != 0) return;
  signal_ = signal_number;
  diagnostics::info(fmt::format("{}: closing with 1001", signal_number == SIGTERM ? "SIGTERM" : "SIGINT"));
  if (!connected_) {
    ctx_.stop();  // nothing to close yet
    return;
  }
  if (command_) command_->interrupt();
  asio::co_spawn(ctx_, close_after_interrupt(), asio::detached);
}

int command_session::report_end() const {
  const int interrupted = signal_ == SIGTERM ? 128 + SIGTERM : exit_interrupted;
  if (!connected_) return signal_ != 0 ? interrupted : connect_status_;
  if (signal_ != 0) return interrupted;
  if (start_failed_) return exit_failure;

  const int wait_status = command_->wait_status();
  diagnostics::info(fmt::format("{}: {}", o_.command.front(), describe_wait_status(wait_status)));
  if (command_->exited_first()) return shell_status(wait_status);

  // The connection ended first: when it failed, or the server's code was not a normal end, that
  // decides; otherwise the command's status, unless it had to be stopped with a signal.
  int connection_status = exit_ok;
  const auto end = command_->input_end();
  const auto& peer = ws_.peer_close();
  if (!end || end == error::closed) {
    if (peer.code != 0) diagnostics::error(fmt::format("server closed the connection: {}", describe_close(peer)));
    const bool normal =
        peer.code == close_code::normal || peer.code == close_code::going_away || peer.code == close_code::no_status;
    connection_status = normal ? exit_ok : exit_protocol;
  } else {
    diagnostics::fatal(fmt::format("connection ended: {}", end.message()));
    connection_status = exit_status_for(end) == exit_ok ? exit_failure : exit_status_for(end);
  }
  if (connection_status != exit_ok || command_->signalled()) return connection_status;
  return shell_status(wait_status);
}

}  // namespace

int run_pipe_command(const pipe_options& o) {
  set_abort_hook([] { kill_all_children(); });  // a second SIGINT takes the command along
  int status = exit_ok;
  {
    asio::io_context ctx(1);
    command_session session(o, ctx);
    if (!run_interruptible(ctx, session)) {
      kill_all_children();
      return exit_failure;
    }
    status = session.report_end();
  }
  return status;
}

}  // namespace wsl::cli
