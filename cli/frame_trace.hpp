// -vv: one line on stderr per message and close frame, for wsl pipe (with stdin and stdout and
// with a COMMAND) and for the servers (echo, serve), whose lines start with the connection's
// "[ID] " so that concurrent clients can be told apart.
//
// A message is one line however it travels: fragments of one message, or a message streamed
// through a relay, are one line, written once the whole message has been sent or received.
#pragma once

#include "common.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

namespace wsl::cli {

// Whether the functions below print anything (-vv, without -q). A caller that must build a prefix
// asks first, so that a connection that is not traced costs no formatting.
bool tracing_frames() noexcept;

// "4000", "1001 (going away)", then the reason in quotes when there is one.
std::string describe_close(const close_status& c);

// `prefix` goes before each line: empty for the client subcommands, "[7] " (the session id, as in
// the servers' other lines) for a server's connection.

// A whole message sent ('>') or received ('<'): "> text message, 3 bytes".
void trace_message(char direction, message_type type, std::uint64_t size, std::string_view prefix = {});

// Our close frame, "> close 1000 (normal closure)", when it is the first of the close handshake:
// the answer to the peer's close is the library's, as the peer's close is traced already.
// Called before ws.close().
void trace_close_sent(const websocket& ws, std::uint16_t code, std::string_view reason, std::string_view prefix = {});

// The close frame the library sent on its own when it failed the connection, the read having
// ended with `ec` ("> close 1002 (protocol error) "a client frame without mask""): 1002, 1007,
// 1009 or 1011 (close_code_for()), if it went out. Nothing for any other end.
void trace_failure_close(const websocket& ws, std::error_code ec, std::string_view prefix = {});

// One control frame received, as trace_control_frames() shows it (for a caller with its own
// control callback). Prints nothing unless tracing_frames().
void trace_control(control_kind kind, std::string_view payload, std::string_view prefix = {});

// From now on, the control frames ws receives as they arrive ("< ping, 4 bytes", "< close 1000
// (normal closure)"): its control callback, set only when tracing_frames().
void trace_control_frames(websocket& ws, std::string prefix = {});

}  // namespace wsl::cli
