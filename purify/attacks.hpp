// White-box attacks on a classifier, with or without the ADP purifier in front, written with
// the engine's input gradients: FGSM, PGD (l_inf and l_2, random start), and the three ways to
// take the loss gradient through the defence:
//   direct - the classifier's own input gradient (the undefended model, or a transfer attack),
//   bpda   - the identity surrogate (BPDA, Athalye et al. 2018): d/dx is replaced by the
//            classifier's input gradient at the purified point, d purify/dx ~ I,
//   full   - the exact gradient through the recorded purification loop (every score
//            evaluation, the adaptive step sizes and the clipping), with the stopping rule's
//            per-sample decisions held fixed at the ones the forward pass made; with
//            clip_gradient = straight_through the purifier's clips are differentiated as the
//            identity instead (their zero derivative at clipped pixels, most of a digit's
//            background, would otherwise block the gradient there);
// each averaged over `eot` independent draws of the purifier's randomness (EOT: an unbiased
// estimate of the gradient of the expected loss E_u CE(f(purify(x, u)), y)).
//
//   sg::purify::AttackModel m{.classifier = &clf, .purifier = &pur,
//                             .gradient = sg::purify::GradientMode::full, .eot = 8};
//   sg::Tensor xa = sg::purify::pgd(m, x, y, gen, {.norm = sg::purify::Norm::linf,
//                                                  .epsilon = 0.1, .step_size = 0.02,
//                                                  .steps = 20});
//
// Options are checked before any work; a bad one is a ValueError (ShapeError for shapes)
// naming the attack and the field. Every tensor follows x's device.
#pragma once
#include <cstdint>
#include <vector>

#include "autodiff/core/rng.hpp"
#include "autodiff/core/tensor.hpp"
#include "purify/classifier.hpp"
#include "purify/purifier.hpp"

namespace sg::purify {

enum class GradientMode { direct, bpda, full };
enum class Norm { linf, l2 };

// What is attacked: the classifier f, alone or behind the purifier P.
struct AttackModel {
  const Classifier* classifier = nullptr;
  const Purifier* purifier = nullptr;          // null: the undefended classifier
  GradientMode gradient = GradientMode::bpda;  // with a purifier; direct without one
  int64_t eot = 1;                             // purifications averaged per gradient (>= 1)
  // full (and attack_loss): how the purifier's clips are differentiated (purifier.hpp)
  ClipGradient clip_gradient = ClipGradient::exact;
};

// The attacked objective for one draw u of the purifier's randomness (unit noise like x):
//   L(x; u) = sum_b CE(f(P(x_b; u_b)), y_b),   or sum_b CE(f(x_b), y_b) without a purifier.
// Recorded (differentiable in x, the clips as m.clip_gradient says) when grad mode is on.
Tensor attack_loss(const AttackModel& m, const Tensor& x, const Tensor& labels,
                   const Tensor& unit_noise = {});
// (1/eot) sum_e g_e, one fresh draw of u per term:
//   direct: g = dL/dx without the purifier;  full: g = dL(x; u)/dx through P;
//   bpda:   g = grad_x' sum_b CE(f(x'_b), y_b) at x' = P(x; u).
Tensor loss_gradient(const AttackModel& m, const Tensor& x, const Tensor& labels, Generator& gen);

struct FgsmOptions {
  double epsilon = 0.1;   // l_inf radius, in (0, hi - lo]
  double lo = 0, hi = 1;  // the data range
};
// x + epsilon sign(g), clipped to [lo, hi].
Tensor fgsm(const AttackModel& m, const Tensor& x, const Tensor& labels, Generator& gen,
            FgsmOptions o = {});

struct PgdOptions {
  Norm norm = Norm::linf;
  double epsilon = 0.1;  // radius: (0, hi - lo] for l_inf, (0, (hi - lo) sqrt(D)] for l_2
  double step_size = 0.025;
  int64_t steps = 10;  // >= 1
  bool random_start = true;
  double lo = 0, hi = 1;
};
// x_{k+1} = Proj(x_k + a sign(g_k))  (l_inf)  or  Proj(x_k + a g_k / |g_k|_2)  (l_2), from
// x_0 = x or a uniform draw in the ball around x (then projected). Proj: into the epsilon-ball
// around x, then clipped to [lo, hi] (for l_inf this is the exact projection onto the
// intersection; for l_2 the clip can only shorten each coordinate's offset, so the result
// stays in both sets). `iterates`, when given, receives x_0 ... x_steps.
Tensor pgd(const AttackModel& m, const Tensor& x, const Tensor& labels, Generator& gen,
           PgdOptions o = {}, std::vector<Tensor>* iterates = nullptr);

// The projection PGD uses: x into the ball of radius eps around x0, then into [lo, hi].
Tensor project(const Tensor& x, const Tensor& x0, Norm norm, double eps, double lo, double hi);

}  // namespace sg::purify
