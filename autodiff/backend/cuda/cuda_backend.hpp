// The CUDA backend's host API (plain C++, no CUDA headers needed): the Backend instance, device
// discovery, the per-thread current stream and the caching device allocator's statistics.
// Available when scoregrad is built with SG_WITH_CUDA (cmake -DSG_CUDA=AUTO|ON).
//
// Tensors reach the backend through sg::backend_for(Device::cuda(i)), which calls
// sg::cuda::backend(i): the first call constructs the backend and registers it, so there is no
// static-initialisation order or linker keep-alive to rely on. backend(i) makes device i the
// thread's current CUDA device (the Backend interface carries no device index, so allocations
// and kernels go to the current device). Work runs on the thread's current stream (the legacy
// default stream unless set_current_stream says otherwise); copies to and from the host
// synchronise that stream, so host code never sees a half-written tensor.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

struct CUstream_st;  // cudaStream_t is CUstream_st*

namespace sg {
class Backend;
}

namespace sg::cuda {

using Stream = CUstream_st*;

// The backend singleton (created and registered with sg::register_cuda_backend on first use),
// with `device` made current on this thread.
Backend& backend(int device = 0);
void init();  // constructs and registers the backend without touching any device

// Number of usable devices; 0 (with the CUDA error text in *reason) when the runtime or driver
// is missing or reports no device. Never throws.
int device_count(std::string* reason = nullptr);
void set_device(int index);
int current_device();
void synchronize();  // waits for all work on the current device (raises a pending IndexError)

Stream current_stream();  // this thread's; nullptr = legacy default stream
void set_current_stream(Stream s);
class StreamGuard {  // RAII: run this scope's work on `s`
 public:
  explicit StreamGuard(Stream s) : prev_(current_stream()) { set_current_stream(s); }
  ~StreamGuard() { set_current_stream(prev_); }
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  Stream prev_;
};

// The caching allocator: device blocks are rounded up to a size bucket (512 B steps up to
// 1 MiB, 2 MiB steps above) and, when a storage dies, kept for reuse by the next allocation of
// the same bucket on the same device and stream (rules: autodiff/backend/block_cache.hpp).
// cudaMalloc runs only on a cache miss; when it runs out of memory the cache is released and the
// allocation retried once. As in PyTorch, a tensor used on a stream other than the one it was
// allocated on must be synchronised by the caller before it dies (its block may be reused at once
// on its allocation stream).
struct AllocatorStats {
  std::size_t bytes_in_use = 0;  // bucket bytes held by live storages
  std::size_t bytes_cached = 0;  // bucket bytes kept for reuse
  std::size_t peak_bytes_in_use = 0;
  uint64_t device_allocs = 0;  // cudaMalloc calls
  uint64_t device_frees = 0;   // cudaFree calls
  uint64_t cache_hits = 0;     // allocations served from the cache
};
AllocatorStats allocator_stats();
void release_cache();  // synchronises, then cudaFree's every cached block
void reset_peak();

// scatter_add on float32/float64 (the gradient of gather, index_select and embedding-style
// lookups). deterministic (the default): the source elements are sorted by destination (a
// stable CUB radix sort) and each destination adds its terms in source order, the CPU's order,
// so results are the CPU's bits and identical run to run (bit-identical resume needs this).
// atomic: float atomicAdd, faster (no sort, no scratch), but the order in which colliding
// additions land changes from run to run, so the rounding does too: gradients are not
// reproducible. int64 is exact either way. The mode is process-wide.
enum class ScatterMode { deterministic, atomic };
void set_scatter_mode(ScatterMode m);
ScatterMode scatter_mode();

// Index errors: gather / scatter_add / index_select never synchronise the stream. An
// out-of-range index is recorded on the device and raised as sg::IndexError (a ValueError,
// autodiff/backend/index_ops.hpp) by the next synchronising call on that device: a copy to or
// from the host (Tensor::to_vector, item, .to(cpu)) or synchronize().

// cuBLAS GEMMs in float32 are computed in full FP32 by default (no TF32 tensor-core rounding,
// so results match the CPU to float32 precision); pass true to trade precision for speed.
void set_allow_tf32(bool on);
bool allow_tf32();

}  // namespace sg::cuda
