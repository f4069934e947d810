// The caching device allocator's rules, as host code with the device calls behind a small
// interface (the CUDA backend plugs in cudaMalloc / cudaFree / cudaDeviceSynchronize, the CPU
// tests a fake device that records every call):
//
//  * buckets: a request is rounded up to 512-byte steps up to 1 MiB and 2 MiB steps above, so
//    near-equal sizes share blocks (cache_bucket);
//  * reuse: a dead block goes back to the cache (no device call, so it is safe in destructors
//    and at exit) and serves the next request of the same bucket on the same device and the
//    same stream, last freed first;
//  * streams: a block freed on stream s is only handed out again on s. Work queued on s before
//    the free is ordered before any reuse, so no synchronisation is needed; as in PyTorch, a
//    block used on another stream than its allocation stream must be synchronised by the
//    caller before it dies;
//  * out of memory: when the device refuses, every cached block is released (after
//    synchronising each device that holds one: queued kernels may still read them) and the
//    request retried once; a second refusal returns nullptr (the caller raises).
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

namespace sg {

inline constexpr std::size_t kCacheSmall = std::size_t{1} << 20;  // 1 MiB
inline constexpr std::size_t kCacheSmallStep = 512;
inline constexpr std::size_t kCacheLargeStep = std::size_t{2} << 20;  // 2 MiB

inline std::size_t cache_bucket(std::size_t n) {
  return n <= kCacheSmall ? (n + kCacheSmallStep - 1) / kCacheSmallStep * kCacheSmallStep
                          : (n + kCacheLargeStep - 1) / kCacheLargeStep * kCacheLargeStep;
}

struct BlockCacheStats {
  std::size_t bytes_in_use = 0;  // bucket bytes held by live blocks
  std::size_t bytes_cached = 0;  // bucket bytes kept for reuse
  std::size_t peak_bytes_in_use = 0;
  uint64_t device_allocs = 0;  // device malloc calls that succeeded
  uint64_t device_frees = 0;   // device free calls
  uint64_t cache_hits = 0;     // allocations served from the cache
};

// Memory provides: void* malloc(std::size_t bytes, int device) (nullptr when out of memory; it
// may throw for other errors), void free(void* p, int device), void synchronize(int device).
template <class Memory>
class BlockCache {
 public:
  explicit BlockCache(Memory mem = Memory()) : mem_(std::move(mem)) {}

  // A block of at least nbytes (> 0) for `stream` on `device`, or nullptr when the device is
  // out of memory even after the cache was released.
  void* allocate(std::size_t nbytes, uintptr_t stream, int device) {
    const Key key{device, stream, cache_bucket(nbytes)};
    std::lock_guard<std::mutex> lock(mu_);
    void* p = nullptr;
    auto it = free_.find(key);
    if (it != free_.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      stats_.bytes_cached -= key.size;
      ++stats_.cache_hits;
    } else {
      p = mem_.malloc(key.size, device);
      if (!p) {  // give the cache back and try once more
        release_locked();
        p = mem_.malloc(key.size, device);
      }
      if (!p) return nullptr;
      ++stats_.device_allocs;
    }
    live_.emplace(p, key);
    stats_.bytes_in_use += key.size;
    stats_.peak_bytes_in_use = std::max(stats_.peak_bytes_in_use, stats_.bytes_in_use);
    return p;
  }

  // Back to the cache; a pointer this cache did not hand out is ignored.
  void release(void* p) noexcept {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(p);
    if (it == live_.end()) return;
    const Key key = it->second;
    live_.erase(it);
    stats_.bytes_in_use -= key.size;
    stats_.bytes_cached += key.size;
    free_[key].push_back(p);
  }

  // Synchronises every device holding cached blocks, then frees them all.
  void release_cache() {
    std::lock_guard<std::mutex> lock(mu_);
    release_locked();
  }
  BlockCacheStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }
  void reset_peak() {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.peak_bytes_in_use = stats_.bytes_in_use;
  }
  Memory& memory() { return mem_; }

 private:
  struct Key {
    int device;
    uintptr_t stream;
    std::size_t size;
    bool operator<(const Key& o) const {
      return std::tie(device, stream, size) < std::tie(o.device, o.stream, o.size);
    }
  };

  void release_locked() {
    std::set<int> devices;
    for (const auto& [key, blocks] : free_)
      if (!blocks.empty()) devices.insert(key.device);
    for (int d : devices) mem_.synchronize(d);
    for (auto& [key, blocks] : free_) {
      for (void* p : blocks) {
        mem_.free(p, key.device);
        ++stats_.device_frees;
        stats_.bytes_cached -= key.size;
      }
      blocks.clear();
    }
    free_.clear();
  }

  Memory mem_;
  std::mutex mu_;
  std::map<Key, std::vector<void*>> free_;
  std::unordered_map<void*, Key> live_;
  BlockCacheStats stats_;
};

}  // namespace sg
