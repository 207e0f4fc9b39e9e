// An HTTP/1.1 response as the library writes it, parsed here strictly and apart from the library's
// own parser, so that a malformed response is caught rather than read the way it was written.
//
//   const auto reply = wsl::test::parse_reply(peer->take());
//   BOOST_TEST(reply.complete);
//   BOOST_TEST(reply.status == 101);
//   BOOST_TEST(reply.get("Sec-WebSocket-Accept").value_or("") == accept);
//
// What it takes: a status line "HTTP/1.1 NNN reason" (three digits, a space on both sides of them),
// "Name: value" field lines, CRLF line ends, and on everything but a 101 exactly one
// Content-Length, all digits, with as many bytes of body behind the head. Anything else leaves
// `complete` false (and the fields after the point where it went wrong unset).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wsl::test {

// ASCII case-insensitive equality, as HTTP compares field names and tokens.
inline bool same_letters(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

struct http_reply {
  bool complete = false;  // the head ended, and so did the body its Content-Length announced
  int status = 0;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string after;  // bytes behind the response

  // The values of every field of that name, in order.
  std::vector<std::string> all(std::string_view name) const {
    std::vector<std::string> out;
    for (const auto& [n, v] : headers)
      if (same_letters(n, name)) out.push_back(v);
    return out;
  }
  // The value of the first field of that name.
  std::optional<std::string> get(std::string_view name) const {
    for (const auto& [n, v] : headers)
      if (same_letters(n, name)) return v;
    return std::nullopt;
  }
  // Whether a field of that name lists the token (comma-separated, OWS around the elements).
  bool has_token(std::string_view name, std::string_view token) const {
    for (const auto& v : all(name)) {
      std::string_view rest = v;
      while (true) {
        const auto comma = rest.find(',');
        auto element = rest.substr(0, comma);
        while (!element.empty() && (element.front() == ' ' || element.front() == '\t')) element.remove_prefix(1);
        while (!element.empty() && (element.back() == ' ' || element.back() == '\t')) element.remove_suffix(1);
        if (same_letters(element, token)) return true;
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
      }
    }
    return false;
  }
};

namespace detail {

inline bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (const char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

}  // namespace detail

// `to_head`: the answer to a HEAD request, whose Content-Length announces no body.
inline http_reply parse_reply(std::string_view raw, bool to_head = false) {
  http_reply r;
  const auto head_end = raw.find("\r\n\r\n");
  if (head_end == std::string_view::npos) return r;
  // The status line and the field lines, each with its CRLF: every line below has one.
  std::string_view head = raw.substr(0, head_end + 2);
  auto next_line = [&] {
    const auto eol = head.find("\r\n");
    const auto line = head.substr(0, eol);
    head.remove_prefix(eol + 2);
    return line;
  };
  // "HTTP/1.1 NNN " is 13 characters; the reason may be empty.
  const auto status_line = next_line();
  if (status_line.size() < 13 || status_line.substr(0, 9) != "HTTP/1.1 " || status_line[12] != ' ') return r;
  const auto code = status_line.substr(9, 3);
  if (!detail::all_digits(code)) return r;
  r.status = std::stoi(std::string(code));
  r.reason = std::string(status_line.substr(13));
  while (!head.empty()) {
    const auto line = next_line();
    const auto colon = line.find(": ");
    if (colon == std::string_view::npos || colon == 0) return r;
    r.headers.emplace_back(line.substr(0, colon), line.substr(colon + 2));
  }
  const std::string_view rest = raw.substr(head_end + 4);
  std::size_t body_size = 0;
  if (r.status != 101) {
    const auto lengths = r.all("Content-Length");
    // At most 18 digits: no overflow.
    if (lengths.size() != 1 || !detail::all_digits(lengths.front()) || lengths.front().size() > 18) return r;
    body_size = to_head ? 0 : std::stoull(lengths.front());
  }
  if (rest.size() < body_size) return r;
  r.body = rest.substr(0, body_size);
  r.after = rest.substr(body_size);
  r.complete = true;
  return r;
}

}  // namespace wsl::test
