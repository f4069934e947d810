// The backend seam: the dozen entry points an op's forward may call, one implementation per
// device (cpu/ now, cuda/ behind SG_CUDA). Ops never touch raw buffers outside these calls,
// so a new device plugs in without touching any op definition.
#pragma once
#include <cstddef>
#include <cstdint>

#include "autodiff/backend/conv_geometry.hpp"
#include "autodiff/backend/functors.hpp"
#include "autodiff/core/shape.hpp"
#include "autodiff/core/storage.hpp"

namespace sg {

// A strided view handed to kernels: data already offset, shape and strides in elements.
struct KView {
  void* data = nullptr;
  Shape shape;
  Shape strides;
  DType dtype = DType::f32;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Storage* allocate(std::size_t nbytes) = 0;
  // Copies between this device and the host (dst_on_host says the direction).
  virtual void memcpy_host(void* dst, const void* src, std::size_t nbytes, bool dst_on_host) = 0;
  // Copies nbytes from `src` on device `from` to `dst` on device `to` (this backend's device;
  // both devices of this backend, e.g. cuda:i -> cuda:j) without going through the host.
  // Returns false when the backend has no such path; the caller then stages through host
  // memory (the default, which every backend supports).
  virtual bool copy_between_devices(void* dst, Device to, const void* src, Device from,
                                    std::size_t nbytes) {
    (void)dst, (void)to, (void)src, (void)from, (void)nbytes;
    return false;
  }
  // dst = src elementwise over dst.shape (src strides already broadcast), converting dtype.
  virtual void copy(const KView& src, const KView& dst) = 0;
  virtual void fill(const KView& dst, double value) = 0;
  virtual void unary(UnaryOp op, double scalar, const KView& x, const KView& out) = 0;
  // a and b carry strides broadcast to out.shape; comparisons write bool.
  virtual void binary(BinaryOp op, const KView& a, const KView& b, const KView& out) = 0;
  virtual void where(const KView& cond, const KView& a, const KView& b, const KView& out) = 0;
  // out has x's rank with extent 1 on every reduced axis.
  virtual void reduce(ReduceOp op, const KView& x, const KView& out) = 0;
  // Batched out[..., m, n] = a[..., m, k] b[..., k, n]; batch strides broadcast to out's.
  virtual void matmul(const KView& a, const KView& b, const KView& out) = 0;
  // out[i...] = x[i with i_axis replaced by idx[i...]]; idx strides broadcast to out.shape.
  virtual void gather(const KView& x, const KView& idx, int axis, const KView& out) = 0;
  // out[i with i_axis replaced by idx[i...]] += src[i...], over src.shape.
  virtual void scatter_add(const KView& idx, const KView& src, int axis, const KView& out) = 0;
  // One pass of a 2-D convolution (see conv_geometry.hpp); a, b and out are contiguous and share
  // out's floating dtype.
  virtual void conv2d(ConvPass pass, const ConvGeom& g, const KView& a, const KView& b,
                      const KView& out) = 0;
  virtual void random(RandomKind kind, double p, uint64_t seed, uint64_t offset,
                      const KView& out) = 0;
};

Backend& backend_for(Device d);
Backend& cpu_backend();
// The testing device standin:i (i < kStandinDevices; DeviceError beyond), see standin/.
inline constexpr int kStandinDevices = 4;
Backend& standin_backend(int index);
// Registered by the CUDA backend when it is compiled in (nullptr otherwise).
void register_cuda_backend(Backend* b);

}  // namespace sg
