// Toy densities, the digits loader, DataLoader and the likelihood transforms (datasets.hpp).
#include "nn/datasets.hpp"

#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numbers>
#include <numeric>
#include <utility>

#include "autodiff/core/error.hpp"
#include "autodiff/ops/ops.hpp"

namespace sg::nn {
namespace {

constexpr double kPi = std::numbers::pi;

void check_sampler(const char* name, int64_t n, DType dtype) {
  if (n < 0) fail<ValueError>("sample_", name, ": n must be >= 0, got ", n);
  if (!is_floating(dtype))
    fail<DTypeError>("sample_", name, ": dtype must be float32 or float64, got ",
                     dtype_name(dtype));
}
// Draws in float64 (the result is cast at the end).
Tensor uniform(int64_t n, Generator& gen) { return rand({n}, gen, DType::f64); }
Tensor indicator(const Tensor& cond) { return cast(cond, DType::f64); }
// floor(k u) for u ~ U[0, 1): a uniform integer in {0, ..., k-1}, as float64.
Tensor uniform_index(int64_t n, int k, Generator& gen) {
  const Tensor ku = uniform(n, gen) * static_cast<double>(k);
  Tensor idx = zeros({n}, DType::f64);
  for (int j = 1; j < k; ++j) idx = idx + indicator(ku >= static_cast<double>(j));
  return idx;
}
Tensor points(const Tensor& x, const Tensor& y, DType dtype) {
  return cast(stack({x, y}, 1), dtype);
}

}  // namespace

// ---- 2-D toy densities --------------------------------------------------------------------

// 2 (a, U[0,1) - 2 Bern(1/2) + (floor(a) mod 2)), a ~ U[-2,2): uniform on 8 squares of [-4,4)^2
Tensor sample_checkerboard(int64_t n, Generator& gen, DType dtype) {
  check_sampler("checkerboard", n, dtype);
  const Tensor x1 = uniform(n, gen) * 4.0 - 2.0;
  const Tensor row = uniform(n, gen) - 2.0 * bernoulli({n}, 0.5, gen, DType::f64);
  // floor(x1) mod 2 for x1 in [-2, 2): 1 on [-1, 0) and [1, 2).
  const Tensor odd = indicator(x1 >= -1.0) - indicator(x1 >= 0.0) + indicator(x1 >= 1.0);
  return points(x1 * 2.0, (row + odd) * 2.0, dtype);
}

// (4 (cos(k pi/4), sin(k pi/4)) + 0.5 N(0, I)) / 1.414, k ~ U{0..7}
Tensor sample_8gaussians(int64_t n, Generator& gen, DType dtype) {
  check_sampler("8gaussians", n, dtype);
  const Tensor eps = randn({n, 2}, gen, DType::f64);
  const Tensor angle = uniform_index(n, 8, gen) * (kPi / 4);
  const Tensor x = 4.0 * cos(angle) + 0.5 * select(eps, 1, 0);
  const Tensor y = 4.0 * sin(angle) + 0.5 * select(eps, 1, 1);
  return points(x / 1.414, y / 1.414, dtype);
}

// 2 m + (-1, -0.2) + 0.2 N(0, I), m = (cos t, sin t) or (1 - cos t, 1/2 - sin t), t ~ U[0, pi)
Tensor sample_moons(int64_t n, Generator& gen, DType dtype) {
  check_sampler("moons", n, dtype);
  const Tensor t = uniform(n, gen) * kPi;
  const Tensor lower = bernoulli({n}, 0.5, gen, DType::f64);
  const Tensor eps = randn({n, 2}, gen, DType::f64);
  const Tensor mx = where(lower > 0.5, 1.0 - cos(t), cos(t)) + 0.1 * select(eps, 1, 0);
  const Tensor my = where(lower > 0.5, 0.5 - sin(t), sin(t)) + 0.1 * select(eps, 1, 1);
  return points(2.0 * mx - 1.0, 2.0 * my - 0.2, dtype);
}

// (t cos t, t sin t) / 5 + 0.2 N(0, I), t = 1.5 pi (1 + 2 U[0,1))  (make_swiss_roll's x and z)
Tensor sample_swissroll(int64_t n, Generator& gen, DType dtype) {
  check_sampler("swissroll", n, dtype);
  const Tensor t = 1.5 * kPi * (1.0 + 2.0 * uniform(n, gen));
  const Tensor eps = randn({n, 2}, gen, DType::f64);
  const Tensor x = t * cos(t) + select(eps, 1, 0);
  const Tensor y = t * sin(t) + select(eps, 1, 1);
  return points(x / 5.0, y / 5.0, dtype);
}

// 2 R(-a) f, f = (1 + 0.3 e1, 0.1 e2), a = 2 pi k / 5 + exp(f1) / 4, k ~ U{0..4}, e ~ N(0, I)
Tensor sample_pinwheel(int64_t n, Generator& gen, DType dtype) {
  check_sampler("pinwheel", n, dtype);
  const Tensor eps = randn({n, 2}, gen, DType::f64);
  const Tensor f1 = 1.0 + 0.3 * select(eps, 1, 0);
  const Tensor f2 = 0.1 * select(eps, 1, 1);
  const Tensor a = uniform_index(n, 5, gen) * (2 * kPi / 5) + 0.25 * exp(f1);
  const Tensor ca = cos(a), sa = sin(a);  // R(-a) f as FFJORD's einsum("ti,tij->tj", f, R(a))
  return points(2.0 * (f1 * ca + f2 * sa), 2.0 * (f2 * ca - f1 * sa), dtype);
}

// r (cos th, sin th) + 0.08 N(0, I), r ~ U{3, 2.25, 1.5, 0.75}, th ~ U[0, 2 pi)
Tensor sample_rings(int64_t n, Generator& gen, DType dtype) {
  check_sampler("rings", n, dtype);
  const Tensor r = 3.0 - 0.75 * uniform_index(n, 4, gen);
  const Tensor th = uniform(n, gen) * (2 * kPi);
  const Tensor eps = randn({n, 2}, gen, DType::f64);
  return points(r * cos(th) + 0.08 * select(eps, 1, 0), r * sin(th) + 0.08 * select(eps, 1, 1),
                dtype);
}

// s (u1/2 - m cos m, m sin m + u2/2) / 3 + 0.1 N(0, I), m = 3 pi sqrt(u0), s = +-1, ui ~ U[0,1)
Tensor sample_2spirals(int64_t n, Generator& gen, DType dtype) {
  check_sampler("2spirals", n, dtype);
  const Tensor m = sqrt(uniform(n, gen)) * (540.0 * 2 * kPi / 360.0);  // up to 540 degrees
  const Tensor jx = uniform(n, gen) * 0.5, jy = uniform(n, gen) * 0.5;
  const Tensor s = 1.0 - 2.0 * bernoulli({n}, 0.5, gen, DType::f64);
  const Tensor eps = randn({n, 2}, gen, DType::f64);
  const Tensor x = s * (jx - m * cos(m)) / 3.0 + 0.1 * select(eps, 1, 0);
  const Tensor y = s * (m * sin(m) + jy) / 3.0 + 0.1 * select(eps, 1, 1);
  return points(x, y, dtype);
}

// 3 r (cos th, sin th) + 0.24 N(0, I), r ~ U{1, 1/2}, th ~ U[0, 2 pi)  (3 make_circles(.5, .08))
Tensor sample_circles(int64_t n, Generator& gen, DType dtype) {
  check_sampler("circles", n, dtype);
  const Tensor r = 1.0 - 0.5 * bernoulli({n}, 0.5, gen, DType::f64);
  const Tensor th = uniform(n, gen) * (2 * kPi);
  const Tensor eps = randn({n, 2}, gen, DType::f64);
  return points(3.0 * (r * cos(th) + 0.08 * select(eps, 1, 0)),
                3.0 * (r * sin(th) + 0.08 * select(eps, 1, 1)), dtype);
}

namespace {
using Sampler = Tensor (*)(int64_t, Generator&, DType);
const std::vector<std::pair<std::string, Sampler>>& samplers() {
  static const std::vector<std::pair<std::string, Sampler>> table = {
      {"checkerboard", sample_checkerboard},
      {"8gaussians", sample_8gaussians},
      {"moons", sample_moons},
      {"swissroll", sample_swissroll},
      {"pinwheel", sample_pinwheel},
      {"rings", sample_rings},
      {"2spirals", sample_2spirals},
      {"circles", sample_circles}};
  return table;
}
}  // namespace

const std::vector<std::string>& toy_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& [name, f] : samplers()) v.push_back(name);
    return v;
  }();
  return names;
}

Tensor sample_toy(const std::string& name, int64_t n, Generator& gen, DType dtype) {
  for (const auto& [key, f] : samplers())
    if (key == name) return f(n, gen, dtype);
  std::string valid;
  for (const auto& key : toy_names()) valid += (valid.empty() ? "" : ", ") + key;
  fail<ValueError>("sample_toy: unknown density '", name, "'; valid names: ", valid);
}

// ---- repository data ------------------------------------------------------------------------

std::string data_dir() {
  if (const char* env = std::getenv("SG_DATA_DIR"); env && *env) return env;
#ifdef SG_DATA_DIR
  return SG_DATA_DIR;
#else
  fail<IOError>(
      "data_dir: no data folder: set the environment variable SG_DATA_DIR, or build "
      "with the compile definition SG_DATA_DIR");
#endif
}

std::string data_path(const std::string& file) { return data_dir() + "/" + file; }

namespace {

// The whole (decompressed) file; zlib reads plain files as they are.
std::string read_gz(const std::string& path, const char* who) {
  errno = 0;
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f)
    fail<IOError>(who, ": cannot open ", path, ": ",
                  errno ? std::strerror(errno) : "out of memory");
  std::string text;
  char buf[1 << 16];
  int got = 0;
  while ((got = gzread(f, buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(got));
  int err = Z_OK;
  const char* msg = gzerror(f, &err);
  // zlib's message names the file ("path: unexpected end of file").
  const std::string what =
      err == Z_ERRNO ? cat(path, ": ", std::strerror(errno)) : std::string(msg ? msg : "");
  gzclose(f);
  if (got < 0 || (err != Z_OK && err != Z_STREAM_END)) fail<IOError>(who, ": read failed: ", what);
  return text;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

}  // namespace

Digits load_digits(const std::string& path_arg, DType dtype) {
  if (!is_floating(dtype))
    fail<DTypeError>("load_digits: dtype must be float32 or float64, got ", dtype_name(dtype));
  const std::string path = path_arg.empty() ? data_path("digits.csv.gz") : path_arg;
  const std::string text = read_gz(path, "load_digits");

  std::vector<double> pixels;
  std::vector<int64_t> labels;
  pixels.reserve(1797 * 64);
  labels.reserve(1797);
  size_t start = 0;
  int64_t line_no = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string_view line = trim(std::string_view(text).substr(start, end - start));
    start = end + 1;
    ++line_no;
    auto where = [&] { return cat("load_digits: ", path, " line ", line_no, ": "); };
    if (line.empty()) fail<IOError>(where(), "empty line");

    int64_t values[65];
    int count = 0;
    size_t pos = 0;
    while (true) {
      const size_t comma = line.find(',', pos);
      const std::string_view field =
          trim(line.substr(pos, comma == std::string_view::npos ? line.npos : comma - pos));
      if (count < 65) {
        int64_t v = 0;
        const auto [p, ec] = std::from_chars(field.data(), field.data() + field.size(), v);
        if (field.empty() || ec != std::errc() || p != field.data() + field.size())
          fail<IOError>(where(), "value ", count + 1, " is '", field, "', not an integer");
        values[count] = v;
      }
      ++count;
      if (comma == std::string_view::npos) break;
      pos = comma + 1;
    }
    if (count != 65) fail<IOError>(where(), count, " values, expected 65 (64 pixels and a label)");
    for (int i = 0; i < 64; ++i) {
      if (values[i] < 0 || values[i] > 16)
        fail<IOError>(where(), "pixel ", i, " is ", values[i], ", outside 0..16");
      pixels.push_back(static_cast<double>(values[i]));
    }
    if (values[64] < 0 || values[64] > 9)
      fail<IOError>(where(), "label is ", values[64], ", outside 0..9");
    labels.push_back(values[64]);
  }
  const auto n = static_cast<int64_t>(labels.size());
  if (n == 0) fail<IOError>("load_digits: ", path, ": no rows");
  return {from_vector(pixels, {n, 1, 8, 8}, dtype), from_indices(labels, {n})};
}

// ---- batching -------------------------------------------------------------------------------

Tensor DataLoaderState::to_tensor() const {
  return from_indices(
      {epoch, position, std::bit_cast<int64_t>(seed), std::bit_cast<int64_t>(offset)}, {4});
}

DataLoaderState DataLoaderState::from_tensor(const Tensor& t) {
  if (!t.defined() || t.dtype() != DType::i64 || t.shape() != Shape{4})
    fail<ValueError>("DataLoaderState::from_tensor: expected int64[4], got ",
                     t.defined() ? describe(t) : std::string("an undefined tensor"));
  const std::vector<int64_t> v = t.values<int64_t>();
  return {v[0], v[1], std::bit_cast<uint64_t>(v[2]), std::bit_cast<uint64_t>(v[3])};
}

DataLoader::DataLoader(Tensor data, int64_t batch, Generator gen, bool shuffle, bool drop_last)
    : DataLoader(std::move(data), Tensor(), batch, gen, shuffle, drop_last) {}

DataLoader::DataLoader(Tensor data, Tensor labels, int64_t batch, Generator gen, bool shuffle,
                       bool drop_last)
    : data_(std::move(data)),
      labels_(std::move(labels)),
      batch_(batch),
      gen_(gen),
      shuffle_(shuffle),
      drop_last_(drop_last) {
  if (!data_.defined()) fail<ValueError>("DataLoader: data is an undefined tensor");
  if (data_.rank() < 1)
    fail<ShapeError>("DataLoader: data must have an example axis, got ", describe(data_));
  if (batch_ < 1) fail<ValueError>("DataLoader: batch size must be >= 1, got ", batch_);
  n_ = data_.dim(0);
  device_ = data_.device();
  if (labels_.defined() && (labels_.rank() < 1 || labels_.dim(0) != n_))
    fail<ShapeError>("DataLoader: labels ", describe(labels_), " do not match data ",
                     describe(data_), " along axis 0");
  begin_epoch(0, gen_.seed(), gen_.offset());
}

int64_t DataLoader::epoch_end() const { return drop_last_ ? n_ / batch_ * batch_ : n_; }
int64_t DataLoader::batches_per_epoch() const { return (epoch_end() + batch_ - 1) / batch_; }

void DataLoader::begin_epoch(int64_t epoch, uint64_t seed, uint64_t offset) {
  gen_.set_state(seed, offset);
  epoch_ = epoch;
  position_ = 0;
  epoch_seed_ = seed;
  epoch_offset_ = offset;
  order_.resize(static_cast<size_t>(n_));
  std::iota(order_.begin(), order_.end(), int64_t{0});
  if (!shuffle_ || n_ < 2) return;
  // The argsort of n uniform draws (ties, if any, by position): a uniform random permutation.
  const std::vector<double> keys = rand({n_}, gen_, DType::f64).to_vector();
  std::stable_sort(order_.begin(), order_.end(), [&](int64_t a, int64_t b) {
    return keys[static_cast<size_t>(a)] < keys[static_cast<size_t>(b)];
  });
}

DataLoader::Batch DataLoader::take() {
  const int64_t b = std::min(batch_, epoch_end() - position_);
  std::vector<int64_t> idx(order_.begin() + position_, order_.begin() + position_ + b);
  position_ += b;
  Batch out;
  const Tensor index = from_indices(idx, {b});
  out.index = to_device(index, device_);
  out.data = to_device(index_select(data_, 0, to_device(index, data_.device())), device_);
  if (labels_.defined())
    out.labels = to_device(index_select(labels_, 0, to_device(index, labels_.device())), device_);
  return out;
}

std::optional<DataLoader::Batch> DataLoader::next() {
  if (position_ >= epoch_end()) {
    begin_epoch(epoch_ + 1, gen_.seed(), gen_.offset());
    return std::nullopt;
  }
  return take();
}

DataLoader::Batch DataLoader::next_batch() {
  if (batches_per_epoch() == 0)
    fail<ValueError>("DataLoader::next_batch: no batches: ", n_, " examples, batch size ", batch_,
                     drop_last_ ? " with drop_last" : "");
  if (position_ >= epoch_end()) begin_epoch(epoch_ + 1, gen_.seed(), gen_.offset());
  return take();
}

DataLoaderState DataLoader::state() const {
  return {epoch_, position_, epoch_seed_, epoch_offset_};
}

void DataLoader::load_state(const DataLoaderState& s) {
  if (s.epoch < 0 || s.position < 0 || s.position > epoch_end())
    fail<ValueError>("DataLoader::load_state: epoch ", s.epoch, ", position ", s.position,
                     " is not a state of a loader serving ", epoch_end(), " examples per epoch");
  begin_epoch(s.epoch, s.seed, s.offset);
  position_ = s.position;
}

// ---- dequantization, logit transform, bits per dimension ----------------------------------

Tensor dequantize(const Tensor& x, int64_t levels, Generator& gen) {
  if (levels < 1) fail<ValueError>("dequantize: levels must be >= 1, got ", levels);
  const Tensor xf = is_floating(x.dtype()) ? x : cast(x, DType::f32);
  return (xf + rand_like(xf, gen)) / static_cast<double>(levels);
}

namespace {
void check_lambda(const char* op, double lambda) {
  if (!(lambda >= 0 && lambda < 0.5))
    fail<ValueError>(op, ": lambda must be in [0, 0.5), got ", lambda);
}
}  // namespace

LogitResult logit_transform(const Tensor& x, double lambda) {
  check_lambda("logit_transform", lambda);
  if (x.rank() < 1)
    fail<ShapeError>("logit_transform: x must have an example axis, got ", describe(x));
  const Tensor s = x * (1.0 - 2.0 * lambda) + lambda;
  const Tensor log_s = log(s), log_1ms = log1p(-s);
  const Tensor ld = std::log1p(-2.0 * lambda) - log_s - log_1ms;  // log dy/dx per element
  Shape axes;
  for (int a = 1; a < x.rank(); ++a) axes.push_back(a);
  return {log_s - log_1ms, axes.empty() ? ld : sum(ld, axes)};
}

Tensor logit_inverse(const Tensor& y, double lambda) {
  check_lambda("logit_inverse", lambda);
  return (sigmoid(y) - lambda) / (1.0 - 2.0 * lambda);
}

Tensor bits_per_dim(const Tensor& nll, const Tensor& logdet, int64_t dims, double levels) {
  if (dims < 1) fail<ValueError>("bits_per_dim: dims must be >= 1, got ", dims);
  if (!(levels > 0)) fail<ValueError>("bits_per_dim: levels must be > 0, got ", levels);
  const double d = static_cast<double>(dims);
  const Tensor nll_x = logdet.defined() ? nll - logdet : nll;
  return (nll_x + d * std::log(levels)) / (d * std::numbers::ln2);
}

}  // namespace sg::nn
