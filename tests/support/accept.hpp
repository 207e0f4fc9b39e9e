// wsl::accept_websocket() as a coroutine a test can spawn and hold the outcome of.
//
//   auto accepting = wsl::test::spawn(ctx, wsl::test::accept_on(std::move(stream), options));
//   ...  // the test plays the client on the other end of the pipe
//   BOOST_TEST(!accepting.get().ec);
#pragma once

#include "wsl/listener.hpp"
#include "wsl/transport.hpp"
#include "wsl/websocket.hpp"

#include <asio/awaitable.hpp>

#include <memory>
#include <system_error>
#include <utility>

namespace wsl::test {

struct accept_result {
  std::error_code ec;
  websocket ws;
};

inline asio::awaitable<accept_result> accept_on(std::unique_ptr<transport> stream, listener_options options) {
  accept_result r;
  r.ws = co_await accept_websocket(std::move(stream), options, r.ec);
  co_return r;
}

}  // namespace wsl::test
