// The CUDA backend against the CPU backend. Plain main (Catch2 v2 has no "skipped"): without a
// usable device it prints one line and exits 77, which ctest reports as SKIPPED; with one it
// runs every op-table row on the GPU (values and gradients of order 1 and 2, float64 and
// float32) and checks the allocator, copies, reductions, GEMM, indexing and the generator.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "autodiff/backend/cuda/cuda_backend.hpp"
#include "autodiff/backend/index_ops.hpp"
#include "autodiff/verify/op_cases.hpp"

using namespace sg;

namespace {

int g_checks = 0, g_failures = 0;
const Device kGpu = Device::cuda(0);

void check(bool ok, const std::string& what) {
  ++g_checks;
  if (!ok) {
    ++g_failures;
    std::printf("  FAIL %s\n", what.c_str());
  }
}
#define CHECK(cond) check((cond), std::string(#cond) + " (line " + std::to_string(__LINE__) + ")")

template <class E, class F>
void check_throws(F&& f, const std::string& what, const char* needle = nullptr) {
  try {
    f();
  } catch (const E& e) {
    const bool ok = !needle || std::strstr(e.what(), needle);
    check(ok, what + ": message '" + e.what() + "' lacks '" + (needle ? needle : "") + "'");
    return;
  } catch (const std::exception& e) {
    check(false, what + ": wrong exception: " + e.what());
    return;
  }
  check(false, what + ": no exception");
}

// |g - c| <= atol + rtol |c| elementwise (NaN matches NaN), same shape and dtype.
void check_close(const Tensor& g, const Tensor& c, double atol, double rtol,
                 const std::string& what) {
  if (!g.defined() || !c.defined())
    return check(g.defined() == c.defined(), what + ": one side undefined");
  if (!(g.shape() == c.shape()) || g.dtype() != c.dtype())
    return check(false, what + ": " + g.shape().str() + dtype_name(g.dtype()) + " vs " +
                            c.shape().str() + dtype_name(c.dtype()));
  const std::vector<double> a = g.to_vector(), b = c.to_vector();
  for (std::size_t i = 0; i < a.size(); ++i) {
    const bool ok = (std::isnan(a[i]) && std::isnan(b[i])) ||
                    std::fabs(a[i] - b[i]) <= atol + rtol * std::fabs(b[i]);
    if (!ok) {
      char buf[160];
      std::snprintf(buf, sizeof buf, ": element %zu gpu %.17g cpu %.17g", i, a[i], b[i]);
      return check(false, what + buf);
    }
  }
  check(true, what);
}
void check_equal(const Tensor& g, const Tensor& c, const std::string& what) {
  check_close(g, c, 0, 0, what);
}

void section(const char* name, const std::function<void()>& body) {
  const int before = g_failures;
  std::printf("[%s]\n", name);
  try {
    body();
  } catch (const std::exception& e) {
    check(false, std::string(name) + ": unexpected exception: " + e.what());
  }
  std::printf("  %s\n", g_failures == before ? "ok" : "FAILED");
}

// ---- the op table ------------------------------------------------------------------------------
std::vector<std::string> g_not_device_generic;

void op_row(const verify::OpCase& c, DType dt) {
  const bool f64 = dt == DType::f64;
  const double tol1 = f64 ? 1e-10 : 1e-4, tol2 = f64 ? 1e-9 : 1e-3;
  const std::string tag = c.name + (f64 ? " [f64]" : " [f32]");
  std::vector<Tensor> xc, xg;
  for (const Tensor& x : verify::make_inputs(c, 11)) {
    xc.push_back(cast(x, dt).detach());
    xg.push_back(xc.back().to(kGpu).detach());
    if (c.differentiable) {
      xc.back().requires_grad_();
      xg.back().requires_grad_();
    }
  }
  Tensor yc, yg;
  try {
    yc = c.f(xc);
  } catch (const Error&) {
    return;  // the row itself refuses this dtype on the CPU: nothing to compare
  }
  try {
    yg = c.f(xg);
  } catch (const DeviceError& e) {
    // The row builds constants (a mask, an index) on the CPU: a device mismatch, not a failure
    // of the backend. Device-generic versions of those ops run in indexing_and_where().
    if (std::strstr(e.what(), "cpu") && !std::strstr(e.what(), "CUDA error")) {
      g_not_device_generic.push_back(tag + ": " + e.what());
      return;
    }
    throw;
  }
  check(yg.device() == kGpu || c.op == OpId::to_device,
        tag + ": result is on " + device_name(yg.device()));
  check_close(yg, yc, tol1, tol1, tag + ": value");
  if (!c.differentiable || c.order < 1) return;

  Generator gen(5);
  const Tensor w = randn(yc.shape(), gen, yc.dtype());
  const GradOptions opts{.create_graph = true, .allow_unused = true};
  const std::vector<Tensor> g1c = grad({yc}, xc, {w}, opts);
  const std::vector<Tensor> g1g = grad({yg}, xg, {w.to(yg.device())}, opts);
  for (std::size_t i = 0; i < xc.size(); ++i) {
    check(!g1g[i].defined() || g1g[i].device() == kGpu, tag + ": gradient on the wrong device");
    check_close(g1g[i], g1c[i], tol1, tol1, tag + ": grad " + std::to_string(i));
  }
  if (c.order < 2) return;
  std::vector<Tensor> vc, vg;
  for (const Tensor& x : xc) {
    vc.push_back(randn(x.shape(), gen, dt));
    vg.push_back(vc.back().to(kGpu));
  }
  const std::vector<Tensor> g2c = grad(g1c, xc, vc, {.allow_unused = true});
  const std::vector<Tensor> g2g = grad(g1g, xg, vg, {.allow_unused = true});
  for (std::size_t i = 0; i < xc.size(); ++i)
    check_close(g2g[i], g2c[i], tol2, tol2, tag + ": grad2 " + std::to_string(i));
}

void op_table() {
  int rows = 0;
  for (const verify::OpCase& c : verify::op_cases()) {
    if (c.special()) continue;  // special-point rows: checked against closed forms on the CPU
    for (DType dt : {DType::f64, DType::f32}) {
      const int before = g_failures;
      try {
        op_row(c, dt);
      } catch (const std::exception& e) {
        check(false,
              c.name + (dt == DType::f64 ? " [f64]" : " [f32]") + ": exception: " + e.what());
      }
      if (g_failures != before) std::printf("  row '%s' failed\n", c.name.c_str());
    }
    ++rows;
  }
  std::printf("  %d rows x {f64, f32}\n", rows);
  for (const std::string& s : g_not_device_generic)
    std::printf("  NOT RUN (row not device-generic) %s\n", s.c_str());
}

// ---- device-generic versions of the rows that build CPU constants -------------------------------
void indexing_and_where() {
  Generator gen(3);
  const Tensor x = randn({4, 5}, gen, DType::f64), y = randn({4, 5}, gen, DType::f64);
  const Tensor mask = rand({4, 5}, gen, DType::f64) > 0.5;
  const Tensor idx = from_indices({0, 4, 4, 1, 2, 2, 3, 0}, {4, 2});
  const Tensor sel = from_indices({3, 0, 3, 1, 2}, {5});
  const Tensor xg = x.to(kGpu), yg = y.to(kGpu), mg = mask.to(kGpu), ig = idx.to(kGpu),
               sg = sel.to(kGpu);
  check_equal(where(mg, xg, yg), where(mask, x, y), "where");
  check_equal(where(mg, xg, 0.25), where(mask, x, 0.25), "where(scalar)");
  check_equal(gather(xg, 1, ig), gather(x, 1, idx), "gather axis 1");
  check_equal(index_select(xg, 0, sg), index_select(x, 0, sel), "index_select axis 0");
  check_equal(index_select(xg.mT(), 1, sg), index_select(x.mT(), 1, sel),
              "index_select on a transposed view");
  const Tensor src = randn({4, 2}, gen, DType::f64);
  check_close(scatter_add(xg, 1, ig, src.to(kGpu)), scatter_add(x, 1, idx, src), 1e-14, 1e-14,
              "scatter_add");
  for (DType dt : {DType::f32, DType::i64}) {
    const Tensor b = cast(x * 10.0, dt), s = cast(src * 10.0, dt);
    check_close(scatter_add(b.to(kGpu), 1, ig, s.to(kGpu)), scatter_add(b, 1, idx, s), 1e-5, 1e-6,
                std::string("scatter_add ") + dtype_name(dt));
    check_equal(gather(b.to(kGpu), 1, ig), gather(b, 1, idx),
                std::string("gather ") + dtype_name(dt));
  }
  // Gradients through the device-side index ops, orders 1 and 2.
  Tensor xc = x.detach().requires_grad_(), xd = xg.detach().requires_grad_();
  auto f = [&](const Tensor& t, const Tensor& i, const Tensor& m, const Tensor& s) {
    return sum(square(gather(t, 1, i))) + sum(where(m, t * t * t, sin(t))) +
           sum(square(index_select(t, 0, s)));
  };
  const auto gc = grad(f(xc, idx, mask, sel), {xc}, {.create_graph = true});
  const auto gd = grad(f(xd, ig, mg, sg), {xd}, {.create_graph = true});
  check_close(gd[0], gc[0], 1e-12, 1e-12, "index/where grad");
  check_close(grad(sum(gd[0] * gd[0]), {xd})[0], grad(sum(gc[0] * gc[0]), {xc})[0], 1e-10, 1e-10,
              "index/where grad2");
  // Out-of-range indices are an error, never a silent read or write. The index ops do not
  // synchronise: the error is raised (IndexError, a ValueError) at the next synchronisation.
  const Tensor bad = from_indices({0, 5}, {1, 2}, kGpu);
  Tensor pending;
  bool launched = false;
  try {
    pending = gather(xg, 1, bad);
    launched = true;
  } catch (const std::exception& e) {
    check(false, std::string("gather out of range threw at launch: ") + e.what());
  }
  check(launched, "gather out of range returns without synchronising");
  check_throws<IndexError>([&] { (void)pending.to_vector(); }, "gather out of range, raised later",
                           "index 5 is out of range for axis 1 of size 5");
  check_throws<IndexError>([&] { (void)gather(xg, 1, bad).to_vector(); }, "gather out of range",
                           "raised at the first synchronisation");
  check_equal(gather(xg, 1, ig), gather(x, 1, idx), "gather works after an index error");
  check_throws<ValueError>(
      [&] {
        (void)scatter_add(xg, 1, bad, zeros({1, 2}, DType::f64, kGpu)).to_vector();
      },
      "scatter_add out of range", "out of range");
  check_throws<IndexError>(
      [&] {
        (void)index_select(xg, 0, from_indices({1, -1}, {2}, kGpu));
        cuda::synchronize();
      },
      "index_select out of range, raised by synchronize()", "cuda:0");
  check_throws<IndexError>([&] { (void)gather(x, 1, bad.to(Device::cpu())); },
                           "cpu gather out of range");
  check_throws<DeviceError>([&] { (void)(x + yg); }, "cpu + cuda", "different devices");
}

// ---- deterministic scatter-add ----------------------------------------------------------------
void scatter_modes() {
  Generator gen(41);
  // float32 with many collisions (7 destinations for 12000 terms per column block): the
  // deterministic mode adds in the CPU's order, so the bits are the CPU's, run after run.
  const Tensor base = randn({7, 300}, gen, DType::f32);
  const Tensor src = randn({40, 300}, gen, DType::f32) * 1000.0;
  const Tensor idx = cast(rand({40, 300}, gen, DType::f64) * 7.0, DType::i64);
  const Tensor want = scatter_add(base, 0, idx, src);
  check(cuda::scatter_mode() == cuda::ScatterMode::deterministic, "deterministic by default");
  const Tensor bg = base.to(kGpu), sg = src.to(kGpu), ig = idx.to(kGpu);
  const Tensor d1 = scatter_add(bg, 0, ig, sg), d2 = scatter_add(bg, 0, ig, sg);
  check_equal(d1, want, "deterministic scatter_add equals the cpu bit for bit");
  check_equal(d2, d1, "deterministic scatter_add repeats bit for bit");
  check_equal(scatter_add(permute(bg.to(kGpu), {1, 0}).contiguous(), 1, permute(ig, {1, 0}),
                          permute(sg, {1, 0})),
              scatter_add(permute(base, {1, 0}).contiguous(), 1, permute(idx, {1, 0}),
                          permute(src, {1, 0})),
              "deterministic scatter_add over strided index and source");
  // Gradients of index_select (a scatter-add) are reproducible too.
  Tensor xc = randn({50, 8}, gen, DType::f32).requires_grad_();
  Tensor xd = xc.detach().to(kGpu).requires_grad_();
  const Tensor sel = cast(rand({5000}, gen, DType::f64) * 50.0, DType::i64);
  const Tensor gc = grad(sum(index_select(xc, 0, sel) * 3.0), {xc})[0];
  const Tensor gd = grad(sum(index_select(xd, 0, sel.to(kGpu)) * 3.0), {xd})[0];
  check_equal(gd, gc, "index_select gradient equals the cpu bit for bit");
  cuda::set_scatter_mode(cuda::ScatterMode::atomic);
  const Tensor a1 = scatter_add(bg, 0, ig, sg);
  cuda::set_scatter_mode(cuda::ScatterMode::deterministic);
  check_close(a1, want, 1e-1, 1e-5, "atomic scatter_add within float32 rounding");
}

// ---- copies
// --------------------------------------------------------------------------------------
void copies() {
  Generator gen(9);
  const Tensor x = randn({5, 7, 3}, gen, DType::f64) * 4.0;
  for (DType dt : {DType::f32, DType::f64, DType::i64, DType::b8}) {
    const Tensor h = cast(x, dt);
    const Tensor back = h.to(kGpu).to(Device::cpu());
    check(back.device() == Device::cpu(), "round trip lands on the cpu");
    check_equal(back, h, std::string("host round trip ") + dtype_name(dt));
    for (DType to : {DType::f32, DType::f64, DType::i64, DType::b8})
      check_equal(cast(h.to(kGpu), to), cast(h, to),
                  std::string("cast ") + dtype_name(dt) + " -> " + dtype_name(to));
  }
  const Tensor g = x.to(kGpu);
  check_equal(permute(g, {2, 0, 1}).contiguous(), permute(x, {2, 0, 1}).contiguous(),
              "permuted copy");
  check_equal(permute(g, {1, 2, 0}), permute(x, {1, 2, 0}), "non-contiguous view to host");
  check_equal(slice(g, 1, 1, 7, 2).contiguous(), slice(x, 1, 1, 7, 2).contiguous(), "sliced copy");
  check_equal(expand(slice(g, 0, 0, 1), {4, 7, 3}).contiguous(),
              expand(slice(x, 0, 0, 1), {4, 7, 3}).contiguous(), "broadcast copy");
  check_equal(pad(g, {1, 0, 2}, {0, 1, 1}, 0.5), pad(x, {1, 0, 2}, {0, 1, 1}, 0.5), "pad");
  check_equal(concat({g, g * 2.0}, 1), concat({x, x * 2.0}, 1), "concat");
  check_equal(scalar(3.5, DType::f64, kGpu), scalar(3.5, DType::f64), "rank-0");
  check_equal(zeros({0, 3}, DType::f32, kGpu), zeros({0, 3}), "empty");
  check_equal(full({2, 3}, -1.25, DType::f32, kGpu), full({2, 3}, -1.25), "fill");
  check_equal(arange(10, DType::i64, kGpu), arange(10), "arange int64");
  const Tensor big = randn({(1 << 20) + 3}, gen);
  check_equal(big.to(kGpu).to(Device::cpu()), big, "1M-element round trip");
  check_equal(slice(big.to(kGpu), 0, 5, (1 << 20), 3).contiguous(),
              slice(big, 0, 5, (1 << 20), 3).contiguous(), "1M-element strided copy");
  // cuda:i -> cuda:j: a peer copy (no staging through host memory).
  if (cuda::device_count() >= 2) {
    const Device g1 = Device::cuda(1);
    const Tensor on1 = g.to(g1);
    check(on1.device() == g1, "peer copy lands on cuda:1");
    check_equal(on1, x, "peer copy cuda:0 -> cuda:1");
    check_equal(permute(g, {2, 0, 1}).to(g1), permute(x, {2, 0, 1}), "peer copy of a view");
    check_equal(cast(g, DType::f32).to(g1).to(kGpu), cast(x, DType::f32), "peer copy and back");
    check_equal(big.to(kGpu).to(g1) * 2.0, big * 2.0, "1M-element peer copy, then a kernel");
  } else {
    std::printf("  peer copies not run: one device\n");
  }
  // to_device is differentiable both ways.
  Tensor xc = x.detach().requires_grad_();
  const Tensor y = sum(square(xc.to(kGpu)) * 3.0);
  check(y.device() == kGpu, "to_device output on cuda");
  const Tensor gx = grad(y, {xc})[0];
  check(gx.device() == Device::cpu(), "gradient comes back to the cpu");
  check_close(gx, x * 6.0, 1e-13, 1e-13, "gradient through to_device");
}

// ---- reductions, GEMM and elementwise extras
// -----------------------------------------------------
void reductions() {
  Generator gen(17);
  for (DType dt : {DType::f64, DType::f32}) {
    const double tol = dt == DType::f64 ? 1e-12 : 2e-5;
    const std::string t = std::string(" ") + dtype_name(dt);
    const Tensor v = randn({1 << 20}, gen, dt);
    check_close(sum(v.to(kGpu)), sum(v), tol * 1000, tol, "sum of 1M" + t);
    check_close(max(v.to(kGpu)), max(v), 0, 0, "max of 1M" + t);
    const Tensor a = randn({4096, 33}, gen, dt), b = randn({7, 5000}, gen, dt),
                 c = randn({6, 300, 5}, gen, dt);
    check_close(sum(a.to(kGpu), {0}), sum(a, {0}), tol * 100, tol,
                "sum over a long leading axis" + t);
    check_close(sum(a.to(kGpu), {1}), sum(a, {1}), tol * 100, tol,
                "sum over a short trailing axis" + t);
    check_close(sum(b.to(kGpu), {1}, true), sum(b, {1}, true), tol * 100, tol,
                "sum over a long trailing axis" + t);
    check_close(min(b.to(kGpu), {0}), min(b, {0}), 0, 0, "min over axis 0" + t);
    check_close(sum(c.to(kGpu), {0, 2}), sum(c, {0, 2}), tol * 100, tol, "sum over axes 0, 2" + t);
    check_close(max(permute(c.to(kGpu), {2, 0, 1}), {1, 2}), max(permute(c, {2, 0, 1}), {1, 2}), 0,
                0, "max of a permuted view" + t);
    const Tensor nan = where(eq(arange(12, DType::i64), from_indices({5}, {1})),
                             full({12}, NAN, dt), ones({12}, dt));
    const Tensor n2 = reshape(nan, {3, 4});
    check_close(max(n2.to(kGpu), {1}), max(n2, {1}), 0, 0, "max propagates NaN" + t);
    check_close(min(n2.to(kGpu), {1}), min(n2, {1}), 0, 0, "min propagates NaN" + t);
    check_close(sum(zeros({3, 0}, dt, kGpu), {1}), sum(zeros({3, 0}, dt), {1}), 0, 0,
                "sum over an empty axis" + t);
  }
  // Full and few-output reductions split across the device (reduce_plan.hpp), two passes.
  for (DType dt : {DType::f64, DType::f32}) {
    const std::string t = std::string(" ") + dtype_name(dt);
    const Tensor v = randn({30000001}, gen, dt);
    const Tensor vg = v.to(kGpu);
    check_close(sum(vg), sum(v), 1e-9, 1e-9, "split sum of 3e7" + t);
    check_equal(sum(vg), sum(vg), "split sum repeats bit for bit" + t);
    check_equal(max(vg), max(v), "split max of 3e7" + t);
    check_equal(min(vg), min(v), "split min of 3e7" + t);
    const Tensor rows = randn({3, 1 << 22}, gen, dt);
    check_close(sum(rows.to(kGpu), {1}), sum(rows, {1}), 1e-9, 1e-9, "3 long rows" + t);
    check_close(sum(permute(rows.to(kGpu), {1, 0}), {0}), sum(permute(rows, {1, 0}), {0}), 1e-9,
                1e-9, "3 long strided columns" + t);
  }
  check_equal(sum(full({1 << 25}, 1.0, DType::f32, kGpu)), full({}, 33554432.0),
              "2^25 float32 ones (double accumulator)");
  const Tensor i = arange(100000, DType::i64);
  check_equal(sum(i.to(kGpu)), sum(i), "int64 sum");
  const Tensor wrap = full({3000000}, 4e12, DType::i64);
  check_equal(sum(wrap.to(kGpu)), sum(wrap), "int64 split sum");
  check_equal(max(i.to(kGpu)), max(i), "int64 max");
  // Integer and boolean elementwise paths, and dtype refusals that must match the CPU.
  const Tensor ia = from_indices({-3, 0, 7, 2}, {4}), ib = from_indices({2, 5, -1, 2}, {4});
  for (auto [name, f] :
       std::vector<std::pair<const char*, Tensor (*)(const Tensor&, const Tensor&)>>{
           {"add", add},
           {"sub", sub},
           {"mul", mul},
           {"maximum", maximum},
           {"minimum", minimum},
           {"eq", eq},
           {"lt", lt},
           {"ge", ge}})
    check_equal(f(ia.to(kGpu), ib.to(kGpu)), f(ia, ib), std::string("int64 ") + name);
  check_equal(abs(ia.to(kGpu)), abs(ia), "int64 abs");
  check_equal(sign(-ia.to(kGpu)), sign(-ia), "int64 neg/sign");
  const Tensor ba = ia > 0.0, bb = ib > 0.0;
  check_equal(where(ba.to(kGpu), ia.to(kGpu), ib.to(kGpu)), where(ba, ia, ib),
              "int64 where on a bool mask");
  check_equal(cast(bb.to(kGpu), DType::f32), cast(bb, DType::f32), "bool cast");
  check_throws<DTypeError>([&] { (void)exp(ia.to(kGpu)); }, "exp of int64 on cuda");
}

void gemm() {
  Generator gen(23);
  for (DType dt : {DType::f64, DType::f32}) {
    // float32 at 1e-5 would fail with TF32 (10-bit mantissa) GEMMs: this also checks TF32 is off.
    const double tol = dt == DType::f64 ? 1e-12 : 1e-5;
    const std::string t = std::string(" ") + dtype_name(dt);
    const Tensor a = randn({64, 300}, gen, dt), b = randn({300, 50}, gen, dt);
    const Tensor ag = a.to(kGpu), bg = b.to(kGpu);
    check_close(matmul(ag, bg), matmul(a, b), tol * 30, tol, "matmul" + t);
    check_close(matmul(bg.mT(), ag.mT()), matmul(b.mT(), a.mT()), tol * 30, tol,
                "matmul of transposed views" + t);
    check_close(matmul(ag.mT().contiguous().mT(), bg), matmul(a, b), tol * 30, tol,
                "column-major lhs" + t);
    const Tensor p = randn({3, 1, 20, 30}, gen, dt), q = randn({4, 30, 10}, gen, dt);
    check_close(matmul(p.to(kGpu), q.to(kGpu)), matmul(p, q), tol * 10, tol,
                "broadcast batched matmul" + t);
    const Tensor r = randn({2, 3, 5, 6}, gen, dt), s = randn({2, 3, 6, 4}, gen, dt);
    check_close(matmul(permute(r.to(kGpu), {1, 0, 2, 3}), permute(s.to(kGpu), {1, 0, 2, 3})),
                matmul(permute(r, {1, 0, 2, 3}), permute(s, {1, 0, 2, 3})), tol * 10, tol,
                "batched matmul over permuted batch axes" + t);
    const Tensor v = randn({300}, gen, dt);
    check_close(matmul(ag, v.to(kGpu)), matmul(a, v), tol * 30, tol, "matrix-vector" + t);
    check_close(matmul(v.to(kGpu), bg), matmul(v, b), tol * 30, tol, "vector-matrix" + t);
    check_equal(matmul(zeros({3, 0}, dt, kGpu), zeros({0, 4}, dt, kGpu)), zeros({3, 4}, dt),
                "k = 0" + t);
    // Layouts the shared decision takes without a copy (gemm_layout.hpp): a row with a column
    // stride, padded rows (a column slice), a column slice of a transposed matrix.
    const Tensor row = slice(ag.mT(), 0, 2, 3), rowc = slice(a.mT(), 0, 2, 3);
    check_close(matmul(row, ag), matmul(rowc, a), tol * 30, tol, "row with a column stride" + t);
    check_close(matmul(slice(ag, 1, 5, 105), slice(bg, 0, 0, 100)),
                matmul(slice(a, 1, 5, 105), slice(b, 0, 0, 100)), tol * 30, tol, "padded rows" + t);
    check_close(matmul(slice(bg.mT(), 1, 0, 64), ag), matmul(slice(b.mT(), 1, 0, 64), a), tol * 30,
                tol, "padded columns of a transposed view" + t);
    check_close(matmul(slice(ag, 1, 0, 300, 2), slice(bg, 0, 0, 150)),
                matmul(slice(a, 1, 0, 300, 2), slice(b, 0, 0, 150)), tol * 30, tol,
                "column stride 2: copied" + t);
  }
}

// ---- allocator and generator
// ---------------------------------------------------------------------
void allocator() {
  cuda::release_cache();
  const cuda::AllocatorStats s0 = cuda::allocator_stats();
  check(s0.bytes_cached == 0, "release_cache empties the cache");
  {
    const Tensor a = empty({1000}, DType::f32, kGpu);  // 4000 bytes -> the 4096 bucket
    const cuda::AllocatorStats s1 = cuda::allocator_stats();
    check(s1.bytes_in_use == s0.bytes_in_use + 4096, "in-use bytes count the bucket");
    check(s1.device_allocs == s0.device_allocs + 1, "a cold allocation calls cudaMalloc");
    check(s1.peak_bytes_in_use >= s1.bytes_in_use, "peak");
  }
  const cuda::AllocatorStats s2 = cuda::allocator_stats();
  check(s2.bytes_in_use == s0.bytes_in_use && s2.bytes_cached == 4096,
        "a dead storage goes to the cache");
  {
    const Tensor b = empty({999}, DType::f32, kGpu);  // 3996 bytes: same bucket
    const cuda::AllocatorStats s3 = cuda::allocator_stats();
    check(s3.cache_hits == s2.cache_hits + 1 && s3.device_allocs == s2.device_allocs,
          "same bucket is reused");
    check(s3.bytes_cached == 0, "the reused block left the cache");
    const Tensor c = empty({3 << 18}, DType::f32, kGpu);  // 3 MiB -> 4 MiB bucket
    check(cuda::allocator_stats().bytes_in_use == s0.bytes_in_use + 4096 + (4u << 20),
          "large bucket");
  }
  check(cuda::allocator_stats().bytes_cached == 4096 + (4u << 20), "both blocks cached");
  const uint64_t frees = cuda::allocator_stats().device_frees;
  cuda::release_cache();
  check(cuda::allocator_stats().bytes_cached == 0 &&
            cuda::allocator_stats().device_frees == frees + 2,
        "release_cache frees every cached block");
  check_throws<DeviceError>([] { (void)empty({int64_t{1} << 50}, DType::f32, kGpu); },
                            "an impossible allocation", "cannot allocate");
  check_equal(ones({3}, DType::f32, kGpu) * 2.0, full({3}, 2.0),
              "the device works after a failed allocation");
  // Two threads at once: per-thread cuBLAS handles, the allocator's lock.
  Generator gen(31);
  const Tensor a = randn({40, 50}, gen, DType::f64), b = randn({50, 30}, gen, DType::f64);
  const Tensor ref = matmul(a, b);
  std::vector<std::string> errs(2);
  std::vector<std::thread> ts;
  for (int k = 0; k < 2; ++k)
    ts.emplace_back([&, k] {
      try {
        for (int r = 0; r < 20; ++r) {
          const std::vector<double> got = matmul(a.to(kGpu), b.to(kGpu)).to_vector(),
                                    want = ref.to_vector();
          for (std::size_t i = 0; i < got.size(); ++i)
            if (std::fabs(got[i] - want[i]) > 1e-11) errs[k] = "wrong value";
        }
      } catch (const std::exception& e) {
        errs[k] = e.what();
      }
    });
  for (auto& t : ts) t.join();
  check(errs[0].empty() && errs[1].empty(), "two threads: " + errs[0] + " " + errs[1]);
}

void generator() {
  using Draw = std::function<Tensor(Generator&, DType, Device)>;
  const std::vector<std::pair<const char*, Draw>> kinds = {
      {"uniform",
       [](Generator& g, DType t, Device d) {
         return rand({1000, 3}, g, t, d);
       }},
      {"normal",
       [](Generator& g, DType t, Device d) {
         return randn({1000, 3}, g, t, d);
       }},
      {"rademacher",
       [](Generator& g, DType t, Device d) {
         return rademacher({1000, 3}, g, t, d);
       }},
      {"bernoulli",
       [](Generator& g, DType t, Device d) {
         return bernoulli({1000, 3}, 0.3, g, t, d);
       }},
      {"uniform 1M", [](Generator& g, DType t, Device d) { return rand({1 << 20}, g, t, d); }},
  };
  for (DType dt : {DType::f32, DType::f64})
    for (const auto& [name, draw] : kinds) {
      Generator gc(1234), gg(1234);
      gc.advance(77);
      gg.advance(77);
      const Tensor c = draw(gc, dt, Device::cpu()), g = draw(gg, dt, kGpu);
      const std::string t = std::string(name) + " " + dtype_name(dt);
      check(g.device() == kGpu && gc.offset() == gg.offset(),
            t + ": generator state advances alike");
      const std::vector<double> a = g.to_vector(), b = c.to_vector();
      std::size_t differ = 0;
      double worst = 0;
      for (std::size_t i = 0; i < a.size(); ++i)
        if (a[i] != b[i]) {
          ++differ;
          worst = std::max(worst, std::fabs(a[i] - b[i]) / std::max(std::fabs(b[i]), 1e-300));
        }
      if (differ)
        std::printf("  %s: %zu of %zu values differ, worst relative %.3g\n", t.c_str(), differ,
                    a.size(), worst);
      if (std::string(name) == "normal") {
        // Box-Muller goes through log/cos/sqrt, whose last bit may differ between glibc and
        // CUDA's libdevice (documented error bounds of 1-2 ulp); the Philox words are the same.
        const double eps = dt == DType::f32 ? 1.1920929e-7 : 2.220446049250313e-16;
        check(worst <= 8 * eps, t + ": equal to the cpu within 8 ulp");
      } else {
        check(differ == 0, t + ": identical to the cpu");
      }
    }
}

}  // namespace

int main() {
  std::string why;
  if (cuda::device_count(&why) <= 0) {
    std::printf("SKIPPED: no usable CUDA device (%s)\n", why.c_str());
    return 77;  // SKIP_RETURN_CODE in tests/cuda/CMakeLists.txt
  }
  cuda::init();
  section("op table on cuda vs cpu", op_table);
  section("where, gather, scatter_add, index_select on device", indexing_and_where);
  section("scatter_add: deterministic (default) and atomic", scatter_modes);
  section("copies", copies);
  section("reductions and integer ops", reductions);
  section("gemm (cuBLAS)", gemm);
  section("caching allocator", allocator);
  section("generator", generator);
  std::printf("%d checks, %d failures%s\n", g_checks, g_failures,
              g_not_device_generic.empty() ? "" : " (some op-table rows not run, see above)");
  return g_failures ? 1 : 0;
}
