// The client side of the negotiation (RFC 6455 section 4.1) and URL parsing.
#include "wsl/client.hpp"

#include "connection.hpp"
#include "credentials.hpp"
#include "deadline.hpp"
#include "proxy.hpp"
#include "wsl/detail/base64.hpp"
#include "wsl/extension.hpp"
#include "wsl/standard.hpp"
#include "wsl/tls.hpp"

#include <asio/cancellation_state.hpp>
#include <asio/connect.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/redirect_error.hpp>
#include <asio/ssl/error.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <openssl/rand.h>

#include <algorithm>
#include <charconv>
#include <optional>

namespace wsl {
namespace {

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  return out;
}

bool header_safe(std::string_view s) noexcept {
  return std::none_of(s.begin(), s.end(), [](char c) { return c == '\r' || c == '\n' || c == '\0'; });
}

// RFC 9110 section 15.2: interim answers (1xx but 101, the answer to the upgrade) may come before
// the final one, asked for or not (100 Continue, 103 Early Hints from a front end): a client
// skips them, up to detail::max_interim_answers, as it does before a proxy's answer to CONNECT.
// A malformed head is no interim answer: it is refused as the final one.
bool interim_head(std::string_view head) {
  detail::http_status_line status;
  http_headers ignored;
  return !detail::parse_response(head, status, ignored) && detail::is_interim(status.status);
}

std::string random_key() {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("no random bytes for Sec-WebSocket-Key");
  return detail::base64_encode(bytes);
}

// The request head, with the user's headers replacing generated ones of the same name.
std::string build_request(const url& u, const client_options& o, const std::string& key) {
  http_headers h;
  h.add("Host", u.authority());
  h.add("Upgrade", "websocket");
  h.add("Connection", "Upgrade");
  h.add("Sec-WebSocket-Key", key);
  h.add("Sec-WebSocket-Version", "13");
  if (u.has_credentials) h.add("Authorization", detail::basic_credentials(u.user, u.password));
  if (!o.origin.empty()) h.add("Origin", o.origin);
  if (!o.subprotocols.empty()) {
    std::string list;
    for (const auto& p : o.subprotocols) list += (list.empty() ? "" : ", ") + p;
    h.add("Sec-WebSocket-Protocol", list);
  }
  if (!o.cookies.empty()) {
    std::string list;
    for (const auto& [name, value] : o.cookies) list += (list.empty() ? "" : "; ") + name + "=" + value;
    h.add("Cookie", list);
  }
  if (!o.connection.extensions.empty()) {
    std::string list;
    for (const auto& factory : o.connection.extensions)
      for (const auto& offer : factory->offer()) list += (list.empty() ? "" : ", ") + offer.to_string();
    h.add("Sec-WebSocket-Extensions", list);
  }
  if (!o.user_agent.empty()) h.add("User-Agent", o.user_agent);
  for (const auto& f : o.headers) h.remove(f.name);
  for (const auto& f : o.headers) h.add(f.name, f.value);

  std::string out = "GET " + u.target + " HTTP/1.1\r\n";
  for (const auto& f : h) out.append(f.name).append(": ").append(f.value).append("\r\n");
  out.append("\r\n");
  return out;
}

}  // namespace

std::string url::authority() const {
  const bool v6 = host.find(':') != std::string::npos;
  std::string out = v6 ? "[" + host + "]" : host;
  if (port != (secure ? 443 : 80)) out += ":" + std::to_string(port);
  return out;
}

std::string url::to_string() const {
  std::string out = secure ? "wss://" : "ws://";
  if (has_credentials) out += detail::percent_encode_userinfo(user) + ":***@";
  return out + authority() + target;
}

namespace {

// "user:password@host:port": the user info (if any) into out's credentials, the host into out.host,
// and port_text the digits after the host's ':' (empty when there are none: "host" or "host:").
std::error_code parse_authority(std::string_view authority, url& out, std::string_view& port_text) {
  // The last '@' ends the user info: a host never holds one, a password may.
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    const auto info = authority.substr(0, at);
    authority.remove_prefix(at + 1);
    const auto colon = info.find(':');
    out.has_credentials = true;
    if (!detail::percent_decode_userinfo(info.substr(0, colon), out.user) || out.user.empty() ||
        out.user.find(':') != std::string::npos)
      return error::bad_userinfo;
    if (colon != std::string_view::npos && !detail::percent_decode_userinfo(info.substr(colon + 1), out.password))
      return error::bad_userinfo;
  }
  port_text = {};
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return error::bad_url;
    out.host = std::string(authority.substr(1, close - 1));
    const auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return error::bad_url;
      port_text = after.substr(1);
    }
  } else {
    const auto colon = authority.rfind(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
  }
  if (out.host.empty() || !header_safe(out.host) || out.host.find_first_of(" /\\") != std::string::npos)
    return error::bad_url;
  if (!port_text.empty()) {
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || value == 0 || value > 65535)
      return error::bad_url;
    out.port = static_cast<std::uint16_t>(value);
  }
  return {};
}

// Splits "scheme://authority" from the rest (path, query, fragment).
bool split_url(std::string_view text, std::string& scheme, std::string_view& authority, std::string_view& rest) {
  const auto scheme_end = text.find("://");
  if (scheme_end == std::string_view::npos) return false;
  scheme = lowercase(text.substr(0, scheme_end));
  text.remove_prefix(scheme_end + 3);
  const auto path_start = text.find_first_of("/?#");
  authority = text.substr(0, path_start);
  rest = path_start == std::string_view::npos ? std::string_view() : text.substr(path_start);
  return true;
}

}  // namespace

std::error_code parse_url(std::string_view text, url& out) {
  out = url{};
  std::string scheme;
  std::string_view authority, rest;
  if (!split_url(text, scheme, authority, rest)) return error::bad_url;
  if (scheme == "ws" || scheme == "http")
    out.secure = false;
  else if (scheme == "wss" || scheme == "https")
    out.secure = true;
  else
    return error::bad_url;
  std::string_view port_text;
  if (auto ec = parse_authority(authority, out, port_text)) return ec;
  if (port_text.empty()) out.port = out.secure ? 443 : 80;
  // The fragment is never sent (RFC 6455 section 3 forbids it in WebSocket URIs; drop it).
  if (const auto hash = rest.find('#'); hash != std::string_view::npos) rest = rest.substr(0, hash);
  out.target = rest.empty() ? "/" : rest.front() == '?' ? "/" + std::string(rest) : std::string(rest);
  if (!std::all_of(out.target.begin(), out.target.end(), [](char c) { return c > 0x20 && c < 0x7f; }))
    return error::bad_url;
  return {};
}

std::error_code parse_proxy_url(std::string_view text, url& out) {
  out = url{};
  std::string scheme;
  std::string_view authority, rest;
  if (!split_url(text, scheme, authority, rest) || (scheme != "http" && scheme != "socks5" && scheme != "socks5h"))
    return error::bad_url;
  std::string_view port_text;
  if (auto ec = parse_authority(authority, out, port_text)) return ec;
  if (port_text.empty() || !(rest.empty() || rest == "/")) return error::bad_url;
  if (scheme != "http" && (out.user.size() > 255 || out.password.size() > 255)) return error::bad_userinfo;
  out.target = "/";
  return {};
}

std::string proxy_protocol(std::string_view text) {
  std::string scheme;
  std::string_view authority, rest;
  return split_url(text, scheme, authority, rest) ? scheme : std::string();
}

namespace {

// RFC 3986 section 5.2.4: "." and ".." segments out of a path.
std::string remove_dot_segments(std::string input) {
  std::string out;
  const auto drop_last = [&out] {
    const auto slash = out.rfind('/');
    out.erase(slash == std::string::npos ? 0 : slash);
  };
  while (!input.empty()) {
    if (input.starts_with("../")) {
      input.erase(0, 3);
    } else if (input.starts_with("./") || input.starts_with("/./")) {
      input.erase(0, 2);
    } else if (input == "/.") {
      input = "/";
    } else if (input.starts_with("/../")) {
      input.erase(0, 3);
      drop_last();
    } else if (input == "/..") {
      input = "/";
      drop_last();
    } else if (input == "." || input == "..") {
      input.clear();
    } else {
      const auto next = std::min(input.find('/', 1), input.size());
      out.append(input, 0, next);
      input.erase(0, next);
    }
  }
  return out;
}

// "scheme:" at the start of a reference (RFC 3986 section 3.1), before any '/', '?' or '#'.
bool has_scheme(std::string_view reference) {
  const auto colon = reference.find(':');
  if (colon == 0 || colon == std::string_view::npos || colon > reference.find_first_of("/?#")) return false;
  const auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  const auto scheme_char = [&](char c) {
    return alpha(c) || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.';
  };
  const auto scheme = reference.substr(0, colon);
  return alpha(scheme.front()) && std::all_of(scheme.begin(), scheme.end(), scheme_char);
}

}  // namespace

std::error_code resolve_url(const url& base, std::string_view location, url& out) {
  // Spaces and bytes beyond ASCII are not allowed in a URI, but servers send them (a UTF-8 path):
  // percent-encoded, as browsers and node ws do. Control characters stay, and are refused below.
  const auto encoded = detail::percent_encode(location, [](unsigned char b) { return b == ' ' || b >= 0x80; });
  std::string_view reference = encoded;
  if (const auto hash = reference.find('#'); hash != std::string_view::npos) reference = reference.substr(0, hash);
  if (has_scheme(reference) || reference.starts_with("//")) {
    // With its own host: parsed as it is, but for the dot segments of its path (section 5.2.2).
    const auto ec = has_scheme(reference) ? parse_url(reference, out)
                                          : parse_url((base.secure ? "wss:" : "ws:") + std::string(reference), out);
    if (ec) return ec;
    const auto mark = std::min(out.target.find('?'), out.target.size());
    auto path = remove_dot_segments(out.target.substr(0, mark));
    if (path.empty() || path.front() != '/') path.insert(0, "/");
    out.target = path + out.target.substr(mark);
    return {};
  }
  // A path, a query or nothing: on the base's origin, with its credentials.
  const auto split = [](std::string_view target, std::string_view& path, std::optional<std::string_view>& query) {
    const auto mark = target.find('?');
    path = target.substr(0, mark);
    if (mark != std::string_view::npos) query = target.substr(mark + 1);
  };
  std::string_view base_path, ref_path;
  std::optional<std::string_view> base_query, ref_query;
  split(base.target, base_path, base_query);
  split(reference, ref_path, ref_query);
  std::string path;
  if (ref_path.empty()) {
    path = std::string(base_path);
    if (!ref_query) ref_query = base_query;
  } else if (ref_path.front() == '/') {
    path = remove_dot_segments(std::string(ref_path));
  } else {
    path = remove_dot_segments(std::string(base_path.substr(0, base_path.rfind('/') + 1)) + std::string(ref_path));
  }
  if (path.empty() || path.front() != '/') path.insert(0, "/");
  std::string target = path;
  if (ref_query) target.append("?").append(*ref_query);
  if (!std::all_of(target.begin(), target.end(), [](char c) { return c > 0x20 && c < 0x7f; })) {
    out = url{};
    return error::bad_url;
  }
  out = base;
  out.target = std::move(target);
  return {};
}

std::string redact_url(std::string_view text) {
  const auto scheme_end = text.find("://");
  const std::size_t start = scheme_end == std::string_view::npos ? 0 : scheme_end + 3;
  const auto authority_end = std::min(text.find_first_of("/?#", start), text.size());
  auto at = text.substr(0, authority_end).rfind('@');
  if (at == std::string_view::npos || at < start) {
    // No user info where it belongs. An '@' further on is in the path of a URL that parses; in
    // one that does not, it may end user info with a raw '/' in the password: hide that too.
    url ignored;
    const auto end = std::min(text.find_first_of("?#", start), text.size());
    at = text.substr(0, end).rfind('@');
    if (at == std::string_view::npos || at < start || !parse_url(text, ignored) || !parse_proxy_url(text, ignored))
      return std::string(text);
  }
  const auto colon = text.find(':', start);
  if (colon >= at) return std::string(text);  // a user without a password
  return std::string(text.substr(0, colon + 1)) + "***" + std::string(text.substr(at));
}

std::error_code client_options::validate() const {
  if (auto ec = connection.validate()) return ec;
  if (connect_timeout.count() <= 0 || handshake_timeout.count() <= 0 || max_handshake_size < 256)
    return error::invalid_option;
  for (const auto& p : subprotocols)
    if (p.empty() || !header_safe(p) || p.find_first_of(", ") != std::string::npos) return error::invalid_option;
  for (const auto& f : headers)
    if (f.name.empty() || !header_safe(f.name) || !header_safe(f.value) || f.name.find(':') != std::string::npos)
      return error::invalid_option;
  if (!header_safe(origin) || !header_safe(user_agent)) return error::invalid_option;
  if (url parsed; !proxy.empty() && parse_proxy_url(proxy, parsed)) return error::invalid_option;
  if (!unix_socket.empty()) {
    std::error_code bad;
    unix_endpoint(unix_socket, bad);
    if (bad || !proxy.empty() || local_address) return error::invalid_option;
  }
  for (const auto& r : resolve)
    if (r.host.empty() || r.port == 0 || r.addresses.empty()) return error::invalid_option;
  return {};
}

namespace {

// "a=1; b=2" as "a=***; b=***": the names of cookies, not their values. With `attributes` (a
// Set-Cookie value), only the first pair is a cookie; the attributes after it (Path=/) are kept.
void append_redacted_cookies(std::string& out, std::string_view value, bool attributes) {
  for (bool first = true; !value.empty(); first = false) {
    const auto end = value.find(';');
    auto pair = value.substr(0, end);
    value = end == std::string_view::npos ? std::string_view{} : value.substr(end);
    const auto equals = pair.find('=');
    if ((first || !attributes) && equals != std::string_view::npos)
      out.append(pair.substr(0, equals + 1)).append("***");
    else
      out.append(pair);
    if (!value.empty()) {
      out.push_back(';');
      value.remove_prefix(1);
    }
  }
}

}  // namespace

std::string redact_credentials(std::string_view head) {
  std::string out;
  while (!head.empty()) {
    const auto end = head.find('\n');
    auto line = head.substr(0, end == std::string_view::npos ? head.size() : end + 1);
    head.remove_prefix(line.size());
    const auto colon = line.find(':');
    const auto name = colon == std::string_view::npos ? std::string() : lowercase(line.substr(0, colon));
    const bool authorization = name == "authorization" || name == "proxy-authorization";
    const bool cookie = name == "cookie" || name == "set-cookie";
    if (!authorization && !cookie) {
      out.append(line);
      continue;
    }
    const bool crlf = line.ends_with("\r\n"), lf = !crlf && line.ends_with('\n');
    auto value = line.substr(colon + 1, line.size() - colon - 1 - (crlf ? 2 : lf ? 1 : 0));
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    out.append(line.substr(0, colon)).append(": ");
    if (authorization) {
      // Keep the scheme ("Basic"), which says what kind of credentials went, and hide the rest.
      const auto scheme = value.substr(0, std::min(value.find_first_of(" \t"), value.size()));
      if (!scheme.empty() && scheme.size() < value.size() && value[scheme.size()] == ' ')
        out.append(scheme).append(" ");
      out.append("***");
    } else {
      append_redacted_cookies(out, value, name == "set-cookie");
    }
    out.append(crlf ? "\r\n" : lf ? "\n" : "");
  }
  return out;
}

namespace {

// What wraps the stream of a wss:// URL: options.transport_extension, or TLS verified against
// the system's CAs. nullptr, with ec and the report set, when that cannot be set up.
std::shared_ptr<const connection_extension> tls_for(const client_options& o, std::error_code& ec, connect_report& rep) {
  if (o.transport_extension) return o.transport_extension;
  // One verifying client context per process: loading the system's CAs is not free.
  static const std::shared_ptr<connection_extension> verified = [] {
    std::string ignored;
    return make_tls_extension(role::client, tls_options{}, ignored);
  }();
  if (!verified) {
    ec = error::tls_handshake_failed;
    rep.tls_error = "cannot set up TLS";
  }
  return verified;
}

// Per-operation cancellation (asio's cancellation slots, as awaitable operators' || emit): the
// operation in progress sees it through the coroutine's cancellation state and ends with
// operation_aborted; cancelled() between two operations sees one that came while none was.
bool cancelled(const asio::cancellation_state& state) noexcept {
  return state.cancelled() != asio::cancellation_type::none;
}

// An answer connect() may follow: 301, 302, 303, 307 or 308 with a Location (RFC 9110 section 15.4).
bool is_redirect(const connect_report& rep) {
  return is_redirect_status(rep.status) && rep.response_headers.count("Location") == 1;
}

// The one upgrade connect() and client_handshake() run, over a connected stream and within
// handshake_timeout: `tls` (when set) wraps the stream and runs its handshake, then the HTTP
// exchange of RFC 6455 section 4.1. The stream becomes the websocket's, or is closed with the
// frame of this coroutine.
asio::awaitable<websocket> upgrade(std::unique_ptr<transport> stream, const url& u, const client_options& o,
                                   std::shared_ptr<const connection_extension> tls, bool follows_redirects,
                                   std::error_code& ec, connect_report& rep) {
  detail::deadline limit(stream->get_executor(), o.handshake_timeout, [t = stream.get()] { t->close(); });
  const auto started = clock::now();
  const asio::cancellation_state cancellation = co_await asio::this_coro::cancellation_state;
  if (tls) {
    stream = tls->wrap(std::move(stream), role::client, u.host, ec);
    if (!ec && !stream) ec = error::invalid_option;  // an extension that gave nothing back
    if (ec) co_return websocket{};
    limit.on_expiry([t = stream.get()] { t->close(); });
    co_await stream->start(ec);
    rep.tls_time = clock::now() - started;
  }
  if (const auto* d = tls_details_of(*stream)) {
    rep.tls_error = d->error;
    rep.tls_protocol = d->protocol;
    rep.tls_cipher = d->cipher;
  }
  if (limit.expired()) ec = error::handshake_timeout;
  if (!ec && cancelled(cancellation)) ec = asio::error::operation_aborted;
  if (ec) co_return websocket{};
  const auto key = random_key();
  rep.request_head = build_request(u, o, key);
  const asio::const_buffer request = asio::buffer(rep.request_head);
  co_await stream->write(std::span(&request, 1), ec);
  if (!ec && cancelled(cancellation)) ec = asio::error::operation_aborted;

  // Interim answers leave the front of buf as they end; with the final head they may take
  // max_handshake_size in all (`room` is what is left of it).
  std::string buf(std::min<std::size_t>(o.max_handshake_size, 4096), '\0');
  std::size_t used = 0, head_end = std::string::npos, room = o.max_handshake_size, interim = 0;
  while (!ec && head_end == std::string::npos) {
    if (used == buf.size()) {
      if (buf.size() >= room) {
        ec = error::handshake_too_large;
        break;
      }
      buf.resize(std::min(buf.size() * 2, room));
    }
    const auto n = co_await stream->read_some(asio::buffer(buf.data() + used, buf.size() - used), ec);
    if (ec) break;
    auto scanned = used;
    used += n;
    head_end = detail::find_head_end(std::string_view(buf.data(), used), scanned);
    while (head_end != std::string::npos && interim_head(std::string_view(buf.data(), head_end + 4))) {
      if (interim++ == detail::max_interim_answers) {
        ec = error::bad_response;  // a server that only ever says "wait"
        break;
      }
      const auto skip = head_end + 4;
      std::copy(buf.begin() + static_cast<std::ptrdiff_t>(skip), buf.begin() + static_cast<std::ptrdiff_t>(used),
                buf.begin());
      used -= skip;
      room -= skip;
      if (buf.size() > room) buf.resize(room);
      scanned = 0;
      head_end = detail::find_head_end(std::string_view(buf.data(), used), 0);
    }
    // A head with LF line ends never ends for a CRLF reader: refuse it now, not at the time limit.
    if (!ec && head_end == std::string::npos && detail::has_bare_lf(std::string_view(buf.data(), used), scanned))
      ec = error::bad_response;
    if (!ec && cancelled(cancellation)) ec = asio::error::operation_aborted;
  }
  if (limit.expired()) ec = error::handshake_timeout;
  if (!ec && head_end + 4 > room) ec = error::handshake_too_large;
  if (ec && u.secure && used == 0 && interim == 0) {
    // TLS 1.3 finishes the client's handshake before the server has checked its certificate: a
    // refusal arrives as an alert (or a hang-up) in place of the HTTP answer.
    if (ec.category() == asio::error::get_ssl_category()) {
      rep.tls_error = ec.message();
      ec = error::tls_handshake_failed;
    } else if (const auto* d = tls_details_of(*stream); d && d->certificate_requested &&
                                                        ec != error::handshake_timeout &&
                                                        ec != asio::error::operation_aborted) {
      rep.tls_error = "the server asked for a client certificate and none was given (" + ec.message() + ")";
      ec = error::tls_handshake_failed;
    }
  }
  if (ec) {
    if (ec == asio::error::eof) ec = error::bad_response;
    co_return websocket{};
  }
  const std::size_t head_size = head_end + 4;
  detail::http_status_line status;
  if ((ec = detail::parse_response(std::string_view(buf.data(), head_size), status, rep.response_headers)))
    co_return websocket{};
  rep.status = status.status;
  rep.version_minor = status.version_minor;
  rep.reason = status.reason;
  rep.handshake_time = clock::now() - started;

  if (status.status != 101) {
    if (follows_redirects && is_redirect(rep)) {  // followed: its body is of no use
      ec = error::bad_status;
      co_return websocket{};
    }
    // Keep the start of the body: it usually says why.
    std::size_t want = 4096;
    if (const auto cl = rep.response_headers.get("Content-Length")) {
      std::size_t n = 0;
      const auto end = cl->data() + cl->size();
      if (const auto r = std::from_chars(cl->data(), end, n); r.ec == std::errc() && r.ptr == end)
        want = std::min(want, n);
    }
    rep.body.assign(buf.data() + head_size, std::min(used - head_size, want));
    limit.arm(std::chrono::milliseconds(500));
    while (rep.body.size() < want) {
      char more[1024];
      std::error_code read_ec;
      const auto n =
          co_await stream->read_some(asio::buffer(more, std::min(sizeof more, want - rep.body.size())), read_ec);
      if (read_ec) break;
      rep.body.append(more, n);
    }
    ec = error::bad_status;
    co_return websocket{};
  }
  const auto& h = rep.response_headers;
  // The upgrade is HTTP/1.1's (RFC 9110 section 7.8): a 101 of HTTP/1.0 answers none.
  if (status.version_minor < 1 || !h.has_token("Upgrade", "websocket") || !h.has_token("Connection", "upgrade"))
    ec = error::bad_response;
  else if (h.count("Sec-WebSocket-Accept") != 1 || *h.get("Sec-WebSocket-Accept") != websocket_accept_key(key))
    ec = error::bad_accept;
  else if (h.count("Sec-WebSocket-Protocol") > 1)
    ec = error::bad_subprotocol;
  else if (const auto p = h.get("Sec-WebSocket-Protocol");
           p && std::find(o.subprotocols.begin(), o.subprotocols.end(), *p) == o.subprotocols.end())
    ec = error::bad_subprotocol;
  if (ec) co_return websocket{};
  // At most one extension, one we offered, with parameters we allow.
  std::unique_ptr<message_extension> extension;
  if (h.contains("Sec-WebSocket-Extensions")) {
    std::size_t malformed = 0;
    const auto chosen = parse_extensions(h, &malformed);
    const message_extension_factory* factory = nullptr;
    for (const auto& f : o.connection.extensions)
      if (chosen.size() == 1 && chosen[0].name == f->name()) factory = f.get();
    if (malformed != 0 || chosen.size() != 1 || !factory) {
      ec = error::bad_extension;
      co_return websocket{};
    }
    extension = factory->on_response(chosen[0], ec);
    if (ec) co_return websocket{};
  }

  auto conn = std::make_shared<detail::connection>(std::move(stream), role::client, o.connection);
  conn->preload(std::string_view(buf.data() + head_size, used - head_size));
  if (const auto p = h.get("Sec-WebSocket-Protocol")) conn->set_subprotocol(std::string(*p));
  conn->set_extension(std::move(extension));
  conn->start();
  co_return websocket(std::move(conn));
}

// The addresses client_options::resolve gives for a name and port; nullptr when none does.
const std::vector<asio::ip::address>* overridden(const client_options& o, const std::string& host, std::uint16_t port) {
  for (const auto& r : o.resolve)
    if (r.port == port && (r.host == "*" || lowercase(r.host) == lowercase(host))) return &r.addresses;
  return nullptr;
}

// Connects `socket` to the first of `endpoints` that answers, from o.local_address when set (then
// only to those of its family).
asio::awaitable<asio::ip::tcp::endpoint> connect_first(asio::ip::tcp::socket& socket,
                                                       const std::vector<asio::ip::tcp::endpoint>& endpoints,
                                                       const client_options& o, std::error_code& ec) {
  const auto redirect = [&ec] { return asio::redirect_error(asio::use_awaitable, ec); };
  if (!o.local_address) co_return co_await asio::async_connect(socket, endpoints, redirect());
  ec = asio::error::address_family_not_supported;
  for (const auto& endpoint : endpoints) {
    if (endpoint.address().is_v4() != o.local_address->is_v4()) continue;
    std::error_code ignored;
    socket.close(ignored);
    socket.open(endpoint.protocol(), ec);
    // The port comes with connect(), which knows the server: bind() alone would reserve one for
    // every server at once.
    if (!ec) socket.set_option(asio::detail::socket_option::boolean<IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT>(true), ec);
    if (!ec) socket.bind({*o.local_address, 0}, ec);
    if (ec) co_return asio::ip::tcp::endpoint{};  // the address is wrong for every server
    co_await socket.async_connect(endpoint, redirect());
    if (!ec) co_return endpoint;
    if (!socket.is_open()) co_return asio::ip::tcp::endpoint{};  // closed by the deadline
  }
  co_return asio::ip::tcp::endpoint{};
}

// connect() after run_client_operation()'s first steps.
asio::awaitable<websocket> open_connection(asio::any_io_executor executor, const url& u, const client_options& o,
                                           std::error_code& ec, connect_report& rep) {
  std::shared_ptr<const connection_extension> tls;
  if (u.secure) tls = tls_for(o, ec, rep);  // before connecting: a TLS that cannot be set up fails at once
  if (ec) co_return websocket{};
  const auto redirect = [&](std::error_code& e) { return asio::redirect_error(asio::use_awaitable, e); };
  const asio::cancellation_state cancellation = co_await asio::this_coro::cancellation_state;

  if (!o.unix_socket.empty()) {
    // 1. Connect to the Unix-domain socket, within connect_timeout.
    if (u.secure) {
      ec = error::invalid_option;  // TLS wraps a TCP socket
      co_return websocket{};
    }
    std::error_code ignored;
    const auto endpoint = unix_endpoint(o.unix_socket, ignored);  // validate() saw it parse
    asio::local::stream_protocol::socket socket(executor);
    {
      detail::deadline limit(executor, o.connect_timeout, [&] {
        std::error_code e;
        socket.close(e);
      });
      const auto started = clock::now();
      co_await socket.async_connect(endpoint, redirect(ec));
      rep.connect_time = clock::now() - started;
      rep.unix_socket = o.unix_socket;
      if (limit.expired()) ec = asio::error::timed_out;
      if (!ec && cancelled(cancellation)) ec = asio::error::operation_aborted;
      if (ec) co_return websocket{};
    }
    // 2. The HTTP exchange, within handshake_timeout.
    auto stream = make_unix_transport(std::move(socket));
    auto ws = co_await upgrade(std::move(stream), u, o, tls, o.max_redirects > 0, ec, rep);
    co_return ws;
  }

  // 1. Resolve and connect (to the proxy, and through it to the server), within connect_timeout.
  url proxy;
  if (!o.proxy.empty()) {
    parse_proxy_url(o.proxy, proxy);  // validate() saw it parse
    rep.proxy = detail::host_and_port(proxy);
    rep.proxy_protocol = proxy_protocol(o.proxy);
  }
  const url& first_hop = o.proxy.empty() ? u : proxy;
  asio::ip::tcp::socket socket(executor);
  {
    asio::ip::tcp::resolver resolver(executor);
    detail::deadline limit(executor, o.connect_timeout, [&] {
      resolver.cancel();
      std::error_code ignored;
      socket.close(ignored);
    });
    auto started = clock::now();
    std::vector<asio::ip::tcp::endpoint> endpoints;
    std::error_code address_ec;
    const auto address = asio::ip::make_address(first_hop.host, address_ec);
    if (!address_ec) {
      endpoints.emplace_back(address, first_hop.port);
    } else if (const auto* given = overridden(o, first_hop.host, first_hop.port)) {
      for (const auto& a : *given) endpoints.emplace_back(a, first_hop.port);
      rep.resolved_by_override = true;
    } else {
      const auto port = std::to_string(first_hop.port);
      rep.resolved_by_dns = true;
      const auto results = co_await resolver.async_resolve(first_hop.host, port, redirect(ec));
      if (!ec)
        for (const auto& r : results) endpoints.push_back(r.endpoint());
      if (!ec && endpoints.empty()) ec = asio::error::host_not_found;
    }
    rep.resolve_time = clock::now() - started;
    if (!ec) {
      started = clock::now();
      rep.remote = co_await connect_first(socket, endpoints, o, ec);
      if (!ec && rep.proxy_protocol.starts_with("socks5")) {
        // socks5://: the name is resolved here (within connect_timeout), socks5h://: by the proxy.
        rep.proxy_request_head = "SOCKS5 CONNECT " + detail::host_and_port(u);
        std::optional<asio::ip::address> target;
        std::error_code not_literal;
        asio::ip::make_address(u.host, not_literal);
        const auto* given = not_literal ? overridden(o, u.host, u.port) : nullptr;
        if (rep.proxy_protocol == "socks5" && given) {
          target = given->front();
        } else if (rep.proxy_protocol == "socks5" && not_literal) {
          const auto results = co_await resolver.async_resolve(u.host, std::to_string(u.port), redirect(ec));
          if (!ec && results.empty()) ec = asio::error::host_not_found;
          if (!ec) target = results.begin()->endpoint().address();
        }
        detail::socks_answer answer;
        if (!ec) co_await detail::socks5_connect(socket, u, proxy, target, answer, ec);
        rep.proxy_status = answer.code;
        rep.proxy_reason = std::move(answer.reason);
      } else if (!ec && !o.proxy.empty()) {
        rep.proxy_request_head = detail::connect_request(u, proxy, o.user_agent);
        detail::proxy_answer answer;
        co_await detail::exchange_connect(socket, rep.proxy_request_head, o.max_handshake_size, answer, ec);
        rep.proxy_status = answer.status.status;
        rep.proxy_version_minor = answer.status.version_minor;
        rep.proxy_reason = answer.status.reason;
        rep.proxy_response_headers = std::move(answer.headers);
        if (!ec && (rep.proxy_status < 200 || rep.proxy_status > 299)) ec = error::proxy_refused;
      }
      rep.connect_time = clock::now() - started;
    }
    if (limit.expired()) ec = asio::error::timed_out;
    if (!ec && cancelled(cancellation)) ec = asio::error::operation_aborted;
    if (ec) co_return websocket{};
  }

  // 2. TLS and the HTTP exchange, within handshake_timeout.
  auto stream = make_tcp_transport(std::move(socket));
  auto ws = co_await upgrade(std::move(stream), u, o, tls, o.max_redirects > 0, ec, rep);
  co_return ws;
}

// Whether two URLs are of one origin (RFC 6454): scheme, host and port.
bool same_origin(const url& a, const url& b) {
  return a.secure == b.secure && a.port == b.port && lowercase(a.host) == lowercase(b.host);
}

// The options for a connection that left the first URL's origin: no Authorization, no Cookie.
client_options without_credentials(const client_options& o) {
  client_options out = o;
  out.cookies.clear();
  out.headers.remove("Authorization");
  out.headers.remove("Cookie");
  return out;
}

// connect(): open_connection(), then again for each redirect followed (client_options::max_redirects).
asio::awaitable<websocket> follow_redirects(asio::any_io_executor executor, url u, const client_options& o,
                                            std::error_code& ec, connect_report& rep) {
  const asio::cancellation_state cancellation = co_await asio::this_coro::cancellation_state;
  std::optional<client_options> elsewhere;  // once a redirect has left the origin
  std::vector<connect_report::redirect_hop> hops;
  for (;;) {
    rep = {};
    ec = {};
    const auto started = clock::now();
    auto ws = co_await open_connection(executor, u, elsewhere ? *elsewhere : o, ec, rep);
    rep.redirects = hops;
    rep.final_url = u.to_string();
    if (ec != error::bad_status || o.max_redirects == 0 || !is_redirect(rep)) co_return ws;
    if (hops.size() == o.max_redirects) {
      ec = error::too_many_redirects;
      co_return ws;
    }
    url next;
    if (resolve_url(u, *rep.response_headers.get("Location"), next) || (u.secure && !next.secure) ||
        (next.secure && !o.unix_socket.empty())) {  // TLS wraps a TCP socket
      ec = error::bad_redirect;
      co_return ws;
    }
    if (!same_origin(u, next)) {
      if (!elsewhere) elsewhere = without_credentials(o);
    } else if (!next.has_credentials && u.has_credentials) {
      next.has_credentials = true;
      next.user = u.user;
      next.password = u.password;
    }
    hops.push_back({std::move(rep.request_head), rep.status, rep.version_minor, std::move(rep.reason),
                    std::move(rep.response_headers), next.to_string(), clock::now() - started});
    u = std::move(next);
    if (cancelled(cancellation)) {
      rep.redirects = std::move(hops);
      ec = asio::error::operation_aborted;
      co_return websocket{};
    }
  }
}

// client_handshake() after run_client_operation()'s first steps.
asio::awaitable<websocket> handshake_over(std::unique_ptr<transport> stream, const url& u, const client_options& o,
                                          std::error_code& ec, connect_report& rep) {
  // Nothing is connected here, through a proxy or not: a proxy asked for would be ignored.
  if (!o.proxy.empty()) {
    ec = error::invalid_option;
    co_return websocket{};
  }
  if (!stream || !stream->is_open()) {
    ec = error::not_open;
    co_return websocket{};
  }
  // wss:// asks for TLS: started here unless the stream is TLS already.
  std::shared_ptr<const connection_extension> tls;
  if (u.secure && !stream->is_secure()) tls = tls_for(o, ec, rep);
  if (ec) co_return websocket{};
  rep.remote = stream->remote_endpoint();
  rep.final_url = u.to_string();
  auto ws = co_await upgrade(std::move(stream), u, o, tls, false, ec, rep);
  co_return ws;
}

// What connect() and client_handshake() share: the report (the caller's, or one of our own)
// emptied, the URL parsed, the options checked; then operation(url, report), with asio's
// throw_if_cancelled off: cancelled, it ends with operation_aborted in ec and its stream closed,
// never by an exception from a co_await within. The caller's setting is back when it returns.
template <typename Operation>
asio::awaitable<websocket> run_client_operation(std::string_view url_text, const client_options& o, std::error_code& ec,
                                                connect_report* report, Operation operation) {
  connect_report scratch;
  auto& rep = report ? *report : scratch;
  rep = {};
  url u;
  ec = parse_url(url_text, u);
  if (!ec) ec = o.validate();
  if (ec) co_return websocket{};
  const bool throwing = co_await asio::this_coro::throw_if_cancelled();
  co_await asio::this_coro::throw_if_cancelled(false);
  auto ws = co_await operation(u, rep);
  co_await asio::this_coro::throw_if_cancelled(throwing);
  co_return ws;
}

}  // namespace

asio::awaitable<websocket> connect(asio::any_io_executor executor, std::string_view url, const client_options& options,
                                   std::error_code& ec, connect_report* report) {
  const auto operation = [&](const wsl::url& u, connect_report& rep) {
    return follow_redirects(std::move(executor), u, options, ec, rep);
  };
  auto ws = co_await run_client_operation(url, options, ec, report, operation);
  co_return ws;
}

asio::awaitable<websocket> client_handshake(std::unique_ptr<transport> stream, std::string_view url,
                                            const client_options& options, std::error_code& ec,
                                            connect_report* report) {
  const auto operation = [&](const wsl::url& u, connect_report& rep) {
    return handshake_over(std::move(stream), u, options, ec, rep);
  };
  auto ws = co_await run_client_operation(url, options, ec, report, operation);
  co_return ws;
}

asio::awaitable<websocket> client_handshake(std::unique_ptr<transport> stream, std::string_view url,
                                            const client_options& options, std::error_code& ec) {
  auto ws = co_await client_handshake(std::move(stream), url, options, ec, nullptr);
  co_return ws;
}

asio::awaitable<websocket> client_handshake(std::unique_ptr<transport> stream, std::string_view url,
                                            const client_options& options) {
  std::error_code ec;
  auto ws = co_await client_handshake(std::move(stream), url, options, ec, nullptr);
  if (ec) throw std::system_error(ec);
  co_return ws;
}

asio::awaitable<websocket> connect(asio::any_io_executor executor, std::string_view url,
                                   const client_options& options) {
  std::error_code ec;
  auto ws = co_await connect(executor, url, options, ec);
  if (ec) throw std::system_error(ec);
  co_return ws;
}

}  // namespace wsl
