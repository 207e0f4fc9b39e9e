#pragma once

#include "common.hpp"

namespace wsl::cli {
subcommand register_echo(CLI::App& parent);
}
