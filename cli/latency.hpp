// wsl latency: ping(8) for WebSockets (see man/wsl-latency.1).
#pragma once

#include "common.hpp"

namespace wsl::cli {
subcommand register_latency(CLI::App& parent);
}
