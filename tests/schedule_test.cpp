// When the messages of an open-loop `wsl loadtest` are due (cli/schedule.cpp): the -r rate, then
// the --stage ramps. The run itself is checked by tests/integration/client/test_loadtest.py.
#include "schedule.hpp"

#define BOOST_TEST_MODULE schedule
#include <boost/test/unit_test.hpp>

#include "property.hpp"

#include <chrono>
#include <cmath>
#include <random>
#include <stdexcept>
#include <string>

using namespace std::chrono_literals;
using wsl::clock;
using wsl::cli::parse_rate_stage;
using wsl::cli::rate_stage;
using wsl::cli::send_schedule;

namespace {

const clock::time_point t0 = clock::time_point(1000s);

double seconds(clock::duration d) { return std::chrono::duration<double>(d).count(); }

std::string failure_of(const std::string& text) {
  try {
    parse_rate_stage(text);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(accepted)";
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_constant_rate_spaces_messages_evenly_from_the_start) {
  const send_schedule plan(t0, 200, {});
  for (const double k : {0.0, 1.0, 2.0, 199.0, 1e6})
    BOOST_TEST(seconds(plan.due(k) - t0) == k / 200, boost::test_tools::tolerance(1e-9));
  BOOST_TEST(plan.count_before(t0) == 0.0);
  BOOST_TEST(plan.count_before(t0 - 5s) == 0.0);
  BOOST_TEST(plan.count_before(t0 + 3s) == 600.0, boost::test_tools::tolerance(1e-12));
}

BOOST_AUTO_TEST_CASE(the_stages_wait_for_the_measurement) {
  send_schedule plan(t0, 100, {{10s, 1100}});
  // Not started: the start rate holds, for ever.
  BOOST_TEST(seconds(plan.due(5000) - t0) == 50.0, boost::test_tools::tolerance(1e-9));
  plan.start_stages(t0 + 2s);
  // 200 messages in the first 2 s, then a ramp from 100 to 1100/s: 6000 more in 10 s.
  BOOST_TEST(plan.count_before(t0 + 2s) == 200.0, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(plan.count_before(t0 + 12s) == 6200.0, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(seconds(plan.due(199) - t0) == 1.99, boost::test_tools::tolerance(1e-9));
  BOOST_TEST(seconds(plan.due(6200) - t0) == 12.0, boost::test_tools::tolerance(1e-9));
  // After the last stage its target holds: 1100/s.
  BOOST_TEST(seconds(plan.due(6200 + 1100) - t0) == 13.0, boost::test_tools::tolerance(1e-9));
  BOOST_TEST(seconds(plan.due(6201) - plan.due(6200)) == 1.0 / 1100, boost::test_tools::tolerance(1e-5));
  // Halfway through the ramp the rate is 600/s: messages 1/600 s apart.
  const double k = plan.count_before(t0 + 7s);
  BOOST_TEST(seconds(plan.due(k + 1) - plan.due(k)) == 1.0 / 600, boost::test_tools::tolerance(1e-3));
}

BOOST_AUTO_TEST_CASE(from_zero_nothing_is_due_until_the_stages_start) {
  send_schedule plan(t0, 0, {{4s, 400}});
  BOOST_TEST((plan.due(0) == clock::time_point::max()));
  BOOST_TEST(plan.count_before(t0 + 1h) == 0.0);
  plan.start_stages(t0 + 1s);
  BOOST_TEST((plan.due(0) == t0 + 1s));
  // From 0 to 400/s in 4 s: n(x) = 50 x^2, so message 50 is due 1 s in, message 800 at the end.
  BOOST_TEST(seconds(plan.due(50) - t0) == 2.0, boost::test_tools::tolerance(1e-9));
  BOOST_TEST(seconds(plan.due(800) - t0) == 5.0, boost::test_tools::tolerance(1e-9));
}

BOOST_AUTO_TEST_CASE(a_rate_of_zero_sends_nothing_until_a_stage_raises_it) {
  send_schedule plan(t0, 400, {{1s, 0}, {2s, 0}, {1s, 200}});
  plan.start_stages(t0);
  // 200 messages while ramping down, none for 2 s, then 100 while ramping to 200/s.
  BOOST_TEST(plan.count_before(t0 + 1s) == 200.0, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(plan.count_before(t0 + 3s) == 200.0, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(seconds(plan.due(199.999) - t0) < 1.0);
  BOOST_TEST(seconds(plan.due(200.001) - t0) > 3.0);
  BOOST_TEST(seconds(plan.due(300) - t0) == 4.0, boost::test_tools::tolerance(1e-9));
  send_schedule to_zero(t0, 400, {{1s, 0}});
  to_zero.start_stages(t0);
  BOOST_TEST((to_zero.due(200.5) == clock::time_point::max()));
}

BOOST_AUTO_TEST_CASE(due_and_count_before_are_inverse) {
  wsl::test::for_each_seed(0x5c4e'0001, 200, [](std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<rate_stage> stages;
    const std::size_t n = rng() % 5;
    for (std::size_t i = 0; i < n; ++i)
      stages.push_back({std::chrono::milliseconds(1 + rng() % 5000), static_cast<double>(rng() % 50'000)});
    send_schedule plan(t0, static_cast<double>(rng() % 20'000), stages);
    plan.start_stages(t0 + std::chrono::milliseconds(rng() % 3000));
    clock::time_point last = t0;
    for (double k = 0; k < 20'000; k += 1 + static_cast<double>(rng() % 97)) {
      const auto at = plan.due(k);
      if (at == clock::time_point::max()) break;  // the rate fell to 0 for good
      // Times are whole nanoseconds: at most 50,000 msgs/s, a message is off by 5e-5 at most.
      BOOST_TEST(std::abs(plan.count_before(at) - k) < 1e-4);
      BOOST_TEST((at >= last));  // never earlier than an earlier message
      last = at;
    }
  });
}

BOOST_AUTO_TEST_CASE(stages_parse_as_duration_colon_rate) {
  const auto stage = parse_rate_stage("30s:20k");
  BOOST_TEST((stage.length == 30s));
  BOOST_TEST(stage.target == 20'000.0);
  BOOST_TEST((parse_rate_stage("1.5:0").length == 1500ms));
  BOOST_TEST(parse_rate_stage("250ms:1.5M").target == 1.5e6);
  BOOST_TEST(failure_of("30s") == "'30s' is not DURATION:RATE (e.g. 30s:10k)");
  BOOST_TEST(failure_of("0s:100") == "'0s:100': a stage lasts more than 0");
  BOOST_TEST(failure_of("soon:100") == "'soon' is not a duration");
  BOOST_TEST(failure_of("10s:-5") == "'-5' is not a count");
  BOOST_TEST(failure_of("10s:lots") == "'lots' is not a count");
}
