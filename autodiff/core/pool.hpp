// Small-block pool: per-thread free lists by 64-byte size class, for the many small objects
// every op creates (tensor impls, one-element storages). Blocks freed on another thread join
// that thread's lists; all blocks come from the global aligned allocator, so any thread may
// reuse them. Larger requests go straight to the global allocator.
#pragma once
#include <cstddef>

namespace sg::pool {

inline constexpr std::size_t kAlign = 64;
inline constexpr std::size_t kMaxPooled = 1024;

void* allocate(std::size_t bytes);
void deallocate(void* p, std::size_t bytes);

}  // namespace sg::pool
