// Digit classifiers, their loss, argmax and accuracy, the held-out digits split and the
// training loop (see classifier.hpp).
#include "purify/classifier.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "autodiff/core/error.hpp"
#include "autodiff/ops/ops.hpp"
#include "autodiff/tape/autograd.hpp"
#include "nn/datasets.hpp"
#include "nn/optim.hpp"

namespace sg::purify {

namespace detail {
Shape batch_shape(int64_t b, const Shape& sample) {
  Shape s{b};
  for (int64_t d : sample) s.push_back(d);
  return s;
}
Tensor per_batch(const Tensor& v, const Tensor& x) {
  Shape s = Shape::filled(x.rank(), 1);
  s[0] = x.dim(0);
  return reshape(v, s);
}
}  // namespace detail

void check_inputs(const char* op, const Classifier& clf, const Tensor& x, const Tensor& labels) {
  if (!x.defined() || x.rank() < 1 || x.dim(0) < 1)
    fail<ShapeError>(op, ": x must be a non-empty batch [B, ...], got ",
                     x.defined() ? describe(x) : std::string("undefined"));
  if (!(x.shape() == detail::batch_shape(x.dim(0), clf.input_shape())))
    fail<ShapeError>(op, ": x ", describe(x), " does not match the classifier's input shape ",
                     clf.input_shape().str(), " (per sample)");
  if (labels.defined() && (labels.dtype() != DType::i64 || !(labels.shape() == Shape{x.dim(0)})))
    fail<ShapeError>(op, ": labels must be int64 [", x.dim(0), "] for x ", describe(x), ", got ",
                     describe(labels));
}

MlpClassifier::MlpClassifier(MlpClassifierOptions o, Generator& gen) : o_(std::move(o)) {
  if (o_.classes < 2) fail<ValueError>("MlpClassifier: classes must be >= 2, got ", o_.classes);
  if (o_.input_shape.numel() < 1)
    fail<ValueError>("MlpClassifier: empty input_shape ", o_.input_shape.str());
  std::vector<int64_t> widths{o_.input_shape.numel()};
  for (int64_t h : o_.hidden) {
    if (h < 1) fail<ValueError>("MlpClassifier: hidden widths must be >= 1, got ", h);
    widths.push_back(h);
  }
  widths.push_back(o_.classes);
  mlp_ = &child(
      "mlp", std::make_unique<nn::Mlp>(widths, o_.act, gen, nn::LayerOptions{.dtype = o_.dtype}));
}
// logits = MLP(flatten x)
Tensor MlpClassifier::operator()(const Tensor& x) const {
  return (*mlp_)(reshape(x, {x.dim(0), -1}));
}

CnnClassifier::CnnClassifier(CnnClassifierOptions o, Generator& gen) : o_(o) {
  if (o_.classes < 2) fail<ValueError>("CnnClassifier: classes must be >= 2, got ", o_.classes);
  if (o_.size < 2 || o_.size % 2 != 0)
    fail<ValueError>("CnnClassifier: size must be even and >= 2, got ", o_.size);
  if (o_.channels < 1 || o_.in_channels < 1)
    fail<ValueError>("CnnClassifier: channels and in_channels must be >= 1");
  const int64_t c = o_.channels, h = o_.size / 2;
  conv1_ = &child("conv1",
                  std::make_unique<nn::Conv2d>(o_.in_channels, c, 3, gen,
                                               nn::ConvOptions{.padding = 1, .dtype = o_.dtype}));
  conv2_ = &child("conv2", std::make_unique<nn::Conv2d>(
                               c, 2 * c, 3, gen,
                               nn::ConvOptions{.stride = 2, .padding = 1, .dtype = o_.dtype}));
  fc_ = &child("fc", std::make_unique<nn::Linear>(2 * c * h * h, o_.classes, gen,
                                                  nn::LayerOptions{.dtype = o_.dtype}));
}
// logits = fc(flatten(act(conv2(act(conv1 x)))))
Tensor CnnClassifier::operator()(const Tensor& x) const {
  const Tensor h = nn::activate(o_.act, (*conv2_)(nn::activate(o_.act, (*conv1_)(x))));
  return (*fc_)(reshape(h, {x.dim(0), -1}));
}

// CE_b = -log softmax(logits_b)[y_b]
Tensor cross_entropy(const Tensor& logits, const Tensor& labels) {
  if (logits.rank() != 2 || labels.dtype() != DType::i64 ||
      !(labels.shape() == Shape{logits.dim(0)}))
    fail<ShapeError>("cross_entropy: logits [B, K] and int64 labels [B] required, got ",
                     describe(logits), " and ", describe(labels));
  return -squeeze(gather(log_softmax(logits, 1), 1, unsqueeze(labels, 1)), 1);
}

// argmax_k s_k = min { k : s_k = max_j s_j }
Tensor argmax(const Tensor& scores) {
  const int64_t K = scores.dim(-1);
  const Tensor top = max(scores.detach(), {scores.rank() - 1}, true);
  const Tensor k = cast(arange(K, DType::i64, scores.device()), scores.dtype());
  const Tensor first = min(where(scores.detach() >= top, k, double(K)), {scores.rank() - 1});
  return cast(first, DType::i64);
}

double accuracy_of(const Tensor& scores, const Tensor& labels) {
  const Tensor hit = cast(eq(argmax(scores), labels), DType::f64);
  return sum(hit).item() / double(labels.numel());
}

DigitsSplit digits_split(DigitsSplitOptions o) {
  if (!(o.test_fraction > 0 && o.test_fraction < 1))
    fail<ValueError>("digits_split: test_fraction must lie in (0, 1), got ", o.test_fraction);
  const nn::Digits d = nn::load_digits("", o.dtype);
  const int64_t n = d.images.dim(0);
  const int64_t n_test = std::max<int64_t>(1, std::llround(o.test_fraction * double(n)));
  // The permutation is host work (a seeded shuffle of indices); the gathers run where the data is.
  std::vector<int64_t> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  std::mt19937_64 rng(o.seed);
  for (int64_t i = n - 1; i > 0; --i)
    std::swap(perm[i], perm[std::uniform_int_distribution<int64_t>(0, i)(rng)]);
  const std::vector<int64_t> test(perm.begin(), perm.begin() + n_test);
  const std::vector<int64_t> train(perm.begin() + n_test, perm.end());
  const Tensor images = (d.images / 16.0).to(o.device);  // 0..16 ink counts -> [0, 1]
  const Tensor labels = d.labels.to(o.device);
  const Tensor ti = from_indices(train, {int64_t(train.size())}, o.device);
  const Tensor si = from_indices(test, {int64_t(test.size())}, o.device);
  return {index_select(images, 0, ti), index_select(labels, 0, ti), index_select(images, 0, si),
          index_select(labels, 0, si)};
}

ClassifierTrainReport train_classifier(Classifier& clf, const Tensor& x, const Tensor& labels,
                                       ClassifierTrainOptions o) {
  check_inputs("train_classifier", clf, x, labels);
  if (o.epochs < 1 || o.batch < 1)
    fail<ValueError>("train_classifier: epochs and batch must be >= 1, got ", o.epochs, " and ",
                     o.batch);
  clf.train();
  nn::Adam opt(clf.named_parameters(), {.lr = o.lr, .weight_decay = o.weight_decay});
  nn::DataLoader loader(x, labels, o.batch, Generator(o.seed));
  ClassifierTrainReport report;
  for (int64_t e = 0; e < o.epochs; ++e) {
    double total = 0;
    int64_t batches = 0;
    while (auto b = loader.next()) {
      const Tensor loss = mean(cross_entropy(clf(b->data), b->labels));  // mean_b CE_b
      opt.step(grad(loss, clf.parameters()));
      total += loss.item();
      ++batches;
      ++report.steps;
    }
    report.epoch_loss.push_back(total / double(batches));
  }
  clf.eval();
  return report;
}

double accuracy(const Classifier& clf, const Tensor& x, const Tensor& labels, int64_t batch) {
  check_inputs("accuracy", clf, x, labels);
  NoGradGuard off;
  const int64_t n = x.dim(0);
  double hits = 0;
  for (int64_t i = 0; i < n; i += batch) {
    const int64_t j = std::min(n, i + batch);
    hits += accuracy_of(clf(slice(x, 0, i, j)), slice(labels, 0, i, j)) * double(j - i);
  }
  return hits / double(n);
}

}  // namespace sg::purify
