// scoregrad's side of the side-by-side benchmark: the problems (weights and inputs from fixed
// seeds, exported for the Python scripts) and every workload written with the library's own
// networks, objectives, transforms and ODE solvers. Problem sizes are defined here once.
#include <cmath>
#include <stdexcept>

#include "autodiff/sg.hpp"
#include "compare/workload.hpp"
#include "nn/checkpoint.hpp"
#include "nn/networks.hpp"
#include "objectives/objectives.hpp"
#include "sde/likelihood.hpp"

namespace sgb {
namespace {

using namespace sg;
using nn::NamedTensors;

constexpr int64_t kBatch = 512;     // MLP and CNF batch
constexpr int64_t kUnetBatch = 64;  // digits U-Net batch, [64, 1, 8, 8]
constexpr int kChainOps = 1000;     // op_chain: sin, * c, tanh, + c repeated
constexpr double kSigma = 0.5;      // DSM noise level
constexpr double kFdEps = 0.1;      // FD-SSM radius
const std::vector<int64_t> kGemmSizes = {256, 512, 1024, 2048};

Host to_host(const Tensor& t) {
  Host h;
  for (int64_t d : t.shape()) h.shape.push_back(d);
  h.data = t.to_vector();
  h.f64 = t.dtype() == DType::f64;
  return h;
}
Tensor from_host(const Host& h) {
  return from_vector(h.data, Shape(std::span<const int64_t>(h.shape)),
                     h.f64 ? DType::f64 : DType::f32);
}
const Host& at(const HostMap& m, const std::string& key) {
  const auto it = m.find(key);
  if (it == m.end()) throw std::runtime_error("bench_compare: problem has no '" + key + "'");
  return it->second;
}

// Zero-initialised layers (score networks' output layers) get small random values, so that
// outputs, traces and gradients are generic and the agreement checks mean something.
void randomise_zero_parameters(nn::Module& m, Generator& gen) {
  NamedTensors state = m.state_dict();
  for (auto& [name, value] : state)
    if (value.to_vector() == std::vector<double>(value.numel(), 0.0))
      value = randn(value.shape(), gen, value.dtype()) * 0.1;
  m.load_state_dict(state);
}
void put_module(HostMap& p, nn::Module& m) {
  for (auto& [name, t] : m.named_parameters()) p["p." + name] = to_host(*t);
  for (auto& [name, t] : m.named_buffers()) p["b." + name] = to_host(*t);
}
void load_module(nn::Module& m, const HostMap& p) {
  NamedTensors state;
  for (const auto& [key, h] : p)
    if (key.starts_with("p.") || key.starts_with("b.")) state[key.substr(2)] = from_host(h);
  m.load_state_dict(state);
}
HostMap grads_of(nn::Module& m, const std::vector<Tensor>& g) {
  HostMap out;
  std::size_t i = 0;
  for (auto& [name, t] : m.named_parameters()) out["grad." + name] = to_host(g[i++]);
  return out;
}

std::unique_ptr<nn::MlpScoreNet> mlp_net(int64_t D) {
  Generator gen(100 + D);
  auto net = std::make_unique<nn::MlpScoreNet>(
      D, nn::MlpScoreOptions{.hidden = 128, .layers = 3, .embed_dim = 16}, gen);
  return net;
}
std::unique_ptr<nn::UNet> unet_net() {
  Generator gen(7);
  return std::make_unique<nn::UNet>(
      1, nn::UNetOptions{.channels = 32, .multipliers = {1, 2}, .groups = 8}, gen);
}
std::unique_ptr<nn::CnfDynamics> cnf_net() {
  Generator gen(9);
  return std::make_unique<nn::CnfDynamics>(2, std::vector<int64_t>{64, 64, 64},
                                           nn::Activation::tanh, gen);
}
int64_t mlp_dim(const std::string& name) { return name.ends_with("_d16") ? 16 : 2; }

// ---- the workloads -------------------------------------------------------------------------

class OpChain : public Workload {
 public:
  explicit OpChain(const HostMap& p)
      : x_(from_host(at(p, "x")).requires_grad_()), c_(from_host(at(p, "c"))) {}
  void run() override { step(); }
  HostMap outputs() override {
    auto [y, g] = step();
    return {{"y", to_host(y)}, {"grad.x", to_host(g)}};
  }

 private:
  std::pair<Tensor, Tensor> step() {
    Tensor y = x_;
    for (int i = 0; i < kChainOps; i += 4) y = add(tanh(mul(sin(y), c_)), c_);
    return {y, sg::grad(y, {x_})[0]};
  }
  Tensor x_, c_;
};

// One training step (loss and gradient w.r.t. every parameter) of a score-matching objective on
// a score network (the MLP or the U-Net) with fixed noise: dsm, ssm, ssm_vr, ism, fd_ssm.
class ScoreObjective : public Workload {
 public:
  ScoreObjective(const std::string& kind, std::unique_ptr<nn::ScoreModel> net, const HostMap& p)
      : kind_(kind), net_(std::move(net)) {
    load_module(*net_, p);
    params_ = net_->parameters();
    x_ = from_host(at(p, "x"));
    t_ = from_host(at(p, "t"));
    if (p.contains("noise")) noise_ = from_host(at(p, "noise"));
  }
  void run() override { step(); }
  HostMap outputs() override {
    auto [loss, g] = step();
    HostMap out = grads_of(*net_, g);
    out["loss"] = to_host(loss);
    return out;
  }

 private:
  std::pair<Tensor, std::vector<Tensor>> step() {
    // FD-SSM evaluates [x + v, x - v] in one batch: t repeats with it.
    const obj::ScoreFn s = [this](const Tensor& y) {
      return (*net_)(y, y.dim(0) == t_.dim(0) ? t_ : concat({t_, t_}, 0));
    };
    Tensor loss;
    if (kind_ == "dsm") {
      loss = obj::dsm_with(s, x_, kSigma, noise_);
    } else if (kind_ == "ssm" || kind_ == "ssm_vr") {
      loss = obj::ssm_with(s, x_, noise_, kind_ == "ssm_vr");
    } else if (kind_ == "ism") {
      loss = obj::implicit_sm(s, x_);
    } else {
      loss = obj::fd_ssm_score_with(s, x_, noise_);
    }
    return {loss, sg::grad(loss, params_)};
  }
  std::string kind_;
  std::unique_ptr<nn::ScoreModel> net_;
  std::vector<Tensor> params_;
  Tensor x_, t_, noise_;
};

// f(x) = mean |s(x, t)|^2 over the flattened batch x in R^1024 (parameters frozen): its gradient,
// or its Hessian-vector product (forward-over-reverse, sg::hvp's default).
class MlpInputDerivative : public Workload {
 public:
  MlpInputDerivative(bool hvp, const HostMap& p) : hvp_(hvp), net_(mlp_net(2)) {
    load_module(*net_, p);
    for (auto& [name, t] : net_->named_parameters()) *t = t->detach();
    xf_ = from_host(at(p, "x"));
    t_ = from_host(at(p, "t"));
    v_ = from_host(at(p, "v"));
  }
  void run() override { step(); }
  HostMap outputs() override { return {{hvp_ ? "hvp" : "grad", to_host(step())}}; }

 private:
  Tensor step() {
    const Fn f = [this](const Tensor& xf) {
      return mean(square((*net_)(reshape(xf, {kBatch, 2}), t_)));
    };
    return hvp_ ? sg::hvp(f, xf_, v_) : sg::grad(f, xf_);
  }
  bool hvp_;
  std::unique_ptr<nn::MlpScoreNet> net_;
  Tensor xf_, t_, v_;
};

class Gemm : public Workload {
 public:
  explicit Gemm(const HostMap& p) : a_(from_host(at(p, "a"))), b_(from_host(at(p, "b"))) {}
  void run() override {
    NoGradGuard ng;
    c_ = matmul(a_, b_);
  }
  HostMap outputs() override {
    run();
    return {{"c", to_host(c_)}};
  }

 private:
  Tensor a_, b_, c_;
};

// The 2-D CNF's log-likelihood by dopri5 at rtol = atol = 1e-5 with the exact trace:
// kind "logp" (no gradient), "backprop" (gradient of -mean log p through the solver's steps) or
// "adjoint" (the same by the continuous adjoint).
class Cnf : public Workload {
 public:
  Cnf(const std::string& kind, const HostMap& p) : kind_(kind), net_(cnf_net()) {
    load_module(*net_, p);
    params_ = net_->parameters();
    x_ = from_host(at(p, "x"));
  }
  void run() override { step(); }
  HostMap outputs() override {
    const Result r = step();
    HostMap out = kind_ == "logp" ? HostMap{} : grads_of(*net_, r.grads);
    out["logp"] = to_host(r.like.logp);
    out["nfe"] = to_host(scalar(double(r.like.solve.nfe), DType::f64));
    return out;
  }

 private:
  struct Result {
    LikelihoodResult like;
    std::vector<Tensor> grads;
  };
  Result step() {
    const VectorField f = [this](double t, const Tensor& z) {
      return (*net_)(scalar(t, z.dtype()), z);
    };
    CnfOptions o;  // dopri5, rtol = atol = 1e-5, exact trace
    o.params = params_;
    Result r;
    if (kind_ == "logp") {
      NoGradGuard ng;
      r.like = cnf_log_likelihood(f, x_, o);
      return r;
    }
    o.gradient = kind_ == "adjoint" ? SolveGradient::adjoint : SolveGradient::backprop;
    r.like = cnf_log_likelihood(f, x_, o);
    r.grads = sg::grad(-mean(r.like.logp), params_);
    return r;
  }
  std::string kind_;
  std::unique_ptr<nn::CnfDynamics> net_;
  std::vector<Tensor> params_;
  Tensor x_;
};

}  // namespace

std::vector<std::string> workload_names() {
  std::vector<std::string> n = {"op_chain",   "mlp_dsm",    "mlp_ssm",
                                "mlp_ssm_vr", "mlp_ism_d2", "mlp_ism_d16",
                                "mlp_fd_ssm", "mlp_grad_x", "mlp_hvp_x"};
  for (const char* dt : {"f32", "f64"})
    for (int64_t s : kGemmSizes) n.push_back("gemm_" + std::string(dt) + "/" + std::to_string(s));
  for (const char* w : {"unet_dsm", "cnf_logp", "cnf_grad_backprop", "cnf_grad_adjoint"})
    n.push_back(w);
  return n;
}

HostMap make_problem(const std::string& name) {
  HostMap p;
  Generator gen(1);
  NoGradGuard ng;
  if (name == "op_chain") {
    p["x"] = to_host(full({1}, 0.3));
    p["c"] = to_host(full({1}, 0.9));
  } else if (name.starts_with("mlp_")) {
    const int64_t D = mlp_dim(name);
    auto net = mlp_net(D);
    randomise_zero_parameters(*net, gen);
    put_module(p, *net);
    const Tensor x = randn({kBatch, D}, gen);
    p["t"] = to_host(rand({kBatch}, gen));
    if (name == "mlp_grad_x" || name == "mlp_hvp_x") {
      p["x"] = to_host(reshape(x, {kBatch * D}));
      p["v"] = to_host(randn({kBatch * D}, gen));
      return p;
    }
    p["x"] = to_host(x);
    if (name == "mlp_dsm") p["noise"] = to_host(randn({kBatch, D}, gen));
    if (name == "mlp_ssm" || name == "mlp_ssm_vr")
      p["noise"] = to_host(rademacher({kBatch, D}, gen));
    if (name == "mlp_fd_ssm") {  // uniform on the sphere of radius kFdEps
      const Tensor u = randn({kBatch, D}, gen);
      p["noise"] = to_host(u * rsqrt(sum(u * u, {1}, true)) * kFdEps);
    }
  } else if (name.starts_with("gemm_")) {
    const int64_t n = std::stoll(name.substr(name.find('/') + 1));
    const DType dt = name.starts_with("gemm_f64") ? DType::f64 : DType::f32;
    p["a"] = to_host(randn({n, n}, gen, dt));
    p["b"] = to_host(randn({n, n}, gen, dt));
  } else if (name == "unet_dsm") {
    auto net = unet_net();
    randomise_zero_parameters(*net, gen);
    put_module(p, *net);
    p["x"] = to_host(randn({kUnetBatch, 1, 8, 8}, gen));
    p["t"] = to_host(rand({kUnetBatch}, gen));
    p["noise"] = to_host(randn({kUnetBatch, 1, 8, 8}, gen));
  } else if (name.starts_with("cnf_")) {
    auto net = cnf_net();
    put_module(p, *net);
    p["x"] = to_host(randn({kBatch, 2}, gen));
  } else {
    throw std::runtime_error("bench_compare: unknown workload '" + name + "'");
  }
  return p;
}

std::unique_ptr<Workload> make_scoregrad(const std::string& name, const HostMap& p) {
  if (name == "op_chain") return std::make_unique<OpChain>(p);
  if (name == "mlp_grad_x" || name == "mlp_hvp_x")
    return std::make_unique<MlpInputDerivative>(name == "mlp_hvp_x", p);
  if (name.starts_with("mlp_"))
    return std::make_unique<ScoreObjective>(name.starts_with("mlp_ism") ? "ism" : name.substr(4),
                                            mlp_net(mlp_dim(name)), p);
  if (name == "unet_dsm") return std::make_unique<ScoreObjective>("dsm", unet_net(), p);
  if (name.starts_with("gemm_")) return std::make_unique<Gemm>(p);
  if (name.starts_with("cnf_"))
    return std::make_unique<Cnf>(name == "cnf_logp" ? "logp" : name.substr(9), p);
  throw std::runtime_error("bench_compare: unknown workload '" + name + "'");
}

void export_problem(const std::string& dir, const std::string& name, const HostMap& problem,
                    const HostMap& reference) {
  NamedTensors all;
  for (const auto& [key, h] : problem) all[key] = from_host(h);
  for (const auto& [key, h] : reference) all["ref." + key] = from_host(h);
  std::string file = name;
  for (char& ch : file)
    if (ch == '/') ch = '_';
  nn::save_safetensors(dir + "/" + file + ".safetensors", all, {{"workload", name}});
}

}  // namespace sgb
