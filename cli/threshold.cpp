#include "threshold.hpp"

#include "common.hpp"

#include <fmt/format.h>

#include <array>
#include <charconv>
#include <chrono>
#include <cmath>
#include <stdexcept>

namespace wsl::cli {
namespace {

struct metric_info {
  std::string_view name;
  threshold_metric which;
  threshold_unit unit;
};

// Keep in step with threshold_metric_names() and man/wsl-loadtest.1.
constexpr auto d = threshold_unit::duration, n = threshold_unit::count;
using m = threshold_metric;
constexpr std::array metrics{
    metric_info{"p50", m::rtt_p50, d},
    metric_info{"p90", m::rtt_p90, d},
    metric_info{"p99", m::rtt_p99, d},
    metric_info{"p99.9", m::rtt_p999, d},
    metric_info{"max", m::rtt_max, d},
    metric_info{"mean", m::rtt_mean, d},
    metric_info{"handshake.p50", m::handshake_p50, d},
    metric_info{"handshake.p90", m::handshake_p90, d},
    metric_info{"handshake.p99", m::handshake_p99, d},
    metric_info{"handshake.max", m::handshake_max, d},
    metric_info{"sent/s", m::sent_per_second, n},
    metric_info{"received/s", m::received_per_second, n},
    metric_info{"sent", m::sent, n},
    metric_info{"received", m::received, n},
    metric_info{"lost", m::lost, n},
    metric_info{"opened", m::opened, n},
    metric_info{"failed", m::failed, n},
    metric_info{"errors", m::errors, n},
};
}  // namespace

std::string_view threshold_metric_names() noexcept {
  return "p50, p90, p99, p99.9, max, mean (round trips); handshake.p50, handshake.p90, handshake.p99, "
         "handshake.max; sent/s, received/s, sent, received, lost, opened, failed, errors";
}

threshold parse_threshold(std::string_view text) {
  threshold t;
  for (char c : text)
    if (c != ' ' && c != '\t') t.text += c;
  const auto op_at = t.text.find_first_of("<>=");
  if (op_at == std::string::npos || op_at == 0)
    throw std::invalid_argument(fmt::format("'{}' is not METRIC OP VALUE (e.g. p99<5ms, lost==0)", text));
  t.metric = t.text.substr(0, op_at);
  const std::string_view rest = std::string_view(t.text).substr(op_at);
  std::size_t op_size = 2;
  if (rest.starts_with("<="))
    t.op = threshold::comparison::less_equal;
  else if (rest.starts_with(">="))
    t.op = threshold::comparison::greater_equal;
  else if (rest.starts_with("=="))
    t.op = threshold::comparison::equal;
  else if (rest.starts_with("<"))
    t.op = threshold::comparison::less, op_size = 1;
  else if (rest.starts_with(">"))
    t.op = threshold::comparison::greater, op_size = 1;
  else
    throw std::invalid_argument(fmt::format("'{}': the comparison is one of < <= > >= ==", text));
  const auto value = rest.substr(op_size);
  if (value.empty()) throw std::invalid_argument(fmt::format("'{}' has no value to compare with", text));

  const metric_info* info = nullptr;
  for (const auto& m : metrics)
    if (m.name == t.metric) info = &m;
  if (!info)
    throw std::invalid_argument(
        fmt::format("unknown metric '{}' in '{}' (one of {})", t.metric, text, threshold_metric_names()));
  t.which = info->which;
  t.unit = info->unit;
  if (t.unit == threshold_unit::duration) {
    try {
      t.limit =
          static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(parse_duration(value)).count());
    } catch (const CLI::ValidationError&) {
      throw std::invalid_argument(fmt::format("'{}' in '{}' is not a duration (e.g. 5ms, 250us, 1.5s)", value, text));
    }
  } else {
    t.limit = parse_count(value);
  }
  return t;
}

bool threshold_holds(const threshold& t, std::optional<double> measured) noexcept {
  if (!measured) return false;
  const double v = *measured;
  switch (t.op) {
    case threshold::comparison::less: return v < t.limit;
    case threshold::comparison::less_equal: return v <= t.limit;
    case threshold::comparison::greater: return v > t.limit;
    case threshold::comparison::greater_equal: return v >= t.limit;
    case threshold::comparison::equal: return v == t.limit;
  }
  return false;
}

}  // namespace wsl::cli
