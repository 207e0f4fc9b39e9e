// Message extensions (RFC 6455 section 9) through the public interface only: a third-party extension
// written here ("x-xor", RSV2) negotiated beside permessage-deflate, and permessage-deflate (RFC 7692)
// streaming at unit level, over a memory pipe negotiated by wsl::accept_websocket. Compressed data is
// made and checked with zlib directly, so that a bug in wsl's deflate cannot cancel itself out.
#include "wsl/extension.hpp"
#include "wsl/client.hpp"
#include "wsl/deflate.hpp"
#include "wsl/listener.hpp"
#include "wsl/websocket.hpp"

#define BOOST_TEST_MODULE extension
#include <boost/test/unit_test.hpp>

#include "accept.hpp"
#include "connection_harness.hpp"
#include "memory_transport.hpp"
#include "run_coroutine.hpp"
#include "test_printing.hpp"
#include "wire_frames.hpp"
#include "zlib_peer.hpp"

#include <zlib.h>
#include <asio/this_coro.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

using namespace wsl::test;

namespace {

// ------------------------------------------------------------------------------------------------
// "x-xor": a third-party extension. Every payload byte is XORed with a key (1 to 255) that the
// client offers as a parameter ("x-xor; key=42"); the server answers with the same key, or with
// its own when the offer has none. Transformed messages carry RSV2 on their first frame.

constexpr std::uint8_t xor_rsv = 0x20;  // RSV2

struct xor_counts {
  std::atomic<int> encoded{0}, decoded{0};
};

class xor_transform final : public wsl::payload_transform {
 public:
  explicit xor_transform(std::uint8_t key) : key_(key) {}
  result process(const std::uint8_t* in, std::size_t in_size, std::uint8_t* out, std::size_t out_size, bool last,
                 std::error_code&) override {
    const auto n = std::min(in_size, out_size);
    for (std::size_t i = 0; i < n; ++i) out[i] = in[i] ^ key_;
    return {n, n, last && n == in_size};
  }

 private:
  std::uint8_t key_;
};

class xor_extension final : public wsl::message_extension {
 public:
  xor_extension(std::uint8_t key, std::shared_ptr<xor_counts> counts)
      : key_(key), encoder_(key), decoder_(key), counts_(std::move(counts)) {}
  std::uint8_t rsv_bits() const noexcept override { return xor_rsv; }
  wsl::payload_transform* begin_decode(std::uint8_t rsv) override {
    if (rsv != xor_rsv) return nullptr;  // a message without RSV2 is read as it is
    ++counts_->decoded;
    return &decoder_;
  }
  wsl::payload_transform* begin_encode(wsl::message_type, std::optional<std::uint64_t>, std::uint8_t& rsv) override {
    ++counts_->encoded;
    rsv = xor_rsv;
    return &encoder_;
  }
  std::string description() const override { return "x-xor; key=" + std::to_string(key_); }

 private:
  std::uint8_t key_;
  xor_transform encoder_, decoder_;
  std::shared_ptr<xor_counts> counts_;
};

// The key of an offer or answer: 1 to 255; 0 when absent; nullopt when malformed or when the element
// has another parameter.
std::optional<int> xor_key(const wsl::extension_offer& e) {
  int key = 0;
  for (const auto& [name, value] : e.params) {
    if (name != "key" || !value) return std::nullopt;
    const auto [end, ec] = std::from_chars(value->data(), value->data() + value->size(), key);
    if (ec != std::errc() || end != value->data() + value->size() || key < 1 || key > 255) return std::nullopt;
  }
  return key;
}

class xor_factory final : public wsl::message_extension_factory {
 public:
  // `key`: what a client offers, and what a server answers to an offer without one. `answer_key`
  // makes a misbehaving server that answers with another key than offered.
  explicit xor_factory(int key, int answer_key = 0) : key_(key), answer_key_(answer_key) {}
  std::string_view name() const noexcept override { return "x-xor"; }

  std::unique_ptr<wsl::message_extension> accept(const std::vector<wsl::extension_offer>& offers,
                                                 wsl::extension_offer& response) const override {
    for (const auto& offer : offers) {
      auto key = xor_key(offer);
      if (!key) continue;  // declined; the next offer may do
      if (*key == 0) key = key_;
      if (answer_key_ != 0) key = answer_key_;
      response = {"x-xor", {{"key", std::to_string(*key)}}};
      return std::make_unique<xor_extension>(static_cast<std::uint8_t>(*key), counts);
    }
    return nullptr;
  }
  std::vector<wsl::extension_offer> offer() const override { return {{"x-xor", {{"key", std::to_string(key_)}}}}; }
  std::unique_ptr<wsl::message_extension> on_response(const wsl::extension_offer& response,
                                                      std::error_code& ec) const override {
    const auto key = xor_key(response);
    if (!key || *key != key_) {
      ec = wsl::error::bad_extension;
      return nullptr;
    }
    return std::make_unique<xor_extension>(static_cast<std::uint8_t>(*key), counts);
  }

  std::shared_ptr<xor_counts> counts = std::make_shared<xor_counts>();

 private:
  int key_;
  int answer_key_;
};

std::string xored(std::string s, std::uint8_t key) {
  for (auto& c : s) c = static_cast<char>(static_cast<std::uint8_t>(c) ^ key);
  return s;
}

// ------------------------------------------------------------------------------------------------
// zlib, as an independent peer (zlib_peer.hpp)

// One message as zlib deflates it for the frames, the 00 00 ff ff tail removed: a sync flush must
// have ended with that tail (RFC 7692 section 7.2.1), or the test's own peer is not what it claims.
std::string deflated(zlib_deflater& d, std::string_view data) {
  auto out = d.sync_flush(data);
  BOOST_REQUIRE(ends_with_sync_tail(out));
  out.resize(out.size() - 4);
  return out;
}

std::string random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(gen() & 0xff);
  return s;
}

std::string words(std::size_t n) {
  static const char* const list[] = {"stream ", "frame ", "window ", "deflate ", "context ", "takeover "};
  std::string s;
  for (std::size_t i = 0; s.size() < n; ++i) s += list[(i * 7 + (i >> 3)) % 6];
  s.resize(n);
  return s;
}

// ------------------------------------------------------------------------------------------------
// A server websocket negotiated by wsl::accept_websocket from a raw request, the test playing the
// client on the other end of a memory pipe.

wsl::listener_options server_options(std::vector<std::shared_ptr<const wsl::message_extension_factory>> extensions,
                                     wsl::connection_options connection = quiet_options()) {
  wsl::listener_options o;
  o.connection = connection;
  o.connection.extensions = std::move(extensions);
  return o;
}

class negotiated : public connection_harness {
 public:
  // Negotiates with a request carrying one Sec-WebSocket-Extensions field per element of `offers`.
  negotiated(const wsl::listener_options& options, const std::vector<std::string>& offers)
      : connection_harness(pipe_only{}) {
    auto accepting = spawn(accept_on(std::move(stream_), options));
    std::string request =
        "GET / HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
    for (const auto& offer : offers) request += "Sec-WebSocket-Extensions: " + offer + "\r\n";
    BOOST_REQUIRE(peer->inject(request + "\r\n"));
    BOOST_REQUIRE(run_until(ctx, [&] { return accepting.done(); }));
    BOOST_REQUIRE(!accepting.get().ec);
    ws = std::move(accepting.get().ws);
    response = peer->take();
    const auto end = response.find("\r\n\r\n");
    BOOST_REQUIRE(end != std::string::npos);
    BOOST_REQUIRE(response.starts_with("HTTP/1.1 101 "));
    response.resize(end + 2);
    for (std::size_t at = 0; (at = response.find("\r\n", at)) != std::string::npos;) {
      at += 2;
      constexpr std::string_view field = "Sec-WebSocket-Extensions: ";
      if (response.compare(at, field.size(), field) == 0) {
        BOOST_REQUIRE_MESSAGE(!extensions, "two Sec-WebSocket-Extensions fields in the response");
        extensions = response.substr(at + field.size(), response.find("\r\n", at) - at - field.size());
      }
    }
  }

  // The next whole message the server sent: its frames.
  std::vector<wire_frame> received_message() {
    auto frames = received();
    BOOST_REQUIRE(!frames.empty());
    BOOST_REQUIRE(frames.back().fin);
    return frames;
  }

  std::string response;                   // the HTTP response head
  std::optional<std::string> extensions;  // its Sec-WebSocket-Extensions
};

std::string payload_of(const std::vector<wire_frame>& frames) {
  std::string out;
  for (const auto& f : frames) out += f.payload;
  return out;
}

// The connection failed with `code` after a read that ended with `reason`.
void expect_failed(negotiated& n, task<message_result>& reading, std::uint16_t code, wsl::error reason) {
  const auto frames = n.received();
  BOOST_REQUIRE(!frames.empty());
  BOOST_TEST(frames.back().is_close());
  BOOST_TEST(frames.back().close_code() == code);
  n.peer->shutdown_send();
  n.ctx.restart();
  run_until_idle(n.ctx);
  BOOST_REQUIRE(reading.done());
  BOOST_TEST(reading.get().ec == reason);
}

std::shared_ptr<const wsl::message_extension_factory> deflate_with(wsl::deflate_options o = {}) {
  return std::make_shared<wsl::deflate_factory>(o);
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// Negotiating a third-party extension beside permessage-deflate

BOOST_AUTO_TEST_CASE(a_third_party_extension_is_negotiated_with_its_parameter) {
  auto xor_ext = std::make_shared<xor_factory>(90);
  negotiated n(server_options({deflate_with(), xor_ext}), {"x-xor; key=42"});
  BOOST_TEST(n.extensions.value_or("(none)") == "x-xor; key=42");
}

BOOST_AUTO_TEST_CASE(the_server_fills_in_a_parameter_the_offer_left_out) {
  negotiated n(server_options({deflate_with(), std::make_shared<xor_factory>(90)}), {"x-xor"});
  BOOST_TEST(n.extensions.value_or("(none)") == "x-xor; key=90");
}

BOOST_AUTO_TEST_CASE(the_servers_order_of_extensions_decides_and_only_one_is_used) {
  const std::vector<std::string> both = {"x-xor; key=42, permessage-deflate"};
  {
    negotiated n(server_options({deflate_with(), std::make_shared<xor_factory>(90)}), both);
    BOOST_TEST(n.extensions.value_or("(none)") == "permessage-deflate");
  }
  {
    negotiated n(server_options({std::make_shared<xor_factory>(90), deflate_with()}), both);
    BOOST_TEST(n.extensions.value_or("(none)") == "x-xor; key=42");
  }
  {  // offered in two header fields
    negotiated n(server_options({std::make_shared<xor_factory>(90), deflate_with()}),
                 {"permessage-deflate", "x-xor; key=7"});
    BOOST_TEST(n.extensions.value_or("(none)") == "x-xor; key=7");
  }
}

BOOST_AUTO_TEST_CASE(offers_the_factory_declines_are_left_out) {
  const std::vector<std::string> declined = {"x-xor; key=0", "x-xor; key=256", "x-xor; key=abc", "x-xor; key",
                                             "x-xor; colour=red"};
  for (const auto& offer : declined) {
    BOOST_TEST_CONTEXT(offer) {
      negotiated n(server_options({deflate_with(), std::make_shared<xor_factory>(90)}), {offer});
      BOOST_TEST(!n.extensions);
    }
  }
  BOOST_TEST_CONTEXT("a good offer behind a declined one") {
    negotiated n(server_options({std::make_shared<xor_factory>(90)}), {"x-xor; key=300, x-xor; key=7"});
    BOOST_TEST(n.extensions.value_or("(none)") == "x-xor; key=7");
  }
  BOOST_TEST_CONTEXT("declined x-xor, then permessage-deflate") {
    negotiated n(server_options({std::make_shared<xor_factory>(90), deflate_with()}),
                 {"x-xor; key=0, permessage-deflate"});
    BOOST_TEST(n.extensions.value_or("(none)") == "permessage-deflate");
  }
}

// ------------------------------------------------------------------------------------------------
// Messages through the third-party extension

BOOST_AUTO_TEST_CASE(messages_are_transformed_both_ways) {
  auto factory = std::make_shared<xor_factory>(90);
  negotiated n(server_options({deflate_with(), factory}), {"x-xor; key=42"});
  auto reading = n.spawn(read_whole_message(n.ws));
  n.send(client_frame(op::text, xored("hello, x-xor", 42), true, rsv2));
  BOOST_REQUIRE(reading.done());
  BOOST_TEST(!reading.get().ec);
  BOOST_TEST(reading.get().type == wsl::message_type::text);
  BOOST_TEST(reading.get().data == "hello, x-xor");  // UTF-8 is checked after the transform

  BOOST_TEST(!run(n.ctx, write_whole_message(n.ws, wsl::message_type::binary, "and back")));
  const auto frames = n.received_message();
  BOOST_REQUIRE_EQUAL(frames.size(), 1u);
  BOOST_TEST(frames[0].opcode == op::binary);
  BOOST_TEST(frames[0].rsv == xor_rsv);
  BOOST_TEST(frames[0].payload == xored("and back", 42));
  BOOST_TEST(factory->counts->decoded == 1);
  BOOST_TEST(factory->counts->encoded == 1);
}

BOOST_AUTO_TEST_CASE(rsv2_is_on_the_first_frame_only_both_ways) {
  auto options = quiet_options();
  options.write_buffer_size = 256;
  negotiated n(server_options({std::make_shared<xor_factory>(90)}, options), {"x-xor; key=42"});
  // In: a message in three fragments, RSV2 on the first.
  const auto message = words(1000);
  const auto wire = xored(message, 42);
  auto reading = n.spawn(read_whole_message(n.ws));
  n.send(client_frame(op::text, wire.substr(0, 300), false, rsv2) +
         client_frame(op::continuation, wire.substr(300, 300), false) +
         client_frame(op::continuation, wire.substr(600)));
  BOOST_REQUIRE(reading.done());
  BOOST_TEST(!reading.get().ec);
  BOOST_TEST(reading.get().data == message);

  // Out: a message larger than the write buffer goes in several frames.
  BOOST_TEST(!run(n.ctx, write_whole_message(n.ws, wsl::message_type::text, message)));
  const auto frames = n.received_message();
  BOOST_TEST(frames.size() >= 4u);
  for (std::size_t i = 0; i < frames.size(); ++i) {
    BOOST_TEST_CONTEXT("frame " << i) {
      BOOST_TEST(frames[i].rsv == (i == 0 ? xor_rsv : 0));
      BOOST_TEST(frames[i].opcode == (i == 0 ? op::text : op::continuation));
    }
  }
  BOOST_TEST(payload_of(frames) == wire);
}

BOOST_AUTO_TEST_CASE(a_message_without_rsv2_passes_untransformed) {
  auto factory = std::make_shared<xor_factory>(90);
  negotiated n(server_options({factory}), {"x-xor; key=42"});
  auto reading = n.spawn(read_whole_message(n.ws));
  n.send(client_frame(op::binary, "as it is", false) + client_frame(op::continuation, ", all of it"));
  BOOST_REQUIRE(reading.done());
  BOOST_TEST(!reading.get().ec);
  BOOST_TEST(reading.get().data == "as it is, all of it");
  BOOST_TEST(factory->counts->decoded == 0);
}

BOOST_AUTO_TEST_CASE(misplaced_rsv_bits_fail_with_1002) {
  struct bad_case {
    const char* what;
    std::string bytes;
  };
  const bad_case cases[] = {
      {"RSV2 on a continuation", client_frame(op::text, xored("a", 42), false, rsv2) +
                                     client_frame(op::continuation, xored("b", 42), true, rsv2)},
      {"RSV2 on a ping", client_frame(op::ping, "p", true, rsv2)},
      {"RSV1, which x-xor does not use", client_frame(op::text, "x", true, rsv1)},
      {"RSV3", client_frame(op::text, "x", true, rsv3)},
  };
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.what) {
      negotiated n(server_options({deflate_with(), std::make_shared<xor_factory>(90)}), {"x-xor; key=42"});
      auto reading = n.spawn(read_whole_message(n.ws));
      n.send(c.bytes);
      expect_failed(n, reading, 1002, wsl::error::reserved_bits);
    }
  }
}

BOOST_AUTO_TEST_CASE(rsv2_without_the_extension_fails_with_1002) {
  // The server has x-xor, but the client did not offer it.
  negotiated n(server_options({std::make_shared<xor_factory>(90)}), {});
  BOOST_TEST(!n.extensions);
  auto reading = n.spawn(read_whole_message(n.ws));
  n.send(client_frame(op::text, xored("x", 42), true, rsv2));
  expect_failed(n, reading, 1002, wsl::error::reserved_bits);
}

// ------------------------------------------------------------------------------------------------
// The client side of the third-party extension, through wsl::connect and a listener on loopback

namespace {

struct client_outcome {
  std::error_code ec;
  std::string extensions;  // the response's Sec-WebSocket-Extensions
  std::string echo;
};

asio::awaitable<void> echo_one(wsl::listener& l) {
  std::error_code ec;
  auto ws = co_await l.accept(ec);
  if (ec) co_return;
  auto in = co_await read_whole_message(ws);
  if (in.ec) co_return;
  co_await ws.write_message(in.type, asio::buffer(in.data), ec);
  co_await ws.close(1000, {}, ec);
}

asio::awaitable<client_outcome> connect_and_echo(std::string url, wsl::client_options options) {
  client_outcome r;
  wsl::connect_report report;
  auto executor = co_await asio::this_coro::executor;
  auto ws = co_await wsl::connect(executor, url, options, r.ec, &report);
  if (r.ec) co_return r;
  r.extensions = std::string(report.response_headers.get("Sec-WebSocket-Extensions").value_or(""));
  co_await ws.write_message(wsl::message_type::text, asio::buffer(std::string_view("over TCP")), r.ec);
  if (r.ec) co_return r;
  auto in = co_await read_whole_message(ws);
  r.ec = in.ec;
  r.echo = in.data;
  std::error_code ignored;
  co_await ws.close(1000, {}, ignored);
  co_return r;
}

client_outcome round_trip(std::shared_ptr<xor_factory> server, std::shared_ptr<xor_factory> client) {
  asio::io_context ctx;
  wsl::listener l(ctx.get_executor(), server_options({server}));
  BOOST_REQUIRE(!l.start({asio::ip::make_address("127.0.0.1"), 0}));
  auto serving = spawn(ctx, echo_one(l));
  wsl::client_options options;
  options.connection = quiet_options();
  options.connection.extensions = {client};
  const auto url = "ws://127.0.0.1:" + std::to_string(l.local_endpoint().port()) + "/";
  auto outcome = run(ctx, connect_and_echo(url, options));
  l.stop();
  run_until(ctx, [&] { return serving.done(); });
  return outcome;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_client_negotiates_the_extension_through_wsl_connect) {
  auto server = std::make_shared<xor_factory>(90);
  auto client = std::make_shared<xor_factory>(42);
  const auto r = round_trip(server, client);
  BOOST_TEST(!r.ec);
  BOOST_TEST(r.extensions == "x-xor; key=42");
  BOOST_TEST(r.echo == "over TCP");
  BOOST_TEST(client->counts->encoded == 1);
  BOOST_TEST(client->counts->decoded == 1);
  BOOST_TEST(server->counts->decoded == 1);
  BOOST_TEST(server->counts->encoded == 1);
}

BOOST_AUTO_TEST_CASE(a_client_refuses_an_answer_its_factory_rejects) {
  const auto r = round_trip(std::make_shared<xor_factory>(90, 43), std::make_shared<xor_factory>(42));
  BOOST_TEST(r.ec == wsl::error::bad_extension);
}

// ------------------------------------------------------------------------------------------------
// permessage-deflate streaming

namespace {

// Reads one message chunk by chunk, publishing its progress so that the test can look while the
// message is still arriving.
struct chunk_progress {
  std::vector<std::size_t> chunks;
  std::string data;
  std::error_code ec;
  bool done = false;
};

asio::awaitable<void> read_chunks(wsl::websocket& ws, std::shared_ptr<chunk_progress> p) {
  auto reader = co_await ws.read_message(p->ec);
  while (!p->ec) {
    const auto chunk = co_await reader.read_chunk(p->ec);
    if (p->ec || chunk.size() == 0) break;
    p->chunks.push_back(chunk.size());
    p->data.append(static_cast<const char*>(chunk.data()), chunk.size());
  }
  p->done = true;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_message_larger_than_the_read_buffer_is_inflated_in_pieces) {
  auto options = quiet_options();
  options.read_buffer_size = 4096;
  negotiated n(server_options({deflate_with()}, options), {"permessage-deflate"});
  BOOST_REQUIRE(n.extensions.value_or("(none)") == "permessage-deflate");
  const auto message = words(1 << 20);
  zlib_deflater d;
  const auto compressed = deflated(d, message);
  BOOST_TEST_MESSAGE("1 MiB compressed to " << compressed.size() << " bytes");
  const auto frame = client_frame(op::text, compressed, true, rsv1);
  const auto half = frame.size() / 2;

  auto progress = std::make_shared<chunk_progress>();
  auto reading = n.spawn(read_chunks(n.ws, progress));
  n.send(frame.substr(0, half));
  // Half of the compressed frame is in: part of the message is out already, in pieces that fit the
  // read buffer.
  BOOST_TEST(!progress->done);
  BOOST_TEST(!progress->ec);
  BOOST_TEST(progress->data.size() > 0u);
  BOOST_TEST(progress->data.size() < message.size());
  n.send(frame.substr(half));
  BOOST_REQUIRE(reading.done());
  BOOST_TEST(!progress->ec);
  BOOST_TEST(progress->data.size() == message.size());
  BOOST_TEST((progress->data == message));
  BOOST_TEST(*std::max_element(progress->chunks.begin(), progress->chunks.end()) <= 4096u);
  BOOST_TEST(progress->chunks.size() >= message.size() / 4096);
}

BOOST_AUTO_TEST_CASE(a_decompression_bomb_fails_with_1009_after_at_most_max_message_size) {
  auto options = quiet_options();
  options.max_message_size = 1 << 20;
  negotiated n(server_options({deflate_with()}, options), {"permessage-deflate"});
  zlib_deflater d(15);
  const auto bomb = deflated(d, std::string(16 << 20, '\0'));  // 16 MiB of zeros
  BOOST_TEST_MESSAGE("16 MiB compressed to " << bomb.size() << " bytes");
  BOOST_REQUIRE(bomb.size() < options.max_message_size);  // small as it travels

  auto progress = std::make_shared<chunk_progress>();
  auto reading = n.spawn(read_chunks(n.ws, progress));
  n.send(client_frame(op::binary, bomb, true, rsv1));
  const auto frames = n.received();
  BOOST_REQUIRE_EQUAL(frames.size(), 1u);
  BOOST_TEST(frames[0].close_code() == 1009);
  n.peer->shutdown_send();
  run_until_idle(n.ctx);
  BOOST_REQUIRE(reading.done());
  BOOST_TEST(progress->ec == wsl::error::message_too_large);
  BOOST_TEST(progress->data.size() <= options.max_message_size);
  BOOST_TEST(progress->data.find_first_not_of('\0') == std::string::npos);
}

BOOST_AUTO_TEST_CASE(corrupt_compressed_data_fails_with_1007) {
  const std::pair<const char*, std::string> cases[] = {
      {"reserved block type", std::string("\xff\xff\xff\xff", 4)},
      {"stored block with a bad NLEN", std::string("\x00\x05\x00\x00\x00hello", 10)},
  };
  for (const auto& [what, payload] : cases) {
    BOOST_TEST_CONTEXT(what) {
      negotiated n(server_options({deflate_with()}), {"permessage-deflate"});
      auto reading = n.spawn(read_whole_message(n.ws));
      n.send(client_frame(op::binary, payload, true, rsv1));
      expect_failed(n, reading, 1007, wsl::error::bad_compressed_data);
    }
  }
}

BOOST_AUTO_TEST_CASE(messages_under_the_threshold_go_uncompressed) {
  wsl::deflate_options o;
  o.threshold = 64;
  negotiated n(server_options({deflate_with(o)}), {"permessage-deflate"});
  zlib_inflater in;
  for (std::size_t size : {0u, 10u, 63u, 64u, 1000u}) {
    BOOST_TEST_CONTEXT(size << " bytes") {
      const auto message = words(size);
      BOOST_TEST(!run(n.ctx, write_whole_message(n.ws, wsl::message_type::text, message)));
      const auto frames = n.received_message();
      BOOST_REQUIRE_EQUAL(frames.size(), 1u);
      if (size < o.threshold) {
        BOOST_TEST(frames[0].rsv == 0);
        BOOST_TEST(frames[0].payload == message);
      } else {
        BOOST_TEST(frames[0].rsv == rsv1);
        BOOST_TEST(in.message(frames[0].payload).value_or("(corrupt)") == message);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(an_empty_compressed_message_keeps_the_stream_valid) {
  // With a threshold of 0 every message is compressed, the empty one too. RFC 7692 section 7.2.1:
  // the compressed data ends with an empty stored block whose last 4 octets are removed, so even an
  // empty message has at least its block header (one byte, 00), and the peer's stream stays in step.
  wsl::deflate_options o;
  o.threshold = 0;
  negotiated n(server_options({deflate_with(o)}), {"permessage-deflate"});
  zlib_inflater in;
  for (const std::string& message : {words(100), std::string(), words(100), std::string(), std::string()}) {
    BOOST_TEST_CONTEXT(message.size() << " bytes") {
      BOOST_TEST(!run(n.ctx, write_whole_message(n.ws, wsl::message_type::text, message)));
      const auto frames = n.received_message();
      BOOST_REQUIRE_EQUAL(frames.size(), 1u);
      BOOST_TEST(frames[0].rsv == rsv1);
      BOOST_TEST(frames[0].payload.size() >= 1u);
      BOOST_TEST(in.message(frames[0].payload).value_or("(corrupt)") == message);
    }
  }
}

BOOST_AUTO_TEST_CASE(an_empty_streamed_message_keeps_the_stream_valid) {
  // A message_writer finished without data: its size is known (0) when its first part is its last,
  // so the threshold applies and it goes uncompressed; the compressed stream around it stays in step.
  negotiated n(server_options({deflate_with()}), {"permessage-deflate"});
  zlib_inflater in;
  BOOST_TEST(!run(n.ctx, write_whole_message(n.ws, wsl::message_type::text, words(100))));
  BOOST_TEST(in.message(n.received_message()[0].payload).value_or("(corrupt)") == words(100));
  for (int i = 0; i < 2; ++i) {
    BOOST_TEST_CONTEXT("empty message " << i) {
      auto writer = n.ws.create_message_writer(wsl::message_type::binary);
      std::error_code ec;
      run(n.ctx, writer.finish(ec));
      BOOST_TEST(!ec);
      const auto frames = n.received_message();
      BOOST_REQUIRE_EQUAL(frames.size(), 1u);
      BOOST_TEST(frames[0].rsv == 0);
      BOOST_TEST(frames[0].payload.empty());
    }
  }
  BOOST_TEST(!run(n.ctx, write_whole_message(n.ws, wsl::message_type::text, words(200))));
  BOOST_TEST(in.message(payload_of(n.received_message())).value_or("(corrupt)") == words(200));
}

BOOST_AUTO_TEST_CASE(window_8_round_trip) {
  negotiated n(server_options({deflate_with()}),
               {"permessage-deflate; server_max_window_bits=8; client_max_window_bits=8"});
  BOOST_TEST(n.extensions.value_or("(none)") ==
             "permessage-deflate; server_max_window_bits=8; client_max_window_bits=8");
  // Out: the server compresses with a window of 256 bytes. Inflating with exactly that window fails
  // on any match reaching further back into an earlier message (the repeat of `block` would).
  zlib_inflater in(8);
  const auto block = random_bytes(1000, 1);
  const std::string messages[] = {block, block, words(5000), std::string(3000, 'z')};
  std::size_t compressed = 0, plain = 0;
  for (const auto& message : messages) {
    BOOST_TEST(!run(n.ctx, write_whole_message(n.ws, wsl::message_type::binary, message)));
    const auto frames = n.received_message();
    BOOST_TEST(frames[0].rsv == rsv1);
    BOOST_TEST(in.message(payload_of(frames)).value_or("(corrupt)") == message);
    compressed += payload_of(frames).size();
    plain += message.size();
  }
  BOOST_TEST(compressed < plain);  // run lengths still shrink
  // In: zlib cannot make a 256-byte window; run-length matches (distance 1) fit in one.
  zlib_deflater d(9, 6, Z_RLE);
  for (const auto& message : messages) {
    auto reading = n.spawn(read_whole_message(n.ws));
    n.send(client_frame(op::binary, deflated(d, message), true, rsv1));
    BOOST_REQUIRE(reading.done());
    BOOST_TEST(!reading.get().ec);
    BOOST_TEST((reading.get().data == message));
  }
}

BOOST_AUTO_TEST_CASE(context_takeover_spans_messages_both_ways) {
  negotiated n(server_options({deflate_with()}), {"permessage-deflate"});
  const auto block = random_bytes(6000, 2);
  // In: the second message is a back-reference into the first.
  zlib_deflater d;
  const auto first = deflated(d, block), second = deflated(d, block);
  BOOST_TEST(second.size() < 100u);
  for (const auto* payload : {&first, &second}) {
    auto reading = n.spawn(read_whole_message(n.ws));
    n.send(client_frame(op::binary, *payload, true, rsv1));
    BOOST_REQUIRE(reading.done());
    BOOST_TEST(!reading.get().ec);
    BOOST_TEST((reading.get().data == block));
  }
  // Out: likewise.
  zlib_inflater in;
  std::vector<std::size_t> sizes;
  for (int i = 0; i < 2; ++i) {
    BOOST_TEST(!run(n.ctx, write_whole_message(n.ws, wsl::message_type::binary, block)));
    const auto payload = payload_of(n.received_message());
    sizes.push_back(payload.size());
    BOOST_TEST((in.message(payload).value_or("(corrupt)") == block));
  }
  BOOST_TEST(sizes[0] > 5900u);
  BOOST_TEST(sizes[1] < 100u);
}

BOOST_AUTO_TEST_CASE(a_compressed_message_counts_against_max_message_size_by_its_inflated_size) {
  // Incompressible data comes out of deflate a little larger than it went in: a message of exactly
  // max_message_size bytes is allowed (deflate.hpp: the inflated size counts) though its frames
  // announce more; one byte more fails with 1009 all the same.
  auto options = quiet_options();
  options.max_message_size = 1000;
  negotiated n(server_options({deflate_with()}, options), {"permessage-deflate"});
  zlib_deflater d;
  const auto message = random_bytes(1000, 7);
  const auto compressed = deflated(d, message);
  BOOST_REQUIRE(compressed.size() > options.max_message_size);
  auto reading = n.spawn(read_whole_message(n.ws));
  n.send(client_frame(op::binary, compressed.substr(0, 600), false, rsv1) +
         client_frame(op::continuation, compressed.substr(600)));
  BOOST_REQUIRE(reading.done());
  BOOST_TEST(!reading.get().ec);
  BOOST_TEST((reading.get().data == message));

  auto too_large = n.spawn(read_whole_message(n.ws));
  n.send(client_frame(op::binary, deflated(d, random_bytes(1001, 8)), true, rsv1));
  expect_failed(n, too_large, 1009, wsl::error::message_too_large);
}
