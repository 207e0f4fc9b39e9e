// wsl echo: a standards-exact, fast echo server. Every message goes back with its type, streamed:
// a message of any size passes through a few buffers, never held whole.
#include "echo.hpp"

#include "server.hpp"

namespace wsl::cli {
namespace {

asio::awaitable<void> echo(websocket& ws, session_context&) {
  std::error_code ec;
  for (;;) {
    auto in = co_await ws.read_message(ec);
    if (ec) break;
    auto chunk = co_await in.read_chunk(ec);
    if (ec) break;
    if (in.done()) {  // the common case: the whole message arrived at once
      co_await ws.write_message(in.type(), chunk, ec);
      if (ec) break;
      continue;
    }
    auto out = ws.create_message_writer(in.type());
    for (;;) {
      co_await out.write(chunk, ec);
      if (ec || in.done()) break;
      // Nothing more has arrived: pass on what we hold rather than make the peer wait for it.
      if (in.buffered() == 0) co_await out.flush(ec);
      if (ec) break;
      chunk = co_await in.read_chunk(ec);
      if (ec) break;
    }
    if (ec) break;
    co_await out.finish(ec);
    if (ec) break;
  }
}

}  // namespace

subcommand register_echo(CLI::App& parent) {
  auto options = std::make_shared<server_options>();
  auto* app = parent.add_subcommand("echo", "Echo every message back, with its type");
  app->footer(
      "Prints 'listening on ws://HOST:PORT/' on stderr when ready. SIGINT closes every connection "
      "with 1001 and exits 130. -v logs one access line per connection. See wsl-serve(1) for the HTTP "
      "options (--origin, --header, --subprotocol, --static).");
  add_server_options(*app, *options);
  return {app, [options] { return run_server("echo", *options, echo); }};
}

}  // namespace wsl::cli
