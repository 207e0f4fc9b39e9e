// wsl loadtest --stamp: the time a message was due, written into the message, so that whoever
// receives it, through a server that forwards or broadcasts it (and maybe wraps it in JSON of its
// own), can tell how long it took to arrive.
//
// A stamp is "wsl@" and 16 lowercase hex digits: nanoseconds since the Unix epoch (CLOCK_REALTIME),
// so that one process reads the stamps of another, on this machine or on one whose clock is kept
// in step. Plain ASCII that JSON, URL and most text encodings leave alone, at any position.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace wsl::cli::stamp {

inline constexpr std::string_view marker = "wsl@";
inline constexpr std::size_t digits = 16;
inline constexpr std::size_t size = marker.size() + digits;  // 20 bytes

// Writes the stamp of `ns` at `at` (`size` bytes).
inline void write(char* at, std::uint64_t ns) noexcept {
  static constexpr char hex[] = "0123456789abcdef";
  std::memcpy(at, marker.data(), marker.size());
  for (std::size_t i = 0; i < digits; ++i) at[marker.size() + i] = hex[(ns >> (4 * (digits - 1 - i))) & 0xf];
}

// The time of the first whole stamp in `text`, if there is one. A marker not followed by 16
// lowercase hex digits is no stamp; the search goes on after it.
inline std::optional<std::uint64_t> find(std::string_view text) noexcept {
  for (std::size_t at = text.find(marker); at != std::string_view::npos; at = text.find(marker, at + 1)) {
    if (text.size() - at < size) return std::nullopt;
    std::uint64_t ns = 0;
    std::size_t i = at + marker.size();
    for (; i < at + size; ++i) {
      const char c = text[i];
      if (c >= '0' && c <= '9')
        ns = ns << 4 | static_cast<std::uint64_t>(c - '0');
      else if (c >= 'a' && c <= 'f')
        ns = ns << 4 | static_cast<std::uint64_t>(c - 'a' + 10);
      else
        break;
    }
    if (i == at + size) return ns;
  }
  return std::nullopt;
}

// The first stamp of a message that arrives in chunks of any size, a stamp possibly cut across
// several of them. Keeps the last `size - 1` bytes seen: a stamp that ends in a chunk starts there
// or in those.
class finder {
 public:
  void add(std::string_view chunk) noexcept {
    if (found_ || chunk.empty()) return;
    if (carried_ != 0) {  // a stamp that starts in the bytes kept and ends in this chunk
      char window[2 * keep];
      const auto head = std::min(chunk.size(), keep);
      std::memcpy(window, carry_, carried_);
      std::memcpy(window + carried_, chunk.data(), head);
      found_ = find({window, carried_ + head});
      if (found_) return;
    }
    found_ = find(chunk);
    if (found_) return;
    if (chunk.size() >= keep) {
      std::memcpy(carry_, chunk.data() + chunk.size() - keep, keep);
      carried_ = keep;
    } else {
      const auto old = std::min(carried_, keep - chunk.size());  // the newest of the bytes kept
      std::memmove(carry_, carry_ + carried_ - old, old);
      std::memcpy(carry_ + old, chunk.data(), chunk.size());
      carried_ = old + chunk.size();
    }
  }
  const std::optional<std::uint64_t>& found() const noexcept { return found_; }
  // For the next message.
  void reset() noexcept {
    found_.reset();
    carried_ = 0;
  }

 private:
  static constexpr std::size_t keep = size - 1;
  std::optional<std::uint64_t> found_;
  char carry_[keep];
  std::size_t carried_ = 0;
};

}  // namespace wsl::cli::stamp
