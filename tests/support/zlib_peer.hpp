// zlib as a test's permessage-deflate peer (RFC 7692), apart from the library's code, so that a bug
// in wsl's deflate cannot cancel itself out: raw deflate, one message per Z_SYNC_FLUSH, the
// 00 00 ff ff tail removed on the way out and put back on the way in (section 7.2.1).
//
//   wsl::test::zlib_deflater d(15);              // window bits, level, strategy
//   peer->inject(client_frame(op::binary, d.message(data), true, rsv1));
//   wsl::test::zlib_inflater in(15);             // keeps its context from message to message
//   BOOST_TEST(in.message(frame.payload).value_or("(corrupt)") == data);
//
// A test that uses these links ZLIB::ZLIB itself (tests/CMakeLists.txt).
#pragma once

#include <boost/test/unit_test.hpp>

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace wsl::test {

inline constexpr std::string_view sync_tail("\x00\x00\xff\xff", 4);

inline bool ends_with_sync_tail(std::string_view s) { return s.size() >= 4 && s.substr(s.size() - 4) == sync_tail; }

class zlib_deflater {
 public:
  // A window of 8 bits cannot be had from zlib: below 9 the window is 9 and the strategy Z_RLE,
  // whose run-length matches (distance 1) fit in any window.
  explicit zlib_deflater(int window_bits = 15, int level = 6, int strategy = Z_DEFAULT_STRATEGY) {
    const bool tiny = window_bits < 9;
    BOOST_REQUIRE(deflateInit2(&z_, level, Z_DEFLATED, -std::max(window_bits, 9), 8, tiny ? Z_RLE : strategy) == Z_OK);
  }
  ~zlib_deflater() { deflateEnd(&z_); }
  zlib_deflater(const zlib_deflater&) = delete;
  zlib_deflater& operator=(const zlib_deflater&) = delete;

  // Forgets the context: the next message refers to no earlier one (no context takeover).
  void reset() { deflateReset(&z_); }

  // Everything zlib writes for `data` with Z_SYNC_FLUSH, the 00 00 ff ff tail included; nothing
  // for empty data right after a flush (zlib has nothing to write then).
  std::string sync_flush(std::string_view data) {
    std::string out;
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    z_.avail_in = static_cast<uInt>(data.size());
    char buffer[16384];
    do {
      z_.next_out = reinterpret_cast<Bytef*>(buffer);
      z_.avail_out = sizeof buffer;
      const int rc = deflate(&z_, Z_SYNC_FLUSH);
      BOOST_REQUIRE(rc == Z_OK || rc == Z_BUF_ERROR);
      out.append(buffer, sizeof buffer - z_.avail_out);
    } while (z_.avail_out == 0 || z_.avail_in != 0);
    return out;
  }

  // One message as a sender puts it in frames: flushed, the tail removed; an empty result becomes
  // the one octet 00 that section 7.2.3.6 sends for an empty message.
  std::string message(std::string_view data) {
    auto out = sync_flush(data);
    if (ends_with_sync_tail(out)) out.resize(out.size() - 4);
    if (out.empty()) out = std::string(1, '\0');
    return out;
  }

 private:
  z_stream z_{};
};

// What a block with BFINAL set means to a zlib_inflater: it ends the deflate stream, and either
// the message is corrupt (the library under test never sets BFINAL), or what follows starts a new
// stream (RFC 7692 section 7.2.3.4 lets a sender do so, and a random corruption may make one).
enum class final_block { corrupt, starts_new_stream };

// Inflates messages one at a time with a window of `window_bits`, keeping the context between
// them. A message that refers further back than the window fails (zlib checks distances that reach
// into earlier calls' output against the window).
class zlib_inflater {
 public:
  explicit zlib_inflater(int window_bits = 15, final_block on_final = final_block::corrupt) : on_final_(on_final) {
    BOOST_REQUIRE(inflateInit2(&z_, -window_bits) == Z_OK);
  }
  // The same context: what the copy inflates, the original would.
  zlib_inflater(const zlib_inflater& other) : on_final_(other.on_final_) {
    BOOST_REQUIRE(inflateCopy(&z_, const_cast<z_stream*>(&other.z_)) == Z_OK);
  }
  ~zlib_inflater() { inflateEnd(&z_); }
  zlib_inflater& operator=(const zlib_inflater&) = delete;

  void reset() { inflateReset(&z_); }

  // One message, or nullopt when zlib finds the data corrupt. Stops at `limit` bytes of output.
  // With `before_error`: how many bytes it inflated to before zlib found it corrupt.
  std::optional<std::string> message(std::string payload, std::size_t limit = SIZE_MAX,
                                     std::size_t* before_error = nullptr) {
    payload += sync_tail;
    std::string out;
    z_.next_in = reinterpret_cast<Bytef*>(payload.data());
    z_.avail_in = static_cast<uInt>(payload.size());
    char buffer[16384];
    for (;;) {
      z_.next_out = reinterpret_cast<Bytef*>(buffer);
      z_.avail_out = sizeof buffer;
      int rc = inflate(&z_, Z_SYNC_FLUSH);
      if (rc == Z_STREAM_END && on_final_ == final_block::starts_new_stream) {
        inflateReset(&z_);
        rc = Z_OK;
      }
      if (rc != Z_OK && rc != Z_BUF_ERROR) {
        if (before_error) *before_error = out.size() + sizeof buffer - z_.avail_out;
        return std::nullopt;
      }
      out.append(buffer, sizeof buffer - z_.avail_out);
      if (out.size() > limit) return out;
      if (z_.avail_in == 0 && z_.avail_out != 0) break;
      if (rc == Z_BUF_ERROR) break;
    }
    return out;
  }

 private:
  z_stream z_{};
  final_block on_final_;
};

}  // namespace wsl::test
