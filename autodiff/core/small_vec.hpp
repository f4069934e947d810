// SmallVec: a vector that keeps its first N elements inline (node inputs, tangent lists), so
// recording the common one- and two-input op allocates nothing.
#pragma once
#include <cstddef>
#include <new>
#include <utility>
#include <vector>

namespace sg {

template <class T, std::size_t N>
class SmallVec {
 public:
  SmallVec() = default;
  SmallVec(const SmallVec& o) {
    for (const T& x : o) push_back(x);
  }
  SmallVec(SmallVec&& o) noexcept {
    for (T& x : o) push_back(std::move(x));
    o.clear();
  }
  SmallVec& operator=(SmallVec o) noexcept {
    clear();
    for (T& x : o) push_back(std::move(x));
    return *this;
  }
  ~SmallVec() { clear(); }

  void push_back(T x) {
    if (n_ < N) {
      new (inline_ptr() + n_) T(std::move(x));
    } else {
      heap_.push_back(std::move(x));
    }
    ++n_;
  }
  void clear() {
    for (std::size_t i = 0; i < n_ && i < N; ++i) inline_ptr()[i].~T();
    heap_.clear();
    n_ = 0;
  }
  std::size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  T& operator[](std::size_t i) { return i < N ? inline_ptr()[i] : heap_[i - N]; }
  const T& operator[](std::size_t i) const { return i < N ? inline_ptr()[i] : heap_[i - N]; }

  template <class V, class P>
  struct Iter {
    P* v;
    std::size_t i;
    decltype(auto) operator*() const { return (*v)[i]; }
    Iter& operator++() { return ++i, *this; }
    bool operator!=(const Iter& o) const { return i != o.i; }
  };
  auto begin() { return Iter<T, SmallVec>{this, 0}; }
  auto end() { return Iter<T, SmallVec>{this, n_}; }
  auto begin() const { return Iter<const T, const SmallVec>{this, 0}; }
  auto end() const { return Iter<const T, const SmallVec>{this, n_}; }

 private:
  T* inline_ptr() { return std::launder(reinterpret_cast<T*>(buf_)); }
  const T* inline_ptr() const { return std::launder(reinterpret_cast<const T*>(buf_)); }
  alignas(T) unsigned char buf_[sizeof(T) * N];
  std::size_t n_ = 0;
  std::vector<T> heap_;
};

}  // namespace sg
