#include "connection.hpp"

#include <asio/cancellation_state.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <openssl/rand.h>

#include <algorithm>
#include <cstring>
#include <random>

namespace wsl::detail {
namespace {

// Our latency pings carry this tag and the send time, so their pongs give a round-trip time.
constexpr std::uint8_t ping_tag[4] = {'w', 's', 'l', 1};
constexpr std::size_t latency_ping_size = 12;

// An operation the caller cancelled (asio's cancellation slots).
bool cancelled(std::error_code ec) noexcept { return ec == asio::error::operation_aborted; }

}  // namespace

// Marks the reads of the application (read_message(), read_chunk(), read_some()).
struct connection::reader_guard {
  connection& c;
  ~reader_guard() { c.reader_done(); }
};

// Held while a write has the socket (socket_busy_). A coroutine that ends by an exception instead
// (a cancellation asio throws at a co_await, perhaps between two pieces of one frame) drops the
// connection and gives the socket back: nothing may follow half a frame, nor wait for the socket
// forever.
struct connection::socket_guard {
  connection& c;
  bool armed = true;
  void disarm() noexcept { armed = false; }
  ~socket_guard() {
    if (!armed) return;
    c.control_inflight_.clear();
    c.release_cork();
    c.abort(error::aborted);
    c.release_socket();
  }
};

// Marks close() reading in the application's place.
struct connection::closer_guard {
  connection& c;
  ~closer_guard() {
    c.closer_reading_ = false;
    c.reading_ = false;
  }
};

namespace {

void cancel_timer(timer& t) noexcept {
  try {
    t.cancel();
  } catch (...) {
  }
}

inline auto use_ec(std::error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

}  // namespace

connection::connection(std::unique_ptr<transport> t, wsl::role r, const connection_options& options)
    : executor_(t->get_executor()),
      transport_(std::move(t)),
      opts_(options),
      role_(r),
      rbuf_(small_),
      keepalive_(executor_) {}

connection::~connection() {
  if (budget_) budget_->release(budget_address_);
}

void connection::preload(std::string_view bytes) {
  if (bytes.empty()) return;
  while (bytes.size() > rcap_ - rend_ && rcap_ < opts_.read_buffer_size) use_big_buffer();
  // A client may pipeline frames behind its handshake; more than a buffer of them is abuse.
  const auto n = std::min(bytes.size(), rcap_ - rend_);
  std::memcpy(rbuf_ + rend_, bytes.data(), n);
  rend_ += n;
}

void connection::start() {
  last_activity_ = clock::coarse_now();
  next_ping_ = clock::now() + opts_.ping_interval;
  arm_keepalive();
}

// ------------------------------------------------------------------------------------------------
// Reading

asio::awaitable<message_reader> connection::read_message(std::error_code& ec) {
  ec = {};
  if (reading_) {
    co_await refuse_read(ec);
    co_return message_reader{};
  }
  if (state_ == state::closed) {
    ec = end_error();
    co_return message_reader{};
  }
  reading_ = true;
  reader_guard guard{*this};
  if (msg_open_) co_await skip_message(ec);
  decoded_.reset();  // chunks of the last message are void now; a pooled buffer comes back when needed
  if (!ec && rpos_ == rend_ && !control_pending()) {
    // Nothing buffered: the usual state between messages, and where idle connections wait. Waiting
    // here rather than two calls deeper keeps their coroutine frames (memory) to a minimum.
    if (flush_before_read()) co_await flush_pending(ec);  // corked answers: no control is pending
    if (!ec) {
      prepare_read_space();
      begin_read();
      idle_wait_ = true;
      std::size_t n;
      for (;;) {  // one co_await only: every idle connection's coroutine frame holds its awaiter
        n = co_await transport_->read_some(asio::buffer(rbuf_ + rend_, rcap_ - rend_), ec);
        if (ec != asio::error::operation_aborted || !release_requested_ || state_ == state::closed) break;
        // The keepalive found this connection quiet with a large buffer: wait with the small one.
        release_requested_ = false;
        use_small_buffer();
      }
      idle_wait_ = false;
      release_requested_ = false;
      if (end_read(ec)) account_read(n);
    }
  }
  // After our close frame, messages that come before the peer's close still reach a reader: the
  // peer sent them before it saw ours (RFC 6455 section 1.4 discards only what follows the peer's
  // close). close() reads and discards them itself only when nobody reads.
  // The common case, a data frame whose header is buffered, needs no coroutine of read_frame().
  if (!ec && !try_data_frame(ec)) co_await read_frame(ec);
  if (!ec) ec = start_data_frame(frame_, true);
  if (ec) {
    if (!cancelled(ec)) co_await fail(ec);
    co_return message_reader{};
  }
  co_return message_reader(this, seq_, msg_type_);
}

asio::awaitable<asio::const_buffer> connection::read_chunk(std::uint64_t seq, std::error_code& ec) {
  ec = {};
  if (seq != seq_ || !msg_open_) co_return asio::const_buffer{};
  if (reading_) {
    co_await refuse_read(ec);
    co_return asio::const_buffer{};
  }
  reading_ = true;
  reader_guard guard{*this};
  // Bytes of the current frame at hand (the common case) need no coroutine of next_chunk().
  asio::const_buffer chunk;
  if (!try_next_chunk(SIZE_MAX, chunk, ec)) chunk = co_await next_chunk(SIZE_MAX, ec);
  if (ec) {
    if (!cancelled(ec)) co_await fail(ec);
    co_return asio::const_buffer{};
  }
  if (control_pending() && !socket_busy_) schedule_flush();
  co_return chunk;
}

asio::awaitable<std::size_t> connection::read_some(std::uint64_t seq, asio::mutable_buffer buffer,
                                                   std::error_code& ec) {
  ec = {};
  if (seq != seq_ || !msg_open_ || buffer.size() == 0) co_return 0;
  if (reading_) {
    co_await refuse_read(ec);
    co_return 0;
  }
  reading_ = true;
  reader_guard guard{*this};
  std::size_t n = 0;
  if (!decoder_ && frame_left_ >= small_buffer_size && rpos_ == rend_ && buffer.size() >= small_buffer_size) {
    // A large payload goes straight from the socket into the caller's buffer.
    auto* p = static_cast<std::uint8_t*>(buffer.data());
    n = co_await receive(asio::buffer(p, std::min<std::uint64_t>(buffer.size(), frame_left_)), ec);
    if (!ec) {
      take_raw(p, n);
      ec = deliver(p, n);
      if (!ec && frame_left_ == 0 && frame_.fin) ec = end_message();
    }
  } else {
    const auto chunk = co_await next_chunk(buffer.size(), ec);
    n = chunk.size();
    if (!ec && n != 0) std::memcpy(buffer.data(), chunk.data(), n);
  }
  if (ec) {
    if (!cancelled(ec)) co_await fail(ec);
    co_return 0;
  }
  if (control_pending() && !socket_busy_) schedule_flush();
  co_return n;
}

asio::awaitable<void> connection::skip_message(std::error_code& ec) {
  while (msg_open_ && !ec) co_await next_chunk(SIZE_MAX, ec);
}

// The next piece of the current message's payload, unmasked and validated; empty at its end.
asio::awaitable<asio::const_buffer> connection::next_chunk(std::size_t max, std::error_code& ec) {
  if (decoder_) co_return co_await next_decoded_chunk(max, ec);
  while (msg_open_) {
    if (frame_left_ == 0) {
      if (frame_.fin) {  // an empty final frame
        ec = end_message();
        break;
      }
      co_await read_frame(ec);
      if (!ec) ec = start_data_frame(frame_, false);
      if (ec) break;
      continue;
    }
    if (rpos_ == rend_) {
      co_await fill(ec);
      if (ec) break;
    }
    co_return take_chunk(max, ec);
  }
  co_return asio::const_buffer{};
}

bool connection::try_next_chunk(std::size_t max, asio::const_buffer& chunk, std::error_code& ec) noexcept {
  if (decoder_ || !msg_open_ || frame_left_ == 0 || rpos_ == rend_) return false;
  chunk = take_chunk(max, ec);
  return true;
}

// Up to max buffered bytes of the current frame (some are buffered, some are left).
asio::const_buffer connection::take_chunk(std::size_t max, std::error_code& ec) noexcept {
  const auto n = static_cast<std::size_t>(std::min<std::uint64_t>({rend_ - rpos_, frame_left_, max}));
  auto* p = rbuf_ + rpos_;
  rpos_ += n;
  take_raw(p, n);
  ec = deliver(p, n);
  if (!ec && frame_left_ == 0 && frame_.fin) ec = end_message();
  return asio::const_buffer(p, n);
}

// The same for a message the extension transforms: raw payload goes through the decoder and the
// chunks returned lie in decoded_.
asio::awaitable<asio::const_buffer> connection::next_decoded_chunk(std::size_t max, std::error_code& ec) {
  if (!decoded_) decoded_ = pooled_buffer(std::min<std::size_t>(opts_.read_buffer_size, 64 << 10));
  const std::size_t room = std::min(decoded_.size(), std::max<std::size_t>(max, 1));
  while (msg_open_) {
    const bool last = frame_left_ == 0 && frame_.fin;
    if (pending_in_len_ != 0 || last) {
      const auto r = decoder_->process(pending_in_, pending_in_len_, decoded_.data(), room, last, ec);
      if (ec) break;
      pending_in_ += r.consumed;
      pending_in_len_ -= r.consumed;
      if (r.produced != 0) ec = deliver(decoded_.data(), r.produced);
      if (!ec && last && r.done) ec = end_message();
      if (!ec && last && !r.done && r.produced == 0 && pending_in_len_ == 0) ec = error::bad_compressed_data;
      if (ec) break;
      if (r.produced != 0) co_return asio::const_buffer(decoded_.data(), r.produced);
      if (!msg_open_ || pending_in_len_ != 0) continue;
    }
    if (frame_left_ == 0) {
      co_await read_frame(ec);
      if (!ec) ec = start_data_frame(frame_, false);
      if (ec) break;
      continue;
    }
    if (rpos_ == rend_) {
      co_await fill(ec);
      if (ec) break;
    }
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(rend_ - rpos_, frame_left_));
    auto* p = rbuf_ + rpos_;
    rpos_ += n;
    take_raw(p, n);
    pending_in_ = p;
    pending_in_len_ = n;
  }
  co_return asio::const_buffer{};
}

std::error_code connection::start_data_frame(const frame_header& h, bool first) noexcept {
  if (first) {
    if (h.op == opcode::continuation) return error::unexpected_continuation;
    decoder_ = ext_ ? ext_->begin_decode(h.rsv) : nullptr;
    if (h.rsv != 0 && !decoder_) return error::reserved_bits;
    ++seq_;
    msg_open_ = true;
    msg_type_ = h.op == opcode::text ? message_type::text : message_type::binary;
    msg_size_ = 0;
    msg_read_ = 0;
    pending_in_len_ = 0;
    utf8_.reset();
  } else if (h.op != opcode::continuation) {
    return error::expected_continuation;
  } else if (h.rsv != 0) {
    return error::reserved_bits;  // only the first frame of a message carries extension bits
  }
  // The announced lengths bound a plain message at once. A compressed one counts by its inflated
  // size (deliver()), as deflate.hpp documents: its compressed form may be the larger (incompressible
  // data, a sender that flushes often), and it is inflated a buffer at a time, never held whole.
  if (opts_.max_message_size != 0 && !decoder_ && h.length > opts_.max_message_size - msg_size_)
    return error::message_too_large;
  msg_size_ += h.length;
  frame_left_ = h.length;
  frame_offset_ = 0;
  return {};
}

// Raw payload bytes of the current frame: unmasked in place and counted against the frame.
void connection::take_raw(std::uint8_t* p, std::size_t n) noexcept {
  if (frame_.masked) apply_mask(p, n, frame_.mask, frame_offset_);
  frame_offset_ += n;
  frame_left_ -= n;
  bytes_in_ += n;
}

// Message bytes handed to the reader: bounded by max_message_size, text checked as UTF-8.
std::error_code connection::deliver(const std::uint8_t* p, std::size_t n) noexcept {
  msg_read_ += n;
  if (opts_.max_message_size != 0 && msg_read_ > opts_.max_message_size) return error::message_too_large;
  if (msg_type_ == message_type::text && !utf8_.feed(p, n)) return error::invalid_utf8;
  return {};
}

std::error_code connection::end_message() noexcept {
  msg_open_ = false;
  decoder_ = nullptr;
  if (msg_type_ == message_type::text && !utf8_.complete()) return error::invalid_utf8;
  return {};
}

// Reads frame headers, handling control frames on the way, until a data frame starts. Its
// header is left in frame_; its payload is still to be read.
asio::awaitable<void> connection::read_frame(std::error_code& ec) {
  for (;;) {
    frame_header h;
    std::size_t header_size;
    while ((header_size = parse_checked_header(h, ec)) == 0) {
      if (ec) co_return;
      co_await fill(ec);
      if (ec) co_return;
    }
    rpos_ += header_size;
    bytes_in_ += header_size;
    if (!is_control(h.op)) {
      frame_ = h;
      co_return;
    }
    // A control frame (at most 125 bytes) is handled whole.
    while (rend_ - rpos_ < h.length) {
      co_await fill(ec);
      if (ec) co_return;
    }
    auto* p = rbuf_ + rpos_;
    const auto n = static_cast<std::size_t>(h.length);
    rpos_ += n;
    bytes_in_ += n;
    if (h.masked) apply_mask(p, n, h.mask, 0);
    co_await handle_control(h.op, p, n, ec);
    if (ec) co_return;
  }
}

// The frame header at rpos_, parsed and checked: its size, or 0 when it is incomplete (ec clear)
// or breaks a rule (ec set).
std::size_t connection::parse_checked_header(frame_header& h, std::error_code& ec) noexcept {
  const auto size = parse_frame_header(rbuf_ + rpos_, rend_ - rpos_, h, ec);
  if (size == 0) return 0;
  // Extension bits only where the extension may put them: a data frame (the first of a
  // message; start_data_frame checks that) and never a control frame.
  if (h.rsv != 0 && (is_control(h.op) || (h.rsv & ~allowed_rsv_) != 0))
    ec = error::reserved_bits;
  else if (role_ == wsl::role::server && !h.masked)
    ec = error::unmasked_frame;
  else if (role_ == wsl::role::client && h.masked)
    ec = error::masked_frame;
  return ec ? 0 : size;
}

// read_frame() without waiting: true when it is done (a data frame's header taken into frame_, or
// ec set), false when it would have to read more or handle a control frame first.
bool connection::try_data_frame(std::error_code& ec) noexcept {
  frame_header h;
  const auto size = parse_checked_header(h, ec);
  if (size == 0) return static_cast<bool>(ec);
  if (is_control(h.op)) return false;
  rpos_ += size;
  bytes_in_ += size;
  frame_ = h;
  return true;
}

// Reads more into the receive buffer. (receive() does the same into a caller's buffer; the code
// is repeated rather than called, so that an idle connection waits one coroutine frame less deep.)
asio::awaitable<void> connection::fill(std::error_code& ec) {
  prepare_read_space();
  if (flush_before_read()) {
    co_await flush_pending(ec);
    if (ec) co_return;
  }
  begin_read();
  const auto n = co_await transport_->read_some(asio::buffer(rbuf_ + rend_, rcap_ - rend_), ec);
  if (end_read(ec)) account_read(n);
}

void connection::account_read(std::size_t n) noexcept {
  grow_ = rend_ + n == rcap_;
  if (big_) quiet_reads_ = n <= small_buffer_size ? static_cast<std::uint8_t>(quiet_reads_ + 1) : 0;
  rend_ += n;
}

// Before a read: unread bytes (at most a partial header or control frame) move to the front; the
// buffer grows after a read that filled it and shrinks back once the traffic has gone quiet.
void connection::prepare_read_space() {
  if (rpos_ == rend_) {
    rpos_ = rend_ = 0;
    if (big_ && quiet_reads_ >= 4) use_small_buffer();
  } else if (rpos_ != 0) {
    std::memmove(rbuf_, rbuf_ + rpos_, rend_ - rpos_);
    rend_ -= rpos_;
    rpos_ = 0;
  }
  if ((grow_ || rend_ == rcap_) && rcap_ < opts_.read_buffer_size) use_big_buffer();
}

// Grows by steps (512 B inline, then 4 KiB, 32 KiB, up to read_buffer_size from the pool), so
// that a connection with medium-sized messages does not hold the largest buffer.
void connection::use_big_buffer() {
  const auto next = std::min(std::max(rcap_ * 8, std::size_t{4096}), std::max(opts_.read_buffer_size, rcap_ + 1));
  pooled_buffer b(next);
  std::memcpy(b.data(), rbuf_ + rpos_, rend_ - rpos_);
  rend_ -= rpos_;
  rpos_ = 0;
  big_ = std::move(b);
  rbuf_ = big_.data();
  rcap_ = big_.size();
  quiet_reads_ = 0;
  grow_ = false;
}

void connection::use_small_buffer() noexcept {
  big_.reset();
  rbuf_ = small_;
  rcap_ = small_buffer_size;
  quiet_reads_ = 0;
}

asio::awaitable<std::size_t> connection::receive(asio::mutable_buffer buffer, std::error_code& ec) {
  if (flush_before_read()) {
    co_await flush_pending(ec);
    if (ec) co_return 0;
  }
  begin_read();
  const auto n = co_await transport_->read_some(buffer, ec);
  co_return end_read(ec) ? n : 0;
}

void connection::begin_read() noexcept {
  read_waiting_ = true;
  last_activity_ = clock::coarse_now();
  // A large buffer, ours or the transport's (TLS input), goes back if this wait turns out long.
  if (!watching_memory_ && holds_memory()) arm_keepalive();
}

bool connection::end_read(std::error_code& ec) noexcept {
  read_waiting_ = false;
  if (ec) {
    // The caller cancelled its read (asio's cancellation slot, the loser of an awaitable
    // operators' ||): nothing was taken from the stream, so the connection goes on, and the next
    // read starts where this one stopped.
    if (cancelled(ec) && !end_reason_ && state_ != state::closed) return false;
    // Our own ending (idle timeout, close timeout, abort) explains the error best.
    ec = end_reason_ ? end_reason_ : make_error_code(error::connection_lost);
    if (ec == error::closed) ec = error::connection_lost;
    return false;
  }
  last_activity_ = clock::coarse_now();
  return true;
}

asio::awaitable<void> connection::handle_control(opcode op, std::uint8_t* p, std::size_t n, std::error_code& ec) {
  if (on_control_) {
    const auto kind = op == opcode::ping   ? control_kind::ping
                      : op == opcode::pong ? control_kind::pong
                                           : control_kind::close;
    on_control_(kind, std::string_view(reinterpret_cast<const char*>(p), n));
  }
  switch (op) {
    case opcode::ping:
      if (!close_sent_) {
        // Pongs beyond the bound replace the older ones (RFC 6455 section 5.5.3).
        if (pending_pongs_.size() + n + max_header_size > opts_.max_control_queue) pending_pongs_.clear();
        queue_control(pending_pongs_, opcode::pong, p, n);
      }
      break;
    case opcode::pong: record_pong(p, n); break;
    default: co_await on_close_frame(p, n, ec); break;
  }
}

asio::awaitable<void> connection::on_close_frame(const std::uint8_t* p, std::size_t n, std::error_code& ec) {
  std::uint16_t code = close_code::no_status;
  std::string_view reason;
  if (n == 1) {
    ec = error::bad_close_payload;
    co_return;
  }
  if (n >= 2) {
    code = static_cast<std::uint16_t>((p[0] << 8) | p[1]);
    if (!is_valid_close_code(code)) {
      ec = error::bad_close_code;
      co_return;
    }
    reason = std::string_view(reinterpret_cast<const char*>(p + 2), n - 2);
    if (!utf8_validator::validate(reason.data(), reason.size())) {
      ec = error::invalid_utf8;
      co_return;
    }
  }
  peer_close_ = {code, std::string(reason)};
  close_received_ = true;
  if (!close_sent_) {
    // Answer with the peer's code and reason, as node ws and python websockets do, or 1000 when it
    // sent no code. A browser then sees its own reason come back in the close event.
    start_close_timer();
    std::error_code write_ec;
    if (code == close_code::no_status)
      co_await send_close_frame(close_code::normal, {}, write_ec);
    else
      co_await send_close_frame(code, reason, write_ec);
  }
  // The server closes the TCP connection first (RFC 6455 section 7.1.1); a client waits for it.
  if (role_ == wsl::role::client && state_ != state::closed) co_await drain_until_eof();
  shutdown(error::closed);
  ec = error::closed;
}

asio::awaitable<void> connection::drain_until_eof() {
  std::error_code ec;
  while (!ec && state_ != state::closed) co_await transport_->read_some(asio::buffer(rbuf_, rcap_), ec);
}

// ------------------------------------------------------------------------------------------------
// Failing and ending

// Fails the connection (RFC 6455 section 7.1.7): a close frame with the code the error calls for,
// then our FIN, then the peer's remaining bytes are read until it closes too (bounded by
// close_timeout), so that our close frame is not destroyed by a reset.
asio::awaitable<void> connection::fail(std::error_code reason) {
  if (state_ == state::closed) co_return;
  if (!end_reason_) end_reason_ = reason;
  const auto code = close_code_for(reason);
  if (code != 0 && !close_sent_) {
    start_close_timer();
    std::error_code ec;
    auto text = reason.message();
    if (text.size() > 123) text.resize(123);
    co_await send_close_frame(code, text, ec);
    if (!ec && state_ != state::closed) {
      transport_->shutdown_send();
      co_await drain_until_eof();
    }
  }
  shutdown(reason);
}

void connection::shutdown(std::error_code reason) noexcept {
  if (state_ == state::closed) return;
  state_ = state::closed;
  if (!end_reason_) end_reason_ = reason;
  // The connection's place first: a peer that saw the TCP close may connect again at once.
  if (budget_) {
    budget_->release(budget_address_);
    budget_.reset();
  }
  transport_->close();
  cancel_timer(keepalive_);
  if (waiters_) cancel_timer(*wake_);
}

void connection::abort(std::error_code reason) noexcept {
  if (!end_reason_) end_reason_ = reason;
  shutdown(reason);
}

std::error_code connection::end_error() const noexcept {
  return end_reason_ ? end_reason_ : make_error_code(error::closed);
}

void connection::abandon_message() noexcept {
  if (state_ == state::closed) return;
  try {
    asio::co_spawn(
        executor_,
        [self = shared_from_this()]() -> asio::awaitable<void> { co_await self->fail(error::message_abandoned); },
        asio::detached);
  } catch (...) {
    abort(error::message_abandoned);
  }
}

// ------------------------------------------------------------------------------------------------
// Writing

std::error_code connection::begin_writer(message_type type) noexcept {
  if (state_ == state::closed) return end_error();
  if (close_sent_) return error::closed;
  if (writer_active_) return error::write_in_progress;
  writer_active_ = true;
  out_type_ = type;
  out_started_ = false;
  encoder_chosen_ = false;
  encoder_ = nullptr;
  out_rsv_ = 0;
  return {};
}

void connection::end_writer() noexcept {
  writer_active_ = false;
  encoder_ = nullptr;
}

// The extension decides per message whether it encodes it; the size is known when the first part
// is the last.
void connection::choose_encoder(std::uint64_t size, bool fin) {
  if (encoder_chosen_) return;
  encoder_chosen_ = true;
  if (ext_) {
    encoder_ = ext_->begin_encode(out_type_, fin ? std::optional<std::uint64_t>(size) : std::nullopt, out_rsv_);
    if (!encoder_) out_rsv_ = 0;
  }
}

asio::awaitable<void> connection::write_data(asio::const_buffer a, asio::const_buffer b, bool fin,
                                             std::error_code& ec) {
  choose_encoder(a.size() + b.size(), fin);
  if (encoder_) {
    co_await write_encoded(a, b, fin, ec);
    co_return;
  }
  const auto op = out_started_ ? opcode::continuation : out_type_ == message_type::text ? opcode::text : opcode::binary;
  co_await write_frame(op, fin, 0, a, b, ec);
  out_started_ = true;
}

// Runs the message through the encoder, a buffer of output at a time; each full buffer is a frame.
asio::awaitable<void> connection::write_encoded(asio::const_buffer a, asio::const_buffer b, bool fin,
                                                std::error_code& ec) {
  pooled_buffer out(opts_.write_buffer_size);
  std::size_t used = 0;
  auto send = [&](bool final_frame) -> asio::awaitable<void> {
    const auto op = out_started_                      ? opcode::continuation
                    : out_type_ == message_type::text ? opcode::text
                                                      : opcode::binary;
    const auto rsv = out_started_ ? std::uint8_t{0} : out_rsv_;
    co_await write_frame(op, final_frame, rsv, asio::buffer(out.data(), used), {}, ec);
    out_started_ = true;
    used = 0;
  };
  // Feeds one piece of input; with `last`, until the encoder has given all of the message.
  auto feed = [&](asio::const_buffer piece, bool last) -> asio::awaitable<void> {
    const auto* in = static_cast<const std::uint8_t*>(piece.data());
    std::size_t left = piece.size();
    for (;;) {
      const auto r = encoder_->process(in, left, out.data() + used, out.size() - used, last, ec);
      if (ec) co_return;
      in += r.consumed;
      left -= r.consumed;
      used += r.produced;
      const bool finished = last ? r.done : left == 0;
      if (finished) co_return;
      if (used == out.size() || (r.consumed == 0 && r.produced == 0)) {
        if (used == 0) {  // no room and nothing produced: a broken encoder
          ec = error::bad_compressed_data;
          co_return;
        }
        co_await send(false);
        if (ec) co_return;
      }
    }
  };
  const bool b_last = fin && b.size() != 0;
  co_await feed(a, fin && !b_last);
  if (!ec && b.size() != 0) co_await feed(b, b_last);
  if (ec) co_return;
  if (fin || used != 0) co_await send(fin);  // not final: a flush of what the encoder gave so far
}

asio::awaitable<void> connection::wait_for_socket(std::error_code& ec) {
  while (socket_busy_ && state_ != state::closed) {
    ++waiters_;
    std::error_code ignored;
    co_await waker().async_wait(use_ec(ignored));
    --waiters_;
  }
  if (state_ == state::closed) ec = end_error();
}

void connection::release_socket() noexcept {
  socket_busy_ = false;
  if (waiters_) cancel_timer(*wake_);
}

asio::awaitable<void> connection::write_message(message_type type, asio::const_buffer data, std::error_code& ec) {
  ec = begin_writer(type);
  if (ec) co_return;
  choose_encoder(data.size(), true);
  if (encoder_) {
    co_await write_data(data, {}, true, ec);
  } else {
    // A message that is one plain frame: write_frame() straight away, and a small one joins the
    // cork without even that coroutine when write_frame() would put it there (see try_cork).
    const auto op = out_type_ == message_type::text ? opcode::text : opcode::binary;
    const bool corked =
        !socket_busy_ && !close_sent_ && state_ == state::open && input_at_hand() && try_cork(op, true, 0, data, {});
    if (!corked) co_await write_frame(op, true, 0, data, {}, ec);
    out_started_ = true;
  }
  end_writer();
}

asio::awaitable<void> connection::write_frame(opcode op, bool fin, std::uint8_t rsv, asio::const_buffer a,
                                              asio::const_buffer b, std::error_code& ec) {
  ec = {};
  if (socket_busy_) co_await wait_for_socket(ec);
  if (!ec && (close_sent_ || state_ != state::open)) ec = state_ == state::closed ? end_error() : error::closed;
  if (ec) co_return;
  if (input_at_hand() && try_cork(op, fin, rsv, a, b)) co_return;
  socket_busy_ = true;
  socket_guard guard{*this};
  std::array<asio::const_buffer, 5> bufs;
  std::size_t count = put_pending(bufs.data());
  std::uint8_t header[max_header_size];
  const std::uint64_t length = a.size() + b.size();
  std::uint64_t wire = length + control_inflight_.size();
  if (role_ == wsl::role::server) {
    bufs[count++] = asio::buffer(header, write_frame_header(header, op, fin, length, nullptr, rsv));
    wire += bufs[count - 1].size();
    if (a.size() != 0) bufs[count++] = a;
    if (b.size() != 0) bufs[count++] = b;
    co_await transport_->write(std::span(bufs.data(), count), ec);
  } else if (length <= small_masked_size) {
    // A small payload is masked right behind its header: no scratch buffer, no further call.
    std::uint8_t frame[max_header_size + small_masked_size];
    const auto n = put_frame(frame, op, fin, rsv, a, b);
    bufs[count++] = asio::buffer(frame, n);
    wire += n - length;
    co_await transport_->write(std::span(bufs.data(), count), ec);
  } else {
    std::uint8_t mask[4];
    fill_mask(mask);
    bufs[count++] = asio::buffer(header, write_frame_header(header, op, fin, length, mask, rsv));
    wire += bufs[count - 1].size();
    co_await write_masked(std::span(bufs.data(), count), mask, a, b, ec);
  }
  guard.disarm();
  end_write(wire, ec);
}

// In front of a write that took the socket: the cork's frames, then the control frames waiting
// (either may be empty). Returns the number of buffers put at bufs (at most 2).
std::size_t connection::put_pending(asio::const_buffer* bufs) {
  std::size_t count = 0;
  if (cork_used_ != 0) bufs[count++] = asio::buffer(cork_.data(), cork_used_);
  if (control_pending()) {
    take_pending_control();
    bufs[count++] = asio::buffer(control_inflight_);
  }
  return count;
}

// After that write: gives the socket back; `wire` bytes went out (the cork's were counted before).
void connection::end_write(std::uint64_t wire, std::error_code& ec) {
  control_inflight_.clear();
  release_cork();
  release_socket();
  if (ec) {
    write_failed(ec);
    return;
  }
  bytes_out_ += wire;
  if (control_pending()) schedule_flush();
}

// Whole messages, one frame each, as few sends as possible: a batch of them (up to batch_messages
// and batch_bytes) goes out in one gathered write, in the server role the headers beside the
// payloads, in the client role masked copies in one buffer. A message larger than a batch, and
// every message when an extension is negotiated (it decides per message), goes as write_message()
// sends it.
asio::awaitable<void> connection::write_messages(std::span<const outgoing_message> messages, std::error_code& ec) {
  constexpr std::size_t batch_messages = 64, batch_bytes = 64 << 10;
  ec = {};
  while (!messages.empty()) {
    std::size_t n = 0, bytes = 0;
    while (n < messages.size() && n < batch_messages && bytes + messages[n].data.size() <= batch_bytes)
      bytes += messages[n++].data.size();
    if (n < 2 || ext_) {
      co_await write_message(messages.front().type, messages.front().data, ec);
      if (ec) co_return;
      messages = messages.subspan(1);
      continue;
    }
    ec = begin_writer(messages.front().type);
    if (ec) co_return;
    if (socket_busy_) co_await wait_for_socket(ec);
    if (!ec && (close_sent_ || state_ != state::open)) ec = state_ == state::closed ? end_error() : error::closed;
    if (ec) {
      end_writer();
      co_return;
    }
    socket_busy_ = true;
    socket_guard guard{*this};
    std::array<asio::const_buffer, 2 + 2 * batch_messages> bufs;
    std::size_t count = put_pending(bufs.data());
    // Frames are put one after another in one buffer, payloads and all, except (server role) the
    // payloads too large for a copy to be cheaper than a buffer of the gathered write of their own.
    constexpr std::size_t copy_limit = 512;
    const bool masking = role_ == wsl::role::client;
    std::size_t flat_size = n * max_header_size;
    for (std::size_t i = 0; i < n; ++i)
      if (masking || messages[i].data.size() <= copy_limit) flat_size += messages[i].data.size();
    pooled_buffer flat(flat_size);
    std::size_t used = 0, region = 0;  // region: where the bytes of flat not yet in bufs begin
    std::uint64_t wire = control_inflight_.size();
    for (std::size_t i = 0; i < n; ++i) {
      const auto& m = messages[i];
      const auto op = m.type == message_type::text ? opcode::text : opcode::binary;
      if (masking || m.data.size() <= copy_limit) {
        used += put_frame(flat.data() + used, op, true, 0, m.data, {});
        continue;
      }
      used += write_frame_header(flat.data() + used, op, true, m.data.size(), nullptr, 0);
      bufs[count++] = asio::buffer(flat.data() + region, used - region);
      bufs[count++] = m.data;
      wire += m.data.size();
      region = used;
    }
    if (used != region) bufs[count++] = asio::buffer(flat.data() + region, used - region);
    wire += used;
    co_await transport_->write(std::span<const asio::const_buffer>(bufs.data(), count), ec);
    guard.disarm();
    end_write(wire, ec);
    end_writer();
    if (ec) co_return;
    messages = messages.subspan(n);
  }
}

// More of the peer's input is at hand (in the receive buffer, or held by TLS), so the reader will
// be back before it needs the socket: a small frame joins the cork instead of a send of its own.
bool connection::try_cork(opcode op, bool fin, std::uint8_t rsv, asio::const_buffer a, asio::const_buffer b) {
  const std::size_t length = a.size() + b.size();
  if (control_pending() || length + max_header_size > cork_capacity - cork_used_) return false;
  if (!cork_) cork_ = pooled_buffer(cork_capacity);
  const auto n = put_frame(cork_.data() + cork_used_, op, fin, rsv, a, b);
  cork_used_ += static_cast<std::uint32_t>(n);
  bytes_out_ += n;
  if (!uncork_posted_) post_uncork();
  return true;
}

// A whole frame at out: header, then a followed by b (masked with a fresh key in the client
// role). Returns its size; out has room for max_header_size more than the payload.
std::size_t connection::put_frame(std::uint8_t* out, opcode op, bool fin, std::uint8_t rsv, asio::const_buffer a,
                                  asio::const_buffer b) noexcept {
  const std::size_t length = a.size() + b.size();
  std::size_t n;
  if (role_ == wsl::role::server) {
    n = write_frame_header(out, op, fin, length, nullptr, rsv);
    if (a.size() != 0) std::memcpy(out + n, a.data(), a.size());
    if (b.size() != 0) std::memcpy(out + n + a.size(), b.data(), b.size());
  } else {
    std::uint8_t mask[4];
    fill_mask(mask);
    n = write_frame_header(out, op, fin, length, mask, rsv);
    copy_masked(out + n, static_cast<const std::uint8_t*>(a.data()), a.size(), mask, 0);
    copy_masked(out + n + a.size(), static_cast<const std::uint8_t*>(b.data()), b.size(), mask, a.size());
  }
  return n + length;
}

// The cork's deadline: when the reader did not come back to the socket within this turn of the
// executor (it waits on something else), the frames go out anyway.
void connection::post_uncork() {
  uncork_posted_ = true;
  asio::post(executor_, [self = shared_from_this()] {
    self->uncork_posted_ = false;
    if (self->flush_needed()) self->schedule_flush();
  });
}

// The client role masks a copy of the payload, a scratch buffer at a time; the first piece goes
// out with the header in one gathered write.
asio::awaitable<void> connection::write_masked(std::span<asio::const_buffer> head, const std::uint8_t mask[4],
                                               asio::const_buffer a, asio::const_buffer b, std::error_code& ec) {
  const std::uint64_t length = a.size() + b.size();
  if (length == 0) {
    co_await transport_->write(head, ec);
    co_return;
  }
  pooled_buffer scratch(static_cast<std::size_t>(std::min<std::uint64_t>(length, opts_.write_buffer_size)));
  const asio::const_buffer parts[2] = {a, b};
  std::size_t part = 0, part_offset = 0;
  std::uint64_t offset = 0;
  bool first = true;
  while (offset < length) {
    std::size_t used = 0;
    while (used < scratch.size() && part < 2) {
      const auto& src = parts[part];
      const auto n = std::min(scratch.size() - used, src.size() - part_offset);
      copy_masked(scratch.data() + used, static_cast<const std::uint8_t*>(src.data()) + part_offset, n, mask,
                  offset + used);
      used += n;
      part_offset += n;
      if (part_offset == src.size()) {
        ++part;
        part_offset = 0;
      }
    }
    offset += used;
    if (first) {
      std::array<asio::const_buffer, 5> bufs;
      std::size_t count = 0;
      for (const auto& h : head) bufs[count++] = h;
      bufs[count++] = asio::buffer(scratch.data(), used);
      co_await transport_->write(std::span(bufs.data(), count), ec);
      first = false;
    } else {
      const asio::const_buffer piece = asio::buffer(scratch.data(), used);
      co_await transport_->write(std::span(&piece, 1), ec);
    }
    if (ec) co_return;
  }
}

// Moves the queued control frames into control_inflight_, whose storage is kept from one write
// to the next: pings and pongs cost no allocation once a connection has sent one.
void connection::take_pending_control() {
  control_inflight_.insert(control_inflight_.end(), pending_pongs_.begin(), pending_pongs_.end());
  control_inflight_.insert(control_inflight_.end(), pending_ping_.begin(), pending_ping_.end());
  pending_pongs_.clear();
  pending_ping_.clear();
}

void connection::queue_control(std::vector<std::uint8_t>& out, opcode op, const std::uint8_t* p, std::size_t n) {
  const auto at = out.size();
  out.resize(at + max_header_size + n);
  std::uint8_t mask[4];
  std::size_t header_size;
  if (role_ == wsl::role::client) {
    fill_mask(mask);
    header_size = write_frame_header(out.data() + at, op, true, n, mask);
    copy_masked(out.data() + at + header_size, p, n, mask, 0);
  } else {
    header_size = write_frame_header(out.data() + at, op, true, n);
    if (n != 0) std::memcpy(out.data() + at + header_size, p, n);
  }
  out.resize(at + header_size + n);
}

// Pings and the close frame are written at once (behind any frame being written).
asio::awaitable<void> connection::write_control(opcode op, asio::const_buffer payload, std::error_code& ec) {
  ec = {};
  if (socket_busy_) co_await wait_for_socket(ec);
  if (!ec && state_ == state::closed) ec = end_error();
  // A ping that waited for the socket while our close frame took it goes no further, as ping()
  // refuses once the close is sent: nothing may follow our close frame (RFC 6455 section 1.4),
  // and the connection may end while the ping is half written. (The close frame itself sets
  // close_sent_ before it waits.)
  if (!ec && op != opcode::close && close_sent_) ec = error::closed;
  if (ec) co_return;
  socket_busy_ = true;
  socket_guard guard{*this};
  take_pending_control();
  queue_control(control_inflight_, op, static_cast<const std::uint8_t*>(payload.data()), payload.size());
  co_await send_cork_and_control(ec);
  guard.disarm();
}

asio::awaitable<void> connection::send_close_frame(std::uint16_t code, std::string_view reason, std::error_code& ec) {
  close_sent_ = true;
  if (state_ == state::open) state_ = state::closing;
  local_close_ = {code, std::string(reason)};
  std::uint8_t payload[2 + max_control_payload];
  std::size_t n = 0;
  if (code != 0) {
    payload[0] = static_cast<std::uint8_t>(code >> 8);
    payload[1] = static_cast<std::uint8_t>(code);
    n = 2 + std::min<std::size_t>(reason.size(), max_control_payload - 2);
    if (n > 2) std::memcpy(payload + 2, reason.data(), n - 2);
  }
  co_await write_control(opcode::close, asio::buffer(payload, n), ec);
}

asio::awaitable<void> connection::flush_pending(std::error_code& ec) {
  ec = {};
  if (!flush_needed() || state_ == state::closed) co_return;
  socket_busy_ = true;
  socket_guard guard{*this};
  take_pending_control();
  co_await send_cork_and_control(ec);
  guard.disarm();
}

// Writes the cork, then control_inflight_ (either may be empty), on the socket the caller took;
// gives the socket back. The cork's bytes were counted when they joined it.
asio::awaitable<void> connection::send_cork_and_control(std::error_code& ec) {
  const asio::const_buffer bufs[2] = {asio::buffer(cork_.data(), cork_used_), asio::buffer(control_inflight_)};
  std::span<const asio::const_buffer> out(bufs);
  if (cork_used_ == 0) out = out.subspan(1);
  if (control_inflight_.empty()) out = out.first(out.size() - 1);
  co_await transport_->write(out, ec);
  if (!ec) bytes_out_ += control_inflight_.size();
  control_inflight_.clear();
  release_cork();
  release_socket();
  if (ec) write_failed(ec);
}

void connection::write_failed(std::error_code& ec) noexcept {
  // A write the caller cancelled may have left a frame half sent: nothing can follow it, so the
  // connection is dropped (asio's terminal cancellation), and this write says why.
  const bool cancelled_here = cancelled(ec) && !end_reason_;
  abort(cancelled_here ? make_error_code(error::aborted) : make_error_code(error::connection_lost));
  ec = cancelled_here ? make_error_code(asio::error::operation_aborted) : end_error();
}

void connection::schedule_flush() {
  if (flush_scheduled_ || state_ == state::closed) return;
  flush_scheduled_ = true;
  asio::co_spawn(
      executor_,
      [self = shared_from_this()]() -> asio::awaitable<void> {
        self->flush_scheduled_ = false;
        std::error_code ec;
        co_await self->flush_pending(ec);
      },
      asio::detached);
}

// Mask keys come from OpenSSL's CSPRNG (seeded by the OS), fetched a few thousand at a time.
void connection::fill_mask(std::uint8_t mask[4]) noexcept {
  thread_local std::array<std::uint8_t, 4096> pool;
  thread_local std::size_t used = pool.size();
  if (used + 4 > pool.size()) {
    if (RAND_bytes(pool.data(), static_cast<int>(pool.size())) != 1) {
      std::random_device rd;
      for (std::size_t i = 0; i < pool.size(); i += 4) {
        const auto v = rd();
        std::memcpy(pool.data() + i, &v, 4);
      }
    }
    used = 0;
  }
  std::memcpy(mask, pool.data() + used, 4);
  used += 4;
}

// ------------------------------------------------------------------------------------------------
// Control operations

asio::awaitable<void> connection::ping(std::shared_ptr<connection> self, asio::const_buffer payload,
                                       std::error_code& ec) {
  ec = {};
  if (payload.size() > max_control_payload) {
    ec = error::control_too_large;
    co_return;
  }
  if (self->close_sent_ || self->state_ != state::open) {
    ec = self->state_ == state::closed ? self->end_error() : error::closed;
    co_return;
  }
  co_await self->write_control(opcode::ping, payload, ec);
}

asio::awaitable<void> connection::close(std::shared_ptr<connection> self, std::uint16_t code, std::string reason,
                                        std::error_code& ec) {
  ec = {};
  auto& c = *self;
  if (c.state_ == state::closed) co_return;
  if ((code != 0 && !is_valid_close_code(code)) || (code == 0 && !reason.empty()) ||
      reason.size() > max_control_payload - 2 || !utf8_validator::validate(reason.data(), reason.size())) {
    ec = error::bad_close_code;
    co_return;
  }
  if (!c.close_sent_) {
    c.start_close_timer();
    co_await c.send_close_frame(code, reason, ec);
    if (ec) co_return;
  }
  // A reader gets the messages that come before the peer's close, and finishes the handshake
  // when it reads that close. While no read is in progress, close() reads and discards itself.
  const asio::cancellation_state cancellation = co_await asio::this_coro::cancellation_state;
  while (c.reading_ && c.state_ != state::closed) {
    if (cancellation.cancelled() != asio::cancellation_type::none) {
      // Cancelled while the reader waits for the peer's close: given up, as below (and checked
      // before each wait, since a co_await in a cancelled coroutine may throw).
      c.abort(error::aborted);
      ec = asio::error::operation_aborted;
      co_return;
    }
    co_await c.wait_for_wake();
  }
  if (c.state_ != state::closed) {
    c.reading_ = true;
    c.closer_reading_ = true;
    closer_guard guard{c};
    std::error_code read_ec;
    while (c.state_ != state::closed && !read_ec) {
      if (c.msg_open_)
        co_await c.skip_message(read_ec);
      else {
        co_await c.read_frame(read_ec);
        if (!read_ec) read_ec = c.start_data_frame(c.frame_, true);
      }
    }
    if (cancelled(read_ec)) {
      // Cancelled while it waited for the peer's close: the handshake is given up, as at the
      // close timeout, and the caller hears why.
      c.abort(error::aborted);
      ec = read_ec;
      co_return;
    }
    if (read_ec) co_await c.fail(read_ec);
  }
  if (c.end_reason_ != error::closed) ec = c.end_error();
}

asio::awaitable<void> connection::wait_for_wake() {
  ++waiters_;
  std::error_code ignored;
  co_await waker().async_wait(use_ec(ignored));
  --waiters_;
}

// A read has ended. During the close handshake a close() may be waiting to read in its place.
void connection::reader_done() noexcept {
  reading_ = false;
  // Also when the read ended by an exception between its wait's start and end (a cancellation
  // asio throws at a co_await): nobody waits on the socket any more.
  read_waiting_ = false;
  idle_wait_ = false;
  if (close_sent_ && waiters_) cancel_timer(*wake_);
}

// A read asked for while another is in progress fails with read_in_progress; while close()
// reads in the application's place, it ends with the handshake instead.
asio::awaitable<void> connection::refuse_read(std::error_code& ec) {
  if (!closer_reading_) {
    ec = error::read_in_progress;
    co_return;
  }
  // A cancelled read that waits here ends as any cancelled read does, and the handshake goes on.
  const asio::cancellation_state cancellation = co_await asio::this_coro::cancellation_state;
  while (state_ != state::closed) {
    if (cancellation.cancelled() != asio::cancellation_type::none) {
      ec = asio::error::operation_aborted;
      co_return;
    }
    co_await wait_for_wake();
  }
  ec = end_error();
}

// ------------------------------------------------------------------------------------------------
// Keepalive: pings, latency and the idle timeout, from one timer per connection.

timer& connection::waker() {
  if (!wake_) {
    wake_ = std::make_unique<timer>(executor_);
    wake_->expires_at(clock::time_point::max());
  }
  return *wake_;
}

void connection::arm_keepalive() {
  if (state_ != state::open || close_timer_armed_) return;
  const auto now = clock::now();
  auto next = clock::time_point::max();
  const bool pinging = opts_.ping != ping_mode::none && opts_.ping_interval.count() > 0;
  if (pinging)
    next = opts_.ping == ping_mode::latency ? next_ping_ : std::max(next_ping_, last_activity_ + opts_.ping_interval);
  // A large receive buffer is looked at every buffer_release_delay, and given back once the
  // connection has waited that long between messages.
  watching_memory_ = holds_memory();
  if (watching_memory_) {
    auto at = (idle_wait_ ? last_activity_ : now) + buffer_release_delay;
    if (at <= now) at = now + buffer_release_delay;
    next = std::min(next, at);
  }
  if (opts_.idle_timeout.count() > 0) {
    auto idle_deadline = last_activity_ + opts_.idle_timeout;
    // Not reading: the application holds the data back, the peer is not to blame. Look again later.
    if (idle_deadline <= now) idle_deadline = now + opts_.idle_timeout;
    next = std::min(next, idle_deadline);
  }
  if (next == clock::time_point::max()) return;
  keepalive_.expires_at(next);
  keepalive_.async_wait([weak = weak_from_this()](std::error_code ec) {
    if (ec) return;
    if (auto self = weak.lock()) self->on_keepalive();
  });
}

void connection::on_keepalive() {
  if (state_ != state::open || close_timer_armed_) return;
  const auto now = clock::now();
  if (opts_.idle_timeout.count() > 0 && read_waiting_ && now - last_activity_ >= opts_.idle_timeout) {
    abort(error::idle_timeout);  // a half-open connection: nothing to say a close frame to
    return;
  }
  if (opts_.ping != ping_mode::none && opts_.ping_interval.count() > 0 && !close_sent_ && now >= next_ping_ &&
      (opts_.ping == ping_mode::latency || now - last_activity_ >= opts_.ping_interval)) {
    std::uint8_t payload[latency_ping_size];
    std::memcpy(payload, ping_tag, 4);
    const std::int64_t stamp = now.time_since_epoch().count();
    std::memcpy(payload + 4, &stamp, 8);
    pending_ping_.clear();
    queue_control(pending_ping_, opcode::ping, payload, sizeof payload);
    schedule_flush();
    next_ping_ = now + opts_.ping_interval;
  }
  // Waiting between messages for a while with a large buffer: the read is cancelled and made
  // again with the small one (read_message()), so that a quiet connection holds no large buffer.
  if (idle_wait_ && holds_memory() && !socket_busy_ && !release_requested_ &&
      now - last_activity_ >= buffer_release_delay && transport_->cancel_read())
    release_requested_ = true;
  arm_keepalive();
}

void connection::record_pong(const std::uint8_t* p, std::size_t n) noexcept {
  if (n != latency_ping_size || std::memcmp(p, ping_tag, 4) != 0) return;
  std::int64_t stamp;
  std::memcpy(&stamp, p + 4, 8);
  const auto rtt = clock::duration(clock::now().time_since_epoch().count() - stamp);
  if (rtt.count() < 0 || rtt > std::chrono::hours(1)) return;
  latency_.last = rtt;
  latency_.smoothed = latency_.samples == 0 ? rtt : latency_.smoothed + (rtt - latency_.smoothed) / 8;
  ++latency_.samples;
}

// The keepalive timer serves as the close deadline once closing starts: no more pings then.
void connection::start_close_timer() {
  if (close_timer_armed_ || opts_.close_timeout.count() <= 0) return;
  close_timer_armed_ = true;
  keepalive_.expires_after(opts_.close_timeout);
  keepalive_.async_wait([weak = weak_from_this()](std::error_code ec) {
    if (ec) return;
    if (auto self = weak.lock()) self->abort(error::close_timeout);
  });
}

}  // namespace wsl::detail
