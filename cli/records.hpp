// Cutting a byte stream into records (lines, or NUL-terminated records with -0): one splitter for
// every place the CLI turns a stream into messages (wsl pipe's stdin, wsl serve --pipe's stdin, the
// standard output of a command process).
//
//   record_splitter split('\n');
//   split.feed(bytes_just_read);
//   while (auto record = split.next()) send(*record);
//   ...
//   if (auto last = split.finish()) send(*last);  // at the end of the stream
//
// A record is the bytes before its delimiter, the delimiter itself left out; nothing else is
// changed (a CR before a newline stays part of the record). A record that lies whole in what was
// fed is returned where it lies, uncopied; only a record cut by the end of a read is held.
// With a maximum record size, a longer record comes out in pieces of exactly that size (the last
// piece being what is left before the delimiter), so that no more than that is ever held.
#pragma once

#include <cstddef>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace wsl::cli {

class record_splitter {
 public:
  // max_record: the largest record returned, longer ones come in pieces; 0 = no limit.
  explicit record_splitter(char delimiter, std::size_t max_record = 0) noexcept
      : delimiter_(delimiter), max_(max_record) {}

  // The next bytes of the stream. They must stay valid until next() has returned nullopt.
  void feed(std::string_view data) noexcept { rest_ = data; }

  // The next complete record (or piece of max_record bytes), valid until the next call; nullopt
  // once what was fed is used up (its unfinished record held for the next feed()).
  std::optional<std::string_view> next() {
    release();
    const char* const end =
        rest_.empty() ? nullptr : static_cast<const char*>(std::memchr(rest_.data(), delimiter_, rest_.size()));
    const std::size_t body = end == nullptr ? rest_.size() : static_cast<std::size_t>(end - rest_.data());
    if (max_ != 0 && held_.size() + body > max_) {  // too long: a piece of max_ bytes
      if (held_.empty()) return take_rest(max_, 0);
      const std::size_t part = max_ - held_.size();
      held_.append(rest_.substr(0, part));
      rest_.remove_prefix(part);
      return give_held();
    }
    if (end == nullptr) {
      held_.append(rest_);
      rest_ = {};
      return std::nullopt;
    }
    if (held_.empty()) return take_rest(body, 1);  // the common case: the whole record where it lies
    held_.append(rest_.substr(0, body));
    rest_.remove_prefix(body + 1);
    return give_held();
  }

  // At the end of the stream: the last record when it had no delimiter (an empty rest is no
  // record), valid until the next call.
  std::optional<std::string_view> finish() {
    release();
    if (held_.empty()) return std::nullopt;
    return give_held();
  }

  // Bytes held for a record whose end has not come yet.
  std::size_t held() const noexcept { return handed_out_ ? 0 : held_.size(); }

 private:
  std::string_view take_rest(std::size_t size, std::size_t skip) noexcept {
    const auto record = rest_.substr(0, size);
    rest_.remove_prefix(size + skip);
    return record;
  }
  std::string_view give_held() noexcept {
    handed_out_ = true;
    return held_;
  }
  void release() noexcept {
    if (std::exchange(handed_out_, false)) held_.clear();
  }

  const char delimiter_;
  const std::size_t max_;
  std::string_view rest_;    // fed and not yet split
  std::string held_;         // the start of a record cut by the end of a read
  bool handed_out_ = false;  // held_ was returned: cleared on the next call
};

}  // namespace wsl::cli
