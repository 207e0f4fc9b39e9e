#include "http_options.hpp"

#include "devconsole.hpp"

#include "wsl/detail/base64.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>

namespace wsl::cli {
namespace {

char lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

// '*' matches any run (also empty); everything else one character, case-insensitively.
bool glob_match(std::string_view pattern, std::string_view text) noexcept {
  std::size_t p = 0, t = 0, star = std::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (p < pattern.size() && lower(pattern[p]) == lower(text[t])) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

// "host:port" -> host, port; "[::1]:80" -> "[::1]", "80"; no port -> host, "".
void split_host_port(std::string_view s, std::string_view& host, std::string_view& port) noexcept {
  const auto colon = s.rfind(':');
  const auto bracket = s.rfind(']');
  if (colon == std::string_view::npos || (bracket != std::string_view::npos && colon < bracket)) {
    host = s;
    port = {};
    return;
  }
  host = s.substr(0, colon);
  port = s.substr(colon + 1);
}

bool header_text_ok(std::string_view s) noexcept {
  return std::none_of(s.begin(), s.end(), [](char c) { return c == '\r' || c == '\n' || c == '\0'; });
}

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decodes a path; false on a bad escape or a decoded NUL.
bool percent_decode(std::string_view in, std::string& out) {
  out.clear();
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      const int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    if (c == '\0') return false;
    out.push_back(c);
  }
  return true;
}

std::string http_date(std::time_t t) {
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[64];
  const auto n = std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return std::string(buf, n);
}

// Answers a plain HTTP request from the static directory (canonical, absolute).
void serve_static(const http_options& o, const http_request& req, http_response& res) {
  const auto peer = format_peer(req);
  if (req.method != "GET" && req.method != "HEAD") {
    answer_plain(res, 405, "only GET and HEAD are served here");
    res.headers.add("Allow", "GET, HEAD");
    return;
  }
  std::string path;
  if (!percent_decode(req.path, path) || path.empty() || path.front() != '/') {
    answer_plain(res, 400, "bad path");
    return;
  }
  // No segment may climb (".."), and hidden files (".git", ".env") are not served.
  std::string_view rest(path);
  while (!rest.empty()) {
    const auto slash = rest.find('/');
    const auto segment = rest.substr(0, slash);
    if (segment == "..") {
      diagnostics::info(fmt::format("{} {}: refused, a '..' segment", peer, req.target));
      answer_plain(res, 403, "forbidden");
      return;
    }
    if (!segment.empty() && segment.front() == '.') {
      answer_plain(res, 404, "not found");
      return;
    }
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  std::string file = o.static_dir + path;
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) {
    answer_plain(res, 404, "not found");
    return;
  }
  if (S_ISDIR(st.st_mode)) {
    if (path.back() != '/') {  // relative links in its index.html need the slash
      answer_plain(res, 301, "moved");
      res.headers.add("Location", req.path + "/" + (req.query.empty() ? "" : "?" + req.query));
      return;
    }
    file += "index.html";
  }
  // Symbolic links may point anywhere: what is served must lie inside the directory.
  char resolved[PATH_MAX];
  if (::realpath(file.c_str(), resolved) == nullptr) {
    answer_plain(res, 404, "not found");
    return;
  }
  const std::string_view real(resolved);
  if (real.size() <= o.static_dir.size() || real.substr(0, o.static_dir.size()) != o.static_dir ||
      (o.static_dir.back() != '/' && real[o.static_dir.size()] != '/')) {
    diagnostics::info(fmt::format("{} {}: refused, it leads out of --static", peer, req.target));
    answer_plain(res, 403, "forbidden");
    return;
  }
  const int fd = ::open(resolved, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    answer_plain(res, errno == EACCES ? 403 : 404, errno == EACCES ? "forbidden" : "not found");
    return;
  }
  struct fd_closer {
    int fd;
    ~fd_closer() { ::close(fd); }
  } closer{fd};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    answer_plain(res, 404, "not found");
    return;
  }
  if (static_cast<std::uint64_t>(st.st_size) > o.static_max_size) {
    diagnostics::warning(fmt::format("{} {}: refused, {} bytes is over --static-max-size {}", peer, req.target,
                                     st.st_size, format_size(o.static_max_size)));
    answer_plain(res, 403, "file too large to serve here");
    return;
  }
  res.status = 200;
  res.reason.clear();
  res.headers = {};
  res.headers.add("Content-Type", std::string(content_type_for(real)));
  const auto modified = http_date(st.st_mtime);
  res.headers.add("Last-Modified", modified);
  res.headers.add("Cache-Control", "no-cache");
  res.headers.add("X-Content-Type-Options", "nosniff");
  res.headers.add("Content-Length", std::to_string(st.st_size));
  res.body.clear();
  const auto since = req.headers.get("If-Modified-Since");
  if (since && *since == modified) {
    res.status = 304;
    return;
  }
  if (req.method == "HEAD") return;
  res.body.resize(static_cast<std::size_t>(st.st_size));
  std::size_t got = 0;
  while (got < res.body.size()) {
    const auto n = ::read(fd, res.body.data() + got, res.body.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (got != res.body.size()) {  // it shrank or failed while being read
    answer_plain(res, 500, "could not read the file");
  }
}

}  // namespace

void answer_plain(http_response& res, int status, std::string_view text) {
  res.status = status;
  res.reason.clear();
  res.headers = {};
  res.headers.add("Content-Type", "text/plain; charset=utf-8");
  res.body.assign(text).append("\n");
}

void answer_metrics(const http_request& req, http_response& res, const std::function<std::string()>& render) {
  if (req.method != "GET" && req.method != "HEAD") {
    answer_plain(res, 405, "only GET and HEAD are served here");
    res.headers.add("Allow", "GET, HEAD");
    return;
  }
  res.status = 200;
  res.reason.clear();
  res.headers = {};
  res.headers.add("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
  res.headers.add("Cache-Control", "no-store");
  res.body = render();  // to a HEAD, the library sends its length only
}

bool same_origin(std::string_view origin, const http_request& req) {
  const auto scheme_end = origin.find("://");
  const auto host = req.headers.get("Host");
  return scheme_end != std::string_view::npos && host && !host->empty() &&
         iequals(origin.substr(scheme_end + 3), *host);
}

// --origin and --same-origin: with neither, every Origin passes; with either or both, one of them
// must let it through.
static bool origin_refused(const http_options& o, std::string_view origin, const http_request& req) {
  if (o.origins.empty() && !o.same_origin) return false;
  return !(o.same_origin && same_origin(origin, req)) && !origin_allowed(origin, o.origins);
}

bool origin_allowed(std::string_view origin, const std::vector<std::string>& patterns) {
  const auto scheme_end = origin.find("://");
  const auto authority = scheme_end == std::string_view::npos ? origin : origin.substr(scheme_end + 3);
  std::string_view host, port;
  split_host_port(authority, host, port);
  for (const auto& pattern : patterns) {
    if (pattern.find("://") != std::string::npos) {
      if (glob_match(pattern, origin)) return true;
      continue;
    }
    std::string_view pattern_host, pattern_port;
    split_host_port(pattern, pattern_host, pattern_port);
    if (!glob_match(pattern_host, host)) continue;
    if (pattern_port.empty() || glob_match(pattern_port, port)) return true;
  }
  return false;
}

std::string_view content_type_for(std::string_view name) noexcept {
  const auto dot = name.rfind('.');
  const auto slash = name.rfind('/');
  if (dot == std::string_view::npos || (slash != std::string_view::npos && dot < slash))
    return "application/octet-stream";
  std::string ext(name.substr(dot + 1));
  for (auto& c : ext) c = lower(c);
  static constexpr std::pair<std::string_view, std::string_view> types[] = {
      {"html", "text/html; charset=utf-8"},
      {"htm", "text/html; charset=utf-8"},
      {"css", "text/css; charset=utf-8"},
      {"js", "text/javascript; charset=utf-8"},
      {"mjs", "text/javascript; charset=utf-8"},
      {"json", "application/json"},
      {"map", "application/json"},
      {"txt", "text/plain; charset=utf-8"},
      {"md", "text/markdown; charset=utf-8"},
      {"csv", "text/csv; charset=utf-8"},
      {"xml", "application/xml"},
      {"svg", "image/svg+xml"},
      {"png", "image/png"},
      {"jpg", "image/jpeg"},
      {"jpeg", "image/jpeg"},
      {"gif", "image/gif"},
      {"webp", "image/webp"},
      {"avif", "image/avif"},
      {"ico", "image/x-icon"},
      {"wasm", "application/wasm"},
      {"pdf", "application/pdf"},
      {"woff", "font/woff"},
      {"woff2", "font/woff2"},
      {"ttf", "font/ttf"},
      {"otf", "font/otf"},
      {"mp3", "audio/mpeg"},
      {"ogg", "audio/ogg"},
      {"wav", "audio/wav"},
      {"mp4", "video/mp4"},
      {"webm", "video/webm"},
  };
  for (const auto& [e, type] : types)
    if (e == ext) return type;
  return "application/octet-stream";
}

std::string log_time(std::chrono::system_clock::time_point t) {
  const auto seconds = std::chrono::system_clock::to_time_t(t);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count() % 1000;
  std::tm tm{};
  ::gmtime_r(&seconds, &tm);
  char buf[32];
  const auto n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03}Z", std::string_view(buf, n), ms);
}

void add_http_options(CLI::App& app, http_options& o) {
  app.add_option("--origin", o.origins,
                 "Accept upgrades only from a matching Origin (repeatable; others get 403): "
                 "'https://*.example.com', 'example.com', 'localhost:*', 'null' (file: pages)")
      ->type_name("PATTERN");
  app.add_flag("--same-origin", o.same_origin,
               "Accept upgrades only from pages of this server (Origin's host and port those of Host; others "
               "get 403), and from --origin's patterns: no page of another site drives it from a browser");
  app.add_option("--header", o.headers, "Add 'Name: value' to every HTTP response (repeatable)")
      ->type_name("'NAME: VALUE'");
  app.add_option("--subprotocol", o.subprotocols,
                 "A subprotocol to choose when the client offers it (repeatable, in order of preference)")
      ->type_name("NAME");
  auto* static_dir =
      app.add_option("--static", o.static_dir,
                     "Answer plain GET/HEAD requests with the files under DIR (index.html for a directory)")
          ->type_name("DIR");
  app.add_flag("--devconsole", o.devconsole,
               "Answer plain GET requests, for any path, with a page that opens a WebSocket to that path and "
               "shows what goes each way, to try the server from a browser")
      ->excludes(static_dir);
  add_size_option(app, "--static-max-size", o.static_max_size, "Largest file --static serves (403 beyond)");
  app.add_option("--basic-auth-file", o.basic_auth_file,
                 "Require HTTP Basic credentials from every request, upgrades and files alike: a 'user:password' "
                 "line of FILE (401 otherwise)")
      ->type_name("FILE")
      ->check(CLI::ExistingFile);
}

namespace {

std::array<unsigned char, 32> sha256(std::string_view text) {
  std::array<unsigned char, 32> digest{};
  unsigned int size = 0;
  EVP_Digest(text.data(), text.size(), digest.data(), &size, EVP_sha256(), nullptr);
  return digest;
}

// --basic-auth-file: "user:password" lines; empty lines and lines starting with '#' are skipped,
// a CR before the newline dropped. A bad line is named by its number, never shown.
std::string read_credentials(const std::string& path, std::vector<std::array<unsigned char, 32>>& out) {
  constexpr std::size_t max_size = 1 << 20;
  std::ifstream in(path, std::ios::binary);
  if (!in) return fmt::format("--basic-auth-file {}: {}", path, std::strerror(errno));
  std::string line;
  std::size_t number = 0, total = 0;
  while (std::getline(in, line)) {
    ++number;
    total += line.size() + 1;
    if (total > max_size) return fmt::format("--basic-auth-file {}: larger than 1M", path);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.front() == '#') continue;
    const auto colon = line.find(':');
    if (colon == 0 || colon == std::string::npos || !header_text_ok(line))
      return fmt::format("--basic-auth-file {}: line {} is not 'user:password'", path, number);
    out.push_back(sha256(line));
  }
  if (out.empty()) return fmt::format("--basic-auth-file {}: no 'user:password' line", path);
  return {};
}

// The decoded "user:password" of a request's Basic credentials; nullopt without them.
std::optional<std::string> basic_credentials(const http_request& req) {
  const auto header = req.headers.get("Authorization");
  if (!header) return std::nullopt;
  auto value = *header;
  const auto lower = [](char a, char b) { return (a >= 'A' && a <= 'Z' ? static_cast<char>(a + 32) : a) == b; };
  if (value.size() < 6 || !std::equal(value.begin(), value.begin() + 6, "basic ", lower)) return std::nullopt;
  value.remove_prefix(6);
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  auto decoded = detail::base64_decode(value);
  if (!decoded || decoded->find(':') == std::string::npos) return std::nullopt;
  return decoded;
}

// Whether the request's Basic credentials are one of `credentials`. Every line is compared, in
// constant time, whatever matched: the time taken says nothing of which, or how much.
bool authorized(const http_options& o, const http_request& req) {
  const auto given = basic_credentials(req);
  if (!given) return false;
  const auto digest = sha256(*given);
  bool match = false;
  for (const auto& c : o.credentials) match |= CRYPTO_memcmp(c.data(), digest.data(), digest.size()) == 0;
  return match;
}

}  // namespace

std::string basic_auth_user(const http_request& req) {
  const auto given = basic_credentials(req);
  return given ? given->substr(0, given->find(':')) : std::string();
}

std::string finish_http_options(http_options& o) {
  for (const auto& h : o.headers) {
    const auto colon = h.find(':');
    const std::string_view name = std::string_view(h).substr(0, colon);
    if (colon == std::string::npos || name.empty() || !std::all_of(name.begin(), name.end(), is_token_char) ||
        !header_text_ok(h))
      return fmt::format("--header '{}': expected 'Name: value'", h);
  }
  for (const auto& p : o.subprotocols)
    if (p.empty() || !std::all_of(p.begin(), p.end(), is_token_char))
      return fmt::format("--subprotocol '{}': not a token", p);
  for (const auto& p : o.origins)
    if (p.empty() || !header_text_ok(p)) return fmt::format("--origin '{}': empty", p);
  if (!o.basic_auth_file.empty())
    if (auto problem = read_credentials(o.basic_auth_file, o.credentials); !problem.empty()) return problem;
  if (!o.static_dir.empty()) {
    char resolved[PATH_MAX];
    struct stat st {};
    if (::realpath(o.static_dir.c_str(), resolved) == nullptr || ::stat(resolved, &st) != 0 || !S_ISDIR(st.st_mode))
      return fmt::format("--static {}: not a directory", o.static_dir);
    o.static_dir = resolved;
    if (o.static_dir.size() > 1 && o.static_dir.back() == '/') o.static_dir.pop_back();
  }
  return {};
}

http_headers response_headers_of(const http_options& o) {
  http_headers out;
  for (const auto& h : o.headers) {
    const auto colon = h.find(':');
    auto value = std::string_view(h).substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    out.add(h.substr(0, colon), std::string(value));
  }
  return out;
}

negotiation_hook make_http_hook(const http_options& given, negotiation_hook inner) {
  if (given.origins.empty() && !given.same_origin && given.subprotocols.empty() && given.static_dir.empty() &&
      !given.devconsole && given.credentials.empty() && !given.metrics)
    return inner;
  return [o = given, inner = std::move(inner)](const http_request& req, http_response& res) {
    if (!o.credentials.empty() && !authorized(o, req)) {
      const auto user = basic_auth_user(req);
      diagnostics::info(fmt::format("{} {}: {}", format_peer(req), req.target,
                                    user.empty() ? std::string("no credentials: 401")
                                                 : fmt::format("wrong credentials for user '{}': 401", user)));
      answer_plain(res, 401, "authentication required");
      res.headers.add("WWW-Authenticate", "Basic realm=\"wsl\", charset=\"UTF-8\"");
    } else if (!req.is_websocket_upgrade()) {
      if (o.metrics && req.path == o.metrics_path)
        answer_metrics(req, res, o.metrics);
      else if (!o.static_dir.empty())
        serve_static(o, req, res);
      else if (o.devconsole)
        serve_devconsole(req, res);
    } else if (const auto origin = req.headers.get("Origin"); origin && origin_refused(o, *origin, req)) {
      diagnostics::info(fmt::format("{} {}: Origin {} refused", format_peer(req), req.target, *origin));
      answer_plain(res, 403, "origin not allowed");
    } else {
      if (inner) inner(req, res);
      if (res.accepted() && res.subprotocol.empty()) {
        for (const auto& p : o.subprotocols)
          if (req.offers_subprotocol(p)) {
            res.subprotocol = p;
            break;
          }
      }
    }
  };
}

}  // namespace wsl::cli
