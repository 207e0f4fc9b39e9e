#include "schedule.hpp"

#include "common.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>

namespace wsl::cli {
namespace {

double seconds(clock::duration d) noexcept { return std::chrono::duration<double>(d).count(); }

clock::duration from_seconds(double s) noexcept {
  return std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(s));
}

// Where, in a stage ramping from rate a to rate b over length seconds, the messages due since its
// start reach n (at most the stage's whole count): the root of a x + (b - a) / length x^2 / 2 = n,
// written so that it stays exact when the ramp is flat or starts from 0.
double time_into_stage(double a, double b, double length, double n) noexcept {
  if (n <= 0) return 0;
  const double slope = (b - a) / length;
  const double root = std::sqrt(std::max(0.0, a * a + 2 * slope * n));
  return std::min(length, 2 * n / (a + root));
}

}  // namespace

rate_stage parse_rate_stage(std::string_view text) {
  const auto colon = text.find(':');
  if (colon == std::string_view::npos)
    throw std::invalid_argument(fmt::format("'{}' is not DURATION:RATE (e.g. 30s:10k)", text));
  rate_stage stage;
  try {
    stage.length = parse_duration(text.substr(0, colon));
  } catch (const std::exception&) {
    throw std::invalid_argument(fmt::format("'{}' is not a duration", text.substr(0, colon)));
  }
  if (stage.length <= clock::duration::zero())
    throw std::invalid_argument(fmt::format("'{}': a stage lasts more than 0", text));
  stage.target = parse_count(text.substr(colon + 1));
  return stage;
}

double send_schedule::count_before(clock::time_point t) const noexcept {
  if (t <= start_) return 0;
  const auto stages_start = clock::time_point(clock::duration(stages_start_.load()));
  if (t <= stages_start) return start_rate_ * seconds(t - start_);
  double count = start_rate_ * seconds(stages_start - start_);
  double rate = start_rate_;
  auto at = stages_start;
  for (const auto& stage : stages_) {
    const double length = seconds(stage.length);
    if (t <= at + stage.length) {
      const double x = seconds(t - at);
      return count + rate * x + (stage.target - rate) / length * x * x / 2;
    }
    count += (rate + stage.target) / 2 * length;
    rate = stage.target;
    at += stage.length;
  }
  return count + rate * seconds(t - at);
}

clock::time_point send_schedule::due(double k) const noexcept {
  const auto never = clock::time_point::max();
  const auto stages_start = clock::time_point(clock::duration(stages_start_.load()));
  const bool started = stages_start_.load() != not_yet;
  // Before the stages: the start rate.
  if (start_rate_ > 0) {
    const double at = k / start_rate_;
    if (!started || at <= seconds(stages_start - start_)) return start_ + from_seconds(at);
  }
  if (!started) return never;
  double left = k - start_rate_ * seconds(stages_start - start_);
  double rate = start_rate_;
  auto at = stages_start;
  for (const auto& stage : stages_) {
    const double length = seconds(stage.length);
    const double count = (rate + stage.target) / 2 * length;
    if (left <= count) return at + from_seconds(time_into_stage(rate, stage.target, length, left));
    left -= count;
    rate = stage.target;
    at += stage.length;
  }
  if (rate <= 0) return never;
  return at + from_seconds(left / rate);
}

}  // namespace wsl::cli
