// Errors of the wsl library: one enum with its category, and conditions that group them.
//
//   std::error_code ec = ...;
//   if (ec == wsl::condition::protocol_violation) ...   // any frame-level violation
//   if (ec == wsl::error::closed) ...                     // the close handshake completed
#pragma once

#include <cstdint>
#include <string>
#include <system_error>

namespace wsl {

enum class error {
  // --- HTTP negotiation (server and client) ---
  bad_request = 1,        // malformed HTTP request (request line, header syntax)
  bad_method,             // an upgrade request that is not GET
  bad_http_version,       // not HTTP/1.1 or later
  no_host,                // missing or duplicate Host
  no_upgrade,             // no "websocket" in Upgrade
  no_connection_upgrade,  // no "upgrade" in Connection
  no_version,             // missing Sec-WebSocket-Version
  unsupported_version,    // a version no registered standard speaks (426)
  bad_key,                // Sec-WebSocket-Key missing or not 16 base64-encoded bytes
  handshake_too_large,    // the request or response head exceeded its size limit
  handshake_timeout,      // the negotiation did not finish in time
  handshake_rejected,     // the negotiation hook answered with a non-101 status
  not_upgrade,            // a plain HTTP request, answered without upgrading
  too_many_connections,   // max_connections reached (503)
  // --- client side of the negotiation ---
  bad_url,                  // not a ws:// or wss:// URL
  bad_userinfo,             // the user:password@ of a URL is malformed (bad %-escape, control characters)
  bad_status,               // the server answered with something other than 101
  bad_accept,               // Sec-WebSocket-Accept does not match the key
  bad_response,             // malformed or incomplete 101 response
  bad_subprotocol,          // the server chose a subprotocol that was not offered
  bad_extension,            // the server chose an extension or parameters that were not offered
  proxy_refused,            // the HTTP proxy answered CONNECT with a non-2xx status (connect_report)
  tls_handshake_failed,     // the TLS handshake failed (protocol, cipher, peer gone)
  tls_verification_failed,  // the peer's certificate did not verify (untrusted, expired, wrong name)
  // --- framing (RFC 6455 section 5), fail the connection with 1002 ---
  unmasked_frame,           // a client frame without mask
  masked_frame,             // a server frame with a mask
  reserved_bits,            // RSV1-3 set without an extension that defines them
  bad_opcode,               // reserved opcode
  fragmented_control,       // control frame without FIN
  control_too_large,        // control frame payload over 125 bytes
  unexpected_continuation,  // continuation frame outside a message
  expected_continuation,    // new data frame while a fragmented message is in progress
  bad_length,               // 64-bit length with its top bit set, or not minimally encoded
  bad_close_payload,        // a close frame with a 1-byte payload
  bad_close_code,           // a close code that may not be sent on the wire
  // --- payload ---
  invalid_utf8,         // text or close reason that is not UTF-8 (1007)
  message_too_large,    // over max_message_size (1009)
  bad_compressed_data,  // an extension could not decode the payload (1007)
  // --- connection state ---
  closed,             // the close handshake completed; see websocket::close_reason()
  connection_lost,    // the TCP connection ended without a close handshake (1006)
  idle_timeout,       // nothing arrived within idle_timeout
  close_timeout,      // the peer did not answer our close frame in time
  write_in_progress,  // a second message_writer while one is active
  read_in_progress,   // a second read while one is in progress
  message_abandoned,  // a message_writer was destroyed or failed mid-message
  not_open,           // an operation on a websocket that is not open
  aborted,            // abort() dropped the connection
  listener_stopped,   // accept() on a stopped listener; a negotiation its stop() ended
  invalid_option,     // an options struct failed validate()
  // --- client side of the negotiation, added later (at the end: the values above stay) ---
  too_many_redirects,  // more redirects than client_options::max_redirects (connect_report has the last)
  bad_redirect,        // to no WebSocket URL, from wss:// to ws://, to wss:// over unix_socket (connect_report)
  // --- server side, added later ---
  too_many_from_address,  // max_connections_per_address reached (429)
  // As many negotiations from this address under way as max_connections_per_address: the next
  // connection is closed before anything is read from it.
  too_many_handshakes_from_address,
  // listener_options::proxy_protocol: the connection did not begin with a valid PROXY header.
  bad_proxy_header,
};

// Conditions group errors the way callers act on them (the CLI maps them to exit codes).
enum class condition {
  handshake_failed = 1,  // the connection never became a websocket
  protocol_violation,    // the peer broke RFC 6455 (or an extension's rules)
  timeout,               // a time bound ran out
  closed,                // the connection is over (closed cleanly or lost)
};

const std::error_category& error_category() noexcept;
const std::error_category& condition_category() noexcept;

inline std::error_code make_error_code(error e) noexcept { return {static_cast<int>(e), error_category()}; }
inline std::error_condition make_error_condition(condition c) noexcept {
  return {static_cast<int>(c), condition_category()};
}

// The close code RFC 6455 prescribes when the connection fails with this error
// (1002 protocol error, 1007 invalid payload, 1009 too big, 1011 otherwise); 0 for errors that
// are not failures of an open connection.
std::uint16_t close_code_for(std::error_code ec) noexcept;

}  // namespace wsl

template <>
struct std::is_error_code_enum<wsl::error> : std::true_type {};
template <>
struct std::is_error_condition_enum<wsl::condition> : std::true_type {};
