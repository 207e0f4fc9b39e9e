// Reading the PROXY protocol header of an accepted connection, TCP or Unix-domain
// (listener_options::proxy_protocol).
#pragma once

#include "wsl/detail/proxy_protocol.hpp"
#include "wsl/transport.hpp"

#include <asio/awaitable.hpp>

#include <optional>
#include <system_error>

namespace wsl::detail {

// Takes the header from the stream's socket (TCP or Unix-domain), leaving what follows it unread,
// and sets `source` (see parse_proxy_header). error::bad_proxy_header when there is none, it is
// malformed, it did not come in one piece, or the stream has no such socket; asio's errors when
// the socket fails. A version 2 header may take up to `max_size` bytes.
asio::awaitable<void> read_proxy_header(transport& stream, std::size_t max_size,
                                        std::optional<asio::ip::address>& source, std::error_code& ec);

}  // namespace wsl::detail
