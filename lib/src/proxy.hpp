// Tunnelling through an HTTP proxy with CONNECT (RFC 9110 section 9.3.6), for the client side.
#pragma once

#include "wsl/client.hpp"
#include "wsl/http.hpp"

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>

#include <string>
#include <string_view>
#include <system_error>

namespace wsl::detail {

// "host:port" with the port always written (brackets around an IPv6 literal): CONNECT's
// authority-form, and how a proxy is named in messages.
std::string host_and_port(const url& u);

// The CONNECT request that opens a tunnel to target's host and port, with Host, the proxy's user
// info as Proxy-Authorization, and User-Agent when not empty.
std::string connect_request(const url& target, const url& proxy, std::string_view user_agent);

struct proxy_answer {
  http_status_line status;
  http_headers headers;
};

// Sends `request` on a connected socket and reads the proxy's answer head, at most max_head bytes,
// without taking a byte beyond it from the socket: what follows belongs to the tunnel (TLS, or the
// WebSocket handshake), which reads the socket itself. ec: the socket's errors,
// error::handshake_too_large, error::bad_response (malformed, or the proxy hung up first).
// The caller bounds it in time by closing the socket.
asio::awaitable<void> exchange_connect(asio::ip::tcp::socket& socket, const std::string& request, std::size_t max_head,
                                       proxy_answer& answer, std::error_code& ec);

}  // namespace wsl::detail
