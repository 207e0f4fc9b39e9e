// The byte-stream contract of wsl::transport (transport.hpp), checked on the TCP transport over
// loopback and on the memory pipe the other suites use, so that the pipe stays a faithful stand-in.
#include "wsl/transport.hpp"

#define BOOST_TEST_MODULE transport
#include <boost/test/unit_test.hpp>

#include "memory_transport.hpp"
#include "run_coroutine.hpp"

#include <asio/ip/tcp.hpp>
#include <asio/use_awaitable.hpp>

#include <array>
#include <memory>
#include <string>
#include <utility>

namespace {

using transport_pair = std::pair<std::unique_ptr<wsl::transport>, std::unique_ptr<wsl::transport>>;

transport_pair memory_pair(asio::io_context& ctx) {
  auto pipe = wsl::test::make_memory_pipe(ctx);
  return {std::move(pipe.stream), std::move(pipe.peer)};
}

transport_pair tcp_pair(asio::io_context& ctx) {
  asio::ip::tcp::acceptor acceptor(ctx, {asio::ip::address_v4::loopback(), 0});
  asio::ip::tcp::socket client(ctx);
  client.connect(acceptor.local_endpoint());
  auto server = acceptor.accept();
  return {wsl::make_tcp_transport(std::move(server)), wsl::make_tcp_transport(std::move(client))};
}

struct read_result {
  std::error_code ec;
  std::string data;
};

asio::awaitable<read_result> read_some_from(wsl::transport& t, std::size_t max = 4096) {
  read_result r;
  std::string buffer(max, '\0');
  const auto n = co_await t.read_some(asio::buffer(buffer), r.ec);
  r.data = buffer.substr(0, n);
  co_return r;
}

// Reads until n bytes arrived or the stream ended.
asio::awaitable<read_result> read_exactly(wsl::transport& t, std::size_t n) {
  read_result r;
  while (r.data.size() < n) {
    auto piece = co_await read_some_from(t, n - r.data.size());
    r.data += piece.data;
    if ((r.ec = piece.ec)) break;
  }
  co_return r;
}

asio::awaitable<std::error_code> write_all(wsl::transport& t, std::vector<std::string> parts) {
  std::vector<asio::const_buffer> buffers;
  for (const auto& p : parts) buffers.push_back(asio::buffer(p));
  std::error_code ec;
  co_await t.write(buffers, ec);
  co_return ec;
}

using factory = transport_pair (*)(asio::io_context&);
const std::pair<const char*, factory> kinds[] = {{"memory", memory_pair}, {"tcp", tcp_pair}};

}  // namespace

BOOST_AUTO_TEST_CASE(a_gathered_write_arrives_in_order_and_a_read_waits_for_it) {
  for (const auto& [kind, make] : kinds) {
    BOOST_TEST_CONTEXT(kind) {
      asio::io_context ctx;
      auto [a, b] = make(ctx);
      auto reading = wsl::test::spawn(ctx, read_exactly(*b, 11));
      wsl::test::run_until_idle(ctx);
      BOOST_TEST(!reading.done());
      BOOST_TEST(!wsl::test::run(ctx, write_all(*a, {"hello", ", ", "wor", "ld"})));
      BOOST_REQUIRE(wsl::test::run_until(ctx, [&] { return reading.done(); }));
      BOOST_TEST(!reading.get().ec);
      BOOST_TEST(reading.get().data == "hello, worl");
      BOOST_TEST(wsl::test::run(ctx, read_exactly(*b, 1)).data == "d");
    }
  }
}

BOOST_AUTO_TEST_CASE(shutdown_send_gives_eof_after_the_data_and_reading_goes_on) {
  for (const auto& [kind, make] : kinds) {
    BOOST_TEST_CONTEXT(kind) {
      asio::io_context ctx;
      auto [a, b] = make(ctx);
      BOOST_TEST(!wsl::test::run(ctx, write_all(*a, {"last words"})));
      a->shutdown_send();
      const auto r = wsl::test::run(ctx, read_exactly(*b, 100));
      BOOST_TEST(r.data == "last words");
      BOOST_TEST(r.ec == asio::error::eof);
      // The side that shut down can still read.
      BOOST_TEST(!wsl::test::run(ctx, write_all(*b, {"reply"})));
      BOOST_TEST(wsl::test::run(ctx, read_exactly(*a, 5)).data == "reply");
      BOOST_TEST(a->is_open());
    }
  }
}

BOOST_AUTO_TEST_CASE(close_aborts_a_pending_read_on_the_same_end) {
  for (const auto& [kind, make] : kinds) {
    BOOST_TEST_CONTEXT(kind) {
      asio::io_context ctx;
      auto [a, b] = make(ctx);
      auto reading = wsl::test::spawn(ctx, read_some_from(*a));
      wsl::test::run_until_idle(ctx);
      BOOST_REQUIRE(!reading.done());
      a->close();
      a->close();  // idempotent
      BOOST_TEST(!a->is_open());
      BOOST_REQUIRE(wsl::test::run_until(ctx, [&] { return reading.done(); }));
      BOOST_TEST(reading.get().ec == asio::error::operation_aborted);
      // The other end sees the stream end.
      const auto r = wsl::test::run(ctx, read_some_from(*b));
      BOOST_TEST(r.ec == asio::error::eof);
      BOOST_TEST(r.data.empty());
    }
  }
}

BOOST_AUTO_TEST_CASE(the_endpoints_mirror_each_other) {
  for (const auto& [kind, make] : kinds) {
    BOOST_TEST_CONTEXT(kind) {
      asio::io_context ctx;
      auto [a, b] = make(ctx);
      BOOST_TEST(a->local_endpoint() == b->remote_endpoint());
      BOOST_TEST(a->remote_endpoint() == b->local_endpoint());
      BOOST_TEST(a->local_endpoint().address().is_loopback());
      BOOST_TEST(!a->is_secure());
    }
  }
}

BOOST_AUTO_TEST_CASE(the_memory_pipe_can_deliver_in_pieces) {
  asio::io_context ctx;
  auto pipe = wsl::test::make_memory_pipe(ctx);
  pipe.peer->deliver_in_pieces_of(3);
  BOOST_REQUIRE(pipe.peer->inject("abcdefgh"));
  BOOST_TEST(pipe.peer->write_count() == 1u);
  std::string pieces;
  for (int i = 0; i < 3; ++i) pieces += wsl::test::run(ctx, read_some_from(*pipe.stream)).data + "|";
  BOOST_TEST(pieces == "abc|def|gh|");
  BOOST_TEST(!wsl::test::run(ctx, write_all(*pipe.stream, {"xy", "z"})));
  BOOST_TEST(pipe.peer->available() == 3u);
  BOOST_TEST(pipe.peer->take() == "xyz");
  BOOST_TEST(!pipe.peer->received_eof());
  pipe.stream->close();
  BOOST_TEST(pipe.peer->received_eof());
  BOOST_TEST(pipe.peer->other_end_closed());
  BOOST_TEST(!pipe.peer->inject("to nobody"));
}
