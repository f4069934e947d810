// The stand-in device (a testing device behind the CUDA seam): it is distinct from the CPU
// (host reads refused, mixing refused, its memory unreadable as host pointers), and every row
// of the op table gives bitwise the CPU's values, gradients (first and second order) and
// forward-mode tangents on it, with every result on the inputs' device.
#include <catch2/catch.hpp>

#include "autodiff/backend/backend.hpp"
#include "autodiff/verify/op_cases.hpp"
#include "tests/support/device.hpp"
#include "tests/support/expect.hpp"

using namespace sg;

namespace {
const Device kDev = Device::standin();

std::vector<Tensor> on(const std::vector<Tensor>& xs, Device d) {
  std::vector<Tensor> out;
  for (const Tensor& x : xs) out.push_back(x.to(d));
  return out;
}
std::vector<Tensor> tracked(const std::vector<Tensor>& xs) {
  std::vector<Tensor> out;
  for (const Tensor& x : xs)
    out.push_back(is_floating(x.dtype()) ? x.detach().requires_grad_() : x.detach());
  return out;
}

// Value, d(sum f)/dx_i (with a fixed cotangent), a second-order gradient and a JVP of one row.
struct RowResults {
  std::vector<Tensor> all;
};
RowResults run_row(const verify::OpCase& c, Device d) {
  RowResults r;
  const std::vector<Tensor> xs = tracked(on(verify::make_inputs(c, 11), d));
  const Tensor y = c.f(xs);
  r.all.push_back(y.detach());
  if (!c.differentiable || !y.requires_grad()) return r;
  Generator g(5);
  const Tensor w = randn(y.shape(), g, y.dtype()).to(y.device());
  const std::vector<Tensor> g1 =
      grad({y}, xs, {w}, {.create_graph = c.order >= 2, .allow_unused = true});
  for (const Tensor& t : g1) r.all.push_back(t.defined() ? t.detach() : t);
  if (c.order >= 2) {
    Tensor s;
    for (size_t i = 0; i < g1.size(); ++i)
      if (g1[i].defined() && g1[i].requires_grad()) {
        const Tensor v = randn(g1[i].shape(), g, g1[i].dtype()).to(d);
        s = s.defined() ? s + sum(g1[i] * v) : sum(g1[i] * v);
      }
    if (s.defined())
      for (const Tensor& t : grad({s}, xs, {}, {.allow_unused = true}))
        r.all.push_back(t.defined() ? t.detach() : t);
  }
  if (c.has_jvp) {
    DualLevel level;
    std::vector<Tensor> duals;
    for (const Tensor& x : xs)
      duals.push_back(is_floating(x.dtype()) ? level.make_dual(x.detach(), ones_like(x)) : x);
    r.all.push_back(level.tangent(c.f(duals)).detach());
  }
  return r;
}
}  // namespace

TEST_CASE("standin: names, parsing and existence", "[standin][device]") {
  CHECK(device_name(Device::standin(2)) == "standin:2");
  CHECK(parse_device("standin") == Device::standin(0));
  CHECK(parse_device("standin:3") == Device::standin(3));
  CHECK(parse_device("cuda:1") == Device::cuda(1));
  CHECK(parse_device("cpu") == Device::cpu());
  for (const char* bad : {"", "gpu", "cuda:", "cuda:-1", "cuda:x", "cpu:0", "standin:1:2"})
    CHECK_THROWS_AS(parse_device(bad), ValueError);
  CHECK_THROWS_AS(zeros({2}, DType::f32, Device::standin(kStandinDevices)), DeviceError);
}

TEST_CASE("standin: a distinct device, never read as host memory", "[standin][device]") {
  const Tensor x = arange(6, DType::f64, kDev).reshape({2, 3});
  CHECK(x.device() == kDev);
  CHECK(x.to_vector() == std::vector<double>{0, 1, 2, 3, 4, 5});
  CHECK(sum(x).item() == 15);
  const std::string msg = test::message_of<DeviceError>([&] { (void)x.data<double>(); });
  CHECK(msg.find("standin:0") != std::string::npos);
  CHECK_THROWS_AS(x.raw_data(), DeviceError);
  // The storage's address is not a host address.
  CHECK((reinterpret_cast<uintptr_t>(x.storage()->data) >> 62) == 1);
  // Mixing with the CPU, or with another stand-in device, is refused by name.
  const Tensor c = ones({2, 3}, DType::f64);
  const std::string mix = test::message_of<DeviceError>([&] { (void)(x + c); });
  CHECK(mix.find("standin:0") != std::string::npos);
  CHECK(mix.find("cpu") != std::string::npos);
  CHECK_THROWS_AS(x * ones({2, 3}, DType::f64, Device::standin(1)), DeviceError);
  // Copies between two stand-in devices go through host memory and keep every value.
  const Tensor y = x.to(Device::standin(1));
  CHECK(y.device() == Device::standin(1));
  CHECK(y.to_vector() == x.to_vector());
  // Strided views and casts stay on the device.
  const Tensor t = x.mT().to(DType::f32).contiguous();
  CHECK(t.device() == kDev);
  CHECK(t.to_vector() == std::vector<double>{0, 3, 1, 4, 2, 5});
}

TEST_CASE("standin: random draws equal the CPU's for the same generator", "[standin][device]") {
  Generator a(42), b(42);
  const Tensor x = randn({5, 7}, a, DType::f64), y = randn({5, 7}, b, DType::f64, kDev);
  test::require_same_bits(x, y, kDev, "randn");
}

TEST_CASE("standin: every op-table row gives the CPU's bits, gradients and tangents",
          "[standin][device][optable]") {
  for (const verify::OpCase& c : verify::op_cases()) {
    const RowResults cpu = run_row(c, Device::cpu());
    RowResults dev;
    try {
      dev = run_row(c, kDev);
    } catch (const Error& e) {
      FAIL_CHECK(c.name << " on standin: " << e.what());
      continue;
    }
    REQUIRE(cpu.all.size() == dev.all.size());
    for (size_t i = 0; i < cpu.all.size(); ++i) {
      // Only the to_device row leaves the device on purpose (its value and its tangent).
      const bool host_result = i == 0 || (c.has_jvp && i + 1 == cpu.all.size());
      const Device want = c.op == OpId::to_device && host_result ? Device::cpu() : kDev;
      test::require_same_bits(cpu.all[i], dev.all[i], want,
                              c.name + " result " + std::to_string(i));
    }
  }
}

TEST_CASE("standin: grad and make_dual name both devices of a mismatched cotangent or tangent",
          "[standin][device]") {
  const Tensor x = ones({3}, DType::f64, kDev).requires_grad_();
  const Tensor y = x * 2.0;
  const std::string g =
      test::message_of<DeviceError>([&] { (void)grad({y}, {x}, {ones({3}, DType::f64)}); });
  CHECK(g.find("grad: cotangent") != std::string::npos);
  CHECK(g.find("standin:0") != std::string::npos);
  CHECK(g.find("cpu") != std::string::npos);
  DualLevel level;
  const std::string d = test::message_of<DeviceError>(
      [&] { (void)level.make_dual(x.detach(), ones({3}, DType::f64)); });
  CHECK(d.find("make_dual") != std::string::npos);
  CHECK(d.find("standin:0") != std::string::npos);
  // A mixed-device op names each device once.
  const std::string m = test::message_of<DeviceError>([&] { (void)(x + ones({3}, DType::f64)); });
  CHECK(m.find("standin:0 on standin:0") == std::string::npos);
}
