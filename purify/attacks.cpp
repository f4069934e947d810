// Attack objectives, their gradients through the purifier (direct, BPDA, full, with EOT),
// FGSM, PGD and its projection (see attacks.hpp).
#include "purify/attacks.hpp"

#include <cmath>
#include <string>

#include "autodiff/core/error.hpp"
#include "autodiff/ops/ops.hpp"
#include "autodiff/tape/autograd.hpp"
#include "objectives/objectives.hpp"

namespace sg::purify {

using detail::per_batch;

namespace {

// |v_b|_2 per sample, [B]
Tensor norms(const Tensor& v) { return sqrt(obj::per_sample(v * v)); }

void check_model(const char* op, const AttackModel& m, const Tensor& x, const Tensor& labels) {
  if (!m.classifier) fail<ValueError>(op, ": classifier must be set");
  if (m.eot < 1) fail<ValueError>(op, ": eot must be >= 1, got ", m.eot);
  if (m.purifier) check_compatible(op, *m.classifier, *m.purifier);
  check_inputs(op, *m.classifier, x, labels);
  if (!labels.defined()) fail<ShapeError>(op, ": labels are required");
}

void check_range(const char* op, double lo, double hi, const AttackModel& m, const Tensor& x) {
  if (!(std::isfinite(lo) && std::isfinite(hi) && lo < hi))
    fail<ValueError>(op, ": the data range [lo, hi] = [", lo, ", ", hi,
                     "] must be finite with lo < hi");
  if (m.purifier && (m.purifier->options().lo != lo || m.purifier->options().hi != hi))
    fail<ValueError>(op, ": lo, hi = [", lo, ", ", hi, "] differ from the purifier's data range [",
                     m.purifier->options().lo, ", ", m.purifier->options().hi, "]");
  const double xmin = min(x).item(), xmax = max(x).item();
  if (xmin < lo || xmax > hi)
    fail<ValueError>(op, ": x spans [", xmin, ", ", xmax, "], outside the data range [", lo, ", ",
                     hi, "]");
}

void check_radius(const char* op, Norm norm, double eps, double lo, double hi, int64_t dims) {
  const double top = norm == Norm::linf ? hi - lo : (hi - lo) * std::sqrt(double(dims));
  if (!(eps > 0 && eps <= top))
    fail<ValueError>(op, ": epsilon = ", eps, " lies outside the data range: the ",
                     norm == Norm::linf ? "l_inf" : "l_2", " radius must be in (0, ", top,
                     "] for data in [", lo, ", ", hi, "]");
}

}  // namespace

// L(x; u) = sum_b CE(f(P(x_b; u_b)), y_b)
Tensor attack_loss(const AttackModel& m, const Tensor& x, const Tensor& labels,
                   const Tensor& unit_noise) {
  check_model("attack_loss", m, x, labels);
  const Classifier& f = *m.classifier;
  if (!m.purifier) return sum(cross_entropy(f(x), labels));
  if (!unit_noise.defined()) fail<ValueError>("attack_loss: a purifier needs its unit noise");
  return sum(cross_entropy(
      f(m.purifier->purify_with_noise(x, unit_noise, grad_enabled(), m.clip_gradient)), labels));
}

Tensor loss_gradient(const AttackModel& m, const Tensor& x, const Tensor& labels, Generator& gen) {
  check_model("loss_gradient", m, x, labels);
  const Classifier& f = *m.classifier;
  const bool defended = m.purifier && m.gradient != GradientMode::direct;
  const int64_t draws = defended ? m.eot : 1;  // no randomness to average without P
  EnableGradGuard on;
  Tensor total;
  for (int64_t e = 0; e < draws; ++e) {
    Scope scope;  // each draw's tape is released at its end
    Tensor g;
    if (!defended) {  // dL/dx of the classifier alone
      const Tensor xt = x.detach().requires_grad_();
      g = grad(sum(cross_entropy(f(xt), labels)), {xt})[0];
    } else if (m.gradient == GradientMode::bpda) {  // grad_x' L at x' = P(x; u), dP/dx ~ I
      const Tensor xp = m.purifier->purify(x.detach(), gen, false).detach().requires_grad_();
      g = grad(sum(cross_entropy(f(xp), labels)), {xp})[0];
    } else {  // dL(x; u)/dx through the recorded purification
      const Tensor xt = x.detach().requires_grad_();
      const Tensor xp = m.purifier->purify(xt, gen, true, m.clip_gradient);
      g = grad(sum(cross_entropy(f(xp), labels)), {xt})[0];
    }
    g = g.detach();
    total = total.defined() ? total + g : g;
  }
  return draws == 1 ? total : total / double(draws);  // (1/eot) sum_e g_e
}

// x' = clip(x + eps sign(g), lo, hi)
Tensor fgsm(const AttackModel& m, const Tensor& x, const Tensor& labels, Generator& gen,
            FgsmOptions o) {
  check_model("fgsm", m, x, labels);
  check_range("fgsm", o.lo, o.hi, m, x);
  check_radius("fgsm", Norm::linf, o.epsilon, o.lo, o.hi, x.numel() / x.dim(0));
  NoGradGuard off;
  const Tensor g = loss_gradient(m, x, labels, gen);
  return clamp(x.detach() + sign(g) * o.epsilon, o.lo, o.hi);
}

Tensor project(const Tensor& x, const Tensor& x0, Norm norm, double eps, double lo, double hi) {
  if (norm == Norm::linf)  // x0 + clamp(x - x0, -eps, eps), then into [lo, hi]
    return clamp(x0 + clamp(x - x0, -eps, eps), lo, hi);
  // x0 + d min(1, eps / |d|_2), then into [lo, hi]
  const Tensor d = x - x0;
  const Tensor n = norms(d);
  const Tensor scale = minimum(ones_like(n), eps / where(n > 0.0, n, 1.0));
  return clamp(x0 + d * per_batch(scale, d), lo, hi);
}

Tensor pgd(const AttackModel& m, const Tensor& x, const Tensor& labels, Generator& gen,
           PgdOptions o, std::vector<Tensor>* iterates) {
  check_model("pgd", m, x, labels);
  check_range("pgd", o.lo, o.hi, m, x);
  const int64_t D = x.numel() / x.dim(0);
  check_radius("pgd", o.norm, o.epsilon, o.lo, o.hi, D);
  if (o.steps < 1) fail<ValueError>("pgd: steps must be >= 1, got ", o.steps);
  if (!(std::isfinite(o.step_size) && o.step_size > 0))
    fail<ValueError>("pgd: step_size must be finite and > 0, got ", o.step_size);
  NoGradGuard off;
  const Tensor x0 = x.detach();
  Tensor xa = x0;
  if (o.random_start) {
    if (o.norm == Norm::linf) {  // U[-eps, eps]^D
      xa = x0 + (rand_like(x0, gen) * 2.0 - 1.0) * o.epsilon;
    } else {  // uniform in the l_2 ball: eps U^(1/D) n / |n|, n ~ N(0, I)
      const Tensor n = randn_like(x0, gen);
      const Tensor r = pow(rand({x0.dim(0)}, gen, x0.dtype(), x0.device()), 1.0 / double(D));
      xa = x0 + n * per_batch(r * o.epsilon / norms(n), n);
    }
    xa = project(xa, x0, o.norm, o.epsilon, o.lo, o.hi);
  }
  if (iterates) iterates->push_back(xa);
  for (int64_t k = 0; k < o.steps; ++k) {
    const Tensor g = loss_gradient(m, xa, labels, gen);
    const Tensor n = norms(g);
    const Tensor dir = o.norm == Norm::linf ? sign(g)  // sign(g), or g / |g|_2 (0 stays 0)
                                            : g / per_batch(where(n > 0.0, n, 1.0), g);
    xa = project(xa + dir * o.step_size, x0, o.norm, o.epsilon, o.lo, o.hi);
    if (iterates) iterates->push_back(xa);
  }
  return xa;
}

}  // namespace sg::purify
