#pragma once

#include "common.hpp"

namespace wsl::cli {
subcommand register_pipe(CLI::App& parent);
}
