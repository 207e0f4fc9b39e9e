// wsl latency: ping(8) for WebSockets.
//
// One probe is in flight at a time: a ping (or, with --message, a text message the server echoes),
// then its reply or -W; the next probe leaves -i after the previous one was sent (at once with
// -i 0). Each probe carries a payload unique to this run and sequence number, so a late reply to
// an earlier probe is never taken for the current one. Times come from wsl::clock: the send time
// is taken just before the frame is written, the reply time in the control callback (pongs) or as
// soon as the echoed message has been read. Nothing is allocated per probe.
//
// A reader coroutine runs throughout: control frames are only processed while a read is pending.
#include "latency.hpp"

#include "client.hpp"
#include "histogram.hpp"

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>

#include <openssl/rand.h>

#include <pthread.h>
#include <unistd.h>
#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

namespace wsl::cli {
namespace {

constexpr std::size_t max_ping_payload = 125;

struct latency_options {
  client_cli_options connection;
  std::uint64_t count = 10;            // probes to send; 0 = until interrupted
  clock::duration interval = 1s;       // from one probe to the next; 0 = back to back
  std::uint64_t size = 56;             // payload bytes, as ping(8)'s default
  clock::duration reply_timeout = 5s;  // -W: a reply later than this counts as lost
  bool message = false;                // time echoed text messages instead of pings
  bool connect = false;                // time a new connection and upgrade per probe
  bool json = false;
  bool ndjson = false;  // a JSON line per probe, then the summary's
  int verbosity = 0;
  bool quiet = false;
  // The library's own keepalive pings and idle timeout stay off unless asked for: the probes
  // are the keepalive, and -W the liveness check.
  bool ping_interval_given = false;
  bool idle_timeout_given = false;
  bool size_given = false;
};

double milliseconds(clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// Now as seconds since the Unix epoch, for --ndjson lines that are matched against other logs.
double unix_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// memcmp() wants valid pointers even for 0 bytes, and an empty payload has none.
bool same_bytes(const void* a, const void* b, std::size_t n) noexcept { return n == 0 || std::memcmp(a, b, n) == 0; }

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\')
      out += {'\\', c};
    else if (static_cast<unsigned char>(c) < 0x20)
      out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
    else
      out += c;
  }
  return out + "\"";
}

// ------------------------------------------------------------------------------------------------

struct rtt_summary {
  double min = 0, avg = 0, p50 = 0, p90 = 0, p99 = 0, max = 0, stddev = 0;  // milliseconds
};

// Min, max, avg and stddev are exact; the percentiles (nearest rank: p50 of 1, 2, 3, 4 is 2) come
// from a log-linear histogram, within 0.4% of the exact ones, so that memory stays the same
// however long `-c 0` runs.
rtt_summary summarize(const histogram& h) {
  rtt_summary s;
  if (h.count() == 0) return s;
  const auto ms = [](double ns) { return ns / 1e6; };
  s.min = ms(static_cast<double>(h.min()));
  s.max = ms(static_cast<double>(h.max()));
  s.avg = ms(h.mean());
  s.stddev = ms(h.stddev());  // as ping's mdev
  s.p50 = ms(static_cast<double>(h.percentile(50)));
  s.p90 = ms(static_cast<double>(h.percentile(90)));
  s.p99 = ms(static_cast<double>(h.percentile(99)));
  return s;
}

// The summary's figures as JSON ({"min":..., "stddev":...}), null with none measured.
std::string summary_json(const histogram& h) {
  if (h.count() == 0) return "null";
  const auto s = summarize(h);
  return fmt::format(
      "{{\"min\":{:.6f},\"avg\":{:.6f},\"p50\":{:.6f},\"p90\":{:.6f},\"p99\":{:.6f},\"max\":{:.6f},"
      "\"stddev\":{:.6f}}}",
      s.min, s.avg, s.p50, s.p90, s.p99, s.max, s.stddev);
}

// "NAME min/avg/p50/p90/p99/max/stddev = ... ms", as ping's last line.
void print_summary_line(std::string_view name, const histogram& h) {
  const auto s = summarize(h);
  fmt::print("{} min/avg/p50/p90/p99/max/stddev = {:.3f}/{:.3f}/{:.3f}/{:.3f}/{:.3f}/{:.3f}/{:.3f} ms\n", name, s.min,
             s.avg, s.p50, s.p90, s.p99, s.max, s.stddev);
}

class latency_session {
 public:
  latency_session(const latency_options& o, asio::io_context& ctx)
      : o_(o), ctx_(ctx), wake_(ctx), reply_timer_(ctx), payload_(o.size) {
    static constexpr char pattern[] = "wsl-latency.";
    for (std::size_t i = 0; i < payload_.size(); ++i) payload_[i] = pattern[i % (sizeof pattern - 1)];
    if (RAND_bytes(reinterpret_cast<unsigned char*>(&token_), sizeof token_) != 1)
      token_ = static_cast<std::uint64_t>(clock::now().time_since_epoch().count());
  }

  asio::awaitable<void> run();
  void interrupt(int signal_number);
  int exit_status() const;

 private:
  asio::awaitable<void> receive();
  asio::awaitable<void> probe();
  asio::awaitable<void> sleep_until(clock::time_point t);
  void arm_reply_deadline();
  void on_control(control_kind kind, std::string_view payload);
  void on_reply(clock::time_point at);
  void fill_payload(std::uint64_t seq) noexcept;
  void print_summary();

  const latency_options& o_;
  asio::io_context& ctx_;
  websocket ws_;
  connect_report report_;
  // The prober sleeps on wake_: until the next probe is due, or, while a reply is awaited, with
  // no expiry at all (cancel() wakes it), so that waiting for a reply costs no timerfd update
  // between the send and the reply. The reply timeout is reply_timer_'s: armed for the probe in
  // flight when idle, and when it fires for an earlier probe's deadline it is armed again.
  timer wake_;
  timer reply_timer_;
  bool reply_timer_armed_ = false;
  clock::time_point reply_deadline_{};
  std::vector<char> payload_;  // the probe in flight
  std::uint64_t token_ = 0;
  std::uint64_t probe_id_ = 0;
  bool waiting_ = false, replied_ = false;
  clock::time_point sent_at_{}, replied_at_{};
  histogram rtts_;  // nanoseconds
  std::uint64_t sent_ = 0, received_ = 0;
  clock::duration elapsed_{};

  int connect_status_ = exit_ok;
  bool connected_ = false;
  bool stopping_ = false;
  bool we_closed_ = false;  // our close frame went out before the server's arrived
  int signal_ = 0;
  std::error_code end_;  // why the connection ended early, if it did
};

asio::awaitable<void> latency_session::run() {
  const auto& url = o_.connection.display_url;
  std::error_code ec;
  const auto executor = ctx_.get_executor();
  ws_ = co_await connect_and_report(executor, o_.connection, report_, signal_, connect_status_, ec);
  if (signal_ != 0 || ec) co_return;
  connected_ = true;
  ws_.set_control_callback([this](control_kind kind, std::string_view payload) { on_control(kind, payload); });
  if (!o_.json && !o_.ndjson)
    fmt::print("LATENCY {} ({}): {} bytes per {}\n", report_.redirects.empty() ? url : report_.final_url,
               format_remote(report_), o_.size, o_.message ? "message" : "ping");
  asio::co_spawn(ctx_, receive(), asio::detached);
  co_await probe();
  print_summary();
  if (ws_.is_open()) {
    we_closed_ = true;
    co_await ws_.close(signal_ != 0 ? close_code::going_away : close_code::normal, signal_ != 0 ? "interrupted" : "",
                       ec);
    if (ec) diagnostics::info(fmt::format("close: {}", ec.message()));
  }
}

// Keeps control frames flowing and, with --message, recognises the echo of the probe in flight.
asio::awaitable<void> latency_session::receive() {
  std::error_code ec;
  for (;;) {
    auto in = co_await ws_.read_message(ec);
    if (ec) break;
    const auto id = probe_id_;
    bool match = o_.message && waiting_;
    std::size_t offset = 0;
    for (;;) {
      const auto chunk = co_await in.read_chunk(ec);
      if (ec) break;
      if (match) {
        match = offset + chunk.size() <= payload_.size() &&
                same_bytes(payload_.data() + offset, chunk.data(), chunk.size());
        offset += chunk.size();
      }
      if (in.done()) break;
    }
    if (ec) break;
    const auto at = clock::now();
    if (match && offset == payload_.size() && id == probe_id_ && waiting_)
      on_reply(at);
    else
      diagnostics::debug(fmt::format("< a message that is not the probe in flight ({} bytes)", in.bytes_read()));
  }
  if (!we_closed_) {
    // The connection ended under us.
    end_ = ec;
    const auto& peer = ws_.peer_close();
    if (ec == error::closed && peer.code != 0)
      diagnostics::error(fmt::format("server closed the connection: {}{}", peer.code,
                                     peer.reason.empty() ? "" : fmt::format(" \"{}\"", peer.reason)));
    else
      diagnostics::error(fmt::format("connection ended: {}", ec.message()));
  }
  stopping_ = true;
  wake_.cancel();
}

void latency_session::on_control(control_kind kind, std::string_view payload) {
  if (kind == control_kind::pong && waiting_ && !o_.message && payload.size() == payload_.size() &&
      same_bytes(payload.data(), payload_.data(), payload.size())) {
    on_reply(clock::now());
    return;
  }
  if (diagnostics::verbosity() >= 2)
    diagnostics::debug(fmt::format("< {}, {} bytes{}",
                                   kind == control_kind::ping   ? "ping"
                                   : kind == control_kind::pong ? "pong"
                                                                : "close",
                                   payload.size(), kind == control_kind::pong ? " (not the probe in flight)" : ""));
}

void latency_session::on_reply(clock::time_point at) {
  replied_at_ = at;
  replied_ = true;
  waiting_ = false;
  wake_.cancel();
}

// The sequence number, offset by a per-run random token, in hexadecimal at the start of the
// payload (its low digits when the payload is shorter than 16 bytes; an empty payload cannot
// tell probes apart).
void latency_session::fill_payload(std::uint64_t seq) noexcept {
  static constexpr char hex[] = "0123456789abcdef";
  auto value = token_ + seq;
  const auto digits = std::min<std::size_t>(payload_.size(), 16);
  for (std::size_t i = digits; i-- > 0; value >>= 4) payload_[i] = hex[value & 15];
}

asio::awaitable<void> latency_session::sleep_until(clock::time_point t) {
  wake_.expires_at(t);
  std::error_code ignored;
  co_await wake_.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
}

void latency_session::arm_reply_deadline() {
  if (reply_timer_armed_) return;  // it fires at an earlier deadline, then comes back here
  reply_timer_armed_ = true;
  reply_timer_.expires_at(reply_deadline_);
  reply_timer_.async_wait([this](std::error_code ec) {
    reply_timer_armed_ = false;
    if (ec || !waiting_) return;
    if (clock::now() < reply_deadline_) return arm_reply_deadline();
    waiting_ = false;  // lost: a reply arriving now is ignored
    wake_.cancel();
  });
}

asio::awaitable<void> latency_session::probe() {
  const auto remote = format_remote(report_);
  const auto started = clock::now();
  std::error_code ec;
  for (std::uint64_t seq = 1; !stopping_ && (o_.count == 0 || seq <= o_.count); ++seq) {
    fill_payload(seq);
    ++probe_id_;
    replied_ = false;
    waiting_ = true;
    sent_at_ = clock::now();
    if (o_.message)
      co_await ws_.write_message(message_type::text, asio::buffer(payload_), ec);
    else
      co_await ws_.ping(asio::buffer(payload_), ec);
    if (ec) {
      waiting_ = false;
      break;  // the receiver reports how the connection ended
    }
    ++sent_;
    // On loopback the reply may already be in while the write was completing.
    reply_deadline_ = sent_at_ + o_.reply_timeout;
    if (!replied_ && !stopping_) {
      arm_reply_deadline();
      co_await sleep_until(clock::time_point::max());
    }
    waiting_ = false;
    if (replied_) {
      const auto rtt = replied_at_ - sent_at_;
      rtts_.record(static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(rtt).count()));
      ++received_;
      if (o_.ndjson)
        fmt::print("{{\"type\":\"reply\",\"seq\":{},\"bytes\":{},\"rtt_ms\":{:.6f},\"time\":{:.6f}}}\n", seq, o_.size,
                   milliseconds(rtt), unix_seconds());
      else if (!o_.json)
        fmt::print("{} bytes from {}: seq={} time={:.3f} ms\n", o_.size, remote, seq, milliseconds(rtt));
    } else if (stopping_) {
      --sent_;  // interrupted while waiting: neither answered nor lost
      break;
    } else if (o_.ndjson) {
      fmt::print("{{\"type\":\"lost\",\"seq\":{},\"bytes\":{},\"time\":{:.6f}}}\n", seq, o_.size, unix_seconds());
    } else if (!o_.json) {
      fmt::print("no reply to seq={} within {}\n", seq, format_duration(o_.reply_timeout));
    }
    if (o_.interval.count() > 0) std::fflush(stdout);
    if (o_.count != 0 && seq == o_.count) break;
    if (const auto next = sent_at_ + o_.interval; !stopping_ && clock::now() < next) co_await sleep_until(next);
  }
  elapsed_ = clock::now() - started;
  reply_timer_.cancel();
}

void latency_session::print_summary() {
  const auto loss = sent_ == 0 ? 0.0 : 100.0 * static_cast<double>(sent_ - received_) / static_cast<double>(sent_);
  const auto& url = o_.connection.display_url;
  if (o_.json || o_.ndjson) {
    fmt::print(
        "{{\"type\":\"summary\",\"url\":{},\"final_url\":{},\"redirects\":{},\"remote\":{},\"mode\":\"{}\",\"size\":{},"
        "\"interval_ms\":{:.3f},\"timeout_"
        "ms\":{:.3f},"
        "\"sent\":{},\"received\":{},\"lost\":{},\"loss_percent\":{:.3f},\"time_ms\":{:.3f},"
        "\"connect_ms\":{:.6f},\"handshake_ms\":{:.6f},\"rtt_ms\":{},\"interrupted\":{}}}\n",
        json_string(url), json_string(report_.redirects.empty() ? std::string(url) : report_.final_url),
        report_.redirects.size(), json_string(format_remote(report_)), o_.message ? "message" : "ping", o_.size,
        milliseconds(o_.interval), milliseconds(o_.reply_timeout), sent_, received_, sent_ - received_, loss,
        milliseconds(elapsed_), milliseconds(report_.connect_time), milliseconds(report_.handshake_time),
        summary_json(rtts_), signal_ != 0 ? "true" : "false");
  } else {
    fmt::print("\n--- {} latency statistics ---\n", url);
    fmt::print("{} sent, {} received, {:.3g}% loss, time {:.0f} ms\n", sent_, received_, loss, milliseconds(elapsed_));
    fmt::print("handshake {:.3f} ms ({} connect {:.3f} ms)\n", milliseconds(report_.handshake_time),
               report_.unix_socket.empty() ? "tcp" : "unix", milliseconds(report_.connect_time));
    if (received_ != 0) print_summary_line("rtt", rtts_);
  }
  std::fflush(stdout);
}

void latency_session::interrupt(int signal_number) {
  if (signal_ != 0) return;
  signal_ = signal_number;
  if (!connected_) {
    ctx_.stop();  // nothing measured, nothing to close
    return;
  }
  stopping_ = true;
  wake_.cancel();
}

int latency_session::exit_status() const {
  if (signal_ != 0) return signal_ == SIGTERM ? 128 + SIGTERM : exit_interrupted;
  if (!connected_) return connect_status_;
  return received_ != 0 ? exit_ok : exit_failure;
}

// ------------------------------------------------------------------------------------------------
// --connect: a new connection per probe, timed from the name's resolution to the 101 (what a
// client waits before it can send, as curl's time_appconnect and httping measure), then closed
// with 1000 and its close handshake, which is not timed. -W bounds each probe as a whole.

class connect_session {
 public:
  connect_session(const latency_options& o, asio::io_context& ctx) : o_(o), ctx_(ctx), wake_(ctx), limit_(ctx) {
    url u;
    secure_ = !parse_url(o.connection.url, u) && u.secure;
  }

  asio::awaitable<void> run();
  void interrupt(int signal_number);
  int exit_status() const;

 private:
  asio::awaitable<void> sleep_until(clock::time_point t);
  void print_upgraded(std::uint64_t seq, clock::duration time, const connect_report& report);
  void print_failed(std::uint64_t seq, std::error_code ec, const connect_report& report, bool timed_out);
  void print_summary();

  const latency_options& o_;
  asio::io_context& ctx_;
  timer wake_;                        // the next probe's time
  timer limit_;                       // -W for the probe in flight
  asio::cancellation_signal cancel_;  // ends the probe in flight: -W or a signal
  bool probing_ = false;
  std::uint64_t probe_id_ = 0;  // of the probe in flight: an expiry meant for an earlier one is ignored
  bool timed_out_ = false;      // -W ended the probe in flight
  histogram times_;             // nanoseconds, of the probes upgraded
  // Of the probes upgraded: the phases' sums, for their means.
  clock::duration resolve_sum_{}, tcp_sum_{}, tls_sum_{}, upgrade_sum_{};
  std::uint64_t sent_ = 0, upgraded_ = 0;
  int last_failure_status_ = exit_failure;  // the exit status when none was upgraded
  std::string remote_;                      // the last probe's
  bool secure_ = false;
  bool resolves_ = false;  // a probe looked its host's name up
  clock::duration elapsed_{};
  bool stopping_ = false;
  int signal_ = 0;
};

asio::awaitable<void> connect_session::sleep_until(clock::time_point t) {
  wake_.expires_at(t);
  std::error_code ignored;
  co_await wake_.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
}

asio::awaitable<void> connect_session::run() {
  const auto executor = ctx_.get_executor();
  const auto started = clock::now();
  if (!o_.json && !o_.ndjson)
    fmt::print("CONNECT {}: a new connection and upgrade per probe\n", o_.connection.display_url);
  std::fflush(stdout);
  for (std::uint64_t seq = 1; !stopping_ && (o_.count == 0 || seq <= o_.count); ++seq) {
    const auto sent_at = clock::now();
    ++sent_;
    std::error_code ec;
    connect_report report;
    websocket ws;
    timed_out_ = false;
    limit_.expires_at(sent_at + o_.reply_timeout);
    limit_.async_wait([this, id = ++probe_id_](std::error_code e) {
      if (e || !probing_ || id != probe_id_) return;
      timed_out_ = true;
      cancel_.emit(asio::cancellation_type::terminal);
    });
    probing_ = true;
    try {
      auto connecting = connect(executor, o_.connection.url, o_.connection.client, ec, &report);
      auto cancellable = asio::bind_cancellation_slot(cancel_.slot(), asio::use_awaitable);
      ws = co_await asio::co_spawn(executor, std::move(connecting), std::move(cancellable));
    } catch (const std::system_error& e) {
      ec = e.code();
    }
    probing_ = false;
    const auto time = clock::now() - sent_at;
    limit_.cancel();
    trace_handshake(report);
    if (stopping_ && ec) {
      --sent_;  // interrupted: neither upgraded nor failed
      break;
    }
    if (ec) {
      print_failed(seq, ec, report, timed_out_);
    } else {
      print_upgraded(seq, time, report);
      std::error_code ignored;
      co_await ws.close(stopping_ ? close_code::going_away : close_code::normal, stopping_ ? "interrupted" : "",
                        ignored);
    }
    if (o_.interval.count() > 0) std::fflush(stdout);
    if (o_.count != 0 && seq == o_.count) break;
    if (const auto next = sent_at + o_.interval; !stopping_ && clock::now() < next) co_await sleep_until(next);
  }
  elapsed_ = clock::now() - started;
  print_summary();
}

void connect_session::print_upgraded(std::uint64_t seq, clock::duration time, const connect_report& report) {
  ++upgraded_;
  times_.record(static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(time).count()));
  const auto upgrade = report.handshake_time - report.tls_time;
  resolve_sum_ += report.resolve_time;
  resolves_ = resolves_ || report.resolved_by_dns;
  tcp_sum_ += report.connect_time;
  tls_sum_ += report.tls_time;
  upgrade_sum_ += upgrade;
  remote_ = format_remote(report);
  if (o_.ndjson) {
    fmt::print(
        "{{\"type\":\"upgraded\",\"seq\":{},\"remote\":{},\"connect_time_ms\":{:.6f},\"resolve_ms\":{:.6f},\"tcp_ms\":{"
        ":.6f},"
        "\"tls_ms\":{:.6f},\"upgrade_ms\":{:.6f},\"redirects\":{},\"time\":{:.6f}}}\n",
        seq, json_string(remote_), milliseconds(time), milliseconds(report.resolve_time),
        milliseconds(report.connect_time), milliseconds(report.tls_time), milliseconds(upgrade),
        report.redirects.size(), unix_seconds());
  } else if (!o_.json) {
    // The phases this connection had: a name to resolve, TLS.
    std::string phases;
    if (report.resolved_by_dns) phases += fmt::format("dns {:.3f} ms, ", milliseconds(report.resolve_time));
    phases +=
        fmt::format("{} {:.3f} ms, ", report.unix_socket.empty() ? "tcp" : "unix", milliseconds(report.connect_time));
    if (secure_) phases += fmt::format("tls {:.3f} ms, ", milliseconds(report.tls_time));
    phases += fmt::format("upgrade {:.3f} ms", milliseconds(upgrade));
    fmt::print("upgraded by {}: seq={} time={:.3f} ms ({})\n", remote_, seq, milliseconds(time), phases);
  }
}

void connect_session::print_failed(std::uint64_t seq, std::error_code ec, const connect_report& report,
                                   bool timed_out) {
  auto failure = describe_connect_failure("", ec, report);
  if (timed_out) failure = {fmt::format("no upgrade within {}", format_duration(o_.reply_timeout)), exit_timeout};
  last_failure_status_ = failure.status;
  // The line names the URL first; here the URL is the run's.
  auto text = std::string_view(failure.text);
  if (text.starts_with(": ")) text.remove_prefix(2);
  if (o_.ndjson)
    fmt::print("{{\"type\":\"failed\",\"seq\":{},\"error\":{},\"http_status\":{},\"time\":{:.6f}}}\n", seq,
               json_string(text), report.status, unix_seconds());
  else if (!o_.json)
    fmt::print("seq={} failed: {}\n", seq, text);
}

void connect_session::print_summary() {
  const auto failed = sent_ - upgraded_;
  const auto loss = sent_ == 0 ? 0.0 : 100.0 * static_cast<double>(failed) / static_cast<double>(sent_);
  const auto mean = [this](clock::duration sum) {
    return upgraded_ == 0 ? 0.0 : milliseconds(sum) / static_cast<double>(upgraded_);
  };
  const auto& url = o_.connection.display_url;
  if (o_.json || o_.ndjson) {
    std::string phases_json = "null";
    if (upgraded_ != 0) {
      phases_json = fmt::format("{{\"resolve\":{:.6f},\"tcp\":{:.6f},\"tls\":{:.6f},\"upgrade\":{:.6f}}}",
                                mean(resolve_sum_), mean(tcp_sum_), mean(tls_sum_), mean(upgrade_sum_));
    }
    fmt::print(
        "{{\"type\":\"summary\",\"url\":{},\"remote\":{},\"mode\":\"connect\",\"interval_ms\":{:.3f},"
        "\"timeout_ms\":{:.3f},\"sent\":{},\"upgraded\":{},\"failed\":{},\"failed_percent\":{:.3f},"
        "\"time_ms\":{:.3f},\"connect_time_ms\":{},\"phases_avg_ms\":{},\"interrupted\":{}}}\n",
        json_string(url), remote_.empty() ? "null" : json_string(remote_), milliseconds(o_.interval),
        milliseconds(o_.reply_timeout), sent_, upgraded_, failed, loss, milliseconds(elapsed_), summary_json(times_),
        phases_json, signal_ != 0 ? "true" : "false");
  } else {
    fmt::print("\n--- {} connect statistics ---\n", url);
    fmt::print("{} connections, {} upgraded, {:.3g}% failed, time {:.0f} ms\n", sent_, upgraded_, loss,
               milliseconds(elapsed_));
    if (upgraded_ != 0) {
      print_summary_line("time", times_);
      std::string phases;
      if (resolves_) phases += fmt::format("dns {:.3f}, ", mean(resolve_sum_));
      phases += fmt::format("{} {:.3f}, ", o_.connection.client.unix_socket.empty() ? "tcp" : "unix", mean(tcp_sum_));
      if (secure_) phases += fmt::format("tls {:.3f}, ", mean(tls_sum_));
      fmt::print("phases avg {}upgrade {:.3f} ms\n", phases, mean(upgrade_sum_));
    }
  }
  std::fflush(stdout);
}

void connect_session::interrupt(int signal_number) {
  if (signal_ != 0) return;
  signal_ = signal_number;
  stopping_ = true;
  wake_.cancel();
  if (probing_) cancel_.emit(asio::cancellation_type::terminal);
}

int connect_session::exit_status() const {
  if (signal_ != 0) return signal_ == SIGTERM ? 128 + SIGTERM : exit_interrupted;
  return upgraded_ != 0 ? exit_ok : last_failure_status_;
}

int run_latency(latency_options& o) {
  diagnostics::configure("wsl latency", o.verbosity, o.quiet);
  auto& connection = o.connection.client.connection;
  if (!o.ping_interval_given) connection.ping_interval = clock::duration::zero();
  if (!o.idle_timeout_given) connection.idle_timeout = clock::duration::zero();
  std::string problem;
  if (finish_client_options(o.connection, problem)) {
    diagnostics::fatal(problem);
    return exit_usage;
  }
  if (o.connect && o.size_given) {
    diagnostics::fatal("-s: --connect sends no payload (it times connections)");
    return exit_usage;
  }
  if (!o.message && !o.connect && o.size > max_ping_payload) {
    diagnostics::fatal(
        fmt::format("-s {}: a ping carries at most {} bytes (use --message for more)", o.size, max_ping_payload));
    return exit_usage;
  }
  if (o.message && connection.max_message_size != 0 && o.size > connection.max_message_size) {
    diagnostics::fatal(
        fmt::format("-s {}: larger than --max-message-size {}", o.size, format_size(connection.max_message_size)));
    return exit_usage;
  }
  if (o.reply_timeout.count() <= 0) {
    diagnostics::fatal("-W: the reply timeout must be above 0");
    return exit_usage;
  }

  start_signal_thread();
  std::signal(SIGPIPE, SIG_IGN);

  int status = exit_ok;
  {
    // One thread runs the context and owns every socket and timer; the signal thread only posts,
    // which keeps its lock: the reactor's locks can go.
    asio::io_context ctx(ASIO_CONCURRENCY_HINT_UNSAFE_IO);
    if (o.connect) {
      connect_session session(o, ctx);
      if (!run_interruptible(ctx, session)) return exit_failure;
      status = session.exit_status();
    } else {
      latency_session session(o, ctx);
      if (!run_interruptible(ctx, session)) return exit_failure;
      status = session.exit_status();
    }
  }
  std::fflush(stdout);
  return status;
}

}  // namespace

subcommand register_latency(CLI::App& parent) {
  auto o = std::make_shared<latency_options>();
  auto* app =
      parent.add_subcommand("latency", "Measure round-trip times with pings (or echoed messages), like ping(8)");
  add_client_options(*app, o->connection);
  app->add_option("-c,--count", o->count, "Probes to send; 0 = until interrupted")->capture_default_str();
  add_duration_option(*app, "-i,--interval", o->interval, "Time from one probe to the next; 0 = back to back");
  add_size_option(*app, "-s,--size", o->size, "Payload bytes per probe (a ping carries at most 125)");
  add_duration_option(*app, "-W,--timeout", o->reply_timeout, "Time to wait for each reply; later ones count as lost");
  auto* message =
      app->add_flag("--message", o->message, "Time echoed text messages instead of pings (for servers that echo)");
  app->add_flag("--connect", o->connect,
                "Time a new connection per probe, from resolving the name to the 101, in phases (dns, tcp, tls, "
                "upgrade); each is then closed")
      ->excludes(message);
  auto* json = app->add_flag("--json", o->json, "Print one JSON object with the results instead of the human form");
  app->add_flag("--ndjson", o->ndjson,
                "Print a JSON line per probe (reply or lost, with its Unix time), then the summary's")
      ->excludes(json);
  add_verbosity_options(*app, o->verbosity, o->quiet);
  app->get_option("--ping-interval")->default_str("off");
  app->get_option("--idle-timeout")->default_str("off");
  app->footer(
      "One line per reply and a summary on stdout; SIGINT prints the summary so far, closes with 1001 and exits "
      "130. Exit 0 when at least one reply came, 1 when none, 69/75/76 when the connection fails (--connect: 0 "
      "when a probe was upgraded, else the last failure's status). The library's "
      "keepalive pings and idle timeout are off unless --ping-interval or --idle-timeout is given. See "
      "wsl-latency(1).");
  return {app, [o, app] {
            o->ping_interval_given = app->count("--ping-interval") != 0;
            o->idle_timeout_given = app->count("--idle-timeout") != 0;
            o->size_given = app->count("--size") != 0;
            return run_latency(*o);
          }};
}

}  // namespace wsl::cli
