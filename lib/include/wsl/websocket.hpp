// One WebSocket connection, and its messages as streams.
//
//   wsl::websocket ws = co_await listener.accept();
//   for (;;) {
//     std::error_code ec;
//     wsl::message_reader in = co_await ws.read_message(ec);
//     if (ec) break;                                    // wsl::error::closed after a clean close
//     wsl::message_writer out = ws.create_message_writer(in.type());
//     for (char buf[4096]; std::size_t n = co_await in.read_some(asio::buffer(buf), ec);)
//       co_await out.write(asio::buffer(buf, n), ec);
//     co_await out.finish(ec);
//   }
//
// A websocket belongs to the executor it was created on: use it from that executor only (one
// io_context per thread, as wsl's CLI does, or a strand). One read and one write may be in
// progress at once; control frames (pings, pongs, close) are handled while a read is in progress.
//
// Cancellation, as for asio's own operations (co_spawn with bind_cancellation_slot, or the loser
// of an awaitable operators' ||, a read with a time limit:
// `co_await (ws.read_message(ec) || timer.async_wait(asio::use_awaitable))`):
// - a read waiting for the peer ends with asio::error::operation_aborted and takes nothing from
//   the stream: the connection goes on, and the next read starts where this one stopped;
// - a write waiting for the socket may have sent part of a frame, which nothing can follow: the
//   connection is dropped (no close frame), the write ends with operation_aborted, and what comes
//   later with error::aborted;
// - close() cancelled while it waits for the peer's close (reading itself, or waiting for the
//   application's read to see that close) gives the handshake up, as its close_timeout would:
//   the connection is dropped, close() ends with operation_aborted, a read in progress with
//   error::aborted. A read cancelled while close() reads in its place ends with operation_aborted,
//   and the handshake goes on.
// asio's throw_if_cancelled applies as usual: the next co_await of the cancelled coroutine throws
// unless it was turned off.
#pragma once

#include "wsl/clock.hpp"
#include "wsl/error.hpp"
#include "wsl/http.hpp"
#include "wsl/options.hpp"
#include "wsl/transport.hpp"

#include <asio/awaitable.hpp>
#include <asio/buffer.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace wsl {

namespace detail {
class connection;
}

enum class message_type : std::uint8_t { text = 1, binary = 2 };

// One whole message of websocket::write_messages(): its bytes are the caller's until that completes.
struct outgoing_message {
  message_type type = message_type::text;
  asio::const_buffer data;
};

enum class role { server, client };

// Close status codes of RFC 6455 section 7.4.1 that applications use most.
namespace close_code {
constexpr std::uint16_t normal = 1000;
constexpr std::uint16_t going_away = 1001;
constexpr std::uint16_t protocol_error = 1002;
constexpr std::uint16_t unsupported_data = 1003;
constexpr std::uint16_t no_status = 1005;  // never sent: "the close frame had no code"
constexpr std::uint16_t abnormal = 1006;   // never sent: "the connection dropped without close"
constexpr std::uint16_t invalid_payload = 1007;
constexpr std::uint16_t policy_violation = 1008;
constexpr std::uint16_t too_big = 1009;
constexpr std::uint16_t internal_error = 1011;
constexpr std::uint16_t bad_gateway = 1014;  // a gateway's server behind failed (IANA's registry)
}  // namespace close_code

struct close_status {
  std::uint16_t code = 0;  // 0 while no close frame has arrived; 1005 for a close without code
  std::string reason;
};

// Round-trip times measured from pongs to the library's own timestamped pings.
struct latency_stats {
  clock::duration last{};
  clock::duration smoothed{};  // exponentially weighted, 1/8 per sample as TCP's SRTT
  std::uint64_t samples = 0;
};

enum class control_kind { ping, pong, close };
// Called for every control frame received, before the library acts on it.
using control_callback = std::function<void(control_kind, std::string_view payload)>;

// One incoming message as a stream. The type is known at once, the length is not. It reads
// bytes of this message only and returns 0 (or an empty chunk) at its end; fragmentation and
// interleaved control frames are invisible. Valid while its websocket lives and until the next
// read_message().
class message_reader {
 public:
  message_reader() noexcept = default;
  message_type type() const noexcept { return type_; }
  // True once the last byte of the message has been read.
  bool done() const noexcept;
  // Payload bytes read so far.
  std::uint64_t bytes_read() const noexcept;
  // Bytes already received and not yet read (of this message and possibly frames after it). When
  // 0, the next read waits for the network: a relay flushes what it holds at that point.
  std::size_t buffered() const noexcept;

  // Reads up to buffer.size() bytes of the message; 0 at its end.
  asio::awaitable<std::size_t> read_some(asio::mutable_buffer buffer, std::error_code& ec);
  asio::awaitable<std::size_t> read_some(asio::mutable_buffer buffer);
  // The next bytes of the message where they already lie, without copying; empty at its end.
  // The view is valid until the next read on this websocket.
  asio::awaitable<asio::const_buffer> read_chunk(std::error_code& ec);
  // The rest of the message as a string (for small messages; bounded by max_message_size).
  asio::awaitable<std::string> read_all(std::error_code& ec);
  asio::awaitable<std::string> read_all();

 private:
  friend class websocket;
  friend class detail::connection;
  message_reader(detail::connection* c, std::uint64_t seq, message_type t) noexcept : conn_(c), seq_(seq), type_(t) {}
  detail::connection* conn_ = nullptr;
  std::uint64_t seq_ = 0;
  message_type type_ = message_type::binary;
};

// One outgoing message as a stream. Writes are buffered up to write_buffer_size and sent as a
// fragment each time the buffer fills (a large write goes out directly, uncopied on the server
// side); finish() sends the final frame. Destroying an unfinished writer abandons the message: if
// fragments were already sent the connection is closed with 1011, since the peer cannot be told
// otherwise.
class message_writer {
 public:
  message_writer() noexcept = default;
  message_writer(message_writer&& other) noexcept;
  message_writer& operator=(message_writer&& other) noexcept;
  ~message_writer();

  asio::awaitable<void> write(asio::const_buffer data, std::error_code& ec);
  asio::awaitable<void> write(asio::const_buffer data);
  // Sends what is buffered now, as a fragment (nothing when the buffer is empty).
  asio::awaitable<void> flush(std::error_code& ec);
  // Sends what is buffered as the final frame.
  asio::awaitable<void> finish(std::error_code& ec);
  asio::awaitable<void> finish();
  // write(data) then finish(), in one frame when it fits.
  asio::awaitable<void> finish(asio::const_buffer data, std::error_code& ec);
  bool finished() const noexcept { return finished_; }
  message_type type() const noexcept { return type_; }

 private:
  friend class websocket;
  message_writer(detail::connection* c, message_type t, std::error_code init) noexcept;
  asio::awaitable<void> send(asio::const_buffer extra, bool fin, std::error_code& ec);
  void abandon() noexcept;

  detail::connection* conn_ = nullptr;
  message_type type_ = message_type::binary;
  std::error_code error_;
  std::uint8_t* buffer_ = nullptr;  // from the buffer pool, once something is buffered
  std::size_t capacity_ = 0;
  std::size_t used_ = 0;
  bool started_ = false;  // a first frame went out
  bool finished_ = false;
};

class websocket {
 public:
  websocket() noexcept;
  explicit websocket(std::shared_ptr<detail::connection> c) noexcept;
  websocket(websocket&&) noexcept;
  websocket& operator=(websocket&&) noexcept;
  ~websocket();  // an open websocket is dropped (abort()); close it first for a clean end

  // Wraps an already connected, already negotiated stream (tests, custom transports).
  static websocket adopt(std::unique_ptr<transport> t, role r, const connection_options& options = {});

  bool is_open() const noexcept;
  explicit operator bool() const noexcept { return impl_ != nullptr; }
  asio::any_io_executor get_executor() const;

  // Waits for the next message. A message still unread is skipped first (and still validated).
  asio::awaitable<message_reader> read_message(std::error_code& ec);
  asio::awaitable<message_reader> read_message();

  // A writer for a new message; its first write fails with error::write_in_progress while
  // another writer of this websocket is unfinished.
  message_writer create_message_writer(message_type type);
  // A whole message in one frame. Completes when the frame is handed to the kernel; or, while
  // more of the peer's input is already buffered (a peer that pipelines), when a small frame has
  // joined the connection's cork: corked frames leave together in one send, before the next read
  // from the socket, in front of any later write, or one turn of the executor later at the latest.
  asio::awaitable<void> write_message(message_type type, asio::const_buffer data, std::error_code& ec);
  asio::awaitable<void> write_message(message_type type, asio::const_buffer data);
  // Whole messages, each in one frame, in order, in as few sends as it can: for a sender with a
  // queue (a broadcast, lines read ahead), where one write_message() each would cost a system
  // call each. Up to 64 messages and 64 KiB leave in one gathered write; a larger message, and
  // every message while an extension is negotiated, leaves as write_message() sends it. Fails as
  // write_message() does; on failure, an unknown number of them were sent.
  asio::awaitable<void> write_messages(std::span<const outgoing_message> messages, std::error_code& ec);
  asio::awaitable<void> write_messages(std::span<const outgoing_message> messages);

  // Sends a ping (payload up to 125 bytes). Its pong is reported to the control callback.
  asio::awaitable<void> ping(asio::const_buffer payload, std::error_code& ec);
  // The close handshake: sends a close frame, waits for the peer's (at most close_timeout) and
  // closes the connection. Does nothing on a websocket already closed. Messages the peer sent
  // before it saw our close still come: while another coroutine reads, they go to it (RFC 6455
  // section 1.4 discards only what follows the peer's close), and its read after the last one
  // ends with error::closed. While no read is in progress, close() reads and discards them
  // itself; a read asked for meanwhile waits and ends with the handshake (error::closed).
  asio::awaitable<void> close(std::uint16_t code, std::string_view reason, std::error_code& ec);
  asio::awaitable<void> close(std::uint16_t code = close_code::normal, std::string_view reason = {});
  // Drops the connection without a close handshake.
  void abort() noexcept;

  latency_stats latency() const noexcept;
  // What the peer sent in its close frame (code 0 while none arrived). A peer's close that comes
  // first is answered with its code and reason (1000 and none when it had no code).
  const close_status& peer_close() const noexcept;
  // What we sent in ours (code 0 while none was sent).
  const close_status& local_close() const noexcept;
  // The request this connection was opened with (server role).
  const http_request& request() const noexcept;
  std::string_view subprotocol() const noexcept;
  // The TCP endpoints (default-constructed over a Unix-domain socket).
  asio::ip::tcp::endpoint remote_endpoint() const noexcept;
  asio::ip::tcp::endpoint local_endpoint() const noexcept;
  // Over a Unix-domain socket, who is at the other end; nullopt over TCP and TLS.
  std::optional<peer_credentials> unix_peer() const noexcept;
  const connection_options& options() const noexcept;
  wsl::role role() const noexcept;
  void set_control_callback(control_callback cb);
  // WebSocket bytes on the wire since it opened: every frame, header and (compressed) payload
  // included; the HTTP handshake and TLS overhead not.
  std::uint64_t bytes_received() const noexcept;
  std::uint64_t bytes_sent() const noexcept;

  detail::connection* impl() const noexcept { return impl_.get(); }

 private:
  std::shared_ptr<detail::connection> impl_;
};

}  // namespace wsl
