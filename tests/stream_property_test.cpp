// Seeded, randomized, model-based tests of the frame reader and writer.
//
// Each iteration draws one connection's traffic from a seed: messages of random type, size and
// content, cut into random fragments (empty ones included) with pings between them, encoded by
// the test's own codec (wire_frames.hpp) and delivered in random pieces that cut headers, extended
// lengths and mask keys. The websocket must give back exactly the model's messages and answer
// exactly its pings. The writer side goes the other way; an echo runs both at once on pipelined
// traffic (the cork); error injection breaks one rule at one random point; and the UTF-8 validator
// is compared with an RFC 3629 model on its own. Every failure names its seed; to replay one:
//
//   WSL_PROPERTY_SEED=<seed> ./stream_property_test --run_test=<case>
//
// and WSL_PROPERTY_SCALE=<k> runs k times the usual number of seeds.
//
// Nothing here waits for real time: the memory pipe completes writes at once, each piece is followed
// by run_until_idle(), and the one timer involved (a quiet connection gives back its large buffer
// after a second) is driven by the fake clock; so a seed replays the same interleaving.
#include "wsl/websocket.hpp"

#define BOOST_TEST_MODULE stream_property
#include <boost/test/unit_test.hpp>

#include "connection_harness.hpp"
#include "property.hpp"
#include "random_choice.hpp"
#include "test_printing.hpp"
#include "wsl/detail/utf8.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

using namespace wsl::test;

namespace {

constexpr auto npos = std::string_view::npos;

// ------------------------------------------------------------------------------------------------
// Random sizes and contents (the choices themselves: random_choice.hpp)

// Mostly small messages, so that an iteration stays cheap, with enough of the sizes around the
// 7-, 16- and 64-bit length encodings that every iteration has a fair chance of meeting them.
std::size_t random_message_size(rng_type& r) {
  static constexpr std::size_t edges[] = {0, 1, 125, 126, 127, 65535, 65536, 65537};
  const auto roll = between(r, 0, 99);
  if (roll < 25) return between(r, 0, 10);
  if (roll < 55) return between(r, 11, 125);
  if (roll < 80) return between(r, 126, 4096);
  if (roll < 88) return between(r, 4097, 65535);
  if (roll < 94) return pick(r, edges);
  return between(r, 65536, 70000);
}

mask_key random_key(rng_type& r) {
  const auto v = r();
  return {static_cast<std::uint8_t>(v), static_cast<std::uint8_t>(v >> 8), static_cast<std::uint8_t>(v >> 16),
          static_cast<std::uint8_t>(v >> 24)};
}

// ------------------------------------------------------------------------------------------------
// UTF-8, modelled independently of wsl::detail::utf8_validator

std::string encode_utf8(char32_t c) {
  std::string s;
  if (c < 0x80) {
    s += static_cast<char>(c);
  } else if (c < 0x800) {
    s += static_cast<char>(0xC0 | (c >> 6));
    s += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    s += static_cast<char>(0xE0 | (c >> 12));
    s += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | (c >> 18));
    s += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    s += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (c & 0x3F));
  }
  return s;
}

char32_t random_code_point(rng_type& r) {
  static constexpr char32_t edges[] = {0x0,    0x7F,   0x80,   0x7FF,   0x800,   0xD7FF,
                                       0xE000, 0xFFFD, 0xFFFF, 0x10000, 0x10FFFF};
  const auto roll = between(r, 0, 99);
  if (roll < 50) return static_cast<char32_t>(between(r, 0, 0x7F));
  if (roll < 65) return static_cast<char32_t>(between(r, 0x80, 0x7FF));
  if (roll < 85) {
    // The surrogates D800-DFFF are no characters: skip over them.
    const auto c = between(r, 0x800, 0xFFFF - 0x800);
    return static_cast<char32_t>(c < 0xD800 ? c : c + 0x800);
  }
  if (roll < 95) return static_cast<char32_t>(between(r, 0x10000, 0x10FFFF));
  return pick(r, edges);
}

// Valid UTF-8 of exactly n bytes (the last characters are ASCII where a longer one would not fit).
std::string random_text(rng_type& r, std::size_t n) {
  std::string s;
  s.reserve(n + 4);
  while (s.size() < n) {
    auto c = encode_utf8(random_code_point(r));
    if (c.size() > n - s.size()) c = std::string(1, static_cast<char>(between(r, 0x20, 0x7E)));
    s += c;
  }
  return s;
}

struct utf8_verdict {
  std::size_t first_bad = npos;  // the first byte after which no valid text can follow
  bool complete = true;          // no bad byte, and the text does not end inside a character
};

// RFC 3629 section 4's grammar, one sequence at a time: written differently from the library's
// table-driven automaton on purpose, so that the two cannot share a mistake.
utf8_verdict check_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto lead = static_cast<std::uint8_t>(s[i]);
    std::size_t tail = 0;
    std::uint8_t second_lo = 0x80, second_hi = 0xBF;
    if (lead <= 0x7F) {
      ++i;
      continue;
    } else if (lead >= 0xC2 && lead <= 0xDF) {
      tail = 1;
    } else if (lead == 0xE0) {
      tail = 2;
      second_lo = 0xA0;  // shorter forms are overlong
    } else if (lead == 0xED) {
      tail = 2;
      second_hi = 0x9F;  // above are the surrogates
    } else if (lead >= 0xE1 && lead <= 0xEF) {
      tail = 2;
    } else if (lead == 0xF0) {
      tail = 3;
      second_lo = 0x90;  // overlong below
    } else if (lead >= 0xF1 && lead <= 0xF3) {
      tail = 3;
    } else if (lead == 0xF4) {
      tail = 3;
      second_hi = 0x8F;  // above U+10FFFF beyond
    } else {
      return {i, false};  // 80-C1, F5-FF never start a character
    }
    for (std::size_t k = 1; k <= tail; ++k) {
      if (i + k == s.size()) return {npos, false};
      const auto b = static_cast<std::uint8_t>(s[i + k]);
      const auto lo = k == 1 ? second_lo : std::uint8_t{0x80};
      const auto hi = k == 1 ? second_hi : std::uint8_t{0xBF};
      if (b < lo || b > hi) return {i + k, false};
    }
    i += tail + 1;
  }
  return {};
}

// ------------------------------------------------------------------------------------------------
// The traffic model: messages, and the frames that carry them

struct model_message {
  wsl::message_type type = wsl::message_type::binary;
  std::string payload;
};

// Spelled out rather than cast: the model does not lean on the values of the library's enum.
std::uint8_t opcode_of(wsl::message_type type) { return type == wsl::message_type::text ? op::text : op::binary; }

// How a frame announces its length: as RFC 6455 requires, or in one of the ways it forbids.
enum class length_form { shortest, sixteen_bit, sixty_four_bit, top_bit_set };

struct frame_item {
  std::uint8_t opcode = op::binary;
  bool fin = true;
  std::uint8_t rsv = 0;
  bool masked = false;
  mask_key key{};
  std::string payload;
  length_form form = length_form::shortest;
  int message = -1;                // the model message this is a fragment of; -1 for other frames
  std::size_t message_offset = 0;  // where its payload lies in that message

  bool is_control() const noexcept { return (opcode & 0x8) != 0; }
};

// The frame on the wire; the shortest form through wire_frames.hpp, the others spelled out here.
std::string encode_item(const frame_item& f) {
  const mask_key* key = f.masked ? &f.key : nullptr;
  if (f.form == length_form::shortest) return encode_frame(f.opcode, f.payload, f.fin, f.rsv, key);
  std::string out;
  out += static_cast<char>((f.fin ? 0x80 : 0) | f.rsv | f.opcode);
  std::uint64_t announced = f.payload.size();
  const int length_bytes = f.form == length_form::sixteen_bit ? 2 : 8;
  out += static_cast<char>((key ? 0x80 : 0) | (length_bytes == 2 ? 126 : 127));
  if (f.form == length_form::top_bit_set) announced |= std::uint64_t{1} << 63;
  for (int i = length_bytes - 1; i >= 0; --i) out += static_cast<char>((announced >> (8 * i)) & 0xff);
  if (!key) return out + f.payload;
  for (auto b : *key) out += static_cast<char>(b);
  for (std::size_t i = 0; i < f.payload.size(); ++i) out += static_cast<char>(f.payload[i] ^ (*key)[i % 4]);
  return out;
}

// What the iterations met, summed over a test case: a case that never cut a mask key or never sent
// a 64-bit length would pass without testing what it claims to, so the cases assert on these.
struct coverage {
  std::size_t iterations = 0;
  std::size_t frames_7bit = 0, frames_16bit = 0, frames_64bit = 0;
  std::size_t empty_fragments = 0, fragmented_messages = 0, pings = 0, unsolicited_pongs = 0;
  std::size_t characters_split_across_fragments = 0;
  std::size_t cuts_in_first_two_bytes = 0, cuts_in_extended_length = 0, cuts_in_mask_key = 0;
  std::size_t one_byte_pieces = 0;
  std::size_t abandoned_messages = 0;
  std::size_t buffer_releases = 0;  // a wait for the next message gave back its large buffer
  std::size_t closes_mid_message = 0;
  std::size_t gathered_sends = 0;  // iterations with fewer sends than frames: the cork gathered some
};

struct traffic {
  std::vector<model_message> messages;
  std::vector<frame_item> items;
};

frame_item control_item(rng_type& r, std::uint8_t opcode, bool masked, std::size_t size) {
  frame_item f;
  f.opcode = opcode;
  f.masked = masked;
  f.key = random_key(r);
  f.payload = random_bytes(r, size);
  return f;
}

std::size_t random_control_size(rng_type& r) {
  static constexpr std::size_t edges[] = {0, 1, 124, 125};
  return percent(r, 30) ? pick(r, edges) : between(r, 0, 125);
}

// Sometimes a few pings (and now and then an unsolicited pong) at this point of the stream.
void maybe_add_controls(rng_type& r, traffic& t, bool masked, unsigned chance, coverage& cov) {
  for (int i = 0; i < 3 && percent(r, chance); ++i) {
    const bool ping = percent(r, 85);
    t.items.push_back(control_item(r, ping ? op::ping : op::pong, masked, random_control_size(r)));
    ++(ping ? cov.pings : cov.unsolicited_pongs);
  }
}

// Where a message of `size` bytes is cut into fragments: sorted bounds from 0 to size. Cuts may
// coincide or fall at either end, which makes empty fragments.
std::vector<std::size_t> random_fragment_bounds(rng_type& r, std::size_t size, std::size_t at_least) {
  const auto roll = between(r, 0, 99);
  std::size_t count = roll < 40 ? 1 : roll < 70 ? between(r, 2, 3) : between(r, 4, 10);
  count = std::max(count, at_least);
  std::vector<std::size_t> bounds{0, size};
  for (std::size_t i = 1; i < count; ++i) bounds.push_back(between(r, 0, size));
  std::sort(bounds.begin(), bounds.end());
  return bounds;
}

// Appends message m as fragments with pings between them; `forced_cut` (when not npos) is made one
// of the cuts.
void append_message(rng_type& r, traffic& t, model_message m, bool masked, std::size_t at_least_fragments,
                    std::size_t forced_cut, coverage& cov) {
  const int index = static_cast<int>(t.messages.size());
  auto bounds = random_fragment_bounds(r, m.payload.size(), at_least_fragments);
  if (forced_cut != npos) {
    bounds.push_back(forced_cut);
    std::sort(bounds.begin(), bounds.end());
  }
  if (bounds.size() > 2) ++cov.fragmented_messages;
  for (std::size_t i = 0; i + 1 < bounds.size(); ++i) {
    if (i != 0) maybe_add_controls(r, t, masked, 30, cov);
    frame_item f;
    f.opcode = i == 0 ? opcode_of(m.type) : op::continuation;
    f.fin = i + 2 == bounds.size();
    f.masked = masked;
    f.key = random_key(r);
    f.payload = m.payload.substr(bounds[i], bounds[i + 1] - bounds[i]);
    f.message = index;
    f.message_offset = bounds[i];
    if (f.payload.empty()) ++cov.empty_fragments;
    // A cut before a continuation byte splits a character between two frames.
    if (m.type == wsl::message_type::text && i != 0 && bounds[i] < m.payload.size() &&
        (static_cast<std::uint8_t>(m.payload[bounds[i]]) & 0xC0) == 0x80)
      ++cov.characters_split_across_fragments;
    t.items.push_back(std::move(f));
  }
  t.messages.push_back(std::move(m));
}

model_message random_message(rng_type& r, std::size_t size) {
  model_message m;
  m.type = percent(r, 50) ? wsl::message_type::text : wsl::message_type::binary;
  m.payload = m.type == wsl::message_type::text ? random_text(r, size) : random_bytes(r, size);
  return m;
}

// For each point j of items (before item j; j == size at the end): whether a message is open there.
std::vector<bool> open_messages(const std::vector<frame_item>& items) {
  std::vector<bool> open;
  bool now = false;
  for (const auto& f : items) {
    open.push_back(now);
    if (!f.is_control()) now = !f.fin;
  }
  open.push_back(now);
  return open;
}

// The frames on the wire, and where each begins, where its payload begins and where it ends.
struct encoded_traffic {
  std::string bytes;
  std::vector<std::size_t> begin, payload_begin, end;
};

encoded_traffic encode_items(const std::vector<frame_item>& items, std::size_t count, coverage& cov) {
  encoded_traffic e;
  for (std::size_t i = 0; i < count; ++i) {
    const auto frame = encode_item(items[i]);
    e.begin.push_back(e.bytes.size());
    e.payload_begin.push_back(e.bytes.size() + frame.size() - items[i].payload.size());
    e.bytes += frame;
    e.end.push_back(e.bytes.size());
    const auto n = items[i].payload.size();
    ++(n < 126 ? cov.frames_7bit : n < 65536 ? cov.frames_16bit : cov.frames_64bit);
  }
  return e;
}

// ------------------------------------------------------------------------------------------------
// Delivery in random pieces

// Piece sizes: many of one to a few bytes, which cut headers, extended lengths and mask keys, and
// some of up to several KiB, which hand the websocket many frames at once; now and then more than
// a whole 64 KiB receive buffer holds.
std::size_t random_piece_size(rng_type& r) {
  const auto roll = between(r, 0, 99);
  if (roll < 35) return between(r, 1, 4);
  if (roll < 60) return between(r, 5, 64);
  if (roll < 85) return between(r, 65, 1024);
  if (roll < 97) return between(r, 1025, 8192);
  return between(r, 8193, 80000);
}

// The end of the next piece of e.bytes from `at` (before `limit`): a random size, or now and then
// a point inside the next frame header, so that every part of a header gets cut often.
std::size_t next_cut(rng_type& r, const encoded_traffic& e, std::size_t at, std::size_t limit) {
  if (percent(r, 30)) {
    const auto it = std::lower_bound(e.begin.begin(), e.begin.end(), at);
    if (it != e.begin.end()) {
      const auto i = static_cast<std::size_t>(it - e.begin.begin());
      const auto header = e.payload_begin[i] - e.begin[i];
      const auto cut = e.begin[i] + between(r, 1, header - 1);
      if (cut > at && cut < limit && cut - at <= 8192) return cut;
    }
  }
  return at + std::min(random_piece_size(r), limit - at);
}

// Notes which parts of a frame header the cut at `offset` falls into.
void record_cut(const encoded_traffic& e, const std::vector<frame_item>& items, std::size_t offset, coverage& cov) {
  const auto it = std::upper_bound(e.begin.begin(), e.begin.end(), offset);
  if (it == e.begin.begin()) return;
  const auto i = static_cast<std::size_t>(it - e.begin.begin()) - 1;
  const auto into = offset - e.begin[i];
  if (offset >= e.payload_begin[i] || into == 0) return;
  const auto header = e.payload_begin[i] - e.begin[i];
  const std::size_t key_begin = items[i].masked ? header - 4 : header;
  if (into < 2)
    ++cov.cuts_in_first_two_bytes;
  else if (into < key_begin)
    ++cov.cuts_in_extended_length;
  else
    ++cov.cuts_in_mask_key;
}

// Delivers e.bytes[from, to) in random pieces, running the websocket after each, and collects what
// it sends into `wire`. Some pieces end where no message is open, and there, while the stream has
// not reached `clock_until`, the fake clock may jump past the second after which a connection
// waiting for its next message gives back its large buffer: the release must lose nothing. False
// when the pipe refused bytes.
template <typename AfterPiece>
bool deliver_pieces(rng_type& r, connection_harness& h, const encoded_traffic& e, const std::vector<frame_item>& items,
                    std::size_t from, std::size_t to, std::size_t clock_until, std::string& wire, coverage& cov,
                    AfterPiece after_piece) {
  std::vector<std::size_t> between_messages;
  const auto open = open_messages(items);
  for (std::size_t i = 0; i < e.end.size(); ++i)
    if (!open[i + 1]) between_messages.push_back(e.end[i]);
  for (std::size_t at = from; at < to;) {
    auto cut = next_cut(r, e, at, to);
    if (percent(r, 10)) {
      const auto quiet = std::upper_bound(between_messages.begin(), between_messages.end(), at);
      if (quiet != between_messages.end() && *quiet <= to && *quiet - at <= 8192) cut = *quiet;
    }
    if (cut - at == 1) ++cov.one_byte_pieces;
    if (!h.peer->inject(std::string_view(e.bytes).substr(at, cut - at))) {
      BOOST_ERROR("the pipe refused bytes " << at << " to " << cut);
      return false;
    }
    at = cut;
    record_cut(e, items, at, cov);
    h.settle();
    if (at < clock_until && std::binary_search(between_messages.begin(), between_messages.end(), at) &&
        percent(r, 30)) {
      const auto capacity = h.peer->other_read_capacity();
      h.advance(std::chrono::milliseconds(between(r, 1000, 2500)));
      if (capacity > 256 && h.peer->other_read_capacity() == 256) ++cov.buffer_releases;
    }
    wire += h.peer->take();
    after_piece(at);
  }
  return true;
}

// ------------------------------------------------------------------------------------------------
// The reading side: every message read with randomly chosen calls and buffer sizes

struct observed_message {
  wsl::message_type type = wsl::message_type::binary;
  std::string data;
  bool complete = false;   // read to its end
  bool abandoned = false;  // left unread on purpose: the next read_message() skips the rest
};

struct read_outcome {
  std::vector<observed_message> messages;
  std::error_code ec;                   // what ended the reading
  std::vector<std::string> violations;  // broken promises of the reader API, in words
  std::size_t abandoned = 0;
};

// Buffer sizes for read_some(): tiny ones, and ones of 256 bytes and more, which take the path
// that receives a large payload straight into the caller's buffer.
std::size_t random_buffer_size(rng_type& r) {
  const auto roll = between(r, 0, 99);
  if (roll < 40) return between(r, 1, 16);
  if (roll < 70) return between(r, 17, 300);
  if (roll < 90) return between(r, 256, 4096);
  return between(r, 4097, 80000);
}

// Records a broken promise once per kind, so that one bug does not fill the log.
void note(read_outcome& out, std::string violation) {
  if (std::find(out.violations.begin(), out.violations.end(), violation) == out.violations.end())
    out.violations.push_back(std::move(violation));
}

enum class read_style { read_all, read_some_fixed, read_some_varying, read_chunk, mixed, abandon };

constexpr char sentinel = '\xA5';

// Reads messages until read_message() fails (the peer's close ends it with error::closed). Holds
// no reference to the test's locals: it reports by value.
asio::awaitable<read_outcome> read_messages(wsl::websocket& ws, std::uint64_t seed, bool may_abandon) {
  rng_type r(seed);
  read_outcome out;
  std::string buffer;
  for (;;) {
    std::error_code ec;
    auto reader = co_await ws.read_message(ec);
    if (ec) {
      out.ec = ec;
      break;
    }
    observed_message m;
    m.type = reader.type();
    static constexpr read_style styles[] = {
        read_style::read_all,   read_style::read_some_fixed, read_style::read_some_varying,
        read_style::read_chunk, read_style::mixed,           read_style::abandon};
    auto style = pick(r, styles);
    if (style == read_style::abandon && !may_abandon) style = read_style::mixed;
    if (style == read_style::read_all) {
      m.data = co_await reader.read_all(ec);
      if (!ec) {
        m.complete = true;
        if (!reader.done()) note(out, "read_all() returned before the end");
      }
    } else {
      std::size_t calls_left = style == read_style::abandon ? between(r, 0, 4) : SIZE_MAX;
      bool done_seen = false;  // done() held after a read: no byte may follow
      const std::size_t fixed_size = random_buffer_size(r);
      for (;;) {
        if (calls_left-- == 0) {
          m.abandoned = true;
          ++out.abandoned;
          break;
        }
        const bool use_chunk = style == read_style::read_chunk || (style == read_style::mixed && percent(r, 50));
        if (use_chunk) {
          const auto chunk = co_await reader.read_chunk(ec);
          if (ec) break;
          if (chunk.size() == 0) {
            if (!reader.done()) note(out, "read_chunk() gave an empty chunk before the end");
            m.complete = true;
            break;
          }
          if (done_seen) note(out, "read_chunk() gave bytes after done()");
          m.data.append(static_cast<const char*>(chunk.data()), chunk.size());
          if (reader.bytes_read() != m.data.size()) note(out, "bytes_read() lags behind");
          done_seen = reader.done();
          continue;
        }
        const auto size = style == read_style::read_some_fixed ? fixed_size : random_buffer_size(r);
        buffer.assign(size, sentinel);
        const auto n = co_await reader.read_some(asio::buffer(buffer.data(), size), ec);
        if (ec) break;
        if (n > size) {
          note(out, "read_some() returned more than the buffer holds");
          break;
        }
        if (buffer.find_first_not_of(sentinel, n) != std::string::npos)
          note(out, "read_some() wrote past the count it returned");
        if (n == 0) {
          if (!reader.done()) note(out, "read_some() returned 0 before the end");
          m.complete = true;
          break;
        }
        if (done_seen) note(out, "read_some() gave bytes after done()");
        m.data.append(buffer, 0, n);
        if (reader.bytes_read() != m.data.size()) note(out, "bytes_read() lags behind");
        done_seen = reader.done();
      }
    }
    if (m.complete) {
      if (reader.bytes_read() != m.data.size())
        note(out, "bytes_read() " + std::to_string(reader.bytes_read()) + " after " + std::to_string(m.data.size()) +
                      " bytes");
      // The end stays the end: a further read gives 0, and no bytes of the next message.
      char extra[64];
      const auto n = co_await reader.read_some(asio::buffer(extra), ec);
      if (ec || n != 0) note(out, "read_some() after the end gave bytes or an error");
    }
    out.messages.push_back(std::move(m));
    if (ec) {
      out.ec = ec;
      break;
    }
  }
  co_return out;
}

// The messages read equal the model's first `complete` messages; a message after them that was
// cut short by an error shows a prefix of the next one, of at most `max_partial` bytes.
void check_messages(const read_outcome& out, const std::vector<model_message>& model, std::size_t complete,
                    bool may_have_partial, std::size_t max_partial) {
  for (const auto& v : out.violations) BOOST_ERROR("reader API: " << v);
  BOOST_TEST(out.messages.size() >= complete);
  BOOST_TEST(out.messages.size() <= complete + (may_have_partial ? 1 : 0));
  for (std::size_t i = 0; i < out.messages.size() && i < model.size(); ++i) {
    BOOST_TEST_CONTEXT("message " << i << " of " << model.size()) {
      const auto& seen = out.messages[i];
      const auto& want = model[i];
      BOOST_TEST(seen.type == want.type);
      if (i < complete && !seen.abandoned) {
        BOOST_TEST(seen.complete);
        const auto diff = difference(want.payload, seen.data);
        BOOST_CHECK_MESSAGE(diff.empty(), diff);
      } else {
        // Abandoned, or broken off by the error: a prefix.
        BOOST_TEST(!seen.complete);
        BOOST_CHECK_MESSAGE(std::string_view(want.payload).starts_with(seen.data),
                            "the bytes read are no prefix of the message: " << difference(want.payload, seen.data));
        if (i >= complete) BOOST_TEST(seen.data.size() <= max_partial);
      }
    }
  }
}

// The websocket's frames are exactly a pong per ping, in order, then one close frame with `code`.
void check_answers(const std::vector<wire_frame>& frames, const std::vector<std::string>& pings, bool client,
                   std::uint16_t code) {
  BOOST_TEST(frames.size() == pings.size() + 1, "pongs and a close expected, " << frames.size() << " frames sent");
  for (std::size_t i = 0; i < frames.size(); ++i) {
    BOOST_TEST_CONTEXT("frame " << i << " of " << frames.size()) {
      const auto& f = frames[i];
      BOOST_TEST(f.fin);
      BOOST_TEST(f.rsv == 0);
      BOOST_TEST(f.masked == client);  // a client masks everything it sends, a server nothing
      if (i < pings.size()) {
        BOOST_TEST(f.opcode == op::pong);
        const auto diff = difference(pings[i], f.payload);
        BOOST_CHECK_MESSAGE(diff.empty(), "pong " << i << ": " << diff);
      } else if (i == pings.size()) {
        BOOST_TEST(f.is_close());
        BOOST_TEST(f.close_code() == code);
        BOOST_TEST(f.payload.size() <= 125u);
        const auto verdict = check_utf8(f.close_reason());
        BOOST_TEST((verdict.first_bad == npos && verdict.complete), "the close reason is not UTF-8");
      } else {
        BOOST_ERROR("a frame after the close frame, opcode " << int(f.opcode));
      }
    }
  }
}

std::vector<std::string> ping_payloads(const std::vector<frame_item>& items, std::size_t count) {
  std::vector<std::string> pings;
  for (std::size_t i = 0; i < count; ++i)
    if (items[i].opcode == op::ping) pings.push_back(items[i].payload);
  return pings;
}

wsl::connection_options property_options() {
  auto o = quiet_options();
  // Pongs beyond this bound may replace older ones (RFC 6455 section 5.5.3): with a bound no
  // iteration reaches, every ping must get its own pong.
  o.max_control_queue = 1 << 20;
  return o;
}

// ------------------------------------------------------------------------------------------------
// 1 and 2: random valid traffic read back

void read_random_traffic(wsl::role role, std::uint64_t seed, coverage& cov) {
  rng_type r(seed);
  const bool client = role == wsl::role::client;
  const bool masked = !client;  // what the peer does
  auto options = property_options();
  static constexpr std::size_t read_buffers[] = {256, 300, 1024, 4096, 64 << 10, 1 << 20};
  options.read_buffer_size = pick(r, read_buffers);

  traffic t;
  const auto count = between(r, 1, 8);
  std::size_t largest = 0;
  for (std::size_t i = 0; i < count; ++i) {
    maybe_add_controls(r, t, masked, 20, cov);
    auto m = random_message(r, random_message_size(r));
    largest = std::max(largest, m.payload.size());
    append_message(r, t, std::move(m), masked, 1, npos, cov);
  }
  maybe_add_controls(r, t, masked, 20, cov);
  // Exactly the largest message is still allowed; 0 means unlimited.
  const auto limit_roll = between(r, 0, 3);
  if (limit_roll == 0) options.max_message_size = std::max<std::size_t>(largest, 1);
  if (limit_roll == 1) options.max_message_size = 0;

  // The peer ends with a close frame: with a code and a reason, or with neither. Now and then it
  // closes early, in the middle of a message perhaps (control frames may come between fragments).
  if (percent(r, 15)) t.items.resize(between(r, 0, t.items.size()));
  const bool mid_message = open_messages(t.items).back();
  if (mid_message) ++cov.closes_mid_message;
  std::size_t complete = 0;
  for (const auto& f : t.items)
    if (!f.is_control() && f.fin) ++complete;
  static constexpr std::uint16_t codes[] = {0, 1000, 1001, 1003, 1008, 1011, 3000, 4999};
  const auto code = pick(r, codes);
  auto close = control_item(r, op::close, masked, 0);
  if (code != 0) close.payload = close_payload(code, random_text(r, between(r, 0, 100)));
  t.items.push_back(close);

  const auto e = encode_items(t.items, t.items.size(), cov);
  connection_harness h(options, role);
  auto reading = h.spawn(read_messages(h.ws, r(), true));
  std::string wire;
  // (Once the close is on its way the clock stands still: a close_timeout would end the handshake.)
  if (!deliver_pieces(r, h, e, t.items, 0, e.bytes.size(), e.begin.back(), wire, cov, [](std::size_t) {})) return;
  // A client waits for the server to end the TCP connection after the close handshake.
  h.peer->shutdown_send();
  h.settle();
  wire += h.peer->take();

  BOOST_REQUIRE(reading.done());
  const auto& out = reading.get();
  BOOST_TEST(out.ec == wsl::error::closed);
  check_messages(out, t.messages, complete, mid_message, SIZE_MAX);
  cov.abandoned_messages += out.abandoned;

  const auto frames = parse_frames(wire);
  check_answers(frames, ping_payloads(t.items, t.items.size()), client, code == 0 ? 1000 : code);
  BOOST_TEST(h.ws.peer_close().code == (code == 0 ? wsl::close_code::no_status : code));
  if (code != 0) BOOST_TEST(h.ws.peer_close().reason == std::string_view(close.payload).substr(2));
  // Every byte counts, headers included, in both directions.
  BOOST_TEST(h.ws.bytes_received() == e.bytes.size());
  BOOST_TEST(h.ws.bytes_sent() == wire.size());
  ++cov.iterations;
}

void check_reader_coverage(const coverage& cov, bool masked) {
  BOOST_TEST_MESSAGE("iterations " << cov.iterations << "; data and control frames with 7/16/64-bit lengths "
                                   << cov.frames_7bit << "/" << cov.frames_16bit << "/" << cov.frames_64bit
                                   << "; empty fragments " << cov.empty_fragments << "; pings " << cov.pings
                                   << "; characters split across fragments " << cov.characters_split_across_fragments
                                   << "; cuts in first bytes/extended length/mask key " << cov.cuts_in_first_two_bytes
                                   << "/" << cov.cuts_in_extended_length << "/" << cov.cuts_in_mask_key
                                   << "; abandoned messages " << cov.abandoned_messages << "; buffer releases "
                                   << cov.buffer_releases << "; closes inside a message " << cov.closes_mid_message);
  if (std::getenv("WSL_PROPERTY_SEED")) return;  // one iteration covers what it covers
  BOOST_TEST(cov.buffer_releases > 0u);
  BOOST_TEST(cov.closes_mid_message > 0u);
  BOOST_TEST(cov.frames_16bit > 0u);
  BOOST_TEST(cov.frames_64bit > 0u);
  BOOST_TEST(cov.empty_fragments > 0u);
  BOOST_TEST(cov.fragmented_messages > 0u);
  BOOST_TEST(cov.pings > 0u);
  BOOST_TEST(cov.unsolicited_pongs > 0u);
  BOOST_TEST(cov.characters_split_across_fragments > 0u);
  BOOST_TEST(cov.cuts_in_first_two_bytes > 0u);
  BOOST_TEST(cov.cuts_in_extended_length > 0u);
  if (masked) BOOST_TEST(cov.cuts_in_mask_key > 0u);
  BOOST_TEST(cov.one_byte_pieces > 0u);
  BOOST_TEST(cov.abandoned_messages > 0u);
}

// ------------------------------------------------------------------------------------------------
// 3: the writer side

asio::awaitable<std::error_code> write_part(std::shared_ptr<wsl::message_writer> writer, std::string data) {
  std::error_code ec;
  co_await writer->write(asio::buffer(data), ec);
  co_return ec;
}

asio::awaitable<std::error_code> flush_writer(std::shared_ptr<wsl::message_writer> writer) {
  std::error_code ec;
  co_await writer->flush(ec);
  co_return ec;
}

// GCC 12 at -O2 with the sanitizers inlines the smaller coroutines' ramps into their callers and
// then takes Asio's frame deallocation for a mismatched delete (-Wmismatched-new-delete): out of
// line they stay.
[[gnu::noinline]] asio::awaitable<std::error_code> finish_writer(std::shared_ptr<wsl::message_writer> writer) {
  std::error_code ec;
  co_await writer->finish(ec);
  co_return ec;
}

[[gnu::noinline]] asio::awaitable<std::error_code> finish_writer_with(std::shared_ptr<wsl::message_writer> writer,
                                                                      std::string data) {
  std::error_code ec;
  co_await writer->finish(asio::buffer(data), ec);
  co_return ec;
}

// Follows the websocket's frames against the messages the test writes, checking RFC 6455's
// fragmentation rules on the way: a message's first frame carries its opcode, the others are
// continuations, only the last has FIN, control frames may come between them.
struct outgoing_checker {
  bool client = false;
  std::vector<model_message> plan;  // every message the test has begun to write
  std::size_t next = 0;             // the message the next data frame belongs to
  bool open = false;                // its first frame is out, its last is not
  std::string on_wire;              // its payload on the wire so far
  std::size_t written = 0;          // its bytes handed to the writer so far
  std::size_t data_frames = 0;      // over the whole connection
  std::vector<std::string> pongs;
  bool close_seen = false;
  std::uint16_t close_code = 0;
  std::vector<mask_key> keys;
  std::size_t frames_by_form[3] = {};  // data frames with 7-, 16- and 64-bit lengths

  void absorb(const wire_frame& f) {
    BOOST_TEST(f.masked == client);
    if (f.masked) keys.push_back(f.mask);
    BOOST_TEST(f.rsv == 0);
    BOOST_TEST(!close_seen, "a frame after the close frame");
    if ((f.opcode & 0x8) != 0) {
      BOOST_TEST(f.fin);
      BOOST_TEST((f.opcode == op::pong || f.opcode == op::close), "unexpected control frame " << int(f.opcode));
      if (f.opcode == op::pong) pongs.push_back(f.payload);
      if (f.opcode == op::close) {
        close_seen = true;
        close_code = f.close_code();
      }
      return;
    }
    ++data_frames;
    const auto n = f.payload.size();
    ++frames_by_form[n < 126 ? 0 : n < 65536 ? 1 : 2];
    BOOST_REQUIRE_MESSAGE(next < plan.size(), "a data frame while no message is being written");
    const auto& m = plan[next];
    if (!open)
      BOOST_TEST(int(f.opcode) == int(opcode_of(m.type)),
                 "the first frame of message " << next << " has opcode " << int(f.opcode));
    else
      BOOST_TEST(int(f.opcode) == int(op::continuation),
                 "a later frame of message " << next << " has opcode " << int(f.opcode));
    open = true;
    on_wire += f.payload;
    BOOST_TEST(on_wire.size() <= written, "bytes on the wire before they were written");
    BOOST_CHECK_MESSAGE(
        std::string_view(m.payload).starts_with(on_wire),
        "message " << next << " on the wire: " << difference(m.payload.substr(0, on_wire.size()), on_wire));
    if (f.fin) {
      const auto diff = difference(m.payload, on_wire);
      BOOST_CHECK_MESSAGE(diff.empty(), "message " << next << " ended: " << diff);
      open = false;
      on_wire.clear();
      written = 0;
      ++next;
    }
  }
};

std::size_t random_write_buffer_size(rng_type& r) {
  const auto roll = between(r, 0, 3);
  if (roll == 0) return 256;
  if (roll == 1) return between(r, 257, 3000);
  if (roll == 2) return 4096;
  return 64 << 10;
}

void write_random_messages(std::uint64_t seed, coverage& cov) {
  rng_type r(seed);
  const auto role = percent(r, 50) ? wsl::role::client : wsl::role::server;
  const bool client = role == wsl::role::client;
  auto options = property_options();
  options.write_buffer_size = random_write_buffer_size(r);
  connection_harness h(options, role);
  // A reader, so that the peer's pings are answered while messages are being written.
  auto reading = h.spawn(read_messages(h.ws, r(), false));

  outgoing_checker check;
  check.client = client;
  std::string wire;
  std::size_t wire_parsed = 0;
  auto absorb = [&] {
    wire += h.peer->take();
    std::size_t consumed = 0;
    const auto frames = parse_frames(std::string_view(wire).substr(wire_parsed), &consumed);
    wire_parsed += consumed;
    for (const auto& f : frames) check.absorb(f);
  };
  // The peer's pings, delivered in random pieces between the writes: a piece that ends inside a
  // frame leaves input at hand, and then small frames join the cork.
  std::string peer_pending;
  std::vector<std::string> pings;
  auto deliver_some = [&](bool all) {
    if (peer_pending.empty()) return;
    const auto n = all ? peer_pending.size() : std::min(random_piece_size(r), peer_pending.size());
    BOOST_REQUIRE(h.peer->inject(std::string_view(peer_pending).substr(0, n)));
    peer_pending.erase(0, n);
    h.settle();
    absorb();
  };
  auto maybe_ping = [&] {
    if (!percent(r, 20)) return;
    const bool ping = percent(r, 85);
    const auto f = control_item(r, ping ? op::ping : op::pong, !client, random_control_size(r));
    if (ping) pings.push_back(f.payload);
    peer_pending += encode_item(f);
    ++(ping ? cov.pings : cov.unsolicited_pongs);
  };
  // Lets a spawned operation run to its end; with the memory pipe nothing is left to wait for.
  auto finish_op = [&](task<std::error_code> t) {
    h.settle();
    BOOST_REQUIRE(t.done());
    BOOST_REQUIRE(!t.get());
    absorb();
  };

  const auto count = between(r, 1, 6);
  const auto wbs = options.write_buffer_size;
  for (std::size_t i = 0; i < count; ++i) {
    // Small writes fill the writer's buffer to its bound: messages of a few buffers for them.
    const bool small_writes = percent(r, 35);
    const auto size = small_writes ? std::min<std::size_t>(between(r, wbs, 4 * wbs), 70000) : random_message_size(r);
    auto m = random_message(r, size);
    check.plan.push_back(m);
    BOOST_TEST_CONTEXT("message " << i << " of " << m.payload.size() << " bytes, write_buffer_size "
                                  << options.write_buffer_size) {
      maybe_ping();
      deliver_some(false);
      if (percent(r, 25)) {
        // A whole message: one frame.
        const auto frames_before = check.data_frames;
        check.written = m.payload.size();
        finish_op(h.spawn(write_whole_message(h.ws, m.type, m.payload)));
        BOOST_TEST(check.next == i + 1, "the message is complete on the wire");
        BOOST_TEST(check.data_frames - frames_before == 1u);
        continue;
      }
      // A stream: writes at random cuts (empty ones included), or many small ones at the
      // writer's thresholds, with flushes; then finish() or finish(data).
      auto writer = std::make_shared<wsl::message_writer>(h.ws.create_message_writer(m.type));
      std::vector<std::size_t> pieces;
      if (!small_writes) {
        const auto bounds = random_fragment_bounds(r, size, 1);
        for (std::size_t k = 0; k + 1 < bounds.size(); ++k) pieces.push_back(bounds[k + 1] - bounds[k]);
      }
      const bool finish_with_data = percent(r, 50);
      std::size_t tail = 0;
      if (finish_with_data && small_writes) tail = between(r, 0, std::min(size, wbs));
      if (finish_with_data && !small_writes) {
        tail = pieces.back();
        pieces.pop_back();
      }
      auto small_write_size = [&]() -> std::size_t {
        const auto room = wbs - std::min(wbs, check.written - check.on_wire.size());
        const auto below_quarter = between(r, 1, wbs / 4 - 1);
        const auto roll = between(r, 0, 19);
        if (roll < 2) return 0;
        if (roll < 4) return wbs / 4 - 1;                                     // the largest write that is buffered
        if (roll < 5) return wbs / 4;                                         // the smallest that goes out at once
        if (roll < 9) return room < wbs / 4 ? room : below_quarter;           // fills the buffer exactly
        if (roll < 12) return room + 1 < wbs / 4 ? room + 1 : below_quarter;  // one more than fits
        return below_quarter;
      };
      for (std::size_t offset = 0, k = 0;;) {
        std::size_t n;
        if (small_writes) {
          if (offset == size - tail) break;
          n = std::min(small_write_size(), size - tail - offset);
        } else {
          if (k == pieces.size()) break;
          n = pieces[k++];
        }
        const auto part = m.payload.substr(offset, n);
        offset += n;
        check.written += part.size();
        finish_op(h.spawn(write_part(writer, part)));
        BOOST_TEST(check.next == i, "FIN before finish()");
        const auto held = check.written - check.on_wire.size();
        BOOST_TEST(held <= wbs, "the writer holds " << held << " bytes");
        if (percent(r, small_writes ? 4 : 15)) {
          finish_op(h.spawn(flush_writer(writer)));
          BOOST_TEST(check.on_wire.size() == check.written, "flush() left bytes behind");
        }
        maybe_ping();
        if (percent(r, 30)) deliver_some(false);
      }
      const auto frames_before = check.data_frames;
      if (finish_with_data) {
        const auto part = m.payload.substr(size - tail);
        const auto held = check.written - check.on_wire.size();
        check.written += part.size();
        finish_op(h.spawn(finish_writer_with(writer, part)));
        // "write(data) then finish(), in one frame when it fits"
        if (held + part.size() <= wbs) BOOST_TEST(check.data_frames - frames_before == 1u);
      } else {
        finish_op(h.spawn(finish_writer(writer)));
        BOOST_TEST(check.data_frames - frames_before >= 1u);
      }
      BOOST_TEST(check.next == i + 1, "the message is complete on the wire after finish()");
      BOOST_TEST(writer->finished());
    }
  }
  // The peer's remaining pings, then its close: the websocket answers and the reader ends.
  peer_pending += encode_item(control_item(r, op::close, !client, 0));
  deliver_some(true);
  h.peer->shutdown_send();
  h.settle();
  absorb();
  BOOST_TEST(wire_parsed == wire.size(), "the wire ends inside a frame");
  BOOST_REQUIRE(reading.done());
  BOOST_TEST(reading.get().ec == wsl::error::closed);
  BOOST_TEST(reading.get().messages.empty());
  BOOST_TEST(check.next == check.plan.size());
  BOOST_TEST(check.close_seen);
  BOOST_TEST(check.close_code == 1000);
  BOOST_TEST(check.pongs.size() == pings.size());
  for (std::size_t i = 0; i < std::min(check.pongs.size(), pings.size()); ++i)
    BOOST_CHECK_MESSAGE(check.pongs[i] == pings[i], "pong " << i << ": " << difference(pings[i], check.pongs[i]));
  // Fresh keys: a constant one would let an attacker predict the bytes on the wire.
  if (check.keys.size() >= 4)
    BOOST_TEST(std::count(check.keys.begin(), check.keys.end(), check.keys.front()) <
               std::ptrdiff_t(check.keys.size()));
  BOOST_TEST(h.ws.bytes_sent() == wire.size());
  cov.frames_7bit += check.frames_by_form[0];
  cov.frames_16bit += check.frames_by_form[1];
  cov.frames_64bit += check.frames_by_form[2];
  ++cov.iterations;
}

// ------------------------------------------------------------------------------------------------
// Reader and writer together: random pipelined traffic echoed back

struct echo_outcome {
  std::error_code ec;  // what ended the echoing
  std::size_t echoed = 0;
  std::error_code write_error;
};

// Echoes every message with randomly chosen calls: read_all() and write_message() (a small answer
// joins the cork while more input is at hand), or a message_writer fed from read_chunk() or from
// read_some() with a buffer of random size.
// (Out of line for GCC 12: see finish_writer.)
[[gnu::noinline]] asio::awaitable<echo_outcome> echo_messages(wsl::websocket& ws, std::uint64_t seed) {
  rng_type r(seed);
  echo_outcome out;
  std::string buffer;
  for (;;) {
    std::error_code ec;
    auto reader = co_await ws.read_message(ec);
    if (ec) {
      out.ec = ec;
      break;
    }
    const auto style = between(r, 0, 2);
    if (style == 0) {
      const auto data = co_await reader.read_all(ec);
      if (ec) {
        out.ec = ec;
        break;
      }
      co_await ws.write_message(reader.type(), asio::buffer(data), out.write_error);
    } else {
      auto writer = ws.create_message_writer(reader.type());
      for (;;) {
        asio::const_buffer piece;
        if (style == 1) {
          // The view lies in the receive buffer; it is written before the next read.
          piece = co_await reader.read_chunk(ec);
        } else {
          buffer.resize(random_buffer_size(r));
          const auto n = co_await reader.read_some(asio::buffer(buffer), ec);
          piece = asio::buffer(buffer.data(), n);
        }
        if (ec || piece.size() == 0) break;
        co_await writer.write(piece, out.write_error);
        if (out.write_error) break;
      }
      if (ec) {
        out.ec = ec;
        break;
      }
      if (!out.write_error) co_await writer.finish(out.write_error);
    }
    if (out.write_error) break;
    ++out.echoed;
  }
  co_return out;
}

void echo_random_traffic(std::uint64_t seed, coverage& cov) {
  rng_type r(seed);
  const auto role = percent(r, 50) ? wsl::role::client : wsl::role::server;
  const bool client = role == wsl::role::client;
  auto options = property_options();
  options.write_buffer_size = random_write_buffer_size(r);
  static constexpr std::size_t read_buffers[] = {256, 1024, 64 << 10};
  options.read_buffer_size = pick(r, read_buffers);

  traffic t;
  const auto count = between(r, 1, 12);
  for (std::size_t i = 0; i < count; ++i) {
    maybe_add_controls(r, t, !client, 20, cov);
    // Small messages mostly, which pipeline; now and then a large one.
    const auto size = percent(r, 75) ? between(r, 0, 200) : random_message_size(r);
    append_message(r, t, random_message(r, size), !client, 1, npos, cov);
  }
  maybe_add_controls(r, t, !client, 20, cov);
  t.items.push_back(control_item(r, op::close, !client, 0));
  const auto e = encode_items(t.items, t.items.size(), cov);

  connection_harness h(options, role);
  auto echoing = h.spawn(echo_messages(h.ws, r()));
  std::string wire;
  const auto writes_before = h.peer->other_write_count();
  if (!deliver_pieces(r, h, e, t.items, 0, e.bytes.size(), e.begin.back(), wire, cov, [](std::size_t) {})) return;
  h.peer->shutdown_send();
  h.settle();
  wire += h.peer->take();

  BOOST_REQUIRE(echoing.done());
  const auto& out = echoing.get();
  BOOST_TEST(out.ec == wsl::error::closed);
  BOOST_TEST(!out.write_error);
  BOOST_TEST(out.echoed == t.messages.size());

  outgoing_checker check;
  check.client = client;
  check.plan = t.messages;
  check.written = SIZE_MAX;  // the echo's writes are not followed one by one here
  std::size_t consumed = 0;
  const auto frames = parse_frames(wire, &consumed);
  BOOST_TEST(consumed == wire.size(), "the wire ends inside a frame");
  for (const auto& f : frames) {
    check.absorb(f);
    if (f.fin && (f.opcode & 0x8) == 0) check.written = SIZE_MAX;
  }
  BOOST_TEST(check.next == t.messages.size(), "echoes of " << check.next << " of " << t.messages.size() << " messages");
  BOOST_TEST(!check.open);
  BOOST_TEST(check.close_seen);
  BOOST_TEST(check.close_code == 1000);
  const auto pings = ping_payloads(t.items, t.items.size());
  BOOST_TEST(check.pongs.size() == pings.size());
  for (std::size_t i = 0; i < std::min(check.pongs.size(), pings.size()); ++i)
    BOOST_CHECK_MESSAGE(check.pongs[i] == pings[i], "pong " << i << ": " << difference(pings[i], check.pongs[i]));
  BOOST_TEST(h.ws.bytes_received() == e.bytes.size());
  BOOST_TEST(h.ws.bytes_sent() == wire.size());
  if (h.peer->other_write_count() - writes_before < frames.size()) ++cov.gathered_sends;
  ++cov.iterations;
}

// ------------------------------------------------------------------------------------------------
// 4: one violation at a random point of valid traffic

enum class corruption {
  wrong_masking,               // an unmasked frame to a server, a masked one to a client
  reserved_bits,               // RSV1-3 without an extension
  reserved_opcode,             // 3-7, B-F
  fragmented_control,          // a control frame without FIN
  oversized_control,           // a control frame over 125 bytes
  orphan_continuation,         // a continuation while no message is open
  data_frame_inside_message,   // a text or binary frame while a message is open
  length_top_bit,              // a 64-bit length with its most significant bit set
  non_minimal_length,          // a length in a longer form than needed
  invalid_utf8,                // a bad sequence inside a fragmented text message
  text_ends_inside_character,  // a text message whose last character is cut short
  message_too_large,           // a message over max_message_size
  one_byte_close,              // a close frame whose payload is a single byte
  bad_close_code,              // a close code that may not be sent (RFC 6455 section 7.4)
  close_reason_not_utf8,       // a close reason that is not UTF-8
};
constexpr std::size_t corruption_kinds = 15;

const char* name_of(corruption c) {
  static constexpr const char* names[corruption_kinds] = {"wrong masking",
                                                          "reserved bits",
                                                          "reserved opcode",
                                                          "fragmented control",
                                                          "oversized control",
                                                          "orphan continuation",
                                                          "data frame inside a message",
                                                          "64-bit length with top bit",
                                                          "non-minimal length",
                                                          "invalid UTF-8",
                                                          "text ending inside a character",
                                                          "message too large",
                                                          "one-byte close",
                                                          "bad close code",
                                                          "close reason not UTF-8"};
  return names[static_cast<std::size_t>(c)];
}

struct broken_traffic {
  traffic t;
  std::size_t trigger = 0;        // the item whose arrival must fail the connection
  std::size_t trigger_bytes = 0;  // bytes of its payload needed for that (0: its header is enough)
  wsl::error expected = wsl::error::closed;
  std::uint16_t code = 1002;
  std::uint64_t max_message_size = 0;  // 0: the default
  std::size_t max_partial = SIZE_MAX;  // bytes of the broken message a reader may see
  bool starts_fragment = false;        // (invalid UTF-8) the bad byte is the first of a fragment
};

std::size_t random_point(rng_type& r, const std::vector<bool>& open, bool want_open) {
  std::vector<std::size_t> points;
  for (std::size_t j = 0; j < open.size(); ++j)
    if (open[j] == want_open) points.push_back(j);
  BOOST_REQUIRE(!points.empty());
  return points[between(r, 0, points.size() - 1)];
}

std::size_t random_data_item(rng_type& r, const std::vector<frame_item>& items) {
  std::vector<std::size_t> data;
  for (std::size_t i = 0; i < items.size(); ++i)
    if (!items[i].is_control()) data.push_back(i);
  BOOST_REQUIRE(!data.empty());
  return data[between(r, 0, data.size() - 1)];
}

// A byte sequence that no valid UTF-8 text can contain, in each of the ways RFC 3629 rules out.
std::string random_invalid_utf8(rng_type& r) {
  const auto byte = [&](std::uint64_t lo, std::uint64_t hi) {
    return std::string(1, static_cast<char>(between(r, lo, hi)));
  };
  switch (between(r, 0, 6)) {
    case 0: return byte(0x80, 0xBF);  // a continuation byte with no lead
    case 1: {
      static constexpr std::uint8_t never[] = {0xC0, 0xC1, 0xF5, 0xF6, 0xF7, 0xF8, 0xFB, 0xFE, 0xFF};
      return std::string(1, static_cast<char>(pick(r, never)));
    }
    case 2: {
      // A character cut short by an ASCII byte.
      char32_t c;
      do c = static_cast<char32_t>(between(r, 0x80, 0x10FFFF));
      while (c >= 0xD800 && c <= 0xDFFF);
      auto s = encode_utf8(c);
      s.resize(between(r, 1, s.size() - 1));
      return s + byte(0x20, 0x7E);
    }
    case 3: return "\xE0" + byte(0x80, 0x9F) + "\x80";       // overlong three bytes
    case 4: return "\xED" + byte(0xA0, 0xBF) + "\x80";       // a surrogate
    case 5: return "\xF4" + byte(0x90, 0xBF) + "\x80\x80";   // above U+10FFFF
    default: return "\xF0" + byte(0x80, 0x8F) + "\x80\x80";  // overlong four bytes
  }
}

// The item of message m that carries payload byte `offset`.
std::size_t item_carrying(const std::vector<frame_item>& items, int m, std::size_t offset) {
  for (std::size_t i = 0; i < items.size(); ++i)
    if (items[i].message == m && items[i].message_offset <= offset &&
        offset < items[i].message_offset + items[i].payload.size())
      return i;
  BOOST_FAIL("no fragment carries byte " << offset << " of message " << m);
  return 0;
}

broken_traffic make_broken_traffic(rng_type& r, corruption kind, bool client, coverage& cov) {
  const bool masked = !client;
  broken_traffic b;
  auto& t = b.t;
  auto add_messages = [&](std::size_t count, std::size_t cap, bool one_fragmented) {
    const auto fragmented = count == 0 ? 0 : between(r, 0, count - 1);
    for (std::size_t i = 0; i < count; ++i) {
      maybe_add_controls(r, t, masked, 20, cov);
      auto size = std::min(random_message_size(r), cap);
      if (cap != SIZE_MAX && percent(r, 20)) size = cap;  // exactly at the limit is still allowed
      append_message(r, t, random_message(r, size), masked, one_fragmented && i == fragmented ? 2 : 1, npos, cov);
    }
    maybe_add_controls(r, t, masked, 20, cov);
  };
  auto insert = [&](std::size_t at, frame_item f) {
    t.items.insert(t.items.begin() + static_cast<std::ptrdiff_t>(at), std::move(f));
    b.trigger = at;
  };
  static constexpr std::uint8_t controls[] = {op::ping, op::pong, op::close};
  switch (kind) {
    case corruption::wrong_masking:
    case corruption::reserved_bits:
    case corruption::reserved_opcode: {
      add_messages(between(r, 1, 4), SIZE_MAX, false);
      b.trigger = between(r, 0, t.items.size() - 1);
      auto& f = t.items[b.trigger];
      if (kind == corruption::wrong_masking) {
        f.masked = !f.masked;
        b.expected = client ? wsl::error::masked_frame : wsl::error::unmasked_frame;
      } else if (kind == corruption::reserved_bits) {
        static constexpr std::uint8_t bits[] = {
            rsv1, rsv2, rsv3, rsv1 | rsv2, rsv1 | rsv3, rsv2 | rsv3, rsv1 | rsv2 | rsv3};
        f.rsv = pick(r, bits);
        b.expected = wsl::error::reserved_bits;
      } else {
        static constexpr std::uint8_t reserved[] = {0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF};
        f.opcode = pick(r, reserved);
        b.expected = wsl::error::bad_opcode;
      }
      break;
    }
    case corruption::fragmented_control:
    case corruption::oversized_control: {
      add_messages(between(r, 0, 4), SIZE_MAX, false);
      const bool oversized = kind == corruption::oversized_control;
      const auto size = !oversized       ? random_control_size(r)
                        : percent(r, 90) ? between(r, 126, 1000)
                                         : between(r, 65536, 70000);
      auto f = control_item(r, pick(r, controls), masked, size);
      f.fin = oversized;
      insert(between(r, 0, t.items.size()), std::move(f));
      b.expected = oversized ? wsl::error::control_too_large : wsl::error::fragmented_control;
      break;
    }
    case corruption::orphan_continuation:
    case corruption::data_frame_inside_message: {
      const bool inside = kind == corruption::data_frame_inside_message;
      add_messages(between(r, inside ? 1 : 0, 4), SIZE_MAX, inside);
      frame_item f;
      f.opcode = !inside ? op::continuation : percent(r, 50) ? op::text : op::binary;
      f.fin = percent(r, 50);
      f.masked = masked;
      f.key = random_key(r);
      f.payload = random_text(r, between(r, 0, 300));
      insert(random_point(r, open_messages(t.items), inside), std::move(f));
      b.expected = inside ? wsl::error::expected_continuation : wsl::error::unexpected_continuation;
      break;
    }
    case corruption::length_top_bit:
    case corruption::non_minimal_length: {
      add_messages(between(r, 1, 4), SIZE_MAX, false);
      b.trigger = random_data_item(r, t.items);
      auto& f = t.items[b.trigger];
      if (kind == corruption::length_top_bit) {
        f.form = length_form::top_bit_set;
      } else {
        // Only the header is sent, and the message it belongs to is never complete: its payload
        // may be shortened to one that has a shorter form.
        if (f.payload.size() >= 65536) f.payload.resize(between(r, 0, 65535));
        f.form = f.payload.size() < 126 && percent(r, 50) ? length_form::sixteen_bit : length_form::sixty_four_bit;
      }
      b.expected = wsl::error::bad_length;
      break;
    }
    case corruption::invalid_utf8: {
      add_messages(between(r, 0, 3), SIZE_MAX, false);
      const auto prefix = random_text(r, percent(r, 80) ? between(r, 0, 3000) : random_message_size(r));
      model_message m{wsl::message_type::text, prefix + random_invalid_utf8(r) + random_text(r, between(r, 1, 2000))};
      const auto verdict = check_utf8(m.payload);
      BOOST_REQUIRE(verdict.first_bad != npos);
      const int index = static_cast<int>(t.messages.size());
      // Half of the time the bad byte begins a fragment: what it breaks lies in the one before.
      const bool cut_there = percent(r, 50);
      append_message(r, t, std::move(m), masked, 2, cut_there ? verdict.first_bad : npos, cov);
      b.trigger = item_carrying(t.items, index, verdict.first_bad);
      b.trigger_bytes = verdict.first_bad - t.items[b.trigger].message_offset + 1;
      b.starts_fragment = verdict.first_bad != 0 && t.items[b.trigger].message_offset == verdict.first_bad;
      b.max_partial = verdict.first_bad;
      b.expected = wsl::error::invalid_utf8;
      b.code = 1007;
      break;
    }
    case corruption::text_ends_inside_character: {
      add_messages(between(r, 0, 3), SIZE_MAX, false);
      auto last = encode_utf8(static_cast<char32_t>(between(r, 0x80, 0xD7FF)));
      if (percent(r, 50)) last = encode_utf8(static_cast<char32_t>(between(r, 0x10000, 0x10FFFF)));
      last.resize(between(r, 1, last.size() - 1));
      model_message m{wsl::message_type::text, random_text(r, between(r, 0, 3000)) + last};
      const auto verdict = check_utf8(m.payload);
      BOOST_REQUIRE((verdict.first_bad == npos && !verdict.complete));
      append_message(r, t, std::move(m), masked, 1, npos, cov);
      b.trigger = t.items.size() - 1;  // the last fragment: only its end can tell
      b.trigger_bytes = t.items[b.trigger].payload.size();
      b.expected = wsl::error::invalid_utf8;
      b.code = 1007;
      break;
    }
    case corruption::message_too_large: {
      const auto roll = between(r, 0, 2);
      const auto limit = roll == 0 ? between(r, 1, 200) : roll == 1 ? between(r, 126, 5000) : between(r, 60000, 70000);
      add_messages(between(r, 0, 3), limit, false);
      const int index = static_cast<int>(t.messages.size());
      append_message(r, t, random_message(r, limit + between(r, 1, percent(r, 50) ? 3 : 3000)), masked, 1, npos, cov);
      // The frame whose announced length takes the message over the limit: its header is enough.
      std::size_t announced = 0;
      for (std::size_t i = 0; i < t.items.size(); ++i) {
        if (t.items[i].message != index) continue;
        announced += t.items[i].payload.size();
        if (announced > limit) {
          b.trigger = i;
          break;
        }
      }
      b.max_message_size = limit;
      b.max_partial = limit;
      b.expected = wsl::error::message_too_large;
      b.code = 1009;
      break;
    }
    case corruption::one_byte_close:
    case corruption::bad_close_code:
    case corruption::close_reason_not_utf8: {
      // A close frame at any point (between fragments too); only its whole payload can tell.
      add_messages(between(r, 0, 4), SIZE_MAX, false);
      auto f = control_item(r, op::close, masked, 1);
      if (kind == corruption::bad_close_code) {
        static constexpr std::uint16_t never_sent[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535};
        const auto code = percent(r, 70) ? pick(r, never_sent) : static_cast<std::uint16_t>(between(r, 5000, 65535));
        f.payload = close_payload(code, random_text(r, between(r, 0, 50)));
        b.expected = wsl::error::bad_close_code;
      } else if (kind == corruption::close_reason_not_utf8) {
        f.payload = close_payload(
            1000, random_text(r, between(r, 0, 40)) + random_invalid_utf8(r) + random_text(r, between(r, 0, 40)));
        b.expected = wsl::error::invalid_utf8;
        b.code = 1007;
      } else {
        b.expected = wsl::error::bad_close_payload;
      }
      b.trigger_bytes = f.payload.size();
      insert(between(r, 0, t.items.size()), std::move(f));
      break;
    }
  }
  return b;
}

struct violation_coverage {
  std::array<std::array<std::size_t, 2>, corruption_kinds> runs{};  // by kind and role
  std::size_t bad_byte_starts_fragment = 0;
  std::size_t pongs_before_close = 0;
  std::size_t partial_messages = 0;
  std::size_t abandoned_messages = 0;
};

void inject_one_violation(std::uint64_t seed, coverage& cov, violation_coverage& vcov) {
  // The kind and the role come from the seed, so that consecutive seeds take turns at each.
  const auto kind = static_cast<corruption>(seed % corruption_kinds);
  const auto role = (seed / corruption_kinds) % 2 == 0 ? wsl::role::server : wsl::role::client;
  const bool client = role == wsl::role::client;
  BOOST_TEST_CONTEXT(name_of(kind) << ", " << (client ? "client" : "server")) {
    rng_type r(seed);
    const auto b = make_broken_traffic(r, kind, client, cov);
    auto options = property_options();
    if (b.max_message_size != 0) options.max_message_size = b.max_message_size;
    const auto e = encode_items(b.t.items, b.trigger + 1, cov);
    // The stream stops right where the violation can be seen: the websocket may not wait for more.
    const auto detect = e.payload_begin[b.trigger] + b.trigger_bytes;
    const auto violation_begins = e.begin[b.trigger];

    connection_harness h(options, role);
    // The reader may leave a message unread: skipping it must check it all the same.
    auto reading = h.spawn(read_messages(h.ws, r(), true));
    std::string wire;
    const bool delivered =
        deliver_pieces(r, h, e, b.t.items, 0, detect, violation_begins, wire, cov, [&](std::size_t at) {
          if (at > violation_begins) return;
          std::size_t consumed = 0;
          const auto frames = parse_frames(wire, &consumed);
          const bool closed =
              std::any_of(frames.begin(), frames.end(), [](const wire_frame& f) { return f.is_close(); });
          BOOST_REQUIRE_MESSAGE(
              !closed, "the websocket failed at byte " << at << ", before the violation at byte " << violation_begins);
        });
    if (!delivered) return;
    const auto pings = ping_payloads(b.t.items, b.trigger);
    const auto frames = parse_frames(wire);
    BOOST_TEST_CONTEXT("the stream stopped at byte " << detect << " of which the violation begins at "
                                                     << violation_begins) {
      check_answers(frames, pings, client, b.code);
      BOOST_TEST(h.peer->received_eof(), "no FIN behind the close frame");
    }
    h.peer->shutdown_send();
    h.settle();
    BOOST_REQUIRE(reading.done());
    const auto& out = reading.get();
    BOOST_TEST(out.ec == b.expected);
    if (b.code == 1002) BOOST_TEST(out.ec == wsl::condition::protocol_violation);
    // The messages complete before the violation, intact; the one it broke, at most a prefix.
    std::size_t complete = 0;
    for (std::size_t i = 0; i < b.trigger; ++i)
      if (!b.t.items[i].is_control() && b.t.items[i].fin && b.t.items[i].message >= 0) ++complete;
    const bool broke_a_message = open_messages(b.t.items)[b.trigger] || kind == corruption::invalid_utf8 ||
                                 kind == corruption::text_ends_inside_character;
    check_messages(out, b.t.messages, complete, broke_a_message, b.max_partial);

    ++vcov.runs[static_cast<std::size_t>(kind)][client ? 1 : 0];
    if (b.starts_fragment) ++vcov.bad_byte_starts_fragment;
    vcov.pongs_before_close += pings.size();
    if (out.messages.size() > complete) ++vcov.partial_messages;
    vcov.abandoned_messages += out.abandoned;
    ++cov.iterations;
  }
}

// ------------------------------------------------------------------------------------------------
// UTF-8 validation on its own, against the model

// Mostly valid text with ASCII runs long enough for the eight-byte fast path, now and then a bad
// sequence or a stray byte.
std::string random_near_utf8(rng_type& r) {
  std::string s;
  const auto parts = between(r, 1, 12);
  for (std::size_t i = 0; i < parts; ++i) {
    const auto roll = between(r, 0, 99);
    if (roll < 40)
      s += encode_utf8(random_code_point(r));
    else if (roll < 70)
      s += random_text(r, between(r, 0, 20));  // mostly ASCII runs
    else if (roll < 80)
      s += random_invalid_utf8(r);
    else if (roll < 90)
      s += static_cast<char>(between(r, 0x80, 0xFF));
    else
      s += encode_utf8(random_code_point(r)).substr(0, between(r, 0, 3));  // maybe a cut character
  }
  return s;
}

void validate_random_text(std::uint64_t seed) {
  rng_type r(seed);
  for (int n = 0; n < 50; ++n) {
    const auto text = random_near_utf8(r);
    const auto verdict = check_utf8(text);
    BOOST_TEST_CONTEXT("text " << n << " of " << text.size() << " bytes, first bad byte "
                               << (verdict.first_bad == npos ? -1 : static_cast<long>(verdict.first_bad))) {
      // In random pieces: the piece that holds the first bad byte is the one that fails.
      wsl::detail::utf8_validator v;
      bool failed = false;
      for (std::size_t at = 0; at < text.size() && !failed;) {
        const auto piece = std::min<std::size_t>(between(r, 0, 24), text.size() - at);
        const bool ok = v.feed(reinterpret_cast<const std::uint8_t*>(text.data()) + at, piece);
        const bool bad_inside = verdict.first_bad != npos && verdict.first_bad >= at && verdict.first_bad < at + piece;
        BOOST_TEST(ok == !bad_inside,
                   "the piece of bytes " << at << " to " << at + piece << (ok ? " passed" : " failed"));
        failed = !ok;
        at += piece;
      }
      if (!failed) BOOST_TEST(v.complete() == verdict.complete);
      BOOST_TEST(v.failed() == failed);
      BOOST_TEST(wsl::detail::utf8_validator::validate(text.data(), text.size()) ==
                 (verdict.first_bad == npos && verdict.complete));
    }
  }
}

}  // namespace

// ------------------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(a_server_reads_random_traffic_delivered_in_random_pieces) {
  coverage cov;
  for_each_seed(0x5e7e0000, 400, [&](std::uint64_t seed) { read_random_traffic(wsl::role::server, seed, cov); });
  check_reader_coverage(cov, true);
}

BOOST_AUTO_TEST_CASE(a_client_reads_random_traffic_delivered_in_random_pieces) {
  coverage cov;
  for_each_seed(0xc11e0000, 400, [&](std::uint64_t seed) { read_random_traffic(wsl::role::client, seed, cov); });
  check_reader_coverage(cov, false);
}

BOOST_AUTO_TEST_CASE(random_messages_written_reach_the_wire_as_valid_fragments) {
  coverage cov;
  for_each_seed(0x3717e000, 500, [&](std::uint64_t seed) { write_random_messages(seed, cov); });
  BOOST_TEST_MESSAGE("iterations " << cov.iterations << "; pings " << cov.pings
                                   << "; data frames with 7/16/64-bit lengths " << cov.frames_7bit << "/"
                                   << cov.frames_16bit << "/" << cov.frames_64bit);
  if (std::getenv("WSL_PROPERTY_SEED")) return;
  BOOST_TEST(cov.pings > 0u);
  BOOST_TEST(cov.frames_16bit > 0u);
  BOOST_TEST(cov.frames_64bit > 0u);
}

BOOST_AUTO_TEST_CASE(one_random_violation_fails_the_connection_with_its_rfc_code) {
  coverage cov;
  violation_coverage vcov;
  for_each_seed(0xbad00000, corruption_kinds * 2 * 40,
                [&](std::uint64_t seed) { inject_one_violation(seed, cov, vcov); });
  BOOST_TEST_MESSAGE("iterations " << cov.iterations << "; invalid UTF-8 at the start of a fragment "
                                   << vcov.bad_byte_starts_fragment << "; pongs before the close "
                                   << vcov.pongs_before_close << "; messages broken off " << vcov.partial_messages
                                   << "; messages left unread " << vcov.abandoned_messages
                                   << "; cuts in first bytes/extended length/mask key " << cov.cuts_in_first_two_bytes
                                   << "/" << cov.cuts_in_extended_length << "/" << cov.cuts_in_mask_key);
  if (std::getenv("WSL_PROPERTY_SEED")) return;
  for (std::size_t k = 0; k < corruption_kinds; ++k) BOOST_TEST_CONTEXT(name_of(static_cast<corruption>(k))) {
      BOOST_TEST(vcov.runs[k][0] > 0u);
      BOOST_TEST(vcov.runs[k][1] > 0u);
    }
  BOOST_TEST(vcov.bad_byte_starts_fragment > 0u);
  BOOST_TEST(vcov.pongs_before_close > 0u);
  BOOST_TEST(vcov.partial_messages > 0u);
  BOOST_TEST(vcov.abandoned_messages > 0u);
}

BOOST_AUTO_TEST_CASE(random_pipelined_traffic_is_echoed_intact) {
  coverage cov;
  for_each_seed(0xec400000, 500, [&](std::uint64_t seed) { echo_random_traffic(seed, cov); });
  BOOST_TEST_MESSAGE("iterations " << cov.iterations << "; pings " << cov.pings
                                   << "; iterations whose answers were gathered " << cov.gathered_sends
                                   << "; buffer releases " << cov.buffer_releases);
  if (std::getenv("WSL_PROPERTY_SEED")) return;
  BOOST_TEST(cov.gathered_sends > 0u);
  BOOST_TEST(cov.buffer_releases > 0u);
}

BOOST_AUTO_TEST_CASE(utf8_validation_fails_at_exactly_the_first_bad_byte_in_any_split) {
  for_each_seed(0x07f80000, 200, [](std::uint64_t seed) { validate_random_text(seed); });
}
