// Closed-loop WebSocket echo load generator for bench/echo.
//
// One thread, one epoll loop, non-blocking sockets with TCP_NODELAY; Linux only, nothing beyond
// libc. It is the load generator, so it is built to be cheap: every outgoing frame is precomputed
// once, each readiness event is served by one recv() into a shared buffer that may hold many
// frames, frames are parsed in place (payloads are skipped, not copied), and nothing is allocated
// per message.
//
// Load mode (default): opens --connections connections to ws://HOST:PORT/, then each connection
// keeps --inflight masked messages of --size bytes outstanding and sends the next one whenever an
// echo arrives. After --warmup seconds it measures for --duration seconds and prints one JSON line:
//   {"messages":N,"seconds":S,"msgs_per_sec":R,"errors":E,"client_cpu_s":C,"server_cpu_s":V}
// client_cpu_s and server_cpu_s are utime+stime deltas over the measured window, read from
// /proc/self/stat and /proc/PID/stat (--server-pid) right at the window's edges; server_cpu_s is
// null without --server-pid.
//
// Idle mode (--idle N): opens N connections, does one echo round trip on each (so that the server
// has reached its steady per-connection state, read buffers included), prints
//   {"open":N,"errors":E}
// and holds the connections for --hold seconds, or until killed.
//
// Each echo is checked: it must be one message (fragments are reassembled logically) of the
// frame type sent and of exactly --size bytes; --check-payload also compares its bytes. Ping and
// pong frames are skipped, not answered (no peer pings within the benchmark's durations).
//
// Exit status: 0 when every connection ran without error, 1 when some failed, 2 on bad usage.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct options {
  std::string host = "127.0.0.1";
  int port = 0;
  std::size_t connections = 100;
  std::size_t size = 32;
  std::size_t inflight = 1;
  double warmup = 2;
  double duration = 5;
  bool text = false;
  bool check_payload = false;
  int server_pid = 0;
  std::size_t idle = 0;  // > 0 selects idle mode
  double hold = 3600;
  std::size_t max_connecting = 64;  // handshakes in progress at once
};

[[noreturn]] void usage(const char* error) {
  if (error) std::fprintf(stderr, "load_client: %s\n", error);
  std::fprintf(stderr,
               "usage: load_client --port PORT [--host 127.0.0.1] [--connections 100] [--size 32]\n"
               "                   [--inflight 1] [--warmup 2] [--duration 5] [--text] [--check-payload]\n"
               "                   [--server-pid PID] [--max-connecting 64]\n"
               "       load_client --port PORT --idle N [--hold SECONDS]\n");
  std::exit(2);
}

options parse_options(int argc, char** argv) {
  options o;
  auto number = [&](int& i, double min, double max) {
    if (i + 1 >= argc) usage((std::string(argv[i]) + " needs a value").c_str());
    char* end = nullptr;
    const char* s = argv[++i];
    double v = std::strtod(s, &end);
    if (end == s || *end != '\0' || v < min || v > max)
      usage((std::string("bad value for ") + argv[i - 1] + ": " + s).c_str());
    return v;
  };
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--host") {
      if (i + 1 >= argc) usage("--host needs a value");
      o.host = argv[++i];
    } else if (a == "--port") {
      o.port = static_cast<int>(number(i, 1, 65535));
    } else if (a == "--connections") {
      o.connections = static_cast<std::size_t>(number(i, 1, 1e6));
    } else if (a == "--size") {
      o.size = static_cast<std::size_t>(number(i, 0, 1 << 30));
    } else if (a == "--inflight") {
      o.inflight = static_cast<std::size_t>(number(i, 1, 1e4));
    } else if (a == "--warmup") {
      o.warmup = number(i, 0, 1e6);
    } else if (a == "--duration") {
      o.duration = number(i, 0.001, 1e6);
    } else if (a == "--server-pid") {
      o.server_pid = static_cast<int>(number(i, 1, 1 << 30));
    } else if (a == "--idle") {
      o.idle = static_cast<std::size_t>(number(i, 1, 1e6));
    } else if (a == "--hold") {
      o.hold = number(i, 0, 1e9);
    } else if (a == "--max-connecting") {
      o.max_connecting = static_cast<std::size_t>(number(i, 1, 1e6));
    } else if (a == "--text") {
      o.text = true;
    } else if (a == "--check-payload") {
      o.check_payload = true;
    } else if (a == "-h" || a == "--help") {
      usage(nullptr);
    } else {
      usage((std::string("unknown option ") + argv[i]).c_str());
    }
  }
  if (o.port == 0) usage("--port is required");
  return o;
}

double now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// utime + stime of a whole process (all its threads), in seconds, from /proc/PID/stat.
std::optional<double> process_cpu_seconds(const char* stat_path) {
  int fd = ::open(stat_path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char buf[1024];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return std::nullopt;
  buf[n] = '\0';
  // The command name (field 2) may hold spaces and parentheses: fields are counted after the
  // last ')'. utime and stime are fields 14 and 15, that is the 12th and 13th after it.
  const char* p = std::strrchr(buf, ')');
  if (!p) return std::nullopt;
  unsigned long long utime = 0, stime = 0;
  if (std::sscanf(p + 1, " %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu %llu", &utime, &stime) != 2)
    return std::nullopt;
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Fixed handshake key, so the expected Sec-WebSocket-Accept is a constant (RFC 6455's own example)
// and no SHA-1 is needed here; servers cannot tell.
constexpr std::string_view handshake_key = "dGhlIHNhbXBsZSBub25jZQ==";
constexpr std::string_view handshake_accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

// One masking key for every frame of every connection, so that the outgoing frames can be built
// once. RFC 6455 wants unpredictable keys (against cache poisoning by intermediaries, which do not
// exist on loopback); servers cannot tell and must unmask all the same.
constexpr std::uint8_t mask_key[4] = {0x37, 0xfa, 0x21, 0x3d};

// The masked client frame of one message, repeated: the bytes a connection sends are this period
// over and over, so any run of up to `copies - 1` frames starting at any phase is contiguous here.
struct frame_block {
  std::vector<std::uint8_t> bytes;
  std::size_t frame_len = 0;
  std::vector<std::uint8_t> payload;  // unmasked, for --check-payload

  frame_block(std::size_t size, bool text, std::size_t copies) : payload(size) {
    for (std::size_t i = 0; i < size; ++i)
      payload[i] = text ? static_cast<std::uint8_t>('a' + i % 26) : static_cast<std::uint8_t>(i * 31 + 7);
    std::uint8_t header[14];
    std::size_t h = 0;
    header[h++] = 0x80 | (text ? 0x1 : 0x2);  // FIN + opcode
    if (size < 126) {
      header[h++] = 0x80 | static_cast<std::uint8_t>(size);
    } else if (size <= 0xffff) {
      header[h++] = 0x80 | 126;
      header[h++] = static_cast<std::uint8_t>(size >> 8);
      header[h++] = static_cast<std::uint8_t>(size);
    } else {
      header[h++] = 0x80 | 127;
      for (int shift = 56; shift >= 0; shift -= 8)
        header[h++] = static_cast<std::uint8_t>(static_cast<std::uint64_t>(size) >> shift);
    }
    for (std::uint8_t k : mask_key) header[h++] = k;
    frame_len = h + size;
    bytes.resize(frame_len * copies);
    for (std::size_t c = 0; c < copies; ++c) {
      std::uint8_t* f = bytes.data() + c * frame_len;
      std::memcpy(f, header, h);
      for (std::size_t i = 0; i < size; ++i) f[h + i] = payload[i] ^ mask_key[i % 4];
    }
  }
};

enum class conn_state : std::uint8_t { not_started, connecting, handshaking, open, failed };

struct connection {
  int fd = -1;
  conn_state state = conn_state::not_started;
  bool want_write = false;  // EPOLLOUT armed

  // Handshake response, kept only until the handshake completes.
  std::unique_ptr<char[]> response;
  std::size_t response_len = 0;

  // Outgoing: bytes still to send, and where in the frame period the next byte is.
  std::size_t out_pending = 0;
  std::size_t out_phase = 0;
  std::size_t outstanding = 0;  // messages sent or queued whose echo has not arrived

  // Incoming frame parser.
  std::uint8_t header[14];
  std::uint8_t header_have = 0;
  bool in_payload = false;
  std::uint8_t frame_opcode = 0;
  bool frame_fin = false;
  std::uint64_t frame_left = 0;
  bool in_message = false;
  std::uint8_t message_opcode = 0;
  std::uint64_t message_len = 0;
};

constexpr std::size_t response_capacity = 2048;

class client {
 public:
  explicit client(const options& o)
      : o_(o),
        idle_mode_(o.idle > 0),
        count_(idle_mode_ ? o.idle : o.connections),
        inflight_(idle_mode_ ? 1 : o.inflight),
        block_(o.size, o.text, inflight_ + 1),
        expected_opcode_(o.text ? 0x1 : 0x2),
        conns_(count_) {
    std::string host_header = o.host + ":" + std::to_string(o.port);
    request_ = "GET / HTTP/1.1\r\nHost: " + host_header +
               "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + std::string(handshake_key) +
               "\r\nSec-WebSocket-Version: 13\r\n\r\n";
    std::memset(&addr_, 0, sizeof addr_);
    addr_.sin_family = AF_INET;
    addr_.sin_port = htons(static_cast<std::uint16_t>(o.port));
    if (inet_pton(AF_INET, o.host.c_str(), &addr_.sin_addr) != 1) usage("--host must be IPv4");
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) die("epoll_create1");
  }

  int run() {
    while (next_to_connect_ < count_ && connecting_ < o_.max_connecting) start_connect();
    if (!establish()) return finish_early();
    return idle_mode_ ? hold() : measure();
  }

 private:
  [[noreturn]] static void die(const char* what) {
    std::fprintf(stderr, "load_client: %s: %s\n", what, std::strerror(errno));
    std::exit(1);
  }

  // ---- connection setup -------------------------------------------------------------------

  void start_connect() {
    connection& c = conns_[next_to_connect_++];
    ++connecting_;
    c.state = conn_state::connecting;
    c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) die("socket");
    int one = 1;
    ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    epoll_event ev{};
    ev.events = EPOLLOUT;
    ev.data.ptr = &c;
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, c.fd, &ev) < 0) die("epoll_ctl");
    if (::connect(c.fd, reinterpret_cast<sockaddr*>(&addr_), sizeof addr_) == 0) {
      on_connected(c);
    } else if (errno != EINPROGRESS) {
      fail(c, "connect", errno);
    }
  }

  void on_connected(connection& c) {
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return fail(c, "connect", err);
    // A fresh socket's send buffer always takes the whole request at once.
    if (::send(c.fd, request_.data(), request_.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request_.size()))
      return fail(c, "send handshake", errno);
    c.state = conn_state::handshaking;
    c.response = std::make_unique<char[]>(response_capacity);
    set_write_interest(c, false, true);
  }

  void on_handshake_readable(connection& c) {
    ssize_t n = ::recv(c.fd, c.response.get() + c.response_len, response_capacity - c.response_len, 0);
    if (n <= 0) {
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      return fail(c, n == 0 ? "handshake: connection closed" : "handshake recv", n ? errno : 0);
    }
    c.response_len += static_cast<std::size_t>(n);
    std::string_view r(c.response.get(), c.response_len);
    std::size_t end = r.find("\r\n\r\n");
    if (end == std::string_view::npos) {
      if (c.response_len == response_capacity) fail(c, "handshake: response too large");
      return;
    }
    std::string_view head = r.substr(0, end + 2);
    if (!(head.starts_with("HTTP/1.1 101 ") || head.starts_with("HTTP/1.1 101\r")))
      return fail(c, "handshake: status is not 101");
    if (!has_header(head, "sec-websocket-accept", handshake_accept))
      return fail(c, "handshake: bad Sec-WebSocket-Accept");
    c.state = conn_state::open;
    --connecting_;
    ++open_;
    if (next_to_connect_ < count_) start_connect();
    // Bytes after the response would already be frames (no server sends any unasked, though).
    std::string leftover(r.substr(end + 4));
    c.response.reset();
    c.response_len = 0;
    if (!leftover.empty() && !parse(c, reinterpret_cast<const std::uint8_t*>(leftover.data()), leftover.size())) return;
    if (idle_mode_) send_messages(c, 1);  // the one round trip idle connections make
  }

  static bool has_header(std::string_view head, std::string_view name, std::string_view value) {
    for (std::size_t pos = head.find("\r\n"); pos != std::string_view::npos;) {
      std::size_t start = pos + 2;
      std::size_t eol = head.find("\r\n", start);
      if (eol == std::string_view::npos) break;
      std::string_view line = head.substr(start, eol - start);
      std::size_t colon = line.find(':');
      if (colon == name.size() && std::equal(name.begin(), name.end(), line.begin(), [](char a, char b) {
            return a == (b >= 'A' && b <= 'Z' ? static_cast<char>(b - 'A' + 'a') : b);
          })) {
        std::string_view v = line.substr(colon + 1);
        while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
        while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
        if (v == value) return true;
      }
      pos = eol;
    }
    return false;
  }

  // Runs the loop until every connection is open (and, in idle mode, has had its echo) or failed;
  // gives up on the stragglers after establish_timeout seconds.
  bool establish() {
    double deadline = now() + establish_timeout;
    auto done = [&] { return open_ + failed_ == count_ && (!idle_mode_ || ready_ + failed_ >= count_); };
    for (double t = now(); !done(); t = now()) {
      if (t >= deadline) {
        errors_ += count_ - next_to_connect_;  // never started
        next_to_connect_ = count_;
        for (connection& c : conns_)
          if (c.state == conn_state::connecting || c.state == conn_state::handshaking ||
              (idle_mode_ && c.state == conn_state::open && c.outstanding > 0))
            fail(c, "timed out opening");
        break;
      }
      poll(static_cast<int>((deadline - t) * 1e3) + 1);
    }
    return open_ > 0 && (!idle_mode_ || ready_ > 0);
  }

  // ---- sending ----------------------------------------------------------------------------

  void send_messages(connection& c, std::size_t messages) {
    c.outstanding += messages;
    c.out_pending += messages * block_.frame_len;
    flush(c);
  }

  void flush(connection& c) {
    while (c.out_pending > 0) {
      ssize_t n = ::send(c.fd, block_.bytes.data() + c.out_phase, c.out_pending, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        if (errno == EINTR) continue;
        return fail(c, "send", errno);
      }
      std::size_t sent = static_cast<std::size_t>(n);
      bool partial = sent < c.out_pending;
      c.out_pending -= sent;
      c.out_phase = (c.out_phase + sent) % block_.frame_len;
      if (partial) break;  // the socket buffer is full: wait for EPOLLOUT rather than retry
    }
    if ((c.out_pending > 0) != c.want_write) set_write_interest(c, c.out_pending > 0, false);
  }

  void set_write_interest(connection& c, bool on, bool force) {
    if (c.want_write == on && !force) return;
    epoll_event ev{};
    ev.events = EPOLLIN | (on ? EPOLLOUT : 0u);
    ev.data.ptr = &c;
    if (::epoll_ctl(epfd_, EPOLL_CTL_MOD, c.fd, &ev) < 0) die("epoll_ctl");
    c.want_write = on;
  }

  // ---- receiving --------------------------------------------------------------------------

  void on_readable(connection& c) {
    ssize_t n = ::recv(c.fd, rbuf_.get(), rbuf_size, 0);
    if (n <= 0) {
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
      return fail(c, n == 0 ? "connection closed by server" : "recv", n ? errno : 0);
    }
    std::size_t before = completed_;
    if (!parse(c, rbuf_.get(), static_cast<std::size_t>(n))) return;
    std::size_t echoes = completed_ - before;
    if (echoes == 0) return;
    if (idle_mode_) {
      ready_ += echoes;
    } else if (running_) {
      send_messages(c, echoes);  // closed loop: one new message per echo
    }
  }

  // Parses frames from server to client; counts every complete, valid echo in completed_.
  bool parse(connection& c, const std::uint8_t* p, std::size_t n) {
    const std::uint8_t* end = p + n;
    while (p < end) {
      if (!c.in_payload) {
        // Gather the header: 2 bytes, then the extended length (server frames carry no mask).
        while (c.header_have < 2 && p < end) c.header[c.header_have++] = *p++;
        if (c.header_have < 2) break;
        if (c.header[1] & 0x80) return reject(c, "masked frame from server");
        std::uint8_t len7 = c.header[1] & 0x7f;
        std::size_t need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0);
        while (c.header_have < need && p < end) c.header[c.header_have++] = *p++;
        if (c.header_have < need) break;
        if (!begin_frame(c)) return false;
        if (c.frame_left == 0 && !end_frame(c)) return false;
        continue;
      }
      std::size_t take = static_cast<std::size_t>(std::min(c.frame_left, static_cast<std::uint64_t>(end - p)));
      if (c.frame_opcode <= 0x2) {
        if (o_.check_payload && std::memcmp(p, block_.payload.data() + c.message_len, take) != 0)
          return reject(c, "echoed payload differs");
        c.message_len += take;
      }
      p += take;
      c.frame_left -= take;
      if (c.frame_left == 0 && !end_frame(c)) return false;
    }
    return true;
  }

  bool begin_frame(connection& c) {
    const std::uint8_t* h = c.header;
    std::uint64_t len = h[1] & 0x7f;
    if (len == 126) {
      len = (std::uint64_t{h[2]} << 8) | h[3];
    } else if (len == 127) {
      len = 0;
      for (int i = 2; i < 10; ++i) len = (len << 8) | h[i];
    }
    c.header_have = 0;
    c.frame_fin = h[0] & 0x80;
    c.frame_opcode = h[0] & 0x0f;
    c.frame_left = len;
    c.in_payload = true;
    if (h[0] & 0x70) return reject(c, "reserved bits set");
    switch (c.frame_opcode) {
      case 0x0:
        if (!c.in_message) return reject(c, "continuation without a message");
        break;
      case 0x1:
      case 0x2:
        if (c.in_message) return reject(c, "new message inside a fragmented one");
        c.in_message = true;
        c.message_opcode = c.frame_opcode;
        c.message_len = 0;
        break;
      case 0x8: return reject(c, "close frame from server");
      case 0x9:
      case 0xa:
        if (!c.frame_fin || len > 125) return reject(c, "bad control frame");
        break;
      default: return reject(c, "unknown opcode");
    }
    if (c.frame_opcode <= 0x2 && c.message_len + len > o_.size) return reject(c, "echo longer than sent");
    return true;
  }

  bool end_frame(connection& c) {
    c.in_payload = false;
    if (c.frame_opcode > 0x2 || !c.frame_fin) return true;  // control frame, or more fragments
    c.in_message = false;
    if (c.message_opcode != expected_opcode_) return reject(c, "echo has the wrong frame type");
    if (c.message_len != o_.size) return reject(c, "echo shorter than sent");
    if (c.outstanding == 0) return reject(c, "echo of nothing");
    --c.outstanding;
    ++completed_;
    return true;
  }

  // ---- failures ---------------------------------------------------------------------------

  // Closes a connection that went wrong; err is the errno to report, if any.
  void fail(connection& c, const char* what, int err = 0) {
    if (c.state == conn_state::failed) return;
    if (errors_ < 5) {
      std::fprintf(stderr, "load_client: connection %zu: %s%s%s\n", &c - conns_.data(), what, err ? ": " : "",
                   err ? std::strerror(err) : "");
    } else if (errors_ == 5) {
      std::fprintf(stderr, "load_client: further connection errors are only counted\n");
    }
    ++errors_;
    ++failed_;
    if (c.state == conn_state::open) {
      --open_;
    } else {
      --connecting_;
      if (next_to_connect_ < count_) start_connect();
    }
    c.state = conn_state::failed;
    ::close(c.fd);  // also removes it from the epoll set
    c.fd = -1;
    c.response.reset();
  }

  bool reject(connection& c, const char* what) {
    fail(c, what);
    return false;
  }

  // ---- the loop ---------------------------------------------------------------------------

  void poll(int timeout_ms) {
    int n = ::epoll_wait(epfd_, events_, max_events, timeout_ms);
    if (n < 0) {
      if (errno == EINTR) return;
      die("epoll_wait");
    }
    for (int i = 0; i < n; ++i) {
      connection& c = *static_cast<connection*>(events_[i].data.ptr);
      std::uint32_t ev = events_[i].events;
      switch (c.state) {
        case conn_state::connecting: on_connected(c); break;
        case conn_state::handshaking: on_handshake_readable(c); break;
        case conn_state::open:
          if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c);
          if ((ev & EPOLLOUT) && c.state == conn_state::open) flush(c);
          break;
        case conn_state::not_started:
        case conn_state::failed: break;  // closed earlier in this batch
      }
    }
  }

  void run_until(double deadline) {
    for (double t = now(); t < deadline && open_ > 0; t = now()) {
      double ms = (deadline - t) * 1e3;
      poll(static_cast<int>(std::min(ms + 1, 1e9)));
    }
  }

  struct snapshot {
    double time;
    std::size_t messages;
    std::optional<double> client_cpu, server_cpu;
  };

  snapshot take_snapshot() {
    snapshot s{now(), completed_, process_cpu_seconds("/proc/self/stat"), std::nullopt};
    if (o_.server_pid > 0) s.server_cpu = process_cpu_seconds(server_stat_path_.c_str());
    return s;
  }

  int measure() {
    server_stat_path_ = "/proc/" + std::to_string(o_.server_pid) + "/stat";
    running_ = true;
    for (connection& c : conns_)
      if (c.state == conn_state::open) send_messages(c, inflight_);
    run_until(now() + o_.warmup);
    snapshot start = take_snapshot();
    run_until(start.time + o_.duration);
    snapshot stop = take_snapshot();

    double seconds = stop.time - start.time;
    std::size_t messages = stop.messages - start.messages;
    auto delta = [](const std::optional<double>& a, const std::optional<double>& b) {
      char buf[32];
      if (!a || !b) return std::string("null");
      std::snprintf(buf, sizeof buf, "%.2f", *b - *a);
      return std::string(buf);
    };
    std::printf(
        "{\"messages\":%zu,\"seconds\":%.6f,\"msgs_per_sec\":%.1f,\"errors\":%zu,"
        "\"client_cpu_s\":%s,\"server_cpu_s\":%s}\n",
        messages, seconds, static_cast<double>(messages) / seconds, errors_,
        delta(start.client_cpu, stop.client_cpu).c_str(), delta(start.server_cpu, stop.server_cpu).c_str());
    std::fflush(stdout);
    return errors_ == 0 ? 0 : 1;
  }

  int hold() {
    std::printf("{\"open\":%zu,\"errors\":%zu}\n", ready_, errors_);
    std::fflush(stdout);
    run_until(now() + o_.hold);
    return errors_ == 0 ? 0 : 1;
  }

  int finish_early() {
    std::fprintf(stderr, "load_client: no connection to %s:%d could be used\n", o_.host.c_str(), o_.port);
    if (idle_mode_) {
      std::printf("{\"open\":0,\"errors\":%zu}\n", errors_);
    } else {
      std::printf(
          "{\"messages\":0,\"seconds\":0,\"msgs_per_sec\":0,\"errors\":%zu,"
          "\"client_cpu_s\":null,\"server_cpu_s\":null}\n",
          errors_);
    }
    return 1;
  }

  static constexpr int max_events = 256;
  static constexpr double establish_timeout = 30;
  static constexpr std::size_t rbuf_size = 256 * 1024;

  const options& o_;
  const bool idle_mode_;
  const std::size_t count_;
  const std::size_t inflight_;
  const frame_block block_;
  const std::uint8_t expected_opcode_;
  std::vector<connection> conns_;  // never resized: epoll holds pointers into it
  std::string request_;
  std::string server_stat_path_;
  sockaddr_in addr_;
  int epfd_ = -1;
  epoll_event events_[max_events];
  std::unique_ptr<std::uint8_t[]> rbuf_ = std::make_unique<std::uint8_t[]>(rbuf_size);

  std::size_t next_to_connect_ = 0;
  std::size_t connecting_ = 0;  // connect or handshake in progress
  std::size_t open_ = 0;
  std::size_t failed_ = 0;
  std::size_t ready_ = 0;      // idle mode: connections whose echo came back
  std::size_t completed_ = 0;  // valid echoes received, all connections
  std::size_t errors_ = 0;
  bool running_ = false;
};

}  // namespace

int main(int argc, char** argv) {
  options o = parse_options(argc, argv);
  client c(o);
  return c.run();
}
