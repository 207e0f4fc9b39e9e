// WebSocket standards by Sec-WebSocket-Version. RFC 6455 (version 13) is registered by default;
// the older hybi drafts (version 8, same framing) or a private variant can be added.
//
//   auto registry = std::make_shared<wsl::standard_registry>(wsl::standard_registry::defaults());
//   registry->add(std::make_shared<wsl::rfc6455_standard>(8, "hybi-08"));
//   opts.standards = registry;          // 426 answers now list "13, 8"
#pragma once

#include "wsl/http.hpp"

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>

namespace wsl {

class standard {
 public:
  virtual ~standard() = default;
  virtual int version() const noexcept = 0;
  virtual std::string_view name() const noexcept = 0;
  // Checks the parts of an upgrade request this standard defines (the key, say) and fills in the
  // 101 response fields it requires (Sec-WebSocket-Accept). The generic HTTP checks (GET, HTTP/1.1,
  // Host, Upgrade, Connection) have passed already.
  virtual std::error_code accept(const http_request& request, http_response& response) const = 0;
};

// RFC 6455 handshake and framing; the hybi drafts 8 to 12 share both, with another version number.
class rfc6455_standard : public standard {
 public:
  explicit rfc6455_standard(int version = 13, std::string name = "RFC 6455")
      : version_(version), name_(std::move(name)) {}
  int version() const noexcept override { return version_; }
  std::string_view name() const noexcept override { return name_; }
  std::error_code accept(const http_request& request, http_response& response) const override;

 private:
  int version_;
  std::string name_;
};

class standard_registry {
 public:
  // Adds or replaces the standard of its version.
  void add(std::shared_ptr<const standard> s) { by_version_[s->version()] = std::move(s); }
  const standard* find(int version) const noexcept;
  // "13" or "13, 8": the value of Sec-WebSocket-Version in a 426 answer, newest first.
  std::string versions() const;
  bool empty() const noexcept { return by_version_.empty(); }

  // RFC 6455 alone.
  static std::shared_ptr<const standard_registry> defaults();

 private:
  std::map<int, std::shared_ptr<const standard>, std::greater<>> by_version_;
};

// The Sec-WebSocket-Accept value for a Sec-WebSocket-Key (base64 of SHA-1 of key + GUID).
std::string websocket_accept_key(std::string_view key);

}  // namespace wsl
