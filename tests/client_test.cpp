// The client side (client.hpp): URLs with user info and their redaction, the proxy option, and
// what connect() sends and does through an HTTP CONNECT proxy, over real sockets on 127.0.0.1
// (the proxies here are a few lines each, answering by hand); and connect() over a stream the
// caller opened (client_handshake): a memory pipe with the test playing the server, and a socket
// the test connected.
#include "wsl/client.hpp"

#define BOOST_TEST_MODULE client
#include <boost/test/unit_test.hpp>

#include "connection_harness.hpp"
#include "memory_transport.hpp"
#include "property.hpp"
#include "proxy.hpp"
#include "run_coroutine.hpp"
#include "test_printing.hpp"
#include "wire_frames.hpp"
#include "wsl/error.hpp"
#include "wsl/listener.hpp"
#include "wsl/standard.hpp"

#include <asio/experimental/awaitable_operators.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/read_until.hpp>
#include <asio/redirect_error.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <vector>

using namespace std::chrono_literals;
using wsl::test::run_until;
using wsl::test::spawn;

namespace {

wsl::url parsed(std::string_view text) {
  wsl::url u;
  const auto ec = wsl::parse_url(text, u);
  BOOST_TEST_INFO(text);
  BOOST_TEST(!ec, ec.message());
  return u;
}

}  // namespace

// --- URLs ---

BOOST_AUTO_TEST_CASE(a_url_without_user_info_has_no_credentials) {
  const auto u = parsed("ws://127.0.0.1:9000/chat?room=1");
  BOOST_TEST(!u.has_credentials);
  BOOST_TEST(u.host == "127.0.0.1");
  BOOST_TEST(u.port == 9000);
  BOOST_TEST(u.target == "/chat?room=1");
  BOOST_TEST(u.to_string() == "ws://127.0.0.1:9000/chat?room=1");
  BOOST_TEST(parsed("ws://host:/").port == 80);  // an empty port is the default one (RFC 3986)
}

BOOST_AUTO_TEST_CASE(user_info_is_split_from_the_host_and_percent_decoded) {
  auto u = parsed("ws://bob:secret@127.0.0.1:9000/x");
  BOOST_TEST(u.has_credentials);
  BOOST_TEST(u.user == "bob");
  BOOST_TEST(u.password == "secret");
  BOOST_TEST(u.host == "127.0.0.1");
  BOOST_TEST(u.port == 9000);
  BOOST_TEST(u.target == "/x");

  u = parsed("wss://b%6Fb%20m:p%40ss%3Aw%2Fd%25@example.net/");
  BOOST_TEST(u.user == "bob m");
  BOOST_TEST(u.password == "p@ss:w/d%");
  BOOST_TEST(u.host == "example.net");
  BOOST_TEST(u.port == 443);

  u = parsed("ws://u:p@[::1]:8443/");
  BOOST_TEST(u.user == "u");
  BOOST_TEST(u.host == "::1");
  BOOST_TEST(u.port == 8443);
}

BOOST_AUTO_TEST_CASE(the_last_at_sign_before_the_path_ends_the_user_info) {
  auto u = parsed("ws://bob:p@ss@w@rd@host:81/a@b");
  BOOST_TEST(u.user == "bob");
  BOOST_TEST(u.password == "p@ss@w@rd");
  BOOST_TEST(u.host == "host");
  BOOST_TEST(u.port == 81);
  BOOST_TEST(u.target == "/a@b");
  // A ':' in the password is the password's: only the first one ends the user.
  u = parsed("ws://bob:a:b:c@host/");
  BOOST_TEST(u.password == "a:b:c");
}

BOOST_AUTO_TEST_CASE(a_user_alone_has_an_empty_password) {
  const auto u = parsed("ws://bob@host/");
  BOOST_TEST(u.has_credentials);
  BOOST_TEST(u.user == "bob");
  BOOST_TEST(u.password == "");
  const auto empty = parsed("ws://bob:@host/");
  BOOST_TEST(empty.password == "");
}

BOOST_AUTO_TEST_CASE(malformed_user_info_is_its_own_error) {
  for (const std::string_view text : {"ws://:pw@host/",           // no user
                                      "ws://@host/",              // nothing at all
                                      "ws://b%zz:p@host/",        // not hex
                                      "ws://b:p%4@host/",         // cut short
                                      "ws://b:p%@host/",          //
                                      "ws://b:p%0d%0aX:1@host/",  // CR LF, decoded
                                      "ws://b:p%00@host/",        // NUL, decoded
                                      "ws://b:p\x01@host/",       // a raw control character
                                      "ws://bo b:p@host/",        // a raw space
                                      "ws://b%3Aob:p@host/"}) {   // a ':' in the user, decoded
    BOOST_TEST_CONTEXT(text) {
      wsl::url u;
      BOOST_TEST(wsl::parse_url(text, u) == wsl::error::bad_userinfo);
    }
  }
  // What is wrong after the user info is still a bad URL, and both are usage errors to the CLI.
  wsl::url u;
  BOOST_TEST(wsl::parse_url("ws://b:p@/", u) == wsl::error::bad_url);
  BOOST_TEST(wsl::parse_url("ws://b:p@host:x/", u) == wsl::error::bad_url);
  BOOST_TEST(wsl::parse_url("ws://b:p@host:99999/", u) == wsl::error::bad_url);
  BOOST_TEST(std::error_code(wsl::error::bad_userinfo) == wsl::condition::handshake_failed);
  BOOST_TEST(std::error_code(wsl::error::bad_userinfo).message() == "malformed user:password in URL");
}

BOOST_AUTO_TEST_CASE(to_string_never_shows_the_password) {
  BOOST_TEST(parsed("ws://bob:secret@127.0.0.1:9000/x").to_string() == "ws://bob:***@127.0.0.1:9000/x");
  BOOST_TEST(parsed("wss://bob@host/").to_string() == "wss://bob:***@host/");
  // The user as a URL writes it, escapes included.
  BOOST_TEST(parsed("ws://b%40b%2f:x@host/").to_string() == "ws://b%40b%2F:***@host/");
}

BOOST_AUTO_TEST_CASE(redact_url_hides_the_password_of_any_text) {
  BOOST_TEST(wsl::redact_url("ws://bob:secret@127.0.0.1:9000/x") == "ws://bob:***@127.0.0.1:9000/x");
  BOOST_TEST(wsl::redact_url("ws://bob:p@ss@host/") == "ws://bob:***@host/");
  BOOST_TEST(wsl::redact_url("http://me:pw@127.0.0.1:3128") == "http://me:***@127.0.0.1:3128");
  // Nothing to hide: as it is.
  BOOST_TEST(wsl::redact_url("ws://host:81/a@b:c") == "ws://host:81/a@b:c");
  BOOST_TEST(wsl::redact_url("ws://bob@host:81/") == "ws://bob@host:81/");
  BOOST_TEST(wsl::redact_url("http//nowhere") == "http//nowhere");
  // Text that does not parse still keeps its secrets: a raw '/' in the password, a bad escape,
  // no scheme.
  BOOST_TEST(wsl::redact_url("ws://bob:se/cret@host/") == "ws://bob:***@host/");
  BOOST_TEST(wsl::redact_url("ws://bob:se%zzcret@host/") == "ws://bob:***@host/");
  BOOST_TEST(wsl::redact_url("bob:secret@host/") == "bob:***@host/");
}

BOOST_AUTO_TEST_CASE(redact_credentials_hides_authorization_values_and_keeps_their_scheme) {
  const std::string head =
      "GET / HTTP/1.1\r\nHost: h\r\nauthorization: Basic Ym9iOnNlY3JldA==\r\nX-Authorization-Hint: keep\r\n"
      "Proxy-Authorization:Bearer abc.def\r\nCookie: c=1\r\n\r\n";
  BOOST_TEST(wsl::redact_credentials(head) ==
             "GET / HTTP/1.1\r\nHost: h\r\nauthorization: Basic ***\r\nX-Authorization-Hint: keep\r\n"
             "Proxy-Authorization: Bearer ***\r\nCookie: c=***\r\n\r\n");
  BOOST_TEST(wsl::redact_credentials("Authorization: opaque\r\n") == "Authorization: ***\r\n");
}

BOOST_AUTO_TEST_CASE(redact_credentials_hides_cookie_values_and_keeps_their_names) {
  BOOST_TEST(wsl::redact_credentials("cookie: sid=s3cret; theme=dark;lang=fr\n") ==
             "cookie: sid=***; theme=***;lang=***\n");
  // A Set-Cookie's attributes say how the cookie is kept, which is what one debugs: only the value goes.
  BOOST_TEST(wsl::redact_credentials("Set-Cookie: sid=s3cret; Path=/; Max-Age=60; HttpOnly\r\n") ==
             "Set-Cookie: sid=***; Path=/; Max-Age=60; HttpOnly\r\n");
  BOOST_TEST(wsl::redact_credentials("Cookie: flag; x=\r\n") == "Cookie: flag; x=***\r\n");
  BOOST_TEST(wsl::redact_credentials("Set-Cookie: =v") == "Set-Cookie: =***");
  BOOST_TEST(wsl::redact_credentials("X-Cookie: a=1\n") == "X-Cookie: a=1\n");
}

// --- address overrides (--resolve) ---

BOOST_AUTO_TEST_CASE(an_address_override_names_a_host_a_port_and_at_least_one_address) {
  const auto loopback = asio::ip::make_address("127.0.0.1");
  wsl::client_options o;
  o.resolve.push_back({"echo.example", 443, {loopback}});
  o.resolve.push_back({"*", 80, {loopback, asio::ip::make_address("::1")}});
  BOOST_TEST(!o.validate());
  for (const auto& bad : {wsl::client_options::address_override{"", 443, {loopback}},
                          wsl::client_options::address_override{"h", 0, {loopback}},
                          wsl::client_options::address_override{"h", 443, {}}}) {
    wsl::client_options b;
    b.resolve.push_back(bad);
    BOOST_TEST(b.validate() == wsl::error::invalid_option);
  }
}

// --- the proxy option ---

BOOST_AUTO_TEST_CASE(the_proxy_is_an_http_or_socks5_url_with_a_port_and_nothing_else) {
  for (const std::string_view ok : {"http://127.0.0.1:3128", "HTTP://proxy.example:8080/", "http://u:p@[::1]:1",
                                    "http://u%40x:p%3a@h:1", "socks5://127.0.0.1:1080", "SOCKS5H://u:p@h:1/"}) {
    BOOST_TEST_CONTEXT(ok) {
      wsl::client_options o;
      o.proxy = ok;
      BOOST_TEST(!o.validate());
    }
  }
  for (const std::string_view bad : {"https://h:3128", "socks4://h:1080", "socks5://h", "socks://h:1", "ws://h:1",
                                     "http://h", "http://h:", "h:3128", "http://h:3128/path", "http://h:3128?x",
                                     "http://h:0", "http://:p@h:1", "http://u:p%zz@h:1", "http://h:3128#f"}) {
    BOOST_TEST_CONTEXT(bad) {
      wsl::client_options o;
      o.proxy = bad;
      BOOST_TEST(o.validate() == wsl::error::invalid_option);
    }
  }
  wsl::url p;
  BOOST_TEST(wsl::parse_proxy_url("http://u:p%zz@h:1", p) == wsl::error::bad_userinfo);
  BOOST_TEST(!wsl::parse_proxy_url("http://me:s%40id@10.0.0.1:3128", p));
  BOOST_TEST(p.user == "me");
  BOOST_TEST(p.password == "s@id");
  BOOST_TEST(p.host == "10.0.0.1");
  BOOST_TEST(p.port == 3128);
  BOOST_TEST(wsl::proxy_protocol("http://h:1") == "http");
  BOOST_TEST(wsl::proxy_protocol("SOCKS5h://h:1") == "socks5h");
  // RFC 1929 carries a user and a password of at most 255 bytes each; HTTP has no such limit.
  const std::string long_user(256, 'u');
  BOOST_TEST(wsl::parse_proxy_url("socks5://" + long_user + ":p@h:1", p) == wsl::error::bad_userinfo);
  BOOST_TEST(!wsl::parse_proxy_url("socks5://" + long_user.substr(1) + ":p@h:1", p));
  BOOST_TEST(!wsl::parse_proxy_url("http://" + long_user + ":p@h:1", p));
}

// --- SOCKS5 (the proxy's side played by hand over a socket pair) ---

namespace {

struct socks_exchange {
  std::error_code ec;
  wsl::detail::socks_answer answer;
};

[[gnu::noinline]] asio::awaitable<socks_exchange> socks5_over(asio::ip::tcp::socket& s, std::string target,
                                                              std::string proxy, std::optional<asio::ip::address> at) {
  socks_exchange o;
  wsl::url t, p;
  t.host = target;
  t.port = 443;
  BOOST_REQUIRE(!wsl::parse_proxy_url(proxy, p));
  co_await wsl::detail::socks5_connect(s, t, p, at, o.answer, o.ec);
  co_return o;
}

// A connected pair on 127.0.0.1: the client's socket, and the proxy's end the test plays.
struct socket_pair {
  explicit socket_pair(asio::io_context& ctx) : client(ctx), proxy(ctx) {
    asio::ip::tcp::acceptor acceptor(ctx, {asio::ip::address_v4::loopback(), 0});
    client.connect(acceptor.local_endpoint());
    proxy = acceptor.accept();
  }
  std::string take(std::size_t n) {
    std::string got(n, '\0');
    asio::read(proxy, asio::buffer(got));
    return got;
  }
  asio::ip::tcp::socket client, proxy;
};

std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (const int v : values) out.push_back(static_cast<char>(v));
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(socks5_names_the_host_for_the_proxy_and_takes_its_reply_and_not_a_byte_more) {
  asio::io_context ctx;
  socket_pair pair(ctx);
  // The whole exchange answered ahead: the method, then the reply with a bound name, then the tunnel.
  asio::write(pair.proxy,
              asio::buffer(bytes({5, 0}) + bytes({5, 0, 0, 3, 4}) + "bind" + bytes({0x1f, 0x90}) + "TUNNEL"));
  auto exchange = spawn(ctx, socks5_over(pair.client, "example.com", "socks5h://127.0.0.1:1080", std::nullopt));
  BOOST_REQUIRE(run_until(ctx, [&] { return exchange.done(); }));
  BOOST_TEST(!exchange.get().ec, exchange.get().ec.message());
  BOOST_TEST(exchange.get().answer.code == 0);
  BOOST_TEST(exchange.get().answer.reason == "succeeded");
  BOOST_TEST(exchange.get().answer.request == "SOCKS5 CONNECT example.com:443");
  BOOST_TEST(pair.take(3) == bytes({5, 1, 0}));  // version, one method: none
  BOOST_TEST(pair.take(7 + 11) == bytes({5, 1, 0, 3, 11}) + "example.com" + bytes({1, 0xbb}));
  BOOST_REQUIRE(pair.client.available() == 6u);  // the tunnel's, still in the socket
}

BOOST_AUTO_TEST_CASE(socks5_sends_an_address_it_was_given_or_an_ip_literal_and_the_credentials) {
  for (const auto& [host, given, expected] :
       {std::tuple{std::string("example.com"), std::optional(asio::ip::make_address("10.1.2.3")),
                   bytes({1, 10, 1, 2, 3})},
        std::tuple{std::string("::1"), std::optional<asio::ip::address>(),
                   bytes({4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})}}) {
    BOOST_TEST_CONTEXT(host) {
      asio::io_context ctx;
      socket_pair pair(ctx);
      // Method 2 (user and password) chosen and accepted; a reply bound to an IPv6 address.
      asio::write(pair.proxy,
                  asio::buffer(bytes({5, 2}) + bytes({1, 0}) + bytes({5, 0, 0, 4}) + std::string(18, '\0')));
      auto exchange = spawn(ctx, socks5_over(pair.client, host, "socks5://bob:s%40cret@127.0.0.1:1080", given));
      BOOST_REQUIRE(run_until(ctx, [&] { return exchange.done(); }));
      BOOST_TEST(!exchange.get().ec, exchange.get().ec.message());
      BOOST_TEST(pair.take(4) == bytes({5, 2, 0, 2}));  // none, or user and password
      BOOST_TEST(pair.take(12) == bytes({1, 3}) + "bob" + bytes({6}) + "s@cret");
      BOOST_TEST(pair.take(3 + expected.size() + 2) == bytes({5, 1, 0}) + expected + bytes({1, 0xbb}));
      BOOST_TEST(pair.client.available() == 0u);
    }
  }
}

BOOST_AUTO_TEST_CASE(socks5_refusals_and_malformed_replies_are_told_apart) {
  struct example {
    std::string replies;
    std::string proxy;
    std::error_code ec;
    int code;
    std::string reason;
  };
  const example examples[] = {
      {bytes({5, 0, 5, 5, 0, 1, 0, 0, 0, 0, 0, 0}), "socks5h://h:1", wsl::error::proxy_refused, 5,
       "connection refused"},
      {bytes({5, 0, 5, 6, 0, 1, 0, 0, 0, 0, 0, 0}), "socks5h://h:1", wsl::error::proxy_refused, 6, "TTL expired"},
      {bytes({5, 0xff}), "socks5h://h:1", wsl::error::proxy_refused, 0, "it wants a user and password"},
      {bytes({5, 0xff}), "socks5h://u:p@h:1", wsl::error::proxy_refused, 0, "no acceptable authentication method"},
      {bytes({5, 2, 1, 1}), "socks5h://u:p@h:1", wsl::error::proxy_refused, 0, "user or password refused"},
      {bytes({5, 2}), "socks5h://h:1", wsl::error::bad_response, 0, ""},                   // a method not offered
      {bytes({4, 0}), "socks5h://h:1", wsl::error::bad_response, 0, ""},                   // SOCKS4
      {bytes({5, 0, 5, 0, 0, 9}), "socks5h://h:1", wsl::error::bad_response, 0, ""},       // no such address type
      {bytes({5, 0, 5, 0, 0, 1, 127}), "socks5h://h:1", wsl::error::bad_response, 0, ""},  // then it hung up
  };
  for (const auto& e : examples) {
    BOOST_TEST_CONTEXT(e.proxy << ", replies of " << e.replies.size() << " bytes, " << e.ec.message()) {
      asio::io_context ctx;
      socket_pair pair(ctx);
      asio::write(pair.proxy, asio::buffer(e.replies));
      pair.proxy.shutdown(asio::socket_base::shutdown_send);
      auto exchange = spawn(ctx, socks5_over(pair.client, "example.com", e.proxy, std::nullopt));
      BOOST_REQUIRE(run_until(ctx, [&] { return exchange.done(); }));
      BOOST_TEST(exchange.get().ec == e.ec);
      BOOST_TEST(exchange.get().answer.code == e.code);
      BOOST_TEST(exchange.get().answer.reason == e.reason);
    }
  }
}

BOOST_AUTO_TEST_CASE(the_connect_request_names_host_and_port_and_carries_the_proxy_credentials) {
  wsl::url proxy;
  BOOST_REQUIRE(!wsl::parse_proxy_url("http://me:pw@127.0.0.1:3128", proxy));
  BOOST_TEST(wsl::detail::connect_request(parsed("ws://example.com/chat"), proxy, "wsl") ==
             "CONNECT example.com:80 HTTP/1.1\r\nHost: example.com:80\r\nProxy-Authorization: Basic bWU6cHc=\r\n"
             "User-Agent: wsl\r\n\r\n");
  BOOST_REQUIRE(!wsl::parse_proxy_url("http://127.0.0.1:3128", proxy));
  // The URL's own credentials are for the server, never for the proxy.
  BOOST_TEST(wsl::detail::connect_request(parsed("wss://bob:x@[::1]/"), proxy, "") ==
             "CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n");
}

// --- over sockets ---

namespace {

struct connected {
  std::error_code ec;
  wsl::websocket ws;
  wsl::connect_report report;
};

struct accepted {
  std::error_code ec;
  wsl::websocket ws;
};

// Out of line: inlined into a test (as a lambda called in place was), GCC 12 takes Asio's frame
// deallocation for a mismatched delete (-Wmismatched-new-delete) in the sanitize build.
[[gnu::noinline]] asio::awaitable<accepted> accept_next(wsl::listener& l) {
  accepted a;
  a.ws = co_await l.accept(a.ec);
  co_return a;
}

asio::awaitable<connected> connect_to(std::string url, wsl::client_options options) {
  connected r;
  auto executor = co_await asio::this_coro::executor;
  r.ws = co_await wsl::connect(executor, url, options, r.ec, &r.report);
  co_return r;
}

// A proxy that reads one request head, keeps it, and answers with `answer` (nothing when empty).
struct stub_proxy {
  explicit stub_proxy(asio::io_context& ctx) : acceptor(ctx, {asio::ip::address_v4::loopback(), 0}) {}
  std::string url() const { return "http://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()); }
  asio::ip::tcp::acceptor acceptor;
};

struct proxy_seen {
  std::string request;
  asio::ip::tcp::socket socket;  // kept open: the client sees no hang-up
};

asio::awaitable<std::shared_ptr<proxy_seen>> answer_once(asio::ip::tcp::acceptor& acceptor, std::string answer) {
  std::error_code ec;
  auto socket = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
  auto seen = std::make_shared<proxy_seen>(proxy_seen{{}, std::move(socket)});
  if (ec) co_return seen;
  co_await asio::async_read_until(seen->socket, asio::dynamic_buffer(seen->request), "\r\n\r\n",
                                  asio::redirect_error(asio::use_awaitable, ec));
  if (!answer.empty())
    co_await asio::async_write(seen->socket, asio::buffer(answer), asio::redirect_error(asio::use_awaitable, ec));
  co_return seen;
}

}  // namespace

BOOST_AUTO_TEST_CASE(url_credentials_go_as_basic_authorization_unless_a_header_says_otherwise) {
  asio::io_context ctx;
  auto seen = std::make_shared<std::vector<std::string>>();
  wsl::listener_options lo;
  lo.hook = [seen](const wsl::http_request& req, wsl::http_response&) {
    std::string all;
    for (const auto& f : req.headers)
      if (f.name == "Authorization" || f.name == "authorization") all += (all.empty() ? "" : "|") + f.value;
    seen->push_back(all);
  };
  wsl::listener l(ctx.get_executor(), lo);
  BOOST_REQUIRE(!l.start({asio::ip::address_v4::loopback(), 0}));
  const auto port = std::to_string(l.local_endpoint().port());

  auto first = spawn(ctx, connect_to("ws://b%6Fb:s%40cret@127.0.0.1:" + port + "/", {}));
  BOOST_REQUIRE(run_until(ctx, [&] { return first.done(); }));
  BOOST_TEST(!first.get().ec, first.get().ec.message());
  wsl::client_options explicit_header;
  explicit_header.headers.add("authorization", "Bearer token");
  auto second = spawn(ctx, connect_to("ws://bob:secret@127.0.0.1:" + port + "/", explicit_header));
  BOOST_REQUIRE(run_until(ctx, [&] { return second.done(); }));
  BOOST_TEST(!second.get().ec, second.get().ec.message());
  l.stop();
  wsl::test::run_until_idle(ctx);

  BOOST_REQUIRE(seen->size() == 2u);
  BOOST_TEST((*seen)[0] == "Basic Ym9iOnNAY3JldA==");  // bob:s@cret
  BOOST_TEST((*seen)[1] == "Bearer token");            // and no second Authorization
  BOOST_TEST(second.get().report.request_head.find("authorization: Bearer token\r\n") != std::string::npos);
  BOOST_TEST(second.get().report.request_head.find("Basic") == std::string::npos);
}

namespace {

struct proxy_exchange {
  std::error_code ec;
  wsl::detail::proxy_answer answer;
};

// Out of line, as accept_next(): see there.
[[gnu::noinline]] asio::awaitable<proxy_exchange> exchange_connect_over(asio::ip::tcp::socket& s) {
  proxy_exchange o;
  const std::string request = "CONNECT h:1 HTTP/1.1\r\nHost: h:1\r\n\r\n";
  co_await wsl::detail::exchange_connect(s, request, 16 << 10, o.answer, o.ec);
  co_return o;
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_proxy_head_is_taken_from_the_socket_and_not_a_byte_more) {
  asio::io_context ctx;
  stub_proxy proxy(ctx);
  asio::ip::tcp::socket client(ctx);
  client.connect(proxy.acceptor.local_endpoint());
  asio::ip::tcp::socket server = proxy.acceptor.accept();
  // The answer and the tunnel's first bytes in one segment, as a proxy may send them.
  asio::write(server, asio::buffer(std::string_view("HTTP/1.0 200 Connection established\r\nVia: stub\r\n\r\nTUNNEL")));
  auto exchange = spawn(ctx, exchange_connect_over(client));
  BOOST_REQUIRE(run_until(ctx, [&] { return exchange.done(); }));
  BOOST_TEST(!exchange.get().ec, exchange.get().ec.message());
  BOOST_TEST(exchange.get().answer.status.status == 200);
  BOOST_TEST(exchange.get().answer.status.reason == "Connection established");
  BOOST_TEST(exchange.get().answer.headers.get("Via").value_or("") == "stub");
  // Still in the socket (a blocking read would hang the test if they were not).
  BOOST_REQUIRE(client.available() == 6u);
  std::string rest(6, '\0');
  asio::read(client, asio::buffer(rest));
  BOOST_TEST(rest == "TUNNEL");
}

BOOST_AUTO_TEST_CASE(a_proxy_head_split_across_segments_and_one_too_large_are_handled) {
  asio::io_context ctx;
  stub_proxy proxy(ctx);
  asio::ip::tcp::socket client(ctx);
  client.connect(proxy.acceptor.local_endpoint());
  asio::ip::tcp::socket server = proxy.acceptor.accept();
  struct outcome {
    std::error_code ec;
    wsl::detail::proxy_answer answer;
  };
  const auto run_exchange = [](asio::ip::tcp::socket& s, std::size_t limit) -> asio::awaitable<outcome> {
    outcome o;
    const std::string request = "CONNECT h:1 HTTP/1.1\r\n\r\n";
    co_await wsl::detail::exchange_connect(s, request, limit, o.answer, o.ec);
    co_return o;
  };
  auto exchange = spawn(ctx, run_exchange(client, 16 << 10));
  asio::write(server, asio::buffer(std::string_view("HTTP/1.1 200 OK\r\n\r")));
  wsl::test::run_until_idle(ctx);
  BOOST_TEST(!exchange.done());
  asio::write(server, asio::buffer(std::string_view("\nX")));
  BOOST_REQUIRE(run_until(ctx, [&] { return exchange.done(); }));
  BOOST_TEST(!exchange.get().ec, exchange.get().ec.message());
  BOOST_TEST(exchange.get().answer.status.status == 200);
  BOOST_REQUIRE(client.available() == 1u);
  char x = 0;
  asio::read(client, asio::buffer(&x, 1));
  BOOST_TEST(x == 'X');

  auto too_large = spawn(ctx, run_exchange(client, 256));
  asio::write(server, asio::buffer("HTTP/1.1 200 OK\r\nX-Padding: " + std::string(300, 'p') + "\r\n\r\n"));
  BOOST_REQUIRE(run_until(ctx, [&] { return too_large.done(); }));
  BOOST_TEST(too_large.get().ec == wsl::error::handshake_too_large);
}

BOOST_AUTO_TEST_CASE(interim_answers_to_connect_are_skipped_within_the_same_bounds) {
  // RFC 9110 section 15.2: a client must parse 1xx answers before the final one, even unasked.
  asio::io_context ctx;
  stub_proxy proxy(ctx);
  // Each case on a connection of its own, so that none sees another's leftovers.
  asio::ip::tcp::socket client(ctx), server(ctx);
  const auto reconnect = [&] {
    client = asio::ip::tcp::socket(ctx);
    client.connect(proxy.acceptor.local_endpoint());
    server = proxy.acceptor.accept();
  };
  struct outcome {
    std::error_code ec;
    wsl::detail::proxy_answer answer;
  };
  const auto run_exchange = [](asio::ip::tcp::socket& s, std::size_t limit) -> asio::awaitable<outcome> {
    outcome o;
    const std::string request = "CONNECT h:1 HTTP/1.1\r\n\r\n";
    co_await wsl::detail::exchange_connect(s, request, limit, o.answer, o.ec);
    co_return o;
  };
  const std::string continue_answer = "HTTP/1.1 100 Continue\r\n\r\n";

  // One interim answer alone, then the rest with the tunnel's first bytes behind it.
  reconnect();
  auto exchange = spawn(ctx, run_exchange(client, 16 << 10));
  asio::write(server, asio::buffer(continue_answer));
  wsl::test::run_until_idle(ctx);
  BOOST_TEST(!exchange.done());  // still waiting for the answer to CONNECT
  asio::write(server, asio::buffer(std::string_view("HTTP/1.1 102 Processing\r\nX-Interim: yes\r\n\r\n"
                                                    "HTTP/1.1 200 Connection established\r\nVia: stub\r\n\r\nTUNNEL")));
  BOOST_REQUIRE(run_until(ctx, [&] { return exchange.done(); }));
  BOOST_TEST(!exchange.get().ec, exchange.get().ec.message());
  BOOST_TEST(exchange.get().answer.status.status == 200);
  BOOST_TEST(exchange.get().answer.status.reason == "Connection established");
  BOOST_TEST(exchange.get().answer.headers.get("Via").value_or("") == "stub");
  BOOST_TEST(!exchange.get().answer.headers.get("X-Interim"));  // the final answer's headers only
  BOOST_REQUIRE(client.available() == 6u);
  std::string rest(6, '\0');
  asio::read(client, asio::buffer(rest));
  BOOST_TEST(rest == "TUNNEL");

  // At most max_interim_answers of them.
  std::string most;
  for (std::size_t i = 0; i < wsl::detail::max_interim_answers; ++i) most += continue_answer;
  reconnect();
  auto at_most = spawn(ctx, run_exchange(client, 16 << 10));
  asio::write(server, asio::buffer(most + "HTTP/1.1 200 OK\r\n\r\n"));
  BOOST_REQUIRE(run_until(ctx, [&] { return at_most.done(); }));
  BOOST_TEST(!at_most.get().ec, at_most.get().ec.message());
  BOOST_TEST(at_most.get().answer.status.status == 200);
  const std::string endless = most + continue_answer;
  reconnect();
  auto too_many = spawn(ctx, run_exchange(client, 16 << 10));
  asio::write(server, asio::buffer(endless + "HTTP/1.1 200 OK\r\n\r\n"));
  BOOST_REQUIRE(run_until(ctx, [&] { return too_many.done(); }));
  BOOST_TEST(too_many.get().ec == wsl::error::bad_response);

  // Each head fits the size limit, all of them together do not.
  const std::string final_answer = "HTTP/1.1 200 OK\r\n\r\n";
  reconnect();
  auto too_large = spawn(ctx, run_exchange(client, continue_answer.size() + final_answer.size() - 1));
  asio::write(server, asio::buffer(continue_answer + final_answer));
  BOOST_REQUIRE(run_until(ctx, [&] { return too_large.done(); }));
  BOOST_TEST(too_large.get().ec == wsl::error::handshake_too_large);

  // 101 is no interim answer to CONNECT: a switch of protocols is no tunnel.
  BOOST_TEST(!wsl::detail::is_interim(101));
  BOOST_TEST(wsl::detail::is_interim(100));
  BOOST_TEST(wsl::detail::is_interim(199));
  BOOST_TEST(!wsl::detail::is_interim(200));
}

BOOST_AUTO_TEST_CASE(connect_reports_the_proxy_answer_that_follows_an_interim_one) {
  asio::io_context ctx;
  stub_proxy proxy(ctx);
  wsl::client_options o;
  o.proxy = proxy.url();
  auto proxying = spawn(ctx, answer_once(proxy.acceptor,
                                         "HTTP/1.1 100 Continue\r\n\r\n"
                                         "HTTP/1.0 407 Proxy Authentication Required\r\n"
                                         "Proxy-Authenticate: Basic realm=\"x\"\r\n\r\n"));
  auto connecting = spawn(ctx, connect_to("ws://example.invalid:8080/chat", o));
  BOOST_REQUIRE(run_until(ctx, [&] { return connecting.done() && proxying.done(); }));
  const auto& r = connecting.get();
  BOOST_TEST(r.ec == wsl::error::proxy_refused);
  BOOST_TEST(r.report.proxy_status == 407);
  BOOST_TEST(r.report.proxy_version_minor == 0);
  BOOST_TEST(r.report.proxy_response_headers.get("Proxy-Authenticate").value_or("") == "Basic realm=\"x\"");
}

BOOST_AUTO_TEST_CASE(connect_goes_through_the_proxy_and_reports_its_refusal) {
  asio::io_context ctx;
  stub_proxy proxy(ctx);
  wsl::client_options o;
  o.proxy = "http://me:pw@127.0.0.1:" + std::to_string(proxy.acceptor.local_endpoint().port());
  auto proxying = spawn(ctx, answer_once(proxy.acceptor,
                                         "HTTP/1.1 407 Proxy Authentication Required\r\n"
                                         "Proxy-Authenticate: Basic realm=\"x\"\r\n\r\n"));
  auto connecting = spawn(ctx, connect_to("ws://bob:secret@example.invalid:8080/chat", o));
  BOOST_REQUIRE(run_until(ctx, [&] { return connecting.done() && proxying.done(); }));
  const auto& r = connecting.get();
  BOOST_TEST(r.ec == wsl::error::proxy_refused);
  BOOST_TEST(r.ec == wsl::condition::handshake_failed);
  BOOST_TEST(r.report.proxy == "127.0.0.1:" + std::to_string(proxy.acceptor.local_endpoint().port()));
  BOOST_TEST(r.report.proxy_status == 407);
  BOOST_TEST(r.report.proxy_reason == "Proxy Authentication Required");
  BOOST_TEST(r.report.proxy_response_headers.get("Proxy-Authenticate").value_or("") == "Basic realm=\"x\"");
  // The name is the proxy's to resolve; the server's credentials stay out of the CONNECT.
  BOOST_TEST(proxying.get()->request ==
             "CONNECT example.invalid:8080 HTTP/1.1\r\nHost: example.invalid:8080\r\n"
             "Proxy-Authorization: Basic bWU6cHc=\r\nUser-Agent: wsl\r\n\r\n");
  BOOST_TEST(r.report.request_head.empty());
}

BOOST_AUTO_TEST_CASE(a_proxy_that_never_answers_counts_against_the_connect_timeout) {
  asio::io_context ctx;
  stub_proxy proxy(ctx);
  wsl::client_options o;
  o.proxy = "http://127.0.0.1:" + std::to_string(proxy.acceptor.local_endpoint().port());
  o.connect_timeout = 5s;
  auto proxying = spawn(ctx, answer_once(proxy.acceptor, ""));
  auto connecting = spawn(ctx, connect_to("ws://127.0.0.1:1/", o));
  BOOST_REQUIRE(run_until(ctx, [&] { return proxying.done(); }));
  BOOST_TEST(!connecting.done());
  wsl::test::advance_clock(ctx, 6s);
  BOOST_REQUIRE(run_until(ctx, [&] { return connecting.done(); }));
  BOOST_TEST(connecting.get().ec == asio::error::timed_out);
  BOOST_TEST(connecting.get().report.proxy_status == 0);
  BOOST_TEST(!connecting.get().report.proxy_request_head.empty());
}

BOOST_AUTO_TEST_CASE(a_websocket_opens_through_a_tunnel) {
  asio::io_context ctx;
  wsl::listener l(ctx.get_executor());
  BOOST_REQUIRE(!l.start({asio::ip::address_v4::loopback(), 0}));
  const auto target = l.local_endpoint();
  stub_proxy proxy(ctx);
  // A proxy that relays one connection both ways after answering CONNECT.
  auto relay = [](asio::ip::tcp::socket& from, asio::ip::tcp::socket& to) -> asio::awaitable<void> {
    char data[4096];
    for (;;) {
      std::error_code ec;
      const auto n = co_await from.async_read_some(asio::buffer(data), asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
      co_await asio::async_write(to, asio::buffer(data, n), asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
    }
    std::error_code ignored;
    to.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  };
  auto upstream = std::make_shared<asio::ip::tcp::socket>(ctx);
  auto proxying = spawn(ctx, answer_once(proxy.acceptor, ""));
  wsl::client_options o;
  o.proxy = "http://127.0.0.1:" + std::to_string(proxy.acceptor.local_endpoint().port());
  auto connecting = spawn(ctx, connect_to("ws://127.0.0.1:" + std::to_string(target.port()) + "/tunnelled", o));
  BOOST_REQUIRE(run_until(ctx, [&] { return proxying.done(); }));
  auto seen = proxying.get();
  BOOST_TEST(seen->request.starts_with("CONNECT 127.0.0.1:" + std::to_string(target.port()) + " HTTP/1.1\r\n"));
  upstream->connect(target);
  asio::write(seen->socket, asio::buffer(std::string_view("HTTP/1.1 200 Connection established\r\n\r\n")));
  auto down = spawn(ctx, relay(seen->socket, *upstream));
  auto up = spawn(ctx, relay(*upstream, seen->socket));
  auto accepting = spawn(ctx, accept_next(l));
  BOOST_REQUIRE(run_until(ctx, [&] { return connecting.done() && accepting.done(); }));
  BOOST_TEST(!connecting.get().ec, connecting.get().ec.message());
  BOOST_TEST(!accepting.get().ec, accepting.get().ec.message());
  BOOST_TEST(connecting.get().report.proxy_status == 200);
  BOOST_TEST(accepting.get().ws.request().target == "/tunnelled");
  connecting.get().ws.abort();
  accepting.get().ws.abort();
  l.stop();
  std::error_code ignored;
  upstream->close(ignored);
  seen->socket.close(ignored);
  wsl::test::run_until_idle(ctx);
}

// --- client_handshake(): over a stream the caller opened ---

namespace {

asio::awaitable<connected> upgrade_over(std::unique_ptr<wsl::transport> stream, std::string url,
                                        wsl::client_options options) {
  connected r;
  r.ws = co_await wsl::client_handshake(std::move(stream), url, options, r.ec, &r.report);
  co_return r;
}

// The value of a request header, as the test reads it apart from the library's parser.
std::string request_header(std::string_view head, std::string_view name) {
  const auto at = head.find("\r\n" + std::string(name) + ": ");
  if (at == std::string_view::npos) return {};
  const auto start = at + 4 + name.size();
  return std::string(head.substr(start, head.find("\r\n", start) - start));
}

std::string switching_protocols(std::string_view accept) {
  const std::string head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
  return head + "Sec-WebSocket-Accept: " + std::string(accept) + "\r\n\r\n";
}

wsl::client_options quiet_client() {
  wsl::client_options o;
  o.connection = wsl::test::quiet_options();
  return o;
}

// Forwards everything to the stream it holds; says it is TLS when told to.
class marked_transport final : public wsl::transport {
 public:
  marked_transport(std::unique_ptr<wsl::transport> inner, bool secure) : inner_(std::move(inner)), secure_(secure) {}
  asio::any_io_executor get_executor() override { return inner_->get_executor(); }
  asio::awaitable<std::size_t> read_some(asio::mutable_buffer buffer, std::error_code& ec) override {
    return inner_->read_some(buffer, ec);
  }
  asio::awaitable<void> write(std::span<const asio::const_buffer> buffers, std::error_code& ec) override {
    return inner_->write(buffers, ec);
  }
  void shutdown_send() noexcept override { inner_->shutdown_send(); }
  void close() noexcept override { inner_->close(); }
  bool is_open() const noexcept override { return inner_->is_open(); }
  asio::ip::tcp::endpoint remote_endpoint() const noexcept override { return inner_->remote_endpoint(); }
  asio::ip::tcp::endpoint local_endpoint() const noexcept override { return inner_->local_endpoint(); }
  bool is_secure() const noexcept override { return secure_; }

 private:
  std::unique_ptr<wsl::transport> inner_;
  bool secure_;
};

// A connection extension that notes what it wrapped and marks it secure, as TLS would.
struct wraps_seen {
  int count = 0;
  std::string host;
};

class noting_extension final : public wsl::connection_extension {
 public:
  explicit noting_extension(std::shared_ptr<wraps_seen> seen) : seen_(std::move(seen)) {}
  std::unique_ptr<wsl::transport> wrap(std::unique_ptr<wsl::transport> stream, wsl::role, std::string_view host,
                                       std::error_code& ec) const override {
    ec = {};
    ++seen_->count;
    seen_->host = host;
    return std::make_unique<marked_transport>(std::move(stream), true);
  }
  std::string_view scheme() const noexcept override { return "wss"; }

 private:
  std::shared_ptr<wraps_seen> seen_;
};

}  // namespace

BOOST_AUTO_TEST_CASE(client_handshake_upgrades_a_given_stream_which_then_carries_masked_frames) {
  asio::io_context ctx;
  auto [stream, peer] = wsl::test::make_memory_pipe(ctx);
  const auto remote = stream->remote_endpoint();
  auto connecting =
      spawn(ctx, upgrade_over(std::move(stream), "ws://bob:pw@example.test:8080/chat?room=1", quiet_client()));
  wsl::test::run_until_idle(ctx);
  BOOST_TEST(!connecting.done());

  // The URL gives the request line, Host and the credentials; nothing was resolved or connected.
  const auto request = peer->take();
  BOOST_TEST(request.starts_with("GET /chat?room=1 HTTP/1.1\r\n"));
  BOOST_TEST(request.ends_with("\r\n\r\n"));
  BOOST_TEST(request_header(request, "Host") == "example.test:8080");
  BOOST_TEST(request_header(request, "Authorization") == "Basic Ym9iOnB3");  // bob:pw
  const auto key = request_header(request, "Sec-WebSocket-Key");
  BOOST_REQUIRE(key.size() == 24u);

  // The answer and the server's first frame in one write: the frame behind the head is the websocket's.
  peer->inject(switching_protocols(wsl::websocket_accept_key(key)) +
               wsl::test::unmasked_frame(wsl::test::op::text, "hello"));
  wsl::test::run_until_idle(ctx);
  BOOST_REQUIRE(connecting.done());
  auto& r = connecting.get();
  BOOST_TEST_REQUIRE(!r.ec, r.ec.message());
  BOOST_TEST(r.report.status == 101);
  BOOST_TEST(r.report.request_head == request);
  BOOST_TEST(r.report.remote == remote);
  BOOST_TEST(r.report.resolve_time.count() == 0);
  BOOST_TEST(r.report.connect_time.count() == 0);

  auto reading = spawn(ctx, wsl::test::read_whole_message(r.ws));
  auto writing = spawn(ctx, wsl::test::write_whole_message(r.ws, wsl::message_type::text, "hi back"));
  wsl::test::run_until_idle(ctx);
  BOOST_REQUIRE(reading.done());
  BOOST_TEST(!reading.get().ec, reading.get().ec.message());
  BOOST_TEST(reading.get().data == "hello");
  BOOST_REQUIRE(writing.done());
  BOOST_TEST(!writing.get(), writing.get().message());
  const auto frames = wsl::test::parse_frames(peer->take());
  BOOST_REQUIRE(frames.size() == 1u);
  BOOST_TEST(frames[0].masked);
  BOOST_TEST(frames[0].fin);
  BOOST_TEST(frames[0].opcode == wsl::test::op::text);
  BOOST_TEST(frames[0].payload == "hi back");
  r.ws.abort();
  wsl::test::run_until_idle(ctx);
}

namespace {

// client_handshake() over a memory pipe whose other end answers the request with answer(key).
struct answered {
  connected c;
  bool stream_closed = false;  // by the client
  std::string after_request;   // what the client sent after its request
};

answered handshake_answered_with(const std::function<std::string(const std::string& key)>& answer,
                                 wsl::client_options options = quiet_client()) {
  asio::io_context ctx;
  auto [stream, peer] = wsl::test::make_memory_pipe(ctx);
  auto connecting = spawn(ctx, upgrade_over(std::move(stream), "ws://example.test/", std::move(options)));
  wsl::test::run_until_idle(ctx);
  const auto key = request_header(peer->take(), "Sec-WebSocket-Key");
  BOOST_REQUIRE(!key.empty());
  peer->inject(answer(key));
  wsl::test::run_until_idle(ctx);
  BOOST_REQUIRE(connecting.done());
  answered a{std::move(connecting.get()), peer->other_end_closed(), peer->take()};
  a.c.ws.abort();
  wsl::test::run_until_idle(ctx);
  return a;
}

}  // namespace

BOOST_AUTO_TEST_CASE(client_handshake_refuses_a_wrong_accept_key_and_closes_the_stream) {
  const auto a = handshake_answered_with([](const std::string& key) {
    // The accept value of another key (RFC 6455's sample one).
    const auto wrong = wsl::websocket_accept_key("dGhlIHNhbXBsZSBub25jZQ==");
    BOOST_REQUIRE(wrong != wsl::websocket_accept_key(key));
    return switching_protocols(wrong);
  });
  BOOST_TEST(a.c.ec == wsl::error::bad_accept);
  BOOST_TEST(a.c.report.status == 101);
  BOOST_TEST(a.stream_closed);
  BOOST_TEST(a.after_request.empty());
}

BOOST_AUTO_TEST_CASE(client_handshake_is_bounded_by_the_handshake_timeout_only) {
  asio::io_context ctx;
  auto [stream, peer] = wsl::test::make_memory_pipe(ctx);
  auto o = quiet_client();
  o.connect_timeout = 1s;  // nothing to connect: it does not apply
  o.handshake_timeout = 5s;
  auto connecting = spawn(ctx, upgrade_over(std::move(stream), "ws://example.test/", o));
  wsl::test::run_until_idle(ctx);
  BOOST_TEST(!peer->take().empty());
  wsl::test::advance_clock(ctx, 2s);
  BOOST_TEST(!connecting.done());
  peer->inject("HTTP/1.1 101 Switching Protocols\r\n");  // and no more
  wsl::test::advance_clock(ctx, 2s);
  BOOST_TEST(!connecting.done());
  wsl::test::advance_clock(ctx, 2s);
  BOOST_REQUIRE(connecting.done());
  BOOST_TEST(connecting.get().ec == wsl::error::handshake_timeout);
  BOOST_TEST(peer->other_end_closed());
}

BOOST_AUTO_TEST_CASE(client_handshake_over_a_socket_the_caller_connected) {
  asio::io_context ctx;
  auto hosts = std::make_shared<std::vector<std::string>>();
  wsl::listener_options lo;
  lo.hook = [hosts](const wsl::http_request& req, wsl::http_response&) {
    hosts->push_back(std::string(req.headers.get("Host").value_or("")));
  };
  wsl::listener l(ctx.get_executor(), lo);
  BOOST_REQUIRE(!l.start({asio::ip::address_v4::loopback(), 0}));
  // The test connects; the URL's host (which does not resolve: .test) is only the Host header.
  asio::ip::tcp::socket socket(ctx);
  socket.connect(l.local_endpoint());
  auto stream = wsl::make_tcp_transport(std::move(socket));
  auto connecting = spawn(ctx, upgrade_over(std::move(stream), "ws://example.test/over-tcp", quiet_client()));
  auto accepting = spawn(ctx, accept_next(l));
  BOOST_REQUIRE(run_until(ctx, [&] { return connecting.done() && accepting.done(); }));
  auto& client = connecting.get();
  auto& server = accepting.get();
  BOOST_TEST_REQUIRE(!client.ec, client.ec.message());
  BOOST_TEST_REQUIRE(!server.ec, server.ec.message());
  BOOST_TEST(client.report.remote == l.local_endpoint());
  BOOST_TEST(server.ws.request().target == "/over-tcp");
  BOOST_REQUIRE(hosts->size() == 1u);
  BOOST_TEST(hosts->front() == "example.test");

  // Both ways over the socket.
  auto server_reading = spawn(ctx, wsl::test::read_whole_message(server.ws));
  auto client_writing = spawn(ctx, wsl::test::write_whole_message(client.ws, wsl::message_type::text, "up"));
  BOOST_REQUIRE(run_until(ctx, [&] { return server_reading.done() && client_writing.done(); }));
  BOOST_TEST(server_reading.get().data == "up");
  auto client_reading = spawn(ctx, wsl::test::read_whole_message(client.ws));
  auto server_writing = spawn(ctx, wsl::test::write_whole_message(server.ws, wsl::message_type::binary, "down"));
  BOOST_REQUIRE(run_until(ctx, [&] { return client_reading.done() && server_writing.done(); }));
  BOOST_TEST(client_reading.get().data == "down");
  client.ws.abort();
  server.ws.abort();
  l.stop();
  wsl::test::run_until_idle(ctx);
}

BOOST_AUTO_TEST_CASE(client_handshake_refuses_a_proxy_and_a_stream_that_is_not_open) {
  asio::io_context ctx;
  auto proxied = quiet_client();
  proxied.proxy = "http://127.0.0.1:3128";
  {
    auto [stream, peer] = wsl::test::make_memory_pipe(ctx);
    auto connecting = spawn(ctx, upgrade_over(std::move(stream), "ws://example.test/", proxied));
    wsl::test::run_until_idle(ctx);
    BOOST_REQUIRE(connecting.done());
    BOOST_TEST(connecting.get().ec == wsl::error::invalid_option);
    BOOST_TEST(peer->take().empty());  // neither a CONNECT nor an upgrade request went
    BOOST_TEST(peer->other_end_closed());
  }
  {
    auto [stream, peer] = wsl::test::make_memory_pipe(ctx);
    auto throwing = spawn(ctx, wsl::client_handshake(std::move(stream), "ws://example.test/", proxied));
    wsl::test::run_until_idle(ctx);
    BOOST_REQUIRE(throwing.done());
    BOOST_CHECK_EXCEPTION(throwing.get(), std::system_error,
                          [](const std::system_error& e) { return e.code() == wsl::error::invalid_option; });
  }
  auto none = spawn(ctx, upgrade_over(nullptr, "ws://example.test/", quiet_client()));
  auto [stream, peer] = wsl::test::make_memory_pipe(ctx);
  stream->close();
  auto closed = spawn(ctx, upgrade_over(std::move(stream), "ws://example.test/", quiet_client()));
  wsl::test::run_until_idle(ctx);
  BOOST_REQUIRE(none.done() && closed.done());
  BOOST_TEST(none.get().ec == wsl::error::not_open);
  BOOST_TEST(closed.get().ec == wsl::error::not_open);
}

BOOST_AUTO_TEST_CASE(client_handshake_wraps_for_wss_unless_the_stream_is_tls_already_and_never_for_ws) {
  asio::io_context ctx;
  auto seen = std::make_shared<wraps_seen>();
  auto o = quiet_client();
  o.transport_extension = std::make_shared<noting_extension>(seen);
  // Runs one upgrade to its 101 and says whether it succeeded over a stream that says it is TLS.
  const auto upgrade_with = [&](std::unique_ptr<wsl::transport> stream, wsl::test::memory_stream& peer,
                                const std::string& url) {
    auto connecting = spawn(ctx, upgrade_over(std::move(stream), url, o));
    wsl::test::run_until_idle(ctx);
    const auto request = peer.take();
    peer.inject(switching_protocols(wsl::websocket_accept_key(request_header(request, "Sec-WebSocket-Key"))));
    wsl::test::run_until_idle(ctx);
    BOOST_REQUIRE(connecting.done());
    BOOST_TEST(!connecting.get().ec, connecting.get().ec.message());
    BOOST_TEST(request_header(request, "Host") == "example.test:8443");
    connecting.get().ws.abort();
    wsl::test::run_until_idle(ctx);
  };

  // wss:// over a plain stream: the extension wraps it, for the URL's host.
  auto plain = wsl::test::make_memory_pipe(ctx);
  upgrade_with(std::move(plain.stream), *plain.peer, "wss://example.test:8443/");
  BOOST_TEST(seen->count == 1);
  BOOST_TEST(seen->host == "example.test");
  // ws://: the stream as it is, whatever extension the options hold.
  auto unsecured = wsl::test::make_memory_pipe(ctx);
  upgrade_with(std::move(unsecured.stream), *unsecured.peer, "ws://example.test:8443/");
  BOOST_TEST(seen->count == 1);
  // wss:// over a stream that is TLS already: no TLS in TLS.
  auto secured = wsl::test::make_memory_pipe(ctx);
  upgrade_with(std::make_unique<marked_transport>(std::move(secured.stream), true), *secured.peer,
               "wss://example.test:8443/");
  BOOST_TEST(seen->count == 1);

  // wsl's own TLS wraps a TCP socket: over a memory pipe it cannot.
  auto no_socket = wsl::test::make_memory_pipe(ctx);
  auto tls = spawn(ctx, upgrade_over(std::move(no_socket.stream), "wss://example.test/", quiet_client()));
  wsl::test::run_until_idle(ctx);
  BOOST_REQUIRE(tls.done());
  BOOST_TEST(tls.get().ec == wsl::error::invalid_option);
  BOOST_TEST(no_socket.peer->take().empty());
}

// --- cancellation ---

namespace {

// A connect() and what the caller's coroutine finds after it: whether its co_awaits throw on
// cancellation again (asio's default).
struct connected_then {
  connected c;
  bool throwing_after = false;
};

asio::awaitable<connected_then> connect_then_look(std::string url, wsl::client_options options) {
  connected_then r;
  auto executor = co_await asio::this_coro::executor;
  r.c.ws = co_await wsl::connect(executor, url, options, r.c.ec, &r.c.report);
  r.throwing_after = co_await asio::this_coro::throw_if_cancelled();
  co_return r;
}

// Accepts one connection and reads what comes first (a TLS ClientHello), answering nothing.
struct silent_peer {
  asio::ip::tcp::socket socket;
  std::string first_bytes;
};

[[gnu::noinline]] asio::awaitable<std::shared_ptr<silent_peer>> accept_and_listen(asio::ip::tcp::acceptor& acceptor) {
  std::error_code ec;
  auto socket = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
  auto peer = std::make_shared<silent_peer>(silent_peer{std::move(socket), std::string(4096, '\0')});
  const auto n = co_await peer->socket.async_read_some(asio::buffer(peer->first_bytes),
                                                       asio::redirect_error(asio::use_awaitable, ec));
  peer->first_bytes.resize(ec ? 0 : n);
  co_return peer;
}

// Reads until the other end closes: its error (eof when it did).
asio::awaitable<std::error_code> read_to_end(asio::ip::tcp::socket& socket) {
  std::error_code ec;
  char sink[4096];
  while (!ec) co_await socket.async_read_some(asio::buffer(sink), asio::redirect_error(asio::use_awaitable, ec));
  co_return ec;
}

// A connect() against a timer of 1 s with awaitable operators: which won (0 or 1), and the
// connect's error.
struct raced {
  std::size_t winner = 9;
  std::error_code ec;
};

[[gnu::noinline]] asio::awaitable<raced> connect_or_time_out(std::string url) {
  using namespace asio::experimental::awaitable_operators;
  raced r;
  auto executor = co_await asio::this_coro::executor;
  wsl::timer patience(executor, 1s);
  const auto options = quiet_client();
  auto connecting = wsl::connect(executor, url, options, r.ec);
  auto waiting = patience.async_wait(asio::use_awaitable);
  const auto first = co_await (std::move(connecting) || std::move(waiting));
  r.winner = first.index();
  co_return r;
}

std::string ws_url(const asio::ip::tcp::acceptor& a, std::string_view scheme = "ws") {
  return std::string(scheme) + "://127.0.0.1:" + std::to_string(a.local_endpoint().port()) + "/";
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_connect_cancelled_while_the_server_is_silent_ends_aborted_and_closes_its_socket) {
  asio::io_context ctx;
  stub_proxy server(ctx);  // reads the request head and never answers
  auto serving = spawn(ctx, answer_once(server.acceptor, ""));
  asio::cancellation_signal cancel;
  auto connecting = spawn(ctx, connect_then_look(ws_url(server.acceptor), quiet_client()), cancel.slot());
  BOOST_REQUIRE(run_until(ctx, [&] { return serving.done(); }));
  wsl::test::run_until_idle(ctx);
  BOOST_REQUIRE(!connecting.done());
  cancel.emit(asio::cancellation_type::terminal);
  BOOST_REQUIRE(run_until(ctx, [&] { return connecting.done(); }));
  auto& r = connecting.get();  // rethrows what it threw: nothing may be
  BOOST_TEST(r.c.ec == asio::error::operation_aborted);
  BOOST_TEST(!r.c.ws.is_open());
  BOOST_TEST(r.c.report.request_head.starts_with("GET / HTTP/1.1\r\n"));
  BOOST_TEST(r.c.report.status == 0);
  BOOST_TEST(r.throwing_after);  // the caller's setting is back
  auto closed = spawn(ctx, read_to_end(serving.get()->socket));
  BOOST_REQUIRE(run_until(ctx, [&] { return closed.done(); }));
  BOOST_TEST(closed.get() == asio::error::eof);
}

BOOST_AUTO_TEST_CASE(a_connect_cancelled_during_tls_or_before_the_proxy_answers_ends_aborted) {
  asio::io_context ctx;
  // wss:// to a server that takes the ClientHello and says nothing: not a TLS failure, a cancel.
  asio::ip::tcp::acceptor tls_server(ctx, {asio::ip::address_v4::loopback(), 0});
  auto hello = spawn(ctx, accept_and_listen(tls_server));
  asio::cancellation_signal cancel_tls;
  auto tls = spawn(ctx, connect_then_look(ws_url(tls_server, "wss"), quiet_client()), cancel_tls.slot());
  BOOST_REQUIRE(run_until(ctx, [&] { return hello.done(); }));
  BOOST_TEST(hello.get()->first_bytes.size() > 5u);
  BOOST_TEST(hello.get()->first_bytes[0] == '\x16');  // a TLS handshake record
  wsl::test::run_until_idle(ctx);
  BOOST_REQUIRE(!tls.done());
  cancel_tls.emit(asio::cancellation_type::terminal);
  BOOST_REQUIRE(run_until(ctx, [&] { return tls.done(); }));
  BOOST_TEST(tls.get().c.ec == asio::error::operation_aborted, tls.get().c.ec.message());
  BOOST_TEST(tls.get().c.report.request_head.empty());
  auto tls_closed = spawn(ctx, read_to_end(hello.get()->socket));
  BOOST_REQUIRE(run_until(ctx, [&] { return tls_closed.done(); }));
  BOOST_TEST(tls_closed.get() == asio::error::eof);

  // Through a proxy that never answers CONNECT.
  stub_proxy proxy(ctx);
  auto proxying = spawn(ctx, answer_once(proxy.acceptor, ""));
  auto o = quiet_client();
  o.proxy = proxy.url();
  asio::cancellation_signal cancel_proxied;
  auto proxied = spawn(ctx, connect_then_look("ws://127.0.0.1:1/", o), cancel_proxied.slot());
  BOOST_REQUIRE(run_until(ctx, [&] { return proxying.done(); }));
  wsl::test::run_until_idle(ctx);
  BOOST_REQUIRE(!proxied.done());
  cancel_proxied.emit(asio::cancellation_type::terminal);
  BOOST_REQUIRE(run_until(ctx, [&] { return proxied.done(); }));
  BOOST_TEST(proxied.get().c.ec == asio::error::operation_aborted, proxied.get().c.ec.message());
  BOOST_TEST(proxied.get().c.report.proxy_status == 0);
  BOOST_TEST(proxied.get().c.report.request_head.empty());
}

BOOST_AUTO_TEST_CASE(a_cancellation_no_operation_saw_ends_the_handshake_at_its_next_step) {
  // The memory stream's read waits again when woken without data, so the cancellation does not
  // end it: as for a socket read whose data came just before the cancellation, the read goes on
  // and the next step must see it. A 101 follows, which must not open the websocket.
  asio::io_context ctx;
  auto [stream, peer] = wsl::test::make_memory_pipe(ctx);
  asio::cancellation_signal cancel;
  auto connecting = spawn(ctx, upgrade_over(std::move(stream), "ws://example.test/", quiet_client()), cancel.slot());
  wsl::test::run_until_idle(ctx);
  const auto request = peer->take();
  BOOST_REQUIRE(!request.empty());
  cancel.emit(asio::cancellation_type::terminal);
  wsl::test::run_until_idle(ctx);
  BOOST_REQUIRE(!connecting.done());
  peer->inject(switching_protocols(wsl::websocket_accept_key(request_header(request, "Sec-WebSocket-Key"))));
  wsl::test::run_until_idle(ctx);
  BOOST_REQUIRE(connecting.done());
  BOOST_TEST(connecting.get().ec == asio::error::operation_aborted);
  BOOST_TEST(!connecting.get().ws.is_open());
  BOOST_TEST(peer->other_end_closed());
}

BOOST_AUTO_TEST_CASE(connect_loses_a_race_of_awaitable_operators_cleanly) {
  asio::io_context ctx;
  stub_proxy server(ctx);
  auto serving = spawn(ctx, answer_once(server.acceptor, ""));
  auto racing = spawn(ctx, connect_or_time_out(ws_url(server.acceptor)));
  BOOST_REQUIRE(run_until(ctx, [&] { return serving.done(); }));
  wsl::test::run_until_idle(ctx);
  BOOST_REQUIRE(!racing.done());
  wsl::test::advance_clock(ctx, 2s);
  BOOST_REQUIRE(run_until(ctx, [&] { return racing.done(); }));
  BOOST_TEST(racing.get().winner == 1u);  // the timer's
  BOOST_TEST(racing.get().ec == asio::error::operation_aborted);
  auto closed = spawn(ctx, read_to_end(serving.get()->socket));
  BOOST_REQUIRE(run_until(ctx, [&] { return closed.done(); }));
  BOOST_TEST(closed.get() == asio::error::eof);
}

// --- redirects ---

BOOST_AUTO_TEST_CASE(a_location_resolves_against_the_url_that_drew_it) {
  const auto base = parsed("ws://bob:pw@h:81/a/b/c?q");
  struct example {
    std::string_view reference, expected;  // expected as to_string() shows it
  };
  const example examples[] = {
      {"d", "ws://bob:***@h:81/a/b/d"},
      {"../d?x", "ws://bob:***@h:81/a/d?x"},
      {"../../../../d", "ws://bob:***@h:81/d"},
      {"/x/./y/../z", "ws://bob:***@h:81/x/z"},
      {"g;x=1/../y", "ws://bob:***@h:81/a/b/y"},
      {"./", "ws://bob:***@h:81/a/b/"},
      {".", "ws://bob:***@h:81/a/b/"},
      {"..", "ws://bob:***@h:81/a/"},
      {"?n=1", "ws://bob:***@h:81/a/b/c?n=1"},
      {"", "ws://bob:***@h:81/a/b/c?q"},
      {"#frag", "ws://bob:***@h:81/a/b/c?q"},
      {"d#frag", "ws://bob:***@h:81/a/b/d"},
      {"//other:82/p?r", "ws://other:82/p?r"},
      {"//carol:c@other/", "ws://carol:***@other/"},
      {"https://other/p", "wss://other/p"},
      {"WSS://Other:444", "wss://Other:444/"},
      {"http://[::1]:8080/x", "ws://[::1]:8080/x"},
      {"a b", "ws://bob:***@h:81/a/b/a%20b"},  // percent-encoded, as browsers do
      {"/caf\xc3\xa9?q=\xc3\xa9", "ws://bob:***@h:81/caf%C3%A9?q=%C3%A9"},
      {"https://other/\xc3\xa9", "wss://other/%C3%A9"},
  };
  for (const auto& e : examples) {
    BOOST_TEST_CONTEXT("reference '" << e.reference << "'") {
      wsl::url out;
      const auto ec = wsl::resolve_url(base, e.reference, out);
      BOOST_TEST(!ec, ec.message());
      BOOST_TEST(out.to_string() == e.expected);
    }
  }
  // Credentials come with the base only when the host does.
  wsl::url out;
  BOOST_REQUIRE(!wsl::resolve_url(base, "/p", out));
  BOOST_TEST((out.has_credentials && out.user == "bob" && out.password == "pw"));
  BOOST_REQUIRE(!wsl::resolve_url(base, "//other/p", out));
  BOOST_TEST(!out.has_credentials);
  // A network-path reference keeps the base's scheme.
  BOOST_REQUIRE(!wsl::resolve_url(parsed("wss://h/"), "//other/p", out));
  BOOST_TEST(out.to_string() == "wss://other/p");

  for (const std::string_view bad :
       {"ftp://h/", "mailto:x@h", "/x\ty", "/x\x7fy", "ws://", "ws://h:0/", "javascript:alert(1)"}) {
    BOOST_TEST_CONTEXT("reference '" << bad << "'") {
      BOOST_TEST(wsl::resolve_url(base, bad, out) == wsl::error::bad_url);
    }
  }
  BOOST_TEST(wsl::resolve_url(base, "ws://a%zz@h/", out) == wsl::error::bad_userinfo);
}

namespace {

// What a listener's hook saw of each request: its target, Authorization, Cookie and X-Other.
struct request_seen {
  std::string target, authorization, cookie, other;
};

// A listener on 127.0.0.1 whose hook answers the targets of `redirects` with the status and
// Location given, and upgrades the others; `seen` has every request.
struct redirecting_server {
  struct rule {
    std::string target;
    int status;
    std::string location;
  };
  redirecting_server(asio::io_context& ctx, std::vector<rule> redirects)
      : ctx_(ctx),
        seen(std::make_shared<std::vector<request_seen>>()),
        rules(std::make_shared<std::vector<rule>>(std::move(redirects))),
        l(ctx.get_executor(), options(seen, rules)) {
    BOOST_REQUIRE(!l.start({asio::ip::address_v4::loopback(), 0}));
  }
  ~redirecting_server() {
    l.stop();
    wsl::test::run_until_idle(ctx_);
  }
  redirecting_server(const redirecting_server&) = delete;
  redirecting_server& operator=(const redirecting_server&) = delete;
  std::string url(std::string_view userinfo, std::string_view target) const {
    return "ws://" + std::string(userinfo) + "127.0.0.1:" + std::to_string(l.local_endpoint().port()) +
           std::string(target);
  }
  static wsl::listener_options options(std::shared_ptr<std::vector<request_seen>> seen,
                                       std::shared_ptr<std::vector<rule>> rules) {
    wsl::listener_options lo;
    lo.hook = [seen, rules](const wsl::http_request& req, wsl::http_response& res) {
      const auto value = [&](std::string_view name) { return std::string(req.headers.get(name).value_or("")); };
      seen->push_back({req.target, value("Authorization"), value("Cookie"), value("X-Other")});
      for (const auto& r : *rules)
        if (r.target == req.target) {
          res.reject(r.status, "moved");
          res.headers.add("Location", r.location);
        }
    };
    return lo;
  }
  asio::io_context& ctx_;
  std::shared_ptr<std::vector<request_seen>> seen;
  std::shared_ptr<std::vector<rule>> rules;
  wsl::listener l;
};

// connect() to `url`, run to its end.
connected connect_now(asio::io_context& ctx, std::string url, wsl::client_options options) {
  auto c = spawn(ctx, connect_to(std::move(url), std::move(options)));
  BOOST_REQUIRE(run_until(ctx, [&] { return c.done(); }));
  return std::move(c.get());
}

wsl::client_options following(unsigned max_redirects) {
  auto o = quiet_client();
  o.max_redirects = max_redirects;
  o.cookies = {{"session", "s3"}};
  o.headers.add("X-Other", "kept");
  return o;
}

}  // namespace

BOOST_AUTO_TEST_CASE(connect_follows_redirects_on_the_origin_with_the_credentials_and_reports_them) {
  asio::io_context ctx;
  redirecting_server server(ctx, {{"/old", 302, "next?x=1"}, {"/next?x=1", 308, "/new"}});
  auto c = connect_now(ctx, server.url("bob:pw@", "/old"), following(2));
  BOOST_TEST_REQUIRE(!c.ec, c.ec.message());
  BOOST_TEST(c.ws.is_open());
  BOOST_TEST(c.report.status == 101);
  BOOST_TEST(c.report.final_url == server.url("bob:***@", "/new"));
  BOOST_REQUIRE(c.report.redirects.size() == 2u);
  BOOST_TEST(c.report.redirects[0].status == 302);
  BOOST_TEST(c.report.redirects[0].location == server.url("bob:***@", "/next?x=1"));
  BOOST_TEST(c.report.redirects[0].request_head.starts_with("GET /old HTTP/1.1\r\n"));
  BOOST_TEST(*c.report.redirects[0].response_headers.get("Location") == "next?x=1");
  BOOST_TEST(c.report.redirects[1].status == 308);
  BOOST_TEST(c.report.redirects[1].location == server.url("bob:***@", "/new"));
  BOOST_TEST(c.report.request_head.starts_with("GET /new HTTP/1.1\r\n"));
  BOOST_REQUIRE(server.seen->size() == 3u);
  for (const auto& s : *server.seen) {
    BOOST_TEST(s.authorization == "Basic Ym9iOnB3");
    BOOST_TEST(s.cookie == "session=s3");
    BOOST_TEST(s.other == "kept");
  }
  BOOST_TEST((*server.seen)[2].target == "/new");
  c.ws.abort();
}

BOOST_AUTO_TEST_CASE(without_max_redirects_a_redirect_is_a_refusal_with_its_body) {
  asio::io_context ctx;
  redirecting_server server(ctx, {{"/old", 301, "/new"}});
  auto c = connect_now(ctx, server.url("", "/old"), following(0));
  BOOST_TEST(c.ec == wsl::error::bad_status);
  BOOST_TEST(c.report.status == 301);
  BOOST_TEST(c.report.body == "moved");
  BOOST_TEST(c.report.redirects.empty());
  BOOST_TEST(server.seen->size() == 1u);
}

BOOST_AUTO_TEST_CASE(a_redirect_loop_ends_at_max_redirects) {
  asio::io_context ctx;
  redirecting_server server(ctx, {{"/loop", 307, "/loop"}});
  auto c = connect_now(ctx, server.url("", "/loop"), following(3));
  BOOST_TEST(c.ec == wsl::error::too_many_redirects);
  BOOST_TEST(c.ec == wsl::condition::handshake_failed);
  BOOST_TEST(c.report.status == 307);
  BOOST_TEST(c.report.redirects.size() == 3u);
  BOOST_TEST(server.seen->size() == 4u);
}

BOOST_AUTO_TEST_CASE(credentials_and_cookies_stay_on_their_origin) {
  asio::io_context ctx;
  redirecting_server there(ctx, {{"/back", 302, "PLACEHOLDER"}});
  redirecting_server here(ctx, {{"/away", 302, there.url("", "/back")}});
  (*there.rules)[0].location = here.url("", "/home");  // and back to the first origin
  auto o = following(5);
  o.headers.add("authorization", "Bearer tok");  // one of the user's: it stays behind too
  auto c = connect_now(ctx, here.url("", "/away"), o);
  BOOST_TEST_REQUIRE(!c.ec, c.ec.message());
  BOOST_TEST(c.report.redirects.size() == 2u);
  BOOST_REQUIRE(here.seen->size() == 2u);
  BOOST_REQUIRE(there.seen->size() == 1u);
  BOOST_TEST((*here.seen)[0].authorization == "Bearer tok");
  BOOST_TEST((*here.seen)[0].cookie == "session=s3");
  BOOST_TEST((*there.seen)[0].authorization == "");
  BOOST_TEST((*there.seen)[0].cookie == "");
  BOOST_TEST((*there.seen)[0].other == "kept");
  // Once they have left, they are not sent again, even on the way back.
  BOOST_TEST((*here.seen)[1].target == "/home");
  BOOST_TEST((*here.seen)[1].authorization == "");
  BOOST_TEST((*here.seen)[1].cookie == "");
  c.ws.abort();
}

// (From wss:// to ws://: integration.client.redirect, with TLS.)
BOOST_AUTO_TEST_CASE(a_redirect_to_no_websocket_url_is_refused) {
  asio::io_context ctx;
  redirecting_server server(ctx, {{"/ftp", 302, "ftp://127.0.0.1/"}});
  auto c = connect_now(ctx, server.url("", "/ftp"), following(3));
  BOOST_TEST(c.ec == wsl::error::bad_redirect);
  BOOST_TEST(c.report.status == 302);
  BOOST_TEST(*c.report.response_headers.get("Location") == "ftp://127.0.0.1/");
}

BOOST_AUTO_TEST_CASE(client_handshake_never_follows_a_redirect) {
  const auto a = handshake_answered_with(
      [](const std::string&) { return "HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n"; },
      following(3));
  BOOST_TEST(a.c.ec == wsl::error::bad_status);
  BOOST_TEST(a.c.report.status == 302);
  BOOST_TEST(a.c.report.redirects.empty());
}

BOOST_AUTO_TEST_CASE(an_http_1_0_switching_protocols_is_refused) {
  const auto a = handshake_answered_with([](const std::string& key) {
    return switching_protocols(wsl::websocket_accept_key(key)).replace(0, 8, "HTTP/1.0");
  });
  BOOST_TEST(a.c.ec == wsl::error::bad_response);
  BOOST_TEST(a.c.report.version_minor == 0);
  BOOST_TEST(a.stream_closed);
}

BOOST_AUTO_TEST_CASE(any_reference_resolves_to_a_target_without_dot_segments_on_the_right_origin) {
  // Random references of the pieces Location headers are made of; whatever resolves is a target
  // ("/" first, no fragment, no "." or ".." segment), keeps the base's origin and credentials
  // unless it names a host, keeps or replaces the query as RFC 3986 section 5.2.2 says, and
  // resolves to itself again.
  const auto base = parsed("wss://bob:pw@h:8443/a/b/c?base=1");
  wsl::test::for_each_seed(0x5eed'0301, 3000, [&](std::uint64_t seed) {
    std::mt19937_64 g(seed);
    const auto pick = [&](std::initializer_list<std::string_view> from) {
      return std::string(*(from.begin() + static_cast<std::ptrdiff_t>(g() % from.size())));
    };
    std::string reference = pick({"", "", "", "/", "//other:99", "//carol:x@other", "ws://h2", "HTTPS://h3:1"});
    const auto segments = g() % 6;
    for (std::size_t i = 0; i < segments; ++i)
      reference += (i == 0 && reference.empty() && g() % 2 ? "" : "/") +
                   pick({"x", "y", ".", "..", "", "%2E", "z;p", "a b", "\xc3\xa9"});
    const bool has_query = g() % 3 == 0;
    if (has_query) reference += "?" + pick({"", "q=1", "a/../b", "?"});
    if (g() % 4 == 0) reference += "#" + pick({"", "f", "/../x?y"});
    BOOST_TEST_CONTEXT("reference '" << reference << "'") {
      wsl::url out;
      const auto ec = wsl::resolve_url(base, reference, out);
      if (ec) {  // only a URL with a host of its own can be wrong here
        BOOST_TEST((reference.find("://") != std::string::npos || reference.starts_with("//")), ec.message());
        return;
      }
      const std::string_view target = out.target;
      BOOST_TEST(target.starts_with('/'));
      BOOST_TEST(std::all_of(target.begin(), target.end(), [](char c) { return c > 0x20 && c < 0x7f; }));
      BOOST_TEST(target.find('#') == std::string_view::npos);
      const auto path = target.substr(0, target.find('?'));
      const auto padded = std::string(path) + "/";
      BOOST_TEST(padded.find("/./") == std::string::npos);
      BOOST_TEST(padded.find("/../") == std::string::npos);
      const auto without_fragment = std::string_view(reference).substr(0, reference.find('#'));
      const bool own_host = without_fragment.starts_with("//") || without_fragment.find("://") != std::string::npos;
      if (!own_host) {
        BOOST_TEST((out.secure == base.secure && out.host == base.host && out.port == base.port));
        BOOST_TEST((out.has_credentials && out.user == "bob" && out.password == "pw"));
      }
      const auto mark = without_fragment.find('?');
      const auto ref_path = without_fragment.substr(0, mark);
      const auto query =
          target.find('?') == std::string_view::npos ? std::string_view("<none>") : target.substr(target.find('?') + 1);
      if (mark != std::string_view::npos)
        BOOST_TEST(query == without_fragment.substr(mark + 1));
      else if (!own_host && ref_path.empty())
        BOOST_TEST(query == "base=1");
      else
        BOOST_TEST(query == "<none>");
      // (As an absolute URL: a target may start with "//", which alone would name a host.)
      wsl::url again;
      BOOST_REQUIRE(!wsl::resolve_url(out, (out.secure ? "wss://" : "ws://") + out.authority() + out.target, again));
      BOOST_TEST(again.target == out.target);
    }
  });
}
