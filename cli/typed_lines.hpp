// `--text-prefix/--binary-prefix/--base64` of `wsl pipe` and `wsl serve` (websocat's options of
// the same names): lines that say which type of message they are, and binary messages as one line
// of base64, so that a stream of both kinds survives line-based tools.
//
//   received: a text message is written as TEXT_PREFIX + payload, a binary one as BINARY_PREFIX +
//             payload (base64 with --base64), each followed by the delimiter;
//   sent:     a line that starts with BINARY_PREFIX is a binary message of the rest (decoded from
//             base64 with --base64), one that starts with TEXT_PREFIX a text message of the rest,
//             any other line as without the options.
#pragma once

#include <wsl/detail/base64.hpp>
#include <wsl/detail/utf8.hpp>
#include <wsl/websocket.hpp>

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace wsl::cli {

struct line_types {
  std::string text_prefix, binary_prefix;
  bool base64 = false;

  bool any() const noexcept { return !text_prefix.empty() || !binary_prefix.empty() || base64; }
};

// The three options on a subcommand, each excluding `binary` (-b). `input` names the lines they
// type in the help ("a stdin line").
class line_type_options {
 public:
  line_type_options(CLI::App& app, line_types& target, CLI::Option* binary, std::string_view input);
  // After parsing: what is wrong with them ("--text-prefix, ...: a prefix cannot be empty, ..."),
  // or empty.
  std::string problem(bool null_delimited) const;

 private:
  const line_types& types_;
  CLI::Option* text_prefix_;
  CLI::Option* binary_prefix_;
};

// A message's payload as base64 while it arrives in pieces of any length: the same text as
// encoding it whole. Holds at most two bytes between pieces.
class base64_stream {
 public:
  // The base64 of the whole groups of three bytes so far (appended to `out`).
  void add(std::span<const unsigned char> in, std::string& out) {
    if (held_ != 0) {
      while (held_ < 3 && !in.empty()) {
        group_[held_++] = in.front();
        in = in.subspan(1);
      }
      if (held_ < 3) return;
      out += detail::base64_encode(std::span(group_, 3));
      held_ = 0;
    }
    const std::size_t whole = in.size() / 3 * 3;
    out += detail::base64_encode(in.first(whole));
    for (const auto byte : in.subspan(whole)) group_[held_++] = byte;
  }
  // The rest, padded; ready for the next message.
  void finish(std::string& out) {
    out += detail::base64_encode(std::span(group_, held_));
    held_ = 0;
  }

 private:
  unsigned char group_[3] = {};
  std::size_t held_ = 0;
};

// What a line of input is to be sent as.
struct typed_line {
  enum kind { plain, text, binary, bad_base64 } type = plain;
  std::string_view rest;               // the line without its prefix
  std::optional<std::string> decoded;  // of the rest, binary with --base64

  std::string_view payload() const noexcept { return decoded ? std::string_view(*decoded) : rest; }
};

// The longer prefix is tried first, so that neither hides the other.
inline typed_line classify_line(const line_types& t, std::string_view line) {
  typed_line r;
  r.rest = line;
  const auto has = [&](const std::string& prefix) { return !prefix.empty() && line.starts_with(prefix); };
  const bool binary_first = t.binary_prefix.size() >= t.text_prefix.size();
  const bool binary = has(t.binary_prefix) && (binary_first || !has(t.text_prefix));
  if (!binary && has(t.text_prefix)) {
    r.type = typed_line::text;
    r.rest = line.substr(t.text_prefix.size());
  } else if (binary) {
    r.type = typed_line::binary;
    r.rest = line.substr(t.binary_prefix.size());
    if (t.base64) {
      r.decoded = detail::base64_decode(r.rest);
      if (!r.decoded) r.type = typed_line::bad_base64;
    }
  }
  return r;
}

// The message a line of input goes as: what its prefix says (classify_line), and otherwise, text
// or a line after the text prefix, RFC 6455's rule that text is UTF-8: a line that is not goes as
// a binary message with the same bytes (`not_utf8`: each caller warns once, in its own words).
struct line_message {
  bool bad_base64 = false;  // not base64 after the binary prefix: not to be sent
  bool not_utf8 = false;
  message_type type = message_type::text;
  std::string_view payload;            // a part of the line...
  std::optional<std::string> decoded;  // ... or, binary with --base64, its decoded rest
};

inline line_message message_of_line(const line_types& t, std::string_view line) {
  line_message m;
  if (t.any()) {
    auto typed = classify_line(t, line);
    m.bad_base64 = typed.type == typed_line::bad_base64;
    if (typed.type == typed_line::binary || m.bad_base64) {
      m.type = message_type::binary;
      m.payload = typed.rest;
      m.decoded = std::move(typed.decoded);
      return m;
    }
    line = typed.rest;
  }
  m.payload = line;
  if (!detail::utf8_validator::validate(line.data(), line.size())) {
    m.type = message_type::binary;
    m.not_utf8 = true;
  }
  return m;
}

}  // namespace wsl::cli
