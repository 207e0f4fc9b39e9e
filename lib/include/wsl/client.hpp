// The client role: connect to a ws:// URL and get the same websocket type as the server side.
//
//   wsl::client_options opts;
//   opts.subprotocols = {"chat.v2"};
//   wsl::connect_report report;
//   std::error_code ec;
//   wsl::websocket ws = co_await wsl::connect(executor, "ws://127.0.0.1:8080/chat?room=1", opts, ec, &report);
//   if (ec == wsl::error::bad_status) std::cerr << report.status << " " << report.reason << "\n";
//
// Credentials in the URL go as Basic authorization, and a proxy is only ever the one given:
//   opts.proxy = "http://me:pw@127.0.0.1:3128";       // CONNECT 127.0.0.1:8080 through it
//   co_await wsl::connect(executor, "ws://bob:s%40cret@127.0.0.1:8080/", opts, ec, &report);
//   // sends "Authorization: Basic Ym9iOnNAY3JldA=="; wsl::redact_url() prints "ws://bob:***@..."
//
// Over a stream the caller opened (a socket it connected itself, a Unix-domain socket behind a
// transport of its own, a memory pipe in tests), client_handshake() runs the upgrade alone, as
// Beast's ws.handshake(host, target) does: the URL gives Host, target and credentials, nothing more.
//   asio::ip::tcp::socket s(executor);
//   co_await s.async_connect(endpoint, asio::use_awaitable);
//   auto stream = wsl::make_tcp_transport(std::move(s));
//   wsl::websocket ws = co_await wsl::client_handshake(std::move(stream), "ws://example.com/chat", opts, ec);
#pragma once

#include "wsl/clock.hpp"
#include "wsl/extension.hpp"
#include "wsl/http.hpp"
#include "wsl/options.hpp"
#include "wsl/transport.hpp"
#include "wsl/websocket.hpp"

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/ip/address.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace wsl {

// ws://[user:password@]host[:port]/path?query and wss://..., with IPv6 literals in brackets.
struct url {
  bool secure = false;
  std::string host;  // without brackets
  std::uint16_t port = 0;
  std::string target;  // path and query, "/" at least
  // The user info before the host, percent-decoded: sent as "Authorization: Basic ..." (or, for a
  // proxy, "Proxy-Authorization"). "user@" alone is a user with an empty password.
  bool has_credentials = false;
  std::string user;
  std::string password;
  // "host" or "host:port" (brackets kept) as the Host header wants it.
  std::string authority() const;
  // The URL with the password replaced by "***" ("ws://user:***@host/"): safe to print.
  std::string to_string() const;
};
// error::bad_url, or error::bad_userinfo when only the user info is wrong: a bad %-escape, a
// control character or space, an empty user, or a ':' in the user (percent-encoded or not). The
// last '@' before the path ends the user info, so a password may hold a raw '@'; '/', '?' and '#'
// in it must be percent-encoded.
std::error_code parse_url(std::string_view text, url& out);
// A proxy's URL, as client_options::proxy takes it: http://[user:password@]host:port (CONNECT),
// socks5:// (SOCKS5, RFC 1928, the server's name resolved here) or socks5h:// (resolved by the
// proxy), each with an explicit port and no path but "/"; a SOCKS user and password are at most
// 255 bytes each (RFC 1929). proxy_protocol() names which: "http", "socks5" or "socks5h".
// error::bad_url for anything else (https://, socks4://, no port), bad_userinfo as above.
std::error_code parse_proxy_url(std::string_view text, url& out);
// The protocol of a proxy URL that parse_proxy_url() accepts: "http", "socks5" or "socks5h".
std::string proxy_protocol(std::string_view text);
// Any text that may be a URL (even one that does not parse), with the password of its user info
// replaced by "***", for messages and logs. Text without user info comes back as it is.
//   redact_url("ws://bob:s3cret@host/") == "ws://bob:***@host/"
std::string redact_url(std::string_view text);
// A redirect's Location resolved against the URL that drew it (RFC 3986 section 5.2): an absolute
// ws://, wss://, http:// or https:// URL, a network-path "//host:port/path", an absolute path
// "/path?query", a query "?query" or a relative path "next" (merged with the base's directory);
// "." and ".." segments are removed from every path. Spaces and bytes beyond ASCII are
// percent-encoded, as browsers do; the fragment is dropped; a reference with no host keeps the
// base's host, port and credentials. error::bad_url when it resolves to no WebSocket URL (another
// scheme, control characters), error::bad_userinfo as parse_url() says.
//   resolve_url(parsed("ws://h/a/b?q"), "c?d", out)  // ws://h/a/c?d
std::error_code resolve_url(const url& base, std::string_view location, url& out);
// An HTTP head with the credentials of its Authorization and Proxy-Authorization fields replaced by
// "***" (the scheme kept: "Authorization: Basic ***"), and the values of cookies too, their names
// and a Set-Cookie's attributes kept ("Cookie: sid=***; theme=***", "Set-Cookie: sid=***; Path=/"):
// for printing request and response heads.
std::string redact_credentials(std::string_view head);

struct client_options {
  connection_options connection;
  // Resolving the name and connecting the socket (not for client_handshake(): nothing to connect).
  clock::duration connect_timeout = 10s;
  // The HTTP exchange (and the TLS handshake, with TLS) once connected.
  clock::duration handshake_timeout = 10s;
  // The largest response head accepted, with the interim answers before it (100 Continue, 103
  // Early Hints: up to four are skipped, RFC 9110 section 15.2).
  std::size_t max_handshake_size = 16 << 10;
  std::string origin;                                        // sent as Origin when not empty
  std::vector<std::string> subprotocols;                     // offered, in order of preference
  std::vector<std::pair<std::string, std::string>> cookies;  // sent in one Cookie header
  // Extra request headers; one with the name of a header wsl generates replaces it (an
  // Authorization header here wins over the URL's user info).
  http_headers headers;
  std::string user_agent = "wsl";
  // For wss:// URLs (tls.hpp), never for ws:// ones; nullptr = TLS verified against the system's
  // CAs (wsl's TLS wraps a stream with a TCP socket under it: make_tcp_transport()'s).
  std::shared_ptr<const connection_extension> transport_extension;
  // A proxy to tunnel through: "http://[user:password@]host:port" (HTTP CONNECT),
  // "socks5://..." or "socks5h://..." (SOCKS5; h: the proxy resolves the name) (parse_proxy_url),
  // empty = connect directly. Never taken from http_proxy/https_proxy: only what is set here is used.
  // Connecting to it and its answer to CONNECT count against connect_timeout, its answer's head
  // against max_handshake_size; TLS (wss://) and the upgrade then run through the tunnel.
  // client_handshake() connects nowhere: error::invalid_option if set.
  std::string proxy;
  // Redirects connect() follows, at most: a 301, 302, 303, 307 or 308 answer with a Location
  // (resolve_url()) leads to a new connection there, with a new connect_timeout and
  // handshake_timeout. 0 = none: such an answer is error::bad_status like any other. Beyond the
  // limit, error::too_many_redirects. A Location that is no WebSocket URL, one from wss:// to
  // ws:// (a downgrade), and one to wss:// through `unix_socket`, are error::bad_redirect. Once a redirect has left the
  // URL's origin (its scheme, host and port), neither Authorization (the URL's credentials or one in `headers`) nor
  // Cookie (`cookies` or one in `headers`) is sent again, unless the Location carries credentials of its own; on the
  // same origin, the credentials go on. client_handshake() has nowhere else to connect and never follows one.
  unsigned max_redirects = 0;
  // Connect to this Unix-domain socket instead of the URL's host and port, which still name the
  // server in Host (curl's --unix-socket): a path, or "@name" in Linux's abstract namespace
  // (unix_endpoint()). Every redirect followed goes to it too. Not with a proxy, nor with wss://
  // (wsl's TLS needs TCP): error::invalid_option. client_handshake() connects nowhere: ignored.
  std::string unix_socket;
  // Addresses to connect to in place of resolving a name (curl's --resolve): wherever the client
  // would resolve `host` for `port` (the server's name, a proxy's, the server's through socks5://;
  // a redirect's too), it tries these addresses in order. Host, the TLS name (SNI and the
  // certificate check) and cookies stay the URL's. host "*" matches any name; an IP address in a
  // URL is never resolved, so never matched. The first entry that matches wins.
  struct address_override {
    std::string host;  // compared without regard to case
    std::uint16_t port = 0;
    std::vector<asio::ip::address> addresses;  // at least one
  };
  std::vector<address_override> resolve;
  // Connect from this address (curl's --interface, k6's --local-ips): the TCP socket (to the
  // server, or to the proxy) is bound to it, its port left to connect() (IP_BIND_ADDRESS_NO_PORT:
  // an address serves as many connections as there are ephemeral ports for each server, not in
  // all). Only the addresses of its family are tried; none, and the connection fails with
  // asio::error::address_family_not_supported; an address this machine does not have, with
  // EADDRNOTAVAIL. Not with unix_socket: error::invalid_option.
  std::optional<asio::ip::address> local_address;

  std::error_code validate() const;
};

// What happened during connect(), for diagnostics and measurements. On error::bad_status it holds
// the server's status, reason, headers and the start of its body; on error::proxy_refused the
// proxy's status and reason.
struct connect_report {
  asio::ip::tcp::endpoint remote;     // the server's, the proxy's through one, or the given stream's remote_endpoint()
  std::string unix_socket;            // client_options::unix_socket, when connected through it
  bool resolved_by_override = false;  // client_options::resolve gave the first hop's address
  bool resolved_by_dns = false;       // the first hop's name was looked up (resolve_time is mostly that)
  int status = 0;
  int version_minor = 1;  // the answer's HTTP/1.x (HTTP/1.0 from some servers)
  std::string reason;
  http_headers response_headers;
  std::string body;                      // at most a few KiB of a refusal's body
  std::string tls_error;                 // why TLS failed, in OpenSSL's words
  std::string tls_protocol, tls_cipher;  // what TLS agreed on
  std::string request_head;              // what was sent, for -v (credentials included: redact them)
  // Through a proxy: its host:port, the CONNECT request sent (with Proxy-Authorization) and its answer.
  // Through a SOCKS5 one (proxy_protocol "socks5" or "socks5h"): proxy_request_head is a line that
  // says what was asked ("SOCKS5 CONNECT host:port"), proxy_status the reply code (0 succeeded, 1 to
  // 8 a refusal, RFC 1928 section 6; 0 also when the user and password were refused), and
  // proxy_reason, set once an answer came, says it in words.
  std::string proxy;
  std::string proxy_protocol;  // "http", "socks5", "socks5h"; empty without a proxy
  std::string proxy_request_head;
  int proxy_status = 0;         // 0 while no answer came
  int proxy_version_minor = 1;  // its HTTP/1.x
  std::string proxy_reason;
  http_headers proxy_response_headers;
  clock::duration resolve_time{};    // zero over a stream the caller opened, as is connect_time
  clock::duration connect_time{};    // TCP connect, and through a proxy the CONNECT exchange
  clock::duration handshake_time{};  // TLS handshake (if any) and request sent to 101 received
  clock::duration tls_time{};        // of handshake_time, the TLS handshake's (zero without TLS)
  // The redirects followed (client_options::max_redirects), in order; the fields above are those
  // of the last connection, the one the redirects led to (on error::too_many_redirects and
  // error::bad_redirect: the one that answered with the redirect not followed).
  struct redirect_hop {
    std::string request_head;  // as request_head, credentials included
    int status = 0;
    int version_minor = 1;
    std::string reason;
    http_headers response_headers;
    std::string location;    // where it led: the URL resolved, its password hidden (url::to_string())
    clock::duration time{};  // from its resolving to its answer
  };
  std::vector<redirect_hop> redirects;
  // The last connection's URL, its password hidden: the given one, or the last redirect's.
  std::string final_url;
};

// Resolves the URL's host, connects to it (through options.proxy when set) within
// connect_timeout, then runs TLS for wss:// and the upgrade within handshake_timeout.
//
// Cancellable, as asio operations are: a terminal cancellation through the coroutine's
// cancellation slot (co_spawn with asio::bind_cancellation_slot, or the loser of an awaitable
// operators' ||) ends it with asio::error::operation_aborted and the stream closed, at whatever
// step it was; for this one it does not throw, whatever throw_if_cancelled says, and the
// caller's setting holds again when it returns. client_handshake() likewise.
asio::awaitable<websocket> connect(asio::any_io_executor executor, std::string_view url, const client_options& options,
                                   std::error_code& ec, connect_report* report = nullptr);
asio::awaitable<websocket> connect(asio::any_io_executor executor, std::string_view url,
                                   const client_options& options = {});

// The client's side of the opening handshake alone (what accept_websocket() is to the server),
// over a stream the caller opened: connected, nothing sent on it yet. It runs on the stream's
// executor. The URL gives the Host header, the target and the Basic credentials; its host is
// neither resolved nor connected to, so connect_timeout does not apply, and options.proxy set is
// error::invalid_option. A wss:// URL means TLS, as for connect(): over a stream whose
// is_secure() is false, options.transport_extension (by default TLS verified for the URL's host)
// wraps it and runs its handshake first; a stream that is TLS already is used as it is. A ws://
// URL takes the stream as it is, extension or not. The TLS handshake and the HTTP exchange count
// against handshake_timeout (error::handshake_timeout, the stream closed). The stream becomes the
// websocket's, or is closed on any failure; error::not_open when it is null or closed already.
// (Not named connect(): asio's executor traits look connect() up by ADL, and an overload taking
// a std::unique_ptr<transport> makes them recurse at every call.)
asio::awaitable<websocket> client_handshake(std::unique_ptr<transport> stream, std::string_view url,
                                            const client_options& options, std::error_code& ec, connect_report* report);
asio::awaitable<websocket> client_handshake(std::unique_ptr<transport> stream, std::string_view url,
                                            const client_options& options, std::error_code& ec);
asio::awaitable<websocket> client_handshake(std::unique_ptr<transport> stream, std::string_view url,
                                            const client_options& options);  // throws std::system_error

}  // namespace wsl
