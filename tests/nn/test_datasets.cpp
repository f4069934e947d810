// Datasets: the digits file and its loader's validation, the toy densities' geometry and
// reproducibility, DataLoader epochs, order and exact resumption, dequantization, the logit
// transform's inverse and log-determinant, and bits per dimension on known answers.
#include <array>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <numbers>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

#include "autodiff/sg.hpp"
#include "nn/datasets.hpp"

using namespace sg;
using namespace sg::nn;

namespace {

constexpr double kPi = std::numbers::pi;

struct Pts {
  std::vector<double> x, y;
  size_t size() const { return x.size(); }
};
Pts pts(const Tensor& t) {
  const std::vector<double> v = t.to_vector();
  Pts p;
  for (size_t i = 0; i + 1 < v.size(); i += 2) {
    p.x.push_back(v[i]);
    p.y.push_back(v[i + 1]);
  }
  return p;
}

// |count - n p| within 5 binomial standard deviations.
void check_count(int64_t count, int64_t n, double p) {
  const double sd = std::sqrt(n * p * (1 - p));
  INFO("count " << count << " of " << n << ", expected " << n * p << " +- " << sd);
  CHECK(std::abs(count - n * p) <= 5 * sd);
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}
double stddev(const std::vector<double>& v) {
  const double m = mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

// Squared distance from (px, py) to the curve c(t), t on a grid of [t0, t1].
template <class C>
double dist2_to_curve(double px, double py, double t0, double t1, C c) {
  constexpr int kGrid = 3000;
  double best = INFINITY;
  for (int i = 0; i <= kGrid; ++i) {
    const auto [cx, cy] = c(t0 + (t1 - t0) * i / kGrid);
    best = std::min(best, (px - cx) * (px - cx) + (py - cy) * (py - cy));
  }
  return best;
}

// A scratch file, removed at scope exit.
struct TempFile {
  std::filesystem::path path;
  explicit TempFile(const std::string& name, const std::string& text)
      : path(std::filesystem::temp_directory_path() /
             ("sg_datasets_" + std::to_string(::getpid()) + "_" + name)) {
    std::ofstream(path, std::ios::binary) << text;
  }
  ~TempFile() { std::filesystem::remove(path); }
};
// One CSV row: the fields joined by commas, then `eol`.
std::string join(const std::vector<std::string>& fields, const char* eol = "\n") {
  std::string s;
  for (const std::string& f : fields) s.append(s.empty() ? "" : ",").append(f);
  return s.append(eol);
}
std::vector<std::string> fields(int fill, int label, int pixels = 64) {
  std::vector<std::string> f(static_cast<size_t>(pixels), std::to_string(fill));
  f.push_back(std::to_string(label));
  return f;
}
std::string row(int fill, int label, int pixels = 64) { return join(fields(fill, label, pixels)); }

}  // namespace

// ---- digits ---------------------------------------------------------------------------------

TEST_CASE("digits: 1797 images of 64 pixels in 0..16 with the known label counts", "[datasets]") {
  const Digits d = load_digits();
  REQUIRE(d.images.shape() == Shape{1797, 1, 8, 8});
  REQUIRE(d.images.dtype() == DType::f32);
  REQUIRE(d.labels.shape() == Shape{1797});
  REQUIRE(d.labels.dtype() == DType::i64);

  const std::vector<double> px = d.images.to_vector();
  double total = 0, lo = INFINITY, hi = -INFINITY;
  bool integral = true;
  for (double v : px) {
    total += v;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
    integral = integral && v == std::round(v);
  }
  CHECK(integral);
  CHECK(lo == 0);
  CHECK(hi == 16);
  CHECK(total == 561718);  // sum of every pixel of the file (zcat | awk)

  std::array<int64_t, 10> counts{};
  for (int64_t l : d.labels.values<int64_t>()) {
    REQUIRE(l >= 0);
    REQUIRE(l <= 9);
    ++counts[static_cast<size_t>(l)];
  }
  // sklearn's load_digits (the UCI optdigits test set): class counts 0..9.
  CHECK(counts == std::array<int64_t, 10>{178, 182, 177, 183, 181, 182, 181, 179, 174, 180});

  // First and last rows of the file, in row-major 8x8 order.
  const std::vector<double> first(px.begin(), px.begin() + 16);
  CHECK(first == std::vector<double>{0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0});
  CHECK(d.labels.values<int64_t>().front() == 0);
  const std::vector<double> last(px.end() - 8, px.end());
  CHECK(last == std::vector<double>{0, 1, 8, 12, 14, 12, 1, 0});
  CHECK(d.labels.values<int64_t>().back() == 8);

  const Digits d64 = load_digits(data_path("digits.csv.gz"), DType::f64);
  CHECK(d64.images.dtype() == DType::f64);
  CHECK(d64.images.to_vector() == px);
}

TEST_CASE("digits: the loader reads plain CSV and names the offending line", "[datasets]") {
  SECTION("valid plain text, CRLF line ends") {
    TempFile f("ok.csv", row(3, 7) + row(16, 0));
    const Digits d = load_digits(f.path.string());
    CHECK(d.images.shape() == Shape{2, 1, 8, 8});
    CHECK(d.labels.values<int64_t>() == std::vector<int64_t>{7, 0});
    CHECK(sum(d.images).item() == 64 * 19);
    const std::string crlf = join(fields(1, 2), "\r\n");
    TempFile g("crlf.csv", crlf + crlf);
    CHECK(load_digits(g.path.string()).images.shape() == Shape{2, 1, 8, 8});
  }
  auto fails_with = [](const std::string& text, const std::string& what) {
    TempFile f("bad.csv", text);
    INFO(what);
    CHECK_THROWS_AS(load_digits(f.path.string()), IOError);
    CHECK_THROWS_WITH(load_digits(f.path.string()), Catch::Contains(what));
  };
  fails_with(row(1, 1) + row(1, 1, 63), "line 2: 64 values, expected 65");
  fails_with(row(1, 1) + row(1, 1) + row(17, 1), "line 3: pixel 0 is 17, outside 0..16");
  fails_with(row(-1, 1), "line 1: pixel 0 is -1");
  fails_with(row(1, 10), "line 1: label is 10, outside 0..9");
  fails_with(row(1, 1) + "\n" + row(1, 1), "line 2: empty line");
  std::vector<std::string> bad = fields(1, 1);
  bad[0] = "a1";
  fails_with(join(bad), "line 1: value 1 is 'a1', not an integer");
  bad[0] = "1";
  bad[1] = "2.5";
  fails_with(join(bad), "line 1: value 2 is '2.5'");
  fails_with("", "no rows");
  {  // a gzip stream cut in half
    std::ifstream in(data_path("digits.csv.gz"), std::ios::binary);
    const std::string gz((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    REQUIRE(gz.size() > 1000);
    fails_with(gz.substr(0, gz.size() / 2), "bad.csv: unexpected end of file");
  }
  CHECK_THROWS_WITH(load_digits("/nonexistent/digits.csv.gz"),
                    Catch::Contains("cannot open /nonexistent"));
  CHECK_THROWS_AS(load_digits(data_path("digits.csv.gz"), DType::i64), DTypeError);
  CHECK(data_path("digits.csv.gz") == data_dir() + "/digits.csv.gz");
}

// ---- toy densities --------------------------------------------------------------------------

TEST_CASE("toy densities: shape, dtype and reproducibility for a seed", "[datasets]") {
  REQUIRE(toy_names().size() == 8);
  for (const std::string& name : toy_names()) {
    INFO(name);
    Generator g1(7), g2(7), g3(8);
    const Tensor a = sample_toy(name, 333, g1);
    const Tensor b = sample_toy(name, 333, g2);
    const Tensor c = sample_toy(name, 333, g3);
    CHECK(a.shape() == Shape{333, 2});
    CHECK(a.dtype() == DType::f32);
    CHECK(a.to_vector() == b.to_vector());
    CHECK(a.to_vector() != c.to_vector());
    CHECK(g1.offset() > 0);
    CHECK(g1.offset() == g2.offset());
    // The next draw continues the stream: a second batch differs from the first.
    CHECK(sample_toy(name, 333, g1).to_vector() != a.to_vector());
    // float64 gives the same points (computed in float64 and rounded for float32).
    Generator g4(7);
    const Tensor d = sample_toy(name, 333, g4, DType::f64);
    CHECK(d.dtype() == DType::f64);
    CHECK(max(abs(cast(d, DType::f32) - a)).item() == 0);
    bool finite = true;
    for (double v : d.to_vector()) finite = finite && std::isfinite(v);
    CHECK(finite);
    Generator g5(0);
    CHECK(sample_toy(name, 0, g5).shape() == Shape{0, 2});
  }
  Generator g(0);
  CHECK_THROWS_AS(sample_toy("spiral", 10, g), ValueError);
  CHECK_THROWS_WITH(
      sample_toy("spiral", 10, g),
      Catch::Contains("'spiral'") && Catch::Contains("checkerboard, 8gaussians, moons, swissroll, "
                                                     "pinwheel, rings, 2spirals, circles"));
  CHECK_THROWS_AS(sample_checkerboard(-1, g), ValueError);
  CHECK_THROWS_AS(sample_moons(4, g, DType::i64), DTypeError);
}

TEST_CASE("toy densities: checkerboard fills its 8 dark squares uniformly", "[datasets]") {
  Generator gen(1);
  const int64_t n = 40000;
  const Pts p = pts(sample_checkerboard(n, gen, DType::f64));
  std::array<int64_t, 16> cells{};
  bool inside = true, dark = true;
  double fx = 0, fy = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    inside = inside && p.x[i] >= -4 && p.x[i] < 4 && p.y[i] >= -4 && p.y[i] < 4;
    const double cx = std::floor(p.x[i] / 2), cy = std::floor(p.y[i] / 2);
    dark = dark && static_cast<int64_t>(cx + cy) % 2 == 0;
    ++cells[static_cast<size_t>((cx + 2) * 4 + (cy + 2))];
    fx += p.x[i] / 2 - cx;
    fy += p.y[i] / 2 - cy;
  }
  CHECK(inside);
  CHECK(dark);
  for (int cx = 0; cx < 4; ++cx)
    for (int cy = 0; cy < 4; ++cy)
      if ((cx + cy) % 2 == 0) check_count(cells[cx * 4 + cy], n, 1.0 / 8);
  // Within a square the position is uniform: mean 1/2, standard error sqrt(1/12 / n).
  const double se = std::sqrt(1.0 / 12 / n);
  CHECK(std::abs(fx / n - 0.5) < 5 * se);
  CHECK(std::abs(fy / n - 0.5) < 5 * se);
}

TEST_CASE("toy densities: 8gaussians clusters around 8 centres of radius 4/1.414", "[datasets]") {
  Generator gen(2);
  const int64_t n = 40000;
  const Pts p = pts(sample_8gaussians(n, gen, DType::f64));
  std::array<int64_t, 8> counts{};
  std::vector<double> dx, dy;
  for (size_t i = 0; i < p.size(); ++i) {
    int best = 0;
    double bd = INFINITY;
    for (int k = 0; k < 8; ++k) {
      const double cx = 4 * std::cos(k * kPi / 4) / 1.414, cy = 4 * std::sin(k * kPi / 4) / 1.414;
      const double d = (p.x[i] - cx) * (p.x[i] - cx) + (p.y[i] - cy) * (p.y[i] - cy);
      if (d < bd) bd = d, best = k;
    }
    ++counts[static_cast<size_t>(best)];
    dx.push_back(p.x[i] - 4 * std::cos(best * kPi / 4) / 1.414);
    dy.push_back(p.y[i] - 4 * std::sin(best * kPi / 4) / 1.414);
  }
  for (int64_t c : counts) check_count(c, n, 1.0 / 8);
  // Residuals: N(0, (0.5/1.414)^2) per coordinate.
  const double sd = 0.5 / 1.414;
  CHECK(std::abs(mean(dx)) < 5 * sd / std::sqrt(n));
  CHECK(std::abs(mean(dy)) < 5 * sd / std::sqrt(n));
  CHECK(stddev(dx) == Approx(sd).epsilon(0.03));
  CHECK(stddev(dy) == Approx(sd).epsilon(0.03));
}

TEST_CASE("toy densities: rings and circles have the stated radii and radial noise", "[datasets]") {
  struct Case {
    std::string name;
    std::vector<double> radii;
    double noise;
  };
  for (const Case& c :
       {Case{"rings", {3.0, 2.25, 1.5, 0.75}, 0.08}, Case{"circles", {3.0, 1.5}, 0.24}}) {
    INFO(c.name);
    Generator gen(3);
    const int64_t n = 40000;
    const Pts p = pts(sample_toy(c.name, n, gen, DType::f64));
    std::vector<std::vector<double>> dev(c.radii.size());
    std::vector<double> angle;
    for (size_t i = 0; i < p.size(); ++i) {
      const double r = std::hypot(p.x[i], p.y[i]);
      size_t best = 0;
      for (size_t k = 1; k < c.radii.size(); ++k)
        if (std::abs(r - c.radii[k]) < std::abs(r - c.radii[best])) best = k;
      dev[best].push_back(r - c.radii[best]);
      angle.push_back(std::atan2(p.y[i], p.x[i]));
    }
    for (size_t k = 0; k < c.radii.size(); ++k) {
      INFO("radius " << c.radii[k]);
      check_count(static_cast<int64_t>(dev[k].size()), n,
                  1.0 / static_cast<double>(c.radii.size()));
      // |r| of a point with isotropic noise s around radius R has mean ~ R + s^2 / (2R).
      const double bias = c.noise * c.noise / (2 * c.radii[k]);
      CHECK(std::abs(mean(dev[k]) - bias) < 0.01);
      CHECK(stddev(dev[k]) == Approx(c.noise).epsilon(0.05));
    }
    // Angles uniform: mean cos and sin ~ 0 (standard error sqrt(1/(2n))).
    double mc = 0, ms = 0;
    for (double a : angle) mc += std::cos(a), ms += std::sin(a);
    CHECK(std::abs(mc / n) < 5 / std::sqrt(2.0 * n));
    CHECK(std::abs(ms / n) < 5 / std::sqrt(2.0 * n));
  }
}

namespace {
// Distance from (x, y) to the half of the unit circle around (cx, cy) on the side `side` (+1:
// upper, -1: lower) of its horizontal diameter.
double arc_distance(double x, double y, double cx, double cy, int side) {
  if ((y - cy) * side >= 0) return std::abs(std::hypot(x - cx, y - cy) - 1);
  return std::min(std::hypot(x - cx - 1, y - cy), std::hypot(x - cx + 1, y - cy));
}
}  // namespace

TEST_CASE("toy densities: moons lie on two half circles with the known means", "[datasets]") {
  Generator gen(4);
  const int64_t n = 40000;
  const Pts p = pts(sample_moons(n, gen, DType::f64));
  int64_t upper = 0, far = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    const double mx = (p.x[i] + 1) / 2, my = (p.y[i] + 0.2) / 2;  // undo 2 m + (-1, -0.2)
    const double du = arc_distance(mx, my, 0, 0, +1), dl = arc_distance(mx, my, 1, 0.5, -1);
    if (std::min(du, dl) > 0.5) ++far;  // noise 0.1: 5 standard deviations
    if (du < dl) ++upper;
  }
  CHECK(far == 0);
  check_count(upper, n, 0.5);
  // E[m] = (1/2, 1/4): E[(cos t, sin t)] = (0, 2/pi), E[(1 - cos t, 1/2 - sin t)] = (1, 1/2 -
  // 2/pi).
  CHECK(std::abs(mean(p.x) - 0.0) < 5 * stddev(p.x) / std::sqrt(n));
  CHECK(std::abs(mean(p.y) - 0.3) < 5 * stddev(p.y) / std::sqrt(n));
}

TEST_CASE("toy densities: swissroll and 2spirals follow their curves", "[datasets]") {
  SECTION("swissroll: 5 p = (t cos t, t sin t) + N(0, I), t in [1.5 pi, 4.5 pi)") {
    Generator gen(5);
    const int64_t n = 4000;
    const Pts p = pts(sample_swissroll(n, gen, DType::f64));
    std::vector<double> d2;
    for (size_t i = 0; i < p.size(); ++i)
      d2.push_back(dist2_to_curve(5 * p.x[i], 5 * p.y[i], 1.5 * kPi, 4.5 * kPi, [](double t) {
        return std::pair{t * std::cos(t), t * std::sin(t)};
      }));
    // Only the noise normal to the curve counts: E d^2 ~ 1 (less where the ends are near).
    CHECK(mean(d2) > 0.8);
    CHECK(mean(d2) < 1.1);
    // A uniform cloud over the same box is far from the curve.
    Generator g2(6);
    const std::vector<double> u = rand({2000}, g2, DType::f64).to_vector();
    std::vector<double> d2u;
    for (size_t i = 0; i < u.size(); i += 2)
      d2u.push_back(
          dist2_to_curve(28 * u[i] - 14, 28 * u[i + 1] - 14, 1.5 * kPi, 4.5 * kPi, [](double t) {
            return std::pair{t * std::cos(t), t * std::sin(t)};
          }));
    CHECK(mean(d2u) > 2.5);
  }
  SECTION("2spirals: +-(-m cos m + 1/4, m sin m + 1/4) / 3 plus jitter, m in [0, 3 pi]") {
    Generator gen(7);
    const int64_t n = 4000;
    const Pts p = pts(sample_2spirals(n, gen, DType::f64));
    std::vector<double> d2;
    int64_t first_arm = 0;
    for (size_t i = 0; i < p.size(); ++i) {
      auto arm = [](double s) {
        return [s](double m) {
          return std::pair{s * (-m * std::cos(m) + 0.25) / 3, s * (m * std::sin(m) + 0.25) / 3};
        };
      };
      const double a = dist2_to_curve(p.x[i], p.y[i], 0, 3 * kPi, arm(1.0));
      const double b = dist2_to_curve(p.x[i], p.y[i], 0, 3 * kPi, arm(-1.0));
      d2.push_back(std::min(a, b));
      first_arm += a < b;
    }
    // Per coordinate: uniform jitter sd 0.5/3/sqrt(12) and noise 0.1; about one coordinate's
    // worth lies across the curve: E d^2 ~ 0.0123.
    CHECK(mean(d2) > 0.006);
    CHECK(mean(d2) < 0.016);
    check_count(first_arm, n, 0.5);
    CHECK(std::abs(mean(p.x)) < 0.1);
    CHECK(std::abs(mean(p.y)) < 0.1);
  }
}

TEST_CASE("toy densities: pinwheel has 5 arms spiralling as angle = 2 pi c / 5 + exp(r) / 4",
          "[datasets]") {
  Generator gen(8);
  const int64_t n = 40000;
  const Pts p = pts(sample_pinwheel(n, gen, DType::f64));
  const double arm = 2 * kPi / 5;
  std::array<int64_t, 5> counts{};
  int64_t near = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    // p / 2 = R(-a) f with |f| ~ f1: undo the radius-dependent twist and the arm offset.
    const double r = std::hypot(p.x[i], p.y[i]) / 2;
    const double psi = -std::atan2(p.y[i], p.x[i]) - 0.25 * std::exp(r);
    const double k = std::round(psi / arm);
    if (std::abs(psi - k * arm) < 0.3) ++near;
    ++counts[static_cast<size_t>(((static_cast<int64_t>(k) % 5) + 5) % 5)];
  }
  // A density without arms would put ~0.6 / (2 pi / 5) = 48% within 0.3 of an arm.
  CHECK(static_cast<double>(near) / n > 0.95);
  for (int64_t c : counts) check_count(c, n, 0.2);
}

// ---- DataLoader -------------------------------------------------------------------------------

namespace {
// data[i] = (i, 10 i, 100 i) and labels[i] = i + 1000, so a batch's rows name their example.
Tensor rows(int64_t n) {
  std::vector<double> v;
  for (int64_t i = 0; i < n; ++i) v.insert(v.end(), {double(i), 10.0 * i, 100.0 * i});
  return from_vector(v, {n, 3});
}
Tensor labels_for(int64_t n) {
  std::vector<int64_t> v;
  for (int64_t i = 0; i < n; ++i) v.push_back(i + 1000);
  return from_indices(v, {n});
}
std::vector<int64_t> epoch_order(DataLoader& l, std::vector<int64_t>* sizes = nullptr) {
  std::vector<int64_t> order;
  while (auto b = l.next()) {
    if (sizes) sizes->push_back(b->index.numel());
    const std::vector<int64_t> idx = b->index.values<int64_t>();
    const std::vector<double> d = b->data.to_vector();
    const std::vector<int64_t> lab = b->labels.values<int64_t>();
    for (size_t j = 0; j < idx.size(); ++j) {
      REQUIRE(d[3 * j] == idx[j]);
      REQUIRE(d[3 * j + 2] == 100.0 * idx[j]);
      REQUIRE(lab[j] == idx[j] + 1000);
    }
    order.insert(order.end(), idx.begin(), idx.end());
  }
  return order;
}
}  // namespace

TEST_CASE("DataLoader: each example once per epoch, new order each epoch", "[datasets]") {
  const int64_t n = 10;
  DataLoader l(rows(n), labels_for(n), 3, Generator(42));
  CHECK(l.size() == n);
  CHECK(l.batches_per_epoch() == 4);
  std::set<std::vector<int64_t>> orders;
  for (int e = 0; e < 4; ++e) {
    CHECK(l.epoch() == e);
    std::vector<int64_t> sizes;
    const std::vector<int64_t> order = epoch_order(l, &sizes);
    CHECK(sizes == std::vector<int64_t>{3, 3, 3, 1});
    CHECK(std::set<int64_t>(order.begin(), order.end()) ==
          std::set<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
    CHECK(order.size() == 10);
    orders.insert(order);
  }
  CHECK(orders.size() == 4);  // 4 distinct permutations (collisions: 6 / 10! at most)

  SECTION("drop_last skips the short batch") {
    DataLoader d(rows(n), labels_for(n), 3, Generator(42), true, true);
    CHECK(d.batches_per_epoch() == 3);
    std::vector<int64_t> sizes;
    const std::vector<int64_t> order = epoch_order(d, &sizes);
    CHECK(sizes == std::vector<int64_t>{3, 3, 3});
    CHECK(std::set<int64_t>(order.begin(), order.end()).size() == 9);
  }
  SECTION("no shuffle: 0..N-1 every epoch, generator untouched") {
    DataLoader d(rows(n), labels_for(n), 4, Generator(42), false);
    for (int e = 0; e < 2; ++e)
      CHECK(epoch_order(d) == std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
    CHECK(d.state().offset == 0);
  }
}

TEST_CASE("DataLoader: the order is a function of the seed", "[datasets]") {
  auto orders = [](uint64_t seed) {
    DataLoader l(rows(50), labels_for(50), 8, Generator(seed));
    std::vector<int64_t> all;
    for (int e = 0; e < 3; ++e) {
      const std::vector<int64_t> o = epoch_order(l);
      all.insert(all.end(), o.begin(), o.end());
    }
    return all;
  };
  CHECK(orders(5) == orders(5));
  CHECK(orders(5) != orders(6));
  // The same generator state, not just the same seed: an advanced generator gives other orders.
  Generator g(5);
  g.advance(1);
  DataLoader l(rows(50), labels_for(50), 8, g);
  DataLoader m(rows(50), labels_for(50), 8, Generator(5));
  CHECK(l.order() != m.order());
}

TEST_CASE("DataLoader: permutations are uniform (first position over many epochs)", "[datasets]") {
  const int64_t n = 5, epochs = 5000;
  DataLoader l(arange(n, DType::f32), 1, Generator(9));
  std::array<int64_t, 5> first{};
  for (int64_t e = 0; e < epochs; ++e) {
    ++first[static_cast<size_t>(l.next_batch().index.values<int64_t>()[0])];
    while (l.next()) {
    }
  }
  for (int64_t c : first) check_count(c, epochs, 0.2);
}

TEST_CASE("DataLoader: a run resumed from saved state continues identically", "[datasets]") {
  const int64_t n = 10;
  auto record = [](DataLoader& l, int batches) {
    std::vector<std::vector<double>> out;
    for (int i = 0; i < batches; ++i) {
      const DataLoader::Batch b = l.next_batch();
      out.push_back(b.data.to_vector());
      const std::vector<int64_t> lab = b.labels.values<int64_t>();
      out.back().insert(out.back().end(), lab.begin(), lab.end());
    }
    return out;
  };
  for (int cut : {0, 2, 3, 7, 9}) {  // mid-epoch and at an epoch's end (3 batches per epoch)
    INFO("saved after " << cut << " batches");
    DataLoader a(rows(n), labels_for(n), 4, Generator(11));
    record(a, cut);
    const DataLoaderState saved = a.state();
    CHECK(saved.epoch == (cut == 0 ? 0 : (cut - 1) / 3));
    const auto expected = record(a, 8);

    DataLoader b(rows(n), labels_for(n), 4, Generator(12345));  // another seed: overwritten
    b.load_state(DataLoaderState::from_tensor(saved.to_tensor()));
    CHECK(b.state() == saved);
    CHECK(record(b, 8) == expected);
    CHECK(b.state() == a.state());
  }
  SECTION("next() at an epoch's end: the state after the gap resumes too") {
    DataLoader a(rows(n), labels_for(n), 5, Generator(3));
    epoch_order(a);
    const DataLoaderState saved = a.state();
    CHECK(saved.epoch == 1);
    CHECK(saved.position == 0);
    const std::vector<int64_t> expected = epoch_order(a);
    DataLoader b(rows(n), labels_for(n), 5, Generator(0));
    b.load_state(saved);
    CHECK(epoch_order(b) == expected);
  }
  SECTION("state checks") {
    DataLoader a(rows(n), 4, Generator(1));
    CHECK_THROWS_AS(a.load_state({0, 11, 0, 0}), ValueError);
    CHECK_THROWS_AS(a.load_state({-1, 0, 0, 0}), ValueError);
    CHECK_THROWS_AS(DataLoaderState::from_tensor(zeros({4})), ValueError);
    const DataLoaderState big{3, 4, ~uint64_t{0}, uint64_t{1} << 63};
    CHECK(DataLoaderState::from_tensor(big.to_tensor()) == big);
  }
}

TEST_CASE("DataLoader: argument checks", "[datasets]") {
  CHECK_THROWS_AS(DataLoader(rows(4), 0, Generator(0)), ValueError);
  CHECK_THROWS_AS(DataLoader(rows(4), labels_for(5), 2, Generator(0)), ShapeError);
  CHECK_THROWS_AS(DataLoader(scalar(1.0), 2, Generator(0)), ShapeError);
  DataLoader small(rows(3), 4, Generator(0), true, true);
  CHECK(small.batches_per_epoch() == 0);
  CHECK_FALSE(small.next().has_value());
  CHECK_THROWS_AS(small.next_batch(), ValueError);
  DataLoader plain(rows(3), 2, Generator(0));
  CHECK_FALSE(plain.next_batch().labels.defined());
}

// ---- dequantization, logit transform, bits per dimension ---------------------------------------

TEST_CASE("dequantize: (x + u) / K lands in the cell of x", "[datasets]") {
  const Digits d = load_digits();
  Generator g1(1), g2(1);
  const Tensor u = dequantize(d.images, 17, g1);
  CHECK(u.dtype() == DType::f32);
  CHECK(u.shape() == d.images.shape());
  CHECK(dequantize(d.images, 17, g2).to_vector() == u.to_vector());
  const std::vector<double> x = d.images.to_vector(), v = u.to_vector();
  bool in_cell = true;
  double frac = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    in_cell = in_cell && v[i] >= x[i] / 17 - 1e-7 && v[i] < (x[i] + 1) / 17 + 1e-7;
    frac += 17 * v[i] - x[i];
  }
  CHECK(in_cell);
  CHECK(frac / x.size() == Approx(0.5).margin(0.01));  // mean of U[0, 1)
  Generator g3(2);
  const Tensor from_int = dequantize(from_indices({0, 255}, {2}), 256, g3);
  CHECK(from_int.dtype() == DType::f32);
  CHECK(from_int.to_vector()[1] >= 255.0 / 256);
  CHECK_THROWS_AS(dequantize(d.images, 0, g3), ValueError);
}

TEST_CASE("logit transform: inverse round trip and the log-determinant", "[datasets]") {
  Generator gen(3);
  const Tensor x = rand({4, 3, 2}, gen, DType::f64) * 0.98 + 0.01;
  for (double lambda : {0.0, 1e-6, 0.05}) {
    INFO("lambda " << lambda);
    const auto [y, logdet] = logit_transform(x, lambda);
    CHECK(y.shape() == x.shape());
    CHECK(logdet.shape() == Shape{4});
    CHECK(max(abs(logit_inverse(y, lambda) - x)).item() < 1e-12);

    // log|det| of the per-example Jacobian blocks from sg::jacobian: [4,3,2] x [4,3,2].
    const Tensor jac = jacobian([&](const Tensor& t) { return logit_transform(t, lambda).y; }, x);
    const std::vector<double> J = reshape(jac, {24, 24}).to_vector(), ld = logdet.to_vector();
    for (int b = 0; b < 4; ++b) {
      // Gaussian elimination with partial pivoting on the 6x6 block of example b.
      double a[6][6];
      double off_block = 0;
      for (int i = 0; i < 24; ++i)
        for (int j = 0; j < 24; ++j) {
          const double v = J[i * 24 + j];
          if (i / 6 == b && j / 6 == b)
            a[i % 6][j % 6] = v;
          else if (i / 6 == b)
            off_block = std::max(off_block, std::abs(v));
        }
      CHECK(off_block == 0);  // examples do not interact
      double log_det = 0;
      for (int c = 0; c < 6; ++c) {
        int p = c;
        for (int r = c + 1; r < 6; ++r)
          if (std::abs(a[r][c]) > std::abs(a[p][c])) p = r;
        std::swap(a[p], a[c]);
        log_det += std::log(std::abs(a[c][c]));
        for (int r = c + 1; r < 6; ++r) {
          const double f = a[r][c] / a[c][c];
          for (int k = c; k < 6; ++k) a[r][k] -= f * a[c][k];
        }
      }
      CHECK(ld[b] == Approx(log_det).epsilon(1e-12));
    }

    // And against central differences of y, one coordinate at a time.
    const std::vector<double> xv = x.to_vector();
    std::vector<double> fd_logdet(4, 0.0);
    const double h = 1e-6;
    for (size_t i = 0; i < xv.size(); ++i) {
      std::vector<double> xp = xv, xm = xv;
      xp[i] += h;
      xm[i] -= h;
      const double yp =
          logit_transform(from_vector(xp, x.shape(), DType::f64), lambda).y.to_vector()[i];
      const double ym =
          logit_transform(from_vector(xm, x.shape(), DType::f64), lambda).y.to_vector()[i];
      fd_logdet[i / 6] += std::log((yp - ym) / (2 * h));
    }
    for (int b = 0; b < 4; ++b) CHECK(ld[b] == Approx(fd_logdet[b]).epsilon(1e-7));
  }
}

TEST_CASE("logit transform: differentiable inside a loss, shapes and checks", "[datasets]") {
  Generator gen(4);
  const Tensor x = rand({3, 4}, gen, DType::f64) * 0.9 + 0.05;
  const GradcheckReport r = gradcheck(
      [](const std::vector<Tensor>& v) {
        const auto [y, logdet] = logit_transform(v[0], 0.05);
        return sum(square(y)) - sum(logdet);
      },
      {x}, {.order = 2});
  INFO(r);
  CHECK(r.ok());
  // Rank 1: each element is an example.
  const Tensor v = from_vector({0.25, 0.5}, {2}, DType::f64);
  const auto [y, logdet] = logit_transform(v, 0.0);
  CHECK(logdet.shape() == Shape{2});
  CHECK(logdet.to_vector()[0] == Approx(-std::log(0.25 * 0.75)));
  CHECK(logdet.to_vector()[1] == Approx(std::log(4.0)));
  CHECK(y.to_vector()[1] == 0.0);
  CHECK_THROWS_AS(logit_transform(v, 0.5), ValueError);
  CHECK_THROWS_AS(logit_transform(v, -0.1), ValueError);
  CHECK_THROWS_AS(logit_transform(scalar(0.5), 0.1), ShapeError);
}

TEST_CASE("bits per dim: known answers for uniform and logistic densities", "[datasets]") {
  Generator gen(5);
  const int64_t D = 64;
  const Tensor x = rand({6, 1, 8, 8}, gen, DType::f64);  // dequantized data in [0, 1)^D
  for (double K : {2.0, 17.0, 256.0}) {
    INFO("K " << K);
    // A model uniform on [0, 1)^D: nll 0, no transform; the data's scale gives log2 K.
    const Tensor uniform = bits_per_dim(zeros({6}, DType::f64), Tensor(), D, K);
    CHECK(max(abs(uniform - std::log2(K))).item() < 1e-12);
    for (double lambda : {0.0, 1e-6, 0.05}) {
      INFO("lambda " << lambda);
      const auto [y, logdet] = logit_transform(x, lambda);
      // The uniform density on [0, 1)^D pushed through the transform has
      // -log p_Y(y) = logdet(x) exactly, so it scores log2 K.
      CHECK(max(abs(bits_per_dim(logdet, logdet, D, K) - std::log2(K))).item() < 1e-12);
      // The standard logistic density in y, -log p_Y(y) = sum softplus(y) + softplus(-y), is
      // uniform s = lambda + (1 - 2 lambda) x on (0, 1): density (1 - 2 lambda)^D in x, so
      // bpd = log2 K - log2(1 - 2 lambda). Independent of logit_transform's logdet formula.
      const Tensor nll = sum(softplus(y) + softplus(-y), {1, 2, 3});
      const Tensor bpd = bits_per_dim(nll, logdet, D, K);
      CHECK(max(abs(bpd - (std::log2(K) - std::log2(1 - 2 * lambda)))).item() < 1e-10);
    }
  }
  // A standard normal in y: bpd = mean over dims of (y^2/2 + log(2 pi)/2 - log|dy/dx|) / log 2
  // + log2 K, and the gradient with respect to the nll is 1 / (D log 2).
  const auto [y, logdet] = logit_transform(x, 1e-6);
  const Tensor nll = sum(0.5 * square(y) + 0.5 * std::log(2 * kPi), {1, 2, 3});
  const Tensor bpd = bits_per_dim(nll, logdet, D, 256);
  const std::vector<double> b = bpd.to_vector(), n = nll.to_vector(), l = logdet.to_vector();
  for (size_t i = 0; i < b.size(); ++i)
    CHECK(b[i] == Approx((n[i] - l[i]) / (D * std::log(2.0)) + 8));
  const Tensor g = grad([&](const Tensor& t) { return sum(bits_per_dim(t, logdet, D, 256)); }, nll);
  CHECK(max(abs(g - 1 / (D * std::log(2.0)))).item() < 1e-15);
  CHECK_THROWS_AS(bits_per_dim(nll, logdet, 0, 256), ValueError);
  CHECK_THROWS_AS(bits_per_dim(nll, logdet, D, 0), ValueError);
}
