// wsl pipe: stdin to messages, messages to stdout, for pipelines and for a person at a terminal.
//
// One io_context on the main thread runs two coroutines on one websocket:
//  - the receiver reads messages and writes them to stdout with blocking writes: a slow stdout
//    holds the socket back, which is the back-pressure a pipeline wants;
//  - the sender turns what the stdin thread hands over into messages.
// stdin is read by a thread of its own with blocking reads, because it may be a regular file
// (which epoll cannot watch) as well as a pipe or a terminal. SIGINT and SIGTERM are taken by
// another thread with sigwait(), so that a second one ends the process even while the main thread
// is blocked writing to stdout.
#include "pipe.hpp"

#include "message_batch.hpp"
#include "pipe_modes.hpp"
#include "records.hpp"

#include <wsl/detail/utf8.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/uio.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <thread>

namespace wsl::cli {
namespace {

double milliseconds(clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

}  // namespace

void report_connected(std::string_view url, const connect_report& report, websocket& ws) {
  clock::duration redirecting{};
  for (const auto& hop : report.redirects) redirecting += hop.time;
  const auto n = report.redirects.size();
  diagnostics::info(fmt::format(
      "connected to {} ({}{}) in {:.3f} ms: {}{} {:.3f} ms, handshake {:.3f} ms{}",
      n == 0 ? std::string(url) : report.final_url, format_remote(report),
      report.resolved_by_override ? ", from --resolve" : "",
      milliseconds(redirecting + report.resolve_time + report.connect_time + report.handshake_time),
      n == 0 ? ""
             : fmt::format("{} redirect{} from {} {:.3f} ms, ", n, n == 1 ? "" : "s", url, milliseconds(redirecting)),
      report.unix_socket.empty() ? "tcp" : "unix connect", milliseconds(report.connect_time),
      milliseconds(report.handshake_time),
      ws.subprotocol().empty() ? "" : fmt::format(", subprotocol {}", ws.subprotocol())));
  trace_control_frames(ws);
}

namespace {

bool sendable_close_code(unsigned code) noexcept {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

// ------------------------------------------------------------------------------------------------
// stdin

// Reads stdin on a thread of its own and hands it to the io_context a buffer at a time. Two
// buffers alternate: the thread fills one while the other is being sent and waits while both are
// in use, so a slow connection holds stdin back instead of filling memory. The thread sleeps in
// poll() on stdin and a wake-up pipe, so stop() ends it at once even on a silent terminal.
class stdin_feed {
 public:
  struct chunk {
    const char* data = nullptr;
    std::size_t size = 0;  // 0 at the end of stdin, on a read error (error set) or once stopped
    int error = 0;
  };

  stdin_feed(asio::any_io_executor executor, std::size_t buffer_size)
      : executor_(executor), wake_(executor), shared_(std::make_shared<shared>()), buffer_size_(buffer_size) {
    for (auto& b : buffers_) b = std::make_unique_for_overwrite<char[]>(buffer_size);
    wake_.expires_at(clock::time_point::max());
  }
  ~stdin_feed() {
    stop();
    if (thread_.joinable()) thread_.join();
  }
  stdin_feed(const stdin_feed&) = delete;
  stdin_feed& operator=(const stdin_feed&) = delete;

  std::error_code start() {
    if (::pipe2(shared_->wake_pipe, O_CLOEXEC) != 0) return {errno, std::system_category()};
    thread_ = std::thread([this, s = shared_] { read_loop(*s); });
    return {};
  }

  // The next chunk of stdin, in order. Call release() once its bytes are no longer needed.
  asio::awaitable<chunk> next() {
    while (ready_count_ == 0 && !stopped_) {
      std::error_code ignored;
      co_await wake_.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    }
    if (stopped_ || ready_count_ == 0) co_return chunk{};
    const auto& r = ready_[ready_first_];
    ready_first_ ^= 1;
    --ready_count_;
    current_ = r.index;
    co_return chunk{buffers_[r.index].get(), r.size, r.error};
  }

  void release() {
    std::lock_guard lock(shared_->mutex);
    shared_->in_use[current_] = false;
    shared_->cv.notify_one();
  }

  // Ends the thread and wakes a waiting next(), which then returns an empty chunk.
  void stop() {
    stopped_ = true;
    try {
      wake_.cancel();
    } catch (...) {
    }
    std::lock_guard lock(shared_->mutex);
    if (shared_->stopping) return;
    shared_->stopping = true;
    shared_->cv.notify_one();
    if (shared_->wake_pipe[1] >= 0) {
      const char byte = 0;
      [[maybe_unused]] auto ignored = ::write(shared_->wake_pipe[1], &byte, 1);
    }
  }

 private:
  // What the reading thread and the io_context share; the pipe closes with the last owner.
  struct shared {
    std::mutex mutex;
    std::condition_variable cv;
    bool in_use[2] = {false, false};  // filled and handed over, not yet released
    bool stopping = false;
    int wake_pipe[2] = {-1, -1};
    ~shared() {
      for (int fd : wake_pipe)
        if (fd >= 0) ::close(fd);
    }
  };
  struct ready_chunk {
    unsigned index = 0;
    std::size_t size = 0;
    int error = 0;
  };

  void read_loop(shared& s) {
    for (unsigned i = 0;; i ^= 1) {
      {
        std::unique_lock lock(s.mutex);
        s.cv.wait(lock, [&] { return s.stopping || !s.in_use[i]; });
        if (s.stopping) return;
        s.in_use[i] = true;
      }
      ssize_t n = -1;
      int error = 0;
      for (;;) {
        pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {s.wake_pipe[0], POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) {
          if (errno == EINTR) continue;
          error = errno;
          break;
        }
        if (fds[1].revents != 0) return;
        n = ::read(STDIN_FILENO, buffers_[i].get(), buffer_size_);
        if (n >= 0) break;
        if (errno == EINTR || errno == EAGAIN) continue;  // EAGAIN: a non-blocking stdin we share
        error = errno;
        break;
      }
      const std::size_t size = n > 0 ? static_cast<std::size_t>(n) : 0;
      asio::post(executor_, [this, i, size, error] { deliver({i, size, error}); });
      if (size == 0) return;
    }
  }

  // On the io_context.
  void deliver(ready_chunk r) {
    ready_[(ready_first_ + ready_count_) % 2] = r;
    ++ready_count_;
    try {
      wake_.cancel();
    } catch (...) {
    }
  }

  asio::any_io_executor executor_;
  timer wake_;  // never expires; cancel() wakes next()
  std::shared_ptr<shared> shared_;
  std::unique_ptr<char[]> buffers_[2];
  std::size_t buffer_size_;
  std::thread thread_;
  ready_chunk ready_[2];
  unsigned ready_first_ = 0, ready_count_ = 0;
  unsigned current_ = 0;
  bool stopped_ = false;
};

// ------------------------------------------------------------------------------------------------
// stdout

// Blocking writes to stdout, whatever it is. The first failure is kept and ends the output;
// EPIPE (the reader went away, as with `| head`) is a quiet, normal end.
class stdout_sink {
 public:
  bool write(asio::const_buffer data, std::string_view tail) {
    if (error_ != 0) return false;
    iovec parts[2] = {{const_cast<void*>(data.data()), data.size()}, {const_cast<char*>(tail.data()), tail.size()}};
    error_ = write_fully(STDOUT_FILENO, parts, 2);
    return error_ == 0;
  }
  int error() const noexcept { return error_; }

 private:
  int error_ = 0;
};

// ------------------------------------------------------------------------------------------------
// The session

// --reconnect: the first pause is about first_pause, doubling while attempts keep failing up to
// max_pause; a connection that stayed open stable_connection starts the count again.
constexpr clock::duration first_pause = std::chrono::milliseconds(100);
constexpr clock::duration max_pause = std::chrono::seconds(10);
constexpr clock::duration stable_connection = std::chrono::seconds(5);

class pipe_session {
 public:
  pipe_session(const pipe_options& o, asio::io_context& ctx)
      : o_(o),
        ctx_(ctx),
        delimiter_(o.null_delimited ? std::string_view("\0", 1) : std::string_view("\n")),
        limit_(o.once ? 1 : o.max_messages),
        linger_(ctx),
        change_(ctx),
        pause_(ctx),
        records_(delimiter_[0]) {
    change_.expires_at(clock::time_point::max());
  }

  asio::awaitable<void> run();
  // Called on the io_context for the first SIGINT or SIGTERM.
  void interrupt(int signal_number);
  // Once the io_context has run out: says on stderr how the session ended and returns the exit status.
  int report_end() const;

 private:
  asio::awaitable<void> receive();
  void end_partial_message(message_type type, std::uint64_t delivered, bool output_ok, bool encoded);
  asio::awaitable<void> send_stdin();
  asio::awaitable<void> send_lines(const char* p, std::size_t n, std::error_code& ec);
  asio::awaitable<void> send_line(std::string_view line, std::error_code& ec);
  bool is_command(std::string_view line) const noexcept {
    return o_.slash && line.starts_with('/') && !line.starts_with("//");
  }
  asio::awaitable<void> run_command(std::string_view line, std::error_code& ec);
  void on_control(control_kind kind, std::string_view payload);
  void add_line(std::string_view line, std::string_view chunk);
  asio::awaitable<void> send_batch(std::error_code& ec);
  asio::awaitable<void> linger();
  asio::awaitable<void> close(std::uint16_t code, std::string_view reason);
  asio::awaitable<void> close_after_interrupt();
  // --reconnect
  asio::awaitable<bool> wait_for_link(std::uint64_t stale);
  asio::awaitable<void> pause_before_next(unsigned misses, std::string_view why);
  void link_changed();
  std::string describe_end() const;

  const pipe_options& o_;
  asio::io_context& ctx_;
  const std::string_view delimiter_;
  const std::uint64_t limit_;
  websocket ws_;
  timer linger_;
  timer change_;  // never expires; cancel() wakes wait_for_link() and a run() waiting for the sender
  timer pause_;   // --reconnect: the pause before the next attempt
  std::unique_ptr<stdin_feed> feed_;
  stdout_sink out_;
  record_splitter records_;  // stdin's lines

  int connect_status_ = exit_ok;
  bool connected_ = false;
  bool closing_ = false;       // we started the close handshake
  bool closed_first_ = false;  // ... before the server's close frame arrived
  bool receiver_done_ = false;
  bool link_up_ = false;       // ws_ is open for the sender
  bool between_ = false;       // --reconnect: a connection ended, the next not open yet
  bool sending_ = false;       // the sender is writing to ws_
  bool session_over_ = false;  // no connection will come any more
  bool gave_up_ = false;       // --reconnect-limit ended the session after a connection ended
  std::uint64_t connections_ = 0;
  int signal_ = 0;
  int input_error_ = 0;
  bool bad_line_ = false;  // a line that could not be sent ended the input
  bool warned_invalid_utf8_ = false;
  base64_stream base64_;  // of the message being written (--base64)
  message_batch batch_;   // lines of one read of stdin, sent together (or one --binary chunk)
  std::uint64_t received_ = 0, sent_ = 0;
  clock::time_point last_received_{};
  std::error_code end_;          // how the receiver's last read ended
  std::error_code close_error_;  // how our close handshake ended
  // --slash: the payloads of /ping commands whose pong has not come, and when each went.
  std::deque<std::pair<std::string, clock::time_point>> pings_;
};

// Connects, then receives until the connection ends. With --reconnect, an attempt that fails (but
// for good: describe_connect_failure's `lasting`) or a connection that ends other than by our
// close, a signal, or the message limit, is followed by another attempt after a pause. The sender
// goes on from one connection to the next.
asio::awaitable<void> pipe_session::run() {
  const auto& url = o_.connection.display_url;
  const auto executor = ctx_.get_executor();
  unsigned misses = 0;  // attempts in a row that failed, or whose connection ended within stable_connection
  unsigned failed = 0;  // attempts that failed since the last connection
  for (;;) {
    connect_report report;
    std::error_code ec;
    ws_ = co_await connect(executor, o_.connection.url, o_.connection.client, ec, &report);
    trace_handshake(report);
    if (signal_ != 0) break;
    if (ec) {
      auto failure = describe_connect_failure(url, ec, report);
      ++misses;
      const bool limit = o_.reconnect_limit != 0 && misses >= o_.reconnect_limit;
      if (!o_.reconnect || failure.lasting || limit) {
        if (limit)
          failure.text += fmt::format("; giving up after {} attempt{} in a row (--reconnect-limit)", misses,
                                      misses == 1 ? "" : "s");
        diagnostics::fatal(failure.text);
        connect_status_ = failure.status;
        break;
      }
      ++failed;
      co_await pause_before_next(misses, failure.text);
      if (signal_ != 0) break;
      continue;
    }
    connected_ = true;
    between_ = false;
    ++connections_;
    if (connections_ > 1 || failed > 0)
      diagnostics::warning(
          fmt::format("connected {}to {} (connection {}{})", connections_ > 1 ? "again " : "", url, connections_,
                      failed == 0 ? "" : fmt::format(", after {} failed attempt{}", failed, failed == 1 ? "" : "s")));
    failed = 0;
    report_connected(url, report, ws_);
    if (o_.slash) {
      pings_.clear();  // those of an earlier connection get no pong any more
      ws_.set_control_callback([this](control_kind kind, std::string_view payload) { on_control(kind, payload); });
    }
    if (!o_.first_message.empty()) {  // before stdin's lines: the sender waits for link_up_
      std::error_code first_ec;       // a failure ends the connection: receive() tells
      co_await ws_.write_message(message_type::text, asio::buffer(o_.first_message), first_ec);
      if (!first_ec) trace_message('>', message_type::text, o_.first_message.size());
    }
    link_up_ = true;
    link_changed();

    if (!feed_) {
      feed_ = std::make_unique<stdin_feed>(executor, o_.binary ? o_.chunk : 64 << 10);
      if (auto e = feed_->start()) {
        diagnostics::fatal(fmt::format("cannot read stdin: {}", e.message()));
        input_error_ = e.value();
        co_await close(close_code::internal_error, {});
      } else {
        asio::co_spawn(ctx_, send_stdin(), asio::detached);
      }
    }
    const auto opened = clock::coarse_now();
    co_await receive();
    link_up_ = false;
    if (!o_.reconnect || closing_ || signal_ != 0 || out_.error() != 0) break;
    // The server closed the connection, or it broke.
    if (clock::coarse_now() - opened >= stable_connection) misses = 0;
    ++misses;
    if (o_.reconnect_limit != 0 && misses >= o_.reconnect_limit) {
      diagnostics::warning(
          fmt::format("giving up after {} connection{} in a row that ended within {} (--reconnect-limit)", misses,
                      misses == 1 ? "" : "s", format_duration(stable_connection)));
      gave_up_ = true;
      break;
    }
    between_ = true;
    while (sending_) {  // a write to the old connection ends with it, at once
      std::error_code ignored;
      co_await change_.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    }
    co_await pause_before_next(misses, describe_end());
    if (signal_ != 0 || closing_) break;
  }
  session_over_ = true;
  link_changed();
  receiver_done_ = true;
  if (feed_) feed_->stop();
  linger_.cancel();
}

// --reconnect: waits until a connection other than number `stale` (0: any) is open; false once
// none will come.
asio::awaitable<bool> pipe_session::wait_for_link(std::uint64_t stale) {
  while (!session_over_ && (!link_up_ || connections_ == stale)) {
    std::error_code ignored;
    co_await change_.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  }
  co_return !session_over_;
}

void pipe_session::link_changed() {
  try {
    change_.cancel();
  } catch (...) {
  }
}

// The pause doubles with each miss in a row, from first_pause to max_pause, and is drawn from its
// upper half, so that many clients dropped at once do not come back at once.
asio::awaitable<void> pipe_session::pause_before_next(unsigned misses, std::string_view why) {
  auto base = first_pause * (1u << std::min(misses - 1, 10u));
  if (base > max_pause) base = max_pause;
  static std::minstd_rand random(std::random_device{}());
  const auto half = std::chrono::duration_cast<std::chrono::milliseconds>(base / 2).count();
  const auto pause = std::chrono::milliseconds(half + std::uniform_int_distribution<long>(0, half)(random));
  diagnostics::warning(fmt::format("{}; connecting again in {} (--reconnect)", why, format_duration(pause)));
  pause_.expires_after(pause);
  std::error_code ignored;
  co_await pause_.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
}

// How the last connection ended, in a line.
std::string pipe_session::describe_end() const {
  if (end_ && end_ != error::closed) return fmt::format("connection ended: {}", end_.message());
  const auto& peer = ws_.peer_close();
  return peer.code == 0 ? std::string("the server closed the connection")
                        : fmt::format("server closed the connection: {}", describe_close(peer));
}

// Messages to stdout. Every message read is written out before anything else happens, so none
// that arrived before the close is lost.
asio::awaitable<void> pipe_session::receive() {
  const std::string_view tail = o_.binary ? std::string_view() : delimiter_;
  std::error_code ec;
  for (;;) {
    auto in = co_await ws_.read_message(ec);
    if (ec) break;
    const auto& prefix = in.type() == message_type::text ? o_.types.text_prefix : o_.types.binary_prefix;
    bool written = prefix.empty() || out_.write(asio::buffer(prefix), {});
    const bool encode = o_.types.base64 && in.type() == message_type::binary;
    std::string encoded;
    std::uint64_t delivered = 0;  // bytes of the message handed to us (and to stdout)
    for (;;) {
      const auto chunk = co_await in.read_chunk(ec);
      if (ec) break;
      delivered += chunk.size();
      const bool last = in.done();
      if (encode) {
        encoded.clear();
        base64_.add({static_cast<const unsigned char*>(chunk.data()), chunk.size()}, encoded);
        if (last) base64_.finish(encoded);
        written = written && out_.write(asio::buffer(encoded), last ? tail : std::string_view());
      } else {
        written = written && out_.write(chunk, last ? tail : std::string_view());
      }
      if (last) break;
    }
    if (ec) {
      end_partial_message(in.type(), delivered, written, encode);
      break;
    }
    ++received_;
    last_received_ = clock::coarse_now();
    trace_message('<', in.type(), in.bytes_read());
    if (!written) {
      if (out_.error() != EPIPE)
        diagnostics::fatal(fmt::format("cannot write to stdout: {}", std::strerror(out_.error())));
      co_await close(out_.error() == EPIPE ? static_cast<std::uint16_t>(o_.close_code) : close_code::going_away,
                     out_.error() == EPIPE ? std::string_view(o_.close_reason) : std::string_view("output failed"));
      break;
    }
    if (limit_ != 0 && received_ >= limit_) {
      diagnostics::info(fmt::format("{} message{} received: closing", received_, received_ == 1 ? "" : "s"));
      co_await close(static_cast<std::uint16_t>(o_.close_code), o_.close_reason);
      break;
    }
  }
  trace_failure_close(ws_, ec);
  end_ = ec;
}

// A message the end of the connection cut short, some of it written: its line is ended (its
// base64 finished), so that the next message, after --reconnect, is a line of its own; and said.
void pipe_session::end_partial_message(message_type type, std::uint64_t delivered, bool output_ok, bool encoded) {
  const auto& prefix = type == message_type::text ? o_.types.text_prefix : o_.types.binary_prefix;
  std::string rest;
  if (encoded) base64_.finish(rest);
  if (!output_ok || (delivered == 0 && prefix.empty())) return;
  const std::string_view tail = o_.binary ? std::string_view() : delimiter_;
  out_.write(asio::buffer(rest), tail);
  diagnostics::warning(fmt::format("message {} was cut short by the end of the connection after {} byte{}{}",
                                   received_ + 1, delivered, delivered == 1 ? "" : "s",
                                   tail.empty() ? "" : ": its line ends there"));
}

// stdin to messages until the end of stdin, then the close handshake (unless --no-close).
asio::awaitable<void> pipe_session::send_stdin() {
  std::error_code ec;
  for (;;) {
    const auto c = co_await feed_->next();
    if (c.size == 0) {
      input_error_ = c.error;
      break;
    }
    if (o_.binary) {
      const std::string_view chunk(c.data, c.size);
      batch_.add(message_type::binary, chunk, chunk);
      co_await send_batch(ec);
    } else {
      co_await send_lines(c.data, c.size, ec);
    }
    feed_->release();
    if (ec) co_return;  // the connection ended; the receiver tells why
    if (bad_line_) break;
  }
  if (closing_ || receiver_done_ || signal_ != 0) co_return;
  if (input_error_ != 0) diagnostics::error(fmt::format("cannot read stdin: {}", std::strerror(input_error_)));
  if (const auto last = bad_line_ ? std::nullopt : records_.finish()) {  // a last line without its delimiter too
    co_await send_line(*last, ec);
    if (ec) co_return;
  }
  diagnostics::info(fmt::format("{} after {} message{}{}", bad_line_ ? "input ended" : "end of stdin", sent_,
                                sent_ == 1 ? "" : "s",
                                o_.no_close ? "; receiving until the server closes (--no-close)" : ""));
  if (o_.no_close) co_return;
  if (o_.linger.count() > 0) {
    if (o_.reconnect) {  // quiet on an open connection
      const bool up = co_await wait_for_link(0);
      if (!up) co_return;
    }
    co_await linger();
  }
  if (o_.reconnect) {  // the close goes to an open connection (the last may have ended meanwhile)
    const bool up = co_await wait_for_link(0);
    if (!up) co_return;
  }
  if (closing_ || receiver_done_ || signal_ != 0) co_return;  // a signal's close takes over
  co_await close(static_cast<std::uint16_t>(o_.close_code), o_.close_reason);
}

// Waits until no message has arrived for --linger: replies to the last lines have time to come
// back before our close, which many servers take as the end of their answers too.
asio::awaitable<void> pipe_session::linger() {
  auto quiet_since = clock::coarse_now();
  while (!closing_ && !receiver_done_ && signal_ == 0) {
    linger_.expires_at(quiet_since + o_.linger);
    std::error_code ignored;
    co_await linger_.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    if (last_received_ <= quiet_since) break;
    quiet_since = last_received_;
  }
}

asio::awaitable<void> pipe_session::send_lines(const char* p, std::size_t n, std::error_code& ec) {
  const std::string_view chunk(p, n);
  records_.feed(chunk);
  for (;;) {
    auto line = records_.next();
    if (line && is_command(*line)) {  // what came before it goes first
      co_await send_batch(ec);
      if (!ec) co_await run_command(*line, ec);
      if (ec) co_return;
      continue;
    }
    if (line) add_line(*line, chunk);
    if (line && !bad_line_ && !batch_.full()) continue;
    co_await send_batch(ec);
    if (!line || ec || bad_line_) co_return;
  }
}

asio::awaitable<void> pipe_session::send_line(std::string_view line, std::error_code& ec) {
  if (is_command(line)) {
    co_await run_command(line, ec);
    co_return;
  }
  add_line(line, {});
  co_await send_batch(ec);
}

// --slash: "/ping [TEXT]" sends a ping (its pong's round trip is said on stderr), "/close [CODE
// [REASON]]" starts the close handshake, as the end of stdin would, with that code. A command that
// cannot be carried out is said and skipped: the input goes on. `ec` is set only when the
// connection (or the input, after /close) has ended.
asio::awaitable<void> pipe_session::run_command(std::string_view line, std::error_code& ec) {
  const auto space = line.find(' ');
  const auto name = line.substr(0, space);
  const auto argument = space == std::string_view::npos ? std::string_view() : line.substr(space + 1);
  const bool ping = name == "/ping";
  unsigned code = close_code::normal;
  std::string reason;  // `line` lives in the stdin buffer, which close() lets go
  if (ping) {
    if (argument.size() > 125) {
      diagnostics::warning(
          fmt::format("/ping: {} bytes of payload, a ping carries at most 125: not sent", argument.size()));
      co_return;
    }
  } else if (name == "/close") {
    const auto code_text = argument.substr(0, argument.find(' '));
    if (code_text.size() < argument.size()) reason = argument.substr(code_text.size() + 1);
    if (!code_text.empty()) {
      const auto parsed = std::from_chars(code_text.data(), code_text.data() + code_text.size(), code);
      if (parsed.ec != std::errc() || parsed.ptr != code_text.data() + code_text.size()) code = 0;
    }
    if (!sendable_close_code(code) || reason.size() > 123 ||
        !detail::utf8_validator::validate(reason.data(), reason.size())) {
      diagnostics::warning(
          fmt::format("/close {}: expected a code of 1000-1003, 1007-1014 or 3000-4999 and a UTF-8 "
                      "reason of at most 123 bytes: not closed",
                      argument));
      co_return;
    }
    diagnostics::info(fmt::format("/close after {} message{}", sent_, sent_ == 1 ? "" : "s"));
  } else {
    diagnostics::warning(
        fmt::format("unknown command '{}': not sent (--slash knows /ping [TEXT] and /close [CODE "
                    "[REASON]]; a line starting with '//' is sent without its first '/')",
                    name));
    co_return;
  }
  if (o_.reconnect) {  // between connections, the command waits for the next one
    const bool up = co_await wait_for_link(0);
    if (!up) {
      ec = error::closed;
      co_return;
    }
  }
  if (ping) {
    pings_.emplace_back(std::string(argument), clock::now());
    co_await ws_.ping(asio::buffer(argument.data(), argument.size()), ec);
    if (ec && o_.reconnect) ec = {};  // the connection ended: the next one takes the lines that follow
    co_return;
  }
  co_await close(static_cast<std::uint16_t>(code), reason);
  ec = error::closed;  // no more input
}

// --slash: the pong of a /ping is said, with its round trip (pongs of the library's own pings and
// unsolicited ones are not: -vv shows every control frame).
void pipe_session::on_control(control_kind kind, std::string_view payload) {
  trace_control(kind, payload);
  if (kind != control_kind::pong) return;
  const auto it = std::find_if(pings_.begin(), pings_.end(), [&](const auto& p) { return p.first == payload; });
  if (it == pings_.end()) return;
  const auto rtt = std::chrono::duration<double, std::milli>(clock::now() - it->second).count();
  diagnostics::warning(fmt::format("pong \"{}\" after {:.3f} ms", payload, rtt));
  pings_.erase(pings_.begin(), it + 1);  // a pong answers the most recent ping: earlier ones are past
}

// A line is a text message when it is UTF-8, as RFC 6455 requires of text; otherwise it goes as
// a binary message with the same bytes, so that nothing is lost or altered (warned once).
// With --binary-prefix or --text-prefix a line may say which it is (typed_lines.hpp); a line
// after the binary prefix that is not base64 (--base64) ends the input, as a read error would.
void pipe_session::add_line(std::string_view line, std::string_view chunk) {
  const auto number = sent_ + batch_.size() + 1;
  if (o_.slash && line.starts_with("//")) line.remove_prefix(1);  // not a command: its first '/' escapes
  auto m = message_of_line(o_.types, line);
  if (m.bad_base64) {
    diagnostics::fatal(
        fmt::format("line {} is not base64 after the binary prefix '{}' (--base64): not sent, "
                    "and nothing after it",
                    number, o_.types.binary_prefix));
    bad_line_ = true;
    return;
  }
  if (m.not_utf8 && !warned_invalid_utf8_) {
    warned_invalid_utf8_ = true;
    diagnostics::warning(
        fmt::format("line {} is not valid UTF-8: sent as a binary message (and so will any "
                    "other such line)",
                    number));
  }
  batch_.add(std::move(m), chunk);
}

// With --reconnect, a batch whose write the end of a connection interrupted is written again,
// whole, to the next connection: the server may see some of it twice, but none of it is lost here.
asio::awaitable<void> pipe_session::send_batch(std::error_code& ec) {
  std::uint64_t stale = 0;  // the connection that failed this batch
  while (!batch_.empty()) {
    if (o_.reconnect) {
      const bool up = co_await wait_for_link(stale);
      if (!up) {
        if (!ec) ec = error::closed;
        break;
      }
      ec = {};
    }
    const auto connection = connections_;
    sending_ = true;
    co_await ws_.write_messages(batch_.messages(), ec);
    sending_ = false;
    if (!ec) {
      for (const auto& m : batch_.messages()) trace_message('>', m.type, m.data.size());
      sent_ += batch_.size();
      break;
    }
    if (!o_.reconnect) break;
    link_changed();                       // run() may be waiting for this write to end
    if (closing_ || signal_ != 0) break;  // our own close ended it: no next connection
    const auto n = batch_.size();
    diagnostics::warning(fmt::format(
        "{} being sent when connection {} ended: sent again on the next one",
        n == 1 ? fmt::format("message {} was", sent_ + 1) : fmt::format("messages {}-{} were", sent_ + 1, sent_ + n),
        connection));
    stale = connection;
  }
  batch_.clear();
}

// Starts (once) and completes our close handshake. While the receiver is reading, close() lets it
// go on reading, so messages that arrive meanwhile are still written out.
asio::awaitable<void> pipe_session::close(std::uint16_t code, std::string_view reason) {
  if (closing_) co_return;
  closing_ = true;
  closed_first_ = ws_.peer_close().code == 0 && ws_.is_open();
  if (feed_) feed_->stop();
  trace_close_sent(ws_, code, reason);
  std::error_code ec;
  co_await ws_.close(code, reason, ec);
  close_error_ = ec;
}

asio::awaitable<void> pipe_session::close_after_interrupt() { co_await close(close_code::going_away, "interrupted"); }

void pipe_session::interrupt(int signal_number) {
  if (signal_ != 0) return;
  signal_ = signal_number;
  diagnostics::info(fmt::format("{}: closing with 1001", signal_number == SIGTERM ? "SIGTERM" : "SIGINT"));
  if (!connected_ || between_) {
    ctx_.stop();  // nothing to close (yet, or any more)
    return;
  }
  linger_.cancel();
  if (closing_) return;  // the close handshake is already under way: it drains as asked
  asio::co_spawn(ctx_, close_after_interrupt(), asio::detached);
}

int pipe_session::report_end() const {
  const int interrupted = signal_ == SIGTERM ? 128 + SIGTERM : exit_interrupted;
  if (!connected_ || between_) return signal_ != 0 ? interrupted : connect_status_;

  const auto& peer = ws_.peer_close();
  const bool we_closed_first = closing_ && closed_first_;
  // After our close, a missing answer is worth a warning only: everything was sent and received.
  const auto goodbye_missing = [&](std::error_code ec) {
    if (ec != error::close_timeout && ec != error::connection_lost) return false;
    diagnostics::warning(ec == error::close_timeout
                             ? fmt::format("the server did not answer our close within {}",
                                           format_duration(o_.connection.client.connection.close_timeout))
                             : std::string("the server dropped the connection without answering our close"));
    return true;
  };
  int status = exit_ok;
  if (out_.error() != 0) {
    status = out_.error() == EPIPE ? exit_ok : exit_failure;
  } else if (!end_ || end_ == error::closed) {
    if (!we_closed_first) {
      // The server closed first: its code says whether this is a normal end.
      if (peer.code != 0) diagnostics::error(fmt::format("server closed the connection: {}", describe_close(peer)));
      const bool normal =
          peer.code == close_code::normal || peer.code == close_code::going_away || peer.code == close_code::no_status;
      status = normal ? exit_ok : exit_protocol;
    } else if (!goodbye_missing(close_error_) && peer.code != 0) {
      diagnostics::info(fmt::format("closed: the server answered {}", describe_close(peer)));
    }
  } else if (!(we_closed_first && goodbye_missing(end_))) {
    diagnostics::fatal(fmt::format("connection ended: {}", end_.message()));
    status = exit_status_for(end_) == exit_ok ? exit_failure : exit_status_for(end_);
  }
  if (signal_ != 0) return interrupted;
  if (status == exit_ok && (input_error_ != 0 || bad_line_ || gave_up_)) status = exit_failure;
  return status;
}

int run_pipe(pipe_options& o) {
  diagnostics::configure("wsl pipe", o.verbosity, o.quiet);
  std::string problem;
  if (finish_client_options(o.connection, problem)) {
    diagnostics::fatal(problem);
    return exit_usage;
  }
  if (!sendable_close_code(o.close_code)) {
    diagnostics::fatal(
        fmt::format("--close-code {}: not a code that may be sent (1000-1003, 1007-1014, "
                    "3000-4999)",
                    o.close_code));
    return exit_usage;
  }
  if (o.close_reason.size() > 123 || !detail::utf8_validator::validate(o.close_reason.data(), o.close_reason.size())) {
    diagnostics::fatal("--close-reason: at most 123 bytes of UTF-8");
    return exit_usage;
  }
  if (!detail::utf8_validator::validate(o.first_message.data(), o.first_message.size())) {
    diagnostics::fatal("--first-message: not UTF-8 (it is sent as a text message)");
    return exit_usage;
  }
  const bool relaying = !o.tcp_listen.empty() || !o.unix_listen.empty();
  const char* const listen_option = o.unix_listen.empty() ? "--tcp-listen" : "--unix-listen";
  if ((o.binary || relaying) && (o.chunk == 0 || o.chunk > (std::uint64_t{1} << 30))) {
    diagnostics::fatal("--chunk: between 1 byte and 1G");
    return exit_usage;
  }
  if (o.command.empty() && o.close_grace_given) {
    diagnostics::fatal("--close-grace goes with a COMMAND (wsl pipe URL -- COMMAND)");
    return exit_usage;
  }
  if (!o.line_types_problem.empty()) {
    diagnostics::fatal(o.line_types_problem);
    return exit_usage;
  }
  if (!o.command.empty()) {
    if (o.reconnect || !o.first_message.empty()) {
      diagnostics::fatal(o.reconnect ? "--reconnect: not with a COMMAND (its life is one connection's)"
                                     : "--first-message: not with a COMMAND (it sends what it wants first)");
      return exit_usage;
    }
    if (o.slash) {
      diagnostics::fatal("--slash: not with a COMMAND (its output is messages, not commands)");
      return exit_usage;
    }
    if (o.no_close || o.linger.count() != 0) {
      diagnostics::fatal(
          fmt::format("{} is about the end of stdin: not with a COMMAND", o.no_close ? "--no-close" : "--linger"));
      return exit_usage;
    }
    if (o.close_grace.count() <= 0) {
      diagnostics::fatal("--close-grace: more than 0");
      return exit_usage;
    }
  }

  if (o.max_connections_given && !relaying) {
    diagnostics::fatal("--max-connections goes with --tcp-listen or --unix-listen");
    return exit_usage;
  }
  if (relaying) {
    // Bytes both ways, for as long as the connections last: none of stdin's framing or endings.
    const char* other = !o.command.empty()         ? "a COMMAND"
                        : o.null_delimited         ? "-0"
                        : o.types.any()            ? "--text-prefix, --binary-prefix and --base64"
                        : o.slash                  ? "--slash"
                        : o.reconnect              ? "--reconnect"
                        : o.once                   ? "--once"
                        : o.max_messages != 0      ? "--max-messages"
                        : o.no_close               ? "--no-close"
                        : o.linger.count() != 0    ? "--linger"
                        : !o.first_message.empty() ? "--first-message"
                                                   : nullptr;
    if (other) {
      diagnostics::fatal(fmt::format("{}: not with {}, which relays bytes", other, listen_option));
      return exit_usage;
    }
    if (o.max_connections == 0) {
      diagnostics::fatal("--max-connections: at least 1");
      return exit_usage;
    }
  }

  start_signal_thread();
  std::signal(SIGPIPE, SIG_IGN);  // a closed stdout shows up as EPIPE, a quiet end
  if (!o.command.empty()) return run_pipe_command(o);
  if (relaying) return run_pipe_tcp(o);

  int status = exit_ok;
  {
    asio::io_context ctx(1);
    pipe_session session(o, ctx);
    if (!run_interruptible(ctx, session)) return exit_failure;
    status = session.report_end();
  }
  return status;
}

}  // namespace

// CLI11 would say "URL [command...]".
class pipe_formatter : public CLI::Formatter {
 public:
  std::string make_usage(const CLI::App*, std::string) const override {
    return "Usage: wsl pipe [OPTIONS] URL [-- COMMAND [ARGS...]]\n";
  }
};

subcommand register_pipe(CLI::App& parent) {
  auto o = std::make_shared<pipe_options>();
  auto* app = parent.add_subcommand(
      "pipe", "Send stdin as messages and write the messages received to stdout, or the same for a COMMAND");
  app->formatter(std::make_shared<pipe_formatter>());
  add_client_options(*app, o->connection);
  app->add_option("command", o->command, "Run COMMAND instead: messages to its stdin, its stdout to messages")
      ->type_name("COMMAND");
  auto* null = app->add_flag("-0,--null", o->null_delimited, "Messages are delimited by NUL, not newline, both ways");
  auto* binary = app->add_flag("-b,--binary", o->binary,
                               "Send stdin as binary messages of up to --chunk bytes; write payloads raw, undelimited")
                     ->excludes(null);
  auto types = std::make_shared<line_type_options>(*app, o->types, binary, "a stdin line");
  add_size_option(*app, "--chunk", o->chunk,
                  "Largest binary message made from stdin (--binary) or of one read (--tcp-listen)");
  app->add_option("--close-code", o->close_code, "Close code sent at the end of stdin, --once or --max-messages")
      ->capture_default_str();
  app->add_option("--close-reason", o->close_reason, "Close reason sent with it (at most 123 bytes)");
  app->add_flag("-1,--once", o->once, "Exit after the first message received (COMMAND: close its stdin after it)");
  app->add_option("--max-messages", o->max_messages,
                  "Exit after this many messages received (COMMAND: close its stdin); 0 = no limit")
      ->capture_default_str();
  app->add_flag("-n,--no-close", o->no_close,
                "At the end of stdin, do not close: keep receiving until the server closes (or the message "
                "limit, or SIGINT)");
  add_duration_option(*app, "--linger", o->linger,
                      "At the end of stdin, close only once no message has arrived for this long (replies to the "
                      "last lines come back first); 0 = close at once");
  app->add_option("--first-message", o->first_message,
                  "Send this text message first on each connection (a subscription, a login), before stdin's "
                  "lines; with --reconnect, again on every new connection")
      ->type_name("TEXT");
  app->add_flag("--slash", o->slash,
                "A stdin line starting with '/' is a command: '/ping [TEXT]' sends a ping and says its pong's "
                "round trip, '/close [CODE [REASON]]' closes; '//' sends a line starting with '/'")
      ->excludes(binary);
  auto* reconnect = app->add_flag("--reconnect", o->reconnect,
                                  "When the server closes or the connection breaks, or an attempt fails, connect "
                                  "again after a pause (0.1s doubling up to 10s); stdin goes on where it was");
  app->add_option("--reconnect-limit", o->reconnect_limit,
                  "Give up after this many attempts in a row that failed (a connection that ended within 5s "
                  "counts); 0 = never")
      ->capture_default_str()
      ->needs(reconnect);
  auto* grace = add_duration_option(*app, "--close-grace", o->close_grace,
                                    "COMMAND: once the server has closed, time the command has to exit after its "
                                    "stdin ended, before SIGTERM, and as long again before SIGKILL");
  app->add_option("--tcp-listen", o->tcp_listen,
                  "Instead of stdin and stdout: listen for TCP connections here (127.0.0.1 unless an address is "
                  "given) and relay each through a WebSocket connection of its own, bytes both ways")
      ->type_name("[ADDRESS:]PORT");
  app->add_option("--unix-listen", o->unix_listen,
                  "The same on a Unix-domain socket (a path, or @NAME in the abstract namespace): a program that "
                  "speaks to a socket file reaches a server behind a WebSocket gateway")
      ->type_name("PATH")
      ->check([](const std::string& v) { return v.empty() ? std::string("a path, or @NAME") : std::string(); })
      ->excludes("--tcp-listen");
  app->add_option("--unix-mode", o->unix_mode,
                  "Permissions of the --unix-listen socket file, in octal (660: its owner and group may connect); "
                  "default: as the umask leaves them")
      ->type_name("MODE")
      ->needs("--unix-listen");
  app->add_option("--max-connections", o->max_connections,
                  "--tcp-listen, --unix-listen: connections relayed at once; later ones are closed at once")
      ->capture_default_str()
      ->each([o](const std::string&) { o->max_connections_given = true; });
  add_verbosity_options(*app, o->verbosity, o->quiet);
  app->footer(
      "Text mode: each stdin line is one text message (a line that is not UTF-8 goes as a binary message); each "
      "message received is written with a newline. At the end of stdin the close handshake runs and wsl exits 0. "
      "When the server closes first its code is printed on stderr; exit 0 for 1000, 1001 and no code, 76 "
      "otherwise. SIGINT closes with 1001, drains and exits 130. With '-- COMMAND [ARGS...]' the command takes "
      "the place of stdin and stdout (same framing), with WSL_URL, WSL_SUBPROTOCOL and WSL_EXTENSIONS in its "
      "environment; its exit closes the connection and wsl exits with its status. See wsl-pipe(1).");
  return {app, [o, grace, types] {
            o->close_grace_given = grace->count() > 0;
            o->line_types_problem = types->problem(o->null_delimited);
            return run_pipe(*o);
          }};
}

}  // namespace wsl::cli
