// The sigma-free score network, its NCSN DSM training, the ADP purification loop and the
// ensemble of randomised purifications (see purifier.hpp).
#include "purify/purifier.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <optional>

#include "autodiff/core/error.hpp"
#include "autodiff/ops/ops.hpp"
#include "autodiff/tape/autograd.hpp"
#include "autodiff/transforms/transforms.hpp"
#include "nn/datasets.hpp"
#include "nn/optim.hpp"
#include "objectives/objectives.hpp"

namespace sg::purify {

using detail::batch_shape;
using detail::per_batch;

// ---- the score network ---------------------------------------------------------------------

ScoreNet::ScoreNet(Shape data_shape, ScoreNetOptions o, Generator& gen)
    : shape_(data_shape), o_(o) {
  if (shape_.numel() < 1) fail<ValueError>("ScoreNet: empty data shape ", shape_.str());
  if (o_.hidden < 1 || o_.layers < 1)
    fail<ValueError>("ScoreNet: hidden and layers must be >= 1, got ", o_.hidden, " and ",
                     o_.layers);
  const int64_t D = shape_.numel();
  std::vector<int64_t> widths{D};
  for (int64_t i = 0; i < o_.layers; ++i) widths.push_back(o_.hidden);
  widths.push_back(o_.energy ? 1 : D);
  mlp_ = &child("mlp",
                std::make_unique<nn::Mlp>(widths, o_.act, gen, nn::LayerOptions{.dtype = o_.dtype},
                                          /*zero_init_last=*/!o_.energy));
}

// E(x) = MLP(flatten x)
Tensor ScoreNet::energy(const Tensor& x) const {
  if (!o_.energy) fail<ValueError>("ScoreNet::energy: this net outputs h(x) directly");
  return reshape((*mlp_)(reshape(x, {x.dim(0), -1})), {x.dim(0)});
}

// h(x) = MLP(flatten x), or h(x) = -dE/dx (recorded when grad mode is on)
Tensor ScoreNet::operator()(const Tensor& x) const {
  if (!(x.shape() == batch_shape(x.dim(0), shape_)))
    fail<ShapeError>("ScoreNet: x ", describe(x), " does not match the data shape ", shape_.str(),
                     " (per sample)");
  if (o_.energy) return obj::score_of_energy([this](const Tensor& z) { return energy(z); })(x);
  return reshape((*mlp_)(reshape(x, {x.dim(0), -1})), x.shape());
}

DsmTrainReport train_score(ScoreNet& h, const Tensor& data, DsmTrainOptions o) {
  if (!(o.sigma_begin > o.sigma_end && o.sigma_end > 0))
    fail<ValueError>("train_score: need sigma_begin > sigma_end > 0, got ", o.sigma_begin, " and ",
                     o.sigma_end);
  if (o.levels < 1 || o.steps < 1 || o.batch < 1)
    fail<ValueError>("train_score: levels, steps and batch must be >= 1");
  if (!(data.shape() == batch_shape(data.dim(0), h.data_shape())))
    fail<ShapeError>("train_score: data ", describe(data), " does not match the net's data shape ",
                     h.data_shape().str());
  const Tensor sigmas =
      obj::geometric_sigmas(o.sigma_begin, o.sigma_end, o.levels, data.dtype(), data.device());
  // s(x, sigma) = h(x) / sigma
  const obj::TimeScoreFn s = [&h](const Tensor& x, const Tensor& sig) {
    return h(x) / per_batch(sig, x);
  };
  h.train();
  nn::Adam opt(h.named_parameters(), {.lr = o.lr});
  nn::DataLoader loader(data, o.batch, Generator(o.seed), true, /*drop_last=*/true);
  Generator noise(o.seed + 1);
  DsmTrainReport report;
  for (int64_t step = 0; step < o.steps; ++step) {
    const Tensor loss = obj::ncsn_dsm(s, loader.next_batch().data, sigmas, noise);
    // An energy net's output bias does not reach its score -grad E: its gradient is zero.
    opt.step(grad(loss, h.parameters(), {.allow_unused = h.is_energy()}));
    report.loss.push_back(loss.item());
  }
  h.eval();
  return report;
}

// ---- the purifier --------------------------------------------------------------------------

Purifier::Purifier(ScoreFn score, Shape data_shape, PurifierOptions o)
    : score_(std::move(score)), shape_(data_shape), o_(o) {
  const auto bad = [](const char* field, double v, const char* rule) {
    fail<ValueError>("Purifier: ", field, " = ", v, " must be ", rule);
  };
  if (!score_) fail<ValueError>("Purifier: no score function");
  if (!(std::isfinite(o_.sigma_rand) && o_.sigma_rand >= 0))
    bad("sigma_rand", o_.sigma_rand, "finite and >= 0");
  if (!(std::isfinite(o_.lambda) && o_.lambda > 0)) bad("lambda", o_.lambda, "finite and > 0");
  if (!(std::isfinite(o_.eta) && o_.eta > 0)) bad("eta", o_.eta, "finite and > 0");
  if (!(o_.min_step > 0)) bad("min_step", o_.min_step, "> 0");
  if (!(std::isfinite(o_.max_step) && o_.max_step >= o_.min_step))
    bad("max_step", o_.max_step, "finite and >= min_step");
  if (!(std::isfinite(o_.stopping_alpha) && o_.stopping_alpha >= 0))
    bad("stopping_alpha", o_.stopping_alpha, "finite and >= 0");
  if (o_.max_iter < 0) bad("max_iter", double(o_.max_iter), ">= 0");
  if (!(std::isfinite(o_.lo) && std::isfinite(o_.hi) && o_.lo < o_.hi))
    fail<ValueError>("Purifier: the data range [lo, hi] = [", o_.lo, ", ", o_.hi,
                     "] must be finite with lo < hi");
}

Purifier::Purifier(const ScoreNet& net, PurifierOptions o)
    : Purifier([&net](const Tensor& x) { return net(x); }, net.data_shape(), o) {}

void Purifier::check_input(const char* op, const Tensor& x) const {
  if (!x.defined() || x.rank() < 1 || x.dim(0) < 1 || !(x.shape() == batch_shape(x.dim(0), shape_)))
    fail<ShapeError>(op, ": x ", x.defined() ? describe(x) : std::string("undefined"),
                     " does not match the purifier's data shape ", shape_.str(), " (per sample)");
}

Tensor Purifier::draw_noise(const Tensor& x, Generator& gen) const {
  return o_.noise == NoiseKind::gaussian ? randn_like(x, gen) : rademacher_like(x, gen);
}

// exact: clamp(x, lo, hi).  straight-through: c + (x - x'), c = clamp(x) and x' = x held fixed:
// x - x' is +0 for every finite x, so the value is c's (a -0 from clamp would read +0, equal),
// and d/dx = 1 everywhere.
Tensor Purifier::clip(const Tensor& x, ClipGradient mode) const {
  if (mode == ClipGradient::exact || !x.requires_grad()) return clamp(x, o_.lo, o_.hi);
  const Tensor held = x.detach();
  return clamp(held, o_.lo, o_.hi) + (x - held);
}

// x' = clip(x + sigma_rand c u, lo, hi)
Tensor Purifier::randomize(const Tensor& x, const Tensor& u, ClipGradient mode) const {
  const double c = o_.noise == NoiseKind::binary ? std::sqrt(2.0 / std::numbers::pi) : 1.0;
  return clip(x + u * (o_.sigma_rand * c), mode);
}

// z = <g, s(x + eta g)> / <g, g>;  step = clamp(lambda eta / (1 - z), min_step, max_step)
Tensor Purifier::adaptive_step(const Tensor& x, const Tensor& g) const {
  const Tensor gg = obj::per_sample(g * g);
  const Tensor gs = obj::per_sample(g * score_(x + g * o_.eta));
  const Tensor z = where(gg > 0.0, gs / where(gg > 0.0, gg, 1.0), 0.0);
  return clamp((o_.lambda * o_.eta) / (1.0 - z), o_.min_step, o_.max_step);
}

PurifyTrace Purifier::trace(const Tensor& x, const Tensor& u, bool record,
                            ClipGradient mode) const {
  check_input("purify", x);
  sg::detail::check_device("purify", "x", x, "noise", u);
  if (!(u.shape() == x.shape()))
    fail<ShapeError>("purify: noise ", describe(u), " for x ", describe(x));
  std::optional<NoGradGuard> off;
  std::optional<EnableGradGuard> on;
  if (record)
    on.emplace();
  else
    off.emplace();
  PurifyTrace t;
  Tensor xp = randomize(x, u, mode);
  t.iterates.push_back(xp);
  Tensor active = ones({x.dim(0)}, x.dtype(), x.device());  // 1 while a sample runs
  for (int64_t i = 0; i < o_.max_iter; ++i) {
    const Tensor g = score_(xp);  // g = s(x)
    const Tensor step = adaptive_step(xp, g);
    // stop at the first step <= alpha (a comparison: no gradient through the decision)
    active = active * cast(step > o_.stopping_alpha, x.dtype());
    if (sum(active).item() == 0) break;
    const Tensor taken = step * active;
    xp = clip(xp + per_batch(taken, xp) * g, mode);  // x <- clip(x + step g)
    t.steps.push_back(taken);
    t.iterates.push_back(xp);
  }
  t.x = xp;
  return t;
}

Tensor Purifier::purify_with_noise(const Tensor& x, const Tensor& u, bool record,
                                   ClipGradient mode) const {
  return trace(x, u, record, mode).x;
}
Tensor Purifier::purify(const Tensor& x, Generator& gen, bool record, ClipGradient mode) const {
  check_input("purify", x);
  return purify_with_noise(x, draw_noise(x, gen), record, mode);
}

// ---- ensembles -----------------------------------------------------------------------------

void check_compatible(const char* op, const Classifier& clf, const Purifier& pur) {
  if (!(clf.input_shape() == pur.data_shape()))
    fail<ShapeError>(op, ": the classifier's input shape ", clf.input_shape().str(),
                     " differs from the purifier's data shape ", pur.data_shape().str(),
                     " (trained on different data)");
}

const Tensor& EnsembleScores::get(Aggregation a) const {
  return a == Aggregation::logits ? logits : a == Aggregation::softmax ? softmax : vote;
}

EnsembleScores ensemble_scores(const Classifier& clf, const Purifier& pur, const Tensor& x,
                               Generator& gen, EnsembleOptions o, bool record) {
  check_compatible("ensemble_scores", clf, pur);
  check_inputs("ensemble_scores", clf, x, Tensor());
  if (o.copies < 1) fail<ValueError>("ensemble_scores: copies must be >= 1, got ", o.copies);
  const int64_t B = x.dim(0), R = o.copies;
  // R copies of the batch, purified together: [R*B, ...] (copy r of sample b at r*B + b)
  Shape rep = x.shape();
  rep.insert(0, R);
  Shape flat = x.shape();
  flat[0] = R * B;
  const Tensor xr = reshape(expand(unsqueeze(x, 0), rep), flat);
  const Tensor f = clf(pur.purify(xr, gen, record));
  const int64_t K = f.dim(1);
  const Tensor fr = reshape(f, {R, B, K});
  const Tensor k = cast(arange(K, DType::i64, f.device()), f.dtype());
  const Tensor hot = cast(eq(unsqueeze(cast(argmax(f), f.dtype()), 1), k), f.dtype());
  return {mean(fr, {0}),                        // mean_r f(x_r)
          mean(softmax(fr, 2), {0}),            // mean_r softmax f(x_r)
          mean(reshape(hot, {R, B, K}), {0})};  // mean_r onehot argmax f(x_r)
}

EnsembleAccuracy purified_accuracy(const Classifier& clf, const Purifier& pur, const Tensor& x,
                                   const Tensor& labels, Generator& gen, EnsembleOptions o,
                                   int64_t batch) {
  check_inputs("purified_accuracy", clf, x, labels);
  if (batch < 1) fail<ValueError>("purified_accuracy: batch must be >= 1, got ", batch);
  NoGradGuard off;
  EnsembleAccuracy acc;
  const int64_t n = x.dim(0);
  for (int64_t i = 0; i < n; i += batch) {
    const int64_t j = std::min(n, i + batch);
    const EnsembleScores s = ensemble_scores(clf, pur, slice(x, 0, i, j), gen, o);
    const Tensor y = slice(labels, 0, i, j);
    const double w = double(j - i) / double(n);
    acc.logits += accuracy_of(s.logits, y) * w;
    acc.softmax += accuracy_of(s.softmax, y) * w;
    acc.vote += accuracy_of(s.vote, y) * w;
  }
  return acc;
}

}  // namespace sg::purify
