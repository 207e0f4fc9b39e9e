// The options of `wsl pipe` and its two modes: stdin and stdout (pipe.cpp), or a command's
// (pipe_command.cpp: wsl pipe URL -- COMMAND). pipe.cpp parses and checks the command line.
#pragma once

#include "client.hpp"
#include "frame_trace.hpp"
#include "typed_lines.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace wsl::cli {

struct pipe_options {
  client_cli_options connection;
  bool null_delimited = false;     // -0: NUL instead of newline, both ways
  bool binary = false;             // stdin chunks as binary messages, payloads written raw
  std::uint64_t chunk = 64 << 10;  // largest binary message made from stdin
  line_types types;                // --text-prefix, --binary-prefix, --base64 (text mode, stdin and stdout)
  std::string line_types_problem;  // what is wrong with them (a usage error), or empty
  unsigned close_code = close_code::normal;
  std::string close_reason;
  bool once = false;               // -1: exit after the first message received
  std::uint64_t max_messages = 0;  // exit after this many messages received; 0 = no limit
  bool no_close = false;           // at the end of stdin keep receiving until the server closes
  clock::duration linger{};        // at the end of stdin wait for this much quiet before closing
  std::string first_message;       // sent as a text message first on each connection
  bool slash = false;              // stdin lines starting with '/' are commands (/ping, /close)
  bool reconnect = false;          // connect again when the connection ends (or the first attempt fails)
  unsigned reconnect_limit = 0;    // give up after this many failed attempts in a row; 0 = never
  int verbosity = 0;
  bool quiet = false;

  // --tcp-listen [HOST:]PORT: each TCP connection accepted there relayed through a connection to the URL
  std::string tcp_listen;
  std::string unix_listen;            // --unix-listen PATH: the same relay, from a Unix-domain socket
  std::string unix_mode;              // --unix-mode: its file's permissions, octal
  std::size_t max_connections = 100;  // TCP connections relayed at once; more are closed at once
  bool max_connections_given = false;

  // -- COMMAND [ARGS...]
  std::vector<std::string> command;                       // program and arguments
  clock::duration close_grace = std::chrono::seconds(2);  // server gone: time before SIGTERM, then SIGKILL
  bool close_grace_given = false;                         // --close-grace was on the command line
};

// -v: the line saying where we connected, and how fast; -vv: control frames from then on.
void report_connected(std::string_view url, const connect_report& report, websocket& ws);

// wsl pipe URL -- COMMAND, once the options are checked and the signal thread runs.
int run_pipe_command(const pipe_options& o);

// wsl pipe URL --tcp-listen [HOST:]PORT, likewise (pipe_tcp.cpp).
int run_pipe_tcp(const pipe_options& o);

}  // namespace wsl::cli
