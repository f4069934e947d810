// LibTorch's side of the side-by-side benchmark (bench/compare/bench_compare.cpp): the same
// workloads as compare/sg_workloads.cpp, written as a LibTorch user would (C++ frontend, eager
// autograd), on the weights and inputs the problem map gives. The only TU that includes torch.
#include <torch/torch.h>
#include <torch/version.h>

#include <cmath>
#include <numeric>
#include <stdexcept>

#include "compare/workload.hpp"

namespace sgb::libtorch {
namespace {

constexpr double kSigma = 0.5;  // as in sg_workloads.cpp
constexpr int kChainOps = 1000;

torch::Tensor to_torch(const Host& h) {
  auto t = torch::from_blob(const_cast<double*>(h.data.data()),
                            torch::IntArrayRef(h.shape.data(), h.shape.size()), torch::kFloat64);
  return t.to(h.f64 ? torch::kFloat64 : torch::kFloat32, /*non_blocking=*/false, /*copy=*/true);
}
Host to_host(const torch::Tensor& t) {
  const torch::Tensor d = t.detach().to(torch::kFloat64).contiguous();
  Host h;
  h.shape.assign(d.sizes().begin(), d.sizes().end());
  h.data.assign(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
  h.f64 = t.scalar_type() == torch::kFloat64;
  return h;
}
const Host& at(const HostMap& m, const std::string& key) {
  const auto it = m.find(key);
  if (it == m.end()) throw std::runtime_error("bench_compare: problem has no '" + key + "'");
  return it->second;
}

// Parameters ("p.<name>", trainable) and buffers ("b.<name>") of a problem, by name.
struct Weights {
  Weights(const HostMap& p, bool trainable) {
    for (const auto& [key, h] : p) {
      if (key.starts_with("p.")) {
        names.push_back(key.substr(2));
        params.push_back(to_torch(h).requires_grad_(trainable));
        by_name[names.back()] = params.back();
      } else if (key.starts_with("b.")) {
        by_name[key.substr(2)] = to_torch(h);
      }
    }
  }
  const torch::Tensor& operator[](const std::string& n) const {
    const auto it = by_name.find(n);
    if (it == by_name.end()) throw std::runtime_error("bench_compare: no weight '" + n + "'");
    return it->second;
  }
  HostMap grads(const std::vector<torch::Tensor>& g) const {
    HostMap out;
    for (std::size_t i = 0; i < g.size(); ++i) out["grad." + names[i]] = to_host(g[i]);
    return out;
  }
  std::vector<std::string> names;
  std::vector<torch::Tensor> params;
  std::map<std::string, torch::Tensor> by_name;
};

// nn::MlpScoreNet: MLP([x, sin(2 pi t W), cos(2 pi t W)]) with SiLU; Linear weights are [in, out].
struct MlpScore {
  explicit MlpScore(const Weights& w) : fourier(w["embed.W"]) {
    for (int l = 0; w.by_name.contains("mlp.layers." + std::to_string(l) + ".weight"); ++l) {
      weight.push_back(w["mlp.layers." + std::to_string(l) + ".weight"]);
      bias.push_back(w["mlp.layers." + std::to_string(l) + ".bias"]);
    }
  }
  torch::Tensor operator()(const torch::Tensor& x, const torch::Tensor& t) const {
    const torch::Tensor p = t.unsqueeze(-1) * fourier.unsqueeze(0) * (2 * M_PI);
    torch::Tensor h = torch::cat({x, torch::sin(p), torch::cos(p)}, -1);
    for (std::size_t l = 0; l < weight.size(); ++l) {
      h = torch::addmm(bias[l], h, weight[l]);
      if (l + 1 < weight.size()) h = torch::silu(h);
    }
    return h;
  }
  torch::Tensor fourier;
  std::vector<torch::Tensor> weight, bias;
};

std::vector<torch::Tensor> grad(const torch::Tensor& y, const std::vector<torch::Tensor>& x,
                                const torch::Tensor& cotangent = {}, bool create_graph = false) {
  return torch::autograd::grad({y}, x, {cotangent}, /*retain_graph=*/true, create_graph);
}

class OpChain : public Workload {
 public:
  explicit OpChain(const HostMap& p)
      : x_(to_torch(at(p, "x")).requires_grad_()), c_(to_torch(at(p, "c"))) {}
  void run() override { step(); }
  HostMap outputs() override {
    auto [y, g] = step();
    return {{"y", to_host(y)}, {"grad.x", to_host(g)}};
  }

 private:
  std::pair<torch::Tensor, torch::Tensor> step() {
    torch::Tensor y = x_;
    for (int i = 0; i < kChainOps; i += 4)
      y = torch::add(torch::tanh(torch::mul(torch::sin(y), c_)), c_);
    return {y, torch::autograd::grad({y}, {x_})[0]};
  }
  torch::Tensor x_, c_;
};

// Gradient or Hessian-vector product (double backward) of mean |s(x, t)|^2 w.r.t. the input.
class MlpInputDerivative : public Workload {
 public:
  MlpInputDerivative(bool hvp, const HostMap& p)
      : hvp_(hvp),
        w_(p, false),
        net_(w_),
        xf_(to_torch(at(p, "x")).requires_grad_()),
        t_(to_torch(at(p, "t"))),
        v_(to_torch(at(p, "v"))) {}
  void run() override { step(); }
  HostMap outputs() override { return {{hvp_ ? "hvp" : "grad", to_host(step())}}; }

 private:
  torch::Tensor step() {
    const torch::Tensor y = net_(xf_.view({t_.size(0), -1}), t_);
    const torch::Tensor f = (y * y).mean();
    if (!hvp_) return grad(f, {xf_})[0];
    const torch::Tensor g = grad(f, {xf_}, {}, true)[0];
    return grad(g, {xf_}, v_)[0];
  }
  bool hvp_;
  Weights w_;
  MlpScore net_;
  torch::Tensor xf_, t_, v_;
};

class Gemm : public Workload {
 public:
  explicit Gemm(const HostMap& p) : a_(to_torch(at(p, "a"))), b_(to_torch(at(p, "b"))) {}
  void run() override {
    torch::NoGradGuard ng;
    c_ = torch::mm(a_, b_);
  }
  HostMap outputs() override {
    run();
    return {{"c", to_host(c_)}};
  }

 private:
  torch::Tensor a_, b_, c_;
};

// nn::UNet (channels 32, multipliers {1, 2}, GroupNorm 8, no attention) on named weights.
struct Unet {
  explicit Unet(const Weights& weights) : w(weights) {}
  torch::Tensor linear(const std::string& n, const torch::Tensor& x) const {
    return torch::addmm(w[n + ".bias"], x, w[n + ".weight"]);
  }
  torch::Tensor conv(const std::string& n, const torch::Tensor& x) const {
    const torch::Tensor& k = w[n + ".weight"];
    return torch::conv2d(x, k, w[n + ".bias"], 1, k.size(-1) / 2);
  }
  torch::Tensor norm(const std::string& n, const torch::Tensor& x) const {
    return torch::group_norm(x, std::gcd<int64_t>(8, x.size(1)), w[n + ".weight"], w[n + ".bias"],
                             1e-5);
  }
  torch::Tensor block(const std::string& n, const torch::Tensor& x,
                      const torch::Tensor& temb) const {
    torch::Tensor h = conv(n + ".conv1", torch::silu(norm(n + ".norm1", x)));
    h = h + linear(n + ".temb_proj", torch::silu(temb)).unsqueeze(-1).unsqueeze(-1);
    h = conv(n + ".conv2", torch::silu(norm(n + ".norm2", h)));
    return (w.by_name.contains(n + ".skip.weight") ? conv(n + ".skip", x) : x) + h;
  }
  torch::Tensor operator()(const torch::Tensor& x, const torch::Tensor& t) const {
    namespace F = torch::nn::functional;
    const torch::Tensor p = t.unsqueeze(-1) * w["fourier.W"].unsqueeze(0) * (2 * M_PI);
    const torch::Tensor temb = linear(
        "temb2", torch::silu(linear("temb1", torch::cat({torch::sin(p), torch::cos(p)}, -1))));
    const torch::Tensor skip0 = block("down.0", conv("in_conv", x), temb);
    const torch::Tensor skip1 = block("down.1", torch::avg_pool2d(skip0, 2), temb);
    torch::Tensor h = block("mid2", block("mid1", skip1, temb), temb);
    h = block("up.1", torch::cat({h, skip1}, 1), temb);
    h = F::interpolate(
        h,
        F::InterpolateFuncOptions().scale_factor(std::vector<double>{2, 2}).mode(torch::kNearest));
    h = block("up.0", torch::cat({h, skip0}, 1), temb);
    return conv("out_conv", torch::silu(norm("out_norm", h)));
  }
  const Weights& w;
};

// Training step of an objective on a score network (MlpScore or Unet), fixed noise (formulas as
// in objectives/objectives.hpp).
template <class Net>
class ScoreObjective : public Workload {
 public:
  ScoreObjective(const std::string& kind, const HostMap& p)
      : kind_(kind), w_(p, true), net_(w_), x_(to_torch(at(p, "x"))), t_(to_torch(at(p, "t"))) {
    if (p.contains("noise")) noise_ = to_torch(at(p, "noise"));
  }
  void run() override { step(); }
  HostMap outputs() override {
    auto [loss, g] = step();
    HostMap out = w_.grads(g);
    out["loss"] = to_host(loss);
    return out;
  }

 private:
  std::pair<torch::Tensor, std::vector<torch::Tensor>> step() {
    torch::Tensor loss;
    if (kind_ == "dsm") {
      const torch::Tensor r = net_(x_ + noise_ * kSigma, t_) + noise_ * (1 / kSigma);
      loss = (r * r).flatten(1).sum(1).mean() * (0.5 * kSigma * kSigma);
    } else if (kind_ == "fd_ssm") {  // 1/8 |s+ + s-|^2 + (D / (2 eps^2)) (s+ - s-)^T v
      const int64_t B = x_.size(0);
      const torch::Tensor y = net_(torch::cat({x_ + noise_, x_ - noise_}), torch::cat({t_, t_}));
      const torch::Tensor yp = y.slice(0, 0, B), ym = y.slice(0, B, 2 * B), a = yp + ym;
      const double D = double(x_.size(1));
      loss = ((a * a).sum(1) * 0.125 +
              ((yp - ym) * noise_).sum(1) * (0.5 * D) / (noise_ * noise_).sum(1))
                 .mean();
    } else {
      const torch::Tensor xt = x_.detach().requires_grad_();
      const torch::Tensor y = net_(xt, t_);
      if (kind_ == "ism") {  // 1/2 |s|^2 + tr ds/dx, one backward pass per coordinate
        torch::Tensor tr = torch::zeros({x_.size(0)}, x_.options());
        for (int64_t i = 0; i < x_.size(1); ++i) {
          torch::Tensor e = torch::zeros_like(x_);
          e.select(1, i).fill_(1.0);
          tr = tr + grad(y, {xt}, e, true)[0].select(1, i);
        }
        loss = ((y * y).sum(1) * 0.5 + tr).mean();
      } else {  // v^T (ds/dx) v + 1/2 (v^T s)^2, or + 1/2 |s|^2 (VR)
        const torch::Tensor sv = (y * noise_).sum(1);
        const torch::Tensor vjv = (grad(sv.sum(), {xt}, {}, true)[0] * noise_).sum(1);
        loss = (vjv + (kind_ == "ssm_vr" ? (y * y).sum(1) * 0.5 : sv * sv * 0.5)).mean();
      }
    }
    return {loss, torch::autograd::grad({loss}, w_.params)};
  }
  std::string kind_;
  Weights w_;
  Net net_;
  torch::Tensor x_, t_, noise_;
};

}  // namespace

std::string version() { return TORCH_VERSION; }
void set_threads(int n) {
  torch::set_num_threads(n);
  torch::set_num_interop_threads(1);
}

std::unique_ptr<Workload> make(const std::string& name, const HostMap& p) {
  if (name == "op_chain") return std::make_unique<OpChain>(p);
  if (name == "mlp_grad_x" || name == "mlp_hvp_x")
    return std::make_unique<MlpInputDerivative>(name == "mlp_hvp_x", p);
  if (name.starts_with("mlp_"))
    return std::make_unique<ScoreObjective<MlpScore>>(
        name.starts_with("mlp_ism") ? "ism" : name.substr(4), p);
  if (name == "unet_dsm") return std::make_unique<ScoreObjective<Unet>>("dsm", p);
  if (name.starts_with("gemm_")) return std::make_unique<Gemm>(p);
  return nullptr;  // cnf_*: LibTorch has no ODE solver (torchdiffeq is Python)
}

}  // namespace sgb::libtorch
