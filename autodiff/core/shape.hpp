// Shape: a fixed-capacity list of extents (also used for strides and axis lists), and the
// shape arithmetic every op shares: element counts, row-major strides, NumPy broadcasting.
#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>

namespace sg {

inline constexpr int kMaxDims = 8;

class Shape {
 public:
  Shape() = default;
  // Copies only the live extents (shapes are copied on every op).
  Shape(const Shape& o) : rank_(o.rank_) {
    for (int i = 0; i < rank_; ++i) d_[i] = o.d_[i];
  }
  Shape& operator=(const Shape& o) {
    rank_ = o.rank_;
    for (int i = 0; i < rank_; ++i) d_[i] = o.d_[i];
    return *this;
  }
  Shape(std::initializer_list<int64_t> dims);
  explicit Shape(std::span<const int64_t> dims);
  static Shape filled(int rank, int64_t value);

  int rank() const { return rank_; }
  int size() const { return rank_; }
  bool empty() const { return rank_ == 0; }
  int64_t operator[](int i) const { return d_[i]; }
  int64_t& operator[](int i) { return d_[i]; }
  int64_t back() const { return d_[rank_ - 1]; }
  const int64_t* begin() const { return d_; }
  const int64_t* end() const { return d_ + rank_; }
  int64_t* begin() { return d_; }
  int64_t* end() { return d_ + rank_; }
  void push_back(int64_t v);
  void insert(int pos, int64_t v);
  void erase(int pos);
  void resize(int rank, int64_t fill = 0);
  std::span<const int64_t> span() const { return {d_, static_cast<size_t>(rank_)}; }

  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < rank_; ++i) n *= d_[i];
    return n;
  }
  friend bool operator==(const Shape& a, const Shape& b) {
    if (a.rank_ != b.rank_) return false;
    for (int i = 0; i < a.rank_; ++i)
      if (a.d_[i] != b.d_[i]) return false;
    return true;
  }
  std::string str() const;  // "[2,3]"

 private:
  int64_t d_[kMaxDims];  // only [0, rank_) is ever read
  int rank_ = 0;
};

Shape contiguous_strides(const Shape& shape);
// The element count of `shape`, checked: every extent >= 0 and the product (and the byte count
// at `itemsize` bytes per element) within int64, whatever extent is 0. ShapeError naming `op`.
int64_t checked_numel(const Shape& shape, const char* op, std::size_t itemsize = 1);
// NumPy broadcasting of two shapes; `op` names the caller in the error message.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
bool broadcastable_to(const Shape& from, const Shape& to);
// Strides of `shape`/`strides` seen as the broadcast shape `to` (zero stride on broadcast dims).
Shape broadcast_strides(const Shape& shape, const Shape& strides, const Shape& to);
// Normalises a possibly negative axis against `rank` (-rank <= axis < rank; a rank-0 tensor has
// no axis); throws ShapeError naming `op`.
int normalize_axis(int64_t axis, int rank, const char* op);
// Sorted, deduplicated, normalised axes; empty input means all axes.
Shape normalize_axes(const Shape& axes, int rank, const char* op);

}  // namespace sg
