// purify/ on the stand-in device: the split, classifier and score-network training, one
// purification, the ensemble and one PGD step (BPDA and full gradient) give the CPU's bits,
// with every result on the data's device.
#include <catch2/catch.hpp>

#include "autodiff/sg.hpp"
#include "purify/attacks.hpp"
#include "tests/support/device.hpp"

using namespace sg;
using namespace sg::purify;

TEST_CASE("purify on the stand-in device gives the CPU's bits", "[purify][device][standin]") {
  test::same_on_both(
      [](Device d) {
        const DigitsSplit s = digits_split({.seed = 4, .device = d});
        const Tensor x = slice(s.test_x, 0, 0, 16), y = slice(s.test_y, 0, 0, 16);
        Generator gen(0);
        MlpClassifier clf({.hidden = {32}}, gen);
        clf.to(d);
        const auto rep = train_classifier(clf, slice(s.train_x, 0, 0, 256),
                                          slice(s.train_y, 0, 0, 256), {.epochs = 1, .batch = 64});
        ScoreNet h({1, 8, 8}, {.hidden = 32, .layers = 1}, gen);
        h.to(d);
        const DsmTrainReport dsm =
            train_score(h, slice(s.train_x, 0, 0, 256), {.steps = 4, .batch = 64});
        ScoreNet e({1, 8, 8}, {.hidden = 16, .layers = 1, .energy = true}, gen);
        e.to(d);
        const Purifier pur(h, {.sigma_rand = 0.25, .max_iter = 4});
        const Purifier pur_e(e, {.sigma_rand = 0.25, .noise = NoiseKind::binary, .max_iter = 3});
        const Tensor xp = pur.purify(x, gen);
        const Tensor xe = pur_e.purify(x, gen);
        const EnsembleScores ens = ensemble_scores(clf, pur, x, gen, {.copies = 3});
        const PgdOptions one{.epsilon = 0.1, .step_size = 0.05, .steps = 1};
        const Tensor xb = pgd(
            {.classifier = &clf, .purifier = &pur, .gradient = GradientMode::bpda}, x, y, gen, one);
        const Tensor xf =
            pgd({.classifier = &clf, .purifier = &pur_e, .gradient = GradientMode::full, .eot = 2},
                x, y, gen, one);
        const Tensor x2 = pgd({.classifier = &clf}, x, y, gen,
                              {.norm = Norm::l2, .epsilon = 1, .step_size = 0.5, .steps = 1});
        const Tensor losses = from_vector(
            {rep.epoch_loss.back(), dsm.loss.back(), accuracy(clf, x, y)}, {3}, DType::f64, d);
        return std::vector<Tensor>{xp, xe, ens.logits, ens.softmax, ens.vote, xb, xf, x2, losses};
      },
      "purification, ensemble and one PGD step");
}
