// Block pool: per-thread free lists by 64-byte size class for the many small objects every op
// creates (tensor impls, one-element storages), and by size bucket (an eighth of an octave)
// for large buffers, up to 512 MiB cached per thread, so a training loop reuses its buffers
// instead of faulting fresh pages in every step. Blocks freed on another thread join that
// thread's lists; all come from the global aligned allocator, so any thread may reuse them.
#pragma once
#include <cstddef>

namespace sg::pool {

inline constexpr std::size_t kAlign = 64;
inline constexpr std::size_t kMaxPooled = 1024;

void* allocate(std::size_t bytes);
void deallocate(void* p, std::size_t bytes);

}  // namespace sg::pool
