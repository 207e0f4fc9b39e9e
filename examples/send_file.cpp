// send_file: the client side. It connects to an echo server, sends a file as one binary message
// while it reads the echo back at the same time, and checks that the echo is the file, byte for
// byte. Both directions are streams: whatever the file's size, neither side holds more than a few
// buffers of it (a writer that waited for the whole echo would deadlock once the socket buffers
// fill, which is why the reading runs alongside).
//
//   wsl echo --port 9000 &   then   ./send_file ws://127.0.0.1:9000/ big.iso
//
// Exit status: 0 when the echo matched, 1 otherwise (with one line saying why).
#include <wsl/wsl.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr std::size_t piece_size = 64 << 10;

struct outcome {
  std::uint64_t sent = 0, echoed = 0;
  std::string failure;  // empty when all went well
  bool sending_done = false;
};

// Sends the file as one message, a piece at a time; each full buffer of the writer goes out as
// a fragment.
asio::awaitable<void> send_file(wsl::websocket& ws, std::FILE* file, outcome& result, asio::steady_timer& done) {
  std::error_code ec;
  wsl::message_writer out = ws.create_message_writer(wsl::message_type::binary);
  std::vector<char> piece(piece_size);
  while (std::size_t n = std::fread(piece.data(), 1, piece.size(), file)) {
    co_await out.write(asio::buffer(piece.data(), n), ec);
    if (ec) break;
    result.sent += n;
  }
  if (!ec) co_await out.finish(ec);
  if (ec && result.failure.empty()) result.failure = "sending: " + ec.message();
  result.sending_done = true;
  done.cancel();  // wakes check_echo if it waits for us
}

// Reads the echo as it arrives and compares each chunk with the next bytes of the file.
asio::awaitable<void> check_echo(wsl::websocket& ws, std::FILE* file, outcome& result) {
  std::error_code ec;
  wsl::message_reader in = co_await ws.read_message(ec);
  if (ec) {
    result.failure = "no echo: " + ec.message();
    co_return;
  }
  std::vector<char> expected(piece_size);
  while (!in.done()) {
    asio::const_buffer chunk = co_await in.read_chunk(ec);  // where it lies: no copy
    if (ec) {
      result.failure = "reading the echo: " + ec.message();
      co_return;
    }
    for (std::size_t at = 0; at < chunk.size();) {
      const std::size_t want = std::min(chunk.size() - at, expected.size());
      const std::size_t got = std::fread(expected.data(), 1, want, file);
      if (got == 0 || std::memcmp(expected.data(), static_cast<const char*>(chunk.data()) + at, got) != 0) {
        result.failure = "the echo differs from the file after byte " + std::to_string(result.echoed);
        co_return;
      }
      at += got;
      result.echoed += got;
    }
  }
  if (std::fgetc(file) != EOF) result.failure = "the echo stops at byte " + std::to_string(result.echoed);
}

asio::awaitable<void> run(std::string url, std::string path, outcome& result) {
  auto ex = co_await asio::this_coro::executor;
  std::FILE* to_send = std::fopen(path.c_str(), "rb");
  std::FILE* to_compare = std::fopen(path.c_str(), "rb");
  if (!to_send || !to_compare) {
    result.failure = path + ": " + std::strerror(errno);
    if (to_send) std::fclose(to_send);
    if (to_compare) std::fclose(to_compare);
    co_return;
  }
  std::error_code ec;
  wsl::client_options options;              // timeouts, headers, subprotocols, TLS for wss://...
  options.connection.max_message_size = 0;  // the echo of a file of any size
  wsl::websocket ws = co_await wsl::connect(ex, url, options, ec);
  if (ec) {
    result.failure = url + ": " + ec.message();
  } else {
    asio::steady_timer sending(ex, asio::steady_timer::time_point::max());
    asio::co_spawn(ex, send_file(ws, to_send, result, sending), asio::detached);
    co_await check_echo(ws, to_compare, result);
    if (!result.sending_done) {  // an echo cut short: the sending may still wait on the socket
      if (!result.failure.empty()) ws.abort();
      co_await sending.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    const std::string_view no_reason;
    co_await ws.close(wsl::close_code::normal, no_reason, ec);
  }
  std::fclose(to_send);
  std::fclose(to_compare);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: send_file ws://HOST:PORT/PATH FILE\n");
    return 1;
  }
  outcome result;
  asio::io_context context(1);
  const auto start = std::chrono::steady_clock::now();
  asio::co_spawn(context, run(argv[1], argv[2], result), asio::detached);
  context.run();
  const std::chrono::duration<double, std::milli> took = std::chrono::steady_clock::now() - start;
  if (!result.failure.empty()) {
    std::fprintf(stderr, "send_file: %s\n", result.failure.c_str());
    return 1;
  }
  std::printf("sent %llu bytes, echo identical, in %.1f ms\n", static_cast<unsigned long long>(result.sent),
              took.count());
  return 0;
}
