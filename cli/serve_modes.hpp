// The options of `wsl serve` and its modes, each in its own file: serve_pipe.cpp (--pipe),
// serve_command.cpp (-- COMMAND, --dir) and serve_tcp.cpp (--tcp). serve.cpp parses and checks the
// command line.
#pragma once

#include "server.hpp"
#include "typed_lines.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace wsl::cli {

struct serve_options {
  server_options server;

  // Framing, both modes (the same rules as `wsl pipe`).
  bool null_delimited = false;     // -0: records end with NUL instead of newline, both ways
  bool binary = false;             // raw chunks as binary messages, payloads written raw
  std::uint64_t chunk = 64 << 10;  // largest message made of one read (--binary)
  line_types types;                // --text-prefix, --binary-prefix, --base64 (not with --binary)
  std::string line_types_problem;  // what is wrong with them (a usage error), or empty

  // --pipe
  bool pipe = false;
  bool prefix_client = false;                                // "ID<TAB>" before each line written to stdout
  bool events = false;                                       // "+ID<TAB>TARGET" at a join, "-ID<TAB>CODE" at a leave
  bool addressed = false;                                    // stdin records are "ID<TAB>payload", "*" = all
  std::uint64_t queue_limit = 8 << 20;                       // bytes a client may fall behind before 1008
  bool one = false;                                          // one client at a time
  bool reject_busy = false;                                  // with --one: 503 instead of waiting
  bool keep_open = false;                                    // go on serving after the end of stdin
  bool live = false;                                         // read stdin even with nobody connected
  clock::duration drain_timeout = std::chrono::seconds(30);  // end of stdin: time to take the rest

  // --tcp HOST:PORT (or unix:PATH): each connection a byte stream to this TCP server (or socket)
  std::string tcp;       // as given
  std::string tcp_host;  // its parts (an IPv6 literal without its brackets)
  std::string tcp_port;
  std::string tcp_unix;  // unix:PATH's PATH (a path, or @NAME in the abstract namespace)
  clock::duration connect_timeout = std::chrono::seconds(10);  // to resolve and connect, each connection
  bool connect_timeout_given = false;

  // -- COMMAND / --dir
  std::vector<std::string> command;  // program and arguments
  std::string program;               // command[0] found in PATH, absolute
  std::string dir;                   // --dir: each executable in it is an endpoint
  std::vector<std::string> passenv;  // names of our variables the child also gets
  clock::duration close_grace = std::chrono::seconds(1);
  std::uint64_t max_forks = 0;  // live children at most (503 beyond); 0 = no limit
};

int run_serve_pipe(serve_options& o);
int run_serve_command(serve_options& o);
int run_serve_tcp(serve_options& o);

}  // namespace wsl::cli
