// sg_ode_work_precision: scoregrad's side of the ODE work-precision benchmark (issue 14 item 8).
// For each problem, method and tolerance it solves once, records the final state (or the
// gradient), the evaluations of f and the wall-clock time, and writes everything as JSON. It
// computes no errors: bench/compare/ode_work_precision.py computes the references (exact for
// Arenstorf, a tight scipy DOP853 run for Pleiades and the neural ODE's state, a tight
// checkpointed solve here for the neural ODE's gradient) and the errors of every system alike.
//
//   sg_ode_work_precision [--quick] [--threads=N] [--out=FILE]
//                         [--methods=bosh3,dopri5,tsit5,dop853]
//                         [--problems=arenstorf,pleiades,node]
//                         [--per-decade=N] [--time-once] [--forward-only]
//
// Methods are looked up by name with sg::ode::tableau(name): a name the library does not know
// (dop853 before it lands) is skipped and listed under "methods_missing". Problems:
//   arenstorf  restricted three-body orbit over one period T (state [1, 4]); y(T) = y(0) exactly
//   pleiades   Hairer's 7-body problem on [0, 3] (state [28]: x, y, x', y' of the 7 bodies)
//   node       a fixed random tanh MLP 4 -> 32 -> 32 -> 4 on a batch of 16 (state [16, 4],
//              64 numbers, 1348 parameters), float64, t in [0, 4], weights of variance 4 / fan_in;
//              forward solves and the gradient of sum(y(4)^2) wrt (y0, parameters) by backprop,
//              odeint_adjoint, odeint_checkpointed
// Weights and y0 of `node` come from splitmix64 (see node_weights), which the Python side repeats.
// Tolerances: rtol = atol = 10^-3 .. 10^-12 (half decades; --quick: whole decades, and the time is
// the faster of two calls instead of the minimum of 3 repeats of >= 0.2 s). --per-decade=N sets the
// number of tolerances per decade (e.g. 4 to tune a controller against dense curves);
// --time-once reports the measured call's own time (no repeats: fastest, noisiest);
// --forward-only leaves out the neural ODE's gradients.
// Evaluations are counted by a wrapper around f (every call, forward and backward), and checked
// against Result::nfe for the forward solve.
#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "autodiff/sg.hpp"
#include "sde/ode.hpp"

using namespace sg;
using namespace sg::ode;

namespace {
constexpr DType f64 = DType::f64;

// ---- problems --------------------------------------------------------------------------------
constexpr double kMu = 0.012277471, kMu1 = 1 - kMu;
constexpr double kArenstorfT = 17.0652165601579625588917206249;

Dynamics arenstorf() {
  return [](double, const State& s) {
    const Tensor& z = s[0];
    const Tensor y1 = slice(z, 1, 0, 1), y2 = slice(z, 1, 1, 2), v1 = slice(z, 1, 2, 3),
                 v2 = slice(z, 1, 3, 4);
    const Tensor d1 = pow(square(y1 + kMu) + square(y2), 1.5);
    const Tensor d2 = pow(square(y1 - kMu1) + square(y2), 1.5);
    const Tensor a1 = y1 + v2 * 2.0 - (y1 + kMu) * kMu1 / d1 - (y1 - kMu1) * kMu / d2;
    const Tensor a2 = y2 - v1 * 2.0 - y2 * kMu1 / d1 - y2 * kMu / d2;
    return State{concat({v1, v2, a1, a2}, 1)};
  };
}
State arenstorf_y0() {
  return {from_vector({0.994, 0.0, 0.0, -2.00158510637908252240537862224}, {1, 4}, f64)};
}

// Hairer, Norsett & Wanner I, II.10 (and the IVP test set): masses m_i = i, t in [0, 3].
Dynamics pleiades() {
  const Tensor m = from_vector({1, 2, 3, 4, 5, 6, 7}, {1, 7}, f64);
  const Tensor diag = eye(7, f64);
  return [m, diag](double, const State& s) {
    const Tensor& z = s[0];
    const Tensor x = slice(z, 0, 0, 7), y = slice(z, 0, 7, 14);
    const Tensor dx = unsqueeze(x, 0) - unsqueeze(x, 1);  // [i, j] = x_j - x_i
    const Tensor dy = unsqueeze(y, 0) - unsqueeze(y, 1);
    // diagonal: dx = dy = 0, and +1 keeps r^3 away from 0 there
    const Tensor w = m / pow(square(dx) + square(dy) + diag, 1.5);
    return State{concat({slice(z, 0, 14, 28), sum(w * dx, {1}), sum(w * dy, {1})}, 0)};
  };
}
State pleiades_y0() {
  return {from_vector({3, 3,  -1, -3,    2, -2,   2,     // x
                       3, -3, 2,  0,     0, -4,   4,     // y
                       0, 0,  0,  0,     0, 1.75, -1.5,  // x'
                       0, 0,  0,  -1.25, 1, 0,    0},    // y'
                      {28}, f64)};
}

// splitmix64 -> uniform [0, 1) -> uniform with variance gain^2 / fan_in (Python repeats it).
struct SplitMix {
  uint64_t s;
  double uniform() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return double(z >> 11) * 0x1.0p-53;
  }
};
constexpr int64_t kBatch = 16, kDim = 4, kHidden = 32;
constexpr double kNodeT = 4.0, kGain = 2.0;
struct Node {
  std::vector<Tensor> params;  // W1 [4, 32], b1 [32], W2 [32, 32], b2 [32], W3 [32, 4], b3 [4]
  Tensor y0;                   // [16, 4]
};
Node node_weights() {
  SplitMix g{20261207};
  auto mat = [&](int64_t rows, int64_t cols, double scale) {
    std::vector<double> v(rows * cols);
    for (double& x : v) x = (2 * g.uniform() - 1) * std::sqrt(3.0) * scale;
    return from_vector(v, {rows, cols}, f64);
  };
  Node n;
  const int64_t sizes[4] = {kDim, kHidden, kHidden, kDim};
  for (int l = 0; l < 3; ++l) {
    const double s = kGain / std::sqrt(double(sizes[l]));
    n.params.push_back(mat(sizes[l], sizes[l + 1], s));
    n.params.push_back(reshape(mat(sizes[l + 1], 1, 0.1), {sizes[l + 1]}));
  }
  n.y0 = mat(kBatch, kDim, 1.0);
  return n;
}
Dynamics node_f(const std::vector<Tensor>& p) {
  return [p](double, const State& s) {
    const Tensor h1 = tanh(matmul(s[0], p[0]) + p[1]);
    const Tensor h2 = tanh(matmul(h1, p[2]) + p[3]);
    return State{matmul(h2, p[4]) + p[5]};
  };
}

// ---- measurement -----------------------------------------------------------------------------
Dynamics counted(Dynamics f, std::shared_ptr<int64_t> n) {
  return [f = std::move(f), n](double t, const State& y) {
    ++*n;
    return f(t, y);
  };
}
double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
// Wall-clock seconds per call: the minimum over `repeats` of the mean over enough calls to last
// min_time (the minimum: the machine is shared, and other work only ever adds time).
double time_call(const std::function<void()>& fn, double first, double min_time, int repeats) {
  const int64_t n = std::max<int64_t>(1, int64_t(std::ceil(min_time / std::max(first, 1e-9))));
  double best = first;
  for (int r = 0; r < repeats; ++r) {
    const double t0 = now();
    for (int64_t i = 0; i < n; ++i) fn();
    best = std::min(best, (now() - t0) / double(n));
  }
  return best;
}

std::string num(double x) {
  if (!std::isfinite(x)) return "null";
  char b[32];
  std::snprintf(b, sizeof b, "%.17g", x);
  return b;
}
std::string arr(const std::vector<Tensor>& ts) {
  std::string s = "[";
  bool first = true;
  for (const Tensor& t : ts)
    for (double v : t.detach().to_vector()) {
      s += first ? "" : ",";
      s += num(v);
      first = false;
    }
  return s + "]";
}
std::string quote(const std::string& s) { return "\"" + s + "\""; }

struct Config {
  bool quick = false;
  int threads = 1;
  std::string out = "ode_work_precision_scoregrad.json";
  std::vector<std::string> methods{"bosh3", "dopri5", "tsit5", "dop853"};
  std::vector<std::string> problems{"arenstorf", "pleiades", "node"};
  int per_decade = 0;      // 0: 2, or 1 with --quick
  bool time_once = false;  // time = the measured call alone
  bool forward_only = false;
};
std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string x; std::getline(ss, x, ',');)
    if (!x.empty()) out.push_back(x);
  return out;
}
// 10^-3 down to `tightest`, per_decade points per decade (1 with --quick, else 2)
std::vector<double> tolerances(const Config& c, double tightest) {
  const int per = c.per_decade > 0 ? c.per_decade : (c.quick ? 1 : 2);
  std::vector<double> t;
  for (int k = 0; k <= 9 * per; ++k) {
    const double tol = std::pow(10.0, -3.0 - double(k) / per);
    if (tol >= tightest * 0.999) t.push_back(tol);
  }
  return t;
}

struct Runner {
  Config c;
  std::vector<std::string> rows;
  double min_time() const { return c.quick ? 0.0 : 0.2; }
  // --quick: one more call after the first; --time-once: none
  int repeats() const { return c.time_once ? 0 : (c.quick ? 1 : 3); }

  void forward(const std::string& problem, const Tableau& tb, const Dynamics& f0, const State& y0,
               double t1) {
    for (double tol : tolerances(c, 1e-12)) {
      auto n = std::make_shared<int64_t>(0);
      const Dynamics f = counted(f0, n);
      const Options o{.method = &tb, .rtol = tol, .atol = tol, .max_steps = 2000000};
      Result r;
      const double t0 = now();
      {
        NoGradGuard off;
        r = odeint(f, y0, 0.0, t1, o);
      }
      const double first = now() - t0;
      const int64_t nfe = *n;
      const double sec = time_call(
          [&] {
            NoGradGuard off;
            odeint(f0, y0, 0.0, t1, o);
          },
          first, min_time(), repeats());
      std::ostringstream s;
      s << "{\"problem\":" << quote(problem)
        << ",\"system\":\"scoregrad\",\"method\":" << quote(tb.name)
        << ",\"mode\":\"forward\",\"tol\":" << num(tol)
        << ",\"status\":" << quote(status_name(r.status)) << ",\"nfe\":" << nfe
        << ",\"nfe_result\":" << r.nfe << ",\"steps\":" << r.steps << ",\"rejected\":" << r.rejected
        << ",\"time_s\":" << num(sec) << ",\"y\":" << arr(r.y) << "}";
      rows.push_back(s.str());
      std::fprintf(stderr, "scoregrad %-9s %-7s tol %.1e  nfe %6lld  %9.3f ms  %s\n",
                   problem.c_str(), tb.name.c_str(), tol, static_cast<long long>(nfe), sec * 1e3,
                   status_name(r.status));
    }
  }

  // Gradient of sum(y(4)^2) wrt (y0, params) of the neural ODE, three strategies.
  std::vector<Tensor> node_grad(const std::string& strategy, const Tableau& tb, double tol,
                                const Node& nd, int64_t* nfe_fwd, int64_t* nfe_bwd, Status* st) {
    auto n = std::make_shared<int64_t>(0);
    std::vector<Tensor> params;
    for (const Tensor& p : nd.params) params.push_back(p.detach().requires_grad_());
    const Tensor y0 = nd.y0.detach().requires_grad_();
    const Dynamics f = counted(node_f(params), n);
    const Options o{.method = &tb, .rtol = tol, .atol = tol, .max_steps = 2000000};
    Result r;
    if (strategy == "backprop")
      r = odeint(f, {y0}, 0.0, kNodeT, o);
    else if (strategy == "adjoint")
      r = odeint_adjoint(f, {y0}, params, 0.0, kNodeT, {.forward = o});
    else
      r = odeint_checkpointed(f, {y0}, params, 0.0, kNodeT, o);
    if (nfe_fwd) *nfe_fwd = *n;
    if (st) *st = r.status;
    std::vector<Tensor> wrt{y0};
    for (const Tensor& p : params) wrt.push_back(p);
    std::vector<Tensor> g = grad(sum(square(r.y[0])), wrt);
    if (nfe_bwd) *nfe_bwd = *n - (nfe_fwd ? *nfe_fwd : 0);
    return g;
  }

  void run() {
    std::vector<const Tableau*> tbs;
    std::vector<std::string> missing;
    for (const std::string& m : c.methods) {
      try {
        tbs.push_back(&tableau(m));
      } catch (const ValueError&) {
        missing.push_back(m);
        std::fprintf(stderr, "scoregrad: no method '%s' in sg::ode::tableau; skipped\n", m.c_str());
      }
    }
    const Node nd = node_weights();
    std::string refs;
    for (const std::string& p : c.problems) {
      for (const Tableau* tb : tbs) {
        if (p == "arenstorf")
          forward(p, *tb, arenstorf(), arenstorf_y0(), kArenstorfT);
        else if (p == "pleiades")
          forward(p, *tb, pleiades(), pleiades_y0(), 3.0);
        else if (p == "node")
          forward(p, *tb, node_f(nd.params), {nd.y0}, kNodeT);
        else
          fail<ValueError>("sg_ode_work_precision: unknown problem '", p, "'");
      }
      if (p != "node" || c.forward_only) continue;
      // The gradient's reference: the checkpointed (exact) gradient of a dopri5 solve at 1e-12.
      {
        int64_t nf = 0, nb = 0;
        const double t0 = now();
        const auto g = node_grad("checkpointed", dopri5(), 1e-12, nd, &nf, &nb, nullptr);
        refs =
            "{\"node_grad\":{\"how\":\"odeint_checkpointed, dopri5, rtol = atol = 1e-12\","
            "\"nfe\":" +
            std::to_string(nf) + ",\"nfe_backward\":" + std::to_string(nb) +
            ",\"time_s\":" + num(now() - t0) + ",\"grad\":" + arr(g) + "}}";
      }
      for (const Tableau* tb : tbs) {
        if (tb->name != "dopri5") continue;  // the peers' gradients are dopri5 (torchdiffeq)
        for (const char* strategy : {"backprop", "adjoint", "checkpointed"}) {
          for (double tol : tolerances(c, 1e-11)) {
            int64_t nf = 0, nb = 0;
            Status st{};
            const double t0 = now();
            const auto g = node_grad(strategy, *tb, tol, nd, &nf, &nb, &st);
            const double first = now() - t0;
            const double sec =
                time_call([&] { node_grad(strategy, *tb, tol, nd, nullptr, nullptr, nullptr); },
                          first, min_time(), repeats());
            std::ostringstream s;
            s << "{\"problem\":\"node_grad\",\"system\":\"scoregrad\",\"method\":"
              << quote(tb->name) << ",\"mode\":" << quote(strategy) << ",\"tol\":" << num(tol)
              << ",\"status\":" << quote(status_name(st)) << ",\"nfe\":" << nf
              << ",\"nfe_backward\":" << nb << ",\"time_s\":" << num(sec) << ",\"grad\":" << arr(g)
              << "}";
            rows.push_back(s.str());
            std::fprintf(
                stderr, "scoregrad node_grad %-12s tol %.1e  nfe %5lld + %5lld  %9.3f ms\n",
                strategy, tol, static_cast<long long>(nf), static_cast<long long>(nb), sec * 1e3);
          }
        }
      }
    }
    FILE* fp = std::fopen(c.out.c_str(), "w");
    if (!fp) fail<IOError>("sg_ode_work_precision: cannot write ", c.out);
    std::string methods_missing = "[";
    for (std::size_t i = 0; i < missing.size(); ++i) {
      if (i) methods_missing += ",";
      methods_missing += quote(missing[i]);
    }
    methods_missing += "]";
    std::fprintf(fp,
                 "{\"system\":\"scoregrad\",\"threads\":%d,\"quick\":%s,\"methods_missing\":%s,"
                 "\"node\":{\"batch\":%lld,\"dim\":%lld,\"hidden\":%lld,\"gain\":%s,\"t1\":%s,"
                 "\"seed\":20261207,\"params\":%s,\"y0\":%s},\"references\":%s,\"runs\":[\n",
                 c.threads, c.quick ? "true" : "false", methods_missing.c_str(),
                 static_cast<long long>(kBatch), static_cast<long long>(kDim),
                 static_cast<long long>(kHidden), num(kGain).c_str(), num(kNodeT).c_str(),
                 arr(nd.params).c_str(), arr({nd.y0}).c_str(), refs.empty() ? "{}" : refs.c_str());
    for (std::size_t i = 0; i < rows.size(); ++i)
      std::fprintf(fp, "%s%s\n", rows[i].c_str(), i + 1 < rows.size() ? "," : "");
    std::fprintf(fp, "]}\n");
    std::fclose(fp);
  }
};
}  // namespace

int main(int argc, char** argv) {
  Config c;
  if (const char* t = std::getenv("THREADS")) c.threads = std::atoi(t);
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick")
      c.quick = true;
    else if (a.starts_with("--threads="))
      c.threads = std::atoi(a.c_str() + 10);
    else if (a.starts_with("--out="))
      c.out = a.substr(6);
    else if (a.starts_with("--methods="))
      c.methods = split(a.substr(10));
    else if (a.starts_with("--problems="))
      c.problems = split(a.substr(11));
    else if (a.starts_with("--per-decade="))
      c.per_decade = std::atoi(a.c_str() + 13);
    else if (a == "--time-once")
      c.time_once = true;
    else if (a == "--forward-only")
      c.forward_only = true;
    else {
      std::fprintf(
          stderr,
          "usage: %s [--quick] [--threads=N] [--out=FILE] [--methods=a,b] "
          "[--problems=arenstorf,pleiades,node] [--per-decade=N] [--time-once] [--forward-only]\n",
          argv[0]);
      return 2;
    }
  }
  omp_set_num_threads(c.threads);
  try {
    Runner{c}.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sg_ode_work_precision: %s\n", e.what());
    return 1;
  }
  return 0;
}
