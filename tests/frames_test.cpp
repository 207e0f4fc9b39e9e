// Frame headers (RFC 6455 section 5.2): wsl::detail::parse_frame_header and write_frame_header.
#include "wsl/detail/frame.hpp"

#define BOOST_TEST_MODULE frames
#include <boost/test/unit_test.hpp>

#include "test_printing.hpp"

#include <cstdint>
#include <initializer_list>
#include <vector>

namespace {

using wsl::detail::frame_header;
using wsl::detail::opcode;
using bytes = std::vector<std::uint8_t>;

constexpr std::uint8_t known_opcodes[] = {0x0, 0x1, 0x2, 0x8, 0x9, 0xA};
constexpr std::uint8_t reserved_opcodes[] = {0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF};
constexpr std::uint8_t control_opcodes[] = {0x8, 0x9, 0xA};

// A header written out by hand: the length in the encoding given by `length_field` (0-125 for the
// 7-bit form, 126 or 127 for the 16- and 64-bit forms), whatever the value.
bytes raw_header(std::uint8_t first_byte, std::uint8_t length_field, std::uint64_t length, bool masked = false) {
  bytes b{first_byte, static_cast<std::uint8_t>((masked ? 0x80 : 0) | length_field)};
  const int extra = length_field == 126 ? 2 : length_field == 127 ? 8 : 0;
  for (int i = extra - 1; i >= 0; --i) b.push_back(static_cast<std::uint8_t>(length >> (8 * i)));
  if (masked) b.insert(b.end(), {0xA1, 0xB2, 0xC3, 0xD4});
  return b;
}

// The shortest encoding, as a sender must use it.
bytes header_for(std::uint8_t first_byte, std::uint64_t length, bool masked = false) {
  const std::uint8_t field = length < 126 ? static_cast<std::uint8_t>(length) : length <= 0xffff ? 126 : 127;
  return raw_header(first_byte, field, length, masked);
}

struct parse_result {
  std::size_t size;
  frame_header header;
  std::error_code ec;
};

parse_result parse(const bytes& b) {
  parse_result r{};
  r.size = wsl::detail::parse_frame_header(b.data(), b.size(), r.header, r.ec);
  return r;
}

void check_length_parses(std::uint64_t length, std::size_t expected_size) {
  for (bool masked : {false, true}) {
    BOOST_TEST_CONTEXT("length " << length << (masked ? " masked" : "")) {
      const auto r = parse(header_for(0x82, length, masked));
      BOOST_TEST(!r.ec);
      BOOST_TEST(r.size == expected_size + (masked ? 4 : 0));
      BOOST_TEST(r.header.length == length);
      BOOST_TEST(r.header.masked == masked);
    }
  }
}

void check_rejected(const bytes& b, wsl::error expected) {
  const auto r = parse(b);
  BOOST_TEST(r.size == 0u);
  BOOST_TEST(r.ec == expected);
}

}  // namespace

BOOST_AUTO_TEST_CASE(seven_bit_lengths_take_two_bytes) {
  for (std::uint64_t length : {0, 1, 2, 100, 124, 125}) check_length_parses(length, 2);
}

BOOST_AUTO_TEST_CASE(sixteen_bit_lengths_take_four_bytes) {
  for (std::uint64_t length : {126, 127, 128, 255, 256, 1000, 65534, 65535}) check_length_parses(length, 4);
}

BOOST_AUTO_TEST_CASE(sixty_four_bit_lengths_take_ten_bytes) {
  for (std::uint64_t length : {65536ull, 65537ull, 1ull << 32, 0x0102030405060708ull, (1ull << 63) - 1})
    check_length_parses(length, 10);
}

BOOST_AUTO_TEST_CASE(fin_rsv_opcode_and_mask_key_are_read) {
  for (bool fin : {false, true})
    for (std::uint8_t rsv = 0; rsv < 8; ++rsv)
      for (std::uint8_t op : known_opcodes) {
        if (!fin && (op & 0x8)) continue;  // fragmented control frames are rejected, see below
        const std::uint8_t first = static_cast<std::uint8_t>((fin ? 0x80 : 0) | (rsv << 4) | op);
        BOOST_TEST_CONTEXT("first byte " << int(first)) {
          const auto r = parse(header_for(first, 5, true));
          BOOST_TEST(!r.ec);
          BOOST_TEST(r.size == 6u);
          BOOST_TEST(r.header.fin == fin);
          BOOST_TEST(r.header.rsv == (rsv << 4));
          BOOST_TEST(static_cast<int>(r.header.op) == op);
          BOOST_TEST(r.header.masked);
          const bytes mask(r.header.mask, r.header.mask + 4);
          BOOST_TEST(mask == (bytes{0xA1, 0xB2, 0xC3, 0xD4}), boost::test_tools::per_element());
        }
      }
}

BOOST_AUTO_TEST_CASE(an_unmasked_header_has_no_mask_key) {
  const auto r = parse(header_for(0x81, 3, false));
  BOOST_TEST(r.size == 2u);
  BOOST_TEST(!r.header.masked);
}

BOOST_AUTO_TEST_CASE(non_minimal_sixteen_bit_lengths_are_rejected) {
  for (std::uint64_t length : {0, 1, 125}) {
    BOOST_TEST_CONTEXT("length " << length) { check_rejected(raw_header(0x82, 126, length), wsl::error::bad_length); }
  }
}

BOOST_AUTO_TEST_CASE(non_minimal_sixty_four_bit_lengths_are_rejected) {
  for (std::uint64_t length : {0, 1, 125, 126, 65535}) {
    BOOST_TEST_CONTEXT("length " << length) { check_rejected(raw_header(0x82, 127, length), wsl::error::bad_length); }
  }
}

BOOST_AUTO_TEST_CASE(sixty_four_bit_lengths_with_the_top_bit_set_are_rejected) {
  for (std::uint64_t length : {1ull << 63, (1ull << 63) + 65536, ~0ull}) {
    BOOST_TEST_CONTEXT("length " << length) { check_rejected(raw_header(0x82, 127, length), wsl::error::bad_length); }
  }
}

BOOST_AUTO_TEST_CASE(reserved_opcodes_are_rejected) {
  for (std::uint8_t op : reserved_opcodes)
    for (bool fin : {false, true}) {
      BOOST_TEST_CONTEXT("opcode " << int(op) << " fin " << fin) {
        check_rejected(header_for(static_cast<std::uint8_t>((fin ? 0x80 : 0) | op), 0), wsl::error::bad_opcode);
      }
    }
}

BOOST_AUTO_TEST_CASE(fragmented_control_frames_are_rejected) {
  for (std::uint8_t op : control_opcodes) {
    BOOST_TEST_CONTEXT("opcode " << int(op)) { check_rejected(header_for(op, 0), wsl::error::fragmented_control); }
  }
}

BOOST_AUTO_TEST_CASE(control_frames_over_125_bytes_are_rejected) {
  for (std::uint8_t op : control_opcodes) {
    const std::uint8_t first = 0x80 | op;
    BOOST_TEST_CONTEXT("opcode " << int(op)) {
      const auto largest = parse(header_for(first, 125, true));
      BOOST_TEST(!largest.ec);
      BOOST_TEST(largest.header.length == 125u);
      for (std::uint64_t length : {126ull, 65535ull, 65536ull, 1ull << 40})
        check_rejected(header_for(first, length, true), wsl::error::control_too_large);
    }
  }
}

BOOST_AUTO_TEST_CASE(an_incomplete_header_needs_more_bytes_at_every_split) {
  std::vector<bytes> headers;
  for (std::uint64_t length : {0ull, 125ull, 126ull, 65535ull, 65536ull, 1ull << 62})
    for (bool masked : {false, true})
      for (std::uint8_t first : {0x01, 0x82, 0x80}) headers.push_back(header_for(first, length, masked));
  headers.push_back(header_for(0x89, 125, true));
  for (const auto& full : headers) {
    for (std::size_t n = 0; n < full.size(); ++n) {
      BOOST_TEST_CONTEXT("header of " << full.size() << " bytes cut at " << n) {
        frame_header h;
        std::error_code ec;
        BOOST_TEST(wsl::detail::parse_frame_header(full.data(), n, h, ec) == 0u);
        BOOST_TEST(!ec);
      }
    }
    // Complete, and followed by payload bytes that are not part of the header.
    bytes with_payload = full;
    with_payload.insert(with_payload.end(), 20, 0xEE);
    const auto r = parse(with_payload);
    BOOST_TEST(!r.ec);
    BOOST_TEST(r.size == full.size());
  }
}

BOOST_AUTO_TEST_CASE(write_frame_header_uses_the_shortest_length_encoding) {
  struct expectation {
    std::uint64_t length;
    bytes header;
  };
  const expectation cases[] = {
      {0, {0x82, 0x00}},
      {125, {0x82, 0x7D}},
      {126, {0x82, 0x7E, 0x00, 0x7E}},
      {65535, {0x82, 0x7E, 0xFF, 0xFF}},
      {65536, {0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00}},
      {0x0102030405060708, {0x82, 0x7F, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08}},
  };
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT("length " << c.length) {
      std::uint8_t out[wsl::detail::max_header_size];
      const auto n = wsl::detail::write_frame_header(out, opcode::binary, true, c.length);
      BOOST_TEST(bytes(out, out + n) == c.header, boost::test_tools::per_element());
    }
  }
}

BOOST_AUTO_TEST_CASE(write_frame_header_sets_fin_rsv_opcode_and_mask) {
  const std::uint8_t mask[4] = {1, 2, 3, 4};
  std::uint8_t out[wsl::detail::max_header_size];
  auto n = wsl::detail::write_frame_header(out, opcode::text, false, 5, mask, 0x40);
  BOOST_TEST(bytes(out, out + n) == (bytes{0x41, 0x85, 1, 2, 3, 4}), boost::test_tools::per_element());
  n = wsl::detail::write_frame_header(out, opcode::pong, true, 0);
  BOOST_TEST(bytes(out, out + n) == (bytes{0x8A, 0x00}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(written_headers_parse_back_to_the_same_fields) {
  const std::uint8_t mask[4] = {0xDE, 0xAD, 0xBE, 0xEF};
  for (std::uint8_t op : known_opcodes)
    for (bool fin : {false, true})
      for (std::uint8_t rsv : {0x00, 0x40, 0x20, 0x10, 0x70})
        for (bool masked : {false, true})
          for (std::uint64_t length : {0ull, 1ull, 125ull, 126ull, 65535ull, 65536ull, (1ull << 63) - 1}) {
            const bool control = (op & 0x8) != 0;
            if (control && (!fin || length > 125)) continue;
            BOOST_TEST_CONTEXT("op " << int(op) << " fin " << fin << " rsv " << int(rsv) << " masked " << masked
                                     << " length " << length) {
              std::uint8_t out[wsl::detail::max_header_size];
              const auto n = wsl::detail::write_frame_header(out, static_cast<opcode>(op), fin, length,
                                                             masked ? mask : nullptr, rsv);
              frame_header h;
              std::error_code ec;
              BOOST_TEST(wsl::detail::parse_frame_header(out, n, h, ec) == n);
              BOOST_TEST(!ec);
              BOOST_TEST(static_cast<int>(h.op) == op);
              BOOST_TEST(h.fin == fin);
              BOOST_TEST(h.rsv == rsv);
              BOOST_TEST(h.masked == masked);
              BOOST_TEST(h.length == length);
              if (masked)
                BOOST_TEST(bytes(h.mask, h.mask + 4) == bytes(mask, mask + 4), boost::test_tools::per_element());
            }
          }
}

BOOST_AUTO_TEST_CASE(close_codes_valid_on_the_wire_are_those_of_rfc6455_and_the_iana_registry) {
  // RFC 6455 section 7.4: 1000-1003 and 1007-1011 defined, 1004-1006 and 1015 reserved, 1012-1014
  // registered with IANA since, 3000-4999 for libraries and applications, everything else invalid.
  for (std::uint32_t code = 0; code <= 0xffff; ++code) {
    const bool expected =
        (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
    if (wsl::detail::is_valid_close_code(static_cast<std::uint16_t>(code)) != expected)
      BOOST_ERROR("close code " << code << " should be " << (expected ? "valid" : "invalid"));
  }
}
