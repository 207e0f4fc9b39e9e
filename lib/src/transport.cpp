#include "wsl/transport.hpp"

#include "inq_read.hpp"

#include <asio/error.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <type_traits>
#include <vector>

namespace wsl {
namespace {

// A stream socket: TCP, or Unix-domain (Protocol = asio::local::stream_protocol).
template <class Protocol>
class socket_transport final : public transport {
  static constexpr bool is_tcp = std::is_same_v<Protocol, asio::ip::tcp>;

 public:
  explicit socket_transport(typename Protocol::socket socket) : socket_(std::move(socket)) {
    std::error_code ignored;
    // Writes are tried synchronously first and only fall back to the reactor when the kernel's
    // buffer is full: one send() per frame batch, no extra trip through the scheduler.
    socket_.non_blocking(true, ignored);
    if constexpr (is_tcp) {
      socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
      // Each read then says whether the socket is empty, and the next one waits for epoll at once
      // instead of trying a recv() that fails (inq_read.hpp).
      detail::enable_inq(socket_);
      remote_ = socket_.remote_endpoint(ignored);
      local_ = socket_.local_endpoint(ignored);
    } else {
      ucred cred{};
      socklen_t size = sizeof cred;
      if (::getsockopt(socket_.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &size) == 0 && size == sizeof cred)
        peer_ = peer_credentials{cred.pid, cred.uid, cred.gid};
    }
  }

  asio::any_io_executor get_executor() override { return socket_.get_executor(); }

  // No coroutine of its own: one frame less per read, and less memory per idle connection.
  asio::awaitable<std::size_t> read_some(asio::mutable_buffer buffer, std::error_code& ec) override {
    if constexpr (is_tcp)
      return socket_.async_read_some(detail::inq_buffer{buffer}, asio::redirect_error(asio::use_awaitable, ec));
    else
      return socket_.async_read_some(buffer, asio::redirect_error(asio::use_awaitable, ec));
  }

  asio::awaitable<void> write(std::span<const asio::const_buffer> buffers, std::error_code& ec) override {
    ec = {};
    std::size_t total = 0;
    for (const auto& b : buffers) total += b.size();
    const std::size_t sent = socket_.write_some(buffers, ec);
    if (!ec && sent == total) co_return;
    if (ec && ec != asio::error::would_block && ec != asio::error::try_again) co_return;
    ec = {};
    // The kernel took part of it: hand the rest to the reactor.
    std::vector<asio::const_buffer> rest;
    std::size_t skip = sent;
    for (const auto& b : buffers) {
      if (skip >= b.size()) {
        skip -= b.size();
        continue;
      }
      rest.push_back(b + skip);
      skip = 0;
    }
    co_await asio::async_write(socket_, rest, asio::redirect_error(asio::use_awaitable, ec));
  }

  bool cancel_read() noexcept override {
    std::error_code ec;
    socket_.cancel(ec);
    return !ec;
  }

  void shutdown_send() noexcept override {
    std::error_code ignored;
    socket_.shutdown(asio::socket_base::shutdown_send, ignored);
  }

  void close() noexcept override {
    std::error_code ignored;
    socket_.close(ignored);
  }

  bool is_open() const noexcept override { return socket_.is_open(); }
  asio::ip::tcp::socket* tcp_socket() noexcept override {
    if constexpr (is_tcp)
      return &socket_;
    else
      return nullptr;
  }
  asio::local::stream_protocol::socket* unix_socket() noexcept override {
    if constexpr (is_tcp)
      return nullptr;
    else
      return &socket_;
  }
  asio::ip::tcp::endpoint remote_endpoint() const noexcept override { return remote_; }
  asio::ip::tcp::endpoint local_endpoint() const noexcept override { return local_; }
  std::optional<peer_credentials> unix_peer() const noexcept override {
    if constexpr (is_tcp)
      return std::nullopt;
    else
      return peer_;
  }

 private:
  typename Protocol::socket socket_;
  asio::ip::tcp::endpoint remote_, local_;
  struct none {};
  // Nothing for TCP: every idle connection holds this.
  [[no_unique_address]] std::conditional_t<is_tcp, none, peer_credentials> peer_;
};

}  // namespace

std::unique_ptr<transport> make_tcp_transport(asio::ip::tcp::socket socket) {
  return std::make_unique<socket_transport<asio::ip::tcp>>(std::move(socket));
}

std::unique_ptr<transport> make_unix_transport(asio::local::stream_protocol::socket socket) {
  return std::make_unique<socket_transport<asio::local::stream_protocol>>(std::move(socket));
}

asio::local::stream_protocol::endpoint unix_endpoint(std::string_view name, std::error_code& ec) {
  ec = {};
  if (name.empty() || name == "@") {
    ec = std::make_error_code(std::errc::invalid_argument);
    return {};
  }
  std::string path(name);
  if (path[0] == '@') path[0] = '\0';
  if (path.size() >= sizeof(sockaddr_un::sun_path)) {
    ec = std::make_error_code(std::errc::filename_too_long);
    return {};
  }
  return asio::local::stream_protocol::endpoint(path);
}

namespace {

// What listen_unix() does with a file already at a Unix-domain socket's path: a socket nobody
// listens on (left by a process that died) is removed; a socket in use, or anything else, is an error.
std::error_code clear_stale_socket(asio::any_io_executor executor,
                                   const asio::local::stream_protocol::endpoint& endpoint) {
  const std::string path = endpoint.path();
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return {};  // nothing there (or bind() will say why)
  if (!S_ISSOCK(st.st_mode)) return std::make_error_code(std::errc::file_exists);
  asio::local::stream_protocol::socket probe(executor);
  std::error_code ec;
  probe.open(endpoint.protocol(), ec);
  if (!ec) probe.non_blocking(true, ec);
  if (ec) return ec;
  // Not asio's connect(), which would wait for a full backlog to drain.
  const int r = ::connect(probe.native_handle(), endpoint.data(), static_cast<socklen_t>(endpoint.size()));
  const int e = errno;
  // Connected, or its backlog is full (EAGAIN): somebody listens there.
  if (r == 0 || e == EAGAIN || e == EINPROGRESS) return std::make_error_code(std::errc::address_in_use);
  if (e != ECONNREFUSED) return {e, std::system_category()};
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return {errno, std::system_category()};
  return {};
}

}  // namespace

std::error_code listen_unix(asio::local::stream_protocol::acceptor& acceptor,
                            const asio::local::stream_protocol::endpoint& endpoint, unsigned mode, int backlog,
                            std::optional<unix_socket_file>& made) {
  made.reset();
  const std::string path = endpoint.path();
  const bool abstract = !path.empty() && path[0] == '\0';
  std::error_code ec;
  if (!abstract) ec = clear_stale_socket(acceptor.get_executor(), endpoint);
  if (!ec) acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  struct stat st {};
  if (!ec && !abstract) {
    if (::stat(path.c_str(), &st) == 0) made = unix_socket_file{path, st.st_dev, st.st_ino};
    // Before listen(): until then nobody can connect, whatever the umask allowed.
    if (mode != 0 && ::chmod(path.c_str(), static_cast<mode_t>(mode)) != 0) ec = {errno, std::system_category()};
  }
  if (!ec) acceptor.listen(backlog, ec);
  if (ec) {
    std::error_code ignored;
    acceptor.close(ignored);
    if (made) ::unlink(path.c_str());
    made.reset();
  }
  return ec;
}

void remove_unix_socket_file(std::optional<unix_socket_file>& made) noexcept {
  if (!made) return;
  struct stat st {};
  if (::stat(made->path.c_str(), &st) == 0 && st.st_dev == made->device && st.st_ino == made->inode)
    ::unlink(made->path.c_str());
  made.reset();
}

}  // namespace wsl
