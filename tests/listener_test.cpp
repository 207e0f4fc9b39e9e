// wsl::listener over real sockets on 127.0.0.1: what stop() does to the negotiations it started;
// and on Unix-domain sockets.
#include "wsl/listener.hpp"
#include "wsl/client.hpp"
#include "wsl/error.hpp"

#define BOOST_TEST_MODULE listener
#include <boost/test/unit_test.hpp>

#include "run_coroutine.hpp"
#include "test_printing.hpp"

#include <asio/connect.hpp>
#include <asio/error.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using wsl::test::run_until;
using wsl::test::spawn;

namespace {

struct accepted {
  std::error_code ec;
  wsl::websocket ws;
};

asio::awaitable<accepted> accept_one(wsl::listener& l) {
  accepted r;
  r.ws = co_await l.accept(r.ec);
  co_return r;
}

struct connected {
  std::error_code ec;
  wsl::websocket ws;
};

asio::awaitable<connected> connect_to(std::string url) {
  connected r;
  auto executor = co_await asio::this_coro::executor;
  const wsl::client_options options;  // named: GCC 12 mishandles a temporary in a co_await's arguments
  r.ws = co_await wsl::connect(executor, url, options, r.ec);
  co_return r;
}

using records = std::shared_ptr<std::vector<wsl::negotiation_record>>;

// Options whose negotiation records land in `into`, with a handshake_timeout only the test can
// outlast: a negotiation ends because the test (or stop()) ends it.
wsl::listener_options recording(wsl::listener_options options, const records& into) {
  options.handshake_timeout = 1h;
  options.on_negotiation = [into](const wsl::negotiation_record& r) { into->push_back(r); };
  return options;
}

}  // namespace

BOOST_AUTO_TEST_CASE(stop_ends_the_negotiations_in_progress_at_once) {
  asio::io_context ctx;
  const auto records = std::make_shared<std::vector<wsl::negotiation_record>>();
  wsl::listener_options options;
  wsl::listener l(ctx.get_executor(), recording(options, records));
  BOOST_REQUIRE(!l.start({asio::ip::address_v4::loopback(), 0}));
  const auto endpoint = l.local_endpoint();

  // Two clients that never finish their request (a browser's spare connection, a slow one), then
  // one that does. The kernel hands connections to accept() in the order they were made, so once
  // the third one is accepted, the first two are being negotiated.
  asio::ip::tcp::socket silent(ctx), partial(ctx);
  silent.connect(endpoint);
  partial.connect(endpoint);
  asio::write(partial, asio::buffer(std::string_view("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")));
  auto connecting = spawn(ctx, connect_to("ws://127.0.0.1:" + std::to_string(endpoint.port()) + "/"));
  auto accepting = spawn(ctx, accept_one(l));
  BOOST_REQUIRE(run_until(ctx, [&] { return connecting.done() && accepting.done(); }));
  BOOST_REQUIRE(!connecting.get().ec);
  BOOST_REQUIRE(!accepting.get().ec);
  BOOST_TEST(records->size() == 1u);  // the third one's; the other two are still waiting
  wsl::test::run_until_idle(ctx);
  BOOST_TEST(records->size() == 1u);

  l.stop();
  BOOST_REQUIRE(run_until(
      ctx, [&] { return records->size() == 3; }, 5000ms));
  for (std::size_t i = 1; i < 3; ++i) {
    BOOST_TEST_CONTEXT("negotiation " << i) {
      BOOST_TEST((*records)[i].error == wsl::error::listener_stopped);
      BOOST_TEST((*records)[i].status == 0);  // no answer: the request never ended
    }
  }
  // Both see the end of the connection, and nothing before it.
  for (auto* s : {&silent, &partial}) {
    char byte;
    std::error_code ec;
    s->non_blocking(false);
    const auto n = asio::read(*s, asio::buffer(&byte, 1), ec);
    BOOST_TEST(n == 0u);
    BOOST_TEST((ec == asio::error::eof || ec == asio::error::connection_reset));
  }
  // The accepted connection is the application's: stop() leaves it alone.
  BOOST_TEST(accepting.get().ws.is_open());
  accepting.get().ws.abort();
  connecting.get().ws.abort();
  wsl::test::run_until_idle(ctx);
}

BOOST_AUTO_TEST_CASE(a_refusal_being_sent_when_the_listener_stops_keeps_its_status) {
  // A negotiation that already answered (here 400) reports that answer, not a stop.
  asio::io_context ctx;
  const auto records = std::make_shared<std::vector<wsl::negotiation_record>>();
  wsl::listener_options options;
  wsl::listener l(ctx.get_executor(), recording(options, records));
  BOOST_REQUIRE(!l.start({asio::ip::address_v4::loopback(), 0}));

  asio::ip::tcp::socket client(ctx);
  client.connect(l.local_endpoint());
  asio::write(client, asio::buffer(std::string_view("GET / HTTP/1.0\r\nUpgrade: websocket\r\n\r\n")));
  // The server answers, then lingers until we close our side (the client keeps it open).
  std::string answer(12, '\0');
  client.non_blocking(true);
  std::size_t got = 0;
  BOOST_REQUIRE(run_until(ctx, [&] {
    std::error_code ec;
    got += client.read_some(asio::buffer(answer.data() + got, answer.size() - got), ec);
    return got == answer.size();
  }));
  BOOST_TEST(answer == "HTTP/1.1 400");
  l.stop();
  BOOST_REQUIRE(run_until(
      ctx, [&] { return records->size() == 1; }, 5000ms));
  BOOST_TEST((*records)[0].status == 400);
  BOOST_TEST((*records)[0].error != wsl::error::listener_stopped);
}

namespace {

struct unix_round_trip {
  std::error_code ec;
  std::string echo;
  wsl::connect_report report;
};

asio::awaitable<unix_round_trip> send_over(std::string socket_path, std::string text) {
  unix_round_trip r;
  wsl::client_options options;
  options.unix_socket = std::move(socket_path);
  auto executor = co_await asio::this_coro::executor;
  auto ws = co_await wsl::connect(executor, "ws://example.test/over-unix", options, r.ec, &r.report);
  if (r.ec) co_return r;
  co_await ws.write_message(wsl::message_type::text, asio::buffer(text), r.ec);
  if (r.ec) co_return r;
  auto in = co_await ws.read_message(r.ec);
  if (!r.ec) r.echo = co_await in.read_all(r.ec);
  std::error_code ignored;
  co_await ws.close(1000, {}, ignored);
  co_return r;
}

asio::awaitable<void> echo_one(wsl::listener& l, std::shared_ptr<std::vector<wsl::websocket>> served) {
  std::error_code ec;
  auto ws = co_await l.accept(ec);
  if (ec) co_return;
  auto in = co_await ws.read_message(ec);
  std::string text;
  if (!ec) text = co_await in.read_all(ec);
  if (!ec) co_await ws.write_message(wsl::message_type::text, asio::buffer(text), ec);
  served->push_back(std::move(ws));
}

// A directory of its own under /tmp, removed with what is left in it.
struct temp_dir {
  std::string path;
  temp_dir() {
    char name[] = "/tmp/wsl-listener-test-XXXXXX";
    BOOST_REQUIRE(::mkdtemp(name) != nullptr);
    path = name;
  }
  ~temp_dir() { std::filesystem::remove_all(path); }
};

}  // namespace

BOOST_AUTO_TEST_CASE(a_listener_on_a_unix_socket_knows_who_connected) {
  temp_dir dir;
  const auto path = dir.path + "/ws.sock";
  asio::io_context ctx;
  auto requests = std::make_shared<std::vector<wsl::http_request>>();
  auto records = std::make_shared<std::vector<wsl::negotiation_record>>();
  wsl::listener_options options;
  options.unix_mode = 0600;
  options.hook = [requests](const wsl::http_request& req, wsl::http_response&) { requests->push_back(req); };
  options.on_negotiation = [records](const wsl::negotiation_record& r) { records->push_back(r); };
  wsl::listener l(ctx.get_executor(), options);
  std::error_code ec;
  BOOST_REQUIRE(!l.start(wsl::unix_endpoint(path, ec)));
  BOOST_TEST(l.unix_path() == path);
  struct stat st {};
  BOOST_REQUIRE(::stat(path.c_str(), &st) == 0);
  BOOST_TEST(S_ISSOCK(st.st_mode));
  BOOST_TEST((st.st_mode & 07777) == 0600u);

  auto served = std::make_shared<std::vector<wsl::websocket>>();
  spawn(ctx, echo_one(l, served));
  spawn(ctx, echo_one(l, served));
  auto a = spawn(ctx, send_over(path, "one"));
  auto b = spawn(ctx, send_over(path, "two"));
  BOOST_REQUIRE(run_until(ctx, [&] { return a.done() && b.done() && served->size() == 2; }));
  BOOST_REQUIRE(!a.get().ec);
  BOOST_REQUIRE(!b.get().ec);
  BOOST_TEST(a.get().echo == "one");
  BOOST_TEST(b.get().echo == "two");
  BOOST_TEST(a.get().report.unix_socket == path);
  for (auto& ws : *served) {
    const auto peer = ws.unix_peer();  // this process, both
    BOOST_REQUIRE(peer.has_value());
    BOOST_TEST(peer->pid == ::getpid());
    BOOST_TEST(peer->uid == ::getuid());
    BOOST_TEST(ws.request().target == "/over-unix");
    BOOST_TEST(*ws.request().headers.get("Host") == "example.test");
    ws.abort();
  }
  // The hook's request, the record and the websocket of a connection share its number; two
  // connections do not.
  BOOST_REQUIRE(requests->size() == 2u);
  BOOST_REQUIRE(records->size() == 2u);
  BOOST_TEST(requests->at(0).unix_peer.has_value());
  BOOST_TEST(records->at(0).unix_peer.has_value());
  const auto first_id = requests->at(0).connection_id, second_id = requests->at(1).connection_id;
  BOOST_TEST(first_id != 0u);
  BOOST_TEST(first_id != second_id);
  BOOST_TEST(((records->at(0).connection_id == first_id && records->at(1).connection_id == second_id) ||
              (records->at(0).connection_id == second_id && records->at(1).connection_id == first_id)));
  for (auto& ws : *served)
    BOOST_TEST((ws.request().connection_id == first_id || ws.request().connection_id == second_id));
  BOOST_TEST(served->at(0).request().connection_id != served->at(1).request().connection_id);

  l.stop();
  BOOST_TEST(!std::filesystem::exists(path));
  wsl::test::run_until_idle(ctx);
}

BOOST_AUTO_TEST_CASE(listeners_share_a_unix_socket_and_only_the_first_removes_its_file) {
  temp_dir dir;
  const auto path = dir.path + "/ws.sock";
  asio::io_context ctx;
  std::error_code ec;
  {
    wsl::listener first(ctx.get_executor()), second(ctx.get_executor());
    BOOST_REQUIRE(!first.start(wsl::unix_endpoint(path, ec)));
    BOOST_REQUIRE(!second.start(first));
    BOOST_TEST(second.unix_path() == path);
    second.stop();
    BOOST_TEST(std::filesystem::exists(path));
    first.stop();
    BOOST_TEST(!std::filesystem::exists(path));
  }
  // The second accepts on its own once the first has stopped (a name in the abstract namespace:
  // no file to lose meanwhile).
  const auto name = "@wsl-listener-test-" + std::to_string(::getpid());
  wsl::listener first(ctx.get_executor()), second(ctx.get_executor());
  BOOST_REQUIRE(!first.start(wsl::unix_endpoint(name, ec)));
  BOOST_TEST(first.unix_path() == name);
  BOOST_REQUIRE(!second.start(first));
  first.stop();
  auto served = std::make_shared<std::vector<wsl::websocket>>();
  spawn(ctx, echo_one(second, served));
  auto a = spawn(ctx, send_over(name, "to the second"));
  BOOST_REQUIRE(run_until(ctx, [&] { return a.done() && served->size() == 1; }));
  BOOST_REQUIRE(!a.get().ec);
  BOOST_TEST(a.get().echo == "to the second");
  served->at(0).abort();
  second.stop();
  wsl::test::run_until_idle(ctx);
}

BOOST_AUTO_TEST_CASE(a_unix_socket_path_in_use_or_taken_by_a_file_is_refused_and_a_stale_one_replaced) {
  temp_dir dir;
  const auto path = dir.path + "/ws.sock";
  asio::io_context ctx;
  std::error_code ec;
  const auto endpoint = wsl::unix_endpoint(path, ec);
  BOOST_REQUIRE(!ec);
  {
    // A socket file left by a process that died: bound, never listening.
    asio::local::stream_protocol::socket stale(ctx, asio::local::stream_protocol());
    stale.bind(endpoint);
  }
  wsl::listener l(ctx.get_executor());
  BOOST_REQUIRE(!l.start(endpoint));
  wsl::listener other(ctx.get_executor());
  BOOST_TEST((other.start(endpoint) == std::errc::address_in_use));
  l.stop();
  { std::ofstream(path) << "not a socket"; }
  wsl::listener third(ctx.get_executor());
  BOOST_TEST((third.start(endpoint) == std::errc::file_exists));
  BOOST_TEST(std::filesystem::file_size(path) == 12u);  // untouched
}

BOOST_AUTO_TEST_CASE(unix_endpoints_and_client_options_are_checked) {
  std::error_code ec;
  BOOST_TEST(wsl::unix_endpoint("/run/x.sock", ec).path() == "/run/x.sock");
  BOOST_TEST(!ec);
  BOOST_TEST(wsl::unix_endpoint("@abstract", ec).path() == std::string("\0abstract", 9));
  BOOST_TEST(!ec);
  wsl::unix_endpoint("", ec);
  BOOST_TEST((ec == std::errc::invalid_argument));
  wsl::unix_endpoint("@", ec);
  BOOST_TEST((ec == std::errc::invalid_argument));
  wsl::unix_endpoint(std::string(108, 'x'), ec);
  BOOST_TEST((ec == std::errc::filename_too_long));
  wsl::unix_endpoint(std::string(107, 'x'), ec);
  BOOST_TEST(!ec);

  wsl::client_options o;
  o.unix_socket = "/run/x.sock";
  BOOST_TEST(!o.validate());
  o.proxy = "http://127.0.0.1:3128";
  BOOST_TEST(o.validate() == wsl::error::invalid_option);
  o.proxy.clear();
  o.unix_socket = std::string(200, 'x');
  BOOST_TEST(o.validate() == wsl::error::invalid_option);

  wsl::listener_options lo;
  lo.unix_mode = 010000;
  BOOST_TEST(lo.validate() == wsl::error::invalid_option);
}

BOOST_AUTO_TEST_CASE(a_listener_adopts_a_listening_socket_and_refuses_anything_else) {
  asio::io_context ctx;
  // What systemd's socket activation hands over: a socket that already listens.
  asio::ip::tcp::acceptor given(ctx, {asio::ip::address_v4::loopback(), 0});
  const auto endpoint = given.local_endpoint();
  const int fd = given.release();
  wsl::listener l(ctx.get_executor());
  BOOST_REQUIRE(!l.adopt(fd));
  BOOST_TEST(l.local_endpoint() == endpoint);
  BOOST_TEST(l.unix_path().empty());
  BOOST_TEST((::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
  auto accepting = spawn(ctx, accept_one(l));
  auto a = spawn(ctx, connect_to("ws://127.0.0.1:" + std::to_string(endpoint.port()) + "/"));
  BOOST_REQUIRE(run_until(ctx, [&] { return a.done() && accepting.done(); }));
  BOOST_REQUIRE(!a.get().ec);
  BOOST_REQUIRE(!accepting.get().ec);
  a.get().ws.abort();
  accepting.get().ws.abort();
  l.stop();
  BOOST_TEST(::fcntl(fd, F_GETFD) == -1);  // the listener's to close

  // A socket that does not listen, and what is no socket: refused, and left open.
  asio::ip::tcp::socket bound(ctx, {asio::ip::address_v4::loopback(), 0});
  wsl::listener refusing(ctx.get_executor());
  BOOST_TEST(refusing.adopt(bound.native_handle()) == wsl::error::invalid_option);
  BOOST_TEST(bound.is_open());
  BOOST_TEST(::fcntl(bound.native_handle(), F_GETFD) != -1);
  int pipe_fds[2];
  BOOST_REQUIRE(::pipe(pipe_fds) == 0);
  wsl::listener refusing_too(ctx.get_executor());
  BOOST_TEST(refusing_too.adopt(pipe_fds[0]));
  BOOST_TEST(::fcntl(pipe_fds[0], F_GETFD) != -1);
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
  wsl::test::run_until_idle(ctx);
}

BOOST_AUTO_TEST_CASE(ipv6_only_leaves_ipv4_to_another_listener) {
  // Linux refuses to bind an IPv6 socket that is IPv6-only to an IPv4-mapped address (EINVAL):
  // on the loopback, that shows the option reached the socket; :: itself (where it matters, beside
  // 0.0.0.0) is not for tests.
  asio::io_context ctx;
  const auto mapped = asio::ip::make_address("::ffff:127.0.0.1");
  wsl::listener both(ctx.get_executor());
  BOOST_REQUIRE(!both.start({mapped, 0}));
  BOOST_TEST(both.local_endpoint().address() == mapped);
  both.stop();
  wsl::listener_options options;
  options.ipv6_only = true;
  wsl::listener v6(ctx.get_executor(), options);
  const auto refused = v6.start({mapped, 0});
  BOOST_TEST((refused == asio::error::invalid_argument), refused.message());
  BOOST_TEST(!v6.is_running());
  // An IPv4 address is not concerned.
  wsl::listener v4(ctx.get_executor(), options);
  BOOST_REQUIRE(!v4.start({asio::ip::address_v4::loopback(), 0}));
  v4.stop();
  wsl::test::run_until_idle(ctx);
}

namespace {

// Sends a plain request on `s` and reads the answer (head and Content-Length body) as the
// listener runs; empty when none came within the bound.
std::string plain_request(asio::io_context& ctx, asio::ip::tcp::socket& s, std::string_view target = "/") {
  asio::write(s, asio::buffer("GET " + std::string(target) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
  s.non_blocking(true);
  std::string got;
  const bool complete = run_until(ctx, [&] {
    char chunk[4096];
    std::error_code ec;
    const auto n = s.read_some(asio::buffer(chunk), ec);
    got.append(chunk, n);
    const auto head_end = got.find("\r\n\r\n");
    if (head_end == std::string::npos) return ec && ec != asio::error::would_block;
    const auto at = got.find("Content-Length: ");
    const auto length = at < head_end ? std::stoul(got.substr(at + 16)) : 0;
    return got.size() >= head_end + 4 + length || (ec && ec != asio::error::would_block);
  });
  return complete ? got : std::string();
}

// Whether the listener closed `s` (end of stream, or a reset) within the bound, with nothing more
// sent on it.
bool closed_by_listener(asio::io_context& ctx, asio::ip::tcp::socket& s) {
  s.non_blocking(true);
  bool data = false, closed = false;
  run_until(ctx, [&] {
    char byte;
    std::error_code ec;
    if (s.read_some(asio::buffer(&byte, 1), ec) == 1) data = true;
    closed = ec == asio::error::eof || ec == asio::error::connection_reset;
    return data || closed;
  });
  return closed && !data;
}

}  // namespace

// A connection kept alive after a plain answer holds a negotiation slot while it waits for its
// next request, as nginx's reusable connections do: a new connection that finds every slot taken
// takes the place of the one idle longest, rather than waiting in the backlog until it times out.
BOOST_AUTO_TEST_CASE(a_new_connection_takes_the_place_of_the_longest_idle_one_kept_alive) {
  asio::io_context ctx;
  const auto records = std::make_shared<std::vector<wsl::negotiation_record>>();
  wsl::listener_options options;
  options.max_pending_handshakes = 2;
  wsl::listener l(ctx.get_executor(), recording(options, records));
  BOOST_REQUIRE(!l.start({asio::ip::address_v4::loopback(), 0}));
  const auto endpoint = l.local_endpoint();

  asio::ip::tcp::socket older(ctx), newer(ctx);
  older.connect(endpoint);
  BOOST_REQUIRE(plain_request(ctx, older).starts_with("HTTP/1.1 426"));
  newer.connect(endpoint);
  BOOST_REQUIRE(plain_request(ctx, newer).starts_with("HTTP/1.1 426"));
  BOOST_REQUIRE(plain_request(ctx, older, "/again").find("Connection: upgrade\r\n") != std::string::npos);

  // Both wait for a next request, and hold both slots: the websocket gets the place of the one
  // that has waited longer (`newer` now), and nothing else is closed.
  auto connecting = spawn(ctx, connect_to("ws://127.0.0.1:" + std::to_string(endpoint.port()) + "/"));
  auto accepting = spawn(ctx, accept_one(l));
  BOOST_REQUIRE(run_until(ctx, [&] { return connecting.done() && accepting.done(); }));
  BOOST_REQUIRE(!connecting.get().ec);
  BOOST_REQUIRE(!accepting.get().ec);
  BOOST_TEST(closed_by_listener(ctx, newer));
  const auto third = plain_request(ctx, older, "/third");
  BOOST_TEST(third.starts_with("HTTP/1.1 426"));
  BOOST_TEST(records->size() == 5u);  // three plain requests, the upgrade; the idle end is no record
  accepting.get().ws.abort();
  connecting.get().ws.abort();
  l.stop();
  wsl::test::run_until_idle(ctx);
}

// While it waits for a next request, a connection kept alive holds none of its host's
// negotiation slots (max_connections_per_address): a browser that fetched a page's files over a
// few connections still opens its websocket. Its next request takes a slot again, and when its
// host holds them all, that request is refused as a new connection would be: closed unanswered.
BOOST_AUTO_TEST_CASE(an_idle_connection_kept_alive_holds_no_slot_of_its_hosts) {
  asio::io_context ctx;
  const auto records = std::make_shared<std::vector<wsl::negotiation_record>>();
  wsl::listener_options options;
  options.max_connections_per_address = 2;
  wsl::listener l(ctx.get_executor(), recording(options, records));
  BOOST_REQUIRE(!l.start({asio::ip::address_v4::loopback(), 0}));
  const auto endpoint = l.local_endpoint();

  asio::ip::tcp::socket first(ctx), second(ctx);
  first.connect(endpoint);
  BOOST_REQUIRE(plain_request(ctx, first).starts_with("HTTP/1.1 426"));
  second.connect(endpoint);
  BOOST_REQUIRE(plain_request(ctx, second).starts_with("HTTP/1.1 426"));

  auto connecting = spawn(ctx, connect_to("ws://127.0.0.1:" + std::to_string(endpoint.port()) + "/"));
  auto accepting = spawn(ctx, accept_one(l));
  BOOST_REQUIRE(run_until(ctx, [&] { return connecting.done() && accepting.done(); }));
  BOOST_TEST(!connecting.get().ec);
  BOOST_TEST(!accepting.get().ec);

  // Two requests under way from 127.0.0.1, neither finished: `first`'s next one finds no slot.
  asio::ip::tcp::socket slow1(ctx), slow2(ctx);
  for (auto* s : {&slow1, &slow2}) {
    s->connect(endpoint);
    asio::write(*s, asio::buffer(std::string_view("GET / HTTP/1.1\r\n")));
  }
  wsl::test::run_until_idle(ctx);
  asio::write(first, asio::buffer(std::string_view("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")));
  BOOST_TEST(closed_by_listener(ctx, first));
  BOOST_REQUIRE(run_until(
      ctx, [&] { return !records->empty() && records->back().error == wsl::error::too_many_handshakes_from_address; }));
  BOOST_TEST(records->back().status == 0);
  // With one of them gone, `second`'s next request is answered.
  const auto before = records->size();
  slow1.close();
  BOOST_REQUIRE(run_until(ctx, [&] { return records->size() > before; }));
  BOOST_TEST(records->back().error == asio::error::eof);
  BOOST_TEST(plain_request(ctx, second, "/next").starts_with("HTTP/1.1 426"));

  accepting.get().ws.abort();
  connecting.get().ws.abort();
  l.stop();
  wsl::test::run_until_idle(ctx);
}

// The time a request took (the access log's, wsl_handshake_duration_seconds') counts from its
// first bytes: a connection kept alive that waited a minute before its upgrade did not take a
// minute to negotiate it.
BOOST_AUTO_TEST_CASE(a_request_after_a_wait_is_timed_from_its_first_bytes) {
  asio::io_context ctx;
  const auto records = std::make_shared<std::vector<wsl::negotiation_record>>();
  wsl::listener_options options;
  wsl::listener l(ctx.get_executor(), recording(options, records));
  BOOST_REQUIRE(!l.start({asio::ip::address_v4::loopback(), 0}));

  asio::ip::tcp::socket client(ctx);
  client.connect(l.local_endpoint());
  BOOST_REQUIRE(plain_request(ctx, client).starts_with("HTTP/1.1 426"));
  wsl::test::advance_clock(ctx, 1min);
  BOOST_REQUIRE(plain_request(ctx, client, "/after-a-minute").starts_with("HTTP/1.1 426"));
  wsl::test::advance_clock(ctx, 1min);
  client.non_blocking(false);
  asio::write(client,
              asio::buffer(std::string_view("GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                                            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                            "Sec-WebSocket-Version: 13\r\n\r\n")));
  auto accepting = spawn(ctx, accept_one(l));
  BOOST_REQUIRE(run_until(ctx, [&] { return accepting.done(); }));
  BOOST_REQUIRE(!accepting.get().ec);
  BOOST_REQUIRE(records->size() == 3u);
  BOOST_TEST((*records)[1].target == "/after-a-minute");
  BOOST_TEST((*records)[2].status == 101);
  for (const auto& r : *records) BOOST_TEST(r.duration < 30s, r.target);
  accepting.get().ws.abort();
  l.stop();
  wsl::test::run_until_idle(ctx);
}
