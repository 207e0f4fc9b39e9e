// wsl serve: the command line. One of four modes:
//   wsl serve --pipe                 stdin lines to every client, their messages to stdout
//   wsl serve -- COMMAND [ARGS...]   one process per connection, websocketd-style
//   wsl serve --dir DIR              the same, each executable in DIR at /NAME
//   wsl serve --tcp HOST:PORT        one TCP connection per connection, websockify-style
// The modes live in serve_pipe.cpp, serve_command.cpp and serve_tcp.cpp; the HTTP side is shared
// with echo (http_options.cpp), the runtime is server.cpp's.
#include "serve.hpp"

#include "process.hpp"
#include "serve_modes.hpp"

#include <sys/stat.h>

#include <cstdlib>
#include <optional>

namespace wsl::cli {
namespace {

// --tcp HOST:PORT into its parts (or unix:PATH into the path), or what is wrong with it.
std::optional<std::string> split_tcp_target(serve_options& o) {
  // A path begins with '/', '.' or '@' (the abstract namespace): "unix:8080" stays a host and port.
  if (o.tcp.starts_with("unix:") && o.tcp.size() > 5 && std::string_view("/.@").find(o.tcp[5]) != std::string::npos) {
    o.tcp_unix = o.tcp.substr(5);
    std::error_code bad;
    unix_endpoint(o.tcp_unix, bad);
    if (bad) return fmt::format("--tcp '{}': {}", o.tcp, bad.message());
    return std::nullopt;
  }
  std::uint16_t port = 0;
  if (auto problem = parse_host_port(o.tcp, o.tcp_host, port)) return fmt::format("--tcp '{}': {}", o.tcp, *problem);
  o.tcp_port = std::to_string(port);
  return std::nullopt;
}

int run_serve(serve_options& o) {
  diagnostics::configure("wsl serve", o.server.verbosity, o.server.quiet);
  const int modes = (o.pipe ? 1 : 0) + (o.command.empty() ? 0 : 1) + (o.dir.empty() ? 0 : 1) + (o.tcp.empty() ? 0 : 1);
  if (modes != 1) {
    diagnostics::fatal(modes == 0 ? "say what to serve: --pipe, --dir DIR, --tcp HOST:PORT or -- COMMAND [ARGS...]"
                                  : "--pipe, --dir, --tcp and a COMMAND exclude each other");
    return exit_usage;
  }
  if (o.connect_timeout_given && o.tcp.empty()) {
    diagnostics::fatal("--connect-timeout is for --tcp");
    return exit_usage;
  }
  if (o.binary && o.null_delimited) {
    diagnostics::fatal("--binary and -0 exclude each other");
    return exit_usage;
  }
  if (!o.line_types_problem.empty()) {
    diagnostics::fatal(o.line_types_problem);
    return exit_usage;
  }
  if ((o.binary || !o.tcp.empty()) && (o.chunk == 0 || o.chunk > (std::uint64_t{1} << 30))) {
    diagnostics::fatal("--chunk: between 1 byte and 1G");
    return exit_usage;
  }
  if ((o.pipe || !o.tcp.empty()) && (!o.passenv.empty() || o.max_forks != 0)) {
    diagnostics::fatal("--passenv and --max-forks are for a COMMAND or --dir");
    return exit_usage;
  }
  if (!o.tcp.empty()) {
    if (auto problem = split_tcp_target(o)) {
      diagnostics::fatal(*problem);
      return exit_usage;
    }
    // Bytes both ways: no records to delimit or type.
    const char* framing = o.null_delimited ? "-0"
                          : o.types.any()  ? "--text-prefix, --binary-prefix and --base64"
                                           : nullptr;
    if (framing) {
      diagnostics::fatal(fmt::format("{}: not with --tcp, which relays bytes (binary messages back)", framing));
      return exit_usage;
    }
    if (o.connect_timeout.count() <= 0) {
      diagnostics::fatal("--connect-timeout: more than 0");
      return exit_usage;
    }
  }
  if (!o.pipe) {
    const char* pipe_only = o.prefix_client ? "--prefix-client"
                            : o.addressed   ? "--addressed"
                            : o.events      ? "--events"
                            : o.one         ? "--one"
                            : o.reject_busy ? "--reject-busy"
                            : o.keep_open   ? "--keep-open"
                            : o.live        ? "--live"
                                            : nullptr;
    if (pipe_only) {
      diagnostics::fatal(fmt::format("{} is for --pipe", pipe_only));
      return exit_usage;
    }
    return o.tcp.empty() ? run_serve_command(o) : run_serve_tcp(o);
  }
  if (o.events) o.prefix_client = true;
  if (o.prefix_client && o.binary) {
    diagnostics::fatal(o.events ? "--events needs lines: not with --binary"
                                : "--prefix-client needs lines: not with --binary");
    return exit_usage;
  }
  if (o.addressed && o.binary) {
    diagnostics::fatal("--addressed needs lines: not with --binary");
    return exit_usage;
  }
  if (o.addressed && o.one) {
    diagnostics::fatal("--addressed and --one exclude each other: with --addressed, stdin picks the client");
    return exit_usage;
  }
  if (o.reject_busy && !o.one) {
    diagnostics::fatal("--reject-busy goes with --one");
    return exit_usage;
  }
  if (o.server.threads != 1) {
    diagnostics::fatal("--pipe runs on one thread (one stdin, one stdout): leave --threads at 1");
    return exit_usage;
  }
  if (o.queue_limit == 0) {
    diagnostics::fatal("--queue-limit: at least 1 byte");
    return exit_usage;
  }
  return run_serve_pipe(o);
}

}  // namespace

subcommand register_serve(CLI::App& parent) {
  auto o = std::make_shared<serve_options>();
  auto* app = parent.add_subcommand("serve",
                                    "Serve stdin/stdout to WebSocket clients (--pipe), a command per connection (-- "
                                    "COMMAND), or a TCP server (--tcp)");
  add_server_options(*app, o->server);

  app->add_flag("--pipe", o->pipe, "Send each stdin line to every client; write every message received to stdout");
  app->add_option("--dir", o->dir, "Serve each executable in DIR as an endpoint at /NAME")->type_name("DIR");
  app->add_option("command", o->command, "The command to run per connection (after --)")->type_name("COMMAND");
  app->add_option("--tcp", o->tcp,
                  "Relay each connection to this TCP server (or unix:PATH, a Unix-domain socket), bytes both ways "
                  "(binary messages back), like websockify")
      ->type_name("HOST:PORT");
  add_duration_option(*app, "--connect-timeout", o->connect_timeout,
                      "--tcp: time to resolve and connect to the server behind, for each connection")
      ->each([o](const std::string&) { o->connect_timeout_given = true; });

  app->add_flag("-0,--null", o->null_delimited, "Records end with NUL instead of newline, both ways");
  auto* binary = app->add_flag("-b,--binary", o->binary,
                               "Binary messages of raw chunks (up to --chunk bytes each); payloads written raw");
  auto types =
      std::make_shared<line_type_options>(*app, o->types, binary, "a line (of stdin, or of the COMMAND's stdout)");
  add_size_option(*app, "--chunk", o->chunk, "Largest message made of one read (--binary, --tcp)");

  app->add_flag("--prefix-client", o->prefix_client, "Write 'ID<TAB>' before each line received");
  app->add_flag("--events", o->events,
                "Also write '+ID<TAB>PATH' when a client starts being served and '-ID<TAB>CODE' when it leaves "
                "(implies --prefix-client)");
  app->add_flag("--addressed", o->addressed,
                "Each stdin line starts with a client's ID and a tab (as --prefix-client writes them) and goes to "
                "that client only; '*<TAB>' in front sends it to every client");
  add_size_option(*app, "--queue-limit", o->queue_limit,
                  "Bytes a client may fall behind the fastest one; beyond it, it is closed with 1008");
  app->add_flag("--one", o->one, "One client at a time; later ones wait for their turn");
  app->add_flag("--reject-busy", o->reject_busy, "With --one: answer later clients 503 instead");
  app->add_flag("--keep-open", o->keep_open, "At the end of stdin, keep serving (and writing to stdout)");
  app->add_flag("--live", o->live,
                "Read stdin even while no client is connected (what arrives then reaches nobody); by "
                "default stdin waits for the first client");
  add_duration_option(*app, "--drain-timeout", o->drain_timeout,
                      "At the end of stdin, drop a client that has not taken its queue within this time");

  app->add_option("--passenv", o->passenv, "Pass this variable of wsl's environment to the command (repeatable)")
      ->type_name("NAME");
  add_duration_option(*app, "--close-grace", o->close_grace,
                      "After the client leaves: time before SIGTERM, then as long again before SIGKILL");
  app->add_option("--max-forks", o->max_forks, "Processes running at most (503 beyond); 0 = no limit")
      ->capture_default_str();

  app->footer(
      "Prints 'listening on ws://HOST:PORT/' on stderr when ready. --pipe: exits 0 once stdin has ended "
      "and every queued message is delivered (clients closed with 1000). COMMAND: a client's messages go to "
      "the process's stdin, its stdout lines come back as messages, its exit closes the connection with 1000 "
      "(status 0) or 1011 'exit N'. --tcp: the server behind closing closes the connection with 1000, failing "
      "with 1014. SIGINT closes every connection with 1001 and exits 130. "
      "See wsl-serve(1).");
  return {app, [o, types] {
            o->line_types_problem = types->problem(o->null_delimited);
            return run_serve(*o);
          }};
}

}  // namespace wsl::cli
