// wsl serve: stdin/stdout broadcast (--pipe) or a command per connection (see man/wsl-serve.1).
#pragma once

#include "common.hpp"

namespace wsl::cli {
subcommand register_serve(CLI::App& parent);
}
