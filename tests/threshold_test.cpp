// The parser and the comparison behind `wsl loadtest --threshold METRIC OP VALUE`
// (cli/threshold.cpp). The run itself, its exit status and output are checked by
// tests/integration/client/test_loadtest.py.
#include "threshold.hpp"

#define BOOST_TEST_MODULE threshold
#include <boost/test/unit_test.hpp>

#include <optional>
#include <stdexcept>
#include <string>

using wsl::cli::parse_threshold;
using wsl::cli::threshold;
using wsl::cli::threshold_holds;
using wsl::cli::threshold_unit;
using cmp = threshold::comparison;

namespace {

std::string failure_of(const std::string& text) {
  try {
    parse_threshold(text);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(accepted)";
}

}  // namespace

BOOST_AUTO_TEST_CASE(durations_become_nanoseconds) {
  const auto t = parse_threshold("p99<5ms");
  BOOST_TEST(t.metric == "p99");
  BOOST_TEST(t.text == "p99<5ms");
  BOOST_TEST((t.op == cmp::less));
  BOOST_TEST((t.unit == threshold_unit::duration));
  BOOST_TEST(t.limit == 5e6);
  BOOST_TEST(parse_threshold("p99.9<=250us").limit == 250e3);
  BOOST_TEST(parse_threshold("handshake.max<1.5s").limit == 1.5e9);
  BOOST_TEST(parse_threshold("mean<2").limit == 2e9);  // a plain number is seconds, as in every option
  BOOST_TEST(parse_threshold("max < 1m").limit == 60e9);
}

BOOST_AUTO_TEST_CASE(counts_take_decimal_suffixes) {
  const auto t = parse_threshold("received/s>=50k");
  BOOST_TEST(t.metric == "received/s");
  BOOST_TEST((t.op == cmp::greater_equal));
  BOOST_TEST((t.unit == threshold_unit::count));
  BOOST_TEST(t.limit == 50e3);
  BOOST_TEST(parse_threshold("sent/s>1.5M").limit == 1.5e6);
  BOOST_TEST(parse_threshold("sent>2G").limit == 2e9);
  BOOST_TEST(parse_threshold("lost==0").limit == 0);
  BOOST_TEST((parse_threshold("lost==0").op == cmp::equal));
  BOOST_TEST((parse_threshold("failed>3").op == cmp::greater));
}

BOOST_AUTO_TEST_CASE(blanks_are_ignored_and_dropped_from_the_text) {
  const auto t = parse_threshold(" errors\t <= 2 ");
  BOOST_TEST(t.text == "errors<=2");
  BOOST_TEST(t.metric == "errors");
  BOOST_TEST((t.op == cmp::less_equal));
  BOOST_TEST(t.limit == 2);
}

BOOST_AUTO_TEST_CASE(every_documented_metric_parses) {
  for (const char* m : {"p50", "p90", "p99", "p99.9", "max", "mean", "handshake.p50", "handshake.p90", "handshake.p99",
                        "handshake.max"})
    BOOST_TEST(parse_threshold(std::string(m) + "<1ms").metric == m);
  for (const char* m : {"sent/s", "received/s", "sent", "received", "lost", "opened", "failed", "errors"})
    BOOST_TEST(parse_threshold(std::string(m) + ">=1").metric == m);
}

BOOST_AUTO_TEST_CASE(bad_thresholds_say_what_is_wrong) {
  BOOST_TEST(failure_of("p99") == "'p99' is not METRIC OP VALUE (e.g. p99<5ms, lost==0)");
  BOOST_TEST(failure_of("<5ms") == "'<5ms' is not METRIC OP VALUE (e.g. p99<5ms, lost==0)");
  BOOST_TEST(failure_of("p99<") == "'p99<' has no value to compare with");
  BOOST_TEST(failure_of("p99=5ms") == "'p99=5ms': the comparison is one of < <= > >= ==");
  BOOST_TEST(failure_of("p99=<5ms") == "'p99=<5ms': the comparison is one of < <= > >= ==");
  BOOST_TEST(failure_of("p98<5ms").starts_with("unknown metric 'p98' in 'p98<5ms' (one of p50, "));
  BOOST_TEST(failure_of("P99<5ms").starts_with("unknown metric 'P99'"));
  BOOST_TEST(failure_of("p99<5 parsecs") == "'5parsecs' in 'p99<5 parsecs' is not a duration (e.g. 5ms, 250us, 1.5s)");
  BOOST_TEST(failure_of("p99<-1ms") == "'-1ms' in 'p99<-1ms' is not a duration (e.g. 5ms, 250us, 1.5s)");
  BOOST_TEST(failure_of("lost<=ten") == "'ten' is not a count");
  BOOST_TEST(failure_of("lost<=1x") == "'1x' is not a count (a number with an optional k, M or G suffix)");
  BOOST_TEST(failure_of("lost<=1m") == "'1m' is not a count (a number with an optional k, M or G suffix)");
  BOOST_TEST(failure_of("p99<5ms<6ms") == "'5ms<6ms' in 'p99<5ms<6ms' is not a duration (e.g. 5ms, 250us, 1.5s)");
}

BOOST_AUTO_TEST_CASE(comparisons_hold_exactly_at_their_edges) {
  const auto lt = parse_threshold("p99<5ms"), le = parse_threshold("p99<=5ms"), gt = parse_threshold("sent>10"),
             ge = parse_threshold("sent>=10"), eq = parse_threshold("lost==0");
  BOOST_TEST(threshold_holds(lt, 4999999.0));
  BOOST_TEST(!threshold_holds(lt, 5e6));
  BOOST_TEST(threshold_holds(le, 5e6));
  BOOST_TEST(!threshold_holds(le, 5000001.0));
  BOOST_TEST(!threshold_holds(gt, 10.0));
  BOOST_TEST(threshold_holds(gt, 11.0));
  BOOST_TEST(threshold_holds(ge, 10.0));
  BOOST_TEST(!threshold_holds(ge, 9.0));
  BOOST_TEST(threshold_holds(eq, 0.0));
  BOOST_TEST(!threshold_holds(eq, 1.0));
}

BOOST_AUTO_TEST_CASE(nothing_measured_never_passes) {
  // A run with no round trip must not pass 'p99<5ms', nor 'p99>0' by accident.
  BOOST_TEST(!threshold_holds(parse_threshold("p99<5ms"), std::nullopt));
  BOOST_TEST(!threshold_holds(parse_threshold("p99>=0"), std::nullopt));
  BOOST_TEST(!threshold_holds(parse_threshold("received/s<1G"), std::nullopt));
}
