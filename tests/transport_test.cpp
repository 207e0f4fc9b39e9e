// The byte-stream contract of wsl::transport (transport.hpp), checked on the TCP transport over
// loopback, on the TLS stream over it (tls.hpp, a certificate made for the run), and on the memory
// pipe the other suites use, so that the pipe stays a faithful stand-in.
#include "wsl/transport.hpp"

#include "wsl/tls.hpp"
#include "wsl/websocket.hpp"

#define BOOST_TEST_MODULE transport
#include <boost/test/unit_test.hpp>

#include "inq_read.hpp"
#include "memory_transport.hpp"
#include "run_coroutine.hpp"

#include <asio/ip/tcp.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <poll.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

namespace {

using transport_pair = std::pair<std::unique_ptr<wsl::transport>, std::unique_ptr<wsl::transport>>;

transport_pair memory_pair(asio::io_context& ctx) {
  auto pipe = wsl::test::make_memory_pipe(ctx);
  return {std::move(pipe.stream), std::move(pipe.peer)};
}

transport_pair tcp_pair(asio::io_context& ctx) {
  asio::ip::tcp::acceptor acceptor(ctx, {asio::ip::address_v4::loopback(), 0});
  asio::ip::tcp::socket client(ctx);
  client.connect(acceptor.local_endpoint());
  auto server = acceptor.accept();
  return {wsl::make_tcp_transport(std::move(server)), wsl::make_tcp_transport(std::move(client))};
}

// A self-signed EC certificate for 127.0.0.1 and its key, in PEM files made once per run.
class test_identity {
 public:
  static const test_identity& get() {
    static const test_identity id;
    return id;
  }
  std::string cert, key;

 private:
  test_identity() {
    char dir_template[] = "/tmp/wsl-transport-test-XXXXXX";
    if (!mkdtemp(dir_template)) throw std::runtime_error("mkdtemp failed");
    dir_ = dir_template;
    cert = (dir_ / "cert.pem").string();
    key = (dir_ / "key.pem").string();
    EVP_PKEY* pkey = EVP_EC_gen("P-256");
    X509* x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, pkey);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    const bool made = pkey && X509_sign(x, pkey, EVP_sha256()) > 0 &&
                      write_pem(cert, [&](FILE* f) { return PEM_write_X509(f, x) == 1; }) &&
                      write_pem(key, [&](FILE* f) {
                        return PEM_write_PrivateKey(f, pkey, nullptr, nullptr, 0, nullptr, nullptr) == 1;
                      });
    X509_free(x);
    EVP_PKEY_free(pkey);
    if (!made) throw std::runtime_error("cannot make the test certificate");
  }
  ~test_identity() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  template <typename Write>
  static bool write_pem(const std::string& path, Write write) {
    FILE* f = std::fopen(path.c_str(), "w");
    if (!f) return false;
    const bool ok = write(f);
    return std::fclose(f) == 0 && ok;
  }
  std::filesystem::path dir_;
};

asio::awaitable<std::error_code> start(wsl::transport& t) {
  std::error_code ec;
  co_await t.start(ec);
  co_return ec;
}

// TLS over tcp_pair(): the server with the test certificate, the client without verification
// (what is under test here is the stream, not the checks of test_tls_policy.py).
wsl::tls_options test_server_options() {
  wsl::tls_options o;
  o.certificate_chain_file = test_identity::get().cert;
  o.private_key_file = test_identity::get().key;
  return o;
}

transport_pair tls_pair_with(asio::io_context& ctx, std::shared_ptr<wsl::connection_extension> server_tls) {
  auto [server_tcp, client_tcp] = tcp_pair(ctx);
  std::string problem;
  if (!server_tls) server_tls = wsl::make_tls_extension(wsl::role::server, test_server_options(), problem);
  wsl::tls_options client_options;
  client_options.verify_peer = false;
  const auto client_tls = wsl::make_tls_extension(wsl::role::client, client_options, problem);
  if (!server_tls || !client_tls) throw std::runtime_error("TLS extension: " + problem);
  std::error_code ec;
  auto server = server_tls->wrap(std::move(server_tcp), wsl::role::server, {}, ec);
  auto client = client_tls->wrap(std::move(client_tcp), wsl::role::client, "127.0.0.1", ec);
  if (!server || !client) throw std::runtime_error("wrap: " + ec.message());
  auto server_started = wsl::test::spawn(ctx, start(*server));
  auto client_started = wsl::test::spawn(ctx, start(*client));
  if (!wsl::test::run_until(ctx, [&] { return server_started.done() && client_started.done(); }) ||
      server_started.get() || client_started.get())
    throw std::runtime_error("the TLS handshake failed");
  return {std::move(server), std::move(client)};
}

transport_pair tls_pair(asio::io_context& ctx) { return tls_pair_with(ctx, nullptr); }

struct read_result {
  std::error_code ec;
  std::string data;
};

asio::awaitable<read_result> read_some_from(wsl::transport& t, std::size_t max = 4096) {
  read_result r;
  std::string buffer(max, '\0');
  const auto n = co_await t.read_some(asio::buffer(buffer), r.ec);
  r.data = buffer.substr(0, n);
  co_return r;
}

// Reads until n bytes arrived or the stream ended.
asio::awaitable<read_result> read_exactly(wsl::transport& t, std::size_t n) {
  read_result r;
  while (r.data.size() < n) {
    auto piece = co_await read_some_from(t, n - r.data.size());
    r.data += piece.data;
    if ((r.ec = piece.ec)) break;
  }
  co_return r;
}

asio::awaitable<std::error_code> write_all(wsl::transport& t, std::vector<std::string> parts) {
  std::vector<asio::const_buffer> buffers;
  for (const auto& p : parts) buffers.push_back(asio::buffer(p));
  std::error_code ec;
  co_await t.write(buffers, ec);
  co_return ec;
}

using factory = transport_pair (*)(asio::io_context&);
const std::pair<std::string_view, factory> kinds[] = {{"memory", memory_pair}, {"tcp", tcp_pair}, {"tls", tls_pair}};

}  // namespace

BOOST_AUTO_TEST_CASE(a_gathered_write_arrives_in_order_and_a_read_waits_for_it) {
  for (const auto& [kind, make] : kinds) {
    BOOST_TEST_CONTEXT(kind) {
      asio::io_context ctx;
      auto [a, b] = make(ctx);
      auto reading = wsl::test::spawn(ctx, read_exactly(*b, 11));
      wsl::test::run_until_idle(ctx);
      BOOST_TEST(!reading.done());
      BOOST_TEST(!wsl::test::run(ctx, write_all(*a, {"hello", ", ", "wor", "ld"})));
      BOOST_REQUIRE(wsl::test::run_until(ctx, [&] { return reading.done(); }));
      BOOST_TEST(!reading.get().ec);
      BOOST_TEST(reading.get().data == "hello, worl");
      BOOST_TEST(wsl::test::run(ctx, read_exactly(*b, 1)).data == "d");
    }
  }
}

BOOST_AUTO_TEST_CASE(shutdown_send_gives_eof_after_the_data_and_reading_goes_on) {
  for (const auto& [kind, make] : kinds) {
    BOOST_TEST_CONTEXT(kind) {
      asio::io_context ctx;
      auto [a, b] = make(ctx);
      BOOST_TEST(!wsl::test::run(ctx, write_all(*a, {"last words"})));
      a->shutdown_send();
      const auto r = wsl::test::run(ctx, read_exactly(*b, 100));
      BOOST_TEST(r.data == "last words");
      BOOST_TEST(r.ec == asio::error::eof);
      // The side that shut down can still read.
      BOOST_TEST(!wsl::test::run(ctx, write_all(*b, {"reply"})));
      BOOST_TEST(wsl::test::run(ctx, read_exactly(*a, 5)).data == "reply");
      BOOST_TEST(a->is_open());
    }
  }
}

BOOST_AUTO_TEST_CASE(close_aborts_a_pending_read_on_the_same_end) {
  for (const auto& [kind, make] : kinds) {
    BOOST_TEST_CONTEXT(kind) {
      asio::io_context ctx;
      auto [a, b] = make(ctx);
      auto reading = wsl::test::spawn(ctx, read_some_from(*a));
      wsl::test::run_until_idle(ctx);
      BOOST_REQUIRE(!reading.done());
      a->close();
      a->close();  // idempotent
      BOOST_TEST(!a->is_open());
      BOOST_REQUIRE(wsl::test::run_until(ctx, [&] { return reading.done(); }));
      BOOST_TEST(reading.get().ec == asio::error::operation_aborted);
      // The other end sees the stream end.
      const auto r = wsl::test::run(ctx, read_some_from(*b));
      BOOST_TEST(r.ec == asio::error::eof);
      BOOST_TEST(r.data.empty());
    }
  }
}

BOOST_AUTO_TEST_CASE(the_endpoints_mirror_each_other) {
  for (const auto& [kind, make] : kinds) {
    BOOST_TEST_CONTEXT(kind) {
      asio::io_context ctx;
      auto [a, b] = make(ctx);
      BOOST_TEST(a->local_endpoint() == b->remote_endpoint());
      BOOST_TEST(a->remote_endpoint() == b->local_endpoint());
      BOOST_TEST(a->local_endpoint().address().is_loopback());
      BOOST_TEST(a->is_secure() == (kind == "tls"));
    }
  }
}

BOOST_AUTO_TEST_CASE(the_memory_pipe_can_deliver_in_pieces) {
  asio::io_context ctx;
  auto pipe = wsl::test::make_memory_pipe(ctx);
  pipe.peer->deliver_in_pieces_of(3);
  BOOST_REQUIRE(pipe.peer->inject("abcdefgh"));
  BOOST_TEST(pipe.peer->write_count() == 1u);
  std::string pieces;
  for (int i = 0; i < 3; ++i) pieces += wsl::test::run(ctx, read_some_from(*pipe.stream)).data + "|";
  BOOST_TEST(pieces == "abc|def|gh|");
  BOOST_TEST(!wsl::test::run(ctx, write_all(*pipe.stream, {"xy", "z"})));
  BOOST_TEST(pipe.peer->available() == 3u);
  BOOST_TEST(pipe.peer->take() == "xyz");
  BOOST_TEST(!pipe.peer->received_eof());
  pipe.stream->close();
  BOOST_TEST(pipe.peer->received_eof());
  BOOST_TEST(pipe.peer->other_end_closed());
  BOOST_TEST(!pipe.peer->inject("to nobody"));
}

// A waiting TLS read holds no OpenSSL state: it can be cancelled (an idle connection does so to
// give back its buffers) and the stream goes on, with nothing lost.
BOOST_AUTO_TEST_CASE(a_waiting_tls_read_can_be_cancelled_and_gives_back_the_buffers) {
  asio::io_context ctx;
  auto [a, b] = tls_pair(ctx);
  std::string big(200000, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 131 % 251);
  auto reading = wsl::test::spawn(ctx, read_exactly(*b, big.size()));
  BOOST_TEST(!wsl::test::run(ctx, write_all(*a, {big})));
  BOOST_REQUIRE(wsl::test::run_until(ctx, [&] { return reading.done(); }));
  BOOST_TEST((reading.get().data == big));
  BOOST_TEST(b->holds_idle_memory());  // a 64 KiB input and OpenSSL's record buffers

  auto waiting = wsl::test::spawn(ctx, read_some_from(*b));
  wsl::test::run_until_idle(ctx);
  BOOST_REQUIRE(!waiting.done());
  BOOST_TEST(b->cancel_read());
  BOOST_REQUIRE(wsl::test::run_until(ctx, [&] { return waiting.done(); }));
  BOOST_TEST(waiting.get().ec == asio::error::operation_aborted);
  BOOST_TEST(!b->holds_idle_memory());

  BOOST_TEST(!wsl::test::run(ctx, write_all(*a, {"after the pause"})));
  BOOST_TEST(wsl::test::run(ctx, read_exactly(*b, 15)).data == "after the pause");
}

// A reload gives the extension a new context; a stream made before it keeps the old one, which
// lives on with it (ASan would see it freed). A reload that fails changes nothing.
BOOST_AUTO_TEST_CASE(a_tls_reload_leaves_open_streams_working_and_a_failed_one_changes_nothing) {
  asio::io_context ctx;
  std::string problem;
  auto server_tls = wsl::make_tls_extension(wsl::role::server, test_server_options(), problem);
  BOOST_REQUIRE(server_tls);
  auto [a, b] = tls_pair_with(ctx, server_tls);  // a: the server's end
  const auto certificate = wsl::tls_certificate_of(*server_tls);
  BOOST_REQUIRE(certificate);
  BOOST_TEST(certificate->subject == "/CN=127.0.0.1");
  BOOST_TEST((certificate->not_after - certificate->not_before == std::chrono::hours(1)));

  auto missing = test_server_options();
  missing.private_key_file += ".missing";
  BOOST_TEST(!wsl::reload_tls_extension(*server_tls, missing, problem));
  BOOST_TEST(problem.starts_with("cannot load private key " + missing.private_key_file + ": "), problem);
  BOOST_TEST(wsl::tls_certificate_of(*server_tls)->subject == "/CN=127.0.0.1");

  BOOST_TEST(wsl::reload_tls_extension(*server_tls, test_server_options(), problem));
  server_tls.reset();  // the new context's last owner goes too: the streams hold their own
  BOOST_TEST(!wsl::test::run(ctx, write_all(*a, {"after the reload"})));
  BOOST_TEST(wsl::test::run(ctx, read_exactly(*b, 16)).data == "after the reload");
  BOOST_TEST(!wsl::test::run(ctx, write_all(*b, {"both ways"})));
  BOOST_TEST(wsl::test::run(ctx, read_exactly(*a, 9)).data == "both ways");

  BOOST_TEST(!wsl::tls_certificate_of(*wsl::make_tls_extension(wsl::role::client, {}, problem)));
}

// Two records that arrived together: after the first is read, the second is at hand (the
// connection answers such a batch with one write), and after it nothing is. A read with room for
// both gets both, as a plain read would.
BOOST_AUTO_TEST_CASE(whole_tls_records_in_the_input_count_as_buffered_and_are_read_together) {
  asio::io_context ctx;
  auto [a, b] = tls_pair(ctx);
  BOOST_TEST(!b->has_buffered_input());
  BOOST_TEST(!wsl::test::run(ctx, write_all(*a, {"first"})));
  BOOST_TEST(!wsl::test::run(ctx, write_all(*a, {"second"})));
  BOOST_TEST(wsl::test::run(ctx, read_some_from(*b, 5)).data == "first");
  BOOST_TEST(b->has_buffered_input());
  BOOST_TEST(wsl::test::run(ctx, read_some_from(*b, 3)).data == "sec");
  BOOST_TEST(b->has_buffered_input());  // decrypted bytes
  BOOST_TEST(wsl::test::run(ctx, read_some_from(*b)).data == "ond");
  BOOST_TEST(!b->has_buffered_input());

  BOOST_TEST(!wsl::test::run(ctx, write_all(*a, {"third"})));
  BOOST_TEST(!wsl::test::run(ctx, write_all(*a, {"fourth"})));
  BOOST_TEST(wsl::test::run(ctx, read_some_from(*b)).data == "thirdfourth");
  BOOST_TEST(!b->has_buffered_input());
}

// inq_read.hpp: a TCP read reports the socket exhausted, so that the next read waits for epoll
// without trying a recv() first, only when the socket holds nothing more: no data, and no FIN.
// A FIN that came with the last data must leave the next read speculative, or it is never seen.
BOOST_AUTO_TEST_CASE(a_tcp_read_says_exhausted_only_when_neither_data_nor_a_fin_is_left) {
  asio::io_context ctx;
  asio::ip::tcp::acceptor acceptor(ctx, {asio::ip::address_v4::loopback(), 0});
  asio::ip::tcp::socket writer(ctx);
  writer.connect(acceptor.local_endpoint());
  auto reader = acceptor.accept();
  BOOST_REQUIRE(wsl::detail::enable_inq(reader));
  reader.non_blocking(true);

  using op_type = asio::detail::reactive_socket_recv_op_base<wsl::detail::inq_buffer>;
  using status = asio::detail::reactor_op::status;
  struct outcome {
    status result;
    std::string data;
    asio::error_code ec;
  };
  auto perform = [&](std::size_t room) {
    std::array<char, 64> buffer{};
    op_type op(asio::error_code(), reader.native_handle(), asio::detail::socket_ops::stream_oriented,
               wsl::detail::inq_buffer{asio::buffer(buffer.data(), room)}, 0, nullptr);
    const auto result = op.perform();
    return outcome{result, std::string(buffer.data(), op.bytes_transferred_), op.ec_};
  };
  // Waits (bounded) until the reader's socket shows the events: what was written has arrived.
  auto arrived = [&](short events) {
    pollfd p{reader.native_handle(), events, 0};
    return ::poll(&p, 1, 5000) == 1 && (p.revents & events) == events;
  };

  BOOST_TEST(perform(64).result == status::not_done);  // nothing yet: EAGAIN, the reactor waits

  asio::write(writer, asio::buffer(std::string_view("0123456789")));
  BOOST_REQUIRE(arrived(POLLIN));
  auto r = perform(4);
  BOOST_TEST((r.result == status::done && r.data == "0123" && !r.ec));  // 6 bytes left: read again at once
  r = perform(64);
  BOOST_TEST((r.result == status::done_and_exhausted && r.data == "456789" && !r.ec));

  asio::write(writer, asio::buffer(std::string_view("tail")));
  writer.shutdown(asio::ip::tcp::socket::shutdown_send);
  BOOST_REQUIRE(arrived(POLLIN | POLLRDHUP));
  r = perform(64);
  BOOST_TEST((r.result == status::done && r.data == "tail" && !r.ec));  // the FIN is left: not exhausted
  r = perform(64);
  BOOST_TEST((r.result == status::done_and_exhausted && r.data.empty() && r.ec == asio::error::eof));
}

// After a read that emptied the socket, the next read waits for the reactor: data and a FIN that
// arrive later are both seen.
BOOST_AUTO_TEST_CASE(after_a_read_that_emptied_the_socket_later_data_and_the_fin_arrive) {
  for (const auto& [kind, make] : kinds) {
    if (kind == "memory") continue;
    BOOST_TEST_CONTEXT(kind) {
      asio::io_context ctx;
      auto [a, b] = make(ctx);
      for (const auto* word : {"one", "two", "three"}) {
        BOOST_TEST(!wsl::test::run(ctx, write_all(*a, {word})));
        BOOST_TEST(wsl::test::run(ctx, read_some_from(*b)).data == word);
      }
      auto waiting = wsl::test::spawn(ctx, read_some_from(*b));
      wsl::test::run_until_idle(ctx);
      BOOST_TEST(!waiting.done());
      BOOST_TEST(!wsl::test::run(ctx, write_all(*a, {"four"})));
      BOOST_REQUIRE(wsl::test::run_until(ctx, [&] { return waiting.done(); }));
      BOOST_TEST(waiting.get().data == "four");
      auto ending = wsl::test::spawn(ctx, read_some_from(*b));
      wsl::test::run_until_idle(ctx);
      BOOST_TEST(!ending.done());
      a->shutdown_send();
      BOOST_REQUIRE(wsl::test::run_until(ctx, [&] { return ending.done(); }));
      BOOST_TEST(ending.get().ec == asio::error::eof);
    }
  }
}
