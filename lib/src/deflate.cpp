// permessage-deflate (RFC 7692): negotiation and the two streaming transforms.
#include "wsl/deflate.hpp"

#include "wsl/error.hpp"
#include "wsl/websocket.hpp"

#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace wsl {
namespace {

constexpr std::uint8_t rsv1 = 0x40;
constexpr std::uint8_t sync_tail[4] = {0x00, 0x00, 0xff, 0xff};

// What one connection agreed on, seen from our side.
struct agreement {
  bool our_no_takeover = false;
  bool peer_no_takeover = false;
  int our_window = 15;
  int peer_window = 15;
};

// Compresses one message at a time. The output of a message ends with the 4 bytes of an empty
// stored block (00 00 ff ff) that RFC 7692 section 7.2.1 removes: they are held back until it is
// known whether more output follows.
class compressor final : public payload_transform {
 public:
  compressor(const deflate_options& o, const agreement& a) : options_(o), agreement_(a) {}
  ~compressor() override {
    if (initialized_) deflateEnd(&z_);
  }

  bool begin(std::error_code& ec) {
    if (!initialized_) {
      std::memset(&z_, 0, sizeof z_);
      // A 256-byte window cannot be had from zlib: run-length matches (distance 1) fit any window.
      const bool tiny = agreement_.our_window < 9;
      if (deflateInit2(&z_, options_.level, Z_DEFLATED, -std::max(agreement_.our_window, 9), options_.mem_level,
                       tiny ? Z_RLE : Z_DEFAULT_STRATEGY) != Z_OK) {
        ec = std::make_error_code(std::errc::not_enough_memory);
        return false;
      }
      initialized_ = true;
    }
    held_ = 0;
    message_bytes_ = 0;
    return true;
  }

  result process(const std::uint8_t* in, std::size_t in_size, std::uint8_t* out, std::size_t out_size, bool last,
                 std::error_code& ec) override {
    result r;
    if (out_size < 2 * sizeof sync_tail) return r;  // the caller gives more room next time
    std::size_t used = 0;
    if (last) {  // what was held back is not the tail if more output comes: put it first
      std::memcpy(out, held_bytes_, held_);
      used = held_;
      held_ = 0;
    }
    z_.next_in = const_cast<Bytef*>(in);
    z_.avail_in = static_cast<uInt>(std::min<std::size_t>(in_size, UINT32_MAX));
    z_.next_out = out + used;
    z_.avail_out = static_cast<uInt>(std::min<std::size_t>(out_size - used, UINT32_MAX));
    const int rc = deflate(&z_, last ? Z_SYNC_FLUSH : Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      ec = error::bad_compressed_data;
      return r;
    }
    r.consumed = in_size - z_.avail_in;
    used = static_cast<std::size_t>(z_.next_out - out);
    if (last) {
      const bool flushed = r.consumed == in_size && z_.avail_out != 0;
      held_ = std::min(used, sizeof sync_tail);
      std::memcpy(held_bytes_, out + used - held_, held_);
      used -= held_;
      if (flushed) {
        // The held bytes are the empty block's tail now (RFC 7692 section 7.2.1): drop them.
        held_ = 0;
        r.done = true;
        if (agreement_.our_no_takeover) deflateReset(&z_);
        // zlib writes nothing for an empty message right after a flush, and an empty payload would
        // leave the peer's inflater reading the tail as a block header: send the empty stored block's
        // first byte (RFC 7692 section 7.2.3.6: an empty message is the single octet 00).
        if (message_bytes_ + used == 0) out[used++] = 0x00;
      }
    }
    message_bytes_ += used;
    r.produced = used;
    return r;
  }

 private:
  const deflate_options& options_;
  const agreement& agreement_;
  z_stream z_{};
  bool initialized_ = false;
  std::uint8_t held_bytes_[sizeof sync_tail] = {};
  std::size_t held_ = 0;
  std::size_t message_bytes_ = 0;  // produced for the current message
};

// Decompresses one message at a time; the removed tail is fed back at its end.
class decompressor final : public payload_transform {
 public:
  explicit decompressor(const agreement& a) : agreement_(a) {}
  ~decompressor() override {
    if (initialized_) inflateEnd(&z_);
  }

  bool begin(std::error_code& ec) {
    if (!initialized_) {
      std::memset(&z_, 0, sizeof z_);
      // A window of 15 bits inflates what any smaller window produced.
      if (inflateInit2(&z_, -15) != Z_OK) {
        ec = std::make_error_code(std::errc::not_enough_memory);
        return false;
      }
      initialized_ = true;
    }
    tail_left_ = sizeof sync_tail;
    return true;
  }

  result process(const std::uint8_t* in, std::size_t in_size, std::uint8_t* out, std::size_t out_size, bool last,
                 std::error_code& ec) override {
    result r;
    if (out_size == 0) return r;
    std::size_t produced = 0;
    if (in_size != 0 || !last) {
      if (!run(in, in_size, out, out_size, r.consumed, produced, ec)) return r;
      r.produced = produced;
      if (!last || r.consumed != in_size || produced == out_size) return r;
    }
    // The message's input is all in: feed the tail, then drain.
    while (produced < out_size) {
      const auto* tail = sync_tail + (sizeof sync_tail - tail_left_);
      std::size_t tail_used = 0, more = 0;
      if (!run(tail, tail_left_, out + produced, out_size - produced, tail_used, more, ec)) return r;
      tail_left_ -= tail_used;
      produced += more;
      if (tail_left_ == 0 && z_.avail_out != 0) {
        r.done = true;
        if (agreement_.peer_no_takeover) inflateReset(&z_);
        break;
      }
      if (more == 0 && tail_used == 0) break;
    }
    r.produced = produced;
    return r;
  }

 private:
  bool run(const std::uint8_t* in, std::size_t in_size, std::uint8_t* out, std::size_t out_size, std::size_t& consumed,
           std::size_t& produced, std::error_code& ec) {
    z_.next_in = const_cast<Bytef*>(in);
    z_.avail_in = static_cast<uInt>(std::min<std::size_t>(in_size, UINT32_MAX));
    z_.next_out = out;
    z_.avail_out = static_cast<uInt>(std::min<std::size_t>(out_size, UINT32_MAX));
    int rc = inflate(&z_, Z_SYNC_FLUSH);
    if (rc == Z_STREAM_END) {
      // A final block (BFINAL): the peer started over; so do we, for what follows.
      inflateReset(&z_);
      rc = Z_OK;
    }
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      ec = error::bad_compressed_data;
      return false;
    }
    consumed = in_size - z_.avail_in;
    produced = out_size - z_.avail_out;
    return true;
  }

  const agreement& agreement_;
  z_stream z_{};
  bool initialized_ = false;
  std::size_t tail_left_ = sizeof sync_tail;
};

class deflate_extension final : public message_extension {
 public:
  deflate_extension(const deflate_options& o, agreement a)
      : options_(o), agreement_(a), compressor_(options_, agreement_), decompressor_(agreement_) {}

  std::uint8_t rsv_bits() const noexcept override { return rsv1; }

  payload_transform* begin_decode(std::uint8_t rsv) override {
    if (rsv != rsv1) return nullptr;
    std::error_code ec;
    return decompressor_.begin(ec) ? &decompressor_ : nullptr;
  }

  payload_transform* begin_encode(message_type, std::optional<std::uint64_t> size, std::uint8_t& rsv) override {
    if (size && *size < options_.threshold) return nullptr;
    std::error_code ec;
    if (!compressor_.begin(ec)) return nullptr;
    rsv = rsv1;
    return &compressor_;
  }

  std::string description() const override {
    std::string s = "permessage-deflate";
    if (agreement_.our_no_takeover) s += "; no context takeover (ours)";
    if (agreement_.peer_no_takeover) s += "; no context takeover (peer's)";
    if (agreement_.our_window != 15) s += "; our window " + std::to_string(agreement_.our_window);
    if (agreement_.peer_window != 15) s += "; peer window " + std::to_string(agreement_.peer_window);
    return s;
  }

 private:
  deflate_options options_;
  agreement agreement_;
  compressor compressor_;
  decompressor decompressor_;
};

std::optional<int> window_bits(const std::optional<std::string>& v) {
  // 1*DIGIT without leading zeros (RFC 7692 section 7.1.2): "010" is malformed, not 10.
  if (!v || v->empty() || (*v)[0] == '0') return std::nullopt;
  int n = 0;
  const auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
  if (ec != std::errc() || end != v->data() + v->size() || n < 8 || n > 15) return std::nullopt;
  return n;
}

// The parameters of one element, checked against RFC 7692 section 7.1; nullopt when malformed.
struct parsed_params {
  bool server_no_context_takeover = false;
  bool client_no_context_takeover = false;
  std::optional<int> server_max_window_bits;
  bool client_max_window_bits = false;  // present, with or without a value
  std::optional<int> client_max_window_value;
};

std::optional<parsed_params> parse_params(const extension_offer& e) {
  parsed_params p;
  std::vector<std::string_view> seen;
  for (const auto& [key, value] : e.params) {
    if (std::find(seen.begin(), seen.end(), key) != seen.end()) return std::nullopt;  // duplicates
    seen.push_back(key);
    if (key == "server_no_context_takeover" && !value) {
      p.server_no_context_takeover = true;
    } else if (key == "client_no_context_takeover" && !value) {
      p.client_no_context_takeover = true;
    } else if (key == "server_max_window_bits") {
      p.server_max_window_bits = window_bits(value);
      if (!p.server_max_window_bits) return std::nullopt;
    } else if (key == "client_max_window_bits") {
      p.client_max_window_bits = true;
      if (value) {
        p.client_max_window_value = window_bits(value);
        if (!p.client_max_window_value) return std::nullopt;
      }
    } else {
      return std::nullopt;
    }
  }
  return p;
}

}  // namespace

bool deflate_options::valid() const noexcept {
  return level >= 0 && level <= 9 && mem_level >= 1 && mem_level <= 9 && max_window_bits >= 8 &&
         max_window_bits <= 15 && peer_max_window_bits >= 8 && peer_max_window_bits <= 15;
}

std::unique_ptr<message_extension> deflate_factory::accept(const std::vector<extension_offer>& offers,
                                                           extension_offer& response) const {
  for (const auto& offer : offers) {
    const auto p = parse_params(offer);
    if (!p) continue;  // a malformed offer is declined, the next one may do
    agreement a;
    a.our_no_takeover = options_.no_context_takeover || p->server_no_context_takeover;
    a.peer_no_takeover = options_.peer_no_context_takeover || p->client_no_context_takeover;
    a.our_window = std::min(options_.max_window_bits, p->server_max_window_bits.value_or(15));
    a.peer_window = p->client_max_window_value.value_or(15);
    // Only an offer with client_max_window_bits lets us limit the client's window.
    if (p->client_max_window_bits) a.peer_window = std::min(a.peer_window, options_.peer_max_window_bits);

    response = extension_offer{"permessage-deflate", {}};
    if (a.our_no_takeover) response.params.emplace_back("server_no_context_takeover", std::nullopt);
    if (a.peer_no_takeover) response.params.emplace_back("client_no_context_takeover", std::nullopt);
    if (p->server_max_window_bits || a.our_window < 15)
      response.params.emplace_back("server_max_window_bits", std::to_string(a.our_window));
    if (p->client_max_window_bits && a.peer_window < 15)
      response.params.emplace_back("client_max_window_bits", std::to_string(a.peer_window));
    return std::make_unique<deflate_extension>(options_, a);
  }
  return nullptr;
}

std::vector<extension_offer> deflate_factory::offer() const {
  extension_offer o{"permessage-deflate", {}};
  if (options_.no_context_takeover) o.params.emplace_back("client_no_context_takeover", std::nullopt);
  if (options_.peer_no_context_takeover) o.params.emplace_back("server_no_context_takeover", std::nullopt);
  if (options_.peer_max_window_bits < 15)
    o.params.emplace_back("server_max_window_bits", std::to_string(options_.peer_max_window_bits));
  // We can compress with any window the server asks for (8 included), so say so.
  o.params.emplace_back("client_max_window_bits",
                        options_.max_window_bits < 15
                            ? std::optional<std::string>(std::to_string(options_.max_window_bits))
                            : std::nullopt);
  return {o};
}

std::unique_ptr<message_extension> deflate_factory::on_response(const extension_offer& response,
                                                                std::error_code& ec) const {
  const auto p = parse_params(response);
  // The server may not widen what we offered (RFC 7692 section 7.1).
  if (!p || (p->client_max_window_bits && !p->client_max_window_value) ||
      (p->client_max_window_value && *p->client_max_window_value > options_.max_window_bits) ||
      (p->server_max_window_bits && options_.peer_max_window_bits < 15 &&
       *p->server_max_window_bits > options_.peer_max_window_bits)) {
    ec = error::bad_extension;
    return nullptr;
  }
  agreement a;
  a.our_no_takeover = options_.no_context_takeover || p->client_no_context_takeover;
  a.peer_no_takeover = p->server_no_context_takeover;
  a.our_window = p->client_max_window_value.value_or(options_.max_window_bits);
  a.peer_window = p->server_max_window_bits.value_or(15);
  return std::make_unique<deflate_extension>(options_, a);
}

}  // namespace wsl
