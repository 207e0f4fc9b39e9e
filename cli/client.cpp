#include "client.hpp"

#include <asio/error.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

namespace wsl::cli {
namespace {

// --local-address: addresses, and networks standing for their host addresses (127.0.0.0/29: .1 to
// .6; every one in a /31, /32 or IPv6 network), in the order given; 65536 at most.
std::optional<std::string> local_address_pool(const std::vector<std::string>& given,
                                              std::vector<asio::ip::address>& out) {
  constexpr std::uint64_t most = 65536;
  for (const auto& text : given) {
    const auto range = address_range::parse(text);
    if (!range) return fmt::format("--local-address {}: not an address or a network (127.0.0.0/24)", text);
    const unsigned bits = (range->address.is_v4() ? 32 : 128) - range->prefix;
    if (bits > 16 || out.size() + (std::uint64_t{1} << bits) > most + 2)
      return fmt::format("--local-address {}: more than {} addresses in all", text, most);
    const std::uint64_t count = std::uint64_t{1} << bits;
    const bool hosts_only = range->address.is_v4() && bits >= 2;  // not the network's and broadcast address
    for (std::uint64_t i = hosts_only ? 1 : 0; i < (hosts_only ? count - 1 : count); ++i) {
      if (range->address.is_v4()) {
        out.emplace_back(asio::ip::address_v4(range->address.to_v4().to_uint() + static_cast<std::uint32_t>(i)));
      } else {
        auto bytes = range->address.to_v6().to_bytes();
        bytes[15] = static_cast<unsigned char>(bytes[15] + (i & 0xff));  // the prefix leaves these bits clear
        bytes[14] = static_cast<unsigned char>(bytes[14] + (i >> 8));
        out.emplace_back(asio::ip::address_v6(bytes));
      }
    }
    if (out.size() > most) return fmt::format("--local-address {}: more than {} addresses in all", text, most);
  }
  return std::nullopt;
}

}  // namespace

void add_client_options(CLI::App& app, client_cli_options& o) {
  auto& c = o.client;
  app.add_option("URL", o.url,
                 "ws:// or wss:// URL to connect to; user:password@ in it is sent as Basic auth; "
                 "ws+unix:SOCKET[:/PATH] connects to a Unix-domain socket")
      ->required();
  // One value per occurrence: `-H 'X: a' URL` must not take the URL for a second header.
  app.add_option("-H,--header", o.headers,
                 "Extra request header 'Name: value' (repeatable); @FILE: the headers in FILE, one per line (keeps "
                 "a token out of ps and the shell's history)");
  app.add_option("--origin", o.origin, "Origin header to send");
  app.add_option("--subprotocol", o.subprotocols, "Subprotocol to offer (repeatable, in order of preference)");
  app.add_option("--proxy", c.proxy,
                 "Tunnel through this proxy: http://[user:password@]host:port (HTTP CONNECT), socks5://... or "
                 "socks5h://... (SOCKS5; h: the proxy resolves names) (http_proxy and https_proxy are never read)")
      ->type_name("URL");
  app.add_option("--unix-socket", c.unix_socket,
                 "Connect to this Unix-domain socket (a path, or @NAME in the abstract namespace) instead of the "
                 "URL's host and port, which still go in Host")
      ->type_name("PATH")
      ->excludes("--proxy");
  app.add_option("--resolve", o.resolve,
                 "Connect to ADDRESS for HOST and PORT instead of resolving HOST (curl's --resolve; HOST '*': any "
                 "name); Host and the TLS name stay the URL's (repeatable)")
      ->type_name("HOST:PORT:ADDRESS[,ADDRESS...]");
  app.add_option("--local-address", o.local_addresses,
                 o.several_local_addresses
                     ? "Connect from this address (curl's --interface), or from those of a network (127.0.0.0/24: "
                       ".1 to .254), connections taking them in turn (repeatable; k6's --local-ips): beyond one "
                       "address's ephemeral ports, or many clients for per-address limits"
                     : "Connect from this address (curl's --interface)")
      ->type_name(o.several_local_addresses ? "ADDRESS|CIDR" : "ADDRESS");
  auto* location = app.add_flag("-L,--location", o.follow_redirects,
                                "Follow redirects (301, 302, 303, 307, 308): Authorization and Cookie are not sent "
                                "to another origin, and wss:// never goes to ws://");
  app.add_option("--max-redirects", o.max_redirects, "Redirects followed at most (-L)")
      ->capture_default_str()
      ->needs(location)
      ->check(CLI::Range(1u, 100u));
  add_duration_option(app, "--connect-timeout", c.connect_timeout,
                      "Time allowed to resolve and connect (each redirect's anew)");
  add_duration_option(app, "--handshake-timeout", c.handshake_timeout, "Time allowed for the HTTP upgrade");
  add_size_option(app, "--max-message-size", c.connection.max_message_size,
                  "Largest message accepted (1009 beyond); 0 = no limit");
  add_duration_option(app, "--ping-interval", c.connection.ping_interval, "Ping the server this often; 0 = never");
  add_duration_option(app, "--idle-timeout", c.connection.idle_timeout,
                      "Give up when nothing arrives for this long; 0 = never");
  add_duration_option(app, "--close-timeout", c.connection.close_timeout, "Wait this long for the server's close");
  add_deflate_options(app, o.deflate);
  const std::string tls_group = "TLS (wss://)";
  app.add_option("--cacert", o.tls.ca_file, "Trust the CAs in this PEM file instead of the system's")
      ->check(CLI::ExistingFile)
      ->group(tls_group);
  app.add_flag_function(
         "-k,--insecure", [&o](std::int64_t) { o.tls.verify_peer = false; },
         "Do not verify the server's certificate or name (testing only)")
      ->group(tls_group);
  app.add_option("--cert", o.tls.certificate_chain_file, "Client certificate (PEM) to present")
      ->check(CLI::ExistingFile)
      ->group(tls_group);
  app.add_option("--key", o.tls.private_key_file, "Private key (PEM) of --cert")
      ->check(CLI::ExistingFile)
      ->group(tls_group);
  app.add_option("--key-password-file", o.key_password_file,
                 "The password of an encrypted --key: this file's first line (never prompted for)")
      ->check(CLI::ExistingFile)
      ->group(tls_group);
}

namespace {

// --resolve HOST:PORT:ADDRESS[,ADDRESS...] ([HOST] for an IPv6 one, [ADDRESS] or ADDRESS).
std::error_code parse_resolve(const std::string& text, std::vector<client_options::address_override>& out,
                              std::string& problem) {
  auto fail = [&](std::string_view why) {
    problem = fmt::format("--resolve '{}': {}", text, why);
    return make_error_code(error::invalid_option);
  };
  std::string_view rest = text;
  std::size_t host_end = rest.starts_with('[') ? rest.find("]:") : rest.find(':');
  if (host_end == std::string_view::npos) return fail("expected HOST:PORT:ADDRESS[,ADDRESS...]");
  if (rest.starts_with('[')) ++host_end;
  const auto port_end = rest.find(':', host_end + 1);
  if (port_end == std::string_view::npos) return fail("expected HOST:PORT:ADDRESS[,ADDRESS...]");
  client_options::address_override entry;
  if (auto why = parse_host_port(rest.substr(0, port_end), entry.host, entry.port)) return fail(*why);
  rest.remove_prefix(port_end + 1);
  for (;;) {
    const auto comma = rest.find(',');
    auto item = rest.substr(0, comma);
    if (item.size() >= 2 && item.front() == '[' && item.back() == ']') item = item.substr(1, item.size() - 2);
    std::error_code bad;
    entry.addresses.push_back(asio::ip::make_address(std::string(item), bad));
    if (bad) return fail(fmt::format("'{}' is not an IP address", item));
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  out.push_back(std::move(entry));
  return {};
}

// "Name: value" into name and value, or false when it is not a header (the name not a token).
bool split_header(std::string_view h, std::string_view& name, std::string_view& value) {
  const auto colon = h.find(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  name = h.substr(0, colon);
  value = h.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  return std::all_of(name.begin(), name.end(), is_token_char);
}

// -H @FILE (curl's form): the headers of FILE, one per line (a CR before the newline and empty
// lines left out), so that a token stays out of the process list and the shell's history. A bad
// line is named by its number, not shown: it may hold a secret.
constexpr std::size_t max_header_file_size = 64 << 10;
std::error_code add_header_file(const std::string& path, http_headers& out, std::string& problem) {
  std::ifstream in(path, std::ios::binary);
  std::string text(max_header_file_size + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad() || (!in && !in.eof())) {
    problem = fmt::format("-H @{}: cannot read it: {}", path, std::strerror(errno));
    return error::invalid_option;
  }
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (text.size() > max_header_file_size) {
    problem = fmt::format("-H @{}: larger than 64K", path);
    return error::invalid_option;
  }
  std::string_view rest = text;
  for (std::size_t number = 1; !rest.empty(); ++number) {
    const auto end = rest.find('\n');
    auto line = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
    if (line.ends_with('\r')) line.remove_suffix(1);
    if (line.empty()) continue;
    std::string_view name, value;
    if (!split_header(line, name, value)) {
      problem = fmt::format("-H @{}: line {}: expected 'Name: value'", path, number);
      return error::invalid_option;
    }
    out.add(std::string(name), std::string(value));
  }
  return {};
}

}  // namespace

std::error_code finish_client_options(client_cli_options& o, std::string& problem) {
  auto& c = o.client;
  o.display_url = redact_url(o.url);
  for (const auto& h : o.headers) {
    if (h.starts_with('@')) {  // no header's name starts with '@', which is not a token character
      if (auto ec = add_header_file(h.substr(1), c.headers, problem)) return ec;
      continue;
    }
    std::string_view name, value;
    if (!split_header(h, name, value)) {
      problem = fmt::format("-H '{}': expected 'Name: value'", h);
      return error::invalid_option;
    }
    c.headers.add(std::string(name), std::string(value));
  }
  c.origin = o.origin;
  c.subprotocols = o.subprotocols;
  for (const auto& r : o.resolve)
    if (auto ec = parse_resolve(r, c.resolve, problem)) return ec;
  if (c.connection.ping_interval.count() == 0) c.connection.ping = ping_mode::none;
  if (c.connection.ping != ping_mode::none && c.connection.idle_timeout.count() > 0 &&
      c.connection.ping_interval >= c.connection.idle_timeout) {
    problem = "--ping-interval must be shorter than --idle-timeout";
    return error::invalid_option;
  }
  if (auto ec = apply_deflate(o.deflate, c.connection, problem)) return ec;
  wsl::url parsed;
  if (!c.proxy.empty()) {
    if (const auto ec = parse_proxy_url(c.proxy, parsed)) {
      problem = ec == error::bad_userinfo
                    ? fmt::format(
                          "--proxy '{}': malformed user:password (percent-encode '%', '/', '?', '#' and "
                          "control characters; the user cannot hold ':')",
                          redact_url(c.proxy))
                    : fmt::format("--proxy '{}': expected http://, socks5:// or socks5h://[user:password@]host:port",
                                  redact_url(c.proxy));
      return error::invalid_option;
    }
  }
  if (o.url.starts_with("ws+unix:")) {
    // node ws's form: ws+unix:/path/to/socket:/request/path?query (or ws+unix:///path...).
    if (!c.unix_socket.empty()) {
      problem = "a ws+unix: URL names its socket: not with --unix-socket";
      return error::invalid_option;
    }
    std::string_view rest = std::string_view(o.url).substr(8);
    if (rest.starts_with("//")) rest.remove_prefix(2);
    const auto colon = rest.find(':');
    c.unix_socket = std::string(rest.substr(0, colon));
    const auto target = colon == std::string_view::npos ? std::string_view("/") : rest.substr(colon + 1);
    if (c.unix_socket.empty() || !target.starts_with('/')) {
      problem = fmt::format("not a WebSocket URL: '{}' (expected ws+unix:/path/to/socket[:/path])", o.display_url);
      return error::bad_url;
    }
    o.url = "ws://localhost" + std::string(target);
  }
  if (!c.unix_socket.empty()) {
    std::error_code bad;
    unix_endpoint(c.unix_socket, bad);
    if (bad) {
      problem = fmt::format("--unix-socket '{}': {}", c.unix_socket, bad.message());
      return error::invalid_option;
    }
  }
  if (auto why = local_address_pool(o.local_addresses, o.local_pool)) {
    problem = std::move(*why);
    return error::invalid_option;
  }
  if (!o.local_pool.empty()) {
    if (!c.unix_socket.empty()) {
      problem = "--local-address: not with a Unix socket";
      return error::invalid_option;
    }
    if (o.local_pool.size() > 1 && !o.several_local_addresses) {
      problem = "--local-address: one address (wsl loadtest spreads its connections over several)";
      return error::invalid_option;
    }
    c.local_address = o.local_pool.front();
  }
  if (auto ec = c.validate()) {
    problem = "invalid header, origin or subprotocol (control characters, or a comma in a subprotocol)";
    return ec;
  }
  if (const auto ec = parse_url(o.url, parsed)) {
    problem = ec == error::bad_userinfo
                  ? fmt::format(
                        "malformed user:password in '{}' (percent-encode '%', '/', '?', '#' and control "
                        "characters; the user cannot hold ':')",
                        o.display_url)
                  : fmt::format("not a WebSocket URL: '{}' (expected ws://host[:port]/path)", o.display_url);
    return ec;
  }
  if (o.tls.certificate_chain_file.empty() != o.tls.private_key_file.empty()) {
    problem = "--cert and --key go together";
    return error::invalid_option;
  }
  if (!o.key_password_file.empty() && o.tls.private_key_file.empty()) {
    problem = "--key-password-file needs --cert and --key";
    return error::invalid_option;
  }
  if (parsed.secure && !c.unix_socket.empty()) {
    problem = no_tls_over_unix;
    return error::invalid_option;
  }
  c.max_redirects = o.follow_redirects ? o.max_redirects : 0;
  if (parsed.secure || c.max_redirects > 0) {  // a redirect may lead to wss://
    auto tls = o.tls;
    if (!o.key_password_file.empty() && !read_password_file(o.key_password_file, tls.private_key_password, problem))
      return error::invalid_option;
    c.transport_extension = make_tls_extension(role::client, tls, problem);
    if (!c.transport_extension) {
      problem = explain_key_problem(problem, o.key_password_file, "--key-password-file");
      return error::invalid_option;
    }
  }
  return {};
}

namespace {

// Where a proxy's refusal of CONNECT leaves us: a 5xx means it could not reach (or find) the
// server, as when we cannot ourselves, except 504, where the server did not answer it in time. Any
// other status (403, 407 wrong or missing credentials) is a refusal, as a server's is.
int exit_status_for_proxy_status(int status) noexcept {
  if (status == 504) return exit_timeout;
  if (status >= 500 && status <= 599) return exit_unavailable;
  return exit_protocol;
}

// The same for a SOCKS5 reply code (RFC 1928 section 6): a failure, or an unreachable or refusing
// server, as when we cannot reach it ourselves; TTL expired, a timeout; a rule, an unsupported
// command or address type, or refused credentials (code 0), a refusal.
int exit_status_for_socks_reply(int code) noexcept {
  if (code == 1 || code == 3 || code == 4 || code == 5) return exit_unavailable;
  if (code == 6) return exit_timeout;
  return exit_protocol;
}

// An answer's status line and headers, as -v shows them ("< HTTP/1.1 101 ..."); a Location may
// hold credentials of its own.
void trace_answer(int version_minor, int status, std::string_view reason, const http_headers& headers) {
  diagnostics::info(fmt::format("< HTTP/1.{} {} {}", version_minor, status, reason));
  for (const auto& f : headers)  // a Location's password and cookies' values hidden
    diagnostics::info("< " + (iequals(f.name, "Location")
                                  ? fmt::format("{}: {}", f.name, redact_url(f.value))
                                  : redact_credentials(fmt::format("{}: {}", f.name, f.value))));
}

void trace_head(char direction, std::string_view head) {
  while (!head.empty()) {
    const auto end = head.find("\r\n");
    const auto line = head.substr(0, end);
    if (!line.empty()) diagnostics::info(fmt::format("{} {}", direction, line));
    if (end == std::string_view::npos) break;
    head.remove_prefix(end + 2);
  }
}

}  // namespace

asio::awaitable<websocket> connect_and_report(asio::any_io_executor executor, const client_cli_options& o,
                                              connect_report& report, const int& signal, int& status,
                                              std::error_code& ec) {
  auto ws = co_await connect(executor, o.url, o.client, ec, &report);
  trace_handshake(report);
  if (ec && signal == 0) status = report_connect_failure(o.display_url, ec, report);
  co_return ws;
}

namespace {

// An HTTP answer that another attempt would most likely get again.
bool lasting_status(unsigned status) noexcept {
  return status >= 300 && status < 500 && status != 408 && status != 429;
}

connect_failure failure_line_and_status(std::string_view url_text, std::error_code ec, const connect_report& report) {
  auto url = redact_url(url_text);
  const auto location = redact_url(report.response_headers.get("Location").value_or(""));
  if (ec == error::too_many_redirects) {
    return {fmt::format("{}: too many redirects ({}; --max-redirects): the last, {} from {}: HTTP {} {}", url,
                        report.redirects.size(), location, report.final_url, report.status, report.reason),
            exit_protocol};
  }
  if (ec == error::bad_redirect) {
    wsl::url from, to;
    const bool resolved = !parse_url(report.final_url, from) &&
                          !resolve_url(from, report.response_headers.get("Location").value_or(""), to);
    const bool downgrade = resolved && from.secure && !to.secure;
    const bool tls_over_unix = resolved && to.secure && !report.unix_socket.empty();
    return {fmt::format("{}: redirect refused: HTTP {} {} from {} to '{}' ({})", url, report.status, report.reason,
                        report.final_url, location,
                        downgrade       ? "wss:// never goes to ws://"
                        : tls_over_unix ? std::string(no_tls_over_unix)
                                        : "not a WebSocket URL"),
            exit_protocol};
  }
  if (!report.redirects.empty()) url += fmt::format(" (redirected to {})", report.final_url);
  const bool socks = report.proxy_protocol.starts_with("socks5");
  if (ec == error::proxy_refused && socks) {
    return {report.proxy_status == 0
                ? fmt::format("{}: SOCKS5 proxy {} refused: {}", url, report.proxy, report.proxy_reason)
                : fmt::format("{}: SOCKS5 proxy {} refused CONNECT: {} {}", url, report.proxy, report.proxy_status,
                              report.proxy_reason),
            exit_status_for_socks_reply(report.proxy_status)};
  }
  if (ec == error::proxy_refused) {
    return {fmt::format("{}: proxy {} refused CONNECT: HTTP {} {}", url, report.proxy, report.proxy_status,
                        report.proxy_reason),
            exit_status_for_proxy_status(report.proxy_status)};
  }
  const bool proxy_answered = socks ? !report.proxy_reason.empty() : report.proxy_status != 0;
  if (!report.proxy.empty() && !report.proxy_request_head.empty() && !proxy_answered) {
    // Connected to the proxy, no answer to CONNECT.
    if (report.proxy_protocol == "socks5" &&
        (ec == asio::error::host_not_found || ec == asio::error::host_not_found_try_again)) {
      return {
          fmt::format("{}: {} (socks5:// resolves the name here, socks5h:// lets the proxy do it)", url, ec.message()),
          exit_unavailable};
    }
    if (ec == asio::error::timed_out) {
      return {fmt::format("{}: timed out (waiting for proxy {} to answer CONNECT)", url, report.proxy), exit_timeout};
    }
    return {fmt::format("{}: proxy {}: no valid answer to CONNECT ({})", url, report.proxy, ec.message()),
            exit_status_for(ec) == exit_ok ? exit_failure : exit_status_for(ec)};
  }
  if (!report.proxy.empty() && report.proxy_request_head.empty()) {
    // Not even connected to the proxy.
    if (ec == asio::error::timed_out) {
      return {fmt::format("{}: timed out (connecting to proxy {})", url, report.proxy), exit_timeout};
    }
    return {fmt::format("{}: proxy {}: {}", url, report.proxy, ec.message()),
            exit_status_for(ec) == exit_ok ? exit_failure : exit_status_for(ec)};
  }
  if (ec == error::bad_status) {
    auto body = report.body.substr(0, report.body.find('\n'));
    if (body.size() > 200) body.resize(200);
    if (is_redirect_status(report.status) && !location.empty())
      body = fmt::format("redirect to {} (-L follows redirects)", location);
    return {fmt::format("{}: handshake refused: HTTP {} {}{}", url, report.status, report.reason,
                        body.empty() ? "" : ": " + body),
            exit_protocol};
  }
  if (ec == error::tls_verification_failed) {
    return {fmt::format("{}: TLS verification failed: {}", url, report.tls_error), exit_tls};
  }
  if (ec == error::tls_handshake_failed) {
    return {fmt::format("{}: TLS handshake failed: {}", url, report.tls_error), exit_protocol};
  }
  if (!report.unix_socket.empty() && report.request_head.empty() && ec != error::handshake_timeout) {
    // Not connected to the socket.
    return {fmt::format("{}: Unix socket {}: {}", url, report.unix_socket,
                        ec == asio::error::timed_out ? "timed out connecting" : ec.message()),
            ec == asio::error::timed_out ? exit_timeout
                                         : (exit_status_for(ec) == exit_ok ? exit_failure : exit_status_for(ec))};
  }
  if (ec == asio::error::timed_out || ec == error::handshake_timeout) {
    return {fmt::format("{}: timed out ({})", url,
                        ec == asio::error::timed_out ? "connecting" : "waiting for the handshake"),
            exit_timeout};
  }
  if (ec == asio::error::address_family_not_supported)  // only --local-address leads here
    return {fmt::format("{}: no address of the server's in the family (IPv4, IPv6) of --local-address", url),
            exit_unavailable};
  if (ec == std::error_code(EADDRNOTAVAIL, asio::error::get_system_category()))
    return {
        fmt::format("{}: {} (a --local-address this machine does not have, or no local port left)", url, ec.message()),
        exit_unavailable};
  return {fmt::format("{}: {}", url, ec.message()),
          exit_status_for(ec) == exit_ok ? exit_failure : exit_status_for(ec)};
}

}  // namespace

connect_failure describe_connect_failure(std::string_view url, std::error_code ec, const connect_report& report) {
  auto failure = failure_line_and_status(url, ec, report);
  failure.lasting = ec == error::too_many_redirects || ec == error::bad_redirect ||
                    ec == error::tls_verification_failed || ec == error::tls_handshake_failed ||
                    (ec == error::bad_status && lasting_status(report.status)) ||
                    (ec == error::proxy_refused && !report.proxy_protocol.starts_with("socks5") &&
                     lasting_status(report.proxy_status));
  return failure;
}

int report_connect_failure(std::string_view url, std::error_code ec, const connect_report& report) {
  auto failure = describe_connect_failure(url, ec, report);
  diagnostics::fatal(failure.text);
  return failure.status;
}

std::string format_remote(const connect_report& report) {
  return report.unix_socket.empty() ? format_endpoint(report.remote) : "unix:" + report.unix_socket;
}

void trace_handshake(const connect_report& report) {
  if (diagnostics::verbosity() < 1) return;
  for (const auto& hop : report.redirects) {
    trace_head('>', redact_credentials(hop.request_head));
    trace_answer(hop.version_minor, hop.status, hop.reason, hop.response_headers);
    diagnostics::info(fmt::format("* redirected to {}", hop.location));
  }
  if (report.proxy_protocol.starts_with("socks5")) {
    diagnostics::info(fmt::format("* through SOCKS5 proxy {}{}", report.proxy,
                                  report.proxy_protocol == "socks5h" ? " (it resolves the name)" : ""));
    if (!report.proxy_request_head.empty()) diagnostics::info("> " + report.proxy_request_head);
    if (!report.proxy_reason.empty())
      diagnostics::info(fmt::format("< SOCKS5 {} {}", report.proxy_status, report.proxy_reason));
  } else if (!report.proxy_request_head.empty()) {
    diagnostics::info(fmt::format("* through proxy {}", report.proxy));
    trace_head('>', redact_credentials(report.proxy_request_head));
    if (report.proxy_status != 0)
      trace_answer(report.proxy_version_minor, report.proxy_status, report.proxy_reason, report.proxy_response_headers);
  }
  if (!report.unix_socket.empty()) diagnostics::info(fmt::format("* through Unix socket {}", report.unix_socket));
  trace_head('>', redact_credentials(report.request_head));
  if (!report.tls_protocol.empty())
    diagnostics::info(fmt::format("* TLS {} {}", report.tls_protocol, report.tls_cipher));
  if (report.status != 0) trace_answer(report.version_minor, report.status, report.reason, report.response_headers);
}

}  // namespace wsl::cli
