// How a reduction is split across a GPU, as host code the CPU tests check, and the reduction
// math (start values, combine, accumulator types) as __host__ __device__ functors shared with
// the CUDA kernels.
//
// A reduction has `outputs` results, each combining `length` elements. Three shapes:
//  * per_thread: one thread per output walks its elements in order (short reductions, or many
//    outputs whose reduced axis is strided, where neighbouring threads read neighbouring
//    outputs);
//  * per_block: one block of kReduceThreads per output; thread t takes elements t, t + 256, ...
//    and the block combines its 256 partials in a fixed tree;
//  * split: too few outputs to fill the device (a full reduction has one): each output's
//    elements are cut into `splits` chunks of `chunk` consecutive elements, one block per
//    (output, chunk) writes a partial (pass 1), then a second pass combines each output's
//    partials in chunk order (per_thread or per_block over [outputs, splits]).
// The geometry depends only on the sizes (never on the device's SM count), and every combine
// happens in a fixed order, so results are reproducible run to run and across cards.
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "autodiff/backend/functors.hpp"

namespace sg {

inline constexpr int kReduceThreads = 256;
inline constexpr int64_t kReduceManyOutputs = 4096;  // per_thread above this if strided
// A split aims at about this many blocks in pass 1 (8 resident blocks of 256 threads on each of
// an H100's 132 SMs is 1056), with chunks of at least kReduceMinChunk elements (32 per thread).
inline constexpr int64_t kReduceTargetBlocks = 1024;
inline constexpr int64_t kReduceMinChunk = 8192;
inline constexpr int64_t kReduceMaxGrid = 65535;  // blocks and grid-stride loops cover the rest

enum class ReduceKind : uint8_t { none, per_thread, per_block, split };

struct ReduceGrid {
  ReduceKind kind = ReduceKind::none;
  unsigned grid = 0, block = 0;
};

inline unsigned reduce_grid_for(int64_t items, int64_t per_block) {
  const int64_t b = (items + per_block - 1) / per_block;
  return static_cast<unsigned>(b < 1 ? 1 : b > kReduceMaxGrid ? kReduceMaxGrid : b);
}

// One pass over `outputs` reductions of `length` elements (no splitting).
inline ReduceGrid plan_reduce_pass(int64_t outputs, int64_t length, bool inner_contiguous) {
  if (outputs <= 0) return {};
  if (length >= kReduceThreads && (outputs < kReduceManyOutputs || inner_contiguous))
    return {ReduceKind::per_block, reduce_grid_for(outputs, 1), kReduceThreads};
  return {ReduceKind::per_thread, reduce_grid_for(outputs, kReduceThreads), kReduceThreads};
}

struct ReducePlan {
  int64_t outputs = 0, length = 0;
  int64_t splits = 1;  // chunks per output (1 unless pass1.kind == split)
  int64_t chunk = 0;   // elements per chunk (the last may be shorter)
  ReduceGrid pass1;    // split: one block per (output, chunk), grid-stride over the pairs
  ReduceGrid pass2;    // split only: over the [outputs, splits] partials
  int64_t partials() const { return pass1.kind == ReduceKind::split ? outputs * splits : 0; }
  // Chunk s of an output covers its elements [chunk_begin(s), chunk_end(s)).
  SG_HD int64_t chunk_begin(int64_t s) const { return s * chunk; }
  SG_HD int64_t chunk_end(int64_t s) const {
    const int64_t e = (s + 1) * chunk;
    return e < length ? e : length;
  }
};

inline ReducePlan plan_reduce(int64_t outputs, int64_t length, bool inner_contiguous) {
  ReducePlan p;
  p.outputs = outputs;
  p.length = length;
  p.chunk = length;
  p.pass1 = plan_reduce_pass(outputs, length, inner_contiguous);
  if (p.pass1.kind != ReduceKind::per_block || outputs >= kReduceTargetBlocks ||
      length < 2 * kReduceMinChunk)
    return p;
  const int64_t by_size = length / kReduceMinChunk;
  const int64_t by_device = (kReduceTargetBlocks + outputs - 1) / outputs;
  const int64_t want = by_size < by_device ? by_size : by_device;
  if (want < 2) return p;
  p.chunk = (length + want - 1) / want;
  p.splits = (length + p.chunk - 1) / p.chunk;
  p.pass1 = {ReduceKind::split, reduce_grid_for(outputs * p.splits, 1), kReduceThreads};
  p.pass2 = plan_reduce_pass(outputs, p.splits, true);
  return p;
}

// ---- the math -------------------------------------------------------------------------------
// Floating sums accumulate in double (as on the CPU: a float32 accumulator stops at 2^24 ones);
// integer sums wrap like two's complement; max/min start from -inf/+inf (the integer extremes
// for int64) and propagate NaN like fn::Maximum / fn::Minimum.
template <class T, ReduceOp Op>
struct ReduceFn {
  using Acc = std::conditional_t<Op == ReduceOp::sum && std::is_floating_point_v<T>, double, T>;
  SG_HD static Acc init() {
    if constexpr (Op == ReduceOp::sum) {
      return Acc(0);
    } else if constexpr (std::is_floating_point_v<Acc>) {
      return Op == ReduceOp::max ? Acc(-INFINITY) : Acc(INFINITY);
    } else {
      return Op == ReduceOp::max ? Acc(-9223372036854775807LL - 1) : Acc(9223372036854775807LL);
    }
  }
  SG_HD static Acc combine(Acc a, Acc b) {
    if constexpr (Op == ReduceOp::sum) {
      if constexpr (std::is_integral_v<Acc>) {
        using U = std::make_unsigned_t<Acc>;
        return static_cast<Acc>(static_cast<U>(a) + static_cast<U>(b));
      } else {
        return a + b;
      }
    } else if constexpr (Op == ReduceOp::max) {
      return fn::Maximum{}(a, b);
    } else {
      return fn::Minimum{}(a, b);
    }
  }
};

}  // namespace sg
