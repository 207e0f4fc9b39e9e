// wsl loadtest: a WebSocket load generator, for echo servers first.
//
// Closed loop (default): each connection keeps --inflight messages outstanding and sends the next
// one when an echo arrives. Open loop (-r RATE, --stage ramps: schedule.hpp): messages leave on a
// schedule and their round trip counts from the time they were due, not from when they could be
// sent, so a server that stalls is charged for the whole stall (no coordinated omission).
//
// What answers a message is --reply's: its echo (same type and length), the next message whatever
// it is (request/response servers), or nothing (servers that push: every message received is
// counted, none is an answer, and messages leave only on an open-loop schedule). With --stamp,
// messages carry the time they were due (stamp.hpp), and a message received that carries one gives
// the delay from it: latency through servers that forward or broadcast.
//
// Phases: connect (ramped by --connect-rate), warm-up (traffic, not recorded), measurement (-d),
// drain (outstanding echoes and handshakes awaited briefly), close (1000). One io_context per --threads.
#include "loadtest.hpp"

#include "client.hpp"
#include "histogram.hpp"
#include "schedule.hpp"
#include "stamp.hpp"
#include "threshold.hpp"

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>

#include <fmt/format.h>
#include <wsl/detail/utf8.hpp>

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

namespace wsl::cli {
namespace {

using namespace std::chrono;

// What answers a message sent (--reply).
enum class reply_mode {
  echo,  // its echo: the same type and length (and bytes, with --verify)
  any,   // whatever message comes next: the oldest outstanding message is answered
  none,  // nothing: the server's messages are counted as they come, without a round trip
};

struct loadtest_options {
  client_cli_options client;
  std::size_t connections = 10;
  std::size_t senders = 0;  // --senders: only the first ones send; 0 = all
  clock::duration duration = 10s;
  clock::duration warmup = 0s;
  clock::duration drain = 2s;
  std::uint64_t size = 32;
  std::string payload_file;   // the message body instead of the -s bytes of a pattern
  std::string payloads_file;  // --payloads: a message per line, sent in turn
  bool binary = false;
  double rate = 0;
  std::vector<std::string> stage_texts;  // --stage DURATION:RATE, parsed into stages
  std::vector<rate_stage> stages;
  bool duration_given = false;  // -d; with stages and without it, the measurement lasts the stages
  clock::duration send_window = 250us;
  std::size_t inflight = 1;
  bool inflight_given = false;
  reply_mode reply = reply_mode::echo;
  std::string reply_text = "echo";            // --reply as given
  std::string first_message;                  // sent as a text message right after the handshake, not counted
  bool stamp = false;                         // --stamp: the due time in each message, the delay from it measured
  std::uint64_t messages_per_connection = 0;  // closed loop: then close and open another; 0 = no limit
  bool reconnect = false;                     // replace a connection that ends or fails to open
  double connect_rate = 0;
  std::size_t max_connecting = 64;
  unsigned threads = 1;
  bool json = false;
  bool ndjson = false;
  clock::duration interval = 1s;
  bool verify = false;
  std::vector<int> server_pids;
  std::vector<std::string> thresholds;
  int verbosity = 0;
  bool quiet = false;
};

// How many connections send messages (--senders), the first ones.
std::size_t senders(const loadtest_options& o) noexcept { return o.senders == 0 ? o.connections : o.senders; }

enum class phase : int { connecting, warmup, measuring, draining, closing, done };

// A counter written by one thread and read by the progress printer: no locked instruction.
struct counter {
  std::atomic<std::uint64_t> value{0};
  void add(std::uint64_t n = 1) noexcept {
    value.store(value.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  std::uint64_t get() const noexcept { return value.load(std::memory_order_relaxed); }
};

// In --first-message: replaced with the connection's number.
constexpr std::string_view conn_placeholder = "{{conn}}";

// A message body, and with --stamp where the stamp goes in it.
struct payload {
  std::string bytes;
  std::size_t stamp_at = 0;
};

struct shared_state {
  loadtest_options opts;
  std::atomic<phase> current{phase::connecting};
  // The measurement's bounds (stored before `current` turns measuring): a message counts when it
  // was sent during the measurement and due before its end (sent, in closed loop), and in open
  // loop also due after its start (not one due before and sent late). The end holds even when
  // the control thread, on a loaded machine, wakes late to end the measurement.
  std::atomic<clock::rep> measuring_since{clock::time_point::max().time_since_epoch().count()};
  std::atomic<clock::rep> measuring_until{clock::time_point::max().time_since_epoch().count()};
  std::atomic<bool> interrupted{false};  // Ctrl-C: the connections are aborted by us
  clock::time_point start;               // when the first connection attempt may start
  std::vector<payload> payloads;         // the messages, shared by all connections (one unless --payloads);
                                         // opts.size is the largest one's
  std::int64_t realtime_offset_ns = 0;   // --stamp: CLOCK_REALTIME minus wsl::clock, in nanoseconds
  bool open_loop = false;                // -r or --stage: messages leave by the schedule, not by the echoes
  std::optional<send_schedule> plan;     // open loop: when each message is due
  // The control thread waits on `changed` (a signal, an interval's hand-over, the connect phase's end).
  std::mutex mutex;
  std::condition_variable changed;
  std::atomic<std::size_t> settled{0};  // connections opened or failed in the connect phase
  // --reconnect: an attempt failed in a way that would only repeat (a 3xx or 4xx, TLS): a connect
  // phase in which none opened ends the run then, rather than waiting for the server to come.
  std::atomic<bool> lasting_failure{false};
};

// A connection opened or failed: the last one of the connect phase wakes the control thread, so
// that the measurement starts then, not at its next look.
void settle(shared_state& s) {
  if (s.current.load(std::memory_order_relaxed) != phase::connecting) return;
  if (s.settled.fetch_add(1, std::memory_order_relaxed) + 1 != s.opts.connections) return;
  { const std::lock_guard lock(s.mutex); }  // the control thread waits or has yet to look
  s.changed.notify_all();
}

class session;

struct worker {
  // One thread runs it and owns its sockets and timers; other threads only post (stop_workers()),
  // which keeps the scheduler's lock: the reactor's per-socket locks can go.
  asio::io_context context{ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  // Live figures (read by the progress printer).
  counter sent, received, bytes_sent, bytes_received, opened, failed, cancelled, errors, open_now;
  // Connections from their handshake's start to their close's end: the drain waits for these, so
  // that none opening or closing as it ends is cut short (open_now alone misses the handshakes).
  counter unfinished;
  // --stamp: messages counted as received that carried a stamp (and gave a latency).
  counter stamped;
  // Round trips since the last interval's end, handed over to the control thread and reset at each
  // one (on this worker's thread, with the counters above: an interval's figures agree).
  histogram interval_rtt;
  // Results, touched only by this worker's thread until it is joined.
  histogram rtt, handshake;  // rtt: the intervals handed over
  std::map<std::string, std::uint64_t> failures;
  std::map<std::uint16_t, std::uint64_t> close_codes;
  // Over whole connections (all phases): message payload against WebSocket bytes on the wire, to
  // show what compression saves.
  std::uint64_t payload_total_sent = 0, payload_total_received = 0, wire_sent = 0, wire_received = 0;
  std::uint64_t redirects = 0;     // followed (-L), by every connection attempt
  std::string final_url;           // where this worker's first connection opened, redirects followed
  std::uint64_t stamps_ahead = 0;  // --stamp: stamps later than their arrival (clocks apart), taken as 0
  std::error_code first_failure;   // of connecting, with its report: the exit status when none opened
  connect_report first_report;
  std::size_t connecting = 0;
  std::size_t waiters = 0;
  std::unique_ptr<timer> slot_free;  // cancelled when a handshake slot frees up
  std::vector<websocket*> sockets;   // open ones, for stopping early
  // Of connections waiting for their turn (--connect-rate), for a handshake slot or in their
  // handshake: emitted when the run stops, so that none outlasts it.
  std::vector<asio::cancellation_signal*> waiting;
  std::vector<session*> sessions;  // running ones, told when the sending ends
};

// Whether a message sent now, due at `due` (closed loop: sent), counts (shared_state::measuring_since).
bool counts(const shared_state& s, clock::time_point due) noexcept {
  if (s.current.load(std::memory_order_acquire) != phase::measuring) return false;
  const auto at = due.time_since_epoch().count();
  return at < s.measuring_until.load(std::memory_order_relaxed) &&
         (!s.open_loop || at >= s.measuring_since.load(std::memory_order_relaxed));
}
bool sending(const shared_state& s) noexcept { return s.current.load(std::memory_order_relaxed) < phase::draining; }
// --reply none: whether a message that arrived at `at` counts (it arrived within the measurement).
bool counts_arrival(const shared_state& s, clock::time_point at) noexcept {
  return s.current.load(std::memory_order_acquire) == phase::measuring &&
         at.time_since_epoch().count() < s.measuring_until.load(std::memory_order_relaxed);
}

std::string reason_of(std::error_code ec, const connect_report& report) {
  if (ec == error::bad_status) return fmt::format("HTTP {}", report.status);
  if (ec == error::too_many_redirects) return fmt::format("too many redirects ({})", report.redirects.size());
  if (ec == error::proxy_refused && report.proxy_protocol.starts_with("socks5"))
    return report.proxy_status == 0 ? "SOCKS5 " + report.proxy_reason : fmt::format("SOCKS5 {}", report.proxy_status);
  if (ec == error::proxy_refused) return fmt::format("proxy HTTP {}", report.proxy_status);
  return ec.message();
}

// Sends and receives on one connection until the run drains.
class session {
 public:
  session(worker& w, shared_state& s, websocket& ws, std::size_t index)
      : w_(w), s_(s), ws_(ws), index_(index), sender_timer_(ws.get_executor()), receiver_timer_(ws.get_executor()) {}

  asio::awaitable<void> run() {
    if (!s_.opts.first_message.empty()) {
      const bool ok = co_await first_exchange();
      if (!ok) co_return;
    }
    const bool small = s_.opts.size * s_.opts.inflight <= (64u << 10);
    if (!s_.open_loop && small && !listening()) {
      co_await closed_loop_inline();
    } else {
      sender_running_ = true;
      asio::co_spawn(ws_.get_executor(), sender(), asio::detached);
      co_await receiver();
      sender_stop_ = true;
      wake(sender_timer_, sender_waiting_);
      while (sender_running_) co_await wait(receiver_timer_, receiver_waiting_);
    }
  }

  // --messages-per-connection: this connection has sent its share (and it should close, and
  // another take its place).
  bool spent() const noexcept { return budget_ != 0 && sent_here_ >= budget_; }
  // Whether an echo (an answer; with --reply none, any message) came back on this connection.
  bool answered() const noexcept { return received_here_ != 0; }

  // The schedule changed (the stages began) or the sending ended: a sender asleep until its next
  // message is due looks again now, not then.
  void wake_sender() {
    if (!sender_wants_room_) wake(sender_timer_, sender_waiting_);
  }

 private:
  struct planned {          // a message about to be sent
    clock::time_point due;  // or when it leaves, if earlier (sender())
    std::uint32_t payload;  // of s_.payloads
  };

  message_type type() const noexcept { return s_.opts.binary ? message_type::binary : message_type::text; }
  bool may_send() const noexcept { return sending(s_) && !spent(); }
  // Whether what arrives is counted as it comes, with nothing awaited: with --reply none, and on a
  // connection that does not send (--senders).
  bool listening() const noexcept { return s_.opts.reply == reply_mode::none || !sends_; }

  // --first-message: sent before anything else, and its answer awaited (unless --reply none); neither
  // is counted, so that a subscription or a login and its acknowledgement are no round trip.
  asio::awaitable<bool> first_exchange() {
    std::error_code ec;
    const auto first = first_message_text();
    co_await ws_.write_message(message_type::text, asio::buffer(first), ec);
    if (ec) {
      failed_ = ec;
      co_return false;
    }
    w_.payload_total_sent += first.size();
    if (s_.opts.reply == reply_mode::none) co_return true;
    auto in = co_await ws_.read_message(ec);
    std::string answer;
    if (!ec) answer = co_await in.read_all(ec);
    if (ec) {
      failed_ = ec;
      if (ec == error::aborted && !s_.interrupted.load()) reason_ = "first message unanswered";
      co_return false;
    }
    w_.payload_total_received += answer.size();
    co_return true;
  }

  // The payload of this connection's next message: connection i sends payloads i, i + 1, i + 2...
  // (--payloads), so that the connections do not all send the same one at once.
  std::uint32_t next_payload() noexcept {
    const auto chosen = next_payload_;
    if (++next_payload_ == s_.payloads.size()) next_payload_ = 0;
    return chosen;
  }
  const std::string& bytes_of(std::uint32_t p) const noexcept { return s_.payloads[p].bytes; }

  // --first-message, with this connection's number (from 1; a replacement keeps the number of the
  // connection it replaces) in place of each {{conn}}: a login or a subscription of its own.
  std::string first_message_text() const {
    std::string text = s_.opts.first_message;
    const auto number = std::to_string(index_ + 1);
    for (auto at = text.find(conn_placeholder); at != std::string::npos; at = text.find(conn_placeholder, at)) {
      text.replace(at, conn_placeholder.size(), number);
      at += number.size();
    }
    return text;
  }

  asio::awaitable<bool> send_one(clock::time_point due) {
    std::error_code ec;
    const auto p = next_payload();
    co_await ws_.write_message(type(), asio::buffer(bytes_of(p)), ec);
    co_return sent(ec, due, p);
  }

  // Open loop: the messages of planned_, in as few sends as write_messages() makes. They are booked
  // before the write: the first echoes may come back before the last message has left. When the
  // write fails, the connection fails, with them counted as sent and unanswered.
  asio::awaitable<bool> send_many() {
    std::error_code ec;
    if (s_.opts.stamp && bytes_of(planned_.front().payload).size() > stamp_copy_limit) {  // alone (batch_limit_ is 1)
      const bool ok = co_await send_stamped_large(planned_.front());
      co_return ok;
    }
    if (s_.opts.stamp) stamp_payloads();
    if (planned_.size() == 1) {
      co_await ws_.write_message(type(), payload_of(0), ec);
      co_return sent(ec, planned_.front().due, planned_.front().payload);
    }
    for (const auto& m : planned_) book(m.due, m.payload);
    outgoing_.clear();
    for (std::size_t i = 0; i < planned_.size(); ++i) outgoing_.push_back({type(), payload_of(i)});
    co_await ws_.write_messages(outgoing_, ec);
    if (ec) failed_ = ec;
    co_return !ec;
  }

  // --stamp, a message larger than stamp_copy_limit: streamed, its stamp between the two parts of the
  // shared payload, so that no connection holds a copy of it.
  asio::awaitable<bool> send_stamped_large(planned m) {
    std::error_code ec;
    const auto& p = s_.payloads[m.payload];
    char stamp_bytes[stamp::size];
    stamp::write(stamp_bytes, realtime_ns(m.due));
    const auto after = p.stamp_at + stamp::size;
    auto out = ws_.create_message_writer(type());
    co_await out.write(asio::buffer(p.bytes.data(), p.stamp_at), ec);
    if (!ec) co_await out.write(asio::buffer(stamp_bytes, stamp::size), ec);
    if (!ec) co_await out.finish(asio::buffer(p.bytes.data() + after, p.bytes.size() - after), ec);
    co_return sent(ec, m.due, m.payload);
  }

  // --stamp: a copy of the payload of each message of planned_, each with its due time in its stamp.
  // With one payload the copies stay from one write to the next, and only their stamps change.
  void stamp_payloads() {
    stamped_at_.clear();
    if (s_.payloads.size() == 1) {
      const auto& bytes = s_.payloads.front().bytes;
      while (stamped_.size() < planned_.size() * bytes.size()) stamped_ += bytes;  // at most batch_limit_ copies
      for (std::size_t i = 0; i < planned_.size(); ++i) stamped_at_.push_back(i * bytes.size());
    } else {
      stamped_.clear();
      for (const auto& m : planned_) {
        stamped_at_.push_back(stamped_.size());
        stamped_ += bytes_of(m.payload);
      }
    }
    for (std::size_t i = 0; i < planned_.size(); ++i)
      stamp::write(stamped_.data() + stamped_at_[i] + s_.payloads[planned_[i].payload].stamp_at,
                   realtime_ns(planned_[i].due));
  }
  asio::const_buffer payload_of(std::size_t i) const noexcept {
    const auto& bytes = bytes_of(planned_[i].payload);
    if (!s_.opts.stamp) return asio::buffer(bytes);
    return asio::buffer(stamped_.data() + stamped_at_[i], bytes.size());
  }
  std::uint64_t realtime_ns(clock::time_point t) const noexcept {
    return static_cast<std::uint64_t>(duration_cast<nanoseconds>(t.time_since_epoch()).count() + s_.realtime_offset_ns);
  }

  // After a send: books the message as outstanding. (Plain functions around the co_awaits, so the
  // closed loop runs without a coroutine frame of its own per message.)
  bool sent(std::error_code ec, clock::time_point due, std::uint32_t p) {
    if (ec) {
      failed_ = ec;
      return false;
    }
    book(due, p);
    return true;
  }
  void book(clock::time_point due, std::uint32_t p) {
    const bool counted = counts(s_, due);
    if (!listening()) in_flight_.push_back({due, p, counted});
    ++sent_here_;
    const auto size = bytes_of(p).size();
    w_.payload_total_sent += size;
    if (counted) {
      w_.sent.add();
      w_.bytes_sent.add(size);
    }
  }

  // One echo: checks it and records its round trip from the time it was due.
  asio::awaitable<bool> receive_one() {
    std::error_code ec;
    auto in = co_await ws_.read_message(ec);
    echo_check check{expected()};
    const bool stamped = s_.opts.stamp;
    if (stamped) finder_.reset();
    while (!ec && !in.done()) {
      const auto chunk = co_await in.read_chunk(ec);
      if (ec) break;
      check.add(s_, chunk);
      if (stamped) finder_.add({static_cast<const char*>(chunk.data()), chunk.size()});
    }
    co_return received(ec, in, check);
  }

  // What arrived so far of an echo, against the payload sent.
  struct echo_check {
    const std::string* expected;  // the oldest outstanding message's payload; null when none is
    std::uint64_t bytes = 0;
    bool same = true;
    void add(const shared_state& s, asio::const_buffer chunk) noexcept {
      if (s.opts.verify && chunk.size() != 0)
        same = same && expected && bytes + chunk.size() <= expected->size() &&
               std::memcmp(chunk.data(), expected->data() + bytes, chunk.size()) == 0;
      bytes += chunk.size();
    }
  };
  const std::string* expected() const noexcept {
    return in_flight_.empty() ? nullptr : &bytes_of(in_flight_.front().payload);
  }

  bool received(std::error_code ec, const message_reader& in, const echo_check& check) {
    if (ec) {
      failed_ = ec;
      return false;
    }
    const auto now = received_at_ = clock::now();
    if (listening()) {
      ++received_here_;
      w_.payload_total_received += check.bytes;
      if (counts_arrival(s_, now)) {
        w_.received.add();
        w_.bytes_received.add(check.bytes);
        if (s_.opts.stamp && finder_.found()) {  // the delay from its stamp, on this process's realtime clock
          const auto arrived = realtime_ns(now), stamped_at = *finder_.found();
          if (arrived < stamped_at) ++w_.stamps_ahead;
          w_.stamped.add();
          w_.interval_rtt.record(arrived < stamped_at ? 0 : arrived - stamped_at);
        }
      }
      return true;
    }
    if (in_flight_.empty()) {
      failed_ = make_error_code(error::bad_response);
      reason_ = "unsolicited message";
      return false;
    }
    if (s_.opts.reply == reply_mode::echo &&
        (in.type() != type() || check.bytes != bytes_of(in_flight_.front().payload).size() || !check.same)) {
      failed_ = make_error_code(error::bad_response);
      reason_ = "echo mismatch";
      return false;
    }
    const auto sent = in_flight_.front();
    in_flight_.pop_front();
    ++received_here_;
    w_.payload_total_received += check.bytes;
    // An echo counts when its message did: sent within the measurement, received by the end of the
    // drain. So against an echo server received equals sent, and no round trip is cut short.
    if (sent.counted) {
      w_.received.add();
      w_.bytes_received.add(check.bytes);
      w_.interval_rtt.record(static_cast<std::uint64_t>(duration_cast<nanoseconds>(now - sent.due).count()));
    }
    return true;
  }

  // The common case: small messages in closed loop, sent and received by one coroutine.
  // (Results of co_await go to a variable first: GCC 12 miscompiles `if (!co_await f()) break;`.)
  asio::awaitable<void> closed_loop_inline() {
    bool ok = true;
    for (std::size_t i = 0; ok && i < s_.opts.inflight && may_send(); ++i) ok = co_await send_one(clock::now());
    std::error_code ec;
    while (ok && (!in_flight_.empty() || may_send())) {
      // The next message is due when the echo came: one clock read per message, not two.
      auto due = clock::time_point{};
      if (!in_flight_.empty()) {
        auto in = co_await ws_.read_message(ec);
        echo_check check{expected()};
        while (!ec && !in.done()) {
          const auto chunk = co_await in.read_chunk(ec);
          if (!ec) check.add(s_, chunk);
        }
        ok = received(ec, in, check);
        due = received_at_;
      } else {
        due = clock::now();
      }
      if (ok && may_send()) {
        const auto p = next_payload();
        co_await ws_.write_message(type(), asio::buffer(bytes_of(p)), ec);
        ok = sent(ec, due, p);
      }
    }
  }

  asio::awaitable<void> receiver() {
    const bool open = s_.open_loop;
    while (!failed_) {
      if (in_flight_.empty() && !listening()) {
        if (!sending(s_) || !sender_running_) break;
        // Open loop: read on while nothing is outstanding, rather than wait to be woken by each
        // send; when the sending ends with nothing outstanding, the sender closes to end this read.
        if (!open) {
          co_await wait(receiver_timer_, receiver_waiting_);
          continue;
        }
      }
      const bool ok = co_await receive_one();
      if (!ok) break;
      if (sender_wants_room_) wake(sender_timer_, sender_waiting_);
    }
  }

  asio::awaitable<void> sender() {
    const bool open = s_.open_loop;
    // Open loop: connection i sends messages i, i + senders, i + 2 senders... of the schedule, so
    // together the connections that send send evenly spaced messages, not one burst each.
    const auto connections = static_cast<double>(senders(s_.opts));
    double message = open && sends_ ? first_message() : 0;
    const auto window = s_.opts.send_window;
    while (may_send() && !sender_stop_ && !failed_ && ws_.is_open()) {
      // Not a sender (--senders), or --reply none without a schedule: nothing to send, until the end.
      if (!sends_ || (!open && listening())) {
        co_await wait(sender_timer_, sender_waiting_);
        continue;
      }
      const auto now = clock::now();
      auto due = now;
      if (open) {
        due = s_.plan->due(message);
        if (due == clock::time_point::max()) {  // no rate (yet): until the stages begin or the run ends
          co_await wait(sender_timer_, sender_waiting_);
          continue;
        }
        // Messages due in the same window leave together at its start: one timer expiry (one
        // wake-up, one timer reprogramming) for all of them, not one per message.
        const auto leave = window > clock::duration::zero() ? due - (due - s_.start) % window : due;
        if (now < leave) {
          co_await wait(sender_timer_, sender_waiting_, leave);
          continue;
        }
      }
      if (in_flight_.size() >= (open ? max_backlog : s_.opts.inflight)) {  // open loop: hopelessly behind
        sender_wants_room_ = true;
        co_await wait(sender_timer_, sender_waiting_);
        sender_wants_room_ = false;
        continue;
      }
      // The round trip counts from when the message was due, or from when it left if that was
      // earlier (sent at its window's start): never from a late send (no coordinated omission).
      if (open) {
        // Every message of this connection due to leave by now goes in one gathered write.
        const auto room = max_backlog - in_flight_.size();
        const auto share = budget_ == 0 ? room : std::min<std::size_t>(room, budget_ - sent_here_);
        planned_.clear();
        planned_.push_back({std::min(due, now), next_payload()});
        for (double next = message + connections; planned_.size() < std::min(batch_limit_, share);
             next += connections) {
          const auto next_due = s_.plan->due(next);
          if (next_due == clock::time_point::max()) break;
          const auto next_leave =
              window > clock::duration::zero() ? next_due - (next_due - s_.start) % window : next_due;
          if (next_leave > now) break;
          planned_.push_back({std::min(next_due, now), next_payload()});
        }
        const bool ok = co_await send_many();
        if (!ok) break;
        message += connections * static_cast<double>(planned_.size());
      } else {
        const bool ok = co_await send_one(now);
        if (!ok) break;
        message += connections;
      }
      wake(receiver_timer_, receiver_waiting_);
    }
    if ((open || listening()) && in_flight_.empty() && !failed_ && ws_.is_open() && s_.current.load() != phase::done) {
      std::error_code ignored;
      co_await ws_.close(close_code::normal, {}, ignored);
    }
    sender_running_ = false;
    wake(receiver_timer_, receiver_waiting_);
  }

  // This connection's first message of the schedule not yet due: one that opens late does not
  // send, all at once, the messages due before it was there.
  double first_message() const {
    const auto connections = static_cast<double>(senders(s_.opts));
    const auto first = static_cast<double>(index_);
    const double due_so_far = s_.plan->count_before(clock::now());
    if (due_so_far <= first) return first;
    return first + std::ceil((due_so_far - first) / connections) * connections;
  }

  // The two coroutines wake each other by cancelling the other's timer.
  // (No default argument: GCC 12 miscompiles coroutines that have them.)
  static asio::awaitable<void> wait(timer& t, bool& waiting) { return wait(t, waiting, clock::time_point::max()); }
  static asio::awaitable<void> wait(timer& t, bool& waiting, clock::time_point until) {
    t.expires_at(until);
    waiting = true;
    std::error_code ignored;
    co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    waiting = false;
  }
  static void wake(timer& t, bool waiting) {
    if (!waiting) return;
    try {
      t.cancel();
    } catch (...) {
    }
  }

 public:
  std::error_code failed_;
  std::string reason_;  // what failed_ means here, when its message says too little ("echo mismatch")

 private:
  static constexpr std::size_t max_backlog = 1 << 20;
  static constexpr std::size_t max_batch = 64;  // messages per gathered write in open loop
  static constexpr std::size_t stamp_copy_limit = 16 << 10;
  worker& w_;
  shared_state& s_;
  websocket& ws_;
  std::size_t index_;                             // of the connection, among all of them
  const bool sends_ = index_ < senders(s_.opts);  // --senders: the first ones send, the others only receive
  const std::uint64_t budget_ = s_.opts.messages_per_connection;
  // With --stamp, each message of a write has its own copy of the payload, stamp_copy_limit bytes of
  // them at most (and larger messages are streamed, one at a time).
  const std::size_t batch_limit_ =
      s_.opts.stamp ? std::clamp<std::size_t>(stamp_copy_limit / std::max<std::size_t>(s_.opts.size, 1), 1, max_batch)
                    : max_batch;
  std::uint32_t next_payload_ = static_cast<std::uint32_t>(index_ % s_.payloads.size());
  std::uint64_t sent_here_ = 0;
  std::uint64_t received_here_ = 0;  // answers (with --reply none, messages)
  timer sender_timer_, receiver_timer_;
  struct outstanding {
    clock::time_point due;  // when it was sent, or due to be in open loop
    std::uint32_t payload;  // of s_.payloads
    bool counted;           // sent during the measurement (and in open loop due within it)
  };
  std::deque<outstanding> in_flight_;
  clock::time_point received_at_;  // of the last echo
  bool sender_stop_ = false;
  bool sender_running_ = false;
  bool sender_waiting_ = false;
  bool sender_wants_room_ = false;  // waits for an echo to free a slot, not for its time
  bool receiver_waiting_ = false;
  std::vector<planned> planned_;  // send_many(): the messages of a write
  std::vector<outgoing_message> outgoing_;
  std::string stamped_;                  // --stamp: the payloads of a write, each with its stamp
  std::vector<std::size_t> stamped_at_;  // where each one starts in stamped_
  stamp::finder finder_;                 // --stamp: of the message being received
};

// The completion token of a connection's waits (its turn, a handshake slot, a pause before it
// reconnects): `stop` ends them early when the run ends; their error says nothing, and is ignored.
auto until_stopped(asio::cancellation_signal& stop, std::error_code& ignored) {
  return asio::bind_cancellation_slot(stop.slot(), asio::redirect_error(asio::use_awaitable, ignored));
}

// True with a handshake slot taken; false when the run stopped sending meanwhile.
asio::awaitable<bool> wait_for_slot(worker& w, const shared_state& s, asio::cancellation_signal& stop) {
  while (sending(s) && w.connecting >= s.opts.max_connecting) {
    ++w.waiters;
    std::error_code ignored;
    co_await w.slot_free->async_wait(until_stopped(stop, ignored));
    --w.waiters;
  }
  if (!sending(s)) co_return false;
  ++w.connecting;
  co_return true;
}

void release_slot(worker& w) {
  --w.connecting;
  if (w.waiters) {
    try {
      w.slot_free->cancel();
    } catch (...) {
    }
  }
}

// How a connection of run_one_connection() ended.
enum class connection_end {
  spent,       // it sent its share (--messages-per-connection): another takes its place
  ended,       // it was open, had echoes, and ended otherwise (the server closed it, it failed, or the run ended)
  unanswered,  // as ended, but before any echo came back: a server that closes what it opens
  not_opened,  // its connect or handshake failed
  stopped,     // the run ended before it opened
};

// One connection, from its handshake to its close.
asio::awaitable<connection_end> run_one_connection(worker& w, shared_state& s, std::size_t index,
                                                   asio::cancellation_signal& stop) {
  auto ex = co_await asio::this_coro::executor;
  const bool slot = co_await wait_for_slot(w, s, stop);
  if (!slot) co_return connection_end::stopped;
  w.unfinished.add();
  struct unfinished_guard {
    counter& c;
    ~unfinished_guard() { c.add(static_cast<std::uint64_t>(-1)); }
  } guard{w.unfinished};
  std::error_code ec;
  connect_report report;
  const auto started = clock::now();
  // A coroutine of its own, which `stop` cancels when the run ends: a handshake under way then
  // (a server slow to answer) must not keep the run going until its time limit.
  websocket ws;
  // --local-address with several: the connection's own in turn, in options of its own while it
  // connects (kept off the frame that lives as long as the connection).
  std::unique_ptr<client_options> own_options;
  if (const auto& pool = s.opts.client.local_pool; pool.size() > 1) {
    own_options = std::make_unique<client_options>(s.opts.client.client);
    own_options->local_address = pool[index % pool.size()];
  }
  try {
    auto connecting = connect(ex, s.opts.client.url, own_options ? *own_options : s.opts.client.client, ec, &report);
    auto cancellable = asio::bind_cancellation_slot(stop.slot(), asio::use_awaitable);
    ws = co_await asio::co_spawn(ex, std::move(connecting), std::move(cancellable));
  } catch (const std::system_error& e) {
    ec = e.code();  // cancelled before it started: asio throws then
  }
  own_options.reset();
  release_slot(w);
  w.redirects += report.redirects.size();
  if (ec == asio::error::operation_aborted && s.current.load() == phase::done) {
    w.cancelled.add();
    co_return connection_end::stopped;
  }
  if (ec) {
    w.failed.add();
    ++w.failures[reason_of(ec, report)];
    if (s.opts.reconnect && !s.lasting_failure.load(std::memory_order_relaxed) &&
        describe_connect_failure(s.opts.client.display_url, ec, report).lasting)
      s.lasting_failure.store(true, std::memory_order_relaxed);
    if (!w.first_failure) {
      w.first_failure = ec;
      w.first_report = std::move(report);
    }
    settle(s);
    co_return connection_end::not_opened;
  }
  w.opened.add();
  if (w.final_url.empty()) w.final_url = report.final_url;
  settle(s);
  w.open_now.add();
  w.handshake.record(static_cast<std::uint64_t>(duration_cast<nanoseconds>(clock::now() - started).count()));
  w.sockets.push_back(&ws);

  session sess(w, s, ws, index);
  w.sessions.push_back(&sess);
  co_await sess.run();
  std::erase(w.sessions, &sess);

  std::error_code close_ec;
  if (ws.is_open()) {
    const bool interrupted = s.current.load() == phase::done;
    const auto code = interrupted ? close_code::going_away : close_code::normal;
    co_await ws.close(code, {}, close_ec);
  }
  if (ws.peer_close().code != 0) ++w.close_codes[ws.peer_close().code];
  w.wire_sent += ws.bytes_sent();
  w.wire_received += ws.bytes_received();
  // Our own abort on Ctrl-C is no error of the server's (after the drain it is: echoes were missing).
  const bool our_abort = sess.failed_ == error::aborted && s.interrupted.load();
  if (sess.failed_ && !(sess.failed_ == error::closed) && !our_abort) {
    w.errors.add();
    ++w.failures[sess.reason_.empty() ? sess.failed_.message() : sess.reason_];
  }
  w.open_now.add(static_cast<std::uint64_t>(-1));
  std::erase(w.sockets, &ws);
  if (!sess.failed_ && !close_ec && sess.spent()) co_return connection_end::spent;
  co_return sess.answered() ? connection_end::ended : connection_end::unanswered;
}

// --reconnect: the pause before the next attempt after `misses` attempts in a row that did not
// open, or opened and ended before any echo came back (none after a connection that had echoes):
// 50 ms, doubling up to 1 s, so that a server that is down, or one that closes every connection
// it accepts, is asked a few times a second, not in a loop.
clock::duration reconnect_pause(unsigned misses) noexcept {
  if (misses == 0) return clock::duration::zero();
  return std::min<clock::duration>(1s, 50ms * (1u << std::min(misses - 1, 5u)));
}

asio::awaitable<void> run_connection(worker& w, shared_state& s, std::size_t index) {
  auto ex = co_await asio::this_coro::executor;
  asio::cancellation_signal stop;
  w.waiting.push_back(&stop);
  if (s.opts.connect_rate > 0) {
    timer ramp(ex);
    ramp.expires_at(s.start +
                    duration_cast<clock::duration>(duration<double>(static_cast<double>(index) / s.opts.connect_rate)));
    std::error_code ignored;
    co_await ramp.async_wait(until_stopped(stop, ignored));
  }
  unsigned misses = 0;  // attempts in a row that did not open
  while (sending(s)) {
    const auto end = co_await run_one_connection(w, s, index, stop);
    if (end == connection_end::spent) continue;
    if (end == connection_end::stopped || !s.opts.reconnect) break;
    misses = end == connection_end::not_opened || end == connection_end::unanswered ? misses + 1 : 0;
    if (const auto pause = reconnect_pause(misses); pause.count() > 0 && sending(s)) {
      timer backoff(ex, pause);
      std::error_code ignored;
      co_await backoff.async_wait(until_stopped(stop, ignored));
    }
  }
  std::erase(w.waiting, &stop);
}

struct cpu_sample {
  double self = 0;
  std::vector<double> servers;
};

double process_cpu_seconds(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  double utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::stod(field);
    if (i == 15) stime = std::stod(field);
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

cpu_sample sample_cpu(const std::vector<int>& pids) {
  cpu_sample s;
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  s.self = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  for (int pid : pids) s.servers.push_back(process_cpu_seconds(pid));
  return s;
}

std::string human_count(double v) {
  if (v >= 1e9) return fmt::format("{:.2f}G", v / 1e9);
  if (v >= 1e6) return fmt::format("{:.2f}M", v / 1e6);
  if (v >= 1e4) return fmt::format("{:.1f}k", v / 1e3);
  return fmt::format("{:.0f}", v);
}

std::string human_bytes(double v) {
  if (v >= 1 << 30) return fmt::format("{:.2f} GiB", v / (1 << 30));
  if (v >= 1 << 20) return fmt::format("{:.2f} MiB", v / (1 << 20));
  if (v >= 1 << 10) return fmt::format("{:.1f} KiB", v / (1 << 10));
  return fmt::format("{:.0f} B", v);
}

std::string human_time(std::uint64_t ns) {
  if (ns >= 1'000'000'000) return fmt::format("{:.2f} s", static_cast<double>(ns) / 1e9);
  if (ns >= 1'000'000) return fmt::format("{:.2f} ms", static_cast<double>(ns) / 1e6);
  return fmt::format("{:.1f} us", static_cast<double>(ns) / 1e3);
}

std::string json_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\')
      out += '\\', out += c;
    else if (static_cast<unsigned char>(c) < 0x20)
      out += fmt::format("\\u{:04x}", c);
    else
      out += c;
  }
  return out;
}

struct totals {
  std::uint64_t sent = 0, received = 0, bytes_sent = 0, bytes_received = 0, opened = 0, failed = 0, cancelled = 0,
                errors = 0, open_now = 0, unfinished = 0, stamped = 0;

  void add(const worker& w) noexcept {
    sent += w.sent.get();
    received += w.received.get();
    bytes_sent += w.bytes_sent.get();
    bytes_received += w.bytes_received.get();
    opened += w.opened.get();
    failed += w.failed.get();
    cancelled += w.cancelled.get();
    errors += w.errors.get();
    open_now += w.open_now.get();
    unfinished += w.unfinished.get();
    stamped += w.stamped.get();
  }
};

totals sum(const std::vector<std::unique_ptr<worker>>& workers) {
  totals t;
  for (const auto& w : workers) t.add(*w);
  return t;
}

std::string histogram_json(const histogram& h) {
  return fmt::format(
      "{{\"count\":{},\"min\":{},\"p50\":{},\"p90\":{},\"p99\":{},\"p999\":{},\"max\":{},\"mean\":{:.0f},\"stddev\":{:."
      "0f}}}",
      h.count(), h.min(), h.percentile(50), h.percentile(90), h.percentile(99), h.percentile(99.9), h.max(), h.mean(),
      h.stddev());
}

// What a --threshold compares: the metric's value over the run (nanoseconds for times), or none
// when nothing was measured (no round trip, no measurement window).
std::optional<double> threshold_value(threshold_metric which, const totals& t, const histogram& rtt,
                                      const histogram& handshake, std::optional<double> seconds) {
  using m = threshold_metric;
  auto stat = [](const histogram& h, double p) -> std::optional<double> {  // p 100: the exact max
    if (h.count() == 0) return std::nullopt;
    return static_cast<double>(h.percentile(p));
  };
  auto per_second = [&](std::uint64_t count) -> std::optional<double> {
    if (!seconds) return std::nullopt;
    return static_cast<double>(count) / *seconds;
  };
  switch (which) {
    case m::rtt_p50: return stat(rtt, 50);
    case m::rtt_p90: return stat(rtt, 90);
    case m::rtt_p99: return stat(rtt, 99);
    case m::rtt_p999: return stat(rtt, 99.9);
    case m::rtt_max: return stat(rtt, 100);
    case m::rtt_mean: return rtt.count() ? std::optional(rtt.mean()) : std::nullopt;
    case m::handshake_p50: return stat(handshake, 50);
    case m::handshake_p90: return stat(handshake, 90);
    case m::handshake_p99: return stat(handshake, 99);
    case m::handshake_max: return stat(handshake, 100);
    case m::sent_per_second: return per_second(t.sent);
    case m::received_per_second: return per_second(t.received);
    case m::sent: return static_cast<double>(t.sent);
    case m::received: return static_cast<double>(t.received);
    case m::lost: return static_cast<double>(t.sent > t.received ? t.sent - t.received : 0);
    case m::opened: return static_cast<double>(t.opened);
    case m::failed: return static_cast<double>(t.failed);
    case m::errors: return static_cast<double>(t.errors);
  }
  return std::nullopt;
}

// Tells every worker's senders that the schedule or the phase changed: those asleep until their
// next message is due look again now.
void wake_senders(std::vector<std::unique_ptr<worker>>& workers) {
  for (auto& w : workers)
    asio::post(w->context, [&w = *w] {
      for (auto* sess : w.sessions) sess->wake_sender();
    });
}

// Tells every worker to stop (the phase is done): timers in closed loops wake, open connections
// close, and those not open yet stop waiting and connecting.
void stop_workers(std::vector<std::unique_ptr<worker>>& workers) {
  for (auto& w : workers)
    asio::post(w->context, [&w = *w] {
      for (auto* ws : w.sockets) ws->abort();
      for (auto* stop : w.waiting) stop->emit(asio::cancellation_type::terminal);
    });
}

constexpr std::uint64_t max_message_size = 1u << 30;

// Whether a threshold's metric needs answers to messages (round trips, or messages lost).
bool measures_answers(threshold_metric m) noexcept {
  return m <= threshold_metric::rtt_mean || m == threshold_metric::lost;
}

// --reply into reply_mode, and the options that do not go with it.
std::optional<std::string> check_reply_options(loadtest_options& o) {
  if (o.reply_text == "echo")
    o.reply = reply_mode::echo;
  else if (o.reply_text == "any")
    o.reply = reply_mode::any;
  else if (o.reply_text == "none")
    o.reply = reply_mode::none;
  else
    return fmt::format("--reply: '{}' is none of echo, any, none", o.reply_text);
  if (o.verify && o.reply != reply_mode::echo) return "--verify: only with --reply echo";
  if (o.reply == reply_mode::none && (o.inflight_given || o.messages_per_connection != 0))
    return "--inflight and --messages-per-connection: not with --reply none (nothing is awaited)";
  if (o.stamp && o.reply != reply_mode::none)
    return "--stamp: only with --reply none (with an answer, the round trip is measured without a stamp)";
  if (o.first_message.size() > max_message_size) return "--first-message: at most 1G";
  if (!detail::utf8_validator::validate(o.first_message.data(), o.first_message.size()))
    return "--first-message: not UTF-8 (it is sent as a text message)";
  return std::nullopt;
}

// --payload-file or --payloads (`option`) into text, or what is wrong with it. Read with a bound: a
// FIFO or a huge file must not fill the memory before the size check.
std::optional<std::string> read_payload_file(const loadtest_options& o, std::string_view option,
                                             const std::string& path, std::string& text) {
  std::ifstream in(path, std::ios::binary);
  char chunk[1 << 16];
  while (in && text.size() <= max_message_size) {
    in.read(chunk, sizeof chunk);
    text.append(chunk, static_cast<std::size_t>(in.gcount()));
  }
  if (!in && !in.eof()) return fmt::format("{}: cannot read {}: {}", option, path, std::strerror(errno));
  if (text.size() > max_message_size) return fmt::format("{}: {} is larger than 1G", option, path);
  if (!o.binary && !detail::utf8_validator::validate(text.data(), text.size()))
    return fmt::format("{}: {} is not UTF-8; send it with --binary", option, path);
  return std::nullopt;
}

// --payloads: a message per line of text (the newline, and a CR before it, removed; empty lines
// skipped), or what is wrong.
constexpr std::size_t max_payload_lines = 1 << 20;
std::optional<std::string> split_payload_lines(const loadtest_options& o, std::string_view text,
                                               std::vector<payload>& out, std::vector<std::size_t>& line_numbers) {
  std::size_t line_number = 0;
  while (!text.empty()) {
    const auto end = text.find('\n');
    auto line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    ++line_number;
    if (line.ends_with('\r')) line.remove_suffix(1);
    if (line.empty()) continue;
    if (out.size() == max_payload_lines)
      return fmt::format("--payloads: {} has more than {} lines", o.payloads_file, max_payload_lines);
    out.push_back({std::string(line)});
    line_numbers.push_back(line_number);
  }
  if (out.empty()) return fmt::format("--payloads: {} has no line to send", o.payloads_file);
  return std::nullopt;
}

// --stamp: where the stamp goes in a payload, which makes room for it (a stamp of time 0 until each
// message gets its own), or what is wrong. `source` names where the payload came from (a file, a
// line of one), or is empty for -s.
constexpr std::string_view stamp_placeholder = "{{stamp}}";
std::optional<std::string> place_stamp(payload& p, std::string_view source) {
  if (source.empty()) {
    if (p.bytes.size() < stamp::size)
      return fmt::format("--stamp: -s must be at least {} (the stamp opens each message)", stamp::size);
    p.stamp_at = 0;
  } else {
    const auto at = p.bytes.find(stamp_placeholder);
    if (at == std::string::npos)
      return fmt::format("--stamp: {} has no {} to put the stamp in", source, stamp_placeholder);
    p.bytes.replace(at, stamp_placeholder.size(), stamp::size, ' ');
    if (p.bytes.size() > max_message_size) return fmt::format("--stamp: {} is larger than 1G with its stamp", source);
    p.stamp_at = at;
  }
  stamp::write(p.bytes.data() + p.stamp_at, 0);
  return std::nullopt;
}

// The messages to send, from -s, --payload-file or --payloads, with room for a stamp (--stamp); or what
// is wrong.
std::optional<std::string> make_payloads(const loadtest_options& o, std::vector<payload>& out) {
  std::string text;
  std::vector<std::size_t> line_numbers;  // --payloads: of each payload in its file
  if (!o.payload_file.empty()) {
    if (auto problem = read_payload_file(o, "--payload-file", o.payload_file, text)) return problem;
    out.push_back({std::move(text)});
  } else if (!o.payloads_file.empty()) {
    if (auto problem = read_payload_file(o, "--payloads", o.payloads_file, text)) return problem;
    if (auto problem = split_payload_lines(o, text, out, line_numbers)) return problem;
  } else if (o.size > max_message_size) {
    return "-s: messages of at most 1G";
  } else {
    text.resize(o.size);
    for (std::size_t i = 0; i < o.size; ++i)
      text[i] = o.binary ? static_cast<char>(i * 131 % 251) : static_cast<char>('a' + i % 26);
    out.push_back({std::move(text)});
  }
  for (std::size_t i = 0; o.stamp && i < out.size(); ++i) {
    const auto source = !o.payload_file.empty() ? o.payload_file
                        : line_numbers.empty()  ? std::string()
                                                : fmt::format("line {} of {}", line_numbers[i], o.payloads_file);
    if (auto problem = place_stamp(out[i], source)) return problem;
  }
  return std::nullopt;
}

// What the --threshold metrics of round trips measure: with --stamp, the stamps' latency.
bool threshold_allowed(const loadtest_options& o, threshold_metric m) noexcept {
  if (o.reply != reply_mode::none) return true;
  return o.stamp ? m != threshold_metric::lost : !measures_answers(m);
}

// "32-byte text messages", or with --payloads "text messages of 20 to 310 bytes (1000 lines)".
std::string describe_messages(const shared_state& s) {
  const auto* type = s.opts.binary ? "binary" : "text";
  const auto largest = s.opts.size;
  if (s.payloads.size() == 1) return fmt::format("{}-byte {} messages", largest, type);
  std::uint64_t smallest = largest;
  for (const auto& p : s.payloads) smallest = std::min<std::uint64_t>(smallest, p.bytes.size());
  return fmt::format("{} messages of {} to {} bytes ({} lines)", type, smallest, largest, s.payloads.size());
}

int run_loadtest(loadtest_options o) {
  diagnostics::configure("wsl loadtest", o.verbosity, o.quiet);
  std::string problem;
  if (finish_client_options(o.client, problem)) {
    diagnostics::fatal(problem);
    return exit_usage;
  }
  for (const auto& text : o.stage_texts) {
    try {
      o.stages.push_back(parse_rate_stage(text));
    } catch (const std::invalid_argument& e) {
      diagnostics::fatal(fmt::format("--stage: {}", e.what()));
      return exit_usage;
    }
  }
  if (!o.stages.empty() && !o.duration_given) {
    o.duration = clock::duration::zero();
    for (const auto& stage : o.stages) o.duration += stage.length;
  }
  if (o.connections == 0 || o.inflight == 0 || o.duration.count() <= 0 || o.rate < 0 || o.connect_rate < 0) {
    diagnostics::fatal("-c, --inflight and -d must be positive; -r and --connect-rate not negative");
    return exit_usage;
  }
  if (o.senders > o.connections) {
    diagnostics::fatal(fmt::format("--senders: at most the {} connections of -c", o.connections));
    return exit_usage;
  }
  if (o.messages_per_connection != 0 && (o.rate > 0 || !o.stages.empty())) {
    diagnostics::fatal("--messages-per-connection: closed loop only (not with -r or --stage)");
    return exit_usage;
  }
  if (o.interval < 10ms) {
    diagnostics::fatal("--interval: at least 10ms");
    return exit_usage;
  }
  if (auto problem = check_reply_options(o)) {
    diagnostics::fatal(*problem);
    return exit_usage;
  }
  std::vector<payload> payloads;
  if (auto problem = make_payloads(o, payloads)) {
    diagnostics::fatal(*problem);
    return exit_usage;
  }
  o.size = 0;  // the largest message
  for (const auto& p : payloads) o.size = std::max<std::uint64_t>(o.size, p.bytes.size());
  std::vector<threshold> thresholds;
  for (const auto& text : o.thresholds) {
    try {
      thresholds.push_back(parse_threshold(text));
    } catch (const std::invalid_argument& e) {
      diagnostics::fatal(fmt::format("--threshold: {}", e.what()));
      return exit_usage;
    }
    if (!threshold_allowed(o, thresholds.back().which)) {
      diagnostics::fatal(fmt::format("--threshold {}: nothing is an answer with --reply none{}", text,
                                     o.stamp ? "" : " (--stamp gives latencies)"));
      return exit_usage;
    }
  }
  o.threads = std::max(1u, std::min<unsigned>(o.threads, static_cast<unsigned>(o.connections)));
  raise_descriptor_limit();
  start_signal_thread();

  shared_state s;
  s.opts = o;
  s.payloads = std::move(payloads);
  s.realtime_offset_ns = duration_cast<nanoseconds>(system_clock::now().time_since_epoch()).count() -
                         duration_cast<nanoseconds>(clock::now().time_since_epoch()).count();
  s.start = clock::now();
  s.open_loop = o.rate > 0 || !o.stages.empty();
  if (s.open_loop) s.plan.emplace(s.start, o.rate, o.stages);

  std::vector<std::unique_ptr<worker>> workers;
  for (unsigned t = 0; t < o.threads; ++t) {
    auto w = std::make_unique<worker>();
    w->slot_free = std::make_unique<timer>(w->context);
    w->slot_free->expires_at(clock::time_point::max());
    workers.push_back(std::move(w));
  }
  for (std::size_t i = 0; i < o.connections; ++i) {
    auto& w = *workers[i % o.threads];
    asio::co_spawn(w.context, run_connection(w, s, i), asio::detached);
  }
  // A signal ends the run early; the control loop below waits on the condition variable. Set
  // before the threads start, so that no signal finds the run without it (and exits without the
  // summary).
  auto& mutex = s.mutex;
  auto& changed = s.changed;
  std::atomic<int> interrupted{0};
  set_signal_handler([&](int received) {
    interrupted = received;
    std::lock_guard lock(mutex);
    changed.notify_all();
  });
  // Each worker runs until told to stop, even with no connection left: it must take every interval's
  // hand-over.
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> keep_running;
  for (auto& w : workers) keep_running.push_back(asio::make_work_guard(w->context));
  std::vector<asio::io_context*> contexts;
  for (auto& w : workers) contexts.push_back(&w->context);
  auto threads = run_threads(contexts);

  const bool tty = isatty(STDERR_FILENO) && !std::getenv("NO_COLOR");
  const bool progress = !o.quiet;
  auto sleep_until = [&](clock::time_point t) {
    std::unique_lock lock(mutex);
    changed.wait_until(lock, steady_clock::time_point(t.time_since_epoch()), [&] { return interrupted.load() != 0; });
  };

  // Connect phase: until every connection is open or failed (bounded by the connect timeouts).
  const auto connect_deadline =
      s.start +
      (o.client.client.connect_timeout + o.client.client.handshake_timeout) * (1 + o.client.client.max_redirects) +
      (o.connect_rate > 0
           ? duration_cast<clock::duration>(duration<double>(static_cast<double>(o.connections) / o.connect_rate))
           : clock::duration::zero());
  {
    std::unique_lock lock(mutex);
    changed.wait_until(lock, steady_clock::time_point(connect_deadline.time_since_epoch()), [&] {
      return interrupted.load() != 0 || s.settled.load(std::memory_order_relaxed) >= o.connections;
    });
  }
  const auto connect_time = clock::now() - s.start;
  // With --reconnect, a server that refuses or drops every attempt (down, restarting, started after
  // this) is waited for until -d runs out; one that answers what would only repeat is not.
  if (sum(workers).opened == 0 && (!o.reconnect || s.lasting_failure.load(std::memory_order_relaxed))) {
    s.current = phase::done;
  } else {
    s.current = phase::warmup;
    if (o.warmup.count() > 0) sleep_until(clock::now() + o.warmup);
  }

  // Measurement, cut into intervals. At each interval's end every worker hands over, on its own
  // thread, its counters and the round trips recorded since the last one: the counts and the round
  // trips of an interval are of the same echoes.
  cpu_sample cpu_before, cpu_after;
  clock::time_point window_start = clock::now(), window_end = window_start;
  const bool measured = s.current == phase::warmup && !interrupted;
  // Connections opened during the measurement (a churn rate): between its first and last hand-over.
  std::uint64_t opened_before = 0, opened_measuring = 0;
  auto take_interval = [&](totals& counts, histogram& rtt) {
    std::size_t pending = workers.size();
    for (auto& w : workers)
      asio::post(w->context, [&, &w = *w] {
        std::lock_guard lock(mutex);
        counts.add(w);
        rtt.merge(w.interval_rtt);
        w.rtt.merge(w.interval_rtt);
        w.interval_rtt.reset();
        if (--pending == 0) changed.notify_all();
      });
    std::unique_lock lock(mutex);
    changed.wait(lock, [&] { return pending == 0; });
  };
  if (measured) {
    totals last = sum(workers);  // nothing sent counted yet; the connections that failed to open
    opened_before = last.opened;
    cpu_before = sample_cpu(o.server_pids);
    window_start = clock::now();
    const auto end = window_start + o.duration;
    s.measuring_since.store(window_start.time_since_epoch().count(), std::memory_order_relaxed);
    s.measuring_until.store(end.time_since_epoch().count(), std::memory_order_relaxed);
    s.current = phase::measuring;
    if (!o.stages.empty()) {
      s.plan->start_stages(window_start);
      wake_senders(workers);
    }
    auto last_time = window_start;
    auto tick = window_start;
    histogram interval_rtt;
    const histogram no_values;  // in the JSON, of what is not measured (round trips, or stamps)
    for (bool over = false; !over;) {
      tick = std::min(end, tick + o.interval);
      sleep_until(tick);
      const auto woke = clock::now();
      over = interrupted || woke >= end;
      // Woken late at the end, the measurement still ends at `end`: nothing sent after it counted.
      const auto now = std::min(woke, end);
      if (over) {
        // Messages sent from here on are not counted: the last interval holds the rest of the sent ones.
        window_end = now;
        s.current = interrupted ? phase::done : phase::draining;
        cpu_after = sample_cpu(o.server_pids);
      }
      totals now_totals;
      interval_rtt.reset();
      take_interval(now_totals, interval_rtt);
      const double seconds = std::max(1e-9, duration<double>(now - last_time).count());
      const auto per_second = [&](std::uint64_t now_count, std::uint64_t last_count) {
        return static_cast<double>(now_count - last_count) / seconds;
      };
      if (progress) {
        const auto rtt_text = interval_rtt.count()
                                  ? fmt::format("p50 {}  p99 {}", human_time(interval_rtt.percentile(50)),
                                                human_time(interval_rtt.percentile(99)))
                                  : std::string("p50 -  p99 -");
        const auto line = fmt::format("[{:5.1f}s] open {}  sent {}/s  received {}/s  {}  errors {}",
                                      duration<double>(now - window_start).count(), now_totals.open_now,
                                      human_count(per_second(now_totals.sent, last.sent)),
                                      human_count(per_second(now_totals.received, last.received)), rtt_text,
                                      now_totals.errors + now_totals.failed);
        if (tty)
          fmt::print(stderr, "\r\x1b[2K{}", line);
        else
          fmt::print(stderr, "{}\n", line);
        std::fflush(stderr);
      }
      if (o.ndjson) {
        fmt::print(
            "{{\"type\":\"interval\",\"t\":{:.6f},\"seconds\":{:.6f},\"open\":{},\"opened\":{},\"sent\":{},"
            "\"received\":{},"
            "\"sent_per_second\":{:.1f},\"received_per_second\":{:.1f},\"bytes_sent_per_second\":{:.1f},"
            "\"bytes_received_per_second\":{:.1f},\"errors\":{},\"stamped\":{},\"rtt_ns\":{},\"stamp_ns\":{}}}\n",
            duration<double>(now - window_start).count(), seconds, now_totals.open_now, now_totals.opened - last.opened,
            now_totals.sent - last.sent, now_totals.received - last.received, per_second(now_totals.sent, last.sent),
            per_second(now_totals.received, last.received), per_second(now_totals.bytes_sent, last.bytes_sent),
            per_second(now_totals.bytes_received, last.bytes_received),
            now_totals.errors + now_totals.failed - last.errors - last.failed, now_totals.stamped - last.stamped,
            histogram_json(o.stamp ? no_values : interval_rtt), histogram_json(o.stamp ? interval_rtt : no_values));
        std::fflush(stdout);
      }
      last = now_totals;
      opened_measuring = now_totals.opened - opened_before;
      last_time = now;
    }
    if (progress && tty) fmt::print(stderr, "\n");
  }

  // Drain and close.
  s.current = interrupted ? phase::done : phase::draining;
  wake_senders(workers);
  if (!interrupted) {
    const auto drain_end = clock::now() + o.drain;
    while (!interrupted && clock::now() < drain_end && sum(workers).unfinished > 0) {
      // Sessions stop sending and close by themselves once their last echo is in; handshakes
      // under way finish, and those connections close at once.
      sleep_until(std::min(drain_end, clock::now() + 10ms));
    }
  }
  s.interrupted = interrupted.load() != 0;
  s.current = phase::done;
  stop_workers(workers);
  keep_running.clear();
  for (auto& t : threads) t.join();
  set_signal_handler(nullptr);

  // Results.
  histogram rtt, handshake;
  std::map<std::string, std::uint64_t> failures;
  std::map<std::uint16_t, std::uint64_t> close_codes;
  std::uint64_t payload_sent = 0, payload_received = 0, wire_sent = 0, wire_received = 0, redirects = 0,
                stamps_ahead = 0;
  std::string final_url;  // the first worker's that opened one: workers take the first connections in turn
  for (auto& w : workers) {
    if (final_url.empty()) final_url = w->final_url;
    payload_sent += w->payload_total_sent;
    payload_received += w->payload_total_received;
    wire_sent += w->wire_sent;
    wire_received += w->wire_received;
    redirects += w->redirects;
    stamps_ahead += w->stamps_ahead;
    rtt.merge(w->rtt);
    rtt.merge(w->interval_rtt);  // the drain's
    handshake.merge(w->handshake);
    for (auto& [k, v] : w->failures) failures[k] += v;
    for (auto& [k, v] : w->close_codes) close_codes[k] += v;
  }
  const auto t = sum(workers);
  const double seconds = std::max(1e-9, duration<double>(window_end - window_start).count());
  const double gen_cpu = cpu_after.self - cpu_before.self;
  const auto& url = o.client.display_url;
  const auto& unix_socket = o.client.client.unix_socket;  // --unix-socket or a ws+unix: URL's

  struct threshold_result {
    const threshold& criterion;
    std::optional<double> value;
    bool ok;
  };
  std::vector<threshold_result> verdicts;
  for (const auto& th : thresholds) {
    const auto value = threshold_value(th.which, t, rtt, handshake, measured ? std::optional(seconds) : std::nullopt);
    verdicts.push_back({th, value, threshold_holds(th, value)});
  }
  auto show_value = [](const threshold_result& r) -> std::string {
    if (!r.value) return "nothing measured";
    if (r.criterion.unit == threshold_unit::duration) return human_time(static_cast<std::uint64_t>(*r.value));
    if (r.criterion.which == threshold_metric::sent_per_second ||
        r.criterion.which == threshold_metric::received_per_second)
      return human_count(*r.value) + "/s";
    return fmt::format("{:.0f}", *r.value);
  };

  if (o.json || o.ndjson) {
    std::string f, c, servers, stages;
    for (const auto& stage : o.stages)
      stages += fmt::format("{}{{\"seconds\":{:.3f},\"target\":{}}}", stages.empty() ? "" : ",",
                            duration<double>(stage.length).count(), stage.target);
    for (auto& [k, v] : failures) f += fmt::format("{}\"{}\":{}", f.empty() ? "" : ",", json_escape(k), v);
    for (auto& [k, v] : close_codes) c += fmt::format("{}\"{}\":{}", c.empty() ? "" : ",", k, v);
    std::string verdict_list;
    for (const auto& r : verdicts)
      verdict_list +=
          fmt::format("{}{{\"threshold\":\"{}\",\"value\":{},\"ok\":{}}}", verdict_list.empty() ? "" : ",",
                      json_escape(r.criterion.text), r.value ? fmt::format("{:.1f}", *r.value) : "null", r.ok);
    for (std::size_t i = 0; i < o.server_pids.size() && i < cpu_after.servers.size(); ++i)
      servers += fmt::format("{}{{\"pid\":{},\"cpu_seconds\":{:.3f}}}", servers.empty() ? "" : ",", o.server_pids[i],
                             cpu_after.servers[i] - cpu_before.servers[i]);
    fmt::print(
        "{{\"type\":\"summary\",\"url\":\"{}\",\"unix_socket\":{},\"connections\":{},\"senders\":{},\"threads\":{},"
        "\"size\":{},\"payloads\":{},"
        "\"binary\":{},\"rate\":{},"
        "\"stages\":[{}],\"send_window_ns\":{},"
        "\"inflight\":{},\"reply\":\"{}\",\"stamp\":{},\"messages_per_connection\":{},\"reconnect\":{},"
        "\"seconds\":{:.3f},\"connect_seconds\":{:.3f},"
        "\"opened\":{},\"redirects\":{},\"final_url\":{},"
        "\"opened_per_second\":{:.1f},\"failed\":{},\"failures\":{{{}}},\"cancelled\":{},\"errors\":{},"
        "\"sent\":{},\"received\":{},\"sent_per_second\":{:.1f},\"received_per_second\":{:.1f},"
        "\"bytes_sent_per_second\":{:.1f},\"bytes_received_per_second\":{:.1f},"
        "\"rtt_ns\":{},\"stamped\":{},\"stamp_ns\":{},\"stamps_ahead\":{},\"handshake_ns\":{},\"close_codes\":{{{}}},"
        "\"cpu_seconds\":{:.3f},\"servers\":[{}],"
        "\"payload_bytes_sent\":{},\"payload_bytes_received\":{},\"wire_bytes_sent\":{},\"wire_bytes_received\":{},"
        "\"thresholds\":[{}],\"interrupted\":{}}}\n",
        json_escape(url), unix_socket.empty() ? "null" : "\"" + json_escape(unix_socket) + "\"", o.connections,
        senders(o), o.threads, o.size, s.payloads.size(), o.binary, o.rate, stages,
        duration_cast<nanoseconds>(o.send_window).count(), o.inflight, o.reply_text, o.stamp, o.messages_per_connection,
        o.reconnect, seconds, duration<double>(connect_time).count(), t.opened, redirects,
        final_url.empty() ? "null" : "\"" + json_escape(final_url) + "\"",
        static_cast<double>(opened_measuring) / seconds, t.failed, f, t.cancelled, t.errors, t.sent, t.received,
        static_cast<double>(t.sent) / seconds, static_cast<double>(t.received) / seconds,
        static_cast<double>(t.bytes_sent) / seconds, static_cast<double>(t.bytes_received) / seconds,
        histogram_json(o.stamp ? histogram() : rtt), t.stamped, histogram_json(o.stamp ? rtt : histogram()),
        stamps_ahead, histogram_json(handshake), c, gen_cpu, servers, payload_sent, payload_received, wire_sent,
        wire_received, verdict_list, interrupted.load() != 0);
  } else {
    std::string mode = fmt::format("closed loop, {} in flight per connection", o.inflight);
    if (o.messages_per_connection)
      mode += fmt::format(", a new connection every {} message{}", o.messages_per_connection,
                          o.messages_per_connection == 1 ? "" : "s");
    if (s.open_loop) {
      std::string stages;
      for (const auto& stage : o.stages)
        stages +=
            fmt::format("{} {} to {}", stages.empty() ? ", then" : ",", format_duration(stage.length), stage.target);
      mode = fmt::format("open loop at {} msgs/s{}, {}", o.rate, stages,
                         o.send_window.count() ? "sent in " + format_duration(o.send_window) + " windows"
                                               : std::string("each at its own time"));
    }
    if (o.reply == reply_mode::any) mode += ", any message an answer";
    if (o.reply == reply_mode::none)
      mode = s.open_loop ? mode + ", no answers awaited" : std::string("receiving only, nothing sent");
    if (o.senders && (o.reply != reply_mode::none || s.open_loop))
      mode += fmt::format(", {} of the connections sending", o.senders);
    if (o.stamp) mode += ", stamped";
    if (!o.first_message.empty())
      mode += fmt::format(", {}{}",
                          o.first_message.find(conn_placeholder) == std::string::npos
                              ? fmt::format("a {}-byte first message", o.first_message.size())
                              : std::string("a first message of its own per connection"),
                          o.reply == reply_mode::none ? "" : " answered");
    if (o.reconnect) mode += ", reconnecting";
    const bool sends = o.reply != reply_mode::none || s.open_loop;
    fmt::print("{}{}: {} connections, {}{}, {:.1f} s{}\n", url,
               unix_socket.empty() || url.starts_with("ws+unix:") ? "" : " (unix:" + unix_socket + ")", o.connections,
               sends ? describe_messages(s) + ", " : "", mode, seconds, interrupted ? " (interrupted)" : "");
    fmt::print("  connections  {} opened, {} failed", t.opened, t.failed);
    for (auto& [k, v] : failures) fmt::print(", {} x {}", v, k);
    if (t.cancelled) fmt::print(", {} cancelled while connecting", t.cancelled);
    if (redirects)
      fmt::print(", {} redirect{} followed{}", redirects, redirects == 1 ? "" : "s",
                 final_url.empty() ? "" : " (to " + final_url + ")");
    if (o.messages_per_connection)
      fmt::print("  ({}/s opened during the measurement)",
                 human_count(static_cast<double>(opened_measuring) / seconds));
    fmt::print("\n");
    if (handshake.count())
      fmt::print("  handshake    p50 {}  p90 {}  p99 {}  max {}\n", human_time(handshake.percentile(50)),
                 human_time(handshake.percentile(90)), human_time(handshake.percentile(99)),
                 human_time(handshake.max()));
    fmt::print("  messages     sent {} ({}/s)  received {} ({}/s)\n", t.sent,
               human_count(static_cast<double>(t.sent) / seconds), t.received,
               human_count(static_cast<double>(t.received) / seconds));
    fmt::print("  payload      sent {}/s  received {}/s\n", human_bytes(static_cast<double>(t.bytes_sent) / seconds),
               human_bytes(static_cast<double>(t.bytes_received) / seconds));
    if (rtt.count())
      fmt::print("  {}p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (mean {}, stddev {})\n",
                 o.stamp ? "latency      " : "round trip   ", human_time(rtt.percentile(50)),
                 human_time(rtt.percentile(90)), human_time(rtt.percentile(99)), human_time(rtt.percentile(99.9)),
                 human_time(rtt.max()), human_time(static_cast<std::uint64_t>(rtt.mean())),
                 human_time(static_cast<std::uint64_t>(rtt.stddev())));
    if (o.stamp) {
      fmt::print("  stamps       {} of the {} messages received, timed from their stamp", t.stamped, t.received);
      if (t.sent) fmt::print("; {:.2f} per message sent", static_cast<double>(t.stamped) / static_cast<double>(t.sent));
      fmt::print("\n");
      if (stamps_ahead)
        fmt::print("  stamps       {} later than their arrival (clocks apart?), timed as 0\n", stamps_ahead);
    }
    if (wire_sent + wire_received != 0) {
      auto share = [](std::uint64_t wire, std::uint64_t payload) {
        return payload ? fmt::format(" ({:.1f}% of the payload)",
                                     100.0 * static_cast<double>(wire) / static_cast<double>(payload))
                       : std::string();
      };
      fmt::print("  wire         sent {}{}  received {}{}  (whole run, frames included)\n",
                 human_bytes(static_cast<double>(wire_sent)), share(wire_sent, payload_sent),
                 human_bytes(static_cast<double>(wire_received)), share(wire_received, payload_received));
    }
    if (t.errors) fmt::print("  errors       {} connections failed after opening\n", t.errors);
    if (!close_codes.empty()) {
      fmt::print("  close codes ");
      for (auto& [k, v] : close_codes) fmt::print(" {} x {}", k, v);
      fmt::print("\n");
    }
    fmt::print("  cpu          loadtest {:.2f} s ({:.2f} us/msg)", gen_cpu,
               t.received ? gen_cpu * 1e6 / static_cast<double>(t.received) : 0.0);
    for (std::size_t i = 0; i < o.server_pids.size() && i < cpu_after.servers.size(); ++i) {
      const double cpu = cpu_after.servers[i] - cpu_before.servers[i];
      fmt::print(", server {} {:.2f} s ({:.2f} us/msg)", o.server_pids[i], cpu,
                 t.received ? cpu * 1e6 / static_cast<double>(t.received) : 0.0);
    }
    fmt::print("\n");
    for (const auto& r : verdicts)
      fmt::print("  threshold    {}  {} ({})\n", r.criterion.text, r.ok ? "ok" : "FAILED", show_value(r));
  }
  std::fflush(stdout);

  if (interrupted) return exit_status_for_signal(interrupted);
  if (t.opened == 0) {
    for (auto& w : workers)
      if (w->first_failure) return report_connect_failure(url, w->first_failure, w->first_report);
    diagnostics::fatal("no connection opened");
    return exit_unavailable;
  }
  std::string missed;
  std::size_t missed_count = 0;
  for (const auto& r : verdicts)
    if (!r.ok) missed += fmt::format("{}{} ({})", missed_count++ ? ", " : "", r.criterion.text, show_value(r));
  if (missed_count) {
    diagnostics::fatal(missed_count == 1 ? fmt::format("threshold failed: {}", missed)
                                         : fmt::format("{} thresholds failed: {}", missed_count, missed));
    return exit_failure;
  }
  return exit_ok;
}

}  // namespace

subcommand register_loadtest(CLI::App& parent) {
  auto o = std::make_shared<loadtest_options>();
  auto* app = parent.add_subcommand(
      "loadtest", "Load-test a server (an echo server by default): throughput and round-trip percentiles");
  o->client.several_local_addresses = true;
  add_client_options(*app, o->client);
  add_count_option(*app, "-c,--connections", o->connections, "Connections to open (10k: 10000)");
  add_duration_option(*app, "-d,--duration", o->duration, "Length of the measurement");
  auto* size = add_size_option(*app, "-s,--size", o->size, "Message size");
  auto* payload_file = app->add_option("--payload-file", o->payload_file,
                                       "Send this file's content as every message (text mode: it must be UTF-8)")
                           ->type_name("FILE")
                           ->excludes(size);
  app->add_option("--payloads", o->payloads_file,
                  "Send the lines of this file in turn, a message per line (empty lines skipped), the n-th "
                  "connection from the n-th line. Varied messages, e.g. to measure --deflate on real data")
      ->type_name("FILE")
      ->excludes(size)
      ->excludes(payload_file);
  app->add_flag("--binary", o->binary, "Send binary messages (default: text)");
  add_count_option(*app, "-r,--rate", o->rate,
                   "Total messages per second (200k: 200000); 0 = closed loop (with --stage: the rate to start "
                   "from)");
  app->add_option("--stage", o->stage_texts,
                  "Open loop: from the measurement's start, ramp the rate linearly to RATE over DURATION, then "
                  "hold it (repeatable, in order; -d defaults to their sum), e.g. --stage 30s:20k")
      ->type_name("DURATION:RATE");
  add_duration_option(*app, "--send-window", o->send_window,
                      "Open loop: messages due within one such window leave together at its start; 0 = each at "
                      "its own time");
  app->add_option("--inflight", o->inflight, "Messages outstanding per connection in closed loop")
      ->capture_default_str();
  app->add_option("--messages-per-connection", o->messages_per_connection,
                  "Closed loop: a connection that has sent this many closes (1000) and a new one takes its place, "
                  "to load the handshake too; 0 = keep each open")
      ->capture_default_str();
  app->add_flag("--reconnect", o->reconnect,
                "Replace a connection that the server closes or drops, or that fails to open (after a failure, or "
                "a close before any echo, retried after 50ms doubling to 1s; a server down at the start is waited "
                "for, unless it answers a 3xx or 4xx); by default the run goes on with those left");
  add_count_option(*app, "--senders", o->senders,
                   "Only the first N connections send (the rate, with -r, shared among them); the others stay "
                   "open and count what arrives (subscribers, idle connections); 0 = all");
  add_count_option(*app, "--connect-rate", o->connect_rate,
                   "Connections opened per second while ramping up; 0 = at once");
  app->add_option("--max-connecting", o->max_connecting, "Handshakes in progress at once, per thread")
      ->capture_default_str();
  add_duration_option(*app, "--warmup", o->warmup, "Traffic before the measurement starts, not recorded");
  add_duration_option(*app, "--drain", o->drain,
                      "Time allowed after the measurement for the last echoes and the handshakes under way");
  app->add_option("--threads", o->threads, "Threads, each with its share of the connections")
      ->capture_default_str()
      ->check(CLI::Range(1u, 256u));
  app->add_flag("--verify", o->verify, "Compare every echoed byte, not only the length and type");
  app->add_option("--reply", o->reply_text,
                  "What answers a message: 'echo' (the same type and length), 'any' (the next message, whatever "
                  "it is: request/response servers) or 'none' (servers that push: messages received are counted, "
                  "none is an answer; messages are sent only with -r or --stage)")
      ->type_name("echo|any|none")
      ->capture_default_str();
  app->add_option("--first-message", o->first_message,
                  "Send this text message first on each connection (a subscription, a login; {{conn}} in it: the "
                  "connection's number, from 1) and, unless --reply none, wait for one message in answer; neither "
                  "is counted")
      ->type_name("TEXT");
  app->add_flag("--stamp", o->stamp,
                "With --reply none: put the time each message is due in it ('wsl@' and 16 hex digits, at the "
                "start of -s bytes or in place of {{stamp}} in --payload-file), and time every message received "
                "that carries one (from this run or another, wherever the server puts it): latency through a "
                "server that broadcasts or forwards");
  app->add_option("--server-pid", o->server_pids, "Also report this process's CPU time over the measurement")
      ->type_name("PID");
  app->add_option("--threshold", o->thresholds,
                  "Fail (exit 1) unless METRIC OP VALUE holds, e.g. 'p99<5ms', 'received/s>=50k', 'lost==0' "
                  "(repeatable; metrics in wsl-loadtest(1))")
      ->type_name("'METRIC OP VALUE'");
  add_duration_option(*app, "--interval", o->interval, "Time between progress lines and --ndjson records");
  auto* json = app->add_flag("--json", o->json, "Print one JSON object instead of the summary");
  app->add_flag("--ndjson", o->ndjson,
                "Print a JSON object per --interval of the measurement, then the summary's, one per line")
      ->excludes(json);
  add_verbosity_options(*app, o->verbosity, o->quiet);
  app->footer(
      "Progress goes to stderr every --interval (a live line on a terminal): rates and round-trip p50/p99 of "
      "that interval. The summary goes to stdout. Ctrl-C prints the summary so far and exits 130.");
  return {app, [o, app] {
            o->duration_given = app->count("--duration") != 0;
            o->inflight_given = app->count("--inflight") != 0;
            return run_loadtest(*o);
          }};
}

}  // namespace wsl::cli
