// The seeds of a property test: each iteration of a case gets a seed of its own (base, base + 1,
// ...), and a failure names it, so that it can be replayed alone.
//
//   BOOST_AUTO_TEST_CASE(x) {
//     wsl::test::for_each_seed(0x5eed'0001, 400, [](std::uint64_t seed) {
//       std::mt19937_64 rng(seed);
//       ...  // BOOST_TEST and BOOST_REQUIRE as anywhere
//     });
//   }
//
// WSL_PROPERTY_SEED=<seed> runs only that seed; WSL_PROPERTY_SCALE=<k> runs k times as many seeds
// (a longer hunt, by hand: the seeds of a normal run stay the same).
#pragma once

#include <boost/test/execution_monitor.hpp>
#include <boost/test/results_collector.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <vector>

namespace wsl::test {

inline std::vector<std::uint64_t> property_seeds(std::uint64_t base, std::size_t count) {
  if (const char* only = std::getenv("WSL_PROPERTY_SEED"); only && *only) return {std::strtoull(only, nullptr, 0)};
  if (const char* scale = std::getenv("WSL_PROPERTY_SCALE"); scale && *scale)
    count *= std::max<std::size_t>(std::strtoull(scale, nullptr, 0), 1);
  std::vector<std::uint64_t> seeds;
  for (std::size_t i = 0; i < count; ++i) seeds.push_back(base + i);
  return seeds;
}

inline std::size_t failed_assertions() {
  using namespace boost::unit_test;
  return results_collector.results(framework::current_test_case().p_id).p_assertions_failed;
}

// Runs a case's iterations, each in the context of its seed. A fatal assertion ends only its own
// iteration (BOOST_REQUIRE throws execution_aborted once it has recorded the failure), and so does
// an exception, so that every failing seed is named; after a few of them the case stops, its point
// made.
template <typename Iteration>
void for_each_seed(std::uint64_t base, std::size_t count, Iteration iteration) {
  const auto seeds = property_seeds(base, count);
  std::size_t failing = 0;
  for (std::size_t i = 0; i < seeds.size() && failing < 5; ++i) {
    const auto before = failed_assertions();
    BOOST_TEST_CONTEXT("seed " << seeds[i] << " (iteration " << i << "; replay with WSL_PROPERTY_SEED=" << seeds[i]
                               << ")") {
      try {
        iteration(seeds[i]);
      } catch (const boost::execution_aborted&) {
      } catch (const std::exception& e) {
        BOOST_ERROR("exception: " << e.what());
      }
    }
    if (failed_assertions() != before) ++failing;
  }
}

}  // namespace wsl::test
