// Random choices for the seeded property tests (property.hpp), the same on every standard library,
// and a short description of where two long byte strings differ.
//
//   wsl::test::rng_type r(seed);
//   const auto size = wsl::test::between(r, 0, 125);
//   if (wsl::test::percent(r, 30)) ...
//   BOOST_CHECK_MESSAGE(got == want, wsl::test::difference(want, got));
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>
#include <sstream>
#include <string>
#include <string_view>

namespace wsl::test {

using rng_type = std::mt19937_64;

// Uniform in [lo, hi]. Plain modulo rather than std::uniform_int_distribution, whose algorithm each
// standard library chooses: a seed must replay the same case with any of them.
inline std::uint64_t between(rng_type& r, std::uint64_t lo, std::uint64_t hi) { return lo + r() % (hi - lo + 1); }
inline bool percent(rng_type& r, unsigned p) { return r() % 100 < p; }

template <typename T, std::size_t N>
T pick(rng_type& r, const T (&choices)[N]) {
  return choices[between(r, 0, N - 1)];
}

inline std::string random_bytes(rng_type& r, std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; i += 8) {
    const auto v = r();
    for (std::size_t k = 0; k < 8 && i + k < n; ++k) s[i + k] = static_cast<char>(v >> (8 * k));
  }
  return s;
}

// "" when equal; otherwise where they differ, without printing 70 KB payloads.
inline std::string difference(std::string_view expected, std::string_view actual) {
  if (expected == actual) return {};
  const auto mismatch = std::mismatch(expected.begin(), expected.end(), actual.begin(), actual.end());
  std::ostringstream s;
  s << "expected " << expected.size() << " bytes, got " << actual.size() << "; first difference at byte "
    << (mismatch.first - expected.begin());
  return s.str();
}

}  // namespace wsl::test
