// The oneDNN convolution behind the CPU backend (see dnnl_conv.cpp).
#pragma once
#include "autodiff/backend/conv_geometry.hpp"

namespace sg::cpu {

// Runs one float32 convolution pass over contiguous NCHW / OIHW buffers with oneDNN, on
// omp_get_max_threads() threads. False (nothing written) when scoregrad is built without oneDNN
// or oneDNN has no implementation for this geometry.
bool dnnl_conv2d(ConvPass pass, const ConvGeom& g, const float* a, const float* b, float* out);

}  // namespace sg::cpu
