// The client role: connect to a ws:// URL and get the same websocket type as the server side.
//
//   wsl::client_options opts;
//   opts.subprotocols = {"chat.v2"};
//   wsl::connect_report report;
//   std::error_code ec;
//   wsl::websocket ws = co_await wsl::connect(executor, "ws://127.0.0.1:8080/chat?room=1", opts, ec, &report);
//   if (ec == wsl::error::bad_status) std::cerr << report.status << " " << report.reason << "\n";
//
// Credentials in the URL go as Basic authorization, and a proxy is only ever the one given:
//   opts.proxy = "http://me:pw@127.0.0.1:3128";       // CONNECT 127.0.0.1:8080 through it
//   co_await wsl::connect(executor, "ws://bob:s%40cret@127.0.0.1:8080/", opts, ec, &report);
//   // sends "Authorization: Basic Ym9iOnNAY3JldA=="; wsl::redact_url() prints "ws://bob:***@..."
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

// ws://[user:password@]host[:port]/path?query and wss://..., with IPv6 literals in brackets.
struct url {
  bool secure = false;
  std::string host;    // without brackets
  std::uint16_t port = 0;
  std::string target;  // path and query, "/" at least
  // The user info before the host, percent-decoded: sent as "Authorization: Basic ..." (or, for a
  // proxy, "Proxy-Authorization"). "user@" alone is a user with an empty password.
  bool has_credentials = false;
  std::string user;
  std::string password;
  // "host" or "host:port" (brackets kept) as the Host header wants it.
  std::string authority() const;
  // The URL with the password replaced by "***" ("ws://user:***@host/"): safe to print.
  std::string to_string() const;
};
// error::bad_url, or error::bad_userinfo when only the user info is wrong: a bad %-escape, a
// control character or space, an empty user, or a ':' in the user (percent-encoded or not). The
// last '@' before the path ends the user info, so a password may hold a raw '@'; '/', '?' and '#'
// in it must be percent-encoded.
std::error_code parse_url(std::string_view text, url& out);
// A proxy's URL, as client_options::proxy takes it: http://[user:password@]host:port, with no
// path but "/". error::bad_url for anything else (https://, socks5://, no port), bad_userinfo as above.
std::error_code parse_proxy_url(std::string_view text, url& out);
// Any text that may be a URL (even one that does not parse), with the password of its user info
// replaced by "***", for messages and logs. Text without user info comes back as it is.
//   redact_url("ws://bob:s3cret@host/") == "ws://bob:***@host/"
std::string redact_url(std::string_view text);
// An HTTP head with the credentials of its Authorization and Proxy-Authorization fields replaced by
// "***" (the scheme kept: "Authorization: Basic ***"), for printing connect_report's request heads.
std::string redact_credentials(std::string_view head);

struct client_options {
  connection_options connection;
  // Resolving the name and connecting the socket.
  clock::duration connect_timeout = 10s;
  // The HTTP exchange (and the TLS handshake, with TLS) once connected.
  clock::duration handshake_timeout = 10s;
  // The largest response head accepted, with the interim answers before it (100 Continue, 103
  // Early Hints: up to four are skipped, RFC 9110 section 15.2).
  std::size_t max_handshake_size = 16 << 10;
  std::string origin;                                        // sent as Origin when not empty
  std::vector<std::string> subprotocols;                     // offered, in order of preference
  std::vector<std::pair<std::string, std::string>> cookies;  // sent in one Cookie header
  // Extra request headers; one with the name of a header wsl generates replaces it (an
  // Authorization header here wins over the URL's user info).
  http_headers headers;
  std::string user_agent = "wsl";
  // For wss:// URLs (tls.hpp); nullptr = TLS verified against the system's CAs.
  std::shared_ptr<const connection_extension> transport_extension;
  // An HTTP proxy to tunnel through with CONNECT: "http://[user:password@]host:port" (parse_proxy_url),
  // empty = connect directly. Never taken from http_proxy/https_proxy: only what is set here is used.
  // Connecting to it and its answer to CONNECT count against connect_timeout, its answer's head
  // against max_handshake_size; TLS (wss://) and the upgrade then run through the tunnel.
  std::string proxy;

  std::error_code validate() const;
};

// What happened during connect(), for diagnostics and measurements. On error::bad_status it holds
// the server's status, reason, headers and the start of its body; on error::proxy_refused the
// proxy's status and reason.
struct connect_report {
  asio::ip::tcp::endpoint remote;  // the server's, or the proxy's through one
  int status = 0;
  int version_minor = 1;                // the answer's HTTP/1.x (HTTP/1.0 from some servers)
  std::string reason;
  http_headers response_headers;
  std::string body;                     // at most a few KiB of a refusal's body
  std::string tls_error;                // why TLS failed, in OpenSSL's words
  std::string tls_protocol, tls_cipher; // what TLS agreed on
  std::string request_head;             // what was sent, for -v (credentials included: redact them)
  // Through a proxy: its host:port, the CONNECT request sent (with Proxy-Authorization) and its answer.
  std::string proxy;
  std::string proxy_request_head;
  int proxy_status = 0;                 // 0 while no answer came
  int proxy_version_minor = 1;          // its HTTP/1.x
  std::string proxy_reason;
  http_headers proxy_response_headers;
  clock::duration resolve_time{};
  clock::duration connect_time{};       // TCP connect, and through a proxy the CONNECT exchange
  clock::duration handshake_time{};     // request sent to 101 received
};

asio::awaitable<websocket> connect(asio::any_io_executor executor, std::string_view url,
                                   const client_options& options, std::error_code& ec,
                                   connect_report* report = nullptr);
asio::awaitable<websocket> connect(asio::any_io_executor executor, std::string_view url,
                                   const client_options& options = {});

}  // namespace wsl
