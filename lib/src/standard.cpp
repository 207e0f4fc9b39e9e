#include "wsl/standard.hpp"

#include "wsl/detail/base64.hpp"
#include "wsl/error.hpp"

#include <openssl/sha.h>

namespace wsl {

std::string websocket_accept_key(std::string_view key) {
  static constexpr std::string_view guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  std::string input;
  input.reserve(key.size() + guid.size());
  input.append(key).append(guid);
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  return detail::base64_encode({digest, sizeof digest});
}

std::error_code rfc6455_standard::accept(const http_request& request, http_response& response) const {
  // Exactly one key, the base64 encoding of 16 bytes (section 4.2.1, item 5).
  if (request.headers.count("Sec-WebSocket-Key") != 1) return error::bad_key;
  const auto key = *request.headers.get("Sec-WebSocket-Key");
  const auto decoded = detail::base64_decode(key);
  if (!decoded || decoded->size() != 16) return error::bad_key;
  response.headers.add("Upgrade", "websocket");
  response.headers.add("Connection", "Upgrade");
  response.headers.add("Sec-WebSocket-Accept", websocket_accept_key(key));
  return {};
}

const standard* standard_registry::find(int version) const noexcept {
  const auto it = by_version_.find(version);
  return it == by_version_.end() ? nullptr : it->second.get();
}

std::string standard_registry::versions() const {
  std::string out;
  for (const auto& [version, s] : by_version_) {
    if (!out.empty()) out += ", ";
    out += std::to_string(version);
  }
  return out;
}

std::shared_ptr<const standard_registry> standard_registry::defaults() {
  static const auto registry = [] {
    auto r = std::make_shared<standard_registry>();
    r->add(std::make_shared<rfc6455_standard>());
    return r;
  }();
  return registry;
}

}  // namespace wsl
