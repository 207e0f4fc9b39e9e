// wsl loadtest --stamp's stamps (cli/stamp.hpp): written and found again inside whatever a server
// wraps them in, with the message cut into chunks anywhere, decoys around them.
#include "stamp.hpp"

#define BOOST_TEST_MODULE stamp
#include <boost/test/unit_test.hpp>

#include "property.hpp"

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace stamp = wsl::cli::stamp;

namespace {

std::string stamp_of(std::uint64_t ns) {
  std::string s(stamp::size, '\0');
  stamp::write(s.data(), ns);
  return s;
}

// What a finder makes of `text` given in chunks that end at `cuts` (increasing, within the text).
std::optional<std::uint64_t> found_in_chunks(std::string_view text, const std::vector<std::size_t>& cuts) {
  stamp::finder f;
  std::size_t from = 0;
  for (const auto cut : cuts) {
    f.add(text.substr(from, cut - from));
    from = cut;
  }
  f.add(text.substr(from));
  return f.found();
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_stamp_is_the_marker_and_sixteen_lowercase_hex_digits) {
  BOOST_TEST(stamp_of(0) == "wsl@0000000000000000");
  BOOST_TEST(stamp_of(0x0123456789abcdefu) == "wsl@0123456789abcdef");
  BOOST_TEST(stamp_of(~std::uint64_t{0}) == "wsl@ffffffffffffffff");
  BOOST_TEST(stamp_of(1'795'000'000'123'456'789u) == "wsl@18e91efd632f4d15");
}

BOOST_AUTO_TEST_CASE(found_anywhere_in_a_message) {
  const auto s = stamp_of(1'795'000'000'123'456'789u);
  BOOST_TEST(*stamp::find(s) == 1'795'000'000'123'456'789u);
  BOOST_TEST(*stamp::find("{\"from\":7,\"text\":\"" + s + "abcdefgh\"}") == 1'795'000'000'123'456'789u);
  BOOST_TEST(*stamp::find("x" + s) == 1'795'000'000'123'456'789u);
  // Only the first one counts.
  BOOST_TEST(*stamp::find(stamp_of(5) + stamp_of(6)) == 5u);
}

BOOST_AUTO_TEST_CASE(what_is_no_stamp) {
  BOOST_TEST(!stamp::find(""));
  BOOST_TEST(!stamp::find("wsl@"));
  BOOST_TEST(!stamp::find("wsl@012345678901234"));     // 15 digits, at the end
  BOOST_TEST(!stamp::find("wsl@0123456789ABCDEF"));    // upper case
  BOOST_TEST(!stamp::find("wsl@01234567 89abcdef0"));  // broken by a space
  BOOST_TEST(!stamp::find("WSL@0123456789abcdef"));
  // A marker that is no stamp is passed over, and a stamp after it found; so is one inside it.
  BOOST_TEST(*stamp::find("wsl@xyz " + stamp_of(42)) == 42u);
  BOOST_TEST(*stamp::find("wsl@" + stamp_of(43)) == 43u);
  BOOST_TEST(*stamp::find("wsl@wsl@0000000000000044") == 0x44u);
}

BOOST_AUTO_TEST_CASE(a_stamp_cut_across_chunks_is_found_at_every_cut) {
  const auto text = "{\"text\":\"" + stamp_of(0xfeedu) + "\"}";
  for (std::size_t a = 0; a <= text.size(); ++a) {
    BOOST_TEST_CONTEXT("cut at " << a) { BOOST_TEST(found_in_chunks(text, {a}).value_or(0) == 0xfeedu); }
    for (std::size_t b = a; b <= text.size(); ++b) BOOST_TEST_CONTEXT("cuts at " << a << ", " << b) {
        BOOST_TEST(found_in_chunks(text, {a, b}).value_or(0) == 0xfeedu);
      }
  }
  // Byte by byte.
  std::vector<std::size_t> every;
  for (std::size_t i = 1; i < text.size(); ++i) every.push_back(i);
  BOOST_TEST(found_in_chunks(text, every).value_or(0) == 0xfeedu);
}

BOOST_AUTO_TEST_CASE(a_finder_starts_again_after_reset) {
  stamp::finder f;
  f.add("wsl@0000");  // a stamp cut short by the end of its message
  f.reset();
  f.add("000000000007");
  BOOST_TEST(!f.found());
  f.reset();
  f.add(stamp_of(8));
  BOOST_TEST(*f.found() == 8u);
}

// Random messages: filler that resembles stamps (markers, hex digits, markers cut short) around
// zero or one real stamp, cut into random chunks. The finder agrees with find() on the whole text,
// and finds the stamp put in whenever no decoy before it made a stamp of its own.
BOOST_AUTO_TEST_CASE(chunked_search_agrees_with_the_whole) {
  wsl::test::for_each_seed(0x57a3'0001, 2000, [](std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    const std::string pieces[] = {"wsl@", "wsl", "@", "0123", "abcdef", "x", "\"", "w", "sl@", "ffff", "9"};
    auto filler = [&] {
      std::string s;
      for (auto n = rng() % 8; n; --n) s += pieces[rng() % std::size(pieces)];
      return s;
    };
    const bool with_stamp = rng() % 4 != 0;
    const std::uint64_t ns = rng();
    std::string text = filler();
    const auto before = text.size();
    if (with_stamp) text += stamp_of(ns);
    text += filler();
    std::vector<std::size_t> cuts;
    for (std::size_t at = 0; at < text.size();) {
      at += 1 + rng() % 24;
      if (at < text.size()) cuts.push_back(at);
    }
    const auto whole = stamp::find(text);
    BOOST_TEST(found_in_chunks(text, cuts).value_or(~ns) == whole.value_or(~ns));
    BOOST_TEST(found_in_chunks(text, cuts).has_value() == whole.has_value());
    if (with_stamp && !stamp::find(std::string_view(text).substr(0, before + stamp::size - 1)))
      BOOST_TEST(whole.value_or(~ns) == ns);
  });
}
