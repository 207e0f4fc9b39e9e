#include "wsl/http.hpp"
#include "wsl/error.hpp"

#include "token.hpp"

#include <algorithm>
#include <charconv>

namespace wsl {
namespace {

using detail::is_tchar;

char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Field values may hold visible characters, spaces, tabs and obs-text; never CR, LF, NUL or DEL.
bool valid_field_value(std::string_view v) noexcept {
  return std::all_of(v.begin(), v.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u == '\t' || (u >= 0x20 && u != 0x7f);
  });
}

template <typename F>
void for_each_list_element(std::string_view value, F&& f) {
  while (!value.empty()) {
    const auto comma = value.find(',');
    const auto element = trim(value.substr(0, comma));
    if (!element.empty()) f(element);
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
}

// Splits "HTTP/1.1" into its numbers.
bool parse_http_version(std::string_view v, int& major, int& minor) noexcept {
  if (v.size() != 8 || v.substr(0, 5) != "HTTP/" || v[6] != '.') return false;
  if (v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9') return false;
  major = v[5] - '0';
  minor = v[7] - '0';
  return true;
}

// Parses the header lines that follow the first line, up to the blank line.
std::error_code parse_fields(std::string_view rest, http_headers& headers) {
  while (true) {
    const auto eol = rest.find("\r\n");
    if (eol == std::string_view::npos) return error::bad_request;
    const auto line = rest.substr(0, eol);
    rest.remove_prefix(eol + 2);
    if (line.empty()) return {};
    if (line.front() == ' ' || line.front() == '\t') return error::bad_request;  // obs-fold
    const auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return error::bad_request;
    const auto name = line.substr(0, colon);
    if (!std::all_of(name.begin(), name.end(), is_tchar)) return error::bad_request;
    const auto value = trim(line.substr(colon + 1));
    if (!valid_field_value(value)) return error::bad_request;
    headers.add(std::string(name), std::string(value));
  }
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

std::optional<std::string_view> http_headers::get(std::string_view name) const noexcept {
  for (const auto& f : fields_)
    if (iequals(f.name, name)) return std::string_view(f.value);
  return std::nullopt;
}

std::vector<std::string_view> http_headers::get_all(std::string_view name) const {
  std::vector<std::string_view> out;
  for (const auto& f : fields_)
    if (iequals(f.name, name)) out.emplace_back(f.value);
  return out;
}

std::size_t http_headers::count(std::string_view name) const noexcept {
  return static_cast<std::size_t>(
      std::count_if(fields_.begin(), fields_.end(), [&](const http_field& f) { return iequals(f.name, name); }));
}

bool http_headers::has_token(std::string_view name, std::string_view token) const noexcept {
  bool found = false;
  for (const auto& f : fields_)
    if (iequals(f.name, name))
      for_each_list_element(f.value, [&](std::string_view e) { found = found || iequals(e, token); });
  return found;
}

std::vector<std::string_view> http_headers::list(std::string_view name) const {
  std::vector<std::string_view> out;
  for (const auto& f : fields_)
    if (iequals(f.name, name)) for_each_list_element(f.value, [&](std::string_view e) { out.push_back(e); });
  return out;
}

void http_headers::remove(std::string_view name) {
  std::erase_if(fields_, [&](const http_field& f) { return iequals(f.name, name); });
}

bool http_request::is_websocket_upgrade() const noexcept { return headers.has_token("Upgrade", "websocket"); }

std::vector<std::pair<std::string_view, std::string_view>> http_request::cookies() const {
  // RFC 6265 section 5.4: "name=value" pairs separated by "; ". Lenient about spacing.
  std::vector<std::pair<std::string_view, std::string_view>> out;
  for (const auto& f : headers) {
    if (!iequals(f.name, "Cookie")) continue;
    std::string_view rest = f.value;
    while (!rest.empty()) {
      const auto semi = rest.find(';');
      const auto pair = trim(rest.substr(0, semi));
      const auto eq = pair.find('=');
      if (eq != std::string_view::npos && eq != 0) {
        auto value = trim(pair.substr(eq + 1));
        if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
        out.emplace_back(trim(pair.substr(0, eq)), value);
      }
      if (semi == std::string_view::npos) break;
      rest.remove_prefix(semi + 1);
    }
  }
  return out;
}

std::optional<std::string_view> http_request::cookie(std::string_view name) const {
  for (const auto& [n, v] : cookies())
    if (n == name) return v;
  return std::nullopt;
}

bool http_request::offers_subprotocol(std::string_view name) const {
  const auto offered = subprotocols();
  return std::find(offered.begin(), offered.end(), name) != offered.end();
}

void http_response::set_cookie(std::string_view name, std::string_view value, std::string_view attributes) {
  std::string v;
  v.reserve(name.size() + value.size() + attributes.size() + 3);
  v.append(name).append("=").append(value);
  if (!attributes.empty()) v.append("; ").append(attributes);
  headers.add("Set-Cookie", std::move(v));
}

std::string_view http_reason(int status) noexcept {
  switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Unknown";
  }
}

namespace detail {

std::size_t find_head_end(std::string_view data, std::size_t from) noexcept {
  // Resume three bytes back so a terminator split across reads is found.
  return data.find("\r\n\r\n", from > 3 ? from - 3 : 0);
}

bool has_bare_lf(std::string_view data, std::size_t from) noexcept {
  for (auto at = data.find('\n', from); at != std::string_view::npos; at = data.find('\n', at + 1))
    if (at == 0 || data[at - 1] != '\r') return true;
  return false;
}

std::size_t request_line_start(std::string_view data) noexcept {
  std::size_t start = 0;
  for (std::size_t n = 0; n < max_empty_lines_before_request && data.substr(start, 2) == "\r\n"; ++n) start += 2;
  return start;
}

std::error_code parse_request(std::string_view head, http_request& out) {
  head.remove_prefix(request_line_start(head));
  const auto eol = head.find("\r\n");
  if (eol == std::string_view::npos) return error::bad_request;
  const auto line = head.substr(0, eol);
  // request-line = method SP request-target SP HTTP-version, single spaces only
  const auto sp1 = line.find(' ');
  const auto sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp1 == sp2 || sp1 == 0) return error::bad_request;
  const auto method = line.substr(0, sp1);
  const auto target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (!std::all_of(method.begin(), method.end(), is_tchar)) return error::bad_request;
  if (target.empty() || target.find(' ') != std::string_view::npos ||
      !std::all_of(target.begin(), target.end(), [](char c) { return c > 0x20 && c < 0x7f; }))
    return error::bad_request;
  if (!parse_http_version(line.substr(sp2 + 1), out.version_major, out.version_minor)) return error::bad_request;
  out.method = method;
  out.target = target;
  const auto q = target.find('?');
  out.path = target.substr(0, q);
  out.query = q == std::string_view::npos ? std::string() : std::string(target.substr(q + 1));
  return parse_fields(head.substr(eol + 2), out.headers);
}

std::error_code parse_response(std::string_view head, http_status_line& status, http_headers& headers) {
  const auto eol = head.find("\r\n");
  if (eol == std::string_view::npos) return error::bad_response;
  const auto line = head.substr(0, eol);
  // status-line = HTTP-version SP status-code SP [reason-phrase]
  int major = 0;
  if (line.size() < 12 || !parse_http_version(line.substr(0, 8), major, status.version_minor) || line[8] != ' ' ||
      (line.size() > 12 && line[12] != ' ') || major != 1)  // a text head is HTTP/1.x
    return error::bad_response;
  const auto code = line.substr(9, 3);
  if (std::from_chars(code.data(), code.data() + 3, status.status).ptr != code.data() + 3 || status.status < 100)
    return error::bad_response;
  status.reason = line.size() > 13 ? std::string(line.substr(13)) : std::string();
  // reason-phrase = *( HTAB / SP / VCHAR / obs-text ), the characters of a field value (RFC 7230
  // section 3.1.2). A bare LF or an escape sequence in it is a malformed head, and a refusal's
  // reason must not carry one to whoever prints it.
  if (!valid_field_value(status.reason)) return error::bad_response;
  if (parse_fields(head.substr(eol + 2), headers)) return error::bad_response;
  return {};
}

std::string serialize_response(const http_response& res) {
  std::string out;
  out.reserve(160 + res.body.size());
  out.append("HTTP/1.1 ").append(std::to_string(res.status)).append(" ");
  out.append(res.reason.empty() ? http_reason(res.status) : std::string_view(res.reason)).append("\r\n");
  for (const auto& f : res.headers) out.append(f.name).append(": ").append(f.value).append("\r\n");
  if (res.status != 101) {
    if (!res.headers.contains("Content-Length"))
      out.append("Content-Length: ").append(std::to_string(res.body.size())).append("\r\n");
    if (!res.headers.contains("Connection")) out.append("Connection: close\r\n");
  }
  out.append("\r\n");
  out.append(res.body);
  return out;
}

}  // namespace detail
}  // namespace wsl
