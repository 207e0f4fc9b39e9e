// Fuzz target: permessage-deflate (RFC 7692) on the receiving side, where a server inflates what
// any client sends, behind an echo that compresses it back. The connection is negotiated with an
// offer the input's first byte chooses (window sizes, context takeover, a small message limit for
// decompression bombs); the rest is a sequence of frames whose header the input controls and
// whose payload is arbitrary: [flags][length][payload], flags = FIN (0x80), RSV1 (0x40), and the
// opcode (low three bits: continuation, text, binary, ping, pong, close, continuation, binary). Whatever comes, the
// connection must end once the client's side is closed, and what the server wrote must be well-formed.
#include "fuzz_support.hpp"
#include "wsl/deflate.hpp"
#include "wsl/listener.hpp"

#include <memory>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace wsl;
  fuzz::input in{data, size};
  const auto config = in.byte();
  const auto piece = static_cast<std::size_t>(in.byte()) + 1;

  deflate_options deflate;
  deflate.threshold = config & 1 ? 0 : 64;
  deflate.max_window_bits = config & 2 ? 9 : 15;
  deflate.no_context_takeover = (config & 4) != 0;
  deflate.level = config & 8 ? 1 : 6;
  listener_options options;
  options.connection = test::quiet_options();
  options.connection.max_message_size = config & 16 ? 1000 : 1 << 20;
  options.connection.extensions = {std::make_shared<deflate_factory>(deflate)};

  std::string offer = "permessage-deflate";
  if (config & 32) offer += "; client_max_window_bits=9";
  if (config & 64) offer += "; client_no_context_takeover";
  if (config & 128) offer += "; server_max_window_bits=10";
  const std::string request =
      "GET / HTTP/1.1\r\nHost: fuzz\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
      "Sec-WebSocket-Extensions: " +
      offer + "\r\n\r\n";

  fuzz::negotiation_harness h;
  auto accepting = h.spawn(test::accept_on(h.take_stream(), options));
  h.send(request);
  fuzz::check(accepting.done() && !accepting.get().ec, "the fixed upgrade request was refused");
  const auto answer = h.peer->take();
  fuzz::check(answer.find("permessage-deflate") != std::string::npos, "permessage-deflate was declined", answer);
  websocket ws = std::move(accepting.get().ws);

  static constexpr std::uint8_t opcodes[] = {test::op::continuation, test::op::text,  test::op::binary,
                                             test::op::ping,         test::op::pong,  test::op::close,
                                             test::op::continuation, test::op::binary};
  std::string frames;
  while (in.size > 0) {
    const auto flags = in.byte();
    const auto payload = in.take(in.byte());
    frames +=
        test::client_frame(opcodes[flags & 7], payload, (flags & 0x80) != 0, static_cast<std::uint8_t>(flags & 0x40));
  }

  auto echoing = h.spawn(fuzz::echo(ws));
  fuzz::feed(h, frames, piece);
  fuzz::check(echoing.done(), "the connection did not end after the client's side closed");
  fuzz::check(static_cast<bool>(echoing.get()), "the read loop ended without an error");
  fuzz::check_output(h.peer->take(), role::server, true);
  ws.abort();
  h.settle();
  return 0;
}
