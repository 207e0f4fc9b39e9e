// Cancelling a websocket's reads and writes with asio's cancellation slots (co_spawn with
// bind_cancellation_slot, or the loser of an awaitable operators' ||). Over a real TCP connection
// on 127.0.0.1, since the memory pipe of the other suites does not end a wait when cancelled; the
// test plays the client with a plain socket and the frames of wire_frames.hpp.
//
// A cancelled read takes nothing from the stream: it ends with operation_aborted and the next
// read starts where it stopped. A cancelled write may leave a frame half sent, after which
// nothing can follow: the connection is dropped. So is a close() cancelled while it waits for
// the peer's close, whether it reads itself or the application's reader does.
#include "wsl/websocket.hpp"

#define BOOST_TEST_MODULE cancel
#include <boost/test/unit_test.hpp>

#include "connection_harness.hpp"
#include "run_coroutine.hpp"
#include "test_printing.hpp"
#include "wire_frames.hpp"
#include "wsl/error.hpp"
#include "wsl/transport.hpp"

#include <asio/cancellation_signal.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <string>
#include <string_view>
#include <system_error>

using namespace std::chrono_literals;
using namespace wsl::test;

namespace {

// A server-side websocket over TCP, and the client's socket, which the test drives by hand.
struct tcp_harness {
  tcp_harness() {
    wsl::test_clock::enable();
    asio::ip::tcp::acceptor acceptor(ctx, {asio::ip::address_v4::loopback(), 0});
    peer.connect(acceptor.local_endpoint());
    ws = wsl::websocket::adopt(wsl::make_tcp_transport(acceptor.accept()), wsl::role::server, quiet_options());
  }
  ~tcp_harness() {
    ws.abort();
    try {
      run_until_idle(ctx);
    } catch (...) {
    }
  }
  tcp_harness(const tcp_harness&) = delete;
  tcp_harness& operator=(const tcp_harness&) = delete;

  void send(std::string_view bytes) { asio::write(peer, asio::buffer(bytes)); }

  asio::io_context ctx;
  asio::ip::tcp::socket peer{ctx};
  wsl::websocket ws;
};

struct opened_message {
  std::error_code ec;
  wsl::message_reader reader;
};

[[gnu::noinline]] asio::awaitable<opened_message> open_message(wsl::websocket& ws) {
  opened_message m;
  m.reader = co_await ws.read_message(m.ec);
  co_return m;
}

struct chunk_result {
  std::error_code ec;
  std::string data;
};

[[gnu::noinline]] asio::awaitable<chunk_result> next_chunk(wsl::message_reader& reader) {
  chunk_result r;
  const auto chunk = co_await reader.read_chunk(r.ec);
  r.data.assign(static_cast<const char*>(chunk.data()), chunk.size());
  co_return r;
}

// read_message() against a timer of 1 s: which came first (0 the read, 1 the timer).
[[gnu::noinline]] asio::awaitable<std::size_t> read_or_time_out(wsl::websocket& ws) {
  using namespace asio::experimental::awaitable_operators;
  auto executor = co_await asio::this_coro::executor;
  wsl::timer patience(executor, 1s);
  std::error_code ec;
  auto reading = ws.read_message(ec);
  auto waiting = patience.async_wait(asio::use_awaitable);
  const auto first = co_await (std::move(reading) || std::move(waiting));
  co_return first.index();
}

// The peer sends `frame`: the next read_message() gives `payload`, whatever came before.
void expect_next_message(tcp_harness& h, std::string_view frame, std::string_view payload) {
  h.send(frame);
  auto next = spawn(h.ctx, read_whole_message(h.ws));
  BOOST_REQUIRE(run_until(h.ctx, [&] { return next.done(); }));
  BOOST_TEST(!next.get().ec, next.get().ec.message());
  BOOST_TEST(next.get().data == payload);
}

// The peer got a close frame with `payload`, then the end of the connection.
void expect_close_then_end(tcp_harness& h, std::string_view payload) {
  std::string got;
  std::error_code ec;
  asio::read(h.peer, asio::dynamic_buffer(got), ec);
  BOOST_TEST(ec == asio::error::eof);
  const auto frames = parse_frames(got);
  BOOST_REQUIRE(frames.size() == 1u);
  BOOST_TEST(frames[0].opcode == op::close);
  BOOST_TEST(frames[0].payload == payload);
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_cancelled_read_message_ends_aborted_and_the_next_read_gets_the_message) {
  tcp_harness h;
  asio::cancellation_signal cancel;
  auto reading = spawn(h.ctx, read_whole_message(h.ws), cancel.slot());
  run_until_idle(h.ctx);
  BOOST_REQUIRE(!reading.done());
  cancel.emit(asio::cancellation_type::terminal);
  BOOST_REQUIRE(run_until(h.ctx, [&] { return reading.done(); }));
  BOOST_TEST(reading.get().ec == asio::error::operation_aborted);  // get() rethrows: nothing was thrown
  BOOST_TEST(h.ws.is_open());

  expect_next_message(h, client_frame(op::text, "hello"), "hello");
}

BOOST_AUTO_TEST_CASE(a_read_cancelled_inside_a_message_leaves_the_rest_of_it_to_the_next_read) {
  tcp_harness h;
  h.send(client_frame(op::text, "hel", false));
  auto opened = spawn(h.ctx, open_message(h.ws));
  BOOST_REQUIRE(run_until(h.ctx, [&] { return opened.done(); }));
  BOOST_REQUIRE(!opened.get().ec);
  auto& reader = opened.get().reader;
  auto first = spawn(h.ctx, next_chunk(reader));
  BOOST_REQUIRE(run_until(h.ctx, [&] { return first.done(); }));
  BOOST_TEST(first.get().data == "hel");

  asio::cancellation_signal cancel;
  auto waiting = spawn(h.ctx, next_chunk(reader), cancel.slot());
  run_until_idle(h.ctx);
  BOOST_REQUIRE(!waiting.done());
  cancel.emit(asio::cancellation_type::terminal);
  BOOST_REQUIRE(run_until(h.ctx, [&] { return waiting.done(); }));
  BOOST_TEST(waiting.get().ec == asio::error::operation_aborted);
  BOOST_TEST(waiting.get().data.empty());
  BOOST_TEST(h.ws.is_open());

  h.send(client_frame(op::ping, "p") + client_frame(op::continuation, "lo"));
  auto rest = spawn(h.ctx, next_chunk(reader));
  BOOST_REQUIRE(run_until(h.ctx, [&] { return rest.done(); }));
  BOOST_TEST(!rest.get().ec, rest.get().ec.message());
  BOOST_TEST(rest.get().data == "lo");
  BOOST_TEST(reader.done());
}

BOOST_AUTO_TEST_CASE(a_read_that_loses_a_race_of_awaitable_operators_loses_nothing) {
  tcp_harness h;
  auto racing = spawn(h.ctx, read_or_time_out(h.ws));
  run_until_idle(h.ctx);
  BOOST_REQUIRE(!racing.done());
  advance_clock(h.ctx, 2s);
  BOOST_REQUIRE(run_until(h.ctx, [&] { return racing.done(); }));
  BOOST_TEST(racing.get() == 1u);  // the timer's
  BOOST_TEST(h.ws.is_open());

  expect_next_message(h, client_frame(op::binary, "after the timeout"), "after the timeout");
}

BOOST_AUTO_TEST_CASE(a_write_cancelled_half_sent_drops_the_connection) {
  tcp_harness h;
  asio::cancellation_signal cancel;
  // More than the socket's buffers take while the peer reads nothing: the write waits, a frame
  // half sent.
  auto writing =
      spawn(h.ctx, write_whole_message(h.ws, wsl::message_type::binary, std::string(64 << 20, 'x')), cancel.slot());
  run_until_idle(h.ctx);
  BOOST_REQUIRE(!writing.done());
  cancel.emit(asio::cancellation_type::terminal);
  BOOST_REQUIRE(run_until(h.ctx, [&] { return writing.done(); }));
  BOOST_TEST(writing.get() == asio::error::operation_aborted);
  BOOST_TEST(!h.ws.is_open());

  // The peer gets the start of the frame, then the end of the connection: nothing after it.
  std::string got;
  std::error_code ec;
  asio::read(h.peer, asio::dynamic_buffer(got), ec);
  BOOST_TEST(ec == asio::error::eof);
  BOOST_TEST(got.size() > 10u);
  BOOST_TEST(got.size() < (64u << 20));
  BOOST_TEST(static_cast<unsigned char>(got[0]) == 0x82u);  // FIN, binary: one frame, cut short

  // What comes later says the connection was dropped.
  auto again = spawn(h.ctx, write_whole_message(h.ws, wsl::message_type::text, "x"));
  BOOST_REQUIRE(run_until(h.ctx, [&] { return again.done(); }));
  BOOST_TEST(again.get() == wsl::error::aborted);
}

BOOST_AUTO_TEST_CASE(a_close_cancelled_while_the_peer_does_not_answer_drops_the_connection) {
  tcp_harness h;
  asio::cancellation_signal cancel;
  auto closing = spawn(h.ctx, close_websocket(h.ws, wsl::close_code::normal, "bye"), cancel.slot());
  run_until_idle(h.ctx);  // our close frame is out; the peer does not answer it
  BOOST_REQUIRE(!closing.done());
  cancel.emit(asio::cancellation_type::terminal);
  BOOST_REQUIRE(run_until(h.ctx, [&] { return closing.done(); }));
  BOOST_TEST(closing.get() == asio::error::operation_aborted);  // get() rethrows: nothing was thrown
  BOOST_TEST(!h.ws.is_open());

  expect_close_then_end(h, close_payload(1000, "bye"));
}

BOOST_AUTO_TEST_CASE(a_close_cancelled_while_a_read_waits_for_the_peer_drops_the_connection) {
  tcp_harness h;
  auto reading = spawn(h.ctx, open_message(h.ws));  // the application's reader, which would see the peer's close
  run_until_idle(h.ctx);
  asio::cancellation_signal cancel;
  auto closing = spawn(h.ctx, close_websocket(h.ws, wsl::close_code::normal, "bye"), cancel.slot());
  run_until_idle(h.ctx);  // our close frame is out; close() waits for the reader, the peer answers nothing
  BOOST_REQUIRE(!closing.done());
  BOOST_REQUIRE(!reading.done());
  cancel.emit(asio::cancellation_type::terminal);
  BOOST_REQUIRE(run_until(h.ctx, [&] { return closing.done() && reading.done(); }));
  BOOST_TEST(closing.get() == asio::error::operation_aborted);  // get() rethrows: nothing was thrown
  BOOST_TEST(reading.get().ec == wsl::error::aborted);
  BOOST_TEST(!h.ws.is_open());
  expect_close_then_end(h, close_payload(1000, "bye"));
}

BOOST_AUTO_TEST_CASE(a_read_cancelled_while_close_reads_ends_aborted_and_the_handshake_goes_on) {
  tcp_harness h;
  auto closing = spawn(h.ctx, close_websocket(h.ws, wsl::close_code::normal, "bye"));
  run_until_idle(h.ctx);  // close() reads in the application's place, waiting for the peer's close
  asio::cancellation_signal cancel;
  auto reading = spawn(h.ctx, open_message(h.ws), cancel.slot());
  run_until_idle(h.ctx);
  BOOST_REQUIRE(!reading.done());
  cancel.emit(asio::cancellation_type::terminal);
  BOOST_REQUIRE(run_until(h.ctx, [&] { return reading.done(); }));
  BOOST_TEST(reading.get().ec == asio::error::operation_aborted);  // get() rethrows: nothing was thrown
  BOOST_TEST(!closing.done());

  h.send(client_frame(op::close, close_payload(1000, "ok")));
  BOOST_REQUIRE(run_until(h.ctx, [&] { return closing.done(); }));
  BOOST_TEST(!closing.get(), closing.get().message());
  BOOST_TEST(h.ws.peer_close().code == 1000);
}
