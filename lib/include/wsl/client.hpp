// The client role: connect to a ws:// URL and get the same websocket type as the server side.
//
//   wsl::client_options opts;
//   opts.subprotocols = {"chat.v2"};
//   wsl::connect_report report;
//   std::error_code ec;
//   wsl::websocket ws = co_await wsl::connect(executor, "ws://127.0.0.1:8080/chat?room=1", opts, ec, &report);
//   if (ec == wsl::error::bad_status) std::cerr << report.status << " " << report.reason << "\n";
#pragma once

#include "wsl/clock.hpp"
#include "wsl/extension.hpp"
#include "wsl/http.hpp"
#include "wsl/options.hpp"
#include "wsl/websocket.hpp"

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace wsl {

// ws://host[:port]/path?query and wss://..., with IPv6 literals in brackets.
struct url {
  bool secure = false;
  std::string host;    // without brackets
  std::uint16_t port = 0;
  std::string target;  // path and query, "/" at least
  // "host" or "host:port" (brackets kept) as the Host header wants it.
  std::string authority() const;
  std::string to_string() const;
};
std::error_code parse_url(std::string_view text, url& out);

struct client_options {
  connection_options connection;
  // Resolving the name and connecting the socket.
  clock::duration connect_timeout = 10s;
  // The HTTP exchange (and the TLS handshake, with TLS) once connected.
  clock::duration handshake_timeout = 10s;
  // The largest response head accepted.
  std::size_t max_handshake_size = 16 << 10;
  std::string origin;                                        // sent as Origin when not empty
  std::vector<std::string> subprotocols;                     // offered, in order of preference
  std::vector<std::pair<std::string, std::string>> cookies;  // sent in one Cookie header
  // Extra request headers; one with the name of a header wsl generates replaces it.
  http_headers headers;
  std::string user_agent = "wsl";
  // For wss:// URLs (tls.hpp); nullptr = TLS verified against the system's CAs.
  std::shared_ptr<const connection_extension> transport_extension;

  std::error_code validate() const;
};

// What happened during connect(), for diagnostics and measurements. On error::bad_status it holds
// the server's status, reason, headers and the start of its body.
struct connect_report {
  asio::ip::tcp::endpoint remote;
  int status = 0;
  std::string reason;
  http_headers response_headers;
  std::string body;                     // at most a few KiB of a refusal's body
  std::string tls_error;                // why TLS failed, in OpenSSL's words
  std::string tls_protocol, tls_cipher; // what TLS agreed on
  std::string request_head;             // what was sent, for -v
  clock::duration resolve_time{};
  clock::duration connect_time{};       // TCP connect
  clock::duration handshake_time{};     // request sent to 101 received
};

asio::awaitable<websocket> connect(asio::any_io_executor executor, std::string_view url,
                                   const client_options& options, std::error_code& ec,
                                   connect_report* report = nullptr);
asio::awaitable<websocket> connect(asio::any_io_executor executor, std::string_view url,
                                   const client_options& options = {});

}  // namespace wsl
