// NumPy's file formats: .npy (one array: a magic string, a Python-literal header with descr,
// fortran_order and shape, then the raw elements) and .npz (a zip archive of .npy members,
// stored or deflated, as numpy.savez and numpy.savez_compressed write them).
//
//   auto arrays = sg::nn::load_npz("series.npz");     // {"values": ..., "mask": ...}
//   sg::Tensor v = sg::nn::to_tensor(arrays.at("values"));
//
// Element types: bool, int8..int64, uint8..uint64, float32, float64, either byte order; values
// are held as float64 (integers beyond 2^53 lose precision, as in any float64 conversion).
// Anything else (structured or object arrays, float16, complex, a truncated or padded file, a
// bad checksum, zip64 archives over 4 GiB) is an IOError naming the file and member.
#pragma once
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "autodiff/sg.hpp"

namespace sg::nn {

struct NpyArray {
  std::vector<int64_t> shape;  // rank 0 for a scalar
  std::vector<double> values;  // C (row-major) order whatever the file's order
  std::string descr;           // NumPy's type string, e.g. "<f8", "|b1"
};

// The whole file at `path` (IOError naming `who` and the path when it cannot be read).
std::string read_file_bytes(const std::string& path, const char* who);

// `bytes` is a whole .npy file; `name` (a path or "archive.npz:member") goes into messages.
NpyArray parse_npy(std::string_view bytes, const std::string& name);
NpyArray load_npy(const std::string& path);
// Every member of a .npz archive, keyed by its name without the ".npy" suffix.
std::map<std::string, NpyArray> load_npz(const std::string& path);
// `bytes` is a whole .npz archive; `name` goes into messages.
std::map<std::string, NpyArray> parse_npz(std::string_view bytes, const std::string& name);

// The array as a tensor of `dtype` on `device` (ShapeError for a rank above 8).
Tensor to_tensor(const NpyArray& a, DType dtype = DType::f64, Device device = {});

}  // namespace sg::nn
