// Adaptive denoising purification (ADP, Yoon, Hwang & Lee 2021; spec/math.md section 2): a
// sigma-free score model h(x) trained by annealed NCSN denoising score matching, and the
// purifier that injects random noise and then climbs log-density along h with an adaptive,
// per-sample step size and stopping rule, clipped to the data range; plus an ensemble of
// randomised purifications aggregated by mean logits, mean softmax or votes.
//
//   sg::Generator gen(0);
//   sg::purify::ScoreNet h({1, 8, 8}, {}, gen);                 // or {.energy = true}
//   sg::purify::train_score(h, split.train_x, {.steps = 2000});   // NCSN DSM on h(x) / sigma
//   sg::purify::Purifier pur(h, {.sigma_rand = 0.25});
//   sg::Tensor xp = pur.purify(x, gen);                           // [B, 1, 8, 8] in [0, 1]
//   sg::Tensor xr = pur.purify(x, gen, /*record=*/true);          // differentiable in x
//   auto scores = sg::purify::ensemble_scores(clf, pur, x, gen, {.copies = 10});
//
// The purification loop is written in tensor ops, so with `record` it is on the tape and an
// attack can differentiate through every step (purify/attacks.hpp). The stopping rule's
// decisions (and the early exit once every sample has stopped) are comparisons: they carry no
// gradient, so the recorded loop's derivative is that of the branch taken, held fixed.
// The clips to [lo, hi] (after the noise and after every step) are differentiated exactly
// (zero derivative where a pixel is clipped) or, with ClipGradient::straight_through, as the
// identity: y = clip(x) held fixed + (x - x held fixed), the same values, derivative 1.
// Every tensor the purifier builds follows x's device and dtype.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "autodiff/core/rng.hpp"
#include "autodiff/core/tensor.hpp"
#include "nn/layers.hpp"
#include "purify/classifier.hpp"

namespace sg::purify {

using ScoreFn = std::function<Tensor(const Tensor& x)>;  // [B, ...] -> [B, ...]

struct ScoreNetOptions {
  int64_t hidden = 256;
  int64_t layers = 2;  // hidden layers
  nn::Activation act = nn::Activation::elu;
  bool energy = false;  // h = -dE/dx of a scalar energy E(x) instead of a direct output
  DType dtype = DType::f32;
};
// The sigma-free score h(x) of the spec on flattened samples: either h(x) = MLP(x) (zero-
// initialised output layer) or h(x) = -grad E(x) with E(x) = MLP(x) scalar.
class ScoreNet : public nn::Module {
 public:
  ScoreNet(Shape data_shape, ScoreNetOptions o, Generator& gen);
  Tensor operator()(const Tensor& x) const;  // h(x): [B, ...data_shape]
  Tensor energy(const Tensor& x) const;      // E(x): [B] (energy nets only, ValueError else)
  const Shape& data_shape() const { return shape_; }
  bool is_energy() const { return o_.energy; }

 private:
  Shape shape_;
  ScoreNetOptions o_;
  nn::Mlp* mlp_;
};

// NCSN DSM on digits in [0, 1]: sigma_begin is about the largest distance between two samples
// (sqrt(64) for 8x8 in [0, 1]; the paper's 50 is CIFAR-10's).
struct DsmTrainOptions {
  double sigma_begin = 5.0;
  double sigma_end = 0.01;
  int64_t levels = 100;  // geometric noise levels
  int64_t steps = 2000;
  int64_t batch = 128;
  double lr = 1e-3;  // Adam
  uint64_t seed = 0;
};
struct DsmTrainReport {
  std::vector<double> loss;  // per step
};
// Minimises obj::ncsn_dsm with the noise-conditional score s(x, sigma) = h(x) / sigma (the
// NCSNv2 parameterisation):  E_i E_z ½ |h(x + sigma_i z) + z|^2.  Data on h's device.
DsmTrainReport train_score(ScoreNet& h, const Tensor& data, DsmTrainOptions o = {});

enum class NoiseKind {
  gaussian,  // x + sigma_rand z, z ~ N(0, I)
  binary     // x + sigma_rand sqrt(2/pi) r, r ~ {+-1}^D (the same mean absolute deviation)
};
struct PurifierOptions {
  double sigma_rand = 0.25;  // randomisation level (>= 0; 0: no noise)
  NoiseKind noise = NoiseKind::gaussian;
  double lambda = 0.05;    // step = lambda * eta / (1 - z)
  double eta = 1e-3;       // line-search probe length
  double min_step = 1e-5;  // clamp of the step
  double max_step = 1e-1;
  double stopping_alpha = 1e-3;  // a sample stops at its first step <= stopping_alpha
  int64_t max_iter = 10;         // >= 0
  double lo = 0, hi = 1;         // the data range, clipped to after every move
};

// How a recorded purification differentiates its clips to [lo, hi]: exactly (d clip/dx = 0
// where a pixel is clipped, 1 inside), or as the identity (straight-through, d/dx = 1
// everywhere). The values are the same either way; without recording the option is moot.
enum class ClipGradient { exact, straight_through };

// One purification, with its per-iteration record.
struct PurifyTrace {
  Tensor x;                      // the purified batch
  std::vector<Tensor> steps;     // per iteration [B]: the step taken (0 for stopped samples)
  std::vector<Tensor> iterates;  // x after randomisation, then after each iteration
};

class Purifier {
 public:
  Purifier(ScoreFn score, Shape data_shape, PurifierOptions o = {});
  // h(x) of the net (the net must outlive the purifier).
  explicit Purifier(const ScoreNet& net, PurifierOptions o = {});

  // Unit noise for randomize: N(0, I) or {+-1}^D, like x (its device and dtype).
  Tensor draw_noise(const Tensor& x, Generator& gen) const;
  // x' = clip(x + sigma_rand c u, lo, hi), c = 1 (gaussian) or sqrt(2/pi) (binary).
  Tensor randomize(const Tensor& x, const Tensor& unit_noise,
                   ClipGradient clip = ClipGradient::exact) const;
  // clip(x, lo, hi), its derivative exact or straight-through (ClipGradient).
  Tensor clip(const Tensor& x, ClipGradient clip = ClipGradient::exact) const;
  // Per sample ([B]):  z = <g, s(x + eta g)> / <g, g>,  step = clamp(lambda eta / (1 - z)).
  // For s = -A(x - b): 1 - z = eta g^T A g / |g|^2, so step = lambda |g|^2 / g^T A g, lambda
  // times the exact line minimiser along g (a Cauchy step). <g, g> = 0 gives z = 0.
  Tensor adaptive_step(const Tensor& x, const Tensor& g) const;

  // randomize, then up to max_iter adaptive steps x <- clip(x + step g, lo, hi), g = s(x).
  // Without `record` nothing is put on the tape (the result is a constant); with it, `clip`
  // says how the clips are differentiated (the values do not depend on it).
  Tensor purify(const Tensor& x, Generator& gen, bool record = false,
                ClipGradient clip = ClipGradient::exact) const;
  Tensor purify_with_noise(const Tensor& x, const Tensor& unit_noise, bool record = false,
                           ClipGradient clip = ClipGradient::exact) const;
  PurifyTrace trace(const Tensor& x, const Tensor& unit_noise, bool record = false,
                    ClipGradient clip = ClipGradient::exact) const;

  const Shape& data_shape() const { return shape_; }
  const PurifierOptions& options() const { return o_; }
  const ScoreFn& score() const { return score_; }
  // ShapeError naming `op` unless x is [B, ...data_shape], B >= 1.
  void check_input(const char* op, const Tensor& x) const;

 private:
  ScoreFn score_;
  Shape shape_;
  PurifierOptions o_;
};

// Ensemble of `copies` independent purifications of each sample, classified and aggregated:
//   logits:  mean_r f(x_r)           softmax: mean_r softmax(f(x_r))
//   vote:    mean_r onehot(argmax f(x_r))  (fractions of the votes)
// Prediction: argmax of the aggregate. All three come from the same purifications.
enum class Aggregation { logits, softmax, vote };
struct EnsembleOptions {
  int64_t copies = 10;
};
struct EnsembleScores {
  Tensor logits, softmax, vote;  // each [B, K]
  const Tensor& get(Aggregation a) const;
};
// The classifier's input shape must be the purifier's data shape (ShapeError naming both).
EnsembleScores ensemble_scores(const Classifier& clf, const Purifier& pur, const Tensor& x,
                               Generator& gen, EnsembleOptions o = {}, bool record = false);
// Accuracy of the purified classifier under each aggregation, in batches (no recording).
struct EnsembleAccuracy {
  double logits = 0, softmax = 0, vote = 0;
};
EnsembleAccuracy purified_accuracy(const Classifier& clf, const Purifier& pur, const Tensor& x,
                                   const Tensor& labels, Generator& gen, EnsembleOptions o = {},
                                   int64_t batch = 256);

// ShapeError naming `op` unless the classifier's input shape equals the purifier's data shape.
void check_compatible(const char* op, const Classifier& clf, const Purifier& pur);

}  // namespace sg::purify
