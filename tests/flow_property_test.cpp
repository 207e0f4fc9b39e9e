// Seeded property tests of the flow of data where the plain memory pipe does not take it: a busy
// peer (backpressure), and permessage-deflate.
//
// A busy peer: the pipe gets a small capacity (memory_transport.hpp), so that the websocket's
// writes wait until the test reads a few random bytes, and the test's own sends wait until the
// websocket reads. Both directions carry random traffic at once (the test's messages, fragmented,
// with pings between the fragments; the websocket's messages written whole or streamed through a
// message_writer) and the test checks the wire frame by frame as it drains it: every message intact
// and in order both ways, one pong per ping with its payload (or, once max_control_queue is reached,
// the documented replacement of the older pongs), no frame inside another, and a close started
// while a write waits ends with the close handshake.
//
// permessage-deflate: the same engine through a negotiated extension with random parameters, the
// test compressing and inflating with zlib directly, apart from the library's code: what is read is
// what was sent, what is written inflates to the input (with the negotiated window and context
// takeover), a corrupt compressed message fails the connection with 1007, and a decompression
// bomb with 1009, the messages before them intact.
//
//   WSL_PROPERTY_SEED=<seed> ./flow_property_test --run_test=<case>
//
// Nothing waits for real time: the test decides when each side reads, and runs the io_context until
// idle after each step, so a seed replays the same interleaving.
#include "wsl/deflate.hpp"
#include "wsl/listener.hpp"
#include "wsl/websocket.hpp"

#define BOOST_TEST_MODULE flow_property
#include <boost/test/unit_test.hpp>

#include "accept.hpp"
#include "connection.hpp"  // the client role over a memory pipe, with a negotiated extension
#include "connection_harness.hpp"
#include "property.hpp"
#include "random_choice.hpp"
#include "test_printing.hpp"
#include "zlib_peer.hpp"

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

using namespace wsl::test;

namespace {

constexpr auto npos = std::string_view::npos;
constexpr std::size_t max_header_size = 14;  // RFC 6455: 2 + 8 (length) + 4 (mask)

// ------------------------------------------------------------------------------------------------
// Contents

struct message {
  wsl::message_type type = wsl::message_type::binary;
  std::string payload;
};

std::uint8_t opcode_of(wsl::message_type type) { return type == wsl::message_type::text ? op::text : op::binary; }

// Compressible (words, runs) or not (random bytes); text is ASCII, valid UTF-8 however it is cut.
message random_message(rng_type& r, std::size_t size) {
  message m;
  m.type = percent(r, 50) ? wsl::message_type::text : wsl::message_type::binary;
  const auto kind = between(r, 0, 2);
  if (kind == 0 && m.type == wsl::message_type::binary) {
    m.payload = random_bytes(r, size);
  } else if (kind == 0) {
    for (std::size_t i = 0; i < size; ++i) m.payload += static_cast<char>(between(r, 0x20, 0x7e));
  } else if (kind == 1) {
    static const char* const words[] = {"frame ", "window ", "deflate ", "context ", "pong ", "close "};
    while (m.payload.size() < size) m.payload += words[between(r, 0, 5)];
    m.payload.resize(size);
  } else {
    while (m.payload.size() < size)
      m.payload.append(between(r, 1, 300),
                       static_cast<char>(between(r, m.type == wsl::message_type::text ? 0x20 : 0, 0x7e)));
    m.payload.resize(size);
  }
  return m;
}

// Mostly small, with a fair share around the 16-bit length encoding, and now and then a large one.
std::size_t random_size(rng_type& r, std::size_t largest) {
  const auto roll = between(r, 0, 99);
  std::size_t n;
  if (roll < 35)
    n = between(r, 0, 125);
  else if (roll < 75)
    n = between(r, 126, 3000);
  else if (roll < 92)
    n = between(r, 3001, 20000);
  else
    n = between(r, 20001, 102400);
  return std::min(n, largest);
}

std::size_t random_piece_size(rng_type& r) {
  const auto roll = between(r, 0, 99);
  if (roll < 30) return between(r, 1, 8);
  if (roll < 65) return between(r, 9, 300);
  if (roll < 92) return between(r, 301, 4096);
  return between(r, 4097, 40000);
}

// ------------------------------------------------------------------------------------------------
// permessage-deflate negotiated with random parameters, as the test understands the agreement

using params = std::map<std::string, std::optional<std::string>>;

// "permessage-deflate; a; b=1" -> {a: -, b: 1}; the test's own parser, not the library's.
params parse_element(std::string_view element) {
  params p;
  std::size_t at = element.find(';');
  while (at != npos) {
    auto next = element.find(';', at + 1);
    auto item = element.substr(at + 1, next == npos ? npos : next - at - 1);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    const auto eq = item.find('=');
    if (eq == npos)
      p[std::string(item)] = std::nullopt;
    else
      p[std::string(item.substr(0, eq))] = std::string(item.substr(eq + 1));
    at = next;
  }
  return p;
}

int bits_of(const params& p, const std::string& key, int otherwise) {
  const auto it = p.find(key);
  return it == p.end() || !it->second ? otherwise : std::atoi(it->second->c_str());
}

std::string element_of(const params& p) {
  std::string s = "permessage-deflate";
  for (const auto& [k, v] : p) s += "; " + k + (v ? "=" + *v : "");
  return s;
}

struct agreement {
  int ws_window = 15;             // what the websocket compresses with: the test inflates with exactly that
  bool ws_no_takeover = false;    // the websocket must start each message afresh
  int peer_window = 15;           // what the test may compress with
  bool peer_no_takeover = false;  // the test must start each message afresh
};

wsl::deflate_options random_deflate_options(rng_type& r) {
  wsl::deflate_options o;
  o.level = static_cast<int>(between(r, 0, 9));
  o.mem_level = static_cast<int>(between(r, 1, 9));
  static constexpr std::size_t thresholds[] = {0, 1, 64, 200};
  o.threshold = pick(r, thresholds);
  o.no_context_takeover = percent(r, 30);
  o.peer_no_context_takeover = percent(r, 30);
  o.max_window_bits = percent(r, 50) ? 15 : static_cast<int>(between(r, 8, 15));
  o.peer_max_window_bits = percent(r, 50) ? 15 : static_cast<int>(between(r, 8, 15));
  return o;
}

// ------------------------------------------------------------------------------------------------
// The websocket under test, over a memory pipe, with or without permessage-deflate

class flow_harness : public connection_harness {
 public:
  // Without an extension.
  flow_harness(const wsl::connection_options& options, wsl::role r) : connection_harness(options, r) {}

  // permessage-deflate with random parameters on both sides. The server role is negotiated by
  // accept_websocket from the test's offer; the client role (there is no HTTP client over a pipe)
  // gets the extension its factory makes of the test's answer to its offer.
  flow_harness(rng_type& r, wsl::connection_options options, wsl::role role) : connection_harness(pipe_only{}) {
    const auto mine = random_deflate_options(r);
    options.extensions = {std::make_shared<wsl::deflate_factory>(mine)};
    if (role == wsl::role::server) {
      params offer;
      if (percent(r, 30)) offer["server_no_context_takeover"] = std::nullopt;
      if (percent(r, 30)) offer["client_no_context_takeover"] = std::nullopt;
      if (percent(r, 40)) offer["server_max_window_bits"] = std::to_string(between(r, 8, 15));
      if (percent(r, 60))
        offer["client_max_window_bits"] =
            percent(r, 50) ? std::optional<std::string>(std::to_string(between(r, 8, 15))) : std::nullopt;
      wsl::listener_options lo;
      lo.connection = options;
      auto accepting = spawn(accept_on(std::move(stream_), lo));
      const std::string request =
          "GET / HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
          "Sec-WebSocket-Extensions: " +
          element_of(offer) + "\r\n\r\n";
      BOOST_REQUIRE(peer->inject(request));
      BOOST_REQUIRE(run_until(ctx, [&] { return accepting.done(); }));
      BOOST_REQUIRE_MESSAGE(!accepting.get().ec, "the offer " << element_of(offer) << " failed the negotiation: "
                                                              << accepting.get().ec.message());
      ws = std::move(accepting.get().ws);
      const auto response = peer->take();
      constexpr std::string_view field = "Sec-WebSocket-Extensions: ";
      const auto at = response.find(field);
      BOOST_REQUIRE_MESSAGE(at != npos, "permessage-deflate was declined: " << element_of(offer));
      const auto line = response.substr(at + field.size(), response.find("\r\n", at) - at - field.size());
      const auto answer = parse_element(line);
      description = element_of(offer) + " -> " + line;
      // RFC 7692 section 7.1: what the server must and may answer.
      if (offer.contains("server_no_context_takeover")) BOOST_TEST(answer.contains("server_no_context_takeover"));
      if (offer.contains("server_max_window_bits"))
        BOOST_TEST(bits_of(answer, "server_max_window_bits", 99) <= bits_of(offer, "server_max_window_bits", 15));
      if (!offer.contains("client_max_window_bits")) BOOST_TEST(!answer.contains("client_max_window_bits"));
      deal.ws_window = bits_of(answer, "server_max_window_bits", 15);
      deal.ws_no_takeover = answer.contains("server_no_context_takeover") || mine.no_context_takeover;
      deal.peer_window = bits_of(answer, "client_max_window_bits", bits_of(offer, "client_max_window_bits", 15));
      deal.peer_no_takeover = answer.contains("client_no_context_takeover");
    } else {
      const wsl::deflate_factory factory(mine);
      const auto offers = factory.offer();
      BOOST_REQUIRE(!offers.empty());
      params offer;
      for (const auto& [k, v] : offers[0].params) offer[k] = v;
      // An answer RFC 7692 section 7.1 allows.
      params answer;
      if (offer.contains("server_no_context_takeover") || percent(r, 30))
        answer["server_no_context_takeover"] = std::nullopt;
      if (percent(r, 30)) answer["client_no_context_takeover"] = std::nullopt;
      if (offer.contains("server_max_window_bits") || percent(r, 40))
        answer["server_max_window_bits"] =
            std::to_string(between(r, 8, static_cast<std::uint64_t>(bits_of(offer, "server_max_window_bits", 15))));
      if (offer.contains("client_max_window_bits") && percent(r, 50))
        answer["client_max_window_bits"] =
            std::to_string(between(r, 8, static_cast<std::uint64_t>(bits_of(offer, "client_max_window_bits", 15))));
      wsl::extension_offer response{"permessage-deflate", {}};
      for (const auto& [k, v] : answer) response.params.emplace_back(k, v);
      std::error_code ec;
      auto extension = factory.on_response(response, ec);
      description = element_of(offer) + " -> " + element_of(answer);
      BOOST_REQUIRE_MESSAGE(!ec && extension, "the client refused an answer RFC 7692 allows: " << description);
      auto c = std::make_shared<wsl::detail::connection>(std::move(stream_), wsl::role::client, options);
      c->set_extension(std::move(extension));
      c->start();
      ws = wsl::websocket(std::move(c));
      deal.ws_window = bits_of(answer, "client_max_window_bits", bits_of(offer, "client_max_window_bits", 15));
      deal.ws_no_takeover = answer.contains("client_no_context_takeover") || mine.no_context_takeover;
      deal.peer_window = bits_of(answer, "server_max_window_bits", 15);
      deal.peer_no_takeover = answer.contains("server_no_context_takeover");
    }
    threshold = mine.threshold;
    deflate = true;
  }

  bool deflate = false;
  agreement deal;
  std::size_t threshold = 0;
  std::string description;
};

// ------------------------------------------------------------------------------------------------
// What the test sends: messages cut into frames, pings between them, and how it ends

enum class ending {
  peer_closes,  // the test closes once the websocket has written everything
  we_close,     // the websocket closes, as soon as one of its writes waits
  corrupt,      // the test's last message is corrupt compressed data: 1007
  bomb,         // its last message inflates beyond max_message_size: 1009
};

const char* name_of(ending e) {
  switch (e) {
    case ending::peer_closes: return "the peer closes";
    case ending::we_close: return "the websocket closes";
    case ending::corrupt: return "corrupt compressed data";
    case ending::bomb: return "a decompression bomb";
  }
  return "?";
}

struct inbound {
  std::string bytes;
  std::vector<message> messages;          // as the reader must see them
  std::vector<std::size_t> message_ends;  // where each message's last frame ends in bytes
  std::vector<std::size_t> frame_ends;
  std::vector<std::string> pings;
  std::size_t compressed = 0;          // messages sent with RSV1
  bool bomb_or_corrupt = false;        // the last message is the bad one
  std::size_t random_corruptions = 0;  // a corruption by a random byte, not by the block type
};

struct peer_side {
  bool client = false;  // the websocket's role: the test masks when it plays the client
  std::uint16_t ping_counter = 0;
  bool unique_pings = true;
};

std::string frame_bytes(const peer_side& p, std::uint8_t opcode, std::string_view payload, bool fin, std::uint8_t rsv,
                        rng_type& r) {
  if (p.client) return unmasked_frame(opcode, payload, fin, rsv);
  const auto v = r();
  const mask_key key = {static_cast<std::uint8_t>(v), static_cast<std::uint8_t>(v >> 8),
                        static_cast<std::uint8_t>(v >> 16), static_cast<std::uint8_t>(v >> 24)};
  return client_frame(opcode, payload, fin, rsv, key);
}

// A ping payload unique in the iteration (a counter up front), so that a pong names its ping.
std::string ping_payload(rng_type& r, peer_side& p) {
  auto size = between(r, 0, 99) < 20 ? between(r, 100, 125) : between(r, 0, 40);
  if (p.unique_pings) size = std::max<std::uint64_t>(size, 2);
  auto s = random_bytes(r, size);
  if (size >= 2) {
    s[0] = static_cast<char>(p.ping_counter >> 8);
    s[1] = static_cast<char>(p.ping_counter & 0xff);
  }
  ++p.ping_counter;
  return s;
}

void add_frame(inbound& in, std::string bytes) {
  in.bytes += bytes;
  in.frame_ends.push_back(in.bytes.size());
}

void maybe_pings(rng_type& r, peer_side& p, inbound& in, unsigned chance) {
  for (int i = 0; i < 4 && percent(r, chance); ++i) {
    if (percent(r, 90)) {
      in.pings.push_back(ping_payload(r, p));
      add_frame(in, frame_bytes(p, op::ping, in.pings.back(), true, 0, r));
    } else {
      add_frame(in, frame_bytes(p, op::pong, random_bytes(r, between(r, 0, 20)), true, 0, r));
    }
  }
}

// Appends a message whose payload on the wire is `wire_payload` (compressed or not), in random
// fragments with pings between them.
void add_message(rng_type& r, peer_side& p, inbound& in, const message& m, const std::string& wire_payload,
                 bool compressed, unsigned ping_chance) {
  std::vector<std::size_t> bounds{0, wire_payload.size()};
  const auto roll = between(r, 0, 99);
  const std::size_t cuts = roll < 40 ? 0 : roll < 80 ? between(r, 1, 3) : between(r, 4, 12);
  for (std::size_t i = 0; i < cuts; ++i) bounds.push_back(between(r, 0, wire_payload.size()));
  std::sort(bounds.begin(), bounds.end());
  for (std::size_t i = 0; i + 1 < bounds.size(); ++i) {
    if (i != 0) maybe_pings(r, p, in, ping_chance);
    const auto opcode = i == 0 ? opcode_of(m.type) : op::continuation;
    const std::uint8_t rsv = i == 0 && compressed ? rsv1 : 0;
    add_frame(in, frame_bytes(p, opcode, std::string_view(wire_payload).substr(bounds[i], bounds[i + 1] - bounds[i]),
                              i + 2 == bounds.size(), rsv, r));
  }
  in.messages.push_back(m);
  in.message_ends.push_back(in.bytes.size());
}

// The payload of the corrupt message: one random byte changed where zlib, inflating in the
// websocket decoder's state (`shadow`), finds the data corrupt; failing that, the first block's
// type set to the reserved 11 (RFC 1951 section 3.2.3), which is corrupt whatever follows. A
// corruption that inflates to more than max_message_size (`limit`) before zlib sees the error is
// passed over: it is a bomb as well, and which of 1009 and 1007 comes first depends on how much
// the reader asks for at a time.
std::string corrupt(rng_type& r, const std::string& compressed, const zlib_inflater& shadow, std::uint64_t limit,
                    inbound& in) {
  for (int attempt = 0; attempt < 20 && !compressed.empty(); ++attempt) {
    auto bad = compressed;
    const auto at = between(r, 0, bad.size() - 1);
    bad[at] = static_cast<char>(bad[at] ^ static_cast<char>(between(r, 1, 255)));
    zlib_inflater probe(shadow);
    std::size_t garbage = 0;
    if (!probe.message(bad, SIZE_MAX, &garbage) && (limit == 0 || garbage <= limit)) {
      ++in.random_corruptions;
      return bad;
    }
  }
  auto bad = compressed;
  bad[0] = static_cast<char>(bad[0] | 0x06);
  zlib_inflater probe(shadow);
  BOOST_REQUIRE(!probe.message(bad));
  return bad;
}

// ------------------------------------------------------------------------------------------------
// What the websocket writes: a plan, and a coroutine that follows it

struct outgoing {
  message m;
  bool whole = false;               // write_message(); otherwise a message_writer
  std::vector<std::size_t> pieces;  // the writer's write() calls; finish(rest) sends the rest
  std::vector<bool> flush_after;
};

// `threshold`: permessage-deflate's, whose edges get messages of their own.
std::vector<outgoing> random_plan(rng_type& r, std::size_t count, std::size_t largest, std::size_t write_buffer,
                                  std::size_t threshold) {
  std::vector<outgoing> plan;
  for (std::size_t i = 0; i < count; ++i) {
    outgoing o;
    const auto size =
        percent(r, 15) ? threshold + between(r, 0, 2) - std::min<std::size_t>(threshold, 1) : random_size(r, largest);
    o.m = random_message(r, size);
    o.whole = percent(r, 35);
    if (!o.whole) {
      std::size_t left = o.m.payload.size();
      // Small writes (gathered in the writer's buffer until it fills), and large ones (sent at once).
      while (left > 0 && percent(r, 85)) {
        const auto n = std::min<std::size_t>(
            left, percent(r, 70) ? between(r, 0, write_buffer / 4) : between(r, write_buffer / 4, 3 * write_buffer));
        o.pieces.push_back(n);
        o.flush_after.push_back(percent(r, 8));
        left -= n;
      }
    }
    plan.push_back(std::move(o));
  }
  return plan;
}

struct write_log {
  std::vector<std::error_code> results;  // one per message attempted; the last may be an error
};

// (Out of line: GCC 12 with the sanitizers takes inlined coroutine ramps for mismatched deletes.)
[[gnu::noinline]] asio::awaitable<write_log> write_plan(wsl::websocket& ws,
                                                        std::shared_ptr<const std::vector<outgoing>> plan) {
  write_log log;
  for (const auto& o : *plan) {
    std::error_code ec;
    if (o.whole) {
      co_await ws.write_message(o.m.type, asio::buffer(o.m.payload), ec);
    } else {
      auto writer = ws.create_message_writer(o.m.type);
      std::size_t offset = 0;
      for (std::size_t k = 0; k < o.pieces.size() && !ec; ++k) {
        const auto piece = asio::buffer(o.m.payload.data() + offset, o.pieces[k]);
        offset += o.pieces[k];
        co_await writer.write(piece, ec);
        if (!ec && o.flush_after[k]) co_await writer.flush(ec);
      }
      if (!ec) {
        const auto rest = asio::buffer(o.m.payload.data() + offset, o.m.payload.size() - offset);
        co_await writer.finish(rest, ec);
      }
    }
    log.results.push_back(ec);
    if (ec) break;
  }
  co_return log;
}

struct received {
  wsl::message_type type = wsl::message_type::binary;
  std::string data;
  bool complete = false;
};

struct read_log {
  std::vector<received> messages;
  std::error_code ec;  // what ended the reading
};

[[gnu::noinline]] asio::awaitable<read_log> read_all_messages(wsl::websocket& ws, std::uint64_t seed) {
  rng_type r(seed);
  read_log log;
  std::string buffer;
  for (;;) {
    std::error_code ec;
    auto reader = co_await ws.read_message(ec);
    if (ec) {
      log.ec = ec;
      break;
    }
    received m;
    m.type = reader.type();
    const bool chunks = percent(r, 40);
    for (;;) {
      std::size_t n = 0;
      if (chunks) {
        const auto chunk = co_await reader.read_chunk(ec);
        n = chunk.size();
        if (!ec) m.data.append(static_cast<const char*>(chunk.data()), n);
      } else {
        buffer.resize(percent(r, 50) ? between(r, 1, 64) : between(r, 65, 70000));
        n = co_await reader.read_some(asio::buffer(buffer), ec);
        if (!ec) m.data.append(buffer, 0, n);
      }
      if (ec) break;
      if (n == 0) {
        m.complete = true;
        break;
      }
    }
    log.messages.push_back(std::move(m));
    if (ec) {
      log.ec = ec;
      break;
    }
  }
  co_return log;
}

[[gnu::noinline]] asio::awaitable<std::error_code> close_with(wsl::websocket& ws, std::uint16_t code) {
  std::error_code ec;
  co_await ws.close(code, "bye", ec);
  co_return ec;
}

[[gnu::noinline]] asio::awaitable<std::error_code> ping_with(wsl::websocket& ws, std::string payload) {
  std::error_code ec;
  co_await ws.ping(asio::buffer(payload), ec);
  co_return ec;
}

// ------------------------------------------------------------------------------------------------
// The wire, checked frame by frame as the test drains it

struct wire_checker {
  bool client = false;
  const std::vector<outgoing>* plan = nullptr;
  // permessage-deflate: how the test inflates what the websocket compressed.
  std::unique_ptr<zlib_inflater> inflater;
  bool fresh_context = false;
  std::size_t threshold = 0;

  std::string wire;
  std::size_t parsed = 0;
  std::size_t next = 0;  // the message the next data frame belongs to
  bool open = false;
  std::uint8_t first_rsv = 0;
  std::string on_wire;  // its payload so far
  std::vector<std::string> pongs, pings;
  bool close_seen = false;
  std::uint16_t close_code = 0;
  std::size_t compressed = 0;  // messages the websocket sent with RSV1
  bool broken = false;         // a failed check already: the rest of the wire means nothing

  void feed(std::string_view bytes) {
    wire += bytes;
    std::size_t consumed = 0;
    const auto frames = parse_frames(std::string_view(wire).substr(parsed), &consumed);
    parsed += consumed;
    for (const auto& f : frames) {
      if (broken) return;
      absorb(f);
    }
  }

  void fail(const std::string& what) {
    BOOST_ERROR("wire, at byte " << parsed << ": " << what);
    broken = true;
  }

  void absorb(const wire_frame& f) {
    if (f.masked != client) return fail("masking " + std::to_string(f.masked));
    if (close_seen) return fail("a frame after the close frame, opcode " + std::to_string(f.opcode));
    if ((f.opcode & 0x8) != 0) {
      // A control frame: whole, between data frames (a frame inside another would not parse so).
      if (!f.fin || f.rsv != 0 || f.payload.size() > 125) return fail("a malformed control frame");
      if (f.opcode == op::pong)
        pongs.push_back(f.payload);
      else if (f.opcode == op::ping)
        pings.push_back(f.payload);
      else if (f.opcode == op::close) {
        close_seen = true;
        close_code = f.close_code();
      } else
        return fail("an unknown control opcode " + std::to_string(f.opcode));
      return;
    }
    if (next >= plan->size()) return fail("a data frame while no message is being written");
    const auto& o = (*plan)[next];
    if (!open) {
      if (f.opcode != opcode_of(o.m.type))
        return fail("message " + std::to_string(next) + " starts with opcode " + std::to_string(f.opcode));
      const std::uint8_t allowed = inflater ? rsv1 : 0;
      if ((f.rsv & ~allowed) != 0) return fail("reserved bits " + std::to_string(f.rsv));
      first_rsv = f.rsv;
      // deflate.hpp: "Messages shorter than this are sent uncompressed", and longer ones compressed.
      if (inflater && o.whole && (first_rsv != 0) != (o.m.payload.size() >= threshold))
        return fail("message " + std::to_string(next) + " of " + std::to_string(o.m.payload.size()) +
                    " bytes with RSV1 " + std::to_string(first_rsv != 0) + ", threshold " + std::to_string(threshold));
      open = true;
    } else {
      if (f.opcode != op::continuation) return fail("a continuation with opcode " + std::to_string(f.opcode));
      if (f.rsv != 0) return fail("RSV bits on a continuation frame");
    }
    on_wire += f.payload;
    if (first_rsv == 0 && !std::string_view(o.m.payload).starts_with(on_wire))
      return fail("message " + std::to_string(next) +
                  " on the wire: " + difference(o.m.payload.substr(0, on_wire.size()), on_wire));
    if (!f.fin) return;
    std::string got = on_wire;
    if (first_rsv != 0) {
      ++compressed;
      if (fresh_context) inflater->reset();
      const auto inflated = inflater->message(on_wire);
      if (!inflated) return fail("message " + std::to_string(next) + " does not inflate");
      got = *inflated;
    }
    const auto diff = difference(o.m.payload, got);
    if (!diff.empty()) return fail("message " + std::to_string(next) + ": " + diff);
    open = false;
    on_wire.clear();
    ++next;
  }
};

// Pongs against the pings the websocket saw before it sent its close (max_control_queue, options.hpp:
// "Pongs beyond it replace the older ones"): every pong answers one of them, in order, once; the
// latest is always answered; and pongs are dropped only where the queue would have overflowed, so a
// run of unanswered pings before an answered one holds, with it, more than the bound.
void check_pongs(const std::vector<std::string>& pings, const std::vector<std::string>& pongs, std::size_t bound,
                 bool client, std::size_t& replaced) {
  std::size_t j = 0, dropped = 0, dropped_bytes = 0;
  for (const auto& ping : pings) {
    if (j < pongs.size() && pongs[j] == ping) {
      if (dropped != 0) {
        BOOST_TEST(dropped_bytes + ping.size() + max_header_size > bound,
                   dropped << " pongs (" << dropped_bytes << " bytes) dropped before pong " << j
                           << " though the queue bound is " << bound);
        replaced += dropped;
      }
      dropped = dropped_bytes = 0;
      ++j;
    } else {
      ++dropped;
      dropped_bytes += (client ? 6 : 2) + ping.size();
    }
  }
  BOOST_TEST(j == pongs.size(), "pong " << j << " of " << pongs.size() << " answers no ping, or not in order");
  BOOST_TEST(dropped == 0u, "the last " << dropped << " pings got no pong");
}

// ------------------------------------------------------------------------------------------------
// One iteration

struct flow_coverage {
  std::size_t iterations = 0;
  std::size_t waited_writes = 0;         // transport writes that waited for the test to read
  std::size_t closes_while_waiting = 0;  // close() called while a write waited
  std::size_t replaced_pongs = 0;
  std::size_t pongs = 0;
  std::size_t streamed_messages = 0, whole_messages = 0;
  std::size_t compressed_in = 0, compressed_out = 0;
  std::size_t fresh_contexts = 0, small_windows = 0;
  std::size_t corrupt = 0, random_corruptions = 0, bombs = 0;
  std::size_t interrupted_writes = 0;  // a message cut short by the close
  std::size_t cut_messages_in = 0;     // the peer's message cut short by its close
};

struct flow_config {
  bool deflate = false;
  ending end = ending::peer_closes;
  bool small_capacities = true;
};

void run_flow(std::uint64_t seed, const flow_config& cfg, flow_coverage& cov) {
  rng_type r(seed);
  const auto role = percent(r, 50) ? wsl::role::client : wsl::role::server;
  const bool client = role == wsl::role::client;
  auto options = quiet_options();
  static constexpr std::size_t write_buffers[] = {256, 1000, 4096, 64 << 10};
  options.write_buffer_size = pick(r, write_buffers);
  static constexpr std::size_t read_buffers[] = {256, 4096, 64 << 10};
  options.read_buffer_size = pick(r, read_buffers);
  // The control queue: a bound no iteration reaches (every ping gets its pong), the default, or a
  // small one that the pings reach while a write waits.
  const auto bound_roll = between(r, 0, 2);
  options.max_control_queue = bound_roll == 0 ? (1 << 20) : bound_roll == 1 ? 4096 : between(r, 256, 700);
  const std::size_t largest = cfg.deflate ? 102400 : percent(r, 20) ? 70000 : 5000;

  peer_side p;
  p.client = client;
  p.unique_pings = options.max_control_queue < (1 << 20);

  // What the test sends. The websocket's max_message_size is the largest message at least (or
  // unlimited); exactly the largest now and then: a compressed message counts by its inflated size.
  inbound in;
  std::vector<message> plain;
  const auto count_in = between(r, 0, cfg.deflate ? 6 : 8);
  std::size_t largest_in = 0;
  for (std::size_t i = 0; i < count_in; ++i) {
    plain.push_back(random_message(r, random_size(r, largest)));
    largest_in = std::max(largest_in, plain.back().payload.size());
  }
  message bad;  // the corrupt message: in the bound too, so that only its corruption fails it
  if (cfg.end == ending::corrupt) {
    bad = random_message(r, between(r, 1, 3000));
    largest_in = std::max(largest_in, bad.payload.size());
  }
  const auto limit_roll = between(r, 0, 3);
  options.max_message_size = limit_roll == 0   ? std::max<std::size_t>(largest_in, 1)
                             : limit_roll == 1 ? 0
                                               : largest_in + between(r, 1, 100000);
  if (cfg.end == ending::bomb && options.max_message_size == 0) options.max_message_size = largest_in + 1;

  std::unique_ptr<flow_harness> hp;
  if (cfg.deflate)
    hp = std::make_unique<flow_harness>(r, options, role);
  else
    hp = std::make_unique<flow_harness>(options, role);
  auto& h = *hp;
  BOOST_TEST_CONTEXT((client ? "client" : "server")
                     << ", " << name_of(cfg.end) << (cfg.deflate ? ", " + h.description : "") << ", write_buffer_size "
                     << options.write_buffer_size << ", max_control_queue " << options.max_control_queue
                     << ", max_message_size " << options.max_message_size) {
    std::unique_ptr<zlib_deflater> deflater;
    std::unique_ptr<zlib_inflater> shadow;  // the websocket's decoder, as zlib keeps it
    if (cfg.deflate) {
      static constexpr int strategies[] = {Z_DEFAULT_STRATEGY, Z_FILTERED, Z_HUFFMAN_ONLY, Z_RLE};
      deflater =
          std::make_unique<zlib_deflater>(h.deal.peer_window, static_cast<int>(between(r, 1, 9)), pick(r, strategies));
      shadow = std::make_unique<zlib_inflater>(15, final_block::starts_new_stream);
      if (h.deal.ws_no_takeover) ++cov.fresh_contexts;
      if (h.deal.ws_window < 15 || h.deal.peer_window < 15) ++cov.small_windows;
    }
    // Compressed as the agreement allows: afresh when the websocket asked for it, and now and then
    // when it did not (a peer may always forget its context).
    auto compress = [&](const std::string& data) {
      if (h.deal.peer_no_takeover || percent(r, 15)) deflater->reset();
      const auto out = deflater->message(data);
      if (h.deal.peer_no_takeover) shadow->reset();
      zlib_inflater check(*shadow);
      BOOST_REQUIRE(check.message(out).value_or("(corrupt)") == data);  // the test's own zlib agrees
      return out;
    };
    const unsigned ping_chance = percent(r, 50) ? 60 : 20;
    for (const auto& m : plain) {
      maybe_pings(r, p, in, ping_chance);
      if (cfg.deflate && percent(r, 80)) {
        const auto z = compress(m.payload);
        shadow->message(z);
        ++in.compressed;
        add_message(r, p, in, m, z, true, ping_chance);
      } else {
        add_message(r, p, in, m, m.payload, false, ping_chance);
      }
    }
    maybe_pings(r, p, in, ping_chance);
    if (cfg.end == ending::corrupt || cfg.end == ending::bomb) {
      if (cfg.end == ending::bomb) {
        bad.type = percent(r, 50) ? wsl::message_type::text : wsl::message_type::binary;
        const auto limit = options.max_message_size;
        bad.payload.assign(percent(r, 10) ? (2 << 20) : limit + between(r, 1, limit), percent(r, 50) ? 'a' : ' ');
        const auto z = compress(bad.payload);
        add_message(r, p, in, bad, z, true, ping_chance);
        ++cov.bombs;
      } else {
        const auto z = corrupt(r, compress(bad.payload), *shadow, options.max_message_size, in);
        add_message(r, p, in, bad, z, true, ping_chance);
        ++cov.corrupt;
        cov.random_corruptions += in.random_corruptions;
      }
      in.bomb_or_corrupt = true;
    }
    cov.compressed_in += in.compressed;

    // What the websocket writes.
    const auto plan = std::make_shared<const std::vector<outgoing>>(
        random_plan(r, between(r, 0, cfg.deflate ? 6 : 8), largest, options.write_buffer_size, h.threshold));
    for (const auto& o : *plan) ++(o.whole ? cov.whole_messages : cov.streamed_messages);

    // The pings the websocket saw, and whether it had sent its close frame by then.
    struct seen_ping {
      std::string payload;
      bool after_close = false;
    };
    auto seen = std::make_shared<std::vector<seen_ping>>();
    h.ws.set_control_callback([seen, ws = &h.ws](wsl::control_kind kind, std::string_view payload) {
      if (kind == wsl::control_kind::ping) seen->push_back({std::string(payload), ws->local_close().code != 0});
    });

    // A busy peer: the websocket's writes wait while `out_capacity` bytes are unread by the test,
    // and the test's sends while `in_capacity` bytes are unread by the websocket.
    // (A capacity of a byte or so moves a few hundred bytes of traffic a step at most: the bound
    // keeps an iteration within some thousand steps.)
    std::size_t traffic = in.bytes.size();
    for (const auto& o : *plan) traffic += o.m.payload.size();
    const auto capacity = [&] {
      if (!cfg.small_capacities && percent(r, 50)) return std::size_t{1} << 30;
      const auto roll = between(r, 0, 99);
      const auto c = roll < 30 ? between(r, 1, 16) : roll < 80 ? between(r, 17, 600) : between(r, 601, 20000);
      return std::max<std::size_t>(c, traffic / 3000);
    };
    const auto out_capacity = capacity();
    const auto in_capacity = capacity();
    h.peer->set_receive_capacity(out_capacity);
    h.peer->set_send_capacity(in_capacity);

    wire_checker check;
    check.client = client;
    check.plan = plan.get();
    if (cfg.deflate) {
      check.inflater = std::make_unique<zlib_inflater>(h.deal.ws_window, final_block::starts_new_stream);
      check.fresh_context = h.deal.ws_no_takeover;
      check.threshold = h.threshold;
    }

    auto reading = h.spawn(read_all_messages(h.ws, r()));
    auto writing = h.spawn(write_plan(h.ws, plan));
    std::optional<task<std::error_code>> closing, pinging;
    std::string our_ping;
    const std::uint16_t code = cfg.end == ending::we_close ? static_cast<std::uint16_t>(between(r, 3000, 4999))
                                                           : static_cast<std::uint16_t>(percent(r, 50) ? 1000 : 4000);
    const bool will_ping = cfg.end != ending::we_close && percent(r, 30);

    std::string to_send = in.bytes;
    std::size_t sent = 0;
    std::size_t cut = npos;  // where the test stopped its traffic to answer the websocket's close
    bool peer_close_queued = false, peer_shut = false;
    std::size_t idle_steps = 0;
    h.settle();
    for (std::size_t step = 0;; ++step) {
      if (step > 2'000'000) {
        BOOST_ERROR("no end after " << step << " steps");
        break;
      }
      const bool writer_done = writing.done();
      if (!peer_close_queued && cfg.end == ending::peer_closes && writer_done && sent == to_send.size() &&
          (!pinging || pinging->done())) {
        to_send += frame_bytes(p, op::close, close_payload(code, "done"), true, 0, r);
        peer_close_queued = true;
      }
      if (!peer_close_queued && check.close_seen) {
        // The websocket's close: the test ends the frame it is in the middle of, then answers.
        const auto it = std::lower_bound(in.frame_ends.begin(), in.frame_ends.end(), sent);
        cut = it == in.frame_ends.end() ? to_send.size() : *it;
        to_send.resize(cut);
        if (cfg.end == ending::we_close || percent(r, 50))
          to_send += frame_bytes(p, op::close, close_payload(check.close_code), true, 0, r);
        peer_close_queued = true;
      }
      if (peer_close_queued && !peer_shut && sent == to_send.size() && check.close_seen) {
        // As a server ends the TCP connection after the handshake (a client websocket waits for it).
        h.peer->shutdown_send();
        peer_shut = true;
      }
      if (peer_shut && reading.done() && writer_done && (!closing || closing->done()) &&
          (!pinging || pinging->done()) && h.peer->available() == 0) {
        h.settle();
        if (h.peer->available() == 0) break;
      }

      bool progress = false;
      if (sent < to_send.size() && percent(r, 50)) {
        if (h.peer->other_end_closed()) {
          sent = to_send.size();  // the websocket hung up: the rest is lost, as on a socket
        } else {
          const auto n = h.peer->inject_some(std::string_view(to_send).substr(sent, random_piece_size(r)));
          sent += n;
          progress = n != 0;
        }
      }
      if (h.peer->available() != 0 && percent(r, 60)) {
        const auto roll = between(r, 0, 99);
        const std::size_t n = roll < 30   ? between(r, 1, 16)
                              : roll < 75 ? between(r, 17, std::max<std::size_t>(17, 2 * out_capacity))
                                          : SIZE_MAX;
        check.feed(h.peer->take_some(n));
        progress = true;
      }
      // Mostly while a write waits (the writer's, or the reader's pongs: then the writer may come to
      // wait behind the close frame), now and then at any point.
      if (cfg.end == ending::we_close && !closing &&
          ((h.peer->other_write_waiting() && percent(r, 25)) || percent(r, 2) || writer_done)) {
        if (h.peer->other_write_waiting()) ++cov.closes_while_waiting;
        closing = h.spawn(close_with(h.ws, code));
        progress = true;
      }
      if (will_ping && !pinging && percent(r, 3)) {
        our_ping = random_bytes(r, between(r, 0, 125));
        pinging = h.spawn(ping_with(h.ws, our_ping));
        progress = true;
      }
      h.settle();
      if (progress) {
        idle_steps = 0;
      } else if (++idle_steps > 200) {
        BOOST_ERROR("stalled: sent " << sent << " of " << to_send.size() << ", unread by the test "
                                     << h.peer->available() << ", by the websocket " << h.peer->other_unread()
                                     << ", reader done " << reading.done() << ", writer done " << writer_done
                                     << ", write waiting " << h.peer->other_write_waiting() << ", close seen "
                                     << check.close_seen);
        break;
      }
    }
    check.feed(h.peer->take());
    cov.waited_writes += h.peer->other_waited_writes();

    // The wire: whole frames only, every message written in full and in order, the close last.
    BOOST_TEST(check.parsed == check.wire.size(), "the wire ends inside a frame");
    BOOST_REQUIRE(writing.done());
    BOOST_REQUIRE(reading.done());
    const auto& wrote = writing.get().results;
    std::size_t written = 0;
    while (written < wrote.size() && !wrote[written]) ++written;
    BOOST_TEST(wrote.size() <= written + 1);
    if (cfg.end == ending::peer_closes) BOOST_TEST(written == plan->size());
    if (written < wrote.size()) {
      ++cov.interrupted_writes;
      BOOST_TEST((cfg.end != ending::peer_closes), "a write failed: " << wrote[written].message());
      if (cfg.end == ending::we_close) BOOST_TEST(wrote[written] == wsl::error::closed);
    }
    if (!check.broken) {
      BOOST_TEST(check.next == written, check.next << " messages on the wire, " << written << " written");
    }
    BOOST_TEST(check.close_seen);
    const std::uint16_t want_code = cfg.end == ending::corrupt ? 1007 : cfg.end == ending::bomb ? 1009 : code;
    BOOST_TEST(check.close_code == want_code);
    BOOST_TEST(h.ws.bytes_sent() == check.wire.size());
    cov.compressed_out += check.compressed;

    // Our ping: sent once, unless the close came first.
    if (pinging) {
      BOOST_REQUIRE(pinging->done());
      const auto n = std::count(check.pings.begin(), check.pings.end(), our_ping);
      BOOST_TEST(n == (pinging->get() ? 0 : 1), "our ping is on the wire " << n << " times: " << pinging->get());
    } else {
      BOOST_TEST(check.pings.empty());
    }

    // Pongs: the pings the websocket saw are the test's, in order; those it saw before its close
    // are answered as documented.
    std::vector<std::string> answerable;
    BOOST_TEST(seen->size() <= in.pings.size());
    for (std::size_t i = 0; i < seen->size() && i < in.pings.size(); ++i) {
      BOOST_TEST(((*seen)[i].payload == in.pings[i]), "ping " << i << " seen differs");
      if (!(*seen)[i].after_close) answerable.push_back((*seen)[i].payload);
    }
    if (cfg.end == ending::peer_closes) BOOST_TEST(seen->size() == in.pings.size());
    check_pongs(answerable, check.pongs, options.max_control_queue, client, cov.replaced_pongs);
    cov.pongs += check.pongs.size();

    // The messages read: the test's, whole and in order, up to where its traffic stopped.
    const auto& got = reading.get();
    std::size_t expected = in.messages.size() - (in.bomb_or_corrupt ? 1 : 0);
    if (cut != npos)
      expected = std::min<std::size_t>(
          expected, std::upper_bound(in.message_ends.begin(), in.message_ends.end(), cut) - in.message_ends.begin());
    const bool cut_message = cut != npos && expected < in.messages.size() && in.message_ends[expected] > cut &&
                             (expected == 0 ? 0 : in.message_ends[expected - 1]) < cut;
    BOOST_TEST(got.messages.size() >= expected);
    BOOST_TEST(got.messages.size() <= expected + 1);
    for (std::size_t i = 0; i < got.messages.size() && i < in.messages.size(); ++i) {
      BOOST_TEST_CONTEXT("message " << i << " read") {
        const auto& m = got.messages[i];
        BOOST_TEST(m.type == in.messages[i].type);
        if (i < expected) {
          BOOST_TEST(m.complete);
          const auto diff = difference(in.messages[i].payload, m.data);
          BOOST_CHECK_MESSAGE(diff.empty(), diff);
        } else {
          BOOST_TEST(!m.complete);
          if (cfg.end == ending::bomb) {
            BOOST_TEST(m.data.size() <= options.max_message_size, "the reader got " << m.data.size() << " bytes");
            BOOST_TEST(std::string_view(in.messages[i].payload).starts_with(m.data));
          } else if (cfg.end != ending::corrupt) {
            BOOST_TEST(std::string_view(in.messages[i].payload).starts_with(m.data));
          }
        }
      }
    }
    if (cut_message) ++cov.cut_messages_in;
    switch (cfg.end) {
      case ending::peer_closes:
      case ending::we_close:
        BOOST_TEST(got.ec == wsl::error::closed);
        BOOST_TEST(h.ws.peer_close().code == code);
        break;
      case ending::corrupt:
        BOOST_TEST((got.ec == wsl::error::bad_compressed_data || got.ec == wsl::error::invalid_utf8),
                   "the reader ended with " << got.ec.message());
        break;
      case ending::bomb: BOOST_TEST(got.ec == wsl::error::message_too_large); break;
    }
    if (closing) {
      BOOST_REQUIRE(closing->done());
      BOOST_TEST(!closing->get(), "close() ended with " << closing->get().message());
    }
    ++cov.iterations;
  }
}

// Pings while the websocket's write waits (the test reads nothing meanwhile): their pongs queue
// behind it, so the documented bound decides exactly which are sent. The model replays the rule of
// options.hpp ("Pongs beyond it replace the older ones"): a pong that would take the queue beyond
// max_control_queue replaces the pongs queued before it. Then, now and then, the test's close
// also waits behind the write (the reader with it), and the wire must end with the message whole,
// the model's pongs and the close reply.
void pongs_behind_a_waiting_write(std::uint64_t seed, flow_coverage& cov) {
  rng_type r(seed);
  const auto role = percent(r, 50) ? wsl::role::client : wsl::role::server;
  const bool client = role == wsl::role::client;
  auto options = quiet_options();
  const auto bound_roll = between(r, 0, 2);
  options.max_control_queue = bound_roll == 0 ? 256 : bound_roll == 1 ? 4096 : between(r, 256, 2000);
  flow_harness h(options, role);
  BOOST_TEST_CONTEXT((client ? "client" : "server") << ", max_control_queue " << options.max_control_queue) {
    h.peer->set_receive_capacity(between(r, 1, 64));
    auto reading = h.spawn(read_all_messages(h.ws, r()));
    outgoing big;
    big.m = random_message(r, between(r, 200, 5000));
    big.whole = true;
    const auto plan = std::make_shared<const std::vector<outgoing>>(1, big);
    auto writing = h.spawn(write_plan(h.ws, plan));
    h.settle();
    BOOST_REQUIRE(h.peer->other_write_waiting());

    peer_side p;
    p.client = client;
    inbound in;
    const auto count = between(r, 1, 80);
    std::vector<std::string> queue;  // the model of the websocket's pong queue
    std::size_t queued_bytes = 0;
    for (std::size_t i = 0; i < count; ++i) {
      in.pings.push_back(ping_payload(r, p));
      add_frame(in, frame_bytes(p, op::ping, in.pings.back(), true, 0, r));
      const auto n = in.pings.back().size();
      if (queued_bytes + n + max_header_size > options.max_control_queue) {
        cov.replaced_pongs += queue.size();
        queue.clear();
        queued_bytes = 0;
      }
      queue.push_back(in.pings.back());
      queued_bytes += (client ? 6 : 2) + n;
      // Now and then an empty message between them: the reader goes on past it.
      if (percent(r, 10)) add_message(r, p, in, message{}, "", false, 0);
    }
    const bool close_while_waiting = percent(r, 50);
    const std::uint16_t code = 4000 + static_cast<std::uint16_t>(between(r, 0, 999));
    if (close_while_waiting) add_frame(in, frame_bytes(p, op::close, close_payload(code), true, 0, r));
    for (std::size_t at = 0; at < in.bytes.size();) {
      const auto n = std::min<std::size_t>(random_piece_size(r), in.bytes.size() - at);
      BOOST_REQUIRE(h.peer->inject(std::string_view(in.bytes).substr(at, n)));
      at += n;
      h.settle();
    }
    BOOST_REQUIRE(!writing.done());
    BOOST_TEST(h.peer->other_write_waiting());
    // Now the test reads, a little at a time.
    wire_checker check;
    check.client = client;
    check.plan = plan.get();
    for (int i = 0; i < 100000 && !(writing.done() && h.peer->available() == 0); ++i) {
      check.feed(h.peer->take_some(between(r, 1, 200)));
      h.settle();
    }
    BOOST_REQUIRE(writing.done());
    BOOST_TEST(!writing.get().results.at(0));
    if (!close_while_waiting) {
      // The pongs went out once the write was done, not with whatever the peer sends next.
      BOOST_TEST(check.pongs.size() == queue.size(), "pongs sent before the next input arrived");
      BOOST_REQUIRE(h.peer->inject(frame_bytes(p, op::close, close_payload(code), true, 0, r)));
      h.settle();
    }
    h.peer->shutdown_send();
    h.settle();
    // The close reply may wait for room too.
    for (int i = 0; i < 1000 && !(reading.done() && h.peer->available() == 0); ++i) {
      check.feed(h.peer->take());
      h.settle();
    }
    BOOST_TEST(check.parsed == check.wire.size(), "the wire ends inside a frame");
    BOOST_TEST(check.next == 1u);
    BOOST_TEST(check.close_seen);
    BOOST_TEST(check.close_code == code);
    BOOST_TEST(check.pongs.size() == queue.size());
    for (std::size_t i = 0; i < std::min(queue.size(), check.pongs.size()); ++i)
      BOOST_TEST(check.pongs[i] == queue[i], "pong " << i << ": " << difference(queue[i], check.pongs[i]));
    cov.pongs += check.pongs.size();
    BOOST_REQUIRE(reading.done());
    BOOST_TEST(reading.get().ec == wsl::error::closed);
    ++cov.iterations;
  }
}

void report(const flow_coverage& c) {
  BOOST_TEST_MESSAGE(
      "iterations " << c.iterations << "; writes that waited " << c.waited_writes << "; closes while a write waited "
                    << c.closes_while_waiting << "; pongs " << c.pongs << ", replaced " << c.replaced_pongs
                    << "; messages written whole/streamed " << c.whole_messages << "/" << c.streamed_messages
                    << "; compressed in/out " << c.compressed_in << "/" << c.compressed_out << "; fresh contexts "
                    << c.fresh_contexts << "; small windows " << c.small_windows << "; corrupt " << c.corrupt << " ("
                    << c.random_corruptions << " by a random byte); bombs " << c.bombs << "; writes cut by a close "
                    << c.interrupted_writes << "; the peer's messages cut by its close " << c.cut_messages_in);
}

bool replaying() { return std::getenv("WSL_PROPERTY_SEED") != nullptr; }

}  // namespace

// ------------------------------------------------------------------------------------------------
// A busy peer

BOOST_AUTO_TEST_CASE(random_traffic_both_ways_through_a_busy_peer_arrives_intact) {
  flow_coverage cov;
  for_each_seed(0xb5e70000, 200, [&](std::uint64_t seed) { run_flow(seed, {false, ending::peer_closes, true}, cov); });
  report(cov);
  if (replaying()) return;
  BOOST_TEST(cov.waited_writes > 0u);
  BOOST_TEST(cov.replaced_pongs > 0u);
  BOOST_TEST(cov.streamed_messages > 0u);
}

BOOST_AUTO_TEST_CASE(pongs_behind_a_waiting_write_follow_the_control_queue_bound) {
  flow_coverage cov;
  for_each_seed(0x9046e000, 150, [&](std::uint64_t seed) { pongs_behind_a_waiting_write(seed, cov); });
  report(cov);
  if (replaying()) return;
  BOOST_TEST(cov.replaced_pongs > 0u);
}

BOOST_AUTO_TEST_CASE(a_close_started_while_a_write_waits_ends_with_the_close_handshake) {
  flow_coverage cov;
  for_each_seed(0xc705e000, 200, [&](std::uint64_t seed) { run_flow(seed, {false, ending::we_close, true}, cov); });
  report(cov);
  if (replaying()) return;
  BOOST_TEST(cov.closes_while_waiting > 0u);
  BOOST_TEST(cov.interrupted_writes > 0u);
  BOOST_TEST(cov.cut_messages_in > 0u);
}

// ------------------------------------------------------------------------------------------------
// permessage-deflate

BOOST_AUTO_TEST_CASE(random_messages_through_permessage_deflate_arrive_intact_both_ways) {
  flow_coverage cov;
  for_each_seed(0xdef10000, 120, [&](std::uint64_t seed) { run_flow(seed, {true, ending::peer_closes, false}, cov); });
  report(cov);
  if (replaying()) return;
  BOOST_TEST(cov.compressed_in > 0u);
  BOOST_TEST(cov.compressed_out > 0u);
  BOOST_TEST(cov.fresh_contexts > 0u);
  BOOST_TEST(cov.small_windows > 0u);
}

BOOST_AUTO_TEST_CASE(corrupt_compressed_data_fails_with_1007_after_the_messages_before_it) {
  flow_coverage cov;
  for_each_seed(0xbadd0000, 80, [&](std::uint64_t seed) { run_flow(seed, {true, ending::corrupt, false}, cov); });
  report(cov);
  if (replaying()) return;
  BOOST_TEST(cov.random_corruptions > 0u);
  BOOST_TEST(cov.random_corruptions < cov.corrupt);  // the block type too
}

BOOST_AUTO_TEST_CASE(a_decompression_bomb_fails_with_1009_within_max_message_size) {
  flow_coverage cov;
  for_each_seed(0xb0b0000, 60, [&](std::uint64_t seed) { run_flow(seed, {true, ending::bomb, false}, cov); });
  report(cov);
}

// ------------------------------------------------------------------------------------------------
// Found by the cases above, reduced

BOOST_AUTO_TEST_CASE(a_ping_waiting_for_the_socket_does_not_follow_the_close_frame) {
  // A client's pongs hold the socket (the peer reads nothing); ping() waits behind them; the
  // server's close arrives. When the pongs are out, the reader handles the close at once and its
  // close frame takes the socket before the waiting ping runs; the client then waits for the
  // server to end the TCP connection, and the ping must not go out meanwhile, after the close.
  flow_harness h(quiet_options(), wsl::role::client);
  h.peer->set_receive_capacity(1);
  auto reading = h.spawn(read_all_messages(h.ws, 1));
  BOOST_REQUIRE(h.peer->inject(unmasked_frame(op::ping, "are you there")));
  h.settle();
  BOOST_REQUIRE(h.peer->other_write_waiting());  // the pong
  auto pinging = h.spawn(ping_with(h.ws, "late ping"));
  BOOST_REQUIRE(h.peer->inject(unmasked_frame(op::close, close_payload(1000))));
  h.settle();
  std::string wire;
  for (int i = 0; i < 100 && !pinging.done(); ++i) {
    wire += h.peer->take();
    h.settle();
  }
  wire += h.peer->take();
  std::size_t consumed = 0;
  const auto frames = parse_frames(wire, &consumed);
  BOOST_TEST(consumed == wire.size(), "the wire ends inside a frame");
  BOOST_REQUIRE(frames.size() >= 2u);
  BOOST_TEST(frames[0].opcode == op::pong);
  BOOST_TEST(frames.back().is_close(), "frame " << frames.size() - 1 << " has opcode " << int(frames.back().opcode));
  BOOST_TEST(frames.size() == 2u);
  BOOST_REQUIRE(pinging.done());
  BOOST_TEST(pinging.get() == wsl::error::closed);
  h.peer->shutdown_send();
  h.settle();
  BOOST_REQUIRE(reading.done());
  BOOST_TEST(reading.get().ec == wsl::error::closed);
}
