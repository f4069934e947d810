// Index checks and the deterministic scatter-add's host logic, shared by the backends.
//
// An out-of-range index in gather / scatter_add / index_select is an IndexError (a ValueError,
// so code catching ValueError keeps working) naming the op, the index, the axis and its size.
// The CPU backend raises it at once. A CUDA kernel cannot throw and the stream is not
// synchronised per call, so the kernel records the first bad index in an IndexFault slot (device
// memory, read back by the host after a synchronisation) and skips the element; the backend raises
// the IndexError at the next synchronisation point (a copy to or from the host,
// cuda::synchronize()), naming the op that failed, which may be several ops back.
//
// Deterministic scatter-add (the CUDA default for floating dtypes; float atomicAdd makes the
// order of additions, hence the bits, change from run to run): each source element's
// destination offset is its sort key; a stable radix sort by key keeps equal keys in source
// order, and one thread per run of equal keys adds the run in that order onto the destination,
// which is exactly the CPU's order of additions, so the result is the CPU's bit for bit.
#pragma once
#include <cstdint>

#include "autodiff/backend/functors.hpp"  // SG_HD
#include "autodiff/core/error.hpp"

namespace sg {

struct IndexError : ValueError {
  using ValueError::ValueError;
};

enum class IndexOp : int { none = 0, gather = 1, scatter_add = 2 };
inline const char* index_op_name(IndexOp op) {
  return op == IndexOp::gather ? "gather" : op == IndexOp::scatter_add ? "scatter_add" : "index op";
}

SG_HD inline bool index_in_range(int64_t j, int64_t size) { return j >= 0 && j < size; }

[[noreturn]] inline void raise_index_error(IndexOp op, int64_t index, int axis, int64_t size,
                                           const char* where = "") {
  fail<IndexError>(index_op_name(op), ": index ", index, " is out of range for axis ", axis,
                   " of size ", size, where);
}

// The first bad index a kernel met (flag != 0), written on the device with an atomic claim on
// `flag` and read by the host after a synchronisation.
struct IndexFault {
  int flag;  // 0: no fault; else the IndexOp
  int axis;
  long long index;
  long long size;
};

// Raises the recorded fault, if any (the slot is the caller's to clear first).
inline void raise_index_fault(const IndexFault& f, const char* device_name) {
  if (!f.flag) return;
  raise_index_error(
      static_cast<IndexOp>(f.flag), f.index, f.axis, f.size,
      cat(" (on ", device_name, "; raised at the first synchronisation after the op ran)").c_str());
}

// The radix sort's key width: bits needed for keys in [0, max_key] (at least 1). Out-of-range
// elements get the key max_key + 1 so they sort last and are skipped: pass max_key + 1 here.
inline int sort_key_bits(int64_t max_key) {
  int b = 1;
  while (b < 63 && (max_key >> b) != 0) ++b;
  return b;
}

}  // namespace sg
