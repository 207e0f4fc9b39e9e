// RFC 6455 section 5.2 frame headers and masking. Hot path: no allocation, no virtual calls.
#pragma once

#include "wsl/error.hpp"

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace wsl::detail {

enum class opcode : std::uint8_t {
  continuation = 0x0,
  text = 0x1,
  binary = 0x2,
  close = 0x8,
  ping = 0x9,
  pong = 0xA,
};

constexpr bool is_control(opcode op) noexcept { return (static_cast<std::uint8_t>(op) & 0x8) != 0; }
constexpr bool is_known(std::uint8_t op) noexcept { return op <= 2 || (op >= 8 && op <= 10); }

constexpr std::size_t max_header_size = 14;
constexpr std::size_t max_control_payload = 125;

struct frame_header {
  std::uint64_t length = 0;
  std::uint8_t mask[4] = {};
  opcode op = opcode::continuation;
  std::uint8_t rsv = 0;  // RSV1..3 as bits 0x40, 0x20, 0x10
  bool fin = false;
  bool masked = false;
};

// Parses one frame header from p[0..n). Returns the header size when complete, 0 when more
// bytes are needed, and sets ec (returning 0) on a violation that needs no connection state:
// unknown opcode, fragmented or oversized control frame, a length with its top bit set or not in
// its shortest form. RSV bits, masking direction and continuation rules are the caller's.
inline std::size_t parse_frame_header(const std::uint8_t* p, std::size_t n, frame_header& h,
                                      std::error_code& ec) noexcept {
  if (n < 2) return 0;
  const std::uint8_t b0 = p[0], b1 = p[1];
  h.fin = (b0 & 0x80) != 0;
  h.rsv = b0 & 0x70;
  const std::uint8_t op = b0 & 0x0f;
  h.op = static_cast<opcode>(op);
  h.masked = (b1 & 0x80) != 0;
  std::uint64_t len = b1 & 0x7f;
  std::size_t size = 2;
  if (!is_known(op)) {
    ec = error::bad_opcode;
    return 0;
  }
  if (len == 126) {
    if (n < 4) return 0;
    len = (std::uint64_t{p[2]} << 8) | p[3];
    if (len < 126) {
      ec = error::bad_length;
      return 0;
    }
    size = 4;
  } else if (len == 127) {
    if (n < 10) return 0;
    std::uint64_t v;
    std::memcpy(&v, p + 2, 8);
    if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap64(v);
    if ((v >> 63) != 0 || v <= 0xffff) {
      ec = error::bad_length;
      return 0;
    }
    len = v;
    size = 10;
  }
  if (is_control(h.op)) {
    if (!h.fin) {
      ec = error::fragmented_control;
      return 0;
    }
    if (len > max_control_payload) {
      ec = error::control_too_large;
      return 0;
    }
  }
  if (h.masked) {
    if (n < size + 4) return 0;
    std::memcpy(h.mask, p + size, 4);
    size += 4;
  }
  h.length = len;
  return size;
}

// Writes a header into out (at least max_header_size bytes); returns its size.
inline std::size_t write_frame_header(std::uint8_t* out, opcode op, bool fin, std::uint64_t length,
                                      const std::uint8_t* mask = nullptr, std::uint8_t rsv = 0) noexcept {
  out[0] = static_cast<std::uint8_t>((fin ? 0x80 : 0) | rsv | static_cast<std::uint8_t>(op));
  const std::uint8_t mask_bit = mask ? 0x80 : 0;
  std::size_t size;
  if (length < 126) {
    out[1] = static_cast<std::uint8_t>(mask_bit | length);
    size = 2;
  } else if (length <= 0xffff) {
    out[1] = mask_bit | 126;
    out[2] = static_cast<std::uint8_t>(length >> 8);
    out[3] = static_cast<std::uint8_t>(length);
    size = 4;
  } else {
    out[1] = mask_bit | 127;
    for (int i = 0; i < 8; ++i) out[2 + i] = static_cast<std::uint8_t>(length >> (56 - 8 * i));
    size = 10;
  }
  if (mask) {
    std::memcpy(out + size, mask, 4);
    size += 4;
  }
  return size;
}

// XORs data with the mask, where data starts at `offset` bytes into the frame's payload.
// Eight bytes at a time; the compiler vectorises the loop further.
inline void apply_mask(std::uint8_t* data, std::size_t n, const std::uint8_t mask[4], std::uint64_t offset) noexcept {
  std::uint8_t rotated[8];
  for (int i = 0; i < 8; ++i) rotated[i] = mask[(offset + i) & 3];
  std::uint64_t m;
  std::memcpy(&m, rotated, 8);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t v;
    std::memcpy(&v, data + i, 8);
    v ^= m;
    std::memcpy(data + i, &v, 8);
  }
  for (; i < n; ++i) data[i] ^= rotated[i & 7];
}

// Like apply_mask, but from src into dst (the client role masks a copy of the caller's bytes).
inline void copy_masked(std::uint8_t* dst, const std::uint8_t* src, std::size_t n, const std::uint8_t mask[4],
                        std::uint64_t offset) noexcept {
  std::uint8_t rotated[8];
  for (int i = 0; i < 8; ++i) rotated[i] = mask[(offset + i) & 3];
  std::uint64_t m;
  std::memcpy(&m, rotated, 8);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t v;
    std::memcpy(&v, src + i, 8);
    v ^= m;
    std::memcpy(dst + i, &v, 8);
  }
  for (; i < n; ++i) dst[i] = src[i] ^ rotated[i & 7];
}

// Close codes a peer may send (RFC 6455 section 7.4, IANA registry): 1000-1003, 1007-1014 and
// 3000-4999. 1004-1006 and 1015 are reserved, the rest unassigned.
constexpr bool is_valid_close_code(std::uint16_t code) noexcept {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

}  // namespace wsl::detail
