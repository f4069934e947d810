// Rodas4 (see stiff.hpp): a Rosenbrock method on the flattened state, Jacobians from
// sg::jacobian, dense LU from Eigen.
#include "sde/stiff.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>

#include "autodiff/ops/ops.hpp"
#include "autodiff/tape/autograd.hpp"
#include "autodiff/transforms/transforms.hpp"

namespace sg::ode {
namespace {

using Vec = Eigen::VectorXd;
using Mat = Eigen::MatrixXd;
constexpr const char* kWho = "odeint_stiff";

// Rodas4 in the form of Hairer & Wanner's RODAS code (and KPP's Rosenbrock integrators): with
// W = I / (gamma h) - J,
//   W K_i = f(t + c_i h, y + sum_j a_ij K_j) + sum_j (C_ij / h) K_j + d_i h df/dt,
//   y1 = y + sum_i m_i K_i (order 4),  err = K_6 (against the embedded order-3 solution).
// Stiffly accurate: m_i = a_6i (i < 6), m_6 = 1, so y1 = (stage 6's point) + K_6.
// Coefficients: E. Hairer, G. Wanner, Solving Ordinary Differential Equations II (1996),
// section IV.7, and their code RODAS (METH = 1).
constexpr int kStages = 6;
constexpr double kGamma = 0.25;
constexpr double kC[kStages] = {0.0, 0.386, 0.21, 0.63, 1.0, 1.0};
constexpr double kD[kStages] = {0.25, -0.1043, 0.1035, -0.3620000000000023e-01, 0.0, 0.0};
constexpr double kA[kStages][kStages] = {
    {0, 0, 0, 0, 0, 0},
    {0.1544000000000000e+01, 0, 0, 0, 0, 0},
    {0.9466785280815826e+00, 0.2557011698983284e+00, 0, 0, 0, 0},
    {0.3314825187068521e+01, 0.2896124015972201e+01, 0.9986419139977817e+00, 0, 0, 0},
    {0.1221224509226641e+01, 0.6019134481288629e+01, 0.1253708332932087e+02,
     -0.6878860361058950e+00, 0, 0},
    {0.1221224509226641e+01, 0.6019134481288629e+01, 0.1253708332932087e+02,
     -0.6878860361058950e+00, 1.0, 0},
};
constexpr double kCm[kStages][kStages] = {
    {0, 0, 0, 0, 0, 0},
    {-0.5668800000000000e+01, 0, 0, 0, 0, 0},
    {-0.2430093356833875e+01, -0.2063599157091915e+00, 0, 0, 0, 0},
    {-0.1073529058151375e+00, -0.9594562251023355e+01, -0.2047028614809616e+02, 0, 0, 0},
    {0.7496443313967647e+01, -0.1024680431464352e+02, -0.3399990352819905e+02,
     0.1170890893206160e+02, 0, 0},
    {0.8083246795921522e+01, -0.7981132988064893e+01, -0.3152159432874371e+02,
     0.1631930543123136e+02, -0.6058818238834054e+01, 0},
};
constexpr int kOrder = 4, kEmbeddedOrder = 3;

// Where each state component lives in the flat vector.
struct Part {
  Shape shape;
  DType dtype;
  Device device;
  int64_t offset, numel;
};

class Problem {
 public:
  Problem(const Dynamics& f, const State& y0) : f_(f) {
    for (const Tensor& c : y0) {
      parts_.push_back({c.shape(), c.dtype(), c.device(), n_, c.numel()});
      n_ += c.numel();
    }
  }
  int64_t size() const { return n_; }

  Vec flatten(const State& s, const char* what) const {
    if (s.size() != parts_.size())
      fail<ShapeError>(kWho, ": ", what, " has ", s.size(), " components, the state has ",
                       parts_.size());
    Vec v(n_);
    for (std::size_t c = 0; c < parts_.size(); ++c) {
      if (!s[c].defined() || s[c].numel() != parts_[c].numel)
        fail<ShapeError>(kWho, ": ", what, " component ", c, " is ",
                         s[c].defined() ? describe(s[c]) : std::string("undefined"),
                         ", the state's is ", parts_[c].shape.str());
      const std::vector<double> x = s[c].to_vector();
      std::copy(x.begin(), x.end(), v.data() + parts_[c].offset);
    }
    return v;
  }
  State unflatten(const Vec& v) const {
    State s;
    s.reserve(parts_.size());
    for (const Part& p : parts_)
      s.push_back(
          from_vector(std::vector<double>(v.data() + p.offset, v.data() + p.offset + p.numel),
                      p.shape, p.dtype, p.device));
    return s;
  }
  // f(t, y) as a flat vector.
  Vec eval(double t, const Vec& y) const { return flatten(f_(t, unflatten(y)), "f(t, y)"); }
  // f(t, y) with the caller's grad mode, refusing an f that depends on tensors requiring grad.
  Vec eval_checked(double t, const Vec& y) const {
    const State out = f_(t, unflatten(y));
    if (grad_enabled())
      for (const Tensor& c : out)
        if (c.defined() && c.requires_grad())
          fail<GradError>(kWho, ": f depends on tensors that require grad; backpropagation ",
                          "through odeint_stiff is not supported (run it under NoGradGuard for "
                          "values)");
    return flatten(out, "f(t, y)");
  }
  // df/dy at (t, y), n x n, by the engine's own jacobian on the flattened state.
  Mat jacobian(double t, const Vec& y, bool forward) const {
    const Fn g = [&](const Tensor& x) {
      std::vector<Tensor> outs;
      State s;
      for (const Part& p : parts_) {
        Tensor c = slice(x, 0, p.offset, p.offset + p.numel).reshape(p.shape);
        if (p.dtype != DType::f64) c = c.to(p.dtype);
        if (p.device != x.device()) c = c.to(p.device);
        s.push_back(c);
      }
      const State out = f_(t, s);
      if (out.size() != parts_.size())
        fail<ShapeError>(kWho, ": f(t, y) has ", out.size(), " components, the state has ",
                         parts_.size());
      for (std::size_t c = 0; c < out.size(); ++c) {
        if (!out[c].defined() || out[c].numel() != parts_[c].numel)
          fail<ShapeError>(kWho, ": f(t, y) component ", c, " does not match the state's shape ",
                           parts_[c].shape.str());
        Tensor o = out[c].reshape({parts_[c].numel});
        if (o.device() != x.device()) o = o.to(x.device());
        outs.push_back(o.dtype() == DType::f64 ? o : o.to(DType::f64));
      }
      return outs.size() == 1 ? outs[0] : concat(outs, 0);
    };
    const Tensor x = from_vector(std::vector<double>(y.data(), y.data() + n_), {n_}, DType::f64);
    const Tensor jt = sg::jacobian(g, x, forward ? JacobianMode::forward : JacobianMode::reverse);
    const std::vector<double> jv = jt.to_vector();  // row-major [n, n]
    return Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
        jv.data(), n_, n_);
  }

 private:
  const Dynamics& f_;
  std::vector<Part> parts_;
  int64_t n_ = 0;
};

bool all_finite(const Vec& v) { return v.allFinite(); }

// RMS of e / (atol + rtol max(|y0|, |y1|)), as odeint's error norm.
double error_norm(const Vec& e, const Vec& y0, const Vec& y1, const StiffOptions& o) {
  const Vec scale = (y0.cwiseAbs().cwiseMax(y1.cwiseAbs()) * o.rtol).array() + o.atol;
  return std::sqrt((e.array() / scale.array()).square().mean());
}

// Hairer's starting-step heuristic (Solving ODEs I, II.4), with an explicit Euler probe.
double initial_step(const Problem& p, const Vec& y0, const Vec& f0, double t0, double dir,
                    double span, const StiffOptions& o, int64_t& nfe) {
  const double d0 = error_norm(y0, y0, y0, o), d1 = error_norm(f0, y0, y0, o);
  double h = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
  h = std::min(h, span);
  const Vec f1 = p.eval(t0 + dir * h, y0 + dir * h * f0);
  ++nfe;
  double d2 = all_finite(f1) ? error_norm(f1 - f0, y0, y0, o) / h : 1e300;
  const double dm = std::max(d1, d2);
  const double h1 =
      dm <= 1e-15 ? std::max(1e-6, h * 1e-3) : std::pow(0.01 / dm, 1.0 / (kOrder + 1));
  return std::min({100 * h, h1, span});
}

void check_options(const State& y0, double t0, double t1, const StiffOptions& o) {
  if (!std::isfinite(t0) || !std::isfinite(t1))
    fail<ValueError>(kWho, ": t0 = ", t0, " and t1 = ", t1, " must be finite");
  if (y0.empty()) fail<ValueError>(kWho, ": the initial state y0 has no components");
  double eps = std::numeric_limits<double>::epsilon();
  for (std::size_t c = 0; c < y0.size(); ++c) {
    if (!y0[c].defined()) fail<ValueError>(kWho, ": y0 component ", c, " is undefined");
    if (!is_floating(y0[c].dtype()))
      fail<DTypeError>(kWho, ": y0 component ", c, " is ", describe(y0[c]),
                       "; states are floating");
    if (y0[c].dtype() == DType::f32) eps = std::numeric_limits<float>::epsilon();
  }
  if (!std::isfinite(o.fixed_step) || o.fixed_step < 0)
    fail<ValueError>(kWho, ": fixed_step = ", o.fixed_step,
                     " must be finite and >= 0 (0: adaptive)");
  if (o.fixed_step == 0) {
    if (!(o.rtol > 0) || !std::isfinite(o.rtol))
      fail<ValueError>(kWho, ": rtol = ", o.rtol, " must be finite and > 0");
    if (!(o.atol >= 0) || !std::isfinite(o.atol))
      fail<ValueError>(kWho, ": atol = ", o.atol, " must be finite and >= 0");
    if (o.rtol < 10 * eps)
      fail<ValueError>(kWho, ": rtol = ", o.rtol,
                       " is below the state's resolution (10 eps = ", 10 * eps, " for ",
                       eps == std::numeric_limits<float>::epsilon() ? "float32" : "float64", ")");
    if (!(o.h0 >= 0) || !std::isfinite(o.h0))
      fail<ValueError>(kWho, ": h0 = ", o.h0, " must be finite and >= 0 (0: automatic)");
    if (!(o.min_step >= 0) || !std::isfinite(o.min_step))
      fail<ValueError>(kWho, ": min_step = ", o.min_step, " must be finite and >= 0");
    if (!(o.safety > 0 && o.safety <= 1) || !(o.fac_min > 0 && o.fac_min < 1) || !(o.fac_max > 1) ||
        !std::isfinite(o.fac_max))
      fail<ValueError>(kWho,
                       ": step control needs 0 < safety <= 1, 0 < fac_min < 1 < fac_max (got ",
                       o.safety, ", ", o.fac_min, ", ", o.fac_max, ")");
  }
  if (o.max_steps < 1) fail<ValueError>(kWho, ": max_steps = ", o.max_steps, " must be >= 1");
  const double dir = t1 >= t0 ? 1.0 : -1.0;
  for (std::size_t i = 0; i < o.output_times.size(); ++i) {
    const double to = o.output_times[i];
    if (!std::isfinite(to) || (to - t0) * dir < 0 || (t1 - to) * dir < 0)
      fail<ValueError>(kWho, ": output time ", to, " lies outside [", std::min(t0, t1), ", ",
                       std::max(t0, t1), "]");
    if (i > 0 && (to - o.output_times[i - 1]) * dir < 0)
      fail<ValueError>(kWho, ": output_times must be sorted in the direction of integration (",
                       o.output_times[i - 1], " then ", to, ")");
  }
}

}  // namespace

StiffResult odeint_stiff(const Dynamics& f, const State& y0, double t0, double t1,
                         const StiffOptions& o) {
  check_options(y0, t0, t1, o);
  if (!f) fail<ValueError>(kWho, ": f is empty");
  if (grad_enabled())
    for (std::size_t c = 0; c < y0.size(); ++c)
      if (y0[c].requires_grad())
        fail<GradError>(kWho, ": y0 component ", c, " requires grad; backpropagation through ",
                        "odeint_stiff is not supported (pass y0.detach(), or run it under "
                        "NoGradGuard for values)");
  const Problem p(f, y0);
  StiffResult r;
  const int64_t n = p.size();
  if (n == 0) fail<ValueError>(kWho, ": the initial state y0 has no elements");
  Vec y = p.flatten(y0, "y0");
  double t = t0;
  const double dir = t1 >= t0 ? 1.0 : -1.0;
  const double span = std::abs(t1 - t0);
  std::size_t next_out = 0;
  auto emit = [&]() {
    while (next_out < o.output_times.size() &&
           std::abs(o.output_times[next_out] - t) <= 1e-12 * std::max(1.0, std::abs(t))) {
      r.ys.push_back(p.unflatten(y));
      ++next_out;
    }
  };
  auto finish = [&]() -> StiffResult {
    r.y = p.unflatten(y);
    r.t = t;
    return r;
  };
  emit();
  if (span == 0) return finish();

  Vec f0 = p.eval_checked(t, y);
  ++r.nfe;
  NoGradGuard off;  // values only from here on (the Jacobian turns grad on inside)
  const bool adaptive = o.fixed_step == 0;
  double h = !adaptive  ? o.fixed_step
             : o.h0 > 0 ? std::min(o.h0, span)
                        : initial_step(p, y, f0, t, dir, span, o, r.nfe);
  const double eps = std::numeric_limits<double>::epsilon();
  Mat jac;
  Vec ft = Vec::Zero(n);
  bool need_jac = true;
  Eigen::PartialPivLU<Mat> lu;
  std::vector<Vec> k(kStages, Vec(n));
  const double expo = 1.0 / (std::min(kOrder, kEmbeddedOrder) + 1);
  // Gustafsson's predictive controller as in RODAS: remember the last accepted step and error.
  double h_acc = 0, err_acc = 0;
  bool first = true, last_rejected = false;

  while ((t1 - t) * dir > 0) {
    if (r.steps + r.rejected >= o.max_steps) {
      r.status = Status::too_many_steps;
      break;
    }
    const double target = next_out < o.output_times.size() ? o.output_times[next_out] : t1;
    double hs = std::min(h, std::abs(target - t));
    const bool lands = hs >= std::abs(target - t) * (1 - 1e-12);
    if (!lands && ((adaptive && hs < o.min_step) || hs <= 16 * eps * std::abs(t))) {
      r.status = Status::step_underflow;
      break;
    }
    if (need_jac) {
      jac = p.jacobian(t, y, o.forward_jacobian);
      ++r.njev;
      if (!o.autonomous) {  // df/dt by a central difference
        const double d = std::cbrt(eps) * std::max(1.0, std::abs(t));
        const double tp = t + d, tm = t - d;
        ft = (p.eval(tp, y) - p.eval(tm, y)) / (tp - tm);
        r.nfe += 2;
      }
      if (!jac.allFinite() || !all_finite(ft)) {
        r.status = Status::non_finite;
        break;
      }
      need_jac = false;
    }
    const double hsig = dir * hs;
    Mat w = -jac;
    w.diagonal().array() += 1.0 / (kGamma * hsig);
    lu.compute(w);
    ++r.nlu;
    bool ok = true;
    Vec yi(n), rhs(n);
    for (int i = 0; i < kStages && ok; ++i) {
      if (i == 0) {
        rhs = f0;
      } else {
        yi = y;
        for (int j = 0; j < i; ++j)
          if (kA[i][j] != 0) yi += kA[i][j] * k[j];
        rhs = p.eval(t + kC[i] * hsig, yi);
        ++r.nfe;
        for (int j = 0; j < i; ++j) rhs += (kCm[i][j] / hsig) * k[j];
      }
      if (kD[i] != 0 && !o.autonomous) rhs += (hsig * kD[i]) * ft;
      k[i] = lu.solve(rhs);
      ok = all_finite(k[i]);
    }
    Vec y1;
    double err = 0;
    if (ok) {
      y1 = yi + k[kStages - 1];  // stiffly accurate: stage 6's point plus K_6
      ok = all_finite(y1);
      if (adaptive && ok) {
        err = error_norm(k[kStages - 1], y, y1, o);
        ok = std::isfinite(err);
      }
    }
    if (!ok) {
      if (!adaptive) {
        r.status = Status::non_finite;
        break;
      }
      ++r.rejected;
      last_rejected = true;
      h = hs * o.fac_min;
      if (h < o.min_step) {
        r.status = Status::non_finite;
        break;
      }
      continue;
    }
    if (!adaptive || err <= 1.0) {
      t = lands ? target : t + hsig;
      y = std::move(y1);
      ++r.steps;
      emit();
      need_jac = true;
      if ((t1 - t) * dir > 0) {
        f0 = p.eval(t, y);
        ++r.nfe;
      }
      if (!adaptive) continue;
      // h_new = h / fac with fac = err^q / safety, clamped, and Gustafsson's prediction.
      double fac = std::clamp(std::pow(err, expo) / o.safety, 1.0 / o.fac_max, 1.0 / o.fac_min);
      if (!first) {
        const double gus = std::clamp((h_acc / hs) * std::pow(err * err / err_acc, expo) / o.safety,
                                      1.0 / o.fac_max, 1.0 / o.fac_min);
        fac = std::max(fac, gus);
      }
      first = false;
      h_acc = hs;
      err_acc = std::max(1e-2, err);
      double h_new = hs / fac;
      if (last_rejected) h_new = std::min(h_new, hs);  // no growth right after a rejection
      last_rejected = false;
      h = h_new;
    } else {
      ++r.rejected;
      const double fac = std::clamp(std::pow(err, expo) / o.safety, 1.0, 1.0 / o.fac_min);
      h = first ? hs * 0.1 : hs / fac;
      last_rejected = true;
    }
  }
  return finish();
}

}  // namespace sg::ode
