// Shape arithmetic, devices, storage and tensor-impl lifetimes, generator splitting.
#include <algorithm>
#include <atomic>

#include "autodiff/backend/backend.hpp"
#include "autodiff/core/error.hpp"
#include "autodiff/core/pool.hpp"
#include "autodiff/core/rng.hpp"
#include "autodiff/core/shape.hpp"
#include "autodiff/core/tensor.hpp"

namespace sg {

// ---- Shape ----
Shape::Shape(std::initializer_list<int64_t> dims)
    : Shape(std::span<const int64_t>(dims.begin(), dims.size())) {}
Shape::Shape(std::span<const int64_t> dims) {
  if (dims.size() > static_cast<size_t>(kMaxDims))
    fail<ShapeError>("Shape: ", dims.size(), " dimensions exceed the maximum of ", kMaxDims);
  for (int64_t d : dims) d_[rank_++] = d;
}
Shape Shape::filled(int rank, int64_t value) {
  Shape s;
  s.resize(rank, value);
  return s;
}
void Shape::push_back(int64_t v) {
  if (rank_ == kMaxDims) fail<ShapeError>("Shape: more than ", kMaxDims, " dimensions");
  d_[rank_++] = v;
}
void Shape::insert(int pos, int64_t v) {
  push_back(0);
  for (int i = rank_ - 1; i > pos; --i) d_[i] = d_[i - 1];
  d_[pos] = v;
}
void Shape::erase(int pos) {
  for (int i = pos; i + 1 < rank_; ++i) d_[i] = d_[i + 1];
  --rank_;
}
void Shape::resize(int rank, int64_t fill) {
  if (rank > kMaxDims) fail<ShapeError>("Shape: more than ", kMaxDims, " dimensions");
  for (int i = rank_; i < rank; ++i) d_[i] = fill;
  rank_ = rank;
}
std::string Shape::str() const {
  std::string s = "[";
  for (int i = 0; i < rank_; ++i) {
    if (i) s += ',';
    s += std::to_string(d_[i]);
  }
  return s + "]";
}

Shape contiguous_strides(const Shape& shape) {
  Shape s = Shape::filled(shape.rank(), 1);
  for (int i = shape.rank() - 2; i >= 0; --i) s[i] = s[i + 1] * std::max<int64_t>(shape[i + 1], 1);
  return s;
}
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const int r = std::max(a.rank(), b.rank());
  Shape out = Shape::filled(r, 1);
  for (int i = 0; i < r; ++i) {
    const int ia = a.rank() - r + i, ib = b.rank() - r + i;
    const int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    if (da != db && da != 1 && db != 1)
      fail<ShapeError>(op, ": shapes ", a.str(), " and ", b.str(), " cannot be broadcast (axis ",
                       i - r, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}
bool broadcastable_to(const Shape& from, const Shape& to) {
  if (from.rank() > to.rank()) return false;
  for (int i = 0; i < from.rank(); ++i) {
    const int64_t f = from[from.rank() - 1 - i], t = to[to.rank() - 1 - i];
    if (f != t && f != 1) return false;
  }
  return true;
}
Shape broadcast_strides(const Shape& shape, const Shape& strides, const Shape& to) {
  Shape out = Shape::filled(to.rank(), 0);
  for (int i = 0; i < shape.rank(); ++i) {
    const int j = to.rank() - shape.rank() + i;
    out[j] = shape[i] == 1 ? 0 : strides[i];
  }
  return out;
}
int64_t checked_numel(const Shape& shape, const char* op, std::size_t itemsize) {
  // The product of the non-zero extents must be countable too: strides and offsets are formed
  // from it, and a zero extent elsewhere does not make [2^62, 2^62, 0] addressable.
  int64_t span = 1;
  bool overflow = false, empty = false;
  for (int64_t d : shape) {
    if (d < 0) fail<ShapeError>(op, ": negative extent in shape ", shape.str());
    empty |= d == 0;
    overflow |= __builtin_mul_overflow(span, std::max<int64_t>(d, 1), &span);
  }
  int64_t bytes = 0;
  overflow |= __builtin_mul_overflow(span, static_cast<int64_t>(itemsize), &bytes);
  if (overflow)
    fail<ShapeError>(op, ": shape ", shape.str(),
                     " has more elements or bytes than int64 can count");
  return empty ? 0 : span;
}

int normalize_axis(int64_t axis, int rank, const char* op) {
  if (axis < -static_cast<int64_t>(rank) || axis >= rank)
    fail<ShapeError>(op, ": axis ", axis, " is out of range for a tensor of rank ", rank,
                     rank == 0 ? " (a scalar has no axes)" : "");
  return static_cast<int>(axis < 0 ? axis + rank : axis);
}
Shape normalize_axes(const Shape& axes, int rank, const char* op) {
  Shape out;
  if (axes.empty()) {
    for (int i = 0; i < rank; ++i) out.push_back(i);
    return out;
  }
  for (int64_t a : axes) out.push_back(normalize_axis(a, rank, op));
  std::sort(out.begin(), out.end());
  for (int i = 1; i < out.rank(); ++i)
    if (out[i] == out[i - 1]) fail<ShapeError>(op, ": axis ", out[i], " repeated in ", axes.str());
  return out;
}

std::string device_name(Device d) {
  switch (d.type) {
    case DeviceType::cpu:
      return "cpu";
    case DeviceType::cuda:
      return "cuda:" + std::to_string(d.index);
    case DeviceType::standin:
      return "standin:" + std::to_string(d.index);
  }
  return "?";
}
Device parse_device(const std::string& name) {
  const auto colon = name.find(':');
  const std::string kind = name.substr(0, colon);
  int index = 0;
  if (colon != std::string::npos) {
    const std::string digits = name.substr(colon + 1);
    const bool ok =
        !digits.empty() && digits.size() <= 6 &&
        std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!ok || kind == "cpu")
      fail<ValueError>("device '", name, "': expected cpu, cuda, cuda:N, standin or standin:N");
    index = std::stoi(digits);
  }
  if (kind == "cpu") return Device::cpu();
  if (kind == "cuda") return Device::cuda(index);
  if (kind == "standin") return Device::standin(index);
  fail<ValueError>("device '", name, "': expected cpu, cuda, cuda:N, standin or standin:N");
}

// ---- storage and impl lifetimes ----
namespace detail {
std::atomic<int64_t> g_live_storages{0};
std::atomic<int64_t> g_live_tensors{0};
}  // namespace detail
namespace detail {
std::atomic<int64_t> g_live_bytes{0};
std::atomic<int64_t> g_peak_bytes{0};
void count_storage_bytes(int64_t delta) {
  const int64_t now = g_live_bytes.fetch_add(delta, std::memory_order_relaxed) + delta;
  int64_t peak = g_peak_bytes.load(std::memory_order_relaxed);
  while (now > peak && !g_peak_bytes.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}
}  // namespace detail
namespace debug {
int64_t live_storage_bytes() { return detail::g_live_bytes.load(); }
int64_t peak_storage_bytes() { return detail::g_peak_bytes.load(); }
void reset_peak_bytes() { detail::g_peak_bytes.store(detail::g_live_bytes.load()); }
int64_t live_storages() { return detail::g_live_storages.load(); }
int64_t live_tensors() { return detail::g_live_tensors.load(); }
}  // namespace debug

void intrusive_release(Storage* s) {
  detail::g_live_storages.fetch_sub(1, std::memory_order_relaxed);
  detail::count_storage_bytes(-static_cast<int64_t>(s->nbytes));
  s->release(s);
}

TensorImpl::TensorImpl(StoragePtr s, const Shape& shp, const Shape& str, int64_t off, DType dt)
    : shape(shp), strides(str), offset(off), dtype(dt), storage(std::move(s)) {
  contiguous = true;
  int64_t expect = 1;
  for (int i = shape.rank() - 1; i >= 0; --i) {
    if (shape[i] != 1 && strides[i] != expect) contiguous = false;
    expect *= shape[i];
  }
  detail::g_live_tensors.fetch_add(1, std::memory_order_relaxed);
}
TensorImpl::~TensorImpl() { detail::g_live_tensors.fetch_sub(1, std::memory_order_relaxed); }
void intrusive_release(TensorImpl* t) { delete t; }
void* TensorImpl::operator new(std::size_t n) { return pool::allocate(n); }
void TensorImpl::operator delete(void* p, std::size_t n) { pool::deallocate(p, n); }

// ---- generator ----
Generator Generator::split() {
  // SplitMix64 of (seed, offset) gives the child's key.
  uint64_t z = seed_ ^ (advance(1) * 0x9E3779B97F4A7C15ull) ^ 0xD1B54A32D192ED03ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return Generator(z ^ (z >> 31));
}

}  // namespace sg
