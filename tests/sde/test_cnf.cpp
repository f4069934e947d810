// Continuous normalizing flows: a linear CNF reproduces the analytic Gaussian log-density
// (exact trace; Hutchinson unbiased over probes), adjoint gradients of the log-likelihood agree
// with backprop, and a CNF trained briefly by maximum likelihood with the adjoint improves its
// held-out log-likelihood on a 2-D toy density.
#include <catch2/catch.hpp>

#include "autodiff/sg.hpp"
#include "nn/datasets.hpp"
#include "nn/networks.hpp"
#include "nn/optim.hpp"
#include "sde/likelihood.hpp"

using namespace sg;

namespace {
constexpr DType f64 = DType::f64;
// e^A for a 2x2 matrix by its Taylor series (float64, 30 terms).
std::vector<double> expm2(const std::vector<double>& a) {
  std::vector<double> r = {1, 0, 0, 1}, term = {1, 0, 0, 1};
  for (int k = 1; k < 30; ++k) {
    const std::vector<double> t = term;
    term = {(t[0] * a[0] + t[1] * a[2]) / k, (t[0] * a[1] + t[1] * a[3]) / k,
            (t[2] * a[0] + t[3] * a[2]) / k, (t[2] * a[1] + t[3] * a[3]) / k};
    for (int i = 0; i < 4; ++i) r[i] += term[i];
  }
  return r;
}
}  // namespace

TEST_CASE("a linear CNF reproduces the analytic Gaussian log-density", "[cnf]") {
  // dz/dt = z A^T on [0, 1]: z(1) = x (e^A)^T, log p(x) = log N(z(1); 0, I) + tr A.
  const std::vector<double> a = {-0.4, 0.7, -0.2, 0.3};
  const Tensor A = from_vector(a, {2, 2}, f64);
  const VectorField f = [&](double, const Tensor& z) { return matmul(z, A.mT()); };
  Generator g(1);
  const Tensor x = randn({6, 2}, g, f64);
  const Tensor z1 = matmul(x, from_vector(expm2(a), {2, 2}, f64).mT());
  const Tensor expect = sum(z1 * z1, {1}) * -0.5 - std::log(2 * M_PI) + (a[0] + a[3]);
  const LikelihoodResult r = cnf_log_likelihood(f, x, {.ode = {.rtol = 1e-10, .atol = 1e-10}});
  CHECK(r.solve.ok());
  CHECK(max(abs(r.logp - expect)).item() < 1e-8);
  CHECK(max(abs(r.z - z1)).item() < 1e-8);
  // Hutchinson with a probe held fixed per solve: unbiased over probes.
  const MeanCheck c = mean_equals(
      [&](Generator& gen) {
        return cnf_log_likelihood(
                   f, x, {.ode = {.rtol = 1e-8, .atol = 1e-8}, .exact_trace = false, .gen = &gen})
            .logp;
      },
      expect, {.samples = 400, .sigmas = 4, .seed = 3}, "hutchinson cnf");
  INFO(c);
  CHECK(c.pass);
}

TEST_CASE("evaluating a likelihood without grad mode keeps the tape from growing", "[cnf]") {
  // The field depends on a trainable W, so each evaluation records a graph for its trace;
  // outside grad mode that graph must be released at once, not pile up across steps.
  Generator g(2);
  const Tensor W = (randn({2, 2}, g, f64) * 0.5).requires_grad_();
  const VectorField f = [&](double, const Tensor& z) { return tanh(matmul(z, W)); };
  const Tensor x = randn({16, 2}, g, f64);
  NoGradGuard off;
  const std::size_t nodes0 = debug::tape_size();
  std::size_t most = 0;
  int64_t steps = 0;
  CnfOptions o{.ode = {.rtol = 1e-8, .atol = 1e-8}};
  o.ode.on_accept = [&](double, double, const ode::State&) {
    most = std::max(most, debug::tape_size());
    ++steps;
  };
  const LikelihoodResult r = cnf_log_likelihood(f, x, o);
  CHECK(r.solve.ok());
  CHECK(steps > 5);
  CHECK(most == nodes0);
  CHECK_FALSE(r.logp.requires_grad());
}

TEST_CASE("CNF log-likelihood gradients: adjoint and checkpointed agree with backprop",
          "[cnf][adjoint]") {
  Generator g(2);
  nn::CnfDynamics net(2, {8, 8}, nn::Activation::tanh, g, f64);
  const Tensor x = randn({5, 2}, g, f64);
  const VectorField f = [&](double t, const Tensor& z) { return net(scalar(t, f64), z); };
  const std::vector<Tensor> params = net.parameters();
  const ode::Options tight{.rtol = 1e-10, .atol = 1e-10};
  auto grads = [&](SolveGradient how) {
    const Tensor nll =
        -mean(cnf_log_likelihood(
                  f, x, {.ode = tight, .adjoint_ode = tight, .gradient = how, .params = params})
                  .logp);
    return grad(nll, params);
  };
  const auto bp = grads(SolveGradient::backprop), adj = grads(SolveGradient::adjoint),
             ck = grads(SolveGradient::checkpointed);
  for (std::size_t i = 0; i < params.size(); ++i) {
    const double scale = std::max(1e-8, max(abs(bp[i])).item());
    CHECK(max(abs(adj[i] - bp[i])).item() / scale < 1e-6);
    CHECK(max(abs(ck[i] - bp[i])).item() / scale < 1e-9);
  }
}

TEST_CASE("a CNF trained briefly by maximum likelihood (adjoint) improves its log-likelihood",
          "[cnf][training]") {
  Generator g(4);
  nn::CnfDynamics net(2, {32, 32}, nn::Activation::tanh, g);
  nn::Adam opt(net.named_parameters(), {.lr = 1e-2});
  const VectorField f = [&](double t, const Tensor& z) { return net(scalar(t), z); };
  const Tensor held_out = nn::sample_toy("moons", 1000, g);
  auto nll = [&](const Tensor& x) {
    NoGradGuard off;
    return -mean(cnf_log_likelihood(f, x, {}).logp).item();
  };
  const double before = nll(held_out);
  for (int step = 0; step < 60; ++step) {
    const Tensor x = nn::sample_toy("moons", 256, g);
    const Tensor loss = -mean(
        cnf_log_likelihood(f, x, {.gradient = SolveGradient::adjoint, .params = net.parameters()})
            .logp);
    opt.step(grad(loss, net.parameters()));
  }
  const double after = nll(held_out);
  INFO("held-out NLL " << before << " -> " << after << " nats");
  CHECK(after < before - 0.3);
}
