// What every subcommand shares: exit codes, option parsing helpers, diagnostics on stderr.
#pragma once

#include <wsl/deflate.hpp>
#include <wsl/wsl.hpp>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <sys/uio.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace wsl::cli {

// Exit statuses (DESIGN.md; sysexits.h where it has one).
enum exit_status : int {
  exit_ok = 0,
  exit_failure = 1,
  exit_usage = 64,
  exit_unavailable = 69,  // could not connect, unknown host, address in use
  exit_timeout = 75,
  exit_protocol = 76,  // protocol error or handshake rejected
  exit_tls = 77,
  exit_interrupted = 130,
};

// The exit status an error calls for.
int exit_status_for(std::error_code ec) noexcept;

// A subcommand: its CLI11 node and what runs it once the command line is parsed.
struct subcommand {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

// "64M", "1GiB", "16k", "4096", "0" -> bytes (binary multiples). Throws CLI::ValidationError.
std::uint64_t parse_size(std::string_view text);
// "50k" -> 50000: a count or a rate, with an optional decimal k, M or G suffix, as they are
// printed. Throws std::invalid_argument.
double parse_count(std::string_view text);
// "30s", "500ms", "2m", "1.5", "0" -> duration (plain numbers are seconds). Throws CLI::ValidationError.
clock::duration parse_duration(std::string_view text);

// Options taking a size or a duration, with a readable default in --help.
CLI::Option* add_size_option(CLI::App& app, const std::string& name, std::uint64_t& target, const std::string& help);
CLI::Option* add_duration_option(CLI::App& app, const std::string& name, clock::duration& target,
                                 const std::string& help);
// Options taking a count or a rate, with an optional decimal k, M or G suffix (parse_count()):
// "-r 200k", "-c 10k".
CLI::Option* add_count_option(CLI::App& app, const std::string& name, double& target, const std::string& help);
CLI::Option* add_count_option(CLI::App& app, const std::string& name, std::size_t& target, const std::string& help);
std::string format_size(std::uint64_t bytes);
// "HOST:PORT", or "[ADDRESS]:PORT" for IPv6 (a bare IPv6 address with a port is ambiguous): host
// without brackets and port. On failure, what is wrong, to follow "--option 'TEXT': ".
std::optional<std::string> parse_host_port(std::string_view text, std::string& host, std::uint16_t& port,
                                           unsigned min_port = 1);

// --unix-mode MODE for the socket `path`: octal permissions, 1 to 7777. What is wrong otherwise
// (also a name in the abstract namespace, which has no file).
std::optional<std::string> parse_unix_mode(const std::string& text, const std::string& path, unsigned& mode);

// "2026-12-01 11:42 UTC"
std::string format_utc(std::chrono::system_clock::time_point t);

// The password in a --tls-key-password-file or --key-password-file: its first line, without the
// line end (at most 1023 bytes, as OpenSSL takes). False with `problem` when it cannot be read or
// is empty.
bool read_password_file(const std::string& path, std::string& password, std::string& problem);
// A private key's load failure, with the option to use when the key is encrypted and no password
// file was given.
std::string explain_key_problem(const std::string& problem, const std::string& password_file, std::string_view option);
std::string format_duration(clock::duration d);

// Whether c may be in an HTTP token (RFC 9110 section 5.6.2): a header's name, a subprotocol.
inline bool is_token_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// Diagnostics go to stderr, one line each, prefixed with the program and subcommand name.
class diagnostics {
 public:
  static void configure(std::string prefix, int verbosity, bool quiet);
  static int verbosity() noexcept;
  static bool quiet() noexcept;
  static void error(std::string_view text);  // shown unless -q
  static void warning(std::string_view text);
  static void info(std::string_view text);   // -v
  static void debug(std::string_view text);  // -vv
  // Always shown: the one line that explains a failing exit.
  static void fatal(std::string_view text);
  // A log_function for the library, mapping its levels onto ours.
  static log_function library_log();
};

std::string format_endpoint(const asio::ip::tcp::endpoint& ep);

// The completion handler for co_spawn of one of `running` coroutines that an object waits for (the
// pumps of a command or a TCP bridge): it counts the coroutine out, calls `wake`, and logs the
// exception it ended with, if any, after `prefix`, rather than let it escape the io_context. The
// counter and the prefix must outlive the coroutines.
template <class Wake>
auto counted_out(int& running, Wake wake, std::string_view prefix) {
  return [&running, wake, prefix](std::exception_ptr e) {
    --running;
    wake();
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& what) {
      diagnostics::error(fmt::format("{}{}", prefix, what.what()));
    }
  };
}

// Why --unix-socket and TLS do not go together, on either side.
inline constexpr std::string_view no_tls_over_unix =
    "wss:// over a Unix-domain socket is not supported (TLS needs TCP here)";

// Who a server's peer is, for logs: its TCP endpoint, or over a Unix-domain socket
// "unix:pid=PID,uid=UID".
// "127.0.0.1:41234", "[::1]:41234", "unix:pid=7,uid=1000"; behind a trusted proxy (client_address
// not ep's), the client's address alone: "198.51.100.7".
std::string format_peer(const asio::ip::tcp::endpoint& ep, const std::optional<peer_credentials>& unix_peer,
                        const asio::ip::address& client_address = {});
std::string format_peer(const http_request& req);
std::string format_peer(const websocket& ws);

// Signals. SIGINT and SIGTERM are blocked in every thread and taken by one thread with sigwait():
// the first runs the handler (on that thread: post to an io_context from it), a second one, or one
// while no handler is set, runs the abort hook and exits at once (130, 143 after SIGTERM).
// start_signal_thread() goes before any other thread is created, so that all inherit the mask;
// it also ignores SIGPIPE (writes report EPIPE instead). With take_hangup (the servers), SIGHUP is
// taken too: it runs the reload hook when one is set, and is not counted as a first signal then;
// without one it is a third signal like SIGTERM (129).
void start_signal_thread(bool take_hangup = false);

// Runs each io_context on a thread of its own. When a thread cannot be started (threads or memory
// exhausted), the contexts are stopped, the threads already started joined, and the error thrown:
// main() prints it in one line.
std::vector<std::thread> run_threads(const std::vector<asio::io_context*>& contexts);
void set_signal_handler(std::function<void(int)> handler);
void set_abort_hook(std::function<void()> hook);
void set_reload_hook(std::function<void()> hook);
int exit_status_for_signal(int signal) noexcept;

// Writes all of parts[0..count) to fd, blocking, whatever fd is: EINTR is retried, and EAGAIN (a
// non-blocking descriptor shared with another process) waits in poll(). Consumes the parts.
// Returns 0, or the errno of the first failure (EPIPE: the reader went away).
int write_fully(int fd, iovec* parts, int count) noexcept;

// Many connections need many descriptors: the soft limit is raised to the hard one.
void raise_descriptor_limit() noexcept;

// Adds -v (repeatable) and -q to a subcommand.
void add_verbosity_options(CLI::App& app, int& verbosity, bool& quiet);

// --deflate and its parameters; apply_deflate() adds the extension when --deflate was given.
struct deflate_cli {
  bool enabled = false;
  deflate_options options;
};
void add_deflate_options(CLI::App& app, deflate_cli& d);
std::error_code apply_deflate(const deflate_cli& d, connection_options& c, std::string& problem);

}  // namespace wsl::cli
