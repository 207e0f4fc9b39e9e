// The record splitter of the CLI (cli/records.hpp): wsl pipe's stdin, wsl serve --pipe's stdin and
// a command process's standard output are cut into messages by it.
#include "records.hpp"

#define BOOST_TEST_MODULE records
#include <boost/test/unit_test.hpp>

#include "property.hpp"

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

using wsl::cli::record_splitter;

namespace {

// Feeds `reads` one after another, then ends the stream: every record, in order.
std::vector<std::string> split(record_splitter& s, const std::vector<std::string_view>& reads) {
  std::vector<std::string> out;
  for (auto read : reads) {
    s.feed(read);
    while (auto r = s.next()) out.emplace_back(*r);
  }
  if (auto last = s.finish()) out.emplace_back(*last);
  return out;
}

std::vector<std::string> split_lines(const std::vector<std::string_view>& reads, std::size_t max = 0) {
  record_splitter s('\n', max);
  return split(s, reads);
}

using records = std::vector<std::string>;

}  // namespace

BOOST_AUTO_TEST_CASE(whole_lines_in_one_read) {
  BOOST_TEST(split_lines({"a\nbc\n\nd\n"}) == (records{"a", "bc", "", "d"}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_record_that_lies_whole_in_a_read_is_not_copied) {
  record_splitter s('\n');
  const std::string data = "first\nsecond\n";
  s.feed(data);
  const auto r = s.next();
  BOOST_REQUIRE(r);
  BOOST_TEST(static_cast<const void*>(r->data()) == static_cast<const void*>(data.data()));
  BOOST_TEST(r->size() == 5u);
}

BOOST_AUTO_TEST_CASE(records_cut_across_reads_are_joined) {
  BOOST_TEST(split_lines({"he", "llo\nwo", "r", "ld\n"}) == (records{"hello", "world"}),
             boost::test_tools::per_element());
  BOOST_TEST(split_lines({"abc", "\n"}) == (records{"abc"}), boost::test_tools::per_element());
  BOOST_TEST(split_lines({"", "x\n", ""}) == (records{"x"}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(held_counts_the_unfinished_record) {
  record_splitter s('\n');
  s.feed("one\ntw");
  BOOST_TEST(*s.next() == "one");
  BOOST_TEST(!s.next());
  BOOST_TEST(s.held() == 2u);
  s.feed("o\n");
  BOOST_TEST(*s.next() == "two");
  BOOST_TEST(s.held() == 0u);
  BOOST_TEST(!s.next());
}

BOOST_AUTO_TEST_CASE(a_last_record_without_delimiter_comes_with_finish) {
  BOOST_TEST(split_lines({"a\nlast"}) == (records{"a", "last"}), boost::test_tools::per_element());
  BOOST_TEST(split_lines({"a\nla", "st"}) == (records{"a", "last"}), boost::test_tools::per_element());
  // An empty rest is no record: "a\n" is one record, not two.
  BOOST_TEST(split_lines({"a\n"}) == (records{"a"}), boost::test_tools::per_element());
  BOOST_TEST(split_lines({""}).empty());
  record_splitter s('\n');
  BOOST_TEST(!s.finish());
}

BOOST_AUTO_TEST_CASE(cr_is_part_of_the_record) {
  // Bytes are never changed: a CRLF line keeps its CR, a lone CR is an ordinary byte.
  BOOST_TEST(split_lines({"a\r\nb\rc\n\r\n"}) == (records{"a\r", "b\rc", "\r"}), boost::test_tools::per_element());
  BOOST_TEST(split_lines({"a\r", "\nb"}) == (records{"a\r", "b"}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(nul_mode_keeps_newlines_inside_records) {
  record_splitter s('\0');
  const std::string data("a\0b\nc\0\0tail", 11);
  BOOST_TEST(split(s, {data}) == (records{"a", "b\nc", "", "tail"}), boost::test_tools::per_element());
  record_splitter cut('\0');
  const std::string first("x\ny", 3), second("z\0w", 3);
  BOOST_TEST(split(cut, {first, second}) == (records{"x\nyz", "w"}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_long_record_comes_in_pieces_of_the_maximum) {
  // Whole in one read, and cut across reads: pieces of exactly 4 bytes, then the rest.
  BOOST_TEST(split_lines({"abcdefghij\nk\n"}, 4) == (records{"abcd", "efgh", "ij", "k"}),
             boost::test_tools::per_element());
  BOOST_TEST(split_lines({"ab", "cdef", "ghi", "j\nk\n"}, 4) == (records{"abcd", "efgh", "ij", "k"}),
             boost::test_tools::per_element());
  // A record of exactly the maximum is one record, however it is cut (no empty record after it).
  BOOST_TEST(split_lines({"abcd\n"}, 4) == (records{"abcd"}), boost::test_tools::per_element());
  BOOST_TEST(split_lines({"ab", "cd", "\n", "e\n"}, 4) == (records{"abcd", "e"}), boost::test_tools::per_element());
  BOOST_TEST(split_lines({"abcdefgh\n"}, 4) == (records{"abcd", "efgh"}), boost::test_tools::per_element());
  // And at the end of the stream.
  BOOST_TEST(split_lines({"abcdef"}, 4) == (records{"abcd", "ef"}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(never_holds_more_than_the_maximum) {
  record_splitter s('\n', 8);
  const std::string big(1000, 'x');
  for (int i = 0; i < 10; ++i) {
    s.feed(big);
    while (auto r = s.next()) BOOST_TEST(r->size() == 8u);
    BOOST_TEST(s.held() <= 8u);
  }
}

// Random streams in random reads, with and without a maximum: the records are the stream's,
// in order, and joining the pieces of a long record gives the record.
BOOST_AUTO_TEST_CASE(random_streams_in_random_reads) {
  wsl::test::for_each_seed(0x5ec'0001, 300, [](std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    const char delimiter = rng() % 2 ? '\n' : '\0';
    const std::size_t max = rng() % 3 == 0 ? 0 : 1 + rng() % 20;
    std::vector<std::string> expected;
    std::string stream;
    const auto count = rng() % 30;
    for (std::uint64_t i = 0; i < count; ++i) {
      std::string record;
      const auto length = rng() % 3 == 0 ? rng() % 60 : rng() % 6;
      for (std::uint64_t j = 0; j < length; ++j) {
        char c = static_cast<char>("ab\r\n\0"[rng() % 5]);
        if (c == delimiter) c = 'z';
        record.push_back(c);
      }
      stream += record;
      stream.push_back(delimiter);
      if (max == 0 || record.empty()) {
        expected.push_back(record);
        continue;
      }
      for (std::size_t at = 0; at < record.size(); at += max) expected.push_back(record.substr(at, max));
    }
    const bool cut_last = rng() % 2 && !stream.empty();
    if (cut_last) stream.pop_back();  // a last record without its delimiter
    std::vector<std::string_view> reads;
    for (std::size_t at = 0; at < stream.size();) {
      const auto n = std::min<std::size_t>(stream.size() - at, rng() % 9);
      reads.emplace_back(stream.data() + at, n);
      at += n;
    }
    record_splitter s(delimiter, max);
    const auto got = split(s, reads);
    // A last record that was empty and lost its delimiter is no record.
    auto want = expected;
    if (cut_last && want.back().empty()) want.pop_back();
    BOOST_TEST(got == want, boost::test_tools::per_element());
  });
}
