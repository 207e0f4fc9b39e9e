// Coverage for libFuzzer from GCC, which has no -fsanitize=fuzzer. GCC's -fsanitize-coverage=
// trace-pc calls __sanitizer_cov_trace_pc() on every edge; libFuzzer no longer counts those
// calls itself (its own definition only says so and exits), but it does read 8-bit edge counters
// registered with __sanitizer_cov_8bit_counters_init(). This file, built without instrumentation,
// defines the callback (the link gives it precedence over libFuzzer's: tests/fuzz/CMakeLists.txt)
// and counts each caller's address into a table of counters, hashed: an approximation of
// clang's per-edge counters that is good enough to guide the search. trace-cmp's callbacks are
// libFuzzer's own.
#include <cstddef>
#include <cstdint>

extern "C" void __sanitizer_cov_8bit_counters_init(std::uint8_t* begin, std::uint8_t* end);
extern "C" void __sanitizer_cov_pcs_init(const std::uintptr_t* begin, const std::uintptr_t* end);

namespace {

constexpr std::size_t counter_count = 1 << 16;
alignas(64) std::uint8_t counters[counter_count];
// libFuzzer wants one {pc, flags} pair per counter; the "pc" is the counter's index, which is all
// its reports (-print_pcs) can show for a hashed table.
std::uintptr_t pc_table[2 * counter_count];

struct registration {
  registration() {
    for (std::size_t i = 0; i < counter_count; ++i) pc_table[2 * i] = i + 1;
    __sanitizer_cov_8bit_counters_init(counters, counters + counter_count);
    __sanitizer_cov_pcs_init(pc_table, pc_table + 2 * counter_count);
  }
} registered;

}  // namespace

extern "C" __attribute__((no_sanitize_address)) void __sanitizer_cov_trace_pc() {
  const auto pc = reinterpret_cast<std::uintptr_t>(__builtin_return_address(0));
  ++counters[(pc ^ (pc >> 16)) & (counter_count - 1)];
}
