// Sec-WebSocket-Extensions parsing (RFC 6455 section 9.1).
#include "wsl/extension.hpp"

#include "wsl/http.hpp"

#include "token.hpp"

#include <algorithm>

namespace wsl {
namespace {

using detail::is_tchar;
using scanner = detail::field_scanner;

// One element; nullopt (with the scanner past it) when it does not parse.
std::optional<extension_offer> parse_element(scanner& in) {
  in.skip_space();
  extension_offer e;
  e.name = in.token();
  if (e.name.empty()) return std::nullopt;
  in.skip_space();
  while (in.take(';')) {
    in.skip_space();
    auto key = in.token();
    if (key.empty()) return std::nullopt;
    in.skip_space();
    std::optional<std::string> value;
    if (in.take('=')) {
      in.skip_space();
      if (in.peek('"')) {
        value = in.quoted();
        // RFC 6455 section 9.1: a quoted value must still be a token once unquoted.
        if (!value || value->empty() || !std::all_of(value->begin(), value->end(), is_tchar)) return std::nullopt;
      } else {
        value = in.token();
        if (value->empty()) return std::nullopt;
      }
      in.skip_space();
    }
    e.params.emplace_back(std::move(key), std::move(value));
  }
  if (!in.at_end() && !in.take(',')) return std::nullopt;
  return e;
}

}  // namespace

const std::pair<std::string, std::optional<std::string>>* extension_offer::find(std::string_view param) const noexcept {
  for (const auto& p : params)
    if (p.first == param) return &p;
  return nullptr;
}

std::string extension_offer::to_string() const {
  std::string out = name;
  for (const auto& [key, value] : params) {
    out += "; " + key;
    if (value) out += "=" + *value;
  }
  return out;
}

std::vector<extension_offer> parse_extensions(const http_headers& headers, std::size_t* malformed) {
  std::vector<extension_offer> out;
  std::size_t bad = 0;
  for (const auto& value : headers.get_all("Sec-WebSocket-Extensions")) {
    scanner in(value);
    while (true) {
      in.skip_space();
      if (in.at_end()) break;
      if (in.take(',')) continue;  // empty list elements are allowed
      if (auto e = parse_element(in)) {
        out.push_back(std::move(*e));
      } else {
        ++bad;
        in.skip_element();
      }
    }
  }
  if (malformed) *malformed = bad;
  return out;
}

}  // namespace wsl
