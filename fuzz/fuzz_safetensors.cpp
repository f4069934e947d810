// libFuzzer target: the input is a whole file handed to load_safetensors and load_checkpoint.
// Properties beyond "no crash, no sanitizer report, no leak":
//   - the only exceptions are sg::IOError (one-line message of bounded length), sg::ValueError
//     and ConfigError for the config a checkpoint carries (one line, bounded);
//   - a file that loads is written back by save_safetensors and reloads to the same tensors
//     (dtype, shape, bytes) and metadata;
//   - a checkpoint's config metadata goes through the configuration parser.
#include <cstdlib>
#include <cstring>
#include <string>

#include "cli/config.hpp"
#include "fuzz/fuzz_io.hpp"
#include "nn/checkpoint.hpp"

namespace {

bool same(const sg::nn::SafetensorsFile& a, const sg::nn::SafetensorsFile& b) {
  if (a.metadata != b.metadata || a.tensors.size() != b.tensors.size()) return false;
  for (const auto& [name, t] : a.tensors) {
    auto it = b.tensors.find(name);
    if (it == b.tensors.end()) return false;
    const sg::Tensor& u = it->second;
    if (t.dtype() != u.dtype() || !(t.shape() == u.shape())) return false;
    const std::size_t n = static_cast<std::size_t>(t.numel()) * sg::itemsize(t.dtype());
    if (n && std::memcmp(t.raw_data(), u.raw_data(), n) != 0) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string path = sg::fuzz::write_input("input.safetensors", data, size);
  try {
    const sg::nn::SafetensorsFile f = sg::nn::load_safetensors(path);
    const std::string copy = sg::fuzz::scratch_dir() + "/copy.safetensors";
    sg::nn::save_safetensors(copy, f.tensors, f.metadata);
    if (!same(f, sg::nn::load_safetensors(copy))) {
      std::fprintf(stderr, "save_safetensors(load_safetensors(x)) differs from x\n");
      std::abort();
    }
  } catch (const sg::IOError& e) {
    sg::fuzz::check_message(e.what());
  }
  try {
    sg::nn::Checkpoint ck;
    sg::nn::load_checkpoint(path, ck);
    if (!ck.config.empty()) (void)sg::cli::from_text(ck.config, path);
  } catch (const sg::IOError& e) {
    sg::fuzz::check_message(e.what());
  } catch (const sg::ValueError&) {
    // Only from state checks of model/optimizer/EMA, which list names one per line; none asked.
  } catch (const sg::cli::ConfigError& e) {
    sg::fuzz::check_message(e.what());
  }
  return 0;
}
