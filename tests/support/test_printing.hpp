// How Boost.Test prints wsl's enums when an assertion about them fails.
#pragma once

#include "wsl/error.hpp"
#include "wsl/websocket.hpp"

#include <ostream>

namespace wsl {

inline std::ostream& boost_test_print_type(std::ostream& os, error e) {
  return os << "wsl::error(" << static_cast<int>(e) << ", \"" << make_error_code(e).message() << "\")";
}

inline std::ostream& boost_test_print_type(std::ostream& os, condition c) {
  return os << "wsl::condition(" << static_cast<int>(c) << ", \"" << make_error_condition(c).message() << "\")";
}

inline std::ostream& boost_test_print_type(std::ostream& os, message_type t) {
  return os << (t == message_type::text ? "text" : "binary");
}

inline std::ostream& boost_test_print_type(std::ostream& os, role r) {
  return os << (r == role::server ? "server" : "client");
}

}  // namespace wsl
