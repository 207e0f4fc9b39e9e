// A time limit on an operation: when it runs out, an action (closing a socket, say) is taken.
// The action never runs after the deadline object is gone, even if the timer had already fired.
#pragma once

#include "wsl/clock.hpp"

#include <asio/any_io_executor.hpp>

#include <functional>
#include <memory>

namespace wsl::detail {

class deadline {
 public:
  deadline(asio::any_io_executor ex, clock::duration d, std::function<void()> on_expiry)
      : timer_(ex), state_(std::make_shared<state>()) {
    state_->action = std::move(on_expiry);
    arm(d);
  }
  ~deadline() {
    state_->done = true;
    state_->action = nullptr;
    try {
      timer_.cancel();
    } catch (...) {
    }
  }
  deadline(const deadline&) = delete;
  deadline& operator=(const deadline&) = delete;

  // Restarts the clock with a new duration.
  void arm(clock::duration d) {
    timer_.expires_after(d);
    timer_.async_wait([s = state_](std::error_code ec) {
      if (ec || s->done) return;
      s->expired = true;
      if (s->action) s->action();
    });
  }
  // Takes the action now, as if the time had run out (the listener stops, say).
  void expire_now() {
    if (state_->done || state_->expired) return;
    state_->expired = true;
    try {
      timer_.cancel();
    } catch (...) {
    }
    if (state_->action) state_->action();
  }
  // Replaces what happens on expiry.
  void on_expiry(std::function<void()> action) { state_->action = std::move(action); }
  bool expired() const noexcept { return state_->expired; }

 private:
  struct state {
    std::function<void()> action;
    bool done = false;
    bool expired = false;
  };
  timer timer_;
  std::shared_ptr<state> state_;
};

}  // namespace wsl::detail
