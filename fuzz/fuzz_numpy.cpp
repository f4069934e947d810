// libFuzzer target: the input is a whole file handed to the .npy and .npz parsers (nn/npy.hpp).
// Properties beyond "no crash, no sanitizer report, no leak": the only exception is
// sg::IOError with a one-line message of bounded length, and an array that parses holds
// exactly as many values as its shape says.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "fuzz/fuzz_io.hpp"
#include "nn/npy.hpp"

namespace {

void check_array(const sg::nn::NpyArray& a) {
  std::size_t n = 1;
  for (int64_t e : a.shape) n *= static_cast<std::size_t>(e);
  if (n != a.values.size()) {
    std::fprintf(stderr, "shape holds %zu elements, %zu values parsed\n", n, a.values.size());
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    check_array(sg::nn::parse_npy(bytes, "input.npy"));
  } catch (const sg::IOError& e) {
    sg::fuzz::check_message(e.what());
  }
  try {
    for (const auto& [name, a] : sg::nn::parse_npz(bytes, "input.npz")) check_array(a);
  } catch (const sg::IOError& e) {
    sg::fuzz::check_message(e.what());
  }
  return 0;
}
