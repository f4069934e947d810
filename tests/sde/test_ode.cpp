// ODE solvers: empirical convergence order of every tableau on a linear system with a known
// solution, adaptive solves meeting their tolerance, structured failures, output times, and
// gradients through solves (adjoint vs backprop vs checkpointed; the closed-form toy).
#include <catch2/catch.hpp>

#include "autodiff/sg.hpp"
#include "sde/ode.hpp"

using namespace sg;
using namespace sg::ode;

namespace {
constexpr DType f64 = DType::f64;
// y' = A y, A = [[-0.5, 2], [-2, -0.5]]: y(t) = e^{-t/2} R(2t) y0 (rows as samples: y A^T).
const Tensor& A() {
  static const Tensor a = from_vector({-0.5, 2.0, -2.0, -0.5}, {2, 2}, f64);
  return a;
}
Dynamics linear() {
  return [](double, const State& y) { return State{matmul(y[0], A().mT())}; };
}
Tensor exact(const Tensor& y0, double t) {
  const double c = std::cos(2 * t), s = std::sin(2 * t), e = std::exp(-0.5 * t);
  const Tensor R = from_vector({e * c, e * s, -e * s, e * c}, {2, 2}, f64);
  return matmul(y0, R.mT());
}
double err_at(const Tableau& tb, int n, const Tensor& y0) {
  const Result r = odeint(linear(), {y0}, 0.0, 2.0, {.method = &tb, .fixed_step = 2.0 / n});
  REQUIRE(r.ok());
  return max(abs(r.y[0] - exact(y0, 2.0))).item();
}
}  // namespace

TEST_CASE("each tableau converges at its theoretical order", "[ode]") {
  const Tensor y0 = from_vector({1.0, 0.5, -0.3, 2.0}, {2, 2}, f64);
  for (const Tableau* tb :
       {&euler(), &midpoint(), &heun(), &rk4(), &bosh3(), &dopri5(), &tsit5()}) {
    const int base = tb->order >= 5 ? 16 : tb->order == 4 ? 8 : 64;
    const double e1 = err_at(*tb, base, y0), e2 = err_at(*tb, 2 * base, y0),
                 e3 = err_at(*tb, 4 * base, y0);
    const double slope = (std::log(e1) - std::log(e3)) / std::log(4.0);
    INFO(tb->name << ": errors " << e1 << " " << e2 << " " << e3 << ", empirical order " << slope);
    CHECK(std::abs(slope - tb->order) <
          0.4);  // tsit5 sits at 5.3 here: its 5th-order error constant is tiny
  }
}

TEST_CASE("adaptive solves meet their tolerance and tighten with it", "[ode]") {
  const Tensor y0 = from_vector({1.0, 0.5}, {1, 2}, f64);
  for (const Tableau* tb : {&bosh3(), &dopri5(), &tsit5(), &heun()}) {
    double prev = 1;
    for (double tol : {1e-4, 1e-6, 1e-8}) {
      const Result r = odeint(linear(), {y0}, 0.0, 2.0, {.method = tb, .rtol = tol, .atol = tol});
      REQUIRE(r.ok());
      const double err = max(abs(r.y[0] - exact(y0, 2.0))).item();
      INFO(tb->name << " tol " << tol << ": error " << err << ", " << r.steps << " steps, " << r.nfe
                    << " evaluations");
      CHECK(err < 50 * tol);
      if (tol < 1e-4) CHECK(err < prev);
      prev = err;
    }
  }
}

TEST_CASE("solver failures are reported in the result, never thrown", "[ode]") {
  const Tensor y0 = from_vector({1.0, 0.5}, {1, 2}, f64);
  const Result many =
      odeint(linear(), {y0}, 0.0, 100.0, {.rtol = 1e-10, .atol = 1e-10, .max_steps = 5});
  CHECK(many.status == Status::too_many_steps);
  CHECK(std::string(status_name(many.status)) == "too many steps");
  // y' = y^2, y(0) = 1 blows up at t = 1.
  const Dynamics blow = [](double, const State& y) { return State{y[0] * y[0]}; };
  const Result r =
      odeint(blow, {from_vector({1.0}, {1}, f64)}, 0.0, 2.0, {.rtol = 1e-6, .atol = 1e-6});
  CHECK_FALSE(r.ok());
  CHECK(r.t < 1.001);  // stopped at the singularity
  CHECK(r.t > 0.99);
  CHECK_THROWS_AS(odeint(linear(), {y0}, 0.0, 1.0, {.method = &rk4()}),
                  ValueError);  // no error estimate
}

TEST_CASE("output at requested times, forwards and backwards in time", "[ode]") {
  const Tensor y0 = from_vector({1.0, 0.5}, {1, 2}, f64);
  const std::vector<double> ts = {0.0, 0.3, 1.1, 2.0};
  const Result r =
      odeint(linear(), {y0}, 0.0, 2.0, {.rtol = 1e-10, .atol = 1e-10, .output_times = ts});
  REQUIRE(r.ys.size() == ts.size());
  for (std::size_t i = 0; i < ts.size(); ++i)
    CHECK(max(abs(r.ys[i][0] - exact(y0, ts[i]))).item() < 1e-8);
  // Backwards: from y(2) to y(0).
  const Result back = odeint(linear(), {exact(y0, 2.0)}, 2.0, 0.0, {.rtol = 1e-10, .atol = 1e-10});
  CHECK(max(abs(back.y[0] - y0)).item() < 1e-8);
}

namespace {
// A neural ODE with parameters: f(t, z) = tanh(z W + b) + 0.1 t z
struct NeuralOde {
  Tensor W, b;
  explicit NeuralOde(Generator& g) {
    W = (randn({2, 2}, g, f64) * 0.8).requires_grad_();
    b = (randn({2}, g, f64) * 0.3).requires_grad_();
  }
  Dynamics f() const {
    return [this](double t, const State& y) {
      return State{tanh(matmul(y[0], W) + b) + y[0] * (0.1 * t)};
    };
  }
};
std::vector<Tensor> grads_of(const Tensor& z1, const std::vector<Tensor>& wrt) {
  return grad(sum(z1 * z1), wrt);
}
double max_rel(const Tensor& a, const Tensor& b) {
  return max(abs(a - b)).item() / std::max(1e-12, max(abs(b)).item());
}
}  // namespace

TEST_CASE("adjoint and checkpointed gradients agree with backpropagation through the solver",
          "[ode][adjoint]") {
  Generator g(3);
  NeuralOde net(g);
  const Tensor z0 = randn({3, 2}, g, f64).requires_grad_();
  const std::vector<Tensor> wrt = {z0, net.W, net.b};
  const Options tight{.rtol = 1e-10, .atol = 1e-10};
  const auto bp = grads_of(odeint(net.f(), {z0}, 0.0, 1.5, tight).y[0], wrt);
  SECTION("continuous adjoint (tolerance 1e-10): relative error below 1e-6") {
    const Result r = odeint_adjoint(net.f(), {z0}, {net.W, net.b}, 0.0, 1.5,
                                    {.forward = tight, .backward = tight});
    const auto adj = grads_of(r.y[0], wrt);
    for (int i = 0; i < 3; ++i) CHECK(max_rel(adj[i], bp[i]) < 1e-6);
  }
  SECTION("checkpointed discretise-then-optimise: equal to round-off") {
    const Result r = odeint_checkpointed(net.f(), {z0}, {net.W, net.b}, 0.0, 1.5, tight);
    const auto ck = grads_of(r.y[0], wrt);
    for (int i = 0; i < 3; ++i) CHECK(max_rel(ck[i], bp[i]) < 1e-10);
  }
  SECTION("fixed steps: the discrete adjoint equals backprop to round-off") {
    const Options fixed{.method = &rk4(), .fixed_step = 0.05};
    const auto bpf = grads_of(odeint(net.f(), {z0}, 0.0, 1.5, fixed).y[0], wrt);
    const auto ckf =
        grads_of(odeint_checkpointed(net.f(), {z0}, {net.W, net.b}, 0.0, 1.5, fixed).y[0], wrt);
    for (int i = 0; i < 3; ++i) CHECK(max_rel(ckf[i], bpf[i]) < 1e-12);
  }
}

TEST_CASE("adjoint on dz/dt = theta z, L = z(T)^2 / 2, against closed forms", "[ode][adjoint]") {
  const double theta0 = 0.7, z00 = 1.3, T = 1.2;
  const Tensor theta = scalar(theta0, f64).requires_grad_();
  const Dynamics f = [&](double, const State& y) { return State{y[0] * theta}; };
  const Options tight{.rtol = 1e-12, .atol = 1e-12};
  const Tensor z0 = scalar(z00, f64);
  const Result fw = odeint(f, {z0}, 0.0, T, tight);
  const Tensor z1 = fw.y[0].detach();
  const AdjointGradients a =
      adjoint_gradients(f, {theta}, {z1}, 0.0, T, {z1}, {.forward = tight, .backward = tight});
  const double e = std::exp(2 * theta0 * T);
  CHECK(a.dparams[0].item() ==
        Approx(T * z00 * z00 * e).epsilon(1e-8));                // dL/dtheta = T z0^2 e^{2 theta T}
  CHECK(a.dy0[0].item() == Approx(z00 * e).epsilon(1e-8));       // dL/dz0 = z0 e^{2 theta T}
  CHECK(a.dt1 == Approx(theta0 * z00 * z00 * e).epsilon(1e-8));  // dL/dT = theta z(T)^2
  CHECK(a.dt0 == Approx(-theta0 * z00 * z00 * e).epsilon(1e-8));  // dL/dt0 = -a(0) theta z0
  CHECK(a.backward.ok());
}

TEST_CASE("adjoint memory does not grow with the number of steps", "[ode][adjoint][memory]") {
  Generator g(4);
  NeuralOde net(g);
  const Tensor z0 = randn({3, 2}, g, f64);
  const std::size_t n0 = debug::tape_size();
  for (double h : {0.1, 0.01}) {
    const Result r = odeint_adjoint(net.f(), {z0}, {net.W, net.b}, 0.0, 1.0,
                                    {.forward = {.method = &rk4(), .fixed_step = h},
                                     .backward = Options{.method = &rk4(), .fixed_step = h}});
    // one custom node plus the unpacking views, whatever the number of steps
    CHECK(debug::tape_size() - n0 <= 3);
    const Result bp = odeint(net.f(), {z0}, 0.0, 1.0, {.method = &rk4(), .fixed_step = h});
    CHECK(debug::tape_size() - n0 > static_cast<std::size_t>(1.0 / h));
  }
}
