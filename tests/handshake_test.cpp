// The server side of the opening handshake (RFC 6455 section 4.2): wsl::accept_websocket over a
// memory pipe fed with raw HTTP, wsl::detail::parse_request and http_request::cookies().
#include "wsl/detail/proxy_protocol.hpp"
#include "wsl/listener.hpp"

#define BOOST_TEST_MODULE handshake
#include <boost/test/unit_test.hpp>

#include "accept.hpp"
#include "connection_harness.hpp"
#include "http_reply.hpp"
#include "memory_transport.hpp"
#include "run_coroutine.hpp"
#include "test_printing.hpp"
#include "wire_frames.hpp"
#include "wsl/http.hpp"
#include "wsl/standard.hpp"

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using namespace std::string_view_literals;

namespace {

constexpr std::string_view rfc_key = "dGhlIHNhbXBsZSBub25jZQ==";  // RFC 6455 section 1.3
constexpr std::string_view rfc_accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

// ---- requests

// An upgrade request, valid unless a test changes it.
struct request_builder {
  std::string request_line = "GET /chat HTTP/1.1";
  std::vector<std::pair<std::string, std::string>> fields = {
      {"Host", "server.example.com"},  {"Upgrade", "websocket"},
      {"Connection", "Upgrade"},       {"Sec-WebSocket-Key", std::string(rfc_key)},
      {"Sec-WebSocket-Version", "13"},
  };

  request_builder& line(std::string l) {
    request_line = std::move(l);
    return *this;
  }
  // Replaces the first field of that name (or adds it).
  request_builder& set(const std::string& name, std::string value) {
    for (auto& f : fields)
      if (f.first == name) {
        f.second = std::move(value);
        return *this;
      }
    return add(name, std::move(value));
  }
  request_builder& add(std::string name, std::string value) {
    fields.emplace_back(std::move(name), std::move(value));
    return *this;
  }
  request_builder& remove(const std::string& name) {
    std::erase_if(fields, [&](const auto& f) { return f.first == name; });
    return *this;
  }
  std::string str() const {
    std::string out = request_line + "\r\n";
    for (const auto& [name, value] : fields) out += name + ": " + value + "\r\n";
    return out + "\r\n";
  }
};

// ---- responses

using wsl::test::http_reply;
using wsl::test::parse_reply;

// ---- the server side of a negotiation, with the test as the client

using wsl::test::accept_on;
using wsl::test::accept_result;

class negotiation {
 public:
  explicit negotiation(const wsl::listener_options& options = {}) {
    wsl::test_clock::enable();
    auto pipe = wsl::test::make_memory_pipe(ctx);
    peer = std::move(pipe.peer);
    accepting.emplace(wsl::test::spawn(ctx, accept_on(std::move(pipe.stream), options)));
  }
  ~negotiation() {
    try {
      if (accepting->done() && accepting->get().ws) accepting->get().ws.abort();
      peer->close();
      wsl::test::run_until_idle(ctx);
    } catch (...) {
    }
  }

  void send(std::string_view bytes) {
    BOOST_REQUIRE(peer->inject(bytes));
    wsl::test::run_until_idle(ctx);
  }

  // Runs the negotiation to its end: a server that answered and shut down its side waits for the
  // client to do the same (it lingers so that its answer is not lost), which the test then does.
  accept_result& finish() {
    BOOST_REQUIRE(wsl::test::run_until(ctx, [&] { return accepting->done() || peer->received_eof(); }));
    server_shut_down = peer->received_eof();
    raw += peer->take();
    if (!accepting->done()) {
      peer->shutdown_send();
      BOOST_REQUIRE(wsl::test::run_until(ctx, [&] { return accepting->done(); }));
    }
    raw += peer->take();
    reply = parse_reply(raw);
    return accepting->get();
  }

  asio::io_context ctx;
  std::unique_ptr<wsl::test::memory_stream> peer;
  std::optional<wsl::test::task<accept_result>> accepting;
  std::string raw;   // what the server sent
  http_reply reply;  // parsed from it; reply.after: the bytes behind it
  bool server_shut_down = false;
};

// Sends a request and expects it to be refused with `status`, by a well-formed response after
// which the server ends the connection.
http_reply expect_refusal(const std::string& request, int status, const wsl::listener_options& options = {}) {
  negotiation n(options);
  n.send(request);
  const auto& result = n.finish();
  BOOST_TEST(n.reply.complete);
  BOOST_TEST(n.reply.status == status);
  BOOST_TEST(!result.ws);
  BOOST_TEST(result.ec);
  BOOST_TEST(n.server_shut_down);
  // A 426 carries Upgrade, and so "upgrade" in Connection too (RFC 7230 section 6.7).
  BOOST_TEST(n.reply.get("Connection").value_or("") == (status == 426 ? "upgrade, close" : "close"));
  BOOST_TEST(n.reply.after.empty());
  return n.reply;
}

void expect_accepted(const std::string& request, const wsl::listener_options& options = {}) {
  negotiation n(options);
  n.send(request);
  const auto& result = n.finish();
  BOOST_TEST(!result.ec);
  BOOST_TEST(n.reply.status == 101);
  BOOST_TEST(n.reply.get("Sec-WebSocket-Accept").value_or("") == rfc_accept);
  BOOST_TEST(result.ws.is_open());
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// Accepted upgrades

BOOST_AUTO_TEST_CASE(the_rfc_example_key_gets_the_rfc_example_accept) {
  BOOST_TEST(wsl::websocket_accept_key(rfc_key) == rfc_accept);
  negotiation n;
  n.send(request_builder().str());
  auto& result = n.finish();
  BOOST_TEST(!result.ec);
  BOOST_TEST(n.reply.complete);
  BOOST_TEST(n.reply.status == 101);
  BOOST_TEST(n.reply.reason == "Switching Protocols");
  BOOST_TEST(wsl::iequals(n.reply.get("Upgrade").value_or(""), "websocket"));
  BOOST_TEST(wsl::iequals(n.reply.get("Connection").value_or(""), "Upgrade"));
  BOOST_TEST(n.reply.all("Sec-WebSocket-Accept") == std::vector<std::string>{std::string(rfc_accept)});
  BOOST_TEST(!n.reply.get("Sec-WebSocket-Protocol"));  // none offered, none chosen
  BOOST_TEST(n.reply.body.empty());
  BOOST_TEST(n.reply.after.empty());
  BOOST_TEST(!n.server_shut_down);
  BOOST_REQUIRE(result.ws);
  BOOST_TEST(result.ws.is_open());
  BOOST_TEST(result.ws.role() == wsl::role::server);
  BOOST_TEST(result.ws.request().path == "/chat");
  BOOST_TEST(result.ws.subprotocol().empty());
}

BOOST_AUTO_TEST_CASE(a_request_arriving_byte_by_byte_is_accepted) {
  negotiation n;
  for (char c : request_builder().str()) {
    BOOST_REQUIRE(!n.accepting->done());
    n.send(std::string_view(&c, 1));
  }
  BOOST_TEST(!n.finish().ec);
  BOOST_TEST(n.reply.status == 101);
}

BOOST_AUTO_TEST_CASE(upgrade_and_connection_are_case_insensitive_token_lists) {
  const std::pair<std::string, std::string> variants[] = {
      {"websocket", "keep-alive, Upgrade"},
      {"WebSocket", "upgrade"},
      {"WEBSOCKET", "UPGRADE"},
      {"h2c, websocket", "Upgrade, HTTP2-Settings"},
      {"websocket", "keep-alive,upgrade"},
      {"websocket", " Upgrade , close"},
  };
  for (const auto& [upgrade, connection] : variants) {
    BOOST_TEST_CONTEXT("Upgrade: " << upgrade << " / Connection: " << connection) {
      expect_accepted(request_builder().set("Upgrade", upgrade).set("Connection", connection).str());
    }
  }
  BOOST_TEST_CONTEXT("lower-case field names") {
    request_builder r;
    r.fields = {{"host", "a"},
                {"upgrade", "websocket"},
                {"connection", "upgrade"},
                {"sec-websocket-key", std::string(rfc_key)},
                {"sec-websocket-version", "13"}};
    expect_accepted(r.str());
  }
}

BOOST_AUTO_TEST_CASE(connection_upgrade_may_come_in_a_second_field_line) {
  expect_accepted(request_builder().set("Connection", "keep-alive").add("Connection", "Upgrade").str());
}

// ------------------------------------------------------------------------------------------------
// Refused upgrades

BOOST_AUTO_TEST_CASE(an_upgrade_that_is_not_get_gets_400) {
  for (const char* line : {"POST /chat HTTP/1.1", "PUT /chat HTTP/1.1", "get /chat HTTP/1.1"}) {
    BOOST_TEST_CONTEXT(line) { expect_refusal(request_builder().line(line).str(), 400); }
  }
  // The answer to a HEAD has the length its body would have, and no body.
  negotiation n;
  n.send(request_builder().line("HEAD /chat HTTP/1.1").str());
  BOOST_TEST(n.finish().ec == wsl::error::bad_method);
  const auto reply = parse_reply(n.raw, true);
  BOOST_TEST(reply.complete);
  BOOST_TEST(reply.status == 400);
  BOOST_TEST(reply.get("Content-Length").value_or("0") != "0");
  BOOST_TEST(reply.after.empty());
  BOOST_TEST(n.server_shut_down);
}

BOOST_AUTO_TEST_CASE(http_1_0_gets_400) { expect_refusal(request_builder().line("GET /chat HTTP/1.0").str(), 400); }

BOOST_AUTO_TEST_CASE(a_missing_or_duplicate_host_gets_400) {
  BOOST_TEST_CONTEXT("missing") { expect_refusal(request_builder().remove("Host").str(), 400); }
  BOOST_TEST_CONTEXT("duplicate") { expect_refusal(request_builder().add("Host", "other.example.com").str(), 400); }
  BOOST_TEST_CONTEXT("empty") { expect_refusal(request_builder().set("Host", "").str(), 400); }
}

BOOST_AUTO_TEST_CASE(a_connection_field_without_upgrade_gets_400) {
  BOOST_TEST_CONTEXT("keep-alive only") {
    expect_refusal(request_builder().set("Connection", "keep-alive").str(), 400);
  }
  BOOST_TEST_CONTEXT("token as a substring") {
    expect_refusal(request_builder().set("Connection", "upgraded, keep-alive").str(), 400);
  }
  BOOST_TEST_CONTEXT("missing") { expect_refusal(request_builder().remove("Connection").str(), 400); }
}

BOOST_AUTO_TEST_CASE(bad_keys_get_400) {
  const char* keys[] = {
      "",
      "dGhlIHNhbXBsZSBub25j",       // 15 bytes
      "dGhlIHNhbXBsZSBub25jZUE=",   // 17 bytes
      "dGhlIHNhbXBsZSBub25jZQ",     // no padding
      "dGhlIHNhbXBsZSBub25jZQ=!",   // not base64
      "dGhlIHNhbXBsZS*ub25jZQ==",   // not base64
      "dGhlIHNhbXBs ZSBub25jZQ==",  // a space inside
      "the sample nonce",           // 16 bytes, but not encoded
  };
  for (const char* key : keys) {
    BOOST_TEST_CONTEXT("key '" << key << "'") {
      expect_refusal(request_builder().set("Sec-WebSocket-Key", key).str(), 400);
    }
  }
  BOOST_TEST_CONTEXT("missing") { expect_refusal(request_builder().remove("Sec-WebSocket-Key").str(), 400); }
  BOOST_TEST_CONTEXT("two keys") {
    expect_refusal(request_builder().add("Sec-WebSocket-Key", "AQIDBAUGBwgJCgsMDQ4PEA==").str(), 400);
  }
}

BOOST_AUTO_TEST_CASE(malformed_request_lines_get_400) {
  const char* lines[] = {
      "GET  /chat HTTP/1.1", "GET /chat  HTTP/1.1", " GET /chat HTTP/1.1",
      "GET /chat",           "GET /chat HTTP/1.1 ", "GET /chat HTTP/1.1 x",
      "GET /chat http/1.1",  "GET /chat HTTP/1",    "GET /chat HTTP/1.1.1",
      "GET /chat HTTX/1.1",  "GE(T /chat HTTP/1.1", "GET /ch\x01t HTTP/1.1",
      "GET\t/chat HTTP/1.1", "GET /chat\tHTTP/1.1", "",
  };
  for (const char* line : lines) {
    BOOST_TEST_CONTEXT("request line '" << line << "'") { expect_refusal(request_builder().line(line).str(), 400); }
  }
}

BOOST_AUTO_TEST_CASE(empty_lines_before_the_request_line_are_ignored_up_to_a_bound) {
  // RFC 9112 section 2.2: a server SHOULD ignore at least one CRLF received before the request line.
  const std::string request = request_builder().str();
  const auto empty_lines = [](std::size_t count) {
    std::string out;
    for (std::size_t i = 0; i < count; ++i) out += "\r\n";
    return out;
  };
  constexpr auto most = wsl::detail::max_empty_lines_before_request;
  BOOST_REQUIRE(most >= 1u);
  for (std::size_t count = 1; count <= most; ++count) {
    BOOST_TEST_CONTEXT(count << " empty lines, in one piece") { expect_accepted(empty_lines(count) + request); }
  }
  BOOST_TEST_CONTEXT(most << " empty lines, a byte at a time") {
    // Two leading CRLFs are "\r\n\r\n" too: they must not be taken for the end of the head.
    negotiation n;
    for (char c : empty_lines(most) + request) n.send(std::string_view(&c, 1));
    const auto& result = n.finish();
    BOOST_TEST(!result.ec, result.ec.message());
    BOOST_TEST(n.reply.status == 101);
    BOOST_REQUIRE(result.ws);
    BOOST_TEST(result.ws.request().path == "/chat");
  }
  BOOST_TEST_CONTEXT("one empty line more than the bound") { expect_refusal(empty_lines(most + 1) + request, 400); }
  BOOST_TEST_CONTEXT("a bare LF, as anywhere else in the head") { expect_refusal("\n" + request, 400); }
}

BOOST_AUTO_TEST_CASE(malformed_header_lines_get_400) {
  const std::string good = request_builder().str();
  const std::string head = good.substr(0, good.size() - 2);  // without the blank line
  const std::string_view bad_lines[] = {
      "NoColon"sv,       ": no-name"sv,     "Bad Name: x"sv,     "Host : server.example.com"sv,
      "X-Ctl: a\x01z"sv, "X-Del: a\x7fz"sv, "X-Bare-LF: a\nb"sv, "X-Bare-CR: a\rb"sv,
      "X(paren): x"sv,   "X-Nul: a\0b"sv,
  };
  for (std::string_view line : bad_lines) {
    BOOST_TEST_CONTEXT("header line '" << line << "'") { expect_refusal(head + std::string(line) + "\r\n\r\n", 400); }
  }
}

BOOST_AUTO_TEST_CASE(obsolete_line_folding_gets_400) {
  const std::string good = request_builder().str();
  const std::string head = good.substr(0, good.size() - 2);
  expect_refusal(head + "X-Folded: first\r\n second\r\n\r\n", 400);
  expect_refusal(head + "X-Folded: first\r\n\tsecond\r\n\r\n", 400);
}

BOOST_AUTO_TEST_CASE(a_missing_version_gets_400) {
  const auto reply = expect_refusal(request_builder().remove("Sec-WebSocket-Version").str(), 400);
  BOOST_TEST(reply.get("Sec-WebSocket-Version").value_or("") == "13");
}

BOOST_AUTO_TEST_CASE(an_unsupported_version_gets_426_with_the_supported_list) {
  // RFC 6455 section 4.4: 426 and the versions the server speaks.
  const char* versions[] = {"8", "7", "12", "14", "0", "255", "abc", "13abc", "-13", "+13", "13.0", "", "013", "13, 8"};
  for (const char* version : versions) {
    BOOST_TEST_CONTEXT("version '" << version << "'") {
      const auto reply = expect_refusal(request_builder().set("Sec-WebSocket-Version", version).str(), 426);
      BOOST_TEST(reply.all("Sec-WebSocket-Version") == std::vector<std::string>{"13"});
    }
  }
  BOOST_TEST_CONTEXT("two version fields") {
    const auto reply = expect_refusal(request_builder().add("Sec-WebSocket-Version", "8").str(), 426);
    BOOST_TEST(reply.get("Sec-WebSocket-Version").value_or("") == "13");
  }
}

BOOST_AUTO_TEST_CASE(a_head_over_max_handshake_size_gets_431) {
  wsl::listener_options options;
  options.max_handshake_size = 1024;
  // The head counts up to and including its blank line.
  auto request_of_size = [](std::size_t size) {
    request_builder r;
    const auto base = r.add("X-Filler", "").str().size();
    r.set("X-Filler", std::string(size - base, 'f'));
    return r.str();
  };
  BOOST_TEST_CONTEXT("exactly max_handshake_size") {
    const auto request = request_of_size(1024);
    BOOST_REQUIRE(request.size() == 1024u);
    expect_accepted(request, options);
  }
  BOOST_TEST_CONTEXT("one byte over") {
    const auto request = request_of_size(1025);
    BOOST_REQUIRE(request.size() == 1025u);
    expect_refusal(request, 431, options);
  }
  BOOST_TEST_CONTEXT("empty lines before the request line count") {
    expect_accepted("\r\n" + request_of_size(1022), options);
    expect_refusal("\r\n" + request_of_size(1023), 431, options);  // one byte over
  }
  BOOST_TEST_CONTEXT("much larger, never ending") {
    negotiation n(options);
    n.send("GET /chat HTTP/1.1\r\nX-Filler: " + std::string(5000, 'f'));
    BOOST_TEST(n.finish().ec == wsl::error::handshake_too_large);
    BOOST_TEST(n.reply.status == 431);
  }
}

BOOST_AUTO_TEST_CASE(a_plain_get_without_upgrade_gets_426_and_the_connection_ends_when_asked) {
  negotiation n;
  n.send("GET / HTTP/1.1\r\nHost: server.example.com\r\nConnection: close\r\n\r\n");
  const auto& result = n.finish();
  BOOST_TEST(result.ec == wsl::error::not_upgrade);
  BOOST_TEST(n.reply.complete);
  BOOST_TEST(n.reply.status == 426);
  BOOST_TEST(wsl::iequals(n.reply.get("Upgrade").value_or(""), "websocket"));
  BOOST_TEST(n.reply.get("Sec-WebSocket-Version").value_or("") == "13");
  BOOST_TEST(n.reply.get("Connection").value_or("") == "upgrade, close");
  BOOST_TEST(n.server_shut_down);
}

// HTTP/1.1 keep-alive: plain requests (pipelined here, in one write) are answered in turn on one
// connection, and an upgrade may follow them there.
BOOST_AUTO_TEST_CASE(plain_requests_keep_the_connection_for_the_next_one_and_an_upgrade) {
  auto seen = std::make_shared<std::vector<std::string>>();
  wsl::listener_options options;
  options.hook = [seen](const wsl::http_request& req, wsl::http_response& res) {
    seen->push_back(req.method + " " + req.target);
    if (req.path == "/file") {
      res.status = 200;
      res.body = "contents\n";
    }
  };
  negotiation n(options);
  n.send("GET /file HTTP/1.1\r\nHost: a\r\n\r\nHEAD / HTTP/1.1\r\nHost: a\r\n\r\n" + request_builder().str());
  const auto& result = n.finish();
  BOOST_TEST(!result.ec);
  BOOST_REQUIRE(result.ws);
  BOOST_TEST(!n.server_shut_down);
  const auto first = parse_reply(n.raw);
  BOOST_TEST(first.complete);
  BOOST_TEST(first.status == 200);
  BOOST_TEST(first.body == "contents\n");
  BOOST_TEST(first.get("Connection").value_or("") == "keep-alive");
  BOOST_TEST(first.get("Keep-Alive").value_or("") == "timeout=10, max=99");  // the defaults: 10 s, 100
  const auto second = parse_reply(first.after, true);                        // HEAD: no body
  BOOST_TEST(second.complete);
  BOOST_TEST(second.status == 426);
  BOOST_TEST(second.get("Connection").value_or("") == "upgrade");
  BOOST_TEST(second.get("Keep-Alive").value_or("") == "timeout=10, max=98");
  const auto third = parse_reply(second.after);
  BOOST_TEST(third.status == 101);
  BOOST_TEST(third.get("Sec-WebSocket-Accept").value_or("") == rfc_accept);
  BOOST_TEST(*seen == (std::vector<std::string>{"GET /file", "HEAD /", "GET /chat"}));
}

BOOST_AUTO_TEST_CASE(a_refusal_of_the_next_request_owes_nothing_to_the_answer_before) {
  wsl::listener_options options;
  options.max_handshake_size = 256;
  options.hook = [](const wsl::http_request&, wsl::http_response& res) {
    res.status = 200;
    res.headers.add("X-File", "a");
    res.body = "contents";
  };
  negotiation n(options);
  n.send("HEAD /file HTTP/1.1\r\nHost: a\r\n\r\nGET /" + std::string(300, 'x'));
  BOOST_TEST(n.finish().ec == wsl::error::handshake_too_large);
  const auto first = parse_reply(n.raw, true);
  BOOST_TEST(first.status == 200);
  BOOST_TEST(first.get("Content-Length").value_or("") == "8");
  const auto second = parse_reply(first.after);  // a GET's refusal, with its body
  BOOST_TEST(second.complete);
  BOOST_TEST(second.status == 431);
  BOOST_TEST(second.body == "request head too large\n");
  BOOST_TEST(!second.get("X-File"));
  BOOST_TEST(second.after.empty());
}

BOOST_AUTO_TEST_CASE(a_connection_kept_alive_ends_with_its_client_or_its_time) {
  const std::string plain = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  BOOST_TEST_CONTEXT("the client closes it") {
    negotiation n;
    n.send(plain);
    BOOST_TEST(parse_reply(n.peer->take()).status == 426);
    n.peer->shutdown_send();
    BOOST_TEST(n.finish().ec == asio::error::eof);
    BOOST_TEST(n.raw.empty());
  }
  BOOST_TEST_CONTEXT("nothing more within handshake_timeout") {
    wsl::listener_options options;
    options.handshake_timeout = 5s;
    negotiation n(options);
    n.send(plain);
    BOOST_TEST(parse_reply(n.peer->take()).status == 426);
    wsl::test_clock::advance(4s);
    wsl::test::run_until_idle(n.ctx);
    BOOST_TEST(!n.accepting->done());
    n.send("GET / HTTP/1.1\r\n");  // half a request restarts nothing: 5 s from the answer
    wsl::test_clock::advance(2s);
    BOOST_TEST(n.finish().ec == wsl::error::handshake_timeout);
  }
}

BOOST_AUTO_TEST_CASE(what_closes_a_connection_after_a_plain_answer) {
  wsl::listener_options two;
  two.max_requests_per_connection = 2;
  wsl::listener_options closing_hook;
  closing_hook.hook = [](const wsl::http_request&, wsl::http_response& res) { res.headers.add("Connection", "close"); };
  const std::vector<std::tuple<std::string, std::string, wsl::listener_options>> cases = {
      {"HTTP/1.0", "GET / HTTP/1.0\r\n\r\n", {}},
      {"Connection: close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n", {}},
      {"a body", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nab", {}},
      {"a chunked body", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", {}},
      {"the hook's Connection: close", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", closing_hook},
      {"the second of two allowed", "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n", two},
  };
  for (const auto& [what, request, options] : cases) {
    BOOST_TEST_CONTEXT(what) {
      negotiation n(options);
      n.send(request);
      BOOST_TEST(n.finish().ec == wsl::error::not_upgrade);
      BOOST_TEST(n.server_shut_down);
      auto reply = parse_reply(n.raw);
      if (what == "the second of two allowed") reply = parse_reply(reply.after);
      BOOST_TEST(reply.complete);
      BOOST_TEST(reply.status == 426);
      BOOST_TEST(reply.get("Connection").value_or("") == "upgrade, close");
      BOOST_TEST(!reply.get("Keep-Alive"));
      BOOST_TEST(reply.after.empty());
    }
  }
}

BOOST_AUTO_TEST_CASE(the_handshake_timeout_closes_the_stream) {
  wsl::listener_options options;
  options.handshake_timeout = 2s;
  negotiation n(options);
  n.send("GET /chat HTTP/1.1\r\nHost: server.example.com\r\n");
  n.peer->take();
  wsl::test::advance_clock(n.ctx, 1900ms);
  BOOST_TEST(!n.accepting->done());
  BOOST_TEST(!n.peer->received_eof());
  wsl::test::advance_clock(n.ctx, 200ms);
  BOOST_REQUIRE(n.accepting->done());
  BOOST_TEST(n.accepting->get().ec == wsl::error::handshake_timeout);
  BOOST_TEST(n.accepting->get().ec == wsl::condition::timeout);
  BOOST_TEST(n.peer->other_end_closed());
}

BOOST_AUTO_TEST_CASE(the_handshake_timeout_bounds_the_whole_request_not_each_read) {
  wsl::listener_options options;
  options.handshake_timeout = 2s;
  negotiation n(options);
  const std::string request = request_builder().str();
  std::size_t sent = 0;
  for (; sent < request.size() && !n.accepting->done(); ++sent) {
    n.send(request.substr(sent, 1));
    wsl::test::advance_clock(n.ctx, 100ms);  // one byte every 100 ms: 20 bytes in the time bound
  }
  BOOST_TEST(sent < request.size());
  BOOST_REQUIRE(n.accepting->done());
  BOOST_TEST(n.accepting->get().ec == wsl::error::handshake_timeout);
  BOOST_TEST(n.peer->other_end_closed());
}

// ------------------------------------------------------------------------------------------------
// The negotiation hook

BOOST_AUTO_TEST_CASE(the_hook_sees_method_path_query_headers_and_cookies) {
  struct seen_request {
    int calls = 0;
    wsl::http_request request;
    std::vector<std::pair<std::string, std::string>> cookies;
    std::vector<std::string> subprotocols;
  };
  auto seen = std::make_shared<seen_request>();
  wsl::listener_options options;
  options.hook = [seen](const wsl::http_request& req, wsl::http_response& res) {
    ++seen->calls;
    seen->request = req;
    for (const auto& [name, value] : req.cookies()) seen->cookies.emplace_back(name, value);
    for (auto p : req.subprotocols()) seen->subprotocols.emplace_back(p);
    BOOST_TEST(res.status == 101);
  };
  negotiation n(options);
  n.send(request_builder()
             .line("GET /chat/room?name=lobby&x=1 HTTP/1.1")
             .add("Cookie", "session=abc123; theme=dark")
             .add("Sec-WebSocket-Protocol", "chat.v2, chat.v1")
             .add("X-Custom", "  padded value  ")
             .str());
  BOOST_TEST(!n.finish().ec);
  BOOST_REQUIRE(seen->calls == 1);
  const auto& req = seen->request;
  BOOST_TEST(req.method == "GET");
  BOOST_TEST(req.target == "/chat/room?name=lobby&x=1");
  BOOST_TEST(req.path == "/chat/room");
  BOOST_TEST(req.query == "name=lobby&x=1");
  BOOST_TEST(req.headers.get("x-custom").value_or("") == "padded value");
  BOOST_TEST(req.headers.get("HOST").value_or("") == "server.example.com");
  BOOST_TEST(req.cookie("theme").value_or("") == "dark");
  BOOST_TEST(
      (seen->cookies == std::vector<std::pair<std::string, std::string>>{{"session", "abc123"}, {"theme", "dark"}}));
  BOOST_TEST(seen->subprotocols == (std::vector<std::string>{"chat.v2", "chat.v1"}));
  BOOST_TEST(req.remote_endpoint.port() == 50000);
  BOOST_TEST(req.local_endpoint.port() == 8080);
}

// X-Forwarded-For is believed from a trusted proxy only (the memory stream's client is 127.0.0.1),
// read from the right, past the trusted proxies (nginx's real_ip_recursive), up to a malformed element.
BOOST_AUTO_TEST_CASE(the_client_address_comes_from_x_forwarded_for_of_trusted_proxies_only) {
  const auto client_of = [](std::vector<std::string> proxies, std::vector<std::string> forwarded) {
    auto seen = std::make_shared<asio::ip::address>();
    wsl::listener_options options;
    for (const auto& p : proxies) options.trusted_proxies.push_back(*wsl::address_range::parse(p));
    options.hook = [seen](const wsl::http_request& req, wsl::http_response&) { *seen = req.client_address; };
    negotiation n(options);
    request_builder request;
    for (const auto& f : forwarded) request.add("X-Forwarded-For", f);
    n.send(request.str());
    BOOST_TEST(!n.finish().ec);
    return seen->to_string();
  };
  BOOST_TEST(client_of({}, {"203.0.113.7"}) == "127.0.0.1");              // nobody trusted
  BOOST_TEST(client_of({"10.0.0.0/8"}, {"203.0.113.7"}) == "127.0.0.1");  // not this peer
  BOOST_TEST(client_of({"127.0.0.1"}, {}) == "127.0.0.1");                // no header
  BOOST_TEST(client_of({"127.0.0.0/8"}, {"203.0.113.7"}) == "203.0.113.7");
  BOOST_TEST(client_of({"127.0.0.1"}, {"198.51.100.1, 203.0.113.7"}) == "203.0.113.7");  // the last hop's
  BOOST_TEST(client_of({"127.0.0.1", "10.0.0.0/8"}, {"198.51.100.1, 203.0.113.7", "10.1.2.3"}) == "203.0.113.7");
  BOOST_TEST(client_of({"127.0.0.1", "10.0.0.0/8"}, {"10.0.0.5,10.0.0.6"}) == "10.0.0.5");  // all trusted
  BOOST_TEST(client_of({"127.0.0.1"}, {"203.0.113.7:4711"}) == "203.0.113.7");
  BOOST_TEST(client_of({"127.0.0.1"}, {"[2001:db8::7]:4711"}) == "2001:db8::7");
  BOOST_TEST(client_of({"127.0.0.1"}, {" 2001:db8::8 "}) == "2001:db8::8");
  BOOST_TEST(client_of({"127.0.0.1"}, {"::ffff:203.0.113.9"}) == "203.0.113.9");
  BOOST_TEST(client_of({"127.0.0.1", "10.0.0.0/8"}, {"203.0.113.7, unknown, 10.0.0.1"}) == "10.0.0.1");
  BOOST_TEST(client_of({"127.0.0.1"}, {"203.0.113.7,"}) == "127.0.0.1");  // malformed at once
}

// RFC 7239's Forwarded and nginx's X-Real-IP, each read only when chosen: the header a proxy does
// not set is the client's to forge.
BOOST_AUTO_TEST_CASE(the_client_address_comes_from_forwarded_or_x_real_ip_when_chosen) {
  using header = wsl::listener_options::forwarding_header;
  const auto client_of = [](header chosen, std::vector<std::pair<std::string, std::string>> fields) {
    auto seen = std::make_shared<asio::ip::address>();
    wsl::listener_options options;
    options.trusted_proxies = {*wsl::address_range::parse("127.0.0.1"), *wsl::address_range::parse("10.0.0.0/8")};
    options.client_address_header = chosen;
    options.hook = [seen](const wsl::http_request& req, wsl::http_response&) { *seen = req.client_address; };
    negotiation n(options);
    request_builder request;
    for (const auto& [name, value] : fields) request.add(name, value);
    n.send(request.str());
    BOOST_TEST(!n.finish().ec);
    return seen->to_string();
  };
  const auto forwarded = [&](std::vector<std::string> values) {
    std::vector<std::pair<std::string, std::string>> fields;
    for (auto& v : values) fields.emplace_back("Forwarded", v);
    return client_of(header::forwarded, fields);
  };
  BOOST_TEST(forwarded({"for=203.0.113.7"}) == "203.0.113.7");
  BOOST_TEST(forwarded({"For=\"203.0.113.7\";proto=https;by=10.0.0.1"}) == "203.0.113.7");
  BOOST_TEST(forwarded({"for=\"[2001:db8:cafe::17]:4711\""}) == "2001:db8:cafe::17");
  BOOST_TEST(forwarded({"for=\"203.0.113.7:4711\""}) == "203.0.113.7");
  BOOST_TEST(forwarded({"for=198.51.100.1, for=203.0.113.7;proto=http"}) == "203.0.113.7");
  BOOST_TEST(forwarded({"for=198.51.100.1, for=203.0.113.7", "for=10.1.2.3"}) == "203.0.113.7");
  BOOST_TEST(forwarded({"for=203.0.113.7, , for=10.1.2.3"}) == "203.0.113.7");  // an empty element
  BOOST_TEST(forwarded({"proto=https;for=203.0.113.7 ; host=example.com"}) == "203.0.113.7");
  BOOST_TEST(forwarded({"for=\"a\\\"b\", for=203.0.113.7"}) == "203.0.113.7");  // quoted-pairs
  BOOST_TEST(forwarded({"for=203.0.113.7, for=unknown"}) == "127.0.0.1");       // the proxy did not know
  BOOST_TEST(forwarded({"for=203.0.113.7, for=_hidden"}) == "127.0.0.1");       // obfuscated
  BOOST_TEST(forwarded({"for=203.0.113.7, proto=https"}) == "127.0.0.1");       // no for=
  BOOST_TEST(forwarded({"for=203.0.113.7, for=10.0.0.1"}) == "203.0.113.7");
  BOOST_TEST(forwarded({"for=203.0.113.7;for=198.51.100.1"}) == "127.0.0.1");  // for= twice
  BOOST_TEST(forwarded({"for=\"203.0.113.7"}) == "127.0.0.1");                 // unterminated
  BOOST_TEST(forwarded({"for=203.0.113.7 junk"}) == "127.0.0.1");
  BOOST_TEST(forwarded({"for=198.51.100.1, for=10.0.0.1 junk"}) == "127.0.0.1");  // malformed nearest
  // Not chosen, not read (and the chosen one, absent: the peer's own address).
  BOOST_TEST(client_of(header::forwarded, {{"X-Forwarded-For", "203.0.113.7"}}) == "127.0.0.1");
  BOOST_TEST(client_of(header::x_forwarded_for, {{"Forwarded", "for=203.0.113.7"}}) == "127.0.0.1");
  BOOST_TEST(client_of(header::x_real_ip, {{"X-Forwarded-For", "203.0.113.7"}}) == "127.0.0.1");
  BOOST_TEST(client_of(header::x_real_ip, {{"X-Real-IP", " 203.0.113.7 "}}) == "203.0.113.7");
  BOOST_TEST(client_of(header::x_real_ip, {{"X-Real-IP", "2001:db8::7"}}) == "2001:db8::7");
  BOOST_TEST(client_of(header::x_real_ip, {{"X-Real-IP", "203.0.113.7, 198.51.100.1"}}) == "127.0.0.1");
  BOOST_TEST(client_of(header::x_real_ip, {{"X-Real-IP", "198.51.100.1"}, {"X-Real-IP", "203.0.113.7"}}) ==
             "203.0.113.7");
}

// The PROXY protocol header a load balancer sends first (HAProxy's proxy-protocol.txt).
namespace {

struct parsed_header {
  wsl::detail::proxy_header_status status;
  std::size_t size = 0;
  std::string source;  // "-" for none
};

parsed_header parse_header(std::string_view bytes) {
  parsed_header p;
  std::optional<asio::ip::address> source = asio::ip::make_address("192.0.2.99");  // must be reset or set
  p.status = wsl::detail::parse_proxy_header(
      std::span(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size()), p.size, source);
  p.source = source ? source->to_string() : "-";
  return p;
}

std::string v2(unsigned char version_command, unsigned char family, std::string body) {
  std::string h("\r\n\r\n\0\r\nQUIT\n", 12);
  h += static_cast<char>(version_command);
  h += static_cast<char>(family);
  h += static_cast<char>(body.size() >> 8);
  h += static_cast<char>(body.size() & 0xff);
  return h + body;
}

}  // namespace

BOOST_AUTO_TEST_CASE(proxy_protocol_version_1_headers) {
  using status = wsl::detail::proxy_header_status;
  const std::string tcp4 = "PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n";
  auto p = parse_header(tcp4 + "GET / HTTP/1.1\r\n");
  BOOST_TEST((p.status == status::complete));
  BOOST_TEST(p.size == tcp4.size());
  BOOST_TEST(p.source == "203.0.113.7");
  p = parse_header("PROXY TCP6 2001:db8::7 2001:db8::1 56324 443\r\n");
  BOOST_TEST((p.status == status::complete && p.source == "2001:db8::7"));
  p = parse_header("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n");
  BOOST_TEST((p.status == status::complete && p.source == "-"));
  p = parse_header("PROXY UNKNOWN\r\n");
  BOOST_TEST((p.status == status::complete && p.source == "-" && p.size == 15u));
  for (std::string_view partial : {"P", "PROXY", "PROXY TCP4 203.0.113.7 192.0.2.1 5632", "\r\n\r\n\0\r"})
    BOOST_TEST((parse_header(partial).status == status::incomplete), partial);
  for (std::string_view bad : {
           "GET / HTTP/1.1\r\n", "\x16\x03\x01", "proxy TCP4 203.0.113.7 192.0.2.1 1 2\r\n",
           "PROXY TCP4 203.0.113.7 192.0.2.1 56324\r\n",    // a port missing
           "PROXY TCP4 2001:db8::7 192.0.2.1 1 2\r\n",      // the wrong family
           "PROXY TCP4 203.0.113.7 192.0.2.1 70000 2\r\n",  // no such port
           "PROXY TCP5 203.0.113.7 192.0.2.1 1 2\r\n",      // no such protocol
           "PROXY TCP4 203.0.113.7  192.0.2.1 1 2\r\n",     // two spaces
           "PROXY TCP4 203.0.113.7 192.0.2.1 1 2\n",        // no CR
       })
    BOOST_TEST((parse_header(bad).status == status::invalid), bad);
  // No CRLF within the 107 bytes a header may take.
  BOOST_TEST((parse_header("PROXY UNKNOWN " + std::string(120, 'x')).status == status::invalid));
}

BOOST_AUTO_TEST_CASE(proxy_protocol_version_2_headers) {
  using status = wsl::detail::proxy_header_status;
  const std::string ipv4_body("\xcb\x00\x71\x07\xc0\x00\x02\x01\xdc\x04\x01\xbb", 12);  // 203.0.113.7 > 192.0.2.1
  auto p = parse_header(v2(0x21, 0x11, ipv4_body) + "GET");
  BOOST_TEST((p.status == status::complete && p.source == "203.0.113.7"));
  BOOST_TEST(p.size == 28u);
  std::string ipv6_body(36, '\0');
  ipv6_body[0] = '\x20', ipv6_body[1] = '\x01', ipv6_body[2] = '\x0d', ipv6_body[3] = '\xb8', ipv6_body[15] = 7;
  p = parse_header(v2(0x21, 0x21, ipv6_body));
  BOOST_TEST((p.status == status::complete && p.source == "2001:db8::7"));
  // TLVs after the addresses are skipped: the length covers them.
  p = parse_header(v2(0x21, 0x11,
                      ipv4_body + std::string("\x04\x00\x03"
                                              "abc",
                                              6)) +
                   "rest");
  BOOST_TEST((p.status == status::complete && p.size == 34u && p.source == "203.0.113.7"));
  p = parse_header(v2(0x20, 0x00, ""));  // LOCAL: the balancer's health check
  BOOST_TEST((p.status == status::complete && p.source == "-" && p.size == 16u));
  p = parse_header(v2(0x21, 0x31, std::string(216, 'u')));  // AF_UNIX: no address of ours
  BOOST_TEST((p.status == status::complete && p.source == "-"));
  BOOST_TEST((parse_header(v2(0x21, 0x11, ipv4_body).substr(0, 20)).status == status::incomplete));
  BOOST_TEST((parse_header(v2(0x11, 0x11, ipv4_body)).status == status::invalid));  // version 1 in a v2 frame
  BOOST_TEST((parse_header(v2(0x22, 0x11, ipv4_body)).status == status::invalid));  // no command 2
  BOOST_TEST((parse_header(v2(0x21, 0x11, ipv4_body.substr(0, 8))).status == status::invalid));  // too short
  BOOST_TEST((parse_header(v2(0x21, 0x41, ipv4_body)).status == status::invalid));               // no family 4
}

BOOST_AUTO_TEST_CASE(address_ranges_parse_and_match) {
  using wsl::address_range;
  const auto a = [](const char* text) { return asio::ip::make_address(text); };
  const auto r = address_range::parse("10.0.0.0/8");
  BOOST_REQUIRE(r);
  BOOST_TEST(r->contains(a("10.255.0.1")));
  BOOST_TEST(r->contains(a("::ffff:10.1.1.1")));
  BOOST_TEST(!r->contains(a("11.0.0.1")));
  BOOST_TEST(!r->contains(a("::1")));
  BOOST_TEST(address_range::parse("192.168.1.128/25")->contains(a("192.168.1.200")));
  BOOST_TEST(!address_range::parse("192.168.1.128/25")->contains(a("192.168.1.127")));
  BOOST_TEST(address_range::parse("127.0.0.1")->prefix == 32u);
  BOOST_TEST(address_range::parse("::1")->prefix == 128u);
  BOOST_TEST(address_range::parse("fd00::/8")->contains(a("fdff::1")));
  BOOST_TEST(!address_range::parse("fd00::/8")->contains(a("fe80::1")));
  BOOST_TEST(address_range::parse("0.0.0.0/0")->contains(a("203.0.113.7")));
  BOOST_TEST(address_range::parse("::ffff:127.0.0.1")->contains(a("127.0.0.1")));
  for (const char* bad : {"", "10.0.0.0/", "10.0.0.0/33", "::/129", "10.0.0.1/8", "localhost", "10.0.0.0/8x",
                          "10.0.0.0/-1", "1.2.3.4/0008"})
    BOOST_TEST(!address_range::parse(bad), bad);
}

BOOST_AUTO_TEST_CASE(the_hook_can_reject_with_any_status_headers_and_body) {
  struct rejection {
    int status;
    std::string reason;
  };
  for (const auto& r : {rejection{403, "Forbidden"}, rejection{401, "Unauthorized"}, rejection{302, "Found"},
                        rejection{418, "Unknown"}, rejection{503, "Service Unavailable"}}) {
    BOOST_TEST_CONTEXT("status " << r.status) {
      wsl::listener_options options;
      options.hook = [status = r.status](const wsl::http_request&, wsl::http_response& res) {
        res.headers.add("X-Why", "members only");
        res.headers.add("Location", "/login");
        res.reject(status, "log in first\n");
      };
      negotiation n(options);
      n.send(request_builder().str());
      const auto& result = n.finish();
      BOOST_TEST(result.ec == wsl::error::handshake_rejected);
      BOOST_TEST(n.reply.complete);
      BOOST_TEST(n.reply.status == r.status);
      BOOST_TEST(n.reply.reason == r.reason);
      BOOST_TEST(n.reply.get("X-Why").value_or("") == "members only");
      BOOST_TEST(n.reply.get("Location").value_or("") == "/login");
      BOOST_TEST(n.reply.body == "log in first\n");
      BOOST_TEST(n.reply.get("Content-Length").value_or("") == "13");
      BOOST_TEST(!n.reply.get("Sec-WebSocket-Accept"));
      BOOST_TEST(n.reply.get("Connection").value_or("") == "close");
      BOOST_TEST(n.server_shut_down);
    }
  }
}

BOOST_AUTO_TEST_CASE(the_hook_can_set_its_own_reason_phrase) {
  wsl::listener_options options;
  options.hook = [](const wsl::http_request&, wsl::http_response& res) {
    res.reject(403);
    res.reason = "Go Away";
  };
  negotiation n(options);
  n.send(request_builder().str());
  n.finish();
  BOOST_TEST(n.reply.status == 403);
  BOOST_TEST(n.reply.reason == "Go Away");
  BOOST_TEST(n.reply.body.empty());
}

BOOST_AUTO_TEST_CASE(the_hook_chooses_an_offered_subprotocol_and_sets_cookies) {
  wsl::listener_options options;
  options.hook = [](const wsl::http_request& req, wsl::http_response& res) {
    if (req.offers_subprotocol("chat.v2")) res.subprotocol = "chat.v2";
    res.set_cookie("seen", "1", "Path=/; HttpOnly");
    res.set_cookie("visits", "7");
  };
  negotiation n(options);
  n.send(request_builder().add("Sec-WebSocket-Protocol", "chat.v1, chat.v2").str());
  auto& result = n.finish();
  BOOST_TEST(!result.ec);
  BOOST_TEST(n.reply.status == 101);
  BOOST_TEST(n.reply.all("Sec-WebSocket-Protocol") == std::vector<std::string>{"chat.v2"});
  BOOST_TEST(n.reply.all("Set-Cookie") == (std::vector<std::string>{"seen=1; Path=/; HttpOnly", "visits=7"}));
  BOOST_TEST(n.reply.get("Sec-WebSocket-Accept").value_or("") == rfc_accept);
  BOOST_TEST(result.ws.subprotocol() == "chat.v2");
}

BOOST_AUTO_TEST_CASE(a_hook_choosing_a_subprotocol_that_was_not_offered_gets_500) {
  for (const char* offered : {"", "chat.v1", "chat.v2x, chat"}) {
    BOOST_TEST_CONTEXT("offered '" << offered << "'") {
      wsl::listener_options options;
      options.hook = [](const wsl::http_request&, wsl::http_response& res) { res.subprotocol = "chat.v2"; };
      request_builder r;
      if (*offered) r.add("Sec-WebSocket-Protocol", offered);
      const auto reply = expect_refusal(r.str(), 500, options);
      BOOST_TEST(!reply.get("Sec-WebSocket-Protocol"));
    }
  }
}

BOOST_AUTO_TEST_CASE(a_hook_that_throws_gets_500) {
  wsl::listener_options options;
  options.hook = [](const wsl::http_request&, wsl::http_response&) { throw std::runtime_error("database down"); };
  expect_refusal(request_builder().str(), 500, options);
}

BOOST_AUTO_TEST_CASE(a_hook_cannot_split_the_response_with_line_breaks) {
  wsl::listener_options options;
  options.hook = [](const wsl::http_request&, wsl::http_response& res) {
    res.headers.add("X-Evil", "a\r\nSet-Cookie: admin=1");
  };
  const auto reply = expect_refusal(request_builder().str(), 500, options);
  BOOST_TEST(!reply.get("Set-Cookie"));
  BOOST_TEST(!reply.get("X-Evil"));
}

BOOST_AUTO_TEST_CASE(the_hook_may_answer_a_plain_http_request) {
  auto calls = std::make_shared<int>(0);
  wsl::listener_options options;
  options.hook = [calls](const wsl::http_request& req, wsl::http_response& res) {
    ++*calls;
    BOOST_TEST(res.status == 426);
    BOOST_TEST(req.path == "/health");
    res.status = 200;
    res.body = "ok\n";
  };
  negotiation n(options);
  n.send("GET /health HTTP/1.1\r\nHost: server.example.com\r\nConnection: close\r\n\r\n");
  BOOST_TEST(n.finish().ec == wsl::error::not_upgrade);
  BOOST_TEST(*calls == 1);
  BOOST_TEST(n.reply.status == 200);
  BOOST_TEST(n.reply.body == "ok\n");
  BOOST_TEST(n.server_shut_down);
}

// ------------------------------------------------------------------------------------------------
// Standards

BOOST_AUTO_TEST_CASE(a_second_registered_standard_is_accepted_and_listed_in_426) {
  auto registry = std::make_shared<wsl::standard_registry>(*wsl::standard_registry::defaults());
  registry->add(std::make_shared<wsl::rfc6455_standard>(8, "hybi-08"));
  BOOST_TEST(registry->versions() == "13, 8");
  wsl::listener_options options;
  options.standards = registry;
  BOOST_TEST_CONTEXT("version 8") {
    expect_accepted(request_builder().set("Sec-WebSocket-Version", "8").str(), options);
  }
  BOOST_TEST_CONTEXT("version 13") { expect_accepted(request_builder().str(), options); }
  BOOST_TEST_CONTEXT("version 7") {
    const auto reply = expect_refusal(request_builder().set("Sec-WebSocket-Version", "7").str(), 426, options);
    BOOST_TEST(reply.get("Sec-WebSocket-Version").value_or("") == "13, 8");
  }
}

// ------------------------------------------------------------------------------------------------
// What follows the handshake

BOOST_AUTO_TEST_CASE(bytes_pipelined_behind_the_request_are_the_first_frame) {
  negotiation n;
  n.send(request_builder().str() + wsl::test::client_frame(wsl::test::op::text, "early bird") +
         wsl::test::client_frame(wsl::test::op::binary, "second"));
  auto& result = n.finish();
  BOOST_REQUIRE(!result.ec);
  BOOST_TEST(n.reply.status == 101);
  BOOST_TEST(n.reply.after.empty());
  auto first = wsl::test::run(n.ctx, wsl::test::read_whole_message(result.ws));
  BOOST_TEST(!first.ec);
  BOOST_TEST(first.type == wsl::message_type::text);
  BOOST_TEST(first.data == "early bird");
  auto second = wsl::test::run(n.ctx, wsl::test::read_whole_message(result.ws));
  BOOST_TEST(second.data == "second");
  BOOST_TEST(second.type == wsl::message_type::binary);
}

// ------------------------------------------------------------------------------------------------
// The request parser on its own

namespace {

std::error_code parse(std::string_view head, wsl::http_request& out) { return wsl::detail::parse_request(head, out); }

}  // namespace

BOOST_AUTO_TEST_CASE(parse_request_splits_the_request_line_and_keeps_fields_in_order) {
  wsl::http_request req;
  const auto ec = parse(
      "GET /a/b?c=d?e HTTP/1.1\r\nHost: h\r\nX-Empty:\r\nX-Spaces: \t inner  value \t\r\nhost: second\r\n\r\n", req);
  BOOST_REQUIRE(!ec);
  BOOST_TEST(req.method == "GET");
  BOOST_TEST(req.target == "/a/b?c=d?e");
  BOOST_TEST(req.path == "/a/b");
  BOOST_TEST(req.query == "c=d?e");
  BOOST_TEST(req.version_major == 1);
  BOOST_TEST(req.version_minor == 1);
  BOOST_REQUIRE(req.headers.size() == 4u);
  std::vector<std::string> names, values;
  for (const auto& f : req.headers) {
    names.push_back(f.name);
    values.push_back(f.value);
  }
  BOOST_TEST(names == (std::vector<std::string>{"Host", "X-Empty", "X-Spaces", "host"}));
  BOOST_TEST(values == (std::vector<std::string>{"h", "", "inner  value", "second"}));
  BOOST_TEST(req.headers.count("HOST") == 2u);
  BOOST_TEST(req.headers.get("host").value_or("") == "h");
}

BOOST_AUTO_TEST_CASE(parse_request_without_a_query) {
  wsl::http_request req;
  BOOST_REQUIRE(!parse("GET /plain HTTP/1.1\r\n\r\n", req));
  BOOST_TEST(req.path == "/plain");
  BOOST_TEST(req.query.empty());
  wsl::http_request empty_query;
  BOOST_REQUIRE(!parse("GET /plain? HTTP/1.1\r\n\r\n", empty_query));
  BOOST_TEST(empty_query.path == "/plain");
  BOOST_TEST(empty_query.query.empty());
}

BOOST_AUTO_TEST_CASE(parse_request_reads_other_http_versions) {
  wsl::http_request req;
  BOOST_REQUIRE(!parse("GET / HTTP/1.0\r\n\r\n", req));
  BOOST_TEST(req.version_major == 1);
  BOOST_TEST(req.version_minor == 0);
  wsl::http_request two;
  BOOST_REQUIRE(!parse("GET / HTTP/2.0\r\n\r\n", two));
  BOOST_TEST(two.version_major == 2);
}

BOOST_AUTO_TEST_CASE(parse_request_skips_empty_lines_before_the_request_line) {
  using wsl::detail::request_line_start;
  BOOST_TEST(request_line_start("GET") == 0u);
  BOOST_TEST(request_line_start("\r\nGET") == 2u);
  BOOST_TEST(request_line_start("\r\n\r") == 2u);  // half a CRLF is not an empty line yet
  BOOST_TEST(request_line_start("\nGET") == 0u);
  std::string crlfs;
  for (std::size_t i = 0; i < wsl::detail::max_empty_lines_before_request + 3; ++i) crlfs += "\r\n";
  BOOST_TEST(request_line_start(crlfs) == 2 * wsl::detail::max_empty_lines_before_request);

  wsl::http_request req;
  BOOST_REQUIRE(!parse("\r\n\r\nGET /after HTTP/1.1\r\nHost: h\r\n\r\n", req));
  BOOST_TEST(req.method == "GET");
  BOOST_TEST(req.path == "/after");
  BOOST_TEST(req.headers.get("Host").value_or("") == "h");
  wsl::http_request too_many;
  BOOST_TEST(parse(crlfs + "GET / HTTP/1.1\r\n\r\n", too_many) == wsl::error::bad_request);
}

BOOST_AUTO_TEST_CASE(parse_request_rejects_what_the_grammar_forbids) {
  const std::string_view heads[] = {
      "",
      "GET / HTTP/1.1\r\n",  // no blank line
      "GET / HTTP/1.1\nHost: h\n\n",
      "GET / HTTP/1.1\r\nHost: h\r\n continued\r\n\r\n",
      "GET / HTTP/1.1\r\nHost h\r\n\r\n",
      "GET / HTTP/1.1\r\n: h\r\n\r\n",
      "GET / HTTP/1.1\r\nHo st: h\r\n\r\n",
      "GET / HTTP/1.1\r\nHost : h\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\x01"
      "b\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\nb\r\n\r\n",
      "GET /a b HTTP/1.1\r\n\r\n",
      "GET  HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1\r\n\tHost: h\r\n\r\n",
      "G\"T / HTTP/1.1\r\n\r\n",
  };
  for (auto head : heads) {
    BOOST_TEST_CONTEXT("head '" << head << "'") {
      wsl::http_request req;
      BOOST_TEST(parse(head, req) == wsl::error::bad_request);
    }
  }
}

BOOST_AUTO_TEST_CASE(header_token_lists) {
  wsl::http_request req;
  BOOST_REQUIRE(
      !parse("GET / HTTP/1.1\r\nConnection: keep-alive , Upgrade\r\nConnection: ,, close\r\n"
             "Sec-WebSocket-Protocol: a, b\r\nSec-WebSocket-Protocol: c\r\n\r\n",
             req));
  BOOST_TEST(req.headers.has_token("connection", "UPGRADE"));
  BOOST_TEST(req.headers.has_token("Connection", "close"));
  BOOST_TEST(!req.headers.has_token("Connection", "upgrad"));
  BOOST_TEST(!req.headers.has_token("Connection", "keep-alive , Upgrade"));
  const auto list = req.headers.list("connection");
  BOOST_TEST((std::vector<std::string>(list.begin(), list.end())) ==
             (std::vector<std::string>{"keep-alive", "Upgrade", "close"}));
  const auto offered = req.subprotocols();
  BOOST_TEST((std::vector<std::string>(offered.begin(), offered.end())) == (std::vector<std::string>{"a", "b", "c"}));
  BOOST_TEST(req.offers_subprotocol("b"));
  BOOST_TEST(!req.offers_subprotocol("B"));  // subprotocol names are case-sensitive
}

BOOST_AUTO_TEST_CASE(cookies_are_read_from_every_cookie_field) {
  wsl::http_request req;
  req.headers.add("Cookie", "a=1; b=two;c=3");
  req.headers.add("X-Other", "d=4");
  req.headers.add("cookie", "quoted=\"q v\"; empty=; novalue; =orphan; spaced = 5 ");
  const auto cookies = req.cookies();
  const std::vector<std::pair<std::string, std::string>> got(cookies.begin(), cookies.end());
  const std::vector<std::pair<std::string, std::string>> expected = {{"a", "1"},        {"b", "two"},  {"c", "3"},
                                                                     {"quoted", "q v"}, {"empty", ""}, {"spaced", "5"}};
  BOOST_TEST((got == expected));
  BOOST_TEST(req.cookie("b").value_or("?") == "two");
  BOOST_TEST(req.cookie("empty").value_or("?") == "");
  BOOST_TEST(!req.cookie("d"));
  BOOST_TEST(!req.cookie("novalue"));
  BOOST_TEST(!req.cookie("A"));  // cookie names are case-sensitive
}

BOOST_AUTO_TEST_CASE(a_request_without_cookies_has_none) {
  wsl::http_request req;
  BOOST_TEST(req.cookies().empty());
  BOOST_TEST(!req.cookie("session"));
}

// ------------------------------------------------------------------------------------------------
// listener_options::response_headers

BOOST_AUTO_TEST_CASE(response_headers_go_on_the_101_and_on_every_refusal) {
  wsl::listener_options options;
  options.max_handshake_size = 1024;
  options.response_headers.add("X-Frame-Options", "DENY");
  options.response_headers.add("Strict-Transport-Security", "max-age=60");
  auto expect_ours = [](const http_reply& reply) {
    BOOST_TEST(reply.all("X-Frame-Options") == std::vector<std::string>{"DENY"});
    BOOST_TEST(reply.all("Strict-Transport-Security") == std::vector<std::string>{"max-age=60"});
  };
  BOOST_TEST_CONTEXT("101") {
    negotiation n(options);
    n.send(request_builder().str());
    BOOST_TEST(!n.finish().ec);
    BOOST_TEST(n.reply.status == 101);
    expect_ours(n.reply);
  }
  // The refusals the library decides itself, before and after the request could be parsed.
  BOOST_TEST_CONTEXT("400 bad request") {
    expect_ours(expect_refusal(request_builder().line("GET /chat HTTP/1.0").str(), 400, options));
  }
  BOOST_TEST_CONTEXT("400 malformed head") {
    expect_ours(expect_refusal("GET / HTTP/1.1\r\n\x01\r\n\r\n", 400, options));
  }
  BOOST_TEST_CONTEXT("400 bare LF") { expect_ours(expect_refusal("GET / HTTP/1.1\nHost: a\n\n", 400, options)); }
  BOOST_TEST_CONTEXT("426 version") {
    expect_ours(expect_refusal(request_builder().set("Sec-WebSocket-Version", "8").str(), 426, options));
  }
  BOOST_TEST_CONTEXT("426 plain GET") {
    expect_ours(expect_refusal("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 426, options));
  }
  BOOST_TEST_CONTEXT("431") {
    expect_ours(expect_refusal(request_builder().add("X-Filler", std::string(1100, 'f')).str(), 431, options));
  }
  BOOST_TEST_CONTEXT("503") {
    auto busy = options;
    busy.budget = std::make_shared<wsl::connection_budget>(1);
    BOOST_REQUIRE(busy.budget->try_acquire());
    expect_ours(expect_refusal(request_builder().str(), 503, busy));
  }
  BOOST_TEST_CONTEXT("the hook's refusal, after the hook's own fields") {
    auto hooked = options;
    hooked.hook = [](const wsl::http_request&, wsl::http_response& res) {
      res.headers.add("X-Why", "members only");
      res.reject(403, "no\n");
    };
    const auto reply = expect_refusal(request_builder().str(), 403, hooked);
    expect_ours(reply);
    BOOST_TEST(reply.get("X-Why").value_or("") == "members only");
    auto position = [&](std::string_view name) {
      return std::find_if(reply.headers.begin(), reply.headers.end(), [&](const auto& f) { return f.first == name; }) -
             reply.headers.begin();
    };
    BOOST_TEST(position("X-Why") < position("X-Frame-Options"));
  }
  BOOST_TEST_CONTEXT("500 for a hook that wrote a line break") {
    auto broken = options;
    broken.hook = [](const wsl::http_request&, wsl::http_response& res) { res.headers.add("X-Bad", "a\r\nb: c"); };
    const auto reply = expect_refusal(request_builder().str(), 500, broken);
    expect_ours(reply);
    BOOST_TEST(!reply.get("X-Bad"));
  }
}

BOOST_AUTO_TEST_CASE(response_headers_that_could_split_the_response_are_invalid) {
  for (const auto& [name, value] : std::vector<std::pair<std::string, std::string>>{{"X-A", "a\r\nSet-Cookie: x=1"},
                                                                                    {"X-A", "a\nb"},
                                                                                    {"X-A", std::string("a\0b", 3)},
                                                                                    {"X-A\r\nB", "1"},
                                                                                    {"X-A: b", "1"},
                                                                                    {"", "1"}}) {
    BOOST_TEST_CONTEXT("'" << name << "': '" << value << "'") {
      wsl::listener_options options;
      options.response_headers.add(name, value);
      BOOST_TEST(options.validate() == wsl::error::invalid_option);
      negotiation n(options);  // accept_websocket() refuses to start with them
      BOOST_TEST(n.finish().ec == wsl::error::invalid_option);
      BOOST_TEST(n.raw.empty());
    }
  }
  wsl::listener_options fine;
  fine.response_headers.add("X-A", "any value: even with colons, and \t tabs");
  BOOST_TEST(!fine.validate());
}
