// When the messages of an open-loop `wsl loadtest` are due, with the rate held or ramped in stages
// as k6's ramping-arrival-rate does:
//
//   wsl loadtest -r 1000 --stage 30s:20k --stage 30s:20k URL    # ramp to 20k msgs/s, then hold it
//
// The rate is -r from the run's start until the measurement starts; from there each stage ramps it
// linearly from the rate before to its target over its length, and after the last one it holds
// that target. Message k (counted from 0 across all connections) is due at the moment the messages
// due so far reach k, so at any instant the messages are evenly spaced, whatever the rate does,
// and a rate of 0 sends nothing (until a later stage raises it).
#pragma once

#include <wsl/clock.hpp>

#include <atomic>
#include <string_view>
#include <vector>

namespace wsl::cli {

struct rate_stage {
  clock::duration length{};
  double target = 0;  // messages per second at the stage's end
};

// "30s:20k" -> {30 s, 20000}. Throws std::invalid_argument with a one-line reason.
rate_stage parse_rate_stage(std::string_view text);

class send_schedule {
 public:
  send_schedule(clock::time_point start, double start_rate, std::vector<rate_stage> stages)
      : start_(start), start_rate_(start_rate), stages_(std::move(stages)) {}

  // The stages begin here. Until it is called the rate stays the start rate: a sender that asked
  // due() before must ask again (the loadtest wakes its senders for that). Thread-safe.
  void start_stages(clock::time_point at) noexcept { stages_start_.store(at.time_since_epoch().count()); }

  // The messages due from the start to t (a fraction between two messages' times).
  double count_before(clock::time_point t) const noexcept;

  // When message k is due; time_point::max() when the rate never reaches it.
  clock::time_point due(double k) const noexcept;

  const std::vector<rate_stage>& stages() const noexcept { return stages_; }

 private:
  static constexpr clock::rep not_yet = clock::time_point::max().time_since_epoch().count();

  clock::time_point start_;
  double start_rate_;
  std::vector<rate_stage> stages_;
  std::atomic<clock::rep> stages_start_{not_yet};
};

}  // namespace wsl::cli
