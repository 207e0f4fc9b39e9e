// Per-thread free lists of large buffers, by power-of-two size. A connection borrows a block while
// data streams through it and gives it back when it goes quiet, so idle connections stay small
// and busy ones do not call malloc per message.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

namespace wsl::detail {

class buffer_pool {
 public:
  static constexpr std::size_t max_cached_per_size = 32;

  // A block of at least n bytes; its real size is block_size(n).
  static std::uint8_t* acquire(std::size_t n) {
    const auto c = size_class(n);
    if (c < classes) {
      auto& list = local().free_[c];
      if (!list.empty()) {
        auto* p = list.back();
        list.pop_back();
        return p;
      }
    }
    return static_cast<std::uint8_t*>(::operator new(block_size(n)));
  }

  static void release(std::uint8_t* p, std::size_t n) noexcept {
    if (!p) return;
    const auto c = size_class(n);
    if (c < classes) {
      auto& list = local().free_[c];
      if (list.size() < max_cached_per_size) {
        try {
          list.push_back(p);
          return;
        } catch (...) {
        }
      }
    }
    ::operator delete(p);
  }

  static std::size_t block_size(std::size_t n) noexcept { return std::bit_ceil(n < 64 ? std::size_t{64} : n); }

 private:
  static constexpr std::size_t classes = 24;  // up to 512 MiB blocks
  static std::size_t size_class(std::size_t n) noexcept {
    return static_cast<std::size_t>(std::countr_zero(block_size(n))) - 6;
  }
  struct lists {
    std::array<std::vector<std::uint8_t*>, classes> free_;
    ~lists() {
      for (auto& l : free_)
        for (auto* p : l) ::operator delete(p);
    }
  };
  static lists& local() {
    thread_local lists l;
    return l;
  }
};

// An owned block from the pool.
class pooled_buffer {
 public:
  pooled_buffer() noexcept = default;
  explicit pooled_buffer(std::size_t n) : data_(buffer_pool::acquire(n)), size_(buffer_pool::block_size(n)) {}
  pooled_buffer(pooled_buffer&& o) noexcept : data_(o.data_), size_(o.size_) {
    o.data_ = nullptr;
    o.size_ = 0;
  }
  pooled_buffer& operator=(pooled_buffer&& o) noexcept {
    if (this != &o) {
      reset();
      data_ = o.data_;
      size_ = o.size_;
      o.data_ = nullptr;
      o.size_ = 0;
    }
    return *this;
  }
  ~pooled_buffer() { reset(); }
  void reset() noexcept {
    buffer_pool::release(data_, size_);
    data_ = nullptr;
    size_ = 0;
  }
  std::uint8_t* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  explicit operator bool() const noexcept { return data_ != nullptr; }

 private:
  std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace wsl::detail
