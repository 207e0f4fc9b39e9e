// TLS (wss://) through OpenSSL, as a connection_extension: it wraps the TCP stream before HTTP.
//
//   // server
//   wsl::tls_options t;
//   t.certificate_chain_file = "server.pem";
//   t.private_key_file = "server.key";
//   std::string problem;
//   auto tls = wsl::make_tls_extension(wsl::role::server, t, problem);   // nullptr: see problem
//   opts.transport_extension = tls;
//
//   // client: verification against the system's CAs with a host name check is the default
//   client_opts.transport_extension = wsl::make_tls_extension(wsl::role::client, {}, problem);
//
// TLS 1.2 and later only. A client that fails to verify the server ends with
// error::tls_verification_failed, with OpenSSL's reason in connect_report::tls_error.
#pragma once

#include "wsl/extension.hpp"

#include <memory>
#include <string>

namespace wsl {

struct tls_options {
  // PEM files. A server needs both; a client sends its certificate when both are set.
  std::string certificate_chain_file;
  std::string private_key_file;
  // Server: when set, clients must present a certificate signed by one of these CAs.
  std::string client_ca_file;
  // Client: trust these CAs (PEM) instead of the system's.
  std::string ca_file;
  // Client: check the server's certificate and name. Off only for testing (-k/--insecure).
  bool verify_peer = true;
};

// Builds the TLS extension for a role; nullptr, with `problem` set to one line (OpenSSL's reason
// and the file concerned), when a file cannot be loaded.
std::shared_ptr<connection_extension> make_tls_extension(role r, const tls_options& options, std::string& problem);

// The TLS details of a wrapped stream, when it is one (for -v and error reports).
struct tls_details {
  std::string protocol;  // "TLSv1.3"
  std::string cipher;    // "TLS_AES_256_GCM_SHA384"
  std::string peer_subject;
  std::string error;                   // why the handshake failed, in OpenSSL's words
  bool certificate_requested = false;  // client: the server asked for a certificate we did not have
};
const tls_details* tls_details_of(const transport& t) noexcept;

}  // namespace wsl
