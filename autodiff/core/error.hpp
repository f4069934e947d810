// Typed errors. Every user mistake is one of these, with a message naming the op, the
// arguments and their shapes, dtypes and devices; never an abort, never silent garbage.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace sg {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct ShapeError : Error {
  using Error::Error;
};
struct DTypeError : Error {
  using Error::Error;
};
struct DeviceError : Error {
  using Error::Error;
};
struct ValueError : Error {
  using Error::Error;
};
// Autodiff misuse: backward of a non-scalar without cotangent, input not on the path, ...
struct GradError : Error {
  using Error::Error;
};
// Anomaly mode: an op produced NaN or Inf.
struct AnomalyError : Error {
  using Error::Error;
};
// An allocation the device could not satisfy (names the op, the shape and the bytes).
struct MemoryError : Error {
  using Error::Error;
};
// A file could not be read or written, or is malformed.
struct IOError : Error {
  using Error::Error;
};

template <class... A>
std::string cat(const A&... a) {
  std::ostringstream s;
  (s << ... << a);
  return s.str();
}
template <class E, class... A>
[[noreturn]] void fail(const A&... a) {
  throw E(cat(a...));
}

}  // namespace sg
