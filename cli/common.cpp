#include "common.hpp"

#include <asio/error.hpp>

#include <poll.h>
#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <stdexcept>
#include <thread>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <mutex>

namespace wsl::cli {
namespace {

struct diagnostics_state {
  std::string prefix = "wsl";
  std::atomic<int> verbosity{0};
  std::atomic<bool> quiet{false};
  std::mutex mutex;
};

diagnostics_state& state() {
  static diagnostics_state s;
  return s;
}

void emit(std::string_view text) {
  auto& s = state();
  const auto line = fmt::format("{}: {}\n", s.prefix, text);
  std::lock_guard lock(s.mutex);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  return out;
}

// Splits "1.5s" into 1.5 and "s".
bool split_number(std::string_view text, double& number, std::string& unit) {
  std::size_t i = 0;
  while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) ++i;
  if (i == 0) return false;
  const std::string digits(text.substr(0, i));
  char* end = nullptr;
  number = std::strtod(digits.c_str(), &end);
  if (end != digits.c_str() + digits.size() || !std::isfinite(number) || number < 0) return false;
  unit = lowercase(text.substr(i));
  while (!unit.empty() && unit.front() == ' ') unit.erase(0, 1);
  return true;
}

}  // namespace

int exit_status_for(std::error_code ec) noexcept {
  if (!ec) return exit_ok;
  if (ec == condition::handshake_failed || ec == condition::protocol_violation) return exit_protocol;
  if (ec == condition::timeout) return exit_timeout;
  if (ec == asio::error::connection_refused || ec == asio::error::host_not_found ||
      ec == asio::error::host_not_found_try_again || ec == asio::error::network_unreachable ||
      ec == asio::error::host_unreachable || ec == asio::error::address_in_use || ec == asio::error::access_denied ||
      ec == asio::error::address_family_not_supported ||
      ec == asio::error_code(ENOENT, asio::error::get_system_category()))
    return exit_unavailable;  // ENOENT: a Unix socket's file that is not there, as nobody listening
  return exit_failure;
}

std::uint64_t parse_size(std::string_view text) {
  double number = 0;
  std::string unit;
  if (!split_number(text, number, unit)) throw CLI::ValidationError(fmt::format("not a size: '{}'", text));
  double scale = 1;
  if (unit.empty() || unit == "b")
    scale = 1;
  else if (unit == "k" || unit == "kb" || unit == "kib")
    scale = 1024.0;
  else if (unit == "m" || unit == "mb" || unit == "mib")
    scale = 1024.0 * 1024;
  else if (unit == "g" || unit == "gb" || unit == "gib")
    scale = 1024.0 * 1024 * 1024;
  else if (unit == "t" || unit == "tb" || unit == "tib")
    scale = 1024.0 * 1024 * 1024 * 1024;
  else
    throw CLI::ValidationError(fmt::format("not a size: '{}' (use a number with an optional K, M, G suffix)", text));
  const double bytes = number * scale;
  if (bytes > 9.0e18 || bytes != std::floor(bytes))
    throw CLI::ValidationError(fmt::format("not a whole number of bytes: '{}'", text));
  return static_cast<std::uint64_t>(bytes);
}

double parse_count(std::string_view text) {
  std::size_t digits = 0;
  while (digits < text.size() && ((text[digits] >= '0' && text[digits] <= '9') || text[digits] == '.')) ++digits;
  double number = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + digits, number);
  if (digits == 0 || ec != std::errc() || end != text.data() + digits || !std::isfinite(number))
    throw std::invalid_argument(fmt::format("'{}' is not a count", text));
  const auto suffix = text.substr(digits);
  if (suffix.empty()) return number;
  if (suffix == "k" || suffix == "K") return number * 1e3;
  if (suffix == "M") return number * 1e6;
  if (suffix == "G") return number * 1e9;
  throw std::invalid_argument(fmt::format("'{}' is not a count (a number with an optional k, M or G suffix)", text));
}

clock::duration parse_duration(std::string_view text) {
  double number = 0;
  std::string unit;
  if (!split_number(text, number, unit)) throw CLI::ValidationError(fmt::format("not a duration: '{}'", text));
  double seconds = 0;
  if (unit.empty() || unit == "s")
    seconds = number;
  else if (unit == "ms")
    seconds = number / 1e3;
  else if (unit == "us")
    seconds = number / 1e6;
  else if (unit == "m" || unit == "min")
    seconds = number * 60;
  else if (unit == "h")
    seconds = number * 3600;
  else
    throw CLI::ValidationError(fmt::format("not a duration: '{}' (use e.g. 30s, 500ms, 2m)", text));
  if (seconds > 1e9) throw CLI::ValidationError(fmt::format("duration too long: '{}'", text));
  return std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(seconds));
}

std::string format_size(std::uint64_t bytes) {
  if (bytes != 0 && bytes % (1ull << 30) == 0) return fmt::format("{}G", bytes >> 30);
  if (bytes != 0 && bytes % (1ull << 20) == 0) return fmt::format("{}M", bytes >> 20);
  if (bytes != 0 && bytes % (1ull << 10) == 0) return fmt::format("{}K", bytes >> 10);
  return std::to_string(bytes);
}

std::optional<std::string> parse_host_port(std::string_view text, std::string& host, std::uint16_t& port,
                                           unsigned min_port) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return "expected HOST:PORT ([ADDRESS]:PORT for IPv6)";
  auto name = text.substr(0, colon);
  const auto digits = text.substr(colon + 1);
  if (name.front() == '[') {
    if (name.size() < 3 || name.back() != ']') return "expected [ADDRESS]:PORT for an IPv6 address";
    name = name.substr(1, name.size() - 2);
  } else if (name.find(':') != std::string_view::npos) {
    return "an IPv6 address goes in brackets: [ADDRESS]:PORT";
  }
  unsigned number = 0;
  const auto [end, err] = std::from_chars(digits.data(), digits.data() + digits.size(), number);
  if (digits.empty() || err != std::errc() || end != digits.data() + digits.size() || number < min_port ||
      number > 65535)
    return fmt::format("the port is a number from {} to 65535", min_port);
  host = std::string(name);
  port = static_cast<std::uint16_t>(number);
  return std::nullopt;
}

std::optional<std::string> parse_unix_mode(const std::string& text, const std::string& path, unsigned& mode) {
  if (path.starts_with('@')) return "--unix-mode: a socket in the abstract namespace (@NAME) has no file to set it on";
  unsigned value = 0;
  const auto* end = text.data() + text.size();
  const auto [ptr, err] = std::from_chars(text.data(), end, value, 8);
  if (err != std::errc() || ptr != end || value == 0 || value > 07777)
    return fmt::format("--unix-mode '{}': expected octal permissions such as 600 or 660", text);
  mode = value;
  return std::nullopt;
}

std::string format_utc(std::chrono::system_clock::time_point t) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M UTC", &tm);
  return text;
}

bool read_password_file(const std::string& path, std::string& password, std::string& problem) {
  constexpr std::size_t max_password = 1023;
  std::ifstream in(path, std::ios::binary);
  std::string line;
  if (!in || (!std::getline(in, line) && !in.eof())) {
    problem = fmt::format("cannot read the password file {}: {}", path, std::strerror(errno));
    return false;
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.empty()) {
    problem = fmt::format("the password file {} has an empty first line", path);
    return false;
  }
  if (line.size() > max_password) {
    problem = fmt::format("the password in {} is longer than {} bytes", path, max_password);
    return false;
  }
  password = std::move(line);
  return true;
}

std::string explain_key_problem(const std::string& problem, const std::string& password_file, std::string_view option) {
  if (password_file.empty() && problem.ends_with("no password was given"))
    return fmt::format("{} (give it with {})", problem, option);
  return problem;
}

std::string format_duration(clock::duration d) {
  if (d % std::chrono::milliseconds(1) != clock::duration::zero())
    return fmt::format("{}us", std::chrono::duration_cast<std::chrono::microseconds>(d).count());
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  if (ms % 1000 == 0) return fmt::format("{}s", ms / 1000);
  return fmt::format("{}ms", ms);
}

CLI::Option* add_size_option(CLI::App& app, const std::string& name, std::uint64_t& target, const std::string& help) {
  auto* opt = app.add_option_function<std::string>(
      name, [&target](const std::string& v) { target = parse_size(v); }, help);
  opt->type_name("SIZE")->default_str(format_size(target));
  return opt;
}

// parse_count() for an option's value: what is wrong is a usage error.
static double option_count(const std::string& text) {
  try {
    return parse_count(text);
  } catch (const std::invalid_argument& e) {
    throw CLI::ValidationError(e.what());
  }
}

CLI::Option* add_count_option(CLI::App& app, const std::string& name, double& target, const std::string& help) {
  auto* opt = app.add_option_function<std::string>(
      name, [&target](const std::string& v) { target = option_count(v); }, help);
  opt->type_name("RATE")->default_str(fmt::format("{}", target));
  return opt;
}

CLI::Option* add_count_option(CLI::App& app, const std::string& name, std::size_t& target, const std::string& help) {
  auto* opt = app.add_option_function<std::string>(
      name,
      [&target](const std::string& v) {
        const double count = option_count(v);
        if (count != std::floor(count) || count > 1e15)
          throw CLI::ValidationError(fmt::format("'{}' is not a whole number", v));
        target = static_cast<std::size_t>(count);
      },
      help);
  opt->type_name("N")->default_str(fmt::format("{}", target));
  return opt;
}

CLI::Option* add_duration_option(CLI::App& app, const std::string& name, clock::duration& target,
                                 const std::string& help) {
  auto* opt = app.add_option_function<std::string>(
      name, [&target](const std::string& v) { target = parse_duration(v); }, help);
  opt->type_name("DURATION")->default_str(format_duration(target));
  return opt;
}

void diagnostics::configure(std::string prefix, int verbosity, bool quiet) {
  auto& s = state();
  s.prefix = std::move(prefix);
  s.verbosity = verbosity;
  s.quiet = quiet;
}

int diagnostics::verbosity() noexcept { return state().verbosity; }
bool diagnostics::quiet() noexcept { return state().quiet; }

void diagnostics::error(std::string_view text) {
  if (!state().quiet) emit(text);
}
void diagnostics::warning(std::string_view text) {
  if (!state().quiet) emit(text);
}
void diagnostics::info(std::string_view text) {
  if (!state().quiet && state().verbosity >= 1) emit(text);
}
void diagnostics::debug(std::string_view text) {
  if (!state().quiet && state().verbosity >= 2) emit(text);
}
void diagnostics::fatal(std::string_view text) { emit(text); }

log_function diagnostics::library_log() {
  return [](log_level level, std::string_view text) {
    switch (level) {
      case log_level::error: return error(text);
      case log_level::warning: return warning(text);
      case log_level::info: return info(text);
      case log_level::debug: return debug(text);
    }
  };
}

std::string format_endpoint(const asio::ip::tcp::endpoint& ep) {
  if (ep.address().is_v6()) return fmt::format("[{}]:{}", ep.address().to_string(), ep.port());
  return fmt::format("{}:{}", ep.address().to_string(), ep.port());
}

std::string format_peer(const asio::ip::tcp::endpoint& ep, const std::optional<peer_credentials>& unix_peer,
                        const asio::ip::address& client_address) {
  // Over a Unix socket, who connected, unless a PROXY header named a client (HAProxy in front).
  if (unix_peer && client_address.is_unspecified())
    return fmt::format("unix:pid={},uid={}", unix_peer->pid, unix_peer->uid);
  if (!client_address.is_unspecified() && client_address != ep.address())
    return client_address.is_v6() ? fmt::format("[{}]", client_address.to_string()) : client_address.to_string();
  return format_endpoint(ep);
}

std::string format_peer(const http_request& req) {
  return format_peer(req.remote_endpoint, req.unix_peer, req.client_address);
}

std::string format_peer(const websocket& ws) {
  return format_peer(ws.remote_endpoint(), ws.unix_peer(), ws.request().client_address);
}

void add_deflate_options(CLI::App& app, deflate_cli& d) {
  auto& o = d.options;
  const std::string group = "Compression (permessage-deflate, RFC 7692)";
  app.add_flag("--deflate", d.enabled, "Negotiate permessage-deflate (a server accepts offers, a client offers it)")
      ->group(group);
  app.add_option("--deflate-level", o.level, "zlib level, 1 fast to 9 small")
      ->capture_default_str()
      ->check(CLI::Range(1, 9))
      ->group(group);
  app.add_option("--deflate-mem-level", o.mem_level, "zlib memLevel, 1 to 9 (memory for the compressor)")
      ->capture_default_str()
      ->check(CLI::Range(1, 9))
      ->group(group);
  add_size_option(app, "--deflate-threshold", o.threshold, "Send messages shorter than this uncompressed")
      ->group(group);
  app.add_flag("--deflate-no-context-takeover", o.no_context_takeover,
               "Reset our compressor after each message (server_ or client_no_context_takeover)")
      ->group(group);
  app.add_flag("--deflate-peer-no-context-takeover", o.peer_no_context_takeover,
               "Ask the peer to reset its compressor after each message")
      ->group(group);
  app.add_option("--deflate-window-bits", o.max_window_bits, "LZ77 window we compress with, 8 to 15")
      ->capture_default_str()
      ->check(CLI::Range(8, 15))
      ->group(group);
  app.add_option("--deflate-peer-window-bits", o.peer_max_window_bits,
                 "Largest window the peer may compress with, 8 to 15")
      ->capture_default_str()
      ->check(CLI::Range(8, 15))
      ->group(group);
}

std::error_code apply_deflate(const deflate_cli& d, connection_options& c, std::string& problem) {
  const bool tuned = d.options.level != deflate_options{}.level || d.options.no_context_takeover ||
                     d.options.peer_no_context_takeover || d.options.max_window_bits != 15 ||
                     d.options.peer_max_window_bits != 15 || d.options.mem_level != deflate_options{}.mem_level ||
                     d.options.threshold != deflate_options{}.threshold;
  if (!d.enabled) {
    if (tuned) {
      problem = "--deflate-* options need --deflate";
      return error::invalid_option;
    }
    return {};
  }
  if (!d.options.valid()) {
    problem = "invalid --deflate-* option";
    return error::invalid_option;
  }
  c.extensions.push_back(std::make_shared<deflate_factory>(d.options));
  return {};
}

namespace {

struct signal_targets {
  std::mutex mutex;
  std::function<void(int)> handler;
  std::function<void()> abort;
  std::function<void()> reload;
};

// Never destroyed: the signal thread may still use it while the process exits.
signal_targets& targets() {
  static auto* t = new signal_targets;
  return *t;
}

}  // namespace

int exit_status_for_signal(int signal) noexcept {
  return signal == SIGTERM || signal == SIGHUP ? 128 + signal : exit_interrupted;
}

std::vector<std::thread> run_threads(const std::vector<asio::io_context*>& contexts) {
  std::vector<std::thread> threads;
  threads.reserve(contexts.size());
  try {
    for (auto* ctx : contexts) threads.emplace_back([ctx] { ctx->run(); });
  } catch (const std::exception& e) {
    for (auto* ctx : contexts) ctx->stop();
    for (auto& t : threads) t.join();
    throw std::runtime_error(fmt::format("cannot start {} threads: {}", contexts.size(), e.what()));
  }
  return threads;
}

void start_signal_thread(bool take_hangup) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  if (take_hangup) sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  std::thread thread;
  try {
    thread = std::thread([set] {
      for (int count = 0;;) {
        int received = 0;
        if (sigwait(&set, &received) != 0) continue;
        std::function<void(int)> handler;
        std::function<void()> abort, reload;
        {
          std::lock_guard lock(targets().mutex);
          handler = targets().handler;
          abort = targets().abort;
          reload = targets().reload;
        }
        if (received == SIGHUP && reload) {
          reload();
          continue;
        }
        if (count++ > 0 || !handler) {
          if (abort) abort();
          _exit(exit_status_for_signal(received));
        }
        handler(received);
      }
    });
  } catch (const std::system_error& e) {
    throw std::runtime_error(fmt::format("cannot start the thread that handles signals: {}", e.what()));
  }
  thread.detach();
}

void set_signal_handler(std::function<void(int)> handler) {
  std::lock_guard lock(targets().mutex);
  targets().handler = std::move(handler);
}

void set_reload_hook(std::function<void()> hook) {
  std::lock_guard lock(targets().mutex);
  targets().reload = std::move(hook);
}

void set_abort_hook(std::function<void()> hook) {
  std::lock_guard lock(targets().mutex);
  targets().abort = std::move(hook);
}

void raise_descriptor_limit() noexcept {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

void add_verbosity_options(CLI::App& app, int& verbosity, bool& quiet) {
  app.add_flag("-v,--verbose", verbosity, "More diagnostics on stderr (repeat for more)");
  app.add_flag("-q,--quiet", quiet, "No diagnostics on stderr");
}

int write_fully(int fd, iovec* parts, int count) noexcept {
  while (count > 0 && parts->iov_len == 0) ++parts, --count;
  while (count > 0) {
    const auto n = ::writev(fd, parts, count);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        pollfd p{fd, POLLOUT, 0};
        ::poll(&p, 1, -1);
        continue;
      }
      return errno;
    }
    auto left = static_cast<std::size_t>(n);
    while (count > 0 && left >= parts->iov_len) left -= parts->iov_len, ++parts, --count;
    if (count > 0) {
      parts->iov_base = static_cast<char*>(parts->iov_base) + left;
      parts->iov_len -= left;
    }
  }
  return 0;
}

}  // namespace wsl::cli
