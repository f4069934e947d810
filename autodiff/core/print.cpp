// Readable printing: nested brackets like NumPy, long axes summarised with "...", then the
// dtype, shape and (when not cpu) device.
#include <cmath>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "autodiff/ops/ops.hpp"

namespace sg {
namespace {
constexpr int64_t kEdge = 3, kFull = 8;

void print_rec(std::ostream& os, const std::vector<double>& v, const Shape& s, int d, int64_t off,
               DType t, int indent) {
  if (d == s.rank()) {
    const double x = v[static_cast<std::size_t>(off)];
    if (t == DType::b8) {
      os << (x != 0 ? "true" : "false");
    } else if (t == DType::i64) {
      os << static_cast<int64_t>(x);
    } else {
      std::ostringstream e;
      e << std::setprecision(t == DType::f32 ? 6 : 10) << x;
      os << e.str();
    }
    return;
  }
  int64_t stride = 1;
  for (int k = d + 1; k < s.rank(); ++k) stride *= s[k];
  const int64_t n = s[d];
  os << "[";
  for (int64_t i = 0; i < n; ++i) {
    if (n > kFull && i == kEdge) {
      os << (d + 1 == s.rank() ? "..., "
                               : "...,\n" + std::string(static_cast<std::size_t>(indent + 1), ' '));
      i = n - kEdge - 1;
      continue;
    }
    if (i)
      os << (d + 1 == s.rank() ? ", "
                               : ",\n" + std::string(static_cast<std::size_t>(indent + 1), ' '));
    print_rec(os, v, s, d + 1, off + i * stride, t, indent + 1);
  }
  os << "]";
}
}  // namespace

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  if (!t.defined()) return os << "tensor(undefined)";
  os << "tensor(";
  print_rec(os, t.to_vector(), t.shape(), 0, 0, t.dtype(), 7);
  os << ", dtype=" << dtype_name(t.dtype()) << ", shape=" << t.shape().str();
  if (t.device().type != DeviceType::cpu) os << ", device=" << device_name(t.device());
  if (t.requires_grad()) os << ", requires_grad";
  return os << ")";
}
std::string to_string(const Tensor& t) {
  std::ostringstream s;
  s << t;
  return s.str();
}

}  // namespace sg
