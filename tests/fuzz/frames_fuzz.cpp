// Fuzz target: the frame reader and the message streams of an open connection (RFC 6455 sections 5
// to 8), behind an echo, in the server role or (configuration bit 32) the client role. The input
// is the peer's bytes after the handshake, cut into pieces of a size the input chooses; its first
// bytes choose the role and the limits. Whatever arrives, the
// connection must end (no hang once the client's side is closed), and what the server wrote must
// be well-formed (fuzz_support.hpp); a message the client sent whole and valid is echoed intact
// is left to the property tests, which know what they sent.
#include "fuzz_support.hpp"

#include <array>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace wsl;
  fuzz::input in{data, size};
  const auto config = in.byte();
  const auto piece = static_cast<std::size_t>(in.byte()) + 1;

  auto options = test::quiet_options();
  static constexpr std::array<std::uint64_t, 4> message_limits{0, 1, 200, 70000};
  options.max_message_size = message_limits[config & 3];
  // A small read buffer makes long frames arrive in many reads; a small write buffer makes the
  // echo fragment what it writes.
  if (config & 4) options.read_buffer_size = 256;
  if (config & 8) options.write_buffer_size = 16;
  options.max_control_queue = (config & 16) ? 1 : 4096;

  const auto r = config & 32 ? role::client : role::server;
  test::connection_harness h(options, r);
  auto echoing = h.spawn(fuzz::echo(h.ws));
  fuzz::feed(h, in.rest(), piece);
  fuzz::check(echoing.done(), "the connection did not end after the peer's side closed");
  const auto ended = echoing.get();
  fuzz::check(static_cast<bool>(ended), "the read loop ended without an error");
  fuzz::check_output(h.peer->take(), r, false);
  return 0;
}
