// -vv of the client subcommands: one line on stderr per message and close frame, the same for
// wsl pipe with stdin and stdout and with a COMMAND.
#pragma once

#include "common.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace wsl::cli {

// "4000", "1001 (going away)", then the reason in quotes when there is one.
std::string describe_close(const close_status& c);

// A whole message sent ('>') or received ('<'): "> text message, 3 bytes". Fragments of one
// message are one line.
void trace_message(char direction, message_type type, std::uint64_t size);

// Our close frame, "> close 1000 (normal closure)", when it is the first of the close handshake:
// the answer to the peer's close is the library's, as the peer's close is traced already.
// Called before ws.close().
void trace_close_sent(const websocket& ws, std::uint16_t code, std::string_view reason);

// Control frames as they arrive: the websocket's control callback.
void trace_control(control_kind kind, std::string_view payload);

}  // namespace wsl::cli
