// Tunnelling through an HTTP proxy with CONNECT (RFC 9110 section 9.3.6) or a SOCKS5 proxy (RFC 1928,
// with RFC 1929's user and password), for the client side.
#pragma once

#include "wsl/client.hpp"
#include "wsl/http.hpp"

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>

#include <optional>
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

// An interim answer (1xx, RFC 9110 section 15.2) comes before a final answer (the proxy's to
// CONNECT, the server's to the upgrade) and says nothing about it: it is skipped. Not 101: to
// CONNECT it is no tunnel, and to the upgrade it is the answer.
constexpr bool is_interim(int status) noexcept { return status >= 100 && status <= 199 && status != 101; }

// How many interim answers may come before the final one; one more is error::bad_response.
inline constexpr std::size_t max_interim_answers = 4;

// Sends `request` on a connected socket and reads the proxy's answer head, skipping interim
// answers, at most max_head bytes for all of them, without taking a byte beyond the final head
// from the socket: what follows belongs to the tunnel (TLS, or the WebSocket handshake), which
// reads the socket itself. ec: the socket's errors, error::handshake_too_large,
// error::bad_response (malformed, the proxy hung up first, or more than max_interim_answers).
// The caller bounds it in time by closing the socket.
asio::awaitable<void> exchange_connect(asio::ip::tcp::socket& socket, const std::string& request, std::size_t max_head,
                                       proxy_answer& answer, std::error_code& ec);

// What a SOCKS5 proxy said to CONNECT.
struct socks_answer {
  std::string request;  // "SOCKS5 CONNECT host:port", for -v
  int code = 0;         // the reply code; 0 also when the user and password were refused
  std::string reason;   // empty while no answer came
};

// The words for a SOCKS5 reply code (RFC 1928 section 6).
std::string_view socks5_reply_text(int code) noexcept;

// Opens a tunnel to target's host and port through a SOCKS5 proxy on a connected socket: the
// greeting (with user and password when the proxy's URL has them), then CONNECT, naming `address`
// when given (or the host when it is an IP literal), otherwise the host name for the proxy to
// resolve. Reads the replies to their last byte and not one more. ec: the socket's errors,
// error::bad_response (malformed, or the proxy hung up), error::proxy_refused (a reply code
// other than 0, no acceptable authentication method, or the user and password refused: answer
// says which), error::bad_url (a host name of more than 255 bytes). The caller bounds it in time
// by closing the socket.
asio::awaitable<void> socks5_connect(asio::ip::tcp::socket& socket, const url& target, const url& proxy,
                                     std::optional<asio::ip::address> address, socks_answer& answer,
                                     std::error_code& ec);

}  // namespace wsl::detail
