// Address helpers shared by the listener's parts.
#pragma once

#include <asio/ip/address.hpp>

namespace wsl::detail {

// An IPv4-mapped IPv6 address (::ffff:192.0.2.1) as the IPv4 address it carries; others as they are.
inline asio::ip::address unmapped(const asio::ip::address& a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped()) return asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
  return a;
}

}  // namespace wsl::detail
