// Fuzz target: the server side of the opening handshake (RFC 6455 section 4.2, HTTP/1.1 request
// parsing, cookies, the negotiation hook). The input is the client's bytes, cut into pieces of a
// size it chooses; its first byte chooses the size limit. The negotiation must end once the
// client's side is closed, and answer with one well-formed HTTP response (or nothing, for a
// client that sent nothing whole; several, plain requests on a connection kept alive): a 101 with
// a Sec-WebSocket-Accept, last, exactly when it succeeded.
// Bits 3-4 of the first byte make every peer a trusted proxy naming the client in X-Forwarded-For,
// Forwarded or X-Real-IP.
#include "fuzz_support.hpp"
#include "wsl/detail/proxy_protocol.hpp"
#include "wsl/http.hpp"
#include "wsl/listener.hpp"

#include <array>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace wsl;
  fuzz::input in{data, size};
  const auto config = in.byte();
  const auto piece = static_cast<std::size_t>(in.byte()) + 1;
  const auto request = in.rest();

  // The parsers alone, on the whole input: the request's, and the PROXY header's (a complete one
  // lies within the input and, past its signature, names an address or none).
  {
    http_request parsed;
    if (!detail::parse_request(request, parsed)) (void)parsed.cookies();
    std::size_t header_size = 0;
    std::optional<asio::ip::address> source;
    const auto bytes = std::span(reinterpret_cast<const unsigned char*>(request.data()), request.size());
    if (detail::parse_proxy_header(bytes, header_size, source) == detail::proxy_header_status::complete &&
        (header_size > request.size() || header_size < 15))
      __builtin_trap();
  }

  listener_options options;
  options.connection = test::quiet_options();
  static constexpr std::array<std::size_t, 4> head_limits{64, 512, 4096, 16 << 10};
  options.max_handshake_size = head_limits[config & 3];
  if (const auto header = (config >> 3) & 3; header != 0) {
    // Every peer a trusted proxy, so that the chosen header (X-Forwarded-For, Forwarded or
    // X-Real-IP) is read: the client address it names feeds the connection budget.
    options.trusted_proxies = {*address_range::parse("0.0.0.0/0"), *address_range::parse("::/0")};
    options.client_address_header = static_cast<listener_options::forwarding_header>(header - 1);
  }
  if (config & 4) {
    // A hook that looks at everything and picks the last subprotocol offered, or refuses.
    options.hook = [](const http_request& req, http_response& res) {
      const auto cookies = req.cookies();
      if (req.path == "/refuse") {
        res.status = 403;
        res.body = "no";
        return;
      }
      if (!req.subprotocols().empty()) res.subprotocol = req.subprotocols().back();
      if (!cookies.empty()) res.set_cookie("seen", "1");
    };
  }

  fuzz::negotiation_harness h;
  auto accepting = h.spawn(test::accept_on(h.take_stream(), options));
  fuzz::feed(h, request, piece);
  fuzz::check(accepting.done(), "the negotiation did not end after the client's side closed");
  const auto& result = accepting.get();
  const auto answer = h.peer->take();
  if (answer.empty()) {
    fuzz::check(static_cast<bool>(result.ec), "upgraded without a response");
    return 0;
  }
  // Plain requests on a connection kept alive get answers of their own before the last one.
  const auto last_101 = answer.rfind("HTTP/1.1 101 ");
  const std::string_view last = std::string_view(answer).substr(result.ec ? 0 : std::min(last_101, answer.size()));
  const auto end = detail::find_head_end(last);
  fuzz::check(end != std::string::npos, "a response without a complete head");
  detail::http_status_line status;
  http_headers headers;
  const auto parse_error = detail::parse_response(last.substr(0, end + 4), status, headers);
  fuzz::check(!parse_error, "a response head that does not parse", parse_error.message());
  if (!result.ec) {
    fuzz::check(last_101 != std::string::npos, "upgraded without a 101");
    fuzz::check(status.status == 101, "upgraded with a status other than 101", std::to_string(status.status));
    fuzz::check(headers.get("Sec-WebSocket-Accept").has_value(), "a 101 without Sec-WebSocket-Accept");
  } else {
    fuzz::check(last_101 == std::string::npos, "a 101 for a failed negotiation", result.ec.message());
  }
  return 0;
}
