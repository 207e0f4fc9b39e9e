#include "proxy.hpp"

#include "credentials.hpp"

#include <asio/read.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

namespace wsl::detail {

std::string host_and_port(const url& u) {
  const bool v6 = u.host.find(':') != std::string::npos;
  return (v6 ? "[" + u.host + "]" : u.host) + ":" + std::to_string(u.port);
}

std::string connect_request(const url& target, const url& proxy, std::string_view user_agent) {
  const auto authority = host_and_port(target);
  std::string out = "CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n";
  if (proxy.has_credentials)
    out.append("Proxy-Authorization: ").append(basic_credentials(proxy.user, proxy.password)).append("\r\n");
  if (!user_agent.empty()) out.append("User-Agent: ").append(user_agent).append("\r\n");
  out.append("\r\n");
  return out;
}

asio::awaitable<void> exchange_connect(asio::ip::tcp::socket& socket, const std::string& request, std::size_t max_head,
                                       proxy_answer& answer, std::error_code& ec) {
  const auto redirect = [&ec] { return asio::redirect_error(asio::use_awaitable, ec); };
  ec = {};
  co_await asio::async_write(socket, asio::buffer(request), redirect());
  if (ec) co_return;
  // Peek at what has come, then take only the bytes of the head: whatever the proxy (or the
  // server behind it) sent after the head stays in the socket for the tunnel's reader. Interim
  // answers take their place in the same buffer, so max_head bounds all the heads together.
  std::string head(max_head, '\0');
  std::size_t used = 0;
  for (std::size_t interim = 0;; ++interim) {
    const auto start = used;  // of this answer's head
    std::size_t end = std::string::npos;
    while (end == std::string::npos) {
      if (used == head.size()) {
        ec = error::handshake_too_large;
        co_return;
      }
      const auto seen = co_await socket.async_receive(asio::buffer(head.data() + used, head.size() - used),
                                                      asio::socket_base::message_peek, redirect());
      if (ec == asio::error::eof) ec = error::bad_response;
      if (ec) co_return;
      end = find_head_end(std::string_view(head.data() + start, used - start + seen), used - start);
      const auto take = end == std::string::npos ? seen : start + end + 4 - used;
      co_await asio::async_read(socket, asio::buffer(head.data() + used, take), redirect());
      if (ec) co_return;
      const auto scanned = used;
      used += take;
      // A head with LF line ends would never end for a CRLF reader.
      if (end == std::string::npos && has_bare_lf(std::string_view(head.data(), used), scanned)) {
        ec = error::bad_response;
        co_return;
      }
    }
    answer = proxy_answer{};
    ec = parse_response(std::string_view(head.data() + start, used - start), answer.status, answer.headers);
    if (ec || !is_interim(answer.status.status)) co_return;
    if (interim == max_interim_answers) {
      ec = error::bad_response;  // a proxy that only ever says "wait"
      co_return;
    }
  }
}

namespace {

// Sends `out`, then reads exactly `n` bytes of the answer into `in`: a proxy that hangs up before
// it has answered gave a bad answer.
asio::awaitable<void> send_then_read(asio::ip::tcp::socket& socket, const std::string& out, unsigned char* in,
                                     std::size_t n, std::error_code& ec) {
  co_await asio::async_write(socket, asio::buffer(out), asio::redirect_error(asio::use_awaitable, ec));
  if (!ec) co_await asio::async_read(socket, asio::buffer(in, n), asio::redirect_error(asio::use_awaitable, ec));
  if (ec == asio::error::eof) ec = error::bad_response;
}

}  // namespace

std::string_view socks5_reply_text(int code) noexcept {
  switch (code) {
    case 0: return "succeeded";
    case 1: return "general SOCKS server failure";
    case 2: return "connection not allowed by ruleset";
    case 3: return "network unreachable";
    case 4: return "host unreachable";
    case 5: return "connection refused";
    case 6: return "TTL expired";
    case 7: return "command not supported";
    case 8: return "address type not supported";
    default: return "unassigned reply code";
  }
}

asio::awaitable<void> socks5_connect(asio::ip::tcp::socket& socket, const url& target, const url& proxy,
                                     std::optional<asio::ip::address> address, socks_answer& answer,
                                     std::error_code& ec) {
  const auto redirect = [&ec] { return asio::redirect_error(asio::use_awaitable, ec); };
  const auto byte = [](std::size_t n) { return static_cast<char>(static_cast<unsigned char>(n)); };
  ec = {};
  answer = socks_answer{"SOCKS5 CONNECT " + host_and_port(target), 0, {}};
  if (std::error_code literal_ec; !address) {
    const auto literal = asio::ip::make_address(target.host, literal_ec);
    if (!literal_ec) address = literal;
  }
  if (!address && target.host.size() > 255) {
    ec = error::bad_url;
    co_return;
  }
  // A reply of `n` bytes, all of them or an error (the proxy hanging up early is a bad answer).
  unsigned char reply[262];
  const auto read_reply = [&](std::size_t offset, std::size_t n) {
    return asio::async_read(socket, asio::buffer(reply + offset, n), redirect());
  };

  // 1. Greeting: no authentication, or user and password.
  const bool login = proxy.has_credentials;
  const std::string greeting = login ? std::string("\x05\x02\x00\x02", 4) : std::string("\x05\x01\x00", 3);
  co_await send_then_read(socket, greeting, reply, 2, ec);
  if (ec) co_return;
  if (reply[0] != 5) {
    ec = error::bad_response;
    co_return;
  }
  if (reply[1] == 0xff) {
    answer.reason = login ? "no acceptable authentication method" : "it wants a user and password";
    ec = error::proxy_refused;
    co_return;
  }
  if (reply[1] == 2 && login) {
    std::string auth = "\x01";
    auth.append(1, byte(proxy.user.size())).append(proxy.user);
    auth.append(1, byte(proxy.password.size())).append(proxy.password);
    co_await send_then_read(socket, auth, reply, 2, ec);
    if (ec) co_return;
    if (reply[0] != 1) {
      ec = error::bad_response;
      co_return;
    }
    if (reply[1] != 0) {
      answer.reason = "user or password refused";
      ec = error::proxy_refused;
      co_return;
    }
  } else if (reply[1] != 0) {  // a method we did not offer
    ec = error::bad_response;
    co_return;
  }

  // 2. CONNECT to an IPv4 or IPv6 address, or to a name the proxy resolves.
  std::string request("\x05\x01\x00", 3);  // (the reserved 0 would end a C string)
  if (address && address->is_v4()) {
    const auto bytes = address->to_v4().to_bytes();
    request.append(1, '\x01').append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  } else if (address) {
    const auto bytes = address->to_v6().to_bytes();
    request.append(1, '\x04').append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  } else {
    request.append(1, '\x03').append(1, byte(target.host.size())).append(target.host);
  }
  request.append(1, byte(target.port >> 8)).append(1, byte(target.port & 0xff));
  // The reply: version, code, reserved, address type; then the bound address (4 or 16 bytes, or
  // a length and a name) and port, which say nothing to us but must leave the socket.
  co_await send_then_read(socket, request, reply, 4, ec);
  if (ec) co_return;
  if (reply[0] != 5 || reply[2] != 0 || (reply[3] != 1 && reply[3] != 3 && reply[3] != 4)) {
    ec = error::bad_response;
    co_return;
  }
  std::size_t at = 4;
  if (reply[3] == 3) co_await read_reply(at++, 1);
  const std::size_t rest = (reply[3] == 1 ? 4 : reply[3] == 4 ? 16 : reply[4]) + 2;
  if (!ec) co_await read_reply(at, rest);
  if (ec == asio::error::eof) ec = error::bad_response;
  if (ec) co_return;
  answer.code = reply[1];
  answer.reason = socks5_reply_text(reply[1]);
  if (answer.code != 0) ec = error::proxy_refused;
}

}  // namespace wsl::detail
