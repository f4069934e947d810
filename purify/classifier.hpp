// Classifiers on the 8x8 digits for adversarial purification (issue 18): the Classifier
// interface (images -> logits, with the input shape it was built for), an MLP and a small CNN,
// the cross-entropy and argmax they are trained and scored with, a seeded train/held-out split
// of the digits scaled to the data range [0, 1], and the training loop and accuracy as library
// functions.
//
//   sg::Generator gen(0);
//   auto split = sg::purify::digits_split({.test_fraction = 0.25, .seed = 1});
//   sg::purify::CnnClassifier clf({}, gen);
//   sg::purify::train_classifier(clf, split.train_x, split.train_y, {.epochs = 10});
//   double acc = sg::purify::accuracy(clf, split.test_x, split.test_y);
//
// Everything follows its input's device: move a classifier with Module::to and pass data on
// the same device (the split is made on the device asked for).
#pragma once
#include <cstdint>
#include <vector>

#include "autodiff/core/rng.hpp"
#include "autodiff/core/tensor.hpp"
#include "nn/layers.hpp"

namespace sg::purify {

// images [B, ...input_shape] -> logits [B, classes], differentiable in the images (attacks
// take input gradients through it).
class Classifier : public nn::Module {
 public:
  virtual Tensor operator()(const Tensor& x) const = 0;
  virtual Shape input_shape() const = 0;  // one sample's shape, e.g. {1, 8, 8}
  virtual int64_t classes() const = 0;
};

struct MlpClassifierOptions {
  Shape input_shape = {1, 8, 8};
  int64_t classes = 10;
  std::vector<int64_t> hidden = {128, 128};
  nn::Activation act = nn::Activation::relu;
  DType dtype = DType::f32;
};
// logits = MLP(flatten x): input_dim -> hidden... -> classes.
class MlpClassifier : public Classifier {
 public:
  MlpClassifier(MlpClassifierOptions o, Generator& gen);
  Tensor operator()(const Tensor& x) const override;
  Shape input_shape() const override { return o_.input_shape; }
  int64_t classes() const override { return o_.classes; }

 private:
  MlpClassifierOptions o_;
  nn::Mlp* mlp_;
};

struct CnnClassifierOptions {
  int64_t in_channels = 1;
  int64_t size = 8;       // square images size x size (even)
  int64_t channels = 16;  // first conv width; the second has twice as many
  int64_t classes = 10;
  nn::Activation act = nn::Activation::relu;
  DType dtype = DType::f32;
};
// conv3x3(C -> c) - act - conv3x3 stride 2 (c -> 2c) - act - flatten - linear(2c (n/2)^2 -> K).
class CnnClassifier : public Classifier {
 public:
  CnnClassifier(CnnClassifierOptions o, Generator& gen);
  Tensor operator()(const Tensor& x) const override;
  Shape input_shape() const override { return {o_.in_channels, o_.size, o_.size}; }
  int64_t classes() const override { return o_.classes; }

 private:
  CnnClassifierOptions o_;
  nn::Conv2d *conv1_, *conv2_;
  nn::Linear* fc_;
};

// Per-sample cross-entropy -log softmax(logits)[label]: logits [B, K], labels int64 [B] -> [B].
Tensor cross_entropy(const Tensor& logits, const Tensor& labels);
// Index of the largest entry along the last axis (the first one at ties), int64 [B], computed
// on the logits' device.
Tensor argmax(const Tensor& scores);
// Fraction of samples with argmax(scores) == labels (a host number).
double accuracy_of(const Tensor& scores, const Tensor& labels);

// Held-out split of the digits, pixels scaled from 0..16 to [0, 1].
struct DigitsSplitOptions {
  double test_fraction = 0.25;  // in (0, 1)
  uint64_t seed = 0;            // the permutation's seed
  DType dtype = DType::f32;
  Device device = {};
};
struct DigitsSplit {
  Tensor train_x, train_y, test_x, test_y;  // [n, 1, 8, 8] in [0, 1], int64 [n]
};
DigitsSplit digits_split(DigitsSplitOptions o = {});

struct ClassifierTrainOptions {
  int64_t epochs = 10;
  int64_t batch = 64;
  double lr = 3e-3;  // Adam
  double weight_decay = 0;
  uint64_t seed = 0;  // batch order
};
struct ClassifierTrainReport {
  std::vector<double> epoch_loss;  // mean cross-entropy over each epoch's batches
  int64_t steps = 0;
};
// Minimises the mean cross-entropy with Adam over shuffled mini-batches (x, labels on the
// classifier's device; x's sample shape must be the classifier's input shape: ShapeError).
ClassifierTrainReport train_classifier(Classifier& clf, const Tensor& x, const Tensor& labels,
                                       ClassifierTrainOptions o = {});
// Clean accuracy, evaluated without recording in batches of `batch`.
double accuracy(const Classifier& clf, const Tensor& x, const Tensor& labels, int64_t batch = 512);

namespace detail {
Shape batch_shape(int64_t b, const Shape& sample);   // [b, ...sample]
Tensor per_batch(const Tensor& v, const Tensor& x);  // v [B] viewed as [B, 1, ..., 1] against x
}  // namespace detail

// ShapeError naming `op` unless x is [B, ...clf.input_shape()] with B >= 1, and (when labels
// is defined) labels is int64 [B].
void check_inputs(const char* op, const Classifier& clf, const Tensor& x, const Tensor& labels);

}  // namespace sg::purify
