// Pings, latency and the idle timeout (connection_options::ping, ping_interval, idle_timeout),
// with the fake clock: wsl::test_clock moves time, the test watches what goes on the wire.
#include "wsl/websocket.hpp"

#define BOOST_TEST_MODULE keepalive
#include <boost/test/unit_test.hpp>

#include "connection_harness.hpp"
#include "test_printing.hpp"

#include <memory>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using namespace wsl::test;

namespace {

wsl::connection_options keepalive_options(wsl::ping_mode mode, wsl::clock::duration ping_interval,
                                          wsl::clock::duration idle_timeout) {
  wsl::connection_options o;
  o.ping = mode;
  o.ping_interval = ping_interval;
  o.idle_timeout = idle_timeout;
  return o;
}

// Reads messages until the connection ends, counting them; returns the error that ended it.
asio::awaitable<std::error_code> read_until_error(wsl::websocket& ws, std::shared_ptr<int> messages) {
  for (;;) {
    const auto r = co_await read_whole_message(ws);
    if (r.ec) co_return r.ec;
    ++*messages;
  }
}

// The pings among the frames the peer received since the last look; anything else fails the test.
std::vector<wire_frame> pings_received(connection_harness& h) {
  std::vector<wire_frame> pings;
  for (auto& f : h.received()) {
    BOOST_TEST(f.opcode == op::ping);
    BOOST_TEST(f.fin);
    BOOST_TEST(!f.masked);
    BOOST_TEST(f.payload.size() <= 125u);
    if (f.opcode == op::ping) pings.push_back(std::move(f));
  }
  return pings;
}

std::string pong_for(const wire_frame& ping) { return client_frame(op::pong, ping.payload); }

}  // namespace

// ------------------------------------------------------------------------------------------------
// Latency mode

BOOST_AUTO_TEST_CASE(latency_mode_pings_every_ping_interval) {
  connection_harness h(keepalive_options(wsl::ping_mode::latency, 10s, 0s));
  auto reading = h.spawn(read_whole_message(h.ws));
  h.settle();
  BOOST_TEST(pings_received(h).empty());
  h.advance(9900ms);
  BOOST_TEST(pings_received(h).empty());
  h.advance(200ms);
  BOOST_TEST(pings_received(h).size() == 1u);
  // 4 s at a time: a ping every third step (at 22.1 s and 34.1 s), answered or not.
  for (int step = 1; step <= 6; ++step) {
    h.advance(4s);
    BOOST_TEST_CONTEXT("step " << step) { BOOST_TEST(pings_received(h).size() == (step % 3 == 0 ? 1u : 0u)); }
  }
  BOOST_TEST(!reading.done());
}

BOOST_AUTO_TEST_CASE(latency_pings_are_timestamped_and_their_pongs_give_the_latency) {
  connection_harness h(keepalive_options(wsl::ping_mode::latency, 10s, 0s));
  auto reading = h.spawn(read_whole_message(h.ws));
  h.settle();
  h.advance(10s);
  const auto first = pings_received(h);
  BOOST_REQUIRE_EQUAL(first.size(), 1u);
  h.advance(10s);
  const auto second = pings_received(h);
  BOOST_REQUIRE_EQUAL(second.size(), 1u);
  BOOST_TEST(first[0].payload != second[0].payload);  // each carries its time
  BOOST_TEST(h.ws.latency().samples == 0u);

  // The pong of the second ping comes 3 s after it was sent (and real time adds a little).
  h.advance(3s);
  h.send(pong_for(second[0]));
  auto latency = h.ws.latency();
  BOOST_TEST(latency.samples == 1u);
  BOOST_TEST((latency.last >= 3s && latency.last < 4s));
  BOOST_TEST((latency.smoothed == latency.last));

  // The first ping's pong, 16 s late, is a second sample, smoothed by 1/8 (as TCP's SRTT).
  h.advance(3s);
  h.send(pong_for(first[0]));
  const auto before = latency;
  latency = h.ws.latency();
  BOOST_TEST(latency.samples == 2u);
  BOOST_TEST((latency.last >= 16s && latency.last < 17s));
  BOOST_TEST((latency.smoothed == before.smoothed + (latency.last - before.smoothed) / 8));
  BOOST_TEST(!reading.done());
}

BOOST_AUTO_TEST_CASE(pongs_that_answer_no_ping_of_ours_leave_latency_alone) {
  connection_harness h(keepalive_options(wsl::ping_mode::latency, 10s, 0s));
  auto reading = h.spawn(read_whole_message(h.ws));
  h.settle();
  h.advance(10s);
  const auto pings = pings_received(h);
  BOOST_REQUIRE_EQUAL(pings.size(), 1u);
  const auto& payload = pings[0].payload;
  h.send(client_frame(op::pong, ""));                                     // unsolicited heartbeat
  h.send(client_frame(op::pong, "hello"));                                // an application's own
  h.send(client_frame(op::pong, payload.substr(0, payload.size() - 1)));  // cut short
  h.send(client_frame(op::pong, "x" + payload.substr(1)));                // another tag
  BOOST_TEST(h.ws.latency().samples == 0u);
  BOOST_TEST(!reading.done());
}

BOOST_AUTO_TEST_CASE(a_peer_answering_pings_is_never_idle) {
  connection_harness h(keepalive_options(wsl::ping_mode::latency, 1s, 3s));
  auto messages = std::make_shared<int>(0);
  auto reading = h.spawn(read_until_error(h.ws, messages));
  h.settle();
  for (int i = 0; i < 10; ++i) {
    h.advance(1s);
    for (const auto& ping : pings_received(h)) h.send(pong_for(ping));
  }
  BOOST_TEST(!reading.done());
  BOOST_TEST(h.ws.latency().samples == 10u);
  // It stops answering: three seconds later it is idle.
  h.advance(2s);
  BOOST_TEST(!reading.done());
  h.advance(1100ms);
  BOOST_REQUIRE(reading.done());
  BOOST_TEST(reading.get() == wsl::error::idle_timeout);
}

// ------------------------------------------------------------------------------------------------
// Bandwidth-saving mode and no pings

BOOST_AUTO_TEST_CASE(bandwidth_saving_pings_only_an_idle_connection) {
  connection_harness h(keepalive_options(wsl::ping_mode::bandwidth_saving, 1s, 0s));
  auto messages = std::make_shared<int>(0);
  auto reading = h.spawn(read_until_error(h.ws, messages));
  h.settle();
  // A message every 0.6 s: the connection is never quiet for a whole interval.
  for (int i = 0; i < 8; ++i) {
    h.advance(600ms);
    h.send(client_frame(op::binary, "traffic"));
  }
  BOOST_TEST(*messages == 8);
  BOOST_TEST(pings_received(h).empty());
  // Quiet for 0.6 s: still no ping; for 1.2 s: one.
  h.advance(600ms);
  BOOST_TEST(pings_received(h).empty());
  h.advance(600ms);
  BOOST_TEST(pings_received(h).size() == 1u);
  BOOST_TEST(!reading.done());
}

BOOST_AUTO_TEST_CASE(ping_mode_none_never_pings) {
  connection_harness h(keepalive_options(wsl::ping_mode::none, 1s, 0s));
  auto reading = h.spawn(read_whole_message(h.ws));
  h.settle();
  for (int i = 0; i < 5; ++i) h.advance(10s);
  BOOST_TEST(h.received().empty());
  BOOST_TEST(!reading.done());
}

// ------------------------------------------------------------------------------------------------
// The idle timeout

BOOST_AUTO_TEST_CASE(a_read_waiting_longer_than_idle_timeout_ends_with_idle_timeout) {
  connection_harness h(keepalive_options(wsl::ping_mode::none, 0s, 5s));
  auto reading = h.spawn(read_whole_message(h.ws));
  h.settle();
  h.advance(4900ms);
  BOOST_TEST(!reading.done());
  h.advance(200ms);
  BOOST_REQUIRE(reading.done());
  BOOST_TEST(reading.get().ec == wsl::error::idle_timeout);
  BOOST_TEST(reading.get().ec == wsl::condition::timeout);
  BOOST_TEST(h.peer->other_end_closed());
  BOOST_TEST(!h.ws.is_open());
}

BOOST_AUTO_TEST_CASE(anything_arriving_restarts_the_idle_timeout) {
  connection_harness h(keepalive_options(wsl::ping_mode::none, 0s, 5s));
  auto reading = h.spawn(read_whole_message(h.ws));
  h.settle();
  h.advance(4s);
  h.send(client_frame(op::ping, "still here"));  // a control frame counts as much as data
  h.advance(4s);
  BOOST_TEST(!reading.done());
  h.send(client_frame(op::text, "half a ", false));  // so does part of a message
  h.advance(4s);
  BOOST_TEST(!reading.done());
  h.advance(1100ms);
  BOOST_REQUIRE(reading.done());
  BOOST_TEST(reading.get().ec == wsl::error::idle_timeout);
}

BOOST_AUTO_TEST_CASE(the_idle_timeout_does_not_fire_while_the_application_is_not_reading) {
  connection_harness h(keepalive_options(wsl::ping_mode::none, 0s, 5s));
  h.settle();
  h.advance(20s);  // no read waiting: the application holds the data back, not the peer
  BOOST_TEST(h.ws.is_open());
  BOOST_TEST(!h.peer->other_end_closed());
  BOOST_TEST(h.received().empty());
  BOOST_REQUIRE(h.peer->inject(client_frame(op::text, "waited for you")));
  const auto message = run(h.ctx, read_whole_message(h.ws));
  BOOST_TEST(!message.ec);
  BOOST_TEST(message.data == "waited for you");
  // Reading again, the idle timeout counts from now.
  auto reading = h.spawn(read_whole_message(h.ws));
  h.settle();
  h.advance(4900ms);
  BOOST_TEST(!reading.done());
  h.advance(200ms);
  BOOST_REQUIRE(reading.done());
  BOOST_TEST(reading.get().ec == wsl::error::idle_timeout);
}

BOOST_AUTO_TEST_CASE(an_idle_timeout_of_zero_never_fires) {
  connection_harness h(keepalive_options(wsl::ping_mode::none, 0s, 0s));
  auto reading = h.spawn(read_whole_message(h.ws));
  h.settle();
  h.advance(24h);
  BOOST_TEST(!reading.done());
  BOOST_TEST(h.ws.is_open());
}
