// A command process attached to a WebSocket connection, for both sides: `wsl serve -- COMMAND` (one
// per client) and `wsl pipe URL -- COMMAND` (one per run).
//
// The peer's messages go to the process's stdin, each followed by the delimiter (text mode); what
// it writes to stdout comes back as messages: a line each (a text message when it is UTF-8, binary
// otherwise), or a read each with --binary. Everything runs on the connection's executor: the
// pipes and a pidfd (readable once the process has exited, so no SIGCHLD handler and no race with
// other children) are asio stream_descriptors, one coroutine per direction moves the data, and
// run() decides how it ends:
//
//  - the process exits first: the rest of its stdout is sent, then the close frame that
//    options::close_for_exit gives for its wait status; whatever is left of its process group gets
//    SIGTERM at once and SIGKILL once its stdout has ended (or close_grace has passed);
//  - the peer leaves first (its close, a dropped connection) or stop() is called: the process's
//    stdin is closed; close_grace later its group gets SIGTERM, as long again later SIGKILL
//    (interrupt(): SIGTERM at once, SIGKILL close_grace later).
// Either way the process is reaped with waitpid() on its own pid before run() returns, and every
// message read before the peer's close has been written to its stdin (unless it stopped reading).
#pragma once

#include "common.hpp"
#include "message_batch.hpp"
#include "process.hpp"
#include "typed_lines.hpp"

#include <asio/awaitable.hpp>
#include <asio/posix/stream_descriptor.hpp>

#include <cstdint>
#include <functional>
#include <string>

namespace wsl::cli {

struct running_command_options {
  // Framing: the same rules as wsl pipe and wsl serve --pipe.
  bool null_delimited = false;     // records end with NUL instead of newline, both ways
  bool binary = false;             // raw reads as binary messages, payloads written raw
  std::uint64_t chunk = 64 << 10;  // largest message made of one read (binary)
  std::uint64_t max_line = 0;      // longest text message made of its output, longer lines in pieces; 0 = none
  // wsl pipe --text-prefix, --binary-prefix, --base64 (not with binary): each message goes to its
  // stdin after its type's prefix (a binary one as base64), and a line of its stdout that starts
  // with a prefix is a message of that type (a binary one decoded from base64); a line after the
  // binary prefix that is not base64 is not sent (a warning names the first, the end counts them).
  line_types types;
  // After the peer leaves: time the process has before SIGTERM, and then before SIGKILL.
  clock::duration close_grace = std::chrono::seconds(1);
  // Its stdin is closed once this many messages were written to it (wsl pipe --once,
  // --max-messages); later ones are read and dropped. 0 = no limit.
  std::uint64_t message_limit = 0;
  // Before every diagnostic line and every line of its stderr ("[7] " for serve).
  std::string log_prefix;
  // Every message and our close frame on stderr, after the log prefix, as wsl pipe traces them
  // (frame_trace.hpp): a message once it is whole, one written to the process's stdin or one line
  // (a read with binary) of its stdout sent. Set at -vv.
  bool trace_frames = false;
  // Log "process N: <wait status>" at -vv when it ends (wsl pipe says it once itself).
  bool log_exit = true;
  // The close frame sent once the process has exited first, from its wait status.
  std::function<close_status(int wait_status)> close_for_exit;
};

class running_command {
 public:
  // Takes over the child's descriptors. A child spawned without a stderr pipe (stderr_fd -1)
  // writes to ours directly; otherwise its stderr lines go to ours after the log prefix.
  running_command(websocket& ws, child_process child, const running_command_options& o);
  running_command(const running_command&) = delete;
  running_command& operator=(const running_command&) = delete;

  // Until the process has been reaped and every pump has ended.
  asio::awaitable<void> run();
  // The peer left, or we shut down: the process's stdin ends, it has close_grace to exit.
  void stop();
  // An interrupt (SIGINT): as stop(), with SIGTERM at once.
  void interrupt();

  // Once run() has returned:
  int wait_status() const noexcept { return status_; }
  bool exited_first() const noexcept { return exited_first_; }       // before the peer left or stop()
  bool signalled() const noexcept { return signalled_; }             // we sent SIGTERM/SIGKILL while it ran
  std::uint64_t delivered() const noexcept { return delivered_; }    // messages written to its stdin
  std::uint64_t sent() const noexcept { return sent_; }              // messages made of its stdout
  std::error_code input_end() const noexcept { return input_end_; }  // how reading the peer ended

 private:
  asio::awaitable<void> pump_input();
  asio::awaitable<void> pump_output();
  asio::awaitable<void> pump_errors();
  asio::awaitable<void> watch_exit();
  void add_line(std::string_view line, std::string_view chunk);
  asio::awaitable<void> send_batch();
  asio::awaitable<void> wait_until(clock::time_point deadline);
  asio::awaitable<void> wait_for_pumps(clock::duration bound);
  asio::awaitable<void> end_after_exit();
  asio::awaitable<void> end_after_peer();
  void notify() noexcept;
  void close_input() noexcept;
  void signal_process(int signal_number) noexcept;

  websocket& ws_;
  const running_command_options& o_;
  child_process child_;
  asio::posix::stream_descriptor input_, output_, errors_, exit_;
  timer wake_;  // cancel() wakes run(), which re-checks the flags below

  int running_ = 0;  // coroutines still using this object
  bool exited_ = false;
  bool peer_gone_ = false;
  bool interrupted_ = false;
  bool output_done_ = false;
  bool sending_ = true;  // false once a send failed: the rest of stdout is read and dropped
  bool warned_utf8_ = false;
  std::uint64_t bad_lines_ = 0;  // not base64 after the binary prefix: not sent
  bool exited_first_ = false;
  bool signalled_ = false;
  int status_ = 0;
  std::uint64_t delivered_ = 0, sent_ = 0;
  std::uint64_t dropped_ = 0;  // messages for a process that no longer reads its stdin
  message_batch batch_;        // lines of one read of its stdout, sent together (or one binary read)
  std::error_code input_end_;
};

}  // namespace wsl::cli
