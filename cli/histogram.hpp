// A log-linear latency histogram in the manner of HdrHistogram: 128 linear sub-buckets per power
// of two, so any recorded value is reported within 1/128 (0.8%) of itself. Fixed memory (about
// 45 KiB), O(1) record, no allocation after construction; histograms of several threads merge.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <vector>

namespace wsl::cli {

class histogram {
 public:
  static constexpr int sub_bucket_bits = 7;
  static constexpr std::uint64_t sub_buckets = 1u << sub_bucket_bits;
  // Values up to 2^53 ns (about 104 days) get their bucket; larger ones count in the last.
  static constexpr int max_exponent = 46;

  histogram() : counts_((max_exponent + 1) * sub_buckets, 0) {}

  void record(std::uint64_t value) noexcept {
    ++counts_[index(value)];
    ++count_;
    min_ = std::min(min_, value);
    max_ = std::max(max_, value);
    sum_ += static_cast<double>(value);
    sum_squares_ += static_cast<double>(value) * static_cast<double>(value);
  }

  void merge(const histogram& o) {
    for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += o.counts_[i];
    count_ += o.count_;
    min_ = std::min(min_, o.min_);
    max_ = std::max(max_, o.max_);
    sum_ += o.sum_;
    sum_squares_ += o.sum_squares_;
  }

  // Empty again, as constructed (for a histogram that is handed over and restarted each interval).
  void reset() noexcept {
    if (count_ == 0) return;
    std::fill(counts_.begin(), counts_.end(), 0);
    count_ = 0;
    min_ = UINT64_MAX;
    max_ = 0;
    sum_ = 0;
    sum_squares_ = 0;
  }

  std::uint64_t count() const noexcept { return count_; }
  std::uint64_t min() const noexcept { return count_ ? min_ : 0; }
  std::uint64_t max() const noexcept { return max_; }
  double mean() const noexcept { return count_ ? sum_ / static_cast<double>(count_) : 0; }
  double stddev() const noexcept {
    if (count_ < 2) return 0;
    const double m = mean();
    return std::sqrt(std::max(0.0, sum_squares_ / static_cast<double>(count_) - m * m));
  }

  // The value at a percentile (0-100): the middle of its bucket, clamped to the recorded range.
  std::uint64_t percentile(double p) const noexcept {
    if (count_ == 0) return 0;
    const auto rank = static_cast<std::uint64_t>(std::ceil(p / 100.0 * static_cast<double>(count_)));
    if (rank >= count_) return max_;  // the largest value is known exactly
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= std::max<std::uint64_t>(rank, 1)) return std::clamp(middle(i), min(), max_);
    }
    return max_;
  }

 private:
  // Values below 128 have their own bucket; above, the top 7 bits after the leading one pick it.
  static std::size_t index(std::uint64_t v) noexcept {
    if (v < sub_buckets) return static_cast<std::size_t>(v);
    const int exponent = 63 - std::countl_zero(v) - sub_bucket_bits + 1;
    if (exponent > max_exponent) return (max_exponent + 1) * sub_buckets - 1;
    const auto mantissa = (v >> (exponent - 1)) & (sub_buckets - 1);
    return static_cast<std::size_t>(exponent) * sub_buckets + static_cast<std::size_t>(mantissa);
  }
  static std::uint64_t lowest(std::size_t i) noexcept {
    const auto exponent = i / sub_buckets;
    const auto mantissa = i % sub_buckets;
    if (exponent == 0) return mantissa;
    return (sub_buckets + mantissa) << (exponent - 1);
  }
  static std::uint64_t middle(std::size_t i) noexcept {
    const auto exponent = i / sub_buckets;
    if (exponent <= 1) return lowest(i);
    return lowest(i) + (std::uint64_t{1} << (exponent - 1)) / 2;
  }

  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0;
  std::uint64_t min_ = UINT64_MAX;
  std::uint64_t max_ = 0;
  double sum_ = 0;
  double sum_squares_ = 0;
};

}  // namespace wsl::cli
