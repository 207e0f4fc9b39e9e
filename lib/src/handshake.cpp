// The server side of the HTTP/1.1 upgrade (RFC 6455 section 4.2).
#include "handshake.hpp"

#include "address.hpp"
#include "connection.hpp"
#include "deadline.hpp"
#include "proxy_protocol.hpp"
#include "token.hpp"
#include "wsl/extension.hpp"
#include "wsl/standard.hpp"

#include <asio/error.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>

namespace wsl::detail {
namespace {

bool header_safe(std::string_view s) noexcept {
  return std::none_of(s.begin(), s.end(), [](char c) { return c == '\r' || c == '\n' || c == '\0'; });
}

bool response_safe(const http_response& res) noexcept {
  if (!header_safe(res.reason) || res.status < 100 || res.status > 999) return false;
  return std::all_of(res.headers.begin(), res.headers.end(), [](const http_field& f) {
    return !f.name.empty() && header_safe(f.name) && f.name.find(':') == std::string::npos && header_safe(f.value);
  });
}

// After a refusal: our FIN, then what the peer still sends is read and dropped until it closes
// too (at most a second), since closing with unread input would send a reset that can destroy
// the refusal before the peer read it.
asio::awaitable<void> linger(transport& stream, deadline& timeout, const listener_options& opts) {
  stream.shutdown_send();
  timeout.arm(std::min<clock::duration>(std::chrono::seconds(1), opts.handshake_timeout));
  char sink[512];
  std::error_code read_ec;
  while (!read_ec) co_await stream.read_some(asio::buffer(sink), read_ec);
}

// The stream's own handshake (TLS). After a failure it lingers, so that the alert saying why
// reaches the client. (A coroutine of its own: server_handshake's frame, which every connection
// allocates, stays as small as it was.)
asio::awaitable<void> start_stream(transport& stream, deadline& timeout, const listener_options& opts,
                                   std::error_code& ec) {
  co_await stream.start(ec);
  if (!ec) co_return;
  if (timeout.expired()) {
    ec = error::handshake_timeout;
    co_return;
  }
  const auto why = ec;
  co_await linger(stream, timeout, opts);
  ec = why;
}

void plain_body(http_response& res, int status, std::string_view text) {
  res.status = status;
  res.reason.clear();
  res.headers.remove("Content-Type");
  res.headers.add("Content-Type", "text/plain; charset=utf-8");
  res.body.assign(text).append("\n");
}

std::atomic<std::uint64_t> next_connection_id{1};

// One X-Forwarded-For element: an address, bracketed or not, with a port or not (some proxies
// add one).
std::optional<asio::ip::address> forwarded_address(std::string_view e) {
  while (!e.empty() && (e.front() == ' ' || e.front() == '\t')) e.remove_prefix(1);
  while (!e.empty() && (e.back() == ' ' || e.back() == '\t')) e.remove_suffix(1);
  if (!e.empty() && e.front() == '[') {
    const auto close = e.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    e = e.substr(1, close - 1);
  } else if (std::count(e.begin(), e.end(), ':') == 1) {
    e = e.substr(0, e.find(':'));  // IPv4 and a port
  }
  std::error_code ec;
  const auto a = asio::ip::make_address(std::string(e), ec);
  if (ec) return std::nullopt;
  return unmapped(a);
}

using hop = std::optional<asio::ip::address>;  // nullopt: an element that names no address

// X-Forwarded-For's elements: "198.51.100.1, 203.0.113.7".
void x_forwarded_for_hops(std::string_view rest, std::vector<hop>& out) {
  for (;;) {
    const auto comma = rest.find(',');
    out.push_back(forwarded_address(rest.substr(0, comma)));
    if (comma == std::string_view::npos) return;
    rest.remove_prefix(comma + 1);
  }
}

// RFC 7239's elements: "for=198.51.100.1;proto=https, for=\"[2001:db8::7]:4711\"", each its for=
// node (an address, IPv6 in brackets, a port or not); nullopt for an element whose for= is
// missing, "unknown" or an obfuscated "_name", and in place of the rest of a field that does not
// parse. Empty elements are skipped, as lists allow.
void forwarded_hops(std::string_view v, std::vector<hop>& out) {
  field_scanner in(v);
  hop node;
  bool any_pair = false, seen_for = false;
  for (;;) {
    in.skip_space();
    if (!in.at_end() && !in.peek(',') && !in.peek(';')) {
      const auto name = in.token();
      if (name.empty() || !in.take('=')) break;
      std::optional<std::string> value;
      if (in.peek('"'))
        value = in.quoted();  // may be empty
      else if (auto token = in.token(); !token.empty())
        value = std::move(token);
      if (!value) break;
      if (iequals(name, "for")) {
        if (seen_for) break;  // a parameter occurs once per element
        seen_for = true;
        node = forwarded_address(*value);
      }
      any_pair = true;
      in.skip_space();
    }
    if (in.at_end() || in.peek(',')) {
      if (any_pair) out.push_back(node);
      if (!in.take(',')) return;
      node.reset();
      any_pair = seen_for = false;
    } else if (!in.take(';')) {
      break;
    }
  }
  out.push_back(std::nullopt);  // malformed: the walk stops here
}

// The hops the chosen header lists, the nearest last, across every field of that name in order.
std::vector<hop> forwarding_hops(const http_request& req, listener_options::forwarding_header header) {
  using h = listener_options::forwarding_header;
  const std::string_view name = header == h::forwarded   ? "Forwarded"
                                : header == h::x_real_ip ? "X-Real-IP"
                                                         : "X-Forwarded-For";
  std::vector<hop> hops;
  for (const auto value : req.headers.get_all(name)) {
    if (header == h::forwarded)
      forwarded_hops(value, hops);
    else if (header == h::x_real_ip)
      hops.assign(1, forwarded_address(value));  // one address, the last field's
    else
      x_forwarded_for_hops(value, hops);
  }
  return hops;
}

// From the right of the header the proxies set, the first address that is not a trusted proxy;
// the leftmost when all are; the last good one before an element that names none.
asio::ip::address client_address_of(const http_request& req, const listener_options& opts,
                                    const std::optional<asio::ip::address>& proxy_header_source) {
  auto client = proxy_header_source.value_or(req.remote_endpoint.address());
  const auto& proxies = opts.trusted_proxies;
  if (proxies.empty() || req.unix_peer || !trusted_proxy(proxies, client)) return client;
  const auto hops = forwarding_hops(req, opts.client_address_header);
  for (auto it = hops.rbegin(); it != hops.rend(); ++it) {
    if (!*it) break;
    client = **it;
    if (!trusted_proxy(proxies, client)) break;
  }
  return client;
}

// Whether the connection may stay open after a plain answer (HTTP/1.1 keep-alive): a request of
// HTTP/1.1 that does not ask to close and carries no body (which would have to be read past), and
// an answer whose Connection does not say close (a hook's may).
bool persistent(const http_request& req, const http_response& res) {
  if (req.version_major != 1 || req.version_minor < 1 || req.headers.has_token("Connection", "close")) return false;
  if (req.headers.contains("Transfer-Encoding")) return false;
  if (const auto length = req.headers.get("Content-Length"); length && *length != "0") return false;
  return !res.headers.has_token("Connection", "close");
}

}  // namespace

bool trusted_proxy(const std::vector<address_range>& proxies, const asio::ip::address& a) {
  return std::any_of(proxies.begin(), proxies.end(), [&](const address_range& r) { return r.contains(a); });
}

asio::awaitable<websocket> server_handshake(std::unique_ptr<transport> stream, const listener_options& opts,
                                            std::shared_ptr<connection_budget> budget, handshake_report& report,
                                            std::error_code& ec, handshake_control& control) {
  ec = {};
  report = {};
  report.remote = stream->remote_endpoint();
  report.client_address = report.remote.address();
  report.unix_peer = stream->unix_peer();
  report.connection_id = next_connection_id.fetch_add(1, std::memory_order_relaxed);
  deadline timeout(stream->get_executor(), opts.handshake_timeout, [t = stream.get()] { t->close(); });
  bool aborted = false;
  // Every way out of here (co_return) passes through this: the listener never calls into a finished
  // negotiation, and one it ended before any answer went out fails as stopped, not timed out.
  struct control_guard {
    handshake_control& control;
    const bool& aborted;
    const handshake_report& report;
    std::error_code& ec;
    ~control_guard() {
      control.abort = nullptr;
      control.close_idle = nullptr;
      if (aborted && ec && report.status == 0) ec = error::listener_stopped;
    }
  } guard{control, aborted, report, ec};
  control.abort = [&timeout, &aborted] {
    aborted = true;
    timeout.expire_now();
  };
  // The load balancer's PROXY header comes first, before TLS.
  std::optional<asio::ip::address> proxy_header_source;
  if (opts.proxy_protocol) {
    co_await read_proxy_header(*stream, opts.max_handshake_size, proxy_header_source, ec);
    if (ec) {
      if (timeout.expired()) ec = error::handshake_timeout;
      co_return websocket{};
    }
    if (proxy_header_source) report.client_address = *proxy_header_source;
  }
  if (opts.transport_extension) {
    // TLS, say: the wrapped stream replaces the socket; the deadline covers its handshake too.
    stream = opts.transport_extension->wrap(std::move(stream), role::server, {}, ec);
    if (ec) co_return websocket{};
    timeout.on_expiry([t = stream.get()] { t->close(); });
    co_await start_stream(*stream, timeout, opts, ec);
    if (ec) co_return websocket{};
  }
  const auto registry = opts.standards ? opts.standards : standard_registry::defaults();

  // Sends an answer that is no upgrade. `close`: it ends the negotiation, and the stream lingers
  // briefly so that it is not lost to a reset; otherwise the connection stays open for `more`
  // requests (HTTP/1.1 keep-alive), and `write_ec` says whether the answer went out.
  std::string_view method;  // the request's, once parsed: a HEAD is answered without a body
  auto answer = [&](http_response& res, bool close, std::size_t more,
                    std::error_code& write_ec) -> asio::awaitable<void> {
    if (!response_safe(res)) {
      // A hook's header with a line break must not reach the wire: answer with nothing of it.
      res = http_response{};
      plain_body(res, 500, "internal error in negotiation hook");
    }
    // A refusal carries no upgrade: drop what the standard or the extensions put in for a 101.
    for (const auto* name :
         {"Connection", "Sec-WebSocket-Accept", "Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions"})
      res.headers.remove(name);
    if (res.status != 426) res.headers.remove("Upgrade");
    // A 426 names the protocol in Upgrade, and whoever sends Upgrade lists "upgrade" in Connection
    // (RFC 7230 section 6.7), so that no intermediary forwards it.
    res.headers.add("Connection",
                    res.status == 426 ? (close ? "upgrade, close" : "upgrade") : (close ? "close" : "keep-alive"));
    if (!close) {
      // How long the connection waits for the next request and how many it takes (Apache's and
      // nginx's hint): a client can stop reusing it before the server closes it under its request.
      const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(opts.handshake_timeout).count();
      res.headers.add("Keep-Alive",
                      "timeout=" + std::to_string(std::max<long long>(seconds, 1)) + ", max=" + std::to_string(more));
    }
    for (const auto& f : opts.response_headers) res.headers.add(f.name, f.value);
    if (method == "HEAD" && !res.body.empty()) {  // the length it would have, and no body
      if (!res.headers.contains("Content-Length")) res.headers.add("Content-Length", std::to_string(res.body.size()));
      res.body.clear();
    }
    report.status = res.status;
    const auto text = serialize_response(res);
    const asio::const_buffer buf = asio::buffer(text);
    co_await stream->write(std::span(&buf, 1), write_ec);
    report.bytes_sent = text.size();
    if (write_ec || !close) co_return;
    co_await linger(*stream, timeout, opts);
  };
  auto refuse = [&](http_response& res, std::error_code why) -> asio::awaitable<void> {
    ec = why;
    std::error_code write_ec;
    co_await answer(res, true, 0, write_ec);
  };

  http_request req;
  http_response res;
  auto run_hook = [&]() -> bool {
    if (!opts.hook) return true;
    try {
      opts.hook(req, res);
      return true;
    } catch (...) {
      plain_body(res, 500, "internal error in negotiation hook");
      return false;
    }
  };

  // 1. The request head, bounded in size and time. After a plain request answered on a connection
  // kept alive (HTTP/1.1), the next one, within handshake_timeout again.
  std::string buf(std::min<std::size_t>(opts.max_handshake_size, 2048), '\0');
  std::size_t used = 0, head_size = 0;
  for (std::size_t answered = 0;; ++answered) {
    // Each request starts afresh: a plain answer on a connection kept alive left its traces.
    req = http_request{};
    res = http_response{};
    method = {};  // until the request is parsed
    report.method.clear();
    report.target.clear();
    report.status = 0;
    report.bytes_sent = 0;
    report.client_address = proxy_header_source.value_or(report.remote.address());
    std::size_t scanned = 0;  // how much of buf[0, used) was searched for the head's end
    std::size_t head_end = std::string::npos;
    for (;;) {
      if (used > scanned) {
        // The empty lines a request line may follow are no end of a head: look for it after them.
        const std::string_view received(buf.data(), used);
        const auto start = request_line_start(received);
        const auto end = find_head_end(received.substr(start), scanned > start ? scanned - start : 0);
        head_end = end == std::string::npos ? end : start + end;
        if (head_end != std::string::npos) break;
        if (has_bare_lf(received, scanned)) {
          // A head written with LF line ends never ends for a CRLF reader: without this it would
          // be answered by nothing, once handshake_timeout ran out.
          plain_body(res, 400, "malformed HTTP request");
          co_await refuse(res, error::bad_request);
          co_return websocket{};
        }
        scanned = used;
      }
      if (used == buf.size()) {
        if (buf.size() >= opts.max_handshake_size) {
          plain_body(res, 431, "request head too large");
          co_await refuse(res, error::handshake_too_large);
          co_return websocket{};
        }
        buf.resize(std::min(buf.size() * 2, opts.max_handshake_size));
      }
      // A connection kept alive waits for a next request: the listener may close it to make room.
      const bool idle = answered > 0 && used == 0;
      if (idle) {
        control.close_idle = [&timeout] { timeout.expire_now(); };
        control.waiting();
      }
      std::error_code read_ec;
      const auto n = co_await stream->read_some(asio::buffer(buf.data() + used, buf.size() - used), read_ec);
      if (idle) control.close_idle = nullptr;
      // The deadline may have closed the stream after the read was done, before this ran (the
      // listener took this idle connection's place, say): as if the read had failed.
      if (!read_ec && timeout.expired()) read_ec = asio::error::operation_aborted;
      if (read_ec) {
        ec = timeout.expired() ? make_error_code(error::handshake_timeout) : read_ec;
        // A connection kept alive that the client closes, or leaves idle, before a next request.
        report.idle_end = idle;
        co_return websocket{};
      }
      if (idle && !control.resumed()) {
        // Its host has as many other requests under way as it may: as at accept, unanswered.
        ec = error::too_many_handshakes_from_address;
        stream->close();
        co_return websocket{};
      }
      used += n;
    }
    head_size = head_end + 4;
    if (head_size > opts.max_handshake_size) {
      plain_body(res, 431, "request head too large");
      co_await refuse(res, error::handshake_too_large);
      co_return websocket{};
    }

    // 2. Parse and check it.
    req.remote_endpoint = stream->remote_endpoint();
    req.local_endpoint = stream->local_endpoint();
    req.unix_peer = report.unix_peer;
    req.connection_id = report.connection_id;
    if (auto e = parse_request(std::string_view(buf.data(), head_size), req)) {
      plain_body(res, 400, "malformed HTTP request");
      co_await refuse(res, e);
      co_return websocket{};
    }
    report.method = req.method;
    report.target = req.target;
    method = req.method;
    req.client_address = client_address_of(req, opts, proxy_header_source);
    report.client_address = req.client_address;
    if (req.is_websocket_upgrade()) break;

    // A plain HTTP request: say what this is, unless the hook answers it (a static file, say).
    res.status = 426;
    res.headers.add("Upgrade", "websocket");
    res.headers.add("Sec-WebSocket-Version", registry->versions());
    plain_body(res, 426, "this is a WebSocket endpoint: connect with a WebSocket client");
    run_hook();
    if (answered + 1 >= opts.max_requests_per_connection || !persistent(req, res)) {
      co_await refuse(res, error::not_upgrade);
      co_return websocket{};
    }
    std::error_code write_ec;
    co_await answer(res, false, opts.max_requests_per_connection - answered - 1, write_ec);
    if (write_ec) {
      ec = timeout.expired() ? make_error_code(error::handshake_timeout) : write_ec;
      co_return websocket{};
    }
    control.answered(report);
    // What came after this request (the next one, pipelined) moves to the front.
    buf.erase(0, head_size);
    used -= head_size;
    buf.resize(std::max<std::size_t>(buf.size(), std::min<std::size_t>(opts.max_handshake_size, 2048)), '\0');
    timeout.arm(opts.handshake_timeout);
  }

  std::error_code check;
  if (req.method != "GET")
    check = error::bad_method;
  else if (req.version_major != 1 || req.version_minor < 1)
    check = error::bad_http_version;
  else if (req.headers.count("Host") != 1 || req.headers.get("Host")->empty())
    check = error::no_host;
  else if (!req.headers.has_token("Connection", "upgrade"))
    check = error::no_connection_upgrade;
  else if (req.headers.count("Sec-WebSocket-Version") == 0)
    check = error::no_version;
  if (check) {
    res.headers.add("Sec-WebSocket-Version", registry->versions());
    plain_body(res, 400, check.message());
    co_await refuse(res, check);
    co_return websocket{};
  }

  const standard* std_ = nullptr;
  if (req.headers.count("Sec-WebSocket-Version") == 1) {
    const auto v = *req.headers.get("Sec-WebSocket-Version");
    int version = -1;
    // 1*DIGIT without leading zeros (RFC 6455 section 11.3.5): "013" is not 13.
    const bool canonical = !v.empty() && (v.size() == 1 || v[0] != '0');
    if (canonical && std::from_chars(v.data(), v.data() + v.size(), version).ptr == v.data() + v.size())
      std_ = registry->find(version);
  }
  if (!std_) {
    // A 426 names the protocol to upgrade to (RFC 7231 section 6.5.15: "MUST send an Upgrade
    // header field"), as the 426 to a plain request does.
    res.headers.add("Upgrade", "websocket");
    res.headers.add("Sec-WebSocket-Version", registry->versions());
    plain_body(res, 426, "unsupported Sec-WebSocket-Version; supported: " + registry->versions());
    co_await refuse(res, error::unsupported_version);
    co_return websocket{};
  }
  if (auto e = std_->accept(req, res)) {
    plain_body(res, 400, e.message());
    co_await refuse(res, e);
    co_return websocket{};
  }

  // Extensions: the first acceptable offer of the first factory the client offers anything to.
  std::unique_ptr<message_extension> extension;
  if (!opts.connection.extensions.empty() && req.headers.contains("Sec-WebSocket-Extensions")) {
    const auto offers = parse_extensions(req.headers);
    for (const auto& factory : opts.connection.extensions) {
      std::vector<extension_offer> mine;
      for (const auto& o : offers)
        if (o.name == factory->name()) mine.push_back(o);
      if (mine.empty()) continue;
      extension_offer answer;
      extension = factory->accept(mine, answer);
      if (extension) {
        res.headers.add("Sec-WebSocket-Extensions", answer.to_string());
        break;
      }
    }
  }

  // 3. Capacity, then the application's say.
  const auto peer = req.client_address;
  const auto refusal = budget ? budget->try_acquire(peer) : connection_budget::refusal::none;
  if (refusal == connection_budget::refusal::limit) {
    http_response busy;
    busy.headers.add("Retry-After", "1");
    plain_body(busy, 503, "too many connections");
    co_await refuse(busy, error::too_many_connections);
    co_return websocket{};
  }
  if (refusal == connection_budget::refusal::address_limit) {  // this client's share: not "server down"
    http_response busy;
    plain_body(busy, 429, "too many connections from this address");
    co_await refuse(busy, error::too_many_from_address);
    co_return websocket{};
  }
  bool budget_held = budget != nullptr;
  auto release = [&] {
    if (budget_held) budget->release(peer);
    budget_held = false;
  };

  const bool hook_ok = run_hook();
  if (hook_ok && res.status == 101 && !res.subprotocol.empty() && !req.offers_subprotocol(res.subprotocol)) {
    plain_body(res, 500, "negotiation hook chose a subprotocol that was not offered");
  }
  if (res.status != 101 || !response_safe(res)) {
    release();
    co_await refuse(res, error::handshake_rejected);
    co_return websocket{};
  }
  if (!res.subprotocol.empty()) res.headers.add("Sec-WebSocket-Protocol", res.subprotocol);
  for (const auto& f : opts.response_headers) res.headers.add(f.name, f.value);

  // 4. Switch protocols.
  const auto text = serialize_response(res);
  const asio::const_buffer out = asio::buffer(text);
  co_await stream->write(std::span(&out, 1), ec);
  if (ec) {
    release();
    if (timeout.expired()) ec = error::handshake_timeout;
    co_return websocket{};
  }
  report.status = 101;
  report.bytes_sent = text.size();

  auto conn = std::make_shared<connection>(std::move(stream), wsl::role::server, opts.connection);
  conn->preload(std::string_view(buf.data() + head_size, used - head_size));
  conn->set_subprotocol(std::move(res.subprotocol));
  if (!opts.keep_request_headers) http_headers().swap(req.headers);
  conn->set_request(std::move(req));
  if (budget_held) conn->set_budget(std::move(budget), peer);
  conn->set_extension(std::move(extension));
  co_return websocket(std::move(conn));
}

}  // namespace wsl::detail
