#include "loadtest.hpp"

#include "client.hpp"

namespace wsl::cli {

subcommand register_loadtest(CLI::App& parent) {
  auto options = std::make_shared<client_cli_options>();
  auto* app = parent.add_subcommand("loadtest", "(not yet implemented)");
  add_client_options(*app, *options);
  return {app, [] {
            diagnostics::fatal("not yet implemented");
            return exit_failure;
          }};
}

}  // namespace wsl::cli
