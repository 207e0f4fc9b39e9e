// wsl loadtest's latency histogram (cli/histogram.hpp), against exact percentiles of the same
// values: issue #3 asks for percentiles from a histogram with a relative error of at most 1%.
#include "histogram.hpp"

#define BOOST_TEST_MODULE histogram
#include <boost/test/unit_test.hpp>

#include "property.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

using wsl::cli::histogram;

namespace {

// The value of rank ceil(p/100 * n) among the sorted values (the first for p = 0): the definition
// the histogram reports, computed exactly.
std::uint64_t exact_percentile(const std::vector<std::uint64_t>& sorted, double p) {
  const auto n = static_cast<double>(sorted.size());
  const auto rank = std::max<std::uint64_t>(static_cast<std::uint64_t>(std::ceil(p / 100.0 * n)), 1);
  return sorted[rank - 1];
}

// Latencies as a load test sees them: spread over many powers of two (log-uniform), with clusters.
std::uint64_t random_latency(std::mt19937_64& rng) {
  const auto exponent = static_cast<int>(rng() % 41);  // 1 ns to about 18 minutes
  const auto base = std::uint64_t{1} << exponent;
  return base + rng() % base;
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_percentile_is_within_one_percent_of_the_exact_one) {
  wsl::test::for_each_seed(0x415'0001, 300, [](std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    const std::size_t n = 1 + rng() % (rng() % 2 ? 50 : 20000);
    std::vector<std::uint64_t> values;
    histogram h;
    for (std::size_t i = 0; i < n; ++i) {
      // Now and then a run of one value, as a server that answers in steady time gives.
      const auto v = random_latency(rng);
      const std::size_t repeat = rng() % 10 == 0 ? 1 + rng() % 100 : 1;
      for (std::size_t k = 0; k < repeat; ++k) {
        values.push_back(v);
        h.record(v);
      }
    }
    std::sort(values.begin(), values.end());
    BOOST_TEST(h.count() == values.size());
    BOOST_TEST(h.min() == values.front());
    BOOST_TEST(h.max() == values.back());
    std::vector<double> ps = {0, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 100};
    for (int i = 0; i < 20; ++i) ps.push_back(static_cast<double>(rng() % 100001) / 1000.0);
    std::uint64_t previous = 0;
    for (const double p : ps) {
      BOOST_TEST_CONTEXT("p" << p) {
        const auto exact = exact_percentile(values, p);
        const auto reported = h.percentile(p);
        // Below 128 every value has a bucket of its own; above, a bucket is 1/128 of its lowest
        // value wide and the middle is reported, so the bound the header claims is 1/256.
        const auto error = reported > exact ? reported - exact : exact - reported;
        BOOST_TEST(static_cast<double>(error) <= static_cast<double>(exact) / 256.0);
        BOOST_TEST(static_cast<double>(error) <= static_cast<double>(exact) / 100.0);  // the bound
        if (exact < histogram::sub_buckets) BOOST_TEST(reported == exact);
        BOOST_TEST(reported >= values.front());
        BOOST_TEST(reported <= values.back());
      }
    }
    // Percentiles never fall as p rises.
    std::sort(ps.begin(), ps.end());
    for (const double p : ps) {
      const auto reported = h.percentile(p);
      BOOST_TEST(reported >= previous);
      previous = reported;
    }
    // Mean and standard deviation are kept exactly, not from the buckets.
    double sum = 0, squares = 0;
    for (const auto v : values) sum += static_cast<double>(v);
    const double mean = sum / static_cast<double>(values.size());
    for (const auto v : values) squares += (static_cast<double>(v) - mean) * (static_cast<double>(v) - mean);
    BOOST_TEST(h.mean() == mean, boost::test_tools::tolerance(1e-9));
    if (values.size() > 1)
      BOOST_TEST(h.stddev() == std::sqrt(squares / static_cast<double>(values.size())),
                 boost::test_tools::tolerance(1e-6));
  });
}

BOOST_AUTO_TEST_CASE(merged_histograms_report_as_one_that_recorded_everything) {
  // Each loadtest thread keeps its own histogram; the summary merges them.
  wsl::test::for_each_seed(0x415'0002, 100, [](std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    histogram parts[3], whole;
    const std::size_t n = 1 + rng() % 5000;
    for (std::size_t i = 0; i < n; ++i) {
      const auto v = random_latency(rng);
      parts[rng() % 3].record(v);
      whole.record(v);
    }
    histogram merged;
    for (const auto& part : parts) merged.merge(part);
    BOOST_TEST(merged.count() == whole.count());
    BOOST_TEST(merged.min() == whole.min());
    BOOST_TEST(merged.max() == whole.max());
    for (const double p : {0.0, 50.0, 90.0, 99.0, 99.9, 100.0}) BOOST_TEST(merged.percentile(p) == whole.percentile(p));
    BOOST_TEST(merged.mean() == whole.mean(), boost::test_tools::tolerance(1e-9));
  });
}

BOOST_AUTO_TEST_CASE(intervals_handed_over_and_reset_add_up_to_the_whole_run) {
  // loadtest's workers record each interval in one histogram, hand it over and reset it: an
  // interval holds only its own values, and the intervals together hold the run.
  wsl::test::for_each_seed(0x415'0003, 50, [](std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    histogram current, run, whole;
    for (int interval = 0; interval < 4; ++interval) {
      histogram expected;
      const std::size_t n = rng() % 2000;
      for (std::size_t i = 0; i < n; ++i) {
        const auto v = random_latency(rng);
        current.record(v);
        expected.record(v);
        whole.record(v);
      }
      BOOST_TEST(current.count() == expected.count());
      BOOST_TEST(current.min() == expected.min());
      BOOST_TEST(current.max() == expected.max());
      for (const double p : {0.0, 50.0, 99.0, 100.0}) BOOST_TEST(current.percentile(p) == expected.percentile(p));
      BOOST_TEST(current.mean() == expected.mean(), boost::test_tools::tolerance(1e-9));
      run.merge(current);
      current.reset();
      BOOST_TEST(current.count() == 0u);
      BOOST_TEST(current.max() == 0u);
      BOOST_TEST(current.percentile(50) == 0u);
    }
    BOOST_TEST(run.count() == whole.count());
    BOOST_TEST(run.min() == whole.min());
    BOOST_TEST(run.max() == whole.max());
    for (const double p : {50.0, 99.9}) BOOST_TEST(run.percentile(p) == whole.percentile(p));
  });
}

BOOST_AUTO_TEST_CASE(the_largest_value_is_reported_exactly) {
  // p100 is the maximum, not the middle of its bucket: a summary's "max" and its p100 agree.
  histogram h;
  for (const std::uint64_t v : {5000u, 123457u, 123456u}) h.record(v);
  BOOST_TEST(h.percentile(100) == 123457u);
  BOOST_TEST(h.percentile(99.99) == 123457u);
}

BOOST_AUTO_TEST_CASE(an_empty_histogram_reports_zeros) {
  const histogram h;
  BOOST_TEST(h.count() == 0u);
  BOOST_TEST(h.min() == 0u);
  BOOST_TEST(h.max() == 0u);
  BOOST_TEST(h.percentile(50) == 0u);
  BOOST_TEST(h.mean() == 0.0);
  BOOST_TEST(h.stddev() == 0.0);
}

BOOST_AUTO_TEST_CASE(values_beyond_the_tracked_range_stay_ordered) {
  // Above the tracked range (2^53 ns, about 104 days) a value counts in the last bucket; the
  // percentiles stay ordered and within the recorded range rather than wrap to a lower bucket.
  histogram h;
  const std::uint64_t huge[] = {std::uint64_t{1} << 53, (std::uint64_t{1} << 60) + 12345, UINT64_MAX};
  h.record(1000);
  for (const auto v : huge) h.record(v);
  BOOST_TEST(h.percentile(25) >= 1000u - 1000u / 256);
  BOOST_TEST(h.percentile(25) <= 1000u + 1000u / 256);
  BOOST_TEST(h.percentile(50) >= huge[0] - huge[0] / 256);
  BOOST_TEST(h.percentile(50) <= h.percentile(75));
  BOOST_TEST(h.percentile(75) <= h.percentile(100));
  BOOST_TEST(h.percentile(100) == UINT64_MAX);
}
