// The PROXY protocol (HAProxy's, versions 1 and 2): the header a load balancer writes first on
// each connection it opens to a server, naming the client it stands for. Used by the listener
// (listener_options::proxy_protocol); public for tests.
#pragma once

#include <asio/ip/address.hpp>

#include <cstddef>
#include <optional>
#include <span>

namespace wsl::detail {

enum class proxy_header_status {
  complete,    // `size` bytes make the header
  incomplete,  // a header's beginning, not all of it
  invalid,     // not a header, or a malformed one
};

// The largest version 1 header (CRLF included), and the bytes a version 2 header takes before
// its addresses.
inline constexpr std::size_t proxy_v1_max_size = 107;
inline constexpr std::size_t proxy_v2_fixed_size = 16;

// Parses the header at the start of `bytes`. When complete, `source` is the client's address
// (an IPv4-mapped one as IPv4), or nullopt when the header names none: version 1's UNKNOWN,
// version 2's LOCAL command (the balancer's own health checks) or an address family other than
// IPv4 and IPv6.
proxy_header_status parse_proxy_header(std::span<const unsigned char> bytes, std::size_t& size,
                                       std::optional<asio::ip::address>& source);

}  // namespace wsl::detail
