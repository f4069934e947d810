// sdeint and its methods (see sdeint.hpp): the step grid with output stops, one step per
// method kind, input checks and the status of a solve.
#include "sde/sdeint.hpp"

#include <cmath>

#include "autodiff/ops/ops.hpp"
#include "autodiff/tape/autograd.hpp"
#include "autodiff/transforms/transforms.hpp"

namespace sg::sde {

const char* noise_name(Noise n) {
  switch (n) {
    case Noise::diagonal:
      return "diagonal";
    case Noise::scalar:
      return "scalar";
    case Noise::additive:
      return "additive";
  }
  return "?";
}

const Method& euler_maruyama() {
  static const Method m{"euler_maruyama", Method::Kind::euler_maruyama, 0.5, 1.0, 1.0};
  return m;
}
const Method& milstein() {
  static const Method m{"milstein", Method::Kind::milstein, 1.0, 1.0, 1.0};
  return m;
}
const Method& platen_weak2() {
  static const Method m{"platen_weak2", Method::Kind::platen_weak2, 1.0, 1.0, 2.0};
  return m;
}
// Rossler (2010), SRA1: strong order 1.5 for additive noise, weak order 2.
const Method& sra1() {
  static const Method m{"sra1",
                        Method::Kind::sra,
                        0.0,
                        1.5,
                        2.0,
                        true,
                        {.c0 = {0, 0.75},
                         .c1 = {1, 0},
                         .a0 = {0, 0, 0.75, 0},
                         .b0 = {0, 0, 1.5, 0},
                         .alpha = {1.0 / 3, 2.0 / 3},
                         .beta1 = {1, 0},
                         .beta2 = {-1, 1}}};
  return m;
}
const Method& method(const std::string& name) {
  for (const Method* m : {&euler_maruyama(), &milstein(), &platen_weak2(), &sra1()})
    if (m->name == name) return *m;
  fail<ValueError>("sde::method: unknown method '", name,
                   "' (known: euler_maruyama, milstein, platen_weak2, sra1)");
}

BrownianIncrement GridBrownian::increment(double s, double t) const {
  const double dt = (path_.t1() - path_.t0()) / double(path_.fine_steps());
  const auto index = [&](double u) {
    const double k = std::round((u - path_.t0()) / dt);
    if (!(std::abs(path_.t0() + k * dt - u) <= 1e-9 * std::abs(dt)) || k < 0 ||
        k > double(path_.fine_steps()))
      fail<ValueError>("GridBrownian: time ", u, " is not on the path's grid of ",
                       path_.fine_steps(), " steps over [", path_.t0(), ", ", path_.t1(),
                       "] (a BrownianTree answers any time)");
    return static_cast<int64_t>(k);
  };
  const int64_t a = index(s), b = index(t);
  if (a == b) return {zeros(path_.shape(), path_.dtype()), {}};
  return {a < b ? path_.increment(a, b) : -path_.increment(b, a), {}};
}

namespace {

Tensor checked(Tensor v, const char* what, const Shape& shape) {
  if (!broadcastable_to(v.shape(), shape))
    fail<ShapeError>("sdeint: ", what, " returned shape ", v.shape().str(),
                     ", which does not broadcast to y0's shape ", shape.str());
  return v;
}
// The drift and diffusion, counted and shape-checked.
struct Counted {
  const SdeDrift& f;
  const SdeDiffusion& g;
  const Shape& shape;
  Result& r;
  Tensor drift(const Tensor& y, double t) const {
    return ++r.nfe, checked(f(y, t), "drift", shape);
  }
  Tensor diffusion(const Tensor& y, double t) const {
    return ++r.nge, checked(g(y, t), "diffusion", shape);
  }
};

// One step from (y, t) over h with Brownian increment inc.
Tensor step(const Method& m, Noise noise, const Counted& F, const Tensor& y, double t, double h,
            const BrownianIncrement& inc) {
  const Tensor& dW = inc.W;
  switch (m.kind) {
    case Method::Kind::euler_maruyama:
      return y + F.drift(y, t) * h + F.diffusion(y, t) * dW;
    case Method::Kind::milstein: {
      // X' = X + f h + g dW + 1/2 (J_g g) (dW^2 - h); J_g g = g dg/dx for elementwise or scalar
      // noise, from one jvp of g with tangent g (zero for additive noise: skipped).
      const Tensor gy = F.diffusion(y, t);
      Tensor out = y + F.drift(y, t) * h + gy * dW;
      if (noise == Noise::additive) return out;
      ++F.r.nge;
      const Tensor jg =
          jvp([&](const Tensor& x) { return F.g(x, t); }, y, expand(gy, y.shape())).second;
      return out + jg * (square(dW) - h) * 0.5;
    }
    case Method::Kind::platen_weak2: {
      // Kloeden-Platen (15.1.1): Yb = X + a h + b dW, Y+- = X + a h +- b sqrt(h),
      // X' = X + (a(Yb, t+h) + a) h/2 + (b(Y+) + b(Y-) + 2 b) dW/4
      //        + (b(Y+) - b(Y-)) (dW^2 - h) / (4 sqrt(h)),  b(Y+-) at t + h.
      const Tensor a = F.drift(y, t), b = F.diffusion(y, t);
      const Tensor base = y + a * h;
      const Tensor sb = b * std::sqrt(h);
      const Tensor bp = F.diffusion(base + sb, t + h), bm = F.diffusion(base - sb, t + h);
      const Tensor ab = F.drift(base + b * dW, t + h);
      return y + (ab + a) * (h / 2) + (bp + bm + b * 2.0) * dW * 0.25 +
             (bp - bm) * (square(dW) - h) * (0.25 / std::sqrt(h));
    }
    case Method::Kind::sra: {
      const SraTableau& s = m.sra;
      const int n = s.stages();
      const Tensor i10h = dW * 0.5 + inc.H;  // I10 / h
      std::vector<Tensor> fs(n), gs(n);
      Tensor out = y;
      for (int i = 0; i < n; ++i) {
        Tensor hi = y;
        for (int j = 0; j < i; ++j) {
          if (const double a = s.a0[i * n + j]) hi = hi + fs[j] * (a * h);
          if (const double b = s.b0[i * n + j]) hi = hi + gs[j] * i10h * b;
        }
        fs[i] = F.drift(hi, t + s.c0[i] * h);
        gs[i] = F.diffusion(y, t + s.c1[i] * h);  // additive: the state argument is unused
        out = out + fs[i] * (s.alpha[i] * h) + gs[i] * (dW * s.beta1[i] + i10h * s.beta2[i]);
      }
      return out;
    }
  }
  return y;
}

bool finite(const Tensor& y) {
  NoGradGuard off;
  return std::isfinite(sum(y.detach()).item());
}

}  // namespace

Result sdeint(const SdeDrift& f, const SdeDiffusion& g, const Tensor& y0, double t0, double t1,
              const BrownianMotion& W, const Options& o) {
  const Method& m = o.method ? *o.method : euler_maruyama();
  if (!f || !g) fail<ValueError>("sdeint: drift and diffusion must be callable");
  if (!y0.defined()) fail<ValueError>("sdeint: y0 is undefined");
  if (!is_floating(y0.dtype()))
    fail<DTypeError>("sdeint: y0 must be floating, got ", dtype_name(y0.dtype()));
  if (W.dtype() != y0.dtype())
    fail<DTypeError>("sdeint: the Brownian motion's dtype ", dtype_name(W.dtype()),
                     " differs from y0's ", dtype_name(y0.dtype()));
  if (!std::isfinite(t0) || !std::isfinite(t1) || !(t0 < t1))
    fail<ValueError>("sdeint: needs finite t0 < t1, got t0 = ", t0, ", t1 = ", t1);
  if (t0 < W.t0() || t1 > W.t1())
    fail<ValueError>("sdeint: [t0, t1] = [", t0, ", ", t1,
                     "] is not inside the Brownian motion's interval [", W.t0(), ", ", W.t1(), "]");
  if (o.steps < 0) fail<ValueError>("sdeint: options.steps must be >= 1, got ", o.steps);
  if (!(o.dt >= 0) || !std::isfinite(o.dt))
    fail<ValueError>("sdeint: options.dt must be finite and > 0, got ", o.dt);
  if ((o.steps > 0) == (o.dt > 0))
    fail<ValueError>(
        "sdeint: give exactly one of options.steps > 0 and options.dt > 0 (got "
        "steps = ",
        o.steps, ", dt = ", o.dt, ")");
  if (o.max_steps <= 0)
    fail<ValueError>("sdeint: options.max_steps must be >= 1, got ", o.max_steps);
  for (size_t i = 0; i < o.output_times.size(); ++i) {
    const double ti = o.output_times[i];
    if (!(ti >= t0 && ti <= t1))
      fail<ValueError>("sdeint: options.output_times[", i, "] = ", ti, " is outside [", t0, ", ",
                       t1, "]");
    if (i && ti < o.output_times[i - 1])
      fail<ValueError>("sdeint: options.output_times must be non-decreasing, but [", i, "] = ", ti,
                       " < [", i - 1, "] = ", o.output_times[i - 1]);
  }
  const Shape& ws = W.shape();
  if (o.noise == Noise::diagonal ? ws != y0.shape() : !broadcastable_to(ws, y0.shape()))
    fail<ShapeError>("sdeint: the Brownian motion's shape ", ws.str(),
                     o.noise == Noise::diagonal ? " must equal" : " must broadcast to",
                     " y0's shape ", y0.shape().str(), " for ", noise_name(o.noise), " noise");
  if (m.kind == Method::Kind::sra && o.noise != Noise::additive)
    fail<ValueError>("sdeint: method ", m.name,
                     " is for additive noise only (options.noise = additive), got ",
                     noise_name(o.noise), " noise");
  if (m.needs_levy_area && !W.has_levy_area())
    fail<ValueError>(
        "sdeint: method ", m.name,
        " needs the space-time Levy area: build the BrownianTree with levy_area = true");

  Result r;
  const Counted F{f, g, y0.shape(), r};
  // Grid points t0 + k h (the last one t1); output times are extra stops.
  const double span = t1 - t0;
  const double h = o.steps > 0 ? span / double(o.steps) : o.dt;
  const double n_real = o.steps > 0 ? double(o.steps) : std::ceil(span / h - 1e-9);
  const int64_t n_grid = n_real > 9e15 ? int64_t(9e15) : std::max<int64_t>(1, int64_t(n_real));
  const auto grid = [&](int64_t k) { return k >= n_grid ? t1 : t0 + double(k) * h; };
  Tensor y = y0;
  double t = t0;
  int64_t k = 0;
  size_t oi = 0;
  const auto emit = [&] {
    while (oi < o.output_times.size() && o.output_times[oi] <= t) r.ys.push_back(y), ++oi;
  };
  emit();
  while (t < t1) {
    if (r.steps >= o.max_steps) {
      r.status = ode::Status::too_many_steps;
      break;
    }
    double next = grid(k + 1);
    if (oi < o.output_times.size() && o.output_times[oi] < next) {
      // an output time within round-off of the grid point replaces it
      if (next - o.output_times[oi] <= 1e-9 * h) ++k;
      next = o.output_times[oi];
    } else {
      ++k;
    }
    y = step(m, o.noise, F, y, t, next - t, W.increment(t, next));
    t = next;
    ++r.steps;
    if (!finite(y)) {
      r.status = ode::Status::non_finite;
      break;
    }
    emit();
  }
  r.y = y;
  r.t = t;
  return r;
}

}  // namespace sg::sde
