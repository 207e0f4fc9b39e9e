#include "wsl/websocket.hpp"

#include "connection.hpp"
#include "wsl/detail/buffer_pool.hpp"

#include <cstring>
#include <system_error>
#include <type_traits>
#include <utility>

namespace wsl {
namespace {

template <typename T>
asio::awaitable<T> fail_with(std::error_code& ec, std::error_code error) {
  ec = error;
  if constexpr (std::is_void_v<T>)
    co_return;
  else
    co_return T{};
}

void throw_if(std::error_code ec) {
  if (ec) throw std::system_error(ec);
}

const http_request empty_request{};
const connection_options default_options{};
const close_status no_close{};

}  // namespace

// ------------------------------------------------------------------------------------------------
// message_reader

bool message_reader::done() const noexcept { return !conn_ || conn_->message_done(seq_); }

std::uint64_t message_reader::bytes_read() const noexcept { return conn_ ? conn_->message_bytes(seq_) : 0; }

std::size_t message_reader::buffered() const noexcept { return conn_ && !done() ? conn_->buffered() : 0; }

asio::awaitable<std::size_t> message_reader::read_some(asio::mutable_buffer buffer, std::error_code& ec) {
  if (!conn_) return fail_with<std::size_t>(ec, error::not_open);
  return conn_->read_some(seq_, buffer, ec);
}

asio::awaitable<std::size_t> message_reader::read_some(asio::mutable_buffer buffer) {
  std::error_code ec;
  const auto n = co_await read_some(buffer, ec);
  throw_if(ec);
  co_return n;
}

asio::awaitable<asio::const_buffer> message_reader::read_chunk(std::error_code& ec) {
  if (!conn_) return fail_with<asio::const_buffer>(ec, error::not_open);
  return conn_->read_chunk(seq_, ec);
}

asio::awaitable<std::string> message_reader::read_all(std::error_code& ec) {
  std::string out;
  ec = {};
  while (!done()) {
    const auto chunk = co_await read_chunk(ec);
    if (ec) break;
    out.append(static_cast<const char*>(chunk.data()), chunk.size());
  }
  co_return out;
}

asio::awaitable<std::string> message_reader::read_all() {
  std::error_code ec;
  auto s = co_await read_all(ec);
  throw_if(ec);
  co_return s;
}

// ------------------------------------------------------------------------------------------------
// message_writer

message_writer::message_writer(detail::connection* c, message_type t, std::error_code init) noexcept
    : conn_(c), type_(t), error_(init) {}

message_writer::message_writer(message_writer&& o) noexcept
    : conn_(std::exchange(o.conn_, nullptr)),
      type_(o.type_),
      error_(o.error_),
      buffer_(std::exchange(o.buffer_, nullptr)),
      capacity_(std::exchange(o.capacity_, 0)),
      used_(std::exchange(o.used_, 0)),
      started_(o.started_),
      finished_(o.finished_) {}

message_writer& message_writer::operator=(message_writer&& o) noexcept {
  if (this != &o) {
    abandon();
    conn_ = std::exchange(o.conn_, nullptr);
    type_ = o.type_;
    error_ = o.error_;
    buffer_ = std::exchange(o.buffer_, nullptr);
    capacity_ = std::exchange(o.capacity_, 0);
    used_ = std::exchange(o.used_, 0);
    started_ = o.started_;
    finished_ = o.finished_;
  }
  return *this;
}

message_writer::~message_writer() { abandon(); }

void message_writer::abandon() noexcept {
  if (conn_ && !finished_ && !error_) {
    conn_->end_writer();
    if (started_) conn_->abandon_message();
  }
  detail::buffer_pool::release(buffer_, capacity_);
  buffer_ = nullptr;
  capacity_ = used_ = 0;
  conn_ = nullptr;
}

asio::awaitable<void> message_writer::write(asio::const_buffer data, std::error_code& ec) {
  ec = {};
  if (!conn_ || finished_) ec = error::not_open;
  if (error_) ec = error_;
  if (ec) co_return;
  if (capacity_ == 0 && data.size() < conn_->write_buffer_size() / 4) {
    // The block may be larger (a power of two); the option is the bound.
    buffer_ = detail::buffer_pool::acquire(conn_->write_buffer_size());
    capacity_ = conn_->write_buffer_size();
  }
  // Small writes are gathered; a large one (a quarter of the buffer or more) goes out at once,
  // behind what is buffered, without being copied.
  if (used_ + data.size() <= capacity_ && data.size() < capacity_ / 4) {
    if (data.size() != 0) std::memcpy(buffer_ + used_, data.data(), data.size());
    used_ += data.size();
    co_return;
  }
  // The buffer is full: what it holds and this write go out as one fragment, uncopied.
  co_await send(data, false, ec);
}

asio::awaitable<void> message_writer::write(asio::const_buffer data) {
  std::error_code ec;
  co_await write(data, ec);
  throw_if(ec);
}

asio::awaitable<void> message_writer::flush(std::error_code& ec) {
  ec = {};
  if (!conn_ || finished_) ec = error::not_open;
  if (error_) ec = error_;
  if (ec || used_ == 0) co_return;
  co_await send(asio::const_buffer{}, false, ec);
}

asio::awaitable<void> message_writer::finish(std::error_code& ec) { return finish(asio::const_buffer{}, ec); }

asio::awaitable<void> message_writer::finish() {
  std::error_code ec;
  co_await finish(ec);
  throw_if(ec);
}

asio::awaitable<void> message_writer::finish(asio::const_buffer data, std::error_code& ec) {
  ec = {};
  if (!conn_ || finished_) ec = error::not_open;
  if (error_) ec = error_;
  if (ec) co_return;
  co_await send(data, true, ec);
  if (ec) co_return;
  finished_ = true;
  conn_->end_writer();
  detail::buffer_pool::release(buffer_, capacity_);
  buffer_ = nullptr;
  capacity_ = used_ = 0;
}

asio::awaitable<void> message_writer::send(asio::const_buffer extra, bool fin, std::error_code& ec) {
  co_await conn_->write_data(asio::buffer(buffer_, used_), extra, fin, ec);
  if (ec) {
    // The message cannot be completed on this connection any more.
    error_ = ec;
    conn_->end_writer();
    co_return;
  }
  started_ = true;
  used_ = 0;
}

// ------------------------------------------------------------------------------------------------
// websocket

websocket::websocket() noexcept = default;
websocket::websocket(std::shared_ptr<detail::connection> c) noexcept : impl_(std::move(c)) {}
websocket::websocket(websocket&&) noexcept = default;

websocket& websocket::operator=(websocket&& o) noexcept {
  if (this != &o) {
    abort();
    impl_ = std::move(o.impl_);
  }
  return *this;
}

websocket::~websocket() { abort(); }

websocket websocket::adopt(std::unique_ptr<transport> t, wsl::role r, const connection_options& options) {
  auto c = std::make_shared<detail::connection>(std::move(t), r, options);
  c->start();
  return websocket(std::move(c));
}

bool websocket::is_open() const noexcept { return impl_ && impl_->is_open(); }

asio::any_io_executor websocket::get_executor() const { return impl_->get_executor(); }

asio::awaitable<message_reader> websocket::read_message(std::error_code& ec) {
  if (!impl_) return fail_with<message_reader>(ec, error::not_open);
  return impl_->read_message(ec);
}

asio::awaitable<message_reader> websocket::read_message() {
  std::error_code ec;
  auto r = co_await read_message(ec);
  throw_if(ec);
  co_return r;
}

message_writer websocket::create_message_writer(message_type type) {
  if (!impl_) return message_writer(nullptr, type, error::not_open);
  return message_writer(impl_.get(), type, impl_->begin_writer(type));
}

asio::awaitable<void> websocket::write_message(message_type type, asio::const_buffer data, std::error_code& ec) {
  if (!impl_) return fail_with<void>(ec, error::not_open);
  return impl_->write_message(type, data, ec);
}

asio::awaitable<void> websocket::write_message(message_type type, asio::const_buffer data) {
  std::error_code ec;
  co_await write_message(type, data, ec);
  throw_if(ec);
}

asio::awaitable<void> websocket::write_messages(std::span<const outgoing_message> messages, std::error_code& ec) {
  if (!impl_) return fail_with<void>(ec, error::not_open);
  return impl_->write_messages(messages, ec);
}

asio::awaitable<void> websocket::write_messages(std::span<const outgoing_message> messages) {
  std::error_code ec;
  co_await write_messages(messages, ec);
  throw_if(ec);
}

asio::awaitable<void> websocket::ping(asio::const_buffer payload, std::error_code& ec) {
  if (!impl_) return fail_with<void>(ec, error::not_open);
  return detail::connection::ping(impl_, payload, ec);
}

asio::awaitable<void> websocket::close(std::uint16_t code, std::string_view reason, std::error_code& ec) {
  if (!impl_) return fail_with<void>(ec, error::not_open);
  return detail::connection::close(impl_, code, std::string(reason), ec);
}

asio::awaitable<void> websocket::close(std::uint16_t code, std::string_view reason) {
  std::error_code ec;
  co_await close(code, reason, ec);
  throw_if(ec);
}

void websocket::abort() noexcept {
  if (impl_) impl_->abort(error::aborted);
}

latency_stats websocket::latency() const noexcept { return impl_ ? impl_->latency() : latency_stats{}; }
const close_status& websocket::peer_close() const noexcept { return impl_ ? impl_->peer_close() : no_close; }
const close_status& websocket::local_close() const noexcept { return impl_ ? impl_->local_close() : no_close; }
const http_request& websocket::request() const noexcept { return impl_ ? impl_->request() : empty_request; }
std::string_view websocket::subprotocol() const noexcept {
  return impl_ ? std::string_view(impl_->subprotocol()) : std::string_view();
}
asio::ip::tcp::endpoint websocket::remote_endpoint() const noexcept {
  return impl_ ? impl_->get_transport().remote_endpoint() : asio::ip::tcp::endpoint{};
}
asio::ip::tcp::endpoint websocket::local_endpoint() const noexcept {
  return impl_ ? impl_->get_transport().local_endpoint() : asio::ip::tcp::endpoint{};
}
std::optional<peer_credentials> websocket::unix_peer() const noexcept {
  return impl_ ? impl_->get_transport().unix_peer() : std::nullopt;
}
const connection_options& websocket::options() const noexcept { return impl_ ? impl_->options() : default_options; }
wsl::role websocket::role() const noexcept { return impl_ ? impl_->role() : wsl::role::server; }
void websocket::set_control_callback(control_callback cb) {
  if (impl_) impl_->set_control_callback(std::move(cb));
}
std::uint64_t websocket::bytes_received() const noexcept { return impl_ ? impl_->bytes_received() : 0; }
std::uint64_t websocket::bytes_sent() const noexcept { return impl_ ? impl_->bytes_sent() : 0; }

}  // namespace wsl
