// Payload masking (RFC 6455 section 5.3): wsl::detail::apply_mask and copy_masked, which work
// eight bytes at a time, against a byte-by-byte reference.
#include "wsl/detail/frame.hpp"

#define BOOST_TEST_MODULE masking
#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <vector>

namespace {

using bytes = std::vector<std::uint8_t>;

constexpr std::uint8_t mask[4] = {0x12, 0x9F, 0xA5, 0x3C};
// Offsets into a frame's payload: each phase of the mask, and positions past 32-bit boundaries.
constexpr std::uint64_t offsets[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 13, 1000003, (1ull << 32) + 1, (1ull << 40) + 6};
constexpr std::size_t large = 100003;

// "octet i of the transformed data is the XOR of octet i of the original data with octet at index
// i modulo 4 of the masking key" (section 5.3), where i counts from the start of the payload.
bytes reference_mask(const bytes& data, std::uint64_t offset) {
  bytes out = data;
  for (std::size_t i = 0; i < out.size(); ++i) out[i] ^= mask[(offset + i) % 4];
  return out;
}

bytes sample(std::size_t n, std::uint8_t seed) {
  bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(seed + i * 37 + (i >> 8));
  return b;
}

std::vector<std::size_t> lengths() {
  std::vector<std::size_t> v;
  for (std::size_t n = 0; n <= 64; ++n) v.push_back(n);
  v.push_back(large);
  return v;
}

}  // namespace

BOOST_AUTO_TEST_CASE(apply_mask_matches_the_reference_at_every_offset_length_and_alignment) {
  for (std::uint64_t offset : offsets)
    for (std::size_t n : lengths())
      for (std::size_t align = 0; align < 8; ++align) {
        // The data starts `align` bytes into a buffer with guard bytes on both sides.
        bytes buffer = sample(n + align + 16, static_cast<std::uint8_t>(n + offset));
        const bytes original = buffer;
        std::uint8_t* data = buffer.data() + align + 8;
        wsl::detail::apply_mask(data, n, mask, offset);
        const bytes expected =
            reference_mask(bytes(original.begin() + align + 8, original.begin() + align + 8 + n), offset);
        if (bytes(data, data + n) != expected)
          BOOST_ERROR("apply_mask wrong for offset " << offset << " length " << n << " alignment " << align);
        if (!std::equal(buffer.begin(), buffer.begin() + align + 8, original.begin()) ||
            !std::equal(buffer.end() - 8, buffer.end(), original.end() - 8))
          BOOST_ERROR("apply_mask wrote outside its range for offset " << offset << " length " << n);
      }
}

BOOST_AUTO_TEST_CASE(copy_masked_matches_the_reference_and_leaves_the_source_alone) {
  for (std::uint64_t offset : offsets)
    for (std::size_t n : lengths())
      for (std::size_t align = 0; align < 8; ++align) {
        const bytes source = sample(n + align, static_cast<std::uint8_t>(3 * n + offset));
        const bytes source_copy = source;
        bytes target(n + align + 16, 0xAA);
        std::uint8_t* dst = target.data() + 8 + (7 - align);
        wsl::detail::copy_masked(dst, source.data() + align, n, mask, offset);
        const bytes expected = reference_mask(bytes(source.begin() + align, source.end()), offset);
        if (bytes(dst, dst + n) != expected)
          BOOST_ERROR("copy_masked wrong for offset " << offset << " length " << n << " alignment " << align);
        if (source != source_copy) BOOST_ERROR("copy_masked changed its source for length " << n);
        const std::size_t before = static_cast<std::size_t>(dst - target.data());
        const bool guards_intact =
            std::all_of(target.begin(), target.begin() + before, [](auto b) { return b == 0xAA; }) &&
            std::all_of(target.begin() + before + n, target.end(), [](auto b) { return b == 0xAA; });
        if (!guards_intact) BOOST_ERROR("copy_masked wrote outside its range for offset " << offset << " length " << n);
      }
}

BOOST_AUTO_TEST_CASE(masking_twice_restores_the_data) {
  for (std::uint64_t offset : offsets)
    for (std::size_t n : lengths()) {
      const bytes original = sample(n, 7);
      bytes data = original;
      wsl::detail::apply_mask(data.data(), n, mask, offset);
      if (n >= 4 && data == original) BOOST_ERROR("masking changed nothing for length " << n);
      wsl::detail::apply_mask(data.data(), n, mask, offset);
      if (data != original) BOOST_ERROR("apply_mask twice did not restore offset " << offset << " length " << n);

      bytes masked(n), unmasked(n);
      wsl::detail::copy_masked(masked.data(), original.data(), n, mask, offset);
      wsl::detail::copy_masked(unmasked.data(), masked.data(), n, mask, offset);
      if (unmasked != original) BOOST_ERROR("copy_masked twice did not restore offset " << offset << " length " << n);
    }
}

BOOST_AUTO_TEST_CASE(masking_in_pieces_equals_masking_at_once) {
  // A payload that arrives in several reads is unmasked piece by piece, each with its offset.
  const bytes original = sample(64, 99);
  const bytes expected = reference_mask(original, 0);
  for (std::size_t cut1 = 0; cut1 <= original.size(); ++cut1)
    for (std::size_t cut2 = cut1; cut2 <= original.size(); cut2 += 3) {
      bytes data = original;
      wsl::detail::apply_mask(data.data(), cut1, mask, 0);
      wsl::detail::apply_mask(data.data() + cut1, cut2 - cut1, mask, cut1);
      wsl::detail::apply_mask(data.data() + cut2, data.size() - cut2, mask, cut2);
      if (data != expected) BOOST_ERROR("pieces cut at " << cut1 << " and " << cut2 << " differ");
    }
}

BOOST_AUTO_TEST_CASE(a_zero_mask_changes_nothing) {
  const std::uint8_t zero[4] = {0, 0, 0, 0};
  const bytes original = sample(large, 1);
  bytes data = original;
  wsl::detail::apply_mask(data.data(), data.size(), zero, 5);
  BOOST_TEST(data == original);
}
