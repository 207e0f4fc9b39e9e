// wsl pipe: stdin to messages, messages to stdout (see man/wsl-pipe.1).
#pragma once

#include "common.hpp"

namespace wsl::cli {
subcommand register_pipe(CLI::App& parent);
}
