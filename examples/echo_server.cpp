// echo_server: the smallest useful wsl server. It listens on 127.0.0.1 (the port given, or 8080)
// and echoes every message as a stream, whatever its size or fragmentation.
//
//   ./echo_server 9000 &   then   echo hello | wsl pipe ws://127.0.0.1:9000/
#include <wsl/wsl.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/this_coro.hpp>

#include <cstdio>
#include <cstdlib>

asio::awaitable<void> serve(wsl::websocket ws) {
  std::error_code ec;
  for (;;) {
    wsl::message_reader in = co_await ws.read_message(ec);  // a message, as a stream
    if (ec) co_return;                                      // wsl::error::closed after a clean close
    wsl::message_writer out = ws.create_message_writer(in.type());
    while (!in.done()) {
      asio::const_buffer chunk = co_await in.read_chunk(ec);  // this message's bytes only
      if (ec) co_return;
      co_await out.write(chunk, ec);
    }
    co_await out.finish(ec);
  }
}

asio::awaitable<void> run(unsigned short port) {
  auto ex = co_await asio::this_coro::executor;
  wsl::listener l(ex);  // options: wsl::listener_options
  if (auto ec = l.start({asio::ip::make_address("127.0.0.1"), port})) {
    std::fprintf(stderr, "echo_server: %s\n", ec.message().c_str());
    co_return;
  }
  std::fprintf(stderr, "listening on ws://127.0.0.1:%u/\n", l.local_endpoint().port());
  for (;;) {
    wsl::websocket ws = co_await l.accept();
    asio::co_spawn(ex, serve(std::move(ws)), asio::detached);
  }
}

int main(int argc, char** argv) {
  asio::io_context context(1);
  asio::co_spawn(context, run(argc > 1 ? static_cast<unsigned short>(std::atoi(argv[1])) : 8080), asio::detached);
  context.run();
}
