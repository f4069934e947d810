// Forward-mode differentiation by tangent propagation. While a DualLevel is open, every op
// whose inputs carry tangents at that level computes its output tangent with its JVP rule.
// Levels nest (jvp of jvp); a tangent at level L may itself carry tangents at outer levels,
// never at inner ones. Rules run through the ordinary op machinery, so forward composes with
// reverse mode: jvp(grad(f)) is a forward-over-reverse Hessian-vector product.
//
//   sg::DualLevel lvl;
//   auto xd = lvl.make_dual(x, v);
//   auto y  = f(xd);
//   auto jv = lvl.tangent(y);   // J v
#pragma once
#include <cstdint>

#include "autodiff/core/tensor.hpp"

namespace sg {

class DualLevel {
 public:
  DualLevel();
  ~DualLevel();  // drops every tangent recorded at this level
  DualLevel(const DualLevel&) = delete;
  DualLevel& operator=(const DualLevel&) = delete;

  // A new tensor equal to `primal` (reverse-mode history kept) carrying `tangent`.
  Tensor make_dual(const Tensor& primal, const Tensor& tangent) const;
  // The tangent of t at this level; zeros of t's shape if t does not depend on any dual.
  Tensor tangent(const Tensor& t) const;
  bool has_tangent(const Tensor& t) const;
  uint64_t id() const { return id_; }

 private:
  uint64_t id_;
};

}  // namespace sg
