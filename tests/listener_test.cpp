// wsl::listener over real sockets on 127.0.0.1: what stop() does to the negotiations it started.
#include "wsl/listener.hpp"
#include "wsl/client.hpp"
#include "wsl/error.hpp"

#define BOOST_TEST_MODULE listener
#include <boost/test/unit_test.hpp>

#include "run_coroutine.hpp"
#include "test_printing.hpp"

#include <asio/connect.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using wsl::test::run_until;
using wsl::test::spawn;

namespace {

struct accepted {
  std::error_code ec;
  wsl::websocket ws;
};

asio::awaitable<accepted> accept_one(wsl::listener& l) {
  accepted r;
  r.ws = co_await l.accept(r.ec);
  co_return r;
}

struct connected {
  std::error_code ec;
  wsl::websocket ws;
};

asio::awaitable<connected> connect_to(std::string url) {
  connected r;
  auto executor = co_await asio::this_coro::executor;
  const wsl::client_options options;  // named: GCC 12 mishandles a temporary in a co_await's arguments
  r.ws = co_await wsl::connect(executor, url, options, r.ec);
  co_return r;
}

}  // namespace

BOOST_AUTO_TEST_CASE(stop_ends_the_negotiations_in_progress_at_once) {
  asio::io_context ctx;
  auto records = std::make_shared<std::vector<wsl::negotiation_record>>();
  wsl::listener_options options;
  options.handshake_timeout = 1h;  // only stop() can end them within the test's bound
  options.on_negotiation = [records](const wsl::negotiation_record& r) { records->push_back(r); };
  wsl::listener l(ctx.get_executor(), options);
  BOOST_REQUIRE(!l.start({asio::ip::address_v4::loopback(), 0}));
  const auto endpoint = l.local_endpoint();

  // Two clients that never finish their request (a browser's spare connection, a slow one), then
  // one that does. The kernel hands connections to accept() in the order they were made, so once
  // the third one is accepted, the first two are being negotiated.
  asio::ip::tcp::socket silent(ctx), partial(ctx);
  silent.connect(endpoint);
  partial.connect(endpoint);
  asio::write(partial, asio::buffer(std::string_view("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")));
  auto connecting = spawn(ctx, connect_to("ws://127.0.0.1:" + std::to_string(endpoint.port()) + "/"));
  auto accepting = spawn(ctx, accept_one(l));
  BOOST_REQUIRE(run_until(ctx, [&] { return connecting.done() && accepting.done(); }));
  BOOST_REQUIRE(!connecting.get().ec);
  BOOST_REQUIRE(!accepting.get().ec);
  BOOST_TEST(records->size() == 1u);  // the third one's; the other two are still waiting
  wsl::test::run_until_idle(ctx);
  BOOST_TEST(records->size() == 1u);

  l.stop();
  BOOST_REQUIRE(run_until(
      ctx, [&] { return records->size() == 3; }, 5000ms));
  for (std::size_t i = 1; i < 3; ++i) {
    BOOST_TEST_CONTEXT("negotiation " << i) {
      BOOST_TEST((*records)[i].error == wsl::error::listener_stopped);
      BOOST_TEST((*records)[i].status == 0);  // no answer: the request never ended
    }
  }
  // Both see the end of the connection, and nothing before it.
  for (auto* s : {&silent, &partial}) {
    char byte;
    std::error_code ec;
    s->non_blocking(false);
    const auto n = asio::read(*s, asio::buffer(&byte, 1), ec);
    BOOST_TEST(n == 0u);
    BOOST_TEST((ec == asio::error::eof || ec == asio::error::connection_reset));
  }
  // The accepted connection is the application's: stop() leaves it alone.
  BOOST_TEST(accepting.get().ws.is_open());
  accepting.get().ws.abort();
  connecting.get().ws.abort();
  wsl::test::run_until_idle(ctx);
}

BOOST_AUTO_TEST_CASE(a_refusal_being_sent_when_the_listener_stops_keeps_its_status) {
  // A negotiation that already answered (here 400) reports that answer, not a stop.
  asio::io_context ctx;
  auto records = std::make_shared<std::vector<wsl::negotiation_record>>();
  wsl::listener_options options;
  options.handshake_timeout = 1h;
  options.on_negotiation = [records](const wsl::negotiation_record& r) { records->push_back(r); };
  wsl::listener l(ctx.get_executor(), options);
  BOOST_REQUIRE(!l.start({asio::ip::address_v4::loopback(), 0}));

  asio::ip::tcp::socket client(ctx);
  client.connect(l.local_endpoint());
  asio::write(client, asio::buffer(std::string_view("GET / HTTP/1.0\r\nUpgrade: websocket\r\n\r\n")));
  // The server answers, then lingers until we close our side (the client keeps it open).
  std::string answer(12, '\0');
  client.non_blocking(true);
  std::size_t got = 0;
  BOOST_REQUIRE(run_until(ctx, [&] {
    std::error_code ec;
    got += client.read_some(asio::buffer(answer.data() + got, answer.size() - got), ec);
    return got == answer.size();
  }));
  BOOST_TEST(answer == "HTTP/1.1 400");
  l.stop();
  BOOST_REQUIRE(run_until(
      ctx, [&] { return records->size() == 1; }, 5000ms));
  BOOST_TEST((*records)[0].status == 400);
  BOOST_TEST((*records)[0].error != wsl::error::listener_stopped);
}
