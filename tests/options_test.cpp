// Options (options.hpp): the documented defaults, and validate(), which rejects nonsensical
// values and never rewrites any.
#include "wsl/options.hpp"

#define BOOST_TEST_MODULE options
#include <boost/test/unit_test.hpp>

#include "memory_transport.hpp"
#include "run_coroutine.hpp"
#include "test_printing.hpp"
#include "wsl/listener.hpp"
#include "wsl/standard.hpp"

#include <functional>
#include <string>
#include <utility>
#include <vector>

using namespace std::chrono_literals;

namespace {

template <typename Options>
using change = std::pair<std::string, std::function<void(Options&)>>;

template <typename Options>
void expect_each_rejected(const std::vector<change<Options>>& changes) {
  for (const auto& [what, apply] : changes) {
    BOOST_TEST_CONTEXT(what) {
      Options o;
      apply(o);
      BOOST_TEST(o.validate() == wsl::error::invalid_option);
    }
  }
}

template <typename Options>
void expect_each_accepted(const std::vector<change<Options>>& changes) {
  for (const auto& [what, apply] : changes) {
    BOOST_TEST_CONTEXT(what) {
      Options o;
      apply(o);
      BOOST_TEST(!o.validate());
    }
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(connection_option_defaults_are_the_documented_ones) {
  const wsl::connection_options o;
  BOOST_TEST(o.max_message_size == 64u << 20);
  BOOST_TEST(o.read_buffer_size == 64u << 10);
  BOOST_TEST(o.write_buffer_size == 64u << 10);
  BOOST_TEST((o.ping == wsl::ping_mode::latency));
  BOOST_TEST((o.ping_interval == 30s));
  BOOST_TEST((o.idle_timeout == 60s));
  BOOST_TEST((o.close_timeout == 5s));
  BOOST_TEST(o.max_control_queue == 4096u);
  BOOST_TEST(!o.validate());
}

BOOST_AUTO_TEST_CASE(listener_option_defaults_are_the_documented_ones) {
  const wsl::listener_options o;
  BOOST_TEST(o.max_handshake_size == 16u << 10);
  BOOST_TEST((o.handshake_timeout == 10s));
  BOOST_TEST(o.max_pending_handshakes == 256u);
  BOOST_TEST(o.accept_queue_size == 1024u);
  BOOST_TEST(o.max_connections == 10000u);
  BOOST_TEST(!o.budget);
  BOOST_TEST(!o.reuse_port);
  BOOST_TEST(o.backlog == 1024);
  BOOST_TEST(!o.hook);
  BOOST_TEST(!o.log);
  BOOST_TEST(!o.standards);
  BOOST_TEST(o.connection.max_message_size == wsl::connection_options().max_message_size);
  BOOST_TEST(!o.validate());
}

BOOST_AUTO_TEST_CASE(the_default_standards_are_rfc6455_alone) {
  const auto registry = wsl::standard_registry::defaults();
  BOOST_REQUIRE(registry);
  BOOST_TEST(registry->versions() == "13");
  BOOST_REQUIRE(registry->find(13));
  BOOST_TEST(registry->find(13)->version() == 13);
  BOOST_TEST(!registry->find(8));
}

BOOST_AUTO_TEST_CASE(nonsensical_connection_options_are_rejected) {
  using o = wsl::connection_options;
  expect_each_rejected<o>({
      {"read_buffer_size 0", [](o& x) { x.read_buffer_size = 0; }},
      {"read_buffer_size 1", [](o& x) { x.read_buffer_size = 1; }},
      {"write_buffer_size 0", [](o& x) { x.write_buffer_size = 0; }},
      {"write_buffer_size 1", [](o& x) { x.write_buffer_size = 1; }},
      {"negative ping_interval", [](o& x) { x.ping_interval = -1s; }},
      {"negative idle_timeout", [](o& x) { x.idle_timeout = -1s; }},
      {"negative close_timeout", [](o& x) { x.close_timeout = -1ms; }},
      {"ping_interval equal to idle_timeout",
       [](o& x) {
         x.ping_interval = 10s;
         x.idle_timeout = 10s;
       }},
      {"ping_interval over idle_timeout, latency mode",
       [](o& x) {
         x.ping_interval = 20s;
         x.idle_timeout = 10s;
       }},
      {"ping_interval over idle_timeout, bandwidth_saving mode",
       [](o& x) {
         x.ping = wsl::ping_mode::bandwidth_saving;
         x.ping_interval = 20s;
         x.idle_timeout = 10s;
       }},
      {"max_control_queue 0", [](o& x) { x.max_control_queue = 0; }},
      {"max_control_queue below one control frame", [](o& x) { x.max_control_queue = 100; }},
  });
}

BOOST_AUTO_TEST_CASE(sensible_edge_values_of_connection_options_are_accepted) {
  using o = wsl::connection_options;
  expect_each_accepted<o>({
      {"unlimited message size", [](o& x) { x.max_message_size = 0; }},
      {"no pings, ping_interval over idle_timeout",
       [](o& x) {
         x.ping = wsl::ping_mode::none;
         x.ping_interval = 20s;
         x.idle_timeout = 10s;
       }},
      {"no idle timeout, any ping_interval", [](o& x) { x.idle_timeout = 0s; }},
      {"ping_interval 0 disables pings", [](o& x) { x.ping_interval = 0s; }},
      {"small buffers", [](o& x) { x.read_buffer_size = x.write_buffer_size = 4096; }},
      {"ping_interval just under idle_timeout",
       [](o& x) {
         x.ping_interval = 10s - 1ns;
         x.idle_timeout = 10s;
       }},
  });
}

BOOST_AUTO_TEST_CASE(nonsensical_listener_options_are_rejected) {
  using o = wsl::listener_options;
  expect_each_rejected<o>({
      {"invalid connection options", [](o& x) { x.connection.write_buffer_size = 0; }},
      {"max_handshake_size 0", [](o& x) { x.max_handshake_size = 0; }},
      {"max_handshake_size below a minimal request", [](o& x) { x.max_handshake_size = 64; }},
      {"handshake_timeout 0", [](o& x) { x.handshake_timeout = 0s; }},
      {"negative handshake_timeout", [](o& x) { x.handshake_timeout = -5s; }},
      {"max_pending_handshakes 0", [](o& x) { x.max_pending_handshakes = 0; }},
      {"accept_queue_size 0", [](o& x) { x.accept_queue_size = 0; }},
      {"backlog 0", [](o& x) { x.backlog = 0; }},
      {"negative backlog", [](o& x) { x.backlog = -1; }},
  });
}

BOOST_AUTO_TEST_CASE(sensible_edge_values_of_listener_options_are_accepted) {
  using o = wsl::listener_options;
  expect_each_accepted<o>({
      {"unlimited connections", [](o& x) { x.max_connections = 0; }},
      {"a shared budget", [](o& x) { x.budget = std::make_shared<wsl::connection_budget>(5); }},
      {"one negotiation at a time", [](o& x) { x.max_pending_handshakes = x.accept_queue_size = 1; }},
      {"SO_REUSEPORT", [](o& x) { x.reuse_port = true; }},
  });
}

BOOST_AUTO_TEST_CASE(a_listener_refuses_invalid_options_and_keeps_them_as_given) {
  asio::io_context ctx;
  wsl::listener_options options;
  options.handshake_timeout = -5s;
  options.connection.ping_interval = 90s;  // over the default idle_timeout
  wsl::listener l(ctx.get_executor(), options);
  BOOST_TEST(l.start({asio::ip::address_v4::loopback(), 0}) == wsl::error::invalid_option);
  BOOST_TEST(!l.is_running());
  BOOST_TEST((l.options().handshake_timeout == -5s));
  BOOST_TEST((l.options().connection.ping_interval == 90s));
  BOOST_TEST((l.options().connection.idle_timeout == 60s));
}

BOOST_AUTO_TEST_CASE(accept_websocket_refuses_invalid_options_without_answering) {
  asio::io_context ctx;
  auto [stream, peer] = wsl::test::make_memory_pipe(ctx);
  peer->inject(
      "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
  wsl::listener_options options;
  options.connection.read_buffer_size = 0;
  std::error_code ec;
  auto ws = wsl::test::run(ctx, wsl::accept_websocket(std::move(stream), options, ec));
  BOOST_TEST(ec == wsl::error::invalid_option);
  BOOST_TEST(!ws);
  BOOST_TEST(peer->available() == 0u);  // no response
  BOOST_TEST((options.connection.read_buffer_size == 0u));
}

// connection_budget's per-address share: an IPv4 address (also written IPv4-mapped), an IPv6 /64;
// a peer without an address (a Unix-domain socket's) counts against the total only.
BOOST_AUTO_TEST_CASE(a_connection_budget_counts_by_ipv4_address_and_ipv6_prefix) {
  using refusal = wsl::connection_budget::refusal;
  const auto a = [](const char* text) { return asio::ip::make_address(text); };
  wsl::connection_budget budget(6, 2);
  BOOST_TEST((budget.try_acquire(a("10.0.0.1")) == refusal::none));
  BOOST_TEST((budget.try_acquire(a("::ffff:10.0.0.1")) == refusal::none));
  BOOST_TEST((budget.try_acquire(a("10.0.0.1")) == refusal::address_limit));
  BOOST_TEST(budget.count(a("10.0.0.1")) == 2u);
  BOOST_TEST((budget.try_acquire(a("10.0.0.2")) == refusal::none));

  BOOST_TEST((budget.try_acquire(a("2001:db8::1")) == refusal::none));
  BOOST_TEST((budget.try_acquire(a("2001:db8::ffff:2")) == refusal::none));  // the same /64
  BOOST_TEST((budget.try_acquire(a("2001:db8::3")) == refusal::address_limit));
  BOOST_TEST(budget.count() == 5u);                                          // a refusal holds nothing
  BOOST_TEST((budget.try_acquire(a("2001:db8:0:1::1")) == refusal::none));   // another /64
  BOOST_TEST((budget.try_acquire(a("2001:db8:0:2::1")) == refusal::limit));  // the total

  budget.release(a("10.0.0.1"));
  BOOST_TEST(budget.count(a("10.0.0.1")) == 1u);
  BOOST_TEST((budget.try_acquire(a("0.0.0.0")) == refusal::none));  // no address: the total only
  BOOST_TEST(budget.count(a("0.0.0.0")) == 0u);
  BOOST_TEST((budget.try_acquire(a("0.0.0.0")) == refusal::limit));
  budget.release(a("0.0.0.0"));
  budget.release(a("2001:db8::1"));
  budget.release(a("2001:db8::2"));
  BOOST_TEST(budget.count(a("2001:db8::5")) == 0u);
  BOOST_TEST((budget.try_acquire(a("2001:db8::3")) == refusal::none));
  BOOST_TEST(budget.count() == 4u);

  wsl::connection_budget unlimited(0);  // no per-address limit: only the total is counted
  for (int i = 0; i < 3; ++i) BOOST_TEST((unlimited.try_acquire(a("10.0.0.1")) == refusal::none));
  BOOST_TEST(unlimited.count(a("10.0.0.1")) == 0u);
  BOOST_TEST(unlimited.count() == 3u);
  BOOST_TEST(unlimited.try_begin_negotiation(a("10.0.0.1")));
}

// Negotiations under way are counted by address apart from open connections, against the same
// share: a host that never finishes its requests holds that many negotiation slots, no more.
BOOST_AUTO_TEST_CASE(a_connection_budget_bounds_negotiations_by_address) {
  using refusal = wsl::connection_budget::refusal;
  const auto a = [](const char* text) { return asio::ip::make_address(text); };
  wsl::connection_budget budget(100, 2);
  BOOST_TEST(budget.try_begin_negotiation(a("10.0.0.1")));
  BOOST_TEST(budget.try_begin_negotiation(a("::ffff:10.0.0.1")));
  BOOST_TEST(!budget.try_begin_negotiation(a("10.0.0.1")));
  BOOST_TEST(budget.negotiating(a("10.0.0.1")) == 2u);
  BOOST_TEST(budget.count(a("10.0.0.1")) == 0u);
  BOOST_TEST(budget.try_begin_negotiation(a("10.0.0.2")));
  BOOST_TEST(budget.try_begin_negotiation(a("0.0.0.0")));  // no address: not counted
  BOOST_TEST(budget.negotiating(a("0.0.0.0")) == 0u);
  // Both negotiations from 10.0.0.1 succeed: open now, they leave room for two more negotiations,
  // whose websockets would be refused (429) while these two are open.
  BOOST_TEST((budget.try_acquire(a("10.0.0.1")) == refusal::none));
  budget.end_negotiation(a("10.0.0.1"));
  BOOST_TEST((budget.try_acquire(a("10.0.0.1")) == refusal::none));
  budget.end_negotiation(a("10.0.0.1"));
  BOOST_TEST(budget.count(a("10.0.0.1")) == 2u);
  BOOST_TEST(budget.negotiating(a("10.0.0.1")) == 0u);
  BOOST_TEST(budget.try_begin_negotiation(a("10.0.0.1")));
  BOOST_TEST((budget.try_acquire(a("10.0.0.1")) == refusal::address_limit));
  budget.end_negotiation(a("10.0.0.1"));
  budget.end_negotiation(a("10.0.0.1"));  // one too many: ignored, nothing goes negative
  BOOST_TEST(budget.negotiating(a("10.0.0.1")) == 0u);
  budget.release(a("10.0.0.1"));
  budget.release(a("10.0.0.1"));
  BOOST_TEST(budget.count(a("10.0.0.1")) == 0u);
  BOOST_TEST(budget.count() == 0u);
  BOOST_TEST(budget.negotiating(a("10.0.0.2")) == 1u);
}
