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

// Between a negotiation and the listener that runs it. server_handshake() sets abort and close_idle
// while it runs, and calls the hooks, which do nothing unless overridden.
struct handshake_control {
  // abort() closes the stream, and the negotiation fails with error::listener_stopped (the
  // listener stops).
  std::function<void()> abort;
  // Set while the connection waits, kept alive after a plain answer, for a next request of which
  // nothing has come yet: closes it (it ends as report.idle_end), so that a new connection can
  // have its place. Null otherwise.
  std::function<void()> close_idle;

  virtual ~handshake_control() = default;
  // After each plain answer that leaves the connection open for the next request (keep-alive),
  // with that request's report.
  virtual void answered(const handshake_report&) {}
  // The connection begins to wait for a next request (close_idle is set), and the first bytes of
  // one came: false refuses that request, and the connection is closed unanswered with
  // error::too_many_handshakes_from_address.
  virtual void waiting() {}
  virtual bool resumed() { return true; }
};

// Whether `a` is in one of `proxies` (listener_options::trusted_proxies).
bool trusted_proxy(const std::vector<address_range>& proxies, const asio::ip::address& a);

asio::awaitable<websocket> server_handshake(std::unique_ptr<transport> stream, const listener_options& opts,
                                            std::shared_ptr<connection_budget> budget, handshake_report& report,
                                            std::error_code& ec, handshake_control& control);

}  // namespace wsl::detail
