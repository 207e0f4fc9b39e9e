// What the client subcommands (pipe, latency, loadtest) share: the connection options and one
// way to report a failed connect.
#pragma once

#include "common.hpp"

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include <exception>
#include <string>
#include <vector>

namespace wsl::cli {

struct client_cli_options {
  std::string url;
  std::string display_url;           // url with its password hidden (redact_url): what messages show
  std::vector<std::string> headers;  // "Name: value"
  std::string origin;
  std::vector<std::string> subprotocols;
  std::vector<std::string> resolve;           // --resolve HOST:PORT:ADDRESS[,ADDRESS...]
  std::vector<std::string> local_addresses;   // --local-address ADDRESS|CIDR (repeatable)
  bool several_local_addresses = false;       // set by a subcommand that spreads connections over them
  std::vector<asio::ip::address> local_pool;  // what finish_client_options() made of local_addresses
  client_options client;                      // timeouts, connection limits, --proxy
  deflate_cli deflate;
  tls_options tls;                // --cacert, --insecure, --cert, --key (for wss://)
  std::string key_password_file;  // --key-password-file
  bool follow_redirects = false;  // -L
  unsigned max_redirects = 10;    // with -L
};

// -H/--header, --origin, --subprotocol, --proxy, --local-address, --connect-timeout, --handshake-timeout,
// --max-message-size, --ping-interval, --idle-timeout, --close-timeout, -L/--location,
// --max-redirects. The URL is positional.
void add_client_options(CLI::App& app, client_cli_options& o);

// Turns the command-line form into client_options (headers parsed); a malformed -H is a usage error.
std::error_code finish_client_options(client_cli_options& o, std::string& problem);

// One line on stderr saying why connect() failed, and the exit status for it (69 refused or
// unknown host, 75 timeout, 76 handshake refused with its status or a redirect not followed, 1
// otherwise). A proxy's refusal
// of CONNECT: 69 for 5xx but 504 (it could not reach the server), 75 for 504, 76 otherwise. The
// URL is shown with its password hidden.
int report_connect_failure(std::string_view url, std::error_code ec, const connect_report& report);

// The same line and status without printing them, and whether trying again would most likely meet
// the same answer (`lasting`): a handshake or CONNECT refused with a 3xx or 4xx status other than
// 408 and 429, a redirect not followed, a TLS verification or handshake failure. A refused or lost
// TCP connection, a timeout, an unknown host or a 5xx may pass.
struct connect_failure {
  std::string text;
  int status = exit_failure;
  bool lasting = false;
};
connect_failure describe_connect_failure(std::string_view url, std::error_code ec, const connect_report& report);

// Where connect() went, for messages: "unix:PATH" through a Unix-domain socket, the TCP endpoint
// (the proxy's through one) otherwise.
std::string format_remote(const connect_report& report);

// -v: the requests sent (CONNECT to a proxy, then the upgrade) and the response heads received,
// as curl -v shows them, credentials hidden.
void trace_handshake(const connect_report& report);

// connect() to o.url, as wsl pipe (both modes) and wsl latency do it: -v's handshake trace, then,
// when it failed and no signal came meanwhile (`signal` still 0), the failure's one line and its
// exit status in `status`. The websocket is open when ec is clear.
asio::awaitable<websocket> connect_and_report(asio::any_io_executor executor, const client_cli_options& o,
                                              connect_report& report, const int& signal, int& status,
                                              std::error_code& ec);

// Runs ctx on this thread until session.run() has ended, with SIGINT and SIGTERM posted to
// session.interrupt(signal) meanwhile. An exception that escapes the session is reported as the
// one fatal line, and the result is false.
template <typename Session>
bool run_interruptible(asio::io_context& ctx, Session& session) {
  set_signal_handler([&ctx, &session](int signal_number) {
    asio::post(ctx, [&session, signal_number] { session.interrupt(signal_number); });
  });
  asio::co_spawn(ctx, session.run(), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  bool ended = true;
  try {
    ctx.run();
  } catch (const std::exception& e) {
    diagnostics::fatal(e.what());
    ended = false;
  }
  set_signal_handler(nullptr);  // what it refers to ends with the caller's block
  return ended;
}

}  // namespace wsl::cli
