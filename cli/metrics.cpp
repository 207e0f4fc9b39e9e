#include "metrics.hpp"

#include <fmt/format.h>

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>
#include <algorithm>
#include <cmath>
#include <cstdio>

namespace wsl::cli {
namespace {

std::size_t close_bucket(unsigned code) noexcept {
  if (code >= 1000 && code <= 1015) return code - 1000;
  if (code >= 3000 && code <= 3999) return 16;
  if (code >= 4000 && code <= 4999) return 17;
  return 18;
}

std::string close_label(std::size_t bucket) {
  if (bucket < 16) return std::to_string(1000 + bucket);
  return bucket == 16 ? "3xxx" : bucket == 17 ? "4xxx" : "other";
}

void family(std::string& out, const char* name, const char* type, const char* help) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

template <typename... T>
void line(std::string& out, fmt::format_string<T...> format, T&&... args) {
  fmt::format_to(std::back_inserter(out), format, std::forward<T>(args)...);
  out.push_back('\n');
}

// A sample's value as Prometheus reads it: integers exact, fractions with enough digits.
std::string number(double v) { return fmt::format("{}", v); }

int open_descriptors() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int n = 0;
  while (const dirent* e = ::readdir(dir))
    if (e->d_name[0] != '.') ++n;
  ::closedir(dir);
  return n - 1;  // the directory's own descriptor
}

// /proc/self/statm: sizes in pages, the whole program's then the resident set.
bool memory_pages(unsigned long& virtual_pages, unsigned long& resident_pages) {
  std::FILE* f = std::fopen("/proc/self/statm", "re");
  if (f == nullptr) return false;
  const bool ok = std::fscanf(f, "%lu %lu", &virtual_pages, &resident_pages) == 2;
  std::fclose(f);
  return ok;
}

}  // namespace

server_metrics::server_metrics(unsigned threads) {
  for (unsigned i = 0; i < threads; ++i) threads_.push_back(std::make_unique<thread_figures>());
}

void server_metrics::request(int status, std::chrono::nanoseconds took) noexcept {
  const auto i = status >= 100 && status < 600 ? static_cast<std::size_t>(status) : 0;
  statuses_[i].fetch_add(1, std::memory_order_relaxed);
  if (status != 101) return;
  const double seconds = std::chrono::duration<double>(took).count();
  std::size_t b = 0;
  while (b < handshake_bounds.size() && seconds > handshake_bounds[b]) ++b;
  handshakes_[b].fetch_add(1, std::memory_order_relaxed);
  handshake_nanoseconds_.fetch_add(static_cast<std::uint64_t>(std::max<std::int64_t>(0, took.count())),
                                   std::memory_order_relaxed);
}

void server_metrics::connection_closed(unsigned code) noexcept {
  closes_[close_bucket(code)].fetch_add(1, std::memory_order_relaxed);
  closed_.fetch_add(1, std::memory_order_relaxed);
}

std::string server_metrics::render() const {
  std::string out;
  family(out, "wsl_build_info", "gauge", "The version of wsl serving.");
  line(out, "wsl_build_info{{version=\"{}\"}} 1", WSL_VERSION);

  family(out, "wsl_http_requests_total", "counter",
         "HTTP requests negotiated, upgrades included, by the status answered (none: the connection ended, or "
         "was closed unanswered, first).");
  for (std::size_t i = 0; i < statuses_.size(); ++i)
    if (const auto n = statuses_[i].load(std::memory_order_relaxed); n != 0 || i == 101)
      line(out, "wsl_http_requests_total{{status=\"{}\"}} {}", i == 0 ? std::string("none") : std::to_string(i), n);

  family(out, "wsl_handshake_duration_seconds", "histogram",
         "Time from the TCP accept (on a connection kept alive, the request's first bytes) to the 101 sent (TLS and "
         "HTTP), of the upgrades.");
  std::uint64_t cumulative = 0;
  for (std::size_t b = 0; b < handshakes_.size(); ++b) {
    cumulative += handshakes_[b].load(std::memory_order_relaxed);
    line(out, "wsl_handshake_duration_seconds_bucket{{le=\"{}\"}} {}",
         b < handshake_bounds.size() ? number(handshake_bounds[b]) : std::string("+Inf"), cumulative);
  }
  line(out, "wsl_handshake_duration_seconds_sum {}",
       number(static_cast<double>(handshake_nanoseconds_.load(std::memory_order_relaxed)) / 1e9));
  line(out, "wsl_handshake_duration_seconds_count {}", cumulative);

  const auto opened = opened_.load(std::memory_order_relaxed);
  const auto closed = closed_.load(std::memory_order_relaxed);
  family(out, "wsl_connections_total", "counter", "WebSocket connections served since the start.");
  line(out, "wsl_connections_total {}", opened);
  family(out, "wsl_connections_open", "gauge", "WebSocket connections being served.");
  line(out, "wsl_connections_open {}", opened >= closed ? opened - closed : 0);
  family(out, "wsl_connections_closed_total", "counter",
         "WebSocket connections ended, by close code: ours if we closed first, else the peer's; 1006 when no "
         "close frame went either way; 3xxx and 4xxx: the registered and private ranges.");
  for (std::size_t i = 0; i < closes_.size(); ++i)
    if (const auto n = closes_[i].load(std::memory_order_relaxed); n != 0 || i == 0)
      line(out, "wsl_connections_closed_total{{code=\"{}\"}} {}", close_label(i), n);

  std::uint64_t received = 0, sent = 0;
  std::vector<double> round_trips;
  for (const auto& t : threads_) {
    received += t->bytes_received.load(std::memory_order_relaxed);
    sent += t->bytes_sent.load(std::memory_order_relaxed);
    std::lock_guard lock(t->mutex);
    round_trips.insert(round_trips.end(), t->round_trips.begin(), t->round_trips.end());
  }
  family(out, "wsl_received_bytes_total", "counter",
         "WebSocket bytes received after the handshakes, frame headers included (each thread's figure of its last "
         "second).");
  line(out, "wsl_received_bytes_total {}", received);
  family(out, "wsl_sent_bytes_total", "counter",
         "WebSocket bytes sent after the handshakes, frame headers included (each thread's figure of its last "
         "second).");
  line(out, "wsl_sent_bytes_total {}", sent);

  family(out, "wsl_connections_measured", "gauge",
         "Open connections whose round-trip time a pong has measured (each thread's figure of its last second).");
  line(out, "wsl_connections_measured {}", round_trips.size());
  family(out, "wsl_connection_rtt_seconds", "gauge",
         "Smoothed ping round-trip times of the open connections measured: quantiles across connections.");
  if (!round_trips.empty()) {
    std::sort(round_trips.begin(), round_trips.end());
    for (const double q : {0.0, 0.5, 0.9, 0.99, 1.0}) {
      const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(round_trips.size())));
      line(out, "wsl_connection_rtt_seconds{{quantile=\"{}\"}} {}", q, number(round_trips[rank == 0 ? 0 : rank - 1]));
    }
  }

  rusage usage{};
  if (::getrusage(RUSAGE_SELF, &usage) == 0) {
    const auto seconds = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + tv.tv_usec / 1e6; };
    family(out, "process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds.");
    line(out, "process_cpu_seconds_total {}", number(seconds(usage.ru_utime) + seconds(usage.ru_stime)));
  }
  unsigned long virtual_pages = 0, resident_pages = 0;
  if (memory_pages(virtual_pages, resident_pages)) {
    const auto page = static_cast<unsigned long>(::sysconf(_SC_PAGESIZE));
    family(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    line(out, "process_resident_memory_bytes {}", resident_pages * page);
    family(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
    line(out, "process_virtual_memory_bytes {}", virtual_pages * page);
  }
  if (const int fds = open_descriptors(); fds >= 0) {
    family(out, "process_open_fds", "gauge", "Number of open file descriptors.");
    line(out, "process_open_fds {}", fds);
  }
  if (rlimit limit{}; ::getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    family(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
    line(out, "process_max_fds {}", limit.rlim_cur);
  }
  family(out, "process_start_time_seconds", "gauge", "Start time of the server since the Unix epoch, in seconds.");
  line(out, "process_start_time_seconds {}",
       number(std::chrono::duration<double>(started_.time_since_epoch()).count()));
  return out;
}

}  // namespace wsl::cli
