// Seeded, randomized tests of the HTTP upgrade negotiation, on both sides.
//
// Server side (wsl::accept_websocket over a memory pipe, with the fake clock):
//   - a valid upgrade request, varied in every way HTTP/1.1 and RFC 6455 allow (field order, name
//     case, OWS, token lists in any case, extra fields, Host with or without port, query, cookies,
//     subprotocols, extension offers, frames pipelined behind it), delivered in random pieces, gets
//     a 101 with the right Sec-WebSocket-Accept, and the hook sees exactly what was sent;
//   - the same request with one mutation gets the documented answer (status, one-line body, error),
//     or ends as documented (EOF, time limit): never a 101, never a hang.
// Client side (wsl::connect against a hand-written server on a loopback acceptor):
//   - a valid 101, varied the same way and cut into random pieces, is accepted;
//   - one mutation of it fails with the documented error, and a refusal's status, reason, headers
//     and body are in the connect_report.
//
// Each iteration has a generator of its own, with a seed of its own that a failure names
// (property.hpp: WSL_PROPERTY_SEED=<seed> replays it alone, WSL_PROPERTY_SCALE=<k> widens a run).
// Expected values (accept keys, cookies, statuses, bodies) are computed here from the RFCs and the
// documentation, never by the library. At the end, the reductions of the bugs these cases found,
// one small case each.
#include "wsl/client.hpp"
#include "wsl/listener.hpp"

#define BOOST_TEST_MODULE negotiation_property
#include <boost/test/unit_test.hpp>

#include "accept.hpp"
#include "connection_harness.hpp"
#include "http_reply.hpp"
#include "memory_transport.hpp"
#include "property.hpp"
#include "run_coroutine.hpp"
#include "test_printing.hpp"
#include "wire_frames.hpp"
#include "wsl/extension.hpp"
#include "wsl/http.hpp"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
namespace wt = wsl::test;

namespace {

constexpr std::size_t npos = std::string::npos;

// wsl::clock is real time plus the fake offset: a time limit is checked this far before and after
// it, which leaves room for a stalled process on a loaded machine and is still tight next to
// limits of 1 to 10 s.
constexpr auto time_margin = 250ms;

// ------------------------------------------------------------------------------------------------
// Iterations, seeds and what a failure prints

using generator = std::mt19937_64;
using wsl::test::for_each_seed;

// Bytes as a C string literal would show them, for failure messages.
std::string printable(std::string_view s, std::size_t limit = 2000) {
  std::string out;
  for (const char ch : s.substr(0, limit)) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\r')
      out += "\\r";
    else if (c == '\n')
      out += "\\n";
    else if (c == '\t')
      out += "\\t";
    else if (c == '\\')
      out += "\\\\";
    else if (c < 0x20 || c >= 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    } else {
      out += ch;
    }
  }
  if (s.size() > limit) out += "... (" + std::to_string(s.size()) + " bytes)";
  return out;
}

// ------------------------------------------------------------------------------------------------
// Random pieces

std::size_t between(generator& g, std::size_t lo, std::size_t hi) {
  return std::uniform_int_distribution<std::size_t>(lo, hi)(g);
}
bool one_in(generator& g, std::size_t n) { return between(g, 1, n) == 1; }
bool coin(generator& g) { return between(g, 0, 1) == 1; }

template <typename T>
T pick(generator& g, const std::vector<T>& from) {
  return from[between(g, 0, from.size() - 1)];
}
char pick_char(generator& g, std::string_view alphabet) { return alphabet[between(g, 0, alphabet.size() - 1)]; }

std::string random_string(generator& g, std::string_view alphabet, std::size_t min_size, std::size_t max_size) {
  std::string out(between(g, min_size, max_size), '\0');
  for (auto& c : out) c = pick_char(g, alphabet);
  return out;
}

std::string random_bytes(generator& g, std::size_t n) {
  std::string out(n, '\0');
  for (auto& c : out) c = static_cast<char>(between(g, 0, 255));
  return out;
}

// RFC 7230 section 3.2.6.
constexpr std::string_view tchars = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
constexpr std::string_view letters = "abcdefghijklmnopqrstuvwxyz";
// RFC 3986 pchar without percent-encoding; '?' and '/' may follow in a query.
constexpr std::string_view path_chars =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@";
constexpr std::string_view query_chars =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/?%";
// RFC 6265 cookie-octet.
constexpr std::string_view cookie_octets =
    "!#$%&'()*+-./0123456789:<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_`abcdefghijklmnopqrstuvwxyz{|}~";
constexpr std::string_view base64_alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string token(generator& g, std::size_t min_size, std::size_t max_size) {
  return random_string(g, tchars, min_size, max_size);
}

std::string random_case(generator& g, std::string_view s) {
  std::string out(s);
  for (auto& c : out) {
    if (c >= 'a' && c <= 'z' && coin(g))
      c = static_cast<char>(c - 32);
    else if (c >= 'A' && c <= 'Z' && coin(g))
      c = static_cast<char>(c + 32);
  }
  return out;
}

// Optional whitespace (RFC 7230 section 3.2.3), mostly the usual single space.
std::string ows(generator& g) {
  switch (between(g, 0, 5)) {
    case 0:
    case 1: return "";
    case 2:
    case 3: return " ";
    default: return random_string(g, " \t", 1, 3);
  }
}

// A field value as RFC 7230 allows it: visible characters, obs-text, and spaces or tabs inside.
std::string field_value(generator& g, std::size_t max_size) {
  std::string out(between(g, 1, max_size), '\0');
  for (std::size_t i = 0; i < out.size(); ++i) {
    const bool edge = i == 0 || i + 1 == out.size();
    const auto kind = between(g, 0, 9);
    if (kind == 0 && !edge)
      out[i] = pick_char(g, " \t");
    else if (kind == 1)
      out[i] = static_cast<char>(between(g, 0x80, 0xff));
    else
      out[i] = static_cast<char>(between(g, 0x21, 0x7e));
  }
  return out;
}

std::string random_path(generator& g) {
  std::string out;
  const auto segments = between(g, 0, 3);
  for (std::size_t i = 0; i < segments; ++i) {
    out += '/';  // appended apart: GCC 12 warns wrongly (-Wrestrict) about "/" + std::string
    out += random_string(g, path_chars, 0, 8);
    if (one_in(g, 6)) out += "%2F";
  }
  return out.empty() ? "/" : out;
}

// Cut points for delivering bytes as a network might: whole, byte by byte, in small or large
// pieces, or just after every CR, which splits each CRLF.
std::vector<std::size_t> piece_sizes(generator& g, std::string_view bytes) {
  std::vector<std::size_t> out;
  const auto style = between(g, 0, 5);
  std::size_t at = 0;
  while (at < bytes.size()) {
    std::size_t n = 0;
    switch (style) {
      case 0: n = bytes.size(); break;
      case 1: n = 1; break;
      case 2: n = between(g, 1, 8); break;
      case 3: n = between(g, 1, 64); break;
      case 4: n = between(g, 1, bytes.size()); break;
      default: {
        const auto cr = bytes.find('\r', at);
        n = cr == npos ? bytes.size() - at : cr - at + 1;
      }
    }
    n = std::min(n, bytes.size() - at);
    out.push_back(n);
    at += n;
  }
  return out;
}

std::vector<std::string> cut(std::string_view bytes, const std::vector<std::size_t>& sizes) {
  std::vector<std::string> out;
  std::size_t at = 0;
  for (const auto n : sizes) {
    out.emplace_back(bytes.substr(at, n));
    at += n;
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
// What the library must compute, computed here with OpenSSL and the RFCs

using wt::same_letters;  // http_reply.hpp

std::string base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

// How many bytes a base64 text decodes to; -1 when OpenSSL finds it malformed.
int base64_decoded_size(std::string_view text) {
  std::string out(text.size(), '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  if (n < 0) return n;
  return n - static_cast<int>(std::count(text.end() - std::min<std::size_t>(text.size(), 2), text.end(), '='));
}

// RFC 6455 section 4.2.2, item 5.4.
std::string expected_accept(std::string_view key) {
  const std::string input = std::string(key) + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  return base64(std::string_view(reinterpret_cast<const char*>(digest), sizeof digest));
}

// The reason phrases of RFC 7231 section 6.1 for the statuses used here.
std::string_view standard_reason(int status) {
  switch (status) {
    case 101: return "Switching Protocols";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "?";
  }
}

using string_pairs = std::vector<std::pair<std::string, std::string>>;

// One field line as generated: the value without the OWS around it is what a reader must see.
struct field {
  std::string name;
  std::string value;
  std::string before, after;      // OWS around the value
  string_pairs cookies;           // a Cookie field's pairs, as RFC 6265 reads them
  std::vector<std::string> list;  // a list field's elements (Sec-WebSocket-Protocol)
  // Mutations of the line's syntax.
  std::string leading;       // before the name: obsolete line folding when not empty
  std::string before_colon;  // between the name and the colon
  bool colon = true;
  std::string folded;  // a continuation line after this one
  std::string line() const {
    std::string out = leading + name + before_colon;
    if (colon) out += ":";
    out += before + value + after;
    if (!colon) std::erase(out, ':');
    if (!folded.empty()) out += "\r\n" + folded;
    return out;
  }
};

// Every draw from the generator is a statement of its own: the order of function arguments and
// of operands is unspecified, and a seed must replay the same case whatever the compiler.
field make_field(generator& g, std::string_view name, std::string value) {
  field f;
  f.name = random_case(g, name);
  f.value = std::move(value);
  f.before = ows(g);
  f.after = ows(g);
  return f;
}

// A field no standard defines, as proxies and applications add them.
field extension_field(generator& g) {
  const auto name = "X-" + token(g, 1, 12);
  return make_field(g, name, field_value(g, 60));
}

std::pair<std::string, std::string> random_cookie(generator& g, std::size_t max_value_size) {
  auto name = token(g, 1, 8);
  auto value = random_string(g, cookie_octets, 0, max_value_size);
  return {std::move(name), std::move(value)};
}

// Inserts at a random place.
void insert_somewhere(generator& g, std::vector<field>& fields, field f) {
  const auto at = between(g, 0, fields.size());
  fields.insert(fields.begin() + static_cast<long>(at), std::move(f));
}

std::vector<field*> fields_named(std::vector<field>& fields, std::string_view name) {
  std::vector<field*> out;
  for (auto& f : fields)
    if (same_letters(f.name, name)) out.push_back(&f);
  return out;
}

void remove_fields(std::vector<field>& fields, std::string_view name) {
  std::erase_if(fields, [&](const field& f) { return same_letters(f.name, name); });
}

// A comma-separated list with OWS around the commas and now and then an empty element, which
// recipients must ignore (RFC 7230 section 7).
std::string list_value(generator& g, const std::vector<std::string>& elements) {
  std::string out;
  for (std::size_t i = 0; i < elements.size(); ++i) {
    if (i != 0) {
      out += ows(g) + ",";
      if (one_in(g, 8)) out += ows(g) + ",";
      out += ows(g);
    }
    out += elements[i];
  }
  return out;
}

field cookie_field(generator& g) {
  field f = make_field(g, "Cookie", "");
  const auto n = between(g, 1, 4);
  for (std::size_t i = 0; i < n; ++i) {
    if (i != 0) f.value += pick(g, std::vector<std::string>{"; ", "; ", ";", ";  "});
    auto name = token(g, 1, 10);
    auto value = random_string(g, cookie_octets, 0, 16);
    f.value += name + "=" + (one_in(g, 5) ? "\"" + value + "\"" : value);
    f.cookies.emplace_back(std::move(name), std::move(value));
  }
  return f;
}

field subprotocol_field(generator& g) {
  field f = make_field(g, "Sec-WebSocket-Protocol", "");
  const auto n = between(g, 1, 3);
  for (std::size_t i = 0; i < n; ++i) f.list.push_back(token(g, 1, 12));
  f.value = list_value(g, f.list);
  return f;
}

// ------------------------------------------------------------------------------------------------
// Upgrade requests

struct upgrade_request {
  std::string method = "GET";
  std::string path = "/";
  std::optional<std::string> query;
  std::string version = "HTTP/1.1";
  std::optional<std::string> line_override;  // a malformed request line
  std::vector<field> fields;
  std::string key;

  std::string target() const { return query ? path + "?" + *query : path; }
  std::string line() const { return line_override ? *line_override : method + " " + target() + " " + version; }
  std::string head() const {
    std::string out = line() + "\r\n";
    for (const auto& f : fields) out += f.line() + "\r\n";
    return out + "\r\n";
  }
  string_pairs headers() const {
    string_pairs out;
    for (const auto& f : fields) out.emplace_back(f.name, f.value);
    return out;
  }
  string_pairs cookies() const {
    string_pairs out;
    for (const auto& f : fields)
      if (same_letters(f.name, "Cookie")) out.insert(out.end(), f.cookies.begin(), f.cookies.end());
    return out;
  }
  std::vector<std::string> subprotocols() const {
    std::vector<std::string> out;
    for (const auto& f : fields)
      if (same_letters(f.name, "Sec-WebSocket-Protocol")) out.insert(out.end(), f.list.begin(), f.list.end());
    return out;
  }
};

std::string random_key(generator& g) { return base64(random_bytes(g, 16)); }

upgrade_request valid_request(generator& g) {
  upgrade_request r;
  r.path = random_path(g);
  if (coin(g)) r.query = random_string(g, query_chars, 0, 24);
  // HTTP/1.2 to 1.9 are "HTTP/1.1 or later" with the same syntax (RFC 7230 section 2.6).
  if (one_in(g, 10)) r.version = "HTTP/1." + std::to_string(between(g, 2, 9));
  r.key = random_key(g);

  auto& f = r.fields;
  f.push_back(make_field(g, "Host",
                         pick(g, std::vector<std::string>{"server.example.com", "server.example.com:8080", "127.0.0.1",
                                                          "127.0.0.1:9001", "[::1]", "[::1]:8080", "localhost:80",
                                                          random_string(g, letters, 1, 12) + ".test"})));
  std::vector<std::string> protocols = {random_case(g, "websocket")};
  if (one_in(g, 6)) protocols.insert(protocols.begin() + static_cast<long>(coin(g)), "h2c");
  f.push_back(make_field(g, "Upgrade", list_value(g, protocols)));
  std::vector<std::string> options = {random_case(g, "Upgrade")};
  for (const char* other : {"keep-alive", "TE", "HTTP2-Settings"})
    if (one_in(g, 4)) options.push_back(random_case(g, other));
  std::shuffle(options.begin(), options.end(), g);
  if (options.size() > 1 && one_in(g, 3)) {
    // The options split over two Connection lines (RFC 7230 section 3.2.2).
    const auto split = between(g, 1, options.size() - 1);
    const auto middle = options.begin() + static_cast<long>(split);
    f.push_back(make_field(g, "Connection", list_value(g, std::vector<std::string>(options.begin(), middle))));
    f.push_back(make_field(g, "Connection", list_value(g, std::vector<std::string>(middle, options.end()))));
  } else {
    f.push_back(make_field(g, "Connection", list_value(g, options)));
  }
  f.push_back(make_field(g, "Sec-WebSocket-Key", r.key));
  f.push_back(make_field(g, "Sec-WebSocket-Version", "13"));

  if (coin(g)) f.push_back(make_field(g, "Origin", "http://" + random_string(g, letters, 1, 10) + ".test"));
  if (coin(g)) f.push_back(make_field(g, "User-Agent", field_value(g, 40)));
  if (one_in(g, 3)) f.push_back(make_field(g, "Accept-Encoding", "gzip, deflate, br"));
  if (one_in(g, 3)) f.push_back(make_field(g, "Cache-Control", "no-cache"));
  if (one_in(g, 3))
    f.push_back(
        make_field(g, "Sec-WebSocket-Extensions",
                   pick(g, std::vector<std::string>{"permessage-deflate", "permessage-deflate; client_max_window_bits",
                                                    "permessage-deflate; server_no_context_takeover; "
                                                    "client_max_window_bits=10, permessage-deflate",
                                                    "x-webkit-deflate-frame"})));
  for (auto n = between(g, 0, 2); n > 0; --n) f.push_back(cookie_field(g));
  for (auto n = between(g, 0, 2); n > 0; --n) f.push_back(subprotocol_field(g));
  for (auto n = between(g, 0, 5); n > 0; --n) f.push_back(extension_field(g));
  if (one_in(g, 5)) f.push_back(make_field(g, "X-Empty", ""));
  std::shuffle(f.begin(), f.end(), g);
  return r;
}

// ------------------------------------------------------------------------------------------------
// Responses, read strictly (http_reply.hpp)

using wt::http_reply;
using wt::parse_reply;

// ------------------------------------------------------------------------------------------------
// The server side of a negotiation, with the test as the client

using wt::accept_on;
using wt::accept_result;

class server_side {
 public:
  explicit server_side(const wsl::listener_options& options) {
    wsl::test_clock::enable();
    auto pipe = wt::make_memory_pipe(ctx);
    peer = std::move(pipe.peer);
    started = wsl::clock::now();
    accepting.emplace(wt::spawn(ctx, accept_on(std::move(pipe.stream), options)));
    wt::run_until_idle(ctx);  // the connection was accepted: the negotiation and its clock start
  }
  ~server_side() {
    try {
      if (accepting->done() && accepting->get().ws) accepting->get().ws.abort();
      peer->close();
      wt::run_until_idle(ctx);
    } catch (...) {
    }
  }
  server_side(const server_side&) = delete;
  server_side& operator=(const server_side&) = delete;

  // Sends bytes as the client and runs what follows; false once the server has closed its end.
  bool deliver(std::string_view bytes) {
    if (!peer->inject(bytes)) return false;
    wt::run_until_idle(ctx);
    return true;
  }
  void advance(wsl::clock::duration d) {
    wt::advance_clock(ctx, d);
    elapsed += d;
  }
  bool done() const { return accepting->done(); }
  // What the server sent so far.
  const std::string& sent() {
    raw += peer->take();
    return raw;
  }
  // Ends a refusal's linger as a client would, by closing its side, or by not doing so and letting
  // the time limit end it. True when the negotiation is over.
  bool end_linger(bool by_time_limit, wsl::clock::duration time_limit) {
    if (by_time_limit) {
      advance(time_limit);
    } else {
      peer->shutdown_send();
      wt::run_until_idle(ctx);
    }
    return done();
  }

  asio::io_context ctx;
  std::unique_ptr<wt::memory_stream> peer;
  std::optional<wt::task<accept_result>> accepting;
  wsl::clock::duration elapsed{};  // fake time advanced since the negotiation began
  wsl::clock::time_point started;  // no later than the negotiation's start

 private:
  std::string raw;
};

// What the hook saw, copied out of the request.
struct hook_record {
  int calls = 0;
  int status_on_entry = 0;
  std::string method, target, path, query;
  int version_major = 0, version_minor = 0;
  string_pairs headers, cookies;
  std::vector<std::string> subprotocols;
  std::uint16_t remote_port = 0;
};

struct hook_plan {
  std::string subprotocol;  // chosen among those offered, or none
  string_pairs set_cookies;
  std::string header_value;  // of X-Hook
  int reject_status = 0;     // 0: accept
  std::string reject_body;
};

wsl::negotiation_hook recording_hook(std::shared_ptr<hook_record> record, std::shared_ptr<const hook_plan> plan) {
  return [record, plan](const wsl::http_request& req, wsl::http_response& res) {
    auto& r = *record;
    ++r.calls;
    r.status_on_entry = res.status;
    r.method = req.method;
    r.target = req.target;
    r.path = req.path;
    r.query = req.query;
    r.version_major = req.version_major;
    r.version_minor = req.version_minor;
    r.headers.clear();
    for (const auto& f : req.headers) r.headers.emplace_back(f.name, f.value);
    r.cookies.clear();
    for (const auto& [name, value] : req.cookies()) r.cookies.emplace_back(name, value);
    r.subprotocols.clear();
    for (const auto p : req.subprotocols()) r.subprotocols.emplace_back(p);
    r.remote_port = req.remote_endpoint.port();
    if (!plan || res.status != 101) return;
    res.subprotocol = plan->subprotocol;
    for (const auto& [name, value] : plan->set_cookies) res.set_cookie(name, value, "Path=/");
    res.headers.add("X-Hook", plan->header_value);
    if (plan->reject_status != 0) res.reject(plan->reject_status, plan->reject_body);
  };
}

void check_valid_request(generator& g) {
  const auto request = valid_request(g);
  const auto head = request.head();

  auto plan = std::make_shared<hook_plan>();
  const auto offered = request.subprotocols();
  if (!offered.empty() && coin(g)) plan->subprotocol = pick(g, offered);
  for (auto n = between(g, 0, 2); n > 0; --n) plan->set_cookies.push_back(random_cookie(g, 8));
  plan->header_value = token(g, 1, 20);
  if (one_in(g, 8)) {
    plan->reject_status = pick(g, std::vector<int>{401, 403, 404, 429, 503});
    plan->reject_body = random_string(g, letters, 0, 40) + "\n";
  }
  auto record = std::make_shared<hook_record>();

  wsl::listener_options options;
  options.connection = wt::quiet_options();
  options.hook = recording_hook(record, plan);
  // Now and then a size limit the head meets exactly, or nearly: the head counts up to and
  // including its blank line.
  if (one_in(g, 4)) options.max_handshake_size = std::max<std::size_t>(256, head.size() + between(g, 0, 3));

  // Frames the client pipelines behind its request are the connection's first message.
  std::string message;
  std::string bytes = head;
  const bool pipelined = one_in(g, 3);
  if (pipelined) {
    message = random_string(g, letters, 0, 200);
    bytes += wt::client_frame(wt::op::text, message);
  }
  const auto pieces = cut(bytes, piece_sizes(g, bytes));

  BOOST_TEST_CONTEXT("request: " << printable(head) << "\npieces: " << pieces.size()) {
    server_side s(options);
    std::size_t delivered = 0;
    for (const auto& piece : pieces) {
      if (delivered < head.size())
        BOOST_REQUIRE_MESSAGE(!s.done() && s.sent().empty(),
                              "answered after " << delivered << " of the head's " << head.size() << " bytes");
      BOOST_REQUIRE_MESSAGE(s.deliver(piece), "the server closed after " << delivered << " bytes");
      delivered += piece.size();
      // Pauses well inside the negotiation's time limit change nothing.
      if (one_in(g, 16) && s.elapsed < 3s) s.advance(std::chrono::milliseconds(between(g, 0, 40)));
    }

    if (plan->reject_status != 0) {
      BOOST_REQUIRE_MESSAGE(s.peer->received_eof(), "no refusal, or no end after it");
      BOOST_REQUIRE_MESSAGE(s.end_linger(coin(g), options.handshake_timeout), "the refusal never ended");
      const auto reply = parse_reply(s.sent());
      BOOST_TEST_INFO("response: " << printable(s.sent()));
      BOOST_TEST(reply.complete);
      BOOST_TEST(reply.status == plan->reject_status);
      BOOST_TEST(reply.reason == standard_reason(plan->reject_status));
      BOOST_TEST(reply.body == plan->reject_body);
      BOOST_TEST(reply.all("X-Hook") == std::vector<std::string>{plan->header_value});
      BOOST_TEST(reply.has_token("Connection", "close"));
      BOOST_TEST(!reply.has_token("Connection", "upgrade"));
      BOOST_TEST(reply.all("Upgrade").empty());
      BOOST_TEST(reply.all("Sec-WebSocket-Accept").empty());
      BOOST_TEST(reply.all("Sec-WebSocket-Protocol").empty());
      BOOST_TEST(reply.after.empty());
      BOOST_TEST(s.accepting->get().ec == wsl::error::handshake_rejected);
      BOOST_TEST(!s.accepting->get().ws);
      BOOST_TEST(record->calls == 1);
      return;
    }

    BOOST_REQUIRE_MESSAGE(s.done(), "no 101 for a complete request; the server sent: " << printable(s.sent()));
    auto& result = s.accepting->get();
    const auto reply = parse_reply(s.sent());
    BOOST_TEST_INFO("response: " << printable(s.sent()));
    BOOST_TEST(!result.ec);
    BOOST_TEST(reply.complete);
    BOOST_TEST(reply.status == 101);
    BOOST_TEST(reply.reason == "Switching Protocols");
    BOOST_TEST(reply.all("Upgrade").size() == 1u);
    BOOST_TEST(reply.has_token("Upgrade", "websocket"));
    BOOST_TEST(reply.all("Connection").size() == 1u);
    BOOST_TEST(reply.has_token("Connection", "upgrade"));
    BOOST_TEST(reply.all("Sec-WebSocket-Accept") == std::vector<std::string>{expected_accept(request.key)});
    BOOST_TEST(reply.all("Sec-WebSocket-Protocol") ==
               (plan->subprotocol.empty() ? std::vector<std::string>{} : std::vector<std::string>{plan->subprotocol}));
    BOOST_TEST(reply.all("Sec-WebSocket-Extensions").empty());  // none configured
    std::vector<std::string> cookies;
    for (const auto& [name, value] : plan->set_cookies) cookies.push_back(name + "=" + value + "; Path=/");
    BOOST_TEST(reply.all("Set-Cookie") == cookies);
    BOOST_TEST(reply.all("X-Hook") == std::vector<std::string>{plan->header_value});
    BOOST_TEST(reply.body.empty());
    BOOST_TEST(reply.after.empty());

    const auto& seen = *record;
    BOOST_TEST(seen.calls == 1);
    BOOST_TEST(seen.status_on_entry == 101);
    BOOST_TEST(seen.method == "GET");
    BOOST_TEST(seen.target == request.target());
    BOOST_TEST(seen.path == request.path);
    BOOST_TEST(seen.query == request.query.value_or(""));
    BOOST_TEST(seen.version_major == 1);
    BOOST_TEST(seen.version_minor == request.version[7] - '0');
    BOOST_TEST((seen.headers == request.headers()));
    BOOST_TEST((seen.cookies == request.cookies()));
    BOOST_TEST(seen.subprotocols == offered);
    BOOST_TEST(seen.remote_port == 50000);

    BOOST_REQUIRE(result.ws);
    BOOST_TEST(result.ws.is_open());
    BOOST_TEST(result.ws.subprotocol() == plan->subprotocol);
    BOOST_TEST(result.ws.request().path == request.path);
    BOOST_TEST(result.ws.request().query == request.query.value_or(""));
    if (pipelined) {
      const auto first = wt::run(s.ctx, wt::read_whole_message(result.ws));
      BOOST_TEST(!first.ec);
      BOOST_TEST(first.type == wsl::message_type::text);
      BOOST_TEST(first.data == message);
    }
  }
}

// ------------------------------------------------------------------------------------------------
// One mutation of a valid request, and the answer the documentation promises for it

struct expected_end {
  enum class kind { refusal, eof, time_limit } what = kind::refusal;
  int status = 0;
  wsl::error error{};
  std::string body;                // the whole body: one line saying why
  bool version_list = false;       // Sec-WebSocket-Version: 13 in the answer (RFC 6455 section 4.4)
  bool upgrade_websocket = false;  // Upgrade: websocket in the answer (RFC 7231 section 6.5.15)
  bool hook_runs = false;          // only a plain HTTP request reaches the hook
  bool kept_alive = false;         // a plain request: the connection stays open for the next one
};

// Refusals and their one-line bodies, as error.hpp and handshake.cpp document them.
expected_end refusal(int status, wsl::error e, std::string body, bool version_list = false) {
  expected_end x;
  x.status = status;
  x.error = e;
  x.body = std::move(body) + "\n";
  x.version_list = version_list;
  // A 426 names the protocol to upgrade to (RFC 7231 section 6.5.15: "MUST send an Upgrade header").
  x.upgrade_websocket = status == 426;
  return x;
}
expected_end bad_request() { return refusal(400, wsl::error::bad_request, "malformed HTTP request"); }
expected_end bad_key() { return refusal(400, wsl::error::bad_key, "missing or malformed Sec-WebSocket-Key"); }
expected_end too_large() { return refusal(431, wsl::error::handshake_too_large, "request head too large"); }
expected_end unsupported_version() {
  return refusal(426, wsl::error::unsupported_version, "unsupported Sec-WebSocket-Version; supported: 13", true);
}
expected_end failed_check(wsl::error e, std::string body) { return refusal(400, e, std::move(body), true); }
expected_end ends(expected_end::kind k) {
  expected_end x;
  x.what = k;
  return x;
}

struct mutated_request {
  std::string what;
  std::string bytes;
  expected_end expect;
  bool eof_after = false;  // the client shuts down its side after sending
};

// Offsets of the CRLFs in a head.
std::vector<std::size_t> crlf_offsets(std::string_view head) {
  std::vector<std::size_t> out;
  for (auto at = head.find("\r\n"); at != npos; at = head.find("\r\n", at + 2)) out.push_back(at);
  return out;
}

// A control character or other octet a field value may not hold (RFC 7230 section 3.2).
char forbidden_in_value(generator& g) {
  const auto c = between(g, 0, 0x20);
  if (c == '\t') return '\x7f';
  return c == 0x20 ? '\x7f' : static_cast<char>(c);
}

mutated_request mutate(generator& g, upgrade_request r, wsl::listener_options& options) {
  mutated_request m;
  auto add = [&](std::string_view name, std::string value) {
    auto f = make_field(g, name, std::move(value));
    insert_somewhere(g, r.fields, std::move(f));
  };
  auto set_only = [&](std::string_view name, std::string value) {
    remove_fields(r.fields, name);
    add(name, std::move(value));
  };
  auto& any_field = r.fields[between(g, 0, r.fields.size() - 1)];
  const auto mutation = between(g, 0, 29);
  switch (mutation) {
    case 0:
      m.what = "no Sec-WebSocket-Key";
      remove_fields(r.fields, "Sec-WebSocket-Key");
      m.expect = bad_key();
      break;
    case 1: {
      m.what = "a key with a character outside base64";
      auto key = r.key;
      const auto at = between(g, 0, key.size() - 1);
      key[at] = pick_char(g, "!#$%&*-_.~:;<>?[]{}\"'`|\\,@^()");
      set_only("Sec-WebSocket-Key", key);
      m.expect = bad_key();
      break;
    }
    case 2: {
      auto n = between(g, 0, 31);
      if (n >= 16) ++n;
      m.what = "a key of " + std::to_string(n) + " bytes";
      set_only("Sec-WebSocket-Key", base64(random_bytes(g, n)));
      m.expect = bad_key();
      break;
    }
    case 3: {
      // base64.hpp documents the strict reading: the 4 bits the last character carries beyond the
      // 16th byte must be zero.
      m.what = "a key with non-zero padding bits";
      auto key = r.key;
      const auto v = base64_alphabet.find(key[21]);
      key[21] = base64_alphabet[(v & ~std::size_t{15}) | between(g, 1, 15)];
      set_only("Sec-WebSocket-Key", key);
      m.expect = bad_key();
      break;
    }
    case 4:
      if (coin(g)) {
        m.what = "a key without its padding";
        set_only("Sec-WebSocket-Key", r.key.substr(0, 22));
      } else {
        m.what = "a key in two fields";
        add("Sec-WebSocket-Key", random_key(g));
      }
      m.expect = bad_key();
      break;
    case 5: {
      auto version = std::to_string(between(g, 0, 254));
      if (version == "13") version = "255";
      version = pick(g, std::vector<std::string>{version, version, "013", "+13", "13.0", "13, 8", "8, 13", "", "0x0d",
                                                 "13a", "-13", "1 3"});
      m.what = "Sec-WebSocket-Version '" + version + "'";
      set_only("Sec-WebSocket-Version", version);
      m.expect = unsupported_version();
      break;
    }
    case 6:
      m.what = "no Sec-WebSocket-Version";
      remove_fields(r.fields, "Sec-WebSocket-Version");
      m.expect = failed_check(wsl::error::no_version, "missing Sec-WebSocket-Version header");
      break;
    case 7:
      m.what = "two Sec-WebSocket-Version fields";
      add("Sec-WebSocket-Version", coin(g) ? "13" : "8");
      m.expect = unsupported_version();
      break;
    case 8:
      r.method = pick(g, std::vector<std::string>{"POST", "PUT", "HEAD", "DELETE", "OPTIONS", "PATCH", "get", "Get",
                                                  "CONNECT", "TRACE", "GETS"});
      m.what = "method " + r.method;
      m.expect = failed_check(wsl::error::bad_method, "WebSocket upgrade requires GET");
      break;
    case 9:
      r.version = pick(g, std::vector<std::string>{"HTTP/1.0", "HTTP/0.9", "HTTP/2.0", "HTTP/3.0", "HTTP/2.1"});
      m.what = "version " + r.version;
      m.expect = failed_check(wsl::error::bad_http_version, "WebSocket upgrade requires HTTP/1.1 or later");
      break;
    case 10:
      switch (between(g, 0, 2)) {
        case 0:
          m.what = "no Host";
          remove_fields(r.fields, "Host");
          break;
        case 1:
          m.what = "two Host fields";
          add("Host", "other.example.com");
          break;
        default: m.what = "an empty Host"; set_only("Host", "");
      }
      m.expect = failed_check(wsl::error::no_host, "missing or duplicate Host header");
      break;
    case 11: {
      const auto value = pick(
          g, std::vector<std::string>{"", "h2c", "websockets", "web-socket", "websocket/13", "HTTP/2.0", "TLS/1.2"});
      m.what = "Upgrade '" + value + "'";
      if (coin(g))
        set_only("Upgrade", value);
      else
        remove_fields(r.fields, "Upgrade");
      // Not an upgrade at all: a plain HTTP request, which the hook may answer (http.hpp).
      m.expect =
          refusal(426, wsl::error::not_upgrade, "this is a WebSocket endpoint: connect with a WebSocket client", true);
      m.expect.hook_runs = true;
      m.expect.kept_alive = true;  // an HTTP/1.1 request without a body that does not ask to close
      break;
    }
    case 12: {
      const auto value = pick(g, std::vector<std::string>{"", "keep-alive", "close", "upgraded", "Upgrade2",
                                                          "keep-alive, upgrade-insecure-requests", "up grade"});
      m.what = "Connection '" + value + "'";
      if (coin(g))
        set_only("Connection", value);
      else
        remove_fields(r.fields, "Connection");
      m.expect = failed_check(wsl::error::no_connection_upgrade, "Connection header does not contain \"upgrade\"");
      break;
    }
    case 13: {
      const auto t = r.target();
      r.line_override = pick(
          g, std::vector<std::string>{"GET  " + t + " HTTP/1.1", "GET " + t + "  HTTP/1.1", " GET " + t + " HTTP/1.1",
                                      "GET " + t, "GET " + t + " HTTP/1.1 ", "GET\t" + t + " HTTP/1.1",
                                      "GET " + t + "\tHTTP/1.1", "GET " + t + " http/1.1", "GET " + t + " HTTP/1.1.1",
                                      "GET " + t + " HTTP/11", "GET /a b HTTP/1.1", "GET " + t + "\x01 HTTP/1.1",
                                      "GET  HTTP/1.1", "G(T " + t + " HTTP/1.1", ""});
      m.what = "request line '" + printable(*r.line_override) + "'";
      m.expect = bad_request();
      break;
    }
    case 14:
      m.what = "a field line without a colon: " + any_field.name;
      any_field.colon = false;
      m.expect = bad_request();
      break;
    case 15:
      any_field.before_colon = random_string(g, " \t", 1, 2);
      m.what = "whitespace before the colon of " + any_field.name;
      m.expect = bad_request();
      break;
    case 16: {
      // A control character, a separator or obs-text: none is a tchar (RFC 7230 section 3.2.6).
      const char c = pick_char(g, std::string_view("\0\x01\x08\x1f\x7f\x80\xff ()/,;=?@[]{}\"", 21));
      any_field.name.insert(between(g, 0, any_field.name.size()), 1, c);
      m.what = "field name " + printable(any_field.name);
      m.expect = bad_request();
      break;
    }
    case 17: {
      auto region = any_field.before + any_field.value + any_field.after;
      const auto at = between(g, 0, region.size());
      region.insert(at, 1, forbidden_in_value(g));
      any_field.before = region;
      any_field.value.clear();
      any_field.after.clear();
      m.what = "a control character in the value of " + any_field.name;
      m.expect = bad_request();
      break;
    }
    case 18:
      // Obsolete line folding (RFC 7230 section 3.2.4), which http.hpp says is refused; a line
      // starting with whitespace right after the request line is the same thing.
      if (coin(g)) {
        any_field.folded = random_string(g, " \t", 1, 3);
        any_field.folded += token(g, 1, 10);
        m.what = "a folded line after " + any_field.name;
      } else {
        r.fields.front().leading = random_string(g, " \t", 1, 2);
        m.what = "whitespace before the first field line";
      }
      m.expect = bad_request();
      break;
    case 19:
    case 20: {
      // One line end inside the head, not one of the two that end it, cut to a bare LF (19) or CR.
      const bool lf = mutation == 19;
      auto head = r.head();
      const auto ends = crlf_offsets(head);
      const auto at = ends[between(g, 0, ends.size() - 3)];
      m.what = std::string(lf ? "a bare LF" : "a bare CR") + " at offset " + std::to_string(at);
      m.bytes = head.replace(at, 2, lf ? "\n" : "\r");
      m.expect = bad_request();
      return m;
    }
    case 21: {
      // Bare LFs where the head ends, so that it never ends with CRLF CRLF: still a malformed
      // request, answered at once rather than by the time limit's silent close.
      auto head = r.head();
      if (coin(g)) {
        m.what = "LF line ends throughout";
        std::string lf;
        for (std::size_t i = 0; i < head.size(); ++i)
          if (!(head[i] == '\r' && i + 1 < head.size() && head[i + 1] == '\n')) lf += head[i];
        head = lf;
      } else {
        const auto ends = crlf_offsets(head);
        const auto at = ends[ends.size() - 1 - between(g, 0, 1)];
        m.what = "a bare LF at offset " + std::to_string(at) + ", where the head ends";
        head.replace(at, 2, "\n");
      }
      m.bytes = head;
      m.expect = bad_request();
      return m;
    }
    case 22:
    case 23: {
      // A head one byte or a lot over the limit (431, listener_options::max_handshake_size), with
      // or without its end.
      options.max_handshake_size = coin(g) ? 16 << 10 : between(g, 256, 4096);
      const bool terminated = coin(g);
      auto filler = make_field(g, "X-Filler", "");
      insert_somewhere(g, r.fields, std::move(filler));
      const auto base = r.head().size();
      // Unterminated, the head is 4 bytes shorter: at exactly the limit it can no longer end
      // within it.
      const auto over = terminated ? (coin(g) ? 1 : between(g, 1, 3000)) : (coin(g) ? 4 : between(g, 4, 3000));
      const auto want = options.max_handshake_size + over;
      fields_named(r.fields, "X-Filler").front()->value = std::string(want > base ? want - base : 0, 'f');
      auto head = r.head();
      if (terminated) {
        m.what =
            "a head of " + std::to_string(head.size()) + " bytes, over " + std::to_string(options.max_handshake_size);
      } else {
        head.resize(head.size() - 4);  // and the rest never comes
        m.what = "an unterminated head of " + std::to_string(head.size()) + " bytes, over " +
                 std::to_string(options.max_handshake_size);
        m.eof_after = coin(g);
      }
      m.bytes = head;
      m.expect = too_large();
      return m;
    }
    case 24:
    case 25: {
      const auto head = r.head();
      const auto keep = between(g, 0, head.size() - 1);
      m.what = "the first " + std::to_string(keep) + " bytes, then EOF";
      m.bytes = head.substr(0, keep);
      m.eof_after = true;
      m.expect = ends(expected_end::kind::eof);
      return m;
    }
    case 26:
    case 27: {
      const auto head = r.head();
      const auto keep = between(g, 0, head.size() - 1);
      m.what = "the first " + std::to_string(keep) + " bytes, then nothing";
      m.bytes = head.substr(0, keep);
      m.expect = ends(expected_end::kind::time_limit);
      return m;
    }
    default: {
      const auto value = token(g, 1, 12);
      m.what = "a Connection with upgrade only as part of '" + value + "-upgrade'";
      set_only("Connection", value + "-upgrade");
      m.expect = failed_check(wsl::error::no_connection_upgrade, "Connection header does not contain \"upgrade\"");
      break;
    }
  }
  m.bytes = r.head();
  return m;
}

void check_mutated_request(generator& g) {
  wsl::listener_options options;
  options.connection = wt::quiet_options();
  options.handshake_timeout = std::chrono::milliseconds(between(g, 1000, 10000));
  const auto m = mutate(g, valid_request(g), options);
  auto record = std::make_shared<hook_record>();
  if (coin(g)) options.hook = recording_hook(record, nullptr);
  const auto pieces = cut(m.bytes, piece_sizes(g, m.bytes));

  BOOST_TEST_CONTEXT("mutation: " << m.what << "\nrequest: " << printable(m.bytes) << "\npieces: " << pieces.size()) {
    server_side s(options);
    for (const auto& piece : pieces) {
      if (!s.deliver(piece)) break;  // it refused and closed
      if (one_in(g, 16) && s.elapsed < options.handshake_timeout / 4)
        s.advance(std::chrono::milliseconds(between(g, 0, 40)));
    }
    if (m.eof_after) {
      s.peer->shutdown_send();
      wt::run_until_idle(s.ctx);
    }

    switch (m.expect.what) {
      case expected_end::kind::eof: {
        BOOST_REQUIRE_MESSAGE(s.done(), "the server did not notice the end of the stream");
        const auto ec = s.accepting->get().ec;
        BOOST_TEST(ec == asio::error::eof);
        BOOST_TEST(ec == wsl::condition::closed);
        BOOST_TEST(printable(s.sent()) == "");
        BOOST_TEST(s.peer->other_end_closed());
        BOOST_TEST(record->calls == 0);
        return;
      }
      case expected_end::kind::time_limit: {
        // The limit bounds the whole negotiation, counted from its start (real time included).
        BOOST_REQUIRE_MESSAGE(!s.done() && s.sent().empty(), "answered an unfinished request: " << printable(s.sent()));
        s.advance(s.started + options.handshake_timeout - wsl::clock::now() - time_margin);
        BOOST_REQUIRE_MESSAGE(!s.done(), "gave up before the time limit");
        s.advance(2 * time_margin);
        BOOST_REQUIRE_MESSAGE(s.done(), "still waiting after the time limit");
        const auto ec = s.accepting->get().ec;
        BOOST_TEST(ec == wsl::error::handshake_timeout);
        BOOST_TEST(ec == wsl::condition::timeout);
        BOOST_TEST(printable(s.sent()) == "");
        BOOST_TEST(s.peer->other_end_closed());
        BOOST_TEST(record->calls == 0);
        return;
      }
      case expected_end::kind::refusal: break;
    }

    BOOST_REQUIRE_MESSAGE(!s.sent().empty(), "no answer: the negotiation hangs");
    bool by_time_limit = false;
    if (m.expect.kept_alive) {
      // HTTP/1.1 keep-alive: the connection waits for a next request until the client ends it or
      // leaves it idle past the time limit (counted from the answer).
      BOOST_REQUIRE_MESSAGE(s.done() || !s.peer->received_eof(), "the server ended a connection it could keep");
      by_time_limit = coin(g);
      if (!s.done())
        BOOST_REQUIRE_MESSAGE(s.end_linger(by_time_limit, options.handshake_timeout), "kept waiting for ever");
    } else {
      BOOST_REQUIRE_MESSAGE(s.peer->received_eof() || s.done(), "the server answered but did not end its side");
      if (!s.done()) BOOST_REQUIRE_MESSAGE(s.end_linger(coin(g), options.handshake_timeout), "the refusal never ended");
    }
    // The answer to a HEAD (a method mutated, or the request line's) has no body: its length only.
    const bool to_head = m.bytes.starts_with("HEAD ");
    const auto reply = parse_reply(s.sent(), to_head);
    const auto& result = s.accepting->get();
    BOOST_TEST_INFO("response: " << printable(s.sent()));
    BOOST_TEST(reply.complete);
    BOOST_TEST(reply.status == m.expect.status);
    BOOST_TEST(reply.reason == standard_reason(m.expect.status));
    BOOST_TEST(reply.body == (to_head ? "" : m.expect.body));
    if (to_head) BOOST_TEST(reply.get("Content-Length").value_or("") == std::to_string(m.expect.body.size()));
    BOOST_TEST(reply.all("Content-Type") == std::vector<std::string>{"text/plain; charset=utf-8"});
    BOOST_TEST(reply.has_token("Connection", "close") == !m.expect.kept_alive);
    BOOST_TEST(reply.all("Sec-WebSocket-Accept").empty());
    if (m.expect.version_list) BOOST_TEST(reply.all("Sec-WebSocket-Version") == std::vector<std::string>{"13"});
    if (m.expect.upgrade_websocket)
      BOOST_TEST(reply.all("Upgrade") == std::vector<std::string>{"websocket"});
    else
      BOOST_TEST(reply.all("Upgrade").empty());
    // Whoever sends Upgrade lists "upgrade" in Connection (RFC 7230 section 6.7); nobody else does.
    BOOST_TEST(reply.has_token("Connection", "upgrade") == m.expect.upgrade_websocket);
    BOOST_TEST(reply.after.empty());
    if (m.expect.kept_alive && (by_time_limit || m.eof_after || s.elapsed >= options.handshake_timeout)) {
      BOOST_TEST((result.ec == asio::error::eof || result.ec == wsl::error::handshake_timeout), result.ec.message());
    } else if (m.expect.kept_alive) {
      BOOST_TEST(result.ec == asio::error::eof);
    } else {
      BOOST_TEST(result.ec == m.expect.error);
      BOOST_TEST(result.ec == wsl::condition::handshake_failed);
    }
    BOOST_TEST(!result.ws);
    BOOST_TEST(s.peer->other_end_closed());
    BOOST_TEST(record->calls == (options.hook && m.expect.hook_runs ? 1 : 0));
    if (record->calls != 0) BOOST_TEST(record->status_on_entry == 426);
  }
}

// ------------------------------------------------------------------------------------------------
// The client side: wsl::connect against a server written here, on a loopback acceptor

// What the server sends, built once the client's key is known.
struct response_plan {
  std::string status_line = "HTTP/1.1 101 Switching Protocols";
  std::vector<field> fields;  // each Sec-WebSocket-Accept among them gets accept_value(key)
  std::function<std::string(std::string_view key)> accept_value = expected_accept;
  std::string after_head;                          // a frame, or a refusal's body
  std::function<std::string(std::string)> mangle;  // a mutation of the bytes, applied last

  std::string head() const {
    std::string out = status_line + "\r\n";
    for (const auto& f : fields) out += f.line() + "\r\n";
    return out + "\r\n";
  }
  std::string build(std::string_view key) {
    for (auto& f : fields)
      if (same_letters(f.name, "Sec-WebSocket-Accept")) f.value = accept_value(key);
    auto out = head() + after_head;
    return mangle ? mangle(std::move(out)) : out;
  }
  string_pairs headers() const {
    string_pairs out;
    for (const auto& f : fields) out.emplace_back(f.name, f.value);
    return out;
  }
};

enum class server_ending { close, shutdown, stay_open };

struct server_script {
  std::shared_ptr<response_plan> plan;  // nullptr: never answers
  std::vector<std::size_t> pieces;      // how the server cuts its writes (ws://)
  server_ending ending = server_ending::close;
};

struct server_progress {
  bool got_request = false;
  bool wrote = false;
  bool done = false;
  std::string request;
  std::string response;
};

// The value of a field in a request head, found without the library's parser.
std::optional<std::string> request_field(std::string_view head, std::string_view name) {
  std::size_t at = head.find("\r\n");
  while (at != npos && at + 2 < head.size()) {
    const auto start = at + 2;
    const auto end = head.find("\r\n", start);
    const auto line = head.substr(start, end - start);
    const auto colon = line.find(':');
    if (colon != npos && same_letters(line.substr(0, colon), name)) {
      auto value = line.substr(colon + 1);
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
      while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
      return std::string(value);
    }
    at = end;
  }
  return std::nullopt;
}

asio::awaitable<void> serve_once(asio::ip::tcp::acceptor& acceptor, server_script script,
                                 std::shared_ptr<server_progress> progress) {
  std::error_code ec;
  auto socket = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    progress->done = true;
    co_return;
  }
  socket.set_option(asio::ip::tcp::no_delay(true), ec);
  char buf[4096];
  while (progress->request.find("\r\n\r\n") == npos && progress->request.size() < (1u << 20)) {
    const auto n = co_await socket.async_read_some(asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) break;
    progress->request.append(buf, n);
  }
  progress->got_request = !ec;
  if (!ec && script.plan) {
    progress->response = script.plan->build(request_field(progress->request, "Sec-WebSocket-Key").value_or(""));
    const std::string_view response = progress->response;
    std::size_t at = 0;
    for (std::size_t i = 0; at < response.size() && !ec; ++i) {
      const auto n = i < script.pieces.size() ? std::min(script.pieces[i], response.size() - at) : response.size() - at;
      co_await asio::async_write(socket, asio::buffer(response.substr(at, n)),
                                 asio::redirect_error(asio::use_awaitable, ec));
      at += n;
      // One turn of the scheduler between pieces: the reactor runs and the client's pending read
      // takes this piece alone.
      auto executor = socket.get_executor();
      co_await asio::post(executor, asio::use_awaitable);
    }
    progress->wrote = true;
  }
  if (script.ending == server_ending::close) {
    socket.close(ec);
  } else {
    if (script.ending == server_ending::shutdown) socket.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
    ec = {};
    while (!ec) co_await socket.async_read_some(asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
  }
  progress->done = true;
}

// Cuts the client's reads to a schedule of sizes, so that it meets the response in exactly those
// pieces whatever TCP does with the server's writes. It plugs in where TLS does: a
// connection_extension, which connect() puts between the socket and HTTP for wss:// URLs.
class piecewise_reads final : public wsl::transport {
 public:
  piecewise_reads(std::unique_ptr<wsl::transport> inner, std::vector<std::size_t> pieces)
      : inner_(std::move(inner)), pieces_(std::move(pieces)) {}
  asio::any_io_executor get_executor() override { return inner_->get_executor(); }
  asio::awaitable<std::size_t> read_some(asio::mutable_buffer buffer, std::error_code& ec) override {
    auto size = buffer.size();
    if (next_ < pieces_.size()) size = std::min(size, pieces_[next_++]);
    return inner_->read_some(asio::buffer(buffer.data(), size), ec);
  }
  asio::awaitable<void> write(std::span<const asio::const_buffer> buffers, std::error_code& ec) override {
    return inner_->write(buffers, ec);
  }
  bool cancel_read() noexcept override { return inner_->cancel_read(); }
  void shutdown_send() noexcept override { inner_->shutdown_send(); }
  void close() noexcept override { inner_->close(); }
  bool is_open() const noexcept override { return inner_->is_open(); }
  asio::ip::tcp::endpoint remote_endpoint() const noexcept override { return inner_->remote_endpoint(); }
  asio::ip::tcp::endpoint local_endpoint() const noexcept override { return inner_->local_endpoint(); }

 private:
  std::unique_ptr<wsl::transport> inner_;
  std::vector<std::size_t> pieces_;
  std::size_t next_ = 0;
};

class piecewise_extension final : public wsl::connection_extension {
 public:
  explicit piecewise_extension(std::vector<std::size_t> pieces) : pieces_(std::move(pieces)) {}
  std::unique_ptr<wsl::transport> wrap(std::unique_ptr<wsl::transport> stream, wsl::role, std::string_view,
                                       std::error_code& ec) const override {
    ec = {};
    return std::make_unique<piecewise_reads>(std::move(stream), pieces_);
  }
  std::string_view scheme() const noexcept override { return "wss"; }

 private:
  std::vector<std::size_t> pieces_;
};

struct client_outcome {
  std::error_code ec;
  wsl::connect_report report;
  bool open = false;
  std::string subprotocol;
  wt::message_result first;
};

asio::awaitable<client_outcome> connect_as_client(std::string url, wsl::client_options options, bool read_first) {
  client_outcome r;
  auto executor = co_await asio::this_coro::executor;
  auto ws = co_await wsl::connect(executor, url, options, r.ec, &r.report);
  if (r.ec) co_return r;
  r.open = ws.is_open();
  r.subprotocol = std::string(ws.subprotocol());
  if (read_first) r.first = co_await wt::read_whole_message(ws);
  ws.abort();
  co_return r;
}

class loopback {
 public:
  loopback() : acceptor(ctx, {asio::ip::make_address("127.0.0.1"), 0}) { wsl::test_clock::enable(); }
  std::uint16_t port() const { return acceptor.local_endpoint().port(); }
  asio::io_context ctx;
  asio::ip::tcp::acceptor acceptor;
};

// One exchange with everything the test decided about it.
struct client_case {
  wsl::client_options options;
  std::string target = "/";
  bool secure = false;  // wss:// with piecewise reads, else ws:// with piecewise writes
  server_script script;
  std::string message;  // a frame pipelined behind the 101, when not empty
  bool read_first = false;
};

std::vector<field> valid_response_fields(generator& g, const std::string& subprotocol) {
  std::vector<field> f;
  std::vector<std::string> connection = {random_case(g, "Upgrade")};
  if (one_in(g, 5)) {
    const auto at = static_cast<long>(coin(g));
    connection.insert(connection.begin() + at, random_case(g, "keep-alive"));
  }
  f.push_back(make_field(g, "Upgrade", random_case(g, "websocket")));
  f.push_back(make_field(g, "Connection", list_value(g, connection)));
  f.push_back(make_field(g, "Sec-WebSocket-Accept", std::string(28, '?')));
  if (!subprotocol.empty()) f.push_back(make_field(g, "Sec-WebSocket-Protocol", subprotocol));
  if (coin(g)) f.push_back(make_field(g, "Server", field_value(g, 30)));
  if (coin(g)) f.push_back(make_field(g, "Date", "Tue, 15 Nov 1994 08:12:31 GMT"));
  if (one_in(g, 3)) {
    const auto [name, value] = random_cookie(g, 10);
    f.push_back(make_field(g, "Set-Cookie", name + "=" + value));
  }
  for (auto n = between(g, 0, 4); n > 0; --n) f.push_back(extension_field(g));
  std::shuffle(f.begin(), f.end(), g);
  return f;
}

client_case valid_client_case(generator& g, std::string& chosen) {
  client_case c;
  c.options.connection = wt::quiet_options();
  for (auto n = between(g, 0, 4); n > 0; --n) {
    auto p = token(g, 1, 12);
    if (std::find(c.options.subprotocols.begin(), c.options.subprotocols.end(), p) == c.options.subprotocols.end())
      c.options.subprotocols.push_back(std::move(p));
  }
  for (auto n = between(g, 0, 2); n > 0; --n) c.options.cookies.push_back(random_cookie(g, 8));
  if (coin(g)) c.options.origin = "http://" + random_string(g, letters, 1, 10) + ".test";
  c.target = random_path(g);
  if (coin(g)) c.target += "?" + random_string(g, query_chars, 0, 20);
  chosen = !c.options.subprotocols.empty() && coin(g) ? pick(g, c.options.subprotocols) : std::string();

  auto plan = std::make_shared<response_plan>();
  plan->status_line =
      "HTTP/1.1 101 " + pick(g, std::vector<std::string>{"Switching Protocols", "Switching Protocols",
                                                         "Web Socket Protocol Handshake", "", field_value(g, 30)});
  plan->fields = valid_response_fields(g, chosen);
  if (one_in(g, 3)) {
    c.message = random_string(g, letters, 1, 200);
    plan->after_head = wt::unmasked_frame(wt::op::text, c.message);
    c.read_first = true;
  }
  c.script.plan = plan;
  c.script.ending =
      pick(g, std::vector<server_ending>{server_ending::close, server_ending::shutdown, server_ending::stay_open});
  if (c.read_first) c.script.ending = server_ending::stay_open;  // the frame must not race a reset
  c.secure = coin(g);
  const auto bytes = plan->head() + plan->after_head;  // the accept key is 28 characters, like its stand-in
  c.script.pieces = piece_sizes(g, bytes);
  if (c.secure) c.options.transport_extension = std::make_shared<piecewise_extension>(piece_sizes(g, bytes));
  // Now and then a size limit the head meets exactly, or nearly.
  if (one_in(g, 4)) c.options.max_handshake_size = std::max<std::size_t>(256, plan->head().size() + between(g, 0, 3));
  return c;
}

struct client_run {
  client_outcome outcome;
  std::shared_ptr<server_progress> server;
  std::string url;
};

// Runs one exchange. `advance_until_done`: the client may wait for a time limit, which the fake
// clock then reaches, in steps, up to the handshake time limit.
client_run run_client_case(loopback& lb, const client_case& c, bool advance_until_done) {
  client_run run;
  run.server = std::make_shared<server_progress>();
  run.url = std::string(c.secure ? "wss" : "ws") + "://127.0.0.1:" + std::to_string(lb.port()) + c.target;
  auto serving = wt::spawn(lb.ctx, serve_once(lb.acceptor, c.script, run.server));
  auto connecting = wt::spawn(lb.ctx, connect_as_client(run.url, c.options, c.read_first));
  if (advance_until_done) {
    BOOST_REQUIRE(wt::run_until(lb.ctx, [&] { return connecting.done() || run.server->wrote; }));
    wt::run_until_idle(lb.ctx);
    for (auto waited = 0ms; !connecting.done() && waited <= c.options.handshake_timeout; waited += 100ms)
      wt::advance_clock(lb.ctx, 100ms);
  }
  BOOST_REQUIRE_MESSAGE(wt::run_until(lb.ctx, [&] { return connecting.done(); }), "connect() hangs");
  if (!wt::run_until(lb.ctx, [&] { return run.server->done; })) {
    lb.acceptor.cancel();
    BOOST_FAIL("the server never finished");
  }
  wt::run_until_idle(lb.ctx);
  run.outcome = std::move(connecting.get());
  return run;
}

void check_client_request(const client_case& c, const client_run& run, std::uint16_t port) {
  const auto& head = run.server->request;
  BOOST_TEST(printable(head) == printable(run.outcome.report.request_head));
  BOOST_TEST(head.substr(0, head.find("\r\n")) == "GET " + c.target + " HTTP/1.1");
  BOOST_TEST(request_field(head, "Host").value_or("") == "127.0.0.1:" + std::to_string(port));
  BOOST_TEST(same_letters(request_field(head, "Upgrade").value_or(""), "websocket"));
  BOOST_TEST(same_letters(request_field(head, "Connection").value_or(""), "Upgrade"));
  BOOST_TEST(request_field(head, "Sec-WebSocket-Version").value_or("") == "13");
  const auto key = request_field(head, "Sec-WebSocket-Key").value_or("");
  BOOST_TEST(key.size() == 24u);
  BOOST_TEST(base64_decoded_size(key) == 16);
  std::string offered;
  for (const auto& p : c.options.subprotocols) offered += (offered.empty() ? "" : ", ") + p;
  BOOST_TEST(request_field(head, "Sec-WebSocket-Protocol").value_or("") == offered);
  std::string cookies;
  for (const auto& [name, value] : c.options.cookies) cookies += (cookies.empty() ? "" : "; ") + name + "=" + value;
  BOOST_TEST(request_field(head, "Cookie").value_or("") == cookies);
  BOOST_TEST(request_field(head, "Origin").value_or("") == c.options.origin);
}

void check_valid_response(generator& g, loopback& lb) {
  std::string chosen;
  const auto c = valid_client_case(g, chosen);
  BOOST_TEST_CONTEXT("response: " << printable(c.script.plan->head() + c.script.plan->after_head)
                                  << (c.secure ? "\nread in " : "\nwritten in ") << c.script.pieces.size()
                                  << " pieces") {
    const auto run = run_client_case(lb, c, false);
    const auto& out = run.outcome;
    BOOST_TEST_INFO("as sent: " << printable(run.server->response));
    BOOST_TEST(!out.ec);
    BOOST_TEST(out.open);
    BOOST_TEST(out.report.status == 101);
    BOOST_TEST(out.report.reason == c.script.plan->status_line.substr(13));
    string_pairs headers;
    for (const auto& f : out.report.response_headers) headers.emplace_back(f.name, f.value);
    BOOST_TEST((headers == c.script.plan->headers()));
    BOOST_TEST(out.subprotocol == chosen);
    if (c.read_first) {
      BOOST_TEST(!out.first.ec);
      BOOST_TEST(out.first.data == c.message);
    }
    check_client_request(c, run, lb.port());
  }
}

// ------------------------------------------------------------------------------------------------
// One mutation of a valid 101, and the error the documentation promises for it

struct expected_client_end {
  wsl::error error{};
  bool refusal = false;  // bad_status: the report holds status, reason, headers and body
  int status = 0;
  std::string body;  // the start of the body the report must hold
  bool body_may_be_cut = false;
};

struct mutated_response {
  std::string what;
  expected_client_end expect;
};

mutated_response mutate_response(generator& g, client_case& c) {
  mutated_response m;
  auto& plan = *c.script.plan;
  auto& f = plan.fields;
  auto remove = [&](std::string_view name) { remove_fields(f, name); };
  auto set_value = [&](std::string_view name, std::string value) {
    for (auto* p : fields_named(f, name)) p->value = value;
  };
  auto add = [&](std::string_view name, std::string value) { f.push_back(make_field(g, name, std::move(value))); };
  const auto head_size = plan.head().size();
  switch (between(g, 0, 15)) {
    case 0:
    case 1: {
      // RFC 6455 section 4.1, item 4 of the client's checks.
      m.expect.error = wsl::error::bad_accept;
      switch (between(g, 0, 4)) {
        case 0:
          m.what = "the accept key of another key";
          plan.accept_value = [other = random_key(g)](std::string_view) { return expected_accept(other); };
          break;
        case 1: {
          m.what = "an accept key with one character changed";
          const auto at = between(g, 0, 26);  // not the padding
          const auto by = between(g, 1, 63);
          plan.accept_value = [at, by](std::string_view key) {
            auto accept = expected_accept(key);
            accept[at] = base64_alphabet[(base64_alphabet.find(accept[at]) + by) % 64];
            return accept;
          };
          break;
        }
        case 2:
          m.what = "the key itself as the accept key";
          plan.accept_value = [](std::string_view key) { return std::string(key); };
          break;
        case 3:
          m.what = "no Sec-WebSocket-Accept";
          remove("Sec-WebSocket-Accept");
          break;
        default:
          // Both right, but RFC 6455 section 4.1 wants one.
          m.what = "Sec-WebSocket-Accept twice";
          add("Sec-WebSocket-Accept", "");
          break;
      }
      break;
    }
    case 2: {
      const auto value = pick(g, std::vector<std::string>{"", "h2c", "websockets", "web socket"});
      m.what = "Upgrade '" + value + "'";
      if (coin(g))
        set_value("Upgrade", value);
      else
        remove("Upgrade");
      m.expect.error = wsl::error::bad_response;
      break;
    }
    case 3: {
      const auto value = pick(g, std::vector<std::string>{"", "keep-alive", "close", "upgraded", "Upgrade2"});
      m.what = "Connection '" + value + "'";
      if (coin(g))
        set_value("Connection", value);
      else
        remove("Connection");
      m.expect.error = wsl::error::bad_response;
      break;
    }
    case 4: {
      remove("Sec-WebSocket-Protocol");
      const auto& offered = c.options.subprotocols;
      std::string value;
      switch (between(g, 0, 3)) {
        case 0:
          do value = token(g, 1, 12);
          while (std::find(offered.begin(), offered.end(), value) != offered.end());
          m.what = "subprotocol '" + value + "', not offered";
          add("Sec-WebSocket-Protocol", value);
          break;
        case 1:
          if (offered.empty()) {
            value = "chat";
          } else {
            // Subprotocol names compare case-sensitively (RFC 6455 section 4.1: "one of the values").
            value = pick(g, offered);
            for (auto& ch : value)
              if (ch >= 'a' && ch <= 'z') ch = static_cast<char>(ch - 32);
            while (std::find(offered.begin(), offered.end(), value) != offered.end()) value += "-x";
          }
          m.what = "subprotocol '" + value + "', not offered in that case";
          add("Sec-WebSocket-Protocol", value);
          break;
        case 2:
          value = offered.empty() ? "chat" : pick(g, offered);
          m.what = "two Sec-WebSocket-Protocol fields";
          add("Sec-WebSocket-Protocol", value);
          add("Sec-WebSocket-Protocol", value);
          break;
        default:
          value = offered.empty() ? "chat" : pick(g, offered);
          m.what = "a list of two subprotocols";
          add("Sec-WebSocket-Protocol", value + ", " + value);
      }
      m.expect.error = wsl::error::bad_subprotocol;
      break;
    }
    case 5:
      m.what = "an extension that was not offered";
      add("Sec-WebSocket-Extensions",
          pick(g, std::vector<std::string>{"permessage-deflate", "x-webkit-deflate-frame",
                                           "permessage-deflate; server_no_context_takeover"}));
      m.expect.error = wsl::error::bad_extension;
      break;
    case 6:
    case 7: {
      // A refusal: the report keeps its status, reason, headers and the start of its body.
      const auto status = pick(g, std::vector<int>{200, 204, 301, 302, 400, 401, 403, 404, 426, 429, 500, 502, 503});
      const auto reason = pick(g, std::vector<std::string>{"Nope", "Forbidden", "", field_value(g, 20)});
      plan.status_line = "HTTP/1." + std::string(coin(g) ? "1" : "0") + " " + std::to_string(status) + " " + reason;
      if (coin(g)) f.clear();
      remove("Content-Length");
      const auto body_size = pick(g, std::vector<std::size_t>{0, between(g, 1, 200), between(g, 1, 6000)});
      plan.after_head = random_string(g, letters, body_size, body_size);
      // A Content-Length that is not all digits bounds nothing: the body is read as without one,
      // here to the end of the connection.
      const auto length_form = between(g, 0, 2);
      const bool length = length_form == 1;
      if (length_form == 1) add("Content-Length", std::to_string(body_size));
      if (length_form == 2) {
        add("Content-Length", std::to_string(body_size / 2) + "abc");
        c.script.ending = server_ending::close;
      }
      m.what = "status " + std::to_string(status) +
               (length             ? " with"
                : length_form == 2 ? " with a malformed"
                                   : " without") +
               " Content-Length";
      m.expect.error = wsl::error::bad_status;
      m.expect.refusal = true;
      m.expect.status = status;
      m.expect.body = plan.after_head.substr(0, 4096);
      // Without a length the body ends where the connection does; a server that stays open leaves
      // the client waiting for more, which a bound on the wait ends.
      m.expect.body_may_be_cut = !length && c.script.ending == server_ending::stay_open;
      break;
    }
    case 8: {
      const auto keep = between(g, 0, head_size - 1);
      m.what = "the first " + std::to_string(keep) + " bytes, then EOF";
      plan.mangle = [keep](std::string bytes) { return bytes.substr(0, keep); };
      plan.after_head.clear();
      c.script.ending = coin(g) ? server_ending::close : server_ending::shutdown;
      m.expect.error = wsl::error::bad_response;
      break;
    }
    case 9: {
      c.options.max_handshake_size = between(g, 256, 2048);
      const auto want = c.options.max_handshake_size + (coin(g) ? 1 : between(g, 1, 3000));
      add("X-Filler", "");
      const auto base = plan.head().size();
      f.back().value = std::string(want > base ? want - base : 0, 'f');
      if (plan.head().size() <= c.options.max_handshake_size)
        f.back().value += std::string(c.options.max_handshake_size, 'f');
      m.what = "a head of " + std::to_string(plan.head().size()) + " bytes, over " +
               std::to_string(c.options.max_handshake_size);
      m.expect.error = wsl::error::handshake_too_large;
      break;
    }
    case 10: {
      // The library reads CRLF line ends only (http.hpp), which RFC 7230 section 3.5 allows.
      const auto ends = crlf_offsets(plan.head());
      switch (between(g, 0, 2)) {
        case 0: {
          // One line end inside the head, not one of the two that end it.
          const auto at = ends[between(g, 0, ends.size() - 3)];
          m.what = "a bare LF at offset " + std::to_string(at);
          plan.mangle = [at](std::string bytes) { return bytes.replace(at, 2, "\n"); };
          break;
        }
        case 1: {
          // Where the head ends, so that it never ends: the client must not wait for more.
          const auto at = ends[ends.size() - 1 - between(g, 0, 1)];
          m.what = "a bare LF at offset " + std::to_string(at) + ", where the head ends";
          plan.mangle = [at](std::string bytes) { return bytes.replace(at, 2, "\n"); };
          c.script.ending = server_ending::stay_open;
          break;
        }
        default:
          m.what = "LF line ends throughout";
          plan.mangle = [head_size](std::string bytes) {
            std::string out;
            for (std::size_t i = 0; i < bytes.size(); ++i)
              if (i >= head_size || !(bytes[i] == '\r' && i + 1 < bytes.size() && bytes[i + 1] == '\n'))
                out += bytes[i];
            return out;
          };
          c.script.ending = server_ending::stay_open;
      }
      m.expect.error = wsl::error::bad_response;
      break;
    }
    case 11: {
      auto& victim = f[between(g, 0, f.size() - 1)];
      switch (between(g, 0, 3)) {
        case 0:
          victim.colon = false;
          m.what = "a field line without a colon: " + victim.name;
          break;
        case 1: {
          const auto at = between(g, 0, victim.name.size());
          victim.name.insert(at, 1, pick_char(g, std::string_view("\0\x01\x7f ()/,;=?@[]", 14)));
          m.what = "field name " + printable(victim.name);
          break;
        }
        case 2:
          victim.folded = " " + token(g, 1, 8);
          m.what = "a folded line after " + victim.name;
          break;
        default:
          victim.after += forbidden_in_value(g);
          victim.after += "x";
          m.what = "a control character in the value of " + victim.name;
      }
      m.expect.error = wsl::error::bad_response;
      break;
    }
    case 12: {
      // RFC 7230 section 3.1.2: status-line = HTTP-version SP status-code SP reason-phrase, where
      // the reason is HTAB, SP, visible characters and obs-text.
      plan.status_line =
          pick(g, std::vector<std::string>{"HTTP/1.1 1O1 Switching Protocols", "HTTP/1.1 101Switching Protocols",
                                           "HTTP/1.1  101 Switching Protocols", "HTTP/1.1 10 Switching Protocols",
                                           "HTTP/x.1 101 Switching Protocols", "ICY 101 OK", "HTTP/1.1 1010 Switching",
                                           "HTTP/2.0 101 Switching Protocols", "HTTP/0.9 101 Switching Protocols",
                                           "http/1.1 101 Switching Protocols", "HTTP/1.1 -01 Switching Protocols",
                                           std::string("HTTP/1.1 101 Switching\x01Protocols"),
                                           std::string("HTTP/1.1 101 Switching\x1b[31mProtocols"),
                                           std::string("HTTP/1.1 101 Switching\x7f"), ""});
      m.what = "status line '" + printable(plan.status_line) + "'";
      m.expect.error = wsl::error::bad_response;
      break;
    }
    case 13: {
      // A refusal whose reason phrase holds a control character is malformed, not a refusal to
      // report (and print) as it came.
      plan.status_line = "HTTP/1.1 403 Forbidden" + std::string(1, forbidden_in_value(g)) + "x";
      remove("Content-Length");
      add("Content-Length", "0");
      m.what = "a 403 with a control character in its reason";
      m.expect.error = wsl::error::bad_response;
      break;
    }
    default: {
      // Nothing, or part of the head, and then nothing: the handshake time limit ends the wait.
      if (coin(g)) {
        c.script.plan.reset();
        m.what = "no answer";
      } else {
        const auto keep = between(g, 0, head_size - 1);
        plan.mangle = [keep](std::string bytes) { return bytes.substr(0, keep); };
        m.what = "the first " + std::to_string(keep) + " bytes, then nothing";
      }
      c.script.ending = server_ending::stay_open;
      c.options.handshake_timeout = std::chrono::milliseconds(between(g, 1000, 10000));
      m.expect.error = wsl::error::handshake_timeout;
      break;
    }
  }
  return m;
}

void check_mutated_response(generator& g, loopback& lb) {
  std::string chosen;
  auto c = valid_client_case(g, chosen);
  c.read_first = false;
  c.options.max_handshake_size = 16 << 10;
  const auto m = mutate_response(g, c);
  if (c.script.plan) {
    // New cuts for the new bytes; the accept key keeps its 28 characters.
    const auto bytes = c.script.plan->build(std::string(24, 'A'));
    c.script.pieces = piece_sizes(g, bytes);
    if (c.secure) c.options.transport_extension = std::make_shared<piecewise_extension>(piece_sizes(g, bytes));
  }
  const bool waits = m.expect.error == wsl::error::handshake_timeout || m.expect.body_may_be_cut;
  BOOST_TEST_CONTEXT("mutation: " << m.what << (c.secure ? " (wss, cut reads)" : " (ws, cut writes)")) {
    if (m.expect.error == wsl::error::handshake_timeout) {
      // The limit counts from the connection's start; nothing may end the wait before it.
      auto p = std::make_shared<server_progress>();
      const auto url = std::string(c.secure ? "wss" : "ws") + "://127.0.0.1:" + std::to_string(lb.port()) + c.target;
      const auto started = wsl::clock::now();  // no later than the connection's start
      auto serving = wt::spawn(lb.ctx, serve_once(lb.acceptor, c.script, p));
      auto connecting = wt::spawn(lb.ctx, connect_as_client(url, c.options, false));
      BOOST_REQUIRE(
          wt::run_until(lb.ctx, [&] { return connecting.done() || (p->got_request && (p->wrote || !c.script.plan)); }));
      wt::run_until_idle(lb.ctx);
      BOOST_REQUIRE_MESSAGE(!connecting.done(), "gave up before any time passed");
      wt::advance_clock(lb.ctx, started + c.options.handshake_timeout - wsl::clock::now() - time_margin);
      BOOST_REQUIRE_MESSAGE(!connecting.done(), "gave up before the time limit");
      wt::advance_clock(lb.ctx, 2 * time_margin);
      BOOST_REQUIRE_MESSAGE(connecting.done(), "still waiting after the time limit");
      BOOST_REQUIRE(wt::run_until(lb.ctx, [&] { return p->done; }));
      const auto& out = connecting.get();
      BOOST_TEST(out.ec == wsl::error::handshake_timeout);
      BOOST_TEST(out.ec == wsl::condition::timeout);
      BOOST_TEST(!out.open);
      return;
    }
    const auto run = run_client_case(lb, c, waits);
    const auto& out = run.outcome;
    BOOST_TEST_INFO("as sent: " << printable(run.server->response));
    BOOST_TEST(out.ec == m.expect.error);
    BOOST_TEST(out.ec == wsl::condition::handshake_failed);
    BOOST_TEST(!out.open);
    if (m.expect.refusal) {
      BOOST_TEST(out.report.status == m.expect.status);
      BOOST_TEST(out.report.reason == c.script.plan->status_line.substr(13));
      string_pairs headers;
      for (const auto& h : out.report.response_headers) headers.emplace_back(h.name, h.value);
      BOOST_TEST((headers == c.script.plan->headers()));
      // Sizes, then contents unprinted: a body is up to 4 KiB of noise.
      if (m.expect.body_may_be_cut) {
        BOOST_TEST(out.report.body.size() <= m.expect.body.size());
        BOOST_TEST((m.expect.body.substr(0, out.report.body.size()) == out.report.body));
      } else {
        BOOST_TEST(out.report.body.size() == m.expect.body.size());
        BOOST_TEST((out.report.body == m.expect.body));
      }
    }
  }
}

}  // namespace

// ------------------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(the_independent_accept_key_matches_the_rfc_example) {
  // RFC 6455 section 1.3: what every expected accept key here rests on.
  BOOST_TEST(expected_accept("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  BOOST_TEST(base64_decoded_size("dGhlIHNhbXBsZSBub25jZQ==") == 16);
}

BOOST_AUTO_TEST_CASE(valid_requests_in_random_pieces_are_upgraded_and_the_hook_sees_them_as_sent) {
  for_each_seed(0x5eed'0001, 600, [](std::uint64_t seed) {
    generator g(seed);
    check_valid_request(g);
  });
}

BOOST_AUTO_TEST_CASE(a_request_with_one_mutation_gets_the_documented_answer_and_never_a_101) {
  for_each_seed(0x5eed'0002, 1000, [](std::uint64_t seed) {
    generator g(seed);
    check_mutated_request(g);
  });
}

BOOST_AUTO_TEST_CASE(valid_responses_in_random_pieces_are_accepted_by_connect) {
  loopback lb;
  for_each_seed(0x5eed'0003, 500, [&](std::uint64_t seed) {
    generator g(seed);
    check_valid_response(g, lb);
  });
}

BOOST_AUTO_TEST_CASE(a_response_with_one_mutation_fails_connect_with_the_documented_error) {
  loopback lb;
  for_each_seed(0x5eed'0004, 700, [&](std::uint64_t seed) {
    generator g(seed);
    check_mutated_response(g, lb);
  });
}

// ------------------------------------------------------------------------------------------------
// Reductions of what the cases above found, each fixed in lib/

namespace {

const std::string rfc_request_head =
    "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

field plain_field(std::string name, std::string value) {
  field f;
  f.name = std::move(name);
  f.value = std::move(value);
  f.before = " ";
  return f;
}

// A 101 (or what a test makes of it) from the loopback server, and connect()'s outcome.
client_outcome connect_to(loopback& lb, std::shared_ptr<response_plan> plan, server_ending ending) {
  client_case c;
  c.options.connection = wt::quiet_options();
  c.script.plan = std::move(plan);
  c.script.ending = ending;
  return run_client_case(lb, c, false).outcome;
}

std::shared_ptr<response_plan> rfc_101() {
  auto plan = std::make_shared<response_plan>();
  plan->fields = {plain_field("Upgrade", "websocket"), plain_field("Connection", "Upgrade"),
                  plain_field("Sec-WebSocket-Accept", "")};
  return plan;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_426_for_an_unsupported_version_names_the_upgrade_it_requires) {
  // RFC 7231 section 6.5.15. Found by the mutated requests (seed 1592590338, iteration 48): the
  // 426 answering a plain request had the Upgrade field, the one answering an unknown version not.
  auto request = rfc_request_head;
  request.replace(request.find("Version: 13"), 11, "Version: 8");
  server_side s(wsl::listener_options{});
  BOOST_REQUIRE(s.deliver(request));
  const auto reply = parse_reply(s.sent());
  BOOST_TEST(reply.complete);
  BOOST_TEST(reply.status == 426);
  BOOST_TEST(reply.all("Upgrade") == std::vector<std::string>{"websocket"});
  BOOST_TEST(reply.all("Sec-WebSocket-Version") == std::vector<std::string>{"13"});
  BOOST_TEST(s.end_linger(false, {}));
  BOOST_TEST(s.accepting->get().ec == wsl::error::unsupported_version);
}

BOOST_AUTO_TEST_CASE(a_request_head_with_lf_line_ends_gets_400_at_once) {
  // Found by the mutated requests (seed 1592590338, iteration 28): a head whose line ends are bare
  // LFs never ends for a CRLF reader, and the server answered nothing until handshake_timeout
  // closed the connection.
  std::string request;
  for (const char c : rfc_request_head)
    if (c != '\r') request += c;
  for (const auto& [what, bytes] :
       {std::pair<std::string, std::string>{"LF throughout", request},
        {"LF at the end only", rfc_request_head.substr(0, rfc_request_head.size() - 2) + "\n"}}) {
    BOOST_TEST_CONTEXT(what) {
      server_side s(wsl::listener_options{});
      BOOST_REQUIRE(s.deliver(bytes));
      const auto reply = parse_reply(s.sent());
      BOOST_TEST(reply.complete);
      BOOST_TEST(reply.status == 400);
      BOOST_TEST(reply.body == "malformed HTTP request\n");
      BOOST_TEST(s.end_linger(false, {}));
      BOOST_TEST(s.accepting->get().ec == wsl::error::bad_request);
    }
  }
  BOOST_TEST_CONTEXT("a CRLF split between two reads is no bare LF") {
    server_side s(wsl::listener_options{});
    const auto cr = rfc_request_head.find('\r');
    BOOST_REQUIRE(s.deliver(rfc_request_head.substr(0, cr + 1)));
    BOOST_REQUIRE(s.deliver(rfc_request_head.substr(cr + 1)));
    BOOST_TEST(parse_reply(s.sent()).status == 101);
  }
}

BOOST_AUTO_TEST_CASE(connect_refuses_a_status_line_with_a_control_character) {
  // RFC 7230 section 3.1.2: the reason phrase is HTAB, SP, VCHAR and obs-text. Found by the
  // mutated responses (seed 1592590340, iteration 17): a refusal's reason went into
  // connect_report.reason, which the CLI prints, escape sequences and all; a 101 with "\x01" in its
  // reason was accepted.
  loopback lb;
  for (const char* line : {"HTTP/1.1 101 Switching\x01Protocols", "HTTP/1.1 101 Switching\nX-Injected: 1",
                           "HTTP/1.1 403 Forbidden\x1b[2J", "HTTP/1.1 403 Forbidden\x7f"}) {
    BOOST_TEST_CONTEXT(printable(line)) {
      auto plan = rfc_101();
      plan->status_line = line;
      const auto out = connect_to(lb, plan, server_ending::close);
      BOOST_TEST(out.ec == wsl::error::bad_response);
      BOOST_TEST(out.report.reason.empty());
    }
  }
  BOOST_TEST_CONTEXT("tabs and obs-text are allowed") {
    auto plan = rfc_101();
    plan->status_line =
        "HTTP/1.1 403 Verboten\tnicht \xfc"
        "berall";
    plan->fields = {plain_field("Content-Length", "0")};
    const auto out = connect_to(lb, plan, server_ending::close);
    BOOST_TEST(out.ec == wsl::error::bad_status);
    BOOST_TEST(out.report.reason ==
               "Verboten\tnicht \xfc"
               "berall");
  }
}

BOOST_AUTO_TEST_CASE(connect_refuses_a_101_that_is_not_http_1) {
  // RFC 6455 section 4.1: the answer is an HTTP/1.1 response. "HTTP/2.0 101" was accepted.
  loopback lb;
  for (const char* line : {"HTTP/2.0 101 Switching Protocols", "HTTP/0.9 101 Switching Protocols"}) {
    BOOST_TEST_CONTEXT(line) {
      auto plan = rfc_101();
      plan->status_line = line;
      const auto out = connect_to(lb, plan, server_ending::close);
      BOOST_TEST(out.ec == wsl::error::bad_response);
    }
  }
}

BOOST_AUTO_TEST_CASE(connect_refuses_a_response_with_lf_line_ends_without_waiting) {
  // The client's side of the bare LF (seed 1592590340, iteration 7): connect() waited for the end
  // of a head that never comes and reported handshake_timeout. The server stays open, so only the
  // client can end it.
  loopback lb;
  auto plan = rfc_101();
  plan->mangle = [](std::string bytes) {
    std::erase(bytes, '\r');
    return bytes;
  };
  const auto out = connect_to(lb, plan, server_ending::stay_open);
  BOOST_TEST(out.ec == wsl::error::bad_response);
}

BOOST_AUTO_TEST_CASE(connect_skips_interim_answers_before_the_final_one) {
  // RFC 9110 section 15.2: a client must parse the 1xx answers that come before the final one,
  // asked for or not: 100 Continue, 102 Processing, 103 Early Hints (which a front end may send
  // to any GET). Found by the client_handshake fuzz target: connect() took the first of them
  // for the answer, and failed with bad_status 100.
  loopback lb;
  for (const std::string interim :
       {"HTTP/1.1 100 Continue\r\n\r\n", "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n",
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n"}) {
    BOOST_TEST_CONTEXT(printable(interim)) {
      auto plan = rfc_101();
      plan->mangle = [interim](std::string bytes) { return interim + bytes; };
      const auto out = connect_to(lb, plan, server_ending::stay_open);
      BOOST_TEST(!out.ec, out.ec.message());
      BOOST_TEST(out.report.status == 101);
      BOOST_TEST(out.report.response_headers.size() == 3u);  // the 101's own, not the interim ones
    }
  }
  BOOST_TEST_CONTEXT("a refusal after an interim answer") {
    auto plan = std::make_shared<response_plan>();
    plan->status_line = "HTTP/1.1 403 Forbidden";
    plan->fields = {plain_field("Content-Length", "3")};
    plan->after_head = "no!";
    plan->mangle = [](std::string bytes) { return "HTTP/1.1 100 Continue\r\n\r\n" + bytes; };
    const auto out = connect_to(lb, plan, server_ending::close);
    BOOST_TEST(out.ec == wsl::error::bad_status);
    BOOST_TEST(out.report.status == 403);
    BOOST_TEST(out.report.body == "no!");
  }
  BOOST_TEST_CONTEXT("a server that only ever says wait: four interim answers are skipped, not five") {
    auto plan = rfc_101();
    plan->mangle = [](std::string bytes) {
      std::string out;
      for (int i = 0; i < 5; ++i) out += "HTTP/1.1 100 Continue\r\n\r\n";
      return out + bytes;
    };
    BOOST_TEST(connect_to(lb, plan, server_ending::close).ec == wsl::error::bad_response);
    plan = rfc_101();
    plan->mangle = [](std::string bytes) {
      std::string out;
      for (int i = 0; i < 4; ++i) out += "HTTP/1.1 100 Continue\r\n\r\n";
      return out + bytes;
    };
    BOOST_TEST(!connect_to(lb, plan, server_ending::stay_open).ec);
  }
  BOOST_TEST_CONTEXT("interim answers count against max_handshake_size") {
    auto plan = rfc_101();
    plan->mangle = [](std::string bytes) {
      return "HTTP/1.1 100 Continue\r\nX-Pad: " + std::string(200, 'p') + "\r\n\r\n" + bytes;
    };
    client_case c;
    c.options.connection = wt::quiet_options();
    c.options.max_handshake_size = 256;  // the 101 alone (about 130 bytes) fits
    c.script.plan = plan;
    c.script.ending = server_ending::close;
    BOOST_TEST(run_client_case(lb, c, false).outcome.ec == wsl::error::handshake_too_large);
  }
}
