// Example (the demo until the scoregrad command lands): an MLP score network s_theta: R^2 -> R^2
// trained by denoising score matching (Vincent 2011) at one noise level on the 8-Gaussians toy
// density, with Adam. Prints the loss falling and compares the learnt score with the exact score
// of the noised mixture at held-out points.
//
//   DSM loss:  E_x E_z ½ |sigma s(x + sigma z) + z|^2
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "autodiff/sg.hpp"
#include "nn/datasets.hpp"
#include "nn/layers.hpp"
#include "nn/optim.hpp"
#include "objectives/objectives.hpp"

using namespace sg;

namespace {
constexpr double kSigma = 0.3;

// The 8-Gaussians density of nn::sample_toy: centres on a circle, isotropic components; its
// score after adding N(0, sigma^2 I) is sum_k w_k(x) (c_k - x) / s^2 with s^2 = spread^2 + sigma^2.
struct Mixture {
  Tensor centres;
  double spread2;
  Tensor score(const Tensor& x, double sigma) const {
    const double s2 = spread2 + sigma * sigma;
    const Tensor d = unsqueeze(x, 1) - unsqueeze(centres, 0);  // [n, 8, 2]
    const Tensor w = softmax(sum(d * d, {2}) * (-0.5 / s2), 1);
    return -sum(unsqueeze(w, 2) * d, {1}) / s2;
  }
};
// Estimates the mixture's centres and spread from a large sample (k-means with the 8 angles).
Mixture fit_mixture(Generator& g) {
  const Tensor x = nn::sample_toy("8gaussians", 80000, g, DType::f64);
  const Tensor angle = from_vector(
      [] {
        std::vector<double> a;
        for (int k = 0; k < 8; ++k) a.push_back(k * M_PI / 4);
        return a;
      }(),
      {8}, DType::f64);
  const Tensor dirs = stack({cos(angle), sin(angle)}, 1);  // [8, 2]
  const Tensor nearest =
      cast(eq(matmul(x, dirs.mT()), max(matmul(x, dirs.mT()), {1}, true)), DType::f64);
  const Tensor centres = matmul(nearest.mT(), x) / sum(nearest, {0}).reshape({8, 1});
  const Tensor resid = x - matmul(nearest, centres);
  return {centres.to(DType::f32), mean(resid * resid).item()};
}
}  // namespace

int main(int argc, char** argv) {
  const int steps = argc > 1 ? std::atoi(argv[1]) : 3000;
  Generator gen(0);
  const Mixture mix = fit_mixture(gen);
  nn::Mlp score({2, 128, 128, 2}, nn::Activation::silu, gen);
  nn::Adam opt(score.named_parameters(), {.lr = 2e-3});
  const obj::ScoreFn s = [&](const Tensor& x) { return score(x); };

  const Tensor x_eval = nn::sample_toy("8gaussians", 4000, gen);
  const Tensor xt_eval = x_eval + randn_like(x_eval, gen) * kSigma;
  const Tensor exact = mix.score(xt_eval, kSigma);
  auto score_error = [&] {  // E |s(x~) - score(x~)|^2 at held-out noisy points
    NoGradGuard off;
    return mean(sum(square(score(xt_eval) - exact), {1})).item();
  };
  const double err_zero = mean(sum(square(exact), {1})).item();
  const double err0 = score_error();
  std::printf("DSM on 8 Gaussians, sigma = %.2f, MLP 2-128-128-2 (SiLU), Adam, batch 256\n",
              kSigma);
  std::printf("%6s %12s\n", "step", "DSM loss");
  double first = 0, running = 0;
  for (int step = 1; step <= steps; ++step) {
    const Tensor loss = obj::dsm(s, nn::sample_toy("8gaussians", 256, gen), kSigma, gen);
    opt.step(grad(loss, score.parameters()));
    running = step == 1 ? loss.item() : 0.98 * running + 0.02 * loss.item();
    if (step == 1) first = running;
    if (step == 1 || step % 250 == 0) std::printf("%6d %12.5f\n", step, running);
  }
  const double err = score_error();
  std::printf(
      "score error E|s - true score|^2 at held-out noisy points: %.4f (untrained %.4f, zero score "
      "%.4f)\n",
      err, err0, err_zero);
  const bool learnt = running < first && err < 0.25 * err_zero;
  std::printf("%s\n",
              learnt ? "learnt: loss fell and the score error is under 25% of the zero-score error"
                     : "NOT LEARNT");
  return learnt ? 0 : 1;
}
