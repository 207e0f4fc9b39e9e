// cookie_auth: admit only WebSocket clients that carry a session cookie, with the negotiation hook.
//
// The hook sees every request on the listener's port:
//  - a plain `GET /login?name=NAME` is answered by the hook itself: 200 and a Set-Cookie with a
//    fresh session token (a real server would check a password here);
//  - a WebSocket upgrade without a known session cookie is refused with a custom 401 page;
//  - an upgrade with one is accepted, and the session's name comes with the request.
// Accepted clients get an echo of each message, prefixed with their name.
//
//   cookie_auth [PORT]          (0 or nothing: any free port)
//   curl -i 'http://127.0.0.1:PORT/login?name=ada'     -> Set-Cookie: session=...
//   websocat -H 'Cookie: session=...' ws://127.0.0.1:PORT/
//
// It prints "listening on ws://127.0.0.1:PORT/" on stderr when ready. Single-threaded: the hook
// and the sessions run on one io_context, so the session table needs no lock.
#include <wsl/wsl.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>

#include <openssl/rand.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>

namespace {

using sessions = std::map<std::string, std::string, std::less<>>;  // token -> name

std::string new_token() {
  unsigned char bytes[16];
  RAND_bytes(bytes, sizeof bytes);
  static constexpr char hex[] = "0123456789abcdef";
  std::string token;
  for (auto b : bytes) token += {hex[b >> 4], hex[b & 15]};
  return token;
}

// The value of `name` in a query string ("name=ada&x=1"), undecoded; empty when absent.
std::string query_value(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const auto amp = query.find('&');
    const auto pair = query.substr(0, amp);
    if (pair.substr(0, pair.find('=')) == name && pair.find('=') != std::string_view::npos)
      return std::string(pair.substr(pair.find('=') + 1));
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return {};
}

void plain(wsl::http_response& res, int status, std::string body) {
  res.status = status;
  res.headers = {};
  res.headers.add("Content-Type", "text/plain; charset=utf-8");
  res.body = std::move(body);
}

void negotiate(sessions& known, const wsl::http_request& req, wsl::http_response& res) {
  if (!req.is_websocket_upgrade()) {
    const auto name = query_value(req.query, "name");
    if (req.method != "GET" || req.path != "/login" || name.empty()) {
      plain(res, 404, "try GET /login?name=YOU\n");
      return;
    }
    const auto token = new_token();
    known[token] = name;
    plain(res, 200, "welcome, " + name + "\n");
    res.set_cookie("session", token, "Path=/; HttpOnly; SameSite=Strict");
    return;
  }
  const auto cookie = req.cookie("session");
  if (!cookie || known.find(*cookie) == known.end()) {
    plain(res, 401, "401: no valid session. Log in first: GET /login?name=YOU sets the cookie.\n");
    res.headers.add("Cache-Control", "no-store");
    return;
  }
  // Accepted: status stays 101.
}

asio::awaitable<void> echo_with_name(wsl::websocket ws, std::shared_ptr<sessions> known) {
  const auto cookie = ws.request().cookie("session");
  const auto it = cookie ? known->find(*cookie) : known->end();
  const std::string name = it != known->end() ? it->second : "?";
  for (;;) {
    std::error_code ec;
    auto in = co_await ws.read_message(ec);
    if (ec) break;
    auto text = co_await in.read_all(ec);
    if (ec) break;
    const auto reply = name + ": " + text;
    co_await ws.write_message(wsl::message_type::text, asio::buffer(reply), ec);
    if (ec) break;
  }
  std::error_code ignored;
  co_await ws.close(wsl::close_code::normal, {}, ignored);
}

asio::awaitable<void> serve(wsl::listener& listener, std::shared_ptr<sessions> known) {
  for (;;) {
    std::error_code ec;
    auto ws = co_await listener.accept(ec);
    if (ec) break;
    const auto executor = ws.get_executor();  // before ws is moved into the session
    asio::co_spawn(executor, echo_with_name(std::move(ws), known), asio::detached);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const auto port = static_cast<unsigned short>(argc > 1 ? std::atoi(argv[1]) : 0);
  asio::io_context context(1);
  auto known = std::make_shared<sessions>();
  wsl::listener_options options;
  options.hook = [known](const wsl::http_request& req, wsl::http_response& res) { negotiate(*known, req, res); };
  wsl::listener listener(context.get_executor(), options);
  if (auto ec = listener.start({asio::ip::make_address("127.0.0.1"), port})) {
    std::fprintf(stderr, "cookie_auth: cannot listen: %s\n", ec.message().c_str());
    return 1;
  }
  std::fprintf(stderr, "listening on ws://127.0.0.1:%u/\n", listener.local_endpoint().port());
  asio::co_spawn(context, serve(listener, known), asio::detached);
  context.run();
}
