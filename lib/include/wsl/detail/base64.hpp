// Base64 (RFC 4648, with padding) for handshake keys. Not a hot path.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace wsl::detail {

inline std::string base64_encode(std::span<const unsigned char> in) {
  static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const std::uint32_t v = (in[i] << 16) | (in[i + 1] << 8) | in[i + 2];
    out += alphabet[v >> 18];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  if (const auto rest = in.size() - i; rest != 0) {
    const std::uint32_t v = (in[i] << 16) | (rest == 2 ? in[i + 1] << 8 : 0);
    out += alphabet[v >> 18];
    out += alphabet[(v >> 12) & 63];
    out += rest == 2 ? alphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// Strict: canonical padding, no whitespace, unused trailing bits zero. nullopt when malformed.
inline std::optional<std::string> base64_decode(std::string_view in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  if (in.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (std::size_t i = 0; i < in.size(); i += 4) {
    const bool last = i + 4 == in.size();
    const int pad = last ? (in[i + 3] == '=') + (in[i + 2] == '=' && in[i + 3] == '=') : 0;
    int v[4];
    for (int k = 0; k < 4 - pad; ++k)
      if ((v[k] = value(in[i + k])) < 0) return std::nullopt;
    if (pad == 0) {
      const std::uint32_t n = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
      out += static_cast<char>(n >> 16);
      out += static_cast<char>((n >> 8) & 0xff);
      out += static_cast<char>(n & 0xff);
    } else if (pad == 1) {
      if (v[2] & 3) return std::nullopt;
      const std::uint32_t n = (v[0] << 18) | (v[1] << 12) | (v[2] << 6);
      out += static_cast<char>(n >> 16);
      out += static_cast<char>((n >> 8) & 0xff);
    } else {
      if (v[1] & 15) return std::nullopt;
      out += static_cast<char>(((v[0] << 18) | (v[1] << 12)) >> 16);
    }
  }
  return out;
}

}  // namespace wsl::detail
