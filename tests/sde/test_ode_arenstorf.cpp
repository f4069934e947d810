// Gradient accuracy on the Arenstorf orbit over [0, 2] (a hard, nearly chaotic restricted
// three-body problem): the continuous adjoint, restarted from the forward pass's states at each
// step, stays within 3x of backpropagation's error at every tolerance 1e-4 .. 1e-10, while the
// pure backsolve drifts. Reference: the checkpointed (exact) gradient of a solve at 1e-12.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>

#include "autodiff/sg.hpp"
#include "sde/ode.hpp"
#include "tests/support/ode_problems.hpp"

using namespace sg;
using namespace sg::ode;

namespace {
using test::arenstorf;
Tensor start() { return test::arenstorf_start(); }
Tensor loss(const Tensor& z) { return sum(z * z); }
double rel(const Tensor& a, const Tensor& b) { return max(abs(a - b)).item() / max(abs(b)).item(); }
}  // namespace

TEST_CASE("adjoint gradients stay within 3x of backprop's error on Arenstorf",
          "[ode][adjoint][arenstorf]") {
  const Tensor y0 = start().requires_grad_();
  const Options ref_o{.rtol = 1e-12, .atol = 1e-12, .max_steps = 1000000};
  const Tensor ref =
      grad(loss(odeint_checkpointed(arenstorf(), {y0}, {}, 0.0, 2.0, ref_o).y[0]), {y0})[0];
  for (double tol : {1e-4, 1e-6, 1e-8, 1e-10}) {
    const Options o{.rtol = tol, .atol = tol, .max_steps = 1000000};
    const double e_bp = rel(grad(loss(odeint(arenstorf(), {y0}, 0.0, 2.0, o).y[0]), {y0})[0], ref);
    const Result adj = odeint_adjoint(arenstorf(), {y0}, {}, 0.0, 2.0, {.forward = o});
    const double e_adj = rel(grad(loss(adj.y[0]), {y0})[0], ref);
    const Result back =
        odeint_adjoint(arenstorf(), {y0}, {}, 0.0, 2.0, {.forward = o, .checkpoint_states = false});
    const double e_back = rel(grad(loss(back.y[0]), {y0})[0], ref);
    std::printf(
        "arenstorf tol %.0e: backprop %.2e, adjoint (checkpointed states) %.2e (nfe %lld fwd + "
        "%lld bwd), backsolve %.2e\n",
        tol, e_bp, e_adj, static_cast<long long>(adj.nfe),
        static_cast<long long>(adj.nfe_backward()), e_back);
    INFO("tol " << tol << ": backprop " << e_bp << ", adjoint " << e_adj << ", backsolve "
                << e_back);
    CHECK(e_adj <= 3 * e_bp + 1e-10);
  }
}
