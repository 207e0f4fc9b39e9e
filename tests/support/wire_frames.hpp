// WebSocket frames as bytes on the wire, built and parsed here independently of the library's
// codec, so that a bug in the codec cannot cancel itself out in a test.
//
//   peer->inject(client_frame(op::text, "hello"));                  // masked, as a client sends
//   peer->inject(client_frame(op::close, close_payload(1000, "bye")));
//   for (const wire_frame& f : parse_frames(peer->take())) ...       // what the library sent
#pragma once

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace wsl::test {

namespace op {
constexpr std::uint8_t continuation = 0x0;
constexpr std::uint8_t text = 0x1;
constexpr std::uint8_t binary = 0x2;
constexpr std::uint8_t close = 0x8;
constexpr std::uint8_t ping = 0x9;
constexpr std::uint8_t pong = 0xA;
}  // namespace op

constexpr std::uint8_t rsv1 = 0x40, rsv2 = 0x20, rsv3 = 0x10;

using mask_key = std::array<std::uint8_t, 4>;
inline constexpr mask_key default_mask = {0x37, 0xfa, 0x21, 0x3d};

// A frame with the shortest length encoding; masked when mask is given.
inline std::string encode_frame(std::uint8_t opcode, std::string_view payload, bool fin, std::uint8_t rsv,
                                const mask_key* mask) {
  std::string out;
  out += static_cast<char>((fin ? 0x80 : 0) | rsv | opcode);
  const std::uint8_t mask_bit = mask ? 0x80 : 0;
  const std::uint64_t n = payload.size();
  if (n < 126) {
    out += static_cast<char>(mask_bit | n);
  } else if (n < 65536) {
    out += static_cast<char>(mask_bit | 126);
    out += static_cast<char>(n >> 8);
    out += static_cast<char>(n & 0xff);
  } else {
    out += static_cast<char>(mask_bit | 127);
    for (int shift = 56; shift >= 0; shift -= 8) out += static_cast<char>((n >> shift) & 0xff);
  }
  if (mask) {
    for (auto b : *mask) out += static_cast<char>(b);
    for (std::size_t i = 0; i < payload.size(); ++i) out += static_cast<char>(payload[i] ^ (*mask)[i % 4]);
  } else {
    out.append(payload);
  }
  return out;
}

// A frame as a client sends it: masked.
inline std::string client_frame(std::uint8_t opcode, std::string_view payload, bool fin = true, std::uint8_t rsv = 0,
                                const mask_key& mask = default_mask) {
  return encode_frame(opcode, payload, fin, rsv, &mask);
}

// A frame without a mask: what a server sends, or a broken client.
inline std::string unmasked_frame(std::uint8_t opcode, std::string_view payload, bool fin = true,
                                  std::uint8_t rsv = 0) {
  return encode_frame(opcode, payload, fin, rsv, nullptr);
}

// The size of a frame's header for a payload of n bytes.
constexpr std::size_t frame_header_size(std::uint64_t n, bool masked) {
  return (n < 126 ? 2 : n < 65536 ? 4 : 10) + (masked ? 4 : 0);
}

inline std::string close_payload(std::uint16_t code, std::string_view reason = {}) {
  std::string out;
  out += static_cast<char>(code >> 8);
  out += static_cast<char>(code & 0xff);
  out.append(reason);
  return out;
}

struct wire_frame {
  bool fin = false;
  std::uint8_t rsv = 0;
  std::uint8_t opcode = 0;
  bool masked = false;
  mask_key mask{};
  std::string payload;  // unmasked

  bool is_close() const noexcept { return opcode == op::close; }
  // The code of a close frame; 0 when it has none.
  std::uint16_t close_code() const {
    if (payload.size() < 2) return 0;
    return static_cast<std::uint16_t>((static_cast<std::uint8_t>(payload[0]) << 8) |
                                      static_cast<std::uint8_t>(payload[1]));
  }
  std::string_view close_reason() const {
    return payload.size() < 2 ? std::string_view() : std::string_view(payload).substr(2);
  }
};

// Parses the frames at the front of bytes. Where a frame is cut short, stops there and reports
// how far it got in *consumed; without consumed, a cut frame throws.
inline std::vector<wire_frame> parse_frames(std::string_view bytes, std::size_t* consumed = nullptr) {
  std::vector<wire_frame> frames;
  std::size_t pos = 0;
  auto byte = [&](std::size_t i) { return static_cast<std::uint8_t>(bytes[i]); };
  while (pos < bytes.size()) {
    if (bytes.size() - pos < 2) break;
    wire_frame f;
    f.fin = (byte(pos) & 0x80) != 0;
    f.rsv = byte(pos) & 0x70;
    f.opcode = byte(pos) & 0x0f;
    f.masked = (byte(pos + 1) & 0x80) != 0;
    std::uint64_t n = byte(pos + 1) & 0x7f;
    std::size_t at = pos + 2;
    const std::size_t extra = n == 126 ? 2 : n == 127 ? 8 : 0;
    if (bytes.size() - at < extra) break;
    if (extra != 0) {
      n = 0;
      for (std::size_t i = 0; i < extra; ++i) n = (n << 8) | byte(at + i);
      at += extra;
    }
    if (f.masked) {
      if (bytes.size() - at < 4) break;
      for (std::size_t i = 0; i < 4; ++i) f.mask[i] = byte(at + i);
      at += 4;
    }
    if (bytes.size() - at < n) break;
    f.payload.assign(bytes.substr(at, n));
    if (f.masked)
      for (std::size_t i = 0; i < f.payload.size(); ++i) f.payload[i] = static_cast<char>(f.payload[i] ^ f.mask[i % 4]);
    pos = at + n;
    frames.push_back(std::move(f));
  }
  if (consumed)
    *consumed = pos;
  else if (pos != bytes.size())
    throw std::runtime_error("parse_frames: the bytes end inside a frame");
  return frames;
}

}  // namespace wsl::test
