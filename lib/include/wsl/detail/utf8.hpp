// Incremental UTF-8 validation (RFC 3629): fails at the first byte that makes the sequence
// invalid, across any split into chunks. ASCII runs are skipped eight bytes at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace wsl::detail {

// Byte classes: 0 00-7F, 1 80-8F, 2 90-9F, 3 A0-BF, 4 C0-C1 F5-FF, 5 C2-DF, 6 E0,
// 7 E1-EC EE-EF, 8 ED, 9 F0, 10 F1-F3, 11 F4.
constexpr std::uint8_t utf8_classify(unsigned b) noexcept {
  if (b < 0x80) return 0;
  if (b < 0x90) return 1;
  if (b < 0xA0) return 2;
  if (b < 0xC0) return 3;
  if (b < 0xC2) return 4;
  if (b < 0xE0) return 5;
  if (b == 0xE0) return 6;
  if (b == 0xED) return 8;
  if (b < 0xF0) return 7;
  if (b == 0xF0) return 9;
  if (b < 0xF4) return 10;
  if (b == 0xF4) return 11;
  return 4;
}

struct utf8_class_table {
  std::uint8_t v[256];
  constexpr utf8_class_table() : v() {
    for (unsigned b = 0; b < 256; ++b) v[b] = utf8_classify(b);
  }
};
inline constexpr utf8_class_table utf8_byte_classes{};

class utf8_validator {
 public:
  // Feeds more bytes; false as soon as they cannot be part of valid UTF-8.
  bool feed(const std::uint8_t* p, std::size_t n) noexcept {
    std::size_t i = 0;
    std::uint8_t s = state_;
    while (i < n) {
      if (s == accept) {
        // ASCII fast path.
        while (i + 8 <= n) {
          std::uint64_t w;
          std::memcpy(&w, p + i, 8);
          if (w & 0x8080808080808080ull) break;
          i += 8;
        }
        while (i < n && p[i] < 0x80) ++i;
        if (i == n) break;
      }
      s = transitions[s][utf8_byte_classes.v[p[i]]];
      if (s == reject) {
        state_ = reject;
        return false;
      }
      ++i;
    }
    state_ = s;
    return true;
  }
  // True when the bytes so far end on a character boundary (a message may end here).
  bool complete() const noexcept { return state_ == accept; }
  bool failed() const noexcept { return state_ == reject; }
  void reset() noexcept { state_ = accept; }

  static bool validate(const void* p, std::size_t n) noexcept {
    utf8_validator v;
    return v.feed(static_cast<const std::uint8_t*>(p), n) && v.complete();
  }

 private:
  // States: 0 accept, 1 reject, 2-4 need 1-3 continuation bytes, 5 after E0 (A0-BF next),
  // 6 after ED (80-9F next), 7 after F0 (90-BF next), 8 after F4 (80-8F next).
  static constexpr std::uint8_t accept = 0, reject = 1;
  static constexpr std::uint8_t transitions[9][12] = {
      //       00 80 90 A0 C0 C2 E0 E1 ED F0 F1 F4
      /* 0 */ {0, 1, 1, 1, 1, 2, 5, 3, 6, 7, 4, 8},
      /* 1 */ {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
      /* 2 */ {1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1},
      /* 3 */ {1, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1},
      /* 4 */ {1, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
      /* 5 */ {1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1},
      /* 6 */ {1, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1},
      /* 7 */ {1, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
      /* 8 */ {1, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
  };
  std::uint8_t state_ = accept;
};

}  // namespace wsl::detail
