// Fuzz target: the client side of the opening handshake (RFC 6455 section 4.1), where a stranger's
// server answers wsl::connect(). The input's first byte chooses the mode and the options, its
// second the size of the pieces the server's bytes arrive in; the rest is the server's bytes.
//
// Upgrade mode (bit 0 clear): wsl::client_handshake(), the upgrade connect() runs once connected,
// to wss://127.0.0.1:8443/ over a memory pipe, so that the HTTP exchange goes exactly as the input
// says; the connection_extension (where TLS plugs in) must be handed that pipe once, for the URL's
// host, and gives it back as it is. A run of 28 '?' in the input stands for the
// Sec-WebSocket-Accept that the client's random key calls for. The handshake must end once the
// server's side is closed; its request must be well-formed HTTP/1.1 with the headers the options
// asked for; it must succeed exactly when the answer is a valid 101 for what was offered (after
// any interim 1xx answers), and otherwise fail with an error that applies; a refusal carries the
// status, reason, headers and the start of the body; after a 101, the bytes behind its head must
// reach the websocket as frames (it reads what a websocket given those bytes directly reads), and
// what the client writes must be masked frames.
//
// Proxy mode (bit 0 set): detail::exchange_connect() over a socket pair, the input being an HTTP
// proxy's answer to CONNECT. The request must be a well-formed CONNECT; the answer reported must
// be the first final head (interim 1xx answers skipped) and not one byte behind it may be taken
// from the socket; an answer may be refused only when it
// is malformed, cut short or too large.
#include "connection.hpp"
#include "fuzz_support.hpp"
#include "proxy.hpp"
#include "wsl/client.hpp"
#include "wsl/deflate.hpp"
#include "wsl/error.hpp"
#include "wsl/extension.hpp"
#include "wsl/http.hpp"

#include <asio/ip/tcp.hpp>

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace {

using namespace wsl;

constexpr std::size_t npos = std::string_view::npos;

// ---- independent of the library's own helpers, so that a bug there cannot hide itself

std::string base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

// RFC 6455 section 4.2.2, item 5.4.
std::string accept_for(std::string_view key) {
  const std::string input = std::string(key) + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  return base64(std::string_view(reinterpret_cast<const char*>(digest), sizeof digest));
}

bool same_letters(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
           return lower(x) == lower(y);
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Whether a comma-separated list field (every occurrence of it) has the token, in any case.
bool has_token(const http_headers& headers, std::string_view name, std::string_view token) {
  for (const auto& f : headers) {
    if (!same_letters(f.name, name)) continue;
    std::string_view rest = f.value;
    for (auto comma = rest.find(',');; comma = rest.find(',')) {
      if (same_letters(trim(rest.substr(0, comma)), token)) return true;
      if (comma == npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return false;
}

bool same_headers(const http_headers& a, const http_headers& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [](const http_field& x, const http_field& y) { return x.name == y.name && x.value == y.value; });
}

std::string printable(std::string_view s) {
  std::string out;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) {
      out += c;
    } else {
      static constexpr char hex[] = "0123456789abcdef";
      out.append("\\x").append(1, hex[u >> 4]).append(1, hex[u & 15]);
    }
  }
  return out;
}

// ---- reading response heads, as a strict HTTP/1.1 client must

// RFC 9110 section 15.2: a client must parse the 1xx answers before the final one; 101 is the
// final one here. At most this many are skipped (client.cpp and proxy.cpp agree on it).
constexpr std::size_t max_interim = 4;
bool interim(int status) { return status >= 100 && status <= 199 && status != 101; }

struct head_reading {
  std::error_code ec;   // the error that reading the head must end with; none when it was read
  std::size_t end = 0;  // where the head ends (its blank line included)
  detail::http_status_line status;
  http_headers headers;
};

// What a reader finds at the front of `bytes`, taking at most `limit` bytes for all the heads it
// reads: CRLF line ends, a complete head that parses, interim answers skipped.
head_reading read_head(std::string_view bytes, std::size_t limit) {
  head_reading r;
  const auto window = bytes.substr(0, limit);
  std::size_t start = 0;
  for (std::size_t skipped = 0;; ++skipped) {
    const auto at = window.find("\r\n\r\n", start);
    if (at == npos) {
      bool bare_lf = false;
      for (auto lf = window.find('\n', start); lf != npos && !bare_lf; lf = window.find('\n', lf + 1))
        bare_lf = lf == 0 || window[lf - 1] != '\r';
      // A head with LF line ends is refused as soon as it is seen, a head longer than the limit
      // once the limit is reached, one cut short when the server hangs up.
      r.ec = !bare_lf && bytes.size() >= limit ? error::handshake_too_large : error::bad_response;
      return r;
    }
    r = head_reading{};
    if (detail::parse_response(window.substr(start, at + 4 - start), r.status, r.headers)) {
      r.ec = error::bad_response;
      return r;
    }
    r.end = at + 4;
    if (!interim(r.status.status)) return r;
    if (skipped == max_interim) {
      r.ec = error::bad_response;
      return r;
    }
    start = at + 4;
  }
}

// ---- upgrade mode

// config bits for the upgrade mode
constexpr std::uint8_t proxy_mode_bit = 1;
constexpr std::uint8_t offer_deflate = 8;
constexpr std::uint8_t small_deflate = 16;  // asks for small windows and no context takeover
constexpr std::uint8_t more_headers = 128;  // user info, a query, Origin, cookies, custom headers

constexpr std::array<std::size_t, 4> size_limits{256, 1024, 4096, 16 << 10};
const std::array<std::vector<std::string>, 4> subprotocol_offers{
    std::vector<std::string>{}, {"chat"}, {"chat", "superchat"}, {"v1.wsl.test", "chat"}};
// Stands for the Sec-WebSocket-Accept that the client's key calls for.
constexpr std::string_view accept_stand_in = "????????????????????????????";
static_assert(accept_stand_in.size() == 28);

// Where TLS would wrap the stream: checks that it is handed the pipe client_handshake() was given, once and
// for the URL's host, and gives it back as it is.
struct wrapping {
  const transport* given = nullptr;
  std::size_t count = 0;
};

class pass_through final : public connection_extension {
 public:
  explicit pass_through(std::shared_ptr<wrapping> seen) : seen_(std::move(seen)) {}
  std::unique_ptr<transport> wrap(std::unique_ptr<transport> stream, role r, std::string_view host,
                                  std::error_code& ec) const override {
    ec = {};
    if (seen_->count++ != 0) fuzz::fail("client_handshake() wrapped its stream twice");
    fuzz::check(stream.get() == seen_->given, "client_handshake() wrapped a stream it was not given");
    fuzz::check(r == role::client && host == "127.0.0.1",
                "client_handshake() wrapped its stream for another role or host", std::string(host));
    return stream;
  }
  std::string_view scheme() const noexcept override { return "wss"; }

 private:
  std::shared_ptr<wrapping> seen_;
};

struct connect_outcome {
  std::error_code ec;
  connect_report report;
  websocket ws;
};

asio::awaitable<connect_outcome> connect_over(std::unique_ptr<transport> stream, std::string url,
                                              client_options options) {
  connect_outcome out;
  connect_report* report = &out.report;
  const std::string_view where = url;
  out.ws = co_await client_handshake(std::move(stream), where, options, out.ec, report);
  co_return out;
}

// Every message a websocket reads, and how its reading ended.
struct transcript {
  std::vector<std::pair<message_type, std::string>> messages;
  std::error_code ended;
};

asio::awaitable<transcript> read_transcript(websocket& ws) {
  transcript t;
  for (;;) {
    auto m = co_await test::read_whole_message(ws);
    if (m.ec) {
      t.ended = m.ec;
      co_return t;
    }
    t.messages.emplace_back(m.type, std::move(m.data));
  }
}

// What the websocket of a 101 must do with the bytes behind its head: what a websocket given
// them directly (with the same extension) does.
transcript reference_transcript(asio::io_context& ctx, const connection_options& options,
                                std::unique_ptr<message_extension> extension, std::string_view bytes) {
  auto pipe = test::make_memory_pipe(ctx);
  auto conn = std::make_shared<detail::connection>(std::move(pipe.stream), role::client, options);
  conn->set_extension(std::move(extension));
  conn->start();
  websocket ws(std::move(conn));
  auto reading = test::spawn(ctx, read_transcript(ws));
  test::run_until_idle(ctx);
  if (!bytes.empty()) pipe.peer->inject(bytes);
  pipe.peer->shutdown_send();
  test::run_until_idle(ctx);
  fuzz::check(reading.done(), "the reference websocket did not end");
  auto t = std::move(reading.get());
  ws.abort();
  test::run_until_idle(ctx);
  return t;
}

bool valid_window_bits(const std::optional<std::string>& v, int at_most) {
  if (!v || v->empty() || v->size() > 2 || (*v)[0] == '0') return false;
  if (!std::all_of(v->begin(), v->end(), [](char c) { return c >= '0' && c <= '9'; })) return false;
  const int n = std::stoi(*v);
  return n >= 8 && n <= 15 && n <= at_most;
}

// RFC 7692 section 7.1: what a server may answer our offer of permessage-deflate with.
bool acceptable_deflate_answer(const extension_offer& answer, const deflate_options& ours) {
  std::vector<std::string> seen;
  for (const auto& [name, value] : answer.params) {
    if (std::find(seen.begin(), seen.end(), name) != seen.end()) return false;
    seen.push_back(name);
    if (name == "server_no_context_takeover" || name == "client_no_context_takeover") {
      if (value) return false;
    } else if (name == "server_max_window_bits") {
      // Any window when we asked for none; at most the one we asked for otherwise.
      if (!valid_window_bits(value, ours.peer_max_window_bits < 15 ? ours.peer_max_window_bits : 15)) return false;
    } else if (name == "client_max_window_bits") {
      // We offer it always (with our window when below 15): the answer must give a value in it.
      if (!valid_window_bits(value, ours.max_window_bits)) return false;
    } else {
      return false;
    }
  }
  return true;
}

// The request head client_handshake() wrote, against what the options asked for; returns its key.
std::string check_request(std::string_view request, const std::string& target, const std::string& host,
                          const client_options& o, const std::optional<deflate_options>& deflate, bool credentials) {
  fuzz::check(detail::find_head_end(request) + 4 == request.size(), "the request is not one head", printable(request));
  http_request req;
  const auto parse_error = detail::parse_request(request, req);
  fuzz::check(!parse_error, "the request does not parse", printable(request));
  fuzz::check(req.method == "GET" && req.target == target && req.version_major == 1 && req.version_minor == 1,
              "not GET <target> HTTP/1.1", printable(request.substr(0, request.find('\r'))));
  const auto& h = req.headers;
  std::vector<std::string> expected{
      "Host", "Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version", "User-Agent",
  };
  for (const auto& f : h) fuzz::check(h.count(f.name) == 1, "a request header sent twice", f.name);
  fuzz::check(h.get("Host") == host, "a wrong Host", std::string(h.get("Host").value_or("")));
  fuzz::check(has_token(h, "Upgrade", "websocket"), "no Upgrade: websocket");
  fuzz::check(has_token(h, "Connection", "Upgrade"), "no Connection: Upgrade");
  fuzz::check(h.get("Sec-WebSocket-Version") == "13", "no Sec-WebSocket-Version: 13");
  const std::string key(h.get("Sec-WebSocket-Key").value_or(""));
  // The base64 encoding of 16 bytes (RFC 6455 section 4.1, item 7).
  fuzz::check(
      key.size() == 24 && key.ends_with("==") &&
          std::all_of(key.begin(), key.end() - 2,
                      [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/'; }),
      "a Sec-WebSocket-Key that is not 16 bytes in base64", key);
  if (!o.subprotocols.empty()) {
    std::string list;
    for (const auto& p : o.subprotocols) list += (list.empty() ? "" : ", ") + p;
    fuzz::check(h.get("Sec-WebSocket-Protocol") == list, "Sec-WebSocket-Protocol is not the offer", list);
    expected.push_back("Sec-WebSocket-Protocol");
  }
  if (deflate) {
    expected.push_back("Sec-WebSocket-Extensions");
    std::size_t malformed = 0;
    const auto offers = parse_extensions(h, &malformed);
    fuzz::check(malformed == 0 && offers.size() == 1 && offers[0].name == "permessage-deflate",
                "not one offer of permessage-deflate", std::string(h.get("Sec-WebSocket-Extensions").value_or("")));
    using param = std::pair<std::string, std::optional<std::string>>;
    std::vector<param> want;
    if (deflate->no_context_takeover) want.emplace_back("client_no_context_takeover", std::nullopt);
    if (deflate->peer_no_context_takeover) want.emplace_back("server_no_context_takeover", std::nullopt);
    if (deflate->peer_max_window_bits < 15)
      want.emplace_back("server_max_window_bits", std::to_string(deflate->peer_max_window_bits));
    want.emplace_back("client_max_window_bits",
                      deflate->max_window_bits < 15
                          ? std::optional<std::string>(std::to_string(deflate->max_window_bits))
                          : std::nullopt);
    auto got = offers[0].params;
    std::sort(got.begin(), got.end());
    std::sort(want.begin(), want.end());
    fuzz::check(got == want, "the deflate offer is not what the options ask for", offers[0].to_string());
  }
  if (credentials) {
    expected.push_back("Authorization");
    fuzz::check(h.get("Authorization") == "Basic " + base64("bob:s@cret"), "Authorization is not the URL's user info");
  }
  if (!o.origin.empty()) {
    expected.push_back("Origin");
    fuzz::check(h.get("Origin") == o.origin, "a wrong Origin");
  }
  if (!o.cookies.empty()) {
    expected.push_back("Cookie");
    fuzz::check(h.get("Cookie") == "session=abc; theme=dark", "a wrong Cookie",
                std::string(h.get("Cookie").value_or("")));
  }
  for (const auto& f : o.headers) {
    if (std::none_of(expected.begin(), expected.end(), [&](const std::string& n) { return same_letters(n, f.name); }))
      expected.push_back(f.name);
    fuzz::check(h.get(f.name) == f.value, "a header of the options is missing or changed", f.name);
  }
  if (o.headers.get("User-Agent") == std::nullopt)
    fuzz::check(h.get("User-Agent") == o.user_agent, "a wrong User-Agent");
  for (const auto& f : h)
    fuzz::check(
        std::any_of(expected.begin(), expected.end(), [&](const std::string& n) { return same_letters(n, f.name); }),
        "a request header nobody asked for", f.name);
  fuzz::check(h.size() == expected.size(), "a request header is missing");
  return key;
}

int upgrade_mode(std::uint8_t config, std::size_t piece, std::string_view input) {
  client_options options;
  options.connection = test::quiet_options();
  options.max_handshake_size = size_limits[(config >> 5) & 3];
  options.subprotocols = subprotocol_offers[(config >> 1) & 3];
  std::optional<deflate_options> deflate;
  if (config & offer_deflate) {
    deflate.emplace();
    if (config & small_deflate) {
      deflate->max_window_bits = 9;
      deflate->peer_max_window_bits = 10;
      deflate->no_context_takeover = true;
      deflate->peer_no_context_takeover = true;
    }
    options.connection.extensions = {std::make_shared<deflate_factory>(*deflate)};
  }
  const bool credentials = (config & more_headers) != 0;
  std::string target = "/";
  if (config & more_headers) {
    target = "/chat?room=1&x=%20";
    options.origin = "https://example.test";
    options.cookies = {{"session", "abc"}, {"theme", "dark"}};
    options.headers.add("User-Agent", "fuzzer/1.0");
    options.headers.add("X-Trace", "1");
  }

  fuzz::negotiation_harness h;
  auto stream = h.take_stream();
  auto wrapped = std::make_shared<wrapping>();
  wrapped->given = stream.get();
  options.transport_extension = std::make_shared<pass_through>(wrapped);
  const std::string host = "127.0.0.1:8443";
  const std::string url = std::string("wss://") + (credentials ? "bob:s%40cret@" : "") + host + target;

  auto connecting = h.spawn(connect_over(std::move(stream), url, options));
  h.settle();
  fuzz::check(wrapped->count == 1, "client_handshake() did not hand its stream to the extension for wss://",
              connecting.done() ? connecting.get().ec.message() : "");
  const auto request = h.peer->take();
  const auto key = check_request(request, target, host, options, deflate, credentials);

  // The server's bytes, with the accept value the key calls for in place of its stand-ins.
  std::string bytes(input);
  for (auto at = bytes.find(accept_stand_in); at != npos; at = bytes.find(accept_stand_in, at + 28))
    bytes.replace(at, 28, accept_for(key));

  // Once client_handshake() succeeds, a message goes out and the websocket reads until the end.
  std::optional<test::task<std::error_code>> writing;
  std::optional<test::task<transcript>> reading;
  const auto once_open = [&] {
    if (reading || !connecting.done() || connecting.get().ec) return;
    auto& ws = connecting.get().ws;
    writing.emplace(h.spawn(test::write_whole_message(ws, message_type::text, "hello")));
    reading.emplace(h.spawn(read_transcript(ws)));
    h.settle();
  };
  for (std::size_t at = 0; at < bytes.size(); at += piece) {
    once_open();
    if (!h.peer->inject(std::string_view(bytes).substr(at, piece))) break;  // the client hung up
    h.settle();
  }
  once_open();
  h.peer->shutdown_send();
  h.settle();
  once_open();
  fuzz::check(connecting.done(), "client_handshake() did not end after the server's side closed");
  auto& outcome = connecting.get();
  const auto& report = outcome.report;
  fuzz::check(report.request_head == request, "connect_report::request_head is not what was sent");
  const auto written = h.peer->take();

  const auto head = read_head(bytes, options.max_handshake_size);
  if (!head.ec) {
    // The final answer is reported as it came, whatever follows.
    fuzz::check(report.status == head.status.status, "the status reported is not the one sent",
                std::to_string(report.status) + ", not " + std::to_string(head.status.status));
    fuzz::check(report.reason == head.status.reason, "the reason reported is not the one sent");
    fuzz::check(same_headers(report.response_headers, head.headers), "the headers reported are not the ones sent");
  }
  if (head.ec) {
    fuzz::check(outcome.ec == head.ec, "a head that cannot be read did not fail as it should",
                outcome.ec.message() + ", not " + head.ec.message());
  } else if (head.status.status != 101) {
    fuzz::check(outcome.ec == error::bad_status, "a refusal did not end in bad_status", outcome.ec.message());
    // The start of the body: at most 4 KiB, and no more than its Content-Length.
    std::size_t want = 4096;
    if (const auto cl = head.headers.get("Content-Length")) {
      std::size_t n = 0;
      const auto [end, parse_ec] = std::from_chars(cl->data(), cl->data() + cl->size(), n);
      if (parse_ec == std::errc() && end == cl->data() + cl->size()) want = std::min(want, n);
    }
    fuzz::check(report.body == bytes.substr(head.end, want), "a refusal's body is not the start of the one sent",
                printable(report.body));
  } else {
    // RFC 6455 section 4.1, the client's checks of a 101, items 1 to 6: the errors that apply.
    const auto& hh = head.headers;
    std::vector<error> apply;
    // The upgrade is HTTP/1.1's (RFC 9110 section 7.8): a 101 of HTTP/1.0 is no answer to it.
    if (head.status.version_minor < 1 || !has_token(hh, "Upgrade", "websocket") ||
        !has_token(hh, "Connection", "Upgrade"))
      apply.push_back(error::bad_response);
    if (hh.count("Sec-WebSocket-Accept") != 1 || hh.get("Sec-WebSocket-Accept") != accept_for(key))
      apply.push_back(error::bad_accept);
    const auto protocol = hh.get("Sec-WebSocket-Protocol");
    if (hh.count("Sec-WebSocket-Protocol") > 1 ||
        (protocol &&
         std::find(options.subprotocols.begin(), options.subprotocols.end(), *protocol) == options.subprotocols.end()))
      apply.push_back(error::bad_subprotocol);
    std::unique_ptr<message_extension> extension;
    if (hh.contains("Sec-WebSocket-Extensions")) {
      std::size_t malformed = 0;
      const auto chosen = parse_extensions(hh, &malformed);
      if (!deflate || malformed != 0 || chosen.size() != 1 || chosen[0].name != "permessage-deflate" ||
          !acceptable_deflate_answer(chosen[0], *deflate)) {
        apply.push_back(error::bad_extension);
      } else {
        std::error_code ignored;
        extension = deflate_factory(*deflate).on_response(chosen[0], ignored);
      }
    }
    if (!apply.empty()) {
      fuzz::check(std::any_of(apply.begin(), apply.end(), [&](error e) { return outcome.ec == e; }),
                  "an invalid 101 did not fail with an error that applies", outcome.ec.message());
    } else {
      fuzz::check(!outcome.ec, "a valid 101 was refused", outcome.ec.message());
      fuzz::check(outcome.ws.subprotocol() == protocol.value_or(""), "the subprotocol is not the one chosen");
      fuzz::check(extension != nullptr || !hh.contains("Sec-WebSocket-Extensions"), "an extension went missing");
      // The bytes behind the head reach the websocket as frames, whichever read brought them.
      const bool deflated = extension != nullptr;
      const auto expected = reference_transcript(h.ctx, options.connection, std::move(extension),
                                                 std::string_view(bytes).substr(head.end));
      fuzz::check(reading && reading->done() && writing->done(),
                  "the websocket did not end after the server's side closed");
      const auto& got = reading->get();
      fuzz::check(got.messages == expected.messages, "the messages behind the 101 are not the ones sent",
                  std::to_string(got.messages.size()) + " messages, not " + std::to_string(expected.messages.size()));
      // Two faults of one message that both close with 1007 (invalid UTF-8 in what corrupt
      // compressed data inflates to) are found in the order the bytes arrive: in pieces here, all
      // at once for the reference. Either is right.
      const bool both_1007 = close_code_for(got.ended) == 1007 && close_code_for(expected.ended) == 1007;
      fuzz::check(got.ended == expected.ended || both_1007, "reading behind the 101 ended otherwise than it should",
                  got.ended.message() + ", not " + expected.ended.message());
      // What the client wrote: masked frames; our message among them when it went out.
      fuzz::check_output(written, role::client, deflated);
      if (!writing->get()) {
        const auto frames = test::parse_frames(written);
        fuzz::check(std::any_of(frames.begin(), frames.end(),
                                [](const test::wire_frame& f) {
                                  return f.opcode == test::op::text && f.fin && f.payload == "hello";
                                }),
                    "a message written after the 101 is not on the wire");
      }
      outcome.ws.abort();
      h.settle();
      return 0;
    }
  }
  // A failed client_handshake() wrote nothing after its request and let the connection go.
  fuzz::check(static_cast<bool>(outcome.ec), "client_handshake() succeeded where it should have failed");
  fuzz::check(written.empty(), "a failed client_handshake() wrote after its request", printable(written));
  fuzz::check(h.peer->other_end_closed(), "a failed client_handshake() left its connection open");
  return 0;
}

// ---- proxy mode

// config bits for the proxy mode: bits 1-2 the head limit (size_limits)
constexpr std::uint8_t proxy_credentials = 8;
constexpr std::uint8_t ipv6_target = 16;
constexpr std::uint8_t no_user_agent = 32;

struct exchange_outcome {
  std::error_code ec;
  detail::proxy_answer answer;
};

asio::awaitable<exchange_outcome> exchange(asio::ip::tcp::socket& socket, std::string request, std::size_t limit) {
  exchange_outcome out;
  co_await detail::exchange_connect(socket, request, limit, out.answer, out.ec);
  co_return out;
}

// Everything readable on a socket now (until its end when the other side has shut down).
std::string drain(int fd) {
  std::string out;
  char chunk[4096];
  for (;;) {
    const auto n = ::recv(fd, chunk, sizeof chunk, MSG_DONTWAIT);
    if (n <= 0) return out;
    out.append(chunk, static_cast<std::size_t>(n));
  }
}

int proxy_mode(std::uint8_t config, std::size_t piece, std::string_view bytes) {
  const auto limit = size_limits[(config >> 1) & 3];
  url target, proxy;
  fuzz::check(
      !parse_url(config & ipv6_target ? "wss://[::1]:8443/x" : "ws://example.test/chat", target) &&
          !parse_proxy_url(
              config & proxy_credentials ? "http://pr%40xy:s3:cr%2Ft@127.0.0.1:3128" : "http://127.0.0.1:3128", proxy),
      "the fixed URLs do not parse");
  const std::string user_agent = config & no_user_agent ? "" : "wsl";
  const auto request = detail::connect_request(target, proxy, user_agent);

  // RFC 9110 section 9.3.6: CONNECT in authority form, the same authority in Host.
  const std::string authority = config & ipv6_target ? "[::1]:8443" : "example.test:80";
  http_request req;
  fuzz::check(detail::find_head_end(request) + 4 == request.size() && !detail::parse_request(request, req),
              "the CONNECT request does not parse", printable(request));
  fuzz::check(req.method == "CONNECT" && req.target == authority && req.version_minor == 1,
              "not CONNECT <authority> HTTP/1.1", printable(request));
  fuzz::check(req.headers.get("Host") == authority && req.headers.count("Host") == 1, "a wrong Host");
  const auto credentials = req.headers.get("Proxy-Authorization");
  fuzz::check(config & proxy_credentials ? credentials == "Basic " + base64("pr@xy:s3:cr/t") : !credentials,
              "a wrong Proxy-Authorization");
  fuzz::check(user_agent.empty() ? !req.headers.contains("User-Agent") : req.headers.get("User-Agent") == user_agent,
              "a wrong User-Agent");
  fuzz::check(req.headers.size() == 1u + (credentials ? 1 : 0) + (user_agent.empty() ? 0 : 1),
              "a CONNECT header nobody asked for", printable(request));

  int fds[2];
  fuzz::check(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0, "no socket pair");
  asio::io_context ctx;
  asio::ip::tcp::socket socket(ctx);
  std::error_code assign_ec;
  socket.assign(asio::ip::tcp::v4(), fds[0], assign_ec);
  fuzz::check(!assign_ec, "the socket pair cannot be assigned", assign_ec.message());
  auto exchanging = test::spawn(ctx, exchange(socket, request, limit));
  test::run_until_idle(ctx);
  fuzz::check(drain(fds[1]) == request, "the proxy did not receive the request whole");
  for (std::size_t at = 0; at < bytes.size();) {
    // Once the exchange is over, the rest goes in one piece: a socket pair holds only a few
    // hundred unread ones, whatever their size.
    const auto part = bytes.substr(at, exchanging.done() ? npos : piece);
    fuzz::check(::send(fds[1], part.data(), part.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(part.size()),
                "the socket pair took less than a piece", std::strerror(errno));
    at += part.size();
    test::run_until_idle(ctx);
  }
  ::shutdown(fds[1], SHUT_WR);
  test::run_until_idle(ctx);
  fuzz::check(exchanging.done(), "the CONNECT exchange did not end after the proxy's side closed");
  const auto& outcome = exchanging.get();
  // What the exchange left in the socket is the tunnel's.
  const auto left = drain(fds[0]);
  std::error_code ignored;
  socket.close(ignored);
  ::close(fds[1]);

  // The answer is the first final head: interim answers before it are skipped.
  const auto expected = read_head(bytes, limit);
  const bool matches = expected.ec ? outcome.ec == expected.ec
                                   : !outcome.ec && outcome.answer.status.status == expected.status.status &&
                                         outcome.answer.status.version_minor == expected.status.version_minor &&
                                         outcome.answer.status.reason == expected.status.reason &&
                                         same_headers(outcome.answer.headers, expected.headers) &&
                                         left == bytes.substr(expected.end);
  if (!matches) {
    std::string detail = outcome.ec ? outcome.ec.message() : "status " + std::to_string(outcome.answer.status.status);
    detail += ", " + std::to_string(left.size()) + " bytes left for the tunnel; the first final head: ";
    detail += expected.ec ? expected.ec.message()
                          : "status " + std::to_string(expected.status.status) + ", " +
                                std::to_string(bytes.size() - expected.end) + " bytes behind it";
    fuzz::fail("the answer to CONNECT is not the final head sent, or bytes behind it were taken", detail);
  }
  return 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::input in{data, size};
  const auto config = in.byte();
  const auto piece = static_cast<std::size_t>(in.byte()) + 1;
  const auto bytes = in.rest();
  if (config & proxy_mode_bit) return proxy_mode(config, piece, bytes);
  return upgrade_mode(config, piece, bytes);
}
