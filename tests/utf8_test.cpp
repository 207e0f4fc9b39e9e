// Incremental UTF-8 validation (RFC 3629): wsl::detail::utf8_validator, checked against a
// reference written from code point ranges rather than from a byte table.
#include "wsl/detail/utf8.hpp"

#define BOOST_TEST_MODULE utf8
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace {

using bytes = std::vector<std::uint8_t>;
using wsl::detail::utf8_validator;
constexpr std::size_t npos = static_cast<std::size_t>(-1);

// ---- the reference

// The length of the sequence a lead byte announces by its bit pattern, 0 for a continuation byte
// or 0xF8-0xFF. Overlong forms and out-of-range values are left to the code point check below.
int announced_length(std::uint8_t b) {
  if (b < 0x80) return 1;
  if (b < 0xC0) return 0;
  if (b < 0xE0) return 2;
  if (b < 0xF0) return 3;
  if (b < 0xF8) return 4;
  return 0;
}

// Can the first k bytes of an n-byte sequence still become a Unicode scalar value that needs
// exactly n bytes (no overlong form, no surrogate, at most U+10FFFF)?
bool viable_prefix(const std::uint8_t* s, int k, int n) {
  static constexpr std::uint32_t lowest[] = {0, 0, 0x80, 0x800, 0x10000};
  static constexpr std::uint32_t highest[] = {0, 0x7F, 0x7FF, 0xFFFF, 0x10FFFF};
  static constexpr int lead_bits[] = {0, 7, 5, 4, 3};
  std::uint32_t value = s[0] & ((1u << lead_bits[n]) - 1);
  for (int i = 1; i < k; ++i) value = (value << 6) | (s[i] & 0x3F);
  const int missing_bits = 6 * (n - k);
  const std::uint32_t lo = value << missing_bits;
  const std::uint32_t hi = lo | ((1u << missing_bits) - 1);
  const std::uint32_t a = std::max(lo, lowest[n]), b = std::min(hi, highest[n]);
  if (a > b) return false;
  return !(a >= 0xD800 && b <= 0xDFFF);
}

// The index of the first byte after which s can no longer be the start of valid UTF-8; npos when
// it still can (valid, or valid but cut inside a sequence).
std::size_t reference_first_invalid(const bytes& s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const int n = announced_length(s[i]);
    if (n == 0) return i;
    for (int k = 1; k <= n; ++k) {
      const std::size_t at = i + k - 1;
      if (at == s.size()) return npos;
      if (k > 1 && (s[at] & 0xC0) != 0x80) return at;
      if (!viable_prefix(&s[i], k, n)) return at;
    }
    i += n;
  }
  return npos;
}

bool reference_valid(const bytes& s) {
  if (reference_first_invalid(s) != npos) return false;
  std::size_t i = 0;
  while (i < s.size()) i += announced_length(s[i]);
  return i == s.size();
}

bytes encode(std::uint32_t cp) {
  if (cp < 0x80) return {static_cast<std::uint8_t>(cp)};
  if (cp < 0x800) return {static_cast<std::uint8_t>(0xC0 | (cp >> 6)), static_cast<std::uint8_t>(0x80 | (cp & 0x3F))};
  if (cp < 0x10000)
    return {static_cast<std::uint8_t>(0xE0 | (cp >> 12)), static_cast<std::uint8_t>(0x80 | ((cp >> 6) & 0x3F)),
            static_cast<std::uint8_t>(0x80 | (cp & 0x3F))};
  return {static_cast<std::uint8_t>(0xF0 | (cp >> 18)), static_cast<std::uint8_t>(0x80 | ((cp >> 12) & 0x3F)),
          static_cast<std::uint8_t>(0x80 | ((cp >> 6) & 0x3F)), static_cast<std::uint8_t>(0x80 | (cp & 0x3F))};
}

// ---- driving the validator

// Feeds s one byte at a time; the index of the first byte whose feed() returned false, or npos.
std::size_t first_rejected_byte(const bytes& s, bool* complete = nullptr) {
  utf8_validator v;
  for (std::size_t i = 0; i < s.size(); ++i)
    if (!v.feed(&s[i], 1)) return i;
  if (complete) *complete = v.complete();
  return npos;
}

bool valid(const bytes& s) { return utf8_validator::validate(s.data(), s.size()); }

bytes concat(std::initializer_list<bytes> parts) {
  bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

bytes ascii(std::size_t n) { return bytes(n, 'a'); }

// Compares the validator with the reference on one sequence: where it fails, and whether it is
// complete; one feed() call for the whole must agree too.
void check_against_reference(const bytes& s) {
  bool complete = false;
  const auto got = first_rejected_byte(s, &complete);
  const auto expected = reference_first_invalid(s);
  if (got != expected || (got == npos && complete != reference_valid(s)) || valid(s) != reference_valid(s)) {
    std::string hex;
    for (auto b : s) hex.append(" ").append(std::to_string(b));  // (GCC 12 warns falsely about " " + string)
    BOOST_ERROR("bytes" << hex << ": rejected at " << static_cast<long>(got) << ", reference "
                        << static_cast<long>(expected));
  }
}

const std::uint32_t boundary_code_points[] = {0x0,     0x1,     0x7F,    0x80,    0x81,     0x7FF,    0x800,   0x801,
                                              0xFFF,   0x1000,  0xD7FF,  0xE000,  0xFFFD,   0xFFFE,   0xFFFF,  0x10000,
                                              0x10001, 0x3FFFF, 0x40000, 0xFFFFF, 0x100000, 0x10FFFE, 0x10FFFF};

// Feeds s cut at the positions whose bits are set in `cuts` (bit i: a cut before byte i + 1).
// Returns the index of the feed() that returned false, or -1.
int feed_in_pieces(utf8_validator& v, const bytes& s, unsigned cuts, std::size_t* bad_piece_end = nullptr) {
  std::size_t start = 0;
  int piece = 0;
  for (std::size_t i = 1; i <= s.size(); ++i) {
    if (i == s.size() || (cuts & (1u << (i - 1)))) {
      if (!v.feed(s.data() + start, i - start)) {
        if (bad_piece_end) *bad_piece_end = i;
        return piece;
      }
      start = i;
      ++piece;
    }
  }
  return -1;
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_reference_agrees_with_rfc3629_examples) {
  // Guards the guard: the examples of RFC 3629 section 7 and the brief's F4 90.
  BOOST_TEST(reference_valid({0x41, 0xE2, 0x89, 0xA2, 0xCE, 0x91, 0x2E}));
  BOOST_TEST(reference_valid({0xED, 0x95, 0x9C, 0xEA, 0xB5, 0xAD, 0xEC, 0x96, 0xB4}));
  BOOST_TEST(reference_valid({0xEF, 0xBB, 0xBF, 0xF0, 0xA3, 0x8E, 0xB4}));
  BOOST_TEST(reference_first_invalid({0xF4, 0x90, 0x80, 0x80}) == 1u);
  BOOST_TEST(reference_first_invalid({0xC0, 0x80}) == 0u);
  BOOST_TEST(reference_first_invalid({0xED, 0xA0, 0x80}) == 1u);
  BOOST_TEST(!reference_valid({0xE2, 0x89}));
}

BOOST_AUTO_TEST_CASE(empty_input_is_valid_and_complete) {
  utf8_validator v;
  BOOST_TEST(v.feed(nullptr, 0));
  BOOST_TEST(v.complete());
  BOOST_TEST(!v.failed());
  BOOST_TEST(utf8_validator::validate("", 0));
}

BOOST_AUTO_TEST_CASE(boundary_code_points_are_valid) {
  for (auto cp : boundary_code_points) {
    BOOST_TEST_CONTEXT("U+" << std::hex << cp) {
      const auto s = encode(cp);
      BOOST_TEST(valid(s));
      BOOST_TEST(valid(concat({ascii(9), s, ascii(9)})));
      BOOST_TEST(reference_valid(s));
    }
  }
}

BOOST_AUTO_TEST_CASE(every_scalar_value_is_valid) {
  std::size_t rejected = 0;
  for (std::uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    if (cp == 0xD800) cp = 0xE000;
    if (!valid(encode(cp)) && ++rejected <= 10) BOOST_ERROR("U+" << std::hex << cp << " rejected");
  }
  BOOST_TEST(rejected == 0u);
}

BOOST_AUTO_TEST_CASE(every_surrogate_fails_at_its_second_byte) {
  for (std::uint32_t cp = 0xD800; cp <= 0xDFFF; ++cp) {
    const auto s = encode(cp);  // ED A0 80 .. ED BF BF
    if (first_rejected_byte(s) != 1 || valid(s))
      BOOST_ERROR("surrogate U+" << std::hex << cp << " not rejected at byte 1");
  }
}

BOOST_AUTO_TEST_CASE(overlong_forms_fail_at_the_first_byte_that_proves_them) {
  struct overlong {
    bytes s;
    std::size_t fails_at;
  };
  const overlong cases[] = {
      {{0xC0, 0x80}, 0},              // U+0000 in two bytes: C0 and C1 can only start overlongs
      {{0xC1, 0xBF}, 0},              // U+007F
      {{0xE0, 0x80, 0x80}, 1},        // U+0000 in three bytes
      {{0xE0, 0x9F, 0xBF}, 1},        // U+07FF in three bytes
      {{0xF0, 0x80, 0x80, 0x80}, 1},  // U+0000 in four bytes
      {{0xF0, 0x8F, 0xBF, 0xBF}, 1},  // U+FFFF in four bytes
      {{0xF8, 0x88, 0x80, 0x80, 0x80}, 0},
      {{0xFC, 0x84, 0x80, 0x80, 0x80, 0x80}, 0},
  };
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT("first byte " << int(c.s[0]) << ", second " << int(c.s[1])) {
      BOOST_TEST(first_rejected_byte(c.s) == c.fails_at);
      BOOST_TEST(!valid(c.s));
    }
  }
}

BOOST_AUTO_TEST_CASE(code_points_above_10ffff_fail_at_once) {
  BOOST_TEST(first_rejected_byte({0xF4, 0x90, 0x80, 0x80}) == 1u);  // U+110000
  BOOST_TEST(first_rejected_byte({0xF4, 0xBF, 0xBF, 0xBF}) == 1u);
  for (int lead = 0xF5; lead <= 0xFF; ++lead) {
    BOOST_TEST_CONTEXT("lead " << lead) {
      BOOST_TEST(first_rejected_byte({static_cast<std::uint8_t>(lead), 0x80, 0x80, 0x80}) == 0u);
    }
  }
}

BOOST_AUTO_TEST_CASE(fail_fast_rejects_f4_90_at_the_90) {
  utf8_validator v;
  const std::uint8_t f4 = 0xF4, x90 = 0x90, x80 = 0x80;
  BOOST_TEST(v.feed(&f4, 1));
  BOOST_TEST(!v.complete());
  BOOST_TEST(!v.feed(&x90, 1));
  BOOST_TEST(v.failed());
  BOOST_TEST(!v.feed(&x80, 1));  // a failed validator stays failed
  BOOST_TEST(!v.complete());
}

BOOST_AUTO_TEST_CASE(invalid_lead_bytes_fail_at_once) {
  for (int b = 0x80; b <= 0xC1; ++b) {
    BOOST_TEST_CONTEXT("byte " << b) {
      BOOST_TEST(first_rejected_byte({static_cast<std::uint8_t>(b)}) == 0u);
      BOOST_TEST(first_rejected_byte(concat({ascii(20), {static_cast<std::uint8_t>(b)}, ascii(3)})) == 20u);
    }
  }
}

BOOST_AUTO_TEST_CASE(truncated_sequences_are_incomplete_then_fail_at_the_next_byte) {
  for (auto cp : boundary_code_points) {
    const auto s = encode(cp);
    for (std::size_t k = 1; k < s.size(); ++k) {
      BOOST_TEST_CONTEXT("U+" << std::hex << cp << " cut to " << k << " bytes") {
        const bytes cut(s.begin(), s.begin() + k);
        utf8_validator v;
        BOOST_TEST(v.feed(cut.data(), cut.size()));
        BOOST_TEST(!v.complete());
        BOOST_TEST(!v.failed());
        BOOST_TEST(!valid(cut));
        BOOST_TEST(!valid(concat({ascii(5), cut})));
        const std::uint8_t next_ascii = 'x';
        BOOST_TEST(!v.feed(&next_ascii, 1));
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(every_split_of_every_multibyte_sequence_is_valid) {
  for (auto cp : boundary_code_points) {
    const auto s = concat({ascii(2), encode(cp), ascii(2)});
    for (unsigned cuts = 0; cuts < (1u << (s.size() - 1)); ++cuts) {
      utf8_validator v;
      const int bad = feed_in_pieces(v, s, cuts);
      if (bad != -1 || !v.complete()) BOOST_ERROR("U+" << std::hex << cp << " rejected when cut with mask " << cuts);
    }
  }
}

BOOST_AUTO_TEST_CASE(every_split_of_an_invalid_sequence_fails_in_the_piece_holding_the_bad_byte) {
  const bytes invalid[] = {
      {0xF4, 0x90, 0x80, 0x80}, {0xED, 0xA0, 0x80},       {0xE0, 0x9F, 0xBF}, {0xF0, 0x8F, 0xBF, 0xBF},
      {0xE2, 0x82, 0x28},       {0xF0, 0x9F, 0x98, 0x41}, {0xC3, 0xC3},       {0xE2, 0x28, 0xA1},
  };
  for (const auto& seq : invalid) {
    const auto s = concat({ascii(2), seq, ascii(2)});
    const auto bad_byte = reference_first_invalid(s);
    BOOST_REQUIRE(bad_byte != npos);
    for (unsigned cuts = 0; cuts < (1u << (s.size() - 1)); ++cuts) {
      utf8_validator v;
      std::size_t piece_end = 0;
      const int bad = feed_in_pieces(v, s, cuts, &piece_end);
      // The failing piece is the one that holds the bad byte: it ends after it, and no earlier
      // piece did, since those returned true.
      if (bad == -1 || piece_end <= bad_byte) BOOST_ERROR("sequence at byte " << bad_byte << " cut with mask " << cuts);
      // Pieces fed so far ended at or before the bad byte.
      int pieces_before = 0;
      for (std::size_t i = 1; i <= bad_byte; ++i) pieces_before += (cuts >> (i - 1)) & 1;
      if (bad != pieces_before) BOOST_ERROR("failed in piece " << bad << " instead of " << pieces_before);
    }
  }
}

BOOST_AUTO_TEST_CASE(all_one_and_two_byte_inputs_agree_with_the_reference) {
  for (int a = 0; a < 256; ++a) {
    check_against_reference({static_cast<std::uint8_t>(a)});
    for (int b = 0; b < 256; ++b) check_against_reference({static_cast<std::uint8_t>(a), static_cast<std::uint8_t>(b)});
  }
}

BOOST_AUTO_TEST_CASE(all_three_byte_inputs_after_a_three_or_four_byte_lead_agree_with_the_reference) {
  for (int a = 0xE0; a <= 0xF4; ++a)
    for (int b = 0; b < 256; ++b)
      for (int c = 0; c < 256; ++c)
        check_against_reference(
            {static_cast<std::uint8_t>(a), static_cast<std::uint8_t>(b), static_cast<std::uint8_t>(c)});
}

BOOST_AUTO_TEST_CASE(four_byte_inputs_agree_with_the_reference) {
  const std::uint8_t interesting[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF,
                                      0xC0, 0xC2, 0xDF, 0xE0, 0xED, 0xF0, 0xF4, 0xF5, 0xFF};
  for (int a = 0xE0; a <= 0xFF; ++a)
    for (auto b : interesting)
      for (auto c : interesting)
        for (auto d : interesting) check_against_reference({static_cast<std::uint8_t>(a), b, c, d});
}

BOOST_AUTO_TEST_CASE(ascii_fast_path_finds_an_invalid_byte_at_every_position_of_a_block) {
  for (std::uint8_t bad : {0x80, 0xBF, 0xC0, 0xF5, 0xFF})
    for (std::size_t lead_in = 0; lead_in < 8; ++lead_in)  // shifts the block against 8-byte words
      for (std::size_t pos = 0; pos < 16; ++pos) {
        bytes s = ascii(lead_in + 16);
        s[lead_in + pos] = bad;
        const std::size_t expected = lead_in + pos;
        if (first_rejected_byte(s) != expected || valid(s))
          BOOST_ERROR("byte " << int(bad) << " at " << expected << " not caught");
        // One feed() of the whole block, then the validator must be failed.
        utf8_validator v;
        if (v.feed(s.data(), s.size()) || !v.failed()) BOOST_ERROR("block feed missed byte at " << expected);
      }
}

BOOST_AUTO_TEST_CASE(ascii_fast_path_handles_sequences_at_every_position_of_a_block) {
  const bytes sequences[] = {encode(0xE9), encode(0x20AC), encode(0x1F600), encode(0x10FFFF)};
  for (const auto& seq : sequences)
    for (std::size_t pos = 0; pos + seq.size() <= 24; ++pos) {
      bytes s = ascii(24);
      std::copy(seq.begin(), seq.end(), s.begin() + pos);
      if (!valid(s)) BOOST_ERROR("valid sequence at " << pos << " rejected");
      // Cut just before the sequence ends: incomplete, not failed; then ASCII breaks it.
      const bytes cut(s.begin(), s.begin() + pos + seq.size() - 1);
      utf8_validator v;
      if (!v.feed(cut.data(), cut.size()) || v.complete()) BOOST_ERROR("cut sequence at " << pos << " misjudged");
      const bytes tail = ascii(16);
      if (v.feed(tail.data(), tail.size())) BOOST_ERROR("ASCII after a lead byte at " << pos << " accepted");
    }
}

BOOST_AUTO_TEST_CASE(a_lead_byte_is_not_skipped_by_the_ascii_fast_path) {
  // Eight ASCII bytes after a lead byte must not be taken as a word of ASCII.
  for (std::uint8_t lead : {0xC3, 0xE2, 0xF0}) {
    bytes s = concat({{lead}, ascii(15)});
    BOOST_TEST(first_rejected_byte(s) == 1u);
    utf8_validator v;
    BOOST_TEST(!v.feed(s.data(), s.size()));
  }
}

BOOST_AUTO_TEST_CASE(reset_clears_a_failure_and_an_open_sequence) {
  utf8_validator v;
  const std::uint8_t bad = 0xFF, lead = 0xE2, a = 'a';
  BOOST_TEST(!v.feed(&bad, 1));
  v.reset();
  BOOST_TEST(!v.failed());
  BOOST_TEST(v.feed(&a, 1));
  BOOST_TEST(v.feed(&lead, 1));
  BOOST_TEST(!v.complete());
  v.reset();
  BOOST_TEST(v.complete());
  BOOST_TEST(v.feed(&a, 1));
}
