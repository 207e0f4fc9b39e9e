// Framing rules of an open connection (RFC 6455 sections 5 and 8): masking direction, reserved
// bits and opcodes, fragmentation, control frames, message streams and limits.
#include "wsl/websocket.hpp"

#define BOOST_TEST_MODULE protocol
#include <boost/test/unit_test.hpp>

#include "connection_harness.hpp"
#include "test_printing.hpp"

#include <cstdint>
#include <set>
#include <string>
#include <vector>

using namespace wsl::test;

namespace {

// The websocket failed the connection: a close frame with `code` and its FIN went out; once the
// peer has closed its side too, the read that was waiting ends with `reason`.
void expect_failed(connection_harness& h, task<message_result>& reading, std::uint16_t code, wsl::error reason) {
  auto frames = h.received();
  BOOST_REQUIRE_EQUAL(frames.size(), 1u);
  BOOST_TEST(frames[0].is_close());
  BOOST_TEST(frames[0].close_code() == code);
  BOOST_TEST(h.peer->received_eof());
  h.peer->shutdown_send();
  h.settle();
  BOOST_REQUIRE(reading.done());
  BOOST_TEST(reading.get().ec == reason);
  if (code == 1002) BOOST_TEST(reading.get().ec == wsl::condition::protocol_violation);
  BOOST_TEST(h.peer->other_end_closed());
}

// Sends bytes to a fresh server websocket that is reading a message, and expects it to fail.
void expect_rejected(const std::string& bytes, std::uint16_t code, wsl::error reason) {
  connection_harness h;
  auto reading = h.spawn(read_whole_message(h.ws));
  h.send(bytes);
  expect_failed(h, reading, code, reason);
}

// Reads one message chunk by chunk with read_chunk(), checking that no chunk is empty before the end.
struct chunked_result {
  std::error_code ec;
  std::vector<std::string> chunks;
  bool empty_chunk_inside = false;
};

asio::awaitable<chunked_result> read_in_chunks(wsl::websocket& ws) {
  chunked_result r;
  auto reader = co_await ws.read_message(r.ec);
  while (!r.ec) {
    const auto chunk = co_await reader.read_chunk(r.ec);
    if (r.ec) break;
    if (chunk.size() == 0) {
      if (!reader.done()) r.empty_chunk_inside = true;
      break;
    }
    r.chunks.emplace_back(static_cast<const char*>(chunk.data()), chunk.size());
  }
  co_return r;
}

// Reads one message with read_some() into a buffer of `buffer_size` bytes, recording each count
// and checking that the bytes behind each count were left alone.
struct read_some_result {
  std::error_code ec;
  std::string data;
  std::vector<std::size_t> counts;
  bool wrote_past_count = false;
  std::uint64_t bytes_read = 0;
  bool done = false;
  wsl::message_type type = wsl::message_type::binary;
};

asio::awaitable<read_some_result> read_with_read_some(wsl::websocket& ws, std::size_t buffer_size) {
  read_some_result r;
  auto reader = co_await ws.read_message(r.ec);
  r.type = reader.type();
  while (!r.ec) {
    std::string buffer(buffer_size, '#');
    const auto n = co_await reader.read_some(asio::buffer(buffer), r.ec);
    if (r.ec) break;
    r.counts.push_back(n);
    if (buffer.find_first_not_of('#', n) != std::string::npos) r.wrote_past_count = true;
    if (n == 0) break;
    r.data.append(buffer, 0, n);
  }
  r.bytes_read = reader.bytes_read();
  r.done = reader.done();
  co_return r;
}

std::string pattern(std::size_t n, char seed = 'a') {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i % 26);
  return s;
}

// The payloads of frames concatenated, and a check of the fragmentation rules on the way.
std::string reassemble(const std::vector<wire_frame>& frames, std::uint8_t first_opcode) {
  std::string out;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    BOOST_TEST(frames[i].opcode == (i == 0 ? first_opcode : op::continuation));
    BOOST_TEST(frames[i].fin == (i + 1 == frames.size()));
    out += frames[i].payload;
  }
  return out;
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// Frames that fail the connection with 1002

BOOST_AUTO_TEST_CASE(an_unmasked_client_frame_fails_with_1002) {
  expect_rejected(unmasked_frame(op::text, "hello"), 1002, wsl::error::unmasked_frame);
}

BOOST_AUTO_TEST_CASE(an_unmasked_control_frame_fails_with_1002) {
  expect_rejected(unmasked_frame(op::ping, "x"), 1002, wsl::error::unmasked_frame);
}

BOOST_AUTO_TEST_CASE(reserved_bits_fail_with_1002) {
  for (std::uint8_t rsv : {rsv1, rsv2, rsv3, static_cast<std::uint8_t>(rsv1 | rsv3)}) {
    BOOST_TEST_CONTEXT("rsv " << int(rsv)) {
      expect_rejected(client_frame(op::text, "x", true, rsv), 1002, wsl::error::reserved_bits);
      expect_rejected(client_frame(op::ping, "x", true, rsv), 1002, wsl::error::reserved_bits);
    }
  }
}

BOOST_AUTO_TEST_CASE(reserved_opcodes_fail_with_1002) {
  for (std::uint8_t opcode : {0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF}) {
    BOOST_TEST_CONTEXT("opcode " << int(opcode)) {
      expect_rejected(client_frame(opcode, ""), 1002, wsl::error::bad_opcode);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_continuation_without_a_start_fails_with_1002) {
  expect_rejected(client_frame(op::continuation, "orphan"), 1002, wsl::error::unexpected_continuation);
}

BOOST_AUTO_TEST_CASE(a_new_data_frame_inside_a_fragmented_message_fails_with_1002) {
  for (std::uint8_t second : {op::text, op::binary}) {
    BOOST_TEST_CONTEXT("second opcode " << int(second)) {
      expect_rejected(client_frame(op::text, "first half", false) + client_frame(second, "intruder"), 1002,
                      wsl::error::expected_continuation);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_control_frame_over_125_bytes_fails_with_1002) {
  expect_rejected(client_frame(op::ping, std::string(126, 'p')), 1002, wsl::error::control_too_large);
  expect_rejected(client_frame(op::pong, std::string(200, 'p')), 1002, wsl::error::control_too_large);
}

BOOST_AUTO_TEST_CASE(a_fragmented_control_frame_fails_with_1002) {
  expect_rejected(client_frame(op::ping, "part", false), 1002, wsl::error::fragmented_control);
}

BOOST_AUTO_TEST_CASE(a_non_minimal_length_fails_with_1002) {
  // A 5-byte payload announced in the 16-bit form.
  std::string frame = {static_cast<char>(0x81), static_cast<char>(0x80 | 126), 0, 5};
  frame += std::string(default_mask.begin(), default_mask.end());
  frame += "hello";
  expect_rejected(frame, 1002, wsl::error::bad_length);
}

// ------------------------------------------------------------------------------------------------
// Control frames

BOOST_AUTO_TEST_CASE(a_ping_is_answered_with_a_pong_with_the_same_payload) {
  for (const std::string& payload : {std::string(), std::string("ping!"), pattern(125), std::string("\0\xFF\x80", 3)}) {
    BOOST_TEST_CONTEXT("payload of " << payload.size() << " bytes") {
      connection_harness h;
      auto reading = h.spawn(read_whole_message(h.ws));
      h.send(client_frame(op::ping, payload));
      auto frames = h.received();
      BOOST_REQUIRE_EQUAL(frames.size(), 1u);
      BOOST_TEST(frames[0].opcode == op::pong);
      BOOST_TEST(frames[0].fin);
      BOOST_TEST(!frames[0].masked);
      BOOST_TEST(frames[0].payload == payload);
      BOOST_TEST(!reading.done());  // control frames are no messages
    }
  }
}

BOOST_AUTO_TEST_CASE(a_ping_inside_a_fragmented_message_is_answered_and_invisible) {
  connection_harness h;
  auto reading = h.spawn(read_whole_message(h.ws));
  h.send(client_frame(op::text, "Hel", false) + client_frame(op::ping, "p1") +
         client_frame(op::continuation, "lo, ", false) + client_frame(op::pong, "unsolicited") +
         client_frame(op::ping, "p2") + client_frame(op::continuation, "world"));
  BOOST_REQUIRE(reading.done());
  BOOST_TEST(!reading.get().ec);
  BOOST_TEST(reading.get().type == wsl::message_type::text);
  BOOST_TEST(reading.get().data == "Hello, world");
  auto frames = h.received();
  BOOST_REQUIRE_EQUAL(frames.size(), 2u);
  BOOST_TEST(frames[0].opcode == op::pong);
  BOOST_TEST(frames[0].payload == "p1");
  BOOST_TEST(frames[1].opcode == op::pong);
  BOOST_TEST(frames[1].payload == "p2");
}

BOOST_AUTO_TEST_CASE(the_control_callback_sees_every_control_frame) {
  connection_harness h;
  std::vector<std::pair<wsl::control_kind, std::string>> seen;
  h.ws.set_control_callback(
      [&seen](wsl::control_kind kind, std::string_view payload) { seen.emplace_back(kind, std::string(payload)); });
  auto reading = h.spawn(read_whole_message(h.ws));
  h.send(client_frame(op::ping, "a") + client_frame(op::pong, "b") + client_frame(op::close, close_payload(1000)));
  BOOST_REQUIRE(reading.done());
  BOOST_REQUIRE_EQUAL(seen.size(), 3u);
  BOOST_TEST((seen[0] == std::pair{wsl::control_kind::ping, std::string("a")}));
  BOOST_TEST((seen[1] == std::pair{wsl::control_kind::pong, std::string("b")}));
  BOOST_TEST((seen[2] == std::pair{wsl::control_kind::close, close_payload(1000)}));
  h.ws.set_control_callback(nullptr);
}

// ------------------------------------------------------------------------------------------------
// Messages as streams

BOOST_AUTO_TEST_CASE(read_some_returns_only_this_messages_bytes_then_zero) {
  for (std::size_t size : {5u, 1000u, 5000u}) {
    for (std::size_t read_limit : {1u, 7u, 100000u}) {
      BOOST_TEST_CONTEXT("message of " << size << " bytes, reads of at most " << read_limit) {
        connection_harness h;
        h.peer->deliver_in_pieces_of(read_limit);
        const auto first = pattern(size, 'a'), second = pattern(37, 'A');
        auto reading = h.spawn(read_with_read_some(h.ws, 4096));
        h.send(client_frame(op::binary, first) + client_frame(op::text, second));
        BOOST_REQUIRE(reading.done());
        auto& r = reading.get();
        BOOST_TEST(!r.ec);
        BOOST_TEST(r.data == first);
        BOOST_TEST(r.counts.back() == 0u);
        BOOST_TEST(!r.wrote_past_count);
        BOOST_TEST(r.done);
        BOOST_TEST(r.bytes_read == size);
        const auto next = run(h.ctx, read_whole_message(h.ws));
        BOOST_TEST(next.data == second);
        BOOST_TEST(next.type == wsl::message_type::text);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(read_some_with_a_small_buffer_returns_the_message_in_pieces) {
  connection_harness h;
  const auto message = pattern(3000);
  auto reading = h.spawn(read_with_read_some(h.ws, 10));
  h.send(client_frame(op::binary, message.substr(0, 1234), false) +
         client_frame(op::continuation, message.substr(1234)) + client_frame(op::binary, "next"));
  BOOST_REQUIRE(reading.done());
  auto& r = reading.get();
  BOOST_TEST(r.data == message);
  BOOST_TEST(*std::max_element(r.counts.begin(), r.counts.end()) <= 10u);
  BOOST_TEST(!r.wrote_past_count);
  BOOST_TEST(run(h.ctx, read_whole_message(h.ws)).data == "next");
}

BOOST_AUTO_TEST_CASE(a_message_arriving_a_byte_at_a_time_reads_whole) {
  connection_harness h;
  const auto message = pattern(2000);
  const auto bytes = client_frame(op::binary, message.substr(0, 1500), false) + client_frame(op::ping, "p") +
                     client_frame(op::continuation, message.substr(1500));
  auto reading = h.spawn(read_with_read_some(h.ws, 1500));
  for (char c : bytes) h.send(std::string(1, c));
  BOOST_REQUIRE(reading.done());
  BOOST_TEST(reading.get().data == message);
  BOOST_TEST(reading.get().counts.back() == 0u);
}

BOOST_AUTO_TEST_CASE(read_chunk_returns_only_this_messages_bytes_and_fragments_are_invisible) {
  connection_harness h;
  auto reading = h.spawn(read_in_chunks(h.ws));
  h.send(client_frame(op::text, "", false) + client_frame(op::continuation, "one ", false) +
         client_frame(op::continuation, "", false) + client_frame(op::continuation, "two ", false) +
         client_frame(op::continuation, "three") + client_frame(op::text, "next message"));
  BOOST_REQUIRE(reading.done());
  auto& r = reading.get();
  BOOST_TEST(!r.ec);
  BOOST_TEST(!r.empty_chunk_inside);
  std::string joined;
  for (const auto& c : r.chunks) joined += c;
  BOOST_TEST(joined == "one two three");
  BOOST_TEST(run(h.ctx, read_whole_message(h.ws)).data == "next message");
}

BOOST_AUTO_TEST_CASE(an_unread_message_is_skipped_by_the_next_read_message) {
  connection_harness h;
  h.send(client_frame(op::binary, pattern(3000), false) + client_frame(op::continuation, "tail") +
         client_frame(op::text, "wanted"));
  auto first = run(h.ctx, h.ws.read_message());
  BOOST_TEST(first.type() == wsl::message_type::binary);
  BOOST_TEST(!first.done());
  const auto second = run(h.ctx, read_whole_message(h.ws));
  BOOST_TEST(!second.ec);
  BOOST_TEST(second.type == wsl::message_type::text);
  BOOST_TEST(second.data == "wanted");
}

BOOST_AUTO_TEST_CASE(empty_messages_read_as_empty) {
  connection_harness h;
  h.send(client_frame(op::text, "") + client_frame(op::binary, "", false) + client_frame(op::continuation, ""));
  for (auto type : {wsl::message_type::text, wsl::message_type::binary}) {
    const auto r = run(h.ctx, read_with_read_some(h.ws, 16));
    BOOST_TEST(!r.ec);
    BOOST_TEST(r.type == type);
    BOOST_TEST(r.data.empty());
    BOOST_TEST(r.counts == std::vector<std::size_t>{0});
    BOOST_TEST(r.done);
  }
}

// ------------------------------------------------------------------------------------------------
// Limits and payload checks

BOOST_AUTO_TEST_CASE(a_message_over_max_message_size_fails_with_1009_before_its_payload_arrives) {
  auto options = quiet_options();
  options.max_message_size = 100;
  BOOST_TEST_CONTEXT("one frame") {
    connection_harness h(options);
    auto reading = h.spawn(read_whole_message(h.ws));
    const auto frame = client_frame(op::binary, pattern(101));
    h.send(frame.substr(0, frame_header_size(101, true)));  // the header alone
    expect_failed(h, reading, 1009, wsl::error::message_too_large);
  }
  BOOST_TEST_CONTEXT("fragments adding up") {
    connection_harness h(options);
    auto reading = h.spawn(read_whole_message(h.ws));
    const auto second = client_frame(op::continuation, pattern(41));
    h.send(client_frame(op::binary, pattern(60), false) + second.substr(0, frame_header_size(41, true)));
    expect_failed(h, reading, 1009, wsl::error::message_too_large);
  }
  BOOST_TEST_CONTEXT("exactly the limit") {
    connection_harness h(options);
    auto reading = h.spawn(read_whole_message(h.ws));
    h.send(client_frame(op::binary, pattern(60), false) + client_frame(op::continuation, pattern(40)));
    BOOST_REQUIRE(reading.done());
    BOOST_TEST(!reading.get().ec);
    BOOST_TEST(reading.get().data.size() == 100u);
  }
}

BOOST_AUTO_TEST_CASE(invalid_utf8_across_fragments_fails_with_1007_at_the_bad_byte) {
  struct split_case {
    std::string first, second;  // the bad byte is the first of `second`
  };
  const split_case cases[] = {
      {"caf\xC3", "\x28 and more"},           // a continuation byte expected
      {"big \xF4", "\x90\x80\x80 and more"},  // over U+10FFFF
      {"surrogate \xED", "\xA0\x80 and more"},
      {"overlong \xE0", "\x80\x80 and more"},
  };
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT("first fragment ending in byte " << int(static_cast<std::uint8_t>(c.first.back()))) {
      connection_harness h;
      auto reading = h.spawn(read_whole_message(h.ws));
      const auto second = client_frame(op::continuation, c.second);
      // The second fragment is cut right after its first payload byte: nothing after it is needed.
      h.send(client_frame(op::text, c.first, false) + second.substr(0, frame_header_size(c.second.size(), true) + 1));
      expect_failed(h, reading, 1007, wsl::error::invalid_utf8);
    }
  }
}

BOOST_AUTO_TEST_CASE(invalid_utf8_in_one_frame_fails_before_the_rest_of_the_frame_arrives) {
  connection_harness h;
  auto reading = h.spawn(read_whole_message(h.ws));
  const std::string payload = "valid start \xFF" + std::string(500, 'x');
  const auto frame = client_frame(op::text, payload);
  h.send(frame.substr(0, frame_header_size(payload.size(), true) + 13));  // up to and including 0xFF
  expect_failed(h, reading, 1007, wsl::error::invalid_utf8);
}

BOOST_AUTO_TEST_CASE(a_text_message_ending_inside_a_character_fails_with_1007) {
  const std::pair<std::string, std::string> endings[] = {
      {"one frame", client_frame(op::text, "euro \xE2\x82")},
      {"data in the last fragment",
       client_frame(op::text, "euro ", false) + client_frame(op::continuation, "\xE2\x82")},
      {"an empty last fragment", client_frame(op::text, "euro \xE2\x82", false) + client_frame(op::continuation, "")},
  };
  for (const auto& [what, bytes] : endings) {
    BOOST_TEST_CONTEXT(what) { expect_rejected(bytes, 1007, wsl::error::invalid_utf8); }
  }
}

BOOST_AUTO_TEST_CASE(a_character_split_across_fragments_is_valid) {
  connection_harness h;
  auto reading = h.spawn(read_whole_message(h.ws));
  h.send(client_frame(op::text, "\xF0", false) + client_frame(op::continuation, "\x9F", false) +
         client_frame(op::continuation, "\x98", false) + client_frame(op::continuation, "\x80!"));
  BOOST_REQUIRE(reading.done());
  BOOST_TEST(!reading.get().ec);
  BOOST_TEST(reading.get().data == "\xF0\x9F\x98\x80!");
}

BOOST_AUTO_TEST_CASE(binary_messages_are_not_checked_for_utf8) {
  connection_harness h;
  auto reading = h.spawn(read_whole_message(h.ws));
  h.send(client_frame(op::binary, "\xFF\xFE\xC0"));
  BOOST_REQUIRE(reading.done());
  BOOST_TEST(!reading.get().ec);
  BOOST_TEST(reading.get().data == "\xFF\xFE\xC0");
}

// ------------------------------------------------------------------------------------------------
// Writing

namespace {

struct writer_trace {
  std::error_code ec;
  std::vector<std::size_t> frames_after_each_write;  // frames on the wire after each write()
};

// Writes `chunks` through one message_writer and finishes it, noting after each write how many
// bytes the peer had received so far.
asio::awaitable<writer_trace> write_in_chunks(wsl::websocket& ws, wsl::test::memory_stream& peer,
                                              std::vector<std::string> chunks, std::string* wire) {
  writer_trace t;
  auto writer = ws.create_message_writer(wsl::message_type::binary);
  for (const auto& c : chunks) {
    co_await writer.write(asio::buffer(c), t.ec);
    if (t.ec) co_return t;
    *wire += peer.take();
    t.frames_after_each_write.push_back(parse_frames(*wire).size());
  }
  co_await writer.finish(t.ec);
  *wire += peer.take();
  co_return t;
}

}  // namespace

BOOST_AUTO_TEST_CASE(message_writer_sends_fragments_when_its_buffer_fills_and_a_final_frame_on_finish) {
  auto options = quiet_options();
  options.write_buffer_size = 1024;
  connection_harness h(options);
  std::string wire;
  const std::vector<std::string> chunks(25, pattern(100));  // 2500 bytes in writes of 100
  const auto trace = run(h.ctx, write_in_chunks(h.ws, *h.peer, chunks, &wire));
  BOOST_TEST(!trace.ec);
  const auto frames = parse_frames(wire);
  BOOST_TEST(frames.size() >= 3u);
  BOOST_TEST(trace.frames_after_each_write.front() == 0u);  // 100 bytes stay in the buffer
  BOOST_TEST(trace.frames_after_each_write.back() >= 2u);   // 2500 bytes cannot all be buffered
  std::string all;
  for (const auto& c : chunks) all += c;
  BOOST_TEST(reassemble(frames, op::binary) == all);
  for (const auto& f : frames) BOOST_TEST(!f.masked);
}

BOOST_AUTO_TEST_CASE(message_writer_never_holds_more_than_write_buffer_size) {
  // "A message_writer sends a fragment each time this many bytes are buffered": after every write
  // the bytes not yet on the wire are at most write_buffer_size, whatever its value.
  for (std::size_t buffer_size : {1024u, 600u, 1500u}) {
    BOOST_TEST_CONTEXT("write_buffer_size " << buffer_size) {
      auto options = quiet_options();
      options.write_buffer_size = buffer_size;
      connection_harness h(options);
      auto writer = h.ws.create_message_writer(wsl::message_type::binary);
      std::string wire;
      std::size_t written = 0;
      for (int i = 0; i < 40; ++i) {
        std::error_code ec;
        const auto chunk = pattern(100);
        run(h.ctx, writer.write(asio::buffer(chunk), ec));
        BOOST_REQUIRE(!ec);
        written += chunk.size();
        wire += h.peer->take();
        std::size_t on_wire = 0;
        for (const auto& f : parse_frames(wire)) on_wire += f.payload.size();
        if (written - on_wire > buffer_size) {
          BOOST_ERROR(written - on_wire << " bytes held after " << written << " written");
          break;
        }
      }
      std::error_code ec;
      run(h.ctx, writer.finish(ec));
      BOOST_TEST(!ec);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_write_larger_than_the_buffer_goes_out_at_once) {
  auto options = quiet_options();
  options.write_buffer_size = 1024;
  connection_harness h(options);
  auto writer = h.ws.create_message_writer(wsl::message_type::binary);
  std::error_code ec;
  run(h.ctx, writer.write(asio::buffer(std::string_view("small ")), ec));
  BOOST_TEST(h.received().empty());
  const auto large = pattern(5000);
  run(h.ctx, writer.write(asio::buffer(large), ec));
  BOOST_TEST(!ec);
  auto frames = h.received();
  BOOST_REQUIRE_EQUAL(frames.size(), 1u);
  BOOST_TEST(frames[0].opcode == op::binary);
  BOOST_TEST(!frames[0].fin);
  BOOST_TEST(frames[0].payload == "small " + large);  // what was buffered goes first
  run(h.ctx, writer.finish(ec));
  frames = h.received();
  BOOST_REQUIRE_EQUAL(frames.size(), 1u);
  BOOST_TEST(frames[0].opcode == op::continuation);
  BOOST_TEST(frames[0].fin);
}

BOOST_AUTO_TEST_CASE(message_writer_flush_sends_what_is_buffered_as_a_fragment) {
  connection_harness h;
  auto writer = h.ws.create_message_writer(wsl::message_type::text);
  std::error_code ec;
  run(h.ctx, writer.flush(ec));  // nothing buffered: nothing sent
  BOOST_TEST(!ec);
  BOOST_TEST(h.received().empty());
  run(h.ctx, writer.write(asio::buffer(std::string_view("typing")), ec));
  BOOST_TEST(h.received().empty());
  run(h.ctx, writer.flush(ec));
  BOOST_TEST(!ec);
  auto frames = h.received();
  BOOST_REQUIRE_EQUAL(frames.size(), 1u);
  BOOST_TEST(frames[0].opcode == op::text);
  BOOST_TEST(!frames[0].fin);
  BOOST_TEST(frames[0].payload == "typing");
  run(h.ctx, writer.flush(ec));
  BOOST_TEST(h.received().empty());
  run(h.ctx, writer.finish(asio::buffer(std::string_view("...")), ec));
  frames = h.received();
  BOOST_REQUIRE_EQUAL(frames.size(), 1u);
  BOOST_TEST(frames[0].opcode == op::continuation);
  BOOST_TEST(frames[0].fin);
  BOOST_TEST(frames[0].payload == "...");
}

BOOST_AUTO_TEST_CASE(message_writer_finish_with_nothing_buffered_sends_an_empty_final_frame) {
  connection_harness h;
  auto writer = h.ws.create_message_writer(wsl::message_type::text);
  std::error_code ec;
  run(h.ctx, writer.finish(ec));
  BOOST_TEST(!ec);
  BOOST_TEST(writer.finished());
  const auto frames = h.received();
  BOOST_REQUIRE_EQUAL(frames.size(), 1u);
  BOOST_TEST(frames[0].opcode == op::text);
  BOOST_TEST(frames[0].fin);
  BOOST_TEST(frames[0].payload.empty());
}

BOOST_AUTO_TEST_CASE(a_second_concurrent_writer_gets_write_in_progress) {
  connection_harness h;
  auto first = h.ws.create_message_writer(wsl::message_type::text);
  std::error_code ec;
  run(h.ctx, first.write(asio::buffer(std::string_view("first ")), ec));
  BOOST_REQUIRE(!ec);

  auto second = h.ws.create_message_writer(wsl::message_type::binary);
  run(h.ctx, second.write(asio::buffer(std::string_view("intruder")), ec));
  BOOST_TEST(ec == wsl::error::write_in_progress);
  run(h.ctx, second.finish(ec));
  BOOST_TEST(ec == wsl::error::write_in_progress);
  BOOST_TEST(run(h.ctx, write_whole_message(h.ws, wsl::message_type::binary, "also intruder")) ==
             wsl::error::write_in_progress);

  run(h.ctx, first.finish(asio::buffer(std::string_view("message")), ec));
  BOOST_TEST(!ec);
  BOOST_TEST(reassemble(h.received(), op::text) == "first message");

  // Once the first is finished, a new writer may go.
  BOOST_TEST(!run(h.ctx, write_whole_message(h.ws, wsl::message_type::binary, "after")));
  const auto frames = h.received();
  BOOST_REQUIRE_EQUAL(frames.size(), 1u);
  BOOST_TEST(frames[0].payload == "after");
}

BOOST_AUTO_TEST_CASE(pongs_are_sent_while_a_message_is_being_written) {
  connection_harness h;
  auto reading = h.spawn(read_whole_message(h.ws));
  auto writer = h.ws.create_message_writer(wsl::message_type::text);
  std::error_code ec;
  run(h.ctx, writer.write(asio::buffer(std::string_view("part one, ")), ec));
  h.send(client_frame(op::ping, "during"));
  run(h.ctx, writer.finish(asio::buffer(std::string_view("part two")), ec));
  BOOST_TEST(!ec);
  const auto frames = h.received();
  std::vector<wire_frame> data;
  int pongs = 0;
  for (const auto& f : frames) {
    if (f.opcode == op::pong) {
      ++pongs;
      BOOST_TEST(f.payload == "during");
    } else {
      data.push_back(f);
    }
  }
  BOOST_TEST(pongs == 1);
  BOOST_TEST(reassemble(data, op::text) == "part one, part two");
}

// ------------------------------------------------------------------------------------------------
// write_messages(): whole messages in batches

namespace {

// write_messages() of `messages` (kept alive by the coroutine until it completes).
asio::awaitable<std::error_code> write_batch(wsl::websocket& ws,
                                             std::vector<std::pair<wsl::message_type, std::string>> messages) {
  std::vector<wsl::outgoing_message> out;
  for (const auto& [type, data] : messages) out.push_back({type, asio::buffer(data)});
  std::error_code ec;
  co_await ws.write_messages(out, ec);
  co_return ec;
}

}  // namespace

BOOST_AUTO_TEST_CASE(write_messages_sends_each_message_as_one_frame_in_few_writes) {
  connection_harness h;
  // 100 small messages, one larger than a batch (70 KiB), then 49 of which some are over the size
  // that is copied beside its header (512 bytes) and go as buffers of their own.
  std::vector<std::pair<wsl::message_type, std::string>> messages;
  for (int i = 0; i < 150; ++i) {
    const auto type = i % 3 == 0 ? wsl::message_type::binary : wsl::message_type::text;
    const std::size_t size = i == 100 ? 70 << 10 : i > 100 && i % 7 == 0 ? 600 + i : static_cast<std::size_t>(i % 13);
    messages.emplace_back(type, pattern(size, static_cast<char>('a' + i % 20)));
  }
  const auto writes_before = h.peer->other_write_count();
  BOOST_TEST(!run(h.ctx, write_batch(h.ws, messages)));
  // Batches of 64: 64 + 36 before the large one, which goes alone, then 49.
  BOOST_TEST(h.peer->other_write_count() - writes_before == 4u);
  const auto frames = h.received();
  BOOST_REQUIRE_EQUAL(frames.size(), messages.size());
  std::uint64_t wire = 0;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    BOOST_TEST_CONTEXT("message " << i) {
      BOOST_TEST(frames[i].opcode == (messages[i].first == wsl::message_type::text ? op::text : op::binary));
      BOOST_TEST(frames[i].fin);
      BOOST_TEST(!frames[i].masked);
      BOOST_TEST(frames[i].rsv == 0);
      BOOST_TEST(frames[i].payload == messages[i].second);
    }
    wire += frames[i].payload.size() + (frames[i].payload.size() < 126 ? 2 : frames[i].payload.size() < 65536 ? 4 : 10);
  }
  BOOST_TEST(h.ws.bytes_sent() == wire);
}

BOOST_AUTO_TEST_CASE(write_messages_from_a_client_masks_each_frame_with_its_own_key) {
  connection_harness h(quiet_options(), wsl::role::client);
  std::vector<std::pair<wsl::message_type, std::string>> messages;
  for (int i = 0; i < 10; ++i) messages.emplace_back(wsl::message_type::binary, pattern(i == 5 ? 3000 : 20 + i));
  BOOST_TEST(!run(h.ctx, write_batch(h.ws, messages)));
  BOOST_TEST(h.peer->other_write_count() == 1u);
  const auto frames = h.received();
  BOOST_REQUIRE_EQUAL(frames.size(), messages.size());
  std::set<std::array<std::uint8_t, 4>> keys;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    BOOST_TEST(frames[i].masked);
    keys.insert(frames[i].mask);
    BOOST_TEST(frames[i].payload == messages[i].second);
  }
  BOOST_TEST(keys.size() == messages.size());
}

BOOST_AUTO_TEST_CASE(write_messages_waits_its_turn_behind_a_writer_and_fails_on_a_closed_connection) {
  connection_harness h;
  const std::vector<std::pair<wsl::message_type, std::string>> two = {{wsl::message_type::text, "one"},
                                                                      {wsl::message_type::text, "two"}};
  auto writer = h.ws.create_message_writer(wsl::message_type::text);
  std::error_code ec;
  run(h.ctx, writer.write(asio::buffer(std::string_view("unfinished")), ec));
  BOOST_REQUIRE(!ec);
  BOOST_TEST(run(h.ctx, write_batch(h.ws, two)) == wsl::error::write_in_progress);
  run(h.ctx, writer.finish(ec));
  BOOST_TEST(reassemble(h.received(), op::text) == "unfinished");
  BOOST_TEST(!run(h.ctx, write_batch(h.ws, two)));
  BOOST_TEST(h.received().size() == 2u);

  auto closing = h.spawn(close_websocket(h.ws, 1000));
  h.send(client_frame(op::close, std::string("\x03\xe8", 2)));
  BOOST_REQUIRE(closing.done());
  BOOST_TEST(run(h.ctx, write_batch(h.ws, two)) == wsl::condition::closed);
}

// ------------------------------------------------------------------------------------------------
// Between messages: an idle connection does not hold the large receive buffer

namespace {

std::string joined(const chunked_result& r) {
  std::string all;
  for (const auto& c : r.chunks) all += c;
  return all;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_connection_quiet_between_messages_gives_back_its_large_buffer) {
  connection_harness h;  // no pings, no idle timeout: the buffer goes back all the same
  const auto big = pattern(100000);
  for (int round = 0; round < 2; ++round) {
    // read_chunk() hands out the receive buffer itself, so it has grown to hold big pieces.
    auto reading = h.spawn(read_in_chunks(h.ws));
    h.send(client_frame(op::binary, big));
    BOOST_REQUIRE(reading.done());
    BOOST_TEST(!reading.get().ec);
    BOOST_TEST(joined(reading.get()) == big);
    BOOST_TEST(reading.get().chunks.size() < 10u, "the buffer did not grow");

    auto next = h.spawn(read_whole_message(h.ws));
    h.settle();
    BOOST_TEST(h.peer->other_read_capacity() > 4096u);  // right after the traffic: kept
    h.advance(std::chrono::milliseconds(900));
    BOOST_TEST(h.peer->other_read_capacity() > 4096u);
    h.advance(std::chrono::milliseconds(200));
    // Quiet for a second: the wait goes on with the small inline buffer (256 bytes).
    BOOST_TEST(h.peer->other_read_capacity() <= 256u);
    BOOST_TEST(!next.done());
    h.send(client_frame(op::text, "after"));
    BOOST_REQUIRE(next.done());
    BOOST_TEST(!next.get().ec);
    BOOST_TEST(next.get().data == "after");
  }
}

BOOST_AUTO_TEST_CASE(a_connection_giving_back_its_buffer_still_completes_a_close_handshake) {
  connection_harness h;
  auto reading = h.spawn(read_in_chunks(h.ws));
  h.send(client_frame(op::binary, pattern(100000)));
  BOOST_REQUIRE(reading.done());
  auto next = h.spawn(read_whole_message(h.ws));
  h.settle();
  h.advance(std::chrono::milliseconds(1100));
  BOOST_REQUIRE(h.peer->other_read_capacity() <= 256u);
  h.send(client_frame(op::close, close_payload(1000)));
  BOOST_REQUIRE(next.done());
  BOOST_TEST(next.get().ec == wsl::error::closed);
  const auto frames = h.received();
  BOOST_REQUIRE_EQUAL(frames.size(), 1u);
  BOOST_TEST(frames[0].close_code() == 1000);
}

// ------------------------------------------------------------------------------------------------
// A peer that pipelines: answers to messages already buffered leave together (the cork)

namespace {

// Echoes `count` messages, then stops reading.
asio::awaitable<std::error_code> echo_messages(wsl::websocket& ws, int count) {
  std::error_code ec;
  for (int i = 0; i < count && !ec; ++i) {
    auto reader = co_await ws.read_message(ec);
    if (ec) break;
    const auto type = reader.type();
    const auto data = co_await reader.read_all(ec);
    if (ec) break;
    co_await ws.write_message(type, asio::buffer(data), ec);
  }
  co_return ec;
}

// `count` frames in one piece; masked = false for frames from a server.
std::string pipelined(int count, std::uint8_t opcode = op::text, bool masked = true) {
  std::string bytes;
  for (int i = 0; i < count; ++i) {
    const auto payload = "message " + std::to_string(i);
    bytes += masked ? client_frame(opcode, payload) : unmasked_frame(opcode, payload);
  }
  return bytes;
}

// Answers one message, then closes at once: its answer is still corked when close() starts.
asio::awaitable<std::error_code> echo_one_then_close(wsl::websocket& ws) {
  std::error_code ec;
  auto reader = co_await ws.read_message(ec);
  if (ec) co_return ec;
  const auto data = co_await reader.read_all(ec);
  if (ec) co_return ec;
  co_await ws.write_message(wsl::message_type::text, asio::buffer(data), ec);
  if (ec) co_return ec;
  co_await ws.close(1000, "done", ec);
  co_return ec;
}

}  // namespace

BOOST_AUTO_TEST_CASE(echoes_of_pipelined_messages_leave_in_one_write_in_order) {
  connection_harness h;
  auto echoing = h.spawn(echo_messages(h.ws, 5));
  const auto writes_before = h.peer->other_write_count();
  h.send(pipelined(5));
  BOOST_REQUIRE(echoing.done());
  BOOST_TEST(!echoing.get());
  const auto frames = h.received();
  BOOST_REQUIRE_EQUAL(frames.size(), 5u);
  for (std::size_t i = 0; i < frames.size(); ++i) {
    BOOST_TEST(frames[i].opcode == op::text);
    BOOST_TEST(frames[i].fin);
    BOOST_TEST(!frames[i].masked);
    BOOST_TEST(frames[i].payload == "message " + std::to_string(i));
  }
  BOOST_TEST(h.peer->other_write_count() - writes_before == 1u);
}

BOOST_AUTO_TEST_CASE(a_message_that_arrives_alone_is_answered_by_a_write_of_its_own) {
  connection_harness h;
  auto echoing = h.spawn(echo_messages(h.ws, 3));
  for (int i = 0; i < 3; ++i) {
    const auto writes_before = h.peer->other_write_count();
    h.send(client_frame(op::binary, "alone"));
    BOOST_TEST(h.peer->other_write_count() - writes_before == 1u);
    const auto frames = h.received();
    BOOST_REQUIRE_EQUAL(frames.size(), 1u);
    BOOST_TEST(frames[0].payload == "alone");
  }
  BOOST_TEST(echoing.done());
}

BOOST_AUTO_TEST_CASE(a_client_corks_masked_frames_each_with_its_own_key) {
  connection_harness h(quiet_options(), wsl::role::client);
  auto echoing = h.spawn(echo_messages(h.ws, 4));
  h.send(pipelined(4, op::binary, false));
  BOOST_REQUIRE(echoing.done());
  BOOST_TEST(!echoing.get());
  const auto frames = h.received();
  BOOST_REQUIRE_EQUAL(frames.size(), 4u);
  std::set<std::array<std::uint8_t, 4>> keys;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    BOOST_TEST(frames[i].masked);
    keys.insert(frames[i].mask);
    BOOST_TEST(frames[i].opcode == op::binary);
    BOOST_TEST(frames[i].payload == "message " + std::to_string(i));
  }
  BOOST_TEST(keys.size() == 4u);
  BOOST_TEST(h.peer->other_write_count() == 1u);
}

BOOST_AUTO_TEST_CASE(a_corked_answer_goes_out_even_when_the_reader_stops) {
  connection_harness h;
  // Reads one of the two messages, answers it and reads no further: its answer must not wait for
  // a read that never comes.
  auto echoing = h.spawn(echo_messages(h.ws, 1));
  h.send(pipelined(2));
  BOOST_REQUIRE(echoing.done());
  const auto frames = h.received();
  BOOST_REQUIRE_EQUAL(frames.size(), 1u);
  BOOST_TEST(frames[0].payload == "message 0");
  // The second message is still there for the next reader.
  auto reading = h.spawn(read_whole_message(h.ws));
  h.settle();
  BOOST_REQUIRE(reading.done());
  BOOST_TEST(reading.get().data == "message 1");
}

BOOST_AUTO_TEST_CASE(a_pong_keeps_its_place_between_corked_answers) {
  connection_harness h;
  auto echoing = h.spawn(echo_messages(h.ws, 2));
  h.send(client_frame(op::text, "first") + client_frame(op::ping, "between") + client_frame(op::text, "second"));
  BOOST_REQUIRE(echoing.done());
  const auto frames = h.received();
  BOOST_REQUIRE_EQUAL(frames.size(), 3u);
  BOOST_TEST(frames[0].payload == "first");
  BOOST_TEST(frames[1].opcode == op::pong);
  BOOST_TEST(frames[1].payload == "between");
  BOOST_TEST(frames[2].payload == "second");
}

BOOST_AUTO_TEST_CASE(a_close_goes_out_behind_the_corked_answers) {
  connection_harness h;
  BOOST_REQUIRE(h.peer->inject(pipelined(2)));  // both messages are there before the first read
  auto closing = h.spawn(echo_one_then_close(h.ws));
  h.settle();
  const auto frames = h.received();
  BOOST_REQUIRE_EQUAL(frames.size(), 2u);
  BOOST_TEST(frames[0].payload == "message 0");
  BOOST_TEST(frames[1].is_close());
  BOOST_TEST(frames[1].close_code() == 1000);
  BOOST_TEST(h.peer->other_write_count() == 1u);  // the close took the corked answer along
  BOOST_TEST(!closing.done());                    // it waits for the peer's close
}

// ------------------------------------------------------------------------------------------------
// The client role

BOOST_AUTO_TEST_CASE(a_client_masks_every_frame_with_a_fresh_key) {
  auto options = quiet_options();
  options.write_buffer_size = 256;
  connection_harness h(options, wsl::role::client);
  auto reading = h.spawn(read_whole_message(h.ws));
  std::vector<std::string> sent;
  for (int i = 0; i < 8; ++i) {
    sent.push_back(pattern(10 + i * 50, static_cast<char>('a' + i)));
    BOOST_REQUIRE(!run(h.ctx, write_whole_message(h.ws, wsl::message_type::binary, sent.back())));
  }
  // A fragmented message and a pong.
  std::error_code ec;
  auto writer = h.ws.create_message_writer(wsl::message_type::text);
  const auto long_text = pattern(1000);
  run(h.ctx, writer.write(asio::buffer(long_text), ec));
  run(h.ctx, writer.finish(ec));
  BOOST_TEST(!ec);
  // A small frame made of two parts: what the writer holds and what finish() adds.
  auto small_writer = h.ws.create_message_writer(wsl::message_type::text);
  const std::string part_one = "part one, ", part_two = "part two";
  run(h.ctx, small_writer.write(asio::buffer(part_one), ec));
  run(h.ctx, small_writer.finish(asio::buffer(part_two), ec));
  BOOST_TEST(!ec);
  h.send(unmasked_frame(op::ping, "from server"));

  const auto frames = h.received();
  std::set<std::array<std::uint8_t, 4>> keys;
  std::size_t data_frames = 0;
  std::string text;
  bool pong_seen = false;
  for (const auto& f : frames) {
    BOOST_TEST(f.masked);
    keys.insert(f.mask);
    if (f.opcode == op::pong) {
      pong_seen = true;
      BOOST_TEST(f.payload == "from server");
    } else if (data_frames < sent.size()) {
      BOOST_TEST(f.payload == sent[data_frames++]);
    } else {
      text += f.payload;
    }
  }
  BOOST_TEST(pong_seen);
  BOOST_TEST(text == long_text + part_one + part_two);
  BOOST_REQUIRE(!frames.empty());
  const auto& last_data = frames.back().opcode == op::pong ? frames[frames.size() - 2] : frames.back();
  BOOST_TEST(last_data.payload == part_one + part_two);
  // Random 32-bit keys: a repeat among these few frames would be a 1 in 10^7 event.
  BOOST_TEST(keys.size() == frames.size());
  // A key of all zeroes would leave the payload readable on the wire.
  BOOST_TEST(!keys.contains(std::array<std::uint8_t, 4>{0, 0, 0, 0}));
}

BOOST_AUTO_TEST_CASE(a_client_rejects_a_masked_server_frame_with_1002) {
  connection_harness h(quiet_options(), wsl::role::client);
  auto reading = h.spawn(read_whole_message(h.ws));
  h.send(client_frame(op::text, "masked by a server"));
  const auto frames = h.received();
  BOOST_REQUIRE_EQUAL(frames.size(), 1u);
  BOOST_TEST(frames[0].is_close());
  BOOST_TEST(frames[0].masked);
  BOOST_TEST(frames[0].close_code() == 1002);
  h.peer->close();
  h.settle();
  BOOST_REQUIRE(reading.done());
  BOOST_TEST(reading.get().ec == wsl::error::masked_frame);
}

BOOST_AUTO_TEST_CASE(a_client_reads_unmasked_server_frames) {
  connection_harness h(quiet_options(), wsl::role::client);
  auto reading = h.spawn(read_whole_message(h.ws));
  h.send(unmasked_frame(op::text, "from ", false) + unmasked_frame(op::continuation, "server"));
  BOOST_REQUIRE(reading.done());
  BOOST_TEST(!reading.get().ec);
  BOOST_TEST(reading.get().data == "from server");
}
