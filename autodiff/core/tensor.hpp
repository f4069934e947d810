// Tensor: a handle to an N-d strided view of a reference-counted Storage, with its autodiff
// state (leaf flag, accumulated grad, the tape node that produced it, forward-mode tangents).
//
//   sg::Tensor x = sg::randn({512, 2}, gen);          // float32 by default
//   sg::Tensor w = sg::zeros({2, 2}, sg::DType::f64).requires_grad_();
//   std::cout << x.shape().str() << " " << sg::sum(x).item() << "\n";
//
// Handles held by user code are "external" references; the tape holds its own internal ones.
// A tape node is released as soon as no external handle can reach it (see tape/tape.hpp).
#pragma once
#include <cstdint>
#include <iosfwd>
#include <vector>

#include "autodiff/core/dtype.hpp"
#include "autodiff/core/error.hpp"
#include "autodiff/core/shape.hpp"
#include "autodiff/core/small_vec.hpp"
#include "autodiff/core/storage.hpp"

namespace sg {

struct TensorImpl;
class Tape;
void intrusive_release(TensorImpl* t);
using TensorRef = IntrusivePtr<TensorImpl>;  // internal (tape-held) reference

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(TensorImpl* impl);
  explicit Tensor(const TensorRef& r) : Tensor(r.get()) {}
  Tensor(const Tensor& o) : Tensor(o.p_) {}
  Tensor(Tensor&& o) noexcept : p_(o.p_) { o.p_ = nullptr; }
  Tensor& operator=(const Tensor& o);
  Tensor& operator=(Tensor&& o) noexcept;
  ~Tensor() { reset(); }
  void reset();

  bool defined() const { return p_ != nullptr; }
  explicit operator bool() const { return p_ != nullptr; }
  TensorImpl* impl() const { return p_; }
  TensorRef ref() const { return TensorRef(p_); }

  const Shape& shape() const;
  const Shape& strides() const;
  int rank() const { return shape().rank(); }
  int64_t dim(int64_t axis) const;  // negative axes count from the end
  int64_t numel() const { return shape().numel(); }
  DType dtype() const;
  Device device() const;
  bool is_contiguous() const;
  int64_t offset() const;
  const StoragePtr& storage() const;

  // Raw element access, CPU tensors only (DeviceError otherwise: copy with to(Device::cpu())).
  // data<T>() points at element [0,...,0]; checks the dtype.
  template <class T>
  T* data() const;
  void* raw_data() const;
  double item() const;                    // the single element, as double
  std::vector<double> to_vector() const;  // all elements in row-major order, as double
  template <class T>
  std::vector<T> values() const;

  // Autodiff state.
  bool requires_grad() const;  // a leaf marked for gradients, or the output of a recorded op
  bool is_leaf() const;        // not produced by a live tape node
  Tensor& requires_grad_(bool on = true);
  Tensor grad() const;  // accumulated by backward() into leaves
  void set_grad(const Tensor& g) const;
  void zero_grad() const;
  Tensor detach() const;  // same storage, no autodiff state

  // Conveniences that forward to the op table (see ops/ops.hpp).
  Tensor reshape(const Shape& s) const;
  Tensor to(DType t) const;
  Tensor to(Device d) const;
  Tensor contiguous() const;
  Tensor clone() const;
  Tensor mT() const;                   // transpose of the last two axes
  Tensor operator[](int64_t i) const;  // select index i along axis 0

 private:
  TensorImpl* p_ = nullptr;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);
std::string to_string(const Tensor& t);
// Describes a tensor for messages: "float32[2,3]" (device appended when not cpu).
std::string describe(const Tensor& t);

// A forward-mode tangent attached to a tensor at one level of nested jvp.
struct LevelTangent {
  uint64_t level = 0;
  Tensor tangent;
};

struct TensorImpl {
  TensorImpl(StoragePtr s, const Shape& shape, const Shape& strides, int64_t offset, DType dt);
  ~TensorImpl();
  TensorImpl(const TensorImpl&) = delete;
  TensorImpl& operator=(const TensorImpl&) = delete;
  static void* operator new(std::size_t n);  // from the small-block pool
  static void operator delete(void* p, std::size_t n);

  std::atomic<int32_t> refs{0};
  // Handles held outside the tape, counted only while linked to a tape (such tensors belong
  // to the thread that recorded them, so the count needs no atomics).
  int32_t ext_refs = 0;
  Shape shape;
  Shape strides;  // in elements
  int64_t offset = 0;
  DType dtype;
  bool contiguous = true;
  bool requires_grad = false;  // leaf flag
  StoragePtr storage;

  // Link to the node that produced it, valid while tape->nodes[node].serial == serial.
  Tape* tape = nullptr;
  uint32_t node = 0;
  uint64_t serial = 0;

  Tensor grad;                         // accumulated leaf gradient
  SmallVec<LevelTangent, 1> tangents;  // forward-mode tangents by level

  void* data_ptr() const {
    return static_cast<char*>(storage->data) + offset * static_cast<int64_t>(itemsize(dtype));
  }
};

// ---- inline handle plumbing --------------------------------------------------------------
namespace detail {
void on_external_zero(TensorImpl* t);  // last external handle dropped (tape bookkeeping)
void on_external_one(TensorImpl* t);   // first external handle taken
}  // namespace detail

inline Tensor::Tensor(TensorImpl* impl) : p_(impl) {
  if (p_) {
    p_->refs.fetch_add(1, std::memory_order_relaxed);
    if (p_->tape && p_->ext_refs++ == 0) detail::on_external_one(p_);
  }
}
inline void Tensor::reset() {
  if (!p_) return;
  TensorImpl* p = p_;
  p_ = nullptr;
  if (p->tape && --p->ext_refs == 0) detail::on_external_zero(p);
  if (p->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) intrusive_release(p);
}
inline Tensor& Tensor::operator=(const Tensor& o) {
  if (this != &o) {
    Tensor tmp(o);
    *this = std::move(tmp);
  }
  return *this;
}
inline Tensor& Tensor::operator=(Tensor&& o) noexcept {
  if (this != &o) {
    reset();
    p_ = o.p_;
    o.p_ = nullptr;
  }
  return *this;
}
inline const Shape& Tensor::shape() const { return p_->shape; }
inline const Shape& Tensor::strides() const { return p_->strides; }
inline DType Tensor::dtype() const { return p_->dtype; }
inline Device Tensor::device() const { return p_->storage->device; }
inline bool Tensor::is_contiguous() const { return p_->contiguous; }
inline int64_t Tensor::offset() const { return p_->offset; }
inline const StoragePtr& Tensor::storage() const { return p_->storage; }
namespace detail {
[[noreturn]] void fail_host_access(const Tensor& t, const char* what);
}
inline void* Tensor::raw_data() const {
  if (!p_->storage->device.is_cpu()) detail::fail_host_access(*this, "raw_data");
  return p_->data_ptr();
}
template <class T>
T* Tensor::data() const {
  if (!p_->storage->device.is_cpu()) detail::fail_host_access(*this, "data");
  if (p_->dtype != dtype_v<T>)
    fail<DTypeError>("data<", dtype_name(dtype_v<T>), ">: tensor has dtype ",
                     dtype_name(p_->dtype));
  return static_cast<T*>(p_->data_ptr());
}

}  // namespace sg
