#pragma once

#include "common.hpp"

namespace wsl::cli {
subcommand register_loadtest(CLI::App& parent);
}
