// wsl serve --pipe: stdin to every client, every client to stdout.
//
// Everything runs on one io_context (one thread: there is one stdin and one stdout), apart from
// the thread that reads stdin with blocking reads (stdin may be a regular file, which epoll cannot
// watch). That thread reads only when asked, one buffer at a time, and hands the bytes over to the
// io_context, where they are cut into records; each record becomes one immutable, shared message
// that goes into the send queue of every client, so a broadcast copies a pointer per client,
// never the payload.
//
// Pace: stdin is read at the pace of the fastest client. A read is asked for while some client
// has room for it in its queue (--queue-limit bytes); a client whose queue goes over the limit has
// fallen that far behind the fastest one and is closed with 1008 (and this is logged), so that one
// stalled client never holds the others up, and no record is ever dropped unsaid. When every
// client is slow, stdin waits. With nobody connected stdin waits too, unless --live.
//
// --addressed: each stdin record starts with "ID\t" and goes to that client only ("*\t": to every
// client). Consecutive records for the same client go together, as a broadcast's do; a record for
// a client that is not connected, or without an ID, is dropped and said (once per client).
//
// Messages from clients go to stdout with blocking writes (a slow stdout holds every client back,
// the back-pressure a pipeline wants). A message is written whole: one that arrives in pieces is
// gathered first (up to a bound), and a larger one takes stdout for itself until its end, so lines
// of different clients never mix.
#include "serve_modes.hpp"

#include "frame_trace.hpp"
#include "message_batch.hpp"
#include "records.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/uio.h>
#include <unistd.h>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <deque>
#include <list>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <unordered_set>

namespace wsl::cli {
namespace {

inline auto use_ec(std::error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

void cancel(timer& t) noexcept {
  try {
    t.cancel();
  } catch (...) {
  }
}

// ------------------------------------------------------------------------------------------------
// stdin

// Reads stdin on a thread of its own, one buffer at a time and only when asked (request()), and
// hands each read to the io_context (deliver). The buffer is reused by the next read, so the
// io_context asks for it once it is done with the bytes. The thread sleeps in poll() on stdin and a
// wake-up pipe, so that stop() ends it at once even while stdin is silent.
class stdin_reader {
 public:
  // data, size (0 at the end or on an error), errno (0 at the end)
  using deliver_function = std::function<void(const char*, std::size_t, int)>;

  stdin_reader(asio::any_io_executor executor, std::size_t buffer_size, deliver_function deliver)
      : executor_(executor), buffer_(buffer_size), deliver_(std::move(deliver)) {}
  ~stdin_reader() { stop(); }
  stdin_reader(const stdin_reader&) = delete;
  stdin_reader& operator=(const stdin_reader&) = delete;

  std::error_code start() {
    if (::pipe2(wake_pipe_, O_CLOEXEC) != 0) return {errno, std::system_category()};
    thread_ = std::thread([this] { loop(); });
    return {};
  }
  void request() {
    std::lock_guard lock(mutex_);
    requested_ = true;
    cv_.notify_one();
  }
  // Ends the thread and waits for it: nothing is delivered after it returns.
  void stop() {
    {
      std::lock_guard lock(mutex_);
      if (!stopping_) {
        stopping_ = true;
        cv_.notify_one();
        if (wake_pipe_[1] >= 0) {
          const char byte = 0;
          [[maybe_unused]] auto ignored = ::write(wake_pipe_[1], &byte, 1);
        }
      }
    }
    if (thread_.joinable()) thread_.join();
    for (int& fd : wake_pipe_)
      if (fd >= 0) ::close(std::exchange(fd, -1));
  }

 private:
  void loop() {
    for (;;) {
      {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] { return stopping_ || requested_; });
        if (stopping_) return;
        requested_ = false;
      }
      ssize_t n = -1;
      int error = 0;
      for (;;) {
        pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {wake_pipe_[0], POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) {
          if (errno == EINTR) continue;
          error = errno;
          break;
        }
        if (fds[1].revents != 0) return;
        n = ::read(STDIN_FILENO, buffer_.data(), buffer_.size());
        if (n >= 0) break;
        if (errno == EINTR || errno == EAGAIN) continue;  // EAGAIN: a non-blocking stdin we share
        error = errno;
        break;
      }
      const std::size_t size = n > 0 ? static_cast<std::size_t>(n) : 0;
      asio::post(executor_, [this, size, error] { deliver_(buffer_.data(), size, error); });
      if (size == 0) return;
    }
  }

  asio::any_io_executor executor_;
  std::vector<char> buffer_;
  deliver_function deliver_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool requested_ = false;
  bool stopping_ = false;
  int wake_pipe_[2] = {-1, -1};
};

// ------------------------------------------------------------------------------------------------
// stdout

// Blocking writes to stdout, whatever it is. The first failure is kept and ends the output.
// lock()/unlock() give one client stdout for the length of one message.
class stdout_writer {
 public:
  stdout_writer(asio::any_io_executor executor, const serve_options& o)
      : wake_(executor),
        delimiter_(o.binary           ? std::string_view()
                   : o.null_delimited ? std::string_view("\0", 1)
                                      : std::string_view("\n")),
        prefix_(o.prefix_client) {
    wake_.expires_at(clock::time_point::max());
  }

  asio::awaitable<void> lock() {
    while (locked_) {
      std::error_code ignored;
      co_await wake_.async_wait(use_ec(ignored));
    }
    locked_ = true;
  }
  void unlock() {
    locked_ = false;
    cancel(wake_);
  }

  // A piece of client `id`'s message; `last` ends it (and writes the delimiter). `line_start`
  // carries the --prefix-client state from piece to piece.
  void write(std::uint64_t id, std::string_view data, bool last, bool& line_start) {
    if (error_ != 0) return;
    if (!prefix_) {
      iovec parts[2] = {{const_cast<char*>(data.data()), data.size()},
                        {const_cast<char*>(delimiter_.data()), last ? delimiter_.size() : 0}};
      write_all(parts, 2);
      return;
    }
    // Every line gets the prefix, also those inside a message.
    scratch_.clear();
    const auto prefix = fmt::format("{}\t", id);
    while (!data.empty()) {
      if (line_start) scratch_.append(prefix);
      const auto end = data.find(delimiter_[0]);
      line_start = end != std::string_view::npos;
      scratch_.append(data.substr(0, line_start ? end + 1 : data.size()));
      data.remove_prefix(line_start ? end + 1 : data.size());
    }
    if (last) {
      if (line_start) scratch_.append(prefix);
      scratch_.append(delimiter_);
      line_start = true;
    }
    iovec part{scratch_.data(), scratch_.size()};
    write_all(&part, 1);
  }
  // --events: "+7<TAB>/path?query" or "-7<TAB>1000", a record of its own.
  void event(char mark, std::uint64_t id, std::string_view text) {
    if (error_ != 0) return;
    scratch_ = fmt::format("{}{}\t{}", mark, id, text);
    scratch_.append(delimiter_);
    iovec part{scratch_.data(), scratch_.size()};
    write_all(&part, 1);
  }
  int error() const noexcept { return error_; }

 private:
  void write_all(iovec* parts, int count) { error_ = write_fully(STDOUT_FILENO, parts, count); }

  timer wake_;
  bool locked_ = false;
  const std::string_view delimiter_;
  const bool prefix_;
  std::string scratch_;
  int error_ = 0;
};

// ------------------------------------------------------------------------------------------------
// Clients and the broadcast

struct outgoing {
  message_type type;
  std::string data;
};
using outgoing_ptr = std::shared_ptr<const outgoing>;

struct pipe_client {
  pipe_client(websocket& w, session_context& s)
      : ws(w), session(s), trace_prefix(tracing_frames() ? session_prefix(s) : std::string()), wake(w.get_executor()) {
    wake.expires_at(clock::time_point::max());
  }
  websocket& ws;
  session_context& session;
  // "[7] " when its frames are traced (-vv, frame_trace.hpp), else empty.
  const std::string trace_prefix;
  timer wake;  // cancel() wakes whoever of this client waits: its sender, its session
  std::deque<outgoing_ptr> queue;
  std::uint64_t queued = 0;  // bytes in queue
  std::uint64_t sent = 0;
  bool active = false;   // takes part in the broadcast (with --one: has the turn)
  bool cut = false;      // closed with 1008 for falling behind
  bool leaving = false;  // its connection is ending
  bool sender_done = false;

  void notify() { cancel(wake); }
  asio::awaitable<void> wait() {
    std::error_code ignored;
    co_await wake.async_wait(use_ec(ignored));
  }
};

class pipe_server {
 public:
  pipe_server(const serve_options& o, asio::io_context& ctx)
      : o_(o),
        ctx_(ctx),
        guard_(asio::make_work_guard(ctx)),
        out_(ctx.get_executor(), o),
        drain_timer_(ctx),
        read_size_(o.binary ? static_cast<std::size_t>(o.chunk) : std::size_t{64} << 10),
        reader_(ctx.get_executor(), read_size_,
                [this](const char* data, std::size_t n, int error) { on_stdin(data, n, error); }),
        splitter_(o.null_delimited ? '\0' : '\n') {}

  // On the io_context: the server listens, stdin may be read.
  void start(server_control& control) {
    control_ = &control;
    if (auto ec = reader_.start()) {
      diagnostics::fatal(fmt::format("cannot read stdin: {}", ec.message()));
      control.set_exit_status(exit_failure);
      eof_ = true;
      finish_reading();
      control.stop_accepting();
      return;
    }
    consider_reading();
  }

  // SIGINT: no more stdin; the runtime closes every connection with 1001.
  void interrupt() {
    interrupted_ = true;
    finish_reading();
    cancel(drain_timer_);
  }

  asio::awaitable<void> session(websocket& ws, session_context& s);
  asio::awaitable<void> write_event(char mark, std::uint64_t id, std::string_view text);

  struct tallies {
    std::uint64_t records = 0;        // read from stdin
    std::uint64_t dropped = 0;        // --live: read while nobody was connected
    std::uint64_t unaddressed = 0;    // --addressed: without "ID<TAB>"
    std::uint64_t undeliverable = 0;  // --addressed: for a client that was not connected
    std::uint64_t bad_base64 = 0;     // --base64: not base64 after the binary prefix
  };
  tallies counts() const noexcept { return tallies_; }

 private:
  void attach(pipe_client& c);
  void detach(pipe_client& c);
  void activate(pipe_client& c);
  void on_stdin(const char* data, std::size_t n, int error);
  void deliver(std::vector<outgoing_ptr>& batch);
  void deliver_to(std::uint64_t id, std::vector<outgoing_ptr>& batch);
  void take_record(std::string_view record, std::vector<outgoing_ptr>& batch);
  void route(std::vector<outgoing_ptr>& batch);
  void enqueue(pipe_client& c, const std::vector<outgoing_ptr>& batch);
  void cut(pipe_client& c);
  void end_of_input();
  void on_sent(pipe_client& c);
  void output_failed();
  bool has_room(const pipe_client& c) const noexcept {
    return c.queued == 0 || c.queued + splitter_.held() + read_size_ <= o_.queue_limit;
  }
  void consider_reading();
  void finish_reading();
  void add_record(std::string_view data, message_type type, std::vector<outgoing_ptr>& batch);
  void add_line(std::string_view line, std::vector<outgoing_ptr>& batch);
  asio::awaitable<void> send_loop(pipe_client& c);
  asio::awaitable<void> receive_loop(pipe_client& c);
  void close_later(websocket& ws, std::uint16_t code, std::string reason);

  const serve_options& o_;
  asio::io_context& ctx_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard_;  // while stdin may deliver
  stdout_writer out_;
  timer drain_timer_;
  const std::size_t read_size_;
  stdin_reader reader_;
  server_control* control_ = nullptr;

  std::list<pipe_client*> active_;                         // receiving the broadcast
  std::unordered_map<std::uint64_t, pipe_client*> by_id_;  // --addressed: every attached client
  std::list<pipe_client*> waiting_;                        // --one: waiting for their turn
  std::vector<outgoing_ptr> backlog_;                      // read while the last client was leaving: for the next one
  record_splitter splitter_;                               // stdin's records; holds one whose end has not been read yet
  bool reading_ = false;                                   // a read was asked for and has not been delivered
  bool reader_done_ = false;
  bool eof_ = false;
  bool interrupted_ = false;
  bool output_closed_ = false;
  bool warned_utf8_ = false;
  // --addressed: where the records gathered in on_stdin's batch go (everyone, or a client's ID),
  // and the clients already named in a "not connected" warning.
  static constexpr std::uint64_t everyone = 0;  // session ids start at 1
  std::uint64_t batch_target_ = everyone;
  std::unordered_set<std::uint64_t> warned_targets_;
  tallies tallies_;
};

void pipe_server::close_later(websocket& ws, std::uint16_t code, std::string reason) {
  // The close operation keeps its connection alive itself; only its error code needs a home.
  auto ec = std::make_shared<std::error_code>();
  auto op = ws.close(code, reason, *ec);
  asio::co_spawn(
      ctx_,
      [](asio::awaitable<void> op, std::shared_ptr<std::error_code>) -> asio::awaitable<void> {
        co_await std::move(op);
      }(std::move(op), ec),
      asio::detached);
}

void pipe_server::consider_reading() {
  if (reading_ || reader_done_ || eof_ || interrupted_ || output_closed_ || !backlog_.empty()) return;
  bool room = active_.empty() ? o_.live : false;
  for (const auto* c : active_) {
    if (has_room(*c)) {
      room = true;
      break;
    }
  }
  if (!room) return;
  reading_ = true;
  reader_.request();
}

// Joins the stdin thread; from then on the io_context may end.
void pipe_server::finish_reading() {
  if (reader_done_) return;
  reader_done_ = true;
  reader_.stop();
  guard_.reset();
}

void pipe_server::add_record(std::string_view data, message_type type, std::vector<outgoing_ptr>& batch) {
  batch.push_back(std::make_shared<const outgoing>(outgoing{type, std::string(data)}));
  ++tallies_.records;
}

// A line is a text message when it is UTF-8, as RFC 6455 requires; otherwise a binary one. With
// --text-prefix/--binary-prefix a line may say which it is (typed_lines.hpp); a line after the
// binary prefix that is not base64 (--base64) is dropped and said, as an unaddressed one is: the
// other clients are served on.
void pipe_server::add_line(std::string_view line, std::vector<outgoing_ptr>& batch) {
  const auto m = message_of_line(o_.types, line);
  if (m.bad_base64) {
    ++tallies_.records;
    if (tallies_.bad_base64++ == 0)
      diagnostics::warning(
          fmt::format("stdin record {} is not base64 after the binary prefix '{}' (--base64): dropped "
                      "(and so will any other such record)",
                      tallies_.records, o_.types.binary_prefix));
    return;
  }
  if (m.not_utf8 && !warned_utf8_) {
    warned_utf8_ = true;
    diagnostics::warning(
        fmt::format("stdin record {} is not UTF-8: sent as a binary message (and so will any "
                    "other such record)",
                    tallies_.records + 1));
  }
  add_record(m.decoded ? std::string_view(*m.decoded) : m.payload, m.type, batch);
}

void pipe_server::on_stdin(const char* data, std::size_t n, int error) {
  reading_ = false;
  if (interrupted_ || output_closed_) return;
  std::vector<outgoing_ptr> batch;
  if (o_.binary) {
    if (n != 0) add_record(std::string_view(data, n), message_type::binary, batch);
  } else {
    splitter_.feed(std::string_view(data, n));
    while (const auto record = splitter_.next()) take_record(*record, batch);
    if (n == 0) {
      if (const auto last = splitter_.finish()) take_record(*last, batch);  // a last record without its delimiter
    }
  }
  if (!batch.empty()) route(batch);
  if (n == 0) {
    if (error != 0) {
      diagnostics::fatal(fmt::format("cannot read stdin: {}", std::strerror(error)));
      control_->set_exit_status(exit_failure);
    }
    end_of_input();
    return;
  }
  consider_reading();
}

// A record of stdin into the batch; with --addressed, a batch holds the records of one target, and
// a record for another one sends the batch on first.
void pipe_server::take_record(std::string_view record, std::vector<outgoing_ptr>& batch) {
  if (!o_.addressed) {
    add_line(record, batch);
    return;
  }
  const auto tab = record.find('\t');
  const auto id_text = record.substr(0, tab == std::string_view::npos ? 0 : tab);
  std::uint64_t target = everyone;
  bool valid = id_text == "*";
  if (!valid && !id_text.empty()) {
    const auto [end, error] = std::from_chars(id_text.data(), id_text.data() + id_text.size(), target);
    valid = error == std::errc() && end == id_text.data() + id_text.size() && target != everyone;
  }
  if (!valid) {
    ++tallies_.records;
    if (tallies_.unaddressed++ == 0)
      diagnostics::warning(
          fmt::format("stdin record {} does not start with a client's ID and a tab (--addressed): "
                      "dropped (and so will any other such record)",
                      tallies_.records));
    return;
  }
  if (target != batch_target_ && !batch.empty()) {
    route(batch);
    batch.clear();
  }
  batch_target_ = target;
  add_line(record.substr(tab + 1), batch);
}

void pipe_server::route(std::vector<outgoing_ptr>& batch) {
  if (o_.addressed && batch_target_ != everyone) {
    deliver_to(batch_target_, batch);
  } else {
    deliver(batch);
  }
}

void pipe_server::deliver_to(std::uint64_t id, std::vector<outgoing_ptr>& batch) {
  const auto it = by_id_.find(id);
  if (it == by_id_.end() || !it->second->active) {
    tallies_.undeliverable += batch.size();
    // Said once per client, for the first few clients: a script that goes on writing to the
    // departed must not flood stderr (nor grow this set); the count at exit has them all.
    constexpr std::size_t named_at_most = 100;
    if (warned_targets_.size() < named_at_most && warned_targets_.insert(id).second) {
      diagnostics::warning(fmt::format("--addressed: client {} is not connected: records for it are dropped{}", id,
                                       warned_targets_.size() == named_at_most ? " (the last client named so)" : ""));
    }
    return;
  }
  enqueue(*it->second, batch);
}

void pipe_server::deliver(std::vector<outgoing_ptr>& batch) {
  if (active_.empty()) {
    if (o_.live) {
      tallies_.dropped += batch.size();
      diagnostics::debug(fmt::format("{} record{} for nobody (--live)", batch.size(), batch.size() == 1 ? "" : "s"));
    } else {
      backlog_.insert(backlog_.end(), batch.begin(), batch.end());  // the next client's
    }
    return;
  }
  for (auto it = active_.begin(); it != active_.end();) {
    auto& c = **it++;  // cut() takes it off the list
    enqueue(c, batch);
  }
}

void pipe_server::enqueue(pipe_client& c, const std::vector<outgoing_ptr>& batch) {
  const bool had_queue = c.queued != 0;
  for (const auto& m : batch) {
    c.queue.push_back(m);
    c.queued += m->data.size();
  }
  // An empty queue takes any batch: only a client already behind can fall too far behind.
  if (had_queue && c.queued > o_.queue_limit) {
    cut(c);
    return;
  }
  c.notify();
}

void pipe_server::cut(pipe_client& c) {
  diagnostics::warning(
      fmt::format("[{}] {} fell {} bytes ({} messages) behind, over --queue-limit {}: closing it "
                  "with 1008; it got {} messages",
                  c.session.id, format_peer(c.ws), c.queued, c.queue.size(), format_size(o_.queue_limit), c.sent));
  c.cut = true;
  c.active = false;
  active_.remove(&c);
  c.queue.clear();
  c.queued = 0;
  c.notify();
  constexpr std::string_view reason = "too slow: over the send queue limit";
  trace_close_sent(c.ws, close_code::policy_violation, reason, c.trace_prefix);
  close_later(c.ws, close_code::policy_violation, std::string(reason));
}

// The end of stdin: what is queued goes out, then each client is closed with 1000 (unless
// --keep-open). Those that do not take their queue within --drain-timeout are dropped.
void pipe_server::end_of_input() {
  eof_ = true;
  finish_reading();
  diagnostics::info(fmt::format("end of stdin after {} record{}{}", tallies_.records, tallies_.records == 1 ? "" : "s",
                                o_.keep_open ? ": still serving (--keep-open)" : ": closing once delivered"));
  if (o_.keep_open) return;
  control_->stop_accepting();
  for (auto* c : active_) c->notify();
  for (auto* c : waiting_) c->notify();
  if (active_.empty()) return;
  drain_timer_.expires_after(o_.drain_timeout);
  drain_timer_.async_wait([this](std::error_code ec) {
    if (ec) return;
    for (auto* c : active_) {
      if (c->queue.empty()) continue;
      diagnostics::warning(
          fmt::format("[{}] {} did not take its last {} messages within --drain-timeout {}: "
                      "dropping it",
                      c->session.id, format_peer(c->ws), c->queue.size(), format_duration(o_.drain_timeout)));
      c->ws.abort();
    }
  });
}

void pipe_server::on_sent(pipe_client& c) {
  if (!reading_ && has_room(c)) consider_reading();
}

// stdout is gone: EPIPE (its reader left, as with `| head`) is a quiet end, anything else a failure.
void pipe_server::output_failed() {
  if (output_closed_) return;
  output_closed_ = true;
  const int e = out_.error();
  if (e != EPIPE) {
    diagnostics::fatal(fmt::format("cannot write to stdout: {}", std::strerror(e)));
    control_->set_exit_status(exit_failure);
  } else {
    diagnostics::info("stdout was closed: closing every connection with 1001");
  }
  finish_reading();
  cancel(drain_timer_);
  control_->close_all(close_code::going_away, e == EPIPE ? "output closed" : "output failed");
}

void pipe_server::attach(pipe_client& c) {
  if (o_.addressed) by_id_.emplace(c.session.id, &c);
  if (o_.one && (!active_.empty() || !waiting_.empty())) {
    waiting_.push_back(&c);
    diagnostics::info(fmt::format("[{}] waits for its turn (--one), {} before it", c.session.id, waiting_.size()));
    return;
  }
  activate(c);
}

void pipe_server::activate(pipe_client& c) {
  c.active = true;
  active_.push_back(&c);
  if (!backlog_.empty()) {
    std::vector<outgoing_ptr> backlog;
    backlog.swap(backlog_);
    enqueue(c, backlog);
  }
  c.notify();
  consider_reading();
}

void pipe_server::detach(pipe_client& c) {
  by_id_.erase(c.session.id);
  waiting_.remove(&c);
  if (c.active) {
    c.active = false;
    active_.remove(&c);
    // Records it had not taken yet go to nobody else: the others had their own copies.
    if (!c.queue.empty())
      diagnostics::info(fmt::format("[{}] left with {} messages not sent", c.session.id, c.queue.size()));
  }
  if (o_.one && active_.empty()) {
    while (!waiting_.empty()) {
      auto* next = waiting_.front();
      waiting_.pop_front();
      if (next->leaving) {
        next->notify();
        continue;
      }
      activate(*next);
      break;
    }
  }
  if (eof_ && active_.empty()) cancel(drain_timer_);
}

asio::awaitable<void> pipe_server::session(websocket& ws, session_context& s) {
  pipe_client c(ws, s);
  s.on_shutdown = [&c] {
    c.leaving = true;
    c.notify();
  };
  attach(c);
  // --one: wait for the turn (the end of stdin or a shutdown ends the wait too).
  while (!c.active && !c.leaving && !(eof_ && !o_.keep_open)) co_await c.wait();
  if (!c.active) {
    detach(c);
    s.on_shutdown = nullptr;
    co_return;  // the runtime closes it with 1000 (or 1001 on SIGINT)
  }
  if (o_.events) co_await write_event('+', s.id, ws.request().target);
  asio::co_spawn(ctx_, send_loop(c), asio::detached);
  co_await receive_loop(c);
  c.leaving = true;
  c.notify();
  while (!c.sender_done) co_await c.wait();
  detach(c);
  if (o_.events) {
    const std::string code = ending_close_code(ws);  // not a temporary in co_await (GCC 12)
    co_await write_event('-', s.id, code);
  }
  s.on_shutdown = nullptr;
}

asio::awaitable<void> pipe_server::write_event(char mark, std::uint64_t id, std::string_view text) {
  co_await out_.lock();
  out_.event(mark, id, text);
  out_.unlock();
  if (out_.error() != 0) output_failed();
}

// The client's queue to the client; at the end of stdin, once it is empty, the close with 1000.
asio::awaitable<void> pipe_server::send_loop(pipe_client& c) {
  constexpr std::size_t batch = message_batch::limit;
  std::vector<outgoing_ptr> held;
  std::vector<outgoing_message> messages;
  std::error_code ec;
  for (;;) {
    while (c.queue.empty() && !c.cut && !c.leaving && !(eof_ && !o_.keep_open)) co_await c.wait();
    if (c.cut || c.leaving) break;
    if (c.queue.empty()) {  // the end of stdin, all delivered
      trace_close_sent(c.ws, close_code::normal, {}, c.trace_prefix);
      co_await c.ws.close(close_code::normal, {}, ec);
      break;
    }
    // What is queued leaves in batches (one system call for many small records, not one each),
    // held here: cut() may clear the queue meanwhile.
    held.assign(c.queue.begin(), c.queue.begin() + static_cast<std::ptrdiff_t>(std::min(c.queue.size(), batch)));
    messages.clear();
    for (const auto& m : held) messages.push_back({m->type, asio::buffer(m->data)});
    co_await c.ws.write_messages(messages, ec);
    if (!ec)
      for (const auto& m : held) trace_message('>', m->type, m->data.size(), c.trace_prefix);
    if (c.cut) break;
    for (const auto& m : held) c.queued -= m->data.size();
    c.queue.erase(c.queue.begin(), c.queue.begin() + static_cast<std::ptrdiff_t>(held.size()));
    if (ec) break;
    c.sent += held.size();
    on_sent(c);
  }
  c.sender_done = true;
  c.notify();
}

// The client's messages to stdout, each whole: gathered up to a bound, beyond it streamed while
// holding stdout. With --text-prefix/--binary-prefix each message starts with its type's prefix,
// and with --base64 a binary one is written as base64 (typed_lines.hpp). A message cut short by the
// end of the connection is written as far as it came, its line ended, and said.
asio::awaitable<void> pipe_server::receive_loop(pipe_client& c) {
  constexpr std::size_t gather_limit = 1 << 20;
  const bool typed = o_.types.any();
  std::string held, shaped;
  base64_stream base64;
  std::error_code ec;
  for (;;) {
    auto in = co_await c.ws.read_message(ec);
    if (ec) break;
    bool locked = false, line_start = true, first = true;
    const bool encode = o_.types.base64 && in.type() == message_type::binary;
    const std::string_view type_prefix =
        in.type() == message_type::text ? o_.types.text_prefix : o_.types.binary_prefix;
    held.clear();
    for (;;) {
      const auto chunk = co_await in.read_chunk(ec);
      if (ec) break;
      const bool last = in.done();
      std::string_view piece(static_cast<const char*>(chunk.data()), chunk.size());
      if (typed) {
        shaped.clear();
        if (first) shaped.append(type_prefix);
        if (encode) {
          base64.add({static_cast<const unsigned char*>(chunk.data()), chunk.size()}, shaped);
          if (last) base64.finish(shaped);
        } else {
          shaped.append(piece);
        }
        piece = shaped;
      }
      first = false;
      if (!locked) {
        if (last && held.empty()) {  // the common case: the whole message at once
          co_await out_.lock();
          out_.write(c.session.id, piece, true, line_start);
          out_.unlock();
          break;
        }
        if (held.size() + piece.size() <= gather_limit) {
          held.append(piece);
          if (!last) continue;
          co_await out_.lock();
          out_.write(c.session.id, held, true, line_start);
          out_.unlock();
          break;
        }
        co_await out_.lock();
        locked = true;
        out_.write(c.session.id, held, false, line_start);
        held.clear();
      }
      out_.write(c.session.id, piece, last, line_start);
      if (last) break;
    }
    if (!ec) trace_message('<', in.type(), in.bytes_read(), c.trace_prefix);
    if (ec) {
      // Cut short: what came is written and its line ended, so that the next writer starts on a
      // fresh one.
      if (encode) base64.finish(held);
      if (locked || !held.empty()) {
        if (!locked) co_await out_.lock();
        locked = true;
        out_.write(c.session.id, held, true, line_start);
        diagnostics::warning(fmt::format("[{}] a message was cut short by the end of the connection after {} bytes{}",
                                         c.session.id, in.bytes_read(),
                                         o_.binary ? std::string_view() : std::string_view(": its line ends there")));
      }
    }
    if (locked) out_.unlock();
    if (out_.error() != 0) output_failed();
    if (ec) break;
  }
  trace_failure_close(c.ws, ec, c.trace_prefix);
}

}  // namespace

int run_serve_pipe(serve_options& o) {
  if (o.one && o.reject_busy) {
    o.server.listener.budget =
        std::make_shared<connection_budget>(o.server.max_connections, o.server.max_connections_per_ip);
    o.server.listener.hook = [budget = o.server.listener.budget](const http_request& req, http_response& res) {
      if (budget->count() > 1) {  // this negotiation holds one already
        diagnostics::info(fmt::format("{} {}: busy (--one --reject-busy): 503", format_peer(req), req.target));
        res.reject(503, "busy: one client at a time\n");
        res.headers.add("Retry-After", "1");
      }
    };
  }
  std::signal(SIGPIPE, SIG_IGN);  // a closed stdout shows up as EPIPE, a quiet end

  std::unique_ptr<pipe_server> server;
  asio::io_context* context = nullptr;
  server_callbacks callbacks;
  callbacks.started = [&](server_control& control) {
    // One thread: its io_context is the one the sessions run on.
    context = &static_cast<asio::io_context&>(asio::query(control.executors().front(), asio::execution::context));
    server = std::make_unique<pipe_server>(o, *context);
    asio::post(*context, [&server, &control] { server->start(control); });
  };
  callbacks.interrupted = [&](int) { asio::post(*context, [&server] { server->interrupt(); }); };
  pipe_server::tallies counts;
  callbacks.finished = [&] {  // its timers must go before their io_context
    counts = server->counts();
    server.reset();
  };
  const int status = run_server(
      "serve", o.server, [&server](websocket& ws, session_context& s) { return server->session(ws, s); }, callbacks);
  const auto plural = [](std::uint64_t n) { return n == 1 ? "" : "s"; };
  if (counts.dropped != 0)
    diagnostics::info(fmt::format("{} record{} read while no client was connected reached nobody (--live)",
                                  counts.dropped, plural(counts.dropped)));
  if (counts.unaddressed != 0 || counts.undeliverable != 0)
    diagnostics::warning(
        fmt::format("--addressed: {} record{} without a client's ID and {} for clients that were not "
                    "connected were dropped",
                    counts.unaddressed, plural(counts.unaddressed), counts.undeliverable));
  if (counts.bad_base64 != 0)
    diagnostics::warning(fmt::format("--base64: {} record{} not base64 after the binary prefix were dropped",
                                     counts.bad_base64, plural(counts.bad_base64)));
  diagnostics::debug(fmt::format("{} record{} read from stdin", counts.records, plural(counts.records)));
  return status;
}

}  // namespace wsl::cli
