// The library's clock: std::chrono::steady_clock plus an offset that only tests move.
//
// Every timer and timestamp in wsl (idle timeout, ping interval, close timeout, handshake timeout,
// round-trip times) reads this clock, so a test can jump time forward with wsl::test_clock::advance()
// and watch timeouts fire without sleeping.
#pragma once

#include <asio/basic_waitable_timer.hpp>
#include <asio/wait_traits.hpp>

#include <atomic>
#include <chrono>
#include <ctime>

namespace wsl {

struct clock {
  using duration = std::chrono::steady_clock::duration;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<clock, duration>;
  static constexpr bool is_steady = true;

  static time_point now() noexcept {
    return time_point(std::chrono::steady_clock::now().time_since_epoch() +
                      duration(offset_.load(std::memory_order_relaxed)));
  }
  // The same clock at the kernel tick's resolution (a few ms), at a fraction of the cost: for
  // activity stamps taken per read, never for round-trip times.
  static time_point coarse_now() noexcept {
    timespec ts;
    ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return time_point(
        std::chrono::duration_cast<duration>(std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)) +
        duration(offset_.load(std::memory_order_relaxed)));
  }

 private:
  friend struct test_clock;
  friend struct clock_wait_traits;
  static inline std::atomic<rep> offset_{0};
  static inline std::atomic<bool> testing_{false};
};

// Tells the reactor how long to sleep for a timer. In test mode the sleep is capped at a
// millisecond, so that a jump of the clock is noticed at once by a reactor that is already waiting.
struct clock_wait_traits {
  static clock::duration to_wait_duration(const clock::duration& d) {
    if (clock::testing_.load(std::memory_order_relaxed) && d > std::chrono::milliseconds(1))
      return std::chrono::milliseconds(1);
    return d;
  }
  static clock::duration to_wait_duration(const clock::time_point& t) { return to_wait_duration(t - clock::now()); }
};

using timer = asio::basic_waitable_timer<clock, clock_wait_traits>;

// For tests only: moves wsl::clock forward. Not for production code.
struct test_clock {
  static void enable() noexcept { clock::testing_.store(true); }
  static void advance(clock::duration d) noexcept {
    enable();
    clock::offset_.fetch_add(d.count());
  }
};

}  // namespace wsl
