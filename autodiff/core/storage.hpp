// Storage: a reference-counted block of device memory that tensors (and their views) share.
// The counts of live storages and tensor impls are kept for leak tests (`sg::debug`).
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "autodiff/core/dtype.hpp"

namespace sg {

// Minimal intrusive pointer over any type with an atomic `refs` member and a free function
// `intrusive_release(T*)` called when the count drops to zero.
template <class T>
class IntrusivePtr {
 public:
  IntrusivePtr() = default;
  explicit IntrusivePtr(T* p) : p_(p) {
    if (p_) p_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  IntrusivePtr(const IntrusivePtr& o) : IntrusivePtr(o.p_) {}
  IntrusivePtr(IntrusivePtr&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  IntrusivePtr& operator=(IntrusivePtr o) noexcept {
    std::swap(p_, o.p_);
    return *this;
  }
  ~IntrusivePtr() { reset(); }
  void reset() {
    if (p_ && p_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) intrusive_release(p_);
    p_ = nullptr;
  }
  T* get() const { return p_; }
  T* operator->() const { return p_; }
  T& operator*() const { return *p_; }
  explicit operator bool() const { return p_ != nullptr; }

 private:
  T* p_ = nullptr;
};

struct Storage {
  std::atomic<int32_t> refs{0};
  Device device;
  std::size_t nbytes = 0;
  void* data = nullptr;
  uint64_t version = 0;  // bumped by in-place writes
  void (*release)(Storage*) = nullptr;
};
void intrusive_release(Storage* s);
using StoragePtr = IntrusivePtr<Storage>;

namespace debug {
// Live objects, for leak tests: every storage and tensor impl ever created minus those freed.
int64_t live_storages();
int64_t live_tensors();
// Bytes held by live storages, and the most held since the last reset_peak_bytes().
int64_t live_storage_bytes();
int64_t peak_storage_bytes();
void reset_peak_bytes();
}  // namespace debug
namespace detail {
extern std::atomic<int64_t> g_live_storages;
extern std::atomic<int64_t> g_live_tensors;
void count_storage_bytes(int64_t delta);
}  // namespace detail

}  // namespace sg
