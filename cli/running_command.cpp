// running_command.hpp first: it brings Asio's config.hpp in before any standard header, as every
// other file of the program does (see serve_command.cpp).
#include "running_command.hpp"

#include "frame_trace.hpp"
#include "records.hpp"

#include <asio/co_spawn.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <sys/wait.h>
#include <array>
#include <csignal>
#include <cstdio>
#include <memory>

namespace wsl::cli {
namespace {

inline auto use_ec(std::error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

// A line of the child's stderr, after the prefix.
void emit_child_stderr(std::string_view prefix, std::string_view line) {
  const auto text = fmt::format("{}{}\n", prefix, line);
  std::fwrite(text.data(), 1, text.size(), stderr);  // one call per line: the FILE lock keeps lines whole
}

}  // namespace

running_command::running_command(websocket& ws, child_process child, const running_command_options& o)
    : ws_(ws),
      o_(o),
      child_(child),
      input_(ws.get_executor(), std::exchange(child_.stdin_fd, -1)),
      output_(ws.get_executor(), std::exchange(child_.stdout_fd, -1)),
      errors_(ws.get_executor()),
      exit_(ws.get_executor(), std::exchange(child_.pidfd, -1)),
      wake_(ws.get_executor()) {
  if (child_.stderr_fd >= 0) errors_.assign(std::exchange(child_.stderr_fd, -1));
}

void running_command::notify() noexcept {
  try {
    wake_.cancel();
  } catch (...) {
  }
}

void running_command::close_input() noexcept {
  std::error_code ignored;
  input_.close(ignored);
}

void running_command::signal_process(int signal_number) noexcept {
  if (!exited_) signalled_ = true;
  signal_group(child_, signal_number);
}

void running_command::stop() {
  peer_gone_ = true;
  std::error_code ignored;
  input_.cancel(ignored);  // a write the process is not reading must not hold the end
  notify();
}

void running_command::interrupt() {
  interrupted_ = true;
  stop();
}

asio::awaitable<void> running_command::wait_until(clock::time_point deadline) {
  wake_.expires_at(deadline);
  std::error_code ignored;
  co_await wake_.async_wait(use_ec(ignored));
}

asio::awaitable<void> running_command::run() {
  const auto ex = ws_.get_executor();
  running_ = errors_.is_open() ? 4 : 3;
  const auto done = counted_out(
      running_, [this] { notify(); }, o_.log_prefix);
  asio::co_spawn(ex, watch_exit(), done);
  if (errors_.is_open()) asio::co_spawn(ex, pump_errors(), done);
  asio::co_spawn(ex, pump_output(), done);
  asio::co_spawn(ex, pump_input(), done);

  while (!exited_ && !peer_gone_) co_await wait_until(clock::time_point::max());
  exited_first_ = exited_ && !peer_gone_;
  if (exited_first_)
    co_await end_after_exit();
  else
    co_await end_after_peer();
  close_input();
  co_await wait_for_pumps(o_.close_grace);
  if (dropped_ != 0)
    diagnostics::info(fmt::format("{}{} message{} dropped: the process no longer read its stdin", o_.log_prefix,
                                  dropped_, dropped_ == 1 ? "" : "s"));
  if (bad_lines_ > 1)
    diagnostics::warning(
        fmt::format("{}{} lines of the process's output were not base64 after the binary prefix "
                    "'{}': not sent",
                    o_.log_prefix, bad_lines_, o_.types.binary_prefix));
}

// The process ended: anything left of its group goes, the rest of its output is sent, then the close.
asio::awaitable<void> running_command::end_after_exit() {
  const pid_t pid = child_.pid;
  const auto forever = clock::time_point::max();
  signal_group(child_, SIGTERM);
  auto deadline = clock::now() + o_.close_grace;
  while (!output_done_ && clock::now() < deadline) co_await wait_until(deadline);
  signal_group(child_, SIGKILL);
  status_ = reap(child_);
  deadline = clock::now() + o_.close_grace;
  while (!output_done_ && clock::now() < deadline) co_await wait_until(deadline);
  if (!output_done_) {  // a process that left the group still holds the pipe
    std::error_code ignored;
    output_.cancel(ignored);
    while (!output_done_) co_await wait_until(forever);
  }
  if (o_.log_exit)
    diagnostics::debug(fmt::format("{}process {}: {}", o_.log_prefix, pid, describe_wait_status(status_)));
  const auto close = o_.close_for_exit ? o_.close_for_exit(status_) : close_status{close_code::normal, {}};
  if (o_.trace_frames) trace_close_sent(ws_, close.code, close.reason, o_.log_prefix);
  std::error_code ec;
  co_await ws_.close(close.code, close.reason, ec);
}

// The peer left (or we are shutting down): the process's stdin ends; then it has close_grace to
// exit before SIGTERM (at once after an interrupt), and as long again before SIGKILL.
asio::awaitable<void> running_command::end_after_peer() {
  const pid_t pid = child_.pid;
  close_input();
  auto deadline = clock::now() + o_.close_grace;
  if (interrupted_ && !exited_) {
    signal_process(SIGTERM);
  } else {
    while (!exited_ && clock::now() < deadline) co_await wait_until(deadline);
    if (!exited_) {
      diagnostics::info(fmt::format("{}process {} still runs {} after the connection ended: SIGTERM", o_.log_prefix,
                                    pid, format_duration(o_.close_grace)));
      signal_process(SIGTERM);
      deadline = clock::now() + o_.close_grace;
    }
  }
  while (!exited_ && clock::now() < deadline) co_await wait_until(deadline);
  if (!exited_) {
    diagnostics::info(fmt::format("{}process {} ignored SIGTERM: SIGKILL", o_.log_prefix, pid));
    signal_process(SIGKILL);
    while (!exited_) co_await wait_until(clock::time_point::max());
  }
  signal_group(child_, SIGKILL);  // what is left of its group
  status_ = reap(child_);
  if (o_.log_exit)
    diagnostics::debug(fmt::format("{}process {}: {}", o_.log_prefix, pid, describe_wait_status(status_)));
}

// The pipes end once no process holds them; one that escaped the group may: stop waiting then.
asio::awaitable<void> running_command::wait_for_pumps(clock::duration bound) {
  const auto deadline = clock::now() + bound;
  while (running_ > 0 && clock::now() < deadline) co_await wait_until(deadline);
  if (running_ > 0) {
    std::error_code ignored;
    output_.cancel(ignored);
    errors_.cancel(ignored);
    input_.cancel(ignored);
  }
  while (running_ > 0) co_await wait_until(clock::time_point::max());
}

asio::awaitable<void> running_command::watch_exit() {
  std::error_code ec;
  co_await exit_.async_wait(asio::posix::stream_descriptor::wait_read, use_ec(ec));
  if (ec) diagnostics::error(fmt::format("{}waiting for process {}: {}", o_.log_prefix, child_.pid, ec.message()));
  exited_ = true;
}

// The peer's messages to the process's stdin, each followed by the delimiter (text mode).
asio::awaitable<void> running_command::pump_input() {
  const std::string_view delimiter = o_.binary           ? std::string_view()
                                     : o_.null_delimited ? std::string_view("\0", 1)
                                                         : std::string_view("\n");
  bool reading = true;   // the process still takes its stdin
  bool limited = false;  // its stdin was closed at the message limit
  const bool typed = o_.types.any() && !o_.binary;
  base64_stream base64;
  std::string encoded;
  std::error_code ec;
  for (;;) {
    auto in = co_await ws_.read_message(ec);
    if (ec) break;
    const std::string_view prefix = !typed                            ? std::string_view()
                                    : in.type() == message_type::text ? o_.types.text_prefix
                                                                      : o_.types.binary_prefix;
    const bool encode = typed && o_.types.base64 && in.type() == message_type::binary;
    bool first = true;
    for (;;) {
      auto chunk = co_await in.read_chunk(ec);
      if (ec) break;
      const bool last = in.done();
      if (encode) {
        encoded.clear();
        base64.add({static_cast<const unsigned char*>(chunk.data()), chunk.size()}, encoded);
        if (last) base64.finish(encoded);
        chunk = asio::buffer(encoded);
      }
      if (reading) {
        std::error_code write_ec;
        const std::array<asio::const_buffer, 3> parts = {asio::buffer(prefix.data(), first ? prefix.size() : 0), chunk,
                                                         asio::buffer(delimiter.data(), last ? delimiter.size() : 0)};
        first = false;
        co_await asio::async_write(input_, parts, use_ec(write_ec));
        if (write_ec) {
          reading = false;
          if (write_ec != asio::error::operation_aborted)
            diagnostics::debug(fmt::format("{}the process's stdin: {}", o_.log_prefix, write_ec.message()));
        }
      }
      if (last) break;
    }
    if (ec) {
      encoded.clear();
      base64.finish(encoded);  // the input ends here: nothing is held for another message
      break;
    }
    if (o_.trace_frames) trace_message('<', in.type(), in.bytes_read(), o_.log_prefix);
    if (!reading) {
      if (!limited) ++dropped_;
      continue;
    }
    ++delivered_;
    if (o_.message_limit != 0 && delivered_ >= o_.message_limit) {
      // Its stdin ends here; what it writes back still goes out. Later messages are dropped.
      diagnostics::info(fmt::format("{}{} message{} delivered: closing the process's stdin", o_.log_prefix, delivered_,
                                    delivered_ == 1 ? "" : "s"));
      reading = false;
      limited = true;
      close_input();
    }
  }
  if (o_.trace_frames) trace_failure_close(ws_, ec, o_.log_prefix);
  input_end_ = ec;
  close_input();
  peer_gone_ = true;
}

// A line is a text message when it is UTF-8, as RFC 6455 requires; otherwise a binary one. With
// o_.types, a line may say which it is (typed_lines.hpp).
void running_command::add_line(std::string_view line, std::string_view chunk) {
  auto m = message_of_line(o_.types, line);
  if (m.bad_base64) {
    if (bad_lines_++ == 0)
      diagnostics::warning(
          fmt::format("{}a line of the process's output is not base64 after the binary prefix "
                      "'{}' (--base64): not sent",
                      o_.log_prefix, o_.types.binary_prefix));
    return;
  }
  if (m.not_utf8 && !warned_utf8_) {
    warned_utf8_ = true;
    diagnostics::warning(
        fmt::format("{}the process wrote a line that is not UTF-8: sent as a binary message", o_.log_prefix));
  }
  batch_.add(std::move(m), chunk);
}

// The lines gathered (or one binary read), in as few sends as websocket::write_messages() makes.
asio::awaitable<void> running_command::send_batch() {
  if (sending_ && !batch_.empty()) {
    std::error_code ec;
    co_await ws_.write_messages(batch_.messages(), ec);
    if (ec) {
      sending_ = false;  // the connection is closing or gone; the process's output is drained from now on
    } else {
      sent_ += batch_.size();
      if (o_.trace_frames)
        for (const auto& m : batch_.messages()) trace_message('>', m.type, m.data.size(), o_.log_prefix);
    }
  }
  batch_.clear();
}

// The process's stdout to messages: a line each (text mode), or a read each (binary).
asio::awaitable<void> running_command::pump_output() {
  const std::size_t size = o_.binary ? static_cast<std::size_t>(o_.chunk) : std::size_t{64} << 10;
  const auto buffer = std::make_unique_for_overwrite<char[]>(size);
  // Never hold more than a message may be: a longer line goes in pieces.
  record_splitter lines(o_.null_delimited ? '\0' : '\n', static_cast<std::size_t>(o_.max_line));
  std::error_code ec;
  for (;;) {
    const auto n = co_await output_.async_read_some(asio::buffer(buffer.get(), size), use_ec(ec));
    if (ec) break;
    if (!sending_) continue;
    const std::string_view chunk(buffer.get(), n);
    if (o_.binary) {
      batch_.add(message_type::binary, chunk, chunk);
      co_await send_batch();
      continue;
    }
    lines.feed(chunk);
    while (sending_) {
      const auto line = lines.next();
      if (line) add_line(*line, chunk);
      if (line && !batch_.full()) continue;
      co_await send_batch();
      if (!line) break;
    }
  }
  if (sending_) {
    const auto last = lines.finish();  // a last line without its newline
    if (last) {
      add_line(*last, {});
      co_await send_batch();
    }
  }
  output_done_ = true;
  notify();
}

asio::awaitable<void> running_command::pump_errors() {
  constexpr std::size_t size = 16 << 10, max_line = 64 << 10;
  const auto buffer = std::make_unique_for_overwrite<char[]>(size);
  record_splitter lines('\n', max_line);
  std::error_code ec;
  for (;;) {
    const auto n = co_await errors_.async_read_some(asio::buffer(buffer.get(), size), use_ec(ec));
    if (ec) break;
    lines.feed(std::string_view(buffer.get(), n));
    while (const auto line = lines.next()) emit_child_stderr(o_.log_prefix, *line);
  }
  if (const auto last = lines.finish()) emit_child_stderr(o_.log_prefix, *last);
}

}  // namespace wsl::cli
