// Geometry of a 2-D convolution over NCHW tensors with OIHW weights and zero padding, written
// once for the op table's shape rules, the CPU backend's im2col/col2im and the CUDA kernels.
// The column matrix of x has one row per (c, i, j) patch offset and one column per
// (n, oh, ow) output position: cols[(c, i, j), (n, oh, ow)] = x[n, c, sh oh + i - ph, sw ow + j -
// pw].
#pragma once
#include <cstdint>

#include "autodiff/backend/functors.hpp"

namespace sg {

// forward:     out[N, O, Ho, Wo] = conv2d(a = x [N, C, H, W], b = w [O, C, kh, kw])
// input_grad:  out[N, C, H, W]   = conv_transpose2d(a = g [N, O, Ho, Wo], b = w)
// weight_grad: out[O, C, kh, kw] = conv2d_weight_grad(a = x, b = g)
enum class ConvPass : uint8_t { forward, input_grad, weight_grad };

struct ConvGeom {
  int64_t N = 0, C = 0, H = 0, W = 0;  // input
  int64_t O = 0, kh = 0, kw = 0;       // weight [O, C, kh, kw]
  int64_t sh = 1, sw = 1, ph = 0, pw = 0;
  int64_t Ho = 0, Wo = 0;  // output

  SG_HD int64_t patch_rows() const { return C * kh * kw; }
  SG_HD int64_t positions() const { return N * Ho * Wo; }
  // Offset in contiguous x of column-matrix entry (row r, column q); -1 in the padding.
  SG_HD int64_t source(int64_t r, int64_t q) const {
    const int64_t j = r % kw, i = (r / kw) % kh, c = r / (kw * kh);
    const int64_t ow = q % Wo, oh = (q / Wo) % Ho, n = q / (Wo * Ho);
    const int64_t y = oh * sh + i - ph, x = ow * sw + j - pw;
    if (y < 0 || y >= H || x < 0 || x >= W) return -1;
    return ((n * C + c) * H + y) * W + x;
  }
  // col2im at input element e = (n, c, y, x): the sum of every column-matrix entry that reads it,
  // in a fixed order (so a parallel col2im needs no atomics and is deterministic).
  template <class T>
  SG_HD T fold_at(const T* cols, int64_t e) const {
    const int64_t x = e % W, y = (e / W) % H, c = (e / (W * H)) % C, n = e / (W * H * C);
    const int64_t L = positions();
    T acc = T(0);
    for (int64_t i = 0; i < kh; ++i) {
      const int64_t ty = y + ph - i;
      if (ty < 0 || ty % sh || ty / sh >= Ho) continue;
      for (int64_t j = 0; j < kw; ++j) {
        const int64_t tx = x + pw - j;
        if (tx < 0 || tx % sw || tx / sw >= Wo) continue;
        acc += cols[((c * kh + i) * kw + j) * L + (n * Ho + ty / sh) * Wo + tx / sw];
      }
    }
    return acc;
  }
};

// Output extent of a convolution along one axis (0 or less: the kernel does not fit).
inline constexpr int64_t conv_out_extent(int64_t in, int64_t k, int64_t stride, int64_t pad) {
  return in + 2 * pad < k ? 0 : (in + 2 * pad - k) / stride + 1;
}

}  // namespace sg
