// --metrics PATH: a server's counters in Prometheus' text format (version 0.0.4), answered to
// plain GET and HEAD requests on PATH, for a Prometheus server or `curl` to read.
//
// Nothing is counted per message: the per-connection figures (bytes, round-trip times) are the
// ones the library keeps anyway, gathered by each thread once a second from its own connections
// (never read across threads); requests and connections are counted as they begin and end.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace wsl::cli {

class server_metrics {
 public:
  // What one server thread gathered from its connections at its last publication.
  struct thread_figures {
    std::atomic<std::uint64_t> bytes_received{0};  // connections ended and open alike: never decreases
    std::atomic<std::uint64_t> bytes_sent{0};
    std::mutex mutex;
    std::vector<double> round_trips;  // seconds, the smoothed RTT of each open connection measured
  };

  explicit server_metrics(unsigned threads);

  thread_figures& thread(unsigned i) { return *threads_[i]; }

  // Every HTTP request negotiated (upgraded or not) with the status sent (0 when none was), and
  // the time from its TCP accept to the answer.
  void request(int status, std::chrono::nanoseconds took) noexcept;
  void connection_opened() noexcept { opened_.fetch_add(1, std::memory_order_relaxed); }
  // `code`: the close code the connection ended with (ours if we closed first), 1006 for none.
  void connection_closed(unsigned code) noexcept;

  // The exposition: counters, gauges and the process's own figures (CPU, memory, descriptors).
  std::string render() const;

 private:
  static constexpr std::size_t close_buckets = 19;  // 1000-1015 one by one, 3xxx, 4xxx, other
  std::vector<std::unique_ptr<thread_figures>> threads_;
  std::array<std::atomic<std::uint64_t>, 600> statuses_{};  // [0]: no answer; else 100-599
  std::array<std::atomic<std::uint64_t>, close_buckets> closes_{};
  // The upgrades' handshake times: a histogram (counts per upper bound, not cumulative here).
  static constexpr std::array<double, 13> handshake_bounds{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                           0.1,    0.25,  0.5,    1,     2.5,  5};
  std::array<std::atomic<std::uint64_t>, handshake_bounds.size() + 1> handshakes_{};
  std::atomic<std::uint64_t> handshake_nanoseconds_{0};
  std::atomic<std::uint64_t> opened_{0};
  std::atomic<std::uint64_t> closed_{0};
  std::chrono::system_clock::time_point started_ = std::chrono::system_clock::now();
};

}  // namespace wsl::cli
