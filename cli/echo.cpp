// wsl echo: a standards-exact, fast echo server. Every message goes back with its type, streamed:
// a message of any size passes through a few buffers, never held whole.
#include "echo.hpp"

#include "server.hpp"

namespace wsl::cli {
namespace {

// A message that did not arrive whole: relayed as it comes, fragment by fragment.
asio::awaitable<void> relay(websocket& ws, message_reader& in, asio::const_buffer chunk, std::error_code& ec) {
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
  if (!ec) co_await out.finish(ec);
}

// Kept small: its coroutine frame is what every idle connection holds.
asio::awaitable<void> echo(websocket& ws, session_context&) {
  std::error_code ec;
  while (!ec) {
    auto in = co_await ws.read_message(ec);
    if (ec) break;
    const auto chunk = co_await in.read_chunk(ec);
    if (ec) break;
    if (in.done())  // the common case: the whole message arrived at once
      co_await ws.write_message(in.type(), chunk, ec);
    else
      co_await relay(ws, in, chunk, ec);
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
  // The echo never looks at request headers after the negotiation: not keeping them saves memory
  // per connection.
  options->listener.keep_request_headers = false;
  return {app, [options] { return run_server("echo", *options, echo); }};
}

}  // namespace wsl::cli
