// The small-block pool (see pool.hpp).
#include "autodiff/core/pool.hpp"

#include <new>
#include <vector>

namespace sg::pool {
namespace {

constexpr std::size_t kClasses = kMaxPooled / kAlign;
constexpr std::size_t kKeepPerClass = 4096;  // beyond this, blocks go back to the allocator

// Set when this thread's lists are gone (thread exit, or static destruction on the main
// thread, which runs after thread-locals): later requests bypass the pool. A plain bool has
// no destructor, so it stays readable then.
thread_local bool t_lists_destroyed = false;

struct FreeLists {
  std::vector<void*> lists[kClasses];
  ~FreeLists() {
    for (auto& l : lists)
      for (void* p : l) ::operator delete(p, std::align_val_t(kAlign));
    t_lists_destroyed = true;
  }
};
FreeLists& lists() {
  thread_local FreeLists f;
  return f;
}
std::size_t class_of(std::size_t bytes) { return (bytes + kAlign - 1) / kAlign - 1; }

}  // namespace

void* allocate(std::size_t bytes) {
  if (bytes == 0 || bytes > kMaxPooled || t_lists_destroyed) return ::operator new(bytes ? bytes : 1, std::align_val_t(kAlign));
  auto& l = lists().lists[class_of(bytes)];
  if (!l.empty()) {
    void* p = l.back();
    l.pop_back();
    return p;
  }
  return ::operator new((class_of(bytes) + 1) * kAlign, std::align_val_t(kAlign));
}

void deallocate(void* p, std::size_t bytes) {
  if (bytes == 0 || bytes > kMaxPooled || t_lists_destroyed) {
    ::operator delete(p, std::align_val_t(kAlign));
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
