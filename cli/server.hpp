// The runtime of the server subcommands (echo, serve): one io_context and one SO_REUSEPORT
// listener per thread, the listening line, the shared HTTP side (http_options.hpp) with its access
// log, graceful shutdown on SIGINT/SIGTERM.
#pragma once

#include "common.hpp"
#include "http_options.hpp"

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace wsl::cli {

struct server_options {
  // --host (repeatable): addresses, or names standing for every address they resolve to.
  std::vector<std::string> hosts = {"127.0.0.1"};
  std::uint16_t port = 8080;
  // --unix-socket (repeatable): Unix-domain sockets to listen on, instead of TCP unless --host or
  // --port is given too.
  std::vector<std::string> unix_sockets;
  bool tcp_given = false;               // --host or --port was given (set as add_server_options' parse them)
  std::string unix_mode;                // --unix-mode, octal
  std::vector<std::string> listen_fds;  // --listen-fd (repeatable): sockets that already listen, or "systemd"
  unsigned threads = 1;
  std::uint64_t max_connections = 10000;
  std::uint64_t max_connections_per_ip = 0;              // an IPv4 address or an IPv6 /64; 0 = no limit
  std::vector<std::string> trusted_proxies;              // --trusted-proxy: addresses or networks, parsed by run_server
  std::string trusted_proxy_header = "X-Forwarded-For";  // --trusted-proxy-header: or Forwarded, X-Real-IP
  bool proxy_protocol = false;                           // --proxy-protocol
  // Connection and negotiation limits. A subcommand may set listener.hook (run for upgrade
  // requests after the --origin check; see http_options.hpp), listener.on_negotiation (run after
  // the access log) and listener.budget (a connection limit it wants to read; else one is made
  // from max_connections).
  listener_options listener;
  http_options http;                  // --origin, --header, --subprotocol, --static
  deflate_cli deflate;                // --deflate and its parameters
  tls_options tls;                    // --tls-cert, --tls-key, --tls-client-ca
  std::string tls_key_password_file;  // --tls-key-password-file: read at start and at each reload
  std::string access_log;             // --access-log FILE: the access lines there, reopened by SIGHUP
  std::string metrics_path;           // --metrics PATH: the counters for Prometheus there (metrics.hpp)
  std::string metrics_listen;         // --metrics-listen HOST:PORT: there instead of the main port
  int verbosity = 0;
  bool quiet = false;
};

// --host, --port, --unix-socket, --unix-mode, --listen-fd, --threads, the size and time bounds, and the HTTP options.
void add_server_options(CLI::App& app, server_options& o);

// One accepted connection, as its handler sees it. Lives as long as the handler runs.
struct session_context {
  std::uint64_t id = 0;  // unique among this process's connections, from 1; "[ID]" in logs
  std::chrono::system_clock::time_point opened;
  // The Unix-domain socket it came through ("@NAME" in the abstract namespace); null over TCP.
  // The listener's, which outlives its sessions.
  const std::string* unix_socket = nullptr;
  // Set by the handler if it must hear of a shutdown (SIGINT, server_control::close_all) before
  // its websocket is closed, e.g. because it may be blocked on something other than the
  // websocket. Called on the session's own thread.
  std::function<void()> on_shutdown;
};

// "[7] ": the start of the lines about one connection (its -vv lines, its frame trace, the stderr
// of its command).
std::string session_prefix(const session_context& s);

// The code a connection ended with, as the access log (-v) and `serve --events` write it: ours if
// we closed first, else the peer's, "1006" when no close frame went either way.
std::string ending_close_code(const websocket& ws);
std::uint16_t ending_close_code_number(const websocket& ws);

// Runs for each accepted websocket, on its thread's executor; the runtime closes the websocket
// (1000 if nothing else was sent) once the handler returns, and with 1001 on SIGINT.
using session_handler = std::function<asio::awaitable<void>(websocket&, session_context&)>;

// What a subcommand may ask of a running server. Thread-safe; valid until run_server returns.
class server_control {
 public:
  virtual ~server_control() = default;
  // One executor per thread, in thread order.
  virtual std::vector<asio::any_io_executor> executors() const = 0;
  // Stops accepting on every thread; run_server returns once the sessions and any other work on
  // the io_contexts have ended.
  virtual void stop_accepting() = 0;
  // Stops accepting and closes every session with this code, as SIGINT does with 1001.
  virtual void close_all(std::uint16_t code, std::string reason) = 0;
  // The status run_server returns unless a signal ended it (0 by default).
  virtual void set_exit_status(int status) = 0;
};

// Optional parts of a subcommand's runtime.
struct server_callbacks {
  // After the listening line, before the threads run: start the subcommand's own work here.
  std::function<void(server_control&)> started;
  // On the first SIGINT or SIGTERM (on the signal thread), before the sessions are closed.
  std::function<void(int signal_number)> interrupted;
  // On a second signal, just before the process exits at once (on the signal thread).
  std::function<void()> aborting;
  // Once the io_contexts have run out, before they are destroyed: objects bound to them go here.
  std::function<void()> finished;
};

// Serves until interrupted (or until a subcommand stops it); returns the exit status (130 after
// SIGINT, 143 after SIGTERM).
int run_server(const std::string& command, const server_options& o, session_handler handler,
               server_callbacks callbacks = {});

}  // namespace wsl::cli
