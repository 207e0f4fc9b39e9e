// Options of connections and listeners: plain structs with documented defaults.
// validate() reports a nonsensical combination; nothing is ever rewritten silently.
//
//   wsl::listener_options opts;
//   opts.connection.max_message_size = 1 << 20;   // 1 MiB is plenty for a chat
//   opts.connection.ping_interval = std::chrono::seconds(10);
#pragma once

#include "wsl/clock.hpp"
#include "wsl/http.hpp"

#include <asio/ip/address.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <system_error>
#include <vector>

namespace wsl {

class standard_registry;
class message_extension_factory;
class connection_extension;

enum class ping_mode {
  none,              // never ping; the idle timeout still applies
  latency,           // ping every ping_interval with a timestamp, so latency() stays current
  bandwidth_saving,  // ping only when nothing has arrived for ping_interval
};

using namespace std::chrono_literals;

// Options of one open connection, shared by the server and the client role.
struct connection_options {
  // Largest message accepted, in bytes; a bigger one fails the connection with 1009. The library
  // never holds a message whole, so this protects applications that do. 0 = unlimited.
  std::uint64_t max_message_size = 64 << 20;
  // The receive buffer grows up to this size while data streams in and shrinks back to a few
  // hundred bytes when the traffic turns to small messages, or once the connection has waited a
  // second for its next message, so idle connections stay small. (Over TLS, the stream's 64 KiB
  // input and OpenSSL's record buffers go back the same way.)
  std::size_t read_buffer_size = 64 << 10;
  // A message_writer sends a fragment each time this many bytes are buffered. Larger fragments
  // mean fewer frames and system calls; this is also the unit of memory a writing connection holds.
  std::size_t write_buffer_size = 64 << 10;
  // Pings and liveness. latency mode costs one 14-byte frame per interval and keeps latency()
  // meaningful; a connection from which nothing arrives within idle_timeout (while a read is
  // waiting) is considered half-open and dropped. 0 disables either.
  ping_mode ping = ping_mode::latency;
  clock::duration ping_interval = 30s;
  clock::duration idle_timeout = 60s;
  // How long to wait for the peer's close frame after ours before dropping the connection.
  clock::duration close_timeout = 5s;
  // Control frames (pongs, our pings, close) waiting behind a data frame being written. Pongs
  // beyond it replace the older ones, which RFC 6455 section 5.5.3 allows.
  std::size_t max_control_queue = 4096;
  // Message extensions to negotiate (permessage-deflate: deflate.hpp), most preferred first. A
  // server accepts the first acceptable offer of the first of these the client offers; a client
  // offers them all. At most one is used on a connection.
  std::vector<std::shared_ptr<const message_extension_factory>> extensions;

  std::error_code validate() const;
};

// An IPv4 or IPv6 network: an address and a prefix length. An IPv4-mapped IPv6 address is
// matched as the IPv4 address it carries.
struct address_range {
  asio::ip::address address;
  unsigned prefix = 0;  // bits; 32 or 128 for one address

  bool contains(const asio::ip::address& a) const noexcept;
  // "10.0.0.0/8", "fd00::/8", "127.0.0.1" (/32), "::1" (/128); nullopt when malformed, or when
  // bits are set past the prefix ("10.0.0.1/8" is a mistake more often than not).
  static std::optional<address_range> parse(std::string_view text);
};

// Shared by several listeners (one per thread, say) that should enforce one connection limit, and
// optionally a limit per client address: an IPv4 address (an IPv4-mapped IPv6 one counts as IPv4),
// or an IPv6 /64 prefix (what one host is usually given). 0 = no limit.
class connection_budget {
 public:
  explicit connection_budget(std::size_t limit, std::size_t per_address_limit = 0);
  ~connection_budget();
  connection_budget(const connection_budget&) = delete;
  connection_budget& operator=(const connection_budget&) = delete;

  bool try_acquire() noexcept {
    auto n = count_.load(std::memory_order_relaxed);
    do {
      if (limit_ != 0 && n >= limit_) return false;
    } while (!count_.compare_exchange_weak(n, n + 1, std::memory_order_relaxed));
    return true;
  }
  void release() noexcept { count_.fetch_sub(1, std::memory_order_relaxed); }

  // The limit, then the peer's address's. A peer without an IP address (over a Unix-domain socket,
  // given as the unspecified address) counts against the limit only. Release with the same address.
  enum class refusal { none, limit, address_limit };
  refusal try_acquire(const asio::ip::address& peer);
  void release(const asio::ip::address& peer) noexcept;

  // Negotiations under way from the peer's address, bounded by the per-address limit as well (a
  // listener calls these from TCP accept to the negotiation's end): one host cannot hold every
  // negotiation slot with requests it never finishes. false: as many are under way already.
  bool try_begin_negotiation(const asio::ip::address& peer);
  void end_negotiation(const asio::ip::address& peer) noexcept;

  std::size_t count() const noexcept { return count_.load(std::memory_order_relaxed); }
  std::size_t limit() const noexcept { return limit_; }
  std::size_t per_address_limit() const noexcept { return per_address_limit_; }
  // Connections from the peer's address (or /64 prefix) now, and negotiations under way from it.
  std::size_t count(const asio::ip::address& peer) const;
  std::size_t negotiating(const asio::ip::address& peer) const;

 private:
  struct address_counts;
  std::size_t limit_;
  std::size_t per_address_limit_;
  std::atomic<std::size_t> count_{0};
  std::unique_ptr<address_counts> by_address_;  // with a per-address limit
};

enum class log_level { error, warning, info, debug };
using log_function = std::function<void(log_level, std::string_view)>;

// One HTTP negotiation, upgraded or not: what an access log records.
struct negotiation_record {
  asio::ip::tcp::endpoint remote;
  asio::ip::address client_address;  // http_request::client_address; remote's before the request is read
  std::string method;                // empty when the request could not be parsed
  std::string target;
  int status = 0;              // the HTTP status sent; 0 when none was (timeout, peer gone)
  std::size_t bytes_sent = 0;  // response head and body
  clock::duration duration{};  // from accept (after a plain answer: the next request's first bytes) to the response
  std::error_code error;       // empty when the connection was upgraded
  std::optional<peer_credentials> unix_peer;  // over a Unix-domain socket, who connected it
  std::uint64_t connection_id = 0;            // http_request::connection_id
};
using negotiation_observer = std::function<void(const negotiation_record&)>;

struct listener_options {
  connection_options connection;
  // The HTTP request head (request line and headers) may not exceed this many bytes (431 beyond).
  std::size_t max_handshake_size = 16 << 10;
  // The whole negotiation (TLS included, once there is TLS) must finish within this time.
  clock::duration handshake_timeout = 10s;
  // Plain HTTP requests (answered by the hook: a file, metrics; or the 426 to a request that is no
  // upgrade) one connection may make in turn (HTTP/1.1 keep-alive), each next one arriving within
  // handshake_timeout of the answer before; an upgrade may follow them. A request of HTTP/1.0, with
  // "Connection: close" or a body, or answered with "Connection: close" (the hook's), closes it.
  // 0 or 1: every plain answer closes its connection.
  std::size_t max_requests_per_connection = 100;
  // Negotiations running at once; further TCP connections wait in the kernel's backlog. A
  // connection kept alive that waits for its next request counts, but when a new connection finds
  // no room, the one that has waited longest is closed to make it (as nginx reuses idle
  // keep-alive connections).
  std::size_t max_pending_handshakes = 256;
  // Negotiated websockets waiting for accept(), together with those being negotiated.
  std::size_t accept_queue_size = 1024;
  // Open websockets of this listener (503 beyond). 0 = unlimited. Ignored when budget is set.
  std::size_t max_connections = 10000;
  // Open websockets from one client address (IPv4 address, IPv6 /64; see connection_budget), 429
  // beyond; and negotiations under way from one address: beyond, a TCP connection is closed as
  // soon as it is accepted. A connection kept alive holds none of them while it waits for its next
  // request, which takes one again (closed unanswered when there is none). 0 = unlimited.
  // Ignored when budget is set.
  std::size_t max_connections_per_address = 0;
  // Peers whose X-Forwarded-For (or client_address_header) is believed (reverse proxies: nginx,
  // HAProxy). For a request from one, http_request::client_address is the last address of
  // X-Forwarded-For that is not itself a trusted proxy (nginx's real_ip_recursive); when the
  // header is missing or malformed, the peer's own. The per-address connection limit counts that
  // address, and a trusted proxy's negotiations under way are not bounded per address (all of
  // them come from it).
  std::vector<address_range> trusted_proxies;
  // The header in which trusted_proxies name the client. Only the one a proxy sets may be read:
  // a client can send any of them, and a proxy that appends to one passes the others on as
  // they came.
  enum class forwarding_header {
    x_forwarded_for,  // "X-Forwarded-For: 198.51.100.1, 203.0.113.7" (nginx, HAProxy's forwardfor)
    forwarded,        // RFC 7239's "Forwarded: for=198.51.100.1, for=\"[2001:db8::7]:4711\"" (HAProxy
                      // 2.7's option forwarded); for=unknown or an obfuscated name stops the walk
    x_real_ip,        // "X-Real-IP: 203.0.113.7", one address (nginx's proxy_set_header X-Real-IP)
  };
  forwarding_header client_address_header = forwarding_header::x_forwarded_for;
  // Each connection begins with a PROXY protocol header (HAProxy's, version 1 or 2) from the
  // load balancer in front (HAProxy's send-proxy, an AWS NLB's proxy protocol), before TLS and
  // HTTP, over TCP or a Unix-domain socket: the client it names is http_request::client_address
  // (and then trusted_proxies apply from that address on; over a Unix socket, the per-address
  // limit too). A connection without a valid header, or over another stream, fails with
  // error::bad_proxy_header, unanswered. Negotiations under way are then not bounded per address
  // (the balancer's is every client's).
  bool proxy_protocol = false;
  // A limit shared with other listeners; when set, max_connections and max_connections_per_address
  // are not used (the budget has its own).
  std::shared_ptr<connection_budget> budget;
  // SO_REUSEPORT, so that one listener per thread can bind the same port.
  bool reuse_port = false;
  // An IPv6 listener accepts IPv6 only (IPV6_V6ONLY), so that an IPv4 one can bind the same port
  // (:: and 0.0.0.0 side by side); otherwise the system's default (Linux: IPv4 too, as mapped
  // addresses).
  bool ipv6_only = false;
  // For a Unix-domain socket: the socket file's permission bits (chmod; 0600, say), set before it
  // listens. 0 = as the umask leaves them. At most 07777.
  unsigned unix_mode = 0;
  int backlog = 1024;
  // Runs during each negotiation; see http.hpp.
  negotiation_hook hook;
  // Header fields added to every response the listener writes, after the hook's: the 101, the
  // hook's refusals, and the ones the library decides itself (400, 426, 431, 503) alike. Security
  // or CORS policy headers, say. No CR, LF or NUL, no ':' in a name (validate()).
  http_headers response_headers;
  // Negotiation failures and other events worth telling; nullptr = silent.
  log_function log;
  // Called after every negotiation, successful or not (an access log); nullptr = none.
  negotiation_observer on_negotiation;
  // Keep the request's header fields with the connection (websocket::request()). A server that
  // never looks at them after the negotiation saves about 700 bytes per connection without.
  bool keep_request_headers = true;
  // Wraps each accepted TCP stream before HTTP (TLS: tls.hpp); nullptr = plain TCP. The
  // wrapper's handshake counts against handshake_timeout.
  std::shared_ptr<const connection_extension> transport_extension;
  // Which Sec-WebSocket-Version values are accepted; nullptr = standard_registry::defaults().
  std::shared_ptr<const standard_registry> standards;

  std::error_code validate() const;
};

}  // namespace wsl
