#include "wsl/transport.hpp"

#include "inq_read.hpp"

#include <asio/error.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <vector>

namespace wsl {
namespace {

class tcp_transport final : public transport {
 public:
  explicit tcp_transport(asio::ip::tcp::socket socket) : socket_(std::move(socket)) {
    std::error_code ignored;
    socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
    // Writes are tried synchronously first and only fall back to the reactor when the kernel's
    // buffer is full: one send() per frame batch, no extra trip through the scheduler.
    socket_.non_blocking(true, ignored);
    // Each read then says whether the socket is empty, and the next one waits for epoll at once
    // instead of trying a recv() that fails (inq_read.hpp).
    detail::enable_inq(socket_);
    remote_ = socket_.remote_endpoint(ignored);
    local_ = socket_.local_endpoint(ignored);
  }

  asio::any_io_executor get_executor() override { return socket_.get_executor(); }

  // No coroutine of its own: one frame less per read, and less memory per idle connection.
  asio::awaitable<std::size_t> read_some(asio::mutable_buffer buffer, std::error_code& ec) override {
    return socket_.async_read_some(detail::inq_buffer{buffer}, asio::redirect_error(asio::use_awaitable, ec));
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
    socket_.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  }

  void close() noexcept override {
    std::error_code ignored;
    socket_.close(ignored);
  }

  bool is_open() const noexcept override { return socket_.is_open(); }
  asio::ip::tcp::socket* tcp_socket() noexcept override { return &socket_; }
  asio::ip::tcp::endpoint remote_endpoint() const noexcept override { return remote_; }
  asio::ip::tcp::endpoint local_endpoint() const noexcept override { return local_; }

 private:
  asio::ip::tcp::socket socket_;
  asio::ip::tcp::endpoint remote_, local_;
};

}  // namespace

std::unique_ptr<transport> make_tcp_transport(asio::ip::tcp::socket socket) {
  return std::make_unique<tcp_transport>(std::move(socket));
}

}  // namespace wsl
