// Example (the demo until the CLI lands): a time-free score network s_theta: R^2 -> R^2, an
// MLP with SiLU, trained by denoising score matching (Vincent 2011) at one noise level on an
// 8-Gaussian mixture, with a hand-written Adam. Prints the loss falling and checks the learnt
// score against the exact score of the noised mixture at held-out points.
//
//   DSM loss:  E_x E_eps || s(x + sigma eps) + eps / sigma ||^2 sigma^2 / 2
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "autodiff/sg.hpp"

using namespace sg;

namespace {
constexpr double kSigma = 0.3;   // noise level
constexpr double kSpread = 0.1;  // std of each mixture component
constexpr double kRadius = 2.0;

Tensor centers() {
  std::vector<double> c;
  for (int k = 0; k < 8; ++k)
    c.push_back(kRadius * std::cos(k * M_PI / 4)), c.push_back(kRadius * std::sin(k * M_PI / 4));
  return from_vector(c, {8, 2});
}
Tensor sample_data(int64_t n, Generator& g) {
  const Tensor component = cast(rand({n}, g) * 8.0, DType::i64);  // truncation = floor here
  return index_select(centers(), 0, component) + randn({n, 2}, g) * kSpread;
}
// Exact score of the noised mixture: sum_k w_k(x) (c_k - x) / s^2, s^2 = spread^2 + sigma^2.
Tensor true_score(const Tensor& x) {
  const double s2 = kSpread * kSpread + kSigma * kSigma;
  const Tensor d = unsqueeze(x, 1) - unsqueeze(centers(), 0);  // [n, 8, 2]
  const Tensor w = softmax(sum(d * d, {2}) * (-0.5 / s2), 1);  // [n, 8]
  return -sum(unsqueeze(w, 2) * d, {1}) / s2;
}

struct Mlp {
  std::vector<Tensor> params;  // W1 b1 W2 b2 W3 b3
  Mlp(Generator& g, int64_t width) {
    const int64_t dims[] = {2, width, width, 2};
    for (int l = 0; l < 3; ++l) {
      params.push_back(
          (randn({dims[l], dims[l + 1]}, g) * std::sqrt(1.0 / dims[l])).requires_grad_());
      params.push_back(zeros({dims[l + 1]}).requires_grad_());
    }
  }
  Tensor operator()(const Tensor& x) const {
    Tensor h = silu(matmul(x, params[0]) + params[1]);
    h = silu(matmul(h, params[2]) + params[3]);
    return matmul(h, params[4]) + params[5];
  }
};

// Adam (Kingma & Ba) with bias correction; parameters are replaced by updated leaves.
struct Adam {
  double lr, b1 = 0.9, b2 = 0.999, eps = 1e-8;
  int t = 0;
  std::vector<Tensor> m, v;
  void step(std::vector<Tensor>& params, const std::vector<Tensor>& grads) {
    NoGradGuard off;
    if (m.empty())
      for (const Tensor& p : params) m.push_back(zeros_like(p)), v.push_back(zeros_like(p));
    ++t;
    const double c1 = 1 - std::pow(b1, t), c2 = 1 - std::pow(b2, t);
    for (std::size_t i = 0; i < params.size(); ++i) {
      m[i] = m[i] * b1 + grads[i] * (1 - b1);
      v[i] = v[i] * b2 + square(grads[i]) * (1 - b2);
      params[i] = (params[i] - (m[i] / c1) / (sqrt(v[i] / c2) + eps) * lr).requires_grad_();
    }
  }
};
}  // namespace

int main(int argc, char** argv) {
  const int steps = argc > 1 ? std::atoi(argv[1]) : 3000;
  Generator gen(0);
  Mlp score(gen, 128);
  Adam opt{.lr = 2e-3};
  const Tensor x_eval = sample_data(4000, gen);
  const Tensor xt_eval = x_eval + randn_like(x_eval, gen) * kSigma;
  const Tensor exact = true_score(xt_eval);
  auto score_error = [&] {  // E || s(x~) - score(x~) ||^2 at held-out noisy points
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
    const Tensor x = sample_data(256, gen);
    const Tensor eps = randn_like(x, gen);
    const Tensor loss = mean(sum(square(score(x + eps * kSigma) * kSigma + eps), {1})) * 0.5;
    opt.step(score.params, grad(loss, score.params));
    running = step == 1 ? loss.item() : 0.98 * running + 0.02 * loss.item();
    if (step == 1) first = running;
    if (step == 1 || step % 250 == 0) std::printf("%6d %12.5f\n", step, running);
  }
  const double err = score_error();
  std::printf(
      "score error E||s - true score||^2 at held-out noisy points: %.4f (untrained %.4f, zero "
      "score %.4f)\n",
      err, err0, err_zero);
  const bool learnt = running < first && err < 0.25 * err_zero;
  std::printf("%s\n",
              learnt ? "learnt: loss fell and the score error is under 25% of the zero-score error"
                     : "NOT LEARNT");
  return learnt ? 0 : 1;
}
