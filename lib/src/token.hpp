// The token characters of HTTP (RFC 9110 section 5.6.2): header names, methods, and the names and
// values of Sec-WebSocket-Extensions parameters.
#pragma once

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

}  // namespace wsl::detail
