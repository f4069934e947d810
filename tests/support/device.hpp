// Test helpers for device tests on the stand-in device (a distinct device running the CPU's
// kernels, see autodiff/backend/standin): a result computed there against the CPU's, with the
// same shape and dtype, on the expected device and with bitwise the same values.
#pragma once
#include <bit>
#include <catch2/catch.hpp>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "autodiff/ops/ops.hpp"

namespace sg::test {

inline const Device kStandin = Device::standin(0);

// `dev` is on `device` and equals `cpu` bit for bit: defined alike, same shape, dtype and every
// element (-0.0 and +0.0 differ; NaNs with the same payload are equal).
inline void require_same_bits(const Tensor& cpu, const Tensor& dev, Device device,
                              const std::string& what) {
  INFO(what << ": cpu " << describe(cpu) << " vs " << describe(dev));
  REQUIRE(cpu.defined() == dev.defined());
  if (!cpu.defined()) return;
  CHECK(dev.device() == device);
  REQUIRE(cpu.shape() == dev.shape());
  REQUIRE(cpu.dtype() == dev.dtype());
  const std::vector<double> a = cpu.to_vector(), b = dev.to_vector();
  int64_t differ = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::bit_cast<uint64_t>(a[i]) != std::bit_cast<uint64_t>(b[i]) && differ++ < 3)
      UNSCOPED_INFO("element " << i << ": " << a[i] << " vs " << b[i]);
  CHECK(differ == 0);
}

// Runs f on the CPU and on the stand-in device: every result is on its device and the
// stand-in's have the CPU's bits (an error on the stand-in fails with `what`). Returns the
// CPU's results.
inline std::vector<Tensor> same_on_both(const std::function<std::vector<Tensor>(Device)>& f,
                                        const std::string& what) {
  const std::vector<Tensor> a = f(Device::cpu());
  std::vector<Tensor> b;
  try {
    b = f(kStandin);
  } catch (const Error& e) {
    FAIL(what << " on " << device_name(kStandin) << ": " << e.what());
  }
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].defined()) CHECK(a[i].device() == Device::cpu());
    require_same_bits(a[i], b[i], kStandin, what + " #" + std::to_string(i));
  }
  return a;
}

}  // namespace sg::test
