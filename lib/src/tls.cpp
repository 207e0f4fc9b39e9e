// TLS through OpenSSL: the connection extension, its contexts (reloadable) and its stream.
#include "wsl/tls.hpp"

#include "inq_read.hpp"

#include "wsl/detail/buffer_pool.hpp"
#include "wsl/error.hpp"
#include "wsl/websocket.hpp"

#include <asio/ip/address.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/redirect_error.hpp>
#include <asio/ssl/error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <ctime>
#include <mutex>
#include <new>
#include <utility>

namespace wsl {
namespace {

// OpenSSL's reason for the failure just seen: the last error queued, or with `first` the first
// (loading a file, the first is the cause: "no start line" where the last says "PEM lib").
std::string openssl_reason(bool first = false) {
  const unsigned long e = first ? ERR_peek_error() : ERR_peek_last_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char text[256];
  ERR_error_string_n(e, text, sizeof text);
  // "error:0A000086:SSL routines::certificate verify failed": keep the reason.
  std::string s = text;
  const auto colon = s.rfind(':');
  return colon == std::string::npos ? s : s.substr(colon + 1);
}

// Where a client's SSL finds its tls_details (asio keeps the app data slot for itself).
int details_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// Called by OpenSSL when the server asks for a certificate and the client has none: remembered, so
// that a server hanging up right after the handshake (TLS 1.3 checks the certificate late) is
// explained.
int no_client_certificate(SSL* ssl, X509**, EVP_PKEY**) {
  if (auto* d = static_cast<tls_details*>(SSL_get_ex_data(ssl, details_index()))) d->certificate_requested = true;
  return 0;
}

// Bytes in order, in a block from the buffer pool that grows by doubling. An emptied queue gives
// its block back, so an idle connection holds none.
class byte_queue {
 public:
  const std::uint8_t* data() const noexcept { return block_.data() + head_; }
  std::size_t size() const noexcept { return tail_ - head_; }
  bool empty() const noexcept { return head_ == tail_; }

  void append(const void* p, std::size_t n) {
    if (tail_ + n > block_.size()) {
      detail::pooled_buffer bigger(std::max(size() + n, std::size_t{4096}));
      if (!empty()) std::memcpy(bigger.data(), data(), size());
      tail_ = size();
      head_ = 0;
      block_ = std::move(bigger);
    }
    std::memcpy(block_.data() + tail_, p, n);
    tail_ += n;
  }

  void consume(std::size_t n) noexcept {
    head_ += n;
    if (head_ == tail_) clear();
  }

  void clear() noexcept {
    block_.reset();
    head_ = tail_ = 0;
  }

  void swap(byte_queue& o) noexcept {
    std::swap(block_, o.block_);
    std::swap(head_, o.head_);
    std::swap(tail_, o.tail_);
  }

 private:
  detail::pooled_buffer block_;
  std::size_t head_ = 0, tail_ = 0;
};

// TLS over a TCP socket, with OpenSSL reading and writing records through a BIO of ours that
// copies from and to this stream's buffers:
// - one recv() takes in as many records as the socket holds, up to 64 KiB (asio's ssl::stream
//   reads 17 KB at a time, and copies each byte twice more through its BIO pair);
// - what a write() encrypts leaves in one send();
// - OpenSSL keeps its record buffers while traffic flows (no malloc per record), and a read
//   waiting on the socket holds no OpenSSL state, so it can be cancelled: an idle connection
//   gives back our 64 KiB input and OpenSSL's buffers (transport::holds_idle_memory()).
// OpenSSL's calls never block here: it sees "retry" when our input is used up and is called
// again once the socket gave more.
class tls_stream final : public transport {
 public:
  tls_stream(asio::ip::tcp::socket socket, SSL_CTX* ctx, role r, std::string host, bool verify)
      : socket_(std::move(socket)), ssl_(SSL_new(ctx)), role_(r), host_(std::move(host)), verify_(verify) {
    if (!ssl_) throw std::bad_alloc();
    BIO* bio = BIO_new(bio_method());
    if (!bio) {
      SSL_free(ssl_);
      throw std::bad_alloc();
    }
    BIO_set_data(bio, this);
    BIO_set_init(bio, 1);
    SSL_set_bio(ssl_, bio, bio);  // one reference, owned by ssl_ from here
    std::error_code ignored;
    socket_.non_blocking(true, ignored);  // writes are tried at once (see flush())
    detail::enable_inq(socket_);          // no recv() that would fail (inq_read.hpp)
    remote_ = socket_.remote_endpoint(ignored);
    local_ = socket_.local_endpoint(ignored);
  }
  ~tls_stream() override { SSL_free(ssl_); }
  tls_stream(const tls_stream&) = delete;
  tls_stream& operator=(const tls_stream&) = delete;

  asio::awaitable<void> start(std::error_code& ec) override {
    ec = {};
    if (role_ == role::client) {
      SSL_set_ex_data(ssl_, details_index(), &details_);
      std::error_code not_ip;
      asio::ip::make_address(host_, not_ip);
      if (not_ip && !host_.empty()) SSL_set_tlsext_host_name(ssl_, host_.c_str());  // SNI
      if (verify_) {
        X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
        if (!not_ip) {
          X509_VERIFY_PARAM_set1_ip_asc(param, host_.c_str());
        } else {
          X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
          X509_VERIFY_PARAM_set1_host(param, host_.c_str(), 0);
        }
      }
      SSL_set_verify(ssl_, verify_ ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
      SSL_set_connect_state(ssl_);
    } else {
      SSL_set_accept_state(ssl_);
    }
    std::error_code io;
    bool tls_failed = false;
    for (;;) {
      ERR_clear_error();
      const int r = SSL_do_handshake(ssl_);
      const int err = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_, r);
      if (err == SSL_ERROR_SSL) {
        // Keep OpenSSL's reason: the alert it queued goes out first (the peer learns why).
        details_.error = openssl_reason();
        tls_failed = true;
      }
      co_await flush(io);
      if (err == SSL_ERROR_NONE && !io) break;
      if (err == SSL_ERROR_WANT_READ && !io) {
        co_await fill(io);
        if (!io) continue;
      } else if (err != SSL_ERROR_NONE && err != SSL_ERROR_WANT_READ) {
        tls_failed = true;
      }
      break;
    }
    if (io == asio::error::operation_aborted && !tls_failed) {
      // Cancelled (the read or write ended by the caller, or the socket closed under it by a
      // time limit): no failure of TLS, and the caller knows why.
      handshake_failed_ = true;
      ec = io;
      co_return;
    }
    if (tls_failed || io) {
      handshake_failed_ = true;
      const long verify = SSL_get_verify_result(ssl_);
      if (tls_failed && verify != X509_V_OK) {
        details_.error = X509_verify_cert_error_string(verify);
        ec = error::tls_verification_failed;
      } else {
        if (!tls_failed || details_.error.empty() || details_.error == "unknown OpenSSL error")
          details_.error = io ? io.message() : "the TLS handshake failed";
        ec = error::tls_handshake_failed;
      }
      co_return;
    }
    details_.protocol = SSL_get_version(ssl_);
    details_.cipher = SSL_get_cipher_name(ssl_);
    if (X509* peer = SSL_get1_peer_certificate(ssl_)) {
      char name[256];
      X509_NAME_oneline(X509_get_subject_name(peer), name, sizeof name);
      details_.peer_subject = name;
      X509_free(peer);
    }
  }

  asio::any_io_executor get_executor() override { return socket_.get_executor(); }

  asio::awaitable<std::size_t> read_some(asio::mutable_buffer buffer, std::error_code& ec) override {
    ec = {};
    if (buffer.size() == 0) co_return 0;
    if (handshake_failed_)  // lingering: the raw bytes (see transport::start())
      co_return co_await socket_.async_read_some(detail::inq_buffer{buffer},
                                                 asio::redirect_error(asio::use_awaitable, ec));
    // Nothing for OpenSSL to decrypt: wait for the socket first. (An SSL_read now would only say
    // "want read", after taking its record buffer back while we wait.)
    bool need_input = in_pos_ == in_end_ && !SSL_has_pending(ssl_);
    for (;;) {
      if (need_input) {
        co_await fill(ec);
        if (ec) co_return 0;
      }
      ERR_clear_error();
      std::size_t n = 0;
      const int r = SSL_read_ex(ssl_, buffer.data(), buffer.size(), &n);
      ssl_buffers_ = true;
      // Whole records already here go into the rest of the buffer: the caller gets what a plain
      // read would have given, e.g. a 16 KiB message whose frame spans two records, at once.
      for (std::size_t more = 0; r == 1 && n < buffer.size() && has_buffered_input(); n += more) {
        ERR_clear_error();
        if (SSL_read_ex(ssl_, static_cast<char*>(buffer.data()) + n, buffer.size() - n, &more) != 1) {
          ERR_clear_error();  // the next read meets it again
          break;
        }
      }
      if (!pending_.empty() && !sending_) send_now();  // OpenSSL answered something (a key update)
      if (r == 1) co_return n;
      const int err = SSL_get_error(ssl_, r);
      if (err == SSL_ERROR_WANT_READ) {  // it took all of our input
        need_input = true;
        continue;
      }
      ec = err == SSL_ERROR_ZERO_RETURN ? std::error_code(asio::error::eof) : ssl_error();  // eof: close_notify
      co_return 0;
    }
  }

  // Decrypted bytes, or a whole record in our input (OpenSSL takes no more than the record it
  // decrypts). A record begun inside OpenSSL counts as not here.
  bool has_buffered_input() noexcept override {
    if (SSL_pending(ssl_) > 0) return true;
    if (SSL_has_pending(ssl_)) return false;
    const std::size_t n = in_end_ - in_pos_;
    if (n < 5) return false;
    const auto* p = in_ + in_pos_;
    return n >= 5 + (static_cast<std::size_t>(p[3]) << 8 | p[4]);
  }

  // Each SSL_write makes records of its own: a frame header written apart from its payload would
  // be a record with 22 bytes of overhead. So small pieces are gathered up to a record's 16 KiB;
  // larger ones are encrypted straight from the caller's memory.
  asio::awaitable<void> write(std::span<const asio::const_buffer> buffers, std::error_code& ec) override {
    ec = {};
    detail::pooled_buffer staging;
    std::size_t staged = 0;
    for (const auto& b : buffers) {
      const auto* p = static_cast<const std::uint8_t*>(b.data());
      std::size_t left = b.size();
      while (left != 0) {
        std::size_t n;
        if (staged == 0 && left >= record_size) {
          n = std::min(left, flush_size);
          if (!encrypt(p, n, ec)) co_return;
        } else {
          if (!staging) staging = detail::pooled_buffer(record_size);
          n = std::min(left, record_size - staged);
          std::memcpy(staging.data() + staged, p, n);
          staged += n;
          if (staged == record_size) {
            if (!encrypt(staging.data(), staged, ec)) co_return;
            staged = 0;
          }
        }
        p += n;
        left -= n;
        if (pending_.size() >= flush_size) {
          co_await flush(ec);
          if (ec) co_return;
        }
      }
    }
    if (staged != 0 && !encrypt(staging.data(), staged, ec)) co_return;
    co_await flush(ec);
  }

  // Cancels a read waiting on the socket; OpenSSL is never inside one.
  bool cancel_read() noexcept override {
    std::error_code ec;
    socket_.cancel(ec);
    return !ec;
  }

  bool holds_idle_memory() const noexcept override { return in_big_ || ssl_buffers_; }

  // A FIN without close_notify: the WebSocket close handshake already delimits the data.
  void shutdown_send() noexcept override {
    std::error_code ignored;
    socket_.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  }

  void close() noexcept override {
    std::error_code ignored;
    socket_.close(ignored);
  }

  bool is_open() const noexcept override { return socket_.is_open(); }
  asio::ip::tcp::endpoint remote_endpoint() const noexcept override { return remote_; }
  asio::ip::tcp::endpoint local_endpoint() const noexcept override { return local_; }
  bool is_secure() const noexcept override { return true; }
  const tls_details& details() const noexcept { return details_; }

 private:
  static constexpr std::size_t record_size = 16 << 10;  // a TLS record's plaintext at most
  static constexpr std::size_t flush_size = 64 << 10;   // encrypted bytes held before a send
  static constexpr std::size_t big_input_size = 64 << 10;
  static constexpr std::size_t small_input_size = 512;  // records of small messages, and idle waits

  // Reads more from the socket into the input, which OpenSSL has used up (it asks for more only
  // then). The input grows to 64 KiB after a read that filled it and shrinks back after four
  // small reads in a row, or when a waiting read was cancelled (an idle connection).
  asio::awaitable<void> fill(std::error_code& ec) {
    in_pos_ = in_end_ = 0;
    if (grow_ && !in_big_) {
      in_big_ = detail::pooled_buffer(big_input_size);
      in_ = in_big_.data();
      in_cap_ = in_big_.size();
    }
    const auto n = co_await socket_.async_read_some(detail::inq_buffer{asio::buffer(in_, in_cap_)},
                                                    asio::redirect_error(asio::use_awaitable, ec));
    if (ec == asio::error::operation_aborted) {
      // An idle connection (transport::cancel_read()): buffers go back, ours and OpenSSL's.
      if (in_big_) use_small_input();
      if (SSL_free_buffers(ssl_) == 1) ssl_buffers_ = false;
      co_return;
    }
    grow_ = n == in_cap_;
    if (in_big_) {
      quiet_reads_ = n <= small_input_size ? static_cast<std::uint8_t>(quiet_reads_ + 1) : 0;
      if (quiet_reads_ >= 4) {
        std::memcpy(in_small_, in_, n);
        use_small_input();
      }
    }
    in_end_ = n;
  }

  void use_small_input() noexcept {
    in_big_.reset();
    in_ = in_small_;
    in_cap_ = small_input_size;
    quiet_reads_ = 0;
  }

  bool encrypt(const std::uint8_t* p, std::size_t n, std::error_code& ec) {
    ERR_clear_error();
    std::size_t written = 0;
    ssl_buffers_ = true;
    if (SSL_write_ex(ssl_, p, n, &written) == 1) return true;
    ec = ssl_error();
    return false;
  }

  // OpenSSL's error in asio's category (what the client reports a refusal by), the queue emptied.
  static std::error_code ssl_error() noexcept {
    const auto e = ERR_get_error();
    ERR_clear_error();
    return e != 0 ? std::error_code(static_cast<int>(e), asio::error::get_ssl_category())
                  : std::error_code(asio::error::connection_aborted);
  }

  // Sends what OpenSSL wrote: at once when the socket takes it, else through the reactor, while
  // OpenSSL's further output (a read may produce some) collects in pending_ again.
  asio::awaitable<void> flush(std::error_code& ec) {
    while (!ec && !pending_.empty()) {
      const auto sent = socket_.write_some(asio::buffer(pending_.data(), pending_.size()), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) ec = {};
      if (ec) co_return;
      pending_.consume(sent);
      if (pending_.empty()) co_return;
      byte_queue out;
      out.swap(pending_);
      sending_ = true;
      co_await asio::async_write(socket_, asio::buffer(out.data(), out.size()),
                                 asio::redirect_error(asio::use_awaitable, ec));
      sending_ = false;
    }
  }

  // For output a read produced while no write is under way: what the socket takes now; the rest
  // goes first with the next write.
  void send_now() noexcept {
    std::error_code ec;
    const auto sent = socket_.write_some(asio::buffer(pending_.data(), pending_.size()), ec);
    if (!ec) pending_.consume(sent);
  }

  static int bio_write(BIO* b, const char* data, std::size_t n, std::size_t* written) {
    auto* self = static_cast<tls_stream*>(BIO_get_data(b));
    BIO_clear_retry_flags(b);
    try {
      self->pending_.append(data, n);
    } catch (...) {
      return 0;
    }
    *written = n;
    return 1;
  }

  static int bio_read(BIO* b, char* out, std::size_t n, std::size_t* read) {
    auto* self = static_cast<tls_stream*>(BIO_get_data(b));
    BIO_clear_retry_flags(b);
    const std::size_t available = self->in_end_ - self->in_pos_;
    if (available == 0) {
      BIO_set_retry_read(b);
      return 0;
    }
    n = std::min(n, available);
    std::memcpy(out, self->in_ + self->in_pos_, n);
    self->in_pos_ += n;
    *read = n;
    return 1;
  }

  static long bio_ctrl(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }

  static BIO_METHOD* bio_method() {
    static BIO_METHOD* const method = [] {
      BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "wsl tls_stream");
      if (m) {
        BIO_meth_set_write_ex(m, bio_write);
        BIO_meth_set_read_ex(m, bio_read);
        BIO_meth_set_ctrl(m, bio_ctrl);
      }
      return m;
    }();
    return method;
  }

  asio::ip::tcp::socket socket_;
  SSL* ssl_;
  role role_;
  std::string host_;
  bool verify_;
  asio::ip::tcp::endpoint remote_, local_;
  // Input: records from the socket not yet taken by OpenSSL, in_[in_pos_, in_end_).
  std::uint8_t in_small_[small_input_size];
  detail::pooled_buffer in_big_;
  std::uint8_t* in_ = in_small_;
  std::size_t in_cap_ = small_input_size, in_pos_ = 0, in_end_ = 0;
  bool grow_ = false;
  std::uint8_t quiet_reads_ = 0;
  // Output: records written by OpenSSL and not yet handed to the socket.
  byte_queue pending_;
  bool sending_ = false;  // a send through the reactor is under way
  bool handshake_failed_ = false;
  bool ssl_buffers_ = true;  // OpenSSL may hold its record buffers (2 x 17 KB) since the last idle wait
  tls_details details_;
};

// An SSL_CTX, freed with its last reference (each SSL holds one of its own, too).
using context_ptr = std::shared_ptr<SSL_CTX>;

// The password of an encrypted private key, given to OpenSSL when it asks: never a prompt on the
// terminal (a server may have none, and a reload must not wait on one).
struct key_password {
  const std::string* password;
  bool asked = false;
};

int provide_password(char* out, int size, int, void* user) {
  auto* p = static_cast<key_password*>(user);
  p->asked = true;
  if (p->password->empty() || p->password->size() > static_cast<std::size_t>(size)) return -1;
  std::memcpy(out, p->password->data(), p->password->size());
  return static_cast<int>(p->password->size());
}

// A context for the role with the files of `o` loaded; nullptr and `problem` when one cannot be.
context_ptr make_context(role r, const tls_options& o, std::string& problem) {
  ERR_clear_error();
  context_ptr owner(SSL_CTX_new(r == role::server ? TLS_server_method() : TLS_client_method()), SSL_CTX_free);
  if (!owner) throw std::bad_alloc();
  SSL_CTX* ctx = owner.get();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  // AES-128-GCM first: as safe for this use and faster than AES-256 (ChaCha20 for CPUs without
  // AES instructions); the server's order decides.
  SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384");
  SSL_CTX_set_cipher_list(ctx,
                          "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                          "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
                          "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384");
  if (r == role::server) SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
  auto fail = [&](const std::string& what) {
    problem = what + ": " + openssl_reason(true);
    return nullptr;
  };
  if (r == role::server && (o.certificate_chain_file.empty() || o.private_key_file.empty())) {
    problem = "a TLS server needs a certificate chain and a private key";
    return nullptr;
  }
  if (!o.certificate_chain_file.empty() &&
      SSL_CTX_use_certificate_chain_file(ctx, o.certificate_chain_file.c_str()) != 1)
    return fail("cannot load certificate " + o.certificate_chain_file);
  if (!o.private_key_file.empty()) {
    key_password password{&o.private_key_password};
    SSL_CTX_set_default_passwd_cb(ctx, provide_password);
    SSL_CTX_set_default_passwd_cb_userdata(ctx, &password);
    const bool loaded = SSL_CTX_use_PrivateKey_file(ctx, o.private_key_file.c_str(), SSL_FILETYPE_PEM) == 1;
    SSL_CTX_set_default_passwd_cb(ctx, nullptr);
    SSL_CTX_set_default_passwd_cb_userdata(ctx, nullptr);
    if (!loaded && password.asked) {
      ERR_clear_error();  // "PEM lib": say what it means
      problem = "cannot load private key " + o.private_key_file +
                (o.private_key_password.empty() ? ": it is encrypted and no password was given"
                                                : ": it cannot be decrypted with the password given");
      return nullptr;
    }
    if (!loaded) return fail("cannot load private key " + o.private_key_file);
    if (SSL_CTX_check_private_key(ctx) != 1) return fail("private key does not match " + o.certificate_chain_file);
  }
  if (r == role::server && !o.client_ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, o.client_ca_file.c_str(), nullptr) != 1)
      return fail("cannot load client CA " + o.client_ca_file);
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(o.client_ca_file.c_str());
    if (names) SSL_CTX_set_client_CA_list(ctx, names);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  if (r == role::client && o.certificate_chain_file.empty()) SSL_CTX_set_client_cert_cb(ctx, no_client_certificate);
  if (r == role::client && o.verify_peer) {
    if (!o.ca_file.empty()) {
      if (SSL_CTX_load_verify_locations(ctx, o.ca_file.c_str(), nullptr) != 1)
        return fail("cannot load CA file " + o.ca_file);
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
      return fail("cannot load the system's CA certificates");
    }
  }
  return owner;
}

class tls_extension final : public connection_extension {
 public:
  tls_extension(role r, bool verify, context_ptr context) : role_(r), verify_(verify), context_(std::move(context)) {}

  std::unique_ptr<transport> wrap(std::unique_ptr<transport> stream, role r, std::string_view host,
                                  std::error_code& ec) const override {
    auto* socket = stream->tcp_socket();
    if (!socket || r != role_) {
      ec = error::invalid_option;
      return nullptr;
    }
    // The SSL takes a reference of its own: a reload does not pull the context from under it.
    return std::make_unique<tls_stream>(std::move(*socket), current().get(), r, std::string(host), verify_);
  }

  std::string_view scheme() const noexcept override { return "wss"; }

  role side() const noexcept { return role_; }

  context_ptr current() const {
    std::lock_guard lock(mutex_);
    return context_;
  }

  // The old context goes with the last connection that uses it.
  void replace(context_ptr context) {
    std::lock_guard lock(mutex_);
    context_.swap(context);
  }

 private:
  role role_;
  bool verify_;
  mutable std::mutex mutex_;  // wrap() runs on every listener thread, a reload on another
  context_ptr context_;
};

// The time an ASN1_TIME stands for.
std::chrono::system_clock::time_point to_time_point(const ASN1_TIME* t) {
  std::tm tm{};
  if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return {};
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

}  // namespace

std::shared_ptr<connection_extension> make_tls_extension(role r, const tls_options& o, std::string& problem) {
  auto context = make_context(r, o, problem);
  if (!context) return nullptr;
  return std::make_shared<tls_extension>(r, o.verify_peer, std::move(context));
}

bool reload_tls_extension(connection_extension& extension, const tls_options& o, std::string& problem) {
  auto* tls = dynamic_cast<tls_extension*>(&extension);
  if (!tls) {
    problem = "not a TLS extension";
    return false;
  }
  auto context = make_context(tls->side(), o, problem);
  if (!context) return false;
  tls->replace(std::move(context));
  return true;
}

std::optional<tls_certificate_info> tls_certificate_of(const connection_extension& extension) {
  const auto* tls = dynamic_cast<const tls_extension*>(&extension);
  if (!tls) return std::nullopt;
  const auto context = tls->current();
  X509* cert = SSL_CTX_get0_certificate(context.get());
  if (!cert) return std::nullopt;
  tls_certificate_info info;
  char name[256];
  X509_NAME_oneline(X509_get_subject_name(cert), name, sizeof name);
  info.subject = name;
  info.not_before = to_time_point(X509_get0_notBefore(cert));
  info.not_after = to_time_point(X509_get0_notAfter(cert));
  return info;
}

const tls_details* tls_details_of(const transport& t) noexcept {
  const auto* s = dynamic_cast<const tls_stream*>(&t);
  return s ? &s->details() : nullptr;
}

}  // namespace wsl
