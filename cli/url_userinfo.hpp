// A URL without its user:password@ part, for what a URL is shown to (a command's WSL_URL).
#pragma once

#include <algorithm>
#include <string>
#include <string_view>

namespace wsl::cli {

// "ws://user:secret@host:8080/path" -> "ws://host:8080/path". The authority is what lies between
// "//" and the first '/', '?' or '#' after it (RFC 3986: a '/' in a password is percent-encoded);
// the userinfo ends at its last '@'. Anything else is returned as it is.
inline std::string url_without_userinfo(std::string_view url) {
  const auto slashes = url.find("//");
  if (slashes == std::string_view::npos) return std::string(url);
  const auto authority = slashes + 2;
  const auto authority_end = std::min(url.find_first_of("/?#", authority), url.size());
  const auto at = url.substr(authority, authority_end - authority).rfind('@');
  if (at == std::string_view::npos) return std::string(url);
  return std::string(url.substr(0, authority)).append(url.substr(authority + at + 1));
}

}  // namespace wsl::cli
