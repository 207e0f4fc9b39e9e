// Connection-rate load generator for bench/serve: each of --workers threads loops over one whole
// WebSocket connection at a time, as a short-lived client does:
//   TCP connect, opening handshake, one masked text message, its echo, close handshake, TCP close.
// After --warmup seconds it counts the connections completed in --duration seconds and prints
//   {"connections":N,"seconds":S,"conns_per_sec":R,"errors":E,"p50_ms":A,"p99_ms":B}
// (p50/p99: the time of one whole connection). Blocking sockets, one thread per worker: the cost
// on the server side (accept, negotiation, and with `serve -- cat` a process per connection) is what
// is measured, and that dwarfs the client's. Linux only, nothing beyond libc.
//
//   connect_client --port PORT [--workers 8] [--warmup 1] [--duration 5] [--path /]
//
// Exit status: 0 when no connection failed, 1 otherwise, 2 on bad usage.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using steady = std::chrono::steady_clock;

struct options {
  int port = 0;
  int workers = 8;
  double warmup = 1;
  double duration = 5;
  std::string path = "/";
};

[[noreturn]] void usage(const char* error) {
  if (error) std::fprintf(stderr, "connect_client: %s\n", error);
  std::fprintf(stderr, "usage: connect_client --port PORT [--workers 8] [--warmup 1] [--duration 5] [--path /]\n");
  std::exit(2);
}

bool send_all(int fd, const void* data, std::size_t n) {
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const auto w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

// Reads until `buffer` holds at least `want` bytes.
bool read_at_least(int fd, std::string& buffer, std::size_t want) {
  char chunk[4096];
  while (buffer.size() < want) {
    const auto n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    buffer.append(chunk, static_cast<std::size_t>(n));
  }
  return true;
}

// Reads one server frame (unmasked, payload < 126 bytes here) after the bytes already in buffer.
bool read_frame(int fd, std::string& buffer, int& opcode, std::string& payload) {
  for (;;) {
    if (!read_at_least(fd, buffer, 2)) return false;
    const auto b0 = static_cast<unsigned char>(buffer[0]), b1 = static_cast<unsigned char>(buffer[1]);
    std::size_t length = b1 & 0x7f, header = 2;
    if (length == 126) {
      if (!read_at_least(fd, buffer, 4)) return false;
      length = (static_cast<unsigned char>(buffer[2]) << 8) | static_cast<unsigned char>(buffer[3]);
      header = 4;
    } else if (length == 127) {
      return false;  // not expected in this benchmark
    }
    if (!read_at_least(fd, buffer, header + length)) return false;
    opcode = b0 & 0x0f;
    payload = buffer.substr(header, length);
    buffer.erase(0, header + length);
    if (opcode == 0x9 || opcode == 0xa) continue;  // pings and pongs: not part of the exchange
    return true;
  }
}

std::string masked_frame(int opcode, const std::string& payload) {
  const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
  std::string f;
  f.push_back(static_cast<char>(0x80 | opcode));
  f.push_back(static_cast<char>(0x80 | payload.size()));
  f.append(reinterpret_cast<const char*>(mask), 4);
  for (std::size_t i = 0; i < payload.size(); ++i) f.push_back(static_cast<char>(payload[i] ^ mask[i % 4]));
  return f;
}

// One whole connection; false on any failure.
bool one_connection(const options& o, const sockaddr_in& address) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } guard{fd};
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) return false;
  const std::string request = "GET " + o.path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(o.port) +
                              "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  if (!send_all(fd, request.data(), request.size())) return false;
  std::string buffer;
  std::size_t end;
  while ((end = buffer.find("\r\n\r\n")) == std::string::npos) {
    if (!read_at_least(fd, buffer, buffer.size() + 1)) return false;
  }
  if (buffer.compare(0, 12, "HTTP/1.1 101") != 0) return false;
  buffer.erase(0, end + 4);
  const std::string text = "hello, are you there?";
  const auto message = masked_frame(0x1, text);
  if (!send_all(fd, message.data(), message.size())) return false;
  int opcode = 0;
  std::string payload;
  if (!read_frame(fd, buffer, opcode, payload) || opcode != 0x1 || payload != text) return false;
  const auto close = masked_frame(0x8, std::string("\x03\xe8", 2));
  if (!send_all(fd, close.data(), close.size())) return false;
  if (!read_frame(fd, buffer, opcode, payload) || opcode != 0x8) return false;
  char sink[256];
  while (::recv(fd, sink, sizeof sink, 0) > 0) {  // the server closes TCP first
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage((a + " needs a value").c_str());
      return argv[++i];
    };
    if (a == "--port")
      o.port = std::atoi(value().c_str());
    else if (a == "--workers")
      o.workers = std::atoi(value().c_str());
    else if (a == "--warmup")
      o.warmup = std::atof(value().c_str());
    else if (a == "--duration")
      o.duration = std::atof(value().c_str());
    else if (a == "--path")
      o.path = value();
    else if (a == "-h" || a == "--help")
      usage(nullptr);
    else
      usage(("unknown option " + a).c_str());
  }
  if (o.port <= 0 || o.workers <= 0 || o.duration <= 0) usage("--port, --workers and --duration must be positive");

  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(o.port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

  const auto start = steady::now();
  const auto window_start =
      start + std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(o.warmup));
  const auto window_end =
      window_start + std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(o.duration));
  std::atomic<long> completed{0}, errors{0};
  std::mutex mutex;
  std::vector<double> times_ms;
  std::vector<std::thread> threads;
  for (int w = 0; w < o.workers; ++w) {
    threads.emplace_back([&] {
      std::vector<double> mine;
      for (;;) {
        const auto t0 = steady::now();
        if (t0 >= window_end) break;
        const bool ok = one_connection(o, address);
        const auto t1 = steady::now();
        if (t0 >= window_start && t1 <= window_end) {
          if (ok) {
            ++completed;
            mine.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
          } else {
            ++errors;
          }
        }
      }
      std::lock_guard lock(mutex);
      times_ms.insert(times_ms.end(), mine.begin(), mine.end());
    });
  }
  for (auto& t : threads) t.join();
  std::sort(times_ms.begin(), times_ms.end());
  auto percentile = [&](double p) {
    return times_ms.empty() ? 0.0
                            : times_ms[std::min(times_ms.size() - 1, static_cast<std::size_t>(p * times_ms.size()))];
  };
  std::printf(
      "{\"connections\":%ld,\"seconds\":%.3f,\"conns_per_sec\":%.1f,\"errors\":%ld,\"p50_ms\":%.3f,\"p99_ms\":%.3f}\n",
      completed.load(), o.duration, completed.load() / o.duration, errors.load(), percentile(0.5), percentile(0.99));
  return errors.load() == 0 ? 0 : 1;
}
