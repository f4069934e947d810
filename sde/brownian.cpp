// The virtual Brownian tree (see brownian.hpp): bridge bisection keyed on the node, with the
// space-time Levy area split by Foster's formulas, and a cache of the last descent path.
#include "sde/brownian.hpp"

#include <cmath>
#include <mutex>
#include <vector>

#include "autodiff/core/rng.hpp"
#include "autodiff/ops/ops.hpp"
#include "autodiff/tape/autograd.hpp"

namespace sg {

namespace {
uint64_t mix(uint64_t z) {  // SplitMix64 finaliser
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
uint64_t child_key(uint64_t parent, int side) {
  return mix(parent + 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(side + 1));
}
}  // namespace

// A tree node [a, b]: W(a) and J(a) = int_{t0}^a W (relative to W(t0) = 0), and its own
// increment W and space-time Levy area H (H undefined without Levy area). Tree* names: these
// types have external linkage, and a struct Node here was the tape's sg::Node to the linker.
struct TreeNode {
  double a, b;
  uint64_t key;
  Tensor Wa, Ja, W, H;
};
struct TreePoint {
  double t = NAN;
  Tensor W, J;
};
struct TreeLevel {
  TreeNode node;
  std::vector<TreeNode> kids;  // its two halves once split (kept, so a sweep splits each node once)
};
struct BrownianTree::Cache {
  std::mutex m;
  std::vector<TreeLevel> path;  // root first; each node contains the next
  TreePoint last[2];            // the two most recent points
  int next = 0;
  int64_t nodes = 0;
};

BrownianTree::BrownianTree(uint64_t seed, Shape shape, double t0, double t1, Options o)
    : seed_(seed), shape_(std::move(shape)), t0_(t0), t1_(t1), o_(o) {
  if (!std::isfinite(t0) || !std::isfinite(t1) || !(t0 < t1))
    fail<ValueError>("BrownianTree: needs finite t0 < t1, got t0 = ", t0, ", t1 = ", t1);
  if (!(o_.tol >= 0) || !std::isfinite(o_.tol))
    fail<ValueError>("BrownianTree: tol must be finite and >= 0 (0: the default), got ", o_.tol);
  if (!is_floating(o_.dtype))
    fail<DTypeError>("BrownianTree: dtype must be floating, got ", dtype_name(o_.dtype));
  checked_numel(shape_, "BrownianTree");
  if (o_.tol == 0) o_.tol = (t1 - t0) / double(1 << 20);
  cache_ = std::make_shared<Cache>();
}

int64_t BrownianTree::nodes_drawn() const {
  std::lock_guard<std::mutex> lock(cache_->m);
  return cache_->nodes;
}

namespace {
// Bridge split of node n at its midpoint into (left, right), n.b - n.a = h:
//   W_l = W/2 + sqrt(h)/2 Z1                                               (no Levy area)
//   W_l = W/2 + 3/2 H + sqrt(h)/4 Z1,  H_l = H/4 - sqrt(h)/8 Z1 + sqrt(h/48) Z2,
//   W_r = W - W_l,  H_r = 2 H - (W_l - W_r)/2 - H_l
// (from W = W_l + W_r, H = (W_l - W_r)/4 + (H_l + H_r)/2 for independent halves with
// Var W_. = h/2, Var H_. = h/24: the conditional law of (W_l, H_l) given (W, H)).
std::pair<TreeNode, TreeNode> split(const TreeNode& n, const Shape& shape, bool levy) {
  const double h = n.b - n.a, m = n.a + h / 2;
  Generator g(n.key);
  const Tensor z1 = randn(shape, g, DType::f64);
  TreeNode l{n.a, m, child_key(n.key, 0), n.Wa, n.Ja, {}, {}};
  TreeNode r{m, n.b, child_key(n.key, 1), {}, {}, {}, {}};
  if (!levy) {
    l.W = n.W * 0.5 + z1 * (std::sqrt(h) / 2);
    r.W = n.W - l.W;
    r.Wa = n.Wa + l.W;
    return {l, r};
  }
  const Tensor z2 = randn(shape, g, DType::f64);
  l.W = n.W * 0.5 + n.H * 1.5 + z1 * (std::sqrt(h) / 4);
  l.H = n.H * 0.25 - z1 * (std::sqrt(h) / 8) + z2 * std::sqrt(h / 48);
  r.W = n.W - l.W;
  r.H = n.H * 2.0 - (l.W - r.W) * 0.5 - l.H;
  r.Wa = n.Wa + l.W;
  r.Ja = n.Ja + (n.Wa + l.W * 0.5 + l.H) * (h / 2);  // int over [a, m] = (h/2)(W(a) + W_l/2 + H_l)
  return {l, r};
}
}  // namespace

BrownianIncrement BrownianTree::increment(double s, double t) const {
  for (double v : {s, t})
    if (!(v >= t0_ && v <= t1_))
      fail<ValueError>("BrownianTree: query time ", v, " is outside [", t0_, ", ", t1_, "]");
  NoGradGuard off;
  const bool levy = o_.levy_area;
  Cache& c = *cache_;
  std::lock_guard<std::mutex> lock(c.m);
  if (c.path.empty()) {
    Generator g(mix(seed_ ^ 0xD1B54A32D192ED03ull));
    const double T = t1_ - t0_;
    TreeNode root{t0_,
                  t1_,
                  mix(seed_ + 0x632BE59BD9B4E019ull),
                  zeros(shape_, DType::f64),
                  zeros(shape_, DType::f64),
                  randn(shape_, g, DType::f64) * std::sqrt(T),
                  {}};
    if (levy) root.H = randn(shape_, g, DType::f64) * std::sqrt(T / 12);
    c.path.push_back({root, {}});
    ++c.nodes;
  }
  // W(u) and J(u) = int_{t0}^u W. Every u has one canonical descent: through the half-open
  // nodes [a, b) that contain it, stopping at the first with a == u (or at a leaf), so the
  // values are bit-identical whatever was cached before; u = t1 is the root's end.
  auto point = [&](double u) -> TreePoint {
    for (const TreePoint& p : c.last)
      if (p.t == u) return p;
    TreePoint p{u, {}, {}};
    if (u == t1_) {
      const TreeNode& n = c.path.front().node;
      p.W = n.W;
      if (levy) p.J = (n.W * 0.5 + n.H) * (t1_ - t0_);
    } else {
      while (c.path.size() > 1 && !(c.path.back().node.a <= u && u < c.path.back().node.b))
        c.path.pop_back();
      for (;;) {
        TreeLevel& lv = c.path.back();
        const TreeNode& n = lv.node;
        const double h = n.b - n.a;
        if (u == n.a) {
          p.W = n.Wa, p.J = n.Ja;
          break;
        }
        if (h <= o_.tol) {
          // Leaf: the conditional mean path given (W, H): m(r) = r W + 6 r (1 - r) H,
          // r = (u-a)/h, with int_0^r m = h (r^2/2 W + (3 r^2 - 2 r^3) H); linear without H.
          const double r = (u - n.a) / h;
          if (!levy) {
            p.W = n.Wa + n.W * r;
            break;
          }
          p.W = n.Wa + n.W * r + n.H * (6 * r * (1 - r));
          p.J =
              n.Ja + n.Wa * (u - n.a) + (n.W * (r * r / 2) + n.H * (3 * r * r - 2 * r * r * r)) * h;
          break;
        }
        if (lv.kids.empty()) {
          auto [l, rt] = split(n, shape_, levy);
          lv.kids = {std::move(l), std::move(rt)};
          ++c.nodes;
        }
        const TreeNode& child = u < lv.kids[0].b ? lv.kids[0] : lv.kids[1];
        c.path.push_back({child, {}});  // (lv is invalid from here)
      }
    }
    c.last[c.next] = p;
    c.next ^= 1;
    return p;
  };
  const TreePoint ps = point(s);
  const TreePoint pt = point(t);
  BrownianIncrement out;
  if (s == t) {
    out.W = zeros(shape_, o_.dtype, o_.device);
    if (levy) out.H = zeros(shape_, o_.dtype, o_.device);
    return out;
  }
  const Tensor w = pt.W - ps.W;
  out.W = w.to(o_.dtype).to(o_.device);
  // H(s, t) = (J(t) - J(s))/(t - s) - W(s) - W(s, t)/2 (the same formula for s > t)
  if (levy) out.H = ((pt.J - ps.J) * (1 / (t - s)) - ps.W - w * 0.5).to(o_.dtype).to(o_.device);
  return out;
}

}  // namespace sg
