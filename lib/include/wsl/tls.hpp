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
//   // a renewed certificate, for the handshakes from now on (open connections keep theirs)
//   if (!wsl::reload_tls_extension(*tls, t, problem)) log(problem);   // the old one stays
//
// TLS 1.2 and later only. A client that fails to verify the server ends with
// error::tls_verification_failed, with OpenSSL's reason in connect_report::tls_error.
#pragma once

#include "wsl/extension.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <string>

namespace wsl {

struct tls_options {
  // PEM files. A server needs both; a client sends its certificate when both are set.
  std::string certificate_chain_file;
  std::string private_key_file;
  // The password of an encrypted private_key_file. OpenSSL never prompts for one: an encrypted key
  // without it fails to load ("it is encrypted and no password was given").
  std::string private_key_password;
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

// Loads the files of `options` again (a renewed certificate, another key or client CA list) into a
// new context for `extension`, one that make_tls_extension made. The handshakes that begin after it
// returns use the new context; connections already open keep theirs. Thread-safe against wrap().
// False, with `problem` set, when a file cannot be loaded: the extension goes on as it was.
bool reload_tls_extension(connection_extension& extension, const tls_options& options, std::string& problem);

// The certificate a TLS extension presents (the first of its chain), for logs.
struct tls_certificate_info {
  std::string subject;  // "/CN=example.com"
  std::chrono::system_clock::time_point not_before, not_after;
};
std::optional<tls_certificate_info> tls_certificate_of(const connection_extension& extension);

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
