// The tape: leaf accumulation, guards, detach, scopes, thread-local tapes, and memory (no
// node, tensor or storage survives a training-style loop, even with create_graph).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <functional>
#include <thread>

#include <unistd.h>

#include "autodiff/sg.hpp"

using namespace sg;

TEST_CASE("backward accumulates into leaves", "[tape]") {
  Tensor w = from_vector({1, 2, 3}, {3}, DType::f64).requires_grad_();
  backward(sum(w * w));
  CHECK(w.grad().to_vector() == std::vector<double>{2, 4, 6});
  backward(sum(w));
  CHECK(w.grad().to_vector() == std::vector<double>{3, 5, 7});
  w.zero_grad();
  CHECK_FALSE(w.grad().defined());
  backward(w * 2.0, from_vector({1, 0, -1}, {3}, DType::f64));
  CHECK(w.grad().to_vector() == std::vector<double>{2, 0, -2});
}

TEST_CASE("no-grad, enable-grad and detach", "[tape]") {
  Tensor w = ones({2}, DType::f64).requires_grad_();
  {
    NoGradGuard off;
    CHECK_FALSE((w * 2.0).requires_grad());
    {
      EnableGradGuard on;
      CHECK((w * 2.0).requires_grad());
    }
  }
  CHECK_FALSE((w * 2.0).detach().requires_grad());
  Tensor y = exp(w);
  CHECK_THROWS_AS(y.requires_grad_(), GradError);  // only leaves
  CHECK_FALSE(y.is_leaf());
  CHECK(w.is_leaf());
}

TEST_CASE("gradients flow through shared subexpressions and repeated inputs", "[tape]") {
  Tensor x = from_vector({0.5, -1.5}, {2}, DType::f64).requires_grad_();
  Tensor a = sin(x);
  Tensor y = sum(a * a + a * x + x * x);
  Tensor g = grad(y, {x})[0];
  const auto xv = x.to_vector();
  for (int i = 0; i < 2; ++i) {
    const double s = std::sin(xv[i]), c = std::cos(xv[i]);
    CHECK(g.to_vector()[i] == Approx(2 * s * c + c * xv[i] + s + 2 * xv[i]).epsilon(1e-14));
  }
}

TEST_CASE("third derivative by repeated create_graph", "[tape]") {
  Tensor x = scalar(0.7, DType::f64).requires_grad_();
  Tensor y = x * x * x * x;  // y''' = 24 x
  Tensor g1 = grad(y, {x}, {.create_graph = true})[0];
  Tensor g2 = grad(g1, {x}, {.create_graph = true})[0];
  Tensor g3 = grad(g2, {x})[0];
  CHECK(g1.item() == Approx(4 * 0.343).epsilon(1e-14));
  CHECK(g2.item() == Approx(12 * 0.49).epsilon(1e-14));
  CHECK(g3.item() == Approx(24 * 0.7).epsilon(1e-14));
}

TEST_CASE("gradient with respect to an intermediate tensor", "[tape]") {
  Tensor x = from_vector({1, 2}, {2}, DType::f64).requires_grad_();
  Tensor h = x * 3.0;
  Tensor y = sum(h * h);
  auto gs = grad(y, {h, x});
  CHECK(gs[0].to_vector() == std::vector<double>{6, 12});
  CHECK(gs[1].to_vector() == std::vector<double>{18, 36});
}

TEST_CASE("a loop of forward + backward with create_graph leaves nothing behind",
          "[tape][memory]") {
  Generator gen(0);
  const Tensor w = randn({8, 8}, gen, DType::f64).requires_grad_();
  const Tensor x = randn({4, 8}, gen, DType::f64);
  const std::size_t nodes0 = debug::tape_size();
  const int64_t tensors0 = debug::live_tensors(), storages0 = debug::live_storages();
  for (int it = 0; it < 10000; ++it) {
    const Tensor y = sum(square(tanh(matmul(x, w))));
    const Tensor g = grad(y, {w}, {.create_graph = true})[0];
    const Tensor gg = grad(sum(g * g), {w})[0];  // second order through the recorded backward
    if (it == 0) CHECK(debug::tape_size() > nodes0);
    REQUIRE(gg.shape() == w.shape());
  }
  CHECK(debug::tape_size() == nodes0);
  CHECK(debug::live_tensors() == tensors0);
  CHECK(debug::live_storages() == storages0);
}

TEST_CASE("tape nodes are released as soon as results are dropped", "[tape][memory]") {
  Tensor x = ones({3}, DType::f64).requires_grad_();
  const std::size_t n0 = debug::tape_size();
  Tensor keep = exp(x);
  {
    Tensor a = sin(keep), b = a * a;
    CHECK(debug::tape_size() == n0 + 3);
  }
  CHECK(debug::tape_size() == n0 + 1);  // a and b popped, keep stays
  keep.reset();
  CHECK(debug::tape_size() == n0);
}

TEST_CASE("a scope releases its nodes and detaches what escapes", "[tape][memory]") {
  Tensor x = ones({3}, DType::f64).requires_grad_();
  const std::size_t n0 = debug::tape_size();
  Tensor escaped;
  {
    Scope s;
    escaped = sum(exp(x));
    CHECK(escaped.requires_grad());
  }
  CHECK(debug::tape_size() == n0);
  CHECK_FALSE(escaped.requires_grad());
  CHECK(escaped.item() == Approx(3 * std::exp(1.0)));
  // Gradients computed inside a scope survive as values.
  Tensor g;
  {
    Scope s;
    g = grad(sum(x * x), {x})[0];
  }
  CHECK(g.to_vector() == std::vector<double>{2, 2, 2});
}

TEST_CASE("threads differentiate independently", "[tape][threads]") {
  const Tensor w = from_vector({0.3, -0.2}, {2}, DType::f64).requires_grad_();
  std::vector<double> out(4);
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&, t] {
      for (int it = 0; it < 200; ++it) {
        const Tensor y = sum(exp(w * static_cast<double>(t + 1)));
        out[t] = grad(y, {w})[0].to_vector()[0];
      }
    });
  for (auto& th : ts) th.join();
  for (int t = 0; t < 4; ++t)
    CHECK(out[t] == Approx((t + 1) * std::exp(0.3 * (t + 1))).epsilon(1e-14));
  // A tensor recorded on another (live) thread's tape is refused, not silently a constant.
  const Tensor y = w * 2.0;
  bool threw = false;
  std::thread([&] {
    try {
      exp(y);
    } catch (const GradError&) {
      threw = true;
    }
  }).join();
  CHECK(threw);
  // When a thread ends, what it recorded becomes constant.
  Tensor z;
  std::thread([&] { z = w * 2.0; }).join();
  CHECK_FALSE(z.requires_grad());
  CHECK(z.to_vector() == std::vector<double>{0.6, -0.4});
}

// ---- pruning: grad() computes VJPs only on paths from the requested inputs to the outputs ----
namespace {
std::size_t vjp_calls_of(const std::function<void()>& f) {
  const std::size_t c0 = debug::vjp_rule_calls();
  f();
  return debug::vjp_rule_calls() - c0;
}
double max_abs_diff(const Tensor& a, const Tensor& b) {
  const auto av = a.to_vector(), bv = b.to_vector();
  REQUIRE(av.size() == bv.size());
  double m = 0;
  for (std::size_t i = 0; i < av.size(); ++i) m = std::max(m, std::abs(av[i] - bv[i]));
  return m;
}
}  // namespace

TEST_CASE("grad w.r.t. the input runs no VJP into unrequested weights", "[tape][prune]") {
  Generator gen(1);
  Tensor x = randn({4, 3}, gen, DType::f64).requires_grad_();
  Tensor w = randn({3, 5}, gen, DType::f64).requires_grad_();
  const Tensor y = sum(tanh(matmul(x, w)));
  std::vector<Tensor> gx, gw, both;
  // sum, tanh, then matmul into the requested operand only.
  CHECK(vjp_calls_of([&] { gx = grad(y, {x}); }) == 3);
  CHECK(vjp_calls_of([&] { gw = grad(y, {w}); }) == 3);
  CHECK(vjp_calls_of([&] { both = grad(y, {x, w}); }) == 4);
  CHECK(vjp_calls_of([&] { backward(y); }) == 4);  // backward(): every leaf, as before
  // Same values as the unpruned passes (backward(), both inputs) and the closed form.
  CHECK(max_abs_diff(gx[0], x.grad()) == 0);
  CHECK(max_abs_diff(gw[0], w.grad()) == 0);
  CHECK(max_abs_diff(gx[0], both[0]) == 0);
  CHECK(max_abs_diff(gw[0], both[1]) == 0);
  Tensor ref;
  {
    NoGradGuard off;
    const Tensor t = tanh(matmul(x, w));
    ref = matmul(1.0 - t * t, transpose(w));
  }
  CHECK(max_abs_diff(gx[0], ref) < 1e-14);
}

TEST_CASE("a requested non-leaf input stops the reverse pass", "[tape][prune]") {
  Tensor x = from_vector({0.3, -0.8, 1.1}, {3}, DType::f64).requires_grad_();
  const Tensor h = exp(x);
  const Tensor y = sum(sin(h) * x);
  std::vector<Tensor> gh, ghx;
  // sum, mul into sin(h) (x is a leaf nobody asked for), sin; never exp below h.
  CHECK(vjp_calls_of([&] { gh = grad(y, {h}); }) == 3);
  CHECK(vjp_calls_of([&] { ghx = grad(y, {h, x}); }) == 5);
  const auto xv = x.to_vector();
  for (int i = 0; i < 3; ++i) {
    const double e = std::exp(xv[i]);
    CHECK(gh[0].to_vector()[i] == Approx(std::cos(e) * xv[i]).epsilon(1e-14));
    CHECK(ghx[0].to_vector()[i] == Approx(std::cos(e) * xv[i]).epsilon(1e-14));
    CHECK(ghx[1].to_vector()[i] == Approx(std::sin(e) + std::cos(e) * xv[i] * e).epsilon(1e-14));
  }
  // The output itself as the input: its cotangent, no rule at all.
  double gy = 0;
  CHECK(vjp_calls_of([&] { gy = grad(y, {y})[0].item(); }) == 0);
  CHECK(gy == 1.0);
}

TEST_CASE("a VJP at the end of a long recorded history costs only its own nodes", "[tape][prune]") {
  // The CNF pattern: the trace VJP of step k w.r.t. the (non-leaf) state z_k, with the whole
  // solve recorded below z_k.
  Generator gen(2);
  Tensor w = (randn({3, 3}, gen, DType::f64) * 0.5).requires_grad_();
  Tensor z = randn({4, 3}, gen, DType::f64).requires_grad_();
  for (int k = 0; k < 50; ++k) z = z + 0.1 * tanh(matmul(z, w));
  const Tensor y = tanh(matmul(z, w));
  const Tensor e = ones_like(y);
  Tensor g;
  // tanh, then matmul into z only: the 50 steps below z are never visited.
  CHECK(vjp_calls_of([&] { g = grad({y}, {z}, {e}, {.create_graph = true})[0]; }) == 2);
  Tensor ref;
  {
    NoGradGuard off;
    const Tensor t = tanh(matmul(z, w));
    ref = matmul(1.0 - t * t, transpose(w));
  }
  CHECK(max_abs_diff(g, ref) < 1e-14);
  // The recorded VJP still differentiates w.r.t. the weights, through z's history too.
  const Tensor gw = grad(sum(g * g), {w})[0];
  REQUIRE(gw.shape() == w.shape());
  CHECK(std::isfinite(sum(gw).item()));
}

TEST_CASE("pruned create_graph gradients pass gradcheck at orders 1 and 2", "[tape][prune]") {
  // An implicit-score-matching-like objective: the inner gradient is w.r.t. x only; the outer
  // ones w.r.t. the weights go through the recorded (pruned) backward.
  Generator gen(3);
  const Tensor x = randn({5, 3}, gen, DType::f64);
  const Tensor w0 = randn({3, 4}, gen, DType::f64);
  const Tensor b0 = randn({4}, gen, DType::f64);
  const auto f = [&x](const std::vector<Tensor>& v) {
    const bool keep = grad_enabled();  // gradcheck evaluates f without grad for differences
    EnableGradGuard on;
    Tensor xt = x.detach().requires_grad_();
    const Tensor s = sum(tanh(matmul(xt, v[0]) + v[1]) * matmul(xt, v[0]));
    const Tensor gx = grad(s, {xt}, {.create_graph = keep})[0];
    return sum(gx * gx) + sum(sin(gx));
  };
  const GradcheckReport rep = gradcheck(f, {w0, b0}, {.order = 2});
  INFO(rep);
  CHECK(rep.ok());
}

namespace {
// Resident set size of this process in bytes (Linux /proc/self/statm, pages).
std::size_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}
}  // namespace

TEST_CASE("a tensor kept from the previous step pins only that step", "[tape][memory][collect]") {
  Generator gen(1);
  const Tensor w = randn({16, 16}, gen, DType::f64).requires_grad_();
  const Tensor x = randn({8, 16}, gen, DType::f64);
  const std::size_t nodes0 = debug::tape_size();
  const Tensor want = grad(sum(square(tanh(matmul(x, w)))), {w})[0];
  Tensor last;  // the user's habit: keep the previous loss around
  std::size_t swept_first = 0, max_nodes = 0;
  struct Snapshot {
    std::size_t nodes = 0, rss = 0;
    int64_t tensors = 0, storages = 0;
  } early, late;
  for (int it = 0; it < 10000; ++it) {
    const Tensor loss = sum(square(tanh(matmul(x, w))));
    const std::size_t swept0 = debug::reverse_sweep_nodes();
    const Tensor g = grad(loss, {w})[0];
    const std::size_t swept = debug::reverse_sweep_nodes() - swept0;
    if (it == 0) swept_first = swept;
    REQUIRE(swept == swept_first);  // each reverse pass sweeps only its own step: time flat
    last = loss;
    max_nodes = std::max(max_nodes, debug::tape_size());
    if (it == 2000 || it == 9999) {
      CHECK(max_abs_diff(g, want) == 0.0);
      debug::collect_tape();
      (it == 2000 ? early : late) = {debug::tape_size(), resident_bytes(), debug::live_tensors(),
                                     debug::live_storages()};
    }
  }
  CHECK(max_nodes < nodes0 + 2 * 8192 + 64);  // compacted whenever the tape doubled
  CHECK(late.nodes == early.nodes);           // one step's graph, pinned by `last`
  CHECK(late.tensors == early.tensors);       // released at once, not at compaction
  CHECK(late.storages == early.storages);
#if !defined(__SANITIZE_ADDRESS__)  // ASan's quarantine keeps freed blocks resident
  CHECK(late.rss < early.rss + (8u << 20));
#endif
  // the kept step is still differentiable after every compaction
  CHECK(max_abs_diff(grad(last, {w})[0], want) == 0.0);
  last.reset();
  CHECK(debug::tape_size() == nodes0);
}

TEST_CASE("collection keeps what live outputs reach and renumbers open scopes", "[tape][collect]") {
  Tensor x = from_vector({0.5, -1.0, 2.0}, {3}, DType::f64).requires_grad_();
  const std::size_t n0 = debug::tape_size();
  Tensor a = exp(x);   // kept: the user holds it
  Tensor pin = a * 2;  // kept, and it holds garbage below the next nodes
  Tensor gone = sin(x) * 3;
  Tensor b = cos(a);  // kept, consumes a
  gone.reset();       // sin and mul are now unreachable but sit below b
  pin.reset();        // `a * 2` too
  CHECK(debug::tape_size() == n0 + 5);
  {
    Scope scope;
    Tensor inner = tanh(b);
    CHECK(debug::collect_tape() == 3);
    CHECK(debug::tape_size() == n0 + 3);  // exp, cos, tanh
    Tensor inner2 = inner * inner;
    CHECK(max_abs_diff(grad(sum(inner2), {x})[0], grad(sum(square(tanh(cos(exp(x))))), {x})[0]) <
          1e-15);
  }
  CHECK(debug::tape_size() == n0 + 2);     // the scope popped back to its renumbered start
  const Tensor gx = grad(sum(b), {x})[0];  // -sin(e^x) e^x
  CHECK(max_abs_diff(gx, -sin(exp(x)) * exp(x)) < 1e-15);
  a.reset();
  b.reset();
  CHECK(debug::tape_size() == n0);
}

TEST_CASE("partial derivatives stop at requested inputs; totals follow every path", "[tape]") {
  const Tensor x = from_vector({0.5, -2.0}, {2}, DType::f64).requires_grad_();
  const Tensor y = x * 2.0;  // y depends on x
  const Tensor z = sum(y * x * x);
  // total: dz/dx = 2 y x + 2 x^2 = 6 x^2 (y = 2x), dz/dy = x^2
  const auto total = grad(z, {y, x});
  CHECK(max_abs_diff(total[1], x * x * 6.0) < 1e-15);
  CHECK(max_abs_diff(total[0], x * x) < 1e-15);
  // partial: y held fixed, dz/dx = 2 y x = 4 x^2
  const auto part = grad(z, {y, x}, {.create_graph = true, .partial = true});
  CHECK(max_abs_diff(part[1], x * x * 4.0) < 1e-15);
  CHECK(max_abs_diff(part[0], x * x) < 1e-15);
  // and the partials stay differentiable in everything (y through x): d/dx sum(4 x^2) = 8 x
  CHECK(max_abs_diff(grad(sum(part[1]), {x})[0], x * 8.0) < 1e-15);
}
