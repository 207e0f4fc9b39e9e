// The RFC 6455 connection behind a wsl::websocket: frame codec, masking, UTF-8 checks, control
// frames, the close handshake, pings, latency and the idle timeout. Private to the library.
#pragma once

#include "wsl/clock.hpp"
#include "wsl/detail/buffer_pool.hpp"
#include "wsl/detail/frame.hpp"
#include "wsl/detail/utf8.hpp"
#include "wsl/extension.hpp"
#include "wsl/options.hpp"
#include "wsl/websocket.hpp"

#include <asio/awaitable.hpp>

#include <array>
#include <memory>
#include <string>
#include <vector>

namespace wsl::detail {

class connection : public std::enable_shared_from_this<connection> {
 public:
  connection(std::unique_ptr<transport> t, wsl::role r, const connection_options& options);
  ~connection();
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  // Set up by the handshake before the connection is handed out.
  void preload(std::string_view bytes);  // bytes that arrived behind the HTTP head
  void set_request(http_request r) { request_ = std::move(r); }
  void set_subprotocol(std::string s) { subprotocol_ = std::move(s); }
  // The place this connection holds in `b`, counted for `address` (the client's).
  void set_budget(std::shared_ptr<connection_budget> b, const asio::ip::address& address) noexcept {
    budget_ = std::move(b);
    budget_address_ = address;
  }
  void set_extension(std::unique_ptr<message_extension> e) noexcept {
    ext_ = std::move(e);
    allowed_rsv_ = ext_ ? ext_->rsv_bits() : 0;
  }
  const message_extension* extension() const noexcept { return ext_.get(); }
  // Starts pings and the idle timeout.
  void start();

  // ---- reading
  asio::awaitable<message_reader> read_message(std::error_code& ec);
  asio::awaitable<asio::const_buffer> read_chunk(std::uint64_t seq, std::error_code& ec);
  asio::awaitable<std::size_t> read_some(std::uint64_t seq, asio::mutable_buffer buffer, std::error_code& ec);
  bool message_done(std::uint64_t seq) const noexcept { return seq != seq_ || !msg_open_; }
  std::uint64_t message_bytes(std::uint64_t seq) const noexcept { return seq == seq_ ? msg_read_ : 0; }
  std::size_t buffered() const noexcept { return rend_ - rpos_; }

  // ---- writing: one outgoing message at a time, between begin_writer() and end_writer()
  std::error_code begin_writer(message_type type) noexcept;
  void end_writer() noexcept;
  // Sends the next part of the outgoing message: a followed by b (either may be empty), through
  // the extension's encoder when it has one; fin ends the message.
  void choose_encoder(std::uint64_t size, bool fin);
  asio::awaitable<void> write_data(asio::const_buffer a, asio::const_buffer b, bool fin, std::error_code& ec);
  asio::awaitable<void> write_message(message_type type, asio::const_buffer data, std::error_code& ec);
  asio::awaitable<void> write_messages(std::span<const outgoing_message> messages, std::error_code& ec);
  std::size_t write_buffer_size() const noexcept { return opts_.write_buffer_size; }
  // A writer that sent fragments went away: the message cannot be completed, close with 1011.
  void abandon_message() noexcept;

  // ---- control
  static asio::awaitable<void> ping(std::shared_ptr<connection> self, asio::const_buffer payload, std::error_code& ec);
  static asio::awaitable<void> close(std::shared_ptr<connection> self, std::uint16_t code, std::string reason,
                                     std::error_code& ec);
  void abort(std::error_code reason) noexcept;

  // ---- state
  bool is_open() const noexcept { return state_ == state::open && !close_sent_; }
  asio::any_io_executor get_executor() const { return executor_; }
  transport& get_transport() noexcept { return *transport_; }
  const latency_stats& latency() const noexcept { return latency_; }
  const close_status& peer_close() const noexcept { return peer_close_; }
  const close_status& local_close() const noexcept { return local_close_; }
  const http_request& request() const noexcept { return request_; }
  const std::string& subprotocol() const noexcept { return subprotocol_; }
  const connection_options& options() const noexcept { return opts_; }
  wsl::role role() const noexcept { return role_; }
  void set_control_callback(control_callback cb) { on_control_ = std::move(cb); }
  std::uint64_t bytes_received() const noexcept { return bytes_in_; }
  std::uint64_t bytes_sent() const noexcept { return bytes_out_; }

 private:
  enum class state : std::uint8_t { open, closing, closed };
  // Inline receive buffer: holds any control frame (131 bytes) with a partial header, and small
  // messages whole. Larger traffic grows into pooled buffers.
  static constexpr std::size_t small_buffer_size = 256;
  static constexpr std::size_t small_masked_size = 128;  // client frames masked on the stack

  // Reading internals.
  asio::awaitable<void> read_frame(std::error_code& ec);
  std::size_t parse_checked_header(frame_header& h, std::error_code& ec) noexcept;
  bool try_data_frame(std::error_code& ec) noexcept;
  asio::awaitable<void> fill(std::error_code& ec);
  asio::awaitable<std::size_t> receive(asio::mutable_buffer buffer, std::error_code& ec);
  void begin_read() noexcept;
  void account_read(std::size_t n) noexcept;
  bool end_read(std::error_code& ec) noexcept;
  void write_failed(std::error_code& ec) noexcept;
  asio::awaitable<void> skip_message(std::error_code& ec);
  asio::awaitable<asio::const_buffer> next_chunk(std::size_t max, std::error_code& ec);
  bool try_next_chunk(std::size_t max, asio::const_buffer& chunk, std::error_code& ec) noexcept;
  asio::const_buffer take_chunk(std::size_t max, std::error_code& ec) noexcept;
  asio::awaitable<void> handle_control(opcode op, std::uint8_t* payload, std::size_t n, std::error_code& ec);
  asio::awaitable<void> on_close_frame(const std::uint8_t* payload, std::size_t n, std::error_code& ec);
  std::error_code start_data_frame(const frame_header& h, bool first) noexcept;
  void take_raw(std::uint8_t* p, std::size_t n) noexcept;
  std::error_code deliver(const std::uint8_t* p, std::size_t n) noexcept;
  std::error_code end_message() noexcept;
  asio::awaitable<asio::const_buffer> next_decoded_chunk(std::size_t max, std::error_code& ec);
  void prepare_read_space();
  void use_big_buffer();
  // A large receive buffer, ours or the transport's (TLS input), that an idle connection gives back.
  bool holds_memory() const noexcept { return big_ || transport_->holds_idle_memory(); }
  void use_small_buffer() noexcept;
  asio::awaitable<void> drain_until_eof();

  // Failing and ending.
  asio::awaitable<void> fail(std::error_code reason);
  void shutdown(std::error_code reason) noexcept;
  std::error_code end_error() const noexcept;

  // Writing internals.
  asio::awaitable<void> wait_for_socket(std::error_code& ec);
  void release_socket() noexcept;
  // Sends one frame whose payload is a followed by b.
  asio::awaitable<void> write_frame(opcode op, bool fin, std::uint8_t rsv, asio::const_buffer a, asio::const_buffer b,
                                    std::error_code& ec);
  asio::awaitable<void> write_encoded(asio::const_buffer a, asio::const_buffer b, bool fin, std::error_code& ec);
  asio::awaitable<void> write_masked(std::span<asio::const_buffer> head, const std::uint8_t mask[4],
                                     asio::const_buffer a, asio::const_buffer b, std::error_code& ec);
  asio::awaitable<void> write_control(opcode op, asio::const_buffer payload, std::error_code& ec);
  asio::awaitable<void> send_close_frame(std::uint16_t code, std::string_view reason, std::error_code& ec);
  // Sends what waits: corked frames, then queued pongs and ping.
  asio::awaitable<void> flush_pending(std::error_code& ec);
  asio::awaitable<void> send_cork_and_control(std::error_code& ec);
  bool flush_needed() const noexcept { return (cork_used_ != 0 || control_pending()) && !socket_busy_; }
  // Before a read from the transport: the cork waits only when that read will not (TLS input
  // already buffered), so that answers to what it holds join it.
  bool flush_before_read() noexcept {
    return !socket_busy_ && (control_pending() || (cork_used_ != 0 && !transport_->has_buffered_input()));
  }
  // More of the peer's input is at hand: in the receive buffer or inside the transport.
  bool input_at_hand() noexcept { return rpos_ != rend_ || transport_->has_buffered_input(); }
  bool try_cork(opcode op, bool fin, std::uint8_t rsv, asio::const_buffer a, asio::const_buffer b);
  std::size_t put_frame(std::uint8_t* out, opcode op, bool fin, std::uint8_t rsv, asio::const_buffer a,
                        asio::const_buffer b) noexcept;
  void post_uncork();
  // After a write that carried the cork (in front of everything else).
  void release_cork() noexcept {
    cork_.reset();
    cork_used_ = 0;
  }
  void queue_control(std::vector<std::uint8_t>& out, opcode op, const std::uint8_t* p, std::size_t n);
  bool control_pending() const noexcept { return !pending_pongs_.empty() || !pending_ping_.empty(); }
  std::size_t put_pending(asio::const_buffer* bufs);
  void end_write(std::uint64_t wire, std::error_code& ec);
  void take_pending_control();
  void schedule_flush();
  void fill_mask(std::uint8_t mask[4]) noexcept;

  // Keepalive.
  void arm_keepalive();
  void on_keepalive();
  void start_close_timer();
  void record_pong(const std::uint8_t* p, std::size_t n) noexcept;
  asio::awaitable<void> wait_for_wake();
  asio::awaitable<void> refuse_read(std::error_code& ec);
  void reader_done() noexcept;
  struct reader_guard;
  struct closer_guard;
  struct socket_guard;

  asio::any_io_executor executor_;
  std::unique_ptr<transport> transport_;
  connection_options opts_;
  wsl::role role_;
  state state_ = state::open;

  // Receive buffer: [rpos_, rend_) unread bytes of rbuf_ (capacity rcap_), either small_ or big_.
  std::uint8_t* rbuf_;
  std::size_t rcap_ = small_buffer_size;
  std::size_t rpos_ = 0, rend_ = 0;
  pooled_buffer big_;
  std::uint8_t quiet_reads_ = 0;    // short reads in a row while holding big_
  bool grow_ = false;               // the last read filled the buffer
  bool idle_wait_ = false;          // read_message() waits for the next message
  bool release_requested_ = false;  // its read was cancelled to give back big_
  bool watching_memory_ = false;    // the keepalive timer looks for buffers to give back
  // How long a connection waits between messages before it gives back its large buffer.
  static constexpr clock::duration buffer_release_delay = std::chrono::seconds(1);

  // The data frame being read and the message it belongs to.
  frame_header frame_;
  std::uint64_t frame_left_ = 0;
  std::uint64_t frame_offset_ = 0;
  std::uint64_t seq_ = 0;       // number of the current message
  std::uint64_t msg_size_ = 0;  // sum of the frame lengths announced so far
  std::uint64_t msg_read_ = 0;  // bytes handed to the reader
  message_type msg_type_ = message_type::binary;
  bool msg_open_ = false;
  utf8_validator utf8_;
  bool reading_ = false;
  bool closer_reading_ = false;  // close() reads in the application's place (reading_ is set too)
  bool read_waiting_ = false;

  // The negotiated message extension; a message it transforms is decoded into decoded_.
  std::unique_ptr<message_extension> ext_;
  std::uint8_t allowed_rsv_ = 0;
  payload_transform* decoder_ = nullptr;
  const std::uint8_t* pending_in_ = nullptr;  // raw payload (in rbuf_) not yet given to the decoder
  std::size_t pending_in_len_ = 0;
  pooled_buffer decoded_;

  // Writing: one frame on the socket at a time; control frames queue behind it.
  bool socket_busy_ = false;
  bool writer_active_ = false;
  // The outgoing message.
  message_type out_type_ = message_type::binary;
  bool out_started_ = false;  // its first frame went out
  bool encoder_chosen_ = false;
  payload_transform* encoder_ = nullptr;
  std::uint8_t out_rsv_ = 0;
  bool flush_scheduled_ = false;
  // The cork: small frames written while more of the peer's input is already buffered (a peer
  // that pipelines) gather here and leave in one send: before the next socket read, in front of
  // the next write, or at the latest one turn of the executor later. Borrowed from the pool only
  // while it holds something.
  static constexpr std::size_t cork_capacity = 16 << 10;
  pooled_buffer cork_;
  std::uint32_t cork_used_ = 0;
  bool uncork_posted_ = false;
  std::uint32_t waiters_ = 0;
  // Never expires; cancel() wakes every waiter, which re-checks its condition. Made on first use.
  std::unique_ptr<timer> wake_;
  timer& waker();
  std::vector<std::uint8_t> pending_pongs_, pending_ping_, control_inflight_;

  // Closing.
  bool close_sent_ = false;
  bool close_received_ = false;
  bool close_timer_armed_ = false;
  close_status peer_close_, local_close_;
  std::error_code end_reason_;
  timer keepalive_;  // pings and the idle timeout; the close deadline once closing

  // Liveness and statistics.
  clock::time_point last_activity_{};
  clock::time_point next_ping_{};
  latency_stats latency_;
  std::uint64_t bytes_in_ = 0, bytes_out_ = 0;
  control_callback on_control_;
  http_request request_;
  std::string subprotocol_;
  std::shared_ptr<connection_budget> budget_;
  asio::ip::address budget_address_;

  std::uint8_t small_[small_buffer_size];
};

}  // namespace wsl::detail
