#include "wsl/error.hpp"

#include <asio/error.hpp>

namespace wsl {
namespace {

bool in(error e, error first, error last) {
  return static_cast<int>(e) >= static_cast<int>(first) && static_cast<int>(e) <= static_cast<int>(last);
}

class error_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "wsl"; }

  std::string message(int value) const override {
    switch (static_cast<error>(value)) {
      case error::bad_request: return "malformed HTTP request";
      case error::bad_method: return "WebSocket upgrade requires GET";
      case error::bad_http_version: return "WebSocket upgrade requires HTTP/1.1 or later";
      case error::no_host: return "missing or duplicate Host header";
      case error::no_upgrade: return "Upgrade header does not contain \"websocket\"";
      case error::no_connection_upgrade: return "Connection header does not contain \"upgrade\"";
      case error::no_version: return "missing Sec-WebSocket-Version header";
      case error::unsupported_version: return "unsupported Sec-WebSocket-Version";
      case error::bad_key: return "missing or malformed Sec-WebSocket-Key";
      case error::handshake_too_large: return "HTTP head too large";
      case error::handshake_timeout: return "handshake timed out";
      case error::handshake_rejected: return "handshake rejected";
      case error::not_upgrade: return "not a WebSocket upgrade request";
      case error::too_many_connections: return "too many connections";
      case error::bad_url: return "bad WebSocket URL";
      case error::bad_userinfo: return "malformed user:password in URL";
      case error::bad_status: return "server did not switch protocols";
      case error::bad_accept: return "wrong Sec-WebSocket-Accept";
      case error::bad_response: return "malformed HTTP response";
      case error::bad_subprotocol: return "server chose a subprotocol that was not offered";
      case error::bad_extension: return "server chose an extension that was not offered";
      case error::proxy_refused: return "proxy refused the CONNECT request";
      case error::tls_handshake_failed: return "TLS handshake failed";
      case error::tls_verification_failed: return "TLS certificate verification failed";
      case error::unmasked_frame: return "client frame is not masked";
      case error::masked_frame: return "server frame is masked";
      case error::reserved_bits: return "reserved bits set";
      case error::bad_opcode: return "reserved opcode";
      case error::fragmented_control: return "fragmented control frame";
      case error::control_too_large: return "control frame payload over 125 bytes";
      case error::unexpected_continuation: return "continuation frame outside a message";
      case error::expected_continuation: return "data frame inside a fragmented message";
      case error::bad_length: return "bad frame length encoding";
      case error::bad_close_payload: return "close frame with a 1-byte payload";
      case error::bad_close_code: return "invalid close code";
      case error::invalid_utf8: return "invalid UTF-8";
      case error::message_too_large: return "message too large";
      case error::bad_compressed_data: return "corrupt compressed data";
      case error::closed: return "connection closed";
      case error::connection_lost: return "connection lost without a close handshake";
      case error::idle_timeout: return "idle timeout";
      case error::close_timeout: return "close handshake timed out";
      case error::write_in_progress: return "another message is being written";
      case error::read_in_progress: return "another read is in progress";
      case error::message_abandoned: return "message abandoned before it was finished";
      case error::not_open: return "websocket is not open";
      case error::aborted: return "connection aborted";
      case error::listener_stopped: return "listener stopped";
      case error::invalid_option: return "invalid option";
      case error::too_many_redirects: return "too many redirects";
      case error::bad_redirect: return "redirect refused";
      case error::too_many_from_address: return "too many connections from this address";
      case error::too_many_handshakes_from_address: return "too many handshakes under way from this address";
      case error::bad_proxy_header: return "no valid PROXY protocol header";
    }
    return "unknown wsl error";
  }

  std::error_condition default_error_condition(int value) const noexcept override {
    const auto e = static_cast<error>(value);
    if (in(e, error::bad_request, error::tls_verification_failed) && e != error::handshake_timeout)
      return condition::handshake_failed;
    if (e == error::too_many_redirects || e == error::bad_redirect || e == error::too_many_from_address ||
        e == error::too_many_handshakes_from_address || e == error::bad_proxy_header)
      return condition::handshake_failed;
    if (e == error::handshake_timeout || e == error::idle_timeout || e == error::close_timeout)
      return condition::timeout;
    if (in(e, error::unmasked_frame, error::bad_compressed_data)) return condition::protocol_violation;
    if (e == error::closed || e == error::connection_lost || e == error::aborted) return condition::closed;
    return {value, *this};
  }
};

class condition_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "wsl.condition"; }

  std::string message(int value) const override {
    switch (static_cast<condition>(value)) {
      case condition::handshake_failed: return "WebSocket handshake failed";
      case condition::protocol_violation: return "WebSocket protocol violation";
      case condition::timeout: return "timed out";
      case condition::closed: return "connection closed";
    }
    return "unknown wsl condition";
  }

  bool equivalent(const std::error_code& code, int value) const noexcept override {
    if (code.category() == wsl::error_category())
      return code.default_error_condition().value() == value && code.default_error_condition().category() == *this;
    // Transport-level ends of a connection count as "closed", timeouts as "timeout".
    if (static_cast<condition>(value) == condition::closed)
      return code == asio::error::eof || code == asio::error::connection_reset || code == asio::error::broken_pipe ||
             code == asio::error::connection_aborted;
    if (static_cast<condition>(value) == condition::timeout) return code == asio::error::timed_out;
    return false;
  }
};

}  // namespace

const std::error_category& error_category() noexcept {
  static const error_category_impl instance;
  return instance;
}

const std::error_category& condition_category() noexcept {
  static const condition_category_impl instance;
  return instance;
}

std::uint16_t close_code_for(std::error_code ec) noexcept {
  if (ec.category() != error_category()) return 0;
  const auto e = static_cast<error>(ec.value());
  if (e == error::invalid_utf8 || e == error::bad_compressed_data) return 1007;
  if (e == error::message_too_large) return 1009;
  if (in(e, error::unmasked_frame, error::bad_close_code)) return 1002;
  if (e == error::message_abandoned) return 1011;
  return 0;
}

}  // namespace wsl
