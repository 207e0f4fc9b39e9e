// Pass/fail criteria for `wsl loadtest --threshold`, in the manner of k6's thresholds: a run that
// misses one exits 1, so a CI job can fail on a latency or throughput regression.
//
//   METRIC OP VALUE    e.g.  p99<5ms   received/s>=50k   lost==0   handshake.p99<=100ms
//
// OP is one of < <= > >= ==. Round-trip and handshake metrics take durations (5ms, 250us, 1.5s; a
// plain number is seconds, as everywhere in wsl); the others take counts with an optional decimal
// k, M or G suffix.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace wsl::cli {

enum class threshold_unit { duration, count };

// What a threshold measures. Round trips, then handshakes (times); then rates and counts.
// clang-format off
enum class threshold_metric {
  rtt_p50, rtt_p90, rtt_p99, rtt_p999, rtt_max, rtt_mean,
  handshake_p50, handshake_p90, handshake_p99, handshake_max,
  sent_per_second, received_per_second,
  sent, received, lost, opened, failed, errors,
};
// clang-format on

struct threshold {
  std::string text;    // as given, without blanks: "p99<5ms"
  std::string metric;  // its name: "p99"
  threshold_metric which = threshold_metric::rtt_p50;
  enum class comparison { less, less_equal, greater, greater_equal, equal } op = comparison::less;
  double limit = 0;  // nanoseconds for durations
  threshold_unit unit = threshold_unit::count;
};

// Throws std::invalid_argument with a one-line reason naming what is wrong.
threshold parse_threshold(std::string_view text);

// Whether a measured value satisfies it. No value (no round trip was measured, say) never does.
bool threshold_holds(const threshold& t, std::optional<double> measured) noexcept;

// The metric names parse_threshold() accepts, for --help and error messages.
std::string_view threshold_metric_names() noexcept;

}  // namespace wsl::cli
