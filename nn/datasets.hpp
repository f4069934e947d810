// Data for experiments: the 2-D toy densities of the FFJORD / sdeflow-light papers as samplers,
// the 8x8 handwritten digits (data/digits.csv.gz), a batching loader with deterministic,
// resumable shuffling, and the dequantize / logit / bits-per-dim plumbing of likelihood
// evaluation on discrete data.
//
//   sg::Generator gen(0);
//   sg::Tensor x = sg::nn::sample_toy("checkerboard", 512, gen);          // [512, 2]
//   auto digits = sg::nn::load_digits();                                    // [1797,1,8,8], [1797]
//   sg::nn::DataLoader loader(digits.images, digits.labels, 64, sg::Generator(1));
//   while (auto b = loader.next()) {                                        // one epoch
//     sg::Tensor u = sg::nn::dequantize(b->data, 17, gen);                  // [0,1)
//     auto [y, logdet] = sg::nn::logit_transform(u, 1e-6);
//     sg::Tensor bpd = sg::nn::bits_per_dim(model_nll(y), logdet, 64, 17);  // per example
//   }
//
// Everything random draws from a caller's Generator through the library's random ops, so a
// (seed, offset) state reproduces the same samples on any thread count.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "autodiff/core/rng.hpp"
#include "autodiff/core/tensor.hpp"

namespace sg::nn {

// ---- 2-D toy densities --------------------------------------------------------------------
// Each returns n i.i.d. points, [n, 2], computed in float64 and cast to `dtype` (float32 or
// float64), so the two dtypes give the same points up to rounding. Parameters follow FFJORD's
// lib/toy_data.py (and sklearn's make_moons / make_circles / make_swiss_roll that it calls);
// where FFJORD lays points on an even grid or splits n into fixed class counts, these draw the
// angle and the component at random instead (same density, independent rows, exactly n rows).
Tensor sample_checkerboard(int64_t n, Generator& gen, DType dtype = DType::f32);
Tensor sample_8gaussians(int64_t n, Generator& gen, DType dtype = DType::f32);
Tensor sample_moons(int64_t n, Generator& gen, DType dtype = DType::f32);
Tensor sample_swissroll(int64_t n, Generator& gen, DType dtype = DType::f32);
Tensor sample_pinwheel(int64_t n, Generator& gen, DType dtype = DType::f32);
Tensor sample_rings(int64_t n, Generator& gen, DType dtype = DType::f32);
Tensor sample_2spirals(int64_t n, Generator& gen, DType dtype = DType::f32);
Tensor sample_circles(int64_t n, Generator& gen, DType dtype = DType::f32);
// By name; an unknown name throws ValueError listing the valid ones.
Tensor sample_toy(const std::string& name, int64_t n, Generator& gen, DType dtype = DType::f32);
const std::vector<std::string>& toy_names();

// ---- repository data ------------------------------------------------------------------------
// The data folder: the environment variable SG_DATA_DIR if set, else the compile definition
// SG_DATA_DIR (the repository's data/), else IOError.
std::string data_dir();
std::string data_path(const std::string& file);  // data_dir() + "/" + file

// The 8x8 handwritten digits (UCI optdigits test set, 1797 images; see data/README.md).
struct Digits {
  Tensor images;  // [N, 1, 8, 8], pixel values 0..16 (ink counts of 4x4 blocks)
  Tensor labels;  // int64 [N], 0..9
};
// Reads a CSV of rows "p0,...,p63,label" (64 integers in 0..16, then 0..9), gzip-compressed
// or plain. Malformed rows throw IOError naming the file and the line. Default: data/.
Digits load_digits(const std::string& path = "", DType dtype = DType::f32);

// ---- batching -------------------------------------------------------------------------------
// Where a loader stands. The permutation of the current epoch is drawn from (seed, offset),
// the generator state at the epoch's start, so restoring this state redraws it exactly and
// the run continues with the same batches.
struct DataLoaderState {
  int64_t epoch = 0;     // the current epoch, from 0
  int64_t position = 0;  // examples of the current epoch's order already served
  uint64_t seed = 0;     // generator state at the start of the current epoch
  uint64_t offset = 0;
  // As int64 [4] (seed stored bit for bit), e.g. to keep in a state dict next to a model.
  Tensor to_tensor() const;
  static DataLoaderState from_tensor(const Tensor& t);
  friend bool operator==(const DataLoaderState&, const DataLoaderState&) = default;
};

// Batches over axis 0 of `data` (and of `labels`, if given), gathered with index_select. Each
// epoch visits every example once, in an order that is a fresh random permutation per epoch
// (shuffle) or 0..N-1; with drop_last a final short batch is skipped.
//
// Batches are delivered on device() (data, labels and index alike): the data's device unless
// to(device) asks for another. Examples are gathered where the data lives (e.g. a data set in
// host memory) and the batch then moved, so only the batch crosses; the order, and so every
// batch's values, are the same on every device (the permutation is drawn on the host).
//   sg::nn::DataLoader loader(train, 512, sg::Generator(1));
//   loader.to(sg::parse_device("cuda:0"));         // batches on the GPU, data set stays on the
//   host
class DataLoader {
 public:
  struct Batch {
    Tensor data;    // [b, ...]
    Tensor labels;  // [b, ...], undefined without labels
    Tensor index;   // int64 [b]: the examples' positions along axis 0
  };

  DataLoader(Tensor data, int64_t batch, Generator gen, bool shuffle = true,
             bool drop_last = false);
  DataLoader(Tensor data, Tensor labels, int64_t batch, Generator gen, bool shuffle = true,
             bool drop_last = false);

  // The next batch of the current epoch; at its end, nullopt once, and the loader moves on to
  // the next epoch, so `while (auto b = loader.next())` is one epoch.
  std::optional<Batch> next();
  // The next batch of an endless stream: rolls into the next epoch without a gap.
  Batch next_batch();

  // Where batches are delivered from now on (see above); the loader's state is unchanged.
  void to(Device device) { device_ = device; }
  Device device() const { return device_; }

  int64_t size() const { return n_; }
  int64_t batch_size() const { return batch_; }
  int64_t batches_per_epoch() const;
  int64_t epoch() const { return epoch_; }
  // The current epoch's order of examples (int64 positions along axis 0).
  const std::vector<int64_t>& order() const { return order_; }

  DataLoaderState state() const;
  void load_state(const DataLoaderState& s);

 private:
  void begin_epoch(int64_t epoch, uint64_t seed, uint64_t offset);
  int64_t epoch_end() const;  // positions served per epoch
  Batch take();

  Tensor data_, labels_;
  Device device_;
  int64_t n_ = 0, batch_ = 0;
  Generator gen_;
  bool shuffle_ = true, drop_last_ = false;
  int64_t epoch_ = 0, position_ = 0;
  uint64_t epoch_seed_ = 0, epoch_offset_ = 0;
  std::vector<int64_t> order_;
};

// ---- dequantization, logit transform, bits per dimension ----------------------------------
// Integer data x in {0, ..., K-1} (any dtype) to (x + u) / K in [0, 1) with u ~ U[0, 1)
// elementwise: a uniform dequantization (Theis et al. 2016). Floating x keeps its dtype,
// integer x gives float32. Values are not range-checked.
Tensor dequantize(const Tensor& x, int64_t levels, Generator& gen);

// y = logit(s), s = lambda + (1 - 2 lambda) x, for x in [0, 1] (RealNVP's preprocessing; e.g.
// lambda = 1e-6 as in FFJORD, 0.05 as in RealNVP/sdeflow-light for CIFAR-10 and MNIST).
// logdet is per example (axis 0): sum over the other axes of
//   log|dy/dx| = log(1 - 2 lambda) - log(s) - log(1 - s),
// shape [B]. Built from differentiable ops, so both can sit inside a loss.
struct LogitResult {
  Tensor y;
  Tensor logdet;
};
LogitResult logit_transform(const Tensor& x, double lambda);
// x = (sigmoid(y) - lambda) / (1 - 2 lambda); its log-determinant is minus the forward one at x.
Tensor logit_inverse(const Tensor& y, double lambda);

// Bits per dimension on the original discrete scale from a per-example negative
// log-likelihood in nats, nll = -log p_Y(y), of transformed data y = f(z), z = v / K, where
// v = x_int + u in [0, K)^D is the dequantized data. By the change of variables,
//   p_Z(z) = p_Y(f(z)) |det df/dz|        and   p_V(v) = p_Z(v / K) K^-D   (z = v / K),
//   -log p_V(v) = nll - logdet + D log K,
//   bpd = (nll - logdet + D log K) / (D log 2).
// Since P(x_int) = integral of p_V(x_int + u) over u in [0, 1)^D, Jensen's inequality makes its
// mean over u an upper bound on the discrete model's -log2 P(x_int) / D. `logdet` is
// log|det df/dz| per example ([B], e.g. logit_transform's); pass an undefined Tensor when the
// model is on z in [0, 1)^D directly. Check: the uniform density on [0, K)^D (nll = logdet)
// gives exactly log2 K.
Tensor bits_per_dim(const Tensor& nll, const Tensor& logdet, int64_t dims, double levels);

}  // namespace sg::nn
