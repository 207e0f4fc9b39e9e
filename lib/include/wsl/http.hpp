// The HTTP side of a WebSocket negotiation, as the negotiation hook sees it.
//
//   opts.hook = [](const wsl::http_request& req, wsl::http_response& res) {
//     if (req.cookie("session") != "secret") return res.reject(401, "log in first\n");
//     if (req.offers_subprotocol("chat.v2")) res.subprotocol = "chat.v2";
//     res.set_cookie("seen", "1", "Path=/; HttpOnly");
//   };
#pragma once

#include "wsl/peer_credentials.hpp"

#include <asio/ip/tcp.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace wsl {

// Case-insensitive ASCII comparison, as HTTP field names and tokens want it.
bool iequals(std::string_view a, std::string_view b) noexcept;

struct http_field {
  std::string name;
  std::string value;
};

// Header fields in the order received; names compare case-insensitively.
class http_headers {
 public:
  void add(std::string name, std::string value) { fields_.push_back({std::move(name), std::move(value)}); }
  // The first value of a field, or nullopt.
  std::optional<std::string_view> get(std::string_view name) const noexcept;
  // Every value of a field.
  std::vector<std::string_view> get_all(std::string_view name) const;
  std::size_t count(std::string_view name) const noexcept;
  bool contains(std::string_view name) const noexcept { return count(name) != 0; }
  // True when a comma-separated list field (Connection, Upgrade, ...) has the token, in any case.
  bool has_token(std::string_view name, std::string_view token) const noexcept;
  // The elements of a comma-separated list field, over all its occurrences, trimmed.
  std::vector<std::string_view> list(std::string_view name) const;
  void remove(std::string_view name);

  auto begin() const noexcept { return fields_.begin(); }
  auto end() const noexcept { return fields_.end(); }
  std::size_t size() const noexcept { return fields_.size(); }
  bool empty() const noexcept { return fields_.empty(); }
  void swap(http_headers& other) noexcept { fields_.swap(other.fields_); }

 private:
  std::vector<http_field> fields_;
};

struct http_request {
  std::string method;
  std::string target;  // as sent: path and query
  std::string path;    // target up to '?'
  std::string query;   // after '?', without it; empty when none
  int version_major = 1;
  int version_minor = 1;
  http_headers headers;
  asio::ip::tcp::endpoint remote_endpoint;  // default-constructed over a Unix-domain socket
  asio::ip::tcp::endpoint local_endpoint;
  // The client's address: remote_endpoint's, or when that is a trusted proxy
  // (listener_options::trusted_proxies), the one its X-Forwarded-For (or client_address_header) names.
  asio::ip::address client_address;
  std::optional<peer_credentials> unix_peer;  // over a Unix-domain socket, who connected it
  // A number for the connection, unique in the process (from 1, for connections a server
  // accepted): ties the hook's call, the negotiation_record and the websocket of one connection
  // together even where no endpoint tells them apart (a Unix-domain socket's peers).
  std::uint64_t connection_id = 0;

  // True for a request that asks for a WebSocket upgrade (Upgrade: websocket).
  bool is_websocket_upgrade() const noexcept;
  // All cookies of the Cookie header(s), in order.
  std::vector<std::pair<std::string_view, std::string_view>> cookies() const;
  std::optional<std::string_view> cookie(std::string_view name) const;
  // Subprotocols offered in Sec-WebSocket-Protocol, in the client's order of preference.
  std::vector<std::string_view> subprotocols() const { return headers.list("Sec-WebSocket-Protocol"); }
  bool offers_subprotocol(std::string_view name) const;
};

struct http_response {
  // 101 accepts the upgrade; anything else rejects it with this status, headers and body.
  int status = 101;
  std::string reason;  // empty = the standard reason phrase of the status
  http_headers headers;
  std::string body;
  // The subprotocol chosen among those offered; empty = none.
  std::string subprotocol;

  void set_cookie(std::string_view name, std::string_view value, std::string_view attributes = {});
  void reject(int status_code, std::string body_text = {}) {
    status = status_code;
    body = std::move(body_text);
  }
  bool accepted() const noexcept { return status == 101; }
};

// Runs once per request, after the request has been checked. For a WebSocket upgrade it may
// reject (any status), choose a subprotocol, and add headers and cookies to the 101. For a plain
// HTTP request (response.status is 426 on entry) it may answer it instead, e.g. serve a file.
using negotiation_hook = std::function<void(const http_request&, http_response&)>;

// The standard reason phrase of an HTTP status ("Not Found"), or "Unknown".
std::string_view http_reason(int status) noexcept;

// A redirect a client follows to its Location (RFC 9110 section 15.4): 301, 302, 303, 307, 308.
constexpr bool is_redirect_status(int status) noexcept {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

namespace detail {

// Parses a complete request head (up to and including the blank line). Strict: CRLF line ends,
// token field names, no obsolete line folding, no control characters in values. Empty lines
// before the request line are skipped (request_line_start).
std::error_code parse_request(std::string_view head, http_request& out);

// RFC 9112 section 2.2: a server "SHOULD ignore at least one empty line (CRLF) received prior to
// the request-line" (a client may send one after a POST body, say). This many are ignored; one
// more is a malformed request. They are part of the head, and so of its size limit.
inline constexpr std::size_t max_empty_lines_before_request = 4;

// Where the request line starts in data: after the CRLFs that begin it, at most
// max_empty_lines_before_request of them. A bare LF is not an empty line here either.
std::size_t request_line_start(std::string_view data) noexcept;

struct http_status_line {
  int version_minor = 1;
  int status = 0;
  std::string reason;
};
std::error_code parse_response(std::string_view head, http_status_line& status, http_headers& headers);

// Serialises a response head (and body) for the wire.
std::string serialize_response(const http_response& res);

// Where the head ends ("\r\n\r\n"), or npos; `from` lets a caller resume a scan.
std::size_t find_head_end(std::string_view data, std::size_t from = 0) noexcept;

// Whether data holds, at `from` or after, an LF that no CR precedes. The parsers want CRLF line
// ends, so a head with one can never parse: a reader need not wait for its end (which, written
// with LF alone, never comes) to refuse it.
bool has_bare_lf(std::string_view data, std::size_t from = 0) noexcept;

}  // namespace detail
}  // namespace wsl
