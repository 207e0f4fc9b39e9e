#include "proxy_protocol.hpp"

#include "address.hpp"

#include "wsl/error.hpp"

#include <asio/read.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>

#include <algorithm>
#include <array>
#include <string>
#include <string_view>
#include <vector>

namespace wsl::detail {
namespace {

constexpr std::string_view v1_signature = "PROXY ";
constexpr std::array<unsigned char, 12> v2_signature{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                     0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

// Whether `bytes` begin as `signature` does, as far as they go.
template <typename Signature>
bool begins_like(std::span<const unsigned char> bytes, const Signature& signature) {
  const auto n = std::min(bytes.size(), signature.size());
  return std::equal(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n), signature.begin(),
                    [](unsigned char a, auto b) { return a == static_cast<unsigned char>(b); });
}

bool port_ok(std::string_view p) {
  if (p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string_view::npos) return false;
  return std::stoul(std::string(p)) <= 65535;
}

// "PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n", "PROXY UNKNOWN ...\r\n".
proxy_header_status parse_v1(std::span<const unsigned char> bytes, std::size_t& size,
                             std::optional<asio::ip::address>& source) {
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()), std::min(bytes.size(), proxy_v1_max_size));
  const auto line_feed = text.find('\n');
  if (line_feed == std::string_view::npos)
    return bytes.size() < proxy_v1_max_size ? proxy_header_status::incomplete : proxy_header_status::invalid;
  if (text[line_feed - 1] != '\r') return proxy_header_status::invalid;  // after "PROXY ": line_feed > 0
  const auto end = line_feed - 1;
  size = line_feed + 1;
  std::vector<std::string_view> words;
  for (std::string_view rest = text.substr(v1_signature.size(), end - v1_signature.size());;) {
    const auto space = rest.find(' ');
    words.push_back(rest.substr(0, space));
    if (space == std::string_view::npos) break;
    rest.remove_prefix(space + 1);
  }
  if (words[0] == "UNKNOWN") {
    source.reset();
    return proxy_header_status::complete;
  }
  if (words.size() != 5 || (words[0] != "TCP4" && words[0] != "TCP6")) return proxy_header_status::invalid;
  std::error_code ec;
  const auto from = asio::ip::make_address(std::string(words[1]), ec);
  if (ec) return proxy_header_status::invalid;
  const auto to = asio::ip::make_address(std::string(words[2]), ec);
  if (ec || from.is_v4() != (words[0] == "TCP4") || to.is_v4() != from.is_v4()) return proxy_header_status::invalid;
  if (!port_ok(words[3]) || !port_ok(words[4])) return proxy_header_status::invalid;
  source = from;
  return proxy_header_status::complete;
}

// The 12-byte signature, version and command, family and transport, the length of what follows
// (addresses, then TLVs, which are skipped).
proxy_header_status parse_v2(std::span<const unsigned char> bytes, std::size_t& size,
                             std::optional<asio::ip::address>& source) {
  if (bytes.size() < proxy_v2_fixed_size) return proxy_header_status::incomplete;
  const unsigned version = bytes[12] >> 4, command = bytes[12] & 0x0f, family = bytes[13] >> 4;
  if (version != 2 || command > 1) return proxy_header_status::invalid;
  const std::size_t length = (std::size_t{bytes[14]} << 8) | bytes[15];
  if (bytes.size() < proxy_v2_fixed_size + length) return proxy_header_status::incomplete;
  size = proxy_v2_fixed_size + length;
  const auto* a = bytes.data() + proxy_v2_fixed_size;
  source.reset();
  if (command == 0) return proxy_header_status::complete;  // LOCAL: the balancer's own connection
  if (family == 1) {                                       // IPv4: source, destination, ports
    if (length < 12) return proxy_header_status::invalid;
    asio::ip::address_v4::bytes_type b;
    std::copy_n(a, 4, b.begin());
    source = asio::ip::address_v4(b);
  } else if (family == 2) {  // IPv6
    if (length < 36) return proxy_header_status::invalid;
    asio::ip::address_v6::bytes_type b;
    std::copy_n(a, 16, b.begin());
    source = unmapped(asio::ip::address_v6(b));
  } else if (family > 3) {
    return proxy_header_status::invalid;
  }
  return proxy_header_status::complete;  // AF_UNSPEC and AF_UNIX: no address of ours to take
}

}  // namespace

proxy_header_status parse_proxy_header(std::span<const unsigned char> bytes, std::size_t& size,
                                       std::optional<asio::ip::address>& source) {
  if (bytes.empty()) return proxy_header_status::incomplete;
  if (begins_like(bytes, v2_signature)) return parse_v2(bytes, size, source);
  if (!begins_like(bytes, v1_signature)) return proxy_header_status::invalid;
  if (bytes.size() < v1_signature.size()) return proxy_header_status::incomplete;
  return parse_v1(bytes, size, source);
}

namespace {

template <class Socket>
asio::awaitable<void> read_header_from(Socket* socket, std::size_t max_size, std::optional<asio::ip::address>& source,
                                       std::error_code& ec) {
  // Peeked at in one piece, as nginx does (a balancer writes the header at once), and only then
  // taken from the socket: the bytes behind it stay there for TLS or HTTP.
  std::vector<unsigned char> buf(std::max<std::size_t>(proxy_v1_max_size, 232));
  for (int attempt = 0; attempt < 2; ++attempt) {
    co_await socket->async_wait(Socket::wait_read, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    const auto n = socket->receive(asio::buffer(buf), asio::socket_base::message_peek, ec);
    if (ec) co_return;
    if (n == 0) {
      ec = asio::error::eof;
      co_return;
    }
    std::size_t size = 0;
    const auto status = parse_proxy_header(std::span(buf.data(), n), size, source);
    if (status == proxy_header_status::complete) {
      co_await asio::async_read(*socket, asio::buffer(buf.data(), size), asio::redirect_error(asio::use_awaitable, ec));
      co_return;
    }
    // A version 2 header longer than the buffer (many TLVs): once more with room for all of it.
    const bool longer_v2 =
        status == proxy_header_status::incomplete && n == buf.size() && n >= proxy_v2_fixed_size && buf[0] == 0x0D;
    const std::size_t needed = longer_v2 ? proxy_v2_fixed_size + ((std::size_t{buf[14]} << 8) | buf[15]) : 0;
    if (!longer_v2 || needed > max_size || attempt == 1) break;
    buf.resize(needed);
  }
  ec = error::bad_proxy_header;
}

}  // namespace

asio::awaitable<void> read_proxy_header(transport& stream, std::size_t max_size,
                                        std::optional<asio::ip::address>& source, std::error_code& ec) {
  ec = {};
  if (auto* tcp = stream.tcp_socket())
    co_await read_header_from(tcp, max_size, source, ec);
  else if (auto* unix_socket = stream.unix_socket())  // HAProxy's "server x unix@/path send-proxy"
    co_await read_header_from(unix_socket, max_size, source, ec);
  else  // a stream of a test's: nothing to peek at
    ec = error::bad_proxy_header;
}

}  // namespace wsl::detail
