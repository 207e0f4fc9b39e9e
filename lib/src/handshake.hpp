// The server side of the negotiation, shared by listener and accept_websocket.
#pragma once

#include "wsl/options.hpp"
#include "wsl/websocket.hpp"

#include <asio/awaitable.hpp>

#include <functional>
#include <memory>
#include <string>

namespace wsl::detail {

// What a negotiation did, for logs.
struct handshake_report {
  asio::ip::tcp::endpoint remote;
  asio::ip::address client_address;  // http_request::client_address once the request is read
  std::optional<peer_credentials> unix_peer;
  std::uint64_t connection_id = 0;
  std::string method;
  std::string target;
  int status = 0;  // the HTTP status sent, 0 when none
  std::size_t bytes_sent = 0;
  // A connection kept alive after a plain answer ended before anything of a next request came:
  // the client closed it, left it idle past handshake_timeout, or the listener stopped. Nothing
  // to report.
  bool idle_end = false;
};

// Lets the listener end a negotiation in progress when it stops: abort() closes the stream, and the
// negotiation fails with error::listener_stopped. Set by server_handshake() while it runs.
struct handshake_control {
  std::function<void()> abort;
  // Set by the caller: called after each plain answer that leaves the connection open for the
  // next request (keep-alive), with that request's report.
  std::function<void(const handshake_report&)> answered;
};

// Whether `a` is in one of `proxies` (listener_options::trusted_proxies).
bool trusted_proxy(const std::vector<address_range>& proxies, const asio::ip::address& a);

// `control` may be null.
asio::awaitable<websocket> server_handshake(std::unique_ptr<transport> stream, const listener_options& opts,
                                            std::shared_ptr<connection_budget> budget, handshake_report& report,
                                            std::error_code& ec, handshake_control* control);

}  // namespace wsl::detail
