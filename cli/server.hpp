// The runtime of the server subcommands (echo, serve): one io_context and one SO_REUSEPORT
// listener per thread, the listening line, graceful shutdown on SIGINT/SIGTERM.
#pragma once

#include "common.hpp"

#include <asio/awaitable.hpp>

#include <functional>
#include <string>

namespace wsl::cli {

struct server_options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
  unsigned threads = 1;
  std::uint64_t max_connections = 10000;
  listener_options listener;  // connection and negotiation limits
  int verbosity = 0;
  bool quiet = false;
};

// --host, --port, --threads and the size and time bounds.
void add_server_options(CLI::App& app, server_options& o);

// Runs for each accepted websocket, on its thread's executor; the runtime closes the websocket
// with 1001 on SIGINT and waits for the handler to return.
using session_handler = std::function<asio::awaitable<void>(websocket&)>;

// Serves until interrupted; returns the exit status (130 after SIGINT, 143 after SIGTERM).
int run_server(const std::string& command, const server_options& o, session_handler handler);

}  // namespace wsl::cli
