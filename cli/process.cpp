#include "process.hpp"

#include <fmt/format.h>

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <utility>

namespace wsl::cli {
namespace {

std::error_code last_error() { return {errno, std::system_category()}; }

void close_fd(int& fd) noexcept {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

struct registry {
  std::mutex mutex;
  std::set<pid_t> groups;
};

// Never destroyed: the signal thread may use it while the process exits.
registry& children() {
  static auto* r = new registry;
  return *r;
}

// Owns the descriptors of a spawn in progress.
struct pipe_pair {
  int fd[2] = {-1, -1};
  ~pipe_pair() {
    close_fd(fd[0]);
    close_fd(fd[1]);
  }
};

}  // namespace

std::error_code spawn_child(const std::string& program, const std::vector<std::string>& argv,
                            const std::vector<std::string>& env, child_process& out, child_stderr stderr_mode) {
  out = {};
  const bool stderr_piped = stderr_mode == child_stderr::pipe;
  // All of ours are close-on-exec from the start: another thread may spawn meanwhile.
  pipe_pair in, stdout_pipe, stderr_pipe;
  if (::pipe2(in.fd, O_CLOEXEC) != 0 || ::pipe2(stdout_pipe.fd, O_CLOEXEC) != 0 ||
      (stderr_piped && ::pipe2(stderr_pipe.fd, O_CLOEXEC) != 0))
    return last_error();

  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attributes;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attributes);
  struct cleanup {
    posix_spawn_file_actions_t* a;
    posix_spawnattr_t* b;
    ~cleanup() {
      posix_spawn_file_actions_destroy(a);
      posix_spawnattr_destroy(b);
    }
  } cleanup_guard{&actions, &attributes};
  posix_spawn_file_actions_adddup2(&actions, in.fd[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, stdout_pipe.fd[1], STDOUT_FILENO);
  if (stderr_piped) posix_spawn_file_actions_adddup2(&actions, stderr_pipe.fd[1], STDERR_FILENO);
  // Accepted sockets are not close-on-exec (Asio does not ask for it): close everything else.
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);

  // We ignore SIGPIPE and block SIGINT and SIGTERM in every thread; the child must not inherit that.
  sigset_t empty, all;
  sigemptyset(&empty);
  sigfillset(&all);
  sigdelset(&all, SIGKILL);
  sigdelset(&all, SIGSTOP);
  posix_spawnattr_setsigmask(&attributes, &empty);
  posix_spawnattr_setsigdefault(&attributes, &all);
  posix_spawnattr_setpgroup(&attributes, 0);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::vector<char*> args, envp;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  pid_t pid = -1;
  // The registry lock spans the spawn so that kill_all_children() never misses a new group.
  std::unique_lock lock(children().mutex);
  if (const int e = ::posix_spawn(&pid, program.c_str(), &actions, &attributes, args.data(), envp.data()); e != 0)
    return {e, std::system_category()};
  children().groups.insert(pid);
  lock.unlock();

  out.pid = pid;
  // glibc 2.36's <sys/pidfd.h> lacks extern "C": the system call itself.
  out.pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (out.pidfd < 0) {  // cannot happen on Linux 5.3+ for our own unreaped child
    const auto ec = last_error();
    ::kill(-pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    std::lock_guard relock(children().mutex);
    children().groups.erase(pid);
    out = {};
    return ec;
  }
  out.stdin_fd = std::exchange(in.fd[1], -1);
  out.stdout_fd = std::exchange(stdout_pipe.fd[0], -1);
  out.stderr_fd = std::exchange(stderr_pipe.fd[0], -1);
  for (int fd : {out.stdin_fd, out.stdout_fd, out.stderr_fd})
    if (fd >= 0) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  return {};
}

void signal_group(const child_process& child, int signal_number) noexcept {
  if (child.pid > 0) ::kill(-child.pid, signal_number);
}

int reap(child_process& child) noexcept {
  int status = 0;
  if (child.pid > 0) {
    while (::waitpid(child.pid, &status, 0) < 0 && errno == EINTR) {
    }
    std::lock_guard lock(children().mutex);
    children().groups.erase(child.pid);
  }
  child.pid = -1;
  close_fd(child.pidfd);
  return status;
}

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return fmt::format("exit {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const char* name = sigabbrev_np(WTERMSIG(status));
    return name ? fmt::format("signal {} (SIG{})", WTERMSIG(status), name) : fmt::format("signal {}", WTERMSIG(status));
  }
  return fmt::format("status {}", status);
}

void close_pipes(child_process& child) noexcept {
  close_fd(child.stdin_fd);
  close_fd(child.stdout_fd);
  close_fd(child.stderr_fd);
}

void kill_all_children() noexcept {
  std::lock_guard lock(children().mutex);
  for (pid_t group : children().groups) ::kill(-group, SIGKILL);
}

bool is_executable_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

std::string find_program(const std::string& name) {
  if (name.empty()) return {};
  if (name.find('/') != std::string::npos) {
    if (!is_executable_file(name)) return {};
    char resolved[PATH_MAX];
    return ::realpath(name.c_str(), resolved) ? std::string(resolved) : name;
  }
  const char* path = std::getenv("PATH");
  std::string_view rest = path ? path : "/usr/local/bin:/usr/bin:/bin";
  for (;;) {
    const auto colon = rest.find(':');
    // An empty entry is the current directory. (Built with append(): GCC 12 warns falsely
    // (-Wrestrict) about assigning a literal to the string.)
    const auto dir = rest.substr(0, colon);
    std::string candidate(dir.empty() ? std::string_view(".") : dir);
    candidate.append("/").append(name);
    if (is_executable_file(candidate)) return candidate;
    if (colon == std::string_view::npos) return {};
    rest.remove_prefix(colon + 1);
  }
}

}  // namespace wsl::cli
