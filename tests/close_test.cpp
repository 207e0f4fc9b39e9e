// The close handshake (RFC 6455 sections 5.5.1, 7) and failing the connection on a bad close
// frame, over a memory pipe with the test playing the peer.
#include "wsl/websocket.hpp"

#define BOOST_TEST_MODULE close
#include <boost/test/unit_test.hpp>

#include "connection_harness.hpp"
#include "test_printing.hpp"

#include <cstdint>
#include <string>

using namespace std::chrono_literals;
using namespace wsl::test;

namespace {

// The websocket's only frame since the last look, which must be a close frame.
wire_frame sole_close_frame(connection_harness& h) {
  auto frames = h.received();
  BOOST_REQUIRE_EQUAL(frames.size(), 1u);
  BOOST_TEST(frames[0].is_close());
  BOOST_TEST(frames[0].fin);
  BOOST_TEST(!frames[0].masked);  // a server never masks
  return frames[0];
}

// The peer sends a close frame with this payload; the websocket answers it with `reply_code` and
// `reply_reason`, closes the stream, and the read that was waiting ends with error::closed.
void expect_close_answered(std::string_view payload, std::uint16_t reply_code, std::string_view reply_reason) {
  connection_harness h;
  auto reading = h.spawn(read_whole_message(h.ws));
  h.send(client_frame(op::close, payload));
  BOOST_REQUIRE(reading.done());
  BOOST_TEST(reading.get().ec == wsl::error::closed);
  const auto reply = sole_close_frame(h);
  BOOST_TEST(reply.close_code() == reply_code);
  BOOST_TEST(reply.close_reason() == reply_reason);
  BOOST_TEST(h.peer->other_end_closed());  // the server closes the TCP connection first (7.1.1)
  BOOST_TEST(!h.ws.is_open());
  BOOST_TEST(h.ws.local_close().code == reply_code);
  BOOST_TEST(h.ws.local_close().reason == reply_reason);
}

// The peer sends a close frame with this payload; the websocket fails the connection: a close
// frame with `code`, then its FIN, and once the peer has closed too the read ends with `reason`.
void expect_close_failure(std::string_view payload, std::uint16_t code, wsl::error reason) {
  connection_harness h;
  auto reading = h.spawn(read_whole_message(h.ws));
  h.send(client_frame(op::close, payload));
  BOOST_TEST(sole_close_frame(h).close_code() == code);
  BOOST_TEST(h.peer->received_eof());
  h.peer->shutdown_send();
  h.settle();
  BOOST_REQUIRE(reading.done());
  BOOST_TEST(reading.get().ec == reason);
  BOOST_TEST(h.peer->other_end_closed());
  BOOST_TEST(h.ws.peer_close().code == 0);  // a bad close frame is no close status
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// The peer closes

BOOST_AUTO_TEST_CASE(a_peer_close_with_a_code_is_answered_with_that_code) {
  connection_harness h;
  auto reading = h.spawn(read_whole_message(h.ws));
  h.send(client_frame(op::close, close_payload(1001, "going away")));
  BOOST_REQUIRE(reading.done());
  BOOST_TEST(reading.get().ec == wsl::error::closed);
  BOOST_TEST(reading.get().ec == wsl::condition::closed);
  BOOST_TEST(h.ws.peer_close().code == 1001);
  BOOST_TEST(h.ws.peer_close().reason == "going away");
  BOOST_TEST(h.ws.local_close().code == 1001);
  const auto reply = sole_close_frame(h);
  BOOST_TEST(reply.close_code() == 1001);
  BOOST_TEST(reply.close_reason() == "going away");  // echoed, as node ws and python websockets do
  BOOST_TEST(h.peer->other_end_closed());
  BOOST_TEST(!h.ws.is_open());
  // Reading on says the same.
  BOOST_TEST(run(h.ctx, read_whole_message(h.ws)).ec == wsl::error::closed);
}

BOOST_AUTO_TEST_CASE(a_peer_close_without_a_code_is_answered_with_1000) {
  connection_harness h;
  auto reading = h.spawn(read_whole_message(h.ws));
  h.send(client_frame(op::close, ""));
  BOOST_REQUIRE(reading.done());
  BOOST_TEST(reading.get().ec == wsl::error::closed);
  BOOST_TEST(h.ws.peer_close().code == wsl::close_code::no_status);
  BOOST_TEST(h.ws.peer_close().reason.empty());
  const auto reply = sole_close_frame(h);
  BOOST_TEST(reply.close_code() == 1000);
  BOOST_TEST(reply.close_reason().empty());
  BOOST_TEST(h.peer->other_end_closed());
}

BOOST_AUTO_TEST_CASE(every_valid_close_code_is_accepted_and_echoed) {
  for (std::uint16_t code :
       {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999}) {
    BOOST_TEST_CONTEXT("code " << code) { expect_close_answered(close_payload(code, "reason"), code, "reason"); }
  }
}

BOOST_AUTO_TEST_CASE(a_close_payload_of_one_byte_fails_with_1002) {
  expect_close_failure(std::string(1, '\x03'), 1002, wsl::error::bad_close_payload);
}

BOOST_AUTO_TEST_CASE(invalid_close_codes_fail_with_1002) {
  for (std::uint16_t code : {0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}) {
    BOOST_TEST_CONTEXT("code " << code) { expect_close_failure(close_payload(code), 1002, wsl::error::bad_close_code); }
  }
}

BOOST_AUTO_TEST_CASE(a_close_reason_that_is_not_utf8_fails_with_1007) {
  for (std::string reason : {"\xFF", "bad \xC3", "\xED\xA0\x80 surrogate", "\xC0\xAF overlong"}) {
    BOOST_TEST_CONTEXT("reason of " << reason.size() << " bytes") {
      expect_close_failure(close_payload(1000, reason), 1007, wsl::error::invalid_utf8);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_close_reason_of_123_bytes_is_kept_whole) {
  const std::string reason(123, 'r');  // 2 + 123 = 125, the largest control payload
  connection_harness h;
  auto reading = h.spawn(read_whole_message(h.ws));
  h.send(client_frame(op::close, close_payload(4000, reason)));
  BOOST_REQUIRE(reading.done());
  BOOST_TEST(h.ws.peer_close().code == 4000);
  BOOST_TEST(h.ws.peer_close().reason == reason);
  BOOST_TEST(sole_close_frame(h).close_reason() == reason);  // and echoed whole
}

BOOST_AUTO_TEST_CASE(a_close_frame_cut_into_pieces_is_handled_once_whole) {
  connection_harness h;
  auto reading = h.spawn(read_whole_message(h.ws));
  const auto frame = client_frame(op::close, close_payload(1000, "bye"));
  for (std::size_t i = 0; i + 1 < frame.size(); ++i) {
    h.send(frame.substr(i, 1));
    BOOST_REQUIRE(!reading.done());
  }
  BOOST_TEST(h.received().empty());
  h.send(frame.substr(frame.size() - 1));
  BOOST_REQUIRE(reading.done());
  BOOST_TEST(sole_close_frame(h).close_code() == 1000);
}

// ------------------------------------------------------------------------------------------------
// We close

BOOST_AUTO_TEST_CASE(our_close_completes_when_the_peer_answers) {
  connection_harness h;
  auto closing = h.spawn(close_websocket(h.ws, 1000, "done"));
  h.settle();
  const auto ours = sole_close_frame(h);
  BOOST_TEST(ours.close_code() == 1000);
  BOOST_TEST(ours.close_reason() == "done");
  BOOST_TEST(!closing.done());
  BOOST_TEST(!h.ws.is_open());  // no more messages may be sent
  h.send(client_frame(op::close, close_payload(1000)));
  BOOST_REQUIRE(closing.done());
  BOOST_TEST(!closing.get());
  BOOST_TEST(h.ws.local_close().code == 1000);
  BOOST_TEST(h.ws.local_close().reason == "done");
  BOOST_TEST(h.ws.peer_close().code == 1000);
  BOOST_TEST(h.received().empty());  // the peer's close is not answered a second time
  BOOST_TEST(h.peer->other_end_closed());
}

BOOST_AUTO_TEST_CASE(our_close_while_another_coroutine_reads_completes_when_the_peer_answers) {
  connection_harness h;
  auto reading = h.spawn(read_whole_message(h.ws));
  h.settle();
  auto closing = h.spawn(close_websocket(h.ws, 1001, "shutting down"));
  h.settle();
  BOOST_TEST(sole_close_frame(h).close_code() == 1001);
  BOOST_TEST(!closing.done());
  BOOST_TEST(!reading.done());
  h.send(client_frame(op::close, close_payload(1001)));
  BOOST_REQUIRE(closing.done());
  BOOST_TEST(!closing.get());
  BOOST_REQUIRE(reading.done());
  BOOST_TEST(reading.get().ec == wsl::error::closed);
  BOOST_TEST(h.received().empty());
  BOOST_TEST(h.peer->other_end_closed());
}

BOOST_AUTO_TEST_CASE(our_close_ends_after_close_timeout_when_the_peer_never_answers) {
  auto options = quiet_options();
  options.close_timeout = 2s;
  connection_harness h(options);
  auto closing = h.spawn(close_websocket(h.ws, 1000));
  h.settle();
  BOOST_TEST(sole_close_frame(h).close_code() == 1000);
  h.advance(1500ms);
  BOOST_TEST(!closing.done());
  BOOST_TEST(!h.peer->other_end_closed());
  h.advance(600ms);
  BOOST_REQUIRE(closing.done());
  BOOST_TEST(closing.get() == wsl::error::close_timeout);
  BOOST_TEST(closing.get() == wsl::condition::timeout);
  BOOST_TEST(h.peer->other_end_closed());
}

BOOST_AUTO_TEST_CASE(close_timeout_also_ends_a_concurrent_read) {
  auto options = quiet_options();
  options.close_timeout = 2s;
  connection_harness h(options);
  auto reading = h.spawn(read_whole_message(h.ws));
  auto closing = h.spawn(close_websocket(h.ws, 1000));
  h.settle();
  h.advance(2100ms);
  BOOST_REQUIRE(closing.done());
  BOOST_TEST(closing.get() == wsl::error::close_timeout);
  BOOST_REQUIRE(reading.done());
  BOOST_TEST(reading.get().ec == wsl::error::close_timeout);
}

namespace {

// Starts close(1000) and checks that its close frame went out, alone.
auto start_close(connection_harness& h) {
  auto closing = h.spawn(close_websocket(h.ws, 1000));
  h.settle();
  BOOST_TEST(sole_close_frame(h).close_code() == 1000);
  return closing;
}

}  // namespace

BOOST_AUTO_TEST_CASE(frames_after_our_close_are_discarded) {
  connection_harness h;
  auto closing = start_close(h);
  // The peer had these on the way before it saw our close.
  h.send(client_frame(op::text, "late") + client_frame(op::ping, "are you there") +
         client_frame(op::binary, "later", false) + client_frame(op::continuation, "!"));
  BOOST_TEST(!closing.done());
  h.send(client_frame(op::close, close_payload(1000)));
  BOOST_REQUIRE(closing.done());
  BOOST_TEST(!closing.get());
  BOOST_TEST(h.received().empty());  // no pong, no second close
}

// RFC 6455 section 1.4 discards only what follows the peer's close: what the peer sent before it
// saw ours still reaches a reader (`wsl pipe` writes out the replies to its last lines).
BOOST_AUTO_TEST_CASE(messages_after_our_close_reach_a_concurrent_reader_until_the_peers_close) {
  connection_harness h;
  auto reading = h.spawn(read_whole_message(h.ws));
  h.settle();
  auto closing = start_close(h);
  h.send(client_frame(op::text, "late", false) + client_frame(op::ping, "between") +
         client_frame(op::continuation, " reply"));
  BOOST_REQUIRE(reading.done());
  BOOST_TEST(!reading.get().ec);
  BOOST_TEST(reading.get().data == "late reply");
  BOOST_TEST(!closing.done());
  auto reading_on = h.spawn(read_whole_message(h.ws));
  h.send(client_frame(op::close, close_payload(1000)) + client_frame(op::text, "after the close"));
  BOOST_REQUIRE(reading_on.done());
  BOOST_TEST(reading_on.get().ec == wsl::error::closed);
  BOOST_TEST(reading_on.get().data == "");
  BOOST_REQUIRE(closing.done());
  BOOST_TEST(!closing.get());
  BOOST_TEST(h.received().empty());  // no pong after our close, no second close
}

// A reader that takes a message and does not come back: close() reads in its place, so the
// handshake ends with the peer's close, not with the close timeout.
BOOST_AUTO_TEST_CASE(close_reads_in_place_of_a_reader_that_stopped) {
  connection_harness h;
  auto reading = h.spawn(read_whole_message(h.ws));
  h.settle();
  auto closing = start_close(h);
  h.send(client_frame(op::text, "late"));
  BOOST_REQUIRE(reading.done());
  BOOST_TEST(reading.get().data == "late");
  h.send(client_frame(op::binary, "unread") + client_frame(op::close, close_payload(1000)));
  BOOST_REQUIRE(closing.done());
  BOOST_TEST(!closing.get());
  // A read asked for now finds the connection closed.
  auto late_read = h.spawn(read_whole_message(h.ws));
  h.settle();
  BOOST_REQUIRE(late_read.done());
  BOOST_TEST(late_read.get().ec == wsl::error::closed);
}

// A read asked for while close() reads in the application's place waits for the handshake and
// ends with it, rather than failing with read_in_progress.
BOOST_AUTO_TEST_CASE(a_read_while_close_reads_ends_with_the_handshake) {
  connection_harness h;
  auto closing = start_close(h);
  auto reading = h.spawn(read_whole_message(h.ws));
  h.settle();
  BOOST_TEST(!reading.done());
  h.send(client_frame(op::close, close_payload(1000)));
  BOOST_REQUIRE(closing.done());
  BOOST_TEST(!closing.get());
  BOOST_REQUIRE(reading.done());
  BOOST_TEST(reading.get().ec == wsl::error::closed);
}

BOOST_AUTO_TEST_CASE(close_refuses_what_may_not_be_sent) {
  connection_harness h;
  const std::pair<std::uint16_t, std::string> refused[] = {
      {1005, ""},
      {1006, ""},
      {1015, ""},
      {999, ""},
      {5000, ""},
      {0, "reason without a code"},
      {1000, std::string(124, 'r')},  // 2 + 124 > 125
      {1000, "\xFF"},
  };
  for (const auto& [code, reason] : refused) {
    BOOST_TEST_CONTEXT("code " << code << ", reason of " << reason.size() << " bytes") {
      BOOST_TEST(run(h.ctx, close_websocket(h.ws, code, reason)) == wsl::error::bad_close_code);
    }
  }
  BOOST_TEST(h.received().empty());
  BOOST_TEST(h.ws.is_open());
}

BOOST_AUTO_TEST_CASE(close_on_a_closed_websocket_does_nothing) {
  connection_harness h;
  auto reading = h.spawn(read_whole_message(h.ws));
  h.send(client_frame(op::close, close_payload(1000)));
  BOOST_REQUIRE(reading.done());
  BOOST_TEST(sole_close_frame(h).close_code() == 1000);
  BOOST_TEST(!run(h.ctx, close_websocket(h.ws, 1001)));
  BOOST_TEST(h.received().empty());
  BOOST_TEST(h.ws.local_close().code == 1000);
}

BOOST_AUTO_TEST_CASE(writing_after_our_close_fails) {
  connection_harness h;
  auto closing = start_close(h);
  BOOST_TEST(run(h.ctx, write_whole_message(h.ws, wsl::message_type::text, "too late")) == wsl::error::closed);
  BOOST_TEST(h.received().empty());
  h.send(client_frame(op::close, close_payload(1000)));
  BOOST_TEST(closing.done());
}

// ------------------------------------------------------------------------------------------------
// The client role

BOOST_AUTO_TEST_CASE(a_client_answers_a_close_masked_and_waits_for_the_server_to_close_tcp) {
  connection_harness h(quiet_options(), wsl::role::client);
  auto reading = h.spawn(read_whole_message(h.ws));
  h.send(unmasked_frame(op::close, close_payload(1000, "bye")));
  auto frames = h.received();
  BOOST_REQUIRE_EQUAL(frames.size(), 1u);
  BOOST_TEST(frames[0].is_close());
  BOOST_TEST(frames[0].masked);
  BOOST_TEST(frames[0].close_code() == 1000);
  BOOST_TEST(!h.peer->other_end_closed());  // RFC 6455 section 7.1.1: the server closes first
  h.peer->close();
  h.settle();
  BOOST_REQUIRE(reading.done());
  BOOST_TEST(reading.get().ec == wsl::error::closed);
  BOOST_TEST(h.ws.peer_close().reason == "bye");
}
