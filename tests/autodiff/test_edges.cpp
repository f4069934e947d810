// Inputs at the edges of the engine's arithmetic: shapes whose element or byte counts overflow
// int64 (also when another extent is 0), malformed reshape targets, axes of a rank-0 tensor and
// allocations the machine cannot satisfy. Each is one typed error naming the op, never a crash.
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>

#include "autodiff/sg.hpp"
#include "tests/support/expect.hpp"

using namespace sg;

namespace {
using test::message_of;
constexpr int64_t k62 = int64_t{1} << 62, k32 = int64_t{1} << 32;
}  // namespace

TEST_CASE("element and byte counts that overflow int64 are shape errors naming the op",
          "[edges][shape]") {
  CHECK_THAT(message_of<ShapeError>([] { zeros({k62}); }), Catch::Contains("zeros"));  // bytes
  CHECK_THAT(message_of<ShapeError>([] { zeros({k32, k32}); }), Catch::Contains("int64"));
  CHECK_THAT(message_of<ShapeError>([] { ones({k62, k62, 0}); }), Catch::Contains("ones"));
  CHECK_THAT(message_of<ShapeError>([] { empty({0, k62, k62}); }), Catch::Contains("empty"));
  CHECK_THAT(message_of<ShapeError>([] { full({-3, 2}, 1.0); }), Catch::Contains("negative"));
  CHECK_THAT(message_of<ShapeError>([] {
               from_vector({}, {k62, k62, 0});
             }),
             Catch::Contains("from_vector"));
  // a view whose extents overflow: expand is checked by the engine before any kernel
  const Tensor one = ones({1, 1}, DType::f64);
  CHECK_THAT(message_of<ShapeError>([&] { expand(one, {k32, k32}); }), Catch::Contains("expand"));
  // zero extents with small others stay fine
  CHECK(zeros({0, 5}).numel() == 0);
  CHECK(expand(ones({1, 1}), {0, 7}).numel() == 0);
}

TEST_CASE("reshape refuses extents below -1 and more than one -1", "[edges][shape]") {
  const Tensor x = ones({4}, DType::f64);
  CHECK_THAT(message_of<ShapeError>([&] { reshape(x, {-2, -2}); }), Catch::Contains("reshape"));
  CHECK_THROWS_AS(reshape(x, {-1, -1}), ShapeError);
  CHECK_THROWS_AS(reshape(x, {-4, 1}), ShapeError);
  CHECK_THROWS_AS(reshape(x, {k62, k62, 0}), ShapeError);
  CHECK(reshape(x, {2, -1}).shape() == Shape{2, 2});
  CHECK(reshape(zeros({0, 3}), {3, 0}).numel() == 0);
}

TEST_CASE("a rank-0 tensor has no axes", "[edges][shape]") {
  const Tensor s = scalar(2.0, DType::f64);
  CHECK_THAT(message_of<ShapeError>([&] { s.dim(0); }), Catch::Contains("rank 0"));
  CHECK_THROWS_AS(sum(s, {0}), ShapeError);
  CHECK_THROWS_AS(max(s, {-1}), ShapeError);
  CHECK_THROWS_AS(slice(s, 0, 0, 1), ShapeError);
  CHECK_THROWS_AS(index_select(s, 0, from_indices({0}, {1})), ShapeError);
  CHECK_THROWS_AS(concat({s, s}, 0), ShapeError);
  CHECK_THROWS_AS(squeeze(s, 0), ShapeError);
  // what a scalar does support
  CHECK(sum(s).item() == 2.0);
  CHECK(unsqueeze(s, 0).shape() == Shape{1});
  CHECK(stack({s, s}, 0).shape() == Shape{2});
  // axis bounds on a rank-2 tensor: -2..1
  const Tensor m = ones({2, 3}, DType::f64);
  CHECK(sum(m, {-2}).shape() == Shape{3});
  CHECK_THROWS_AS(sum(m, {2}), ShapeError);
  CHECK_THROWS_AS(sum(m, {-3}), ShapeError);
}

TEST_CASE("an allocation the machine cannot satisfy is a MemoryError naming the op",
          "[edges][memory]") {
#if defined(__SANITIZE_ADDRESS__)
  SUCCEED("skipped under AddressSanitizer, whose allocator aborts on requests above 1 TiB");
#else
  const std::string m = message_of<MemoryError>([] { zeros({int64_t{1} << 43}); });  // 32 TiB
  CHECK_THAT(m, Catch::Contains("zeros") && Catch::Contains("35184372088832 bytes"));
#endif
}

TEST_CASE("float32 sums keep precision on every axis", "[edges][reduce]") {
  // 2^25 ones along axis 0: a float32 accumulator stalls at 2^24 = 16777216
  const Tensor ones32 = ones({int64_t{1} << 25, 2});
  const Tensor s0 = sum(ones32, {0});
  CHECK(s0.to_vector() == std::vector<double>{33554432.0, 33554432.0});
  CHECK(sum(ones32).item() == 67108864.0);
  Generator gen(5);
  const int64_t n = 10'000'000;
  const Tensor x64 =
      rand({n}, gen, DType::f64) + 0.25;  // positive: the relative error means something
  const Tensor x32 = cast(x64, DType::f32);
  const Tensor ref = cast(x32, DType::f64);  // the same values, summed in float64
  auto rel = [](const Tensor& got32, const Tensor& want64) {
    return max(abs(cast(got32, DType::f64) - want64) / abs(want64)).item();
  };
  INFO("full sum and mean");
  CHECK(rel(sum(x32), sum(ref)) < 1e-6);
  CHECK(rel(mean(x32), mean(ref)) < 1e-6);
  for (const Shape& shape : {Shape{n / 2, 2}, Shape{2, n / 2}, Shape{100, n / 1000, 10}}) {
    const Tensor a = reshape(x32, shape), b = reshape(ref, shape);
    for (int64_t axis = 0; axis < shape.rank(); ++axis) {
      INFO("shape " << shape.str() << " axis " << axis);
      CHECK(rel(sum(a, {axis}), sum(b, {axis})) < 1e-6);
      CHECK(rel(mean(a, {axis}), mean(b, {axis})) < 1e-6);
      // a transposed (non-contiguous) input reduces the same way
      const Tensor at = a.mT(), bt = b.mT();
      CHECK(rel(sum(at, {axis}), sum(bt, {axis})) < 1e-6);
    }
  }
}

TEST_CASE("integer sums wrap like two's complement instead of overflowing", "[edges][reduce]") {
  const int64_t big = INT64_MAX;
  const Tensor x = from_indices({big, 1, 2}, {3});
  CHECK(sum(x).values<int64_t>()[0] == INT64_MIN + 2);    // wraps, no UB (checked under UBSan)
  const Tensor m = from_indices({big, 3, 1, 4}, {2, 2});  // [[big, 3], [1, 4]]
  CHECK(sum(m, {0}).values<int64_t>() == std::vector<int64_t>{INT64_MIN, 7});
  CHECK(sum(m, {1}).values<int64_t>() == std::vector<int64_t>{INT64_MIN + 2, 5});
}
