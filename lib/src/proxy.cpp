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

}  // namespace wsl::detail
