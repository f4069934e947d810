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
// Rossler (2010), SRI1W1 (Table 5.2 there; "SRIW1"): strong order 1.5 for diagonal and scalar
// noise, weak order 2, deterministic order 2.
const Method& sriw1() {
  static const Method m{.name = "sriw1",
                        .kind = Method::Kind::sri,
                        .strong_order = 1.5,
                        .strong_order_additive = 1.5,
                        .weak_order = 2.0,
                        .needs_levy_area = true,
                        .sri = {.c0 = {0, 0.75, 0, 0},
                                .c1 = {0, 0.25, 1, 0.25},
                                .a0 = {0, 0, 0, 0, 0.75, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
                                .a1 = {0, 0, 0, 0, 0.25, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0.25, 0},
                                .b0 = {0, 0, 0, 0, 1.5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
                                .b1 = {0, 0, 0, 0, 0.5, 0, 0, 0, -1, 0, 0, 0, -5, 3, 0.5, 0},
                                .alpha = {1.0 / 3, 2.0 / 3, 0, 0},
                                .beta1 = {-1, 4.0 / 3, 2.0 / 3, 0},
                                .beta2 = {-1, 4.0 / 3, -1.0 / 3, 0},
                                .beta3 = {2, -4.0 / 3, -2.0 / 3, 0},
                                .beta4 = {-2, 5.0 / 3, -2.0 / 3, 1}}};
  return m;
}
const Method& method(const std::string& name) {
  for (const Method* m : {&euler_maruyama(), &milstein(), &platen_weak2(), &sra1(), &sriw1()})
    if (m->name == name) return *m;
  fail<ValueError>("sde::method: unknown method '", name,
                   "' (known: euler_maruyama, milstein, platen_weak2, sra1, sriw1)");
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
  if (a == b) return {zeros(path_.shape(), path_.dtype(), path_.device()), {}};
  return {a < b ? path_.increment(a, b) : -path_.increment(b, a), {}};
}

namespace {

Tensor checked(Tensor v, const char* what, const Shape& shape) {
  if (!broadcastable_to(v.shape(), shape))
    fail<ShapeError>("sdeint: ", what, " returned shape ", v.shape().str(),
                     ", which does not broadcast to y0's shape ", shape.str());
  return v;
}
// The drift and diffusion, counted and shape-checked. Evaluations at pinned points (the same
// state object and time) are kept and reused: SRIW1's stages that sit at (X, t), and in step
// doubling the whole step and the first half step (both start at (X, t)), the second half's
// stages at its start, and the retry of a rejected step. Two pins, the least recent replaced.
struct Counted {
  struct Pin {
    Tensor x, f, g, j;  // the state and its evaluations so far
    double t = NAN;
    int64_t used = 0;
  };
  const SdeDrift& f;
  const SdeDiffusion& g;
  const Shape& shape;
  Result& r;
  mutable Pin pins[2];
  mutable int64_t clock = 0;
  void pin(const Tensor& y, double t) const {
    Pin* p = find(y, t);
    if (!p) *(p = pins[0].used <= pins[1].used ? &pins[0] : &pins[1]) = {y, {}, {}, {}, t, 0};
    p->used = ++clock;
  }
  Pin* find(const Tensor& y, double t) const {
    for (Pin& p : pins)
      if (p.x.defined() && p.x.impl() == y.impl() && p.t == t) return &p;
    return nullptr;
  }
  // the value of slot `which` at (y, t): remembered when pinned, else evaluated by `eval`
  template <class F>
  Tensor memo(Tensor Pin::*which, const Tensor& y, double t, F&& eval) const {
    Pin* p = find(y, t);
    if (p && (p->*which).defined()) return p->*which;
    Tensor v = eval();
    if (p) p->*which = v;
    return v;
  }
  Tensor drift(const Tensor& y, double t) const {
    return memo(&Pin::f, y, t, [&] { return ++r.nfe, checked(f(y, t), "drift", shape); });
  }
  Tensor diffusion(const Tensor& y, double t) const {
    return memo(&Pin::g, y, t, [&] { return ++r.nge, checked(g(y, t), "diffusion", shape); });
  }
  // J_g g at (y, t): one jvp of g with tangent g(y, t)
  Tensor jvp_gg(const Tensor& y, double t) const {
    return memo(&Pin::j, y, t, [&] {
      const Tensor gy = diffusion(y, t);
      ++r.nge;
      return jvp([&](const Tensor& x) { return g(x, t); }, y, expand(gy, y.shape())).second;
    });
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
      return out + F.jvp_gg(y, t) * (square(dW) - h) * 0.5;
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
    case Method::Kind::sri: {
      const SriTableau& s = m.sri;
      const int n = s.stages();
      const double sq = std::sqrt(h);
      const Tensor i10h = dW * 0.5 + inc.H;                             // I10 / h
      const Tensor i11s = (square(dW) - h) * (0.5 / sq);                // I11 / sqrt(h)
      const Tensor i111h = (dW * square(dW) - dW * (3 * h)) / (6 * h);  // I111 / h
      // f of stage j is needed where alpha_j or a column entry of A0 / A1 below it is nonzero
      const auto f_needed = [&](int j) {
        bool need = s.alpha[j] != 0;
        for (int i = j + 1; i < n; ++i) need = need || s.a0[i * n + j] != 0 || s.a1[i * n + j] != 0;
        return need;
      };
      std::vector<Tensor> fs(n), gs(n);
      Tensor out = y;
      for (int i = 0; i < n; ++i) {
        Tensor h0 = y, h1 = y;  // unchanged objects when a row is zero (the memo sees them)
        for (int j = 0; j < i; ++j) {
          if (const double a = s.a0[i * n + j]) h0 = h0 + fs[j] * (a * h);
          if (const double b = s.b0[i * n + j]) h0 = h0 + gs[j] * i10h * b;
          if (const double a = s.a1[i * n + j]) h1 = h1 + fs[j] * (a * h);
          if (const double b = s.b1[i * n + j]) h1 = h1 + gs[j] * (b * sq);
        }
        if (f_needed(i)) fs[i] = F.drift(h0, t + s.c0[i] * h);
        gs[i] = F.diffusion(h1, t + s.c1[i] * h);
        if (s.alpha[i] != 0) out = out + fs[i] * (s.alpha[i] * h);
        out = out + gs[i] * (dW * s.beta1[i] + i11s * s.beta2[i] + i10h * s.beta3[i] +
                             i111h * s.beta4[i]);
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

// The adaptive settings (Options::adaptive), each a ValueError naming sdeint and the field.
void check_adaptive(const Options& o, const Method& m, const BrownianMotion& W, DType dtype,
                    double span) {
  if (o.steps != 0)
    fail<ValueError>("sdeint: options.steps = ", o.steps,
                     " with options.adaptive (the error control chooses the steps; options.dt is "
                     "the first step)");
  if (!W.any_time())
    fail<ValueError>(
        "sdeint: options.adaptive needs a Brownian motion that answers any time (a "
        "BrownianTree); this one answers its grid times only (e.g. a GridBrownian)");
  // Steps chosen from the path are not adapted to its filtration: a method that drops the
  // I_(1,1) term (Euler-Maruyama with multiplicative noise) accumulates sum g g' (dW^2 - h)/2
  // over a partition whose quadratic variation is biased and converges to a wrong limit
  // (measured: errors stuck near 0.03 on GBM from rtol 1e-3 down; Foster and Jelincic 2023).
  if ((o.noise == Noise::additive ? m.strong_order_additive : m.strong_order) < 1)
    fail<ValueError>("sdeint: options.adaptive with method ", m.name, " and ", noise_name(o.noise),
                     " noise: a method of strong order < 1 does not converge on steps chosen from "
                     "the path; use milstein, platen_weak2 or sriw1");
  const double eps = dtype == DType::f32 ? 1.1920929e-7 : 2.220446049250313e-16;
  if (!(o.rtol > 0) || !std::isfinite(o.rtol))
    fail<ValueError>("sdeint: options.rtol = ", o.rtol, " must be finite and > 0");
  if (o.rtol < 10 * eps)
    fail<ValueError>("sdeint: options.rtol = ", o.rtol,
                     " is below the state's resolution (10 eps = ", 10 * eps, " for ",
                     dtype_name(dtype), ")");
  if (!(o.atol >= 0) || !std::isfinite(o.atol))
    fail<ValueError>("sdeint: options.atol = ", o.atol, " must be finite and >= 0");
  if (!(o.dt_min >= 0) || !std::isfinite(o.dt_min))
    fail<ValueError>("sdeint: options.dt_min = ", o.dt_min, " must be finite and >= 0");
  if (!(o.dt_max >= 0) || !std::isfinite(o.dt_max))
    fail<ValueError>("sdeint: options.dt_max = ", o.dt_max, " must be finite and >= 0");
  if (o.dt_max > 0 && o.dt_max < o.dt_min)
    fail<ValueError>("sdeint: options.dt_max = ", o.dt_max,
                     " is below options.dt_min = ", o.dt_min);
  if (o.dt > span)
    fail<ValueError>("sdeint: options.dt = ", o.dt, " (the first step) exceeds t1 - t0 = ", span);
  if (!(o.safety > 0 && o.safety <= 1))
    fail<ValueError>("sdeint: options.safety = ", o.safety, " must be in (0, 1]");
  if (!(o.fac_min > 0 && o.fac_min < 1))
    fail<ValueError>("sdeint: options.fac_min = ", o.fac_min, " must be in (0, 1)");
  if (!(o.fac_max > 1) || !std::isfinite(o.fac_max))
    fail<ValueError>("sdeint: options.fac_max = ", o.fac_max, " must be finite and > 1");
}

// RMS((b - a) / (atol + rtol max(|y|, |b|))) over all elements (values only, no tape);
// infinity when anything is non-finite.
double error_norm(const Tensor& y, const Tensor& a, const Tensor& b, const Options& o) {
  NoGradGuard off;
  const Tensor yb = b.detach();
  const Tensor sc = maximum(abs(y.detach()), abs(yb)) * o.rtol + o.atol;
  const double e = std::sqrt(mean(square((yb - a.detach()) / sc)).item());
  return std::isfinite(e) ? e : INFINITY;
}

// Step doubling on the Brownian motion's path: the whole step and two half steps (the halves'
// increments queried at the midpoint, so they sum to the whole one's), the halves kept.
// Every attempt, accepted or not, counts against max_steps; output times end steps.
void solve_adaptive(const Method& m, const Options& o, const Counted& F, const BrownianMotion& W,
                    const Tensor& y0, double t0, double t1) {
  Result& r = F.r;
  const double span = t1 - t0;
  const double q = (o.noise == Noise::additive ? m.strong_order_additive : m.strong_order) + 0.5;
  const double h_max = o.dt_max > 0 ? o.dt_max : span;
  const double h_min = o.dt_min > 0 ? o.dt_min : 1e-12 * span;
  double h = std::min(h_max, o.dt > 0 ? o.dt : span / 100);
  Tensor y = y0;
  double t = t0;
  size_t oi = 0;
  const auto emit = [&] {
    while (oi < o.output_times.size() && o.output_times[oi] <= t) r.ys.push_back(y), ++oi;
  };
  emit();
  bool last_non_finite = false;
  while (t < t1) {
    if (r.steps + r.rejected >= o.max_steps) {
      r.status = ode::Status::too_many_steps;
      break;
    }
    if (h < h_min) {
      r.status = last_non_finite ? ode::Status::non_finite : ode::Status::step_underflow;
      break;
    }
    // land on the next output time (or t1); no sliver of less than 1% of h left before it
    const double stop = oi < o.output_times.size() ? o.output_times[oi] : t1;
    const bool clipped = t + h * 1.01 >= stop;
    const double next = clipped ? stop : t + h, hh = next - t, mid = t + hh / 2;
    F.pin(y, t);
    const Tensor whole = step(m, o.noise, F, y, t, hh, W.increment(t, next));
    const Tensor half = step(m, o.noise, F, y, t, mid - t, W.increment(t, mid));
    F.pin(half, mid);
    const Tensor two = step(m, o.noise, F, half, mid, next - mid, W.increment(mid, next));
    const double err = error_norm(y, whole, two, o);
    last_non_finite = !std::isfinite(err);
    // h err^(-1/q): the local error of a method of strong order p is O(h^(p + 1/2))
    const double fac = err == 0 ? o.fac_max : o.safety * std::pow(err, -1 / q);
    if (err <= 1) {
      y = two, t = next, ++r.steps;
      emit();
      const double grown = hh * std::min(o.fac_max, std::max(o.fac_min, fac));
      h = std::min(h_max, clipped ? std::max(h, grown) : grown);
    } else {
      ++r.rejected;
      h = hh * std::max(o.fac_min, std::min(1.0, fac));
    }
  }
  r.y = y;
  r.t = t;
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
  if (!(W.device() == y0.device()))
    fail<DeviceError>("sdeint: the Brownian motion's increments are on ", device_name(W.device()),
                      ", y0 ", describe(y0), " on ", device_name(y0.device()),
                      " (BrownianTree::Options::device says where)");
  if (!std::isfinite(t0) || !std::isfinite(t1) || !(t0 < t1))
    fail<ValueError>("sdeint: needs finite t0 < t1, got t0 = ", t0, ", t1 = ", t1);
  if (t0 < W.t0() || t1 > W.t1())
    fail<ValueError>("sdeint: [t0, t1] = [", t0, ", ", t1,
                     "] is not inside the Brownian motion's interval [", W.t0(), ", ", W.t1(), "]");
  if (o.steps < 0) fail<ValueError>("sdeint: options.steps must be >= 1, got ", o.steps);
  if (!(o.dt >= 0) || !std::isfinite(o.dt))
    fail<ValueError>("sdeint: options.dt must be finite and > 0, got ", o.dt);
  if (o.adaptive)
    check_adaptive(o, m, W, y0.dtype(), t1 - t0);
  else if ((o.steps > 0) == (o.dt > 0))
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
  if (o.adaptive) return solve_adaptive(m, o, F, W, y0, t0, t1), r;
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
    F.pin(y, t);
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
