// The user info of URLs (RFC 3986 section 3.2.1) and HTTP Basic credentials (RFC 7617).
#pragma once

#include "wsl/detail/base64.hpp"

#include <span>
#include <string>
#include <string_view>

namespace wsl::detail {

// Percent-decodes one part of user info (the user or the password) into out. False on a bad
// escape, or when a raw or decoded byte is a control character, or a raw one is a space: RFC 7617
// leaves those out of Basic credentials, and a raw space ends a URL. Bytes of 0x80 and up (UTF-8)
// are kept as they are.
inline bool percent_decode_userinfo(std::string_view in, std::string& out) {
  const auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  const auto control = [](unsigned char c) { return c < 0x20 || c == 0x7f; };
  out.clear();
  for (std::size_t i = 0; i < in.size(); ++i) {
    const auto c = static_cast<unsigned char>(in[i]);
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      const int high = hex(in[i + 1]), low = hex(in[i + 2]);
      if (high < 0 || low < 0) return false;
      const auto decoded = static_cast<unsigned char>(high * 16 + low);
      if (control(decoded)) return false;
      out += static_cast<char>(decoded);
      i += 2;
    } else {
      if (control(c) || c == ' ') return false;
      out += static_cast<char>(c);
    }
  }
  return true;
}

// `in` with every byte for which escape(byte) holds written as %XX (RFC 3986 section 2.1).
template <typename Escape>
std::string percent_encode(std::string_view in, Escape escape) {
  static constexpr char digits[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : in) {
    const auto b = static_cast<unsigned char>(c);
    if (escape(b)) {
      out += '%';
      out += digits[b >> 4];
      out += digits[b & 15];
    } else {
      out += c;
    }
  }
  return out;
}

// The user as a URL shows it: unreserved characters and sub-delimiters as they are, others escaped.
inline std::string percent_encode_userinfo(std::string_view in) {
  static constexpr std::string_view keep =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=";
  return percent_encode(in, [](unsigned char b) { return keep.find(static_cast<char>(b)) == std::string_view::npos; });
}

// The value of an Authorization or Proxy-Authorization header: "Basic " base64(user ":" password).
inline std::string basic_credentials(std::string_view user, std::string_view password) {
  std::string pair;
  pair.reserve(user.size() + 1 + password.size());
  pair.append(user).append(":").append(password);
  return "Basic " + base64_encode(std::span(reinterpret_cast<const unsigned char*>(pair.data()), pair.size()));
}

}  // namespace wsl::detail
