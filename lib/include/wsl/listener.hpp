// A WebSocket listener, as plain as a TCP acceptor.
//
//   wsl::listener l(co_await asio::this_coro::executor);
//   l.start({asio::ip::make_address("127.0.0.1"), 0});   // port 0: any free port
//   std::cout << l.local_endpoint().port();
//   for (;;) {
//     wsl::websocket ws = co_await l.accept();
//     auto ex = ws.get_executor();  // before the move below: argument order is unspecified
//     asio::co_spawn(ex, serve(std::move(ws)), asio::detached);
//   }
//
// Negotiations run concurrently (up to max_pending_handshakes); finished ones wait in a bounded
// queue for accept(). A failed negotiation never stops the listener: its reason goes to
// options.log and accepting goes on.
#pragma once

#include "wsl/options.hpp"
#include "wsl/transport.hpp"
#include "wsl/websocket.hpp"

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>

#include <memory>
#include <string>

namespace wsl {

namespace detail {
struct listener_state;
}

class listener {
 public:
  explicit listener(asio::any_io_executor executor, listener_options options = {});
  ~listener();  // stop()s
  listener(const listener&) = delete;
  listener& operator=(const listener&) = delete;

  // Binds and listens, then negotiates in the background. Validates the options first.
  std::error_code start(const asio::ip::tcp::endpoint& endpoint);
  // The same on a Unix-domain socket: a path, or a name in Linux's abstract namespace (a path
  // starting with '\0'). A socket file nobody listens on is replaced (one left by a process that
  // died); one in use is std::errc::address_in_use, any other file std::errc::file_exists.
  // options.unix_mode sets its permissions before it listens; stop() removes the file, unless
  // it has been replaced since. Connections have no TCP endpoints; websocket::unix_peer() says
  // who connected. TLS (transport_extension from tls.hpp) needs TCP: it fails each negotiation.
  std::error_code start(const asio::local::stream_protocol::endpoint& endpoint);
  // Takes over a stream socket that already listens, TCP or Unix-domain: one passed by systemd's
  // socket activation (descriptor 3), say. The listener owns it from then on (it is made
  // close-on-exec); a Unix socket's file is never removed. error::invalid_option for a descriptor
  // that is not a listening stream socket of these families (left open then).
  std::error_code adopt(int listening_fd);
  // Accepts from the socket `other` (started) listens on, through a duplicate of its descriptor:
  // how listeners on several threads share one Unix-domain socket (on TCP each may also bind the
  // port with reuse_port). `other` keeps the socket file to remove.
  std::error_code start(const listener& other);
  // Stops accepting; accept() ends with error::listener_stopped. Negotiations in progress end at
  // once (those still reading the request fail with error::listener_stopped; an answer already
  // sent stands), and negotiated websockets not yet accept()ed are closed with 1001 (going away,
  // "server shutting down"), their close handshake run on the listener's executor. Websockets
  // accept() returned are untouched.
  void stop() noexcept;
  bool is_running() const noexcept;
  // The bound endpoint (with the real port when started on port 0).
  asio::ip::tcp::endpoint local_endpoint() const noexcept;
  // The Unix-domain socket's path ("@name" in the abstract namespace); empty on TCP.
  const std::string& unix_path() const noexcept;

  // The next negotiated websocket.
  asio::awaitable<websocket> accept(std::error_code& ec);
  asio::awaitable<websocket> accept();

  // Open websockets accepted by this listener (or by all sharing its budget).
  std::size_t connection_count() const noexcept;
  const listener_options& options() const noexcept;

 private:
  std::shared_ptr<detail::listener_state> state_;
};

// The server side of the negotiation on a stream that is already connected (a listener does
// this for every connection it accepts). Bounded by options.max_handshake_size and
// options.handshake_timeout; failures are answered with the HTTP status they call for.
asio::awaitable<websocket> accept_websocket(std::unique_ptr<transport> stream, const listener_options& options,
                                            std::error_code& ec);

}  // namespace wsl
