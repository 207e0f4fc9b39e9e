// wsl echo: a standards-exact, fast echo server. Every message goes back with its type, streamed:
// a message of any size passes through a few buffers, never held whole.
#include "echo.hpp"

#include "frame_trace.hpp"
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

// -vv: a whole message received ('<') or sent ('>'), "[7] < text message, 5 bytes".
void trace_echo(char direction, const message_reader& in, const session_context& session) {
  trace_message(direction, in.type(), in.bytes_read(), session_prefix(session));
}

// Kept small: its coroutine frame is what every idle connection holds. Traced (-vv), it gives two
// lines per message once the message has passed whole. Untraced, as `wsl echo` runs unless -vv, it
// is the same code with the trace left out, not one check per message: echo() chooses once per
// connection.
template <bool Traced>
asio::awaitable<void> echo_loop(websocket& ws, session_context& session) {
  std::error_code ec;
  while (!ec) {
    auto in = co_await ws.read_message(ec);
    if (ec) break;
    const auto chunk = co_await in.read_chunk(ec);
    if (ec) break;
    if (in.done()) {  // the common case: the whole message arrived at once
      if constexpr (Traced) trace_echo('<', in, session);
      co_await ws.write_message(in.type(), chunk, ec);
    } else {
      co_await relay(ws, in, chunk, ec);
      if constexpr (Traced)
        if (in.done()) trace_echo('<', in, session);
    }
    if constexpr (Traced)
      if (!ec) trace_echo('>', in, session);  // what came in went out
  }
  if constexpr (Traced) trace_failure_close(ws, ec, session_prefix(session));
}

// Not a coroutine: it hands over the loop that fits, which then runs as if called directly.
asio::awaitable<void> echo(websocket& ws, session_context& session) {
  return tracing_frames() ? echo_loop<true>(ws, session) : echo_loop<false>(ws, session);
}

}  // namespace

subcommand register_echo(CLI::App& parent) {
  auto options = std::make_shared<server_options>();
  auto* app = parent.add_subcommand("echo", "Echo every message back, with its type");
  app->footer(
      "Prints 'listening on ws://HOST:PORT/' on stderr when ready. SIGINT closes every connection "
      "with 1001 and exits 130. -v logs one access line per connection; -vv also each request's head and "
      "its answer, and every message and close frame, after the connection's [ID]. See wsl-serve(1) for the "
      "HTTP options (--origin, --header, --subprotocol, --static, --devconsole).");
  add_server_options(*app, *options);
  // The echo never looks at request headers after the negotiation: not keeping them saves memory
  // per connection.
  options->listener.keep_request_headers = false;
  return {app, [options] { return run_server("echo", *options, echo); }};
}

}  // namespace wsl::cli
