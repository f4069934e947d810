// The small-block pool (see pool.hpp).
#include "autodiff/core/pool.hpp"

#include <bit>
#include <new>
#include <unordered_map>
#include <vector>

namespace sg::pool {
namespace {

constexpr std::size_t kClasses = kMaxPooled / kAlign;
constexpr std::size_t kKeepPerClass = 4096;  // beyond this, blocks go back to the allocator

// Set when this thread's lists are gone (thread exit, or static destruction on the main
// thread, which runs after thread-locals): later requests bypass the pool. A plain bool has
// no destructor, so it stays readable then.
thread_local bool t_lists_destroyed = false;

// Large blocks are cached too (glibc would hand them back to the kernel and fault them in
// again on the next step): sizes rounded up to an eighth of their octave, at most
// kMaxCachedBig bytes kept per thread.
constexpr std::size_t kMaxCachedBig = std::size_t(512) << 20;
std::size_t big_size(std::size_t bytes) {
  const std::size_t step = std::max<std::size_t>(kAlign, std::bit_ceil(bytes) / 8);
  return (bytes + step - 1) / step * step;
}

struct FreeLists {
  std::vector<void*> lists[kClasses];
  std::unordered_map<std::size_t, std::vector<void*>> big;
  std::size_t big_bytes = 0;
  ~FreeLists() {
    for (auto& l : lists)
      for (void* p : l) ::operator delete(p, std::align_val_t(kAlign));
    for (auto& [size, l] : big)
      for (void* p : l) ::operator delete(p, std::align_val_t(kAlign));
    t_lists_destroyed = true;
  }
};
FreeLists& lists() {
  thread_local FreeLists f;
  return f;
}
// Under AddressSanitizer the pool steps aside, so use-after-free stays detectable.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kBypass = true;
#else
constexpr bool kBypass = false;
#endif

std::size_t class_of(std::size_t bytes) { return (bytes + kAlign - 1) / kAlign - 1; }

}  // namespace

void* allocate(std::size_t bytes) {
  if (bytes == 0 || t_lists_destroyed || kBypass)
    return ::operator new(bytes ? bytes : 1, std::align_val_t(kAlign));
  if (bytes > kMaxPooled) {
    const std::size_t size = big_size(bytes);
    FreeLists& f = lists();
    auto it = f.big.find(size);
    if (it != f.big.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      f.big_bytes -= size;
      return p;
    }
    return ::operator new(size, std::align_val_t(kAlign));
  }
  auto& l = lists().lists[class_of(bytes)];
  if (!l.empty()) {
    void* p = l.back();
    l.pop_back();
    return p;
  }
  return ::operator new((class_of(bytes) + 1) * kAlign, std::align_val_t(kAlign));
}

void deallocate(void* p, std::size_t bytes) {
  if (bytes == 0 || t_lists_destroyed || kBypass) {
    ::operator delete(p, std::align_val_t(kAlign));
    return;
  }
  if (bytes > kMaxPooled) {
    const std::size_t size = big_size(bytes);
    FreeLists& f = lists();
    if (f.big_bytes + size <= kMaxCachedBig) {
      f.big[size].push_back(p);
      f.big_bytes += size;
    } else {
      ::operator delete(p, std::align_val_t(kAlign));
    }
    return;
  }
  auto& l = lists().lists[class_of(bytes)];
  if (l.size() < kKeepPerClass) {
    l.push_back(p);
  } else {
    ::operator delete(p, std::align_val_t(kAlign));
  }
}

}  // namespace sg::pool
