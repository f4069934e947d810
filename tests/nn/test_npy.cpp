// .npy/.npz reading against files NumPy 2.2.6 wrote (tests/data/npy, made by make_fixtures.py):
// every element type and layout the fixtures hold, both zip methods, masked tables from them,
// and corrupted copies (truncated, padded, bad magic, bad CRC, bad header) as IOErrors.
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <sstream>

#include "nn/npy.hpp"
#include "nn/tables.hpp"
#include "tests/support/expect.hpp"

using namespace sg;
using namespace sg::nn;

namespace {
std::string fixture(const std::string& name) {
  return std::string(SG_TEST_DATA_DIR) + "/npy/" + name;
}
std::string bytes_of(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}
std::string write_temp(const std::string& name, const std::string& bytes) {
  const std::string path = "/tmp/sg_test_npy_" + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}
// The fixtures' values with NaN replaced by 0, row-major [4, 3].
const std::vector<double> kFilled = {1.5, 0, -2, 4, 5.25, 0, 0, -7.5, 8, 9, 10, 11};
const std::vector<double> kMask = {1, 0, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1};
}  // namespace

TEST_CASE("npy: NumPy's element types, byte orders and Fortran order", "[npy]") {
  const NpyArray nan = load_npy(fixture("values_nan.npy"));
  CHECK(nan.shape == std::vector<int64_t>{4, 3});
  CHECK(nan.descr == "<f8");
  CHECK(std::isnan(nan.values[1]));
  CHECK(nan.values[4] == 5.25);
  CHECK(load_npy(fixture("values_f32_fortran.npy")).values == kFilled);
  const NpyArray big = load_npy(fixture("values_big_endian.npy"));
  CHECK(big.descr == ">f8");
  CHECK(big.values == kFilled);
  CHECK(load_npy(fixture("mask.npy")).values == kMask);
  CHECK(load_npy(fixture("ints.npy")).values == std::vector<double>{-3, 0, 7, -1099511627776.0});
  const NpyArray u = load_npy(fixture("uint16.npy"));
  CHECK(u.shape == std::vector<int64_t>{1, 2});
  CHECK(u.values == std::vector<double>{1, 65535});
  const Tensor t = to_tensor(u, DType::f32, Device::standin());
  CHECK(t.shape() == Shape{1, 2});
  CHECK(t.device() == Device::standin());
}

TEST_CASE("npz: stored and deflated archives, CRC-checked", "[npy]") {
  for (const char* name : {"series.npz", "series_compressed.npz"}) {
    const auto arrays = load_npz(fixture(name));
    REQUIRE(arrays.size() == 2);
    CHECK(arrays.at("values").values == kFilled);
    CHECK(arrays.at("mask").values == kMask);
    const MaskedTable table = load_npz_table(fixture(name));
    CHECK(table.values.to_vector() == kFilled);
    CHECK(table.observed.to_vector() == kMask);
    CHECK(table.columns == std::vector<std::string>{"0", "1", "2"});
  }
  // One flipped byte inside the compressed stream or the stored data fails the read.
  std::string stored = bytes_of(fixture("series.npz"));
  const size_t at = stored.find("\x93NUMPY") + 200;
  stored[at] = static_cast<char>(stored[at] ^ 0x5a);
  const std::string m =
      test::message_of<IOError>([&] { (void)load_npz(write_temp("flipped.npz", stored)); });
  CHECK((m.find("CRC-32") != std::string::npos || m.find("header") != std::string::npos));
  std::string squeezed = bytes_of(fixture("series_compressed.npz"));
  CHECK_THROWS_AS(load_npz(write_temp("truncated.npz", squeezed.substr(0, squeezed.size() / 2))),
                  IOError);
  CHECK_THROWS_AS(load_npz(write_temp("notzip.npz", "hello")), IOError);
  const std::string missing = test::message_of<IOError>(
      [&] { (void)load_npz_table(fixture("series.npz"), "values", "observed"); });
  CHECK(missing.find("no member 'observed' (members: mask, values)") != std::string::npos);
}

TEST_CASE("npy tables: NaN gaps, masks and their errors", "[npy][tables]") {
  const MaskedTable gaps = load_npy_table(fixture("values_nan.npy"));
  CHECK(gaps.values.to_vector() == kFilled);
  CHECK(gaps.observed.to_vector() == kMask);
  const MaskedTable masked = load_npy_table(fixture("values_big_endian.npy"), fixture("mask.npy"));
  CHECK(masked.observed.to_vector() == kMask);
  check_table(masked);
  // NaN where the mask says observed names the row and column.
  const std::string m = test::message_of<IOError>(
      [&] { (void)load_npy_table(fixture("values_nan.npy"), fixture("mask_all.npy")); });
  CHECK(m.find("row 0, column 1") != std::string::npos);
  CHECK(m.find("where the mask says observed") != std::string::npos);
  const std::string shape = test::message_of<IOError>(
      [&] { (void)load_npy_table(fixture("values_nan.npy"), fixture("uint16.npy")); });
  CHECK(shape.find("[1,2] vs [4,3]") != std::string::npos);
}

TEST_CASE("npy: malformed files are IOErrors naming the file", "[npy]") {
  const std::string good = bytes_of(fixture("ints.npy"));
  auto error_of = [](const std::string& name, const std::string& bytes) {
    return test::message_of<IOError>([&] { (void)load_npy(write_temp(name, bytes)); });
  };
  CHECK(error_of("magic.npy", "NUMPY" + good).find("not a .npy file") != std::string::npos);
  CHECK(error_of("short.npy", good.substr(0, good.size() - 1)).find("data bytes") !=
        std::string::npos);
  CHECK(error_of("long.npy", good + "x").find("data bytes") != std::string::npos);
  CHECK(error_of("header.npy", good.substr(0, 12)).find("sg_test_npy_header.npy") !=
        std::string::npos);
  std::string f16 = good;
  f16.replace(f16.find("<i8"), 3, "<f2");
  CHECK(error_of("f16.npy", f16).find("unsupported element type '<f2'") != std::string::npos);
  std::string key = good;
  key.replace(key.find("descr"), 5, "dtype");
  CHECK(error_of("key.npy", key).find("unknown key 'dtype'") != std::string::npos);
  CHECK_THROWS_AS(load_npy("/nonexistent/x.npy"), IOError);
}

TEST_CASE("npz: a deflated member claiming more than deflate can expand is refused", "[npy]") {
  // Rewrite the central directory's uncompressed size of the first member to 4,000,000,000.
  std::string zip = bytes_of(fixture("series_compressed.npz"));
  const size_t dir = zip.find(std::string("PK\x01\x02", 4));
  REQUIRE(dir != std::string::npos);
  const uint32_t claimed = 4000000000u;
  for (int i = 0; i < 4; ++i) zip[dir + 24 + i] = static_cast<char>((claimed >> (8 * i)) & 0xff);
  const std::string m =
      test::message_of<IOError>([&] { (void)load_npz(write_temp("bomb.npz", zip)); });
  CHECK(m.find("claims 4000000000 bytes") != std::string::npos);
}
