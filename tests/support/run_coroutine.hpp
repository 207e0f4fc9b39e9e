// Running coroutines and the fake clock in unit tests, deterministically and with a bound.
//
//   auto reading = wsl::test::spawn(ctx, read_whole_message(ws));  // starts it, returns at once
//   peer->inject(bytes);
//   wsl::test::run_until_idle(ctx);                                 // every handler that can run, ran
//   BOOST_TEST(reading.done());
//
// A spawned coroutine may outlive a failed assertion: let it report by value (as read_whole_message
// does), never through a reference to a local of the test.
//
//   wsl::test::advance_clock(ctx, 5s);   // moves wsl::clock; timers due by then have fired
//
// Nothing here sleeps: run_until_idle() runs the handlers that are ready, and advance_clock()
// waits for a timer that is due at once, which the reactor hands out together with every other
// wsl::timer due by then. Real time only bounds the waits, so that a bug cannot hang a test.
#pragma once

#include "wsl/clock.hpp"

#include <asio/awaitable.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <variant>

namespace wsl::test {

// How long (in real time) a wait may take before the test gives up on it.
inline constexpr std::chrono::seconds run_bound{10};

// A coroutine started with spawn(): done() once it returned or threw.
template <typename T>
class task {
  using value_type = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

 public:
  struct state {
    bool done = false;
    std::optional<value_type> value;
    std::exception_ptr error;
  };
  explicit task(std::shared_ptr<state> s) : state_(std::move(s)) {}

  bool done() const noexcept { return state_->done; }
  // The coroutine's result; rethrows what it threw. Only once done().
  value_type& get() {
    if (!state_->done) throw std::logic_error("task::get() before the coroutine finished");
    if (state_->error) std::rethrow_exception(state_->error);
    return *state_->value;
  }

 private:
  std::shared_ptr<state> state_;
};

// With a cancellation slot (a cancellation_signal's slot()), the coroutine is cancelled when the
// signal is emitted, as co_spawn with asio::bind_cancellation_slot does.
template <typename T>
task<T> spawn(asio::io_context& ctx, asio::awaitable<T> coroutine, asio::cancellation_slot slot = {}) {
  auto s = std::make_shared<typename task<T>::state>();
  if constexpr (std::is_void_v<T>) {
    asio::co_spawn(ctx, std::move(coroutine), asio::bind_cancellation_slot(slot, [s](std::exception_ptr e) {
                     s->done = true;
                     s->error = e;
                     s->value.emplace();
                   }));
  } else {
    asio::co_spawn(ctx, std::move(coroutine), asio::bind_cancellation_slot(slot, [s](std::exception_ptr e, T v) {
                     s->done = true;
                     s->error = e;
                     if (!e) s->value.emplace(std::move(v));
                   }));
  }
  return task<T>(std::move(s));
}

// Runs every handler that is ready, including those they make ready, until none is left.
inline void run_until_idle(asio::io_context& ctx) {
  constexpr std::size_t max_handlers = 1'000'000;
  std::size_t ran = 0;
  ctx.restart();
  while (std::size_t n = ctx.poll()) {
    ran += n;
    if (ran > max_handlers) throw std::runtime_error("run_until_idle: the io_context never went idle");
  }
}

// Runs the io_context until done() holds; false when it did not within `bound` of real time or
// when nothing is left that could make it hold.
template <typename Predicate>
bool run_until(asio::io_context& ctx, Predicate done, std::chrono::milliseconds bound = run_bound) {
  const auto deadline = std::chrono::steady_clock::now() + bound;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    if (ctx.stopped()) ctx.restart();
    if (ctx.run_one_for(std::chrono::milliseconds(1)) == 0 && ctx.stopped()) return done();
  }
  return true;
}

// Runs a coroutine to its end and returns its result; throws if it does not end within the bound.
template <typename T>
T run(asio::io_context& ctx, asio::awaitable<T> coroutine) {
  auto t = spawn(ctx, std::move(coroutine));
  if (!run_until(ctx, [&] { return t.done(); })) throw std::runtime_error("run: the coroutine did not finish");
  if constexpr (std::is_void_v<T>)
    t.get();
  else
    return std::move(t.get());
}

// Moves wsl::clock forward by d, then runs until every wsl::timer due by the new time has fired
// and everything that followed from it has run.
inline void advance_clock(asio::io_context& ctx, clock::duration d) {
  test_clock::advance(d);
  // A timer due since the epoch is the earliest of all: the reactor looks at the timers at once
  // and hands out, with it and after it, every other timer already due.
  timer probe(ctx, clock::time_point{});
  auto fired = std::make_shared<bool>(false);
  probe.async_wait([fired](std::error_code) { *fired = true; });
  if (!run_until(ctx, [&] { return *fired; })) throw std::runtime_error("advance_clock: the reactor did not wake");
  run_until_idle(ctx);
}

}  // namespace wsl::test
