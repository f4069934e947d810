// Elementwise kernels: fill, copy (dtype-converting), unary, binary, where. Every one is the
// grid-stride for_each over a strided N-d view with a body that applies the shared functor
// from functors.hpp, so GPU and CPU run the same scalar math.
#include <type_traits>

#include "autodiff/backend/cuda/kernels.cuh"

namespace sg::cuda {
namespace {

template <class T>
struct FillBody {
  T v;
  T* y;
  __device__ void operator()(const int64_t* o) const { y[o[0]] = v; }
};
template <class S, class D>
struct CopyBody {
  const S* x;
  D* y;
  __device__ void operator()(const int64_t* o) const { y[o[1]] = fn::convert<D>(x[o[0]]); }
};
template <class T, class F>
struct UnaryBody {
  F f;
  const T* x;
  T* y;
  __device__ void operator()(const int64_t* o) const { y[o[1]] = f(x[o[0]]); }
};
template <class T, class R, class F>
struct BinaryBody {
  F f;
  const T* a;
  const T* b;
  R* y;
  __device__ void operator()(const int64_t* o) const { y[o[2]] = f(a[o[0]], b[o[1]]); }
};
template <class T>
struct WhereBody {
  const bool* c;
  const T* a;
  const T* b;
  T* y;
  __device__ void operator()(const int64_t* o) const { y[o[3]] = c[o[0]] ? a[o[1]] : b[o[2]]; }
};

}  // namespace

void launch_fill(DType t, void* y, double value, const Iter& it, cudaStream_t s) {
  visit_dtype(t, [&](auto z) {
    using T = decltype(z);
    for_each<1>(it, FillBody<T>{fn::convert<T>(value), static_cast<T*>(y)}, s);
  });
}

void launch_copy(DType from, DType to, const void* x, void* y, const Iter& it, cudaStream_t s) {
  visit_dtype(from, [&](auto a) {
    visit_dtype(to, [&](auto b) {
      using S = decltype(a);
      using D = decltype(b);
      for_each<2>(it, CopyBody<S, D>{static_cast<const S*>(x), static_cast<D*>(y)}, s);
    });
  });
}

void launch_unary(UnaryOp op, double scalar, DType t, const void* x, void* y, const Iter& it,
                  cudaStream_t s) {
  visit_unary(op, scalar, [&](auto f) {
    using F = decltype(f);
    visit_dtype(t, [&](auto z) {
      using T = decltype(z);
      if constexpr (std::is_floating_point_v<T> ||
                    (std::is_same_v<T, int64_t> && takes_integers<F>)) {
        for_each<2>(it, UnaryBody<T, F>{f, static_cast<const T*>(x), static_cast<T*>(y)}, s);
      } else {
        throw_dtype_error("cuda unary", t);
      }
    });
  });
}

void launch_binary(BinaryOp op, DType t, const void* a, const void* b, void* y, const Iter& it,
                   cudaStream_t s) {
  visit_binary(op, [&](auto f) {
    using F = decltype(f);
    constexpr bool cmp = std::is_same_v<std::invoke_result_t<F, double, double>, bool>;
    visit_dtype(t, [&](auto z) {
      using T = decltype(z);
      const T* pa = static_cast<const T*>(a);
      const T* pb = static_cast<const T*>(b);
      if constexpr (is_half_v<T>) {
        throw_dtype_error("cuda binary", t);  // refused by the backend before it gets here
      } else if constexpr (cmp) {
        for_each<3>(it, BinaryBody<T, bool, F>{f, pa, pb, static_cast<bool*>(y)}, s);
      } else if constexpr (std::is_floating_point_v<T> ||
                           (std::is_same_v<T, int64_t> && takes_integers<F>)) {
        for_each<3>(it, BinaryBody<T, T, F>{f, pa, pb, static_cast<T*>(y)}, s);
      } else {
        throw_dtype_error("cuda binary", t);
      }
    });
  });
}

void launch_where(DType t, const void* c, const void* a, const void* b, void* y, const Iter& it,
                  cudaStream_t s) {
  visit_dtype(t, [&](auto z) {
    using T = decltype(z);
    for_each<4>(it,
                WhereBody<T>{static_cast<const bool*>(c), static_cast<const T*>(a),
                             static_cast<const T*>(b), static_cast<T*>(y)},
                s);
  });
}

}  // namespace sg::cuda
