// Element types and devices: the two tags every tensor carries, with their names for messages.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "autodiff/core/half.hpp"

namespace sg {

// bf16 and f16 are storage types (2 bytes; see half.hpp): kernels compute in float32 and round
// once on store, and reductions and GEMMs accumulate in float32 or wider.
enum class DType : uint8_t { f32, f64, i64, b8, bf16, f16 };
// standin is a testing device, not a feature: host memory behind the same backend seam as
// CUDA, never readable as host pointers, so code that should follow its inputs' device but
// builds CPU tensors fails with DeviceError in tests (see backend/standin/).
enum class DeviceType : uint8_t { cpu, cuda, standin };

struct Device {
  DeviceType type = DeviceType::cpu;
  int index = 0;
  friend bool operator==(const Device&, const Device&) = default;
  static Device cpu() { return {}; }
  static Device cuda(int i = 0) { return {DeviceType::cuda, i}; }
  static Device standin(int i = 0) { return {DeviceType::standin, i}; }
  bool is_cpu() const { return type == DeviceType::cpu; }
};

inline constexpr std::size_t itemsize(DType t) {
  switch (t) {
    case DType::f32:
      return 4;
    case DType::b8:
      return 1;
    case DType::bf16:
    case DType::f16:
      return 2;
    case DType::f64:
    case DType::i64:
      break;
  }
  return 8;
}
inline constexpr bool is_half(DType t) { return t == DType::bf16 || t == DType::f16; }
inline constexpr bool is_floating(DType t) {
  return t == DType::f32 || t == DType::f64 || is_half(t);
}
inline constexpr const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32:
      return "float32";
    case DType::f64:
      return "float64";
    case DType::i64:
      return "int64";
    case DType::b8:
      return "bool";
    case DType::bf16:
      return "bfloat16";
    case DType::f16:
      return "float16";
  }
  return "?";
}
std::string device_name(Device d);  // "cpu", "cuda:0", "standin:0"
// "cpu", "cuda", "cuda:N", "standin", "standin:N" (N a non-negative integer); ValueError
// otherwise. Says nothing about whether the device exists (backend_for does).
Device parse_device(const std::string& name);

// C++ type <-> DType.
template <class T>
struct dtype_of;
template <>
struct dtype_of<float> {
  static constexpr DType value = DType::f32;
};
template <>
struct dtype_of<double> {
  static constexpr DType value = DType::f64;
};
template <>
struct dtype_of<int64_t> {
  static constexpr DType value = DType::i64;
};
template <>
struct dtype_of<bool> {
  static constexpr DType value = DType::b8;
};
template <>
struct dtype_of<bfloat16> {
  static constexpr DType value = DType::bf16;
};
template <>
struct dtype_of<float16> {
  static constexpr DType value = DType::f16;
};
template <class T>
inline constexpr DType dtype_v = dtype_of<T>::value;

// Calls f(T{}) with T the C++ type of `t` (bfloat16 and float16 included: callers that compute
// must widen them, see half.hpp).
template <class F>
decltype(auto) visit_dtype(DType t, F&& f) {
  switch (t) {
    case DType::f32:
      return f(float{});
    case DType::f64:
      return f(double{});
    case DType::i64:
      return f(int64_t{});
    case DType::bf16:
      return f(bfloat16{});
    case DType::f16:
      return f(float16{});
    case DType::b8:
      break;
  }
  return f(bool{});
}
// The floating types float, double, bfloat16, float16 (anything else is taken as float).
template <class F>
decltype(auto) visit_floating(DType t, F&& f) {
  if (t == DType::f64) return f(double{});
  if (t == DType::bf16) return f(bfloat16{});
  if (t == DType::f16) return f(float16{});
  return f(float{});
}

}  // namespace sg
