// The URL a command of `wsl pipe URL -- COMMAND` sees as WSL_URL (cli/url_userinfo.hpp): without
// credentials, otherwise as given.
#include "url_userinfo.hpp"

#define BOOST_TEST_MODULE url_userinfo
#include <boost/test/unit_test.hpp>

using wsl::cli::url_without_userinfo;

BOOST_AUTO_TEST_CASE(credentials_are_left_out) {
  BOOST_TEST(url_without_userinfo("ws://user:secret@host:8080/path?q=1") == "ws://host:8080/path?q=1");
  BOOST_TEST(url_without_userinfo("wss://token@example.net/") == "wss://example.net/");
  BOOST_TEST(url_without_userinfo("ws://user:@[::1]:9/") == "ws://[::1]:9/");
  BOOST_TEST(url_without_userinfo("ws://a@b:c@host") == "ws://host");  // the userinfo ends at the last '@'
  BOOST_TEST(url_without_userinfo("ws://u:p%2F@host/x") == "ws://host/x");
}

BOOST_AUTO_TEST_CASE(an_at_sign_after_the_authority_stays) {
  BOOST_TEST(url_without_userinfo("ws://host/@name") == "ws://host/@name");
  BOOST_TEST(url_without_userinfo("ws://host?to=a@b") == "ws://host?to=a@b");
  BOOST_TEST(url_without_userinfo("ws://host#a@b") == "ws://host#a@b");
  BOOST_TEST(url_without_userinfo("ws://u@host/@name") == "ws://host/@name");
}

BOOST_AUTO_TEST_CASE(urls_without_credentials_are_unchanged) {
  BOOST_TEST(url_without_userinfo("ws://127.0.0.1:8080/") == "ws://127.0.0.1:8080/");
  BOOST_TEST(url_without_userinfo("ws://host") == "ws://host");
  BOOST_TEST(url_without_userinfo("not a url @ all") == "not a url @ all");
  BOOST_TEST(url_without_userinfo("") == "");
}
