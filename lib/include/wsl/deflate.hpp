// permessage-deflate (RFC 7692) through zlib, written against the message_extension interface.
//
//   wsl::deflate_options d;
//   d.level = 3;                                    // faster than zlib's default of 6
//   opts.connection.extensions = {std::make_shared<wsl::deflate_factory>(d)};
//
// Messages are inflated and deflated incrementally, never held whole; the inflated size counts
// against max_message_size, so a decompression bomb ends in 1009. Corrupt compressed data ends in
// 1007.
#pragma once

#include "wsl/extension.hpp"

#include <cstddef>

namespace wsl {

struct deflate_options {
  // zlib compression level, 1 (fast) to 9 (small); 6 is zlib's own default.
  int level = 6;
  // zlib memLevel, 1 to 9: memory for the compressor's hash tables (2^(memLevel+9) bytes).
  int mem_level = 8;
  // Messages shorter than this are sent uncompressed: deflate cannot shrink tiny payloads.
  std::size_t threshold = 64;
  // Our own direction: forget the compression context after each message. Costs ratio, saves
  // the compressor's memory (about 256 KiB at window 15) between messages.
  bool no_context_takeover = false;
  // The peer's direction: ask it to forget its context after each message (we then need no
  // decompression window between messages either).
  bool peer_no_context_takeover = false;
  // The LZ77 window we compress with (8 to 15). zlib cannot compress with a 256-byte window, so
  // 8 is served with run-length matches only, which stay inside it (RFC 7692 section 7.1.2.1).
  int max_window_bits = 15;
  // The window the peer may use when it compresses (8 to 15): we ask for it when < 15.
  int peer_max_window_bits = 15;

  bool valid() const noexcept;
};

class deflate_factory final : public message_extension_factory {
 public:
  explicit deflate_factory(deflate_options options = {}) : options_(options) {}
  std::string_view name() const noexcept override { return "permessage-deflate"; }
  std::unique_ptr<message_extension> accept(const std::vector<extension_offer>& offers,
                                            extension_offer& response) const override;
  std::vector<extension_offer> offer() const override;
  std::unique_ptr<message_extension> on_response(const extension_offer& response, std::error_code& ec) const override;
  const deflate_options& options() const noexcept { return options_; }

 private:
  deflate_options options_;
};

}  // namespace wsl
