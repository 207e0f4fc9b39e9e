#pragma once

#include "common.hpp"

namespace wsl::cli {
subcommand register_latency(CLI::App& parent);
}
