// wsl pipe's typed lines (cli/typed_lines.hpp): base64 written while a message arrives in pieces,
// and what a line of input is sent as.
#include "typed_lines.hpp"

#define BOOST_TEST_MODULE typed_lines
#include <boost/test/unit_test.hpp>

#include "property.hpp"

#include <wsl/detail/base64.hpp>

#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

using wsl::cli::base64_stream;
using wsl::cli::classify_line;
using wsl::cli::line_types;
using wsl::cli::typed_line;

namespace {

std::span<const unsigned char> bytes(const std::string& s) {
  return {reinterpret_cast<const unsigned char*>(s.data()), s.size()};
}

}  // namespace

BOOST_AUTO_TEST_CASE(known_answers_of_rfc_4648) {
  // RFC 4648 section 10, each fed a byte at a time.
  const std::vector<std::pair<std::string, std::string>> cases = {{"", ""},
                                                                  {"f", "Zg=="},
                                                                  {"fo", "Zm8="},
                                                                  {"foo", "Zm9v"},
                                                                  {"foob", "Zm9vYg=="},
                                                                  {"fooba", "Zm9vYmE="},
                                                                  {"foobar", "Zm9vYmFy"}};
  base64_stream stream;
  for (const auto& [in, expected] : cases) {
    std::string out;
    for (std::size_t i = 0; i < in.size(); ++i) stream.add(bytes(in).subspan(i, 1), out);
    stream.finish(out);
    BOOST_TEST(out == expected);
  }
}

// Cut into pieces of any lengths (empty ones too), a payload gives the text of its whole; and the
// stream is ready for the next message after finish().
BOOST_AUTO_TEST_CASE(pieces_of_any_length_give_the_whole_text) {
  base64_stream stream;
  wsl::test::for_each_seed(0x64'0001, 500, [&](std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::string payload(rng() % 200, '\0');
    for (auto& c : payload) c = static_cast<char>(rng());
    std::string out;
    for (std::size_t at = 0; at < payload.size();) {
      const auto n = std::min<std::size_t>(rng() % 8, payload.size() - at);
      stream.add(bytes(payload).subspan(at, n), out);
      at += n;
    }
    stream.finish(out);
    BOOST_TEST(out == wsl::detail::base64_encode(bytes(payload)));
  });
}

BOOST_AUTO_TEST_CASE(a_line_is_sent_as_its_prefix_says) {
  line_types t{"T:", "B:", true};
  auto check = [&](std::string_view line, typed_line::kind type, std::string_view payload) {
    const auto r = classify_line(t, line);
    BOOST_TEST_CONTEXT(line) {
      BOOST_TEST(r.type == type);
      if (type != typed_line::bad_base64) BOOST_TEST(r.payload() == payload);
    }
  };
  check("plain", typed_line::plain, "plain");
  check("T:B:x", typed_line::text, "B:x");
  check("B:Zm9v", typed_line::binary, "foo");
  check("B:", typed_line::binary, "");
  check("T:", typed_line::text, "");
  check("B:Zm9", typed_line::bad_base64, "");
  check("B:Zm9v\r", typed_line::bad_base64, "");
  check("b:Zm9v", typed_line::plain, "b:Zm9v");
  // Without --base64 the rest is the payload.
  t.base64 = false;
  check("B:Zm9", typed_line::binary, "Zm9");
  // The longer prefix first, whichever it is.
  t = {">", ">>", false};
  check(">>x", typed_line::binary, "x");
  check(">x", typed_line::text, "x");
  t = {">>", ">", false};
  check(">>x", typed_line::text, "x");
  check(">x", typed_line::binary, "x");
  // One prefix alone.
  t = {"", "B:", false};
  check("T:x", typed_line::plain, "T:x");
  check("B:x", typed_line::binary, "x");
  t = {"T:", "", false};
  check("B:x", typed_line::plain, "B:x");
  check("T:x", typed_line::text, "x");
}

// A payload decoded from base64 outlives a copy or a move of its line (it is no view into a
// temporary).
BOOST_AUTO_TEST_CASE(a_decoded_payload_survives_a_move) {
  const line_types t{"", "B:", true};
  auto r = classify_line(t, "B:YQ==");
  auto moved = std::move(r);
  BOOST_TEST(moved.payload() == "a");
}
