#include "wsl/options.hpp"

#include "address.hpp"

#include "wsl/error.hpp"

#include <algorithm>
#include <array>
#include <mutex>
#include <unordered_map>

namespace wsl {

namespace {

// The part of an address a per-address limit counts by: IPv4's 4 bytes, an IPv6 /64 prefix.
struct address_key {
  std::array<unsigned char, 9> bytes{};  // [0]: 4 or 6
  bool operator==(const address_key&) const = default;
};

struct address_key_hash {
  std::size_t operator()(const address_key& k) const noexcept {
    std::uint64_t h = 1469598103934665603ull;  // FNV-1a
    for (auto b : k.bytes) h = (h ^ b) * 1099511628211ull;
    return static_cast<std::size_t>(h);
  }
};

// False for the unspecified address (a peer without one).
bool key_of(const asio::ip::address& a, address_key& k) noexcept {
  if (a.is_unspecified()) return false;
  if (a.is_v6() && !a.to_v6().is_v4_mapped()) {
    const auto b = a.to_v6().to_bytes();
    k.bytes[0] = 6;
    std::copy_n(b.begin(), 8, k.bytes.begin() + 1);
  } else {
    const auto b =
        a.is_v4() ? a.to_v4().to_bytes() : asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6()).to_bytes();
    k.bytes[0] = 4;
    std::copy_n(b.begin(), 4, k.bytes.begin() + 1);
  }
  return true;
}

template <std::size_t N>
bool same_prefix(const std::array<unsigned char, N>& a, const std::array<unsigned char, N>& b, unsigned bits) {
  bits = std::min<unsigned>(bits, N * 8);  // a range made by hand may say more
  std::size_t i = 0;
  for (; bits >= 8; bits -= 8, ++i)
    if (a[i] != b[i]) return false;
  if (bits == 0) return true;
  const auto mask = static_cast<unsigned char>(0xff << (8 - bits));
  return (a[i] & mask) == (b[i] & mask);
}

}  // namespace

bool address_range::contains(const asio::ip::address& given) const noexcept {
  const auto a = detail::unmapped(given);
  if (a.is_v4() != address.is_v4()) return false;
  if (a.is_v4()) return same_prefix(a.to_v4().to_bytes(), address.to_v4().to_bytes(), prefix);
  return same_prefix(a.to_v6().to_bytes(), address.to_v6().to_bytes(), prefix);
}

std::optional<address_range> address_range::parse(std::string_view text) {
  const auto slash = text.find('/');
  std::error_code ec;
  const auto a = asio::ip::make_address(std::string(text.substr(0, slash)), ec);
  if (ec) return std::nullopt;
  address_range r{detail::unmapped(a), 0};
  const unsigned bits = r.address.is_v4() ? 32 : 128;
  r.prefix = bits;
  if (slash != std::string_view::npos) {
    const auto digits = text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3 || digits.find_first_not_of("0123456789") != std::string_view::npos)
      return std::nullopt;
    r.prefix = static_cast<unsigned>(std::stoul(std::string(digits)));
    if (r.prefix > bits) return std::nullopt;
  }
  // No bit set past the prefix: the range is what it says.
  for (unsigned b = r.prefix; b < bits; ++b) {
    const auto byte = b / 8;
    const auto mask = static_cast<unsigned char>(0x80 >> (b % 8));
    const bool set = r.address.is_v4() ? (r.address.to_v4().to_bytes()[byte] & mask) != 0
                                       : (r.address.to_v6().to_bytes()[byte] & mask) != 0;
    if (set) return std::nullopt;
  }
  return r;
}

struct connection_budget::address_counts {
  struct counts_of {
    std::size_t open = 0;
    std::size_t negotiating = 0;
  };
  using field = std::size_t counts_of::*;

  // One more of `f` for the key, unless it has `limit` already.
  bool take(const address_key& k, field f, std::size_t limit) {
    std::lock_guard lock(mutex);
    const auto it = counts.try_emplace(k).first;
    if (it->second.*f >= limit) {
      erase_if_unused(it);
      return false;
    }
    ++(it->second.*f);
    return true;
  }

  void give_back(const address_key& k, field f) noexcept {
    std::lock_guard lock(mutex);
    const auto it = counts.find(k);
    if (it == counts.end() || it->second.*f == 0) return;  // one too many: nothing goes negative
    --(it->second.*f);
    erase_if_unused(it);
  }

  std::size_t get(const address_key& k, field f) {
    std::lock_guard lock(mutex);
    const auto it = counts.find(k);
    return it == counts.end() ? 0 : it->second.*f;
  }

 private:
  std::mutex mutex;
  std::unordered_map<address_key, counts_of, address_key_hash> counts;

  void erase_if_unused(std::unordered_map<address_key, counts_of, address_key_hash>::iterator it) {
    if (it->second.open == 0 && it->second.negotiating == 0) counts.erase(it);
  }
};

connection_budget::connection_budget(std::size_t limit, std::size_t per_address_limit)
    : limit_(limit),
      per_address_limit_(per_address_limit),
      by_address_(per_address_limit != 0 ? std::make_unique<address_counts>() : nullptr) {}

connection_budget::~connection_budget() = default;

connection_budget::refusal connection_budget::try_acquire(const asio::ip::address& peer) {
  if (!try_acquire()) return refusal::limit;
  address_key k;
  if (!by_address_ || !key_of(peer, k)) return refusal::none;
  if (by_address_->take(k, &address_counts::counts_of::open, per_address_limit_)) return refusal::none;
  release();
  return refusal::address_limit;
}

void connection_budget::release(const asio::ip::address& peer) noexcept {
  release();
  address_key k;
  if (by_address_ && key_of(peer, k)) by_address_->give_back(k, &address_counts::counts_of::open);
}

bool connection_budget::try_begin_negotiation(const asio::ip::address& peer) {
  address_key k;
  if (!by_address_ || !key_of(peer, k)) return true;
  return by_address_->take(k, &address_counts::counts_of::negotiating, per_address_limit_);
}

void connection_budget::end_negotiation(const asio::ip::address& peer) noexcept {
  address_key k;
  if (by_address_ && key_of(peer, k)) by_address_->give_back(k, &address_counts::counts_of::negotiating);
}

std::size_t connection_budget::count(const asio::ip::address& peer) const {
  address_key k;
  return by_address_ && key_of(peer, k) ? by_address_->get(k, &address_counts::counts_of::open) : 0;
}

std::size_t connection_budget::negotiating(const asio::ip::address& peer) const {
  address_key k;
  return by_address_ && key_of(peer, k) ? by_address_->get(k, &address_counts::counts_of::negotiating) : 0;
}

std::error_code connection_options::validate() const {
  if (read_buffer_size < 256 || write_buffer_size < 256) return error::invalid_option;
  if (ping_interval.count() < 0 || idle_timeout.count() < 0 || close_timeout.count() < 0) return error::invalid_option;
  // Pings must come often enough to keep a live but quiet peer from looking idle.
  if (ping != ping_mode::none && idle_timeout.count() > 0 && ping_interval.count() > 0 && ping_interval >= idle_timeout)
    return error::invalid_option;
  if (max_control_queue < 256) return error::invalid_option;
  return {};
}

std::error_code listener_options::validate() const {
  if (auto ec = connection.validate()) return ec;
  if (max_handshake_size < 256 || handshake_timeout.count() <= 0) return error::invalid_option;
  if (max_pending_handshakes == 0 || accept_queue_size == 0 || backlog <= 0) return error::invalid_option;
  if (unix_mode > 07777) return error::invalid_option;
  for (const auto& r : trusted_proxies)
    if (r.prefix > (r.address.is_v4() ? 32u : 128u) || (r.address.is_v6() && r.address.to_v6().is_v4_mapped()))
      return error::invalid_option;
  // A line break in a field would let it write fields (or a body) of its own.
  constexpr std::string_view breaks("\r\n\0", 3);
  for (const auto& f : response_headers)
    if (f.name.empty() || f.name.find_first_of(breaks) != std::string::npos || f.name.find(':') != std::string::npos ||
        f.value.find_first_of(breaks) != std::string::npos)
      return error::invalid_option;
  return {};
}

}  // namespace wsl
