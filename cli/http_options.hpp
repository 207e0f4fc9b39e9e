// The HTTP side shared by the server subcommands (echo, serve): --origin, --header, --subprotocol,
// --static and the access log. All of it is built on the library's negotiation hook and its
// on_negotiation observer; nothing here reaches into the library.
#pragma once

#include "common.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace wsl::cli {

struct http_options {
  // Origin patterns (--origin, repeatable); an upgrade whose Origin matches none gets 403. Empty:
  // every origin. A request without Origin (not a browser) is let through.
  std::vector<std::string> origins;
  // --same-origin: an upgrade whose Origin is not this server's (its authority the request's Host)
  // gets 403, unless it matches one of `origins`.
  bool same_origin = false;
  // "Name: value" fields added to every response this server writes (--header, repeatable).
  std::vector<std::string> headers;
  // Subprotocols in our order of preference (--subprotocol, repeatable): the first one the client
  // offers is chosen; none offered, none chosen.
  std::vector<std::string> subprotocols;
  // Plain GET and HEAD requests are answered with files under this directory (--static).
  std::string static_dir;
  // Larger files are refused with 403: the negotiation hook answers from memory, on the
  // listener's thread, so a file is read whole before it is sent.
  std::uint64_t static_max_size = 16 << 20;
  // Plain GET requests get the development console page instead (--devconsole, devconsole.hpp).
  bool devconsole = false;
  // --basic-auth-file: every request must carry HTTP Basic credentials that are a "user:password"
  // line of this file (401 otherwise). finish_http_options() reads it into `credentials`: the
  // SHA-256 of each line, compared in constant time.
  std::string basic_auth_file;
  std::vector<std::array<unsigned char, 32>> credentials;
  // --metrics PATH: plain GET and HEAD requests for PATH are answered with what `metrics` renders
  // (Prometheus' text format), before --static and --devconsole, after --basic-auth-file.
  std::string metrics_path;
  std::function<std::string()> metrics;
};

// A plain-text answer: `status`, `text` and a newline as the body, any header set before dropped.
void answer_plain(http_response& res, int status, std::string_view text);

// The answer to a request for the metrics (--metrics): what `render` gives, to GET and HEAD
// (the library sends a HEAD the length only), never cached; 405 to other methods.
void answer_metrics(const http_request& req, http_response& res, const std::function<std::string()>& render);

// The user of a request's Basic credentials (not checked here); empty without them.
std::string basic_auth_user(const http_request& req);

void add_http_options(CLI::App& app, http_options& o);

// Checks the options once the command line is parsed: header syntax, the static directory (made
// absolute and canonical). Returns what is wrong, or an empty string.
std::string finish_http_options(http_options& o);

// The hook that applies the options: for an upgrade request the Origin check, then `inner` (the
// subcommand's own say, may be empty), then the subprotocol; for a plain request, --static or --devconsole. Static
// files served and refused are logged at -v.
negotiation_hook make_http_hook(const http_options& o, negotiation_hook inner);

// The --header fields, for listener_options::response_headers: the library adds them to every
// response, its own refusals (400, 426, 431, 503) included, which a hook never sees.
http_headers response_headers_of(const http_options& o);

// True when `origin` (an Origin header value) matches one of the patterns. A pattern with "://"
// is matched against the whole origin ("https://*.example.com"); one without it against the host
// ("example.com", "*.example.com") or host and port ("localhost:8080", "localhost:*"). '*'
// matches any run of characters; letters match in any case.
bool origin_allowed(std::string_view origin, const std::vector<std::string>& patterns);

// True when `origin` names the server the request was sent to: its host and port (after "://")
// are the request's Host, letters in any case. "null" never is.
bool same_origin(std::string_view origin, const http_request& req);

// The Content-Type for a file name, by its extension.
std::string_view content_type_for(std::string_view file_name) noexcept;

// A UTC timestamp for logs: 2026-11-25T18:09:01.123Z.
std::string log_time(std::chrono::system_clock::time_point t);

}  // namespace wsl::cli
