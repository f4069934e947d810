// Function transforms (JAX vocabulary), composable and usable under create_graph:
// grad, value_and_grad, vjp, jvp, hvp (forward-over-reverse or reverse-over-reverse),
// jacobian (reverse or forward), hessian, and the divergence of a vector field.
//
//   auto f  = [](const sg::Tensor& x) { return sg::sum(sg::sin(x) * x); };
//   auto g  = sg::grad(f, x);                                   // df/dx
//   auto h1 = sg::hvp(f, x, v);                                 // forward-over-reverse
//   auto h2 = sg::hvp(f, x, v, sg::HvpMode::reverse_over_reverse);
//   auto d  = sg::divergence(field, x, sg::Divergence::hutchinson(gen, /*probes=*/4));
//
// Derivative results are recorded on the tape whenever grad mode is on (so they can be
// differentiated again, e.g. a score-matching loss with respect to parameters); unreferenced
// records are released at once, so this costs little when nothing differentiates further.
//
// Every tensor a transform builds (basis vectors, probes, zeros) lies on its input's device
// with its dtype; a tangent, cotangent or direction on another device than the tensor it
// belongs to is refused with a DeviceError naming the transform, both devices and shapes.
#pragma once
#include <functional>
#include <utility>

#include "autodiff/core/rng.hpp"
#include "autodiff/core/tensor.hpp"
#include "autodiff/tape/autograd.hpp"

namespace sg {

using Fn = std::function<Tensor(const Tensor&)>;

Tensor grad(const Fn& f, const Tensor& x);  // f scalar-valued
std::pair<Tensor, Tensor> value_and_grad(const Fn& f, const Tensor& x);
Fn grad_fn(Fn f);  // x -> grad(f, x)
std::pair<Tensor, Tensor> vjp(const Fn& f, const Tensor& x,
                              const Tensor& cotangent);  // (f(x), c^T J)
std::pair<Tensor, Tensor> jvp(const Fn& f, const Tensor& x, const Tensor& tangent);  // (f(x), J t)

enum class HvpMode { forward_over_reverse, reverse_over_reverse };
Tensor hvp(const Fn& f, const Tensor& x, const Tensor& v,
           HvpMode mode = HvpMode::forward_over_reverse);

enum class JacobianMode { reverse, forward };
// Shape f(x).shape ++ x.shape: rows by VJPs (reverse) or columns by JVPs (forward).
Tensor jacobian(const Fn& f, const Tensor& x, JacobianMode mode = JacobianMode::reverse);
Tensor hessian(const Fn& f, const Tensor& x);  // x.shape ++ x.shape, forward over reverse

// Divergence sum_i df_i/dx_i of a field f: [B, ...] -> [B, ...] with independent samples
// along axis 0, one value per sample ([B]).
struct Divergence {
  enum class Kind { exact, hutchinson_rademacher, hutchinson_gaussian };
  Kind kind = Kind::exact;
  int probes = 1;            // Hutchinson: probes averaged per sample
  int chunk = 0;             // exact: 0 = one forward and D backward passes; c > 0 = c
                             // coordinates per backward pass on a c-fold replicated batch
  Generator* gen = nullptr;  // Hutchinson probe source
  static Divergence exact(int chunk = 0) { return {Kind::exact, 1, chunk, nullptr}; }
  static Divergence hutchinson(Generator& g, int probes = 1, bool gaussian = false) {
    return {gaussian ? Kind::hutchinson_gaussian : Kind::hutchinson_rademacher, probes, 0, &g};
  }
};
Tensor divergence(const Fn& f, const Tensor& x, const Divergence& method = Divergence::exact());

namespace detail {
// x itself if it already takes part in differentiation; otherwise a new leaf sharing its
// storage (and its forward-mode tangents) that requires grad.
Tensor track(const Tensor& x);
void copy_tangents(const Tensor& from, const Tensor& to);
// Rows e_first .. e_{first+count-1} of the n x n identity ([count, n]) on like's device, in
// like's dtype, built there without reading device memory.
Tensor unit_vectors(int64_t first, int64_t count, int64_t n, const Tensor& like);
// Unless t is on ref's device: DeviceError "op: <what> f64[2,3] on cpu is not on the device of
// <ref_name> f64[2,3] on standin:0".
void check_device(const char* op, const char* ref_name, const Tensor& ref, const char* what,
                  const Tensor& t);
}  // namespace detail

}  // namespace sg
