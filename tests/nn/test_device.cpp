// nn on a device other than the CPU, proven on the stand-in device (host kernels behind the
// CUDA seam; host reads and mixing with CPU tensors raise DeviceError): every layer and network
// moved with Module::to gives the CPU's outputs and gradients bit for bit; a few training steps
// with each optimizer, gradient clipping and the EMA give the CPU's parameters and state, with
// the state on the device (also when the module moves after the optimizer was built); data
// loaders deliver the CPU's batches on a requested device.
#include <catch2/catch.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "autodiff/sg.hpp"
#include "nn/datasets.hpp"
#include "nn/networks.hpp"
#include "nn/optim.hpp"
#include "tests/support/device.hpp"
#include "tests/support/expect.hpp"

using namespace sg;
using namespace sg::nn;
using sg::test::kStandin;
using sg::test::require_same_bits;

namespace {

const Device kCpu = Device::cpu();

// The output of f and the gradients of sum(f * w) (w drawn on the device) with respect to the
// module's parameters and the floating inputs, with the module and the inputs on `d`. `before`
// runs first (e.g. to restart a dropout generator).
using Forward = std::function<Tensor(const std::vector<Tensor>&)>;
std::vector<Tensor> run_on(Module& m, const std::vector<Tensor>& inputs, Device d, const Forward& f,
                           const std::function<void()>& before) {
  m.to(d);
  std::vector<Tensor> xs, wrt = m.parameters();
  for (const Tensor& x : inputs) {
    Tensor v = x.to(d).detach();
    if (is_floating(v.dtype())) wrt.push_back(v.requires_grad_());
    xs.push_back(v);
  }
  if (before) before();
  const Tensor y = f(xs);
  Generator g(3);
  const Tensor w = randn(y.shape(), g, y.dtype(), d);
  std::vector<Tensor> out{y.detach()};
  for (const Tensor& t : grad({sum(y * w)}, wrt, {}, {.allow_unused = true}))
    out.push_back(t.defined() ? t.detach() : t);
  return out;
}

// Runs on the CPU, then on the stand-in device (the same module, moved), and compares.
void check_layer(const std::string& name, Module& m, const std::vector<Tensor>& inputs,
                 const Forward& f, const std::function<void()>& before = {}) {
  const std::vector<Tensor> cpu = run_on(m, inputs, kCpu, f, before);
  const std::vector<Tensor> dev = run_on(m, inputs, kStandin, f, before);
  for (const auto& [pname, p] : m.named_parameters()) {
    INFO(name << ": parameter " << pname);
    CHECK(p->device() == kStandin);
    CHECK(p->requires_grad());
  }
  REQUIRE(cpu.size() == dev.size());
  for (std::size_t i = 0; i < cpu.size(); ++i)
    require_same_bits(cpu[i], dev[i], kStandin,
                      name + (i == 0 ? ": output" : ": gradient " + std::to_string(i - 1)));
}

}  // namespace

TEST_CASE("device: every layer and network gives the CPU's outputs and gradients bitwise",
          "[nn][device]") {
  Generator gen(11), data(5);
  const Tensor x2 = randn({6, 2}, data), t6 = rand({6}, data);
  const Tensor img = randn({2, 4, 8, 8}, data);
  SECTION("Linear, Mlp, activations") {
    Linear lin(2, 5, gen);
    check_layer("Linear", lin, {x2}, [&](auto& v) { return lin(v[0]); });
    Mlp mlp({2, 8, 8, 3}, Activation::gelu, gen);
    check_layer("Mlp", mlp, {x2}, [&](auto& v) { return mlp(v[0]); });
  }
  SECTION("LayerNorm, GroupNorm, Dropout") {
    LayerNorm ln(2);
    check_layer("LayerNorm", ln, {x2}, [&](auto& v) { return ln(v[0]); });
    GroupNorm gn(2, 4);
    check_layer("GroupNorm", gn, {img}, [&](auto& v) { return gn(v[0]); });
    Generator drop_gen(9);
    Dropout drop(0.3, drop_gen);
    check_layer(
        "Dropout", drop, {img}, [&](auto& v) { return drop(v[0]); },
        [&] { drop_gen.set_state(9, 0); });
  }
  SECTION("Conv2d, pooling, upsampling, Embedding") {
    Conv2d conv(4, 3, 3, gen, {.stride = 2, .padding = 1});
    check_layer("Conv2d", conv, {img}, [&](auto& v) { return conv(v[0]); });
    Module none;
    check_layer("unfold2d", none, {img}, [](auto& v) { return unfold2d(v[0], 3, 1, 1); });
    check_layer("avg_pool2d", none, {img}, [](auto& v) { return avg_pool2d(v[0], 2); });
    check_layer("upsample_nearest2d", none, {img},
                [](auto& v) { return upsample_nearest2d(v[0], 2); });
    Embedding emb(7, 3, gen);
    check_layer("Embedding", emb, {from_indices({0, 6, 2, 2}, {2, 2})},
                [&](auto& v) { return emb(v[0]); });
  }
  SECTION("attention and a transformer layer with dropout") {
    const Tensor seq = randn({2, 5, 8}, data);
    MultiHeadSelfAttention attn(8, 2, gen);
    check_layer("MultiHeadSelfAttention", attn, {seq}, [&](auto& v) { return attn(v[0]); });
    Generator drop_gen(4);
    TransformerEncoderLayer enc(8, 2, 16, drop_gen, 0.2);
    check_layer(
        "TransformerEncoderLayer", enc, {seq}, [&](auto& v) { return enc(v[0]); },
        [&] { drop_gen.set_state(4, 0); });
  }
  SECTION("time embeddings, FiLM, score, energy and CNF networks") {
    GaussianFourierFeatures fourier(6, 4.0, gen);
    check_layer("GaussianFourierFeatures", fourier, {t6}, [&](auto& v) { return fourier(v[0]); });
    Module none;
    check_layer("sinusoidal_embedding", none, {t6},
                [](auto& v) { return sinusoidal_embedding(v[0], 7); });
    FiLM film(3, 4, gen);
    film.proj.weight  // FiLM starts at the identity: train-like weights make it bite
        = randn({3, 8}, gen).requires_grad_();
    check_layer("FiLM", film, {img, randn({2, 3}, data)},
                [&](auto& v) { return film(v[0], v[1]); });
    MlpScoreNet score(2, {.hidden = 16, .layers = 2, .embed_dim = 8}, gen);
    score.mlp.layers.back()->weight = randn({16, 2}, gen).requires_grad_();
    check_layer("MlpScoreNet", score, {x2, t6}, [&](auto& v) { return score(v[0], v[1]); });
    EnergyNet energy(2, {.hidden = 16, .layers = 2, .embed_dim = 8}, gen);
    check_layer("EnergyNet.score", energy, {x2, t6},
                [&](auto& v) { return energy.score(v[0], v[1]); });
    CnfDynamics cnf(2, {8, 8}, Activation::tanh, gen);
    check_layer("CnfDynamics", cnf, {scalar(0.3), x2}, [&](auto& v) { return cnf(v[0], v[1]); });
  }
  SECTION("a U-Net with attention and dropout") {
    Generator net_gen(2);
    UNet unet(
        1, {.channels = 4, .multipliers = {1, 2}, .groups = 2, .attention = true, .dropout = 0.1},
        net_gen);
    const Tensor digits = randn({2, 1, 8, 8}, data), t2 = rand({2}, data);
    check_layer(
        "UNet", unet, {digits, t2}, [&](auto& v) { return unet(v[0], v[1]); },
        [&] { net_gen.set_state(2, 0); });
  }
}

TEST_CASE("device: Module::to keeps slots, flags and names; mixing devices is a DeviceError",
          "[nn][device]") {
  Generator gen(1);
  MlpScoreNet net(2, {.hidden = 8, .layers = 1, .embed_dim = 4}, gen);
  auto slots = net.named_parameters();
  net.mlp.layers.front()->bias->requires_grad_(false);  // a frozen parameter stays frozen
  net.to(kStandin);
  auto moved = net.named_parameters();
  REQUIRE(moved.size() == slots.size());
  for (std::size_t i = 0; i < moved.size(); ++i) {
    INFO(moved[i].first);
    CHECK(moved[i] == slots[i]);  // same name, same slot address
    CHECK(moved[i].second->device() == kStandin);
    CHECK(moved[i].second->is_leaf());
  }
  CHECK_FALSE(net.mlp.layers.front()->bias->requires_grad());
  CHECK(net.mlp.layers.back()->weight.requires_grad());
  for (const auto& [name, b] : net.named_buffers()) CHECK(b->device() == kStandin);
  // A CPU input to a module on the stand-in device is refused, naming both devices.
  const std::string msg = sg::test::message_of<DeviceError>([&] {
    (void)net(zeros({3, 2}), zeros({3}));
  });
  CHECK(msg.find("standin:0") != std::string::npos);
  CHECK(msg.find("cpu") != std::string::npos);
  // load_state_dict copies CPU values onto the slots' device.
  Generator gen2(2);
  MlpScoreNet cpu_net(2, {.hidden = 8, .layers = 1, .embed_dim = 4}, gen2);
  net.load_state_dict(cpu_net.state_dict());
  for (const auto& [name, p] : net.state_dict())
    require_same_bits(cpu_net.state_dict().at(name), p, kStandin, name);
  net.to(kCpu);
  for (const auto& [name, p] : net.named_parameters()) CHECK(p->device() == kCpu);
}

namespace {

// A small score network trained on a toy batch stream: `steps` steps of a denoising loss with
// gradient clipping, optimizer `make_opt` and a warm-up EMA. The module moves to `device`
// after `move_after` steps on the CPU (0: before the optimizer is built), so state created on
// the CPU must follow it. Returns parameters, optimizer state and EMA state by name.
struct TrainResult {
  NamedTensors params, opt, ema;
};
using MakeOpt = std::function<std::unique_ptr<Optimizer>(const ParamSlots&)>;
TrainResult train_small(Device device, const MakeOpt& make_opt, int64_t steps,
                        int64_t move_after = 0) {
  Generator init(4), noise(8);
  MlpScoreNet net(2, {.hidden = 16, .layers = 2, .embed_dim = 8}, init);
  if (move_after == 0) net.to(device);
  const std::unique_ptr<Optimizer> opt = make_opt(net.named_parameters());
  Ema ema(net, 0.9, /*warmup=*/true);
  Generator data_gen(6);
  DataLoader loader(sample_toy("moons", 64, data_gen), 16, Generator(3));
  for (int64_t s = 0; s < steps; ++s) {
    if (s == move_after) net.to(device);
    loader.to(net.mlp.layers.front()->weight.device());
    const Tensor x = loader.next_batch().data;
    const Tensor t = rand({x.dim(0)}, noise, x.dtype(), x.device()) * 0.9 + 0.05;
    const Tensor z = randn_like(x, noise);
    const Tensor loss = mean(square(net(x + z * unsqueeze(t, -1), t) + z));
    std::vector<Tensor> grads = grad(loss, net.parameters());
    clip_grad_norm(grads, 0.5);
    opt->set_lr(0.02 * static_cast<double>(steps - s) / static_cast<double>(steps));
    opt->step(grads);
    ema.update();
  }
  return {net.state_dict(), opt->state(), ema.state()};
}

void require_same_state(const NamedTensors& cpu, const NamedTensors& dev, Device d,
                        const std::string& what) {
  REQUIRE(cpu.size() == dev.size());
  for (const auto& [name, t] : cpu) {
    REQUIRE(dev.count(name) == 1);
    // Counters and the learning rate are host scalars; everything else is on the device.
    const bool host = t.dtype() == DType::i64 || name == "optim.lr";
    require_same_bits(t, dev.at(name), host ? kCpu : d, what + " " + name);
  }
}

}  // namespace

TEST_CASE("device: training steps with every optimizer and the EMA match the CPU bitwise",
          "[nn][device][optim]") {
  const std::vector<std::pair<std::string, MakeOpt>> optimizers = {
      {"SGD", [](const ParamSlots& s) { return std::make_unique<SGD>(s, SGDOptions{.lr = 0.02}); }},
      {"SGD momentum + weight decay",
       [](const ParamSlots& s) {
         return std::make_unique<SGD>(
             s, SGDOptions{.lr = 0.02, .momentum = 0.9, .dampening = 0.1, .weight_decay = 1e-3});
       }},
      {"SGD Nesterov",
       [](const ParamSlots& s) {
         return std::make_unique<SGD>(s, SGDOptions{.lr = 0.02, .momentum = 0.8, .nesterov = true});
       }},
      {"Adam",
       [](const ParamSlots& s) {
         return std::make_unique<Adam>(s, AdamOptions{.lr = 0.02, .weight_decay = 1e-3});
       }},
      {"AdamW", [](const ParamSlots& s) {
         return std::make_unique<AdamW>(s, AdamWOptions{.lr = 0.02, .weight_decay = 0.05});
       }}};
  constexpr int64_t kSteps = 6;
  for (const auto& [name, make] : optimizers) {
    INFO(name);
    const TrainResult cpu = train_small(kCpu, make, kSteps);
    const TrainResult dev = train_small(kStandin, make, kSteps);
    // Training moved the weights (the comparison is not between initial values).
    const TrainResult start = train_small(kCpu, make, 1);
    bool moved = false;
    for (const auto& [p, v] : cpu.params) moved |= v.to_vector() != start.params.at(p).to_vector();
    CHECK(moved);
    require_same_state(cpu.params, dev.params, kStandin, name + " parameter");
    require_same_state(cpu.opt, dev.opt, kStandin, name + " state");
    require_same_state(cpu.ema, dev.ema, kStandin, name + " EMA");
    // Moved after 2 CPU steps: state created on the CPU follows the parameters.
    const TrainResult late = train_small(kStandin, make, kSteps, 2);
    require_same_state(cpu.params, late.params, kStandin, name + " (moved late) parameter");
    require_same_state(cpu.opt, late.opt, kStandin, name + " (moved late) state");
    require_same_state(cpu.ema, late.ema, kStandin, name + " (moved late) EMA");
  }
}

TEST_CASE("device: optimizer and EMA state loads onto the parameters' device", "[nn][device]") {
  Generator g1(1), g2(1);
  Linear cpu_lin(3, 2, g1), dev_lin(3, 2, g2);
  dev_lin.to(kStandin);
  Adam cpu_opt(cpu_lin.named_parameters()), dev_opt(dev_lin.named_parameters());
  Ema cpu_ema(cpu_lin, 0.5), dev_ema(dev_lin, 0.5);
  cpu_opt.step({ones({3, 2}), ones({2})});
  cpu_ema.update();
  dev_opt.load_state(cpu_opt.state());
  dev_ema.load_state(cpu_ema.state());
  require_same_state(cpu_opt.state(), dev_opt.state(), kStandin, "Adam");
  require_same_state(cpu_ema.state(), dev_ema.state(), kStandin, "EMA");
  // apply_to and swap put the average on the module's device.
  Generator g3(7);
  Linear other(3, 2, g3);
  dev_ema.apply_to(other);
  for (const auto& [name, p] : other.named_parameters()) {
    CHECK(p->device() == kCpu);
    require_same_bits(cpu_ema.shadow().at(name), *p, kCpu, "apply_to " + name);
  }
  // A gradient on another device than its parameter is refused by name.
  const std::string msg = sg::test::message_of<DeviceError>([&] {
    dev_opt.step({ones({3, 2}), ones({2})});
  });
  CHECK(msg.find("weight") != std::string::npos);
  CHECK(msg.find("standin:0") != std::string::npos);
}

TEST_CASE("device: data loaders deliver the CPU's batches on a requested device",
          "[nn][device][datasets]") {
  const Digits d = load_digits();
  const Tensor images = slice(d.images, 0, 0, 50), labels = slice(d.labels, 0, 0, 50);
  DataLoader cpu(images, labels, 16, Generator(5));
  DataLoader dev(images, labels, 16, Generator(5));  // data in host memory, batches moved
  DataLoader resident(images.to(kStandin), labels.to(kStandin), 16, Generator(5));
  CHECK(dev.device() == kCpu);
  dev.to(kStandin);
  CHECK(resident.device() == kStandin);  // default: where the data lives
  Generator ga(2), gb(2);
  for (int i = 0; i < 8; ++i) {  // two epochs and a bit, with the short last batch
    INFO("batch " << i);
    const DataLoader::Batch a = cpu.next_batch(), b = dev.next_batch(), c = resident.next_batch();
    require_same_bits(a.data, b.data, kStandin, "data");
    require_same_bits(a.labels, b.labels, kStandin, "labels");
    require_same_bits(a.index, b.index, kStandin, "index");
    require_same_bits(a.data, c.data, kStandin, "data (resident)");
    require_same_bits(a.labels, c.labels, kStandin, "labels (resident)");
    // dequantization and the logit transform on the device too
    const Tensor ua = dequantize(a.data, 17, ga), ub = dequantize(b.data, 17, gb);
    require_same_bits(ua, ub, kStandin, "dequantize");
    const LogitResult la = logit_transform(ua, 1e-6), lb = logit_transform(ub, 1e-6);
    require_same_bits(la.y, lb.y, kStandin, "logit");
    require_same_bits(bits_per_dim(sum(la.y, {1, 2, 3}), la.logdet, 64, 17),
                      bits_per_dim(sum(lb.y, {1, 2, 3}), lb.logdet, 64, 17), kStandin,
                      "bits_per_dim");
  }
  // The loader's state is device-free: restored on a CPU loader, the stream continues.
  DataLoader again(images, labels, 16, Generator(0));
  again.load_state(dev.state());
  require_same_bits(again.next_batch().data, cpu.next_batch().data, kCpu, "resumed");
}
