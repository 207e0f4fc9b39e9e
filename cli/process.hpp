// Child processes for `wsl serve -- COMMAND` and `wsl pipe URL -- COMMAND`: spawned in a process
// group of their own, with pipes for stdin, stdout and (for serve) stderr, an environment built
// from scratch, and a pidfd to learn of their exit without SIGCHLD. Every system call of the
// subsystem goes through this file.
#pragma once

#include <sys/types.h>

#include <string>
#include <system_error>
#include <vector>

namespace wsl::cli {

struct child_process {
  pid_t pid = -1;      // also the process group id
  int stdin_fd = -1;   // ours: the write end of the child's stdin, non-blocking
  int stdout_fd = -1;  // ours: the read end of its stdout, non-blocking
  int stderr_fd = -1;  // ours: the read end of its stderr, non-blocking
  int pidfd = -1;      // readable once the child has exited (it stays a zombie until reap())
};

// What the child's stderr is: a pipe of ours (serve prefixes its lines), or our own stderr (pipe).
enum class child_stderr { pipe, inherit };

// Starts `program` (a path, not looked up in PATH) with `argv` and exactly `env` ("NAME=value").
// The child gets the pipes as fds 0-2 (with child_stderr::inherit, our stderr as fd 2; stderr_fd
// stays -1) and no other descriptor, default signal dispositions and an empty signal mask, and
// leads a new process group. On failure nothing is left behind.
std::error_code spawn_child(const std::string& program, const std::vector<std::string>& argv,
                            const std::vector<std::string>& env, child_process& out,
                            child_stderr stderr_mode = child_stderr::pipe);

// Sends a signal to the child's whole process group. Only call it before reap(): until then the
// group id cannot have been reused.
void signal_group(const child_process& child, int signal_number) noexcept;

// Waits for the exited child (its pidfd is readable, so this does not block), closes its pidfd
// and returns its wait status.
int reap(child_process& child) noexcept;

// "exit 3", "signal 9 (SIGKILL)"; for logs and close reasons.
std::string describe_wait_status(int status);

// Closes whichever of our ends are still open.
void close_pipes(child_process& child) noexcept;

// The process groups of every live child, so that a hurried exit (a second SIGINT) can take them
// along: kill_all_children() sends them SIGKILL.
void kill_all_children() noexcept;

// PATH lookup as a shell does it; empty when nothing executable is found.
std::string find_program(const std::string& name);

// True for a regular file we may execute.
bool is_executable_file(const std::string& path);

}  // namespace wsl::cli
