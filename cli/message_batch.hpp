// Messages gathered for one websocket::write_messages() call, so that many small ones (the lines
// of one read) cost one system call, not one each. A message's bytes are used where they lie when
// they stay valid until the batch is sent (within `stable`, the bytes of the read being cut into
// lines); otherwise (a line cut by the end of a read, held by the splitter; a decoded payload)
// the batch keeps a copy.
#pragma once

#include "typed_lines.hpp"

#include <wsl/websocket.hpp>

#include <cstddef>
#include <deque>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace wsl::cli {

class message_batch {
 public:
  // As many as websocket::write_messages() sends at once.
  static constexpr std::size_t limit = 64;

  void add(message_type type, std::string_view data, std::string_view stable) {
    const std::less_equal<const char*> at_or_before;
    if (!at_or_before(stable.data(), data.data()) ||
        !at_or_before(data.data() + data.size(), stable.data() + stable.size())) {
      copies_.emplace_back(data);
      data = copies_.back();
    }
    messages_.push_back({type, asio::buffer(data.data(), data.size())});
  }
  void add(message_type type, std::string&& data) {
    copies_.push_back(std::move(data));
    messages_.push_back({type, asio::buffer(copies_.back())});
  }
  // A line's message (typed_lines.hpp): its decoded payload with --base64, else the line's part.
  void add(line_message&& m, std::string_view stable) {
    if (m.decoded)
      add(m.type, std::move(*m.decoded));
    else
      add(m.type, m.payload, stable);
  }

  bool full() const noexcept { return messages_.size() >= limit; }
  bool empty() const noexcept { return messages_.empty(); }
  std::size_t size() const noexcept { return messages_.size(); }
  std::span<const outgoing_message> messages() const noexcept { return messages_; }
  void clear() noexcept {
    messages_.clear();
    copies_.clear();
  }

 private:
  std::vector<outgoing_message> messages_;
  std::deque<std::string> copies_;  // a deque: adding one moves none, their bytes stay put
};

}  // namespace wsl::cli
