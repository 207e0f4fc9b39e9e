// What the client subcommands (pipe, latency, loadtest) share: the connection options and one
// way to report a failed connect.
#pragma once

#include "common.hpp"

#include <string>
#include <vector>

namespace wsl::cli {

struct client_cli_options {
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string origin;
  std::vector<std::string> subprotocols;
  client_options client;  // timeouts and connection limits
  deflate_cli deflate;
  tls_options tls;        // --cacert, --insecure, --cert, --key (for wss://)
};

// -H/--header, --origin, --subprotocol, --connect-timeout, --handshake-timeout,
// --max-message-size, --ping-interval, --idle-timeout, --close-timeout. The URL is positional.
void add_client_options(CLI::App& app, client_cli_options& o);

// Turns the command-line form into client_options (headers parsed); a malformed -H is a usage error.
std::error_code finish_client_options(client_cli_options& o, std::string& problem);

// One line on stderr saying why connect() failed, and the exit status for it (69 refused or
// unknown host, 75 timeout, 76 handshake refused with its status, 1 otherwise).
int report_connect_failure(std::string_view url, std::error_code ec, const connect_report& report);

// -v: the request sent and the response head received, as curl -v shows them.
void trace_handshake(const connect_report& report);

}  // namespace wsl::cli
