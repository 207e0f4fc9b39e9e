// Extension points.
//
// A message_extension transforms the payload of whole messages (RFC 6455 section 9); it is
// negotiated per connection through Sec-WebSocket-Extensions by a message_extension_factory set
// in the options. permessage-deflate (deflate.hpp) is written against these interfaces only.
//
//   opts.connection... ;  opts.extensions = {std::make_shared<wsl::deflate_factory>()};
//
// A connection_extension wraps the byte stream before HTTP (TLS, tls.hpp, is one).
#pragma once

#include "wsl/transport.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace wsl {

enum class message_type : std::uint8_t;
enum class role;
class http_headers;

// One element of a Sec-WebSocket-Extensions list: a name and its parameters.
struct extension_offer {
  std::string name;
  std::vector<std::pair<std::string, std::optional<std::string>>> params;

  const std::pair<std::string, std::optional<std::string>>* find(std::string_view param) const noexcept;
  std::string to_string() const;  // "name; a; b=1"
};

// Parses every Sec-WebSocket-Extensions header (RFC 6455 section 9.1 grammar, quoted values
// allowed). An element that does not parse is left out and reported in `malformed`, so that an
// offer the server cannot read is declined rather than fatal.
std::vector<extension_offer> parse_extensions(const http_headers& headers, std::size_t* malformed = nullptr);

// Transforms one message's payload in one direction, incrementally: deflating on the way out,
// inflating on the way in.
class payload_transform {
 public:
  virtual ~payload_transform() = default;
  struct result {
    std::size_t consumed = 0;  // bytes of input used
    std::size_t produced = 0;  // bytes of output written
    bool done = false;         // with last == true: the message's output is complete
  };
  // Consumes input and writes output, never more than out_size. `last` says the input ends the
  // message; call again (with the input left, or none) until done. Errors fail the connection with
  // the close code close_code_for(ec) prescribes (wsl::error::bad_compressed_data: 1007).
  virtual result process(const std::uint8_t* in, std::size_t in_size, std::uint8_t* out, std::size_t out_size,
                         bool last, std::error_code& ec) = 0;
};

// A negotiated extension on one connection.
class message_extension {
 public:
  virtual ~message_extension() = default;
  // The RSV bits this extension may set on the first frame of a message (RSV1 = 0x40).
  virtual std::uint8_t rsv_bits() const noexcept = 0;
  // A message arrived whose first frame carries `rsv` (a subset of rsv_bits(), maybe 0): the
  // transform for its payload, or nullptr when it is to be read as it is.
  virtual payload_transform* begin_decode(std::uint8_t rsv) = 0;
  // A message is about to be sent; `size` is its whole length when known. Returns the transform
  // (and sets rsv for its first frame), or nullptr to send it as it is.
  virtual payload_transform* begin_encode(message_type type, std::optional<std::uint64_t> size, std::uint8_t& rsv) = 0;
  // The parameters as negotiated, for logs: "permessage-deflate; server_no_context_takeover".
  virtual std::string description() const = 0;
};

// Configured in the options; negotiates its extension on each connection.
class message_extension_factory {
 public:
  virtual ~message_extension_factory() = default;
  virtual std::string_view name() const noexcept = 0;
  // Server: the client's offers of this extension, in its order of preference. Returns the
  // extension for the first acceptable one and sets `response` to the element to answer with;
  // nullptr declines them all.
  virtual std::unique_ptr<message_extension> accept(const std::vector<extension_offer>& offers,
                                                    extension_offer& response) const = 0;
  // Client: what to offer (one or more elements, most preferred first).
  virtual std::vector<extension_offer> offer() const = 0;
  // Client: the server chose `response`; nullptr with ec set when it is not something we offered.
  virtual std::unique_ptr<message_extension> on_response(const extension_offer& response,
                                                         std::error_code& ec) const = 0;
};

// Wraps the stream of a connection before HTTP. wrap() builds the new stream at once (so that
// timeouts can close it); its start() then runs the wrapper's own handshake.
class connection_extension {
 public:
  virtual ~connection_extension() = default;
  // `host` is the name the client connects to (for SNI and certificate checks); empty on servers.
  virtual std::unique_ptr<transport> wrap(std::unique_ptr<transport> stream, role r, std::string_view host,
                                          std::error_code& ec) const = 0;
  // "wss" for TLS: the scheme a listener on this extension serves.
  virtual std::string_view scheme() const noexcept = 0;
};

}  // namespace wsl
