// --devconsole (websocketd's option of the same name): a plain GET for any path of a server
// answers a page that opens a WebSocket to that same path and query, shows what it sends and
// receives, and sends what is typed into it. For trying an endpoint from a browser without
// writing a client. The page is ours, self-contained (no external resources), served with a
// Content-Security-Policy that lets it talk only to WebSocket URLs.
#pragma once

#include <wsl/http.hpp>

namespace wsl::cli {

// Answers `req` (not an upgrade) with the console: 200 for GET, headers only for HEAD, 405 for any
// other method.
void serve_devconsole(const http_request& req, http_response& res);

}  // namespace wsl::cli
