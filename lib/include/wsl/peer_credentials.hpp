// Who is at the other end of a Unix-domain socket.
#pragma once

#include <sys/types.h>

namespace wsl {

// The credentials of the process that connected a Unix-domain socket, as of its connect()
// (SO_PEERCRED). uid and gid are -1 when the kernel would not tell.
struct peer_credentials {
  pid_t pid = 0;
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
};

}  // namespace wsl
