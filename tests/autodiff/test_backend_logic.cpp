// The backends' host logic, tested on the CPU (the CUDA backend uses the same code but cannot
// run here): index-space merging, the GEMM operand layout decision against a reference
// column-major GEMM with cuBLAS's conventions, the caching allocator's rules, the reduction
// split geometry with the reduction math, and the index checks / deterministic scatter order.
#include <algorithm>
#include <catch2/catch.hpp>
#include <climits>
#include <cmath>
#include <cstring>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "autodiff/backend/block_cache.hpp"
#include "autodiff/backend/gemm_layout.hpp"
#include "autodiff/backend/index_ops.hpp"
#include "autodiff/backend/index_space.hpp"
#include "autodiff/backend/reduce_plan.hpp"
#include "autodiff/sg.hpp"
#include "tests/support/expect.hpp"

using namespace sg;

namespace {

// Offset of element i (row-major over shape) with the given strides, computed naively.
int64_t naive_offset(const std::vector<int64_t>& shape, const std::vector<int64_t>& strides,
                     int64_t i) {
  int64_t off = 0;
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
    off += (i % shape[d]) * strides[d];
    i /= shape[d];
  }
  return off;
}

struct Space {
  std::vector<int64_t> shape;
  std::vector<std::vector<int64_t>> strides;  // per operand
};

IndexSpace merged(const Space& s) {
  std::vector<const int64_t*> p;
  for (const auto& st : s.strides) p.push_back(st.data());
  return coalesce(static_cast<int>(s.shape.size()), s.shape.data(), static_cast<int>(p.size()),
                  p.data());
}

// Every element's offsets agree with the unmerged space, for every operand.
void check_walk(const Space& s, const IndexSpace& it) {
  int64_t numel = 1;
  for (int64_t e : s.shape) numel *= e;
  REQUIRE(it.numel == numel);
  REQUIRE(it.rank >= 1);
  for (int64_t i = 0; i < numel; ++i) {
    int64_t off[kSpaceOperands];
    it.offsets<kSpaceOperands>(i, off);
    for (std::size_t k = 0; k < s.strides.size(); ++k) {
      INFO("element " << i << " operand " << k);
      REQUIRE(off[k] == naive_offset(s.shape, s.strides[k], i));
    }
  }
}

}  // namespace

// ---- index spaces -------------------------------------------------------------------------------
TEST_CASE("index space: contiguous axes merge into one", "[backend_logic]") {
  const Space s{{2, 3, 4}, {{12, 4, 1}, {12, 4, 1}}};
  const IndexSpace it = merged(s);
  CHECK(it.rank == 1);
  CHECK(it.shape[0] == 24);
  CHECK(it.stride[0][0] == 1);
  CHECK(it.stride[1][0] == 1);
  check_walk(s, it);
}

TEST_CASE("index space: broadcast axes merge only where every operand allows", "[backend_logic]") {
  // x broadcast on both axes (a scalar), out contiguous: one axis.
  const Space both{{5, 4}, {{0, 0}, {4, 1}}};
  const IndexSpace a = merged(both);
  CHECK(a.rank == 1);
  CHECK(a.stride[0][0] == 0);
  check_walk(both, a);
  // x broadcast along rows only ([1, 4] expanded): 0 != 1 * 4, no merge.
  const Space rows{{5, 4}, {{0, 1}, {4, 1}}};
  const IndexSpace b = merged(rows);
  CHECK(b.rank == 2);
  check_walk(rows, b);
  // broadcast inner axis ([5, 1] expanded) beside a contiguous outer pair.
  const Space inner{{2, 5, 4}, {{5, 1, 0}, {20, 4, 1}}};
  const IndexSpace c = merged(inner);
  CHECK(c.rank == 2);
  CHECK(c.shape[0] == 10);
  check_walk(inner, c);
}

TEST_CASE("index space: size-1 axes are dropped whatever their stride", "[backend_logic]") {
  const Space s{{3, 1, 4, 1}, {{4, 999, 1, -7}, {4, 0, 1, 3}}};
  const IndexSpace it = merged(s);
  CHECK(it.rank == 1);
  CHECK(it.shape[0] == 12);
  check_walk(s, it);
}

TEST_CASE("index space: negative and permuted strides", "[backend_logic]") {
  // A fully reversed [2, 3]: one axis of stride -1, walked in the same order.
  const Space flip{{2, 3}, {{-3, -1}}};
  const IndexSpace a = merged(flip);
  CHECK(a.rank == 1);
  CHECK(a.stride[0][0] == -1);
  check_walk(flip, a);
  // A transpose never merges (the walk order would change).
  const Space perm{{3, 2}, {{1, 3}, {2, 1}}};
  const IndexSpace b = merged(perm);
  CHECK(b.rank == 2);
  check_walk(perm, b);
  // Reversed only on the outer axis.
  const Space half{{4, 5}, {{-5, 1}}};
  CHECK(merged(half).rank == 2);
  check_walk(half, merged(half));
}

TEST_CASE("index space: rank 0 and numel 0", "[backend_logic]") {
  const Space scalar{{}, {{}, {}}};
  const IndexSpace a = merged(scalar);
  CHECK(a.rank == 1);
  CHECK(a.numel == 1);
  CHECK(a.shape[0] == 1);
  CHECK(a.stride[0][0] == 0);
  check_walk(scalar, a);
  const Space ones{{1, 1, 1}, {{5, 6, 7}}};
  CHECK(merged(ones).rank == 1);
  CHECK(merged(ones).numel == 1);
  const Space empty{{3, 0, 2}, {{2, 2, 1}}};
  const IndexSpace e = merged(empty);
  CHECK(e.numel == 0);
  CHECK(e.rank == 1);
  CHECK(e.shape[0] == 0);
}

TEST_CASE("index space: random strided views walk like the originals, maximally merged",
          "[backend_logic]") {
  std::mt19937 rng(7);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  for (int trial = 0; trial < 400; ++trial) {
    Space s;
    const int rank = pick(0, 6);
    for (int d = 0; d < rank; ++d) s.shape.push_back(pick(1, 4));
    const int operands = pick(1, kSpaceOperands);
    for (int k = 0; k < operands; ++k) {
      // A permuted, padded, sometimes reversed or broadcast layout.
      std::vector<int> order(static_cast<std::size_t>(rank));
      std::iota(order.begin(), order.end(), 0);
      if (pick(0, 1)) std::shuffle(order.begin(), order.end(), rng);
      std::vector<int64_t> st(static_cast<std::size_t>(rank));
      int64_t next = 1;
      for (int q = rank - 1; q >= 0; --q) {
        const int d = order[static_cast<std::size_t>(q)];
        const int kind = pick(0, 9);
        st[static_cast<std::size_t>(d)] = kind == 0 ? 0 : kind == 1 ? -next : next;
        next *= s.shape[static_cast<std::size_t>(d)] + (pick(0, 4) == 0 ? 1 : 0);
      }
      s.strides.push_back(st);
    }
    const IndexSpace it = merged(s);
    check_walk(s, it);
    // No two adjacent result axes could still merge.
    for (int d = 1; d < it.rank; ++d) {
      bool could = true;
      for (int k = 0; k < operands; ++k)
        could &= it.stride[k][d - 1] == it.stride[k][d] * it.shape[d];
      CHECK_FALSE(could);
    }
    for (int d = 0; d < it.rank; ++d) CHECK((it.shape[d] > 1 || it.rank == 1));
  }
}

TEST_CASE("index space: the Shape overload", "[backend_logic]") {
  const Shape shape{4, 5}, a{5, 1}, b{0, 1};
  const IndexSpace it = coalesce(shape, {&a, &b});
  CHECK(it.rank == 2);
  CHECK(it.stride[1][0] == 0);
}

// ---- GEMM layout --------------------------------------------------------------------------------
TEST_CASE("gemm layout: one rule for every operand", "[backend_logic]") {
  using gemm::operand_layout;
  auto is = [](gemm::Operand o, bool row, int64_t ld) {
    return o.ok && o.row_major == row && o.ld == ld;
  };
  CHECK(is(operand_layout(3, 4, 4, 1), true, 4));    // contiguous
  CHECK(is(operand_layout(3, 4, 10, 1), true, 10));  // padded rows (a column slice)
  CHECK(is(operand_layout(3, 4, 1, 3), false, 3));   // transposed contiguous
  CHECK(is(operand_layout(3, 4, 1, 8), false, 8));   // transposed, padded
  CHECK(is(operand_layout(1, 4, 0, 1), true, 4));    // a row: its row stride is free
  CHECK(is(operand_layout(1, 4, 7, 3), false, 3));   // a row with a column stride: column-major
  CHECK(is(operand_layout(3, 1, 5, 9), true, 5));    // a column: its column stride is free
  CHECK(is(operand_layout(1, 1, 0, 0), true, 1));    // one element
  CHECK(is(operand_layout(4, 4, 1, 1), false, 4) == false);
  CHECK(is(operand_layout(4, 1, 1, 1), true, 1));  // both unit strides: row-major preferred
  // Not usable: a broadcast row, negative strides, overlapping rows, two non-unit strides.
  CHECK_FALSE(operand_layout(3, 4, 0, 1).ok);
  CHECK_FALSE(operand_layout(3, 4, -4, 1).ok);
  CHECK_FALSE(operand_layout(3, 4, 4, -1).ok);
  CHECK_FALSE(operand_layout(3, 4, 2, 1).ok);
  CHECK_FALSE(operand_layout(3, 4, 8, 2).ok);
  CHECK_FALSE(operand_layout(3, 4, 1, 0).ok);
  // cuBLAS's int leading dimensions.
  CHECK_FALSE(operand_layout(3, 4, int64_t{1} << 40, 1, INT_MAX).ok);
  CHECK(operand_layout(3, 4, int64_t{1} << 40, 1).ok);
  // The output cannot be transposed.
  CHECK(gemm::output_layout(3, 4, 4, 1).ok);
  CHECK_FALSE(gemm::output_layout(3, 4, 1, 3).ok);
  CHECK(gemm::operand_layout(3, 4, 4, 1).op() == gemm::Op::N);
  CHECK(gemm::operand_layout(3, 4, 1, 3).op() == gemm::Op::T);
}

TEST_CASE("gemm layout: normalized strides address the same elements", "[backend_logic]") {
  std::mt19937 rng(3);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  int usable = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    const int64_t rows = pick(0, 4), cols = pick(0, 4), s0 = pick(-3, 9), s1 = pick(-3, 9);
    const gemm::Operand o = gemm::operand_layout(rows, cols, s0, s1);
    if (!o.ok) continue;
    ++usable;
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) REQUIRE(i * o.s0() + j * o.s1() == i * s0 + j * s1);
    // BLAS's own requirement: ld >= rows of the stored column-major matrix.
    CHECK(o.ld >= std::max<int64_t>(1, o.row_major ? cols : rows));
    // Distinct elements never overlap.
    std::vector<int64_t> seen;
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) seen.push_back(i * s0 + j * s1);
    std::sort(seen.begin(), seen.end());
    CHECK(std::adjacent_find(seen.begin(), seen.end()) == seen.end());
  }
  CHECK(usable > 100);
}

TEST_CASE("gemm reference: cuBLAS's argument rules and column-major meaning", "[backend_logic]") {
  // A = [[1, 2], [3, 4]] column-major with lda 3 (padding), B = I; C = A^T.
  const std::vector<double> A = {1, 3, -99, 2, 4, -99};
  const std::vector<double> B = {1, 0, 0, 1};
  std::vector<double> C(4, 7.0);
  gemm::reference_gemm<double>(gemm::Op::T, gemm::Op::N, 2, 2, 2, 1.0, A.data(), 3, 0, B.data(), 2,
                               0, 0.0, C.data(), 2, 0);
  CHECK(C == std::vector<double>{1, 2, 3, 4});
  gemm::reference_gemm<double>(gemm::Op::N, gemm::Op::N, 2, 2, 2, 2.0, A.data(), 3, 0, B.data(), 2,
                               0, 1.0, C.data(), 2, 0);  // C = 2 A + C
  CHECK(C == std::vector<double>{3, 8, 7, 12});
  CHECK(gemm::check_args(gemm::Op::N, gemm::Op::N, 4, 2, 3, 3, 3, 4) == "lda too small");
  CHECK(gemm::check_args(gemm::Op::T, gemm::Op::N, 4, 2, 3, 3, 3, 4).empty());
  CHECK(gemm::check_args(gemm::Op::N, gemm::Op::T, 4, 2, 3, 4, 1, 4) == "ldb too small");
  CHECK(gemm::check_args(gemm::Op::N, gemm::Op::N, 4, 2, 3, 4, 3, 3) == "ldc too small");
  // Buffers large enough for the shapes, so only the argument rule can refuse the call.
  std::vector<double> a12(12), b6(6), c8(8);
  CHECK_THROWS_AS(gemm::reference_gemm<double>(gemm::Op::N, gemm::Op::N, 4, 2, 3, 1.0, a12.data(),
                                               3, 0, b6.data(), 3, 0, 0.0, c8.data(), 4, 0),
                  std::invalid_argument);
}

namespace {

// A strided operand in its own buffer: logical shape [batch..., rows, cols] over out's batch
// shape (stride 0 where this operand is broadcast), element (b, i, j) at base + offset.
struct Strided {
  std::vector<double> buf;
  int64_t base = 0;  // index of the logical origin in buf
  std::vector<int64_t> shape, strides;
  double at(const std::vector<int64_t>& idx) const {
    int64_t off = base;
    for (std::size_t d = 0; d < idx.size(); ++d) off += idx[d] * strides[d];
    return buf[static_cast<std::size_t>(off)];
  }
};

std::vector<int64_t> unravel(int64_t i, const std::vector<int64_t>& shape) {
  std::vector<int64_t> idx(shape.size());
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
    idx[static_cast<std::size_t>(d)] = i % shape[static_cast<std::size_t>(d)];
    i /= shape[static_cast<std::size_t>(d)];
  }
  return idx;
}

// Random layout: the axes that are not broadcast are stored in a random order with random
// padding; matrix axes are sometimes reversed (negative strides) or, for an extent-1 axis,
// given an arbitrary stride.
Strided make_operand(std::mt19937& rng, const std::vector<int64_t>& batch,
                     const std::vector<bool>& broadcast, int64_t rows, int64_t cols) {
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  Strided s;
  s.shape = batch;
  s.shape.push_back(rows);
  s.shape.push_back(cols);
  const int R = static_cast<int>(s.shape.size());
  std::vector<int> axes;
  for (int d = 0; d < R; ++d)
    if (d >= R - 2 || !broadcast[static_cast<std::size_t>(d)]) axes.push_back(d);
  if (pick(0, 2)) std::shuffle(axes.begin(), axes.end(), rng);
  s.strides.assign(static_cast<std::size_t>(R), 0);
  int64_t next = 1;
  for (int q = static_cast<int>(axes.size()) - 1; q >= 0; --q) {
    const int d = axes[static_cast<std::size_t>(q)];
    s.strides[static_cast<std::size_t>(d)] = next;
    next *= s.shape[static_cast<std::size_t>(d)] + (pick(0, 3) == 0 ? pick(1, 3) : 0);
  }
  s.buf.resize(static_cast<std::size_t>(2 * next + 8));
  s.base = next + 4;
  for (int d = 0; d < R; ++d) {
    auto& st = s.strides[static_cast<std::size_t>(d)];
    if (d >= R - 2 && s.shape[static_cast<std::size_t>(d)] == 1 && pick(0, 2) == 0) st = pick(0, 5);
    if (pick(0, 7) == 0) st = -st;  // reversed (a batch axis: looped over, never copied)
  }
  for (double& v : s.buf) v = pick(-3, 3);
  return s;
}

// A contiguous row-major copy over the full shape (what a backend does with an operand the
// layout decision refuses).
Strided contiguous_copy(const Strided& s) {
  Strided c;
  c.shape = s.shape;
  c.strides.assign(s.shape.size(), 1);
  for (int d = static_cast<int>(s.shape.size()) - 2; d >= 0; --d)
    c.strides[static_cast<std::size_t>(d)] =
        c.strides[static_cast<std::size_t>(d) + 1] * s.shape[static_cast<std::size_t>(d) + 1];
  int64_t n = 1;
  for (int64_t e : s.shape) n *= e;
  c.buf.resize(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) c.buf[static_cast<std::size_t>(i)] = s.at(unravel(i, s.shape));
  return c;
}

Shape to_shape(const std::vector<int64_t>& v) { return Shape(std::span<const int64_t>(v)); }

}  // namespace

TEST_CASE("gemm layout: the decided cuBLAS arguments give the row-major product",
          "[backend_logic]") {
  // For random strided, transposed and broadcast-batched operands: plan the product, copy what
  // the plan refuses, call the reference column-major GEMM with the plan's arguments (operands
  // swapped, op per layout, lda/ldb/ldc, strided batches, outer loop) and compare with a naive
  // row-major product. Small integers make every sum exact.
  std::mt19937 rng(11);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  int copies = 0, transposed = 0, batched = 0, looped_all = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const int nb = pick(0, 3);
    std::vector<int64_t> batch;
    std::vector<bool> bca, bcb;
    for (int d = 0; d < nb; ++d) {
      batch.push_back(pick(1, 3));
      const int w = pick(0, 3);  // which operand is broadcast on this axis
      bca.push_back(w == 1);
      bcb.push_back(w == 2);
    }
    const int64_t m = pick(1, 5), n = pick(1, 5), k = pick(1, 5);
    Strided a = make_operand(rng, batch, bca, m, k), b = make_operand(rng, batch, bcb, k, n);
    // The output: contiguous, sometimes with padded rows.
    const int64_t ldo = n + (pick(0, 2) == 0 ? pick(1, 2) : 0);
    std::vector<int64_t> oshape = batch, ostr(batch.size() + 2);
    oshape.push_back(m);
    oshape.push_back(n);
    ostr[batch.size() + 1] = 1;
    ostr[batch.size()] = ldo;
    int64_t nbatch = 1;
    for (int d = nb - 1; d >= 0; --d) {
      ostr[static_cast<std::size_t>(d)] = (d == nb - 1 ? m * ldo : ostr[d + 1] * batch[d + 1]);
      nbatch *= batch[static_cast<std::size_t>(d)];
    }
    gemm::Plan p = gemm::plan(to_shape(oshape), to_shape(a.strides), to_shape(b.strides),
                              to_shape(ostr), k, INT_MAX);
    REQUIRE(p.c.ok);
    if (!p.a.ok) a = contiguous_copy(a), ++copies;
    if (!p.b.ok) b = contiguous_copy(b), ++copies;
    if (!p.ok())
      p = gemm::plan(to_shape(oshape), to_shape(a.strides), to_shape(b.strides), to_shape(ostr), k,
                     INT_MAX);
    REQUIRE(p.ok());
    transposed += !p.a.row_major || !p.b.row_major;
    batched += p.count > 1;
    looped_all += p.count == 1 && p.looped > 0 && p.batch.shape[p.batch.rank - 1] > 1;
    CHECK(p.stride_a >= 0);
    CHECK(p.stride_b >= 0);
    CHECK(p.stride_c >= 0);
    REQUIRE(gemm::check_args(p.transa(), p.transb(), p.cm(), p.cn(), p.k, p.lda(), p.ldb(), p.ldc(),
                             p.count)
                .empty());
    REQUIRE(p.outer * p.count == nbatch);

    std::vector<double> C(static_cast<std::size_t>(nbatch * m * ldo), -1234.0);
    for (int64_t o = 0; o < p.outer; ++o) {
      int64_t off[3];
      p.outer_offsets(o, off);
      gemm::reference_gemm<double>(p.transa(), p.transb(), p.cm(), p.cn(), p.k, 1.0,
                                   b.buf.data() + b.base + off[1], p.lda(), p.stride_b,
                                   a.buf.data() + a.base + off[0], p.ldb(), p.stride_a, 0.0,
                                   C.data() + off[2], p.ldc(), p.stride_c, p.count);
    }
    for (int64_t bi = 0; bi < nbatch; ++bi) {
      std::vector<int64_t> bidx = unravel(bi, batch);
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          double want = 0;
          for (int64_t l = 0; l < k; ++l) {
            std::vector<int64_t> ia = bidx, ib = bidx;
            ia.push_back(i), ia.push_back(l), ib.push_back(l), ib.push_back(j);
            want += a.at(ia) * b.at(ib);
          }
          int64_t off = i * ldo + j;
          for (int d = 0; d < nb; ++d) off += bidx[static_cast<std::size_t>(d)] * ostr[d];
          INFO("trial " << trial << " batch " << bi << " (" << i << ", " << j << ")");
          REQUIRE(C[static_cast<std::size_t>(off)] == want);
        }
    }
  }
  CHECK(copies > 10);
  CHECK(transposed > 50);
  CHECK(batched > 50);
  CHECK(looped_all > 5);
}

TEST_CASE("gemm layout: the CPU backend and the matmul op follow it", "[backend_logic]") {
  // Rows, columns and transposed views that the decision takes without a copy, through the
  // matmul op (CPU kernels), against a naive product.
  Generator gen(5);
  const Tensor x = randn({6, 7}, gen, DType::f64), y = randn({7, 5}, gen, DType::f64);
  auto naive = [](const Tensor& a, const Tensor& b) {
    const std::vector<double> av = contiguous(a).to_vector(), bv = contiguous(b).to_vector();
    const int64_t m = a.dim(0), k = a.dim(1), n = b.dim(1);
    std::vector<double> c(static_cast<std::size_t>(m * n), 0.0);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j)
        for (int64_t l = 0; l < k; ++l)
          c[static_cast<std::size_t>(i * n + j)] +=
              av[static_cast<std::size_t>(i * k + l)] * bv[static_cast<std::size_t>(l * n + j)];
    return c;
  };
  auto close = [](const std::vector<double>& a, const std::vector<double>& b) {
    REQUIRE(a.size() == b.size());
    for (std::size_t i = 0; i < a.size(); ++i) CHECK(std::fabs(a[i] - b[i]) < 1e-12);
  };
  close(matmul(x, y).to_vector(), naive(x, y));
  close(matmul(y.mT(), x.mT()).to_vector(), naive(y.mT(), x.mT()));
  const Tensor row = slice(x.mT(), 0, 2, 3);  // [1, 6] with strides (1, 7): column-major
  close(matmul(row, x).to_vector(), naive(row, x));
  const Tensor col = slice(x, 1, 3, 4);  // [6, 1] with strides (7, 1)
  close(matmul(col, slice(y, 0, 0, 1)).to_vector(), naive(col, slice(y, 0, 0, 1)));
  const Tensor every_other = slice(x, 1, 0, 7, 2);  // column stride 2: copied
  close(matmul(every_other, slice(y, 0, 0, 4)).to_vector(), naive(every_other, slice(y, 0, 0, 4)));
}

// ---- caching allocator --------------------------------------------------------------------------
namespace {

struct FakeMemory {
  std::size_t capacity = std::size_t{64} << 20, used = 0;
  std::vector<std::string>* log = nullptr;
  std::map<void*, std::size_t> blocks;
  uintptr_t next = 0x1000;
  void* malloc(std::size_t n, int device) {
    if (used + n > capacity) {
      log->push_back("oom " + std::to_string(n));
      return nullptr;
    }
    void* p = reinterpret_cast<void*>(next);
    next += n + 0x1000;
    used += n;
    blocks[p] = n;
    log->push_back("malloc " + std::to_string(n) + " dev" + std::to_string(device));
    return p;
  }
  void free(void* p, int device) {
    used -= blocks.at(p);
    blocks.erase(p);
    log->push_back("free dev" + std::to_string(device));
  }
  void synchronize(int device) { log->push_back("sync dev" + std::to_string(device)); }
};

}  // namespace

TEST_CASE("caching allocator: buckets", "[backend_logic]") {
  CHECK(cache_bucket(1) == 512);
  CHECK(cache_bucket(512) == 512);
  CHECK(cache_bucket(513) == 1024);
  CHECK(cache_bucket(4000) == 4096);
  CHECK(cache_bucket(std::size_t{1} << 20) == std::size_t{1} << 20);
  CHECK(cache_bucket((std::size_t{1} << 20) + 1) == std::size_t{2} << 20);
  CHECK(cache_bucket(std::size_t{3} << 20) == std::size_t{4} << 20);
  CHECK(cache_bucket((std::size_t{4} << 20) + 1) == std::size_t{6} << 20);
}

TEST_CASE("caching allocator: reuse by bucket, device and stream", "[backend_logic]") {
  std::vector<std::string> log;
  BlockCache<FakeMemory> cache(FakeMemory{.log = &log});
  void* a = cache.allocate(4000, 1, 0);
  CHECK(log.back() == "malloc 4096 dev0");
  BlockCacheStats s = cache.stats();
  CHECK(s.bytes_in_use == 4096);
  CHECK(s.device_allocs == 1);
  cache.release(a);
  s = cache.stats();
  CHECK(s.bytes_in_use == 0);
  CHECK(s.bytes_cached == 4096);
  CHECK(s.peak_bytes_in_use == 4096);
  // Same bucket, device and stream: reused without a device call.
  const std::size_t calls = log.size();
  void* b = cache.allocate(3700, 1, 0);
  CHECK(b == a);
  CHECK(log.size() == calls);
  CHECK(cache.stats().cache_hits == 1);
  cache.release(b);
  // Another stream, another device or another bucket: a fresh block.
  void* c = cache.allocate(4000, 2, 0);
  CHECK(c != a);
  void* d = cache.allocate(4000, 1, 1);
  CHECK(log.back() == "malloc 4096 dev1");
  void* e = cache.allocate(5000, 1, 0);
  CHECK(e != a);
  CHECK(cache.stats().device_allocs == 4);
  // The block on stream 1, device 0 is still there for its own stream.
  void* f = cache.allocate(4096, 1, 0);
  CHECK(f == a);
  // Last freed, first reused.
  cache.release(c);
  void* g = cache.allocate(100, 2, 0);  // another bucket on stream 2: fresh
  void* h = cache.allocate(4000, 2, 0);
  CHECK(h == c);
  for (void* p : {d, e, f, g, h}) cache.release(p);
  void* q1 = cache.allocate(4000, 1, 0);
  void* q2 = cache.allocate(4000, 1, 0);
  cache.release(q1);
  cache.release(q2);
  CHECK(cache.allocate(4000, 1, 0) == q2);
  // A pointer the cache did not hand out is ignored.
  int local = 0;
  cache.release(&local);
  s = cache.stats();
  CHECK(s.bytes_in_use == 4096);
  cache.reset_peak();
  CHECK(cache.stats().peak_bytes_in_use == 4096);
}

TEST_CASE("caching allocator: out of memory releases the cache (after syncing) and retries once",
          "[backend_logic]") {
  std::vector<std::string> log;
  BlockCache<FakeMemory> cache(FakeMemory{.capacity = std::size_t{8} << 20, .log = &log});
  void* big = cache.allocate(std::size_t{4} << 20, 0, 0);  // 4 MiB bucket
  void* other = cache.allocate(std::size_t{2} << 20, 0, 1);
  cache.release(big);
  cache.release(other);
  CHECK(cache.stats().bytes_cached == (std::size_t{6} << 20));
  log.clear();
  // 6 MiB on another stream: refused, the cache is released, then it fits.
  void* p = cache.allocate(std::size_t{6} << 20, 5, 0);
  REQUIRE(p != nullptr);
  REQUIRE(log.size() == 6);
  CHECK(log[0] == "oom 6291456");
  // Every device holding cached blocks is synchronised before any block is freed.
  CHECK(log[1].rfind("sync", 0) == 0);
  CHECK(log[2].rfind("sync", 0) == 0);
  CHECK(log[3].rfind("free", 0) == 0);
  CHECK(log[4].rfind("free", 0) == 0);
  CHECK(log[5] == "malloc 6291456 dev0");
  BlockCacheStats s = cache.stats();
  CHECK(s.bytes_cached == 0);
  CHECK(s.device_frees == 2);
  CHECK(s.bytes_in_use == (std::size_t{6} << 20));
  // Still too big after releasing: nullptr, nothing counted.
  CHECK(cache.allocate(std::size_t{4} << 20, 5, 0) == nullptr);
  CHECK(cache.stats().bytes_in_use == (std::size_t{6} << 20));
  CHECK(cache.stats().device_allocs == s.device_allocs);
  cache.release(p);
  cache.release_cache();
  CHECK(cache.stats().bytes_cached == 0);
  CHECK(cache.memory().used == 0);
}

// ---- reductions ---------------------------------------------------------------------------------
TEST_CASE("reduction geometry: per thread, per block, split", "[backend_logic]") {
  CHECK(plan_reduce(0, 100, true).pass1.kind == ReduceKind::none);
  CHECK(plan_reduce(10, 100, true).pass1.kind == ReduceKind::per_thread);
  CHECK(plan_reduce(10000, 1000, false).pass1.kind == ReduceKind::per_thread);
  const ReducePlan rows = plan_reduce(10000, 1000, true);
  CHECK(rows.pass1.kind == ReduceKind::per_block);
  CHECK(rows.pass1.grid == 10000);
  CHECK(rows.pass1.block == kReduceThreads);
  // A full reduction of 1M elements: 128 blocks of 8192 elements, then one thread.
  const ReducePlan m1 = plan_reduce(1, 1 << 20, true);
  CHECK(m1.pass1.kind == ReduceKind::split);
  CHECK(m1.splits == 128);
  CHECK(m1.chunk == 8192);
  CHECK(m1.pass1.grid == 128);
  CHECK(m1.pass2.kind == ReduceKind::per_thread);
  CHECK(m1.partials() == 128);
  // 10^8 elements: the whole device (1024 blocks), a block for the second pass.
  const ReducePlan big = plan_reduce(1, 100000000, true);
  CHECK(big.splits == kReduceTargetBlocks);
  CHECK(big.pass1.grid == kReduceTargetBlocks);
  CHECK(big.pass2.kind == ReduceKind::per_block);
  // A few outputs share the target (here the chunk size limits first).
  const ReducePlan few = plan_reduce(7, 1000000, false);
  CHECK(few.pass1.kind == ReduceKind::split);
  CHECK(few.splits == 1000000 / kReduceMinChunk);  // chunks of at least kReduceMinChunk
  CHECK(few.outputs * few.splits <= kReduceTargetBlocks + 7);
  const ReducePlan share = plan_reduce(7, 100000000, false);
  CHECK(share.splits == (kReduceTargetBlocks + 6) / 7);
  // Too short to split, or enough outputs already.
  CHECK(plan_reduce(1, 2 * kReduceMinChunk - 1, true).pass1.kind == ReduceKind::per_block);
  CHECK(plan_reduce(kReduceTargetBlocks, 1 << 24, true).pass1.kind == ReduceKind::per_block);
  // Grids stay within the launch limit.
  CHECK(plan_reduce(int64_t{1} << 30, 1000, true).pass1.grid == kReduceMaxGrid);
  CHECK(plan_reduce(int64_t{1} << 30, 10, true).pass1.grid == kReduceMaxGrid);
  // Chunks tile each output's elements exactly.
  std::mt19937 rng(1);
  for (int trial = 0; trial < 200; ++trial) {
    const int64_t outputs = std::uniform_int_distribution<int64_t>(1, 3000)(rng);
    const int64_t length = std::uniform_int_distribution<int64_t>(1, 1 << 26)(rng);
    const ReducePlan p = plan_reduce(outputs, length, trial % 2 == 0);
    REQUIRE(p.splits >= 1);
    int64_t covered = 0;
    for (int64_t s = 0; s < p.splits; ++s) {
      REQUIRE(p.chunk_begin(s) == covered);
      REQUIRE(p.chunk_end(s) > p.chunk_begin(s));
      covered = p.chunk_end(s);
    }
    REQUIRE(covered == length);
    if (p.pass1.kind == ReduceKind::split) {
      CHECK(p.chunk >= kReduceMinChunk);
      CHECK(p.outputs * p.splits <= kReduceTargetBlocks + p.outputs);
    }
  }
}

namespace {

// The CUDA reduction kernels' arithmetic, emulated on the host with the shared functors: pass 1
// per (output, chunk) block with 256 strided thread partials and the fixed tree, pass 2 in
// chunk order (per block or per thread as planned).
template <class T, ReduceOp Op>
typename ReduceFn<T, Op>::Acc block_reduce(const std::vector<T>& x, int64_t j0, int64_t j1) {
  using F = ReduceFn<T, Op>;
  using Acc = typename F::Acc;
  std::vector<Acc> buf(kReduceThreads, F::init());
  for (int t = 0; t < kReduceThreads; ++t)
    for (int64_t j = j0 + t; j < j1; j += kReduceThreads)
      buf[static_cast<std::size_t>(t)] = F::combine(
          buf[static_cast<std::size_t>(t)], static_cast<Acc>(x[static_cast<std::size_t>(j)]));
  for (int w = kReduceThreads / 2; w > 0; w /= 2)
    for (int t = 0; t < w; ++t)
      buf[static_cast<std::size_t>(t)] =
          F::combine(buf[static_cast<std::size_t>(t)], buf[static_cast<std::size_t>(t + w)]);
  return buf[0];
}
template <class T, ReduceOp Op>
T emulate_full_reduction(const std::vector<T>& x) {
  using F = ReduceFn<T, Op>;
  using Acc = typename F::Acc;
  const ReducePlan p = plan_reduce(1, static_cast<int64_t>(x.size()), true);
  if (p.pass1.kind != ReduceKind::split) return static_cast<T>(block_reduce<T, Op>(x, 0, p.length));
  std::vector<Acc> partial;
  for (int64_t s = 0; s < p.splits; ++s)
    partial.push_back(block_reduce<T, Op>(x, p.chunk_begin(s), p.chunk_end(s)));
  if (p.pass2.kind == ReduceKind::per_block)
    return static_cast<T>(block_reduce<Acc, Op>(partial, 0, p.splits));
  Acc acc = F::init();
  for (Acc v : partial) acc = F::combine(acc, v);
  return static_cast<T>(acc);
}

}  // namespace

TEST_CASE("reduction math: the split reduction gives the sequential result", "[backend_logic]") {
  std::mt19937 rng(2);
  for (int64_t n : {int64_t{1000}, int64_t{1} << 20, int64_t{3000001}}) {
    std::vector<float> x(static_cast<std::size_t>(n));
    std::normal_distribution<float> normal;
    for (float& v : x) v = normal(rng);
    double want = 0;
    float mx = -INFINITY, mn = INFINITY;
    for (float v : x) want += v, mx = std::max(mx, v), mn = std::min(mn, v);
    const float got = emulate_full_reduction<float, ReduceOp::sum>(x);
    CHECK(std::fabs(got - static_cast<float>(want)) <= 1e-6 * std::fabs(want) + 1e-6);
    CHECK(emulate_full_reduction<float, ReduceOp::max>(x) == mx);
    CHECK(emulate_full_reduction<float, ReduceOp::min>(x) == mn);
    x[static_cast<std::size_t>(n / 3)] = NAN;
    CHECK(std::isnan(emulate_full_reduction<float, ReduceOp::max>(x)));
    CHECK(std::isnan(emulate_full_reduction<float, ReduceOp::min>(x)));
  }
  // float32 sums accumulate in double: 2^25 ones are exact where a float accumulator stops.
  CHECK(emulate_full_reduction<float, ReduceOp::sum>(std::vector<float>(1 << 25, 1.0f)) ==
        static_cast<float>(1 << 25));
  // int64 sums wrap like two's complement, in any split.
  std::vector<int64_t> w(100000, INT64_MAX / 50000);
  uint64_t expect = 0;
  for (int64_t v : w) expect += static_cast<uint64_t>(v);
  CHECK(emulate_full_reduction<int64_t, ReduceOp::sum>(w) == static_cast<int64_t>(expect));
  CHECK(ReduceFn<int64_t, ReduceOp::max>::init() == INT64_MIN);
  CHECK(ReduceFn<double, ReduceOp::min>::init() == INFINITY);
  static_assert(std::is_same_v<ReduceFn<float, ReduceOp::sum>::Acc, double>);
  static_assert(std::is_same_v<ReduceFn<float, ReduceOp::max>::Acc, float>);
}

// ---- index checks and the deterministic scatter order -------------------------------------------
TEST_CASE("index errors: typed, named, raised from a recorded fault", "[backend_logic]") {
  const Tensor x = from_vector({1, 2, 3, 4, 5, 6}, {2, 3}, DType::f64);
  const Tensor bad = from_indices({0, 3}, {1, 2});
  CHECK_THROWS_AS(gather(x, 1, bad), IndexError);
  const std::string g = test::message_of<IndexError>([&] { (void)gather(x, 1, bad); });
  CHECK(g.find("gather: index 3 is out of range for axis 1 of size 3") != std::string::npos);
  CHECK_THROWS_AS(scatter_add(x, 1, bad, zeros({1, 2}, DType::f64)), ValueError);
  CHECK_THROWS_AS(index_select(x, 0, from_indices({-1}, {1})), IndexError);
  IndexFault none{};
  CHECK_NOTHROW(raise_index_fault(none, "cuda:0"));
  const IndexFault f{static_cast<int>(IndexOp::scatter_add), 2, 9, 4};
  const std::string s = test::message_of<IndexError>([&] { raise_index_fault(f, "cuda:1"); });
  CHECK(s.find("scatter_add: index 9 is out of range for axis 2 of size 4") != std::string::npos);
  CHECK(s.find("cuda:1") != std::string::npos);
  CHECK(sort_key_bits(0) == 1);
  CHECK(sort_key_bits(1) == 1);
  CHECK(sort_key_bits(2) == 2);
  CHECK(sort_key_bits(255) == 8);
  CHECK(sort_key_bits(256) == 9);
  CHECK(sort_key_bits(INT64_MAX) == 63);
}

TEST_CASE("deterministic scatter-add: sorting by destination keeps the CPU's order of additions",
          "[backend_logic]") {
  // The CUDA deterministic mode, emulated: keys = destination offsets over the coalesced source
  // space, a stable sort, then each run of equal keys added in order onto the destination. The
  // result equals the CPU backend's scatter_add bit for bit (float32, many collisions).
  Generator gen(8);
  const int64_t rows = 40, cols = 300, size = 7;
  const Tensor base = randn({size, cols}, gen, DType::f32);
  const Tensor src = randn({rows, cols}, gen, DType::f32) * 1000.0;
  std::vector<int64_t> iv(static_cast<std::size_t>(rows * cols));
  std::mt19937 rng(4);
  for (int64_t& v : iv) v = std::uniform_int_distribution<int64_t>(0, size - 1)(rng);
  const Tensor idx = from_indices(iv, {rows, cols});
  const Tensor want = scatter_add(base, 0, idx, src);

  // Index space over src.shape: operands idx, src, out (axis 0 stride zeroed).
  const Shape shape{rows, cols}, is{cols, 1}, ss{cols, 1}, os{0, 1};
  const IndexSpace it = coalesce(shape, {&is, &ss, &os});
  const int64_t axis_stride = cols;
  std::vector<std::pair<int64_t, int64_t>> keyed;  // (key, source element)
  for (int64_t i = 0; i < it.numel; ++i) {
    int64_t off[3];
    it.offsets<3>(i, off);
    const int64_t j = iv[static_cast<std::size_t>(off[0])];
    REQUIRE(index_in_range(j, size));
    keyed.emplace_back(off[2] + j * axis_stride, off[1]);
  }
  std::stable_sort(keyed.begin(), keyed.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  const std::vector<double> bv = base.to_vector(), sv = src.to_vector();
  std::vector<float> out(bv.begin(), bv.end());
  for (std::size_t r = 0; r < keyed.size();) {
    std::size_t e = r;
    float acc = out[static_cast<std::size_t>(keyed[r].first)];
    for (; e < keyed.size() && keyed[e].first == keyed[r].first; ++e)
      acc += static_cast<float>(sv[static_cast<std::size_t>(keyed[e].second)]);
    out[static_cast<std::size_t>(keyed[r].first)] = acc;
    r = e;
  }
  const std::vector<double> wv = want.to_vector();
  for (std::size_t i = 0; i < out.size(); ++i) REQUIRE(static_cast<float>(wv[i]) == out[i]);
}
