// TLS through asio::ssl (OpenSSL): the connection extension and its stream.
#include "wsl/tls.hpp"

#include "wsl/error.hpp"
#include "wsl/websocket.hpp"

#include <asio/ip/address.hpp>
#include <asio/redirect_error.hpp>
#include <asio/ssl.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <climits>
#include <cstring>
#include <vector>

namespace wsl {
namespace {

std::string openssl_reason() {
  const unsigned long e = ERR_peek_last_error();
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

class tls_stream final : public transport {
 public:
  tls_stream(asio::ip::tcp::socket socket, asio::ssl::context& ctx, role r, std::string host, bool verify)
      : stream_(std::move(socket), ctx), role_(r), host_(std::move(host)), verify_(verify) {
    std::error_code ignored;
    remote_ = stream_.lowest_layer().remote_endpoint(ignored);
    local_ = stream_.lowest_layer().local_endpoint(ignored);
  }

  asio::awaitable<void> start(std::error_code& ec) override {
    ec = {};
    SSL* ssl = stream_.native_handle();
    if (role_ == role::client) {
      SSL_set_ex_data(ssl, details_index(), &details_);
      std::error_code not_ip;
      asio::ip::make_address(host_, not_ip);
      if (not_ip && !host_.empty()) SSL_set_tlsext_host_name(ssl, host_.c_str());  // SNI
      if (verify_) {
        X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
        if (!not_ip) {
          X509_VERIFY_PARAM_set1_ip_asc(param, host_.c_str());
        } else {
          X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
          X509_VERIFY_PARAM_set1_host(param, host_.c_str(), 0);
        }
        stream_.set_verify_mode(asio::ssl::verify_peer);
      } else {
        stream_.set_verify_mode(asio::ssl::verify_none);
      }
    }
    co_await stream_.async_handshake(role_ == role::client ? asio::ssl::stream_base::client
                                                           : asio::ssl::stream_base::server,
                                     asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      const long verify = SSL_get_verify_result(ssl);
      if (verify != X509_V_OK && ec.category() == asio::error::get_ssl_category()) {
        details_.error = X509_verify_cert_error_string(verify);
        ec = error::tls_verification_failed;
      } else {
        details_.error = ec.category() == asio::error::get_ssl_category() ? openssl_reason() : ec.message();
        if (details_.error.empty() || details_.error == "unknown OpenSSL error") details_.error = ec.message();
        ec = error::tls_handshake_failed;
      }
      co_return;
    }
    details_.protocol = SSL_get_version(ssl);
    details_.cipher = SSL_get_cipher_name(ssl);
    if (X509* peer = SSL_get1_peer_certificate(ssl)) {
      char name[256];
      X509_NAME_oneline(X509_get_subject_name(peer), name, sizeof name);
      details_.peer_subject = name;
      X509_free(peer);
    }
  }

  asio::any_io_executor get_executor() override { return stream_.get_executor(); }

  asio::awaitable<std::size_t> read_some(asio::mutable_buffer buffer, std::error_code& ec) override {
    ec = {};
    if (buffer.size() != 0 && has_buffered_input()) {
      // A whole record is already here: OpenSSL gives it without any I/O, and without the trip
      // through the scheduler that asio's read takes, so a batch of records is answered in one go.
      SSL* ssl = stream_.native_handle();
      const int n = SSL_read(ssl, buffer.data(), static_cast<int>(std::min<std::size_t>(buffer.size(), INT_MAX)));
      if (n > 0) co_return static_cast<std::size_t>(n);
      ERR_clear_error();  // asio's read below meets the same state and reports it
    }
    co_return co_await stream_.async_read_some(buffer, asio::redirect_error(asio::use_awaitable, ec));
  }

  // Decrypted bytes, or a whole record waiting in the BIO pair between the socket and OpenSSL
  // (OpenSSL reads no further ahead than the record it decrypts).
  bool has_buffered_input() noexcept override {
    SSL* ssl = stream_.native_handle();
    if (SSL_pending(ssl) > 0) return true;
    char* p = nullptr;
    const int n = BIO_nread0(SSL_get_rbio(ssl), &p);
    if (n < 5 || p == nullptr) return false;  // a record split by the pair's ring buffer counts as not here
    const auto length = static_cast<std::size_t>(static_cast<std::uint8_t>(p[3]) << 8 | static_cast<std::uint8_t>(p[4]));
    return static_cast<std::size_t>(n) >= 5 + length;
  }

  // Each buffer handed to OpenSSL becomes records of its own: a frame header written apart from its
  // payload would be a 5-byte TLS record with 22 bytes of overhead and a system call. So the
  // pieces are gathered, up to a few records at a time (a copy is cheap next to the cipher).
  asio::awaitable<void> write(std::span<const asio::const_buffer> buffers, std::error_code& ec) override {
    ec = {};
    if (buffers.size() == 1) {
      co_await asio::async_write(stream_, buffers[0], asio::redirect_error(asio::use_awaitable, ec));
      co_return;
    }
    constexpr std::size_t chunk = 64 << 10;
    gather_.clear();
    for (const auto& b : buffers) {
      const auto* p = static_cast<const std::uint8_t*>(b.data());
      std::size_t left = b.size();
      while (left != 0) {
        const auto n = std::min(left, chunk - gather_.size());
        gather_.insert(gather_.end(), p, p + n);
        p += n;
        left -= n;
        if (gather_.size() == chunk) {
          co_await asio::async_write(stream_, asio::buffer(gather_), asio::redirect_error(asio::use_awaitable, ec));
          if (ec) co_return;
          gather_.clear();
        }
      }
    }
    if (!gather_.empty())
      co_await asio::async_write(stream_, asio::buffer(gather_), asio::redirect_error(asio::use_awaitable, ec));
    gather_.clear();
  }

  // A FIN without close_notify: the WebSocket close handshake already delimits the data.
  void shutdown_send() noexcept override {
    std::error_code ignored;
    stream_.lowest_layer().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  }

  void close() noexcept override {
    std::error_code ignored;
    stream_.lowest_layer().close(ignored);
  }

  bool is_open() const noexcept override { return stream_.lowest_layer().is_open(); }
  asio::ip::tcp::endpoint remote_endpoint() const noexcept override { return remote_; }
  asio::ip::tcp::endpoint local_endpoint() const noexcept override { return local_; }
  bool is_secure() const noexcept override { return true; }
  const tls_details& details() const noexcept { return details_; }

 private:
  asio::ssl::stream<asio::ip::tcp::socket> stream_;
  role role_;
  std::string host_;
  bool verify_;
  asio::ip::tcp::endpoint remote_, local_;
  std::vector<std::uint8_t> gather_;
  tls_details details_;
};

class tls_extension final : public connection_extension {
 public:
  tls_extension(role r, bool verify) : context_(r == role::server ? asio::ssl::context::tls_server
                                                                   : asio::ssl::context::tls_client),
                                       role_(r),
                                       verify_(verify) {}

  asio::ssl::context& context() noexcept { return context_; }

  std::unique_ptr<transport> wrap(std::unique_ptr<transport> stream, role r, std::string_view host,
                                  std::error_code& ec) const override {
    auto* socket = stream->tcp_socket();
    if (!socket || r != role_) {
      ec = error::invalid_option;
      return nullptr;
    }
    return std::make_unique<tls_stream>(std::move(*socket), context_, r, std::string(host), verify_);
  }

  std::string_view scheme() const noexcept override { return "wss"; }

 private:
  mutable asio::ssl::context context_;
  role role_;
  bool verify_;
};

}  // namespace

std::shared_ptr<connection_extension> make_tls_extension(role r, const tls_options& o, std::string& problem) {
  auto ext = std::make_shared<tls_extension>(r, o.verify_peer);
  SSL_CTX* ctx = ext->context().native_handle();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);  // no idle 2 x 16 KiB per connection
  // AES-128-GCM first: as safe for this use and faster than AES-256 (ChaCha20 for CPUs without
  // AES instructions); the server's order decides.
  SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384");
  SSL_CTX_set_cipher_list(ctx,
                          "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                          "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
                          "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384");
  if (r == role::server) SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
  auto fail = [&](const std::string& what) {
    problem = what + ": " + openssl_reason();
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
    if (SSL_CTX_use_PrivateKey_file(ctx, o.private_key_file.c_str(), SSL_FILETYPE_PEM) != 1)
      return fail("cannot load private key " + o.private_key_file);
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
  return ext;
}

const tls_details* tls_details_of(const transport& t) noexcept {
  const auto* s = dynamic_cast<const tls_stream*>(&t);
  return s ? &s->details() : nullptr;
}

}  // namespace wsl
