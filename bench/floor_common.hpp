// What bench/floor_server.cpp and bench/floor_uring.cpp share: the handshake's accept key, a
// header lookup and unmasking. Header-only, for programs built with one g++ command each.
#pragma once

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <strings.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace floor_common {

inline std::string accept_key(std::string_view key) {
  static constexpr std::string_view guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  std::string text(key);
  text += guid;
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  unsigned char encoded[4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1];
  const int n = EVP_EncodeBlock(encoded, digest, SHA_DIGEST_LENGTH);
  return std::string(reinterpret_cast<char*>(encoded), static_cast<std::size_t>(n));
}

// The value of a header in a request head, or "" (names compared without case).
inline std::string_view header(std::string_view head, std::string_view name) {
  std::size_t at = 0;
  while ((at = head.find("\r\n", at)) != std::string_view::npos) {
    at += 2;
    const auto colon = head.find(':', at);
    const auto end = head.find("\r\n", at);
    if (colon == std::string_view::npos || end == std::string_view::npos || colon > end) continue;
    if (colon - at == name.size() && strncasecmp(head.data() + at, name.data(), name.size()) == 0) {
      auto value = head.substr(colon + 1, end - colon - 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
      return value;
    }
  }
  return {};
}

inline void unmask(std::uint8_t* p, std::size_t n, const std::uint8_t mask[4]) {
  std::uint8_t m8[8];
  for (int i = 0; i < 8; ++i) m8[i] = mask[i & 3];
  std::uint64_t m;
  std::memcpy(&m, m8, 8);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t v;
    std::memcpy(&v, p + i, 8);
    v ^= m;
    std::memcpy(p + i, &v, 8);
  }
  for (; i < n; ++i) p[i] ^= mask[i & 3];
}

}  // namespace floor_common
