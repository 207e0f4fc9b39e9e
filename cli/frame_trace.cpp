#include "frame_trace.hpp"

namespace wsl::cli {
namespace {

std::string_view close_code_name(std::uint16_t code) noexcept {
  switch (code) {
    case 1000: return "normal closure";
    case 1001: return "going away";
    case 1002: return "protocol error";
    case 1003: return "unsupported data";
    case 1005: return "no status code";
    case 1007: return "invalid payload";
    case 1008: return "policy violation";
    case 1009: return "message too big";
    case 1010: return "missing extension";
    case 1011: return "internal error";
    case 1012: return "service restart";
    case 1013: return "try again later";
    case 1014: return "bad gateway";
    default: return {};
  }
}

void trace_control_frame(control_kind kind, std::string_view payload, std::string_view prefix) {
  if (kind == control_kind::close) {
    close_status c;
    c.code = payload.size() >= 2 ? static_cast<std::uint16_t>(static_cast<unsigned char>(payload[0]) << 8 |
                                                              static_cast<unsigned char>(payload[1]))
                                 : close_code::no_status;
    if (payload.size() > 2) c.reason = std::string(payload.substr(2));
    diagnostics::debug(fmt::format("{}< close {}", prefix, describe_close(c)));
    return;
  }
  diagnostics::debug(
      fmt::format("{}< {}, {} bytes", prefix, kind == control_kind::ping ? "ping" : "pong", payload.size()));
}

}  // namespace

bool tracing_frames() noexcept { return diagnostics::verbosity() >= 2 && !diagnostics::quiet(); }

std::string describe_close(const close_status& c) {
  std::string out = std::to_string(c.code);
  if (const auto name = close_code_name(c.code); !name.empty()) out += fmt::format(" ({})", name);
  if (!c.reason.empty()) out += fmt::format(" \"{}\"", c.reason);
  return out;
}

void trace_message(char direction, message_type type, std::uint64_t size, std::string_view prefix) {
  if (!tracing_frames()) return;
  diagnostics::debug(fmt::format("{}{} {} message, {} bytes", prefix, direction,
                                 type == message_type::text ? "text" : "binary", size));
}

void trace_close_sent(const websocket& ws, std::uint16_t code, std::string_view reason, std::string_view prefix) {
  if (!tracing_frames() || ws.peer_close().code != 0 || !ws.is_open()) return;
  diagnostics::debug(fmt::format("{}> close {}", prefix, describe_close({code, std::string(reason)})));
}

void trace_failure_close(const websocket& ws, std::error_code ec, std::string_view prefix) {
  if (!tracing_frames()) return;
  const auto code = close_code_for(ec);
  if (code == 0 || ws.local_close().code != code) return;
  diagnostics::debug(fmt::format("{}> close {}", prefix, describe_close(ws.local_close())));
}

void trace_control(control_kind kind, std::string_view payload, std::string_view prefix) {
  if (tracing_frames()) trace_control_frame(kind, payload, prefix);
}

void trace_control_frames(websocket& ws, std::string prefix) {
  if (!tracing_frames()) return;
  ws.set_control_callback([prefix = std::move(prefix)](control_kind kind, std::string_view payload) {
    trace_control_frame(kind, payload, prefix);
  });
}

}  // namespace wsl::cli
