// Writes the fuzzers' seed corpora with the library itself:
//   <dir>/safetensors/checkpoint   save_checkpoint of a small MLP after one Adam step, with EMA,
//                                  generator, step and the default configuration as metadata
//   <dir>/safetensors/tensors      save_safetensors of every dtype, 0-d and empty tensors
//   <dir>/config/*                 the default configuration as JSON, YAML, metadata and
//                                  overrides (first byte: the fuzz_config entry point)
// Usage: fuzz_make_seeds DIR
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "autodiff/sg.hpp"
#include "cli/config.hpp"
#include "nn/checkpoint.hpp"
#include "nn/layers.hpp"
#include "nn/optim.hpp"

namespace fs = std::filesystem;

namespace {

void write(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// The default configuration in block YAML (sections of scalars and flow lists).
std::string to_yaml(const sg::cli::Config& c) {
  std::string out;
  for (auto s = c.begin(); s != c.end(); ++s) {
    out += s.key() + ":\n";
    for (auto k = s.value().begin(); k != s.value().end(); ++k)
      out += "  " + k.key() + ": " + k.value().dump() + "\n";
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_make_seeds DIR\n");
    return 2;
  }
  const fs::path dir = argv[1];
  fs::create_directories(dir / "safetensors");
  fs::create_directories(dir / "config");
  using namespace sg;

  Generator gen(1);
  nn::Mlp net({2, 8, 2}, nn::Activation::silu, gen);
  nn::Adam opt(net.named_parameters());
  nn::Ema ema(net, 0.99);
  const Tensor x = randn({4, 2}, gen);
  opt.step(grad(mean(square(net(x) - x)), net.parameters()));
  ema.update();
  const std::string config = cli::to_text(cli::default_config());
  nn::save_checkpoint((dir / "safetensors" / "checkpoint").string(),
                      {.model = &net,
                       .optimizer = &opt,
                       .ema = &ema,
                       .generator = &gen,
                       .step = 1,
                       .config = config,
                       .extra = {{"loader.position", zeros({}, DType::i64)}}});

  Tensor b = empty({3}, DType::b8);
  for (int i = 0; i < 3; ++i) b.data<bool>()[i] = i % 2;
  nn::save_safetensors((dir / "safetensors" / "tensors").string(),
                       {{"f32", randn({2, 3}, gen)},
                        {"f64", randn({3}, gen, DType::f64)},
                        {"i64", zeros({2, 2}, DType::i64)},
                        {"bool", b},
                        {"scalar", scalar(2.5)},
                        {"empty", zeros({2, 0, 3})}},
                       {{"note", "seed"}, {"unicode", "\u03c3"}});

  write(dir / "config" / "default.json", "j" + config);
  write(dir / "config" / "default.yaml", "y" + to_yaml(cli::default_config()));
  write(dir / "config" / "metadata", "m" + config);
  write(dir / "config" / "overrides",
        "otrain.steps=10\nmodel.multipliers=[1,2,2]\nobjective.name=ssm-vr\nsde.beta_max=10\n"
        "model.attention=true\n");
  write(dir / "config" / "small.yaml",
        "ymodel:\n  hidden: 64\n  multipliers: [1, 2]\ntrain: {steps: 5, lr: 1e-3}\n"
        "sample: &s\n  method: ode\ndata: {name: \"moons\"}\n");
  return 0;
}
