// The token characters of HTTP (RFC 9110 section 5.6.2): header names, methods, and the names and
// values of Sec-WebSocket-Extensions parameters; and a scanner over a field value made of tokens,
// quoted strings and separators (Sec-WebSocket-Extensions, RFC 7239's Forwarded).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace wsl::detail {

inline bool is_tchar(char c) noexcept {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    // clang-format off
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
    case '.': case '^': case '_': case '`': case '|': case '~':
      // clang-format on
      return true;
    default: return false;
  }
}

class field_scanner {
 public:
  explicit field_scanner(std::string_view s) : s_(s) {}
  void skip_space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t')) ++i_;
  }
  bool at_end() const { return i_ >= s_.size(); }
  bool peek(char c) const { return i_ < s_.size() && s_[i_] == c; }
  bool take(char c) {
    if (!peek(c)) return false;
    ++i_;
    return true;
  }
  std::string token() {
    const auto start = i_;
    while (i_ < s_.size() && is_tchar(s_[i_])) ++i_;
    return std::string(s_.substr(start, i_ - start));
  }
  // A quoted-string, its quoted-pairs resolved; nullopt when it does not start here or never ends.
  std::optional<std::string> quoted() {
    if (!take('"')) return std::nullopt;
    std::string out;
    while (i_ < s_.size() && s_[i_] != '"') {
      if (s_[i_] == '\\' && i_ + 1 < s_.size()) ++i_;
      out += s_[i_++];
    }
    if (!take('"')) return std::nullopt;
    return out;
  }
  // Skips to just after the next comma outside quotes (or to the end).
  void skip_element() {
    bool in_quotes = false;
    while (i_ < s_.size()) {
      const char c = s_[i_++];
      if (c == '"') in_quotes = !in_quotes;
      if (c == ',' && !in_quotes) return;
    }
  }

 private:
  std::string_view s_;
  std::size_t i_ = 0;
};

}  // namespace wsl::detail
