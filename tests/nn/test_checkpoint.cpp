// safetensors and checkpoints: bit-exact round trips for every dtype (0-d and empty tensors
// included), every kind of malformed file giving an IOError that names the file and the
// problem (and never a crash), atomic saves surviving a simulated crash, loading into a wrong
// module, training resumed from a checkpoint bit-identical to an uninterrupted run, and
// interoperability with the Python safetensors package (skipped when it is not installed), and
// hostile files: deep nesting, huge headers, duplicate fields, FIFOs and devices, overflowing
// shapes, stale temporary files.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "autodiff/sg.hpp"
#include "nn/checkpoint.hpp"
#include "nn/optim.hpp"

using namespace sg;
using namespace sg::nn;
namespace fs = std::filesystem;

namespace {

constexpr DType f64 = DType::f64;

// A fresh directory under the system temp dir, removed at the end of the test.
struct TempDir {
  fs::path dir;
  TempDir() {
    static int counter = 0;
    dir = fs::temp_directory_path() /
          ("sg_ckpt_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + "_" +
           std::to_string(std::random_device{}()));
    fs::create_directories(dir);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::string operator/(const std::string& name) const { return (dir / name).string(); }
};

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}
std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(n >> (8 * i));
  return s;
}
// A safetensors file from a header text and a data buffer.
std::string st_file(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || !(a.shape() == b.shape())) return false;
  const Tensor ca = a.detach().to(Device::cpu()).contiguous(),
               cb = b.detach().to(Device::cpu()).contiguous();
  return std::memcmp(ca.raw_data(), cb.raw_data(), ca.numel() * itemsize(ca.dtype())) == 0;
}
std::string hex_of(const Tensor& t) {
  const Tensor c = t.detach().contiguous();
  const auto* p = static_cast<const unsigned char*>(c.raw_data());
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (int64_t i = 0; i < c.numel() * static_cast<int64_t>(itemsize(c.dtype())); ++i)
    s += digits[p[i] >> 4], s += digits[p[i] & 15];
  return s;
}
Tensor f32_tensor(const std::vector<float>& v, const Shape& s) {
  Tensor t = empty(s, DType::f32);
  std::memcpy(t.raw_data(), v.data(), v.size() * sizeof(float));
  return t;
}
Tensor i64_tensor(const std::vector<int64_t>& v, const Shape& s) { return from_indices(v, s); }
Tensor bool_tensor(const std::vector<bool>& v, const Shape& s) {
  Tensor t = empty(s, DType::b8);
  for (std::size_t i = 0; i < v.size(); ++i) t.data<bool>()[i] = v[i];
  return t;
}

// Every dtype, with special values, 0-d and empty tensors, and a non-contiguous view.
NamedTensors sample_tensors() {
  const float inf = std::numeric_limits<float>::infinity();
  NamedTensors t;
  t["a.f32"] = f32_tensor({1.5f, -0.0f, inf, -inf, std::nanf(""), 1e-45f}, {2, 3});
  t["b.f64"] =
      from_vector({0.1, -2.5e-310, 1e308, std::numeric_limits<double>::quiet_NaN()}, {4}, f64);
  t["c.i64"] = i64_tensor(
      {std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max(), 0, -7}, {2, 2});
  t["d.bool"] = bool_tensor({true, false, false, true, true}, {5});
  t["e.scalar_f32"] = scalar(3.25);
  t["e.scalar_f64"] = scalar(-1.0 / 3.0, f64);
  t["e.scalar_i64"] = i64_tensor({-123456789012345}, {});
  t["e.scalar_bool"] = bool_tensor({true}, {});
  t["f.empty"] = zeros({0});
  t["f.empty_2x0x3_f64"] = zeros({2, 0, 3}, f64);
  t["f.empty_i64"] = zeros({0, 4}, DType::i64);
  t["f.empty_bool"] = empty({0}, DType::b8);
  t["g.transposed"] = transpose(from_vector({1, 2, 3, 4, 5, 6}, {2, 3}, f64));  // a strided view
  return t;
}

void check_equal(const NamedTensors& want, const NamedTensors& got) {
  REQUIRE(want.size() == got.size());
  for (const auto& [name, t] : want) {
    INFO(name);
    REQUIRE(got.count(name) == 1);
    CHECK(got.at(name).dtype() == t.dtype());
    CHECK(got.at(name).shape() == t.shape());
    CHECK(same_bits(got.at(name), t));
  }
}

// Asserts that loading `path` throws sg::IOError whose message names the file, contains `what`
// and stays short (values from the file are quoted only in part).
void expect_io_error(const std::string& path, const std::string& what) {
  INFO("expecting \"" << what << "\"");
  try {
    load_safetensors(path);
    FAIL("no error");
  } catch (const IOError& e) {
    const std::string msg = e.what();
    CHECK_THAT(msg, Catch::Contains(path));
    CHECK_THAT(msg, Catch::Contains(what));
    CHECK(msg.size() < 600 + path.size());
    CHECK(msg.find('\n') == std::string::npos);
  }
}

// A tiny regression model with a buffer; a Generator supplies its data.
struct Tiny : Module {
  Tensor& w;
  Tensor& b;
  Tensor& calls;
  Tiny(Generator& g, int64_t out = 4)
      : w(param("w", randn({3, out}, g) * 0.5)),
        b(param("b", zeros({out}))),
        calls(buffer("calls", zeros({}, DType::i64))) {}
  Tensor operator()(const Tensor& x) { return matmul(tanh(x), w) + b; }
};
struct TinyWide : Module {
  Tensor& w;
  Tensor& c;
  TinyWide() : w(param("w", zeros({3, 5}))), c(param("c", zeros({2}))) {}
};

// Steps [from, to) with the data drawn on the network's device.
void train(Tiny& net, Optimizer& opt, Ema& ema, Generator& data, int64_t from, int64_t to) {
  const WarmupCosine sched{.base_lr = 0.05, .min_lr = 1e-3, .warmup_steps = 5, .total_steps = 40};
  const Device d = net.w.device();
  const Tensor w_star =
      from_vector({0.5, -1, 2, 0.1, 1, 1, -0.5, 0.3, -2, 0.7, 0.2, 1.5}, {3, 4}, DType::f32, d);
  for (int64_t s = from; s < to; ++s) {
    const Tensor x = randn({8, 3}, data, DType::f32, d);
    const Tensor y = matmul(x, w_star) + randn({8, 4}, data, DType::f32, d) * 0.1;
    const Tensor loss = mean(square(net(x) - y));
    auto grads = grad(loss, net.parameters());
    clip_grad_norm(grads, 0.5);
    opt.set_lr(sched.lr(s));
    opt.step(grads);
    ema.update();
    net.calls = (net.calls + scalar(1, DType::i64, d)).detach();
  }
}

}  // namespace

TEST_CASE("checkpoint: safetensors round trip is bit-exact for every dtype including 0-d and empty",
          "[checkpoint]") {
  TempDir tmp;
  const std::string path = tmp / "all.safetensors";
  const NamedTensors want = sample_tensors();
  const Metadata md = {{"note", "round trip"}, {"unicode", "σ → ✓"}, {"empty", ""}};
  save_safetensors(path, want, md);
  const SafetensorsFile f = load_safetensors(path);
  check_equal(want, f.tensors);
  CHECK(f.metadata == md);

  // The layout: header length, a JSON header padded to 8 bytes, then exactly the data.
  const std::string bytes = read_bytes(path);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i)
    n |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  CHECK(n % 8 == 0);
  const auto header = nlohmann::json::parse(bytes.substr(8, n));
  CHECK(header["a.f32"]["dtype"] == "F32");
  CHECK(header["c.i64"]["dtype"] == "I64");
  CHECK(header["d.bool"]["dtype"] == "BOOL");
  CHECK(header["e.scalar_f64"]["shape"] == nlohmann::json::array());
  CHECK(header["f.empty_2x0x3_f64"]["shape"] == nlohmann::json({2, 0, 3}));
  CHECK(header["__metadata__"]["note"] == "round trip");
  uint64_t total = 0;
  for (const auto& [k, v] : header.items())
    if (k != "__metadata__")
      total += v["data_offsets"][1].get<uint64_t>() - v["data_offsets"][0].get<uint64_t>();
  CHECK(bytes.size() == 8 + n + total);

  SECTION("no tensors, no metadata") {
    save_safetensors(path, {});
    const SafetensorsFile e = load_safetensors(path);
    CHECK(e.tensors.empty());
    CHECK(e.metadata.empty());
  }
  SECTION("saving overwrites; saving bad names is refused") {
    save_safetensors(path, {{"x", scalar(1.0)}});
    CHECK(load_safetensors(path).tensors.size() == 1);
    CHECK_THROWS_AS(save_safetensors(path, {{"__metadata__", scalar(1.0)}}), ValueError);
    CHECK_THROWS_AS(save_safetensors(path, {{"u", Tensor()}}), ValueError);
    CHECK(load_safetensors(path).tensors.size() == 1);
    CHECK_THROWS_WITH(
        save_safetensors(tmp / "no/such/dir/x.safetensors", {}),
        Catch::Contains("no/such/dir/x.safetensors") && Catch::Contains("cannot create"));
    // no temporary files are left behind by successful or refused saves
    int entries = 0;
    for (auto& e : fs::directory_iterator(tmp.dir))
      entries += e.path().filename().string().rfind(".", 0) == 0;
    CHECK(entries == 0);
  }
}

TEST_CASE("checkpoint: malformed safetensors files give an IOError naming the file and the problem",
          "[checkpoint][errors]") {
  TempDir tmp;
  const std::string p = tmp / "bad.safetensors";
  const std::string good_header = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const std::string eight(8, '\1'), four(4, '\0');

  SECTION("missing, empty, short, header longer than the file") {
    expect_io_error(tmp / "missing.safetensors", "cannot open");
    expect_io_error(tmp.dir.string(), "is a directory");
    write_bytes(p, "");
    expect_io_error(p, "too short");
    write_bytes(p, std::string("\x10\0\0", 3));
    expect_io_error(p, "too short");
    write_bytes(p, le64(1000) + "{}");
    expect_io_error(p, "header length 1000 is larger than the 2 bytes after it");
    write_bytes(p, le64(0xffffffffffffffffull) + "{}");
    expect_io_error(p, "is larger than");
  }
  SECTION("bad JSON and bad structure") {
    write_bytes(p, st_file("{\"x\": {", ""));
    expect_io_error(p, "not valid JSON");
    write_bytes(p, st_file("", ""));
    expect_io_error(p, "not valid JSON");
    write_bytes(p, st_file("[1, 2]", ""));
    expect_io_error(p, "not an object");
    write_bytes(p, st_file(R"({"x": 3})", ""));
    expect_io_error(p, "tensor 'x': entry must be an object");
    write_bytes(
        p,
        st_file(
            R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"x":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
            eight + eight));
    expect_io_error(p, "names 'x' twice");
    write_bytes(
        p, st_file(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":1}})", eight));
    expect_io_error(p, "unexpected field 'extra'");
    write_bytes(p, st_file(R"({"__metadata__":{"a":1}})", ""));
    expect_io_error(p, "__metadata__ entry 'a' must be a string");
    write_bytes(p, st_file(R"({"__metadata__":[]})", ""));
    expect_io_error(p, "__metadata__ must be an object");
  }
  SECTION("dtypes and shapes") {
    write_bytes(p, st_file(R"({"x":{"dtype":"F8_E5M2","shape":[4],"data_offsets":[0,8]}})", eight));
    expect_io_error(p, "unsupported dtype 'F8_E5M2'");
    write_bytes(p, st_file(R"({"x":{"shape":[2],"data_offsets":[0,8]}})", eight));
    expect_io_error(p, "missing or non-string \"dtype\"");
    write_bytes(p, st_file(R"({"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", eight));
    expect_io_error(p, "must hold non-negative integers");
    write_bytes(p, st_file(R"({"x":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", eight));
    expect_io_error(p, "must hold non-negative integers");
    write_bytes(p,
                st_file(R"({"x":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}})",
                        eight.substr(4)));
    expect_io_error(p, "9 dimensions");
    write_bytes(
        p,
        st_file(R"({"x":{"dtype":"F64","shape":[4294967296,4294967296,4],"data_offsets":[0,8]}})",
                eight));
    expect_io_error(p, "too large");
    write_bytes(p, st_file(R"({"x":{"dtype":"BOOL","shape":[8],"data_offsets":[0,8]}})",
                           std::string(7, '\0') + "\2"));
    expect_io_error(p, "BOOL element 7 has byte value 2");
  }
  SECTION("offsets") {
    write_bytes(
        p, st_file(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,12]}})", eight + four));
    expect_io_error(p, "hold 12 bytes but F32 [2] needs 8");
    write_bytes(p, st_file(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", eight));
    expect_io_error(p, "begin after end");
    write_bytes(p, st_file(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", eight));
    expect_io_error(p, "\"data_offsets\" must be [begin, end]");
    write_bytes(p, st_file(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", eight));
    expect_io_error(p, "run past the 8-byte data buffer");
    write_bytes(
        p,
        st_file(
            R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
            eight + four));
    expect_io_error(p, "tensor 'y' data_offsets [4, 12] overlap tensor 'x' [0, 8]");
    write_bytes(
        p, st_file(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", eight + four));
    expect_io_error(p, "bytes [0, 4) of the data buffer belong to no tensor");
    write_bytes(p, st_file(good_header, eight + "garbage"));
    expect_io_error(p, "7 trailing bytes");
    write_bytes(p, st_file(good_header, eight));
    CHECK(load_safetensors(p).tensors.at("x").values<float>().size() ==
          2);  // the control case loads
  }
  SECTION(
      "every truncation of a valid file, and random corruption, is an IOError or a clean load") {
    save_safetensors(p, sample_tensors(), {{"k", "v"}});
    const std::string good = read_bytes(p);
    for (std::size_t len = 0; len < good.size(); ++len) {
      write_bytes(p, good.substr(0, len));
      CHECK_THROWS_AS(load_safetensors(p), IOError);
    }
    std::mt19937 rng(7);
    int io_errors = 0, loads = 0;
    for (int trial = 0; trial < 300; ++trial) {
      std::string b = good;
      for (int k = 0; k < 3; ++k) b[rng() % b.size()] = static_cast<char>(rng() & 0xff);
      write_bytes(p, b);
      try {
        load_safetensors(p);
        ++loads;
      } catch (const IOError&) {
        ++io_errors;
      }
    }
    CHECK(io_errors + loads == 300);
    CHECK(io_errors > 0);
  }
}

TEST_CASE("checkpoint: hostile headers are refused with a short IOError and never crash",
          "[checkpoint][errors][hostile]") {
  TempDir tmp;
  const std::string p = tmp / "hostile.safetensors";
  const std::string eight(8, '\1');
  auto deep = [](std::size_t n) { return std::string(n, '[') + "1" + std::string(n, ']'); };

  SECTION("shape, data_offsets or metadata nested 100k deep (200 KB)") {
    write_bytes(
        p, st_file(R"({"x":{"dtype":"F32","shape":)" + deep(100000) + R"(,"data_offsets":[0,8]}})",
                   eight));
    expect_io_error(p, "nested deeper than");
    write_bytes(
        p,
        st_file(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":)" + deep(100000) + "}}", eight));
    expect_io_error(p, "nested deeper than");
    write_bytes(p, st_file(R"({"__metadata__":{"a":)" + deep(100000) + "}}", ""));
    expect_io_error(p, "nested deeper than");
    // Shallow but wrong values are quoted only in part.
    write_bytes(p, st_file(R"({"x":{"dtype":"F32","shape":[")" + std::string(100000, 'a') +
                               R"("],"data_offsets":[0,8]}})",
                           eight));
    expect_io_error(p, "must hold non-negative integers");
    write_bytes(p, st_file(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[")" +
                               std::string(100000, 'b') + R"(",8]}})",
                           eight));
    expect_io_error(p, "\"data_offsets\" must be [begin, end]");
    write_bytes(p, st_file("{\"x\": \"" + std::string(100000, 'c'), ""));
    expect_io_error(p, "not valid JSON");
  }
  SECTION("a field given twice, at any level") {
    write_bytes(
        p,
        st_file(R"({"x":{"dtype":"F32","dtype":"F64","shape":[1],"data_offsets":[0,8]}})", eight));
    expect_io_error(p, "'x.dtype' is given twice");
    write_bytes(
        p, st_file(R"({"x":{"dtype":"F64","shape":[1],"data_offsets":[0,8],"shape":[2]}})", eight));
    expect_io_error(p, "'x.shape' is given twice");
    write_bytes(p, st_file(R"({"__metadata__":{"step":"1","step":"2"}})", ""));
    expect_io_error(p, "'__metadata__.step' is given twice");
  }
  SECTION("names with control characters are quoted escaped: the message stays one line") {
    // Found by fuzz_safetensors: a JSON "\n" in a tensor name broke the message in two.
    write_bytes(p, st_file(R"({"a\nb":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                           R"("c":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                           eight + "\1\1\1\1"));
    expect_io_error(p, "belong to no tensor (before 'c')");
    write_bytes(p,
                st_file(R"({"x\u0001y":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", eight));
    expect_io_error(p, "tensor 'x\\x01y': data_offsets [0, 4] hold 4 bytes");
    write_bytes(p, st_file(R"({"x\ny":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", eight));
    expect_io_error(p, "tensor 'x\\ny'");
  }
  SECTION("a shape whose element count overflows is refused even when an extent is 0") {
    for (const char* shape : {"[4611686018427387904,4611686018427387904,0]",
                              "[0,4611686018427387904,4611686018427387904]",
                              "[0,9223372036854775807,2]", "[0,2305843009213693952]"}) {
      INFO(shape);
      write_bytes(p, st_file(std::string(R"({"x":{"dtype":"F32","shape":)") + shape +
                                 R"(,"data_offsets":[0,0]}})",
                             ""));
      expect_io_error(p, "too large");
    }
    // Large but representable empty shapes still load.
    write_bytes(
        p, st_file(R"({"x":{"dtype":"F64","shape":[1099511627776,0],"data_offsets":[0,0]}})", ""));
    CHECK(load_safetensors(p).tensors.at("x").numel() == 0);
  }
}

TEST_CASE("checkpoint: a header with 40000 entries parses in linear time",
          "[checkpoint][hostile]") {
  // The old parser callback rescanned the parent object after every child: 23 s here (268 s on
  // another machine) for 40k entries. Linear parsing takes about 0.1 s; the bound is generous.
  TempDir tmp;
  const std::string p = tmp / "many.safetensors";
  NamedTensors many;
  for (int i = 0; i < 40000; ++i) many[std::string("t").append(std::to_string(i))] = zeros({1});
  save_safetensors(p, many);
  const auto t0 = std::chrono::steady_clock::now();
  const SafetensorsFile f = load_safetensors(p);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(f.tensors.size() == 40000);
  CHECK(seconds < 5);
}

TEST_CASE("checkpoint: FIFOs and devices and huge files are refused before they are read",
          "[checkpoint][errors][hostile]") {
  TempDir tmp;
  SECTION("a FIFO is not read (it used to block until a writer came)") {
    const std::string fifo = tmp / "fifo.safetensors";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    // So that the old code fails instead of hanging: a writer that opens and closes the FIFO.
    std::thread writer([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      const int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
      if (fd >= 0) ::close(fd);
    });
    expect_io_error(fifo, "not a regular file");
    writer.join();
    Checkpoint ck;
    CHECK_THROWS_WITH(load_checkpoint(fifo, ck), Catch::Contains("not a regular file"));
  }
  SECTION("/dev/zero is not read (it used to exhaust memory)") {
    if (::access("/dev/zero", R_OK) == 0) expect_io_error("/dev/zero", "not a regular file");
  }
  SECTION("a 1 GiB (sparse) file is checked without reading its data") {
    const std::string big = tmp / "big.safetensors";
    struct rusage before {};
    ::getrusage(RUSAGE_SELF, &before);
    // A header claiming more than the 100 MB limit...
    write_bytes(big, le64(200'000'000) + "{}");
    REQUIRE(::truncate(big.c_str(), 1LL << 30) == 0);
    expect_io_error(big, "exceeds the limit");
    // ...and a valid 8-byte tensor followed by 1 GiB of trailing zeros.
    write_bytes(big, st_file(R"({"x":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})",
                             std::string(8, '\0')));
    REQUIRE(::truncate(big.c_str(), (1LL << 30) + 64) == 0);
    expect_io_error(big, "trailing bytes");
    struct rusage after {};
    ::getrusage(RUSAGE_SELF, &after);
    CHECK(after.ru_maxrss - before.ru_maxrss < 200 * 1024);  // KiB: far below 1 GiB
  }
}

TEST_CASE("checkpoint: stale temporary files of interrupted saves are removed and live ones kept",
          "[checkpoint][atomic][hostile]") {
  TempDir tmp;
  const std::string path = tmp / "ckpt.safetensors";
  auto temps = [&] {
    std::vector<std::string> out;
    for (auto& e : fs::directory_iterator(tmp.dir))
      if (e.path().filename().string().rfind(".ckpt.safetensors.tmp-", 0) == 0)
        out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  };
  // Left by killed processes (ours or an older version's): nobody holds them.
  write_bytes(tmp / ".ckpt.safetensors.tmp-123-0", "partial");
  write_bytes(tmp / ".ckpt.safetensors.tmp-4194304-17", "");
  // Not ours: another file's temporaries and names that merely look alike.
  write_bytes(tmp / ".other.safetensors.tmp-123-0", "x");
  write_bytes(tmp / ".ckpt.safetensors.tmp-notes", "x");
  write_bytes(tmp / "ckpt.safetensors.tmp-1-1", "x");
  // A save in progress elsewhere: its writer holds a lock on it.
  const std::string live = tmp / ".ckpt.safetensors.tmp-77-3";
  write_bytes(live, "in progress");
  const int live_fd = ::open(live.c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(live_fd >= 0);
  REQUIRE(::flock(live_fd, LOCK_EX | LOCK_NB) == 0);
  REQUIRE(temps().size() == 4);  // with the look-alike

  SECTION("on save") { save_safetensors(path, {{"w", from_vector({1, 2}, {2}, f64)}}); }
  SECTION("on load") {
    save_safetensors(tmp / "elsewhere.safetensors", {{"w", from_vector({1, 2}, {2}, f64)}});
    fs::copy_file(tmp / "elsewhere.safetensors", path);
    CHECK(load_safetensors(path).tensors.size() == 1);
  }
  SECTION("a simulated crash leaves one, the next save removes it") {
    testing::crash_next_save_after(10);
    CHECK_THROWS_AS(save_safetensors(path, {{"w", zeros({2})}}), testing::SimulatedCrash);
    CHECK(temps().size() == 3);  // the stale ones went before the save began
    save_checkpoint(path, {.step = 3});
  }
  CHECK(temps() ==
        std::vector<std::string>{".ckpt.safetensors.tmp-77-3", ".ckpt.safetensors.tmp-notes"});
  CHECK(fs::exists(tmp / ".other.safetensors.tmp-123-0"));
  CHECK(fs::exists(tmp / "ckpt.safetensors.tmp-1-1"));
  ::close(live_fd);
  // Once its writer is gone, the next save removes it too.
  save_safetensors(path, {{"w", zeros({2})}});
  CHECK(temps() == std::vector<std::string>{".ckpt.safetensors.tmp-notes"});
}

TEST_CASE("checkpoint: a config that is not strict JSON is refused on save",
          "[checkpoint][errors][hostile]") {
  TempDir tmp;
  const std::string path = tmp / "ckpt.safetensors";
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  try {
    save_checkpoint(path, {.step = 1, .config = deep});
    FAIL("no error");
  } catch (const ValueError& e) {
    CHECK_THAT(e.what(), Catch::Contains("nested deeper than"));
    CHECK(std::string(e.what()).size() < 600);
  }
  CHECK_THROWS_WITH(save_checkpoint(path, {.step = 1, .config = R"({"a": 1, "a": 2})"}),
                    Catch::Contains("'a' is given twice"));
  CHECK_FALSE(fs::exists(path));
}

TEST_CASE("checkpoint: a crash in the middle of a save leaves the previous file intact",
          "[checkpoint][atomic]") {
  TempDir tmp;
  const std::string path = tmp / "ckpt.safetensors";
  const NamedTensors v1 = {{"w", from_vector({1, 2, 3}, {3}, f64)}};
  save_safetensors(path, v1, {{"version", "1"}});
  const std::string before = read_bytes(path);

  NamedTensors v2 = sample_tensors();
  testing::crash_next_save_after(before.size() / 2 + 40);
  CHECK_THROWS_AS(save_safetensors(path, v2, {{"version", "2"}}), testing::SimulatedCrash);
  // The half-written temporary file is there, the target is byte-for-byte the old one.
  int temps = 0;
  for (auto& e : fs::directory_iterator(tmp.dir))
    if (e.path().filename().string().rfind(".ckpt.safetensors.tmp-", 0) == 0) {
      ++temps;
      CHECK(fs::file_size(e.path()) == before.size() / 2 + 40);
    }
  CHECK(temps == 1);
  CHECK(read_bytes(path) == before);
  const SafetensorsFile f = load_safetensors(path);
  check_equal(v1, f.tensors);
  CHECK(f.metadata.at("version") == "1");

  // The hook is one-shot: the next save goes through and replaces the file.
  save_safetensors(path, v2, {{"version", "2"}});
  check_equal(v2, load_safetensors(path).tensors);

  SECTION("the same through save_checkpoint") {
    Generator g(3);
    Tiny net(g);
    Adam opt(net.named_parameters());
    save_checkpoint(path, {.model = &net, .optimizer = &opt, .step = 1});
    const std::string ck1 = read_bytes(path);
    testing::crash_next_save_after(8);
    CHECK_THROWS_AS(save_checkpoint(path, {.model = &net, .step = 2}), testing::SimulatedCrash);
    CHECK(read_bytes(path) == ck1);
    Checkpoint ck{.model = &net};
    load_checkpoint(path, ck);
    CHECK(ck.step == 1);
  }
}

TEST_CASE("checkpoint: bundles model and optimizer and EMA and generator and step and config",
          "[checkpoint]") {
  TempDir tmp;
  const std::string path = tmp / "run.safetensors";
  Generator init(1), data(7);
  Tiny net(init);
  Adam opt(net.named_parameters(), {.lr = 0.01});
  Ema ema(net, 0.9);
  train(net, opt, ema, data, 0, 3);
  const std::string config = R"({"model": "tiny", "lr": 0.01, "sigma": [0.01, 50]})";
  save_checkpoint(path, {.model = &net,
                         .optimizer = &opt,
                         .ema = &ema,
                         .generator = &data,
                         .step = 3,
                         .config = config});

  const SafetensorsFile f = load_safetensors(path);
  for (const char* k :
       {"model.w", "model.b", "model.calls", "optim.step", "optim.lr", "optim.adam.m.w",
        "optim.adam.v.b", "optim.adam.step.w", "ema.num_updates", "ema.shadow.w", "ema.shadow.b"})
    CHECK(f.tensors.count(k) == 1);
  CHECK(f.metadata.at("step") == "3");
  CHECK(f.metadata.at("config") == config);
  CHECK(f.metadata.at("rng.seed") == "7");
  CHECK(f.metadata.at("rng.offset") == std::to_string(data.offset()));

  SECTION("restores into other objects") {
    Generator other(99), data2(5);
    Tiny net2(other);
    Adam opt2(net2.named_parameters());
    Ema ema2(net2, 0.9);
    Checkpoint ck{.model = &net2, .optimizer = &opt2, .ema = &ema2, .generator = &data2};
    load_checkpoint(path, ck);
    CHECK(ck.step == 3);
    CHECK(ck.config == config);
    CHECK(data2.seed() == 7);
    CHECK(data2.offset() == data.offset());
    CHECK(same_bits(net2.w, net.w));
    CHECK(net2.w.requires_grad());
    CHECK(net2.calls.values<int64_t>() == std::vector<int64_t>{3});
    CHECK(opt2.steps() == 3);
    CHECK(opt2.lr() == opt.lr());
    CHECK(same_bits(ema2.shadow().at("w"), ema.shadow().at("w")));
    CHECK(ema2.num_updates() == 3);
  }
  SECTION("only the model") {
    Generator other(99);
    Tiny net2(other);
    Checkpoint ck{.model = &net2};
    load_checkpoint(path, ck);
    CHECK(same_bits(net2.b, net.b));
  }
  SECTION("loading into a different module lists every mismatch and changes nothing") {
    TinyWide wide;
    Adam opt_w(wide.named_parameters());
    Checkpoint ck{.model = &wide, .optimizer = &opt_w};
    try {
      load_checkpoint(path, ck);
      FAIL("no error");
    } catch (const ValueError& e) {
      const std::string msg = e.what();
      CHECK_THAT(msg, Catch::Contains(path));
      // the optimizer is checked first: its state names a parameter the module lacks
      CHECK_THAT(msg, Catch::Contains("optim.adam.m.w expects float32[3,5], got float32[3,4]"));
      CHECK_THAT(msg, Catch::Contains("unexpected: optim.adam.m.b"));
    }
    CHECK(opt_w.steps() == 0);
    Checkpoint ck_model{.model = &wide};
    try {
      load_checkpoint(path, ck_model);
      FAIL("no error");
    } catch (const ValueError& e) {
      const std::string msg = e.what();
      CHECK_THAT(msg, Catch::Contains("mismatch: w expects float32[3,5], got float32[3,4]"));
      CHECK_THAT(msg, Catch::Contains("missing: c"));
      CHECK_THAT(msg, Catch::Contains("unexpected: b"));
      CHECK_THAT(msg, Catch::Contains("unexpected: calls"));
    }
    CHECK(wide.w.to_vector() == std::vector<double>(15, 0.0));
    Tiny f64net(init);
    f64net.to(f64);
    Checkpoint ck64{.model = &f64net};
    CHECK_THROWS_WITH(load_checkpoint(path, ck64),
                      Catch::Contains("mismatch: w expects float64[3,4], got float32[3,4]"));
  }
  SECTION("parts the file does not hold, wrong optimizer, not a checkpoint, bad config") {
    save_checkpoint(path, {.model = &net, .step = 4});
    Adam opt2(net.named_parameters());
    Checkpoint ck{.model = &net, .optimizer = &opt2};
    CHECK_THROWS_WITH(load_checkpoint(path, ck),
                      Catch::Contains("holds no optimizer state (sections: model)"));
    Generator g;
    Checkpoint ckg{.generator = &g};
    CHECK_THROWS_AS(load_checkpoint(path, ckg), ValueError);

    save_checkpoint(path, {.model = &net, .optimizer = &opt});
    SGD sgd(net.named_parameters());
    Checkpoint cks{.optimizer = &sgd};
    CHECK_THROWS_WITH(load_checkpoint(path, cks),
                      Catch::Contains("holds Adam state, the optimizer is SGD"));

    save_safetensors(path, net.state_dict());
    Checkpoint ckm{.model = &net};
    CHECK_THROWS_AS(load_checkpoint(path, ckm), IOError);
    CHECK_THROWS_WITH(load_checkpoint(path, ckm), Catch::Contains("not a scoregrad checkpoint"));

    CHECK_THROWS_AS(save_checkpoint(path, {.model = &net, .config = "{not json"}), ValueError);
  }
}

TEST_CASE("checkpoint: the extra section round-trips and is replaced on load", "[checkpoint]") {
  TempDir tmp;
  const std::string path = tmp / "extra.safetensors";
  Generator init(1);
  Tiny net(init);
  const Tensor loader = from_indices({3, 128, 42, 9}, {4});
  save_checkpoint(path, {.model = &net, .step = 5, .extra = {{"loader", loader}}});
  const SafetensorsFile f = load_safetensors(path);
  CHECK(f.tensors.count("extra.loader") == 1);
  CHECK(f.metadata.at("sections") == "model,extra");
  Checkpoint ck{.model = &net, .extra = {{"stale", loader}}};
  load_checkpoint(path, ck);
  REQUIRE(ck.extra.size() == 1);
  CHECK(ck.extra.at("loader").to_vector() == loader.to_vector());
  // A checkpoint without the section gives an empty map.
  save_checkpoint(path, {.model = &net, .step = 6});
  load_checkpoint(path, ck);
  CHECK(ck.extra.empty());
}

TEST_CASE("checkpoint: training resumed at step k is bit-identical to an uninterrupted run",
          "[checkpoint][resume]") {
  TempDir tmp;
  const std::string path = tmp / "resume.safetensors";
  constexpr int64_t kTotal = 30, kStop = 12;

  Generator init_a(1), data_a(7);
  Tiny a(init_a);
  Adam opt_a(a.named_parameters(), {.lr = 0.05, .weight_decay = 1e-3});
  Ema ema_a(a, 0.8);
  train(a, opt_a, ema_a, data_a, 0, kTotal);

  {  // the interrupted run: k steps, then save (the process "ends" here)
    Generator init_b(1), data_b(7);
    Tiny b(init_b);
    Adam opt_b(b.named_parameters(), {.lr = 0.05, .weight_decay = 1e-3});
    Ema ema_b(b, 0.8);
    train(b, opt_b, ema_b, data_b, 0, kStop);
    save_checkpoint(path, {.model = &b,
                           .optimizer = &opt_b,
                           .ema = &ema_b,
                           .generator = &data_b,
                           .step = kStop,
                           .config = R"({"total": 30})"});
  }
  // A new "process": differently initialised objects, everything restored from the file.
  Generator init_c(12345), data_c(0);
  Tiny c(init_c);
  Adam opt_c(c.named_parameters(), {.lr = 0.05, .weight_decay = 1e-3});
  Ema ema_c(c, 0.8);
  CHECK_FALSE(same_bits(c.w, a.w));
  Checkpoint ck{.model = &c, .optimizer = &opt_c, .ema = &ema_c, .generator = &data_c};
  load_checkpoint(path, ck);
  REQUIRE(ck.step == kStop);
  train(c, opt_c, ema_c, data_c, ck.step, kTotal);

  CHECK(same_bits(c.w, a.w));
  CHECK(same_bits(c.b, a.b));
  CHECK(same_bits(c.calls, a.calls));
  CHECK(same_bits(ema_c.shadow().at("w"), ema_a.shadow().at("w")));
  CHECK(same_bits(ema_c.shadow().at("b"), ema_a.shadow().at("b")));
  const NamedTensors sa = opt_a.state(), sc = opt_c.state();
  REQUIRE(sa.size() == sc.size());
  for (const auto& [k, v] : sa) {
    INFO(k);
    CHECK(same_bits(sc.at(k), v));
  }
  CHECK(data_c.offset() == data_a.offset());
  // and training did move the parameters (the comparison is not vacuous)
  Generator init_d(1);
  Tiny d(init_d);
  CHECK_FALSE(same_bits(d.w, a.w));
}

TEST_CASE("checkpoint: saved on one device and loaded on another, bit-identical; no device bytes",
          "[checkpoint][resume][device]") {
  TempDir tmp;
  const Device standin = Device::standin();
  constexpr int64_t kTotal = 20, kStop = 8;
  // A run on `d` for steps [0, to), or restored from `path` and continued to kTotal.
  struct Run {
    Generator init{1}, data{7};
    Tiny net{init};
    std::unique_ptr<Adam> opt;
    std::unique_ptr<Ema> ema;
    explicit Run(Device d) {
      net.to(d);
      opt = std::make_unique<Adam>(net.named_parameters(),
                                   AdamOptions{.lr = 0.05, .weight_decay = 1e-3});
      ema = std::make_unique<Ema>(net, 0.8);
    }
    Checkpoint checkpoint(int64_t step) {
      return {.model = &net,
              .optimizer = opt.get(),
              .ema = ema.get(),
              .generator = &data,
              .step = step,
              .config = "{}"};
    }
  };
  Run whole(Device::cpu());
  train(whole.net, *whole.opt, *whole.ema, whole.data, 0, kTotal);

  const std::string from_dev = tmp / "standin.safetensors", from_cpu = tmp / "cpu.safetensors";
  for (const auto& [d, path] : {std::pair{standin, from_dev}, std::pair{Device::cpu(), from_cpu}}) {
    Run part(d);
    train(part.net, *part.opt, *part.ema, part.data, 0, kStop);
    CHECK(part.net.w.device() == d);
    save_checkpoint(path, part.checkpoint(kStop));
  }
  // Both devices wrote the same bytes: nothing in a checkpoint depends on the device.
  CHECK(read_bytes(from_dev) == read_bytes(from_cpu));
  CHECK(read_bytes(from_dev).find("standin") == std::string::npos);

  // standin -> cpu and cpu -> standin, each continued to the end on its new device.
  for (const auto& [d, path] : {std::pair{Device::cpu(), from_dev}, std::pair{standin, from_cpu}}) {
    INFO("loaded on " << device_name(d) << " from " << path);
    Run resumed(d);
    resumed.data.set_state(99, 0);
    Checkpoint ck = resumed.checkpoint(0);
    load_checkpoint(path, ck);
    REQUIRE(ck.step == kStop);
    for (const auto& [name, p] : resumed.net.named_parameters()) CHECK(p->device() == d);
    train(resumed.net, *resumed.opt, *resumed.ema, resumed.data, kStop, kTotal);
    CHECK(resumed.net.w.device() == d);
    for (const auto& [name, p] : whole.net.state_dict()) {
      INFO(name);
      CHECK(same_bits(resumed.net.state_dict().at(name), p));
    }
    for (const auto& [k, v] : whole.opt->state()) {
      INFO(k);
      CHECK(same_bits(resumed.opt->state().at(k), v));
    }
    for (const auto& [k, v] : whole.ema->state()) {
      INFO(k);
      CHECK(same_bits(resumed.ema->state().at(k), v));
      if (v.dtype() != DType::i64) CHECK(resumed.ema->state().at(k).device() == d);
    }
  }
}

TEST_CASE("checkpoint: files interoperate with Python's safetensors (skipped without it)",
          "[checkpoint][python]") {
  if (std::system("python3 -c \"import safetensors, numpy\" > /dev/null 2>&1") != 0) {
    WARN(
        "skipped: python3 with the safetensors and numpy packages is not available "
        "(pip install safetensors==0.4.5 numpy)");
    return;
  }
  TempDir tmp;
  const std::string script = tmp / "interop.py";
  write_bytes(script, R"PY(
import json, sys
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

def describe(path):
    out = {"tensors": {}}
    with safe_open(path, framework="np") as f:
        out["metadata"] = f.metadata() or {}
        for k in f.keys():
            a = f.get_tensor(k)
            out["tensors"][k] = {"dtype": str(a.dtype), "shape": list(a.shape),
                                 "hex": np.ascontiguousarray(a).tobytes().hex()}
    return out

mode, path, out = sys.argv[1:4]
if mode == "write":
    save_file({
        "f32": np.array([[1.5, -0.0, np.inf], [np.nan, 1e-45, -3.25]], dtype=np.float32),
        "f64": np.linspace(-1.0, 1.0, 7),
        "i64": np.array([-(2**63), 2**63 - 1, 0, 42], dtype=np.int64),
        "bool": np.array([[True, False], [False, True]]),
        "scalar": np.array(2.5, dtype=np.float64),
        "scalar_i64": np.array(-5, dtype=np.int64),
        "empty": np.zeros((2, 0, 3), dtype=np.float32),
        "column": np.arange(12, dtype=np.float32).reshape(3, 4).T.copy(),
    }, path, metadata={"source": "python", "unicode": "\u03c3 \u2713"})
with open(out, "w") as f:
    json.dump(describe(path), f)
)PY");
  auto run = [&](const std::string& mode, const std::string& file, const std::string& out) {
    const std::string cmd = "python3 '" + script + "' " + mode + " '" + file + "' '" + out +
                            "' > '" + out + ".log' 2>&1";
    const int rc = std::system(cmd.c_str());
    INFO(read_bytes(out + ".log"));
    REQUIRE(rc == 0);
    return nlohmann::json::parse(read_bytes(out));
  };
  auto dtype_str = [](DType t) {
    return t == DType::f32   ? "float32"
           : t == DType::f64 ? "float64"
           : t == DType::i64 ? "int64"
                             : "bool";
  };
  auto check_against = [&](const nlohmann::json& py, const NamedTensors& ours) {
    REQUIRE(py["tensors"].size() == ours.size());
    for (const auto& [name, t] : ours) {
      INFO(name);
      REQUIRE(py["tensors"].contains(name));
      const auto& d = py["tensors"][name];
      CHECK(d["dtype"] == dtype_str(t.dtype()));
      std::vector<int64_t> shape(t.shape().begin(), t.shape().end());
      CHECK(d["shape"].get<std::vector<int64_t>>() == shape);
      CHECK(d["hex"].get<std::string>() == hex_of(t));
    }
  };

  SECTION("scoregrad writes, Python reads the same bytes") {
    const std::string file = tmp / "from_cpp.safetensors";
    const NamedTensors ours = sample_tensors();
    save_safetensors(file, ours, {{"source", "scoregrad"}, {"unicode", "σ ✓"}});
    const auto py = run("read", file, tmp / "read.json");
    check_against(py, ours);
    CHECK(py["metadata"]["source"] == "scoregrad");
    CHECK(py["metadata"]["unicode"] == "σ ✓");
  }
  SECTION("Python writes, scoregrad reads the same bytes") {
    const std::string file = tmp / "from_py.safetensors";
    const auto py = run("write", file, tmp / "write.json");
    const SafetensorsFile f = load_safetensors(file);
    check_against(py, f.tensors);
    CHECK(f.metadata.at("source") == "python");
    CHECK(f.metadata.at("unicode") == "σ ✓");
    CHECK(f.tensors.at("scalar").item() == 2.5);
    CHECK(f.tensors.at("scalar").rank() == 0);
    CHECK(f.tensors.at("i64").values<int64_t>()[0] == std::numeric_limits<int64_t>::min());
    CHECK(f.tensors.at("column").values<float>() ==
          std::vector<float>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11});
  }
}
