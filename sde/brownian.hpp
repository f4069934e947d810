// Brownian motion that answers increments on ANY sub-interval, consistently: the virtual
// Brownian tree (diffrax's VirtualBrownianTree, torchsde's BrownianInterval without the query
// order dependence). The interval [t0, t1] is bisected recursively; a node's values are drawn
// from the Brownian bridge given its parent's, with normals from the counter-based generator
// keyed on the node (the key is derived from the parent's by SplitMix64), so nothing is stored
// and every query, in any order and at any granularity, sees the same path:
//   W(a, c) == W(a, b) + W(b, c) to round-off, and bit-identical values for repeated queries.
// Below `tol` the path is the conditional mean given the leaf's values (linear in time, or the
// quadratic that matches the leaf's Levy area), so increments over intervals much longer than
// tol are exactly Brownian; dyadic query times (t0 + k (t1 - t0) / 2^j) stop at their node.
//
// With levy_area on, every node also carries the space-time Levy area
//   H(s, t) = 1/(t - s) int_s^t (W(u) - W(s) - (u - s)/(t - s) W(s, t)) du,
// independent of W(s, t), variance (t - s)/12, split consistently by Foster's bridge, which the
// stochastic Runge-Kutta methods of strong order 1.5 need (I_(1,0) = h (W/2 + H)).
// Time is float64; values are computed in float64 and returned in the requested dtype.
//
//   sg::BrownianTree W(/*seed=*/7, {4096, 2}, 0.0, 1.0, {.levy_area = true, .dtype =
//   sg::DType::f64}); sg::Tensor dw = W(0.1, 0.35);                 // W(0.35) - W(0.1) auto [w, h]
//   = W.increment(0.1, 0.35);         // with its space-time Levy area
#pragma once
#include <cstdint>
#include <memory>

#include "autodiff/core/tensor.hpp"

namespace sg {

struct BrownianIncrement {
  Tensor W;  // W(t) - W(s)
  Tensor H;  // space-time Levy area of [s, t]; undefined unless the source draws it
};

// Anything that answers Brownian increments on sub-intervals of [t0, t1] (what sdeint needs).
class BrownianMotion {
 public:
  virtual ~BrownianMotion() = default;
  // W(t) - W(s) (and H(s, t) when has_levy_area()) for t0 <= s, t <= t1 (s > t: W negated, H the
  // same).
  virtual BrownianIncrement increment(double s, double t) const = 0;
  virtual const Shape& shape() const = 0;
  virtual DType dtype() const = 0;
  virtual Device device() const = 0;  // where increment() returns its tensors
  virtual double t0() const = 0;
  virtual double t1() const = 0;
  virtual bool has_levy_area() const = 0;
  // Whether increment() answers any s, t in [t0, t1] (adaptive stepping needs it), or only
  // times on a grid.
  virtual bool any_time() const = 0;
  Tensor operator()(double s, double t) const { return increment(s, t).W; }
};

class BrownianTree final : public BrownianMotion {
 public:
  struct Options {
    double tol = 0;  // leaf length; 0: (t1 - t0) / 2^20
    bool levy_area = false;
    DType dtype = DType::f32;
    // Where increments are returned. The tree itself is drawn and kept on the host in float64,
    // so a path is the same on every device (bit for bit after the cast).
    Device device = {};
  };
  BrownianTree(uint64_t seed, Shape shape, double t0, double t1, Options o);
  BrownianTree(uint64_t seed, Shape shape, double t0, double t1)
      : BrownianTree(seed, std::move(shape), t0, t1, Options{}) {}

  BrownianIncrement increment(double s, double t) const override;
  const Shape& shape() const override { return shape_; }
  DType dtype() const override { return o_.dtype; }
  Device device() const override { return o_.device; }
  double t0() const override { return t0_; }
  double t1() const override { return t1_; }
  bool has_levy_area() const override { return o_.levy_area; }
  bool any_time() const override { return true; }
  double tol() const { return o_.tol; }
  // Nodes drawn so far (the cost: each is one or two normal draws of shape()). Sequential
  // queries reuse the last descent path, so a sweep of n steps costs about
  // n * (1 + log2(h / tol)) nodes, and n nodes when the steps are dyadic.
  int64_t nodes_drawn() const;

  struct Cache;  // the last descent path; shared by copies, guarded by a mutex

 private:
  uint64_t seed_;
  Shape shape_;
  double t0_, t1_;
  Options o_;
  std::shared_ptr<Cache> cache_;
};

}  // namespace sg
