// What the fuzz targets share: an echo server over a memory pipe, the checks every target makes of
// what the library wrote back, and a failure that a fuzzer and the replay driver both notice.
//
// Each target is a libFuzzer entry point, LLVMFuzzerTestOneInput, built two ways
// (tests/fuzz/CMakeLists.txt): with replay_main.cpp, which runs the checked-in corpus in every
// build (ctest fuzz.*, under ASan and UBSan in the sanitize build), and with libFuzzer itself when
// WSL_FUZZ is on (scripts/fuzz), to look for new inputs.
#pragma once

#include "accept.hpp"
#include "connection_harness.hpp"
#include "wsl/detail/utf8.hpp"
#include "wsl/websocket.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <system_error>

namespace wsl::fuzz {

// An input broke a rule: say which and abort, which both libFuzzer and the replay driver report.
[[noreturn]] inline void fail(const char* what, const std::string& detail = {}) {
  std::fprintf(stderr, "fuzz check failed: %s%s%s\n", what, detail.empty() ? "" : ": ", detail.c_str());
  std::abort();
}

inline void check(bool holds, const char* what, const std::string& detail = {}) {
  if (!holds) fail(what, detail);
}

// The input, consumed from the front: configuration bytes first, then data.
struct input {
  const std::uint8_t* data;
  std::size_t size;

  std::uint8_t byte() {
    if (size == 0) return 0;
    --size;
    return *data++;
  }
  std::string_view take(std::size_t n) {
    n = std::min(n, size);
    std::string_view s(reinterpret_cast<const char*>(data), n);
    data += n;
    size -= n;
    return s;
  }
  std::string_view rest() { return take(size); }
};

// Echoes every message, streamed, until the connection ends; returns how it ended.
inline asio::awaitable<std::error_code> echo(websocket& ws) {
  std::error_code ec;
  for (;;) {
    auto in = co_await ws.read_message(ec);
    if (ec) co_return ec;
    auto out = ws.create_message_writer(in.type());
    while (!in.done()) {
      auto chunk = co_await in.read_chunk(ec);
      if (ec) co_return ec;
      co_await out.write(chunk, ec);
      if (ec) co_return ec;
    }
    co_await out.finish(ec);
    if (ec) co_return ec;
  }
}

// Feeds the peer's bytes in pieces of `piece` bytes (so that headers and payloads are cut at every
// place), running what follows from each, then ends the peer's side.
inline void feed(test::connection_harness& h, std::string_view bytes, std::size_t piece) {
  piece = std::max<std::size_t>(piece, 1);
  for (std::size_t at = 0; at < bytes.size(); at += piece) {
    if (!h.peer->inject(bytes.substr(at, piece))) break;  // the websocket closed its end: the rest is unread
    h.settle();
  }
  h.peer->shutdown_send();
  h.settle();
}

// A memory pipe whose server end a negotiation takes (accept_websocket), the target playing the
// client on the other end.
struct negotiation_harness : test::connection_harness {
  negotiation_harness() : connection_harness(pipe_only{}) {}
  std::unique_ptr<transport> take_stream() { return std::move(stream_); }
};

// RFC 6455 section 7.4: the codes an endpoint may send.
inline bool sendable_close_code(std::uint16_t code) {
  if (code >= 3000 && code <= 4999) return true;
  return code >= 1000 && code <= 1014 && code != 1004 && code != 1005 && code != 1006;
}

inline bool valid_utf8(std::string_view s) {
  detail::utf8_validator v;
  return v.feed(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()) && v.complete();
}

// What the websocket wrote: whole frames, masked by a client and not by a server, control frames
// short and final, text valid UTF-8, at most one close frame, last, with a code it may send and a
// UTF-8 reason. `rsv1_allowed` when permessage-deflate was negotiated. Returns the close code sent
// (0 when none was).
inline std::uint16_t check_output(std::string_view wire, role r, bool rsv1_allowed) {
  std::size_t consumed = 0;
  const auto frames = test::parse_frames(wire, &consumed);
  check(consumed == wire.size(), "the output ends inside a frame");
  std::uint16_t close_code = 0;
  bool closed = false;
  bool in_message = false;
  bool compressed = false;
  std::string text;
  bool is_text = false;
  for (const auto& f : frames) {
    check(!closed, "a frame after the close frame");
    check(f.masked == (r == role::client),
          r == role::client ? "a client frame is not masked" : "a server frame is masked");
    check((f.rsv & ~(rsv1_allowed ? 0x40 : 0)) == 0, "reserved bits set", std::to_string(f.rsv));
    if (f.opcode >= 8) {
      check(f.fin && f.payload.size() <= 125 && f.rsv == 0, "a control frame fragmented, long or with RSV bits");
      check(f.opcode <= 10, "an unknown control opcode", std::to_string(f.opcode));
      if (f.is_close()) {
        closed = true;
        check(f.payload.size() != 1, "a close frame with a one-byte payload");
        if (f.payload.size() >= 2) {
          close_code = f.close_code();
          check(sendable_close_code(close_code), "a close code that may not be sent", std::to_string(close_code));
          check(valid_utf8(f.close_reason()), "a close reason that is not UTF-8");
        } else {
          close_code = 1005;
        }
      }
      continue;
    }
    check(f.opcode <= 2, "an unknown data opcode", std::to_string(f.opcode));
    if (f.opcode == 0) {
      check(in_message, "a continuation frame outside a message");
      check(f.rsv == 0, "RSV1 on a continuation frame");
    } else {
      check(!in_message, "a new message inside another");
      in_message = true;
      compressed = (f.rsv & 0x40) != 0;
      is_text = f.opcode == 1;
      text.clear();
    }
    if (is_text && !compressed) text += f.payload;
    if (f.fin) {
      in_message = false;
      if (is_text && !compressed) check(valid_utf8(text), "a text message that is not UTF-8");
    }
  }
  return close_code;
}

}  // namespace wsl::fuzz
