// The byte stream under a websocket: TCP, a Unix-domain socket, TLS (a connection_extension wraps
// TCP), or an in-memory pipe in tests. One virtual call per read or write, never per frame or byte.
//
// A stream opened by the caller (a socket it connected, a transport of its own) becomes a
// websocket through wsl::client_handshake() (client.hpp) on the client side and
// wsl::accept_websocket() (listener.hpp) on the server side.
#pragma once

#include "wsl/peer_credentials.hpp"

#include <sys/types.h>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/buffer.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

namespace wsl {

class transport {
 public:
  virtual ~transport() = default;
  virtual asio::any_io_executor get_executor() = 0;
  // Reads at least one byte; sets asio::error::eof at the end of the stream.
  virtual asio::awaitable<std::size_t> read_some(asio::mutable_buffer buffer, std::error_code& ec) = 0;
  // Writes all of the buffers, gathered, or fails.
  virtual asio::awaitable<void> write(std::span<const asio::const_buffer> buffers, std::error_code& ec) = 0;
  // Whether a read_some() would return without waiting because the transport itself holds input
  // (TLS records already taken from the socket). Lets the connection batch its answers to them.
  virtual bool has_buffered_input() noexcept { return false; }
  // Ends a pending read_some() with asio::error::operation_aborted, the stream staying open; false
  // when the transport cannot. Called only while no write is in progress.
  virtual bool cancel_read() noexcept { return false; }
  // Whether the transport holds buffers it would give back if its waiting read were cancelled
  // (TLS input): the connection then cancels an idle read as it does for its own large buffer.
  virtual bool holds_idle_memory() const noexcept { return false; }
  // Sends a FIN after what was written (over TLS too, without close_notify: the WebSocket close
  // handshake delimits the data); reading goes on.
  virtual void shutdown_send() noexcept = 0;
  // Closes at once; pending operations complete with operation_aborted. Idempotent.
  virtual void close() noexcept = 0;
  virtual bool is_open() const noexcept = 0;
  // The TCP endpoints; default-constructed ones (0.0.0.0:0) over a Unix-domain socket. The same
  // for the stream's whole life (a per-address connection limit is released by it), even closed.
  virtual asio::ip::tcp::endpoint remote_endpoint() const noexcept = 0;
  virtual asio::ip::tcp::endpoint local_endpoint() const noexcept = 0;
  // Over a Unix-domain socket, the peer's credentials; nullopt over anything else.
  virtual std::optional<peer_credentials> unix_peer() const noexcept { return std::nullopt; }
  virtual bool is_secure() const noexcept { return false; }
  // The stream's own handshake (TLS), run once before HTTP; nothing for plain TCP. After it
  // failed, read_some() returns what still arrives, undecoded: the caller may read it away
  // before closing, so that the close sends no reset in place of the alert that says why.
  virtual asio::awaitable<void> start(std::error_code& ec) {
    ec = {};
    co_return;
  }
  // The TCP socket underneath, for a connection extension that takes it over; nullptr if none.
  virtual asio::ip::tcp::socket* tcp_socket() noexcept { return nullptr; }
  // The Unix-domain socket underneath (make_unix_transport()'s); nullptr if none.
  virtual asio::local::stream_protocol::socket* unix_socket() noexcept { return nullptr; }
};

// TCP_NODELAY is set: a WebSocket frame is a unit worth sending at once.
std::unique_ptr<transport> make_tcp_transport(asio::ip::tcp::socket socket);
// A connected Unix-domain stream socket; its peer's credentials are read once, here.
std::unique_ptr<transport> make_unix_transport(asio::local::stream_protocol::socket socket);
// A Unix-domain socket's endpoint: a path, or "@name" for a name in Linux's abstract namespace.
// std::errc::filename_too_long beyond what sockaddr_un holds (107 bytes), invalid_argument when empty.
asio::local::stream_protocol::endpoint unix_endpoint(std::string_view name, std::error_code& ec);

// A listening Unix-domain socket made as listener::start() makes one: a socket file that a process
// which died left at the path is removed first (one somebody listens on is address_in_use, any
// other file file_exists); `mode` (chmod bits; 0 = as the umask leaves them) is set before
// listen(), so that nobody connects through wider permissions. `made` is the file created (none
// in the abstract namespace), for remove_unix_socket_file(). On failure nothing is left behind.
struct unix_socket_file {
  std::string path;
  dev_t device = 0;
  ino_t inode = 0;
};
std::error_code listen_unix(asio::local::stream_protocol::acceptor& acceptor,
                            const asio::local::stream_protocol::endpoint& endpoint, unsigned mode, int backlog,
                            std::optional<unix_socket_file>& made);
// Removes the socket file listen_unix() made, if it is still that file (another server may have
// replaced it since); `made` is reset.
void remove_unix_socket_file(std::optional<unix_socket_file>& made) noexcept;

}  // namespace wsl
