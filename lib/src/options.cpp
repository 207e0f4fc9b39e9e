#include "wsl/options.hpp"

#include "wsl/error.hpp"

namespace wsl {

std::error_code connection_options::validate() const {
  if (read_buffer_size < 256 || write_buffer_size < 256) return error::invalid_option;
  if (ping_interval.count() < 0 || idle_timeout.count() < 0 || close_timeout.count() < 0) return error::invalid_option;
  // Pings must come often enough to keep a live but quiet peer from looking idle.
  if (ping != ping_mode::none && idle_timeout.count() > 0 && ping_interval.count() > 0 && ping_interval >= idle_timeout)
    return error::invalid_option;
  if (max_control_queue < 256) return error::invalid_option;
  return {};
}

std::error_code listener_options::validate() const {
  if (auto ec = connection.validate()) return ec;
  if (max_handshake_size < 256 || handshake_timeout.count() <= 0) return error::invalid_option;
  if (max_pending_handshakes == 0 || accept_queue_size == 0 || backlog <= 0) return error::invalid_option;
  if (unix_mode > 07777) return error::invalid_option;
  // A line break in a field would let it write fields (or a body) of its own.
  constexpr std::string_view breaks("\r\n\0", 3);
  for (const auto& f : response_headers)
    if (f.name.empty() || f.name.find_first_of(breaks) != std::string::npos || f.name.find(':') != std::string::npos ||
        f.value.find_first_of(breaks) != std::string::npos)
      return error::invalid_option;
  return {};
}

}  // namespace wsl
