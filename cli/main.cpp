// wsl: one binary, a subcommand per tool.
#include "common.hpp"
#include "echo.hpp"
#include "latency.hpp"
#include "loadtest.hpp"
#include "pipe.hpp"
#include "serve.hpp"

#include <cstdio>
#include <exception>
#include <vector>

int main(int argc, char** argv) {
  using namespace wsl::cli;
  CLI::App app{"wsl: a WebSocket toolkit (RFC 6455): servers, clients, latency and load tests", "wsl"};
  app.set_version_flag("--version", "wsl " WSL_VERSION);
  app.require_subcommand(0, 1);
  app.footer(
      "Exit status: 0 ok, 1 failure, 64 usage, 69 unavailable, 75 timeout, 76 protocol or handshake "
      "error, 77 TLS verification, 130 interrupted. See wsl(1).");

  std::vector<subcommand> commands = {register_echo(app), register_pipe(app), register_latency(app),
                                      register_loadtest(app), register_serve(app)};
  // One value per occurrence for every repeatable option (--host A --host B): CLI11 would let
  // `wsl serve --trusted-proxy 10.0.0.1 cat` take `cat` for a second address, and `wsl loadtest
  // --server-pid 7 URL` the URL, leaving the command or the URL missing.
  for (auto& c : commands)
    for (auto* option : c.app->get_options())
      if (option->nonpositional()) option->allow_extra_args(false);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion&) {
    std::printf("wsl %s\n", WSL_VERSION);
    return exit_ok;
  } catch (const CLI::ParseError& e) {
    std::string where = "wsl";
    for (const auto* sub : app.get_subcommands()) where += " " + sub->get_name();
    std::fprintf(stderr, "%s: %s (see %s --help)\n", where.c_str(), e.what(), where.c_str());
    return exit_usage;
  }
  for (auto& c : commands) {
    if (!c.app->parsed()) continue;
    try {
      return c.run();
    } catch (const std::exception& e) {
      // What no subcommand expects (memory or threads exhausted, say): one line and status 1, not
      // an abort with a core dump.
      std::fprintf(stderr, "wsl %s: %s\n", c.app->get_name().c_str(), e.what());
      return exit_failure;
    }
  }
  std::fprintf(stderr, "wsl: a subcommand is required: echo, serve, pipe, latency or loadtest (see wsl --help)\n");
  return exit_usage;
}
